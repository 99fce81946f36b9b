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

const ADMIN: &str = "lease-admin-token-5e1d";

/// `service_port`: also serve the admin API there (for `provisio run`).
fn write_setup(
    dir: &Path,
    proxy: &str,
    plugin: &Path,
    sha: &str,
    service_port: Option<u16>,
) -> std::path::PathBuf {
    let users: Vec<Value> = (1..=USERS)
        .map(|i| json!({"id": format!("l{i:02}"), "userPrincipalName": format!("l{i:02}@example.com"), "displayName": format!("L {i}"), "accountEnabled": true}))
        .collect();
    std::fs::write(
        dir.join("directory.json"),
        json!({"users": users, "groups": [], "assignments": []}).to_string(),
    )
    .unwrap();
    let service = service_port.map_or(String::new(), |port| {
        format!(
            "[service]\nlisten = \"127.0.0.1:{port}\"\ntoken_secret = \"admin\"\n\
             [secrets.admin]\nenv = \"LEASE_ADMIN\"\nhosts = []\n"
        )
    });
    let config = dir.join("provisio.toml");
    std::fs::write(
        &config,
        format!(
            r#"
{service}
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
interval_seconds = 1
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
    setup_with(tag, delay_ms, None).await
}

async fn setup_with(tag: &str, delay_ms: u64, service_port: Option<u16>) -> Setup {
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
    let config = write_setup(dir.path(), &proxy.url, &plugin, &sha, service_port);
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

fn user_names(server: &scim_server::ScimServer) -> Vec<String> {
    let v = server.get("/Users?count=1000");
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
    // Nor may a restart or a staged decision change the state under it.
    for args in [&["restart", "t"][..], &["staged", "allow", "t"][..]] {
        let (config2, token2) = (config.clone(), token.clone());
        let o = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_provisio"))
                .arg("--config")
                .arg(&config2)
                .args(args)
                .env("LEASE_TOKEN", token2)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(4), "{args:?} refused: {err}");
        assert!(
            err.contains("being worked on by `provisio sync`"),
            "{args:?}: {err}"
        );
    }
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
    let names = user_names(&server);
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
    let names = user_names(&server);
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!((names.len(), unique.len()), (USERS, USERS), "{names:?}");
    let s = provisio::store::Store::open(&store).unwrap();
    assert!(s.pending_intents("t").unwrap().is_empty());
    assert!(s.lease("t").unwrap().is_none(), "released");
}

/// `curl` the admin API with an optional JSON body: (status, body).
fn api(port: u16, method: &str, path: &str, json: Option<Value>) -> (u16, String) {
    let mut c = Command::new("curl");
    if let Some(b) = json {
        c.args(["-H", "Content-Type: application/json", "--data"])
            .arg(b.to_string());
    }
    let o = c
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, "-H"])
        .arg(format!("Authorization: Bearer {ADMIN}"))
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The service (`provisio run`) and a `provisio sync` in another process:
/// while the sync holds the connection, the service's cycle waits, and its
/// admin API refuses a restart, a staged decision and provision on demand
/// with 409 naming the holder; afterwards the service syncs normally, and a
/// `provisio sync` started while the service's cycle runs is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_and_a_sync_process_never_write_at_once() {
    let port = scim_server::free_port();
    let Setup {
        token,
        server,
        proxy,
        dir: _dir,
        config,
        store,
    } = setup_with("svc", 250, Some(port)).await;
    let first = sync(&config, &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lease = wait_for_lease(&store);
    assert_eq!(lease.holder.command, "provisio sync");
    let mut service = Command::new(env!("CARGO_BIN_EXE_provisio"))
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("LEASE_TOKEN", &token)
        .env("LEASE_ADMIN", ADMIN)
        .env("PROVISIO_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for("the admin API", Duration::from_secs(30), || {
        api(port, "GET", "/v1/connections", None).0 == 200
    });
    for (path, what, json) in [
        ("/v1/connections/t/restart", "restart", None),
        ("/v1/connections/t/staged/allow", "staged allow", None),
        (
            "/v1/connections/t/provision",
            "provision on demand",
            Some(json!({"kind": "user", "id": "l01"})),
        ),
    ] {
        let (code, body) = api(port, "POST", path, json);
        assert_eq!(code, 409, "{what} while a sync holds the lease: {body}");
        assert!(
            body.contains("being worked on by `provisio sync`")
                && body.contains(&format!("pid {}", first.id())),
            "{what} names the holder: {body}"
        );
    }
    let out = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Now the service's cycles get the lease; while one runs (renaming every
    // user through the slow proxy), a sync is refused.
    let source = _dir.path().join("directory.json");
    let original = std::fs::read_to_string(&source).unwrap();
    let mut round = 0;
    let mut refused = None;
    common::wait_for(
        "a sync refused during a service cycle",
        Duration::from_secs(90),
        || {
            let held = provisio::store::Store::open(&store)
                .ok()
                .and_then(|s| s.lease("t").ok().flatten());
            if held
                .as_ref()
                .is_none_or(|l| l.holder.command != "provisio run")
            {
                if round == 0 || held.is_none() {
                    round += 1;
                    let renamed = original.replace("\"L ", &format!("\"L{round} "));
                    std::fs::write(&source, renamed).unwrap();
                }
                std::thread::sleep(Duration::from_millis(50));
                return false;
            }
            let o = sync(&config, &token).output().unwrap();
            if o.status.code() == Some(4) {
                refused = Some(String::from_utf8_lossy(&o.stderr).into_owned());
                return true;
            }
            false
        },
    );
    let refused = refused.unwrap();
    assert!(
        refused.contains("being worked on by `provisio run`")
            && refused.contains(&format!("pid {}", service.id())),
        "{refused}"
    );
    let _ = service.kill();
    let _ = service.wait();
    let names = user_names(&server);
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!((names.len(), unique.len()), (USERS, USERS), "{names:?}");
    let posts = proxy
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.method == "POST")
        .count();
    assert_eq!(posts, USERS, "one create per user in all");
}
