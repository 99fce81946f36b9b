//! Output hygiene: untrusted strings in terminals, logs, the store and audit records.
//!
//! The misbehave plugin's hygiene behaviours (`log-inject`, `ansi-ok`,
//! `ansi-error`, `audit-flood`, and the `hygiene_probe` setting of its
//! manifest) put newlines, forged audit records, ANSI/OSC sequences and bidi
//! controls into every string the host prints. The tests read the logs the
//! host writes (text and JSON) and what the built `provisio` binary prints.

use super::*;
use provisio::store::{LogAction, LogRecord, LogStatus, ModifiedProperty, Step, StepKind};

/// The visible form of misbehave's `ANSI` string (see its `hygiene.rs`).
const ANSI_SHOWN: &str =
    r"\x1b]0;owned\x07\x1b[2K\r\x1b[32m✓ export success\x1b[0m\x1b[8mhidden\u{202e}txt.exe";

/// Nothing a terminal acts on: no ESC, CR, C1 control or bidi override.
fn assert_inert(what: &str, text: &str) {
    for c in text.chars() {
        let acts = (c.is_control() && c != '\n')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(!acts, "{what} holds a raw {c:?}:\n{text:?}");
    }
}

/// Logs captured as JSON, one record per line, through the host's writer.
fn capture_json_logs() -> (common::LogBuf, tracing::subscriber::DefaultGuard) {
    let buf = common::LogBuf::default();
    let b2 = buf.clone();
    let sub = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(provisio::telemetry::Redacting(move || b2.clone()))
        .finish();
    (buf, tracing::subscriber::set_default(sub))
}

#[tokio::test]
async fn a_guest_log_message_cannot_forge_an_audit_record() {
    let w = world().await;
    {
        let (logs, _guard) = capture_logs();
        assert_eq!(w.run("log-inject").await.as_deref(), Ok("injected"));
        let text = logs.text();
        assert_inert("the text log", &text);
        let guest: Vec<&str> = text.lines().filter(|l| l.contains("innocent")).collect();
        assert_eq!(guest.len(), 1, "one guest record, one line:\n{text}");
        let line = guest[0];
        assert!(
            line.contains("provisio::guest") && line.contains("conn-log-inject"),
            "{line}"
        );
        // The newline and the quotes show visibly: no new record, no field
        // that reads like the host's own.
        assert!(
            line.contains(r"innocent\n2025-01-01T00:00:00.000000Z"),
            "{line}"
        );
        assert!(line.contains(r#"decision=\"allowed\""#), "{line}");
        assert!(line.contains(ANSI_SHOWN), "{line}");
        assert!(
            !text.contains(r#"decision="allowed""#),
            "a forged audit field reached the log:\n{text}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with("2025-01-01")),
            "a forged record starts a line:\n{text}"
        );
    }
    {
        let (logs, _guard) = capture_json_logs();
        assert_eq!(w.run("log-inject").await.as_deref(), Ok("injected"));
        let text = logs.text();
        assert_inert("the JSON log", &text);
        let records: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let guest: Vec<&serde_json::Value> = records
            .iter()
            .filter(|r| {
                r["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("innocent"))
            })
            .collect();
        assert_eq!(guest.len(), 1, "{text}");
        assert_eq!(guest[0]["target"], "provisio::guest");
        assert!(
            !records.iter().any(|r| r["target"] == "provisio::audit"),
            "no request was made, so no audit record may exist:\n{text}"
        );
    }
    w.assert_healthy("log-inject").await;
}

#[tokio::test]
async fn an_audit_flood_is_bounded_and_the_drops_are_reported() {
    let (logs, _guard) = capture_logs();
    let w = world().await;
    let conn = w.conn("audit-flood", flood_limits());
    let started = std::time::Instant::now();
    assert_eq!(
        conn.test_connection().await.as_deref(),
        Ok("denied 20000"),
        "every flood request is denied"
    );
    let elapsed = started.elapsed().as_secs_f64();
    let text = logs.text();
    assert_inert("the audit log", &text);
    let name = "connection=conn-audit-flood";
    let denied = text
        .lines()
        .filter(|l| l.contains(name) && l.contains("decision=\"denied\""))
        .count() as u64;
    let limits = provisio::capabilities::audit::AuditLimits::default();
    let bound = f64::from(limits.burst) + limits.records_per_second * elapsed + 1.0;
    assert!(
        (denied as f64) <= bound,
        "{denied} audit records in {elapsed:.2} s (bound {bound})"
    );
    assert!(
        denied >= u64::from(limits.burst),
        "the burst is written: {denied}"
    );
    let stats = provisio::capabilities::audit::stats("conn-audit-flood");
    assert_eq!(stats.written, denied, "{stats:?}");
    assert_eq!(stats.written + stats.dropped, 20_000, "{stats:?}");
    // Every dropped record is accounted for in summary records...
    let reported: u64 = text
        .lines()
        .filter(|l| l.contains(name) && l.contains("decision=\"dropped\""))
        .map(|l| {
            let n = l
                .split(" dropped=")
                .nth(1)
                .and_then(|r| r.split(' ').next());
            n.and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{l}"))
        })
        .sum();
    assert_eq!(
        reported,
        stats.dropped,
        "summaries report every drop:\n{}",
        &text[text.len().saturating_sub(2000)..]
    );
    assert!(text.contains("audit rate limit:"), "no summary record");
    // ...and in the metrics.
    let metrics = provisio::metrics::metrics().encode();
    let line = format!(
        "provisio_audit_records_dropped_total{{connection=\"conn-audit-flood\"}} {}",
        stats.dropped
    );
    assert!(metrics.contains(&line), "{line} missing in:\n{metrics}");
    // The records stay small: an escape-laden path is escaped and capped.
    let per_record = text.len() as f64 / (denied as f64).max(1.0);
    eprintln!(
        "audit flood: 20000 denied requests in {elapsed:.2} s -> {denied} records, {} dropped, {} bytes of log ({per_record:.0} bytes/record)",
        stats.dropped,
        text.len()
    );
    assert!(
        text.len() < 2 * 1024 * 1024,
        "{} bytes of audit log",
        text.len()
    );
    w.assert_healthy("audit-flood").await;
}

#[tokio::test]
async fn guest_text_in_an_audit_reason_is_escaped_and_capped() {
    let (logs, _guard) = capture_logs();
    let w = world().await;
    assert_eq!(w.run("audit-inject").await.as_deref(), Ok("denied"));
    let text = logs.text();
    assert_inert("the audit log", &text);
    let records: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("provisio::audit") && l.contains("connection=conn-audit-inject"))
        .collect();
    assert_eq!(records.len(), 1, "one denial, one record:\n{text}");
    let line = records[0];
    assert!(line.contains(r#"decision="denied""#), "{line}");
    assert!(
        line.contains("more bytes cut"),
        "the reason is capped: {line}"
    );
    assert!(line.len() < 2048, "{} bytes: {line}", line.len());
    assert!(
        !text.contains(r#"decision="allowed""#)
            && !text.lines().any(|l| l.starts_with("2025-01-01")),
        "a forged audit record:\n{text}"
    );
    w.assert_healthy("audit-inject").await;
}

// ---- the built `provisio` binary ----

/// A config with misbehave connections `ok`, `ansiok` and `ansierr`.
fn cli_config(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let (plugin, sha) = common::pinned("provisio_test_misbehave");
    let mut text = format!(
        r#"
[runtime]
state_dir = "state"

[plugins.misbehave]
path = "{plugin}"
sha256 = "{sha}"
"#,
        plugin = plugin.display()
    );
    for (name, behaviour) in [
        ("ok", "ok"),
        ("ansiok", "ansi-ok"),
        ("ansierr", "ansi-error"),
    ] {
        text.push_str(&format!(
            r#"
[connections.{name}]
plugin = "misbehave"
settings = {{ behaviour = "{behaviour}", url = "{url}" }}
allowed_hosts = ["{url}"]
"#
        ));
    }
    let path = dir.join("provisio.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn test_connection_prints_guest_text_escaped() {
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let config = cli_config(dir.path(), &w.a.url);
    let mut transcript = String::new();
    let (ok, out, err) = common::provisio(
        &config,
        &[],
        &["test-connection", "ansiok"],
        &mut transcript,
    );
    assert!(ok, "{err}");
    assert_inert("test-connection output", &out);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains(&format!(
            r"connection 'ansiok' OK: fine {ANSI_SHOWN}\r\nexport success"
        )),
        "{out}"
    );

    let (ok, out, err) = common::provisio(
        &config,
        &[],
        &["test-connection", "ansierr"],
        &mut transcript,
    );
    assert!(!ok && out.is_empty(), "{out}");
    assert_inert("test-connection error", &err);
    let error: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error.len(), 1, "{err}");
    assert!(
        error[0].contains(&format!(r"failed {ANSI_SHOWN}\ninnocent\n2025-01-01")),
        "{err}"
    );
    // The log line of the failed call keeps the guest's text inside it, with
    // its quotes escaped: no line starts a record or carries a forged field.
    assert!(
        !err.lines().any(|l| l.starts_with("2025-01-01")
            || (!l.starts_with("error:") && l.contains(r#"decision="allowed""#))),
        "a forged record:\n{err}"
    );
    assert_inert("the whole transcript", &transcript);
}

#[tokio::test]
async fn provisio_logs_and_status_print_stored_guest_text_escaped() {
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let config = cli_config(dir.path(), &w.a.url);
    let store_path = provisio::config::Config::load(&config).unwrap().store_path;
    let store = provisio::store::Store::open(&store_path).unwrap();
    // What a hostile connector can get stored: a target id, an error, a step
    // detail, a changed attribute; the source display name with a bidi override.
    let evil_id = "u-1\x1b[2K\r  export    success   created\n\x1b]0;owned\x07";
    let evil_error = "boom\r\n  export                 success  user created\x1b[8m";
    let mut r = LogRecord::new(
        "ansiok",
        ObjectKind::User,
        LogAction::Create,
        LogStatus::Failure,
    );
    r.source_id = Some("s-1".into());
    r.source_display = Some("Alice \u{202e}nimda".into());
    r.target_id = Some(evil_id.into());
    r.steps = vec![Step {
        step: StepKind::Export,
        status: LogStatus::Failure,
        detail: format!("target said: {evil_error}"),
    }];
    r.modified = vec![ModifiedProperty {
        name: "title\x1b[1A".into(),
        old: None,
        new: Some(serde_json::json!("\u{9b}2J\u{202e}")),
    }];
    r.error_code = Some("other".into());
    r.error_reason = Some(evil_error.into());
    store.append_log(&r).unwrap();
    store
        .set_quarantine(
            "ansiok",
            3,
            &format!("cycle failed: {evil_error}"),
            "2030-01-01T00:00:00Z",
        )
        .unwrap();
    drop(store);

    let mut transcript = String::new();
    let (ok, table, err) = common::provisio(&config, &[], &["logs"], &mut transcript);
    assert!(ok, "{err}");
    assert_inert("provisio logs", &table);
    for needle in [
        r"'Alice \u{202e}nimda' -> u-1\x1b[2K\r  export    success   created\n\x1b]0;owned\x07: failure",
        r"  export                 failure  target said: boom\r\n  export                 success  user created\x1b[8m",
        r"  modified title\x1b[1A",
        r#""\u{9b}2J\u{202e}""#,
        r"  error other: boom\r\n  export",
    ] {
        assert!(table.contains(needle), "missing {needle:?} in:\n{table}");
    }
    assert!(
        !table.lines().any(|l| {
            let mut cols = l.split_whitespace();
            cols.next() == Some("export") && cols.next() == Some("success")
        }),
        "a forged step line:\n{table}"
    );

    // JSON keeps the data exactly, and nothing in it acts on a terminal.
    let (ok, json, err) =
        common::provisio(&config, &[], &["logs", "--format", "json"], &mut transcript);
    assert!(ok, "{err}");
    assert_inert("provisio logs --format json", &json);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["target_id"], evil_id);
    assert_eq!(v[0]["source_display"], "Alice \u{202e}nimda");
    assert_eq!(v[0]["modified"][0]["new"], "\u{9b}2J\u{202e}");

    // CSV: one line per record, fields escaped.
    let (ok, csv, err) =
        common::provisio(&config, &[], &["logs", "--format", "csv"], &mut transcript);
    assert!(ok, "{err}");
    assert_inert("provisio logs --format csv", &csv);
    assert_eq!(csv.lines().count(), 2, "header and one record:\n{csv}");
    assert!(csv.contains(r"u-1\x1b[2K\r  export"), "{csv}");

    // The store still holds what was received.
    let store = provisio::store::Store::open(&store_path).unwrap();
    let back = store.query_logs(&Default::default()).unwrap();
    assert_eq!(back[0].target_id.as_deref(), Some(evil_id));

    // `status` (the service is not running: from the store).
    let (ok, status, err) = common::provisio(&config, &[], &["status", "ansiok"], &mut transcript);
    assert!(ok, "{err}");
    assert_inert("provisio status", &status);
    assert!(
        status.contains(
            r"cycle failed: boom\r\n  export                 success  user created\x1b[8m"
        ),
        "{status}"
    );
    let (ok, status, err) = common::provisio(
        &config,
        &[],
        &["status", "ansiok", "--json"],
        &mut transcript,
    );
    assert!(ok, "{err}");
    assert_inert("provisio status --json", &status);
    assert_inert("the whole transcript", &transcript);
}

#[tokio::test]
async fn plugin_inspect_marks_claims_and_cannot_hide_a_declared_host() {
    let plugin = common::plugin("provisio_test_misbehave");
    let dir = tempfile::tempdir().unwrap();
    let mut transcript = String::new();
    let none = dir.path().join("none.toml");
    let file = plugin.display().to_string();
    let (ok, text, err) =
        common::provisio(&none, &[], &["plugin", "inspect", &file], &mut transcript);
    assert!(ok, "{err}");
    assert_inert("plugin inspect", &text);
    for needle in [
        "name:      misbehave  (claimed by the plugin, not verified)",
        "vendor:    provisio tests  (claimed by the plugin, not verified)",
        "description (claimed by the plugin, not verified):",
        "declared hosts:\n  {url}\n  {other_url}\n  https://{hygiene_probe}.exfil.invalid\n",
        r"hygiene_probe (optional): inspect probe\x1b[3A\x1b[J\r\u{202e}nothing to see",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let (ok, json, err) = common::provisio(
        &none,
        &[],
        &["plugin", "inspect", "--json", &file],
        &mut transcript,
    );
    assert!(ok, "{err}");
    assert_inert("plugin inspect --json", &json);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let probe = v["manifest"]["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "hygiene_probe")
        .unwrap();
    assert_eq!(
        probe["description"], "inspect probe\x1b[3A\x1b[J\r\u{202e}nothing to see",
        "the JSON keeps the data"
    );
}
