//! The users CSV file.
//!
//! ```csv
//! id,userPrincipalName,displayName,accountEnabled,department,deleted
//! u1,ada@example.com,"Lovelace, Ada",true,Engineering,
//! u2,bob@example.com,Bob,no,Sales,soft
//! ```
//!
//! The header row names the attributes; `id` is required. Cells and header
//! names are trimmed, and an empty cell means the attribute is absent. The
//! columns `id`, `accountEnabled` and `deleted` are recognised whatever their
//! case. `accountEnabled` takes `true/false/yes/no/1/0` (any case); `deleted`
//! takes `soft` or `hard`. Every other cell is kept as text (a mapping can
//! convert it). A UTF-8 byte-order mark is ignored.

use super::{
    Deletion, Location, Records, Section, SourceError, SourceRead, check_id, make_user, read_bytes,
};
use crate::model::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Reads users from a CSV file with a header row (see the module docs of
/// `source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvUsersSource {
    /// The file.
    pub path: PathBuf,
}

impl CsvUsersSource {
    /// A source reading this file.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CsvUsersSource { path: path.into() }
    }
}

impl super::Source for CsvUsersSource {
    fn describe(&self) -> String {
        format!("users CSV file {}", self.path.display())
    }

    fn read(&self) -> Result<SourceRead, SourceError> {
        let mut records = Records::default();
        parse_file(&self.path, &mut records)?;
        Ok(records.finish())
    }
}

const ID: &str = "id";
const ACCOUNT_ENABLED: &str = "accountEnabled";
const DELETED: &str = "deleted";

/// Parse `true/false/yes/no/1/0`, any case.
fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// Parse one users CSV file into `records`.
pub(super) fn parse_file(path: &Path, records: &mut Records) -> Result<(), SourceError> {
    let bytes = read_bytes(path)?;
    let invalid = |message: String| SourceError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes.as_slice());
    let raw_headers = reader
        .byte_headers()
        .map_err(|e| invalid(format!("cannot read the header row: {e}")))?
        .clone();
    if raw_headers.is_empty() || raw_headers.iter().all(|h| h.is_empty()) {
        return Err(invalid(
            "no header row: the first line must name the columns, e.g. id,userPrincipalName,displayName"
                .to_string(),
        ));
    }
    let mut headers = Vec::with_capacity(raw_headers.len());
    let mut seen = BTreeSet::new();
    for (i, h) in raw_headers.iter().enumerate() {
        let name = std::str::from_utf8(h).map_err(|_| {
            invalid(format!(
                "header column {} is not UTF-8 text (the file must be UTF-8)",
                i + 1
            ))
        })?;
        let name = name.trim_start_matches('\u{feff}').trim();
        if name.is_empty() {
            return Err(invalid(format!("header column {} has no name", i + 1)));
        }
        let name = [ID, ACCOUNT_ENABLED, DELETED]
            .into_iter()
            .find(|special| special.eq_ignore_ascii_case(name))
            .unwrap_or(name)
            .to_string();
        if !seen.insert(name.clone()) {
            return Err(invalid(format!("header column {name:?} appears twice")));
        }
        headers.push(name);
    }
    if !seen.contains(ID) {
        return Err(invalid(format!(
            "the header row has no 'id' column (found: {})",
            headers.join(", ")
        )));
    }
    let mut record = csv::ByteRecord::new();
    let mut index = 0;
    loop {
        let position = reader.position().clone();
        let more = match reader.read_byte_record(&mut record) {
            Ok(more) => more,
            Err(e) => {
                index += 1;
                let line = e
                    .position()
                    .map(|p| p.line())
                    .unwrap_or_else(|| position.line());
                records.skip(
                    Location {
                        file: path.to_path_buf(),
                        section: Section::CsvRecord,
                        line: usize::try_from(line).ok(),
                        record: index,
                        id: None,
                    },
                    format!("unreadable CSV record: {e}"),
                );
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        };
        if !more {
            break;
        }
        index += 1;
        let mut loc = Location {
            file: path.to_path_buf(),
            section: Section::CsvRecord,
            line: record
                .position()
                .and_then(|p| usize::try_from(p.line()).ok()),
            record: index,
            id: None,
        };
        match parse_record(&headers, &record, &mut loc) {
            Ok(user) => records.add_user(user),
            Err(message) => records.skip(loc, message),
        }
    }
    Ok(())
}

fn parse_record(
    headers: &[String],
    record: &csv::ByteRecord,
    loc: &mut Location,
) -> Result<super::SourceUser, String> {
    let mut cells = BTreeMap::new();
    let mut bad_utf8 = None;
    for (name, cell) in headers.iter().zip(record.iter()) {
        match std::str::from_utf8(cell) {
            Ok("") => {}
            Ok(text) => {
                cells.insert(name.as_str(), text);
            }
            Err(_) => {
                bad_utf8.get_or_insert(name.as_str());
            }
        }
    }
    // Record the id first so that every issue names it.
    if let Some(id) = cells.get(ID) {
        loc.id = Some((*id).to_string());
    }
    if record.len() != headers.len() {
        return Err(format!(
            "has {} fields but the header has {} columns (check quoting and commas)",
            record.len(),
            headers.len()
        ));
    }
    if let Some(name) = bad_utf8 {
        return Err(format!("column {name:?} is not UTF-8 text"));
    }
    let id = cells
        .get(ID)
        .map(|s| (*s).to_string())
        .ok_or_else(|| "missing 'id' (empty cell)".to_string())?;
    check_id(&id)?;
    let deleted = match cells.remove(DELETED) {
        None => Deletion::None,
        Some(text) => Deletion::parse(text).ok_or_else(|| {
            format!("unknown deletion state {text:?}: use soft or hard, or leave the cell empty")
        })?,
    };
    let mut attributes = BTreeMap::new();
    for (name, text) in cells {
        let value = if name == ACCOUNT_ENABLED {
            Value::Boolean(parse_bool(text).ok_or_else(|| {
                format!("'accountEnabled' must be true/false, yes/no or 1/0, found {text:?}")
            })?)
        } else {
            Value::Text(text.to_string())
        };
        attributes.insert(name.to_string(), value);
    }
    make_user(id, attributes, deleted, loc.clone())
}
