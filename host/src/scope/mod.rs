//! Scope: which users and groups of the source directory one connection
//! provisions, and why.
//!
//! How the parts fit:
//! - [`ScopeConfig`] is a connection's scope settings (deserialised from its
//!   configuration, checked once with [`ScopeConfig::validate`]).
//! - [`evaluate`] takes a [`Directory`] from the
//!   `source` stage and returns a [`Scope`]: a [`Decision`] for **every** user
//!   and group, so that the reconcile stage can tell "in scope", "left scope"
//!   and "deleted" apart, and log a human-readable reason for each.
//! - The [`filter`] submodule holds the scoping-filter operators and their
//!   exact semantics.
//!
//! The rules, in order:
//! 1. Assignments to this connection count unless their role is in
//!    `excluded_roles` (case-insensitive; `Default Access` by default).
//! 2. With `assigned_only` (the default) a user is in scope when assigned
//!    directly or as a member of an assigned group; members of groups nested
//!    in an assigned group count only with `nested_groups` (cycle-safe). A
//!    group is in scope when assigned directly. Without `assigned_only`
//!    every user and group is.
//! 3. Scoping filters then apply: `user_filters` to users, `group_filters` to
//!    groups. Clauses of one filter are ANDed, filters are ORed, and no
//!    filters lets everyone through.
//! 4. Deleted objects are evaluated as if present; their deletion is copied
//!    into [`Decision::deleted`] and named in the reason. Whether that means
//!    disable or delete is the reconcile stage's call.
//!
//! ```toml
//! [connections.demo.scope]
//! assigned_only = true
//! excluded_roles = ["Default Access"]
//! nested_groups = false
//! [[connections.demo.scope.user_filters]]
//! clauses = [
//!   { attribute = "department", operator = "EQUALS", value = "Sales" },
//!   { attribute = "accountEnabled", operator = "IS TRUE" },
//! ]
//! ```

pub mod filter;

pub use filter::{Clause, Operator, ScopingFilter};

use crate::model::Value;
use crate::source::{Deletion, Directory};
use filter::CompiledFilter;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The role excluded by default, as Entra historically did.
pub const DEFAULT_ACCESS_ROLE: &str = "Default Access";

/// A connection's scope settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScopeConfig {
    /// Only assigned users and groups (true, the default) or everyone.
    pub assigned_only: bool,
    /// Roles whose assignments do not count (case-insensitive).
    pub excluded_roles: Vec<String>,
    /// Whether members of groups nested in an assigned group are assigned too.
    pub nested_groups: bool,
    /// Filters for users; a user must pass one of them (none = all pass).
    pub user_filters: Vec<ScopingFilter>,
    /// Filters for groups; a group must pass one of them (none = all pass).
    pub group_filters: Vec<ScopingFilter>,
}

impl Default for ScopeConfig {
    fn default() -> Self {
        ScopeConfig {
            assigned_only: true,
            excluded_roles: vec![DEFAULT_ACCESS_ROLE.to_string()],
            nested_groups: false,
            user_filters: Vec::new(),
            group_filters: Vec::new(),
        }
    }
}

impl ScopeConfig {
    /// Check the filters: every regular expression compiles, `GREATER_THAN`,
    /// `GREATER_THAN_OR_EQUALS`, `&` and `!&` have numeric values (integers
    /// for the bitwise ones), the `IS ...` operators have no value and the
    /// others have one, and no filter is empty. The error lists every
    /// problem, each naming its place (`user_filters[1].clauses[2]`).
    pub fn validate(&self) -> Result<(), String> {
        self.compile().map(|_| ())
    }

    fn compile(&self) -> Result<(Vec<CompiledFilter>, Vec<CompiledFilter>), String> {
        let users = filter::compile_filters("user_filters", &self.user_filters);
        let groups = filter::compile_filters("group_filters", &self.group_filters);
        match (users, groups) {
            (Ok(u), Ok(g)) => Ok((u, g)),
            (u, g) => {
                let mut errors = u.err().unwrap_or_default();
                errors.extend(g.err().unwrap_or_default());
                Err(errors.join("; "))
            }
        }
    }

    fn is_excluded(&self, role: &str) -> bool {
        self.excluded_roles
            .iter()
            .any(|r| r.trim().to_lowercase() == role.trim().to_lowercase())
    }
}

/// The scope decision for one user or group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Whether the object is provisioned (deleted objects are evaluated as if
    /// present; see `deleted`).
    pub in_scope: bool,
    /// Why, for logs and the operator, e.g. `assigned through group
    /// Engineering` or `soft-deleted in source; assigned directly with role
    /// User`.
    pub reason: String,
    /// Roles of this connection's counting assignments to the object, direct
    /// or through groups; sorted, without duplicates. For mappings'
    /// `AppRoleAssignments`.
    pub app_roles: Vec<String>,
    /// Whether the object has a counting assignment of its own.
    pub assigned_directly: bool,
    /// Ids of the assigned groups through which a user is assigned (with
    /// `nested_groups`, the assigned outer group); sorted. Empty for groups.
    pub via_groups: Vec<String>,
    /// Deletion state in the source.
    pub deleted: Deletion,
}

/// Decisions for every user and group of a directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Scope {
    /// Users by id.
    pub users: BTreeMap<String, Decision>,
    /// Groups by id.
    pub groups: BTreeMap<String, Decision>,
    /// Set when the configuration was invalid. Every object is then out of
    /// scope with this error as its reason, and the reconcile stage must not
    /// act on the scope. [`ScopeConfig::validate`] at load time prevents it.
    pub config_error: Option<String>,
}

impl Scope {
    /// Ids of the users in scope.
    pub fn users_in_scope(&self) -> impl Iterator<Item = &str> {
        self.users
            .iter()
            .filter(|(_, d)| d.in_scope)
            .map(|(id, _)| id.as_str())
    }

    /// Ids of the groups in scope.
    pub fn groups_in_scope(&self) -> impl Iterator<Item = &str> {
        self.groups
            .iter()
            .filter(|(_, d)| d.in_scope)
            .map(|(id, _)| id.as_str())
    }
}

/// How a user reached an assigned group: directly or through a nested group.
#[derive(Debug, Default)]
struct Reach {
    /// Assigned group id -> nested group the user is a member of (None when a
    /// direct member).
    groups: BTreeMap<String, Option<String>>,
    roles: BTreeSet<String>,
}

/// Decide scope for every user and group of `dir` for `connection`.
pub fn evaluate(dir: &Directory, connection: &str, cfg: &ScopeConfig) -> Scope {
    let (user_filters, group_filters) = match cfg.compile() {
        Ok(f) => f,
        Err(e) => return invalid_config(dir, e),
    };

    // Counting and excluded roles per principal.
    let mut counting: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut excluded: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for a in dir.assignments_for(connection) {
        let map = if cfg.is_excluded(&a.role) {
            &mut excluded
        } else {
            &mut counting
        };
        map.entry(a.principal.as_str())
            .or_default()
            .insert(a.role.clone());
    }

    // Expand assigned groups to their member users.
    let expand = |roles_by_principal: &BTreeMap<&str, BTreeSet<String>>| {
        let mut reach: BTreeMap<String, Reach> = BTreeMap::new();
        for (principal, roles) in roles_by_principal {
            if !dir.groups.contains_key(*principal) {
                continue;
            }
            for (user, via) in member_users(dir, principal, cfg.nested_groups) {
                let r = reach.entry(user).or_default();
                r.groups.entry(principal.to_string()).or_insert(via);
                r.roles.extend(roles.iter().cloned());
            }
        }
        reach
    };
    let counting_reach = expand(&counting);
    let excluded_reach = expand(&excluded);

    let mut scope = Scope::default();
    for (id, user) in &dir.users {
        let direct = counting.get(id.as_str());
        let through = counting_reach.get(id);
        let mut app_roles: BTreeSet<String> = direct.cloned().unwrap_or_default();
        if let Some(t) = through {
            app_roles.extend(t.roles.iter().cloned());
        }
        let via_groups: Vec<String> = through
            .map(|t| t.groups.keys().cloned().collect())
            .unwrap_or_default();
        let assigned = !app_roles.is_empty();
        let (in_scope, reason) = if cfg.assigned_only && !assigned {
            let mut excl: BTreeSet<String> = excluded.get(id.as_str()).cloned().unwrap_or_default();
            if let Some(t) = excluded_reach.get(id) {
                excl.extend(t.roles.iter().cloned());
            }
            if excl.is_empty() {
                (false, "not assigned".to_string())
            } else {
                (
                    false,
                    format!(
                        "only assigned with excluded role{} {}",
                        plural(excl.len()),
                        join(&excl)
                    ),
                )
            }
        } else {
            let why = if cfg.assigned_only {
                assigned_reason(dir, direct, through)
            } else {
                "all users are in scope (assigned_only = false)".to_string()
            };
            apply_filters(&user_filters, "user_filters", &user.attributes, why)
        };
        scope.users.insert(
            id.clone(),
            Decision {
                in_scope,
                reason: with_deletion(user.deleted, reason),
                app_roles: app_roles.into_iter().collect(),
                assigned_directly: direct.is_some(),
                via_groups,
                deleted: user.deleted,
            },
        );
    }

    for (id, group) in &dir.groups {
        let direct = counting.get(id.as_str());
        let (in_scope, reason) = if cfg.assigned_only && direct.is_none() {
            match excluded.get(id.as_str()) {
                Some(excl) => (
                    false,
                    format!(
                        "only assigned with excluded role{} {}",
                        plural(excl.len()),
                        join(excl)
                    ),
                ),
                None => (false, "not assigned".to_string()),
            }
        } else {
            let why = match direct {
                Some(roles) if cfg.assigned_only => format!(
                    "assigned directly with role{} {}",
                    plural(roles.len()),
                    join(roles)
                ),
                _ => "all groups are in scope (assigned_only = false)".to_string(),
            };
            apply_filters(&group_filters, "group_filters", &group.attributes, why)
        };
        scope.groups.insert(
            id.clone(),
            Decision {
                in_scope,
                reason: with_deletion(group.deleted, reason),
                app_roles: direct
                    .map(|r| r.iter().cloned().collect())
                    .unwrap_or_default(),
                assigned_directly: direct.is_some(),
                via_groups: Vec::new(),
                deleted: group.deleted,
            },
        );
    }
    scope
}

/// Users in a group: direct members, and with `nested` members of member
/// groups at any depth. Each user comes with the nested group it was found
/// in (None for a direct member). Cycle-safe.
fn member_users(dir: &Directory, group: &str, nested: bool) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut seen_users = BTreeSet::new();
    let mut visited = BTreeSet::from([group.to_string()]);
    let mut queue = VecDeque::from([(group.to_string(), None::<String>)]);
    while let Some((gid, via)) = queue.pop_front() {
        let Some(g) = dir.groups.get(&gid) else {
            continue;
        };
        for m in &g.members {
            if dir.users.contains_key(m) {
                if seen_users.insert(m.clone()) {
                    out.push((m.clone(), via.clone()));
                }
            } else if nested && dir.groups.contains_key(m) && visited.insert(m.clone()) {
                queue.push_back((m.clone(), Some(m.clone())));
            }
        }
    }
    out
}

fn assigned_reason(
    dir: &Directory,
    direct: Option<&BTreeSet<String>>,
    through: Option<&Reach>,
) -> String {
    let mut parts = Vec::new();
    if let Some(roles) = direct {
        parts.push(format!(
            "directly with role{} {}",
            plural(roles.len()),
            join(roles)
        ));
    }
    if let Some(t) = through {
        let names: Vec<String> = t
            .groups
            .iter()
            .map(|(g, via)| match via {
                None => group_name(dir, g),
                Some(n) => format!(
                    "{} (via nested group {})",
                    group_name(dir, g),
                    group_name(dir, n)
                ),
            })
            .collect();
        if !names.is_empty() {
            parts.push(format!(
                "through group{} {}",
                plural(names.len()),
                names.join(", ")
            ));
        }
    }
    format!("assigned {}", parts.join(" and "))
}

fn apply_filters(
    filters: &[CompiledFilter],
    what: &str,
    attributes: &BTreeMap<String, Value>,
    why: String,
) -> (bool, String) {
    if filters.is_empty() {
        return (true, why);
    }
    let mut failures = Vec::new();
    for (i, f) in filters.iter().enumerate() {
        match f.iter().find(|c| !c.matches(attributes)) {
            None => {
                let which = if filters.len() > 1 {
                    format!(" (filter {})", i + 1)
                } else {
                    String::new()
                };
                return (true, format!("{why}; passed {what}{which}"));
            }
            Some(c) => failures.push(format!("filter {} failed on {}", i + 1, c.clause())),
        }
    }
    (
        false,
        format!("filtered out by {what}: {} ({why})", failures.join("; ")),
    )
}

fn with_deletion(deleted: Deletion, reason: String) -> String {
    match deleted {
        Deletion::None => reason,
        d => format!("{d} in source; {reason}"),
    }
}

fn group_name(dir: &Directory, id: &str) -> String {
    match dir.group(id).and_then(|g| g.attributes.get("displayName")) {
        Some(Value::Text(name)) if !name.trim().is_empty() => name.clone(),
        _ => id.to_string(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn join(items: &BTreeSet<String>) -> String {
    items.iter().cloned().collect::<Vec<_>>().join(", ")
}

fn invalid_config(dir: &Directory, error: String) -> Scope {
    let reason = format!("scope configuration is invalid: {error}");
    let decide = |deleted: Deletion| Decision {
        in_scope: false,
        reason: reason.clone(),
        app_roles: Vec::new(),
        assigned_directly: false,
        via_groups: Vec::new(),
        deleted,
    };
    Scope {
        users: dir
            .users
            .iter()
            .map(|(id, u)| (id.clone(), decide(u.deleted)))
            .collect(),
        groups: dir
            .groups
            .iter()
            .map(|(id, g)| (id.clone(), decide(g.deleted)))
            .collect(),
        config_error: Some(error),
    }
}

#[cfg(test)]
mod tests;
