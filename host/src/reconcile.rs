//! Reconcile: compare what the source wants with what was last exported, and
//! decide one action per object. Pure: no I/O, so every rule is unit-tested.
//!
//! Inputs per object: its [`Desired`] state (scope decision, deletion state,
//! mapped attributes for create and for update) and its stored link (target id,
//! fingerprint of the attributes last exported, lifecycle state). The rules are
//! Entra's:
//!
//! - unlinked and in scope (and not deleted) → **create** (the executor first
//!   matches in the target by the matching attributes in precedence order, and
//!   links instead when exactly one object matches; two matches is an error);
//! - linked, hard-deleted in the source → **delete**;
//! - linked, and unassigned / out of scope / soft-deleted / disabled in the
//!   source → **disable** (or delete when the target cannot disable; nothing
//!   when only out of scope and `skip_out_of_scope_deletions` is set);
//! - linked and disabled, now wanted again → **enable** (plus an update of the
//!   attributes that changed meanwhile);
//! - linked and active → **update** with only the changed attributes when the
//!   fingerprint differs; otherwise **nothing** (no target call at all).
//!
//! `active` is owned by the lifecycle (enable/disable actions); it is sent on
//! create but never diffed on update. Like Entra, attributes whose mapping turns
//! null are not sent (no implicit clearing).

use crate::model::{Attribute, ObjectKind, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The attribute the lifecycle owns.
pub const ACTIVE: &str = "active";

/// How an object stands in the source this cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// Present.
    Present,
    /// Soft-deleted.
    SoftDeleted,
    /// Hard-deleted (or gone from the source).
    HardDeleted,
}

/// What the source wants for one object.
#[derive(Debug, Clone)]
pub struct Desired {
    /// Kind.
    pub kind: ObjectKind,
    /// Source id.
    pub source_id: String,
    /// Display name for logs.
    pub display: String,
    /// In scope for this connection.
    pub in_scope: bool,
    /// Why (scope step detail).
    pub scope_reason: String,
    /// Deletion state in the source.
    pub state: SourceState,
    /// `accountEnabled` (users); true for groups.
    pub enabled: bool,
    /// Attributes for a create (create-only mappings and defaults included).
    pub create: Vec<Attribute>,
    /// Attributes for an update (create-only mappings excluded).
    pub update: Vec<Attribute>,
    /// Matching attributes with their values, in precedence order.
    pub matching: Vec<Attribute>,
}

/// Lifecycle state of a linked object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Enabled in the target.
    Active,
    /// Disabled in the target.
    Disabled,
    /// Deleted from the target.
    Deleted,
}

/// What the store remembers of a linked object.
#[derive(Debug, Clone, PartialEq)]
pub struct Linked {
    /// Target id.
    pub target_id: String,
    /// Fingerprint of the update attributes last exported.
    pub fingerprint: String,
    /// Attributes last exported.
    pub exported: BTreeMap<String, serde_json::Value>,
    /// Lifecycle.
    pub state: Lifecycle,
}

/// Connection policy that shapes decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Do not disable objects that merely left scope.
    pub skip_out_of_scope_deletions: bool,
    /// The connector can disable.
    pub can_disable: bool,
    /// The connector can delete.
    pub can_delete: bool,
}

/// One changed attribute, for the provisioning log.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Attribute.
    pub name: String,
    /// Value last exported.
    pub old: Option<serde_json::Value>,
    /// Value now.
    pub new: serde_json::Value,
}

/// The decision for one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing to do (no target call).
    None {
        /// Why.
        reason: String,
    },
    /// Refresh the stored fingerprint only (e.g. a create-only mapping changed).
    Refresh {
        /// New fingerprint.
        fingerprint: String,
    },
    /// Match, then create if no match.
    Create {
        /// Attributes to send.
        attributes: Vec<Attribute>,
    },
    /// Send only the changed attributes.
    Update {
        /// Changes.
        changes: Vec<Change>,
        /// Fingerprint after the update.
        fingerprint: String,
    },
    /// Enable, then update what changed meanwhile.
    Enable {
        /// Changes (may be empty).
        changes: Vec<Change>,
        /// Fingerprint after.
        fingerprint: String,
    },
    /// Disable.
    Disable {
        /// Why.
        reason: String,
    },
    /// Delete.
    Delete {
        /// Why.
        reason: String,
    },
    /// Deprovisioning held back because the source had malformed records
    /// (see `source::Holds`): not a failure, logged as a skipped disable or
    /// delete, and done in a later cycle once the source is fixed.
    Held {
        /// Whether the held action is a delete (else a disable).
        delete: bool,
        /// Why (`held: the source had N malformed records: ...`).
        reason: String,
    },
    /// Deliberately not acted on (logged as skipped).
    Skip {
        /// Why.
        reason: String,
    },
}

impl Action {
    /// Short name for logs and plans.
    pub fn name(&self) -> &'static str {
        match self {
            Action::None { .. } => "none",
            Action::Refresh { .. } => "refresh",
            Action::Create { .. } => "create",
            Action::Update { .. } => "update",
            Action::Enable { .. } => "enable",
            Action::Disable { .. } => "disable",
            Action::Delete { .. } => "delete",
            Action::Held { .. } => "held",
            Action::Skip { .. } => "skip",
        }
    }

    /// Whether the deletion guard counts it.
    pub fn is_deprovision(&self) -> bool {
        matches!(self, Action::Disable { .. } | Action::Delete { .. })
    }

    /// This action held back: a disable or delete becomes [`Action::Held`]
    /// with `reason`; any other action is returned unchanged.
    pub fn held(self, reason: impl FnOnce() -> String) -> Action {
        match self {
            Action::Disable { .. } => Action::Held {
                delete: false,
                reason: reason(),
            },
            Action::Delete { .. } => Action::Held {
                delete: true,
                reason: reason(),
            },
            other => other,
        }
    }

    /// Whether it calls the target.
    pub fn calls_target(&self) -> bool {
        !matches!(
            self,
            Action::None { .. }
                | Action::Refresh { .. }
                | Action::Held { .. }
                | Action::Skip { .. }
        )
    }
}

/// Canonical JSON of attributes, sorted by name.
pub fn to_json_map(attrs: &[Attribute]) -> BTreeMap<String, serde_json::Value> {
    attrs
        .iter()
        .map(|a| (a.name.clone(), a.value.to_json()))
        .collect()
}

/// Fingerprint of update attributes (`active` excluded: the lifecycle owns it).
pub fn fingerprint(attrs: &[Attribute]) -> String {
    let map: BTreeMap<String, serde_json::Value> = to_json_map(attrs)
        .into_iter()
        .filter(|(k, _)| k != ACTIVE)
        .collect();
    let text = serde_json::to_string(&map).unwrap_or_default();
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}

/// Attributes of `update` whose value differs from what was exported.
pub fn diff(exported: &BTreeMap<String, serde_json::Value>, update: &[Attribute]) -> Vec<Change> {
    update
        .iter()
        .filter(|a| a.name != ACTIVE && !matches!(a.value, Value::Null))
        .filter_map(|a| {
            let new = a.value.to_json();
            let old = exported.get(&a.name).cloned();
            (old.as_ref() != Some(&new)).then(|| Change {
                name: a.name.clone(),
                old,
                new,
            })
        })
        .collect()
}

/// Whether the value the target holds equals the value to send, allowing for
/// the target's representation: a boolean or integer as text, a one-element
/// list as its element, a list in another order.
pub fn same_value(want: &Value, held: &Value) -> bool {
    match (want, held) {
        (a, b) if a == b => true,
        (Value::Boolean(b), Value::Text(t)) | (Value::Text(t), Value::Boolean(b)) => t
            .trim()
            .eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        (Value::Integer(i), Value::Text(t)) | (Value::Text(t), Value::Integer(i)) => {
            t.trim() == i.to_string()
        }
        (Value::TextList(l), Value::Text(t)) | (Value::Text(t), Value::TextList(l)) => {
            l.len() == 1 && l[0] == *t
        }
        (Value::TextList(a), Value::TextList(b)) => {
            let (mut a, mut b) = (a.clone(), b.clone());
            a.sort();
            b.sort();
            a == b
        }
        _ => false,
    }
}

/// Decide the action for one object.
pub fn decide(desired: &Desired, link: Option<&Linked>, policy: Policy) -> Action {
    let wanted = desired.in_scope && desired.state == SourceState::Present && desired.enabled;
    let link = match link {
        Some(l) if l.state != Lifecycle::Deleted => l,
        _ => {
            // Not (or no longer) in the target.
            if desired.in_scope && desired.state == SourceState::Present {
                return Action::Create {
                    attributes: desired.create.clone(),
                };
            }
            return Action::None {
                reason: if desired.state != SourceState::Present {
                    "deleted in the source and not in the target".to_string()
                } else {
                    format!("not in scope ({})", desired.scope_reason)
                },
            };
        }
    };
    if desired.state == SourceState::HardDeleted {
        return if policy.can_delete {
            Action::Delete {
                reason: "hard-deleted in the source".into(),
            }
        } else if policy.can_disable && link.state == Lifecycle::Active {
            Action::Disable {
                reason: "hard-deleted in the source; the target cannot delete".into(),
            }
        } else {
            Action::Skip {
                reason:
                    "hard-deleted in the source, but the connector can neither delete nor disable"
                        .into(),
            }
        };
    }
    if !wanted {
        let reason = if desired.state == SourceState::SoftDeleted {
            "soft-deleted in the source".to_string()
        } else if !desired.in_scope {
            format!("out of scope ({})", desired.scope_reason)
        } else {
            "disabled in the source (accountEnabled = false)".to_string()
        };
        let only_out_of_scope =
            !desired.in_scope && desired.state == SourceState::Present && desired.enabled;
        if only_out_of_scope && policy.skip_out_of_scope_deletions {
            return Action::Skip {
                reason: format!("{reason}; skip_out_of_scope_deletions is set"),
            };
        }
        if link.state == Lifecycle::Disabled {
            return Action::None {
                reason: format!("already disabled: {reason}"),
            };
        }
        return if policy.can_disable {
            Action::Disable { reason }
        } else if policy.can_delete {
            Action::Delete {
                reason: format!("{reason}; the target cannot disable"),
            }
        } else {
            Action::Skip {
                reason: format!("{reason}, but the connector can neither disable nor delete"),
            }
        };
    }
    let fp = fingerprint(&desired.update);
    let changes = diff(&link.exported, &desired.update);
    if link.state == Lifecycle::Disabled {
        return Action::Enable {
            changes,
            fingerprint: fp,
        };
    }
    if fp == link.fingerprint {
        return Action::None {
            reason: "no change since the last export".into(),
        };
    }
    if changes.is_empty() {
        return Action::Refresh { fingerprint: fp };
    }
    Action::Update {
        changes,
        fingerprint: fp,
    }
}

/// Membership changes of one group: `(to_add, to_remove)`, each sorted.
pub fn membership_diff(
    desired: &std::collections::BTreeSet<String>,
    current: &std::collections::BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    (
        desired.difference(current).cloned().collect(),
        current.difference(desired).cloned().collect(),
    )
}

/// The accidental-deletion guard: whether this cycle's disables and deletes
/// must be staged for an operator's decision.
pub fn guard_trips(deprovisions: usize, threshold: Option<usize>) -> bool {
    threshold.is_some_and(|t| deprovisions > t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(n: &str, v: &str) -> Attribute {
        Attribute {
            name: n.into(),
            value: Value::Text(v.into()),
        }
    }

    fn desired(in_scope: bool, state: SourceState, enabled: bool, title: &str) -> Desired {
        let update = vec![
            attr("userName", "ada@x"),
            attr("title", title),
            Attribute {
                name: "active".into(),
                value: Value::Boolean(enabled),
            },
        ];
        Desired {
            kind: ObjectKind::User,
            source_id: "u1".into(),
            display: "Ada".into(),
            in_scope,
            scope_reason: if in_scope {
                "assigned directly"
            } else {
                "not assigned"
            }
            .into(),
            state,
            enabled,
            create: update.clone(),
            update,
            matching: vec![attr("userName", "ada@x")],
        }
    }

    fn linked(d: &Desired, state: Lifecycle) -> Linked {
        Linked {
            target_id: "t1".into(),
            fingerprint: fingerprint(&d.update),
            exported: to_json_map(&d.create),
            state,
        }
    }

    const POLICY: Policy = Policy {
        skip_out_of_scope_deletions: false,
        can_disable: true,
        can_delete: true,
    };

    #[test]
    fn unlinked_in_scope_is_created_out_of_scope_is_left_alone() {
        let d = desired(true, SourceState::Present, true, "Countess");
        assert!(matches!(decide(&d, None, POLICY), Action::Create { .. }));
        let d = desired(false, SourceState::Present, true, "Countess");
        assert!(matches!(decide(&d, None, POLICY), Action::None { .. }));
        let d = desired(true, SourceState::SoftDeleted, true, "x");
        assert!(matches!(decide(&d, None, POLICY), Action::None { .. }));
    }

    #[test]
    fn unchanged_objects_make_no_call() {
        let d = desired(true, SourceState::Present, true, "Countess");
        let l = linked(&d, Lifecycle::Active);
        let a = decide(&d, Some(&l), POLICY);
        assert!(matches!(a, Action::None { .. }), "{a:?}");
        assert!(!a.calls_target());
    }

    #[test]
    fn only_changed_attributes_are_sent() {
        let before = desired(true, SourceState::Present, true, "Countess");
        let l = linked(&before, Lifecycle::Active);
        let after = desired(true, SourceState::Present, true, "Mathematician");
        match decide(&after, Some(&l), POLICY) {
            Action::Update { changes, .. } => {
                assert_eq!(changes.len(), 1);
                assert_eq!(changes[0].name, "title");
                assert_eq!(changes[0].old, Some(serde_json::json!("Countess")));
                assert_eq!(changes[0].new, serde_json::json!("Mathematician"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn deprovisioning_rules() {
        let base = desired(true, SourceState::Present, true, "t");
        let l = linked(&base, Lifecycle::Active);
        let cases = [
            (
                desired(false, SourceState::Present, true, "t"),
                "disable",
                "out of scope",
            ),
            (
                desired(true, SourceState::SoftDeleted, true, "t"),
                "disable",
                "soft-deleted",
            ),
            (
                desired(true, SourceState::Present, false, "t"),
                "disable",
                "accountEnabled",
            ),
            (
                desired(true, SourceState::HardDeleted, true, "t"),
                "delete",
                "hard-deleted",
            ),
        ];
        for (d, action, why) in cases {
            let a = decide(&d, Some(&l), POLICY);
            assert_eq!(a.name(), action, "{why}: {a:?}");
            assert!(format!("{a:?}").contains(why), "{a:?}");
            assert!(a.is_deprovision());
        }
        // Out of scope with skip_out_of_scope_deletions: skipped, but a soft delete still disables.
        let p = Policy {
            skip_out_of_scope_deletions: true,
            ..POLICY
        };
        assert_eq!(
            decide(
                &desired(false, SourceState::Present, true, "t"),
                Some(&l),
                p
            )
            .name(),
            "skip"
        );
        assert_eq!(
            decide(
                &desired(true, SourceState::SoftDeleted, true, "t"),
                Some(&l),
                p
            )
            .name(),
            "disable"
        );
        // A target without disable gets a delete.
        let p = Policy {
            can_disable: false,
            ..POLICY
        };
        assert_eq!(
            decide(
                &desired(false, SourceState::Present, true, "t"),
                Some(&l),
                p
            )
            .name(),
            "delete"
        );
        // Already disabled: nothing.
        let ld = linked(&base, Lifecycle::Disabled);
        assert_eq!(
            decide(
                &desired(false, SourceState::Present, true, "t"),
                Some(&ld),
                POLICY
            )
            .name(),
            "none"
        );
    }

    #[test]
    fn re_enabling_carries_changes() {
        let before = desired(true, SourceState::Present, true, "Countess");
        let l = linked(&before, Lifecycle::Disabled);
        match decide(
            &desired(true, SourceState::Present, true, "Queen"),
            Some(&l),
            POLICY,
        ) {
            Action::Enable { changes, .. } => assert_eq!(changes.len(), 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn deleted_links_are_recreated_when_wanted_again() {
        let d = desired(true, SourceState::Present, true, "t");
        let l = linked(&d, Lifecycle::Deleted);
        assert_eq!(decide(&d, Some(&l), POLICY).name(), "create");
    }

    #[test]
    fn active_is_not_diffed_and_nulls_are_not_sent() {
        let mut d = desired(true, SourceState::Present, true, "t");
        let l = linked(&d, Lifecycle::Active);
        d.update.push(Attribute {
            name: "phone".into(),
            value: Value::Null,
        });
        assert_eq!(decide(&d, Some(&l), POLICY).name(), "refresh");
        assert_eq!(
            fingerprint(&[attr("a", "1"), attr("active", "x")]),
            fingerprint(&[attr("a", "1")])
        );
    }

    #[test]
    fn membership_and_guard() {
        let d: std::collections::BTreeSet<String> =
            ["a", "b"].iter().map(|s| s.to_string()).collect();
        let c: std::collections::BTreeSet<String> =
            ["b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            membership_diff(&d, &c),
            (vec!["a".to_string()], vec!["c".to_string()])
        );
        assert!(guard_trips(11, Some(10)));
        assert!(!guard_trips(10, Some(10)));
        assert!(!guard_trips(1000, None));
    }
}
