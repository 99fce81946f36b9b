//! A sync through a fault-injecting proxy in front of scim2-server: 429s with
//! Retry-After, 503s and creates whose response is lost after they happened.
//! Every object converges, nothing is duplicated, Retry-After is honoured and
//! the request rate never exceeds the connection's budget.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/faulty_proxy.rs"]
mod faulty_proxy;
#[path = "common/scim_server.rs"]
mod scim_server;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

const BUDGET: f64 = 20.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_converges_through_faults_without_duplicates() {
    let token = format!("faults-token-{}-q7", std::process::id());
    let server = scim_server::start(&token);
    let proxy = faulty_proxy::start(
        server.origin(),
        faulty_proxy::Faults {
            every_nth_429: 9,
            retry_after_secs: 1,
            every_nth_503: 13,
            every_nth_post_lost: 4,
            reject_body_containing: None,
            ..Default::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (plugin, sha) = common::pinned("provisio_plugin_scim");
    let users: Vec<Value> = (1..=30)
        .map(|i| json!({"id": format!("f{i:02}"), "userPrincipalName": format!("f{i:02}@example.com"), "displayName": format!("F {i}"), "accountEnabled": true}))
        .collect();
    let members: Vec<String> = (1..=30).map(|i| format!("f{i:02}")).collect();
    std::fs::write(
        dir.path().join("directory.json"),
        json!({"users": users, "groups": [{"id": "gf", "displayName": "Faulty", "members": members}],
               "assignments": [{"principal": "gf", "connection": "t", "role": "User"}]})
        .to_string(),
    )
    .unwrap();
    let config = dir.path().join("provisio.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[plugins.scim]
path = "{}"
sha256 = "{sha}"
[secrets.tok]
env = "FAULTS_TOKEN"
hosts = ["{p}"]
[sources.d]
path = "directory.json"
[connections.t]
plugin = "scim"
source = "d"
settings = {{ base_url = "{p}/v2" }}
secrets = {{ token = "tok" }}
allowed_hosts = ["{p}"]
concurrency = 1
limits = {{ requests_per_second = {BUDGET} }}
"#,
            plugin.display(),
            p = proxy.url
        ),
    )
    .unwrap();
    let run = {
        let config = config.clone();
        let token = token.clone();
        move || {
            let out = Command::new(env!("CARGO_BIN_EXE_provisio"))
                .arg("--config")
                .arg(&config)
                .args(["sync", "t", "--json"])
                .env("FAULTS_TOKEN", &token)
                .env("PROVISIO_LOG", "warn")
                .output()
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(run.clone()).await.unwrap();
    assert!(ok, "{stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        summary["failures"], 0,
        "every object converges within the cycle: {summary}\n{stderr}"
    );

    // The target holds each user exactly once, and the group all 30.
    let get = |path: &str| -> Value {
        let o = Command::new("curl")
            .args(["-sf", "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .arg(format!("{}{path}", server.base_url()))
            .output()
            .unwrap();
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let all = get("/Users?count=1000");
    let names: Vec<&str> = all["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(names.len(), 30, "no duplicate, none missing: {names:?}");
    assert_eq!(unique.len(), 30);
    let groups = get("/Groups");
    let gid = groups["Resources"][0]["id"].as_str().unwrap();
    assert_eq!(
        get(&format!("/Groups/{gid}"))["members"]
            .as_array()
            .unwrap()
            .len(),
        30
    );

    let seen = proxy.seen.lock().unwrap().clone();
    let throttled: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| s.status == 429)
        .map(|(i, _)| i)
        .collect();
    assert!(
        !throttled.is_empty()
            && seen.iter().any(|s| s.status == 502)
            && seen.iter().any(|s| s.status == 503),
        "faults were injected"
    );
    // Retry-After honoured: with one request at a time, nothing follows a 429 sooner than 1 s.
    for i in throttled {
        if let Some(next) = seen.get(i + 1) {
            let gap = next.at.duration_since(seen[i].at);
            assert!(
                gap >= Duration::from_millis(950),
                "request {} came {gap:?} after a 429 with Retry-After: 1",
                i + 1
            );
        }
    }
    // The budget is never exceeded: any run of requests from i to j holds at
    // most burst + rate × its length (the first request of the run spends the
    // burst), with 50 ms allowed for the proxy's view of the arrival times.
    // Without the limiter a sequential sync sends three requests in a few
    // milliseconds, which breaks this at once.
    let burst = provisio::capabilities::ratelimit::burst_for(BUDGET);
    for i in 0..seen.len() {
        for j in i..seen.len() {
            let span = seen[j].at.duration_since(seen[i].at).as_secs_f64();
            let count = (j - i + 1) as f64;
            assert!(
                count <= burst + BUDGET * (span + 0.05),
                "{count} requests in {span:.3} s exceed {BUDGET}/s (burst {burst})"
            );
        }
    }

    // A second cycle over the same faults changes nothing and sends nothing.
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(run).await.unwrap();
    assert!(ok, "{stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["target_calls"], 0, "{summary}");
}

/// A permanent failure goes to escrow: the next cycle leaves it alone (no
/// target call), and a restart retries it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escrow_defers_failures_until_restart() {
    let token = format!("escrow-token-{}-z3", std::process::id());
    let server = scim_server::start(&token);
    let proxy = faulty_proxy::start(
        server.origin(),
        faulty_proxy::Faults {
            reject_body_containing: Some("bad@example.com"),
            ..Default::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (plugin, sha) = common::pinned("provisio_plugin_scim");
    std::fs::write(
        dir.path().join("directory.json"),
        json!({"users": [
                {"id": "good", "userPrincipalName": "good@example.com", "accountEnabled": true},
                {"id": "bad", "userPrincipalName": "bad@example.com", "accountEnabled": true}],
               "groups": [],
               "assignments": [{"principal": "good", "connection": "t", "role": "User"}, {"principal": "bad", "connection": "t", "role": "User"}]})
        .to_string(),
    )
    .unwrap();
    let config = dir.path().join("provisio.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[plugins.scim]
path = "{}"
sha256 = "{sha}"
[secrets.tok]
env = "ESCROW_TOKEN"
hosts = ["{p}"]
[sources.d]
path = "directory.json"
[connections.t]
plugin = "scim"
source = "d"
settings = {{ base_url = "{p}/v2" }}
secrets = {{ token = "tok" }}
allowed_hosts = ["{p}"]
"#,
            plugin.display(),
            p = proxy.url
        ),
    )
    .unwrap();
    let cli = move |args: &'static [&'static str]| {
        let config = config.clone();
        let token = token.clone();
        tokio::task::spawn_blocking(move || {
            let out = Command::new(env!("CARGO_BIN_EXE_provisio"))
                .arg("--config")
                .arg(&config)
                .args(args)
                .env("ESCROW_TOKEN", &token)
                .output()
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    let (ok, out, err) = cli(&["sync", "t", "--json"]).await.unwrap();
    assert!(!ok, "a failed object is not a success");
    assert!(
        err.contains("connection 't' is not in step: 1 object(s) failed"),
        "{err}"
    );
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["failures"], 1, "{s}");
    let (_, out, _) = cli(&[
        "logs",
        "--connection",
        "t",
        "--status",
        "failure",
        "--format",
        "json",
    ])
    .await
    .unwrap();
    let logs: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(logs[0]["source_id"], "bad");
    assert_eq!(
        logs[0]["error_code"], "InvalidInput",
        "a permanent error, not retried in the cycle: {logs}"
    );

    // Next cycle: the failed object waits in escrow; nothing is sent.
    let (ok, out, err) = cli(&["sync", "t", "--json"]).await.unwrap();
    assert!(!ok, "an object waiting in escrow is not hidden");
    assert!(
        err.contains("1 object(s) wait in escrow for their next retry"),
        "{err}"
    );
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["target_calls"], 0, "{s}");
    assert_eq!(s["waiting"], 1, "{s}");
    assert_eq!(s["counts"]["user create skipped"], 1, "{s}");
    let (_, out, _) = cli(&[
        "logs",
        "--connection",
        "t",
        "--user",
        "bad",
        "--status",
        "skipped",
    ])
    .await
    .unwrap();
    assert!(out.contains("in escrow after 1 failed attempts"), "{out}");

    // A restart clears escrow: the object is tried again at once.
    let (ok, out, _) = cli(&["restart", "t"]).await.unwrap();
    assert!(ok && out.contains("1 objects left escrow"), "{out}");
    let (ok, out, _) = cli(&["sync", "t", "--json"]).await.unwrap();
    assert!(!ok, "still failing");
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["cycle_type"], "initial");
    assert!(
        s["target_calls"].as_u64().unwrap() >= 2,
        "match + create attempted again: {s}"
    );
    assert_eq!(s["failures"], 1);
}
