//! Drift reconciliation: find where the target no longer holds what
//! Provisio exported, and turn each finding into a repair the ordinary
//! cycle carries out.
//!
//! Entra never looks at changes made directly in the target; midPoint's
//! reconciliation does. `provisio reconcile <connection>` (and `provisio run`
//! every `[connections.x.reconcile] interval_seconds`) works in four steps:
//!
//! 1. **Read the target** ([`read_target`]): every user and group through the
//!    connector's paged `list`, and each linked group's members through `get`.
//!    A read that fails, or does not end within [`MAX_PAGES`] pages, stops the
//!    reconcile before anything is compared: a partial read of the target
//!    must never look like objects deleted there.
//! 2. **Compare** ([`compare`], pure): each link (what the store remembers
//!    exporting) against the object the target holds. The findings are an
//!    object deleted in the target, managed attributes changed there, a user
//!    enabled or disabled there, members added or removed there, and target
//!    objects no link points at (orphans).
//! 3. **Correct the store's belief** ([`Correction`]): the store is rewritten
//!    to what the target really holds (the exported value of a changed
//!    attribute becomes the target's value, a deleted object's link becomes a
//!    tombstone, a group's recorded members become the target's). The
//!    ordinary cycle then runs and sees exactly the differences: it updates
//!    the attribute back (its log record shows the target's value as the old
//!    one), re-creates the deleted object (matching first, so a target that
//!    only hid the object from its listing gets it linked, not duplicated),
//!    re-enables or disables, adds the missing members and removes the extra
//!    ones. Every repair is that cycle's provisioning-log record, and carries
//!    a `drift` step saying what reconcile found.
//! 4. **Orphans** after the cycle: target objects that are still linked to
//!    nothing are reported (`drift` records), or deleted when the operator
//!    set `orphans = "delete"`. Members of a managed group that are not
//!    users of this connection are removed (the group is managed
//!    authoritatively, as Entra manages group membership).
//!
//! Nothing is deleted while the source had malformed records (the same rule
//! as the cycle's, see [`crate::source::Holds`]), and orphan deletes above the
//! connection's `deletion_threshold` are refused as a whole.
//!
//! Attribute comparison covers the attributes the connection's update
//! mappings manage, minus secrets (redacted mappings such as `password`,
//! which targets never return) and the names in `ignore`. Values compare as
//! [`crate::reconcile::same_value`] does for a match (a boolean as text, a
//! list in another order are the same value; case is a change).

use crate::model::{ObjectKind, TargetObject, Value};
use crate::reconcile::same_value;
use crate::runtime::{CallError, Connection};
use crate::store::{Link, LinkState};
use std::collections::{BTreeMap, BTreeSet};

/// Pages of [`PAGE_SIZE`] read at most per kind: 1,000,000 objects.
pub const MAX_PAGES: usize = 10_000;
/// The page size asked of the connector.
pub const PAGE_SIZE: u32 = 100;

/// What to do with a linked object found deleted in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeletedInTarget {
    /// Create it again (after matching, like any create).
    #[default]
    Recreate,
    /// Only report it.
    Report,
}

/// What to do with target objects no link points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Orphans {
    /// Report them (a `drift` record each).
    #[default]
    Report,
    /// Delete them from the target (never while the source had malformed
    /// records, never more than `deletion_threshold` at once).
    Delete,
}

/// A connection's `[connections.x.reconcile]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftPolicy {
    /// How often `provisio run` reconciles (`None`: only on demand).
    pub interval: Option<std::time::Duration>,
    /// Objects deleted in the target.
    pub deleted_in_target: DeletedInTarget,
    /// Unlinked target objects.
    pub orphans: Orphans,
    /// Attributes never compared (lower-cased), e.g. write-only ones.
    pub ignore: BTreeSet<String>,
}

impl Default for DriftPolicy {
    fn default() -> Self {
        DriftPolicy {
            interval: None,
            deleted_in_target: DeletedInTarget::Recreate,
            orphans: Orphans::Report,
            ignore: BTreeSet::new(),
        }
    }
}

/// Errors that stop a reconcile before anything is compared.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    /// The connector's list (or get) failed.
    #[error("reading the target's {what} failed: {source}; nothing was compared or repaired")]
    Read {
        /// What was being read.
        what: String,
        /// The failure.
        source: CallError,
    },
    /// The listing did not end.
    #[error(
        "the target's {kind} listing did not end after {pages} pages ({reason}); nothing was \
         compared or repaired"
    )]
    Unbounded {
        /// Users or groups.
        kind: ObjectKind,
        /// Pages read.
        pages: usize,
        /// Why it was stopped.
        reason: String,
    },
}

/// The target as read: objects by target id, and each read group's members
/// (target ids).
#[derive(Debug, Clone, Default)]
pub struct TargetView {
    /// Users by target id.
    pub users: BTreeMap<String, TargetObject>,
    /// Groups by target id.
    pub groups: BTreeMap<String, TargetObject>,
    /// Members of the linked groups, by group target id.
    pub members: BTreeMap<String, BTreeSet<String>>,
    /// Connector calls made.
    pub calls: u64,
}

impl TargetView {
    fn objects(&self, kind: ObjectKind) -> &BTreeMap<String, TargetObject> {
        match kind {
            ObjectKind::User => &self.users,
            ObjectKind::Group => &self.groups,
        }
    }
}

/// One attribute that differs.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeDrift {
    /// Target attribute name (as mapped).
    pub name: String,
    /// What Provisio exported.
    pub exported: serde_json::Value,
    /// What the target holds (`None`: the target has no value).
    pub target: Option<serde_json::Value>,
}

/// One difference between the target and the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// A linked object is gone from the target.
    Deleted {
        /// Kind.
        kind: ObjectKind,
        /// Source id.
        source_id: String,
        /// Its former target id.
        target_id: String,
    },
    /// Managed attributes hold other values in the target.
    Changed {
        /// Kind.
        kind: ObjectKind,
        /// Source id.
        source_id: String,
        /// Target id.
        target_id: String,
        /// The attributes.
        attributes: Vec<AttributeDrift>,
    },
    /// A user is enabled (or disabled) in the target against its link.
    Lifecycle {
        /// Source id.
        source_id: String,
        /// Target id.
        target_id: String,
        /// Whether the target has it active.
        target_active: bool,
    },
    /// A group's members differ.
    Members {
        /// Group source id.
        group: String,
        /// Group target id.
        target_id: String,
        /// Exported members (source ids) the target does not hold.
        missing: Vec<String>,
        /// Users of this connection (source ids) the target holds as
        /// members although they were not exported to the group.
        extra: Vec<String>,
        /// Members (target ids) that are no user of this connection.
        unmanaged: Vec<String>,
        /// What the target holds, as source ids of linked users.
        held: BTreeSet<String>,
    },
    /// A target object no link points at.
    Orphan {
        /// Kind.
        kind: ObjectKind,
        /// Target id.
        target_id: String,
        /// Its name in the target (userName / displayName), untrusted.
        display: String,
    },
}

impl Finding {
    /// The finding's short name (`deleted`, `changed`, `lifecycle`,
    /// `members`, `orphan`).
    pub fn name(&self) -> &'static str {
        match self {
            Finding::Deleted { .. } => "deleted",
            Finding::Changed { .. } => "changed",
            Finding::Lifecycle { .. } => "lifecycle",
            Finding::Members { .. } => "members",
            Finding::Orphan { .. } => "orphan",
        }
    }

    /// The object the finding is about: kind, source id (none for an
    /// orphan), target id.
    pub fn object(&self) -> (ObjectKind, Option<&str>, &str) {
        match self {
            Finding::Deleted {
                kind,
                source_id,
                target_id,
            }
            | Finding::Changed {
                kind,
                source_id,
                target_id,
                ..
            } => (*kind, Some(source_id), target_id),
            Finding::Lifecycle {
                source_id,
                target_id,
                ..
            } => (ObjectKind::User, Some(source_id), target_id),
            Finding::Members {
                group, target_id, ..
            } => (ObjectKind::Group, Some(group), target_id),
            Finding::Orphan {
                kind, target_id, ..
            } => (*kind, None, target_id),
        }
    }

    /// What was found, in one sentence (values as JSON; untrusted text the
    /// caller escapes when it renders).
    pub fn describe(&self) -> String {
        match self {
            Finding::Deleted {
                kind, target_id, ..
            } => format!("{kind} {target_id} was deleted in the target"),
            Finding::Changed { attributes, .. } => {
                let parts: Vec<String> = attributes
                    .iter()
                    .map(|a| {
                        format!(
                            "{} is {} in the target, {} was exported",
                            a.name,
                            a.target
                                .as_ref()
                                .map(ToString::to_string)
                                .unwrap_or_else(|| "(no value)".into()),
                            a.exported
                        )
                    })
                    .collect();
                format!("changed in the target: {}", parts.join("; "))
            }
            Finding::Lifecycle { target_active, .. } => {
                if *target_active {
                    "enabled in the target, but Provisio disabled it".into()
                } else {
                    "disabled in the target, but Provisio left it enabled".into()
                }
            }
            Finding::Members {
                missing,
                extra,
                unmanaged,
                ..
            } => {
                let mut parts = Vec::new();
                if !missing.is_empty() {
                    parts.push(format!(
                        "{} member(s) removed in the target ({})",
                        missing.len(),
                        missing.join(", ")
                    ));
                }
                if !extra.is_empty() {
                    parts.push(format!(
                        "{} member(s) added in the target ({})",
                        extra.len(),
                        extra.join(", ")
                    ));
                }
                if !unmanaged.is_empty() {
                    parts.push(format!(
                        "{} member(s) that are no user of this connection added in the target \
                         (target ids {})",
                        unmanaged.len(),
                        unmanaged.join(", ")
                    ));
                }
                parts.join("; ")
            }
            Finding::Orphan {
                kind,
                target_id,
                display,
            } => format!(
                "{kind} '{display}' ({target_id}) is in the target but linked to no source object"
            ),
        }
    }
}

/// Read every user and group of the target, and the members of the linked
/// groups (`linked_groups`, target ids, that the listing holds).
pub async fn read_target(
    conn: &Connection,
    groups_supported: bool,
    linked_groups: &BTreeSet<String>,
) -> Result<TargetView, DriftError> {
    let mut view = TargetView::default();
    view.users = list_all(conn, ObjectKind::User, &mut view.calls).await?;
    if groups_supported {
        view.groups = list_all(conn, ObjectKind::Group, &mut view.calls).await?;
        for id in linked_groups {
            if !view.groups.contains_key(id) {
                continue;
            }
            view.calls += 1;
            let group =
                conn.get(ObjectKind::Group, id)
                    .await
                    .map_err(|source| DriftError::Read {
                        what: format!("group {id}"),
                        source,
                    })?;
            view.members.insert(id.clone(), members_of(&group));
        }
    }
    Ok(view)
}

/// The member target ids a connector reports for a group (`members`, a text
/// list; absent means none).
pub fn members_of(group: &TargetObject) -> BTreeSet<String> {
    group
        .attributes
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case("members"))
        .map(|a| match &a.value {
            Value::TextList(l) => l.iter().cloned().collect(),
            Value::Text(t) if !t.is_empty() => BTreeSet::from([t.clone()]),
            _ => BTreeSet::new(),
        })
        .unwrap_or_default()
}

/// Whether a group object reports its members at all.
pub fn reports_members(group: &TargetObject) -> bool {
    group
        .attributes
        .iter()
        .any(|a| a.name.eq_ignore_ascii_case("members"))
}

async fn list_all(
    conn: &Connection,
    kind: ObjectKind,
    calls: &mut u64,
) -> Result<BTreeMap<String, TargetObject>, DriftError> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    let mut seen_cursors = BTreeSet::new();
    for page in 0..MAX_PAGES {
        *calls += 1;
        let p = conn
            .list(kind, cursor.as_deref(), PAGE_SIZE)
            .await
            .map_err(|source| DriftError::Read {
                what: format!("{kind} listing (page {})", page + 1),
                source,
            })?;
        for o in p.objects {
            out.entry(o.id.clone()).or_insert(o);
        }
        match p.next_cursor {
            None => return Ok(out),
            Some(c) => {
                if !seen_cursors.insert(c.clone()) {
                    return Err(DriftError::Unbounded {
                        kind,
                        pages: page + 1,
                        reason: "the connector returned a cursor it had returned before".into(),
                    });
                }
                cursor = Some(c);
            }
        }
    }
    Err(DriftError::Unbounded {
        kind,
        pages: MAX_PAGES,
        reason: format!("at most {MAX_PAGES} pages of {PAGE_SIZE} are read"),
    })
}

/// The store's side of the comparison.
pub struct Exported<'a> {
    /// User links (all states).
    pub users: &'a [Link],
    /// Group links (all states).
    pub groups: &'a [Link],
    /// Exported members (source ids) by group source id.
    pub members: &'a BTreeMap<String, BTreeSet<String>>,
    /// Whether `active` is the lifecycle's (the connector can disable users).
    pub can_disable: bool,
    /// Whether an attribute is compared: managed by an update mapping, not
    /// a secret, not ignored.
    pub compared: &'a dyn Fn(ObjectKind, &str) -> bool,
}

/// Compare the store with the target. Findings come in a stable order:
/// users, then groups, each by source id; then orphans by target id.
pub fn compare(exported: &Exported<'_>, view: &TargetView) -> Vec<Finding> {
    let mut out = Vec::new();
    for (kind, links) in [
        (ObjectKind::User, exported.users),
        (ObjectKind::Group, exported.groups),
    ] {
        let objects = view.objects(kind);
        for l in links.iter().filter(|l| l.state != LinkState::Deleted) {
            let Some(obj) = objects.get(&l.target_id) else {
                out.push(Finding::Deleted {
                    kind,
                    source_id: l.source_id.clone(),
                    target_id: l.target_id.clone(),
                });
                continue;
            };
            let attributes = changed(kind, l, obj, exported.compared);
            if !attributes.is_empty() {
                out.push(Finding::Changed {
                    kind,
                    source_id: l.source_id.clone(),
                    target_id: l.target_id.clone(),
                    attributes,
                });
            }
            if kind == ObjectKind::User
                && exported.can_disable
                && let Some(active) = attribute(obj, crate::reconcile::ACTIVE)
            {
                let want = l.state == LinkState::Active;
                if !same_value(&Value::Boolean(want), active) {
                    out.push(Finding::Lifecycle {
                        source_id: l.source_id.clone(),
                        target_id: l.target_id.clone(),
                        target_active: !want,
                    });
                }
            }
        }
    }
    // Members of each linked group the target holds.
    let user_by_target: BTreeMap<&str, &str> = exported
        .users
        .iter()
        .filter(|l| l.state != LinkState::Deleted)
        .map(|l| (l.target_id.as_str(), l.source_id.as_str()))
        .collect();
    for g in exported
        .groups
        .iter()
        .filter(|l| l.state != LinkState::Deleted)
    {
        let Some(target_members) = view.members.get(&g.target_id) else {
            continue;
        };
        let want = exported
            .members
            .get(&g.source_id)
            .cloned()
            .unwrap_or_default();
        let mut held = BTreeSet::new();
        let mut unmanaged = Vec::new();
        for tid in target_members {
            match user_by_target.get(tid.as_str()) {
                Some(sid) => {
                    held.insert(sid.to_string());
                }
                None => unmanaged.push(tid.clone()),
            }
        }
        let missing: Vec<String> = want.difference(&held).cloned().collect();
        let extra: Vec<String> = held.difference(&want).cloned().collect();
        if !missing.is_empty() || !extra.is_empty() || !unmanaged.is_empty() {
            out.push(Finding::Members {
                group: g.source_id.clone(),
                target_id: g.target_id.clone(),
                missing,
                extra,
                unmanaged,
                held,
            });
        }
    }
    for (kind, links) in [
        (ObjectKind::User, exported.users),
        (ObjectKind::Group, exported.groups),
    ] {
        let linked: BTreeSet<&str> = links
            .iter()
            .filter(|l| l.state != LinkState::Deleted)
            .map(|l| l.target_id.as_str())
            .collect();
        for (id, obj) in view.objects(kind) {
            if !linked.contains(id.as_str()) {
                out.push(Finding::Orphan {
                    kind,
                    target_id: id.clone(),
                    display: display_of(kind, obj),
                });
            }
        }
    }
    out
}

/// An object's name in the target: `userName` / `displayName`, else its id.
pub fn display_of(kind: ObjectKind, obj: &TargetObject) -> String {
    let keys: &[&str] = match kind {
        ObjectKind::User => &["userName", "displayName", "email"],
        ObjectKind::Group => &["displayName", "name"],
    };
    keys.iter()
        .find_map(|k| match attribute(obj, k) {
            Some(Value::Text(t)) if !t.is_empty() => Some(t.clone()),
            _ => None,
        })
        .unwrap_or_else(|| obj.id.clone())
}

fn attribute<'a>(obj: &'a TargetObject, name: &str) -> Option<&'a Value> {
    obj.attributes
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
        .map(|a| &a.value)
}

fn changed(
    kind: ObjectKind,
    link: &Link,
    obj: &TargetObject,
    compared: &dyn Fn(ObjectKind, &str) -> bool,
) -> Vec<AttributeDrift> {
    link.exported
        .iter()
        .filter(|(name, v)| {
            !v.is_null()
                && !name.eq_ignore_ascii_case(crate::reconcile::ACTIVE)
                && !name.eq_ignore_ascii_case("members")
                && compared(kind, name)
        })
        .filter_map(|(name, v)| {
            let want = Value::from_json(name, v).ok()?;
            match attribute(obj, name) {
                Some(held) if same_value(&want, held) => None,
                Some(Value::Null) | None => Some(AttributeDrift {
                    name: name.clone(),
                    exported: v.clone(),
                    target: None,
                }),
                Some(held) => Some(AttributeDrift {
                    name: name.clone(),
                    exported: v.clone(),
                    target: Some(held.to_json()),
                }),
            }
        })
        .collect()
}

/// A store write that makes the store hold what the target holds, so the
/// cycle repairs the difference.
#[derive(Debug, Clone, PartialEq)]
pub enum Correction {
    /// Rewrite a link (exported values, state, fingerprint).
    Link(Link),
    /// The object is gone: its link becomes a tombstone and its
    /// memberships are forgotten, so the cycle creates it again.
    Tombstone {
        /// Kind.
        kind: ObjectKind,
        /// Source id.
        source_id: String,
    },
    /// A group's recorded members become the target's.
    Members {
        /// Group source id.
        group: String,
        /// Members the target holds (source ids).
        members: BTreeSet<String>,
    },
}

/// The fingerprint a corrected link gets: no real fingerprint equals it, so
/// the cycle diffs the link's exported values with the source's.
pub const DRIFT_FINGERPRINT: &str = "drift";

/// The corrections for `findings` under `policy` (orphans and unmanaged
/// members need no correction: they are acted on after the cycle).
pub fn corrections(
    findings: &[Finding],
    users: &[Link],
    groups: &[Link],
    policy: &DriftPolicy,
) -> Vec<Correction> {
    let mut links: BTreeMap<(ObjectKind, String), Link> = BTreeMap::new();
    let find = |kind: ObjectKind, sid: &str| -> Option<Link> {
        let all = match kind {
            ObjectKind::User => users,
            ObjectKind::Group => groups,
        };
        all.iter().find(|l| l.source_id == sid).cloned()
    };
    let mut out = Vec::new();
    for f in findings {
        match f {
            Finding::Deleted {
                kind, source_id, ..
            } => {
                if policy.deleted_in_target == DeletedInTarget::Recreate {
                    out.push(Correction::Tombstone {
                        kind: *kind,
                        source_id: source_id.clone(),
                    });
                }
            }
            Finding::Changed {
                kind,
                source_id,
                attributes,
                ..
            } => {
                let key = (*kind, source_id.clone());
                let Some(link) = links.get(&key).cloned().or_else(|| find(*kind, source_id)) else {
                    continue;
                };
                let mut link = link;
                for a in attributes {
                    match &a.target {
                        Some(v) => {
                            link.exported.insert(a.name.clone(), v.clone());
                        }
                        None => {
                            link.exported.remove(&a.name);
                        }
                    }
                }
                link.fingerprint = DRIFT_FINGERPRINT.into();
                links.insert(key, link);
            }
            Finding::Lifecycle {
                source_id,
                target_active,
                ..
            } => {
                let key = (ObjectKind::User, source_id.clone());
                let Some(mut link) = links
                    .get(&key)
                    .cloned()
                    .or_else(|| find(ObjectKind::User, source_id))
                else {
                    continue;
                };
                link.state = if *target_active {
                    LinkState::Active
                } else {
                    LinkState::Disabled
                };
                links.insert(key, link);
            }
            Finding::Members {
                group,
                missing,
                extra,
                held,
                ..
            } => {
                if !missing.is_empty() || !extra.is_empty() {
                    out.push(Correction::Members {
                        group: group.clone(),
                        members: held.clone(),
                    });
                }
            }
            Finding::Orphan { .. } => {}
        }
    }
    out.extend(links.into_values().map(Correction::Link));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attribute;

    fn link(kind: ObjectKind, sid: &str, tid: &str, exported: serde_json::Value) -> Link {
        let mut l = Link::new("t", kind, sid, tid);
        l.fingerprint = "fp".into();
        l.exported = serde_json::from_value(exported).unwrap();
        l
    }

    fn obj(id: &str, attrs: &[(&str, Value)]) -> TargetObject {
        TargetObject {
            id: id.into(),
            attributes: attrs
                .iter()
                .map(|(n, v)| Attribute {
                    name: n.to_string(),
                    value: v.clone(),
                })
                .collect(),
        }
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    fn all(_: ObjectKind, name: &str) -> bool {
        name != "password"
    }

    fn view(users: Vec<TargetObject>, groups: Vec<TargetObject>) -> TargetView {
        TargetView {
            users: users.into_iter().map(|o| (o.id.clone(), o)).collect(),
            groups: groups.into_iter().map(|o| (o.id.clone(), o)).collect(),
            ..TargetView::default()
        }
    }

    #[test]
    fn an_object_in_step_has_no_finding() {
        let users = vec![link(
            ObjectKind::User,
            "u1",
            "t1",
            serde_json::json!({"userName": "ada", "active": true, "title": "Eng", "password": "x"}),
        )];
        let v = view(
            vec![obj(
                "t1",
                &[
                    ("userName", text("ada")),
                    ("active", Value::Boolean(true)),
                    ("title", text("Eng")),
                ],
            )],
            vec![],
        );
        let members = BTreeMap::new();
        let e = Exported {
            users: &users,
            groups: &[],
            members: &members,
            can_disable: true,
            compared: &all,
        };
        assert_eq!(compare(&e, &v), vec![]);
    }

    #[test]
    fn changes_deletions_lifecycle_and_orphans_are_found() {
        let users = vec![
            link(
                ObjectKind::User,
                "u1",
                "t1",
                serde_json::json!({"userName": "ada", "title": "Eng", "department": "R&D"}),
            ),
            link(
                ObjectKind::User,
                "u2",
                "t2",
                serde_json::json!({"userName": "bob"}),
            ),
        ];
        let v = view(
            vec![
                obj(
                    "t1",
                    &[
                        ("userName", text("ada")),
                        ("title", text("Boss")),
                        ("active", Value::Boolean(false)),
                    ],
                ),
                obj("t9", &[("userName", text("mallory"))]),
            ],
            vec![],
        );
        let members = BTreeMap::new();
        let e = Exported {
            users: &users,
            groups: &[],
            members: &members,
            can_disable: true,
            compared: &all,
        };
        let found = compare(&e, &v);
        assert_eq!(
            found,
            vec![
                Finding::Changed {
                    kind: ObjectKind::User,
                    source_id: "u1".into(),
                    target_id: "t1".into(),
                    attributes: vec![
                        AttributeDrift {
                            name: "department".into(),
                            exported: serde_json::json!("R&D"),
                            target: None,
                        },
                        AttributeDrift {
                            name: "title".into(),
                            exported: serde_json::json!("Eng"),
                            target: Some(serde_json::json!("Boss")),
                        },
                    ],
                },
                Finding::Lifecycle {
                    source_id: "u1".into(),
                    target_id: "t1".into(),
                    target_active: false,
                },
                Finding::Deleted {
                    kind: ObjectKind::User,
                    source_id: "u2".into(),
                    target_id: "t2".into(),
                },
                Finding::Orphan {
                    kind: ObjectKind::User,
                    target_id: "t9".into(),
                    display: "mallory".into(),
                },
            ]
        );
        // Not compared: an ignored or unmanaged attribute.
        let only_username = |_: ObjectKind, n: &str| n == "userName";
        let e = Exported {
            compared: &only_username,
            can_disable: false,
            ..e
        };
        let found = compare(&e, &v);
        assert!(
            found
                .iter()
                .all(|f| !matches!(f, Finding::Changed { .. } | Finding::Lifecycle { .. })),
            "{found:?}"
        );
    }

    #[test]
    fn members_added_and_removed_in_the_target_are_found() {
        let users = vec![
            link(ObjectKind::User, "u1", "t1", serde_json::json!({})),
            link(ObjectKind::User, "u2", "t2", serde_json::json!({})),
            link(ObjectKind::User, "u3", "t3", serde_json::json!({})),
        ];
        let groups = vec![link(
            ObjectKind::Group,
            "g1",
            "tg1",
            serde_json::json!({"displayName": "Eng"}),
        )];
        let mut v = view(
            vec![
                obj("t1", &[]),
                obj("t2", &[]),
                obj("t3", &[]),
                obj("tx", &[]),
            ],
            vec![obj("tg1", &[("displayName", text("Eng"))])],
        );
        v.members.insert(
            "tg1".into(),
            ["t1", "t3", "tx"].into_iter().map(String::from).collect(),
        );
        let members = BTreeMap::from([(
            "g1".to_string(),
            ["u1", "u2"].into_iter().map(String::from).collect(),
        )]);
        let e = Exported {
            users: &users,
            groups: &groups,
            members: &members,
            can_disable: true,
            compared: &all,
        };
        let found = compare(&e, &v);
        let m = found
            .iter()
            .find(|f| matches!(f, Finding::Members { .. }))
            .unwrap();
        assert_eq!(
            m,
            &Finding::Members {
                group: "g1".into(),
                target_id: "tg1".into(),
                missing: vec!["u2".into()],
                extra: vec!["u3".into()],
                unmanaged: vec!["tx".into()],
                held: ["u1", "u3"].into_iter().map(String::from).collect(),
            }
        );
        let c = corrections(&found, &users, &groups, &DriftPolicy::default());
        assert!(c.contains(&Correction::Members {
            group: "g1".into(),
            members: ["u1", "u3"].into_iter().map(String::from).collect(),
        }));
    }

    #[test]
    fn corrections_hold_the_targets_values_and_follow_the_policy() {
        let users = vec![link(
            ObjectKind::User,
            "u1",
            "t1",
            serde_json::json!({"title": "Eng", "department": "R&D"}),
        )];
        let findings = vec![
            Finding::Changed {
                kind: ObjectKind::User,
                source_id: "u1".into(),
                target_id: "t1".into(),
                attributes: vec![
                    AttributeDrift {
                        name: "department".into(),
                        exported: serde_json::json!("R&D"),
                        target: None,
                    },
                    AttributeDrift {
                        name: "title".into(),
                        exported: serde_json::json!("Eng"),
                        target: Some(serde_json::json!("Boss")),
                    },
                ],
            },
            Finding::Lifecycle {
                source_id: "u1".into(),
                target_id: "t1".into(),
                target_active: false,
            },
            Finding::Deleted {
                kind: ObjectKind::Group,
                source_id: "g1".into(),
                target_id: "tg1".into(),
            },
        ];
        let c = corrections(&findings, &users, &[], &DriftPolicy::default());
        let mut want = users[0].clone();
        want.exported = serde_json::from_value(serde_json::json!({"title": "Boss"})).unwrap();
        want.fingerprint = DRIFT_FINGERPRINT.into();
        want.state = LinkState::Disabled;
        assert_eq!(
            c,
            vec![
                Correction::Tombstone {
                    kind: ObjectKind::Group,
                    source_id: "g1".into()
                },
                Correction::Link(want)
            ]
        );
        let report = DriftPolicy {
            deleted_in_target: DeletedInTarget::Report,
            ..DriftPolicy::default()
        };
        let c = corrections(&findings, &users, &[], &report);
        assert!(
            !c.iter().any(|c| matches!(c, Correction::Tombstone { .. })),
            "{c:?}"
        );
    }
}
