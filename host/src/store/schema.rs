//! Versioned migrations.

use super::StoreError;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

/// Migration *n* (1-based) brings a file from schema version *n − 1* to *n*.
/// Never edit a released migration; append a new one.
const MIGRATIONS: &[&str] = &[
    MIGRATION_1,
    MIGRATION_2,
    MIGRATION_3,
    MIGRATION_4,
    MIGRATION_5,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The service's per-connection control state: paused by the operator, and
/// quarantine (consecutive failed cycles, why, when the next attempt is due).
const MIGRATION_3: &str = r#"
CREATE TABLE connection_state (
    connection          TEXT PRIMARY KEY NOT NULL,
    paused              INTEGER NOT NULL DEFAULT 0,
    quarantine_failures INTEGER NOT NULL DEFAULT 0,
    quarantine_reason   TEXT,
    next_attempt_at     TEXT,
    updated_at          TEXT NOT NULL
) WITHOUT ROWID;
"#;

/// Drift reconciliation: a cycle may be of type `reconcile`. SQLite cannot
/// change a CHECK constraint, so the table is rebuilt with its rows.
const MIGRATION_5: &str = r#"
CREATE TABLE cycles_v5 (
    id          TEXT PRIMARY KEY NOT NULL,
    connection  TEXT NOT NULL,
    cycle_type  TEXT NOT NULL CHECK (cycle_type IN ('initial', 'incremental', 'reconcile')),
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL
                CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    counts      TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO cycles_v5 (id, connection, cycle_type, started_at, finished_at, status, counts)
    SELECT id, connection, cycle_type, started_at, finished_at, status, counts FROM cycles;
DROP TABLE cycles;
ALTER TABLE cycles_v5 RENAME TO cycles;
CREATE INDEX cycles_by_connection ON cycles (connection, started_at);
"#;

/// One writer per connection: the lease a cycle holds (see `leases.rs`).
const MIGRATION_4: &str = r#"
CREATE TABLE leases (
    connection   TEXT PRIMARY KEY NOT NULL,
    owner        TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    host         TEXT NOT NULL,
    command      TEXT NOT NULL,
    fence        INTEGER NOT NULL,
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL
) WITHOUT ROWID;
"#;

const MIGRATION_1: &str = r#"
CREATE TABLE links (
    connection  TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('user', 'group')),
    source_id   TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    exported    TEXT NOT NULL DEFAULT '{}',
    state       TEXT NOT NULL CHECK (state IN ('active', 'disabled', 'deleted')),
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (connection, kind, source_id)
) WITHOUT ROWID;
CREATE INDEX links_by_target ON links (connection, kind, target_id);

CREATE TABLE memberships (
    connection       TEXT NOT NULL,
    group_source_id  TEXT NOT NULL,
    member_source_id TEXT NOT NULL,
    PRIMARY KEY (connection, group_source_id, member_source_id)
) WITHOUT ROWID;
CREATE INDEX memberships_by_member ON memberships (connection, member_source_id);

-- AUTOINCREMENT: an id is never reused, so a stale IntentId cannot complete
-- a later intent.
CREATE TABLE intents (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    connection TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('user', 'group')),
    source_id  TEXT NOT NULL,
    action     TEXT NOT NULL,
    payload    TEXT NOT NULL,
    started_at TEXT NOT NULL
);
CREATE UNIQUE INDEX intents_one_per_object ON intents (connection, kind, source_id);

CREATE TABLE watermarks (
    connection TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE cycles (
    id          TEXT PRIMARY KEY NOT NULL,
    connection  TEXT NOT NULL,
    cycle_type  TEXT NOT NULL CHECK (cycle_type IN ('initial', 'incremental')),
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL
                CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    counts      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX cycles_by_connection ON cycles (connection, started_at);

CREATE TABLE escrow (
    connection      TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('user', 'group')),
    source_id       TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT NOT NULL,
    last_error_code TEXT NOT NULL,
    last_error      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (connection, kind, source_id)
) WITHOUT ROWID;
CREATE INDEX escrow_by_due ON escrow (connection, next_attempt_at);

CREATE TABLE staged (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    connection TEXT NOT NULL,
    cycle_id   TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('user', 'group')),
    source_id  TEXT NOT NULL,
    target_id  TEXT NOT NULL,
    action     TEXT NOT NULL CHECK (action IN ('disable', 'delete')),
    reason     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    decision   TEXT CHECK (decision IS NULL OR decision IN ('allowed', 'rejected')),
    decided_at TEXT,
    done_at    TEXT
);
CREATE INDEX staged_by_connection ON staged (connection, decision, done_at);

CREATE TABLE logs (
    id             INTEGER PRIMARY KEY,
    time           TEXT NOT NULL,
    cycle_id       TEXT,
    change_id      TEXT NOT NULL,
    connection     TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('user', 'group')),
    action         TEXT NOT NULL,
    status         TEXT NOT NULL,
    source_id      TEXT,
    source_display TEXT,
    target_id      TEXT,
    modified       TEXT NOT NULL DEFAULT '[]',
    steps          TEXT NOT NULL DEFAULT '[]',
    error_code     TEXT,
    error_reason   TEXT,
    duration_ms    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX logs_by_time ON logs (time);
CREATE INDEX logs_by_connection ON logs (connection, time);
CREATE INDEX logs_by_cycle ON logs (cycle_id, time);
CREATE INDEX logs_by_source ON logs (source_id, time);
CREATE INDEX logs_by_target ON logs (target_id, time);
"#;

/// Notification history (see `notifications.rs`): de-duplication and rate
/// limiting of notifications across restarts.
const MIGRATION_2: &str = r#"
CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    channel    TEXT NOT NULL,
    connection TEXT NOT NULL,
    kind       TEXT NOT NULL,
    dedup_key  TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('sent', 'suppressed')),
    reported   INTEGER NOT NULL DEFAULT 0,
    closed     INTEGER NOT NULL DEFAULT 0,
    time       TEXT NOT NULL
);
CREATE INDEX notifications_by_key ON notifications (channel, connection, kind, dedup_key, time);
CREATE INDEX notifications_by_channel ON notifications (channel, status, time);
"#;

/// The highest applied version, 0 for a new file.
pub(super) fn current_version(conn: &Connection) -> rusqlite::Result<i64> {
    let exists = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !exists {
        return Ok(0);
    }
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )
}

/// Bring the file to [`SCHEMA_VERSION`], all missing migrations in one
/// transaction, or refuse a newer file.
pub(super) fn migrate(conn: &mut Connection, location: &str) -> Result<(), StoreError> {
    let fail = |version: i64| {
        move |source| StoreError::Migration {
            path: location.to_string(),
            version,
            source,
        }
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail(0))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    INTEGER PRIMARY KEY NOT NULL,
             applied_at TEXT NOT NULL
         )",
    )
    .map_err(fail(0))?;
    let found = current_version(&tx).map_err(fail(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: location.to_string(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (version, sql) in (1..).zip(MIGRATIONS).skip(found as usize) {
        tx.execute_batch(sql).map_err(fail(version))?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
            rusqlite::params![version, super::now()],
        )
        .map_err(fail(version))?;
    }
    tx.commit().map_err(fail(SCHEMA_VERSION))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_5_keeps_the_cycles_of_a_version_4_file_and_takes_reconcile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..4] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(
                "CREATE TABLE schema_version (version INTEGER PRIMARY KEY NOT NULL, applied_at TEXT NOT NULL);
                 INSERT INTO schema_version VALUES (1, 'x'), (2, 'x'), (3, 'x'), (4, 'x');
                 INSERT INTO cycles (id, connection, cycle_type, started_at, status, counts)
                     VALUES ('c1', 't', 'initial', '2026-01-01T00:00:00.000Z', 'succeeded', '{\"n\":1}');",
            )
            .unwrap();
            assert!(
                conn.execute(
                    "INSERT INTO cycles (id, connection, cycle_type, started_at, status)
                     VALUES ('c0', 't', 'reconcile', 'x', 'running')",
                    [],
                )
                .is_err(),
                "version 4 refuses the new type"
            );
        }
        let store = crate::store::Store::open(&path).unwrap();
        let c = store.cycle("c1").unwrap().expect("the old row is kept");
        assert_eq!(c.counts, serde_json::json!({"n": 1}));
        let id = store
            .start_cycle("t", crate::store::CycleType::Reconcile)
            .unwrap();
        assert_eq!(
            store.cycle(&id).unwrap().unwrap().cycle_type,
            crate::store::CycleType::Reconcile
        );
    }
}
