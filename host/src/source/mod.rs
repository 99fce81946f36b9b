//! The source directory: the users, groups and app-role assignments that a
//! connection provisions from (the part Entra ID plays for its provisioning
//! service).
//!
//! How the parts fit:
//! - A [`Source`] reads a [`Directory`] and returns it in a [`SourceRead`]
//!   together with one [`SourceIssue`] per bad record. A bad record (no id, a
//!   duplicate id, a wrong type, an unknown deletion state, an assignment to an
//!   unknown principal, ...) is reported with its [`Location`] (file, section,
//!   1-based record number, line, id) and skipped; it never stops the other
//!   records. Only a whole-file failure (unreadable, not JSON, no CSV header)
//!   is a [`SourceError`].
//! - [`JsonFileSource`] reads a whole directory from one JSON file,
//!   [`CsvUsersSource`] reads users from a CSV file, and [`DirectorySource`]
//!   combines both: CSV users join the JSON file's users, groups and
//!   assignments.
//! - Every reader parses records into [`SourceUser`], [`SourceGroup`] and
//!   [`Assignment`] values and hands them to one shared builder, which rejects
//!   duplicate ids (users and groups share one id space, because a group's
//!   members may be either), drops group members and assignments that refer
//!   to unknown ids, and adds the derived attributes `objectId` (the id) and,
//!   for users, `IsSoftDeleted`.
//! - The `scope` module then decides which of these objects a connection
//!   provisions.
//!
//! A skipped record must not look like a deleted one to the reconcile stage:
//! a malformed source record never deprovisions anything. [`SourceRead::holds`]
//! turns the skipped records into [`Holds`], the rule the cycle applies: a
//! skipped user record holds that user (no disable, no delete, no removal from
//! a group); a skipped group record holds the group (no delete, none of its
//! members removed) and every user and group deprovisioning, since objects may
//! be in scope through it; a record without an id, or a skipped assignment,
//! holds every deprovisioning of its kind. Held actions are logged as held,
//! with the records' files and lines, and happen once the source is fixed.
//! [`SourceRead::skipped_ids`] lists the ids whose records (or assignments)
//! were skipped.
//!
//! Types are checked, not coerced: a well-known Entra attribute of the wrong
//! JSON type (`jobTitle: 123`, `accountEnabled: "yes"`, `proxyAddresses`
//! not a list, a group's `members` not a list) skips its record with an issue.

mod csv_users;
mod json;

pub use csv_users::CsvUsersSource;
pub use json::JsonFileSource;

use crate::model::Value;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// The role an assignment gets when it names none.
pub const DEFAULT_ROLE: &str = "User";

/// Whether, and how, an object is deleted in the source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Deletion {
    /// Not deleted.
    #[default]
    None,
    /// Soft-deleted (Entra's recycle bin): the target object is disabled.
    Soft,
    /// Hard-deleted: the target object is deleted.
    Hard,
}

impl Deletion {
    /// Parse `soft` or `hard` (case-insensitive, surrounding blanks ignored).
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("soft") {
            Some(Deletion::Soft)
        } else if t.eq_ignore_ascii_case("hard") {
            Some(Deletion::Hard)
        } else {
            None
        }
    }

    /// True when soft- or hard-deleted.
    pub fn is_deleted(self) -> bool {
        self != Deletion::None
    }
}

impl fmt::Display for Deletion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Deletion::None => "not deleted",
            Deletion::Soft => "soft-deleted",
            Deletion::Hard => "hard-deleted",
        })
    }
}

/// Which list of a source file a record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// The `users` array of a JSON file.
    Users,
    /// The `groups` array of a JSON file.
    Groups,
    /// The `assignments` array of a JSON file.
    Assignments,
    /// A data row of a CSV file.
    CsvRecord,
}

impl Section {
    fn name(self) -> &'static str {
        match self {
            Section::Users => "users",
            Section::Groups => "groups",
            Section::Assignments => "assignments",
            Section::CsvRecord => "record",
        }
    }
}

/// Where a record comes from.
///
/// Displays as `directory.json: users[3] (id "u-17"), line 42` for JSON
/// (`record` is 1-based: `users[1]` is the first user) and as
/// `users.csv: record 3 (id "u-17"), line 4` for CSV (record 1 is the first
/// row after the header). Assignments show their principal instead of an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, as configured.
    pub file: PathBuf,
    /// The list within the file.
    pub section: Section,
    /// 1-based line where the record starts, when known.
    pub line: Option<usize>,
    /// 1-based index of the record within its section.
    pub record: usize,
    /// The record's id (an assignment's principal), once known.
    pub id: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        match self.section {
            Section::CsvRecord => write!(f, "record {}", self.record)?,
            s => write!(f, "{}[{}]", s.name(), self.record)?,
        }
        if let Some(id) = &self.id {
            let label = if self.section == Section::Assignments {
                "principal"
            } else {
                "id"
            };
            write!(f, " ({label} {id:?})")?;
        }
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        Ok(())
    }
}

/// A user of the source directory.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceUser {
    /// The id (Entra's object id); unique across users and groups.
    pub id: String,
    /// Every attribute of the record (including `id`), plus the derived
    /// `objectId` (= id) and `IsSoftDeleted` (true when soft- or
    /// hard-deleted; `accountEnabled` does not affect it). Absent and null
    /// values are left out.
    pub attributes: BTreeMap<String, Value>,
    /// Deletion state.
    pub deleted: Deletion,
    /// Where the record was read.
    pub location: Location,
}

/// A group of the source directory.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceGroup {
    /// The id; unique across users and groups.
    pub id: String,
    /// Every attribute of the record (including `id`) except `members` and
    /// `deleted`, plus the derived `objectId` (= id).
    pub attributes: BTreeMap<String, Value>,
    /// Ids of member users and groups, in file order, without duplicates; each
    /// refers to an object of the directory.
    pub members: Vec<String>,
    /// Deletion state.
    pub deleted: Deletion,
    /// Where the record was read.
    pub location: Location,
}

/// An app-role assignment of a user or group to a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Id of the assigned user or group.
    pub principal: String,
    /// Name of the connection (the "app") it is assigned to.
    pub connection: String,
    /// The app role; [`DEFAULT_ROLE`] when the record names none.
    pub role: String,
    /// Where the record was read.
    pub location: Location,
}

/// Users, groups and assignments, as read from a source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directory {
    /// Users by id.
    pub users: BTreeMap<String, SourceUser>,
    /// Groups by id.
    pub groups: BTreeMap<String, SourceGroup>,
    /// Assignments in file order.
    pub assignments: Vec<Assignment>,
}

impl Directory {
    /// The user with this id.
    pub fn user(&self, id: &str) -> Option<&SourceUser> {
        self.users.get(id)
    }

    /// The group with this id.
    pub fn group(&self, id: &str) -> Option<&SourceGroup> {
        self.groups.get(id)
    }

    /// The assignments to one connection.
    pub fn assignments_for<'a>(
        &'a self,
        connection: &'a str,
    ) -> impl Iterator<Item = &'a Assignment> + 'a {
        self.assignments
            .iter()
            .filter(move |a| a.connection == connection)
    }
}

/// What became of a bad record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueEffect {
    /// The whole record was left out of the directory.
    RecordSkipped,
    /// The record was kept, but one reference in it (a group member) was
    /// dropped.
    ReferenceDropped,
}

/// A problem with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceIssue {
    /// Where the record is.
    pub location: Location,
    /// What is wrong.
    pub message: String,
    /// What the reader did about it.
    pub effect: IssueEffect,
}

impl fmt::Display for SourceIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let effect = match self.effect {
            IssueEffect::RecordSkipped => "record skipped",
            IssueEffect::ReferenceDropped => "reference dropped",
        };
        write!(f, "{}: {} ({effect})", self.location, self.message)
    }
}

/// The result of reading a source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceRead {
    /// The objects that could be read.
    pub directory: Directory,
    /// One entry per bad record, in the order found.
    pub issues: Vec<SourceIssue>,
}

impl SourceRead {
    /// Ids named by skipped records: users and groups whose record was
    /// skipped, and principals of skipped assignments. The reconcile stage
    /// should leave their target objects alone instead of treating them as
    /// gone or unassigned.
    pub fn skipped_ids(&self) -> BTreeSet<String> {
        self.issues
            .iter()
            .filter(|i| i.effect == IssueEffect::RecordSkipped)
            .filter_map(|i| i.location.id.clone())
            .collect()
    }

    /// What the skipped records of this read hold this cycle (see [`Holds`]).
    pub fn holds(&self) -> Holds {
        let mut h = Holds::default();
        let skipped: Vec<&SourceIssue> = self
            .issues
            .iter()
            .filter(|i| i.effect == IssueEffect::RecordSkipped)
            .collect();
        let skipped_objects: BTreeSet<&str> = skipped
            .iter()
            .filter(|i| i.location.section != Section::Assignments)
            .filter_map(|i| i.location.id.as_deref())
            .collect();
        for issue in skipped {
            let l = &issue.location;
            match (l.section, l.id.as_deref()) {
                (Section::Users | Section::CsvRecord, Some(id)) => {
                    h.users.insert(id.to_string());
                }
                (Section::Users | Section::CsvRecord, None) => h.all_users = true,
                (Section::Groups, id) => {
                    if let Some(id) = id {
                        h.groups.insert(id.to_string());
                    }
                    h.all_users = true;
                    h.all_groups = true;
                }
                // An assignment skipped because its principal's record was:
                // that record holds what it can affect.
                (Section::Assignments, Some(p)) if skipped_objects.contains(p) => continue,
                (Section::Assignments, _) => {
                    h.all_users = true;
                    h.all_groups = true;
                }
            }
            h.causes.push(l.clone());
        }
        h
    }
}

/// What a cycle must not deprovision because records of the source were
/// skipped: the rule that a malformed record never deprovisions anything.
///
/// - a skipped user record with a known id holds that user: it is neither
///   disabled nor deleted, and not removed from any group;
/// - a skipped group record with a known id holds that group (not deleted,
///   none of its current target members removed) and, because users and
///   groups may be in scope through it, every user and group deprovisioning;
/// - a skipped record without an id (user or group) holds every
///   deprovisioning of its kind (a group without an id holds users too, for
///   the same reason as above);
/// - a skipped assignment holds every user and group deprovisioning, unless
///   its principal's own record was skipped (it is then held already).
///
/// "Holds every user deprovisioning" includes the membership removals of
/// users that are not active this cycle. Held actions are not failures: they
/// happen in a later cycle once the source is fixed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holds {
    /// Ids of skipped user records.
    pub users: BTreeSet<String>,
    /// Ids of skipped group records.
    pub groups: BTreeSet<String>,
    /// Whether every user disable/delete is held.
    pub all_users: bool,
    /// Whether every group delete is held.
    pub all_groups: bool,
    /// The skipped records that cause the holds, in the order found.
    pub causes: Vec<Location>,
}

impl Holds {
    /// How many causes [`Holds::reason`] lists before "and N more".
    const SHOWN: usize = 10;

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.causes.is_empty()
    }

    /// Whether disabling or deleting this user is held.
    pub fn holds_user(&self, id: &str) -> bool {
        self.all_users || self.users.contains(id)
    }

    /// Whether deleting this group is held.
    pub fn holds_group(&self, id: &str) -> bool {
        self.all_groups || self.groups.contains(id)
    }

    /// Whether removing `member` from `group` is held; `member_active` tells
    /// whether the member is a user that stays active this cycle (its removal
    /// then follows from the group's own, well-formed, member list).
    pub fn holds_removal(&self, group: &str, member: &str, member_active: bool) -> bool {
        self.groups.contains(group)
            || self.users.contains(member)
            || (self.all_users && !member_active)
    }

    /// Why an action is held, for logs and summaries:
    /// `held: the source had 2 malformed records: directory.json:3 (users[1]), ...`.
    pub fn reason(&self) -> String {
        let mut shown: Vec<String> = self
            .causes
            .iter()
            .take(Self::SHOWN)
            .map(|l| {
                let place = match l.section {
                    Section::CsvRecord => format!("record {}", l.record),
                    s => format!("{}[{}]", s.name(), l.record),
                };
                match l.line {
                    Some(line) => format!("{}:{line} ({place})", l.file.display()),
                    None => format!("{} ({place})", l.file.display()),
                }
            })
            .collect();
        if self.causes.len() > Self::SHOWN {
            shown.push(format!("and {} more", self.causes.len() - Self::SHOWN));
        }
        let n = self.causes.len();
        format!(
            "held: the source had {n} malformed record{}: {}; fix them and the next cycle will catch up",
            if n == 1 { "" } else { "s" },
            shown.join(", ")
        )
    }
}

/// A failure that prevents reading a source at all.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file could not be read.
    #[error("cannot read source file {}: {source}", path.display())]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid JSON or UTF-8, or its top level has the wrong
    /// shape.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        /// Path.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The file cannot be used as a whole (e.g. a CSV header without `id`).
    #[error("{}: {message}", path.display())]
    Invalid {
        /// Path.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A [`DirectorySource`] with neither file configured.
    #[error("no source file configured: set a JSON directory file, a users CSV file, or both")]
    NothingConfigured,
}

/// Something that reads the source directory.
pub trait Source: Send + Sync {
    /// A short description for logs, e.g. `JSON file directory.json`.
    fn describe(&self) -> String;
    /// Read everything. Bad records become issues; only whole-file failures
    /// are errors.
    fn read(&self) -> Result<SourceRead, SourceError>;
}

/// A JSON directory file and/or a users CSV file, read as one directory.
///
/// Users from the CSV file are added to the JSON file's users; an id present
/// in both is an issue and the CSV record is skipped. Group members and
/// assignments in the JSON file may refer to CSV users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorySource {
    /// The JSON directory file (users, groups, assignments).
    pub json: Option<PathBuf>,
    /// The users CSV file.
    pub users_csv: Option<PathBuf>,
}

impl Source for DirectorySource {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &self.json {
            parts.push(format!("JSON file {}", p.display()));
        }
        if let Some(p) = &self.users_csv {
            parts.push(format!("users CSV file {}", p.display()));
        }
        if parts.is_empty() {
            "no source files".to_string()
        } else {
            parts.join(" + ")
        }
    }

    fn read(&self) -> Result<SourceRead, SourceError> {
        if self.json.is_none() && self.users_csv.is_none() {
            return Err(SourceError::NothingConfigured);
        }
        let mut records = Records::default();
        if let Some(p) = &self.json {
            json::parse_file(p, &mut records)?;
        }
        if let Some(p) = &self.users_csv {
            csv_users::parse_file(p, &mut records)?;
        }
        Ok(records.finish())
    }
}

/// A user or group as parsed.
#[derive(Debug)]
enum Parsed {
    User(SourceUser),
    Group(SourceGroup),
}

/// Records as parsed, before ids and references are checked.
#[derive(Debug, Default)]
pub(crate) struct Records {
    /// Users and groups in the order read: the first claim of an id wins.
    objects: Vec<Parsed>,
    assignments: Vec<Assignment>,
    issues: Vec<SourceIssue>,
    /// Ids of records that were skipped while parsing.
    skipped: BTreeSet<String>,
}

impl Records {
    fn add_user(&mut self, user: SourceUser) {
        self.objects.push(Parsed::User(user));
    }

    fn add_group(&mut self, group: SourceGroup) {
        self.objects.push(Parsed::Group(group));
    }

    fn skip(&mut self, location: Location, message: String) {
        if let Some(id) = &location.id
            && location.section != Section::Assignments
        {
            self.skipped.insert(id.clone());
        }
        self.issues.push(SourceIssue {
            location,
            message,
            effect: IssueEffect::RecordSkipped,
        });
    }

    /// Check ids and references and build the directory.
    fn finish(self) -> SourceRead {
        let Records {
            objects,
            assignments,
            mut issues,
            skipped,
        } = self;
        let mut dir = Directory::default();
        let mut first_seen: BTreeMap<String, Location> = BTreeMap::new();
        let mut duplicate = |id: &str, location: &Location, issues: &mut Vec<SourceIssue>| {
            if let Some(first) = first_seen.get(id) {
                issues.push(SourceIssue {
                    location: location.clone(),
                    message: format!(
                        "duplicate id {id:?}: already used by {first}; ids are unique across users and groups"
                    ),
                    effect: IssueEffect::RecordSkipped,
                });
                true
            } else {
                first_seen.insert(id.to_string(), location.clone());
                false
            }
        };
        for object in objects {
            match object {
                Parsed::User(u) => {
                    if !duplicate(&u.id, &u.location, &mut issues) {
                        dir.users.insert(u.id.clone(), u);
                    }
                }
                Parsed::Group(g) => {
                    if !duplicate(&g.id, &g.location, &mut issues) {
                        dir.groups.insert(g.id.clone(), g);
                    }
                }
            }
        }
        let known =
            |id: &str, dir: &Directory| dir.users.contains_key(id) || dir.groups.contains_key(id);
        let unknown = |id: &str, what: &str| {
            if skipped.contains(id) {
                format!("{what} {id:?} refers to a record that was skipped (see its issue)")
            } else {
                format!("{what} {id:?} is not a user or group of the directory")
            }
        };
        let group_ids: Vec<String> = dir.groups.keys().cloned().collect();
        for gid in group_ids {
            let Some(group) = dir.groups.get(&gid) else {
                continue;
            };
            let (keep, drop): (Vec<String>, Vec<String>) =
                group.members.iter().cloned().partition(|m| known(m, &dir));
            for m in drop {
                issues.push(SourceIssue {
                    location: group.location.clone(),
                    message: unknown(&m, "member"),
                    effect: IssueEffect::ReferenceDropped,
                });
            }
            if let Some(group) = dir.groups.get_mut(&gid) {
                group.members = keep;
            }
        }
        for a in assignments {
            if known(&a.principal, &dir) {
                dir.assignments.push(a);
            } else {
                issues.push(SourceIssue {
                    message: unknown(&a.principal, "principal"),
                    location: a.location,
                    effect: IssueEffect::RecordSkipped,
                });
            }
        }
        SourceRead {
            directory: dir,
            issues,
        }
    }
}

/// Attribute names the reader derives; a record may only repeat them with the
/// derived value.
const OBJECT_ID: &str = "objectId";
const IS_SOFT_DELETED: &str = "IsSoftDeleted";

/// Add the derived attributes, refusing records that set them differently.
fn add_derived(
    id: &str,
    attributes: &mut BTreeMap<String, Value>,
    deleted: Option<Deletion>,
) -> Result<(), String> {
    let object_id = Value::Text(id.to_string());
    match attributes.get(OBJECT_ID) {
        Some(v) if *v != object_id => {
            return Err(format!(
                "'{OBJECT_ID}' is derived from 'id' and must equal it when given"
            ));
        }
        _ => {}
    }
    attributes.insert(OBJECT_ID.to_string(), object_id);
    if let Some(deleted) = deleted {
        let flag = Value::Boolean(deleted.is_deleted());
        match attributes.get(IS_SOFT_DELETED) {
            Some(v) if *v != flag => {
                return Err(format!(
                    "'{IS_SOFT_DELETED}' is derived from 'deleted' and must agree with it when given; \
                     set \"deleted\": \"soft\" instead"
                ));
            }
            _ => {}
        }
        attributes.insert(IS_SOFT_DELETED.to_string(), flag);
    }
    Ok(())
}

/// Check an id value.
fn check_id(id: &str) -> Result<(), String> {
    if id.trim().is_empty() {
        Err("'id' is empty".to_string())
    } else if id.trim() != id {
        Err(format!("id {id:?} has leading or trailing blanks"))
    } else {
        Ok(())
    }
}

/// Build a user from parsed attributes (which hold `id`).
fn make_user(
    id: String,
    mut attributes: BTreeMap<String, Value>,
    deleted: Deletion,
    location: Location,
) -> Result<SourceUser, String> {
    add_derived(&id, &mut attributes, Some(deleted))?;
    Ok(SourceUser {
        id,
        attributes,
        deleted,
        location,
    })
}

/// 1-based line numbers for byte offsets.
struct LineIndex {
    newlines: Vec<usize>,
}

impl LineIndex {
    fn new(text: &[u8]) -> Self {
        LineIndex {
            newlines: text
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        }
    }

    /// 1-based line and column (in bytes) of an offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let before = self.newlines.partition_point(|&n| n < offset);
        let line_start = if before == 0 {
            0
        } else {
            self.newlines[before - 1] + 1
        };
        (before + 1, offset - line_start + 1)
    }
}

/// Read a file, mapping failures to [`SourceError::Read`].
fn read_bytes(path: &Path) -> Result<Vec<u8>, SourceError> {
    std::fs::read(path).map_err(|source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests;
