//! Live progress of a running cycle: how many units of work (objects and
//! membership batches) the cycle planned, how many are done, and counts by
//! object kind, action and status.
//!
//! The executor records every finished object into a [`Progress`]; readers
//! (the admin API's connection status, the progress bar of `provisio sync`)
//! take a [`ProgressSnapshot`] whenever they like. It is a mutex around a
//! small struct: one lock per finished object is noise next to a connector
//! call.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// A point-in-time copy of a cycle's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProgressSnapshot {
    /// Whether a cycle is running.
    pub running: bool,
    /// `initial` or `incremental` while running (or of the last cycle).
    pub cycle_type: Option<String>,
    /// What the cycle is doing: `reading`, `users`, `groups`, `references`,
    /// `memberships`, `deprovisioning`, `done`.
    pub phase: String,
    /// Units of work planned so far (objects that call the target, deferred
    /// and staged objects, and groups whose members change).
    pub total: u64,
    /// Units finished.
    pub done: u64,
    /// Finished units by `"<kind> <action> <status>"`, e.g. `"user create success"`.
    pub counts: BTreeMap<String, u64>,
}

/// Shared progress of one connection's cycles.
#[derive(Debug, Default)]
pub struct Progress {
    inner: Mutex<ProgressSnapshot>,
}

impl Progress {
    /// A new, idle progress.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut ProgressSnapshot) -> R) -> R {
        // A poisoned lock only means a reader panicked; the data is plain counters.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// A cycle of `cycle_type` starts: counters reset.
    pub fn start(&self, cycle_type: &str) {
        self.with(|s| {
            *s = ProgressSnapshot {
                running: true,
                cycle_type: Some(cycle_type.to_string()),
                phase: "reading".into(),
                ..Default::default()
            }
        });
    }

    /// The cycle moves to another phase.
    pub fn phase(&self, phase: &str) {
        self.with(|s| s.phase = phase.to_string());
    }

    /// `n` more units of work were planned.
    pub fn add_total(&self, n: u64) {
        self.with(|s| s.total += n);
    }

    /// One unit finished.
    pub fn record(&self, kind: &str, action: &str, status: &str) {
        self.with(|s| {
            s.done += 1;
            s.total = s.total.max(s.done);
            *s.counts
                .entry(format!("{kind} {action} {status}"))
                .or_insert(0) += 1;
        });
    }

    /// The cycle ended (successfully or not).
    pub fn finish(&self) {
        self.with(|s| {
            s.running = false;
            s.phase = "done".into();
        });
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> ProgressSnapshot {
        self.with(|s| s.clone())
    }
}

impl ProgressSnapshot {
    /// Counts summed by action and status, ignoring the kind ("create success": 3).
    pub fn by_action(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (k, n) in &self.counts {
            let key = k.split_once(' ').map(|(_, rest)| rest).unwrap_or(k);
            *out.entry(key.to_string()).or_insert(0) += n;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_totals() {
        let p = Progress::new();
        assert!(!p.snapshot().running);
        p.start("initial");
        p.add_total(3);
        p.phase("users");
        p.record("user", "create", "success");
        p.record("user", "create", "success");
        p.record("group", "create", "failure");
        let s = p.snapshot();
        assert!(s.running);
        assert_eq!((s.done, s.total), (3, 3));
        assert_eq!(s.counts["user create success"], 2);
        assert_eq!(s.by_action()["create success"], 2);
        assert_eq!(s.by_action()["create failure"], 1);
        p.record("user", "update", "success");
        assert_eq!(p.snapshot().total, 4, "total never falls behind done");
        p.finish();
        let s = p.snapshot();
        assert!(!s.running && s.phase == "done" && s.done == 4);
        p.start("incremental");
        assert_eq!(p.snapshot().done, 0, "a new cycle starts from zero");
    }
}
