//! `provisio reconcile`: drift reconciliation of one connection, end to end.
//!
//! [`crate::drift`] holds the pure parts (reading the target, comparing,
//! the store corrections); this module runs them in order under the
//! connection's lease (see [`crate::lease`]), hands the repairs to an
//! ordinary [`Cycle`] of type `reconcile`, and then deals with what the
//! cycle cannot: target objects linked to nothing (orphans), members of a
//! managed group that are no user of this connection, and objects found
//! deleted that the policy only reports.
//!
//! Layering: `repair` → `cycle` → `execute` → `drift`; nothing below
//! imports this module.
//!
//! Safety rules, the same as the cycle's for deprovisioning:
//! - the target is read completely before anything is compared; a failed or
//!   endless read stops the reconcile with nothing written;
//! - nothing is deleted or removed from the target (orphans, unmanaged
//!   members) while the source had malformed records, while deprovisioning
//!   was held, or after the target rejected the credentials;
//! - orphan deletes above the connection's `deletion_threshold` are refused
//!   as a whole (each is reported instead).

use crate::cycle::{Cycle, CycleError, CycleSummary, DriftNotes};
use crate::drift::{self, DeletedInTarget, DriftPolicy, Exported, Finding, Orphans, TargetView};
use crate::model::{ApplyOn, ObjectKind};
use crate::store::{Link, LinkState, LogAction, LogRecord, LogStatus, Step, StepKind, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// One finding as reported (CLI, JSON, admin API). Text fields are
/// untrusted (target values); renderers escape them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FindingReport {
    /// `deleted`, `changed`, `lifecycle`, `members` or `orphan`.
    pub finding: String,
    /// User or group.
    pub kind: ObjectKind,
    /// The source object, if linked.
    pub source_id: Option<String>,
    /// The target object.
    pub target_id: String,
    /// What was found.
    pub detail: String,
    /// What reconcile does (or, in a dry run, would do) about it.
    pub repair: String,
}

/// What a reconcile found and did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReconcileSummary {
    /// The connection.
    pub connection: String,
    /// Whether this was a dry run (nothing written anywhere).
    pub dry_run: bool,
    /// Users the target holds.
    pub target_users: usize,
    /// Groups the target holds.
    pub target_groups: usize,
    /// Connector calls made to read the target.
    pub read_calls: u64,
    /// Findings by name.
    pub findings: BTreeMap<String, usize>,
    /// Each finding.
    pub details: Vec<FindingReport>,
    /// Orphans the cycle linked to a source object (matched).
    pub orphans_linked: usize,
    /// Orphans reported and left in the target.
    pub orphans_reported: usize,
    /// Orphans deleted from the target (`orphans = "delete"`).
    pub orphans_deleted: usize,
    /// Members that are no user of this connection removed from managed
    /// groups (`orphans = "delete"`).
    pub unmanaged_members_removed: usize,
    /// Target writes of this module that failed.
    pub failures: usize,
    /// Why deletes and removals were held back, if they were.
    pub held_reason: Option<String>,
    /// The repairing cycle (none in a dry run).
    pub cycle: Option<CycleSummary>,
}

/// The attributes compared for drift: managed by an update mapping, not a
/// secret, not in `ignore`.
fn compared_attributes(cycle: &Cycle<'_>, policy: &DriftPolicy) -> [BTreeSet<String>; 2] {
    let of = |set: &crate::mapping::MappingSet| {
        set.mappings()
            .iter()
            .filter(|m| m.apply != ApplyOn::CreateOnly && !m.is_redacted())
            .map(|m| m.target.to_ascii_lowercase())
            .filter(|t| !policy.ignore.contains(t))
            .collect::<BTreeSet<_>>()
    };
    [of(&cycle.settings.users), of(&cycle.settings.groups)]
}

/// The store's side: links and exported members.
struct StoreSide {
    users: Vec<Link>,
    groups: Vec<Link>,
    members: BTreeMap<String, BTreeSet<String>>,
}

fn store_side(store: &Store, name: &str) -> Result<StoreSide, CycleError> {
    let err = |e: crate::store::StoreError| CycleError::Store(e.to_string());
    let users = store.links(name, ObjectKind::User).map_err(err)?;
    let groups = store.links(name, ObjectKind::Group).map_err(err)?;
    let mut members = BTreeMap::new();
    for g in groups.iter().filter(|l| l.state != LinkState::Deleted) {
        members.insert(
            g.source_id.clone(),
            store.members(name, &g.source_id).map_err(err)?,
        );
    }
    Ok(StoreSide {
        users,
        groups,
        members,
    })
}

/// Read the target and compare it with the store.
async fn find(
    cycle: &Cycle<'_>,
    policy: &DriftPolicy,
) -> Result<(StoreSide, TargetView, Vec<Finding>), CycleError> {
    let side = store_side(cycle.store, cycle.name())?;
    let linked_groups: BTreeSet<String> = side
        .groups
        .iter()
        .filter(|l| l.state != LinkState::Deleted)
        .map(|l| l.target_id.clone())
        .collect();
    let view = drift::read_target(cycle.connection, cycle.groups_supported(), &linked_groups)
        .await
        .map_err(|e| CycleError::Target(crate::capabilities::secrets::redact(&e.to_string())))?;
    let [users, groups] = compared_attributes(cycle, policy);
    let compared = |kind: ObjectKind, name: &str| {
        let set = match kind {
            ObjectKind::User => &users,
            ObjectKind::Group => &groups,
        };
        set.contains(&name.to_ascii_lowercase())
    };
    let findings = drift::compare(
        &Exported {
            users: &side.users,
            groups: &side.groups,
            members: &side.members,
            can_disable: cycle.can_disable_users(),
            compared: &compared,
        },
        &view,
    );
    Ok((side, view, findings))
}

/// What reconcile does about a finding under `policy`.
fn repair_text(f: &Finding, policy: &DriftPolicy) -> String {
    match f {
        Finding::Deleted { .. } => match policy.deleted_in_target {
            DeletedInTarget::Recreate => {
                "create it again (matching first), if the source still has it in scope".into()
            }
            DeletedInTarget::Report => "report only (deleted_in_target = \"report\")".into(),
        },
        Finding::Changed { .. } => "update the attributes back to the source's values".into(),
        Finding::Lifecycle { .. } => "set it back to the state the source gives it".into(),
        Finding::Members {
            missing,
            extra,
            unmanaged,
            ..
        } => {
            let mut parts = Vec::new();
            if !missing.is_empty() {
                parts.push("add the missing members back");
            }
            if !extra.is_empty() {
                parts.push("remove the members the source does not give the group");
            }
            if !unmanaged.is_empty() {
                parts.push(match policy.orphans {
                    Orphans::Delete => "remove the members that are no user of this connection",
                    Orphans::Report => {
                        "report the members that are no user of this connection \
                         (orphans = \"report\")"
                    }
                });
            }
            parts.join("; ")
        }
        Finding::Orphan { .. } => match policy.orphans {
            Orphans::Report => {
                "link it if a source object matches it, else report it (orphans = \"report\")"
                    .into()
            }
            Orphans::Delete => {
                "link it if a source object matches it, else delete it from the target".into()
            }
        },
    }
}

fn report(f: &Finding, policy: &DriftPolicy) -> FindingReport {
    let (kind, sid, tid) = f.object();
    FindingReport {
        finding: f.name().into(),
        kind,
        source_id: sid.map(str::to_string),
        target_id: tid.to_string(),
        detail: f.describe(),
        repair: repair_text(f, policy),
    }
}

fn summary(
    name: &str,
    dry_run: bool,
    view: &TargetView,
    findings: &[Finding],
    policy: &DriftPolicy,
) -> ReconcileSummary {
    let mut counts = BTreeMap::new();
    for f in findings {
        *counts.entry(f.name().to_string()).or_insert(0) += 1;
    }
    ReconcileSummary {
        connection: name.to_string(),
        dry_run,
        target_users: view.users.len(),
        target_groups: view.groups.len(),
        read_calls: view.calls,
        findings: counts,
        details: findings.iter().map(|f| report(f, policy)).collect(),
        orphans_linked: 0,
        orphans_reported: 0,
        orphans_deleted: 0,
        unmanaged_members_removed: 0,
        failures: 0,
        held_reason: None,
        cycle: None,
    }
}

/// Read and compare only: nothing is written to the target or the store,
/// and no lease is taken.
pub async fn preview(
    cycle: &Cycle<'_>,
    policy: &DriftPolicy,
) -> Result<ReconcileSummary, CycleError> {
    let (_, view, findings) = find(cycle, policy).await?;
    Ok(summary(cycle.name(), true, &view, &findings, policy))
}

/// Reconcile: read, compare, correct the store, run the repairing cycle,
/// then handle orphans and unmanaged members. Holds the connection's lease
/// throughout.
pub async fn run(
    cycle: &Cycle<'_>,
    policy: &DriftPolicy,
    progress: &crate::progress::Progress,
) -> Result<ReconcileSummary, CycleError> {
    let r = crate::lease::hold(cycle.store, cycle.name(), |lease| async move {
        run_inner(cycle, policy, progress, lease).await
    })
    .await
    .unwrap_or_else(|e| match e {
        crate::store::LeaseError::Store(e) => Err(CycleError::Store(e.to_string())),
        other => Err(CycleError::Busy(other.to_string())),
    });
    progress.finish();
    r
}

async fn run_inner(
    cycle: &Cycle<'_>,
    policy: &DriftPolicy,
    progress: &crate::progress::Progress,
    lease: crate::store::Lease,
) -> Result<ReconcileSummary, CycleError> {
    let store = cycle.store;
    let name = cycle.name();
    let store_err = |e: crate::store::StoreError| CycleError::Store(e.to_string());
    progress.start("reconcile");
    progress.phase("reading the target");
    let (side, view, findings) = find(cycle, policy).await?;
    let mut out = summary(name, false, &view, &findings, policy);

    // The store is told what the target holds; the cycle repairs the rest.
    for c in drift::corrections(&findings, &side.users, &side.groups, policy) {
        match c {
            drift::Correction::Link(l) => store.upsert_link(&l).map_err(store_err)?,
            drift::Correction::Tombstone { kind, source_id } => {
                store
                    .set_link_state(name, kind, &source_id, LinkState::Deleted)
                    .map_err(store_err)?;
                store
                    .forget_memberships(name, kind, &source_id)
                    .map_err(store_err)?;
            }
            drift::Correction::Members { group, members } => store
                .replace_members(name, &group, &members)
                .map_err(store_err)?,
        }
    }
    let mut notes = DriftNotes::default();
    for f in &findings {
        match f {
            Finding::Orphan { .. } => {}
            Finding::Deleted { .. } if policy.deleted_in_target == DeletedInTarget::Report => {}
            Finding::Members { group, .. } => {
                notes.members.insert(group.clone(), f.describe());
            }
            _ => {
                let (kind, sid, _) = f.object();
                if let Some(sid) = sid {
                    notes
                        .objects
                        .entry((kind, sid.to_string()))
                        .and_modify(|n: &mut String| {
                            n.push_str("; ");
                            n.push_str(&f.describe());
                        })
                        .or_insert_with(|| f.describe());
                }
            }
        }
    }
    let s = cycle.run_after_reconcile(progress, lease, notes).await?;

    // After the cycle: what it could not repair.
    let hold = if s.credentials_rejected.is_some() {
        Some("the target rejected the credentials".to_string())
    } else if s.source_issues > 0 || s.held > 0 {
        Some(format!(
            "the source had {} malformed record(s) (deletes and removals wait until it is fixed)",
            s.source_issues
        ))
    } else {
        None
    };
    let started = Instant::now();
    let record = |kind: ObjectKind, action: LogAction, status: LogStatus| {
        let mut r = LogRecord::new(name, kind, action, status);
        r.cycle_id = Some(s.cycle_id.clone());
        r
    };
    let write = |r: &LogRecord| {
        if let Err(e) = store.append_log(r) {
            tracing::warn!(connection = name, "cannot write a reconcile record: {e}");
        }
    };

    // Deleted in the target, only reported.
    for f in &findings {
        if let Finding::Deleted {
            kind,
            source_id,
            target_id,
        } = f
            && policy.deleted_in_target == DeletedInTarget::Report
        {
            let mut r = record(*kind, LogAction::Drift, LogStatus::Warning);
            r.source_id = Some(source_id.clone());
            r.target_id = Some(target_id.clone());
            r.steps.push(step(
                LogStatus::Warning,
                format!(
                    "{}; not re-created (deleted_in_target = \"report\")",
                    f.describe()
                ),
            ));
            write(&r);
        }
    }

    // Orphans: linked by the cycle's matching, else reported or deleted.
    let mut to_delete = Vec::new();
    for f in &findings {
        let Finding::Orphan {
            kind, target_id, ..
        } = f
        else {
            continue;
        };
        match store.link_by_target(name, *kind, target_id) {
            Ok(Some(l)) if l.state != LinkState::Deleted => {
                out.orphans_linked += 1;
                continue;
            }
            Ok(_) => {}
            Err(e) => return Err(store_err(e)),
        }
        to_delete.push(f);
    }
    let mut delete_hold = hold.clone();
    if policy.orphans == Orphans::Delete
        && delete_hold.is_none()
        && crate::reconcile::guard_trips(to_delete.len(), cycle.settings.deletion_threshold)
    {
        delete_hold = Some(format!(
            "{} orphans are more than the connection's deletion_threshold of {}; none was \
             deleted (delete them in the target, or raise the threshold for one run)",
            to_delete.len(),
            cycle.settings.deletion_threshold.unwrap_or(0)
        ));
    }
    for f in to_delete {
        let Finding::Orphan {
            kind, target_id, ..
        } = f
        else {
            continue;
        };
        if policy.orphans == Orphans::Report || delete_hold.is_some() {
            let mut r = record(*kind, LogAction::Drift, LogStatus::Warning);
            r.target_id = Some(target_id.clone());
            let why = match &delete_hold {
                Some(h) if policy.orphans == Orphans::Delete => format!("; not deleted: {h}"),
                _ => "; left in the target (orphans = \"report\")".into(),
            };
            r.steps
                .push(step(LogStatus::Warning, format!("{}{why}", f.describe())));
            write(&r);
            out.orphans_reported += 1;
            continue;
        }
        let t = Instant::now();
        let result = cycle.connection.delete(*kind, target_id).await;
        let mut r = record(*kind, LogAction::Delete, LogStatus::Success);
        r.target_id = Some(target_id.clone());
        r.steps.push(step(
            LogStatus::Success,
            format!("{}; orphans = \"delete\"", f.describe()),
        ));
        match result {
            Ok(())
            | Err(crate::runtime::CallError::Connector(crate::model::ConnectorError::NotFound(
                _,
            ))) => {
                r.steps.push(Step {
                    step: StepKind::Export,
                    status: LogStatus::Success,
                    detail: "deleted the orphan from the target".into(),
                });
                out.orphans_deleted += 1;
            }
            Err(e) => {
                failed(&mut r, "the delete", &e);
                out.failures += 1;
            }
        }
        r.duration_ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
        write(&r);
    }

    // Members that are no user of this connection.
    for f in &findings {
        let Finding::Members {
            group,
            target_id,
            unmanaged,
            ..
        } = f
        else {
            continue;
        };
        if unmanaged.is_empty() {
            continue;
        }
        // Still nobody's link after the cycle (an orphan user deleted above
        // is removed too: not every target drops a deleted user's memberships).
        let still: Vec<String> = unmanaged
            .iter()
            .filter(|tid| {
                !matches!(store.link_by_target(name, ObjectKind::User, tid),
                    Ok(Some(l)) if l.state != LinkState::Deleted)
            })
            .cloned()
            .collect();
        if still.is_empty() {
            continue;
        }
        let detail = format!(
            "{} member(s) that are no user of this connection were added in the target \
             (target ids {})",
            still.len(),
            still.join(", ")
        );
        if policy.orphans == Orphans::Report || hold.is_some() {
            let mut r = record(ObjectKind::Group, LogAction::Drift, LogStatus::Warning);
            r.source_id = Some(group.clone());
            r.target_id = Some(target_id.clone());
            let why = match &hold {
                Some(h) if policy.orphans == Orphans::Delete => format!("; not removed: {h}"),
                _ => "; left in the group (orphans = \"report\")".into(),
            };
            r.steps
                .push(step(LogStatus::Warning, format!("{detail}{why}")));
            write(&r);
            continue;
        }
        let t = Instant::now();
        let result = cycle.connection.remove_members(target_id, &still).await;
        let mut r = record(ObjectKind::Group, LogAction::Update, LogStatus::Success);
        r.source_id = Some(group.clone());
        r.target_id = Some(target_id.clone());
        r.steps.push(step(
            LogStatus::Success,
            format!("{detail}; orphans = \"delete\""),
        ));
        match result {
            Ok(()) => {
                r.steps.push(Step {
                    step: StepKind::Export,
                    status: LogStatus::Success,
                    detail: format!("removed {} member(s)", still.len()),
                });
                out.unmanaged_members_removed += still.len();
            }
            Err(e) => {
                failed(&mut r, "removing the members", &e);
                out.failures += 1;
            }
        }
        r.duration_ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
        write(&r);
    }
    tracing::debug!(
        connection = name,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "reconcile: orphans and members handled"
    );
    out.held_reason = if policy.orphans == Orphans::Delete {
        delete_hold
    } else {
        hold
    };
    out.cycle = Some(s);
    Ok(out)
}

/// Mark a record failed by a target write (`what` failed: the redacted
/// error), with its error code and reason.
fn failed(r: &mut LogRecord, what: &str, e: &crate::runtime::CallError) {
    let reason = crate::capabilities::secrets::redact(&e.to_string());
    r.status = LogStatus::Failure;
    r.steps.push(Step {
        step: StepKind::Export,
        status: LogStatus::Failure,
        detail: format!("{what} failed: {reason}"),
    });
    r.error_code = Some(e.code().into());
    r.error_reason = Some(reason);
}

fn step(status: LogStatus, detail: String) -> Step {
    Step {
        step: StepKind::Drift,
        status,
        detail: crate::capabilities::secrets::redact(&detail),
    }
}
