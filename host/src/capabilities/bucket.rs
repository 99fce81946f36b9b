//! A token bucket: the one budget type behind the connection's request
//! limiter ([`super::ratelimit`]), the guest log budget ([`super::log`]) and
//! the audit record budget ([`super::audit`]).
//!
//! The bucket holds at most `burst` tokens and refills continuously at a
//! rate the caller passes on every use (the request limiter adapts its rate
//! after a 429; the others keep theirs fixed). Time is passed in too, so the
//! arithmetic is tested without sleeping.

use std::time::{Duration, Instant};

/// Tokens, their cap, and when they were last counted.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    burst: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens.
    pub fn full(burst: f64, now: Instant) -> Self {
        TokenBucket {
            tokens: burst,
            burst,
            last: now,
        }
    }

    /// Seconds since the tokens were last counted.
    pub fn idle_seconds(&self, now: Instant) -> f64 {
        now.saturating_duration_since(self.last).as_secs_f64()
    }

    fn available(&self, now: Instant, rate: f64) -> f64 {
        (self.tokens + self.idle_seconds(now) * rate).min(self.burst)
    }

    /// Take one token if there is one at `now`, refilling at `rate`/s first.
    pub fn try_take(&mut self, now: Instant, rate: f64) -> bool {
        self.tokens = self.available(now, rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until one token is there, without taking it.
    pub fn wait(&self, now: Instant, rate: f64) -> Duration {
        let tokens = self.available(now, rate);
        if tokens >= 1.0 || rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - tokens) / rate)
        }
    }

    /// Take a token if there is one (`Duration::ZERO`), else say how long
    /// until there is.
    pub fn take_or_wait(&mut self, now: Instant, rate: f64) -> Duration {
        if self.try_take(now, rate) {
            Duration::ZERO
        } else {
            self.wait(now, rate)
        }
    }

    /// Drop every token (the target throttled us); refilling starts at `now`.
    pub fn drain(&mut self, now: Instant) {
        self.tokens = 0.0;
        self.last = now;
    }

    /// Count no refill for the time before `now` (the end of a pause).
    pub fn restart(&mut self, now: Instant) {
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_refills_caps_and_waits() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(2.0, t0);
        assert!(b.try_take(t0, 4.0));
        assert!(b.try_take(t0, 4.0));
        assert!(!b.try_take(t0, 4.0));
        assert_eq!(b.wait(t0, 4.0), Duration::from_millis(250));
        let t1 = t0 + Duration::from_millis(250);
        assert_eq!(b.take_or_wait(t1, 4.0), Duration::ZERO);
        // Refill is capped at the burst however long it was idle.
        let t2 = t1 + Duration::from_secs(60);
        assert!(b.try_take(t2, 4.0) && b.try_take(t2, 4.0));
        assert!(!b.try_take(t2, 4.0));
        b.drain(t2);
        assert_eq!(b.wait(t2, 2.0), Duration::from_millis(500));
        b.restart(t2 + Duration::from_secs(5));
        assert!(!b.try_take(t2 + Duration::from_secs(5), 2.0));
    }
}
