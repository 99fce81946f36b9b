//! One provisioning cycle of one connection:
//!
//! ```text
//! source -> scope -> map -> reconcile -> execute -> record
//! ```
//!
//! [`Cycle::plan`] reads the source, evaluates scope, maps every object and
//! decides its action against the store (no target call: this is the dry run).
//! [`Cycle::run`] then resumes anything a crash left in flight, applies the
//! accidental-deletion guard, and executes in phases — creates, updates and
//! enables; reference resolution; group memberships in batches; disables and
//! deletes last — writing one provisioning-log record per object.
//!
//! A malformed source record never deprovisions anything: planning turns the
//! disables, deletes and membership removals that the read's skipped records
//! could affect ([`crate::source::Holds`]) into [`Action::Held`] entries and
//! [`MembershipPlan::held`] members. They are not failures and not counted by
//! the deletion guard; the provisioning log and the [`CycleSummary`] show them
//! (`held`, `held_reason`: `held: the source had N malformed records:
//! <file>:<line> ...`, and every issue with its file, record and line), and a
//! later cycle performs them once the source is fixed.
//!
//! The configuration is loaded without reading the source, so the check that
//! mappings read attributes the source has is made here, at the start of each
//! cycle and dry run ([`Cycle::warn_unknown_attributes`]).

use crate::execute::{Executor, Outcome};
use crate::mapping::expr::MapContext;
use crate::mapping::{MappingSet, UnknownAttribute};
use crate::model::{Attribute, ObjectKind, Value};
use crate::reconcile::{self, Action, Desired, Lifecycle, Linked, Policy, SourceState};
use crate::runtime::Connection;
use crate::scope::{self, ScopeConfig};
use crate::source::{Deletion, Source, SourceIssue, SourceRead};
use crate::store::{CycleStatus, CycleType, LinkState, LogAction, LogStatus, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Per-connection sync settings.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Scope.
    pub scope: ScopeConfig,
    /// User mappings.
    pub users: MappingSet,
    /// Group mappings.
    pub groups: MappingSet,
    /// Disables + deletes above this many per cycle are staged.
    pub deletion_threshold: Option<usize>,
    /// Do not disable objects that merely left scope.
    pub skip_out_of_scope_deletions: bool,
    /// Concurrent connector calls.
    pub concurrency: usize,
    /// Members per add/remove batch.
    pub membership_batch: usize,
    /// The longest wait in escrow (`escrow_max_interval_seconds`).
    pub escrow_max_interval: std::time::Duration,
}

/// Rounds of the end-of-cycle retry of objects that failed with a fault of
/// the moment (see `run_inner`, phase 5).
pub const RETRY_ROUNDS: usize = 3;

/// One object's plan entry.
#[derive(Debug, Clone)]
pub struct Planned {
    /// What the source wants.
    pub desired: Desired,
    /// What the store remembers.
    pub link: Option<Linked>,
    /// The decision.
    pub action: Action,
    /// Targets whose values must be redacted in logs.
    pub redacted: BTreeSet<String>,
    /// Mapping errors (the object is then skipped).
    pub errors: Vec<String>,
}

/// Planned membership changes of one group (source ids).
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipPlan {
    /// Group source id.
    pub group: String,
    /// Members to add.
    pub add: Vec<String>,
    /// Members to remove.
    pub remove: Vec<String>,
    /// Members whose removal is held this cycle because the source had
    /// malformed records (see [`crate::source::Holds`]).
    pub held: Vec<String>,
    /// Why removals are held (empty when none are).
    pub held_reason: String,
}

/// The plan of a cycle.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Per object.
    pub objects: Vec<Planned>,
    /// Memberships (computed against current links; members about to be
    /// created are included).
    pub memberships: Vec<MembershipPlan>,
    /// Source records that could not be read.
    pub issues: Vec<SourceIssue>,
    /// Whether the deletion guard trips.
    pub guard_tripped: bool,
    /// Disables, deletes and membership removals held back because the
    /// source had malformed records.
    pub held: usize,
    /// Why they are held (`held: the source had N malformed records: ...`).
    pub held_reason: Option<String>,
}

impl Plan {
    /// Counts by action name (objects), plus membership counts.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut c = BTreeMap::new();
        for p in &self.objects {
            *c.entry(format!("{} {}", p.desired.kind, p.action.name()))
                .or_insert(0) += 1;
        }
        for m in &self.memberships {
            *c.entry("members add".to_string()).or_insert(0) += m.add.len();
            *c.entry("members remove".to_string()).or_insert(0) += m.remove.len();
            *c.entry("members remove held".to_string()).or_insert(0) += m.held.len();
        }
        c.retain(|_, v| *v > 0);
        c
    }

    /// JSON for `--dry-run --json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "objects": self.objects.iter().filter(|p| p.action.name() != "none").map(|p| {
                serde_json::json!({
                    "kind": p.desired.kind,
                    "source_id": p.desired.source_id,
                    "display": p.desired.display,
                    "action": p.action.name(),
                    "target_id": p.link.as_ref().map(|l| l.target_id.clone()),
                    "detail": detail(p),
                })
            }).collect::<Vec<_>>(),
            "memberships": self.memberships.iter().map(|m| serde_json::json!({"group": m.group, "add": m.add, "remove": m.remove, "held": m.held})).collect::<Vec<_>>(),
            "unchanged": self.objects.iter().filter(|p| p.action.name() == "none").count(),
            "issues": self.issues.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            "deletion_guard_tripped": self.guard_tripped,
            "held": self.held,
            "held_reason": self.held_reason,
            "counts": self.counts(),
        })
    }
}

/// A human-readable detail of a planned action.
pub fn detail(p: &Planned) -> String {
    let show = |name: &str, v: &serde_json::Value| {
        if p.redacted.contains(name) {
            "[REDACTED]".to_string()
        } else {
            v.to_string()
        }
    };
    match &p.action {
        Action::Create { attributes } => {
            let matching = p
                .desired
                .matching
                .iter()
                .map(|m| format!("{}={}", m.name, show(&m.name, &m.value.to_json())))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "{} attributes; match first by {}",
                attributes.len(),
                if matching.is_empty() {
                    "nothing".into()
                } else {
                    matching
                }
            )
        }
        Action::Update { changes, .. } | Action::Enable { changes, .. } => changes
            .iter()
            .map(|c| {
                format!(
                    "{}: {} -> {}",
                    c.name,
                    c.old
                        .as_ref()
                        .map(|o| show(&c.name, o))
                        .unwrap_or_else(|| "(none)".into()),
                    show(&c.name, &c.new)
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Action::Disable { reason }
        | Action::Delete { reason }
        | Action::Held { reason, .. }
        | Action::Skip { reason }
        | Action::None { reason } => reason.clone(),
        Action::Refresh { .. } => "create-only attributes changed; nothing to send".into(),
    }
}

/// Errors that stop a cycle before it starts (per-object failures never do).
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    /// The source could not be read at all.
    #[error("source: {0}")]
    Source(String),
    /// The store failed.
    #[error("state store: {0}")]
    Store(String),
    /// The scope configuration is invalid.
    #[error("scope: {0}; fix the connection's [scope] table")]
    Scope(String),
    /// Another process holds the connection's lease.
    #[error("{0}")]
    Busy(String),
    /// The target could not be read (reconcile only).
    #[error("target: {0}")]
    Target(String),
}

/// What drift reconciliation found, for the records of the cycle that
/// repairs it (see [`crate::drift`]): a `drift` step opens the record of
/// each object (and of each group's membership change) named here.
#[derive(Debug, Clone, Default)]
pub struct DriftNotes {
    /// By object.
    pub objects: BTreeMap<(ObjectKind, String), String>,
    /// By group source id, for its membership record.
    pub members: BTreeMap<String, String>,
}

/// A cycle of one connection.
pub struct Cycle<'a> {
    /// Connection (sandboxed connector).
    pub connection: &'a Connection,
    /// State.
    pub store: &'a Store,
    /// Source.
    pub source: &'a dyn Source,
    /// Settings.
    pub settings: &'a SyncSettings,
}

fn state_of(d: Deletion) -> SourceState {
    match d {
        Deletion::None => SourceState::Present,
        Deletion::Soft => SourceState::SoftDeleted,
        Deletion::Hard => SourceState::HardDeleted,
    }
}

fn linked(l: &crate::store::Link) -> Linked {
    Linked {
        target_id: l.target_id.clone(),
        fingerprint: l.fingerprint.clone(),
        exported: l.exported.clone(),
        state: match l.state {
            LinkState::Active => Lifecycle::Active,
            LinkState::Disabled => Lifecycle::Disabled,
            LinkState::Deleted => Lifecycle::Deleted,
        },
    }
}

/// `active` from an expression arrives as the text "True"/"False": send a boolean.
fn normalise(mut attrs: Vec<Attribute>) -> Vec<Attribute> {
    for a in &mut attrs {
        if a.name == reconcile::ACTIVE
            && let Value::Text(t) = &a.value
        {
            match t.to_ascii_lowercase().as_str() {
                "true" => a.value = Value::Boolean(true),
                "false" => a.value = Value::Boolean(false),
                _ => {}
            }
        }
    }
    attrs
}

/// Whether a mapped attribute holds a reference to another user (resolved to
/// the target id at export).
pub fn is_reference(target: &str) -> bool {
    target.to_ascii_lowercase().ends_with("manager")
}

impl Cycle<'_> {
    /// The connection's name.
    pub fn name(&self) -> &str {
        self.connection.name()
    }

    /// The reconcile policy for one kind. Groups have no enabled state, so
    /// they are never disabled: leaving scope deletes them.
    fn policy(&self, kind: ObjectKind) -> Policy {
        use crate::model::Capability;
        let caps = &self.connection.plugin().manifest.capabilities;
        Policy {
            skip_out_of_scope_deletions: self.settings.skip_out_of_scope_deletions,
            can_disable: kind == ObjectKind::User && caps.contains(&Capability::Disable),
            can_delete: caps.contains(&Capability::Delete),
        }
    }

    /// Read the source (once per cycle: every plan of the cycle uses this read).
    pub fn read_source(&self) -> Result<SourceRead, CycleError> {
        self.source
            .read()
            .map_err(|e| CycleError::Source(e.to_string()))
    }

    /// Import, scope, map and reconcile: the plan, without any target call.
    pub fn plan(&self) -> Result<Plan, CycleError> {
        let read = self.read_source()?;
        self.warn_unknown_attributes(&read);
        self.plan_from(&read)
    }

    /// Warn about mappings that read a source attribute no record of this
    /// read has (a typo such as `[jobTitel]` maps to nothing, silently):
    /// `tracing::warn!` naming the connection, the mapping target and the
    /// attribute, with the closest existing name within edit distance 2.
    /// Done at the start of each cycle (and dry run) because loading the
    /// configuration does not read the source; each finding is warned once
    /// per process. Returns the findings (user mappings, then group ones).
    pub fn warn_unknown_attributes(&self, read: &SourceRead) -> Vec<UnknownAttribute> {
        static WARNED: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());
        let dir = &read.directory;
        let mut found = Vec::new();
        for (kind, set, mut known) in [
            (
                ObjectKind::User,
                &self.settings.users,
                dir.users
                    .values()
                    .flat_map(|u| u.attributes.keys().cloned())
                    .collect::<BTreeSet<String>>(),
            ),
            (
                ObjectKind::Group,
                &self.settings.groups,
                dir.groups
                    .values()
                    .flat_map(|g| g.attributes.keys().cloned())
                    .collect::<BTreeSet<String>>(),
            ),
        ] {
            if known.is_empty() {
                continue; // no record to compare with
            }
            // Derived per cycle (see `plan_from`).
            known.extend(
                ["objectId", "IsSoftDeleted", "appRoleAssignments"]
                    .into_iter()
                    .map(String::from),
            );
            for u in set.unknown_attributes(&known) {
                let key = format!("{}\0{kind}\0{}\0{}", self.name(), u.target, u.attribute);
                let first = WARNED.lock().map(|mut w| w.insert(key)).unwrap_or(true);
                if first {
                    tracing::warn!(
                        connection = self.name(),
                        kind = %kind,
                        target = %u.target,
                        attribute = %u.attribute,
                        suggestion = u.suggestion.as_deref().unwrap_or(""),
                        "connection '{}': {u}",
                        self.name()
                    );
                }
                found.push(u);
            }
        }
        found
    }

    /// Scope, map and reconcile one read of the source against the store as
    /// it is now.
    pub fn plan_from(&self, read: &SourceRead) -> Result<Plan, CycleError> {
        let dir = &read.directory;
        let scope = scope::evaluate(dir, self.name(), &self.settings.scope);
        if let Some(e) = &scope.config_error {
            return Err(CycleError::Scope(e.clone()));
        }
        // Records skipped as malformed are unknown this cycle, not deleted:
        // whatever they could affect is held (see `source::Holds`).
        let holds = read.holds();
        let reason = || holds.reason();
        let hold = |kind: ObjectKind, id: &str, action: Action| -> Action {
            let held = match kind {
                ObjectKind::User => holds.holds_user(id),
                ObjectKind::Group => holds.holds_group(id),
            };
            if held { action.held(reason) } else { action }
        };
        let store_err = |e: crate::store::StoreError| CycleError::Store(e.to_string());
        let user_links: BTreeMap<String, crate::store::Link> = self
            .store
            .links(self.name(), ObjectKind::User)
            .map_err(store_err)?
            .into_iter()
            .map(|l| (l.source_id.clone(), l))
            .collect();
        let group_links: BTreeMap<String, crate::store::Link> = self
            .store
            .links(self.name(), ObjectKind::Group)
            .map_err(store_err)?
            .into_iter()
            .map(|l| (l.source_id.clone(), l))
            .collect();
        let mut plan = Plan {
            issues: read.issues.clone(),
            ..Plan::default()
        };

        for u in dir.users.values() {
            let decision = scope.users.get(&u.id);
            let mut attrs = u.attributes.clone();
            let in_scope = decision.is_some_and(|d| d.in_scope);
            let enabled = !matches!(attrs.get("accountEnabled"), Some(Value::Boolean(false)));
            let soft = u.deleted != Deletion::None || !enabled || !in_scope;
            attrs.insert("IsSoftDeleted".into(), Value::Boolean(soft));
            attrs.insert(
                "appRoleAssignments".into(),
                Value::TextList(decision.map(|d| d.app_roles.clone()).unwrap_or_default()),
            );
            let link = user_links.get(&u.id);
            let entry = self.plan_object(
                ObjectKind::User,
                &u.id,
                display(&u.attributes, &["userPrincipalName", "displayName"], &u.id),
                attrs,
                &self.settings.users,
                in_scope,
                decision.map(|d| d.reason.clone()).unwrap_or_default(),
                state_of(u.deleted),
                enabled,
                link,
                &user_links,
                self.policy(ObjectKind::User),
            );
            plan.objects.push(Planned {
                action: hold(ObjectKind::User, &u.id, entry.action.clone()),
                ..entry
            });
        }
        // A connector without the groups capability (e.g. RFPIO) gets no
        // group objects and no memberships; its users still come through
        // group assignments.
        let groups_supported = self
            .connection
            .plugin()
            .manifest
            .capabilities
            .contains(&crate::model::Capability::Groups);
        for g in dir.groups.values().filter(|_| groups_supported) {
            let decision = scope.groups.get(&g.id);
            let in_scope = decision.is_some_and(|d| d.in_scope);
            let link = group_links.get(&g.id);
            let entry = self.plan_object(
                ObjectKind::Group,
                &g.id,
                display(&g.attributes, &["displayName"], &g.id),
                g.attributes.clone(),
                &self.settings.groups,
                in_scope,
                decision.map(|d| d.reason.clone()).unwrap_or_default(),
                state_of(g.deleted),
                true,
                link,
                &user_links,
                self.policy(ObjectKind::Group),
            );
            plan.objects.push(Planned {
                action: hold(ObjectKind::Group, &g.id, entry.action.clone()),
                ..entry
            });
        }
        // Linked objects that vanished from the source are hard-deleted.
        for (kind, links, present) in [
            (
                ObjectKind::User,
                &user_links,
                dir.users.keys().cloned().collect::<BTreeSet<_>>(),
            ),
            (
                ObjectKind::Group,
                &group_links,
                dir.groups.keys().cloned().collect::<BTreeSet<_>>(),
            ),
        ] {
            for (sid, l) in links {
                if present.contains(sid) || l.state == LinkState::Deleted {
                    continue;
                }
                let desired = Desired {
                    kind,
                    source_id: sid.clone(),
                    display: sid.clone(),
                    in_scope: false,
                    scope_reason: "no longer in the source".into(),
                    state: SourceState::HardDeleted,
                    enabled: false,
                    create: vec![],
                    update: vec![],
                    matching: vec![],
                };
                let link = linked(l);
                let action = hold(
                    kind,
                    sid,
                    reconcile::decide(&desired, Some(&link), self.policy(kind)),
                );
                plan.objects.push(Planned {
                    desired,
                    link: Some(link),
                    action,
                    redacted: BTreeSet::new(),
                    errors: vec![],
                });
            }
        }

        // Memberships: groups that stay in the target; members that are users
        // in scope and linked (or about to be created).
        let active_users: BTreeSet<&str> = plan
            .objects
            .iter()
            .filter(|p| p.desired.kind == ObjectKind::User)
            .filter(|p| {
                matches!(
                    p.action,
                    Action::Create { .. }
                        | Action::Update { .. }
                        | Action::Enable { .. }
                        | Action::None { .. }
                        | Action::Refresh { .. }
                )
            })
            .filter(|p| {
                p.desired.in_scope && p.desired.enabled && p.desired.state == SourceState::Present
            })
            .filter(|p| p.link.is_some() || matches!(p.action, Action::Create { .. }))
            .map(|p| p.desired.source_id.as_str())
            .collect();
        // Each group's plan entry, by source id (one pass, not one search per group).
        let group_plans: BTreeMap<&str, &Planned> = plan
            .objects
            .iter()
            .filter(|p| p.desired.kind == ObjectKind::Group)
            .map(|p| (p.desired.source_id.as_str(), p))
            .collect();
        for g in dir.groups.values().filter(|_| groups_supported) {
            let Some(p) = group_plans.get(g.id.as_str()).copied() else {
                continue;
            };
            let keeps = matches!(
                p.action,
                Action::Create { .. }
                    | Action::Update { .. }
                    | Action::Enable { .. }
                    | Action::None { .. }
                    | Action::Refresh { .. }
            ) && p.desired.in_scope
                && (p.link.is_some() || matches!(p.action, Action::Create { .. }));
            if !keeps {
                continue;
            }
            let desired: BTreeSet<String> = g
                .members
                .iter()
                .filter(|m| active_users.contains(m.as_str()))
                .cloned()
                .collect();
            let current = self.store.members(self.name(), &g.id).map_err(store_err)?;
            let (add, remove) = reconcile::membership_diff(&desired, &current);
            let (held, remove): (Vec<String>, Vec<String>) = remove
                .into_iter()
                .partition(|m| holds.holds_removal(&g.id, m, active_users.contains(m.as_str())));
            if !add.is_empty() || !remove.is_empty() || !held.is_empty() {
                plan.memberships.push(MembershipPlan {
                    group: g.id.clone(),
                    add,
                    remove,
                    held_reason: if held.is_empty() {
                        String::new()
                    } else {
                        holds.reason()
                    },
                    held,
                });
            }
        }
        plan.held = plan
            .objects
            .iter()
            .filter(|p| matches!(p.action, Action::Held { .. }))
            .count()
            + plan.memberships.iter().map(|m| m.held.len()).sum::<usize>();
        if plan.held > 0 {
            plan.held_reason = Some(holds.reason());
        }

        let deprovisions = plan
            .objects
            .iter()
            .filter(|p| p.action.is_deprovision())
            .count();
        plan.guard_tripped = reconcile::guard_trips(deprovisions, self.settings.deletion_threshold);
        Ok(plan)
    }

    #[allow(clippy::too_many_arguments)]
    fn plan_object(
        &self,
        kind: ObjectKind,
        id: &str,
        display: String,
        attrs: BTreeMap<String, Value>,
        mappings: &MappingSet,
        in_scope: bool,
        scope_reason: String,
        state: SourceState,
        enabled: bool,
        link: Option<&crate::store::Link>,
        user_links: &BTreeMap<String, crate::store::Link>,
        policy: Policy,
    ) -> Planned {
        let mut ctx = MapContext::new();
        for (k, v) in attrs {
            ctx.insert(&k, v);
        }
        let mut errors = Vec::new();
        let mut redacted = BTreeSet::new();
        let mut map = |on_create: bool| -> Vec<Attribute> {
            match mappings.apply(&ctx, on_create) {
                Ok(m) => {
                    redacted.extend(m.redacted.iter().cloned());
                    m.attributes
                }
                Err(errs) => {
                    errors.extend(errs.iter().map(|e| e.to_string()));
                    Vec::new()
                }
            }
        };
        let resolve = |attrs: Vec<Attribute>| -> Vec<Attribute> {
            normalise(attrs)
                .into_iter()
                .filter_map(|a| {
                    if !is_reference(&a.name) {
                        return Some(a);
                    }
                    let Value::Text(sid) = &a.value else {
                        return Some(a);
                    };
                    user_links
                        .get(sid)
                        .filter(|l| l.state != LinkState::Deleted)
                        .map(|l| Attribute {
                            name: a.name.clone(),
                            value: Value::Text(l.target_id.clone()),
                        })
                })
                .collect()
        };
        let create = resolve(map(true));
        let update = resolve(map(false));
        let matching = mappings
            .matching()
            .iter()
            .filter_map(|m| create.iter().find(|a| a.name == m.target).cloned())
            .collect();
        let desired = Desired {
            kind,
            source_id: id.to_string(),
            display,
            in_scope,
            scope_reason,
            state,
            enabled,
            create,
            update,
            matching,
        };
        let link = link.map(linked);
        let action = if errors.is_empty() {
            reconcile::decide(&desired, link.as_ref(), policy)
        } else {
            Action::Skip {
                reason: format!("mapping failed: {}", errors.join("; ")),
            }
        };
        Planned {
            desired,
            link,
            action,
            redacted,
            errors,
        }
    }

    /// Run a full cycle: resume, plan, guard, execute, record.
    pub async fn run(&self) -> Result<CycleSummary, CycleError> {
        self.run_with_progress(&crate::progress::Progress::new())
            .await
    }

    /// [`Cycle::run`], reporting live progress into `progress` (the admin
    /// API and the progress bar read it while the cycle runs).
    pub async fn run_with_progress(
        &self,
        progress: &crate::progress::Progress,
    ) -> Result<CycleSummary, CycleError> {
        // One writer per connection: the cycle holds the connection's lease
        // from before it resumes intents until its last write.
        let r = crate::lease::hold(self.store, self.name(), |lease| {
            self.run_inner(progress, lease, DriftNotes::default(), None)
        })
        .await
        .unwrap_or_else(|e| match e {
            crate::store::LeaseError::Store(e) => Err(CycleError::Store(e.to_string())),
            other => Err(CycleError::Busy(other.to_string())),
        });
        progress.finish();
        r
    }

    /// One round of the end-of-cycle retry: the objects in `retry`, planned
    /// again against the links as they are now (users first), then the
    /// memberships still missing (of users created only now, or whose batch
    /// failed).
    async fn retry_round(
        &self,
        exec: &Executor<'_>,
        read: &SourceRead,
        retry: &BTreeSet<(ObjectKind, String)>,
        waiting: &BTreeMap<(ObjectKind, String), crate::store::EscrowEntry>,
        progress: &crate::progress::Progress,
    ) -> Result<Vec<Outcome>, CycleError> {
        let replan = self.plan_from(read)?;
        let key = |p: &Planned| (p.desired.kind, p.desired.source_id.clone());
        let (users, rest): (Vec<&Planned>, Vec<&Planned>) = replan
            .objects
            .iter()
            .filter(|p| p.action.calls_target() && retry.contains(&key(p)))
            .filter(|p| !waiting.contains_key(&key(p)))
            .partition(|p| p.desired.kind == ObjectKind::User && !p.action.is_deprovision());
        progress.add_total((users.len() + rest.len()) as u64);
        let mut retried = exec.run_objects(users).await;
        retried.extend(exec.run_objects(rest).await);
        let members: Vec<MembershipPlan> = self
            .plan_from(read)?
            .memberships
            .into_iter()
            .filter(|m| !m.add.is_empty() || !m.remove.is_empty())
            .collect();
        progress.add_total(members.len() as u64);
        retried.extend(
            exec.run_memberships(&members, self.settings.membership_batch)
                .await,
        );
        Ok(retried)
    }

    /// The cycle after drift reconciliation corrected the store (see
    /// [`crate::drift`]), under the lease the reconcile holds: a
    /// [`CycleType::Reconcile`] cycle whose records carry `notes`.
    pub async fn run_after_reconcile(
        &self,
        progress: &crate::progress::Progress,
        lease: crate::store::Lease,
        notes: DriftNotes,
    ) -> Result<CycleSummary, CycleError> {
        self.run_inner(progress, lease, notes, Some(CycleType::Reconcile))
            .await
    }

    /// Whether the connector manages groups (and so has group objects and
    /// memberships).
    pub fn groups_supported(&self) -> bool {
        self.connection
            .plugin()
            .manifest
            .capabilities
            .contains(&crate::model::Capability::Groups)
    }

    /// Whether `active` belongs to the lifecycle for users (the connector
    /// can disable them).
    pub fn can_disable_users(&self) -> bool {
        self.policy(ObjectKind::User).can_disable
    }

    async fn run_inner(
        &self,
        progress: &crate::progress::Progress,
        lease: crate::store::Lease,
        notes: DriftNotes,
        forced_type: Option<CycleType>,
    ) -> Result<CycleSummary, CycleError> {
        let started = Instant::now();
        let store_err = |e: crate::store::StoreError| CycleError::Store(e.to_string());
        let cycle_type = if let Some(t) = forced_type {
            t
        } else if self
            .store
            .watermark(self.name())
            .map_err(store_err)?
            .is_some()
        {
            CycleType::Incremental
        } else {
            CycleType::Initial
        };
        self.store
            .mark_running_cycles_interrupted(self.name())
            .map_err(store_err)?;
        let cycle_id = self
            .store
            .start_cycle(self.name(), cycle_type)
            .map_err(store_err)?;
        let exec = Executor::new(
            self.connection,
            self.store,
            &cycle_id,
            self.settings.concurrency,
        )
        .with_progress(progress)
        .with_lease(lease)
        .with_escrow_max_interval(self.settings.escrow_max_interval)
        .with_drift(notes.objects, notes.members);
        progress.start(cycle_type.as_str());
        exec.resume_intents().await;
        let read = self.read_source()?;
        self.warn_unknown_attributes(&read);
        let plan = self.plan_from(&read)?;
        progress.add_total(
            plan.objects
                .iter()
                .filter(|p| p.action.calls_target())
                .count() as u64,
        );
        let mut outcomes: Vec<Outcome> = Vec::new();
        for issue in &plan.issues {
            exec.log_source_issue(issue);
        }
        if let Some(reason) = &plan.held_reason {
            tracing::warn!(
                connection = self.name(),
                held = plan.held,
                "{} deprovisioning action(s) and membership removal(s) {reason}",
                plan.held
            );
        }
        exec.clear_settled(
            plan.objects
                .iter()
                .filter(|p| matches!(p.action, Action::None { .. } | Action::Refresh { .. }))
                .map(|p| (p.desired.kind, p.desired.source_id.clone())),
        );
        let allowed = exec.allowed_staged();
        // Escrow: objects whose next attempt is not due wait (logged as skipped).
        let waiting = exec.escrowed_not_due();
        let (deferred, objects): (Vec<&Planned>, Vec<&Planned>) =
            plan.objects.iter().partition(|p| {
                p.action.calls_target()
                    && waiting.contains_key(&(p.desired.kind, p.desired.source_id.clone()))
            });
        let waiting_count = deferred.len();
        for p in deferred {
            if let Some(e) = waiting.get(&(p.desired.kind, p.desired.source_id.clone())) {
                let o = exec.defer(p, e);
                exec.finished(&o);
                outcomes.push(o);
            }
        }
        let (deprovision, rest): (Vec<&Planned>, Vec<&Planned>) =
            objects.into_iter().partition(|p| p.action.is_deprovision());
        // Phase 1: users, then groups, that stay.
        // Whether phase 1 can change a link that planning reads (target id,
        // exported attributes, state). `Refresh` only rewrites a fingerprint,
        // which neither reference resolution nor memberships look at.
        let links_change = rest.iter().any(|p| {
            !matches!(
                p.action,
                Action::None { .. } | Action::Skip { .. } | Action::Refresh { .. }
            )
        });
        let (users, groups): (Vec<&Planned>, Vec<&Planned>) = rest
            .into_iter()
            .partition(|p| p.desired.kind == ObjectKind::User);
        progress.phase("users");
        outcomes.extend(exec.run_objects(users).await);
        progress.phase("groups");
        outcomes.extend(exec.run_objects(groups).await);
        // Phase 2: reference resolution (managers created in this cycle).
        // Against the links as they are now, from the same read of the source;
        // when phase 1 changed no link, the first plan is that plan already.
        let replanned;
        let again = if links_change {
            replanned = self.plan_from(&read)?;
            &replanned
        } else {
            &plan
        };
        let refs: Vec<&Planned> = again
            .objects
            .iter()
            .filter(|p| {
                p.desired.kind == ObjectKind::User && matches!(p.action, Action::Update { .. })
            })
            .filter(|p| match &p.action {
                Action::Update { changes, .. } => changes.iter().all(|c| is_reference(&c.name)),
                _ => false,
            })
            .collect();
        progress.phase("references");
        progress.add_total(refs.len() as u64);
        outcomes.extend(exec.run_objects(refs).await);
        // Phase 3: memberships, against the links as they are now.
        progress.phase("memberships");
        progress.add_total(again.memberships.len() as u64);
        outcomes.extend(
            exec.run_memberships(&again.memberships, self.settings.membership_batch)
                .await,
        );
        // Phase 4: deprovisioning, behind the guard.
        let guarded: Vec<&Planned> = deprovision
            .iter()
            .filter(|p| !allowed.contains(&(p.desired.kind, p.desired.source_id.clone())))
            .copied()
            .collect();
        let pre_allowed: Vec<&Planned> = deprovision
            .iter()
            .filter(|p| allowed.contains(&(p.desired.kind, p.desired.source_id.clone())))
            .copied()
            .collect();
        progress.phase("deprovisioning");
        outcomes.extend(exec.run_objects(pre_allowed).await);
        // With the credentials rejected nothing is staged either: the
        // objects are left untouched (and counted as untried).
        if exec.credentials_rejected().is_none()
            && reconcile::guard_trips(guarded.len(), self.settings.deletion_threshold)
        {
            let staged = exec.stage(guarded, self.settings.deletion_threshold.unwrap_or(0));
            for o in &staged {
                exec.finished(o);
            }
            outcomes.extend(staged);
        } else {
            outcomes.extend(exec.run_objects(guarded).await);
        }

        // Phase 5: more attempts, at the end of the cycle, for the objects
        // that failed with a fault of the moment (their first attempts are
        // seconds to minutes behind them now): up to `RETRY_ROUNDS` rounds,
        // while a round still fixes something. Their outcomes replace the
        // failed ones.
        let mut left = usize::MAX;
        for round in 1..=RETRY_ROUNDS {
            let retry = exec.retryable_failures();
            if retry.is_empty() || retry.len() >= left || exec.credentials_rejected().is_some() {
                break;
            }
            left = retry.len();
            progress.phase("retry");
            tracing::info!(
                connection = self.name(),
                round,
                objects = retry.len(),
                "retrying the objects that failed in this cycle"
            );
            let retried = self
                .retry_round(&exec, &read, &retry, &waiting, progress)
                .await?;
            let superseded: BTreeSet<(ObjectKind, String, bool)> = retried
                .iter()
                .map(|o| (o.kind, o.source_id.clone(), o.members))
                .collect();
            outcomes.retain(|o| {
                o.status != LogStatus::Failure
                    || !superseded.contains(&(o.kind, o.source_id.clone(), o.members))
            });
            outcomes.extend(retried);
        }

        let mut summary = CycleSummary::new(
            cycle_id.clone(),
            cycle_type,
            &outcomes,
            exec.target_calls(),
            started.elapsed(),
            &plan,
        );
        summary.waiting = waiting_count;
        summary.credentials_rejected = exec.credentials_rejected().map(str::to_string);
        summary.untried = exec.untried();
        let failed = summary.failures > 0 || summary.credentials_rejected.is_some();
        self.store
            .finish_cycle(
                &cycle_id,
                if failed {
                    CycleStatus::Failed
                } else {
                    CycleStatus::Succeeded
                },
                &serde_json::to_value(&summary).unwrap_or_default(),
            )
            .map_err(store_err)?;
        // A cycle the target stopped did not see the target: the next one
        // is of the same type.
        if summary.credentials_rejected.is_none() {
            self.store
                .set_watermark(self.name(), &cycle_id)
                .map_err(store_err)?;
        }
        Ok(summary)
    }
}

fn display(attrs: &BTreeMap<String, Value>, keys: &[&str], fallback: &str) -> String {
    keys.iter()
        .find_map(|k| match attrs.get(*k) {
            Some(Value::Text(t)) if !t.is_empty() => Some(t.clone()),
            _ => None,
        })
        .unwrap_or_else(|| fallback.to_string())
}

/// What a cycle did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CycleSummary {
    /// Cycle id.
    pub cycle_id: String,
    /// initial / incremental.
    pub cycle_type: String,
    /// Counts by "kind action status".
    pub counts: BTreeMap<String, usize>,
    /// Connector calls made.
    pub target_calls: u64,
    /// Failed objects.
    pub failures: usize,
    /// Staged deprovisions.
    pub staged: usize,
    /// Source records skipped as malformed, and references dropped.
    pub source_issues: usize,
    /// Objects not tried this cycle because they wait in escrow for their
    /// next retry (a cycle that skipped them has not succeeded).
    pub waiting: usize,
    /// Each source issue, with its file, record number and line.
    pub issues: Vec<String>,
    /// Disables, deletes and membership removals held back because the
    /// source had malformed records (not failures: they happen in a later
    /// cycle once the source is fixed).
    pub held: usize,
    /// Why they are held (`held: the source had N malformed records: ...`).
    pub held_reason: Option<String>,
    /// Set when the target answered 401: the cycle stopped at once (the
    /// target's message, redacted). The connection goes to quarantine.
    pub credentials_rejected: Option<String>,
    /// Objects and membership batches left untouched because the cycle
    /// stopped (not failures: they run once the credentials work).
    pub untried: u64,
    /// Seconds.
    pub duration_seconds: f64,
}

impl CycleSummary {
    fn new(
        cycle_id: String,
        cycle_type: CycleType,
        outcomes: &[Outcome],
        target_calls: u64,
        elapsed: std::time::Duration,
        plan: &Plan,
    ) -> Self {
        let mut counts = BTreeMap::new();
        let mut failures = 0;
        let mut staged = 0;
        for o in outcomes {
            *counts
                .entry(format!(
                    "{} {} {}",
                    o.kind,
                    o.action.as_str(),
                    o.status.as_str()
                ))
                .or_insert(0) += 1;
            if o.status == LogStatus::Failure {
                failures += 1;
            }
            if matches!(o.action, LogAction::StagedDisable | LogAction::StagedDelete) {
                staged += 1;
            }
        }
        CycleSummary {
            cycle_id,
            cycle_type: cycle_type.as_str().to_string(),
            counts,
            target_calls,
            failures,
            staged,
            waiting: 0,
            source_issues: plan.issues.len(),
            issues: plan.issues.iter().map(|i| i.to_string()).collect(),
            held: plan.held,
            held_reason: plan.held_reason.clone(),
            credentials_rejected: None,
            untried: 0,
            duration_seconds: elapsed.as_secs_f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_text_becomes_a_boolean() {
        let attrs = normalise(vec![
            Attribute {
                name: "active".into(),
                value: Value::Text("False".into()),
            },
            Attribute {
                name: "title".into(),
                value: Value::Text("False".into()),
            },
        ]);
        assert_eq!(attrs[0].value, Value::Boolean(false));
        assert_eq!(
            attrs[1].value,
            Value::Text("False".into()),
            "only `active` is converted"
        );
    }

    #[test]
    fn held_actions_are_neither_deprovisions_nor_target_calls() {
        let reason = || "held: the source had 1 malformed record: d.json:3 (users[1])".to_string();
        for (action, delete) in [
            (
                Action::Disable {
                    reason: "out of scope".into(),
                },
                false,
            ),
            (
                Action::Delete {
                    reason: "hard-deleted".into(),
                },
                true,
            ),
        ] {
            assert!(action.is_deprovision());
            let held = action.held(reason);
            assert_eq!(held.name(), "held");
            assert!(!held.is_deprovision() && !held.calls_target(), "{held:?}");
            assert!(matches!(held, Action::Held { delete: d, .. } if d == delete));
        }
        let create = Action::Create { attributes: vec![] }.held(reason);
        assert_eq!(create.name(), "create", "only deprovisioning is held");
    }

    #[test]
    fn manager_paths_are_references() {
        assert!(is_reference("manager"));
        assert!(is_reference(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"
        ));
        assert!(!is_reference("displayName"));
    }

    #[test]
    fn details_redact_what_the_mapping_redacts() {
        let desired = Desired {
            kind: ObjectKind::User,
            source_id: "u1".into(),
            display: "u1".into(),
            in_scope: true,
            scope_reason: String::new(),
            state: SourceState::Present,
            enabled: true,
            create: vec![],
            update: vec![],
            matching: vec![],
        };
        let p = Planned {
            desired,
            link: None,
            action: Action::Update {
                changes: vec![reconcile::Change {
                    name: "password".into(),
                    old: None,
                    new: serde_json::json!("hunter2!"),
                }],
                fingerprint: String::new(),
            },
            redacted: ["password".to_string()].into_iter().collect(),
            errors: vec![],
        };
        let d = detail(&p);
        assert!(d.contains("[REDACTED]") && !d.contains("hunter2"), "{d}");
    }
}
