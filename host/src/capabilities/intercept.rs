//! A programmatic hook into one connection's HTTP traffic: fault injection
//! and an egress record, for the connector conformance kit
//! (`sdk/conformance`) and tests.
//!
//! An [`Interceptor`] is attached to a connection only from Rust code
//! ([`crate::runtime::Runtime::connect_intercepted`]); nothing in
//! `provisio.toml` or the CLI can create one, so a production connection never
//! has one. It does two things, after the allowlist and secret checks of each
//! hop have passed (a denied request is never sent, faulted or not):
//!
//! - **Faults**, armed one at a time with [`Interceptor::arm`] and consumed by
//!   the next request they apply to:
//!   - [`Fault::LoseResponse`] — the request is sent and its response read in
//!     full (the target has done the work), then dropped: the guest gets
//!     `http-error::timeout`, exactly as if the connection broke before the
//!     response arrived. Applies to the next request that is not a GET or HEAD
//!     (a write).
//!   - [`Fault::RateLimit`] — the request is not sent; the guest gets a 429
//!     with `Retry-After: <seconds>` and a small JSON body. The connection's
//!     rate limiter sees that 429 as it would a real one. Applies to the next
//!     request.
//! - **Records**: one [`EgressRecord`] per hop the guest attempted (allowed,
//!   denied or failed), with whether the URL lies within the plugin's declared
//!   host patterns and which fault, if any, was applied.
//!
//! The HTTP capability ([`super::http`]) calls [`Interceptor::take_fault`]
//! and [`Interceptor::record`]; everything else here is for the caller.

use super::http::Method;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A fault to inject into the next request it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Send the next write (any method but GET and HEAD), read its response,
    /// then drop it: the guest sees a timeout.
    LoseResponse,
    /// Answer the next request with 429 and this `Retry-After` (whole
    /// seconds), without sending it.
    RateLimit {
        /// The `Retry-After` the 429 carries.
        retry_after: Duration,
    },
}

impl Fault {
    fn applies_to(&self, method: Method) -> bool {
        match self {
            Fault::LoseResponse => !matches!(method, Method::Get | Method::Head),
            Fault::RateLimit { .. } => true,
        }
    }
}

/// What became of one hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Sent (or answered by a fault) and a response came back.
    Allowed,
    /// Refused by the allowlist or a secret binding; never sent.
    Denied,
    /// Sent, but no usable response (timeout, connection error, too large).
    Failed,
}

/// One hop of one request, as the HTTP capability saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRecord {
    /// The method.
    pub method: Method,
    /// `scheme://host[:port]`.
    pub origin: String,
    /// The path (no query: it may carry personal data).
    pub path: String,
    /// Whether the URL matches one of the plugin's declared host patterns
    /// (filled from the connection's settings).
    pub declared: bool,
    /// What happened.
    pub decision: Decision,
    /// The status, when a response came back.
    pub status: Option<u16>,
    /// The fault applied to this hop, if any.
    pub fault: Option<Fault>,
}

#[derive(Debug, Default)]
struct State {
    armed: VecDeque<Fault>,
    records: Vec<EgressRecord>,
}

/// A connection's HTTP hook; cheap to clone (clones share state).
#[derive(Debug, Clone, Default)]
pub struct Interceptor {
    state: Arc<Mutex<State>>,
}

impl Interceptor {
    /// An interceptor with no fault armed.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent
        // (every update is a single push or pop), so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arm a fault; faults fire in the order armed, each once.
    pub fn arm(&self, fault: Fault) {
        self.lock().armed.push_back(fault);
    }

    /// Faults armed but not fired yet.
    pub fn armed(&self) -> Vec<Fault> {
        self.lock().armed.iter().copied().collect()
    }

    /// Disarm every fault that has not fired.
    pub fn disarm(&self) {
        self.lock().armed.clear();
    }

    /// Every hop recorded so far.
    pub fn records(&self) -> Vec<EgressRecord> {
        self.lock().records.clone()
    }

    /// The number of hops recorded so far (a position for [`Self::records_since`]).
    pub fn record_count(&self) -> usize {
        self.lock().records.len()
    }

    /// The hops recorded after position `start`.
    pub fn records_since(&self, start: usize) -> Vec<EgressRecord> {
        self.lock()
            .records
            .get(start..)
            .map(<[EgressRecord]>::to_vec)
            .unwrap_or_default()
    }

    /// Called by the HTTP capability for a hop about to be sent: the first
    /// armed fault, if it applies to this method (it is then consumed).
    pub fn take_fault(&self, method: Method) -> Option<Fault> {
        let mut state = self.lock();
        match state.armed.front() {
            Some(f) if f.applies_to(method) => state.armed.pop_front(),
            _ => None,
        }
    }

    /// Called by the HTTP capability once per hop.
    pub fn record(&self, record: EgressRecord) {
        self.lock().records.push(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lose_response_waits_for_a_write_and_fires_once() {
        let i = Interceptor::new();
        i.arm(Fault::LoseResponse);
        assert_eq!(i.take_fault(Method::Get), None, "a read is not a write");
        assert_eq!(i.take_fault(Method::Head), None);
        assert_eq!(i.take_fault(Method::Post), Some(Fault::LoseResponse));
        assert_eq!(i.take_fault(Method::Post), None, "fires once");
        assert!(i.armed().is_empty());
    }

    #[test]
    fn faults_fire_in_order_and_rate_limit_applies_to_anything() {
        let i = Interceptor::new();
        let rl = Fault::RateLimit {
            retry_after: Duration::from_secs(2),
        };
        i.arm(rl);
        i.arm(Fault::LoseResponse);
        assert_eq!(i.take_fault(Method::Get), Some(rl));
        assert_eq!(i.take_fault(Method::Get), None);
        assert_eq!(i.take_fault(Method::Delete), Some(Fault::LoseResponse));
        i.arm(rl);
        i.disarm();
        assert_eq!(i.take_fault(Method::Get), None);
    }

    #[test]
    fn records_are_shared_between_clones() {
        let i = Interceptor::new();
        let j = i.clone();
        let rec = |path: &str| EgressRecord {
            method: Method::Get,
            origin: "http://127.0.0.1:1".into(),
            path: path.into(),
            declared: true,
            decision: Decision::Allowed,
            status: Some(200),
            fault: None,
        };
        j.record(rec("/a"));
        let mark = i.record_count();
        j.record(rec("/b"));
        assert_eq!(i.records().len(), 2);
        assert_eq!(i.records_since(mark), vec![rec("/b")]);
        assert!(i.records_since(99).is_empty());
    }
}
