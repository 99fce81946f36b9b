//! The service's admin API and lifecycle, through the real binary against
//! the real scim2-server: status and progress, pause/resume (kept across a
//! restart of the service), start, restart, provision on demand, staged
//! deletions, logs export, test connection, metrics, bearer-token refusal,
//! quarantine kept across restarts, plugin digest reload, and SIGKILL in the
//! middle of cycles, several times, ending in exactly the right target state.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/scim_server.rs"]
mod scim_server;

#[path = "common/faulty_proxy.rs"]
mod faulty_proxy;

use common::wait_for;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "admin-token-7f3a9c21";

fn directory(ids: &[u32]) -> String {
    let users: Vec<Value> = ids.iter().map(|i| json!({"id": format!("s{i}"), "userPrincipalName": format!("s{i}@example.com"), "displayName": format!("S {i}"), "accountEnabled": true})).collect();
    let assignments: Vec<Value> = ids
        .iter()
        .map(|i| json!({"principal": format!("s{i}"), "connection": "svc", "role": "User"}))
        .collect();
    json!({"users": users, "groups": [], "assignments": assignments}).to_string()
}

struct Setup {
    dir: tempfile::TempDir,
    cfg: PathBuf,
    port: u16,
}

/// A config with the admin API on a free port; `conn_extra` goes into the
/// connection's table.
fn setup(origin: &str, base: &str, plugin: &Path, sha: &str, conn_extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let port = scim_server::free_port();
    let cfg = dir.path().join("provisio.toml");
    write_config(&cfg, origin, base, plugin, sha, conn_extra, port);
    Setup { dir, cfg, port }
}

fn write_config(
    cfg: &Path,
    origin: &str,
    base: &str,
    plugin: &Path,
    sha: &str,
    conn_extra: &str,
    port: u16,
) {
    std::fs::write(
        cfg,
        format!(
            r#"
[service]
listen = "127.0.0.1:{port}"
token_secret = "admin"
[plugins.scim]
path = "{}"
sha256 = "{sha}"
[secrets.tok]
env = "SVC_TOKEN"
hosts = ["{origin}"]
[secrets.admin]
env = "ADMIN_TOKEN"
hosts = []
[sources.d]
path = "directory.json"
[connections.svc]
plugin = "scim"
source = "d"
settings = {{ base_url = "{base}" }}
secrets = {{ token = "tok" }}
allowed_hosts = ["{origin}"]
{conn_extra}
"#,
            plugin.display()
        ),
    )
    .unwrap();
}

fn spawn(cfg: &Path, token: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_provisio"))
        .arg("--config")
        .arg(cfg)
        .arg("run")
        .env("SVC_TOKEN", token)
        .env("ADMIN_TOKEN", ADMIN)
        .env("PROVISIO_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Call the API with curl: (status, body as JSON or as a string).
fn api(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut c = Command::new("curl");
    c.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method]);
    if let Some(t) = token {
        c.arg("-H").arg(format!("Authorization: Bearer {t}"));
    }
    if let Some(b) = body {
        c.args(["-H", "Content-Type: application/json", "--data"])
            .arg(b.to_string());
    }
    let out = c
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let v = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    (code.trim().parse().unwrap_or(0), v)
}

fn get(port: u16, path: &str) -> Value {
    let (code, v) = api(port, "GET", path, Some(ADMIN), None);
    assert_eq!(code, 200, "GET {path}: {v}");
    v
}

fn post(port: u16, path: &str, body: Option<Value>) -> Value {
    let (code, v) = api(port, "POST", path, Some(ADMIN), body);
    assert_eq!(code, 200, "POST {path}: {v}");
    v
}

/// userName -> (count, active) in the target.
fn users(server: &scim_server::ScimServer) -> BTreeMap<String, (usize, bool)> {
    let o = Command::new("curl")
        .args(["-sf", "-H"])
        .arg(format!("Authorization: Bearer {}", server.token))
        .arg(format!("{}/Users?count=1000", server.base_url()))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let mut out: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    for u in v["Resources"].as_array().cloned().unwrap_or_default() {
        let e = out
            .entry(u["userName"].as_str().unwrap_or("").to_string())
            .or_insert((0, false));
        e.0 += 1;
        e.1 = u["active"].as_bool().unwrap_or(true);
    }
    out
}

fn stop(mut child: Child) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    stderr
}

fn status(port: u16) -> Value {
    get(port, "/v1/connections/svc")
}

fn cycles_done(port: u16) -> Option<String> {
    status(port)["last_cycle"]["id"].as_str().map(String::from)
}

#[test]
fn the_admin_api_controls_and_observes_the_service() {
    let server = scim_server::start("api-token-51d0");
    let (plugin, sha) = common::pinned("provisio_plugin_scim");
    let s = setup(
        &server.origin(),
        &server.base_url(),
        &plugin,
        &sha,
        "interval_seconds = 3600\ndeletion_threshold = 1",
    );
    let dirf = s.dir.path().join("directory.json");
    std::fs::write(&dirf, directory(&[1, 2, 3])).unwrap();
    let child = spawn(&s.cfg, "api-token-51d0");
    let port = s.port;
    wait_for("the API", Duration::from_secs(60), || {
        api(port, "GET", "/healthz", None, None).0 == 200
    });

    // No token, a wrong token: refused, and says how to fix it.
    let (code, v) = api(port, "GET", "/v1/connections", None, None);
    assert_eq!(code, 401);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{v}"
    );
    assert_eq!(
        api(port, "GET", "/metrics", Some("wrong-token"), None).0,
        401
    );
    assert_eq!(
        api(port, "POST", "/v1/connections/svc/pause", None, None).0,
        401
    );
    // The OpenAPI document is served.
    let (code, doc) = api(port, "GET", "/openapi.json", None, None);
    assert_eq!(code, 200);
    assert!(doc["paths"]["/v1/connections/{name}/restart"]["post"].is_object());

    // The initial cycle runs by itself; status shows it.
    wait_for("the initial cycle", Duration::from_secs(90), || {
        status(port)["last_cycle"]["status"] == "succeeded"
    });
    let st = status(port);
    assert_eq!(st["state"], "active", "{st}");
    assert_eq!(st["last_cycle"]["cycle_type"], "initial");
    assert_eq!(st["last_cycle"]["counts"]["failures"], 0);
    assert_eq!(st["plugin"]["sha256"], sha.as_str());
    assert!(st["next_run_at"].is_string());
    assert_eq!(users(&server).len(), 3);
    let all = get(port, "/v1/connections");
    assert_eq!(all["connections"].as_array().unwrap().len(), 1);
    assert_eq!(
        api(port, "GET", "/v1/connections/nope", Some(ADMIN), None).0,
        404
    );

    // Metrics count the cycle and the creates.
    let (code, m) = api(port, "GET", "/metrics", Some(ADMIN), None);
    assert_eq!(code, 200);
    let m = m.as_str().unwrap().to_string();
    assert!(
        m.contains(r#"provisio_cycles_total{connection="svc",status="succeeded"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"provisio_actions_total{connection="svc",kind="user",action="create",status="success"} 3"#),
        "{m}"
    );
    assert!(
        m.contains(r#"provisio_request_seconds_count{connection="svc"}"#),
        "{m}"
    );

    // Test connection.
    let t = post(port, "/v1/connections/svc/test", None);
    assert_eq!(t["ok"], true, "{t}");

    // Provision on demand: a new source user, now, without a cycle.
    std::fs::write(&dirf, directory(&[1, 2, 3, 4])).unwrap();
    let before = cycles_done(port);
    let p = post(
        port,
        "/v1/connections/svc/provision",
        Some(json!({"kind": "user", "id": "s4"})),
    );
    let rec = &p["records"][0];
    assert_eq!(rec["action"], "create", "{p}");
    assert_eq!(rec["status"], "success", "{p}");
    assert_eq!(users(&server).len(), 4);
    assert_eq!(cycles_done(port), before, "on demand is not a cycle");
    let (code, v) = api(
        port,
        "POST",
        "/v1/connections/svc/provision",
        Some(ADMIN),
        Some(json!({"kind": "robot", "id": "s4"})),
    );
    assert_eq!(code, 400, "{v}");

    // Pause: no cycle starts, the state says so, and `provisio status` shows it.
    post(port, "/v1/connections/svc/pause", None);
    assert_eq!(status(port)["state"], "paused");
    assert!(status(port)["next_run_at"].is_null());
    let mut tr = String::new();
    let (ok, out, err) = common::provisio(&s.cfg, &[("ADMIN_TOKEN", ADMIN)], &["status"], &mut tr);
    assert!(ok, "{err}");
    assert!(out.contains("svc") && out.contains("paused"), "{out}");

    // Staged deletions: two users leave the source; with the guard at 1 the
    // next cycle (started by hand, which also resumes) holds both.
    std::fs::write(&dirf, directory(&[1, 2])).unwrap();
    post(port, "/v1/connections/svc/start", None);
    wait_for("the guarded cycle", Duration::from_secs(90), || {
        let st = status(port);
        st["last_cycle"]["id"].as_str() != before.as_deref()
            && st["last_cycle"]["counts"]["staged"] == 2
    });
    let staged = get(port, "/v1/connections/svc/staged");
    assert_eq!(staged["staged"].as_array().unwrap().len(), 2, "{staged}");
    assert!(
        users(&server).values().all(|(_, active)| *active),
        "nothing disabled yet"
    );
    let allowed = post(
        port,
        "/v1/connections/svc/staged/allow",
        Some(json!({"ids": []})),
    );
    assert_eq!(allowed["changed"].as_array().unwrap().len(), 2);
    let last = cycles_done(port);
    post(port, "/v1/connections/svc/start", None);
    wait_for(
        "the allowed deprovisioning",
        Duration::from_secs(90),
        || {
            let t = users(&server);
            let gone = |u: &str| t.get(u).is_none_or(|(_, active)| !*active);
            cycles_done(port) != last
                && gone("s3@example.com")
                && gone("s4@example.com")
                && !gone("s1@example.com")
                && !gone("s2@example.com")
        },
    );

    // Logs: query and export.
    let (code, csv) = api(
        port,
        "GET",
        "/v1/logs?connection=svc&action=create&format=csv",
        Some(ADMIN),
        None,
    );
    assert_eq!(code, 200);
    let csv = csv.as_str().unwrap().to_string();
    assert_eq!(csv.lines().count(), 1 + 4, "header and 4 creates:\n{csv}");
    let (code, v) = api(port, "GET", "/v1/logs?since=yesterday", Some(ADMIN), None);
    assert_eq!(code, 400);
    assert!(v["error"].as_str().unwrap().contains("RFC 3339"), "{v}");
    let logs = get(port, "/v1/logs?connection=svc&status=success&limit=2");
    assert_eq!(logs.as_array().unwrap().len(), 2);

    // Restart: the next cycle is an initial one.
    let last = cycles_done(port);
    post(
        port,
        "/v1/connections/svc/restart",
        Some(json!({"links": false})),
    );
    wait_for("the cycle after restart", Duration::from_secs(90), || {
        let st = status(port);
        st["last_cycle"]["id"].as_str() != last.as_deref()
            && st["last_cycle"]["status"] == "succeeded"
    });
    assert_eq!(status(port)["last_cycle"]["cycle_type"], "initial");

    // Pause, then restart the whole service: still paused, no cycle runs.
    post(port, "/v1/connections/svc/pause", None);
    let last = cycles_done(port);
    let err = stop(child);
    assert!(!err.contains(ADMIN), "admin token leaked");
    assert!(!err.contains("api-token-51d0"), "target token leaked");
    std::fs::write(&dirf, directory(&[1, 2, 5])).unwrap();
    let child = spawn(&s.cfg, "api-token-51d0");
    wait_for("the API again", Duration::from_secs(60), || {
        api(port, "GET", "/healthz", None, None).0 == 200
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(status(port)["state"], "paused");
    assert_eq!(cycles_done(port), last, "a paused connection runs no cycle");
    assert!(!users(&server).contains_key("s5@example.com"));
    // `provisio resume` through the API: the due cycle runs.
    let (ok, out, err) = common::provisio(
        &s.cfg,
        &[("ADMIN_TOKEN", ADMIN)],
        &["resume", "svc"],
        &mut tr,
    );
    assert!(ok && out.contains("resumed"), "{out}{err}");
    wait_for("the resumed cycle", Duration::from_secs(90), || {
        users(&server).contains_key("s5@example.com")
    });
    stop(child);
}

#[test]
fn quarantine_is_kept_across_service_restarts_and_ended_by_restart() {
    let server = scim_server::start("quar-token-88e1");
    let (plugin, sha) = common::pinned("provisio_plugin_scim");
    let s = setup(&server.origin(), &server.base_url(), &plugin, &sha, "");
    std::fs::write(s.dir.path().join("directory.json"), directory(&[1, 2])).unwrap();
    let run = |token: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_provisio"))
            .arg("--config")
            .arg(&s.cfg)
            .args(["run", "--once"])
            .env("SVC_TOKEN", token)
            .env("ADMIN_TOKEN", ADMIN)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = run("wrong-token-0000");
    assert!(
        first.contains("'svc' in quarantine (credentials rejected: "),
        "{first}"
    );
    // A new process keeps the schedule: the next attempt is hours away.
    let second = run("quar-token-88e1");
    assert!(second.contains("is in quarantine until"), "{second}");
    assert!(users(&server).is_empty(), "no attempt before it is due");
    let mut tr = String::new();
    let (ok, out, _) = common::provisio(
        &s.cfg,
        &[("ADMIN_TOKEN", ADMIN)],
        &["status", "--json"],
        &mut tr,
    );
    assert!(ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["service_running"], false);
    assert_eq!(v["connections"][0]["state"], "quarantine");
    assert_eq!(v["connections"][0]["quarantine"]["failed_cycles"], 1);
    // `provisio restart` ends it; the next run syncs.
    let (ok, out, err) = common::provisio(&s.cfg, &[], &["restart", "svc"], &mut tr);
    assert!(ok && out.contains("left quarantine"), "{out}{err}");
    let third = run("quar-token-88e1");
    assert!(!third.contains("quarantine"), "{third}");
    assert_eq!(users(&server).len(), 2);
}

/// A valid component with a different digest: the same bytes plus a custom section.
fn with_custom_section(bytes: &[u8]) -> Vec<u8> {
    let name = b"provisio-test";
    let payload = b"same code, new digest";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(payload);
    let mut out = bytes.to_vec();
    out.push(0);
    out.push(section.len() as u8);
    out.extend_from_slice(&section);
    out
}

#[test]
fn a_replaced_plugin_file_is_used_only_after_the_pin_changes() {
    let server = scim_server::start("pin-token-3c44");
    let (built, sha_a) = common::pinned("provisio_plugin_scim");
    let dir_plugin = tempfile::tempdir().unwrap();
    let plugin = dir_plugin.path().join("scim.wasm");
    let bytes = std::fs::read(&built).unwrap();
    std::fs::write(&plugin, &bytes).unwrap();
    let s = setup(
        &server.origin(),
        &server.base_url(),
        &plugin,
        &sha_a,
        "interval_seconds = 1",
    );
    std::fs::write(s.dir.path().join("directory.json"), directory(&[1])).unwrap();
    let child = spawn(&s.cfg, "pin-token-3c44");
    let port = s.port;
    wait_for("a first cycle", Duration::from_secs(90), || {
        api(port, "GET", "/healthz", None, None).0 == 200 && cycles_done(port).is_some()
    });
    // Replace the file; the pin still names the old digest.
    let new_bytes = with_custom_section(&bytes);
    let sha_b = provisio::runtime::plugin::sha256_hex(&new_bytes);
    assert_ne!(sha_a, sha_b);
    std::fs::write(&plugin, &new_bytes).unwrap();
    let mut seen = BTreeMap::new();
    wait_for("two more cycles", Duration::from_secs(90), || {
        if let Some(id) = cycles_done(port) {
            seen.insert(id, ());
        }
        seen.len() >= 3
    });
    let st = status(port);
    assert_eq!(
        st["plugin"]["sha256"],
        sha_a.as_str(),
        "still the pinned plugin"
    );
    assert_eq!(
        st["state"], "active",
        "no outage from the replaced file: {st}"
    );
    // Update the pin: the next cycle loads the new file.
    write_config(
        &s.cfg,
        &server.origin(),
        &server.base_url(),
        &plugin,
        &sha_b,
        "interval_seconds = 1",
        port,
    );
    wait_for("the new plugin", Duration::from_secs(90), || {
        status(port)["plugin"]["sha256"] == sha_b.as_str()
    });
    let err = stop(child);
    assert!(err.contains("plugin loaded"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_cycle_several_times_ends_exactly_right() {
    let server = scim_server::start("kill-token-9b07");
    // A slow target, so that each kill lands in the middle of a cycle.
    let proxy = faulty_proxy::start(
        server.origin(),
        faulty_proxy::Faults {
            delay_ms: 60,
            ..Default::default()
        },
    )
    .await;
    let (plugin, sha) = common::pinned("provisio_plugin_scim");
    let base = format!("{}/v2", proxy.url);
    let s = setup(
        &proxy.url,
        &base,
        &plugin,
        &sha,
        "interval_seconds = 1\nconcurrency = 2",
    );
    let ids: Vec<u32> = (1..=40).collect();
    std::fs::write(s.dir.path().join("directory.json"), directory(&ids)).unwrap();
    let mut kills = 0;
    let mut previous = 0;
    for round in 0..4 {
        let mut child = spawn(&s.cfg, "kill-token-9b07");
        // Let it make progress, then kill -9 in the middle of the cycle.
        let t = Instant::now();
        loop {
            let n = tokio::task::block_in_place(|| users(&server).len());
            if n >= previous + 5 || n == ids.len() || t.elapsed() > Duration::from_secs(60) {
                previous = n;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        if previous == ids.len() {
            assert!(round > 0, "the first kill must land mid-cycle");
            break;
        }
    }
    assert!(kills >= 2, "killed {kills} times");
    // Let the last run finish in peace.
    let child = spawn(&s.cfg, "kill-token-9b07");
    let port = s.port;
    tokio::task::block_in_place(|| {
        wait_for("convergence", Duration::from_secs(180), || {
            api(port, "GET", "/healthz", None, None).0 == 200
                && status(port)["last_cycle"]["status"] == "succeeded"
                && users(&server).len() == ids.len()
        });
        let target = users(&server);
        for i in &ids {
            let u = format!("s{i}@example.com");
            assert_eq!(target.get(&u).map(|e| e.0), Some(1), "{u} exactly once");
        }
        assert_eq!(target.len(), ids.len(), "nothing else: {target:?}");
        stop(child);
    });
    // No create was ever repeated: a repeat would have met 409 from the
    // server. (A create cut off by a kill reaches the server but not the
    // proxy's record, so successful creates seen can be fewer than users;
    // the restarted service re-matched those instead of creating again.)
    let seen = proxy.seen.lock().unwrap().clone();
    let created = seen
        .iter()
        .filter(|r| r.method == "POST" && r.status == 201)
        .count();
    let conflicts = seen.iter().filter(|r| r.status == 409).count();
    assert!(
        created <= ids.len(),
        "{created} creates for {} users",
        ids.len()
    );
    assert_eq!(conflicts, 0, "no duplicate create was attempted");
}

#[test]
fn a_successful_attempt_ends_quarantine_by_itself() {
    let server = scim_server::start("heal-token-6d21");
    let (plugin, sha) = common::pinned("provisio_plugin_scim");
    let s = setup(
        &server.origin(),
        &server.base_url(),
        &plugin,
        &sha,
        "interval_seconds = 3600",
    );
    // The target token comes from a file the operator can fix while the
    // service runs (the config and secrets are read before every cycle).
    let token_file = s.dir.path().join("token");
    std::fs::write(&token_file, "wrong-token-0000").unwrap();
    let cfg = std::fs::read_to_string(&s.cfg).unwrap().replace(
        "env = \"SVC_TOKEN\"",
        &format!("file = {:?}", token_file.display().to_string()),
    );
    std::fs::write(&s.cfg, cfg).unwrap();
    std::fs::write(s.dir.path().join("directory.json"), directory(&[1, 2])).unwrap();
    let child = spawn(&s.cfg, "unused-token-0000");
    let port = s.port;
    wait_for("quarantine", Duration::from_secs(90), || {
        api(port, "GET", "/healthz", None, None).0 == 200 && status(port)["state"] == "quarantine"
    });
    let st = status(port);
    assert_eq!(st["quarantine"]["failed_cycles"], 1, "{st}");
    assert!(
        st["quarantine"]["reason"]
            .as_str()
            .unwrap()
            .contains("credentials rejected: "),
        "a 401 stops the cycle and names the reason: {st}"
    );
    let (_, m) = api(port, "GET", "/metrics", Some(ADMIN), None);
    assert!(
        m.as_str()
            .unwrap()
            .contains(r#"provisio_quarantined{connection="svc"} 1"#)
    );
    // Fix the credential and ask for an attempt now (no restart: the objects
    // that failed are in escrow, and the quarantine attempt retries them): it
    // succeeds, and the connection leaves quarantine by itself.
    std::fs::write(&token_file, "heal-token-6d21").unwrap();
    post(port, "/v1/connections/svc/start", None);
    wait_for("the healed cycle", Duration::from_secs(90), || {
        status(port)["state"] == "active"
    });
    let st = status(port);
    assert!(st["quarantine"].is_null(), "{st}");
    assert_eq!(users(&server).len(), 2);
    let (_, m) = api(port, "GET", "/metrics", Some(ADMIN), None);
    assert!(
        m.as_str()
            .unwrap()
            .contains(r#"provisio_quarantined{connection="svc"} 0"#)
    );
    stop(child);
}
