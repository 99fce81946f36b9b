//! Notifications: tell operators when a cycle fails, when a connection enters
//! or leaves quarantine, when the deletion guard holds disables/deletes for
//! review, and when objects still wait in escrow after a cycle.
//!
//! How the parts fit:
//! - The scheduler ([`crate::scheduler`]) builds one [`Notifier`] from the
//!   `[notifications]` section of the config ([`crate::config::NotificationsConfig`])
//!   and calls [`Notifier::notify`] with an [`Event`] after a cycle.
//! - Each configured channel — [`webhook`] (a JSON POST) and [`email`] (SMTP
//!   through `lettre`) — gets the same message: a JSON payload (see
//!   [`payload`]), and for email a subject and a plain-text rendering of it.
//! - De-duplication and rate limiting are decided per channel from the
//!   notification history in the state store (`notifications` table, see
//!   [`crate::store`]), so they survive a restart:
//!   - the same event — same connection, kind and reason — is delivered at
//!     most once per de-duplication window (default 1 h);
//!   - a channel delivers at most `max_per_hour` notifications in any hour
//!     (default 20); the ones held back are recorded and summarised in the
//!     next notification that goes out on that channel (`suppressed`);
//!   - leaving quarantine closes the connection's failure notifications (a new
//!     incident notifies again at once), and entering quarantine closes its
//!     last "left quarantine".
//! - A delivery that fails (refused, timed out, answered non-2xx) is logged
//!   and not recorded, so the next occurrence tries again. Nothing here fails
//!   a cycle: every delivery is bounded by [`DELIVERY_TIMEOUT`], channels are
//!   tried concurrently, and errors are only logged (with secret values
//!   redacted).

pub mod email;
pub mod webhook;

use crate::capabilities::secrets::redact;
use crate::config::{Config, ConfigError, NotificationsConfig};
use crate::store::{NotificationStatus, Store, StoreError, SuppressedNotification, format_time};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Default de-duplication window.
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(3600);

/// Default limit of notifications per channel per hour.
pub const DEFAULT_MAX_PER_HOUR: u32 = 20;

/// The longest one delivery (one channel) may take.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

/// At most this many held-back notifications are listed in a summary.
const SUMMARY_LIST: usize = 20;

/// The kinds of events, as named in `notifications.events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A cycle failed (could not run, or too many objects failed).
    CycleFailed,
    /// A connection entered quarantine.
    Quarantined,
    /// A connection left quarantine (a cycle succeeded).
    LeftQuarantine,
    /// The deletion guard held disables/deletes for review.
    StagedDeletions,
    /// After a cycle that did not fail, objects still wait in escrow for a
    /// retry: the target is not yet in step with the source.
    ObjectsWaiting,
}

impl EventKind {
    /// Every kind.
    pub const ALL: &'static [EventKind] = &[
        EventKind::CycleFailed,
        EventKind::Quarantined,
        EventKind::LeftQuarantine,
        EventKind::StagedDeletions,
        EventKind::ObjectsWaiting,
    ];

    /// The name used in config, payloads and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CycleFailed => "cycle_failed",
            EventKind::Quarantined => "quarantined",
            EventKind::LeftQuarantine => "left_quarantine",
            EventKind::StagedDeletions => "staged_deletions",
            EventKind::ObjectsWaiting => "objects_waiting",
        }
    }

    /// Parse a name from the config.
    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(*t))
}

/// Something an operator should hear about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A cycle failed.
    CycleFailed {
        /// The connection.
        connection: String,
        /// The cycle, if it got far enough to have one.
        cycle_id: Option<String>,
        /// Why (e.g. "2 of 2 objects failed" or the error that stopped it).
        reason: String,
        /// Objects by "kind action status".
        counts: BTreeMap<String, usize>,
    },
    /// A connection entered quarantine.
    Quarantined {
        /// The connection.
        connection: String,
        /// Why.
        reason: String,
        /// Consecutive failed cycles.
        failed_cycles: u32,
        /// When the next cycle will be attempted.
        #[serde(serialize_with = "ser_time")]
        next_attempt: SystemTime,
    },
    /// A connection left quarantine.
    LeftQuarantine {
        /// The connection.
        connection: String,
    },
    /// The deletion guard held disables/deletes for review.
    StagedDeletions {
        /// The connection.
        connection: String,
        /// The cycle that staged them.
        cycle_id: String,
        /// How many are held.
        count: usize,
        /// A few of them, e.g. "disable user u-17 (unassigned)".
        sample: Vec<String>,
    },
    /// Objects wait in escrow for their next retry after a cycle that did
    /// not fail as a whole.
    ObjectsWaiting {
        /// The connection.
        connection: String,
        /// The cycle after which they wait.
        cycle_id: String,
        /// How many objects wait.
        count: usize,
        /// The earliest next attempt (RFC 3339 UTC).
        next_attempt: String,
        /// A few of them, e.g. "user u-17 after 3 attempts (Transient: 503)".
        sample: Vec<String>,
    },
}

impl Event {
    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::CycleFailed { .. } => EventKind::CycleFailed,
            Event::Quarantined { .. } => EventKind::Quarantined,
            Event::LeftQuarantine { .. } => EventKind::LeftQuarantine,
            Event::StagedDeletions { .. } => EventKind::StagedDeletions,
            Event::ObjectsWaiting { .. } => EventKind::ObjectsWaiting,
        }
    }

    /// The connection it concerns.
    pub fn connection(&self) -> &str {
        match self {
            Event::CycleFailed { connection, .. }
            | Event::Quarantined { connection, .. }
            | Event::LeftQuarantine { connection }
            | Event::StagedDeletions { connection, .. }
            | Event::ObjectsWaiting { connection, .. } => connection,
        }
    }

    /// The reason, which with connection and kind is the de-duplication key.
    pub fn reason(&self) -> String {
        match self {
            Event::CycleFailed { reason, .. } | Event::Quarantined { reason, .. } => reason.clone(),
            Event::LeftQuarantine { .. } => "a cycle succeeded".to_string(),
            Event::StagedDeletions { count, .. } => {
                format!("{count} disables/deletes held for review")
            }
            Event::ObjectsWaiting { count, .. } => format!("{count} objects waiting for retry"),
        }
    }

    /// One line for people (the email subject).
    pub fn summary(&self) -> String {
        let c = self.connection();
        match self {
            Event::CycleFailed { reason, .. } => {
                format!("connection '{c}': cycle failed ({reason})")
            }
            Event::Quarantined {
                reason,
                next_attempt,
                ..
            } => format!(
                "connection '{c}' in quarantine ({reason}); next attempt at {}",
                format_time(*next_attempt)
            ),
            Event::LeftQuarantine { .. } => {
                format!("connection '{c}' left quarantine: a cycle succeeded")
            }
            Event::StagedDeletions { count, .. } => format!(
                "connection '{c}': {count} disables/deletes held for review (provisio staged list {c})"
            ),
            Event::ObjectsWaiting {
                count,
                next_attempt,
                ..
            } => format!(
                "connection '{c}': {count} objects waiting for retry (next at {next_attempt}; \
                 provisio status {c})"
            ),
        }
    }
}

/// The JSON every channel sends (secret values redacted from every string): the event's fields (`event`, `connection`,
/// and per kind `cycle_id`, `reason`, `counts`, `failed_cycles`,
/// `next_attempt`, `count`, `sample`), plus `reason`, `summary`, `time`
/// (RFC 3339 UTC) and, when the rate limit held some back since the last
/// delivery on this channel, `suppressed: {count, since, events: [{connection,
/// event, reason, time}]}` (at most 20 listed).
pub fn payload(
    event: &Event,
    now: SystemTime,
    suppressed: &[SuppressedNotification],
) -> serde_json::Value {
    let mut v = serde_json::to_value(event).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(m) = v.as_object_mut() {
        m.insert("reason".into(), event.reason().into());
        m.insert("summary".into(), event.summary().into());
        m.insert("time".into(), format_time(now).into());
        if let Some(first) = suppressed.first() {
            let events: Vec<serde_json::Value> = suppressed
                .iter()
                .take(SUMMARY_LIST)
                .map(|s| {
                    serde_json::json!({
                        "connection": s.connection, "event": s.kind, "reason": s.key, "time": s.time,
                    })
                })
                .collect();
            m.insert(
                "suppressed".into(),
                serde_json::json!({"count": suppressed.len(), "since": first.time, "events": events}),
            );
        }
    }
    redact_strings(&mut v);
    v
}

/// Reasons and samples can carry a connector's or a target's text: every
/// string of the payload goes through the secret redactor before it leaves
/// the host (the channels escape it for their medium).
fn redact_strings(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => *s = crate::capabilities::secrets::redact(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_strings),
        serde_json::Value::Object(m) => m.values_mut().for_each(redact_strings),
        _ => {}
    }
}

/// Why a [`Notifier`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A secret could not be read, or the section is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The state store (notification history) could not be opened.
    #[error("notifications: cannot open the state store: {0}")]
    Store(#[from] StoreError),
    /// A channel could not be set up.
    #[error("notifications.{channel}: {message}")]
    Channel {
        /// `webhook` or `email`.
        channel: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// What to do with one event on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver it.
    Send,
    /// The same was delivered (or held back) within the window: drop it.
    Duplicate,
    /// The channel's hourly limit is reached: record and summarise later.
    Suppress,
}

/// The de-duplication and rate-limit rules, over the store's history.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The same event notifies once per this window.
    pub dedup_window: Duration,
    /// At most this many deliveries per channel per hour.
    pub max_per_hour: u32,
}

const HOUR: Duration = Duration::from_secs(3600);

fn before(now: SystemTime, d: Duration) -> SystemTime {
    now.checked_sub(d).unwrap_or(UNIX_EPOCH)
}

impl Policy {
    /// Decide what to do with `event` on `channel` at `now`.
    pub fn verdict(
        &self,
        store: &Store,
        channel: &str,
        event: &Event,
        now: SystemTime,
    ) -> Result<Verdict, StoreError> {
        let kind = event.kind().as_str();
        if store.notification_seen(
            channel,
            event.connection(),
            kind,
            &event.reason(),
            before(now, self.dedup_window),
        )? {
            return Ok(Verdict::Duplicate);
        }
        if store.notifications_sent_since(channel, before(now, HOUR))?
            >= u64::from(self.max_per_hour)
        {
            return Ok(Verdict::Suppress);
        }
        Ok(Verdict::Send)
    }

    /// Record what was done, pruning history no rule needs any more.
    pub fn record(
        &self,
        store: &Store,
        channel: &str,
        event: &Event,
        status: NotificationStatus,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        store.record_notification(
            channel,
            event.connection(),
            event.kind().as_str(),
            &event.reason(),
            status,
            now,
            before(now, self.dedup_window.max(HOUR)),
        )
    }

    /// Close what an event ends: leaving quarantine closes the connection's
    /// failure notifications; entering quarantine closes its last "left".
    pub fn close_ended(&self, store: &Store, event: &Event) -> Result<(), StoreError> {
        let kinds: &[&str] = match event.kind() {
            EventKind::LeftQuarantine => &["cycle_failed", "quarantined"],
            EventKind::Quarantined => &["left_quarantine"],
            _ => return Ok(()),
        };
        store.close_notifications(event.connection(), kinds)
    }
}

enum Channel {
    Webhook(webhook::Webhook),
    Email(email::Email),
}

impl Channel {
    fn name(&self) -> &'static str {
        match self {
            Channel::Webhook(_) => "webhook",
            Channel::Email(_) => "email",
        }
    }

    async fn send(&self, event: &Event, payload: &serde_json::Value) -> Result<(), String> {
        match self {
            Channel::Webhook(w) => w.send(payload).await,
            Channel::Email(e) => e.send(event, payload).await,
        }
    }
}

struct Inner {
    store: Store,
    events: BTreeSet<EventKind>,
    policy: Policy,
    channels: Vec<Channel>,
    // One event at a time, so the history each decision reads is up to date.
    turn: tokio::sync::Mutex<()>,
}

/// Sends [`Event`]s to the configured channels, de-duplicated and
/// rate-limited (see the [module docs](self)).
pub struct Notifier {
    inner: Option<Inner>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let channels: Vec<&str> = self
            .inner
            .iter()
            .flat_map(|i| i.channels.iter().map(Channel::name))
            .collect();
        f.debug_struct("Notifier")
            .field("channels", &channels)
            .finish()
    }
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier { inner: None }
    }

    /// Build from the config: read the channels' secrets, set up the
    /// channels, open the state store that keeps the history. With no channel
    /// configured, a disabled notifier.
    pub fn from_config(config: &Config) -> Result<Notifier, NotifyError> {
        Self::build(config, &config.notifications)
    }

    fn build(config: &Config, n: &NotificationsConfig) -> Result<Notifier, NotifyError> {
        let mut channels = Vec::new();
        if let Some(w) = &n.webhook {
            let secret = match &w.secret {
                Some(name) => Some(config.secret_value(name, "notifications.webhook")?),
                None => None,
            };
            channels.push(Channel::Webhook(webhook::Webhook::new(w, secret)?));
        }
        if let Some(e) = &n.email {
            let password = match &e.password_secret {
                Some(name) => Some(config.secret_value(name, "notifications.email")?),
                None => None,
            };
            channels.push(Channel::Email(email::Email::new(e, password)?));
        }
        if channels.is_empty() {
            return Ok(Notifier::disabled());
        }
        let store = Store::open(&config.store_path)?;
        Ok(Notifier {
            inner: Some(Inner {
                store,
                events: n.events.clone(),
                policy: Policy {
                    dedup_window: n.dedup_window,
                    max_per_hour: n.max_per_hour,
                },
                channels,
                turn: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Whether any channel is configured.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Deliver `event` on every channel, unless it is not chosen in
    /// `notifications.events`, a duplicate, or over the rate limit. Never
    /// fails: problems are logged. Takes at most [`DELIVERY_TIMEOUT`] plus
    /// the store's time.
    pub async fn notify(&self, event: Event) {
        let Some(inner) = &self.inner else { return };
        let kind = event.kind();
        if !inner.events.contains(&kind) {
            return;
        }
        let _turn = inner.turn.lock().await;
        let now = SystemTime::now();
        if let Err(e) = inner.policy.close_ended(&inner.store, &event) {
            tracing::warn!(connection = %event.connection(), "notifications: cannot update the history: {}", redact(&e.to_string()));
        }
        let deliveries = inner.channels.iter().map(|c| inner.deliver(c, &event, now));
        futures::future::join_all(deliveries).await;
    }
}

impl Inner {
    async fn deliver(&self, channel: &Channel, event: &Event, now: SystemTime) {
        let ch = channel.name();
        let conn = event.connection();
        let kind = event.kind().as_str();
        let verdict = self
            .policy
            .verdict(&self.store, ch, event, now)
            .unwrap_or_else(|e| {
                // Better a duplicate than a lost alert.
                tracing::warn!(channel = ch, connection = %conn, "notifications: cannot read the history ({}); sending anyway", redact(&e.to_string()));
                Verdict::Send
            });
        match verdict {
            Verdict::Duplicate => {
                tracing::info!(channel = ch, connection = %conn, event = kind, "notification not sent: the same was sent within the de-duplication window");
            }
            Verdict::Suppress => {
                tracing::warn!(channel = ch, connection = %conn, event = kind, "notification held back: {} per hour reached on this channel; it will be summarised in the next one", self.policy.max_per_hour);
                if let Err(e) =
                    self.policy
                        .record(&self.store, ch, event, NotificationStatus::Suppressed, now)
                {
                    tracing::warn!(
                        channel = ch,
                        "notifications: cannot record: {}",
                        redact(&e.to_string())
                    );
                }
            }
            Verdict::Send => {
                let suppressed = self.store.unreported_suppressed(ch).unwrap_or_else(|e| {
                    tracing::warn!(
                        channel = ch,
                        "notifications: cannot read held-back notifications: {}",
                        redact(&e.to_string())
                    );
                    Vec::new()
                });
                let body = payload(event, now, &suppressed);
                let sent = tokio::time::timeout(DELIVERY_TIMEOUT, channel.send(event, &body)).await;
                match sent {
                    Ok(Ok(())) => {
                        tracing::info!(channel = ch, connection = %conn, event = kind, "notification sent: {}", event.summary());
                        let recorded = self
                            .policy
                            .record(&self.store, ch, event, NotificationStatus::Sent, now)
                            .and_then(|()| match suppressed.last() {
                                Some(last) => self.store.mark_suppressed_reported(ch, last.id),
                                None => Ok(()),
                            });
                        if let Err(e) = recorded {
                            tracing::warn!(
                                channel = ch,
                                "notifications: sent but cannot record it (it may be sent again): {}",
                                redact(&e.to_string())
                            );
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(channel = ch, connection = %conn, event = kind, "notification failed: {}", redact(&e));
                    }
                    Err(_) => {
                        tracing::warn!(channel = ch, connection = %conn, event = kind, "notification failed: no answer within {} s", DELIVERY_TIMEOUT.as_secs());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
