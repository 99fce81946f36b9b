//! The state store: everything Provisio must remember between cycles and
//! across crashes, in one embedded SQLite file.
//!
//! # Schema
//!
//! The file holds one table per concern. Every time is RFC 3339 UTC text with
//! millisecond precision and a fixed width (`2025-01-02T03:04:05.678Z`, see
//! [`format_time`]), so text order is time order. JSON columns are written
//! with `serde_json`. Object kinds are stored as `'user'` / `'group'`.
//!
//! | table | key | what it holds |
//! |---|---|---|
//! | `schema_version` | `version` | one row per applied migration |
//! | `links` | (connection, kind, source_id) | the target id of each provisioned object, a fingerprint of its source state, the attributes last exported (JSON object) and its state (`active` / `disabled` / `deleted`); indexed by target id too |
//! | `memberships` | (connection, group_source_id, member_source_id) | the members last exported to each group |
//! | `intents` | id | the write-ahead record of a target write in flight (see below); at most one per object |
//! | `watermarks` | connection | where the next incremental cycle starts reading the source |
//! | `cycles` | id | every cycle: type, start, end, status and counts (JSON) |
//! | `escrow` | (connection, kind, source_id) | failed objects waiting to be retried, with attempt count and next attempt time |
//! | `staged` | id | disables and deletes held by accidental-deletion prevention, with the operator's decision and when the allowed action was carried out (`done_at`) |
//! | `logs` | id | the provisioning log, one record per object per cycle, with modified properties and steps as JSON |
//! | `connection_state` | connection | the service's control state: paused, and quarantine (consecutive failed cycles, reason, next attempt) |
//! | `notifications` | id | notifications sent or held back by the rate limit, per channel, connection, event kind and de-duplication key (schema version 2) |
//!
//! Migrations are numbered; migration *n* brings the file to schema version
//! *n*. Opening a file applies the missing ones in one transaction. A file
//! whose version is newer than this code knows is refused
//! ([`StoreError::NewerSchema`]) rather than misread.
//!
//! The connection runs with `journal_mode=WAL` (readers never block the
//! writer), `synchronous=FULL` (a committed transaction survives power loss),
//! `foreign_keys=ON` and a busy timeout, so two processes (the daemon and a
//! CLI command) may share a file.
//!
//! # Crash-safety protocol
//!
//! A write to the target (create, update, disable, delete, membership change)
//! and the record of it in this file cannot be one transaction, so the store
//! keeps a write-ahead *intent*:
//!
//! 1. [`Store::begin_intent`] records what is about to be done (action and
//!    payload) and commits it **before** the connector is called.
//! 2. On success the caller calls one `complete_*` method
//!    ([`Store::complete_create`], [`Store::complete_update`],
//!    [`Store::complete_state`], [`Store::complete_delete`],
//!    [`Store::complete_members`]); it records the result (link,
//!    state, memberships) **and** deletes the intent in one transaction.
//! 3. On a definite failure (the target answered with an error) the caller
//!    calls [`Store::abandon_intent`].
//! 4. After a crash, [`Store::pending_intents`] returns the intents whose
//!    outcome is unknown: the target may or may not have done the write. The
//!    engine resolves each before anything else touches that object; for an
//!    interrupted create it **re-matches in the target** and, if the object
//!    is there, completes the intent with the found id instead of creating
//!    it again (no duplicate create, no 409); otherwise it abandons the intent
//!    and creates anew.
//!
//! A crash before step 1 commits loses nothing (nothing was sent). A crash
//! between 1 and 2 leaves the intent and no result. A crash during 2 rolls the
//! whole transaction back, so again the intent and no result. There is no
//! state in which the result is recorded but the intent survives, or the
//! intent is gone but the result is missing. Because at most one intent may be
//! pending per object, [`Store::begin_intent`] refuses to start a second write
//! on an object whose earlier write was never resolved.
//!
//! # Concurrency
//!
//! [`Store`] wraps one connection in a mutex: it is `Send + Sync`, and every
//! method takes `&self`. Each method is a single statement or a single
//! transaction. Inside a group commit ([`group`], used by the executor) the
//! methods' transactions become savepoints of the group's one transaction,
//! so each still happens whole or not at all, and the group syncs to disk
//! once.

mod cycles;
mod error;
mod escrow;
pub mod group;
mod intents;
mod kinds;
pub mod leases;
mod links;
mod logs;
mod notifications;
mod schema;
mod service;
mod staged;
mod time;

pub use cycles::{Cycle, CycleStatus, CycleType};
pub use error::StoreError;
pub use escrow::{
    ESCROW_FIRST_BACKOFF, ESCROW_MAX_BACKOFF, EscrowEntry, EscrowSummary, escrow_backoff,
};
pub use group::GroupCommit;
pub use intents::{Intent, IntentAction, IntentId};
pub use leases::{LEASE_TTL, Lease, LeaseError, LeaseHolder};
pub use links::{Link, LinkState};
pub use logs::{
    LogAction, LogQuery, LogRecord, LogStatus, ModifiedProperty, Step, StepKind, export_csv,
    export_json,
};
pub use notifications::{NotificationStatus, SuppressedNotification};
pub use schema::SCHEMA_VERSION;
pub use service::ConnectionState;
pub use staged::{Decision, StagedAction, StagedChange, StagedSelection};
pub use time::{format_time, parse_time};

use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How long a statement waits for another process holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The state store: one SQLite file, see the [module docs](self).
pub struct Store {
    conn: Mutex<Connection>,
    location: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// What [`Store::reset`] clears for one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResetScope {
    /// Forget the watermark, so the next cycle is an initial cycle.
    pub watermark: bool,
    /// Empty the retry queue (escrow).
    pub escrow: bool,
    /// Drop staged disables/deletes, decided or not.
    pub staged: bool,
    /// Forget links and exported memberships: objects will be matched again.
    pub links: bool,
}

impl ResetScope {
    /// What a restart clears: the watermark and the escrow, keeping links
    /// (and staged changes, which the operator still has to decide).
    pub fn restart() -> Self {
        ResetScope {
            watermark: true,
            escrow: true,
            staged: false,
            links: false,
        }
    }

    /// Everything this scope can clear.
    pub fn all() -> Self {
        ResetScope {
            watermark: true,
            escrow: true,
            staged: true,
            links: true,
        }
    }
}

impl Store {
    /// Open (or create) the state file at `path`, creating its parent
    /// directories, and bring its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let location = path.display().to_string();
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: location.clone(),
            source,
        })?;
        Self::init(conn, location)
    }

    /// A store in memory, gone when dropped; for tests and dry runs.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let location = ":memory:".to_string();
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: location.clone(),
            source,
        })?;
        Self::init(conn, location)
    }

    fn init(mut conn: Connection, location: String) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: location.clone(),
            source,
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // The first statement to read the file: fails here if it is not a
        // SQLite database.
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        schema::migrate(&mut conn, &location).map_err(|e| unwritable(e, &location))?;
        Ok(Store {
            conn: Mutex::new(conn),
            location,
        })
    }

    /// SQLite's `PRAGMA quick_check`: the problems it found (none when the
    /// file is sound). The service runs it when it starts, and
    /// `provisio store check` on demand; a damaged file is reported, never
    /// reset.
    pub fn quick_check(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("PRAGMA quick_check")
            .map_err(sql("quick_check", "*"))?;
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .and_then(Iterator::collect)
            .map_err(sql("quick_check", "*"))?;
        Ok(rows.into_iter().filter(|r| r != "ok").collect())
    }

    /// The file this store was opened from (`:memory:` for an in-memory store).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The schema version of the open file (equal to [`SCHEMA_VERSION`]
    /// after a successful open).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        schema::current_version(&self.lock()).map_err(sql("read schema version", "schema_version"))
    }

    /// Clear per-connection state for a restart or a full reset, in one
    /// transaction. Pending intents are never cleared: they describe writes
    /// that may have reached the target.
    pub fn reset(&self, connection: &str, scope: ResetScope) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = write_tx(&mut conn, "reset", "links")?;
        let run = |table: &'static str, query: &str| {
            tx.execute(query, [connection])
                .map(drop)
                .map_err(sql("reset", table))
        };
        if scope.watermark {
            run("watermarks", "DELETE FROM watermarks WHERE connection = ?1")?;
        }
        if scope.escrow {
            run("escrow", "DELETE FROM escrow WHERE connection = ?1")?;
        }
        if scope.staged {
            run("staged", "DELETE FROM staged WHERE connection = ?1")?;
        }
        if scope.links {
            run("links", "DELETE FROM links WHERE connection = ?1")?;
            run(
                "memberships",
                "DELETE FROM memberships WHERE connection = ?1",
            )?;
        }
        tx.commit().map_err(sql("reset (commit)", "links"))
    }

    /// Open a group transaction: until [`Store::end_group`], every write of
    /// this store joins it (each method's own transaction becomes a savepoint,
    /// so it still happens whole or not at all), and nothing is durable.
    /// Used by [`GroupCommit`], which never keeps a group open across an await.
    fn begin_group(&self) -> Result<(), StoreError> {
        self.lock()
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(sql("begin_group", "*"))
    }

    /// Commit the open group transaction (one sync to disk for all of it);
    /// on failure nothing of it is kept.
    fn end_group(&self) -> Result<(), StoreError> {
        let conn = self.lock();
        let r = conn.execute_batch("COMMIT").map_err(sql("end_group", "*"));
        if r.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        r
    }

    /// Lock the connection. A panic in another thread while it held the lock
    /// cannot leave the database half-written (an open transaction is rolled
    /// back when dropped), so a poisoned lock is taken over.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A write transaction: a top-level one, or a savepoint inside an open group
/// (see [`group`]). Either way all of it or none of it happens; dropping it
/// without [`WriteTx::commit`] rolls it back.
enum WriteTx<'c> {
    Top(rusqlite::Transaction<'c>),
    Nested(rusqlite::Savepoint<'c>),
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            WriteTx::Top(t) => t,
            WriteTx::Nested(s) => s,
        }
    }
}

impl WriteTx<'_> {
    /// Commit (a top-level transaction) or release into the group (a savepoint).
    fn commit(self) -> rusqlite::Result<()> {
        match self {
            WriteTx::Top(t) => t.commit(),
            WriteTx::Nested(s) => s.commit(),
        }
    }
}

/// Start a write transaction. `IMMEDIATE` takes the write lock up front, so a
/// read-then-write transaction cannot fail half-way on another process's lock.
/// Inside an open group commit the transaction is a savepoint of the group's.
fn write_tx<'c>(
    conn: &'c mut Connection,
    op: &'static str,
    table: &'static str,
) -> Result<WriteTx<'c>, StoreError> {
    if conn.is_autocommit() {
        conn.transaction_with_behavior(TransactionBehavior::Immediate)
            .map(WriteTx::Top)
            .map_err(sql(op, table))
    } else {
        conn.savepoint()
            .map(WriteTx::Nested)
            .map_err(sql(op, table))
    }
}

/// Map a SQLite error to [`StoreError::Sql`] naming the operation and table.
fn sql(op: &'static str, table: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { op, table, source }
}

/// A migration that failed because the file or its directory cannot be
/// written says so, naming the directory (not "migration to schema
/// version 0 failed").
fn unwritable(e: StoreError, location: &str) -> StoreError {
    use rusqlite::ErrorCode::{CannotOpen, PermissionDenied, ReadOnly};
    match e {
        StoreError::Migration { path, source, .. }
            if matches!(
                source.sqlite_error_code(),
                Some(ReadOnly | CannotOpen | PermissionDenied)
            ) =>
        {
            let dir = Path::new(location)
                .parent()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| ".".to_string());
            StoreError::Unwritable { path, dir, source }
        }
        other => other,
    }
}

/// The current time as stored.
fn now() -> String {
    format_time(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests;
