//! `provisio reconcile <connection> [--dry-run] [--json]`: drift
//! reconciliation (see [`crate::repair`] and [`crate::drift`]).
//!
//! Target values, ids and names in the findings are untrusted text: every
//! line printed here escapes them with [`crate::untrusted::escape`].

use super::sync::{incomplete, open_sync, settle_quarantine};
use crate::repair::ReconcileSummary;
use crate::untrusted::{escape, json_safe};
use anyhow::Result;
use std::fmt::Write as _;
use std::path::Path;

/// Run (or preview) a reconcile of one connection.
pub async fn reconcile(config: &Path, name: &str, dry_run: bool, json: bool) -> Result<()> {
    let env = open_sync(config, name).await?;
    let cycle = env.cycle();
    let summary = if dry_run {
        crate::repair::preview(&cycle, &env.reconcile).await?
    } else {
        crate::repair::run(&cycle, &env.reconcile, &crate::progress::Progress::new()).await?
    };
    if let Some(s) = &summary.cycle {
        settle_quarantine(&env.store, name, s);
    }
    if json {
        println!("{}", json_safe(&serde_json::to_string_pretty(&summary)?));
    } else {
        print!("{}", render(&summary));
    }
    if summary.failures > 0 {
        return Err(super::Exit {
            code: super::exit::INCOMPLETE,
            message: format!(
                "connection '{name}': {} orphan delete(s) or member removal(s) failed; see \
                 `provisio logs --connection {name} --status failure`",
                summary.failures
            ),
        }
        .into());
    }
    match &summary.cycle {
        Some(s) => incomplete(name, s),
        None => Ok(()),
    }
}

/// The summary for people.
pub fn render(s: &ReconcileSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "reconcile of '{}'{}: the target holds {} users and {} groups ({} calls to read); {} \
         finding(s)",
        s.connection,
        if s.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        },
        s.target_users,
        s.target_groups,
        s.read_calls,
        s.details.len()
    );
    for d in &s.details {
        let _ = writeln!(
            out,
            "  {:<9} {} {} (target {}): {}\n            {} {}",
            d.finding,
            d.kind,
            d.source_id
                .as_deref()
                .map(escape)
                .unwrap_or_else(|| "-".into()),
            escape(&d.target_id),
            escape(&d.detail),
            if s.dry_run { "would:" } else { "repair:" },
            d.repair
        );
    }
    if s.details.is_empty() {
        let _ = writeln!(out, "  no drift: the target holds what was exported");
    }
    if let Some(c) = &s.cycle {
        let _ = writeln!(
            out,
            "reconcile cycle {} finished in {:.1} s: {} target calls, {} failures",
            c.cycle_id, c.duration_seconds, c.target_calls, c.failures
        );
        for (k, v) in &c.counts {
            let _ = writeln!(out, "  {v:>6}  {k}");
        }
        let _ = writeln!(
            out,
            "orphans: {} linked, {} reported, {} deleted; {} unmanaged member(s) removed",
            s.orphans_linked, s.orphans_reported, s.orphans_deleted, s.unmanaged_members_removed
        );
    }
    if let Some(h) = &s.held_reason {
        let _ = writeln!(out, "held back: {}", escape(h));
    }
    out
}
