//! Cycles and watermarks.

use super::kinds::{json_column, text_enum, to_json_text};
use super::{Store, StoreError, now, sql};
use rusqlite::{OptionalExtension, params};

text_enum! {
    /// Initial (everything in scope) or incremental (changes since the watermark).
    pub enum CycleType {
        /// Reads every object in scope.
        Initial => "initial",
        /// Reads what changed since the watermark.
        Incremental => "incremental",
        /// A cycle after `provisio reconcile` compared the target with what
        /// was exported: it repairs the drift found (see `crate::drift`).
        Reconcile => "reconcile",
    }
}

text_enum! {
    /// How a cycle ended, or that it has not.
    pub enum CycleStatus {
        /// Still running (or the process died while it ran, until
        /// [`Store::mark_running_cycles_interrupted`]).
        Running => "running",
        /// Finished; individual objects may still have failed.
        Succeeded => "succeeded",
        /// Stopped by an error that affected the whole cycle.
        Failed => "failed",
        /// The process stopped while the cycle ran.
        Interrupted => "interrupted",
    }
}

/// One provisioning cycle of a connection.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cycle {
    /// Random UUID-formatted id.
    pub id: String,
    /// The connection.
    pub connection: String,
    /// Initial or incremental.
    pub cycle_type: CycleType,
    /// Start (RFC 3339 UTC).
    pub started_at: String,
    /// End, once finished.
    pub finished_at: Option<String>,
    /// Running, succeeded, failed or interrupted.
    pub status: CycleStatus,
    /// Counts by whatever the engine reports (e.g. `{"created": 3}`); `{}`
    /// while running.
    pub counts: serde_json::Value,
}

const CYCLE_COLUMNS: &str = "id, connection, cycle_type, started_at, finished_at, status, counts";

fn cycle_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Cycle> {
    Ok(Cycle {
        id: row.get(0)?,
        connection: row.get(1)?,
        cycle_type: row.get(2)?,
        started_at: row.get(3)?,
        finished_at: row.get(4)?,
        status: row.get(5)?,
        counts: json_column(row, 6)?,
    })
}

/// A random version-4 UUID in its usual text form.
pub(crate) fn new_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl Store {
    /// The watermark of a connection: where the next incremental cycle
    /// starts reading the source. `None` means the next cycle is initial.
    pub fn watermark(&self, connection: &str) -> Result<Option<String>, StoreError> {
        self.lock()
            .query_row(
                "SELECT value FROM watermarks WHERE connection = ?1",
                [connection],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("watermark", "watermarks"))
    }

    /// Save a connection's watermark (the connector's opaque text).
    pub fn set_watermark(&self, connection: &str, value: &str) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "INSERT INTO watermarks (connection, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (connection) DO UPDATE SET
                     value = excluded.value, updated_at = excluded.updated_at",
                params![connection, value, now()],
            )
            .map_err(sql("set_watermark", "watermarks"))?;
        Ok(())
    }

    /// Record the start of a cycle; returns its id.
    pub fn start_cycle(
        &self,
        connection: &str,
        cycle_type: CycleType,
    ) -> Result<String, StoreError> {
        let id = new_uuid();
        self.lock()
            .execute(
                "INSERT INTO cycles (id, connection, cycle_type, started_at, status, counts)
                 VALUES (?1, ?2, ?3, ?4, 'running', '{}')",
                params![id, connection, cycle_type, now()],
            )
            .map_err(sql("start_cycle", "cycles"))?;
        Ok(id)
    }

    /// Record the end of a cycle with its status and counts.
    pub fn finish_cycle(
        &self,
        id: &str,
        status: CycleStatus,
        counts: &serde_json::Value,
    ) -> Result<(), StoreError> {
        const OP: &str = "finish_cycle";
        let counts = to_json_text(counts, OP, "cycles", "counts")?;
        let n = self
            .lock()
            .execute(
                "UPDATE cycles SET status = ?2, counts = ?3, finished_at = ?4 WHERE id = ?1",
                params![id, status, counts, now()],
            )
            .map_err(sql(OP, "cycles"))?;
        if n == 0 {
            return Err(StoreError::NoCycle {
                op: OP,
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// One cycle by id.
    pub fn cycle(&self, id: &str) -> Result<Option<Cycle>, StoreError> {
        self.lock()
            .query_row(
                &format!("SELECT {CYCLE_COLUMNS} FROM cycles WHERE id = ?1"),
                [id],
                cycle_from_row,
            )
            .optional()
            .map_err(sql("cycle", "cycles"))
    }

    /// The most recently started cycle of a connection.
    pub fn last_cycle(&self, connection: &str) -> Result<Option<Cycle>, StoreError> {
        self.lock()
            .query_row(
                &format!(
                    "SELECT {CYCLE_COLUMNS} FROM cycles WHERE connection = ?1
                     ORDER BY started_at DESC, rowid DESC LIMIT 1"
                ),
                [connection],
                cycle_from_row,
            )
            .optional()
            .map_err(sql("last_cycle", "cycles"))
    }

    /// The most recently started cycle of a connection of one type (the
    /// scheduler asks when the last `reconcile` ran).
    pub fn last_cycle_of_type(
        &self,
        connection: &str,
        cycle_type: CycleType,
    ) -> Result<Option<Cycle>, StoreError> {
        self.lock()
            .query_row(
                &format!(
                    "SELECT {CYCLE_COLUMNS} FROM cycles WHERE connection = ?1 AND cycle_type = ?2
                     ORDER BY started_at DESC, rowid DESC LIMIT 1"
                ),
                params![connection, cycle_type],
                cycle_from_row,
            )
            .optional()
            .map_err(sql("last_cycle_of_type", "cycles"))
    }

    /// The most recently started cycle of a connection that has ended
    /// (succeeded, failed or interrupted), skipping one still running.
    pub fn last_finished_cycle(&self, connection: &str) -> Result<Option<Cycle>, StoreError> {
        self.lock()
            .query_row(
                &format!(
                    "SELECT {CYCLE_COLUMNS} FROM cycles WHERE connection = ?1 AND status != 'running'
                     ORDER BY started_at DESC, rowid DESC LIMIT 1"
                ),
                [connection],
                cycle_from_row,
            )
            .optional()
            .map_err(sql("last_finished_cycle", "cycles"))
    }

    /// At start-up: cycles of a connection still marked running were cut
    /// short by a stop or crash; mark them interrupted. Returns how many.
    pub fn mark_running_cycles_interrupted(&self, connection: &str) -> Result<usize, StoreError> {
        self.lock()
            .execute(
                "UPDATE cycles SET status = 'interrupted', finished_at = ?2
                 WHERE connection = ?1 AND status = 'running'",
                params![connection, now()],
            )
            .map_err(sql("mark_running_cycles_interrupted", "cycles"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uuid_shape() {
        let a = new_uuid();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(a, new_uuid());
    }

    #[test]
    fn watermark_get_set() {
        let s = Store::open_in_memory().unwrap();
        assert_eq!(s.watermark("c1").unwrap(), None);
        s.set_watermark("c1", "delta-1").unwrap();
        s.set_watermark("c1", "delta-2").unwrap();
        s.set_watermark("c2", "other").unwrap();
        assert_eq!(s.watermark("c1").unwrap().as_deref(), Some("delta-2"));
        assert_eq!(s.watermark("c2").unwrap().as_deref(), Some("other"));
    }

    #[test]
    fn cycle_lifecycle() {
        let s = Store::open_in_memory().unwrap();
        assert_eq!(s.last_cycle("c1").unwrap(), None);
        let first = s.start_cycle("c1", CycleType::Initial).unwrap();
        let c = s.cycle(&first).unwrap().unwrap();
        assert_eq!(c.status, CycleStatus::Running);
        assert_eq!(c.finished_at, None);
        assert_eq!(c.counts, json!({}));
        s.finish_cycle(&first, CycleStatus::Succeeded, &json!({"created": 3}))
            .unwrap();

        let second = s.start_cycle("c1", CycleType::Incremental).unwrap();
        let other = s.start_cycle("c2", CycleType::Initial).unwrap();
        let last = s.last_cycle("c1").unwrap().unwrap();
        assert_eq!(last.id, second);
        assert_eq!(last.cycle_type, CycleType::Incremental);
        let finished = s.last_finished_cycle("c1").unwrap().unwrap();
        assert_eq!(finished.id, first, "the running cycle is skipped");
        assert_eq!(s.last_finished_cycle("c2").unwrap(), None);

        let done = s.cycle(&first).unwrap().unwrap();
        assert_eq!(done.status, CycleStatus::Succeeded);
        assert_eq!(done.counts, json!({"created": 3}));
        assert!(done.finished_at.unwrap() >= done.started_at);

        assert_eq!(s.mark_running_cycles_interrupted("c1").unwrap(), 1);
        assert_eq!(s.mark_running_cycles_interrupted("c1").unwrap(), 0);
        let cut = s.cycle(&second).unwrap().unwrap();
        assert_eq!(cut.status, CycleStatus::Interrupted);
        assert!(cut.finished_at.is_some());
        assert_eq!(
            s.cycle(&other).unwrap().unwrap().status,
            CycleStatus::Running
        );

        let err = s
            .finish_cycle("nope", CycleStatus::Failed, &json!({}))
            .unwrap_err();
        assert!(matches!(err, StoreError::NoCycle { .. }), "{err}");
        assert!(err.to_string().contains("finish_cycle on table cycles"));
    }
}
