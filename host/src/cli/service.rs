//! CLI commands that talk to a running service: `status`, `pause`,
//! `resume`, `start`. Where the service is not running, `status` shows what
//! the store remembers and `pause`/`resume` are recorded in the store, so
//! they take effect when the service starts.

use crate::admin::client::{Client, ClientError};
use crate::config::Config;
use crate::scheduler::ConnState;
use anyhow::{Result, bail};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// `provisio status [connection] [--json]`.
pub async fn status(config_path: &Path, connection: Option<String>, json: bool) -> Result<()> {
    let config = Config::load(config_path)?;
    let path = match &connection {
        Some(c) => format!("/v1/connections/{c}"),
        None => "/v1/connections".to_string(),
    };
    let live = match Client::from_config(&config) {
        Ok(client) => match client.get(&path).await {
            Ok(v) => Some(v),
            Err(ClientError::Unreachable { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        Err(ClientError::NotConfigured(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let (statuses, running) = match live {
        Some(v) => {
            let list = match v.get("connections").and_then(Value::as_array) {
                Some(a) => a.clone(),
                None => vec![v],
            };
            (list, true)
        }
        None => {
            let store = super::open_store(&config)?;
            let names = match connection {
                Some(c) => {
                    config.connection(&c)?;
                    vec![c]
                }
                None => config.connection_names(),
            };
            let mut list = Vec::new();
            for n in names {
                let st = store.connection_state(&n)?;
                let last = store.last_cycle(&n)?;
                // Nothing runs while the service is down: a healthy
                // connection is "stopped" rather than "active".
                let state = match ConnState::of(false, &st, last.is_some()) {
                    ConnState::Active => serde_json::json!("stopped"),
                    other => serde_json::json!(other),
                };
                list.push(serde_json::json!({
                    "name": n, "state": state, "paused": st.paused,
                    "quarantine": st.quarantined().then(|| serde_json::json!({
                        "failed_cycles": st.quarantine_failures,
                        "reason": st.quarantine_reason,
                        "next_attempt_at": st.next_attempt_at})),
                    "escrow": store.escrow_summary(&n)?,
                    "last_cycle": last,
                }));
            }
            (list, false)
        }
    };
    if json {
        return super::print_json(
            &serde_json::json!({"service_running": running, "connections": statuses}),
        );
    }
    if !running {
        println!("the service is not running (showing what the state store remembers)");
    }
    print!("{}", render(&statuses));
    Ok(())
}

/// A string of a status, escaped: names, reasons and errors may quote what a
/// connector said.
fn text(v: &Value, key: &str) -> String {
    crate::untrusted::escape(v.get(key).and_then(Value::as_str).unwrap_or("-"))
}

/// Statuses as a table for people.
pub fn render(statuses: &[Value]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<20} {:<11} {:<44} NEXT RUN",
        "CONNECTION", "STATE", "LAST CYCLE"
    );
    for c in statuses {
        let last = match c.get("last_cycle").filter(|v| !v.is_null()) {
            Some(l) => {
                let sum = &l["counts"];
                format!(
                    "{} {} {:.1} s, {} failures",
                    text(l, "cycle_type"),
                    text(l, "status"),
                    sum.get("duration_seconds")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0),
                    sum.get("failures").and_then(Value::as_u64).unwrap_or(0)
                )
            }
            None => "-".into(),
        };
        let _ = writeln!(
            s,
            "{:<20} {:<11} {:<44} {}",
            text(c, "name"),
            text(c, "state"),
            last,
            text(c, "next_run_at")
        );
        if let Some(p) = c.get("current_cycle").filter(|v| !v.is_null()) {
            let counts = p
                .get("counts")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{} {v}", crate::untrusted::escape(k)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "    {} cycle, {}: {}/{} done{}{}",
                text(p, "cycle_type"),
                text(p, "phase"),
                p.get("done").and_then(Value::as_u64).unwrap_or(0),
                p.get("total").and_then(Value::as_u64).unwrap_or(0),
                if counts.is_empty() { "" } else { " — " },
                counts
            );
        }
        if let Some(q) = c.get("quarantine").filter(|v| !v.is_null()) {
            let _ = writeln!(
                s,
                "    quarantine after {} failed cycles: {}; next attempt {}",
                q.get("failed_cycles").and_then(Value::as_u64).unwrap_or(0),
                text(q, "reason"),
                text(q, "next_attempt_at")
            );
        }
        if let Some(e) = c.get("escrow").filter(|v| !v.is_null()) {
            let _ = writeln!(
                s,
                "    {} objects waiting for retry (next at {}); `provisio logs --connection {} \
                 --status failure` shows why, `provisio restart {}` retries them now",
                e.get("objects").and_then(Value::as_u64).unwrap_or(0),
                text(e, "next_attempt_at"),
                text(c, "name"),
                text(c, "name"),
            );
        }
        if let Some(e) = c.get("last_error").and_then(Value::as_str) {
            let _ = writeln!(
                s,
                "    last attempt could not run: {}",
                crate::untrusted::Untrusted::new(e)
            );
        }
    }
    s
}

/// What `provisio pause|resume|start` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Pause.
    Pause,
    /// Resume.
    Resume,
    /// Run a cycle now.
    Start,
}

/// `provisio pause|resume|start <connection>`.
pub async fn control(config_path: &Path, connection: &str, what: Control) -> Result<()> {
    let config = Config::load(config_path)?;
    config.connection(connection)?;
    let verb = match what {
        Control::Pause => "pause",
        Control::Resume => "resume",
        Control::Start => "start",
    };
    let client = Client::from_config(&config);
    let answer = match &client {
        Ok(c) => Some(
            c.post(&format!("/v1/connections/{connection}/{verb}"), None)
                .await,
        ),
        Err(ClientError::NotConfigured(_)) => None,
        Err(_) => None,
    };
    match answer {
        Some(Ok(_)) => {
            println!(
                "{}",
                match what {
                    Control::Pause => format!(
                        "paused '{connection}': a running cycle finishes, no new one starts"
                    ),
                    Control::Resume => format!("resumed '{connection}'"),
                    Control::Start => format!("a cycle of '{connection}' starts now"),
                }
            );
            Ok(())
        }
        Some(Err(e @ ClientError::Api { .. })) => Err(e.into()),
        other => {
            // The service is not running (or has no API): record the pause in
            // the store, where the service reads it when it starts.
            let why = match other {
                Some(Err(e)) => e.to_string(),
                _ => "the admin API is not configured".to_string(),
            };
            let store = super::open_store(&config)?;
            match what {
                Control::Pause | Control::Resume => {
                    store.set_paused(connection, what == Control::Pause)?;
                    println!(
                        "{why}; recorded: '{connection}' is {} when the service starts",
                        if what == Control::Pause {
                            "paused"
                        } else {
                            "not paused"
                        }
                    );
                    Ok(())
                }
                Control::Start => bail!(
                    "{why}; to run one cycle without the service use `provisio sync {connection}`"
                ),
            }
        }
    }
}
