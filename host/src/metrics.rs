//! Prometheus metrics of the whole process, served by the admin API at
//! `/metrics` in the text exposition format.
//!
//! One process-wide registry ([`metrics`]) that the parts record into where
//! things happen: the scheduler (cycles, quarantine), the executor (actions,
//! retries, rate-limited answers), the runtime (sandbox traps) and the HTTP
//! capability (request latency, audit records dropped over budget). Every series is labelled with the
//! connection, so one misbehaving vendor shows up on its own.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;

/// Labels: the connection only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnLabels {
    /// Connection name.
    pub connection: String,
}

/// Labels: connection and an outcome or kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// Connection name.
    pub connection: String,
    /// Outcome (`succeeded`, `failed`, ...) or trap kind.
    pub status: String,
}

/// Labels of a provisioning action.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// Connection name.
    pub connection: String,
    /// `user` or `group`.
    pub kind: String,
    /// `create`, `update`, `disable`, `delete`, ...
    pub action: String,
    /// `success`, `failure`, `skipped`, ...
    pub status: String,
}

type HistogramFamily = Family<ConnLabels, Histogram, fn() -> Histogram>;

/// Every metric the process exports.
pub struct Metrics {
    registry: Registry,
    /// Finished cycles by connection and status (`succeeded`, `failed`, `error`).
    pub cycles: Family<StatusLabels, Counter>,
    /// Object actions by connection, kind, action and status.
    pub actions: Family<ActionLabels, Counter>,
    /// In-cycle retries of an object.
    pub retries: Family<ConnLabels, Counter>,
    /// Target answers that asked us to slow down (429 or vendor quota).
    pub rate_limited: Family<ConnLabels, Counter>,
    /// 1 while the connection is in quarantine.
    pub quarantined: Family<ConnLabels, Gauge>,
    /// Objects waiting in escrow for their next retry, after the last cycle.
    pub escrow_objects: Family<ConnLabels, Gauge>,
    /// Sandbox traps by kind (cpu-limit, memory-limit, timeout, panic, ...).
    pub sandbox_traps: Family<StatusLabels, Counter>,
    /// Latency of each outbound HTTP request the connector made, in seconds.
    pub request_seconds: HistogramFamily,
    /// Egress audit records not written because the connection exceeded its
    /// audit budget (see [`crate::capabilities::audit`]).
    pub audit_records_dropped: Family<ConnLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 5 ms .. ~41 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("provisio");
        let cycles = Family::<StatusLabels, Counter>::default();
        registry.register("cycles", "Finished provisioning cycles", cycles.clone());
        let actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "actions",
            "Object actions by kind, action and status",
            actions.clone(),
        );
        let retries = Family::<ConnLabels, Counter>::default();
        registry.register("retries", "In-cycle retries of an object", retries.clone());
        let rate_limited = Family::<ConnLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Target answers asking to slow down (429 / quota)",
            rate_limited.clone(),
        );
        let quarantined = Family::<ConnLabels, Gauge>::default();
        registry.register(
            "quarantined",
            "1 while the connection is in quarantine",
            quarantined.clone(),
        );
        let escrow_objects = Family::<ConnLabels, Gauge>::default();
        registry.register(
            "escrow_objects",
            "Objects waiting in escrow for their next retry (after the last cycle)",
            escrow_objects.clone(),
        );
        let sandbox_traps = Family::<StatusLabels, Counter>::default();
        registry.register(
            "sandbox_traps",
            "Connector calls stopped by the sandbox, by kind",
            sandbox_traps.clone(),
        );
        let request_seconds: HistogramFamily =
            Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "request_seconds",
            "Latency of the connector's outbound HTTP requests",
            request_seconds.clone(),
        );
        let audit_records_dropped = Family::<ConnLabels, Counter>::default();
        registry.register(
            "audit_records_dropped",
            "Egress audit records not written: over the connection's audit budget",
            audit_records_dropped.clone(),
        );
        Metrics {
            registry,
            cycles,
            actions,
            retries,
            rate_limited,
            quarantined,
            escrow_objects,
            sandbox_traps,
            request_seconds,
            audit_records_dropped,
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

/// Labels for a connection.
pub fn conn(connection: &str) -> ConnLabels {
    ConnLabels {
        connection: connection.to_string(),
    }
}

/// Labels for a connection and a status.
pub fn status(connection: &str, status: &str) -> StatusLabels {
    StatusLabels {
        connection: connection.to_string(),
        status: status.to_string(),
    }
}

/// A memory figure of process `pid` (`"self"` for this one) from Linux's
/// `/proc/<pid>/status`, in KiB: `field` is `"VmHWM:"` (peak resident set) or
/// `"VmRSS:"` (current). `None` where there is no such file or field.
pub fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// This process's peak resident set so far, KiB (0 where unknown).
pub fn peak_rss_kib() -> u64 {
    proc_status_kib("self", "VmHWM:").unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_and_labels() {
        let m = metrics();
        m.cycles.get_or_create(&status("unit-m", "succeeded")).inc();
        m.request_seconds
            .get_or_create(&conn("unit-m"))
            .observe(0.02);
        m.quarantined.get_or_create(&conn("unit-m")).set(1);
        let text = m.encode();
        assert!(
            text.contains(r#"provisio_cycles_total{connection="unit-m",status="succeeded"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"provisio_quarantined{connection="unit-m"} 1"#));
        assert!(text.contains(r#"provisio_request_seconds_count{connection="unit-m"} 1"#));
        assert!(text.contains("# TYPE provisio_cycles counter"), "{text}");
    }
}
