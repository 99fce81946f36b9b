//! The store's error type.

use std::path::PathBuf;

/// Why a store operation failed. Each variant names the operation and, where
/// one is involved, the table.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// This process no longer holds the connection's lease (it expired or
    /// another process took it over): it may write nothing more.
    #[error(
        "connection '{connection}': this process's lease (fencing token {fence}) was lost \
         (it expired or another process took it over); nothing more is written"
    )]
    LeaseLost {
        /// The connection.
        connection: String,
        /// The token this process held.
        fence: i64,
    },
    /// A group commit (several writes in one transaction) failed to commit;
    /// none of its writes was kept.
    #[error("a group commit failed: {0}")]
    GroupCommit(String),
    /// The directory for the state file could not be created.
    #[error("cannot create directory {} for the state file: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file could not be opened or is not a SQLite database.
    #[error("cannot open state file {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The state file (or its directory) cannot be written.
    #[error(
        "state file {path} cannot be written ({source}); check that the state directory {dir} \
         is writable by this user and not on a read-only file system (set \
         [runtime] state_dir to another directory otherwise)"
    )]
    Unwritable {
        /// The file.
        path: String,
        /// Its directory.
        dir: String,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The file's schema is newer than this build knows.
    #[error(
        "state file {path} was written by a newer Provisio (schema version {found}; this \
         build knows up to {known}); upgrade Provisio, or point it at another state file"
    )]
    NewerSchema {
        /// The file.
        path: String,
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// Applying a migration failed; the file is left at the previous version.
    #[error("state file {path}: migration to schema version {version} failed: {source}")]
    Migration {
        /// The file.
        path: String,
        /// The version being applied.
        version: i64,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// A statement failed.
    #[error("{op} on table {table} failed: {source}")]
    Sql {
        /// The store operation, e.g. `upsert_link`.
        op: &'static str,
        /// The table.
        table: &'static str,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// A value could not be written as JSON.
    #[error("{op} on table {table}: cannot encode column {column} as JSON: {source}")]
    Json {
        /// The store operation.
        op: &'static str,
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// The serde error.
        source: serde_json::Error,
    },
    /// A value given to the store is not acceptable.
    #[error("{op} on table {table}: {reason}")]
    Invalid {
        /// The store operation.
        op: &'static str,
        /// The table.
        table: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The intent does not exist: it was already completed or abandoned.
    #[error("{op} on table intents: intent {id} does not exist (already completed or abandoned)")]
    NoIntent {
        /// The store operation.
        op: &'static str,
        /// The intent id.
        id: i64,
    },
    /// A write is already in flight (or was interrupted) for this object.
    #[error(
        "begin_intent on table intents: {kind} '{source_id}' of connection '{connection}' \
         already has pending intent {existing} ({action}); resolve it first (see pending_intents)"
    )]
    IntentPending {
        /// The connection.
        connection: String,
        /// The object kind.
        kind: String,
        /// The source id.
        source_id: String,
        /// The pending intent's id.
        existing: i64,
        /// The pending intent's action.
        action: String,
    },
    /// The object has no link.
    #[error("{op} on table links: {kind} '{source_id}' of connection '{connection}' has no link")]
    NoLink {
        /// The store operation.
        op: &'static str,
        /// The connection.
        connection: String,
        /// The object kind.
        kind: String,
        /// The source id.
        source_id: String,
    },
    /// No cycle has this id.
    #[error("{op} on table cycles: no cycle with id '{id}'")]
    NoCycle {
        /// The store operation.
        op: &'static str,
        /// The cycle id.
        id: String,
    },
    /// Log records could not be exported.
    #[error("export_{format} of log records failed: {reason}")]
    Export {
        /// `csv` or `json`.
        format: &'static str,
        /// Why.
        reason: String,
    },
}
