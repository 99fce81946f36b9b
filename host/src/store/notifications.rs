//! Notification history: what was sent (or held back by the rate limit) on
//! each channel, so that de-duplication and rate limiting survive a restart.
//!
//! The store knows nothing of event types: a row is keyed by the channel
//! (`webhook` / `email`), the connection, the event kind and a de-duplication
//! key (the event's reason). [`crate::notify`] decides what these mean.

use super::{Store, StoreError, format_time, sql, write_tx};
use rusqlite::params;
use std::time::SystemTime;

/// What happened to one notification on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationStatus {
    /// Delivered.
    Sent,
    /// Held back by the channel's rate limit; reported in the next delivery.
    Suppressed,
}

impl NotificationStatus {
    fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::Sent => "sent",
            NotificationStatus::Suppressed => "suppressed",
        }
    }
}

/// A notification held back by the rate limit and not yet reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressedNotification {
    /// Row id (pass the largest to [`Store::mark_suppressed_reported`]).
    pub id: i64,
    /// The connection.
    pub connection: String,
    /// The event kind.
    pub kind: String,
    /// The de-duplication key (the event's reason).
    pub key: String,
    /// When it was held back (RFC 3339 UTC).
    pub time: String,
}

impl Store {
    /// Whether a notification with this key was sent or held back on
    /// `channel` at or after `since` (and not closed since by
    /// [`Store::close_notifications`]).
    pub fn notification_seen(
        &self,
        channel: &str,
        connection: &str,
        kind: &str,
        key: &str,
        since: SystemTime,
    ) -> Result<bool, StoreError> {
        self.lock()
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM notifications WHERE channel = ?1 AND connection = ?2 \
                 AND kind = ?3 AND dedup_key = ?4 AND closed = 0 AND time >= ?5)",
                params![channel, connection, kind, key, format_time(since)],
                |r| r.get(0),
            )
            .map_err(sql("notification_seen", "notifications"))
    }

    /// How many notifications were delivered on `channel` at or after `since`.
    pub fn notifications_sent_since(
        &self,
        channel: &str,
        since: SystemTime,
    ) -> Result<u64, StoreError> {
        self.lock()
            .query_row(
                "SELECT COUNT(*) FROM notifications WHERE channel = ?1 AND status = 'sent' \
                 AND time >= ?2",
                params![channel, format_time(since)],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(sql("notifications_sent_since", "notifications"))
    }

    /// Record a notification sent or held back at `at`. Rows older than
    /// `forget_before` that no longer matter (sent, or held back and already
    /// reported) are pruned in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub fn record_notification(
        &self,
        channel: &str,
        connection: &str,
        kind: &str,
        key: &str,
        status: NotificationStatus,
        at: SystemTime,
        forget_before: SystemTime,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = write_tx(&mut conn, "record_notification", "notifications")?;
        tx.execute(
            "INSERT INTO notifications (channel, connection, kind, dedup_key, status, time) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                channel,
                connection,
                kind,
                key,
                status.as_str(),
                format_time(at)
            ],
        )
        .map_err(sql("record_notification", "notifications"))?;
        tx.execute(
            "DELETE FROM notifications WHERE time < ?1 AND (status = 'sent' OR reported = 1)",
            params![format_time(forget_before)],
        )
        .map_err(sql("record_notification (prune)", "notifications"))?;
        tx.commit()
            .map_err(sql("record_notification (commit)", "notifications"))
    }

    /// The notifications held back on `channel` and not yet reported, oldest first.
    pub fn unreported_suppressed(
        &self,
        channel: &str,
    ) -> Result<Vec<SuppressedNotification>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT id, connection, kind, dedup_key, time FROM notifications \
                 WHERE channel = ?1 AND status = 'suppressed' AND reported = 0 ORDER BY id",
            )
            .map_err(sql("unreported_suppressed", "notifications"))?;
        let rows = stmt
            .query_map([channel], |r| {
                Ok(SuppressedNotification {
                    id: r.get(0)?,
                    connection: r.get(1)?,
                    kind: r.get(2)?,
                    key: r.get(3)?,
                    time: r.get(4)?,
                })
            })
            .map_err(sql("unreported_suppressed", "notifications"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("unreported_suppressed", "notifications"))
    }

    /// Mark the held-back notifications of `channel` up to row `up_to_id` as
    /// reported (a delivered notification summarised them).
    pub fn mark_suppressed_reported(&self, channel: &str, up_to_id: i64) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "UPDATE notifications SET reported = 1 WHERE channel = ?1 \
                 AND status = 'suppressed' AND id <= ?2",
                params![channel, up_to_id],
            )
            .map(drop)
            .map_err(sql("mark_suppressed_reported", "notifications"))
    }

    /// Close the notifications of these kinds for a connection on every
    /// channel: they no longer de-duplicate later ones (the incident they
    /// reported is over). The rate limit still counts them.
    pub fn close_notifications(&self, connection: &str, kinds: &[&str]) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = write_tx(&mut conn, "close_notifications", "notifications")?;
        for kind in kinds {
            tx.execute(
                "UPDATE notifications SET closed = 1 WHERE connection = ?1 AND kind = ?2",
                params![connection, kind],
            )
            .map_err(sql("close_notifications", "notifications"))?;
        }
        tx.commit()
            .map_err(sql("close_notifications (commit)", "notifications"))
    }
}
