//! The service's control state per connection: whether the operator paused
//! it, and its quarantine (how many cycles in a row failed, why, and when the
//! next attempt is due). Kept here so that a restarted service resumes the
//! same schedule instead of hammering a target that rejected it an hour ago.

use super::{Store, StoreError, now, sql};
use rusqlite::{OptionalExtension, params};

/// One connection's control state; the default is "running, healthy".
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConnectionState {
    /// Paused by the operator: no new cycle starts until resumed.
    pub paused: bool,
    /// Consecutive failed cycles; 0 = not in quarantine.
    pub quarantine_failures: u32,
    /// Why the last cycle failed (shown to the operator).
    pub quarantine_reason: Option<String>,
    /// When the next attempt is due (RFC 3339 UTC), in quarantine.
    pub next_attempt_at: Option<String>,
}

impl ConnectionState {
    /// Whether the connection is in quarantine.
    pub fn quarantined(&self) -> bool {
        self.quarantine_failures > 0
    }
}

impl Store {
    /// The control state of a connection (default when never recorded).
    pub fn connection_state(&self, connection: &str) -> Result<ConnectionState, StoreError> {
        self.lock()
            .query_row(
                "SELECT paused, quarantine_failures, quarantine_reason, next_attempt_at
                 FROM connection_state WHERE connection = ?1",
                [connection],
                |r| {
                    Ok(ConnectionState {
                        paused: r.get::<_, i64>(0)? != 0,
                        quarantine_failures: r.get::<_, i64>(1)?.clamp(0, u32::MAX as i64) as u32,
                        quarantine_reason: r.get(2)?,
                        next_attempt_at: r.get(3)?,
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(sql("connection_state", "connection_state"))
    }

    /// Pause or resume a connection.
    pub fn set_paused(&self, connection: &str, paused: bool) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "INSERT INTO connection_state (connection, paused, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (connection) DO UPDATE SET
                     paused = excluded.paused, updated_at = excluded.updated_at",
                params![connection, paused as i64, now()],
            )
            .map_err(sql("set_paused", "connection_state"))?;
        Ok(())
    }

    /// Record a failed cycle: quarantine with `failures` consecutive failures.
    pub fn set_quarantine(
        &self,
        connection: &str,
        failures: u32,
        reason: &str,
        next_attempt_at: &str,
    ) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "INSERT INTO connection_state
                     (connection, quarantine_failures, quarantine_reason, next_attempt_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (connection) DO UPDATE SET
                     quarantine_failures = excluded.quarantine_failures,
                     quarantine_reason = excluded.quarantine_reason,
                     next_attempt_at = excluded.next_attempt_at,
                     updated_at = excluded.updated_at",
                params![connection, failures as i64, reason, next_attempt_at, now()],
            )
            .map_err(sql("set_quarantine", "connection_state"))?;
        Ok(())
    }

    /// Leave quarantine (a cycle succeeded, or the operator restarted the
    /// connection). Returns whether it was in quarantine.
    pub fn clear_quarantine(&self, connection: &str) -> Result<bool, StoreError> {
        let n = self
            .lock()
            .execute(
                "UPDATE connection_state SET quarantine_failures = 0, quarantine_reason = NULL,
                     next_attempt_at = NULL, updated_at = ?2
                 WHERE connection = ?1 AND quarantine_failures > 0",
                params![connection, now()],
            )
            .map_err(sql("clear_quarantine", "connection_state"))?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_state_round_trips_and_is_per_connection() {
        let s = Store::open_in_memory().unwrap();
        assert_eq!(s.connection_state("a").unwrap(), ConnectionState::default());
        s.set_paused("a", true).unwrap();
        s.set_quarantine("a", 2, "401 from target", "2030-01-01T00:00:00.000Z")
            .unwrap();
        let a = s.connection_state("a").unwrap();
        assert!(a.paused && a.quarantined());
        assert_eq!(a.quarantine_failures, 2);
        assert_eq!(a.quarantine_reason.as_deref(), Some("401 from target"));
        assert_eq!(s.connection_state("b").unwrap(), ConnectionState::default());
        assert!(s.clear_quarantine("a").unwrap());
        assert!(!s.clear_quarantine("a").unwrap(), "already cleared");
        let a = s.connection_state("a").unwrap();
        assert!(a.paused, "clearing quarantine keeps the pause");
        assert!(!a.quarantined() && a.next_attempt_at.is_none());
        s.set_paused("a", false).unwrap();
        assert_eq!(s.connection_state("a").unwrap(), ConnectionState::default());
    }
}
