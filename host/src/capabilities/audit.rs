//! The budget of egress audit records (`target: provisio::audit`), per
//! connection.
//!
//! The HTTP capability ([`super::http`]) writes one audit record per hop. A
//! denied request costs the guest almost nothing, so without a budget a
//! hostile connector turns the audit trail into a flood (the review measured
//! 123 MB of stderr in 10 s). Every record therefore takes a token from its
//! connection's bucket ([`AuditLimits`]: a sustained rate and a burst, like
//! guest logs in [`super::log`]). Records over the budget are not written but
//! counted, by decision; the count is reported in one summary record
//! (`decision="dropped"`) before the next record that is written and at the
//! end of each call ([`flush`]), and added to the
//! `provisio_audit_records_dropped_total{connection}` counter of
//! [`crate::metrics`].
//!
//! The buckets live in a process-wide registry keyed by the connection name,
//! not in a `Connection` value: the service opens its connections again for
//! every cycle, and a connection's budget must not start afresh each time.
//!
//! The guest-controlled parts of a record (the path, the reason of a denial)
//! are escaped and capped with [`crate::untrusted`]; the caps are
//! [`MAX_PATH_BYTES`] and [`MAX_REASON_BYTES`].

use super::bucket::TokenBucket;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Longest path kept in an audit record, in bytes of escaped text.
pub const MAX_PATH_BYTES: usize = 512;
/// Longest reason (of a denial or failure) kept in an audit record.
pub const MAX_REASON_BYTES: usize = 1024;

/// The budget of audit records of one connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuditLimits {
    /// Sustained records per second.
    pub records_per_second: f64,
    /// Burst size.
    pub burst: u32,
}

impl Default for AuditLimits {
    /// 100 records a second, bursts of 1000: far above what an honest
    /// connection makes under its `requests_per_second`, a few tens of KB/s
    /// at most for a hostile one.
    fn default() -> Self {
        AuditLimits {
            records_per_second: 100.0,
            burst: 1000,
        }
    }
}

/// The decision an audit record reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// The request was sent and answered.
    Allowed,
    /// The host refused the request.
    Denied,
    /// The request was sent and failed (timeout, connection, body cap).
    Failed,
    /// The request was held back by the connection's request budget (not
    /// sent; the guest got a host-made 429).
    Throttled,
}

/// Counters of one connection's audit records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Records written.
    pub written: u64,
    /// Records dropped by the budget.
    pub dropped: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Dropped {
    allowed: u64,
    denied: u64,
    failed: u64,
    throttled: u64,
}

impl Dropped {
    fn total(&self) -> u64 {
        self.allowed + self.denied + self.failed + self.throttled
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: TokenBucket,
    pending: Dropped,
    stats: AuditStats,
}

/// The audit budget of one connection.
#[derive(Debug)]
pub struct AuditLog {
    connection: String,
    limits: AuditLimits,
    bucket: Mutex<Bucket>,
}

impl AuditLog {
    /// A budget for `connection`.
    pub fn new(connection: impl Into<String>, limits: AuditLimits) -> Self {
        AuditLog {
            connection: connection.into(),
            limits,
            bucket: Mutex::new(Bucket {
                tokens: TokenBucket::full(f64::from(limits.burst), Instant::now()),
                pending: Dropped::default(),
                stats: AuditStats::default(),
            }),
        }
    }

    /// Take a token for one record of `kind`. When it is granted, first write
    /// the summary of the records dropped since the last one written; when it
    /// is not, count the record as dropped.
    pub fn admit(&self, kind: AuditKind) -> bool {
        let Ok(mut b) = self.bucket.lock() else {
            return false;
        };
        if b.tokens
            .try_take(Instant::now(), self.limits.records_per_second)
        {
            b.stats.written += 1;
            let pending = std::mem::take(&mut b.pending);
            drop(b);
            self.report(pending);
            true
        } else {
            match kind {
                AuditKind::Allowed => b.pending.allowed += 1,
                AuditKind::Denied => b.pending.denied += 1,
                AuditKind::Failed => b.pending.failed += 1,
                AuditKind::Throttled => b.pending.throttled += 1,
            }
            b.stats.dropped += 1;
            drop(b);
            crate::metrics::metrics()
                .audit_records_dropped
                .get_or_create(&crate::metrics::conn(&self.connection))
                .inc();
            false
        }
    }

    /// Write the summary of records dropped since the last one written, if any.
    pub fn flush(&self) {
        let pending = self
            .bucket
            .lock()
            .map(|mut b| std::mem::take(&mut b.pending))
            .unwrap_or_default();
        self.report(pending);
    }

    /// Counters so far.
    pub fn stats(&self) -> AuditStats {
        self.bucket.lock().map(|b| b.stats).unwrap_or_default()
    }

    fn report(&self, d: Dropped) {
        let total = d.total();
        if total == 0 {
            return;
        }
        tracing::warn!(
            target: "provisio::audit",
            connection = %self.connection,
            decision = "dropped",
            dropped = total,
            allowed = d.allowed,
            denied = d.denied,
            failed = d.failed,
            throttled = d.throttled,
            "audit rate limit: {total} audit records not written (limit {}/s, burst {})",
            self.limits.records_per_second,
            self.limits.burst
        );
    }
}

fn registry() -> &'static Mutex<HashMap<String, Arc<AuditLog>>> {
    static R: OnceLock<Mutex<HashMap<String, Arc<AuditLog>>>> = OnceLock::new();
    R.get_or_init(Mutex::default)
}

/// The audit budget of `connection` (created with the default limits on first use).
pub fn for_connection(connection: &str) -> Option<Arc<AuditLog>> {
    let mut map = registry().lock().ok()?;
    Some(
        map.entry(connection.to_string())
            .or_insert_with(|| Arc::new(AuditLog::new(connection, AuditLimits::default())))
            .clone(),
    )
}

/// Take a token for one audit record of `connection`; `false` means the
/// record must not be written (it was counted as dropped).
pub fn admit(connection: &str, kind: AuditKind) -> bool {
    for_connection(connection).is_some_and(|a| a.admit(kind))
}

/// Report the records of `connection` dropped since the last one written
/// (the runtime calls it at the end of every call).
pub fn flush(connection: &str) {
    if let Some(a) = for_connection(connection) {
        a.flush();
    }
}

/// The audit counters of `connection`.
pub fn stats(connection: &str) -> AuditStats {
    for_connection(connection)
        .map(|a| a.stats())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_drops_counted_by_decision() {
        let a = AuditLog::new(
            "unit-audit-burst",
            AuditLimits {
                records_per_second: 0.0001,
                burst: 10,
            },
        );
        let written = (0..1000)
            .filter(|i| {
                a.admit(if i % 2 == 0 {
                    AuditKind::Denied
                } else {
                    AuditKind::Failed
                })
            })
            .count();
        assert_eq!(written, 10);
        assert_eq!(
            a.stats(),
            AuditStats {
                written: 10,
                dropped: 990
            }
        );
        let pending = a.bucket.lock().unwrap().pending;
        assert_eq!((pending.denied, pending.failed), (495, 495));
        a.flush();
        assert_eq!(a.bucket.lock().unwrap().pending.total(), 0);
        let text = crate::metrics::metrics().encode();
        assert!(
            text.contains(
                r#"provisio_audit_records_dropped_total{connection="unit-audit-burst"} 990"#
            ),
            "{text}"
        );
    }

    #[test]
    fn refills_over_time() {
        let a = AuditLog::new(
            "unit-audit-refill",
            AuditLimits {
                records_per_second: 1000.0,
                burst: 1,
            },
        );
        assert!(a.admit(AuditKind::Allowed));
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(a.admit(AuditKind::Allowed));
    }

    #[test]
    fn one_budget_per_connection_name() {
        let x = for_connection("unit-audit-x").unwrap();
        let again = for_connection("unit-audit-x").unwrap();
        assert!(Arc::ptr_eq(&x, &again));
        let y = for_connection("unit-audit-y").unwrap();
        assert!(!Arc::ptr_eq(&x, &y));
    }
}
