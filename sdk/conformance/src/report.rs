//! The outcome of a run: one [`Check`] per check, rendered as a table or JSON.

use std::fmt::Write as _;

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything it asserts held.
    Passed,
    /// Something it asserts did not hold (see [`Check::reason`]).
    Failed,
    /// It cannot apply to this connector (see [`Check::reason`]).
    Skipped,
}

impl Status {
    /// `passed`, `failed` or `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Its name (one of [`crate::CHECKS`]).
    pub name: String,
    /// Passed, failed or skipped.
    pub status: Status,
    /// Why it failed or was skipped (empty when it passed).
    pub reason: String,
    /// What it did, step by step, and notes.
    pub detail: Vec<String>,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The connection checked.
    pub connection: String,
    /// The plugin's manifest name and version.
    pub plugin: String,
    /// The prefix of every object this run created.
    pub run_prefix: String,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
    /// Target ids of objects left in the target (`keep`, or cleanup failed), with why.
    pub leftovers: Vec<String>,
}

impl Report {
    /// Whether no check failed (skipped checks do not fail a run).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Failed)
    }

    /// The check with this name, if it ran.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The checks that failed.
    pub fn failures(&self) -> Vec<&Check> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Failed)
            .collect()
    }

    /// A table for people: one line per check, then the details of failed checks.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "conformance of connection '{}' (plugin {}), run prefix {}",
            self.connection, self.plugin, self.run_prefix
        );
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(5);
        for c in &self.checks {
            let _ = write!(out, "  {:<width$}  {:<7}", c.name, c.status.as_str());
            if !c.reason.is_empty() {
                let _ = write!(out, "  {}", c.reason);
            }
            out.push('\n');
        }
        for c in self.checks.iter().filter(|c| c.status == Status::Failed) {
            let _ = writeln!(out, "\n{} (failed): {}", c.name, c.reason);
            for d in &c.detail {
                let _ = writeln!(out, "    {d}");
            }
        }
        if !self.leftovers.is_empty() {
            let _ = writeln!(out, "\nleft in the target:");
            for l in &self.leftovers {
                let _ = writeln!(out, "    {l}");
            }
        }
        let (p, f, s) = self.counts();
        let _ = writeln!(out, "\n{p} passed, {f} failed, {s} skipped");
        out
    }

    fn counts(&self) -> (usize, usize, usize) {
        let n = |s: Status| self.checks.iter().filter(|c| c.status == s).count();
        (n(Status::Passed), n(Status::Failed), n(Status::Skipped))
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let (p, f, s) = self.counts();
        serde_json::json!({
            "connection": self.connection,
            "plugin": self.plugin,
            "run_prefix": self.run_prefix,
            "passed": self.passed(),
            "counts": {"passed": p, "failed": f, "skipped": s},
            "checks": self.checks.iter().map(|c| serde_json::json!({
                "name": c.name,
                "status": c.status.as_str(),
                "reason": c.reason,
                "detail": c.detail,
            })).collect::<Vec<_>>(),
            "leftovers": self.leftovers,
        })
    }

    /// Panic with the table unless every check passed or was skipped; for
    /// an author's `cargo test`.
    #[track_caller]
    pub fn assert_passed(&self) {
        if !self.passed() {
            panic!(
                "the connector failed the conformance kit:\n{}",
                self.table()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, status: Status, reason: &str) -> Check {
        Check {
            name: name.into(),
            status,
            reason: reason.into(),
            detail: vec!["step one".into()],
        }
    }

    #[test]
    fn a_skip_does_not_fail_a_run_but_a_failure_does() {
        let mut r = Report {
            connection: "c".into(),
            plugin: "p 0.1.0".into(),
            run_prefix: "pcx".into(),
            checks: vec![
                check("manifest", Status::Passed, ""),
                check("group-lifecycle", Status::Skipped, "no groups"),
            ],
            leftovers: vec![],
        };
        assert!(r.passed());
        assert!(r.table().contains("group-lifecycle  skipped  no groups"));
        r.checks
            .push(check("user-paging", Status::Failed, "duplicate id 7"));
        assert!(!r.passed());
        let t = r.table();
        assert!(t.contains("user-paging (failed): duplicate id 7"), "{t}");
        assert!(t.contains("1 passed, 1 failed, 1 skipped"), "{t}");
        assert_eq!(r.to_json()["checks"][2]["status"], "failed");
        assert_eq!(r.to_json()["passed"], false);
    }
}
