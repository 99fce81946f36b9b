//! The scheduler behind `provisio run`: every connection with a source runs an
//! initial cycle, then incremental cycles at its interval (default 40 minutes,
//! any value allowed), with ±10 % jitter so connections do not align. A global
//! limit bounds how many cycles run at once, so one slow vendor cannot starve
//! the rest.
//!
//! [`Service`] owns one task per connection ([`ConnHandle`] is what the
//! admin API sees of it: state, live progress, the last cycle) and one
//! shared runtime with the plugins kept loaded by pinned digest
//! ([`LoadedPlugins`]): a plugin file replaced on disk is picked up only once
//! the configuration's pin names the new digest.
//!
//! Control (from the admin API, see [`crate::admin`]): *start* runs a cycle
//! now (and resumes a paused connection); *pause* lets the running cycle
//! finish and starts no new one until *resume*; *restart* clears the chosen
//! state (watermark, escrow, quarantine, links) and runs a cycle now. The
//! pause and the quarantine are kept in the store, so a restarted service
//! keeps them.
//!
//! Quarantine: a cycle that cannot run (credentials rejected, source or store
//! unusable) or in which most objects fail puts the connection in quarantine;
//! its next attempts back off on Entra's schedule — 6 h, 12 h, 24 h, then daily —
//! and the first cycle that succeeds ends it, as does a restart.
//!
//! Notifications: a failed cycle, entering and leaving quarantine, and a cycle
//! whose deletion guard held disables/deletes go to the [`Notifier`] built from
//! `[notifications]` (see [`crate::notify`]); it bounds its own time and never
//! fails a cycle.
//!
//! Log retention: once a day the service deletes provisioning-log records
//! older than `[service] log_retention_days` (default 30).
//!
//! Shutdown: on SIGTERM or Ctrl-C no new cycle starts; running cycles finish
//! (every write is already recorded with its intent, so even a `kill -9`
//! resumes safely), then the process exits.

use crate::cycle::CycleSummary;
use crate::notify::{Event, Notifier};
use crate::progress::{Progress, ProgressSnapshot};
use crate::runtime::LoadedPlugins;
use crate::store::{Store, format_time, parse_time};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Default interval between cycles of one connection.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(40 * 60);

/// Fraction of failed objects above which a cycle counts as failed for quarantine.
pub const FAILURE_RATIO: f64 = 0.4;

/// The delay before the next cycle: `interval` ± 10 % (`unit` in [0, 1) chooses where).
pub fn next_delay(interval: Duration, unit: f64) -> Duration {
    let factor = 0.9 + 0.2 * unit.clamp(0.0, 1.0);
    interval.mul_f64(factor)
}

/// Quarantine back-off after `failures` consecutive failed cycles (1-based):
/// 6 h, 12 h, 24 h, then daily.
pub fn quarantine_delay(failures: u32) -> Duration {
    const H: u64 = 3600;
    Duration::from_secs(match failures {
        0 | 1 => 6 * H,
        2 => 12 * H,
        _ => 24 * H,
    })
}

/// Whether a finished cycle counts as a failure for quarantine: every object
/// failed (as when credentials are rejected), or, from 5 objects on, more than
/// [`FAILURE_RATIO`] of them.
pub fn cycle_failed(failures: usize, attempted: usize) -> bool {
    (failures > 0 && failures == attempted)
        || (attempted >= 5 && failures as f64 / attempted as f64 > FAILURE_RATIO)
}

/// The quarantine reason a cycle gives by itself, whatever its failure
/// ratio: the target rejected the credentials.
pub fn quarantine_reason(s: &CycleSummary) -> Option<String> {
    s.credentials_rejected.as_ref().map(|m| {
        format!(
            "credentials rejected: {m}; fix the connection's secret, then `provisio restart` it"
        )
    })
}

/// Put `connection` into quarantine (one more failed cycle) for `why`, in
/// the store, so that `provisio run` (this process or a later one) and
/// `status` see it; returns the failed cycles and the back-off.
pub fn enter_quarantine(
    store: &Store,
    connection: &str,
    why: &str,
) -> Result<(u32, Duration), crate::store::StoreError> {
    let failed_cycles = store
        .connection_state(connection)?
        .quarantine_failures
        .saturating_add(1);
    let d = quarantine_delay(failed_cycles);
    store.set_quarantine(
        connection,
        failed_cycles,
        why,
        &format_time(SystemTime::now() + d),
    )?;
    Ok((failed_cycles, d))
}

/// What a connection is doing, as the admin API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnState {
    /// No cycle has run yet.
    NotRun,
    /// A cycle is running.
    Running,
    /// Healthy, waiting for its next cycle.
    Active,
    /// Paused by the operator.
    Paused,
    /// In quarantine: cycles back off.
    Quarantine,
}

impl ConnState {
    /// The state from whether a cycle runs, the stored control state and
    /// whether a cycle ever finished.
    pub fn of(running: bool, st: &crate::store::ConnectionState, ran: bool) -> Self {
        if running {
            ConnState::Running
        } else if st.paused {
            ConnState::Paused
        } else if st.quarantined() {
            ConnState::Quarantine
        } else if !ran {
            ConnState::NotRun
        } else {
            ConnState::Active
        }
    }
}

#[derive(Debug, Default)]
struct Live {
    running: bool,
    next_run_at: Option<SystemTime>,
    last_error: Option<String>,
    plugin: Option<(String, String)>,
    run_now: bool,
    /// When this process last started a reconcile.
    reconcile_attempted_at: Option<SystemTime>,
}

/// One connection under the service: its live state and controls.
#[derive(Debug)]
pub struct ConnHandle {
    name: String,
    progress: Progress,
    live: std::sync::Mutex<Live>,
    wake: tokio::sync::Notify,
    cycle_lock: tokio::sync::Mutex<()>,
}

impl ConnHandle {
    fn new(name: String) -> Self {
        ConnHandle {
            name,
            progress: Progress::new(),
            live: std::sync::Mutex::new(Live::default()),
            wake: tokio::sync::Notify::new(),
            cycle_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn live<R>(&self, f: impl FnOnce(&mut Live) -> R) -> R {
        let mut g = self.live.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// The connection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Live progress of the running (or last) cycle.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }
}

/// Quarantine as the admin API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuarantineStatus {
    /// Consecutive failed cycles.
    pub failed_cycles: u32,
    /// Why the last cycle failed.
    pub reason: Option<String>,
    /// When the next attempt is due (RFC 3339 UTC).
    pub next_attempt_at: Option<String>,
}

/// A connection's status (`GET /v1/connections/{name}`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectionStatus {
    /// Connection name.
    pub name: String,
    /// not-run, running, active, paused or quarantine.
    pub state: ConnState,
    /// Paused by the operator (a running cycle may still be finishing).
    pub paused: bool,
    /// Quarantine, if in it.
    pub quarantine: Option<QuarantineStatus>,
    /// Objects waiting in escrow for their next retry, if any: a connection
    /// with waiting objects is not in step, whatever its last cycle said.
    pub escrow: Option<crate::store::EscrowSummary>,
    /// Progress of the running cycle (type, phase, done/total, counts).
    pub current_cycle: Option<ProgressSnapshot>,
    /// The last finished cycle: id, type, status, times and its summary
    /// (counts by action, failures, duration) under `counts`.
    pub last_cycle: Option<crate::store::Cycle>,
    /// When the next cycle is due (RFC 3339 UTC), unless paused.
    pub next_run_at: Option<String>,
    /// Why the last attempt could not run at all, if it could not.
    pub last_error: Option<String>,
    /// The loaded plugin: `{ "name", "sha256" }`.
    pub plugin: Option<serde_json::Value>,
}

/// What `restart` clears (defaults: watermark, escrow, quarantine).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartScope {
    /// Next cycle is an initial cycle.
    pub watermark: bool,
    /// Empty the retry queue.
    pub escrow: bool,
    /// Leave quarantine.
    pub quarantine: bool,
    /// Forget links and staged actions: every object is matched again.
    pub links: bool,
}

impl Default for RestartScope {
    fn default() -> Self {
        RestartScope {
            watermark: true,
            escrow: true,
            quarantine: true,
            links: false,
        }
    }
}

/// A control request that cannot be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No such connection under this service.
    #[error("no connection named '{0}' is run by this service")]
    UnknownConnection(String),
    /// A cycle is running; the request needs it finished.
    #[error(
        "a cycle of '{0}' is running; pause the connection, wait for the cycle to finish, then retry"
    )]
    Busy(String),
    /// Another process (a `provisio sync`, another node) holds the
    /// connection's lease.
    #[error("{0}")]
    HeldElsewhere(String),
    /// The store failed.
    #[error("state store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Anything else (opening the connection, a connector call).
    #[error("{0}")]
    Other(String),
}

impl From<crate::store::LeaseError> for ControlError {
    fn from(e: crate::store::LeaseError) -> Self {
        match e {
            held @ crate::store::LeaseError::Held { .. } => Self::HeldElsewhere(held.to_string()),
            crate::store::LeaseError::Store(e) => Self::Store(e),
        }
    }
}

/// The running service: connections, their loops and controls.
pub struct Service {
    config_path: PathBuf,
    store: Store,
    conns: BTreeMap<String, Arc<ConnHandle>>,
    plugins: LoadedPlugins,
    permits: tokio::sync::Semaphore,
    once: bool,
    retention: Duration,
    started_at: SystemTime,
    notifier: Arc<Notifier>,
}

impl Service {
    /// A service for `names` of the configuration at `config_path`.
    pub fn new(
        config_path: PathBuf,
        names: Vec<String>,
        max_concurrent: usize,
        once: bool,
    ) -> anyhow::Result<Arc<Self>> {
        let config = crate::config::Config::load(&config_path)?;
        let store = crate::cli::open_store(&config)?;
        // A damaged state file stops the service before it writes anything.
        crate::cli::check_store(&store)?;
        let runtime = crate::runtime::Runtime::new(Some(&config.state_dir.join("cache")))?;
        let notifier = Arc::new(
            Notifier::from_config(&config).map_err(|e| anyhow::anyhow!(redact(&e.to_string())))?,
        );
        Ok(Arc::new(Service {
            config_path,
            store,
            conns: names
                .into_iter()
                .map(|n| (n.clone(), Arc::new(ConnHandle::new(n))))
                .collect(),
            plugins: LoadedPlugins::new(runtime),
            permits: tokio::sync::Semaphore::new(max_concurrent.max(1)),
            once,
            retention: config.service.log_retention,
            started_at: SystemTime::now(),
            notifier,
        }))
    }

    /// The configuration file the service runs.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The service's state store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// When the service started.
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// Names of the connections it runs.
    pub fn names(&self) -> Vec<String> {
        self.conns.keys().cloned().collect()
    }

    fn handle(&self, name: &str) -> Result<&Arc<ConnHandle>, ControlError> {
        self.conns
            .get(name)
            .ok_or_else(|| ControlError::UnknownConnection(name.to_string()))
    }

    /// The status of one connection.
    pub fn status(&self, name: &str) -> Result<ConnectionStatus, ControlError> {
        let h = self.handle(name)?;
        let st = self.store.connection_state(name)?;
        let last_cycle = self.store.last_finished_cycle(name)?;
        let (running, next, last_error, plugin) = h.live(|l| {
            (
                l.running,
                l.next_run_at,
                l.last_error.clone(),
                l.plugin.clone(),
            )
        });
        let state = ConnState::of(running, &st, last_cycle.is_some());
        Ok(ConnectionStatus {
            name: name.to_string(),
            state,
            paused: st.paused,
            quarantine: st.quarantined().then(|| QuarantineStatus {
                failed_cycles: st.quarantine_failures,
                reason: st.quarantine_reason.clone(),
                next_attempt_at: st.next_attempt_at.clone(),
            }),
            escrow: self.store.escrow_summary(name)?,
            current_cycle: running.then(|| h.progress.snapshot()),
            last_cycle,
            next_run_at: if st.paused {
                None
            } else {
                next.map(format_time)
            },
            last_error,
            plugin: plugin.map(|(n, sha)| serde_json::json!({"name": n, "sha256": sha})),
        })
    }

    /// Every connection's status.
    pub fn statuses(&self) -> Result<Vec<ConnectionStatus>, ControlError> {
        self.conns.keys().map(|n| self.status(n)).collect()
    }

    /// Run a cycle now (resuming the connection if it was paused).
    pub fn start(&self, name: &str) -> Result<(), ControlError> {
        let h = self.handle(name)?;
        self.store.set_paused(name, false)?;
        h.live(|l| l.run_now = true);
        h.wake.notify_one();
        Ok(())
    }

    /// Pause: the running cycle finishes, no new one starts.
    pub fn pause(&self, name: &str) -> Result<(), ControlError> {
        let h = self.handle(name)?;
        self.store.set_paused(name, true)?;
        h.wake.notify_one();
        tracing::info!(connection = %name, "paused");
        Ok(())
    }

    /// Resume a paused connection on its schedule (a cycle runs at once if one is due).
    pub fn resume(&self, name: &str) -> Result<(), ControlError> {
        let h = self.handle(name)?;
        self.store.set_paused(name, false)?;
        h.wake.notify_one();
        tracing::info!(connection = %name, "resumed");
        Ok(())
    }

    /// Restart: clear what `scope` says and run a cycle now. Refused while a
    /// cycle runs (state must not change under it).
    pub fn restart(&self, name: &str, scope: RestartScope) -> Result<(), ControlError> {
        let h = self.handle(name)?;
        let _guard = h
            .cycle_lock
            .try_lock()
            .map_err(|_| ControlError::Busy(name.to_string()))?;
        // Nor while another process works on the connection.
        let left_quarantine = crate::lease::with_lease(&self.store, name, || {
            self.store.reset(
                name,
                crate::store::ResetScope {
                    watermark: scope.watermark,
                    escrow: scope.escrow,
                    staged: scope.links,
                    links: scope.links,
                },
            )?;
            Ok(scope.quarantine && self.store.clear_quarantine(name)?)
        })?;
        if left_quarantine {
            crate::metrics::metrics()
                .quarantined
                .get_or_create(&crate::metrics::conn(name))
                .set(0);
        }
        tracing::info!(connection = %name, ?scope, "restarted");
        h.live(|l| {
            l.run_now = true;
            l.last_error = None;
        });
        h.wake.notify_one();
        Ok(())
    }

    /// Provision one object now (Entra's provision on demand); returns its log records.
    pub async fn provision(
        &self,
        name: &str,
        kind: crate::model::ObjectKind,
        id: &str,
    ) -> Result<Vec<crate::store::LogRecord>, ControlError> {
        let h = self.handle(name)?;
        let _guard = h
            .cycle_lock
            .try_lock()
            .map_err(|_| ControlError::Busy(name.to_string()))?;
        let env = crate::cli::sync::open_sync_in(&self.config_path, name, Some(&self.plugins))
            .await
            .map_err(|e| ControlError::Other(redact(&format!("{e:#}"))))?;
        crate::cli::sync::provision_records(&env, name, kind, id)
            .await
            .map_err(|e| match e.downcast_ref::<crate::store::LeaseError>() {
                Some(held @ crate::store::LeaseError::Held { .. }) => {
                    ControlError::HeldElsewhere(held.to_string())
                }
                _ => ControlError::Other(redact(&format!("{e:#}"))),
            })
    }

    /// Test the connection's credentials and reachability.
    pub async fn test_connection(&self, name: &str) -> Result<String, ControlError> {
        self.handle(name)?;
        let conn = crate::cli::open_in(&self.config_path, name, Some(&self.plugins))
            .await
            .map_err(|e| ControlError::Other(redact(&format!("{e:#}"))))?;
        conn.test_connection()
            .await
            .map_err(|e| ControlError::Other(redact(&e.to_string())))
    }

    /// Run every connection's loop (and log retention) until `stop` turns
    /// true, or after one cycle each with `once`.
    pub async fn run(self: &Arc<Self>, stop: tokio::sync::watch::Receiver<bool>) {
        let loops = self
            .conns
            .values()
            .map(|h| self.clone().connection_loop(h.clone(), stop.clone()));
        let retention = self.clone().retention_loop(stop.clone());
        if self.once {
            futures::future::join_all(loops).await;
        } else {
            futures::future::join(futures::future::join_all(loops), retention).await;
        }
    }

    async fn retention_loop(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let cutoff = SystemTime::now()
                .checked_sub(self.retention)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            match self.store.prune_logs(cutoff) {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    deleted = n,
                    "log retention: deleted old provisioning-log records"
                ),
                Err(e) => tracing::warn!("log retention: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(86_400)) => {}
                _ = stop.changed() => break,
            }
        }
    }

    fn paused(&self, name: &str) -> bool {
        self.store
            .connection_state(name)
            .map(|s| s.paused)
            .unwrap_or(false)
    }

    async fn connection_loop(
        self: Arc<Self>,
        h: Arc<ConnHandle>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let name = h.name.clone();
        // A quarantine from before a restart of the process keeps its schedule.
        let st = self.store.connection_state(&name).unwrap_or_default();
        let mut due = match st.next_attempt_at.as_deref().and_then(parse_time) {
            Some(t) if st.quarantined() => {
                tracing::info!(connection = %name, next_attempt_at = ?st.next_attempt_at, "in quarantine since before this start");
                crate::metrics::metrics()
                    .quarantined
                    .get_or_create(&crate::metrics::conn(&name))
                    .set(1);
                t
            }
            _ => SystemTime::now(),
        };
        loop {
            if *stop.borrow() {
                break;
            }
            if h.live(|l| std::mem::take(&mut l.run_now)) {
                due = SystemTime::now();
            }
            h.live(|l| l.next_run_at = Some(due));
            if self.paused(&name) {
                if self.once {
                    eprintln!("provisio: connection '{name}' is paused; skipped");
                    break;
                }
                tokio::select! {
                    _ = h.wake.notified() => continue,
                    _ = stop.changed() => break,
                }
            }
            let wait = due
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            if self.once && !wait.is_zero() {
                eprintln!(
                    "provisio: connection '{name}' is in quarantine until {}; skipped (`provisio restart {name}` ends it)",
                    format_time(due)
                );
                break;
            }
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = h.wake.notified() => continue,
                    _ = stop.changed() => break,
                }
            }
            let permit = tokio::select! {
                p = self.permits.acquire() => match p { Ok(p) => p, Err(_) => break },
                _ = stop.changed() => break,
            };
            // An attempt out of quarantine retries every object: objects that
            // failed into escrow would otherwise be skipped, and a cycle of
            // skips would end the quarantine without proving anything. The
            // quarantine's own back-off is longer than any escrow wait.
            if self
                .store
                .connection_state(&name)
                .is_ok_and(|s| s.quarantined())
            {
                let only_escrow = crate::store::ResetScope {
                    watermark: false,
                    escrow: true,
                    staged: false,
                    links: false,
                };
                if let Err(e) = self.store.reset(&name, only_escrow) {
                    tracing::warn!(connection = %name, "cannot clear escrow for the quarantine attempt: {e}");
                }
            }
            let (outcome, interval) = {
                let _guard = h.cycle_lock.lock().await;
                h.live(|l| l.running = true);
                let r = self.one_cycle(&h).await;
                h.live(|l| l.running = false);
                r
            };
            drop(permit);
            let delay = self.after_cycle(&name, &h, outcome, interval).await;
            due = SystemTime::now() + delay;
            if self.once {
                break;
            }
        }
        h.live(|l| l.next_run_at = None);
    }

    /// Record a cycle's outcome (metrics, quarantine in the store) and return
    /// the delay before the next one.
    async fn after_cycle(
        &self,
        name: &str,
        h: &ConnHandle,
        outcome: Result<CycleSummary, NoCycle>,
        interval: Duration,
    ) -> Duration {
        let m = crate::metrics::metrics();
        let labels = crate::metrics::conn(name);
        // Another process (a `provisio sync`, a second node) holds the
        // connection: not a failure of the connection, so no quarantine and
        // no notification; try again soon.
        let outcome = match outcome {
            Err(NoCycle::Busy(why)) => {
                m.cycles
                    .get_or_create(&crate::metrics::status(name, "busy"))
                    .inc();
                tracing::info!(connection = %name, "cycle not started: {}", crate::untrusted::Untrusted::new(&why).for_log());
                h.live(|l| l.last_error = Some(why));
                return interval.min(BUSY_RETRY);
            }
            Err(NoCycle::Failed(why)) => Err(why),
            Ok(s) => Ok(s),
        };
        let waiting = self
            .store
            .escrow_summary(name)
            .ok()
            .flatten()
            .map_or(0, |e| e.objects);
        m.escrow_objects
            .get_or_create(&labels)
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
        let attempted = |s: &CycleSummary| s.counts.values().sum::<usize>();
        let failed = |s: &CycleSummary| {
            s.credentials_rejected.is_some() || cycle_failed(s.failures, attempted(s))
        };
        let status = match &outcome {
            Ok(s) if !failed(s) => "succeeded",
            Ok(_) => "failed",
            Err(_) => "error",
        };
        m.cycles
            .get_or_create(&crate::metrics::status(name, status))
            .inc();
        h.live(|l| l.last_error = outcome.as_ref().err().cloned());
        match outcome {
            Ok(s) if !failed(&s) => {
                match self.store.clear_quarantine(name) {
                    Ok(true) => {
                        tracing::info!(connection = %name, "left quarantine: the cycle succeeded");
                        self.notifier
                            .notify(Event::LeftQuarantine {
                                connection: name.to_string(),
                            })
                            .await;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(connection = %name, "cannot record leaving quarantine: {e}")
                    }
                }
                m.quarantined.get_or_create(&labels).set(0);
                if waiting > 0
                    && let Some(e) = waiting_event(&self.store, name, &s)
                {
                    self.notifier.notify(e).await;
                }
                next_delay(interval, rand::random::<f64>())
            }
            other => {
                let (why, cycle_id, counts) = match other {
                    Ok(s) => (
                        quarantine_reason(&s).unwrap_or_else(|| {
                            format!("{} of {} objects failed", s.failures, attempted(&s))
                        }),
                        Some(s.cycle_id),
                        s.counts,
                    ),
                    Err(e) => (e, None, Default::default()),
                };
                let (failed_cycles, d) = match enter_quarantine(&self.store, name, &why) {
                    Ok(q) => q,
                    Err(e) => {
                        tracing::warn!(connection = %name, "cannot record the quarantine: {e}");
                        (1, quarantine_delay(1))
                    }
                };
                self.notifier
                    .notify(Event::CycleFailed {
                        connection: name.to_string(),
                        cycle_id,
                        reason: why.clone(),
                        counts,
                    })
                    .await;
                if failed_cycles == 1 {
                    self.notifier
                        .notify(Event::Quarantined {
                            connection: name.to_string(),
                            reason: why.clone(),
                            failed_cycles,
                            next_attempt: SystemTime::now() + d,
                        })
                        .await;
                }
                m.quarantined.get_or_create(&labels).set(1);
                tracing::warn!(connection = %name, failed_cycles, next_attempt_in_s = d.as_secs(), "quarantine: {}", crate::untrusted::Untrusted::new(&why).for_log());
                eprintln!(
                    "provisio: connection '{name}' in quarantine ({}); next attempt in {} h",
                    crate::untrusted::Untrusted::new(&why),
                    d.as_secs() / 3600
                );
                d
            }
        }
    }

    /// Whether a reconcile is due: none ran (or was tried by this process)
    /// within `every`.
    fn reconcile_due(&self, h: &ConnHandle, name: &str, every: Duration) -> bool {
        let recent =
            |t: SystemTime| SystemTime::now().duration_since(t).unwrap_or_default() < every;
        if h.live(|l| l.reconcile_attempted_at).is_some_and(recent) {
            return false;
        }
        match self
            .store
            .last_cycle_of_type(name, crate::store::CycleType::Reconcile)
        {
            Ok(Some(c)) => !parse_time(&c.started_at).is_some_and(recent),
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(connection = %name, "cannot tell when the last reconcile ran: {e}");
                false
            }
        }
    }

    /// One cycle: its summary, or why it could not run; plus the
    /// connection's interval. Notifies when the deletion guard held
    /// disables/deletes.
    async fn one_cycle(&self, h: &ConnHandle) -> (Result<CycleSummary, NoCycle>, Duration) {
        let name = &h.name;
        let env = match crate::cli::sync::open_sync_in(&self.config_path, name, Some(&self.plugins))
            .await
        {
            Ok(env) => env,
            Err(e) => {
                return (
                    Err(NoCycle::Failed(redact(&format!("{e:#}")))),
                    DEFAULT_INTERVAL,
                );
            }
        };
        let plugin = env.conn.plugin();
        h.live(|l| l.plugin = Some((plugin.name.clone(), plugin.sha256.clone())));
        let interval = env.interval;
        let cycle = crate::cycle::Cycle {
            connection: &env.conn,
            store: &env.store,
            source: &env.source,
            settings: &env.settings,
        };
        // Drift reconciliation, when the connection asks for it and it is
        // due: a reconcile replaces this cycle (its cycle is an ordinary one
        // plus the repairs). A reconcile that cannot read the target is
        // logged and the ordinary cycle runs instead; it is tried again
        // after another interval.
        let result = match env.reconcile.interval {
            Some(every) if self.reconcile_due(h, name, every) => {
                h.live(|l| l.reconcile_attempted_at = Some(SystemTime::now()));
                match crate::repair::run(&cycle, &env.reconcile, &h.progress).await {
                    Ok(r) => {
                        tracing::info!(connection = %name, findings = r.details.len(), orphans_reported = r.orphans_reported, orphans_deleted = r.orphans_deleted, "reconcile finished");
                        r.cycle
                            .ok_or_else(|| crate::cycle::CycleError::Target("no cycle ran".into()))
                    }
                    Err(crate::cycle::CycleError::Target(why)) => {
                        tracing::warn!(connection = %name, "reconcile skipped: {}", crate::untrusted::Untrusted::new(&why).for_log());
                        cycle.run_with_progress(&h.progress).await
                    }
                    Err(e) => Err(e),
                }
            }
            _ => cycle.run_with_progress(&h.progress).await,
        };
        match result {
            Ok(s) => {
                tracing::info!(connection = %name, cycle = %s.cycle_id, target_calls = s.target_calls, failures = s.failures, "{} cycle finished in {:.1} s", s.cycle_type, s.duration_seconds);
                if s.staged > 0 && self.notifier.is_enabled() {
                    self.notifier
                        .notify(staged_event(&env.store, name, &s))
                        .await;
                }
                (Ok(s), interval)
            }
            Err(crate::cycle::CycleError::Busy(why)) => (Err(NoCycle::Busy(why)), interval),
            Err(e) => (Err(NoCycle::Failed(redact(&e.to_string()))), interval),
        }
    }
}

/// Why a cycle produced no summary.
#[derive(Debug)]
enum NoCycle {
    /// Another process holds the connection's lease.
    Busy(String),
    /// The cycle could not run or stopped (setup, source, store).
    Failed(String),
}

/// How soon a cycle refused the lease is tried again (at most the interval).
const BUSY_RETRY: Duration = Duration::from_secs(60);

/// The [`Event::StagedDeletions`] for a cycle that staged some: the count
/// and up to 5 of the held actions, from the store.
pub fn staged_event(store: &crate::store::Store, connection: &str, s: &CycleSummary) -> Event {
    let sample = store
        .staged_pending(connection)
        .map(|v| {
            v.iter()
                .take(5)
                .map(|c| format!("{} {} {} ({})", c.action, c.kind, c.source_id, c.reason))
                .collect()
        })
        .unwrap_or_default();
    Event::StagedDeletions {
        connection: connection.to_string(),
        cycle_id: s.cycle_id.clone(),
        count: s.staged,
        sample,
    }
}

/// The [`Event::ObjectsWaiting`] after a cycle that did not fail, if
/// objects wait in escrow: how many, the earliest next attempt, and a few of
/// them with their last error.
pub fn waiting_event(
    store: &crate::store::Store,
    connection: &str,
    s: &CycleSummary,
) -> Option<Event> {
    let entries = store.escrow_all(connection).ok()?;
    let first = entries.first()?;
    let sample = entries
        .iter()
        .take(5)
        .map(|e| {
            format!(
                "{} {} after {} attempt(s) ({}: {})",
                e.kind, e.source_id, e.attempts, e.last_error_code, e.last_error
            )
        })
        .collect();
    Some(Event::ObjectsWaiting {
        connection: connection.to_string(),
        cycle_id: s.cycle_id.clone(),
        count: entries.len(),
        next_attempt: first.next_attempt_at.clone(),
        sample,
    })
}

fn redact(s: &str) -> String {
    crate::capabilities::secrets::redact(s)
}

/// Run the service until SIGTERM or Ctrl-C: one task per connection, cycles
/// at each connection's interval, at most `max_concurrent` cycles at once,
/// and the admin API if `[service] listen` is set. With `once`, every
/// connection runs one cycle and the service stops.
pub async fn run(
    config_path: PathBuf,
    names: Vec<String>,
    max_concurrent: usize,
    once: bool,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let config = crate::config::Config::load(&config_path)?;
    let service = Service::new(config_path, names, max_concurrent, once)?;
    let api = match (config.service.listen, &config.service.token_secret) {
        (Some(addr), Some(secret)) => {
            let token = config.secret_value(secret, "the admin API ([service] token_secret)")?;
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                anyhow::anyhow!(
                    "{}: [service] listen = \"{addr}\": cannot listen there: {e}; choose a free address",
                    config.path.display()
                )
            })?;
            let local = listener.local_addr()?;
            tracing::info!(%local, "admin API listening");
            eprintln!("provisio: admin API on http://{local}");
            let app = crate::admin::router(service.clone(), token);
            let mut stop = stop_rx.clone();
            Some(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!("admin API: {e}");
                }
            }))
        }
        _ => None,
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: no new cycle starts; running cycles finish");
        eprintln!("provisio: shutting down after the running cycles finish");
        let _ = stop_tx.send(true);
    });
    service.run(stop_rx).await;
    if let Some(api) = api {
        api.abort();
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        let i = Duration::from_secs(100);
        assert_eq!(next_delay(i, 0.0), Duration::from_secs(90));
        assert_eq!(next_delay(i, 1.0), Duration::from_secs(110));
        assert_eq!(next_delay(i, 0.5), Duration::from_secs(100));
        assert_eq!(next_delay(i, 7.0), Duration::from_secs(110), "clamped");
    }

    #[test]
    fn quarantine_follows_entras_schedule() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(quarantine_delay(1), h(6));
        assert_eq!(quarantine_delay(2), h(12));
        assert_eq!(quarantine_delay(3), h(24));
        assert_eq!(quarantine_delay(10), h(24));
    }

    #[test]
    fn failure_ratio() {
        assert!(!cycle_failed(1, 2), "too few objects to judge a ratio");
        assert!(cycle_failed(2, 2), "everything failed");
        assert!(!cycle_failed(0, 0));
        assert!(!cycle_failed(2, 5));
        assert!(cycle_failed(3, 5));
    }
}
