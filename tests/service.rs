//! `provisio run`: the scheduler picks up source changes by itself at the
//! connection's interval, stops cleanly on SIGTERM, and puts a connection whose
//! credentials are rejected in quarantine.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/scim_server.rs"]
mod scim_server;

use common::wait_for;
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn directory(n: usize) -> String {
    let users: Vec<Value> = (1..=n).map(|i| json!({"id": format!("s{i}"), "userPrincipalName": format!("s{i}@example.com"), "accountEnabled": true})).collect();
    let assignments: Vec<Value> = (1..=n)
        .map(|i| json!({"principal": format!("s{i}"), "connection": "svc", "role": "User"}))
        .collect();
    json!({"users": users, "groups": [], "assignments": assignments}).to_string()
}

fn config(dir: &std::path::Path, origin: &str, base: &str) -> std::path::PathBuf {
    let (plugin, sha) = common::pinned("provisio_plugin_scim");
    let path = dir.join("provisio.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[plugins.scim]
path = "{}"
sha256 = "{sha}"
[secrets.tok]
env = "SVC_TOKEN"
hosts = ["{origin}"]
[sources.d]
path = "directory.json"
[connections.svc]
plugin = "scim"
source = "d"
settings = {{ base_url = "{base}" }}
secrets = {{ token = "tok" }}
allowed_hosts = ["{origin}"]
interval_seconds = 1
"#,
            plugin.display()
        ),
    )
    .unwrap();
    path
}

fn user_count(server: &scim_server::ScimServer) -> u64 {
    let o = Command::new("curl")
        .args(["-sf", "-H"])
        .arg(format!("Authorization: Bearer {}", server.token))
        .arg(format!("{}/Users", server.base_url()))
        .output()
        .unwrap();
    serde_json::from_slice::<Value>(&o.stdout)
        .map(|v| v["totalResults"].as_u64().unwrap_or(0))
        .unwrap_or(0)
}

#[test]
fn run_syncs_on_its_own_and_stops_on_sigterm() {
    let server = scim_server::start("svc-token-1234");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("directory.json"), directory(3)).unwrap();
    let cfg = config(dir.path(), &server.origin(), &server.base_url());
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisio"))
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .env("SVC_TOKEN", "svc-token-1234")
        .env("PROVISIO_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the initial cycle", Duration::from_secs(60), || {
        user_count(&server) == 3
    });
    // A change in the source reaches the target without anyone running sync.
    std::fs::write(dir.path().join("directory.json"), directory(5)).unwrap();
    wait_for("an incremental cycle", Duration::from_secs(60), || {
        user_count(&server) == 5
    });
    // SIGTERM: the service finishes what runs and exits cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let t = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the service did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(exit.success(), "exit {exit:?}:\n{stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
    assert!(stderr.matches("cycle finished").count() >= 2, "{stderr}");
    assert!(!stderr.contains("svc-token-1234"), "token leaked");
}

#[test]
fn rejected_credentials_put_the_connection_in_quarantine() {
    let server = scim_server::start("svc-token-5678");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("directory.json"), directory(2)).unwrap();
    let cfg = config(dir.path(), &server.origin(), &server.base_url());
    let out = Command::new(env!("CARGO_BIN_EXE_provisio"))
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--once"])
        .env("SVC_TOKEN", "wrong-token-0000")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("connection 'svc' in quarantine (credentials rejected: ")
            && stderr.contains("next attempt in 6 h"),
        "{stderr}"
    );
    assert_eq!(user_count(&server), 0);
}
