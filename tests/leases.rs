//! One writer per connection (issue 10, part 1): two processes on one state
//! file. A `provisio sync` holds the connection's lease while a slow target
//! (a delaying proxy in front of scim2-server) keeps it busy; a second
//! `provisio sync` of the same connection is refused at once with a message
//! naming the holder and exit code 4, and sends nothing; the first finishes
//! with every user created exactly once. After a `kill -9` of a sync, the
//! next one takes the dead process's lease over at once, resumes its
//! interrupted intents and converges without a duplicate.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/faulty_proxy.rs"]
mod faulty_proxy;
#[path = "common/scim_server.rs"]
mod scim_server;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const USERS: usize = 12;

fn write_setup(dir: &Path, proxy: &str, plugin: &Path, sha: &str) -> std::path::PathBuf {
    let users: Vec<Value> = (1..=USERS)
        .map(|i| json!({"id": format!("l{i:02}"), "userPrincipalName": format!("l{i:02}@example.com"), "displayName": format!("L {i}"), "accountEnabled": true}))
        .collect();
    std::fs::write(
        dir.join("directory.json"),
        json!({"users": users, "groups": [], "assignments": []}).to_string(),
    )
    .unwrap();
    let config = dir.join("provisio.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[runtime]
state_dir = "state"
[plugins.scim]
path = "{}"
sha256 = "{sha}"
[secrets.tok]
env = "LEASE_TOKEN"
hosts = ["{proxy}"]
[sources.d]
path = "directory.json"
[connections.t]
plugin = "scim"
source = "d"
settings = {{ base_url = "{proxy}/v2" }}
secrets = {{ token = "tok" }}
allowed_hosts = ["{proxy}"]
concurrency = 2
[connections.t.scope]
assigned_only = false
"#,
            plugin.display()
        ),
    )
    .unwrap();
    config
}

/// scim2-server behind a proxy that holds every request `delay_ms`, and a
/// configuration of connection `t` syncing `USERS` users through it.
struct Setup {
    token: String,
    server: scim_server::ScimServer,
    proxy: faulty_proxy::Proxy,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    store: std::path::PathBuf,
}

async fn setup(tag: &str, delay_ms: u64) -> Setup {
    let token = format!("lease-token-{}-{tag}", std::process::id());
    let server = scim_server::start(&token);
    let proxy = faulty_proxy::start(
        server.origin(),
        faulty_proxy::Faults {
            delay_ms,
            ..Default::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (plugin, sha) = common::pinned("provisio_plugin_scim");
    let config = write_setup(dir.path(), &proxy.url, &plugin, &sha);
    let store = dir.path().join("state/provisio.db");
    Setup {
        token,
        server,
        proxy,
        dir,
        config,
        store,
    }
}

fn sync(config: &Path, token: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_provisio"));
    c.arg("--config")
        .arg(config)
        .args(["sync", "t", "--json"])
        .env("LEASE_TOKEN", token)
        .env("PROVISIO_LOG", "warn");
    c
}

/// Wait until the store shows a lease on `t` (the first sync has begun).
fn wait_for_lease(store: &Path) -> provisio::store::Lease {
    let mut found = None;
    common::wait_for("the first sync's lease", Duration::from_secs(30), || {
        found = provisio::store::Store::open(store)
            .ok()
            .and_then(|s| s.lease("t").ok().flatten());
        found.is_some()
    });
    found.unwrap()
}

fn user_names(server: &scim_server::ScimServer, token: &str) -> Vec<String> {
    let o = Command::new("curl")
        .args(["-sf", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("{}/Users?count=1000", server.base_url()))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["Resources"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| u["userName"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_is_refused_while_a_sync_holds_the_connection() {
    let Setup {
        token,
        server,
        proxy,
        dir: _dir,
        config,
        store,
    } = setup("k2", 250).await;

    let first = sync(&config, &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lease = wait_for_lease(&store);
    assert_eq!(lease.holder.pid, first.id());
    assert_eq!(lease.holder.command, "provisio sync");
    let before = proxy.seen.lock().unwrap().len();

    let (config2, token2) = (config.clone(), token.clone());
    let second = tokio::task::spawn_blocking(move || sync(&config2, &token2).output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(
        second.status.code(),
        Some(4),
        "exit code 4 (busy): {stderr}"
    );
    assert!(
        stderr.contains("connection 't' is being worked on by `provisio sync`")
            && stderr.contains(&format!("pid {}", first.id())),
        "names the holder: {stderr}"
    );
    let during = proxy.seen.lock().unwrap().len();

    let out = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["failures"], 0, "{summary}");
    // The refused process sent nothing: one create per user in all.
    let posts = proxy
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.method == "POST")
        .count();
    assert!(during >= before, "{before} {during}");
    assert_eq!(
        posts, USERS,
        "one create per user, none from the refused process"
    );
    let names = user_names(&server, &token);
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!((names.len(), unique.len()), (USERS, USERS), "{names:?}");
    // Released at the end: the next sync gets it at once.
    let again = sync(&config, &token).output().unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_syncs_lease_is_taken_over_and_its_intents_resumed() {
    let Setup {
        token,
        server,
        proxy,
        dir: _dir,
        config,
        store,
    } = setup("k3", 200).await;

    let mut first = sync(&config, &token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_lease(&store);
    // Let it get some creates in flight, then kill -9.
    common::wait_for("a create in flight", Duration::from_secs(30), || {
        proxy
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.method == "POST")
    });
    first.kill().unwrap();
    first.wait().unwrap();

    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking({
        let (config, token) = (config.clone(), token.clone());
        move || sync(&config, &token).output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "the dead process's lease is taken over at once: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < provisio::store::LEASE_TTL,
        "no wait for the expiry"
    );
    let names = user_names(&server, &token);
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!((names.len(), unique.len()), (USERS, USERS), "{names:?}");
    let s = provisio::store::Store::open(&store).unwrap();
    assert!(s.pending_intents("t").unwrap().is_empty());
    assert!(s.lease("t").unwrap().is_none(), "released");
}
