//! The scheduler behind `provisio run`: every connection with a source runs an
//! initial cycle, then incremental cycles at its interval (default 40 minutes,
//! any value allowed), with ±10 % jitter so connections do not align. A global
//! limit bounds how many cycles run at once, so one slow vendor cannot starve
//! the rest.
//!
//! Quarantine: a cycle that cannot run (credentials rejected, source or store
//! unusable) or in which most objects fail puts the connection in quarantine;
//! its next attempts back off on Entra's schedule — 6 h, 12 h, 24 h, then daily —
//! and the first cycle that succeeds ends it. A restart (`provisio restart`)
//! also ends it, since the next process start begins afresh.
//!
//! Notifications: a failed cycle, entering and leaving quarantine, and a cycle
//! whose deletion guard held disables/deletes go to the [`Notifier`] built from
//! `[notifications]` (see [`crate::notify`]); it bounds its own time and never
//! fails a cycle.
//!
//! Shutdown: on SIGTERM or Ctrl-C no new cycle starts; running cycles finish
//! (every write is already recorded with its intent, so even a `kill -9`
//! resumes safely), then the process exits.

use crate::cycle::CycleSummary;
use crate::notify::{Event, Notifier};
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

/// Run the service until SIGTERM or Ctrl-C: one task per connection, cycles
/// at each connection's interval, at most `max_concurrent` cycles at once.
/// With `once`, every connection runs one cycle and the service stops.
pub async fn run(
    config_path: std::path::PathBuf,
    names: Vec<String>,
    max_concurrent: usize,
    once: bool,
) -> anyhow::Result<()> {
    let config = crate::config::Config::load(&config_path)?;
    let notifier = Arc::new(
        Notifier::from_config(&config)
            .map_err(|e| anyhow::anyhow!(crate::capabilities::secrets::redact(&e.to_string())))?,
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: no new cycle starts; running cycles finish");
        eprintln!("provisio: shutting down after the running cycles finish");
        let _ = stop_tx.send(true);
    });
    let permits = Arc::new(tokio::sync::Semaphore::new(max_concurrent.max(1)));
    // The connections' loops run concurrently within this task (cycles are
    // I/O-bound and bounded by the semaphore).
    let loops = names.into_iter().map(|name| {
        connection_loop(
            config_path.clone(),
            name,
            permits.clone(),
            stop_rx.clone(),
            once,
            notifier.clone(),
        )
    });
    futures::future::join_all(loops).await;
    Ok(())
}

async fn connection_loop(
    config_path: std::path::PathBuf,
    name: String,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    once: bool,
    notifier: Arc<Notifier>,
) {
    let mut quarantined: u32 = 0;
    loop {
        if *stop.borrow() {
            break;
        }
        let permit = tokio::select! {
            p = permits.acquire() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        let (outcome, interval) = one_cycle(&config_path, &name, &notifier).await;
        drop(permit);
        let delay = match outcome {
            Ok(s) if !cycle_failed(s.failures, s.counts.values().sum()) => {
                if quarantined > 0 {
                    tracing::info!(connection = %name, "left quarantine: the cycle succeeded");
                    notifier
                        .notify(Event::LeftQuarantine {
                            connection: name.clone(),
                        })
                        .await;
                }
                quarantined = 0;
                next_delay(interval, rand::random::<f64>())
            }
            other => {
                quarantined += 1;
                let (why, cycle_id, counts) = match other {
                    Ok(s) => (
                        format!(
                            "{} of {} objects failed",
                            s.failures,
                            s.counts.values().sum::<usize>()
                        ),
                        Some(s.cycle_id),
                        s.counts,
                    ),
                    Err(e) => (e, None, Default::default()),
                };
                let d = quarantine_delay(quarantined);
                notifier
                    .notify(Event::CycleFailed {
                        connection: name.clone(),
                        cycle_id,
                        reason: why.clone(),
                        counts,
                    })
                    .await;
                if quarantined == 1 {
                    notifier
                        .notify(Event::Quarantined {
                            connection: name.clone(),
                            reason: why.clone(),
                            failed_cycles: quarantined,
                            next_attempt: SystemTime::now() + d,
                        })
                        .await;
                }
                tracing::warn!(connection = %name, failed_cycles = quarantined, next_attempt_in_s = d.as_secs(), "quarantine: {why}");
                eprintln!(
                    "provisio: connection '{name}' in quarantine ({why}); next attempt in {} h",
                    d.as_secs() / 3600
                );
                d
            }
        };
        if once {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => break,
        }
    }
}

/// One cycle: its summary, or why it could not run; plus the connection's
/// interval. Notifies when the deletion guard held disables/deletes.
async fn one_cycle(
    config_path: &std::path::Path,
    name: &str,
    notifier: &Notifier,
) -> (Result<CycleSummary, String>, Duration) {
    let env = match crate::cli::sync::open_sync(config_path, name).await {
        Ok(env) => env,
        Err(e) => {
            return (
                Err(crate::capabilities::secrets::redact(&format!("{e:#}"))),
                DEFAULT_INTERVAL,
            );
        }
    };
    let interval = env.interval;
    let cycle = crate::cycle::Cycle {
        connection: &env.conn,
        store: &env.store,
        source: &env.source,
        settings: &env.settings,
    };
    match cycle.run().await {
        Ok(s) => {
            tracing::info!(connection = %name, cycle = %s.cycle_id, target_calls = s.target_calls, failures = s.failures, "{} cycle finished in {:.1} s", s.cycle_type, s.duration_seconds);
            if s.staged > 0 && notifier.is_enabled() {
                notifier.notify(staged_event(&env.store, name, &s)).await;
            }
            (Ok(s), interval)
        }
        Err(e) => (Err(e.to_string()), interval),
    }
}

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
