//! Write-ahead intents: the crash-safety protocol (see the module docs of
//! [`crate::store`]).

use super::Link;
use super::kinds::{json_column, kind_str, text_enum, to_json_text};
use super::links::{forget_memberships, write_link, write_link_state, write_members};
use super::staged::mark_done_for;
use super::{LinkState, StagedAction, Store, StoreError, now, sql, write_tx};
use crate::model::ObjectKind;
use rusqlite::{Connection, OptionalExtension, params};

text_enum! {
    /// The target write an intent announces.
    pub enum IntentAction {
        /// Create the object; after a crash, re-match before creating again.
        Create => "create",
        /// Update attributes.
        Update => "update",
        /// Disable (e.g. SCIM `active=false`).
        Disable => "disable",
        /// Enable a disabled object again.
        Enable => "enable",
        /// Delete the object.
        Delete => "delete",
        /// Add and/or remove group members.
        Members => "members",
    }
}

/// The id of an intent, returned by [`Store::begin_intent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct IntentId(pub i64);

impl std::fmt::Display for IntentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A target write that was begun and not yet completed or abandoned.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Intent {
    /// The id.
    pub id: IntentId,
    /// The connection.
    pub connection: String,
    /// User or group.
    pub kind: ObjectKind,
    /// The object's source id.
    pub source_id: String,
    /// What was about to be done.
    pub action: IntentAction,
    /// What was about to be sent (e.g. the attributes of a create), as the
    /// caller gave it; used to re-match an interrupted create.
    pub payload: serde_json::Value,
    /// When the intent was recorded (RFC 3339 UTC).
    pub started_at: String,
}

fn intent_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Intent> {
    Ok(Intent {
        id: IntentId(row.get(0)?),
        connection: row.get(1)?,
        kind: row.get(2)?,
        source_id: row.get(3)?,
        action: row.get(4)?,
        payload: json_column(row, 5)?,
        started_at: row.get(6)?,
    })
}

const INTENT_COLUMNS: &str = "id, connection, kind, source_id, action, payload, started_at";

fn load(conn: &Connection, op: &'static str, id: IntentId) -> Result<Intent, StoreError> {
    conn.query_row(
        &format!("SELECT {INTENT_COLUMNS} FROM intents WHERE id = ?1"),
        [id.0],
        intent_from_row,
    )
    .optional()
    .map_err(sql(op, "intents"))?
    .ok_or(StoreError::NoIntent { op, id: id.0 })
}

fn delete(tx: &Connection, op: &'static str, id: IntentId) -> Result<(), StoreError> {
    tx.execute("DELETE FROM intents WHERE id = ?1", [id.0])
        .map_err(sql(op, "intents"))?;
    Ok(())
}

/// Check that a completion describes the intent's own object and action.
fn check(
    op: &'static str,
    intent: &Intent,
    allowed: &[IntentAction],
    object: Option<(&str, ObjectKind, &str)>,
) -> Result<(), StoreError> {
    if !allowed.contains(&intent.action) {
        return Err(StoreError::Invalid {
            op,
            table: "intents",
            reason: format!(
                "intent {} is a '{}' intent; {op} completes {}",
                intent.id,
                intent.action,
                allowed
                    .iter()
                    .map(|a| format!("'{a}'"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        });
    }
    if let Some((connection, kind, source_id)) = object
        && (connection, kind, source_id)
            != (
                intent.connection.as_str(),
                intent.kind,
                intent.source_id.as_str(),
            )
    {
        return Err(StoreError::Invalid {
            op,
            table: "intents",
            reason: format!(
                "intent {} is for {} '{}' of connection '{}', not {} '{}' of connection '{}'",
                intent.id,
                intent.kind,
                intent.source_id,
                intent.connection,
                kind_str(kind),
                source_id,
                connection
            ),
        });
    }
    Ok(())
}

impl Store {
    /// Record, and commit, that a target write is about to happen. Call this
    /// before the connector; then exactly one of a `complete_*` method or
    /// [`Store::abandon_intent`].
    ///
    /// Fails with [`StoreError::IntentPending`] while an earlier intent for
    /// the same object is unresolved.
    pub fn begin_intent(
        &self,
        connection: &str,
        kind: ObjectKind,
        source_id: &str,
        action: IntentAction,
        payload: &serde_json::Value,
    ) -> Result<IntentId, StoreError> {
        const OP: &str = "begin_intent";
        let payload = to_json_text(payload, OP, "intents", "payload")?;
        let mut conn = self.lock();
        let tx = write_tx(&mut conn, OP, "intents")?;
        let existing: Option<(i64, String)> = tx
            .query_row(
                "SELECT id, action FROM intents
                 WHERE connection = ?1 AND kind = ?2 AND source_id = ?3",
                params![connection, kind, source_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql(OP, "intents"))?;
        if let Some((existing, action)) = existing {
            return Err(StoreError::IntentPending {
                connection: connection.to_string(),
                kind: kind_str(kind).to_string(),
                source_id: source_id.to_string(),
                existing,
                action,
            });
        }
        tx.execute(
            "INSERT INTO intents (connection, kind, source_id, action, payload, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![connection, kind, source_id, action, payload, now()],
        )
        .map_err(sql(OP, "intents"))?;
        let id = tx.last_insert_rowid();
        tx.commit()
            .map_err(sql("begin_intent (commit)", "intents"))?;
        Ok(IntentId(id))
    }

    /// The intent with this id, if it is still pending.
    pub fn intent(&self, id: IntentId) -> Result<Option<Intent>, StoreError> {
        match load(&self.lock(), "intent", id) {
            Ok(i) => Ok(Some(i)),
            Err(StoreError::NoIntent { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Intents of a connection left unresolved, oldest first: after a crash,
    /// writes whose outcome in the target is unknown.
    pub fn pending_intents(&self, connection: &str) -> Result<Vec<Intent>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {INTENT_COLUMNS} FROM intents WHERE connection = ?1 ORDER BY id"
            ))
            .map_err(sql("pending_intents", "intents"))?;
        stmt.query_map([connection], intent_from_row)
            .and_then(Iterator::collect)
            .map_err(sql("pending_intents", "intents"))
    }

    /// The write failed definitely (the target refused it): forget the intent.
    pub fn abandon_intent(&self, id: IntentId) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = write_tx(&mut conn, "abandon_intent", "intents")?;
        load(&tx, "abandon_intent", id)?;
        delete(&tx, "abandon_intent", id)?;
        tx.commit()
            .map_err(sql("abandon_intent (commit)", "intents"))
    }

    /// A create (or the re-match of an interrupted create) succeeded: store
    /// the link and resolve the intent, atomically. The link must be for the
    /// intent's object.
    pub fn complete_create(&self, id: IntentId, link: &Link) -> Result<(), StoreError> {
        self.complete_with_link("complete_create", id, &[IntentAction::Create], link)
    }

    /// An update (or enable/disable carried as an update) succeeded: store
    /// the new link (fingerprint, exported attributes, state) and resolve the
    /// intent, atomically.
    pub fn complete_update(&self, id: IntentId, link: &Link) -> Result<(), StoreError> {
        self.complete_with_link(
            "complete_update",
            id,
            &[
                IntentAction::Update,
                IntentAction::Enable,
                IntentAction::Disable,
            ],
            link,
        )
    }

    fn complete_with_link(
        &self,
        op: &'static str,
        id: IntentId,
        allowed: &[IntentAction],
        link: &Link,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = write_tx(&mut conn, op, "intents")?;
        let intent = load(&tx, op, id)?;
        check(
            op,
            &intent,
            allowed,
            Some((&link.connection, link.kind, &link.source_id)),
        )?;
        write_link(&tx, op, link)?;
        if link.state == LinkState::Disabled {
            mark_done_for(&tx, op, &intent, &[StagedAction::Disable])?;
        }
        delete(&tx, op, id)?;
        tx.commit().map_err(sql(op, "intents"))
    }

    /// A disable or enable succeeded: set the link's state and resolve the
    /// intent, atomically. Completing a disable also marks allowed staged
    /// disables of the object as done.
    pub fn complete_state(&self, id: IntentId, state: LinkState) -> Result<(), StoreError> {
        const OP: &str = "complete_state";
        let mut conn = self.lock();
        let tx = write_tx(&mut conn, OP, "intents")?;
        let intent = load(&tx, OP, id)?;
        check(
            OP,
            &intent,
            &[IntentAction::Disable, IntentAction::Enable],
            None,
        )?;
        if !write_link_state(
            &tx,
            OP,
            &intent.connection,
            intent.kind,
            &intent.source_id,
            state,
        )? {
            return Err(StoreError::NoLink {
                op: OP,
                connection: intent.connection,
                kind: kind_str(intent.kind).to_string(),
                source_id: intent.source_id,
            });
        }
        if state == LinkState::Disabled {
            mark_done_for(&tx, OP, &intent, &[StagedAction::Disable])?;
        }
        delete(&tx, OP, id)?;
        tx.commit().map_err(sql(OP, "intents"))
    }

    /// A delete succeeded: keep the link as a `deleted` tombstone, forget the
    /// memberships it was part of, mark allowed staged disables/deletes of
    /// the object as done, and resolve the intent, atomically. A missing link
    /// is not an error (the object may have been deleted without one).
    pub fn complete_delete(&self, id: IntentId) -> Result<(), StoreError> {
        const OP: &str = "complete_delete";
        let mut conn = self.lock();
        let tx = write_tx(&mut conn, OP, "intents")?;
        let intent = load(&tx, OP, id)?;
        check(OP, &intent, &[IntentAction::Delete], None)?;
        write_link_state(
            &tx,
            OP,
            &intent.connection,
            intent.kind,
            &intent.source_id,
            LinkState::Deleted,
        )?;
        forget_memberships(&tx, OP, &intent.connection, intent.kind, &intent.source_id)?;
        mark_done_for(
            &tx,
            OP,
            &intent,
            &[StagedAction::Disable, StagedAction::Delete],
        )?;
        delete(&tx, OP, id)?;
        tx.commit().map_err(sql(OP, "intents"))
    }

    /// A membership change of `group` succeeded: record the members added and
    /// removed and resolve the intent, atomically. `group` must be the
    /// intent's source id.
    pub fn complete_members<S: AsRef<str>>(
        &self,
        id: IntentId,
        group_source_id: &str,
        added: &[S],
        removed: &[S],
    ) -> Result<(), StoreError> {
        const OP: &str = "complete_members";
        let mut conn = self.lock();
        let tx = write_tx(&mut conn, OP, "intents")?;
        let intent = load(&tx, OP, id)?;
        check(
            OP,
            &intent,
            &[IntentAction::Members],
            Some((&intent.connection, ObjectKind::Group, group_source_id)),
        )?;
        write_members(&tx, OP, &intent.connection, group_source_id, added, removed)?;
        delete(&tx, OP, id)?;
        tx.commit().map_err(sql(OP, "intents"))
    }
}
