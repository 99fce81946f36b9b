//! The provisioning log: one record per object per cycle, with filters,
//! pruning and JSON/CSV export.

use super::cycles::new_uuid;
use super::kinds::{json_column, text_enum, to_json_text};
use super::{Store, StoreError, format_time, now, parse_time, sql};
use crate::model::ObjectKind;
use rusqlite::params_from_iter;
use rusqlite::types::Value as SqlValue;
use std::time::SystemTime;

text_enum! {
    /// What was done to the object.
    pub enum LogAction {
        /// Created in the target.
        Create => "create",
        /// A create that found the object already in the target (by its
        /// matching attributes, or after the create's 409): linked to it and
        /// updated where its attributes differed.
        Match => "match",
        /// Attributes updated.
        Update => "update",
        /// Enabled again.
        Enable => "enable",
        /// Disabled.
        Disable => "disable",
        /// Deleted.
        Delete => "delete",
        /// A disable held by accidental-deletion prevention.
        StagedDisable => "staged-disable",
        /// A delete held by accidental-deletion prevention.
        StagedDelete => "staged-delete",
        /// Deliberately not acted on.
        Skip => "skip",
        /// A difference between the target and what was exported, found by
        /// `provisio reconcile` and reported rather than repaired (an
        /// orphan, an object deleted in the target under
        /// `deleted_in_target = "report"`, a repair held back).
        Drift => "drift",
        /// Anything else (e.g. nothing to do, a link refreshed).
        Other => "other",
    }
}

text_enum! {
    /// Outcome of a record or of one step.
    pub enum LogStatus {
        /// Done.
        Success => "success",
        /// Failed.
        Failure => "failure",
        /// Not attempted.
        Skipped => "skipped",
        /// Done, with something worth attention.
        Warning => "warning",
    }
}

text_enum! {
    /// The steps of processing one object, in order.
    pub enum StepKind {
        /// Read from the source.
        Import => "import",
        /// Scope evaluation.
        Scoping => "scoping",
        /// Lookup in the target.
        Matching => "matching",
        /// Deciding the action.
        Processing => "processing",
        /// Resolving references (manager, members).
        ReferenceResolution => "reference-resolution",
        /// The write to the target.
        Export => "export",
        /// What `provisio reconcile` found in the target (drift).
        Drift => "drift",
    }
}

/// One attribute changed by the action.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModifiedProperty {
    /// The target attribute.
    pub name: String,
    /// The value before (as last exported), if any.
    pub old: Option<serde_json::Value>,
    /// The value after, if any (`None`: cleared).
    pub new: Option<serde_json::Value>,
}

/// One step of processing an object.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    /// Which step.
    pub step: StepKind,
    /// Its outcome.
    pub status: LogStatus,
    /// What happened, for people.
    pub detail: String,
}

/// One provisioning log record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogRecord {
    /// Row id; `None` until appended (ignored by [`Store::append_log`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// When (RFC 3339; stored normalised to UTC milliseconds).
    pub time: String,
    /// The cycle, if the record comes from one (not for provision on demand).
    pub cycle_id: Option<String>,
    /// Unique id of this change.
    pub change_id: String,
    /// The connection.
    pub connection: String,
    /// User or group.
    pub kind: ObjectKind,
    /// What was done.
    pub action: LogAction,
    /// The outcome.
    pub status: LogStatus,
    /// The source object's id.
    pub source_id: Option<String>,
    /// The source object's display name.
    pub source_display: Option<String>,
    /// The target object's id.
    pub target_id: Option<String>,
    /// Changed attributes.
    #[serde(default)]
    pub modified: Vec<ModifiedProperty>,
    /// The steps, in order.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Error code on failure.
    pub error_code: Option<String>,
    /// Error reason on failure.
    pub error_reason: Option<String>,
    /// How long processing the object took.
    pub duration_ms: u64,
}

impl LogRecord {
    /// A record timed now with a fresh change id and everything else empty.
    pub fn new(
        connection: impl Into<String>,
        kind: ObjectKind,
        action: LogAction,
        status: LogStatus,
    ) -> Self {
        LogRecord {
            id: None,
            time: now(),
            cycle_id: None,
            change_id: new_uuid(),
            connection: connection.into(),
            kind,
            action,
            status,
            source_id: None,
            source_display: None,
            target_id: None,
            modified: Vec::new(),
            steps: Vec::new(),
            error_code: None,
            error_reason: None,
            duration_ms: 0,
        }
    }
}

/// Filters for [`Store::query_logs`]; every field set must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogQuery {
    /// Only this connection.
    pub connection: Option<String>,
    /// Only this cycle.
    pub cycle_id: Option<String>,
    /// Only records whose source id **or** target id is this (the "user"
    /// filter of the log view).
    pub object_id: Option<String>,
    /// Only this action.
    pub action: Option<LogAction>,
    /// Only this status.
    pub status: Option<LogStatus>,
    /// Only records at or after this time.
    pub since: Option<SystemTime>,
    /// Only records before this time.
    pub until: Option<SystemTime>,
    /// At most this many records (newest first).
    pub limit: Option<usize>,
}

const LOG_COLUMNS: &str = "id, time, cycle_id, change_id, connection, kind, action, status, \
     source_id, source_display, target_id, modified, steps, error_code, error_reason, duration_ms";

fn log_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<LogRecord> {
    let duration: i64 = row.get(15)?;
    Ok(LogRecord {
        id: Some(row.get(0)?),
        time: row.get(1)?,
        cycle_id: row.get(2)?,
        change_id: row.get(3)?,
        connection: row.get(4)?,
        kind: row.get(5)?,
        action: row.get(6)?,
        status: row.get(7)?,
        source_id: row.get(8)?,
        source_display: row.get(9)?,
        target_id: row.get(10)?,
        modified: json_column(row, 11)?,
        steps: json_column(row, 12)?,
        error_code: row.get(13)?,
        error_reason: row.get(14)?,
        duration_ms: u64::try_from(duration).unwrap_or(0),
    })
}

impl Store {
    /// Append a record; returns its id. The time must be RFC 3339 (any
    /// offset); it is stored as UTC with milliseconds so filters compare
    /// correctly.
    pub fn append_log(&self, record: &LogRecord) -> Result<i64, StoreError> {
        const OP: &str = "append_log";
        let time = parse_time(&record.time).ok_or_else(|| StoreError::Invalid {
            op: OP,
            table: "logs",
            reason: format!("time '{}' is not an RFC 3339 timestamp", record.time),
        })?;
        let modified = to_json_text(&record.modified, OP, "logs", "modified")?;
        let steps = to_json_text(&record.steps, OP, "logs", "steps")?;
        let duration = i64::try_from(record.duration_ms).unwrap_or(i64::MAX);
        let conn = self.lock();
        conn.execute(
            &format!(
                "INSERT INTO logs ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                &LOG_COLUMNS["id, ".len()..]
            ),
            rusqlite::params![
                format_time(time),
                record.cycle_id,
                record.change_id,
                record.connection,
                record.kind,
                record.action,
                record.status,
                record.source_id,
                record.source_display,
                record.target_id,
                modified,
                steps,
                record.error_code,
                record.error_reason,
                duration
            ],
        )
        .map_err(sql(OP, "logs"))?;
        Ok(conn.last_insert_rowid())
    }

    /// Records matching the query, newest first.
    pub fn query_logs(&self, query: &LogQuery) -> Result<Vec<LogRecord>, StoreError> {
        const OP: &str = "query_logs";
        let mut clauses: Vec<&str> = Vec::new();
        let mut args: Vec<SqlValue> = Vec::new();
        let text_arg = |v: &str| SqlValue::Text(v.to_string());
        if let Some(c) = &query.connection {
            clauses.push("connection = ?");
            args.push(text_arg(c));
        }
        if let Some(c) = &query.cycle_id {
            clauses.push("cycle_id = ?");
            args.push(text_arg(c));
        }
        if let Some(o) = &query.object_id {
            clauses.push("(source_id = ? OR target_id = ?)");
            args.push(text_arg(o));
            args.push(text_arg(o));
        }
        if let Some(a) = query.action {
            clauses.push("action = ?");
            args.push(text_arg(a.as_str()));
        }
        if let Some(s) = query.status {
            clauses.push("status = ?");
            args.push(text_arg(s.as_str()));
        }
        if let Some(t) = query.since {
            clauses.push("time >= ?");
            args.push(SqlValue::Text(format_time(t)));
        }
        if let Some(t) = query.until {
            clauses.push("time < ?");
            args.push(SqlValue::Text(format_time(t)));
        }
        let mut text = format!("SELECT {LOG_COLUMNS} FROM logs");
        if !clauses.is_empty() {
            text.push_str(" WHERE ");
            text.push_str(&clauses.join(" AND "));
        }
        text.push_str(" ORDER BY time DESC, id DESC");
        if let Some(limit) = query.limit {
            args.push(SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
            text.push_str(" LIMIT ?");
        }
        let conn = self.lock();
        let mut stmt = conn.prepare(&text).map_err(sql(OP, "logs"))?;
        stmt.query_map(params_from_iter(args), log_from_row)
            .and_then(Iterator::collect)
            .map_err(sql(OP, "logs"))
    }

    /// Delete records older than `older_than` (retention); returns how many.
    pub fn prune_logs(&self, older_than: SystemTime) -> Result<usize, StoreError> {
        self.lock()
            .execute(
                "DELETE FROM logs WHERE time < ?1",
                [format_time(older_than)],
            )
            .map_err(sql("prune_logs", "logs"))
    }
}

/// Records as a pretty-printed JSON array (the fields of [`LogRecord`]).
///
/// Connector-supplied text (target ids, errors, step details) is data here:
/// the JSON holds it exactly, with the characters a terminal would act on
/// (DEL, C1, bidi and invisible format characters) written as `\uXXXX`
/// escapes ([`crate::untrusted::json_safe`]).
pub fn export_json(records: &[LogRecord]) -> Result<String, StoreError> {
    serde_json::to_string_pretty(records)
        .map(|j| crate::untrusted::json_safe(&j))
        .map_err(|e| StoreError::Export {
            format: "json",
            reason: e.to_string(),
        })
}

/// The CSV header of [`export_csv`].
const CSV_HEADER: [&str; 14] = [
    "time",
    "cycle_id",
    "change_id",
    "connection",
    "kind",
    "action",
    "status",
    "source_id",
    "source_display",
    "target_id",
    "modified",
    "error_code",
    "error_reason",
    "duration_ms",
];

/// Records as CSV with a header row: time, cycle_id, change_id, connection,
/// kind, action, status, source_id, source_display, target_id, modified,
/// error_code, error_reason, duration_ms. `modified` is compact:
/// `name: old -> new; ...` with values as JSON and `(none)` for absent.
///
/// Every text field is untrusted (it may come from the connector or the
/// source) and is escaped with [`crate::untrusted::escape`]: control
/// characters, CR/LF and bidi controls appear visibly, so a field is one line
/// and nothing in the file acts on a terminal. A field that a spreadsheet
/// would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return: a connector's target id `=HYPERLINK(...)`, say) is
/// prefixed with `'`, as OWASP recommends, so it opens as text.
pub fn export_csv(records: &[LogRecord]) -> Result<String, StoreError> {
    let fail = |e: csv::Error| StoreError::Export {
        format: "csv",
        reason: e.to_string(),
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER).map_err(fail)?;
    for r in records {
        let modified = r
            .modified
            .iter()
            .map(|m| format!("{}: {} -> {}", m.name, compact(&m.old), compact(&m.new)))
            .collect::<Vec<_>>()
            .join("; ");
        let kind = r.kind.to_string();
        let duration = r.duration_ms.to_string();
        let esc = |s: Option<&str>| csv_cell(&crate::untrusted::escape(s.unwrap_or("")));
        w.write_record([
            esc(Some(&r.time)),
            esc(r.cycle_id.as_deref()),
            esc(Some(&r.change_id)),
            esc(Some(&r.connection)),
            kind,
            r.action.as_str().to_string(),
            r.status.as_str().to_string(),
            esc(r.source_id.as_deref()),
            esc(r.source_display.as_deref()),
            esc(r.target_id.as_deref()),
            esc(Some(&modified)),
            esc(r.error_code.as_deref()),
            esc(r.error_reason.as_deref()),
            duration,
        ])
        .map_err(fail)?;
    }
    let bytes = w.into_inner().map_err(|e| StoreError::Export {
        format: "csv",
        reason: e.to_string(),
    })?;
    String::from_utf8(bytes).map_err(|e| StoreError::Export {
        format: "csv",
        reason: e.to_string(),
    })
}

/// Neutralise a cell a spreadsheet would evaluate as a formula.
fn csv_cell(text: &str) -> String {
    // `escape` has already shown tab and CR as `\t` and `\r`; the raw
    // characters are checked too in case that ever changes.
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

fn compact(v: &Option<serde_json::Value>) -> String {
    match v {
        None => "(none)".to_string(),
        Some(v) => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> String {
        format_time(UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs))
    }

    fn record(secs: u64, conn: &str, src: &str, tgt: Option<&str>, status: LogStatus) -> LogRecord {
        let mut r = LogRecord::new(conn, ObjectKind::User, LogAction::Update, status);
        r.time = at(secs);
        r.cycle_id = Some("cy1".into());
        r.source_id = Some(src.into());
        r.source_display = Some(format!("User {src}"));
        r.target_id = tgt.map(str::to_string);
        r.duration_ms = 12;
        r
    }

    #[test]
    fn append_and_read_back_everything() {
        let s = Store::open_in_memory().unwrap();
        let mut r = record(0, "c1", "u1", Some("t1"), LogStatus::Failure);
        r.modified = vec![
            ModifiedProperty {
                name: "displayName".into(),
                old: Some(json!("Ann")),
                new: Some(json!("Anne")),
            },
            ModifiedProperty {
                name: "title".into(),
                old: None,
                new: Some(json!("CEO")),
            },
        ];
        r.steps = vec![
            Step {
                step: StepKind::Import,
                status: LogStatus::Success,
                detail: "read".into(),
            },
            Step {
                step: StepKind::ReferenceResolution,
                status: LogStatus::Failure,
                detail: "manager unknown".into(),
            },
        ];
        r.error_code = Some("Http500".into());
        r.error_reason = Some("target said no".into());
        let id = s.append_log(&r).unwrap();
        let got = s.query_logs(&LogQuery::default()).unwrap();
        assert_eq!(got.len(), 1);
        let mut expected = r.clone();
        expected.id = Some(id);
        assert_eq!(got[0], expected);
    }

    #[test]
    fn time_is_normalised_and_validated() {
        let s = Store::open_in_memory().unwrap();
        let mut r = record(0, "c1", "u1", None, LogStatus::Success);
        r.time = "2024-06-01T14:00:00+02:00".into();
        s.append_log(&r).unwrap();
        let got = s.query_logs(&LogQuery::default()).unwrap();
        assert_eq!(got[0].time, "2024-06-01T12:00:00.000Z");
        r.time = "yesterday".into();
        let err = s.append_log(&r).unwrap_err();
        assert!(
            err.to_string().contains("append_log on table logs"),
            "{err}"
        );
    }

    #[test]
    fn filters_order_limit_and_prune() {
        let s = Store::open_in_memory().unwrap();
        s.append_log(&record(10, "c1", "u1", Some("t1"), LogStatus::Success))
            .unwrap();
        s.append_log(&record(20, "c1", "u2", Some("u1"), LogStatus::Failure))
            .unwrap();
        let mut other_cycle = record(30, "c1", "u3", None, LogStatus::Skipped);
        other_cycle.cycle_id = Some("cy2".into());
        other_cycle.action = LogAction::Create;
        s.append_log(&other_cycle).unwrap();
        s.append_log(&record(40, "c2", "u1", Some("t1"), LogStatus::Success))
            .unwrap();

        let q = |q: LogQuery| -> Vec<String> {
            s.query_logs(&q)
                .unwrap()
                .into_iter()
                .map(|r| format!("{}/{}", r.connection, r.source_id.unwrap()))
                .collect()
        };
        assert_eq!(q(LogQuery::default()), ["c2/u1", "c1/u3", "c1/u2", "c1/u1"]);
        let conn = |c: &str| LogQuery {
            connection: Some(c.into()),
            ..Default::default()
        };
        assert_eq!(q(conn("c1")).len(), 3);
        // The object filter matches the source id or the target id.
        assert_eq!(
            q(LogQuery {
                object_id: Some("u1".into()),
                ..conn("c1")
            }),
            ["c1/u2", "c1/u1"]
        );
        assert_eq!(
            q(LogQuery {
                object_id: Some("t1".into()),
                ..Default::default()
            }),
            ["c2/u1", "c1/u1"]
        );
        assert_eq!(
            q(LogQuery {
                cycle_id: Some("cy2".into()),
                ..Default::default()
            }),
            ["c1/u3"]
        );
        assert_eq!(
            q(LogQuery {
                action: Some(LogAction::Create),
                ..Default::default()
            }),
            ["c1/u3"]
        );
        assert_eq!(
            q(LogQuery {
                status: Some(LogStatus::Success),
                ..conn("c1")
            }),
            ["c1/u1"]
        );
        let t = |secs| Some(parse_time(&at(secs)).unwrap());
        assert_eq!(
            q(LogQuery {
                since: t(20),
                until: t(40),
                ..Default::default()
            }),
            ["c1/u3", "c1/u2"]
        );
        assert_eq!(
            q(LogQuery {
                limit: Some(2),
                ..Default::default()
            }),
            ["c2/u1", "c1/u3"]
        );

        assert_eq!(s.prune_logs(t(30).unwrap()).unwrap(), 2);
        assert_eq!(q(LogQuery::default()), ["c2/u1", "c1/u3"]);
    }

    #[test]
    fn exports() {
        let mut r = record(0, "c1", "u1", Some("t1"), LogStatus::Failure);
        r.source_display = Some("Doe, \"Jo\"".into());
        r.modified = vec![
            ModifiedProperty {
                name: "title".into(),
                old: Some(json!("a")),
                new: Some(json!("b")),
            },
            ModifiedProperty {
                name: "active".into(),
                old: None,
                new: Some(json!(false)),
            },
        ];
        r.error_code = Some("E1".into());
        let csv_text = export_csv(std::slice::from_ref(&r)).unwrap();
        let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
        assert_eq!(reader.headers().unwrap(), CSV_HEADER.as_slice());
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(&row[0], r.time);
        assert_eq!(&row[4], "user");
        assert_eq!(&row[5], "update");
        assert_eq!(&row[6], "failure");
        assert_eq!(&row[8], "Doe, \"Jo\"");
        assert_eq!(&row[10], "title: \"a\" -> \"b\"; active: (none) -> false");
        assert_eq!(&row[11], "E1");
        assert_eq!(&row[12], "");
        assert_eq!(&row[13], "12");
        assert_eq!(export_csv(&[]).unwrap().lines().count(), 1);

        let json_text = export_json(std::slice::from_ref(&r)).unwrap();
        let back: Vec<LogRecord> = serde_json::from_str(&json_text).unwrap();
        assert_eq!(back, vec![r]);
        let v: serde_json::Value = serde_json::from_str(&json_text).unwrap();
        assert_eq!(v[0]["action"], "update");
        assert_eq!(v[0]["kind"], "user");
        assert_eq!(v[0]["modified"][1]["old"], serde_json::Value::Null);
    }

    #[test]
    fn csv_cells_a_spreadsheet_would_evaluate_open_as_text() {
        let mut r = record(
            0,
            "c1",
            "u1",
            Some("=HYPERLINK(\"http://x\",\"y\")"),
            LogStatus::Failure,
        );
        r.source_display = Some("+1+cmd|' /C calc'!A0".into());
        r.error_reason = Some("@SUM(A1)".into());
        r.error_code = Some("-2+3".into());
        r.source_id = Some("\tlead".into());
        let csv_text = export_csv(std::slice::from_ref(&r)).unwrap();
        let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
        let row = reader.records().next().unwrap().unwrap();
        assert_eq!(&row[9], "'=HYPERLINK(\"http://x\",\"y\")");
        assert_eq!(&row[8], "'+1+cmd|' /C calc'!A0");
        assert_eq!(&row[12], "'@SUM(A1)");
        assert_eq!(&row[11], "'-2+3");
        assert_eq!(&row[7], "\\tlead", "a tab is shown escaped, not raw");
        assert_eq!(&row[3], "c1", "ordinary text untouched");
    }
}
