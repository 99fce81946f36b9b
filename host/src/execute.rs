//! Execute: carry out planned actions through the sandboxed connector.
//!
//! Every write follows the store's crash-safety protocol: an intent is
//! committed before the connector call, and the result is recorded together
//! with the intent's removal in one transaction. A create always matches first
//! (by the matching attributes in precedence order) so that an interrupted or
//! timed-out create is found and linked, never duplicated; two matches are an
//! error (`DuplicateTargetEntries`), never a guess. Failures are classified by
//! the contract's error variant and the object goes to escrow. Each object
//! processed leaves one provisioning-log record with its steps and modified
//! properties (values of redacted mappings shown as `[REDACTED]`).
//!
//! Store writes go through a [`GroupCommit`]: the writes of the calls in
//! flight share one transaction and one sync to disk. An intent is still on
//! disk before its connector call (the executor awaits its commit); a target
//! write's result, its intent's removal and its provisioning-log record
//! commit together, so a crash keeps all three or none (then the intent
//! makes the next cycle resume the object); the log records of objects that
//! wrote nothing (failures, skips) and escrow changes are committed with the
//! next group (at the latest at the end of the phase).
//!
//! Test hook: `PROVISIO_CRASH_AFTER_WRITES=N` aborts the process right after
//! the N-th successful connector write, before the store records it — the
//! worst moment for a crash.

use crate::cycle::{MembershipPlan, Planned};
use crate::model::{Attribute, ConnectorError, ObjectKind, TargetObject, Value};
use crate::reconcile::{self, Action, SourceState, same_value};
use crate::runtime::{CallError, Connection};
use crate::source::SourceIssue;
use crate::store::{
    GroupCommit, IntentAction, IntentId, Link, LinkState, LogAction, LogRecord, LogStatus,
    ModifiedProperty, StagedAction, Step, StepKind, Store, StoreError,
};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

/// The result of one object (or one group's membership batch).
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Kind.
    pub kind: ObjectKind,
    /// The object's source id (for memberships: the group's).
    pub source_id: String,
    /// The outcome of a group's membership changes, not of the object.
    pub members: bool,
    /// Action as logged.
    pub action: LogAction,
    /// Status as logged.
    pub status: LogStatus,
}

static WRITES: AtomicU64 = AtomicU64::new(0);

fn crash_hook() {
    static LIMIT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let limit = LIMIT.get_or_init(|| {
        std::env::var("PROVISIO_CRASH_AFTER_WRITES")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if let Some(limit) = limit {
        let n = WRITES.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= *limit {
            eprintln!(
                "PROVISIO_CRASH_AFTER_WRITES={limit}: aborting after a connector write, before recording it"
            );
            std::process::abort();
        }
    }
}

/// Runs actions for one cycle.
pub struct Executor<'a> {
    conn: &'a Connection,
    store: &'a Store,
    /// Writes of the concurrent calls, committed together (see
    /// [`crate::store::group`]).
    group: GroupCommit<'a>,
    cycle_id: String,
    concurrency: usize,
    calls: AtomicU64,
    progress: Option<&'a crate::progress::Progress>,
    lease: Option<crate::store::Lease>,
    /// Set by the first call the target answered 401: the cycle stops (see
    /// [`Executor::credentials_rejected`]).
    rejected: std::sync::OnceLock<String>,
    /// Objects (and membership batches) not tried because credentials were
    /// rejected.
    untried: AtomicU64,
    /// Objects that failed in this cycle (and went to escrow), with the
    /// error code: [`Executor::retryable_failures`] picks those worth one
    /// more attempt at the end of the cycle.
    failed: std::sync::Mutex<std::collections::BTreeMap<(ObjectKind, String), String>>,
    /// The escrow backoff's cap.
    escrow_max_interval: std::time::Duration,
    /// What drift reconciliation found, by object: the first step of the
    /// object's record in this cycle (see [`crate::drift`]).
    drift: BTreeMap<(ObjectKind, String), String>,
    /// The same for a group's members: the first step of its membership
    /// record.
    drift_members: BTreeMap<String, String>,
}

struct Record {
    steps: Vec<Step>,
    modified: Vec<ModifiedProperty>,
    target_id: Option<String>,
    error: Option<(String, String)>,
    /// Set when the failure is worth retrying within the cycle: the delay the
    /// target asked for (Retry-After), or none for the default backoff.
    retry: Option<Option<std::time::Duration>>,
    /// A successful target write's completion (the intent's removal with
    /// the link's new state). [`Executor::run_one`] commits it in the same
    /// write as the object's provisioning-log record, so that a crash never
    /// keeps one without the other.
    completion: Option<Completion>,
    /// The action to log when it is not the planned one (a create that
    /// matched an existing object is logged as [`LogAction::Match`]).
    action: Option<LogAction>,
}

/// Pages (of [`CONFLICT_LIST_PAGE_SIZE`]) a create answered 409 lists at most
/// to find the object ignoring case: 20,000 objects.
const CONFLICT_LIST_PAGES: usize = 200;
/// The page size of that listing.
const CONFLICT_LIST_PAGE_SIZE: u32 = 100;

/// The store write that records a finished target write.
type Completion = Box<dyn FnOnce(&Store) -> Result<(), StoreError> + Send>;

/// Attempts of one object within a cycle (the first plus retries).
pub const MAX_ATTEMPTS: u32 = 4;
/// A Retry-After longer than this is not waited for within the cycle: the
/// object goes to escrow and is retried in a later cycle.
pub const MAX_IN_CYCLE_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Backoff before retry `attempt` (1-based): 0.5 s × 2^(attempt-1), ±20 % jitter, at most 30 s.
pub fn backoff(attempt: u32) -> std::time::Duration {
    let base = 0.5 * f64::from(2u32.saturating_pow(attempt.saturating_sub(1)));
    let jitter = 0.8 + 0.4 * rand::random::<f64>();
    std::time::Duration::from_secs_f64((base * jitter).min(30.0))
}

/// Whether a failure is transient, and the delay the target asked for.
fn retry_hint(e: &CallError) -> Option<Option<std::time::Duration>> {
    match e {
        CallError::Connector(ConnectorError::RateLimited { retry_after, .. }) => Some(*retry_after),
        CallError::Connector(ConnectorError::Transient(_))
        | CallError::Timeout { .. }
        | CallError::Busy { .. } => Some(None),
        _ => None,
    }
}

/// A log step; its detail passes through the secret redactor, so the store
/// never holds a secret value whatever a message contained.
fn step(step: StepKind, status: LogStatus, detail: impl Into<String>) -> Step {
    Step {
        step,
        status,
        detail: crate::capabilities::secrets::redact(&detail.into()),
    }
}

/// The record of an object whose state could not be written.
fn store_failure(
    steps: Vec<Step>,
    target_id: Option<String>,
    e: &dyn std::fmt::Display,
) -> (LogStatus, Record) {
    (
        LogStatus::Failure,
        Record {
            steps,
            modified: vec![],
            target_id,
            error: Some(("StoreError".into(), e.to_string())),
            retry: None,
            completion: None,
            action: None,
        },
    )
}

fn log_action(a: &Action) -> LogAction {
    match a {
        Action::Create { .. } => LogAction::Create,
        Action::Update { .. } | Action::Refresh { .. } => LogAction::Update,
        Action::Enable { .. } => LogAction::Enable,
        Action::Disable { .. } => LogAction::Disable,
        Action::Delete { .. } | Action::Held { delete: true, .. } => LogAction::Delete,
        Action::Held { delete: false, .. } => LogAction::Disable,
        Action::Skip { .. } | Action::None { .. } => LogAction::Skip,
    }
}

/// The error code of a 401 (`unauthorized`).
const UNAUTHORIZED: &str = "Unauthorized";

fn code_of(e: &CallError) -> String {
    match e {
        CallError::Connector(c) => match c {
            ConnectorError::NotFound(_) => "NotFound",
            ConnectorError::Conflict { .. } => "Conflict",
            ConnectorError::RateLimited { .. } => "RateLimited",
            ConnectorError::Unauthorized(_) => UNAUTHORIZED,
            ConnectorError::Forbidden(_) => "Forbidden",
            ConnectorError::InvalidInput(_) => "InvalidInput",
            ConnectorError::Transient(_) => "Transient",
            ConnectorError::Unsupported(_) => "Unsupported",
            ConnectorError::Denied(_) => "Denied",
            ConnectorError::Other(_) => "Other",
        }
        .to_string(),
        other => format!("Sandbox:{}", other.code()),
    }
}

/// Whether an object that failed with `code` gets one more attempt at the
/// end of the cycle (see [`Executor::retryable_failures`]).
fn worth_retrying_in_cycle(code: &str) -> bool {
    matches!(
        code,
        "Transient"
            | "RateLimited"
            | "Other"
            | "NotFound"
            | "Conflict"
            | "StoreError"
            | "Sandbox:timeout"
            | "Sandbox:busy"
    )
}

/// Whether a failed create may still have happened although its failure is
/// not transient: the connector could not read the target's answer (a 2xx
/// with a truncated or HTML body comes back as `other`). Such a create is
/// retried within the cycle, after matching again, like the transient
/// failures and timeouts [`retry_hint`] already retries; definite refusals
/// (invalid input, conflict, forbidden, ...) are not.
fn outcome_unknown(e: &CallError) -> bool {
    matches!(e, CallError::Connector(ConnectorError::Other(_)))
}

impl<'a> Executor<'a> {
    /// An executor for one cycle.
    pub fn new(conn: &'a Connection, store: &'a Store, cycle_id: &str, concurrency: usize) -> Self {
        Executor {
            conn,
            store,
            group: GroupCommit::new(store),
            cycle_id: cycle_id.to_string(),
            concurrency: concurrency.max(1),
            calls: AtomicU64::new(0),
            progress: None,
            lease: None,
            rejected: std::sync::OnceLock::new(),
            untried: AtomicU64::new(0),
            failed: std::sync::Mutex::default(),
            escrow_max_interval: crate::store::ESCROW_MAX_BACKOFF,
            drift: BTreeMap::new(),
            drift_members: BTreeMap::new(),
        }
    }

    /// Drift found by reconcile: each object's (and each group's members')
    /// record in this cycle starts with a `drift` step holding the text.
    pub fn with_drift(
        mut self,
        objects: BTreeMap<(ObjectKind, String), String>,
        members: BTreeMap<String, String>,
    ) -> Self {
        self.drift = objects;
        self.drift_members = members;
        self
    }

    fn drift_step(&self, kind: ObjectKind, source_id: &str) -> Option<Step> {
        self.drift
            .get(&(kind, source_id.to_string()))
            .map(|d| step(StepKind::Drift, LogStatus::Warning, d.clone()))
    }

    /// Why the target rejected the connection's credentials, once a call
    /// was answered 401 (`unauthorized`). From then on the executor makes no
    /// further call: every object (and membership batch) not yet started is
    /// left untouched, neither failed nor escrowed, and is counted by
    /// [`Executor::untried`]. A revoked token thus costs the requests in
    /// flight at that moment, not one per object.
    pub fn credentials_rejected(&self) -> Option<&str> {
        self.rejected.get().map(String::as_str)
    }

    /// Objects and membership batches left untouched because the target
    /// rejected the credentials.
    pub fn untried(&self) -> u64 {
        self.untried.load(Ordering::Relaxed)
    }

    /// Whether a call may still be made; counts an object that may not.
    fn may_call(&self) -> bool {
        if self.rejected.get().is_some() {
            self.untried.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Note a failed call: a 401 stops the cycle.
    fn observe(&self, e: &CallError) {
        if let CallError::Connector(ConnectorError::Unauthorized(m)) = e
            && self
                .rejected
                .set(crate::capabilities::secrets::redact(m))
                .is_ok()
        {
            tracing::error!(connection = %self.name(), "the target rejected the credentials; stopping the cycle: {}", crate::untrusted::Untrusted::new(m).for_log());
        }
    }

    /// Cap the wait of a failed object in escrow (the connection's
    /// `escrow_max_interval_seconds`).
    pub fn with_escrow_max_interval(mut self, cap: std::time::Duration) -> Self {
        self.escrow_max_interval = cap;
        self
    }

    /// Write only while `lease` is the connection's current lease: every
    /// intent checks its fencing token in the same write.
    pub fn with_lease(mut self, lease: crate::store::Lease) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Report every finished object into `progress` as well.
    pub fn with_progress(mut self, progress: &'a crate::progress::Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Count a finished object: metrics and live progress. Objects run by
    /// this executor are counted by it; the cycle counts deferred and
    /// staged ones.
    pub fn finished(&self, o: &Outcome) {
        let kind = o.kind.to_string();
        crate::metrics::metrics()
            .actions
            .get_or_create(&crate::metrics::ActionLabels {
                connection: self.name().to_string(),
                kind: kind.clone(),
                action: o.action.as_str().to_string(),
                status: o.status.as_str().to_string(),
            })
            .inc();
        if let Some(p) = self.progress {
            p.record(&kind, o.action.as_str(), o.status.as_str());
        }
    }

    /// Connector calls made so far.
    pub fn target_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn name(&self) -> &str {
        self.conn.name()
    }

    fn counted(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Record an intent and wait until it is on disk: only then may the
    /// connector be called.
    async fn begin_intent(
        &self,
        kind: ObjectKind,
        source_id: &str,
        action: IntentAction,
        payload: serde_json::Value,
    ) -> Result<IntentId, StoreError> {
        let (name, sid) = (self.name().to_string(), source_id.to_string());
        let lease = self.lease.clone();
        self.group
            .durable(move |s| {
                if let Some(lease) = &lease {
                    s.check_fence(lease)?;
                }
                s.begin_intent(&name, kind, &sid, action, &payload)
            })
            .await
    }

    /// The write failed definitely: forget the intent (with the next commit).
    fn abandon_intent(&self, intent: IntentId) {
        self.group.later(move |s| {
            let _ = s.abandon_intent(intent);
        });
    }

    /// The object succeeded: out of escrow (with the next commit).
    fn escrow_clear(&self, kind: ObjectKind, source_id: &str) {
        self.failed_set().remove(&(kind, source_id.to_string()));
        let (name, sid) = (self.name().to_string(), source_id.to_string());
        self.group.later(move |s| {
            let _ = s.escrow_clear(&name, kind, &sid);
        });
    }

    fn failed_set(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<(ObjectKind, String), String>> {
        self.failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// [`Executor::escrow_clear`], unless the object failed in this cycle.
    fn escrow_clear_unless_failed(&self, kind: ObjectKind, source_id: &str) {
        if !self
            .failed_set()
            .contains_key(&(kind, source_id.to_string()))
        {
            self.escrow_clear(kind, source_id);
        }
    }

    /// Objects planned with nothing to do are in step with the source: an
    /// escrow entry of theirs from an earlier cycle (a create that happened
    /// although its answer was lost, a membership batch that failed) no
    /// longer waits for anything and is cleared, so that status never shows
    /// an object as waiting that is not.
    pub fn clear_settled(&self, settled: impl IntoIterator<Item = (ObjectKind, String)>) {
        let waiting: BTreeSet<(ObjectKind, String)> = self
            .store
            .escrow_all(self.name())
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.kind, e.source_id))
            .collect();
        for key in settled {
            if waiting.contains(&key) {
                self.escrow_clear(key.0, &key.1);
            }
        }
        self.commit();
    }

    /// The objects that failed in this cycle with an error a second attempt
    /// may well not meet: a fault of the moment (lost or unreadable answer,
    /// 5xx, 429 beyond the in-call retries, timeout), a conflict or a
    /// missing object that matching again can resolve. Definite refusals
    /// (invalid input, forbidden, unsupported, denied by policy) and sandbox
    /// faults of the plugin are not retried within the cycle.
    pub fn retryable_failures(&self) -> BTreeSet<(ObjectKind, String)> {
        self.failed_set()
            .iter()
            .filter(|(_, code)| worth_retrying_in_cycle(code))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The object failed: into escrow (with the next commit). Not for a
    /// rejected credential: that is the connection's failure, not the
    /// object's; it goes to quarantine, and the object is tried again as
    /// soon as the credentials work.
    fn escrow_failure(&self, kind: ObjectKind, source_id: &str, code: &str, reason: &str) {
        if code == UNAUTHORIZED {
            return;
        }
        self.failed_set()
            .insert((kind, source_id.to_string()), code.to_string());
        let (name, sid, code, reason) = (
            self.name().to_string(),
            source_id.to_string(),
            code.to_string(),
            reason.to_string(),
        );
        let at = SystemTime::now();
        let cap = self.escrow_max_interval;
        self.group.later(move |s| {
            let _ = s.escrow_failure(&name, kind, &sid, &code, &reason, at, cap);
        });
    }

    /// Append a provisioning-log record (with the next commit).
    fn append_log(&self, log: LogRecord) {
        let name = self.name().to_string();
        self.group.later(move |s| {
            if let Err(e) = s.append_log(&log) {
                tracing::error!(connection = %name, "cannot write the provisioning log: {e}");
            }
        });
    }

    /// Commit every queued write now (the end of a phase: what follows reads
    /// the store).
    fn commit(&self) {
        let _ = self.group.flush();
    }

    /// Finish what a crash left in flight: an interrupted create is re-matched
    /// in the target and linked if found; anything else is recomputed by the
    /// cycle (its link was not updated).
    pub async fn resume_intents(&self) {
        let Ok(pending) = self.store.pending_intents(self.name()) else {
            return;
        };
        for intent in pending {
            if intent.action == IntentAction::Create {
                let matching: Vec<Attribute> = payload_attrs(&intent.payload, "matching");
                let attributes: Vec<Attribute> = payload_attrs(&intent.payload, "attributes");
                let update_fp = intent
                    .payload
                    .get("fingerprint")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string();
                let mut linked = false;
                for m in matching {
                    self.counted();
                    let (m_name, m_value) = (m.name.clone(), m.value.to_json());
                    if let Ok(found) = self.conn.find(intent.kind, m).await
                        && found.len() == 1
                    {
                        let link = Link {
                            connection: self.name().to_string(),
                            kind: intent.kind,
                            source_id: intent.source_id.clone(),
                            target_id: found[0].id.clone(),
                            fingerprint: update_fp.clone(),
                            exported: reconcile::to_json_map(&attributes),
                            state: LinkState::Active,
                            updated_at: String::new(),
                        };
                        linked = self.store.complete_create(intent.id, &link).is_ok();
                        tracing::info!(connection = %self.name(), source_id = %intent.source_id, target_id = %found[0].id, "resumed an interrupted create: found in the target and linked");
                        let mut log = self.record_base(
                            intent.kind,
                            LogAction::Create,
                            LogStatus::Success,
                            intent.source_id.clone(),
                            intent.source_id.clone(),
                        );
                        log.target_id = Some(found[0].id.clone());
                        log.steps = vec![
                            step(
                                StepKind::Processing,
                                LogStatus::Success,
                                format!("resumed a create interrupted at {}", intent.started_at),
                            ),
                            step(
                                StepKind::Matching,
                                LogStatus::Success,
                                format!(
                                    "found in the target by {} = {}: target id {}",
                                    m_name, m_value, found[0].id
                                ),
                            ),
                            step(
                                StepKind::Export,
                                LogStatus::Success,
                                "linked; not created again",
                            ),
                        ];
                        // No modified properties: the redaction set of the mappings is not
                        // kept with the intent, so values are not repeated here.
                        let _ = self.store.append_log(&log);
                        break;
                    }
                }
                if !linked {
                    let _ = self.store.abandon_intent(intent.id);
                }
            } else {
                let _ = self.store.abandon_intent(intent.id);
            }
        }
    }

    /// Log a malformed source record.
    pub fn log_source_issue(&self, issue: &SourceIssue) {
        let rec = self.record_base(
            ObjectKind::User,
            LogAction::Other,
            LogStatus::Failure,
            issue.location.id.clone().unwrap_or_default(),
            issue.location.to_string(),
        );
        let rec = LogRecord {
            steps: vec![step(
                StepKind::Import,
                LogStatus::Failure,
                issue.to_string(),
            )],
            error_code: Some("SourceRecordInvalid".into()),
            error_reason: Some(issue.message.clone()),
            ..rec
        };
        let _ = self.store.append_log(&rec);
    }

    fn record_base(
        &self,
        kind: ObjectKind,
        action: LogAction,
        status: LogStatus,
        source_id: String,
        display: String,
    ) -> LogRecord {
        let mut rec = LogRecord::new(self.name(), kind, action, status);
        rec.cycle_id = Some(self.cycle_id.clone());
        rec.source_id = Some(source_id);
        rec.source_display = Some(display);
        rec
    }

    /// Run objects concurrently (bounded by the connection's concurrency).
    pub async fn run_objects(&self, objects: Vec<&Planned>) -> Vec<Outcome> {
        // The futures are built before they enter the stream: a stream
        // `.map(closure)` would put the closure's type in this future's, and
        // rustc cannot then prove it `Send` for every lifetime (so it could
        // not run in a spawned task, such as an admin API handler).
        let futures: Vec<_> = objects.into_iter().map(|p| self.run_one(p)).collect();
        let out = futures::stream::iter(futures)
            .buffer_unordered(self.concurrency)
            .filter_map(|o| async move {
                if let Some(o) = &o {
                    self.finished(o);
                }
                o
            })
            .collect()
            .await;
        self.commit();
        out
    }

    async fn run_one(&self, p: &Planned) -> Option<Outcome> {
        let started = Instant::now();
        let d = &p.desired;
        let mut steps = vec![
            step(
                StepKind::Import,
                LogStatus::Success,
                format!("{} '{}' read from the source", d.kind, d.display),
            ),
            step(
                StepKind::Scoping,
                if d.in_scope {
                    LogStatus::Success
                } else {
                    LogStatus::Skipped
                },
                d.scope_reason.clone(),
            ),
        ];
        steps.extend(self.drift_step(d.kind, &d.source_id));
        let mut action_name = log_action(&p.action);
        let (status, rec) = match &p.action {
            Action::None { .. } => return None,
            Action::Refresh { fingerprint } => {
                if let Some(l) = &p.link {
                    let link = self.link(
                        p,
                        &l.target_id,
                        fingerprint.clone(),
                        l.exported.clone(),
                        state_of(l.state),
                    );
                    self.group.later(move |s| {
                        let _ = s.upsert_link(&link);
                    });
                }
                return None;
            }
            Action::Held { reason, .. } => {
                steps.push(step(
                    StepKind::Processing,
                    LogStatus::Skipped,
                    reason.clone(),
                ));
                let rec = Record {
                    steps,
                    modified: vec![],
                    target_id: p.link.as_ref().map(|l| l.target_id.clone()),
                    error: None,
                    retry: None,
                    completion: None,
                    action: None,
                };
                (LogStatus::Skipped, rec)
            }
            Action::Skip { reason } => {
                let failed = !p.errors.is_empty();
                steps.push(step(
                    StepKind::Processing,
                    if failed {
                        LogStatus::Failure
                    } else {
                        LogStatus::Skipped
                    },
                    reason.clone(),
                ));
                let rec = Record {
                    steps,
                    modified: vec![],
                    target_id: p.link.as_ref().map(|l| l.target_id.clone()),
                    error: failed.then(|| ("MappingError".to_string(), reason.clone())),
                    retry: None,
                    completion: None,
                    action: None,
                };
                (
                    if failed {
                        LogStatus::Failure
                    } else {
                        LogStatus::Skipped
                    },
                    rec,
                )
            }
            _ if !self.may_call() => return None,
            _ => self.perform_with_retries(p, steps).await,
        };
        let mut status = status;
        let mut rec = rec;
        if let Some(action) = rec.action {
            action_name = action;
        }
        if status == LogStatus::Failure
            && let Some((code, reason)) = &rec.error
        {
            self.escrow_failure(d.kind, &d.source_id, code, reason);
        }
        let mut log = self.record_base(
            d.kind,
            action_name,
            status,
            d.source_id.clone(),
            d.display.clone(),
        );
        log.target_id = rec.target_id;
        log.steps = rec.steps;
        log.modified = rec.modified;
        if let Some((code, reason)) = rec.error {
            log.error_code = Some(code);
            log.error_reason = Some(crate::capabilities::secrets::redact(&reason));
        }
        log.duration_ms = started.elapsed().as_millis() as u64;
        match rec.completion.take() {
            // A target write happened: its completion and its log record are
            // one durable write (a crash keeps both or neither; with
            // neither, the intent still on disk makes the next cycle resume
            // the object).
            Some(complete) => {
                let entry = log.clone();
                let done = self
                    .group
                    .durable(move |s| {
                        complete(s)?;
                        s.append_log(&entry).map(drop)
                    })
                    .await;
                match done {
                    Ok(()) => self.escrow_clear(d.kind, &d.source_id),
                    Err(e) => {
                        status = LogStatus::Failure;
                        let reason = format!(
                            "{} {}: the target was written but the state store failed to record it: {e}",
                            d.kind,
                            log.target_id.as_deref().unwrap_or("?")
                        );
                        log.status = status;
                        log.steps
                            .push(step(StepKind::Export, LogStatus::Failure, reason.clone()));
                        log.error_code = Some("StoreError".into());
                        log.error_reason = Some(reason.clone());
                        self.escrow_failure(d.kind, &d.source_id, "StoreError", &reason);
                        self.append_log(log);
                    }
                }
            }
            None => self.append_log(log),
        }
        Some(Outcome {
            kind: d.kind,
            source_id: d.source_id.clone(),
            members: false,
            action: action_name,
            status,
        })
    }

    /// Perform a target-changing action; a transient failure (rate limited,
    /// 5xx, timeout) is retried within the cycle after the target's
    /// Retry-After, exactly, or an exponential backoff with jitter, at most
    /// [`MAX_ATTEMPTS`] times. A retried create matches again first, so a
    /// create that timed out but happened is linked, not duplicated.
    async fn perform_with_retries(&self, p: &Planned, steps: Vec<Step>) -> (LogStatus, Record) {
        let mut history: Vec<Step> = Vec::new();
        let mut attempt = 1;
        loop {
            let mut attempt_steps = steps.clone();
            attempt_steps.extend(history.iter().cloned());
            let (status, rec) = match &p.action {
                Action::Create { attributes } => self.create(p, attributes, attempt_steps).await,
                Action::Update {
                    changes,
                    fingerprint,
                }
                | Action::Enable {
                    changes,
                    fingerprint,
                } => {
                    self.update(
                        p,
                        changes,
                        fingerprint,
                        matches!(p.action, Action::Enable { .. }),
                        attempt_steps,
                    )
                    .await
                }
                Action::Disable { reason } | Action::Delete { reason } => {
                    self.deprovision(
                        p,
                        reason,
                        matches!(p.action, Action::Delete { .. }),
                        attempt_steps,
                    )
                    .await
                }
                _ => {
                    return (
                        LogStatus::Skipped,
                        Record {
                            steps,
                            modified: vec![],
                            target_id: None,
                            error: None,
                            retry: None,
                            completion: None,
                            action: None,
                        },
                    );
                }
            };
            let Some(hint) = rec.retry.filter(|_| {
                status == LogStatus::Failure
                    && attempt < MAX_ATTEMPTS
                    && self.credentials_rejected().is_none()
            }) else {
                return (status, rec);
            };
            let m = crate::metrics::metrics();
            let labels = crate::metrics::conn(self.name());
            if hint.is_some() {
                m.rate_limited.get_or_create(&labels).inc();
            }
            let wait = hint.unwrap_or_else(|| backoff(attempt));
            if wait > MAX_IN_CYCLE_WAIT {
                return (status, rec);
            }
            m.retries.get_or_create(&labels).inc();
            let why = rec
                .error
                .as_ref()
                .map(|(c, m)| format!("{c}: {m}"))
                .unwrap_or_default();
            history.push(step(
                StepKind::Export,
                LogStatus::Warning,
                format!(
                    "attempt {attempt} failed ({why}); retrying in {} ms{}",
                    wait.as_millis(),
                    if hint.is_some() {
                        " as the target asked"
                    } else {
                        ""
                    }
                ),
            ));
            tracing::info!(connection = %self.name(), source_id = %p.desired.source_id, attempt, wait_ms = wait.as_millis() as u64, "retrying: {}", crate::untrusted::Untrusted::new(&why.to_string()).for_log());
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn link(
        &self,
        p: &Planned,
        target_id: &str,
        fingerprint: String,
        exported: std::collections::BTreeMap<String, serde_json::Value>,
        state: LinkState,
    ) -> Link {
        Link {
            connection: self.name().to_string(),
            kind: p.desired.kind,
            source_id: p.desired.source_id.clone(),
            target_id: target_id.to_string(),
            fingerprint,
            exported,
            state,
            updated_at: String::new(),
        }
    }

    fn modified(
        p: &Planned,
        changes: impl Iterator<Item = (String, Option<serde_json::Value>, serde_json::Value)>,
    ) -> Vec<ModifiedProperty> {
        changes
            .map(|(name, old, new)| {
                let r = p.redacted.contains(&name);
                let red = |v: serde_json::Value| {
                    if r {
                        serde_json::Value::String("[REDACTED]".into())
                    } else {
                        v
                    }
                };
                ModifiedProperty {
                    name,
                    old: old.map(red),
                    new: Some(red(new)),
                }
            })
            .collect()
    }

    fn fail(
        &self,
        e: &CallError,
        mut steps: Vec<Step>,
        stage: StepKind,
        target_id: Option<String>,
    ) -> (LogStatus, Record) {
        self.observe(e);
        let code = code_of(e);
        let msg = e.to_string();
        steps.push(step(stage, LogStatus::Failure, msg.clone()));
        (
            LogStatus::Failure,
            Record {
                steps,
                modified: vec![],
                target_id,
                error: Some((code, msg)),
                retry: retry_hint(e),
                completion: None,
                action: None,
            },
        )
    }

    async fn create(
        &self,
        p: &Planned,
        attributes: &[Attribute],
        mut steps: Vec<Step>,
    ) -> (LogStatus, Record) {
        let d = &p.desired;
        let update_fp = reconcile::fingerprint(&d.update);
        let payload = serde_json::json!({
            "matching": reconcile::to_json_map(&d.matching),
            "attributes": reconcile::to_json_map(attributes),
            "fingerprint": update_fp,
        });
        let intent = match self
            .begin_intent(d.kind, &d.source_id, IntentAction::Create, payload)
            .await
        {
            Ok(i) => i,
            Err(e) => {
                steps.push(step(
                    StepKind::Processing,
                    LogStatus::Failure,
                    format!("state store: {e}"),
                ));
                return store_failure(steps, None, &e);
            }
        };
        // Match first.
        let mut matched: Option<(TargetObject, String)> = None;
        if d.matching.is_empty() {
            steps.push(step(
                StepKind::Matching,
                LogStatus::Warning,
                "no matching attribute has a value; creating without matching",
            ));
        }
        for m in &d.matching {
            self.counted();
            match self.conn.find(d.kind, m.clone()).await {
                Ok(found) if found.is_empty() => continue,
                Ok(mut found) if found.len() == 1 => {
                    let obj = found.remove(0);
                    steps.push(step(
                        StepKind::Matching,
                        LogStatus::Success,
                        format!(
                            "matched by {} = {}: target id {}",
                            m.name,
                            m.value.to_json(),
                            obj.id
                        ),
                    ));
                    matched = Some((obj, format!("by {}", m.name)));
                    break;
                }
                Ok(found) => {
                    self.abandon_intent(intent);
                    return Self::duplicates(&found, m, steps);
                }
                Err(e) => {
                    self.abandon_intent(intent);
                    return self.fail(&e, steps, StepKind::Matching, None);
                }
            }
        }
        if matched.is_none() {
            if !d.matching.is_empty() {
                steps.push(step(
                    StepKind::Matching,
                    LogStatus::Success,
                    "no match in the target",
                ));
            }
            self.counted();
            match self.conn.create(d.kind, attributes.to_vec()).await {
                Ok(o) => {
                    crash_hook();
                    steps.push(step(
                        StepKind::Export,
                        LogStatus::Success,
                        format!("created {} {}", d.kind, o.id),
                    ));
                    let modified = Self::modified(
                        p,
                        attributes
                            .iter()
                            .map(|a| (a.name.clone(), None, a.value.to_json())),
                    );
                    return self.linked(p, intent, &o.id, attributes, update_fp, steps, modified);
                }
                Err(e) if matches!(e, CallError::Connector(ConnectorError::Conflict { .. })) => {
                    match self.rematch_after_conflict(p, &e, &mut steps).await {
                        Ok(found) => matched = Some(found),
                        Err(failed) => {
                            self.abandon_intent(intent);
                            return failed;
                        }
                    }
                }
                Err(e) => {
                    self.abandon_intent(intent);
                    let unknown = outcome_unknown(&e);
                    let (status, mut rec) = self.fail(&e, steps, StepKind::Export, None);
                    if unknown {
                        // The target may have created the object: the
                        // retry matches first, so it links what was
                        // created instead of creating it twice.
                        if let Some((_, msg)) = &mut rec.error {
                            msg.push_str(
                                "; the outcome of the create is unknown (its answer could \
                                 not be read), so the object is matched again before any \
                                 new create",
                            );
                        }
                        rec.retry = Some(None);
                    }
                    return (status, rec);
                }
            }
        }
        let Some((obj, how)) = matched else {
            // Every path above either matched or returned.
            self.abandon_intent(intent);
            return store_failure(steps, None, &"internal: no target object after matching");
        };
        // A matched object is updated, not created: only the attributes an
        // update maps (and the lifecycle's `active`), and of those only the
        // ones whose value differs from what the target holds.
        let changes = Self::match_changes(&d.update, attributes, &obj);
        if !changes.is_empty() {
            self.counted();
            let sendable = changes.iter().map(|(a, _)| a.clone()).collect();
            if let Err(e) = self.conn.update(d.kind, &obj.id, sendable).await {
                self.abandon_intent(intent);
                return self.fail(&e, steps, StepKind::Export, Some(obj.id.clone()));
            }
            crash_hook();
        }
        // A matched group's members are what the target holds, not what a
        // new group would have: record them, so that the membership diff
        // adds only the missing ones (never re-adds the present ones, which
        // some servers would then hold twice) and removes the extra ones.
        let held_members = if d.kind == ObjectKind::Group {
            match self.matched_group_members(&obj.id, &mut steps).await {
                Ok(m) => m,
                Err(e) => {
                    self.abandon_intent(intent);
                    return self.fail(&e, steps, StepKind::Matching, Some(obj.id.clone()));
                }
            }
        } else {
            None
        };
        let names: Vec<&str> = changes.iter().map(|(a, _)| a.name.as_str()).collect();
        steps.push(step(
            StepKind::Export,
            LogStatus::Success,
            if changes.is_empty() {
                format!(
                    "matched existing {} {} {how}; its attributes already match, nothing sent",
                    d.kind, obj.id
                )
            } else {
                format!(
                    "matched existing {} {} {how}; updated {} attribute{} ({})",
                    d.kind,
                    obj.id,
                    changes.len(),
                    if changes.len() == 1 { "" } else { "s" },
                    names.join(", ")
                )
            },
        ));
        let modified = Self::modified(
            p,
            changes
                .iter()
                .map(|(a, old)| (a.name.clone(), old.clone(), a.value.to_json())),
        );
        let (status, mut rec) =
            self.linked(p, intent, &obj.id, attributes, update_fp, steps, modified);
        rec.action = Some(LogAction::Match);
        if let Some(members) = held_members {
            let link = rec.completion.take();
            let (connection, group) = (self.name().to_string(), d.source_id.clone());
            rec.completion = Some(Box::new(move |s| {
                if let Some(link) = link {
                    link(s)?;
                }
                s.replace_members(&connection, &group, &members)
            }));
        }
        (status, rec)
    }

    /// The members a matched group has in the target, as source ids of this
    /// connection's users (`None` when the connector does not report
    /// members: the source's are then added as for a new group). Members
    /// that are no user of this connection are left alone, and said so.
    async fn matched_group_members(
        &self,
        target_id: &str,
        steps: &mut Vec<Step>,
    ) -> Result<Option<BTreeSet<String>>, CallError> {
        self.counted();
        let group = self.conn.get(ObjectKind::Group, target_id).await?;
        if !crate::drift::reports_members(&group) {
            steps.push(step(
                StepKind::ReferenceResolution,
                LogStatus::Warning,
                "the target did not report the matched group's members; the source's \
                 members are added as for a new group",
            ));
            return Ok(None);
        }
        let in_target = crate::drift::members_of(&group);
        let mut held = BTreeSet::new();
        let mut unmanaged = 0usize;
        for tid in &in_target {
            match self
                .store
                .link_by_target(self.name(), ObjectKind::User, tid)
            {
                Ok(Some(l)) if l.state != LinkState::Deleted => {
                    held.insert(l.source_id);
                }
                _ => unmanaged += 1,
            }
        }
        steps.push(step(
            StepKind::ReferenceResolution,
            LogStatus::Success,
            format!(
                "the matched group has {} member(s) in the target: {} user(s) of this \
                 connection (only the missing members are added, the extra ones removed){}",
                in_target.len(),
                held.len(),
                if unmanaged > 0 {
                    format!(", {unmanaged} other(s) left alone")
                } else {
                    String::new()
                }
            ),
        ));
        Ok(Some(held))
    }

    /// The record of a create whose matching attribute found several
    /// target objects: an error, never a guess.
    fn duplicates(found: &[TargetObject], m: &Attribute, steps: Vec<Step>) -> (LogStatus, Record) {
        let mut steps = steps;
        let ids: Vec<String> = found.iter().map(|o| o.id.clone()).collect();
        let msg = format!(
            "{} target objects match {} = {}: {}; refusing to guess",
            found.len(),
            m.name,
            m.value.to_json(),
            ids.join(", ")
        );
        steps.push(step(StepKind::Matching, LogStatus::Failure, msg.clone()));
        (
            LogStatus::Failure,
            Record {
                steps,
                modified: vec![],
                target_id: None,
                error: Some(("DuplicateTargetEntries".into(), msg)),
                retry: None,
                completion: None,
                action: None,
            },
        )
    }

    /// The successful record of a create or match: the link to `target_id`
    /// and the intent's completion.
    #[allow(clippy::too_many_arguments)]
    fn linked(
        &self,
        p: &Planned,
        intent: IntentId,
        target_id: &str,
        attributes: &[Attribute],
        update_fp: String,
        steps: Vec<Step>,
        modified: Vec<ModifiedProperty>,
    ) -> (LogStatus, Record) {
        let d = &p.desired;
        let enabled = d.enabled && d.state == SourceState::Present;
        let state = if enabled {
            LinkState::Active
        } else {
            LinkState::Disabled
        };
        let link = self.link(
            p,
            target_id,
            update_fp,
            reconcile::to_json_map(attributes),
            state,
        );
        let completion: Completion = Box::new(move |s| s.complete_create(intent, &link));
        (
            LogStatus::Success,
            Record {
                steps,
                modified,
                target_id: Some(target_id.to_string()),
                error: None,
                retry: None,
                completion: Some(completion),
                action: None,
            },
        )
    }

    /// The attributes to send to a matched object, each with the value the
    /// target holds (when it reported one): those of `attributes` that an
    /// update maps (`update`) or that the lifecycle owns (`active`), not
    /// null, and different from the target's value. Create-only mappings are
    /// not applied to an object that already existed.
    fn match_changes(
        update: &[Attribute],
        attributes: &[Attribute],
        current: &TargetObject,
    ) -> Vec<(Attribute, Option<serde_json::Value>)> {
        attributes
            .iter()
            .filter(|a| !matches!(a.value, Value::Null))
            .filter(|a| {
                a.name.eq_ignore_ascii_case(reconcile::ACTIVE)
                    || update.iter().any(|u| u.name == a.name)
            })
            .filter_map(|a| {
                let held = current
                    .attributes
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(&a.name))
                    .map(|c| &c.value);
                match held {
                    Some(v) if same_value(&a.value, v) => None,
                    Some(v) => Some((a.clone(), Some(v.to_json()))),
                    None => Some((a.clone(), None)),
                }
            })
            .collect()
    }

    /// After a create answered 409: look the object up again by each
    /// matching attribute and, when no exact lookup finds it (some servers
    /// compare `userName` case-sensitively although RFC 7643 makes it
    /// case-insensitive), compare the matching attributes ignoring case
    /// over a listing of the target. Exactly one object found is the match;
    /// otherwise the create fails with the target's conflict.
    async fn rematch_after_conflict(
        &self,
        p: &Planned,
        conflict: &CallError,
        steps: &mut Vec<Step>,
    ) -> Result<(TargetObject, String), (LogStatus, Record)> {
        let d = &p.desired;
        steps.push(step(
            StepKind::Matching,
            LogStatus::Warning,
            format!(
                "the create was refused as a conflict ({conflict}); looking the object up again"
            ),
        ));
        for m in &d.matching {
            self.counted();
            match self.conn.find(d.kind, m.clone()).await {
                Ok(found) if found.is_empty() => continue,
                Ok(mut found) if found.len() == 1 => {
                    let obj = found.remove(0);
                    steps.push(step(
                        StepKind::Matching,
                        LogStatus::Success,
                        format!(
                            "matched by {} = {}: target id {}",
                            m.name,
                            m.value.to_json(),
                            obj.id
                        ),
                    ));
                    return Ok((obj, format!("by {} after the create's conflict", m.name)));
                }
                Ok(found) => return Err(Self::duplicates(&found, m, std::mem::take(steps))),
                Err(e) => {
                    return Err(self.fail(&e, std::mem::take(steps), StepKind::Matching, None));
                }
            }
        }
        let refuse = |this: &Self, steps: &mut Vec<Step>, why: String| {
            let (status, mut rec) =
                this.fail(conflict, std::mem::take(steps), StepKind::Export, None);
            if let Some((_, msg)) = &mut rec.error {
                msg.push_str("; ");
                msg.push_str(&why);
            }
            if let Some(last) = rec.steps.last_mut() {
                last.detail =
                    crate::capabilities::secrets::redact(&format!("{}; {why}", last.detail));
            }
            (status, rec)
        };
        let texts: Vec<(&str, &str)> = d
            .matching
            .iter()
            .filter_map(|m| match &m.value {
                Value::Text(t) => Some((m.name.as_str(), t.as_str())),
                _ => None,
            })
            .collect();
        let can_list = self
            .conn
            .plugin()
            .manifest
            .capabilities
            .contains(&crate::model::Capability::List);
        if texts.is_empty() || !can_list {
            return Err(refuse(
                self,
                steps,
                format!(
                    "no target object matched exactly, and {}",
                    if can_list {
                        "no matching attribute is text to compare ignoring case"
                    } else {
                        "the connector cannot list the target to compare ignoring case"
                    }
                ),
            ));
        }
        let mut listed: Vec<TargetObject> = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..CONFLICT_LIST_PAGES {
            self.counted();
            match self
                .conn
                .list(d.kind, cursor.as_deref(), CONFLICT_LIST_PAGE_SIZE)
                .await
            {
                Ok(page) => {
                    listed.extend(page.objects);
                    cursor = page.next_cursor;
                    if cursor.is_none() {
                        break;
                    }
                }
                Err(e) => {
                    return Err(self.fail(&e, std::mem::take(steps), StepKind::Matching, None));
                }
            }
        }
        let truncated = cursor.is_some();
        for (name, want) in &texts {
            let found: Vec<&TargetObject> = listed
                .iter()
                .filter(|o| {
                    o.attributes.iter().any(|a| {
                        a.name.eq_ignore_ascii_case(name)
                            && matches!(&a.value, Value::Text(t) if t.eq_ignore_ascii_case(want))
                    })
                })
                .collect();
            match found.as_slice() {
                [] => continue,
                [obj] => {
                    let held = obj
                        .attributes
                        .iter()
                        .find(|a| a.name.eq_ignore_ascii_case(name))
                        .map(|a| a.value.to_json())
                        .unwrap_or_default();
                    steps.push(step(
                        StepKind::Matching,
                        LogStatus::Success,
                        format!(
                            "no exact match for {name} = {:?}, so compared ignoring case over {} \
                             listed {}s: target id {} has {name} = {held}",
                            want,
                            listed.len(),
                            d.kind,
                            obj.id
                        ),
                    ));
                    return Ok(((*obj).clone(), format!("by {name} ignoring case")));
                }
                many => {
                    let owned: Vec<TargetObject> = many.iter().map(|o| (*o).clone()).collect();
                    let m = Attribute {
                        name: (*name).to_string(),
                        value: Value::Text((*want).to_string()),
                    };
                    return Err(Self::duplicates(&owned, &m, std::mem::take(steps)));
                }
            }
        }
        Err(refuse(
            self,
            steps,
            format!(
                "no target object matched exactly or ignoring case ({} {}s listed{})",
                listed.len(),
                d.kind,
                if truncated {
                    format!(", stopped after {CONFLICT_LIST_PAGES} pages")
                } else {
                    String::new()
                }
            ),
        ))
    }

    async fn update(
        &self,
        p: &Planned,
        changes: &[reconcile::Change],
        fingerprint: &str,
        enable: bool,
        mut steps: Vec<Step>,
    ) -> (LogStatus, Record) {
        let d = &p.desired;
        let Some(link) = &p.link else {
            return (
                LogStatus::Failure,
                Record {
                    steps,
                    modified: vec![],
                    target_id: None,
                    error: Some(("Internal".into(), "update without a link".into())),
                    retry: None,
                    completion: None,
                    action: None,
                },
            );
        };
        steps.push(step(
            StepKind::Matching,
            LogStatus::Success,
            format!("linked to target id {}", link.target_id),
        ));
        let intent = match self
            .begin_intent(
                d.kind,
                &d.source_id,
                if enable {
                    IntentAction::Enable
                } else {
                    IntentAction::Update
                },
                serde_json::json!({}),
            )
            .await
        {
            Ok(i) => i,
            Err(e) => {
                return store_failure(steps, Some(link.target_id.clone()), &e);
            }
        };
        if enable {
            self.counted();
            if let Err(e) = self.conn.enable(d.kind, &link.target_id).await {
                self.abandon_intent(intent);
                return self.anchor_or_fail(p, &e, steps, &link.target_id);
            }
            crash_hook();
        }
        if !changes.is_empty() {
            let attrs: Vec<Attribute> = changes
                .iter()
                .map(|c| Attribute {
                    name: c.name.clone(),
                    value: Value::from_json(&c.name, &c.new).unwrap_or(Value::Null),
                })
                .collect();
            self.counted();
            if let Err(e) = self.conn.update(d.kind, &link.target_id, attrs).await {
                self.abandon_intent(intent);
                return self.anchor_or_fail(p, &e, steps, &link.target_id);
            }
            crash_hook();
        }
        let mut exported = link.exported.clone();
        for c in changes {
            exported.insert(c.name.clone(), c.new.clone());
        }
        let new_link = self.link(
            p,
            &link.target_id,
            fingerprint.to_string(),
            exported,
            LinkState::Active,
        );
        let completion: Completion = {
            let link = new_link.clone();
            Box::new(move |s| s.complete_update(intent, &link))
        };
        let what = if enable { "enabled" } else { "updated" };
        steps.push(step(
            StepKind::Export,
            LogStatus::Success,
            format!(
                "{what} {} {} ({} attributes)",
                d.kind,
                link.target_id,
                changes.len()
            ),
        ));
        let modified = Self::modified(
            p,
            changes
                .iter()
                .map(|c| (c.name.clone(), c.old.clone(), c.new.clone())),
        );
        (
            LogStatus::Success,
            Record {
                steps,
                modified,
                target_id: Some(link.target_id.clone()),
                error: None,
                retry: None,
                completion: Some(completion),
                action: None,
            },
        )
    }

    /// A linked object that vanished from the target (`InvalidAnchor`) loses
    /// its link so the next cycle re-matches or re-creates it.
    fn anchor_or_fail(
        &self,
        p: &Planned,
        e: &CallError,
        steps: Vec<Step>,
        target_id: &str,
    ) -> (LogStatus, Record) {
        if matches!(e, CallError::Connector(ConnectorError::NotFound(_))) {
            let (name, kind, sid) = (
                self.name().to_string(),
                p.desired.kind,
                p.desired.source_id.clone(),
            );
            self.group.later(move |s| {
                let _ = s.remove_link(&name, kind, &sid);
            });
            let mut steps = steps;
            let msg = format!(
                "target object {target_id} no longer exists; the link was removed and the object will be matched again next cycle"
            );
            steps.push(step(StepKind::Export, LogStatus::Failure, msg.clone()));
            return (
                LogStatus::Failure,
                Record {
                    steps,
                    modified: vec![],
                    target_id: Some(target_id.to_string()),
                    error: Some(("InvalidAnchor".into(), msg)),
                    retry: None,
                    completion: None,
                    action: None,
                },
            );
        }
        self.fail(e, steps, StepKind::Export, Some(target_id.to_string()))
    }

    async fn deprovision(
        &self,
        p: &Planned,
        reason: &str,
        delete: bool,
        mut steps: Vec<Step>,
    ) -> (LogStatus, Record) {
        let d = &p.desired;
        let Some(link) = &p.link else {
            return (
                LogStatus::Skipped,
                Record {
                    steps,
                    modified: vec![],
                    target_id: None,
                    error: None,
                    retry: None,
                    completion: None,
                    action: None,
                },
            );
        };
        steps.push(step(
            StepKind::Processing,
            LogStatus::Success,
            reason.to_string(),
        ));
        let intent = match self
            .begin_intent(
                d.kind,
                &d.source_id,
                if delete {
                    IntentAction::Delete
                } else {
                    IntentAction::Disable
                },
                serde_json::json!({}),
            )
            .await
        {
            Ok(i) => i,
            Err(e) => {
                return store_failure(steps, Some(link.target_id.clone()), &e);
            }
        };
        self.counted();
        let r = if delete {
            self.conn.delete(d.kind, &link.target_id).await
        } else {
            self.conn.disable(d.kind, &link.target_id).await
        };
        match r {
            Ok(()) => crash_hook(),
            Err(CallError::Connector(ConnectorError::NotFound(_))) if delete => {}
            Err(e) => {
                self.abandon_intent(intent);
                return self.anchor_or_fail(p, &e, steps, &link.target_id);
            }
        }
        let completion: Completion = Box::new(move |s| {
            if delete {
                s.complete_delete(intent)
            } else {
                s.complete_state(intent, LinkState::Disabled)
            }
        });
        steps.push(step(
            StepKind::Export,
            LogStatus::Success,
            format!(
                "{} {} {}",
                if delete { "deleted" } else { "disabled" },
                d.kind,
                link.target_id
            ),
        ));
        let modified = if delete {
            vec![]
        } else {
            vec![ModifiedProperty {
                name: "active".into(),
                old: Some(serde_json::json!(true)),
                new: Some(serde_json::json!(false)),
            }]
        };
        (
            LogStatus::Success,
            Record {
                steps,
                modified,
                target_id: Some(link.target_id.clone()),
                error: None,
                retry: None,
                completion: Some(completion),
                action: None,
            },
        )
    }

    /// Group memberships, in batches.
    pub async fn run_memberships(&self, plans: &[MembershipPlan], batch: usize) -> Vec<Outcome> {
        let mut out = Vec::new();
        for m in plans {
            let started = Instant::now();
            let Ok(Some(group)) = self.store.link(self.name(), ObjectKind::Group, &m.group) else {
                continue;
            };
            if group.state == LinkState::Deleted {
                continue;
            }
            let resolve = |ids: &[String]| -> Vec<(String, String)> {
                ids.iter()
                    .filter_map(
                        |sid| match self.store.link(self.name(), ObjectKind::User, sid) {
                            Ok(Some(l)) if l.state != LinkState::Deleted => {
                                Some((sid.clone(), l.target_id))
                            }
                            _ => None,
                        },
                    )
                    .collect()
            };
            let mut steps: Vec<Step> = self
                .drift_members
                .get(&m.group)
                .map(|d| step(StepKind::Drift, LogStatus::Warning, d.clone()))
                .into_iter()
                .collect();
            steps.push(step(
                StepKind::ReferenceResolution,
                LogStatus::Success,
                format!("{} to add, {} to remove", m.add.len(), m.remove.len()),
            ));
            if !m.held.is_empty() {
                steps.push(step(
                    StepKind::Processing,
                    LogStatus::Skipped,
                    format!(
                        "removal of {} held ({}): {}",
                        m.held.len(),
                        m.held.join(", "),
                        m.held_reason
                    ),
                ));
            }
            let only_held = m.add.is_empty() && m.remove.is_empty();
            let mut error = None;
            let mut added = 0;
            let mut removed = 0;
            if !only_held && !self.may_call() {
                continue;
            }
            for (adding, list) in [(true, resolve(&m.add)), (false, resolve(&m.remove))] {
                for chunk in list.chunks(batch.max(1)) {
                    if self.credentials_rejected().is_some() {
                        break;
                    }
                    let sids: Vec<String> = chunk.iter().map(|(s, _)| s.clone()).collect();
                    let tids: Vec<String> = chunk.iter().map(|(_, t)| t.clone()).collect();
                    let Ok(intent) = self
                        .begin_intent(
                            ObjectKind::Group,
                            &m.group,
                            IntentAction::Members,
                            serde_json::json!({"add": adding, "members": sids}),
                        )
                        .await
                    else {
                        continue;
                    };
                    self.counted();
                    let r = if adding {
                        self.conn.add_members(&group.target_id, &tids).await
                    } else {
                        self.conn.remove_members(&group.target_id, &tids).await
                    };
                    match r {
                        Ok(()) => {
                            crash_hook();
                            let (a, rm): (&[String], &[String]) =
                                if adding { (&sids, &[]) } else { (&[], &sids) };
                            let (group, a, rm) = (m.group.clone(), a.to_vec(), rm.to_vec());
                            self.group.later(move |s| {
                                let _ = s.complete_members(intent, &group, &a, &rm);
                            });
                            if adding {
                                added += sids.len()
                            } else {
                                removed += sids.len()
                            }
                        }
                        Err(e) => {
                            self.abandon_intent(intent);
                            self.observe(&e);
                            steps.push(step(StepKind::Export, LogStatus::Failure, e.to_string()));
                            self.escrow_failure(
                                ObjectKind::Group,
                                &m.group,
                                &code_of(&e),
                                &e.to_string(),
                            );
                            error = Some((code_of(&e), e.to_string()));
                        }
                    }
                }
            }
            if error.is_none() {
                steps.push(step(
                    StepKind::Export,
                    LogStatus::Success,
                    format!(
                        "added {added}, removed {removed} members in batches of at most {batch}"
                    ),
                ));
            }
            let status = if error.is_some() {
                LogStatus::Failure
            } else if only_held {
                LogStatus::Skipped
            } else {
                LogStatus::Success
            };
            let mut log = self.record_base(
                ObjectKind::Group,
                LogAction::Update,
                status,
                m.group.clone(),
                m.group.clone(),
            );
            log.target_id = Some(group.target_id.clone());
            log.steps = steps;
            log.modified = vec![ModifiedProperty {
                name: "members".into(),
                old: None,
                new: Some(serde_json::json!({"added": added, "removed": removed})),
            }];
            let in_step = error.is_none();
            if let Some((c, r)) = error {
                log.error_code = Some(c);
                log.error_reason = Some(r);
            }
            log.duration_ms = started.elapsed().as_millis() as u64;
            self.append_log(log);
            if in_step && !only_held {
                // The group's memberships are in step: a membership failure
                // of an earlier cycle no longer waits in escrow (unless the
                // group object itself failed in this one).
                self.escrow_clear_unless_failed(ObjectKind::Group, &m.group);
            }
            let o = Outcome {
                kind: ObjectKind::Group,
                source_id: m.group.clone(),
                members: true,
                action: LogAction::Update,
                status,
            };
            self.finished(&o);
            out.push(o);
        }
        self.commit();
        out
    }

    /// Objects in escrow whose next attempt is not yet due: they are skipped
    /// this cycle (logged), so a failing object is retried on a growing
    /// interval instead of every cycle. A restart clears escrow.
    pub fn escrowed_not_due(
        &self,
    ) -> std::collections::BTreeMap<(ObjectKind, String), crate::store::EscrowEntry> {
        let now = SystemTime::now();
        self.store
            .escrow_all(self.name())
            .unwrap_or_default()
            .into_iter()
            .filter(|e| crate::store::parse_time(&e.next_attempt_at).is_some_and(|t| t > now))
            .map(|e| ((e.kind, e.source_id.clone()), e))
            .collect()
    }

    /// Log an object deferred by escrow.
    pub fn defer(&self, p: &Planned, entry: &crate::store::EscrowEntry) -> Outcome {
        let d = &p.desired;
        let action = log_action(&p.action);
        let mut log = self.record_base(
            d.kind,
            action,
            LogStatus::Skipped,
            d.source_id.clone(),
            d.display.clone(),
        );
        log.target_id = p.link.as_ref().map(|l| l.target_id.clone());
        log.steps = vec![step(
            StepKind::Processing,
            LogStatus::Skipped,
            format!(
                "in escrow after {} failed attempts (last: {}: {}); next attempt at {}. `provisio restart {}` retries now",
                entry.attempts,
                entry.last_error_code,
                entry.last_error,
                entry.next_attempt_at,
                self.name()
            ),
        )];
        let _ = self.store.append_log(&log);
        Outcome {
            kind: d.kind,
            source_id: d.source_id.clone(),
            members: false,
            action,
            status: LogStatus::Skipped,
        }
    }

    /// Staged deprovisions already allowed by an operator and not yet done
    /// (the store marks them done when the disable or delete completes).
    pub fn allowed_staged(&self) -> BTreeSet<(ObjectKind, String)> {
        self.store
            .staged_allowed_undone(self.name())
            .map(|v| v.into_iter().map(|s| (s.kind, s.source_id)).collect())
            .unwrap_or_default()
    }

    /// Hold deprovisions for an operator's decision.
    pub fn stage(&self, objects: Vec<&Planned>, threshold: usize) -> Vec<Outcome> {
        let n = objects.len();
        let pending: BTreeSet<(ObjectKind, String)> = self
            .store
            .staged_pending(self.name())
            .map(|v| v.into_iter().map(|s| (s.kind, s.source_id)).collect())
            .unwrap_or_default();
        objects
            .into_iter()
            .map(|p| {
                let d = &p.desired;
                let (action, log_act) = if matches!(p.action, Action::Delete { .. }) {
                    (StagedAction::Delete, LogAction::StagedDelete)
                } else {
                    (StagedAction::Disable, LogAction::StagedDisable)
                };
                let reason = format!(
                    "{}; held: this cycle would disable or delete {n} objects, above the deletion threshold of {threshold}. \
                     Review with `provisio staged list {c}`, then `provisio staged allow {c}` or `provisio staged reject {c}`",
                    crate::cycle::detail(p),
                    c = self.name()
                );
                if !pending.contains(&(d.kind, d.source_id.clone())) {
                    let target = p.link.as_ref().map(|l| l.target_id.clone()).unwrap_or_default();
                    let _ = self.store.stage(self.name(), &self.cycle_id, d.kind, &d.source_id, &target, action, &reason);
                }
                let mut log = self.record_base(d.kind, log_act, LogStatus::Skipped, d.source_id.clone(), d.display.clone());
                log.target_id = p.link.as_ref().map(|l| l.target_id.clone());
                log.steps = vec![step(StepKind::Processing, LogStatus::Skipped, reason)];
                let _ = self.store.append_log(&log);
                Outcome { kind: d.kind, source_id: d.source_id.clone(), members: false, action: log_act, status: LogStatus::Skipped }
            })
            .collect()
    }
}

fn state_of(s: reconcile::Lifecycle) -> LinkState {
    match s {
        reconcile::Lifecycle::Active => LinkState::Active,
        reconcile::Lifecycle::Disabled => LinkState::Disabled,
        reconcile::Lifecycle::Deleted => LinkState::Deleted,
    }
}

fn payload_attrs(payload: &serde_json::Value, key: &str) -> Vec<Attribute> {
    payload
        .get(key)
        .and_then(|v| v.as_object())
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| {
                    Value::from_json(k, v).ok().map(|value| Attribute {
                        name: k.clone(),
                        value,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn a(name: &str, value: Value) -> Attribute {
        Attribute {
            name: name.into(),
            value,
        }
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn same_value_allows_for_the_targets_representation() {
        assert!(same_value(&Value::Boolean(true), &text("True")));
        assert!(same_value(&text("false"), &Value::Boolean(false)));
        assert!(!same_value(&Value::Boolean(true), &text("yes")));
        assert!(same_value(&Value::Integer(42), &text("42")));
        assert!(same_value(&text("a"), &Value::TextList(vec!["a".into()])));
        assert!(same_value(
            &Value::TextList(vec!["b".into(), "a".into()]),
            &Value::TextList(vec!["a".into(), "b".into()])
        ));
        assert!(!same_value(&text("Ada"), &text("ada")), "case is a change");
    }

    #[test]
    fn a_matched_object_gets_only_update_mappings_that_differ() {
        let attributes = vec![
            a("userName", text("ada@x")),
            a("displayName", text("Ada")),
            a("title", text("Engineer")),
            a("active", text("True")),
            a("roles[primary eq \"True\"].value", text("Admin")),
            a("nickName", Value::Null),
            a("department", text("R&D")),
        ];
        // `roles` is create-only: not among the update mappings.
        let update: Vec<Attribute> = attributes
            .iter()
            .filter(|x| !x.name.starts_with("roles") && x.name != "active")
            .cloned()
            .collect();
        let current = TargetObject {
            id: "7f3a".into(),
            attributes: vec![
                a("userName", text("ada@x")),
                a("displayName", text("Old")),
                a("title", text("Engineer")),
                a("active", Value::Boolean(true)),
            ],
        };
        let changes = Executor::match_changes(&update, &attributes, &current);
        let got: Vec<(&str, Option<serde_json::Value>)> = changes
            .iter()
            .map(|(x, old)| (x.name.as_str(), old.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("displayName", Some(serde_json::json!("Old"))),
                ("department", None),
            ]
        );
    }
}
