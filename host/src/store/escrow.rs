//! Escrow: failed objects waiting for a retry with growing intervals.

use super::{Store, StoreError, format_time, now, sql, write_tx};
use crate::model::ObjectKind;
use rusqlite::{OptionalExtension, params};
use std::time::{Duration, SystemTime};

/// The wait after the first failure.
pub const ESCROW_FIRST_BACKOFF: Duration = Duration::from_secs(60);

/// The longest wait between retries.
pub const ESCROW_MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);

/// The wait before retrying an object that has failed `attempts` times:
/// 1 min × 2^(attempts − 1), capped at 24 h. So 1, 2, 4, 8 … min; the cap is
/// reached at the 12th failure (2048 min > 24 h). Zero attempts: no wait.
pub fn escrow_backoff(attempts: u32) -> Duration {
    if attempts == 0 {
        return Duration::ZERO;
    }
    // 2^20 min is far beyond the cap; stop doubling there to avoid overflow.
    let factor = 1u32 << (attempts - 1).min(20);
    (ESCROW_FIRST_BACKOFF * factor).min(ESCROW_MAX_BACKOFF)
}

/// One object in escrow.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EscrowEntry {
    /// The connection.
    pub connection: String,
    /// User or group.
    pub kind: ObjectKind,
    /// The object's source id.
    pub source_id: String,
    /// Failures so far (at least 1).
    pub attempts: u32,
    /// Do not retry before this time (RFC 3339 UTC).
    pub next_attempt_at: String,
    /// The last error's code (e.g. a connector error code).
    pub last_error_code: String,
    /// The last error's message.
    pub last_error: String,
    /// When the entry was last written.
    pub updated_at: String,
}

/// The escrow of one connection in brief, as `status`, the admin API and
/// metrics show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EscrowSummary {
    /// Objects waiting for a retry.
    pub objects: usize,
    /// The earliest next attempt (RFC 3339 UTC).
    pub next_attempt_at: String,
}

const ESCROW_COLUMNS: &str = "connection, kind, source_id, attempts, next_attempt_at, \
                              last_error_code, last_error, updated_at";

fn entry_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<EscrowEntry> {
    Ok(EscrowEntry {
        connection: row.get(0)?,
        kind: row.get(1)?,
        source_id: row.get(2)?,
        attempts: row.get(3)?,
        next_attempt_at: row.get(4)?,
        last_error_code: row.get(5)?,
        last_error: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

impl Store {
    /// Record a failure of an object at `now`: one more attempt, and the
    /// next attempt after [`escrow_backoff`], at most `max_wait` (the
    /// connection's `escrow_max_interval_seconds`). Returns the updated entry.
    #[allow(clippy::too_many_arguments)]
    pub fn escrow_failure(
        &self,
        connection: &str,
        kind: ObjectKind,
        source_id: &str,
        code: &str,
        error: &str,
        now_time: SystemTime,
        max_wait: Duration,
    ) -> Result<EscrowEntry, StoreError> {
        const OP: &str = "escrow_failure";
        let mut conn = self.lock();
        let tx = write_tx(&mut conn, OP, "escrow")?;
        let previous: u32 = tx
            .query_row(
                "SELECT attempts FROM escrow
                 WHERE connection = ?1 AND kind = ?2 AND source_id = ?3",
                params![connection, kind, source_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(OP, "escrow"))?
            .unwrap_or(0);
        let attempts = previous.saturating_add(1);
        let entry = EscrowEntry {
            connection: connection.to_string(),
            kind,
            source_id: source_id.to_string(),
            attempts,
            next_attempt_at: format_time(now_time + escrow_backoff(attempts).min(max_wait)),
            last_error_code: code.to_string(),
            last_error: error.to_string(),
            updated_at: now(),
        };
        tx.execute(
            &format!(
                "INSERT OR REPLACE INTO escrow ({ESCROW_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ),
            params![
                entry.connection,
                entry.kind,
                entry.source_id,
                entry.attempts,
                entry.next_attempt_at,
                entry.last_error_code,
                entry.last_error,
                entry.updated_at
            ],
        )
        .map_err(sql(OP, "escrow"))?;
        tx.commit().map_err(sql(OP, "escrow"))?;
        Ok(entry)
    }

    /// The object succeeded (or left scope): take it out of escrow. Returns
    /// `false` if it was not there.
    pub fn escrow_clear(
        &self,
        connection: &str,
        kind: ObjectKind,
        source_id: &str,
    ) -> Result<bool, StoreError> {
        let n = self
            .lock()
            .execute(
                "DELETE FROM escrow WHERE connection = ?1 AND kind = ?2 AND source_id = ?3",
                params![connection, kind, source_id],
            )
            .map_err(sql("escrow_clear", "escrow"))?;
        Ok(n > 0)
    }

    /// Entries of a connection whose next attempt is due at `now`, earliest first.
    pub fn escrow_due(
        &self,
        connection: &str,
        now_time: SystemTime,
    ) -> Result<Vec<EscrowEntry>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {ESCROW_COLUMNS} FROM escrow
                 WHERE connection = ?1 AND next_attempt_at <= ?2
                 ORDER BY next_attempt_at, kind, source_id"
            ))
            .map_err(sql("escrow_due", "escrow"))?;
        stmt.query_map(params![connection, format_time(now_time)], entry_from_row)
            .and_then(Iterator::collect)
            .map_err(sql("escrow_due", "escrow"))
    }

    /// Every entry of a connection, earliest next attempt first.
    pub fn escrow_all(&self, connection: &str) -> Result<Vec<EscrowEntry>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {ESCROW_COLUMNS} FROM escrow WHERE connection = ?1
                 ORDER BY next_attempt_at, kind, source_id"
            ))
            .map_err(sql("escrow_all", "escrow"))?;
        stmt.query_map([connection], entry_from_row)
            .and_then(Iterator::collect)
            .map_err(sql("escrow_all", "escrow"))
    }

    /// How many objects of a connection wait in escrow and when the first
    /// is retried; `None` when none waits.
    pub fn escrow_summary(&self, connection: &str) -> Result<Option<EscrowSummary>, StoreError> {
        let (objects, next): (i64, Option<String>) = self
            .lock()
            .query_row(
                "SELECT COUNT(*), MIN(next_attempt_at) FROM escrow WHERE connection = ?1",
                [connection],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(sql("escrow_summary", "escrow"))?;
        Ok(next
            .filter(|_| objects > 0)
            .map(|next_attempt_at| EscrowSummary {
                objects: usize::try_from(objects).unwrap_or(usize::MAX),
                next_attempt_at,
            }))
    }

    /// Empty the escrow of a connection; returns how many entries went.
    pub fn escrow_clear_connection(&self, connection: &str) -> Result<usize, StoreError> {
        self.lock()
            .execute("DELETE FROM escrow WHERE connection = ?1", [connection])
            .map_err(sql("escrow_clear_connection", "escrow"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::parse_time;
    use std::time::UNIX_EPOCH;

    const MIN: u64 = 60;

    #[test]
    fn the_summary_counts_the_waiting_objects_and_names_the_first_retry() {
        let store = Store::open_in_memory().unwrap();
        assert_eq!(store.escrow_summary("c").unwrap(), None);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        store
            .escrow_failure(
                "c",
                ObjectKind::User,
                "u1",
                "Transient",
                "503",
                t0,
                crate::store::ESCROW_MAX_BACKOFF,
            )
            .unwrap();
        store
            .escrow_failure(
                "c",
                ObjectKind::User,
                "u2",
                "Transient",
                "503",
                t0,
                crate::store::ESCROW_MAX_BACKOFF,
            )
            .unwrap();
        store
            .escrow_failure(
                "c",
                ObjectKind::User,
                "u2",
                "Transient",
                "503",
                t0,
                crate::store::ESCROW_MAX_BACKOFF,
            )
            .unwrap();
        store
            .escrow_failure(
                "other",
                ObjectKind::User,
                "u3",
                "Transient",
                "503",
                t0,
                crate::store::ESCROW_MAX_BACKOFF,
            )
            .unwrap();
        let s = store.escrow_summary("c").unwrap().unwrap();
        assert_eq!(s.objects, 2);
        assert_eq!(
            parse_time(&s.next_attempt_at).unwrap(),
            t0 + escrow_backoff(1),
            "u1's retry (1 min) comes before u2's (2 min)"
        );
    }

    #[test]
    fn backoff_schedule() {
        assert_eq!(escrow_backoff(0), Duration::ZERO);
        let expect = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
        for (i, m) in expect.iter().enumerate() {
            assert_eq!(
                escrow_backoff(i as u32 + 1),
                Duration::from_secs(m * MIN),
                "{i}"
            );
        }
        assert_eq!(escrow_backoff(12), ESCROW_MAX_BACKOFF);
        assert_eq!(escrow_backoff(100), ESCROW_MAX_BACKOFF);
        assert_eq!(escrow_backoff(u32::MAX), ESCROW_MAX_BACKOFF);
        for a in 1..40 {
            assert!(escrow_backoff(a) <= escrow_backoff(a + 1));
        }
    }

    #[test]
    fn the_connections_cap_bounds_the_wait() {
        let s = Store::open_in_memory().unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let cap = Duration::from_secs(90);
        let waits: Vec<Duration> = (0..4)
            .map(|_| {
                let e = s
                    .escrow_failure("c", ObjectKind::User, "u", "Transient", "503", t0, cap)
                    .unwrap();
                parse_time(&e.next_attempt_at)
                    .unwrap()
                    .duration_since(t0)
                    .unwrap()
            })
            .collect();
        // 1 min, then 2 min and 4 min capped at 90 s.
        assert_eq!(
            waits.iter().map(Duration::as_secs).collect::<Vec<_>>(),
            [60, 90, 90, 90]
        );
        // A cap of 0: due again at once.
        let e = s
            .escrow_failure(
                "c",
                ObjectKind::User,
                "v",
                "Transient",
                "503",
                t0,
                Duration::ZERO,
            )
            .unwrap();
        assert_eq!(parse_time(&e.next_attempt_at), Some(t0));
    }

    #[test]
    fn failures_grow_and_come_due() {
        let s = Store::open_in_memory().unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let e1 = s
            .escrow_failure(
                "c1",
                ObjectKind::User,
                "u1",
                "Timeout",
                "slow",
                t0,
                crate::store::ESCROW_MAX_BACKOFF,
            )
            .unwrap();
        assert_eq!(e1.attempts, 1);
        assert_eq!(
            parse_time(&e1.next_attempt_at),
            Some(t0 + Duration::from_secs(MIN))
        );
        let e2 = s
            .escrow_failure(
                "c1",
                ObjectKind::User,
                "u1",
                "Http500",
                "boom",
                t0,
                crate::store::ESCROW_MAX_BACKOFF,
            )
            .unwrap();
        assert_eq!(e2.attempts, 2);
        assert_eq!(
            parse_time(&e2.next_attempt_at),
            Some(t0 + Duration::from_secs(2 * MIN))
        );
        s.escrow_failure(
            "c1",
            ObjectKind::Group,
            "g1",
            "X",
            "x",
            t0,
            crate::store::ESCROW_MAX_BACKOFF,
        )
        .unwrap();
        s.escrow_failure(
            "c2",
            ObjectKind::User,
            "u1",
            "X",
            "x",
            t0,
            crate::store::ESCROW_MAX_BACKOFF,
        )
        .unwrap();

        let stored = s.escrow_all("c1").unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(stored[1], e2);

        assert!(s.escrow_due("c1", t0).unwrap().is_empty());
        let due = s.escrow_due("c1", t0 + Duration::from_secs(MIN)).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].source_id, "g1");
        let due = s
            .escrow_due("c1", t0 + Duration::from_secs(2 * MIN))
            .unwrap();
        assert_eq!(due.len(), 2);

        assert!(s.escrow_clear("c1", ObjectKind::User, "u1").unwrap());
        assert!(!s.escrow_clear("c1", ObjectKind::User, "u1").unwrap());
        // A cleared object starts over.
        let again = s
            .escrow_failure(
                "c1",
                ObjectKind::User,
                "u1",
                "X",
                "x",
                t0,
                crate::store::ESCROW_MAX_BACKOFF,
            )
            .unwrap();
        assert_eq!(again.attempts, 1);

        assert_eq!(s.escrow_clear_connection("c1").unwrap(), 2);
        assert!(s.escrow_all("c1").unwrap().is_empty());
        assert_eq!(s.escrow_all("c2").unwrap().len(), 1);
    }
}
