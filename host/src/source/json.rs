//! The JSON directory file.
//!
//! ```json
//! {
//!   "users": [
//!     {"id": "u1", "userPrincipalName": "ada@example.com", "accountEnabled": true},
//!     {"id": "u2", "userPrincipalName": "bob@example.com", "deleted": "soft"}
//!   ],
//!   "groups": [{"id": "g1", "displayName": "Engineering", "members": ["u1", "u2"]}],
//!   "assignments": [{"principal": "g1", "connection": "demo", "role": "User"}]
//! }
//! ```
//!
//! All three lists are optional; any other top-level key is an error, so that
//! a misspelt `"user"` cannot silently empty the directory. The file is
//! parsed once into borrowed [`RawValue`]s; each record's byte offset in the
//! file gives its line number, then the record is parsed on its own so that a
//! bad record only skips itself.

use super::{
    Assignment, DEFAULT_ROLE, Deletion, LineIndex, Location, Records, Section, SourceError,
    SourceGroup, SourceRead, check_id, make_user, read_bytes,
};
use crate::model::Value;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Reads a whole directory from one JSON file (see the module docs of
/// `source` for the format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonFileSource {
    /// The file.
    pub path: PathBuf,
}

impl JsonFileSource {
    /// A source reading this file.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JsonFileSource { path: path.into() }
    }
}

impl super::Source for JsonFileSource {
    fn describe(&self) -> String {
        format!("JSON file {}", self.path.display())
    }

    fn read(&self) -> Result<SourceRead, SourceError> {
        let mut records = Records::default();
        parse_file(&self.path, &mut records)?;
        Ok(records.finish())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document<'a> {
    #[serde(borrow, default)]
    users: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    groups: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    assignments: Vec<&'a RawValue>,
}

type Object = serde_json::Map<String, serde_json::Value>;

/// Parse one JSON directory file into `records`.
pub(super) fn parse_file(path: &Path, records: &mut Records) -> Result<(), SourceError> {
    let bytes = read_bytes(path)?;
    let lines = LineIndex::new(&bytes);
    let syntax = |offset: usize, message: String| {
        let (line, column) = lines.position(offset);
        SourceError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            return Err(syntax(
                e.valid_up_to(),
                "the file is not UTF-8 text (a JSON directory file must be UTF-8)".to_string(),
            ));
        }
    };
    // Tolerate the byte-order mark some Windows tools write; offsets stay
    // relative to `text`, so skip it by position.
    let start = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let body = text.get(start..).unwrap_or("");
    let doc: Document<'_> = serde_json::from_str(body).map_err(|e| {
        let (line, column) = (e.line().max(1), e.column().max(1));
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full);
        let hint = if e.is_data() {
            "; expected {\"users\": [...], \"groups\": [...], \"assignments\": [...]}"
        } else {
            ""
        };
        SourceError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: format!("not a JSON directory file: {message}{hint}"),
        }
    })?;
    let base = text.as_ptr() as usize;
    let line_of = |raw: &RawValue| {
        (raw.get().as_ptr() as usize)
            .checked_sub(base)
            .filter(|o| *o <= text.len())
            .map(|o| lines.position(o).0)
    };
    let location = |section: Section, index: usize, raw: &RawValue| Location {
        file: path.to_path_buf(),
        section,
        line: line_of(raw),
        record: index + 1,
        id: None,
    };
    for (i, raw) in doc.users.iter().enumerate() {
        let mut loc = location(Section::Users, i, raw);
        match parse_object(raw, "user").and_then(|o| parse_user(o, &mut loc)) {
            Ok(u) => records.add_user(u),
            Err(message) => records.skip(loc, message),
        }
    }
    for (i, raw) in doc.groups.iter().enumerate() {
        let mut loc = location(Section::Groups, i, raw);
        match parse_object(raw, "group").and_then(|o| parse_group(o, &mut loc)) {
            Ok(g) => records.add_group(g),
            Err(message) => records.skip(loc, message),
        }
    }
    for (i, raw) in doc.assignments.iter().enumerate() {
        let mut loc = location(Section::Assignments, i, raw);
        match parse_object(raw, "assignment").and_then(|o| parse_assignment(o, &mut loc)) {
            Ok(a) => records.assignments.push(a),
            Err(message) => records.skip(loc, message),
        }
    }
    Ok(())
}

fn parse_object(raw: &RawValue, what: &str) -> Result<Object, String> {
    match serde_json::from_str::<serde_json::Value>(raw.get()) {
        Ok(serde_json::Value::Object(o)) => Ok(o),
        Ok(other) => Err(format!(
            "a {what} must be a JSON object, found {}",
            kind(&other)
        )),
        Err(e) => Err(format!("a {what} is not valid JSON: {e}")),
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Take the id, recording it in the location as soon as it is known.
fn take_id(o: &Object, loc: &mut Location) -> Result<String, String> {
    match o.get("id") {
        None | Some(serde_json::Value::Null) => Err("missing 'id'".to_string()),
        Some(serde_json::Value::String(s)) => {
            loc.id = Some(s.clone());
            check_id(s)?;
            Ok(s.clone())
        }
        Some(other) => Err(format!("'id' must be a string, found {}", kind(other))),
    }
}

fn take_deleted(o: &mut Object) -> Result<Deletion, String> {
    match o.remove("deleted") {
        None | Some(serde_json::Value::Null) => Ok(Deletion::None),
        Some(serde_json::Value::String(s)) => Deletion::parse(&s).ok_or_else(|| {
            format!(
                "unknown deletion state {s:?}: use \"soft\" or \"hard\", or leave 'deleted' out"
            )
        }),
        Some(other) => Err(format!(
            "'deleted' must be \"soft\" or \"hard\", found {}",
            kind(&other)
        )),
    }
}

/// Convert the remaining fields; nulls are left out.
fn attributes(o: Object) -> Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    for (k, v) in o {
        match Value::from_json(&k, &v)? {
            Value::Null => {}
            value => {
                out.insert(k, value);
            }
        }
    }
    Ok(out)
}

/// Attributes of Entra users and groups that hold text: a number, boolean or
/// list there is a type error, not something to coerce. (`employeeId` is
/// left out: directories commonly export it as a number.)
const TEXT_ATTRIBUTES: &[&str] = &[
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "mailNickname",
    "jobTitle",
    "department",
    "companyName",
    "officeLocation",
    "streetAddress",
    "city",
    "state",
    "postalCode",
    "country",
    "usageLocation",
    "preferredLanguage",
    "mobilePhone",
    "employeeType",
    "userType",
    "description",
];

/// Attributes that hold `true` or `false` (never `"yes"` or `1`).
const BOOLEAN_ATTRIBUTES: &[&str] = &["accountEnabled", "mailEnabled", "securityEnabled"];

/// Attributes that hold a list of strings.
const LIST_ATTRIBUTES: &[&str] = &["proxyAddresses", "businessPhones", "otherMails"];

/// Refuse a value of the wrong JSON type for a well-known attribute (names
/// compared case-insensitively, as mappings compare them). Null is absent.
fn check_types(o: &Object) -> Result<(), String> {
    let is = |list: &[&str], k: &str| list.iter().any(|n| n.eq_ignore_ascii_case(k));
    for (k, v) in o {
        let expected = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::String(_) if is(TEXT_ATTRIBUTES, k) => continue,
            serde_json::Value::Bool(_) if is(BOOLEAN_ATTRIBUTES, k) => continue,
            serde_json::Value::Array(_) if is(LIST_ATTRIBUTES, k) => continue,
            _ if is(TEXT_ATTRIBUTES, k) => "a string",
            _ if is(BOOLEAN_ATTRIBUTES, k) => "true or false",
            _ if is(LIST_ATTRIBUTES, k) => "a list of strings",
            _ => continue,
        };
        return Err(format!("'{k}' must be {expected}, found {}", kind(v)));
    }
    Ok(())
}

fn parse_user(mut o: Object, loc: &mut Location) -> Result<super::SourceUser, String> {
    let id = take_id(&o, loc)?;
    let deleted = take_deleted(&mut o)?;
    check_types(&o)?;
    if let Some(m) = o.get("manager")
        && !matches!(m, serde_json::Value::String(_) | serde_json::Value::Null)
    {
        return Err(format!(
            "'manager' must be the manager's user id (a string), found {}",
            kind(m)
        ));
    }
    let attrs = attributes(o)?;
    make_user(id, attrs, deleted, loc.clone())
}

fn parse_group(mut o: Object, loc: &mut Location) -> Result<SourceGroup, String> {
    let id = take_id(&o, loc)?;
    let deleted = take_deleted(&mut o)?;
    check_types(&o)?;
    let members = match o.remove("members") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => {
            let mut out: Vec<String> = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    serde_json::Value::String(s) => {
                        if !out.contains(&s) {
                            out.push(s);
                        }
                    }
                    other => {
                        return Err(format!(
                            "'members' item {} must be a user or group id (a string), found {}",
                            i + 1,
                            kind(&other)
                        ));
                    }
                }
            }
            out
        }
        Some(other) => {
            return Err(format!(
                "'members' must be a list of user and group ids, found {}",
                kind(&other)
            ));
        }
    };
    let mut attrs = attributes(o)?;
    super::add_derived(&id, &mut attrs, None)?;
    Ok(SourceGroup {
        id,
        attributes: attrs,
        members,
        deleted,
        location: loc.clone(),
    })
}

fn parse_assignment(o: Object, loc: &mut Location) -> Result<Assignment, String> {
    let mut principal = None;
    let mut connection = None;
    let mut role = None;
    for (k, v) in &o {
        let slot = match k.as_str() {
            "principal" => &mut principal,
            "connection" => &mut connection,
            "role" => &mut role,
            other => {
                return Err(format!(
                    "unknown field {other:?} in an assignment: use \"principal\", \"connection\" and \"role\""
                ));
            }
        };
        match v {
            serde_json::Value::Null => {}
            serde_json::Value::String(s) => *slot = Some(s.clone()),
            other => return Err(format!("'{k}' must be a string, found {}", kind(other))),
        }
    }
    let principal = principal
        .ok_or_else(|| "missing 'principal' (the id of the assigned user or group)".to_string())?;
    loc.id = Some(principal.clone());
    if principal.trim().is_empty() {
        return Err("'principal' is empty".to_string());
    }
    let connection = connection.filter(|c| !c.trim().is_empty()).ok_or_else(|| {
        "missing 'connection' (the connection this assignment is for)".to_string()
    })?;
    let role = match role {
        None => DEFAULT_ROLE.to_string(),
        Some(r) if r.trim().is_empty() => {
            return Err(format!(
                "'role' is empty: leave it out for the default role {DEFAULT_ROLE:?}"
            ));
        }
        Some(r) => r,
    };
    Ok(Assignment {
        principal,
        connection,
        role,
        location: loc.clone(),
    })
}
