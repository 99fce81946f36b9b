//! The per-connection request budget.
//!
//! Every HTTP request a connector makes — each redirect hop and each list page
//! included — first takes a token from its connection's [`RateLimiter`]
//! ([`super::http::HttpClient::send`] calls [`RateLimiter::acquire_within`]
//! before every hop): a token bucket refilled at the configured rate (default
//! 25 requests/s, what Entra asks gallery apps to sustain). The bucket holds
//! [`burst_for`] tokens, one up to 100 requests/s, so requests are paced
//! evenly and no one-second window ever holds more than the configured rate
//! (a strict per-second vendor quota such as Clarizen's 25/s is never
//! tripped by a connection configured at that quota). When the
//! target answers 429 the limiter adapts: all requests of the connection pause
//! until the `Retry-After` the target gave (exactly), and the rate is halved;
//! it then recovers additively, one request/s per second of success, back to
//! the configured rate. Vendor headers that announce an exhausted quota
//! (`X-Rate-Limit-Remaining: 0`, `ratelimit-remaining: 0` with
//! `ratelimit-reset`) pause the connection the same way before a 429 happens.

use super::bucket::TokenBucket;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Smallest rate the limiter adapts down to.
pub const MIN_RATE: f64 = 0.5;

#[derive(Debug)]
struct State {
    bucket: TokenBucket,
    rate: f64,
    paused_until: Option<Instant>,
    throttled: u64,
    host_throttled: u64,
}

/// A connection's request budget, shared by all its calls.
#[derive(Debug)]
pub struct RateLimiter {
    configured: f64,
    state: Mutex<State>,
}

impl RateLimiter {
    /// A limiter of `rate` requests per second, holding [`burst_for`] tokens.
    pub fn new(rate: f64) -> Self {
        let rate = if rate.is_finite() { rate } else { MIN_RATE }.max(MIN_RATE);
        let burst = burst_for(rate);
        RateLimiter {
            configured: rate,
            state: Mutex::new(State {
                bucket: TokenBucket::full(burst, Instant::now()),
                rate,
                paused_until: None,
                throttled: 0,
                host_throttled: 0,
            }),
        }
    }

    /// The current (possibly adapted) rate.
    pub fn rate(&self) -> f64 {
        self.state.lock().map(|s| s.rate).unwrap_or(self.configured)
    }

    /// How many times the target throttled this connection.
    pub fn throttled(&self) -> u64 {
        self.state.lock().map(|s| s.throttled).unwrap_or(0)
    }

    /// How many throttling events this connection saw, the target's and the
    /// host's own ([`RateLimiter::acquire_within`] giving up) together.
    pub fn throttle_events(&self) -> u64 {
        self.state
            .lock()
            .map(|s| s.throttled + s.host_throttled)
            .unwrap_or(0)
    }

    /// How long to wait before a request may go; takes the token when zero.
    fn reserve(&self) -> Duration {
        let Ok(mut s) = self.state.lock() else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        if let Some(until) = s.paused_until {
            if until > now {
                return until - now;
            }
            s.paused_until = None;
            s.bucket.restart(now);
        }
        // Additive recovery towards the configured rate.
        if s.rate < self.configured {
            s.rate = (s.rate + s.bucket.idle_seconds(now)).min(self.configured);
        }
        let rate = s.rate;
        s.bucket.take_or_wait(now, rate)
    }

    /// Wait for a token.
    pub async fn acquire(&self) {
        loop {
            let wait = self.reserve();
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Wait for a token, but not longer than `limit`: `Ok(waited)` once the
    /// token is taken, or `Err(wait)` without waiting at all when the next
    /// token is further away than `limit` (a pause after the target's 429,
    /// or a very low rate). The caller then answers the guest with a
    /// host-made 429 carrying `Retry-After: wait`, so a call never sits out a
    /// long pause inside its own wall-clock limit.
    pub async fn acquire_within(&self, limit: Duration) -> Result<Duration, Duration> {
        let started = Instant::now();
        loop {
            let wait = self.peek();
            if started.elapsed() + wait > limit {
                if let Ok(mut s) = self.state.lock() {
                    s.host_throttled += 1;
                }
                return Err(wait);
            }
            let wait = self.reserve();
            if wait.is_zero() {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// How long until a token is available, without taking one.
    fn peek(&self) -> Duration {
        let Ok(s) = self.state.lock() else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        if let Some(until) = s.paused_until
            && until > now
        {
            return until - now;
        }
        s.bucket.wait(now, s.rate)
    }

    /// The target throttled us: pause every request of the connection for
    /// `retry_after` (or one second when it did not say), and halve the rate.
    pub fn throttle(&self, retry_after: Option<Duration>) {
        if let Ok(mut s) = self.state.lock() {
            let until = Instant::now() + retry_after.unwrap_or(Duration::from_secs(1));
            s.paused_until = Some(s.paused_until.map_or(until, |p| p.max(until)));
            s.rate = (s.rate / 2.0).max(MIN_RATE);
            s.bucket.drain(Instant::now());
            s.throttled += 1;
        }
    }

    /// The target says the quota is exhausted until `reset` from now.
    pub fn exhausted_for(&self, reset: Duration) {
        if let Ok(mut s) = self.state.lock() {
            let until = Instant::now() + reset;
            s.paused_until = Some(s.paused_until.map_or(until, |p| p.max(until)));
        }
    }
}

/// Tokens a bucket of `rate` requests/s holds: one up to 100 requests/s (even
/// pacing; a fixed or sliding one-second window never sees more than `rate`
/// requests), then a hundredth of the rate so very high budgets are not held
/// back by timer granularity.
pub fn burst_for(rate: f64) -> f64 {
    (rate / 100.0).floor().max(1.0)
}

/// Parse `Retry-After` (seconds or an HTTP date) into a delay.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(
        delta
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(86_400)),
    )
}

/// Inspect a response's status and headers; adapt the limiter. Returns the
/// Retry-After of a 429, if any.
pub fn observe(
    limiter: &RateLimiter,
    status: u16,
    headers: &[(String, String)],
) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if status == 429 {
        let ra = get("retry-after").and_then(parse_retry_after);
        limiter.throttle(ra);
        return ra;
    }
    let remaining = get("x-rate-limit-remaining").or_else(|| get("ratelimit-remaining"));
    if remaining.and_then(|r| r.trim().parse::<i64>().ok()) == Some(0) {
        let reset = get("ratelimit-reset")
            .and_then(parse_retry_after)
            .unwrap_or(Duration::from_secs(1));
        limiter.exhausted_for(reset);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paced_from_the_first_request() {
        let l = RateLimiter::new(10.0);
        assert_eq!(l.reserve(), Duration::ZERO);
        let wait = l.reserve();
        assert!(
            wait > Duration::from_millis(50) && wait <= Duration::from_millis(100),
            "the second request waits a tenth of a second: {wait:?}"
        );
    }

    #[test]
    fn bursts_are_small() {
        assert_eq!(burst_for(0.5), 1.0);
        assert_eq!(burst_for(25.0), 1.0);
        assert_eq!(burst_for(100.0), 1.0);
        assert_eq!(burst_for(1000.0), 10.0);
        assert_eq!(RateLimiter::new(f64::NAN).rate(), MIN_RATE);
    }

    #[tokio::test]
    async fn acquire_within_gives_up_on_long_pauses() {
        let l = RateLimiter::new(25.0);
        assert!(l.acquire_within(Duration::from_secs(1)).await.is_ok());
        l.throttle(Some(Duration::from_secs(30)));
        let before = l.throttle_events();
        let t = Instant::now();
        let wait = l
            .acquire_within(Duration::from_secs(1))
            .await
            .expect_err("a 30 s pause is longer than the 1 s limit");
        assert!(wait > Duration::from_secs(29), "{wait:?}");
        assert!(t.elapsed() < Duration::from_millis(500), "gave up at once");
        assert_eq!(l.throttle_events(), before + 1);
    }

    #[test]
    fn throttling_pauses_and_halves() {
        let l = RateLimiter::new(20.0);
        l.throttle(Some(Duration::from_secs(2)));
        assert_eq!(l.rate(), 10.0);
        assert_eq!(l.throttled(), 1);
        let wait = l.reserve();
        assert!(
            wait > Duration::from_millis(1900),
            "paused for the Retry-After: {wait:?}"
        );
        for _ in 0..20 {
            l.throttle(None);
        }
        assert_eq!(l.rate(), MIN_RATE);
    }

    #[test]
    fn headers_adapt_the_limiter() {
        let l = RateLimiter::new(25.0);
        let h = vec![("Retry-After".to_string(), "3".to_string())];
        assert_eq!(observe(&l, 429, &h), Some(Duration::from_secs(3)));
        assert!(l.reserve() > Duration::from_millis(2900));
        let l = RateLimiter::new(25.0);
        let h = vec![
            ("X-Rate-Limit-Remaining".to_string(), "0".to_string()),
            ("ratelimit-reset".to_string(), "2".to_string()),
        ];
        assert_eq!(observe(&l, 200, &h), None);
        assert!(l.reserve() > Duration::from_millis(1900));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("soon"), None);
        let past = parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(past, Some(Duration::ZERO));
    }

    #[tokio::test]
    async fn acquire_never_exceeds_the_budget() {
        // 11 requests at 20/s with a burst of 1: at least 0.5 s (a lower bound,
        // which a loaded machine cannot break).
        let l = RateLimiter::new(20.0);
        let t = Instant::now();
        for _ in 0..11 {
            l.acquire().await;
        }
        assert!(
            t.elapsed() >= Duration::from_millis(490),
            "{:?}",
            t.elapsed()
        );
    }
}
