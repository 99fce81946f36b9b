//! Staged disables and deletes (accidental-deletion prevention).

use super::intents::Intent;
use super::kinds::text_enum;
use super::{Store, StoreError, now, sql, write_tx};
use crate::model::ObjectKind;
use rusqlite::{Connection, OptionalExtension, params};

text_enum! {
    /// The held action.
    pub enum StagedAction {
        /// Disable the object.
        Disable => "disable",
        /// Delete the object.
        Delete => "delete",
    }
}

text_enum! {
    /// The operator's decision on a staged action.
    pub enum Decision {
        /// Carry the action out.
        Allowed => "allowed",
        /// Drop the action.
        Rejected => "rejected",
    }
}

/// Which staged actions [`Store::decide_staged`] decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StagedSelection {
    /// Every pending action of the connection.
    All,
    /// These ids (ids of other connections or already decided are ignored).
    Ids(Vec<i64>),
}

impl StagedSelection {
    /// The given ids, or every pending action when none are given (how the
    /// CLI and the admin API read an empty list).
    pub fn from_ids(ids: Vec<i64>) -> Self {
        if ids.is_empty() {
            StagedSelection::All
        } else {
            StagedSelection::Ids(ids)
        }
    }
}

/// One staged action.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StagedChange {
    /// The id the operator refers to.
    pub id: i64,
    /// The connection.
    pub connection: String,
    /// The cycle that last staged it.
    pub cycle_id: String,
    /// User or group.
    pub kind: ObjectKind,
    /// The object's source id.
    pub source_id: String,
    /// The object's target id.
    pub target_id: String,
    /// Disable or delete.
    pub action: StagedAction,
    /// Why the action was wanted (e.g. "unassigned").
    pub reason: String,
    /// When it was first staged.
    pub created_at: String,
    /// The decision, once made.
    pub decision: Option<Decision>,
    /// When it was decided.
    pub decided_at: Option<String>,
    /// When an allowed action was carried out.
    pub done_at: Option<String>,
}

const STAGED_COLUMNS: &str = "id, connection, cycle_id, kind, source_id, target_id, action, \
                              reason, created_at, decision, decided_at, done_at";

fn staged_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StagedChange> {
    Ok(StagedChange {
        id: row.get(0)?,
        connection: row.get(1)?,
        cycle_id: row.get(2)?,
        kind: row.get(3)?,
        source_id: row.get(4)?,
        target_id: row.get(5)?,
        action: row.get(6)?,
        reason: row.get(7)?,
        created_at: row.get(8)?,
        decision: row.get(9)?,
        decided_at: row.get(10)?,
        done_at: row.get(11)?,
    })
}

fn select(
    conn: &Connection,
    op: &'static str,
    filter: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<StagedChange>, StoreError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {STAGED_COLUMNS} FROM staged WHERE {filter} ORDER BY id"
        ))
        .map_err(sql(op, "staged"))?;
    stmt.query_map(args, staged_from_row)
        .and_then(Iterator::collect)
        .map_err(sql(op, "staged"))
}

/// Mark the allowed, not yet done staged actions of an intent's object as
/// done (called inside the completing transaction).
pub(super) fn mark_done_for(
    conn: &Connection,
    op: &'static str,
    intent: &Intent,
    actions: &[StagedAction],
) -> Result<(), StoreError> {
    for action in actions {
        conn.execute(
            "UPDATE staged SET done_at = ?5
             WHERE connection = ?1 AND kind = ?2 AND source_id = ?3 AND action = ?4
               AND decision = 'allowed' AND done_at IS NULL",
            params![
                intent.connection,
                intent.kind,
                intent.source_id,
                action,
                now()
            ],
        )
        .map_err(sql(op, "staged"))?;
    }
    Ok(())
}

impl Store {
    /// Hold a disable or delete for the operator. If the same action on the
    /// same object is already pending, that row is refreshed (cycle, target
    /// id, reason) and its id returned, so repeated cycles do not pile up
    /// duplicates.
    #[allow(clippy::too_many_arguments)]
    pub fn stage(
        &self,
        connection: &str,
        cycle_id: &str,
        kind: ObjectKind,
        source_id: &str,
        target_id: &str,
        action: StagedAction,
        reason: &str,
    ) -> Result<i64, StoreError> {
        const OP: &str = "stage";
        let mut conn = self.lock();
        let tx = write_tx(&mut conn, OP, "staged")?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM staged
                 WHERE connection = ?1 AND kind = ?2 AND source_id = ?3 AND action = ?4
                   AND decision IS NULL",
                params![connection, kind, source_id, action],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(OP, "staged"))?;
        let id = match existing {
            Some(id) => {
                tx.execute(
                    "UPDATE staged SET cycle_id = ?2, target_id = ?3, reason = ?4 WHERE id = ?1",
                    params![id, cycle_id, target_id, reason],
                )
                .map_err(sql(OP, "staged"))?;
                id
            }
            None => {
                tx.execute(
                    "INSERT INTO staged
                         (connection, cycle_id, kind, source_id, target_id, action, reason, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        connection, cycle_id, kind, source_id, target_id, action, reason,
                        now()
                    ],
                )
                .map_err(sql(OP, "staged"))?;
                tx.last_insert_rowid()
            }
        };
        tx.commit().map_err(sql(OP, "staged"))?;
        Ok(id)
    }

    /// Actions of a connection waiting for a decision, oldest first.
    pub fn staged_pending(&self, connection: &str) -> Result<Vec<StagedChange>, StoreError> {
        select(
            &self.lock(),
            "staged_pending",
            "connection = ?1 AND decision IS NULL",
            [connection],
        )
    }

    /// Decide pending actions of a connection; returns the rows decided now
    /// (already decided ones and other connections' ids are left alone).
    pub fn decide_staged(
        &self,
        connection: &str,
        which: &StagedSelection,
        decision: Decision,
    ) -> Result<Vec<StagedChange>, StoreError> {
        const OP: &str = "decide_staged";
        let mut conn = self.lock();
        let tx = write_tx(&mut conn, OP, "staged")?;
        let pending = select(
            &tx,
            OP,
            "connection = ?1 AND decision IS NULL",
            [connection],
        )?;
        let chosen: Vec<StagedChange> = match which {
            StagedSelection::All => pending,
            StagedSelection::Ids(ids) => pending
                .into_iter()
                .filter(|s| ids.contains(&s.id))
                .collect(),
        };
        let at = now();
        let mut decided = Vec::with_capacity(chosen.len());
        for mut row in chosen {
            tx.execute(
                "UPDATE staged SET decision = ?2, decided_at = ?3 WHERE id = ?1",
                params![row.id, decision, at],
            )
            .map_err(sql(OP, "staged"))?;
            row.decision = Some(decision);
            row.decided_at = Some(at.clone());
            decided.push(row);
        }
        tx.commit().map_err(sql(OP, "staged"))?;
        Ok(decided)
    }

    /// Allowed actions of a connection not yet carried out, oldest first.
    /// Completing the matching intent ([`Store::complete_state`] with
    /// `disabled`, [`Store::complete_delete`]) marks them done; so does
    /// [`Store::mark_staged_done`].
    pub fn staged_allowed_undone(&self, connection: &str) -> Result<Vec<StagedChange>, StoreError> {
        select(
            &self.lock(),
            "staged_allowed_undone",
            "connection = ?1 AND decision = 'allowed' AND done_at IS NULL",
            [connection],
        )
    }

    /// Mark an allowed action done without an intent (e.g. the object was
    /// already gone). Returns `false` if it is not an allowed, undone action.
    pub fn mark_staged_done(&self, id: i64) -> Result<bool, StoreError> {
        let n = self
            .lock()
            .execute(
                "UPDATE staged SET done_at = ?2
                 WHERE id = ?1 AND decision = 'allowed' AND done_at IS NULL",
                params![id, now()],
            )
            .map_err(sql("mark_staged_done", "staged"))?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{IntentAction, Link, LinkState};
    use serde_json::json;

    fn stage_three(s: &Store) -> (i64, i64, i64) {
        let a = s
            .stage(
                "c1",
                "cy1",
                ObjectKind::User,
                "u1",
                "t1",
                StagedAction::Disable,
                "unassigned",
            )
            .unwrap();
        let b = s
            .stage(
                "c1",
                "cy1",
                ObjectKind::User,
                "u2",
                "t2",
                StagedAction::Delete,
                "hard-deleted",
            )
            .unwrap();
        let c = s
            .stage(
                "c1",
                "cy1",
                ObjectKind::Group,
                "g1",
                "tg",
                StagedAction::Delete,
                "hard-deleted",
            )
            .unwrap();
        (a, b, c)
    }

    #[test]
    fn stage_dedupes_pending_and_lists() {
        let s = Store::open_in_memory().unwrap();
        let (a, b, c) = stage_three(&s);
        s.stage(
            "c2",
            "cy9",
            ObjectKind::User,
            "u1",
            "t1",
            StagedAction::Disable,
            "x",
        )
        .unwrap();
        let again = s
            .stage(
                "c1",
                "cy2",
                ObjectKind::User,
                "u1",
                "t1b",
                StagedAction::Disable,
                "out of scope",
            )
            .unwrap();
        assert_eq!(again, a);
        let pending = s.staged_pending("c1").unwrap();
        assert_eq!(pending.iter().map(|p| p.id).collect::<Vec<_>>(), [a, b, c]);
        assert_eq!(pending[0].cycle_id, "cy2");
        assert_eq!(pending[0].target_id, "t1b");
        assert_eq!(pending[0].reason, "out of scope");
        assert_eq!(pending[0].decision, None);
        assert_eq!(pending[1].action, StagedAction::Delete);
    }

    #[test]
    fn decide_by_ids_and_all() {
        let s = Store::open_in_memory().unwrap();
        let (a, b, c) = stage_three(&s);
        let foreign = s
            .stage(
                "c2",
                "cy9",
                ObjectKind::User,
                "u1",
                "t1",
                StagedAction::Disable,
                "x",
            )
            .unwrap();
        let got = s
            .decide_staged(
                "c1",
                &StagedSelection::Ids(vec![a, foreign, 999]),
                Decision::Allowed,
            )
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, a);
        assert_eq!(got[0].decision, Some(Decision::Allowed));
        assert!(got[0].decided_at.is_some());
        // Deciding again does nothing.
        assert!(
            s.decide_staged("c1", &StagedSelection::Ids(vec![a]), Decision::Rejected)
                .unwrap()
                .is_empty()
        );
        let rest = s
            .decide_staged("c1", &StagedSelection::All, Decision::Rejected)
            .unwrap();
        assert_eq!(rest.iter().map(|r| r.id).collect::<Vec<_>>(), [b, c]);
        assert!(s.staged_pending("c1").unwrap().is_empty());
        assert_eq!(s.staged_pending("c2").unwrap().len(), 1);
        // A decided object can be staged anew.
        let fresh = s
            .stage(
                "c1",
                "cy3",
                ObjectKind::User,
                "u1",
                "t1",
                StagedAction::Disable,
                "again",
            )
            .unwrap();
        assert_ne!(fresh, a);

        let undone = s.staged_allowed_undone("c1").unwrap();
        assert_eq!(undone.iter().map(|r| r.id).collect::<Vec<_>>(), [a]);
        assert!(s.mark_staged_done(a).unwrap());
        assert!(!s.mark_staged_done(a).unwrap());
        assert!(!s.mark_staged_done(b).unwrap(), "rejected cannot be done");
        assert!(s.staged_allowed_undone("c1").unwrap().is_empty());
    }

    #[test]
    fn completing_the_action_marks_it_done() {
        let s = Store::open_in_memory().unwrap();
        let (a, b, _) = stage_three(&s);
        s.decide_staged("c1", &StagedSelection::All, Decision::Allowed)
            .unwrap();
        for (src, tgt) in [("u1", "t1"), ("u2", "t2")] {
            s.upsert_link(&Link::new("c1", ObjectKind::User, src, tgt))
                .unwrap();
        }

        let i = s
            .begin_intent(
                "c1",
                ObjectKind::User,
                "u1",
                IntentAction::Disable,
                &json!({}),
            )
            .unwrap();
        s.complete_state(i, LinkState::Disabled).unwrap();
        let i = s
            .begin_intent(
                "c1",
                ObjectKind::User,
                "u2",
                IntentAction::Delete,
                &json!({}),
            )
            .unwrap();
        s.complete_delete(i).unwrap();

        let undone = s.staged_allowed_undone("c1").unwrap();
        assert_eq!(undone.len(), 1);
        assert_eq!(undone[0].source_id, "g1");
        assert!(![a, b].contains(&undone[0].id));
    }
}
