//! Notifications end to end: real `provisio run --once` against scim2-server,
//! a local SMTP sink and a local webhook receiver (axum). A connection whose
//! credentials are rejected notifies "cycle failed" and "quarantined"; a
//! connection whose deletion guard trips notifies "staged deletions"; each
//! arrives exactly once on each channel, also across runs (the history is in
//! the state store), and no secret shows in the logs.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/scim_server.rs"]
mod scim_server;

#[path = "common/faulty_proxy.rs"]
mod faulty_proxy;
#[path = "common/smtp_sink.rs"]
mod smtp_sink;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

const SMTP_PASSWORD: &str = "smtp-pass-93b1c2d4";
const HOOK_KEY: &str = "hook-key-5f6e7d8c";

#[derive(Clone, Debug)]
struct Hook {
    signature: String,
    body: Vec<u8>,
}

impl Hook {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

struct Receivers {
    _rt: tokio::runtime::Runtime,
    smtp: smtp_sink::SmtpSink,
    hooks: Arc<Mutex<Vec<Hook>>>,
    hook_port: u16,
}

impl Receivers {
    fn start() -> Receivers {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let hooks = Arc::new(Mutex::new(Vec::new()));
        let h2 = hooks.clone();
        let (smtp, hook_port) = rt.block_on(async move {
            let smtp = smtp_sink::start().await;
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(
                    move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                        let h2 = h2.clone();
                        async move {
                            let signature = headers
                                .get("x-provisio-signature")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string();
                            h2.lock().unwrap().push(Hook {
                                signature,
                                body: body.to_vec(),
                            });
                            "ok"
                        }
                    },
                ),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            (smtp, port)
        });
        Receivers {
            _rt: rt,
            smtp,
            hooks,
            hook_port,
        }
    }

    fn hooks(&self) -> Vec<Hook> {
        self.hooks.lock().unwrap().clone()
    }
}

/// Quoted-printable soft breaks and escapes undone, so the text can be searched.
fn unquote(data: &str) -> String {
    let joined = data.replace("=\n", "").replace("=\r\n", "");
    let mut out = Vec::new();
    let b = joined.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'='
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn directory(n: usize, assigned: bool) -> String {
    let users: Vec<Value> = (1..=n).map(|i| json!({"id": format!("n{i}"), "userPrincipalName": format!("n{i}@example.com"), "accountEnabled": true})).collect();
    let assignments: Vec<Value> = if assigned {
        (1..=n)
            .map(|i| json!({"principal": format!("n{i}"), "connection": "svc", "role": "User"}))
            .collect()
    } else {
        Vec::new()
    };
    json!({"users": users, "groups": [], "assignments": assignments}).to_string()
}

fn config(
    dir: &std::path::Path,
    server: &scim_server::ScimServer,
    r: &Receivers,
    extra: &str,
) -> std::path::PathBuf {
    config_at(dir, &server.origin(), &server.base_url(), r, extra)
}

/// [`config`] for a target at `origin` with SCIM base URL `base`.
fn config_at(
    dir: &std::path::Path,
    origin: &str,
    base: &str,
    r: &Receivers,
    extra: &str,
) -> std::path::PathBuf {
    let (plugin, sha) = common::pinned("provisio_plugin_scim");
    let hook_origin = format!("http://127.0.0.1:{}", r.hook_port);
    let path = dir.join("provisio.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[plugins.scim]
path = "{plugin}"
sha256 = "{sha}"
[secrets.tok]
env = "SVC_TOKEN"
hosts = ["{origin}"]
[secrets.hook]
env = "HOOK_KEY"
hosts = ["{hook_origin}"]
[secrets.smtp]
env = "SMTP_PASSWORD"
hosts = ["https://smtp.invalid"]
[sources.d]
path = "directory.json"
[connections.svc]
plugin = "scim"
source = "d"
settings = {{ base_url = "{base}" }}
secrets = {{ token = "tok" }}
allowed_hosts = ["{origin}"]
{extra}

[notifications]
webhook = {{ url = "{hook_origin}/hook", secret = "hook" }}
email = {{ smtp_host = "127.0.0.1", smtp_port = {smtp_port}, tls = "none", from = "Provisio <provisio@example.com>", to = ["ops@example.com", "oncall@example.com"], username = "provisio", password_secret = "smtp" }}
"#,
            plugin = plugin.display(),
            smtp_port = r.smtp.port,
        ),
    )
    .unwrap();
    path
}

/// `provisio run --once`; returns stderr, failing the test if the run failed.
fn run_once(cfg: &std::path::Path, token: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_provisio"))
        .arg("--config")
        .arg(cfg)
        .args(["run", "--once"])
        .env("SVC_TOKEN", token)
        .env("HOOK_KEY", HOOK_KEY)
        .env("SMTP_PASSWORD", SMTP_PASSWORD)
        .env("PROVISIO_LOG", "debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    for secret in [SMTP_PASSWORD, HOOK_KEY, token] {
        assert!(
            !stderr.contains(secret),
            "a secret leaked into the log:\n{stderr}"
        );
    }
    stderr
}

fn verify_signature(h: &Hook) {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(HOOK_KEY.as_bytes()).unwrap();
    mac.update(&h.body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(h.signature, want, "the webhook signature must verify");
    assert!(!String::from_utf8_lossy(&h.body).contains(HOOK_KEY));
}

fn events(hooks: &[Hook]) -> Vec<String> {
    hooks
        .iter()
        .map(|h| h.json()["event"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn quarantine_notifies_once_across_restarts() {
    let r = Receivers::start();
    let server = scim_server::start("svc-token-right-1234");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("directory.json"), directory(2, true)).unwrap();
    let cfg = config(dir.path(), &server, &r, "");

    let first = run_once(&cfg, "svc-token-wrong-0000");
    assert!(
        first.contains("in quarantine (credentials rejected: "),
        "{first}"
    );
    let hooks = r.hooks();
    assert_eq!(events(&hooks), ["cycle_failed", "quarantined"], "{first}");
    let failed = hooks[0].json();
    assert_eq!(failed["connection"], "svc");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .starts_with("credentials rejected: "),
        "{failed}"
    );
    // The first 401 stops the cycle: the object in flight failed, the
    // other was not tried.
    assert!(
        failed["counts"]["user create failure"]
            .as_u64()
            .is_some_and(|n| (1..=2).contains(&n)),
        "{failed}"
    );
    assert!(failed["cycle_id"].as_str().is_some_and(|c| !c.is_empty()));
    let q = hooks[1].json();
    assert_eq!(q["connection"], "svc");
    assert_eq!(q["failed_cycles"], 1);
    assert!(q["next_attempt"].as_str().unwrap() > q["time"].as_str().unwrap());
    for h in &hooks {
        verify_signature(h);
    }
    let mails = r.smtp.mails();
    assert_eq!(mails.len(), 2, "{first}");
    for m in &mails {
        assert_eq!(m.from, "provisio@example.com");
        assert_eq!(m.to, ["ops@example.com", "oncall@example.com"]);
        assert_eq!(
            m.auth,
            Some(("provisio".to_string(), SMTP_PASSWORD.to_string())),
            "the client authenticates with the configured password"
        );
    }
    let text: Vec<String> = mails.iter().map(|m| unquote(&m.data)).collect();
    assert!(
        text[0].contains("cycle failed (credentials rejected: "),
        "{}",
        text[0]
    );
    assert!(
        text[1].contains("Subject: [provisio] connection 'svc' in quarantine"),
        "{}",
        text[1]
    );
    assert!(text[1].contains("failed_cycles: 1"), "{}", text[1]);

    // The failed objects now wait in escrow, so the next cycle would skip
    // them; `provisio restart` empties the escrow and the restarted service
    // fails again at once: nothing is sent a second time.
    let mut transcript = String::new();
    common::expect_ok(
        &["restart", "svc"],
        common::provisio(&cfg, &[], &["restart", "svc"], &mut transcript),
    );
    let second = run_once(&cfg, "svc-token-wrong-0000");
    assert!(second.contains("in quarantine"), "{second}");
    assert_eq!(r.hooks().len(), 2, "{second}");
    assert_eq!(r.smtp.mails().len(), 2, "{second}");
    assert_eq!(
        second
            .matches("notification not sent: the same was sent within the de-duplication window")
            .count(),
        4,
        "two events on two channels:\n{second}"
    );
    assert_eq!(server_users(&server), 0);
}

fn server_users(server: &scim_server::ScimServer) -> u64 {
    server.get("/Users")["totalResults"].as_u64().unwrap_or(0)
}

#[test]
fn staged_deletions_notify_once() {
    let r = Receivers::start();
    let token = "svc-token-right-5678";
    let server = scim_server::start(token);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("directory.json"), directory(4, true)).unwrap();
    let cfg = config(dir.path(), &server, &r, "deletion_threshold = 2");

    let first = run_once(&cfg, token);
    assert_eq!(server_users(&server), 4, "{first}");
    assert!(r.hooks().is_empty(), "a good cycle notifies nothing");
    assert!(r.smtp.mails().is_empty());

    // Every user unassigned: 4 disables > threshold 2, all held.
    std::fs::write(dir.path().join("directory.json"), directory(4, false)).unwrap();
    let second = run_once(&cfg, token);
    let hooks = r.hooks();
    assert_eq!(events(&hooks), ["staged_deletions"], "{second}");
    let p = hooks[0].json();
    assert_eq!(p["connection"], "svc");
    assert_eq!(p["count"], 4, "{p}");
    let sample: Vec<&str> = p["sample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(sample.len(), 4, "{p}");
    assert!(
        sample.iter().all(|s| s.starts_with("disable user n")),
        "{p}"
    );
    verify_signature(&hooks[0]);
    let mails = r.smtp.mails();
    assert_eq!(mails.len(), 1, "{second}");
    let text = unquote(&mails[0].data);
    assert!(
        text.contains("4 disables/deletes held for review"),
        "{text}"
    );
    assert!(text.contains("provisio staged list svc"), "{text}");

    // The next cycle holds the same actions again: no second notification.
    let third = run_once(&cfg, token);
    assert!(third.contains("notification not sent"), "{third}");
    assert_eq!(r.hooks().len(), 1, "{third}");
    assert_eq!(r.smtp.mails().len(), 1, "{third}");
    assert_eq!(server_users(&server), 4, "nothing was disabled or deleted");
}

/// A cycle that did not fail as a whole but left an object in escrow
/// notifies "objects waiting for retry" (count, next attempt, a sample with
/// the last error), once: the next cycle, which skips the object, sends
/// nothing new.
#[test]
fn objects_waiting_in_escrow_notify_once() {
    let r = Receivers::start();
    let token = "svc-token-wait-9012";
    let server = scim_server::start(token);
    // The proxy serves from its own runtime's worker threads.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt.block_on(faulty_proxy::start(
        server.origin(),
        faulty_proxy::Faults {
            reject_body_containing: Some("n3@example.com"),
            ..Default::default()
        },
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("directory.json"), directory(4, true)).unwrap();
    let cfg = config_at(dir.path(), &proxy.url, &format!("{}/v2", proxy.url), &r, "");
    let first = run_once(&cfg, token);
    assert_eq!(server_users(&server), 3, "{first}");
    let hooks = r.hooks();
    assert_eq!(events(&hooks), ["objects_waiting"], "{first}");
    let p = hooks[0].json();
    assert_eq!(p["count"], 1, "{p}");
    assert!(
        p["next_attempt"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{p}"
    );
    let sample = p["sample"][0].as_str().unwrap_or_default();
    assert!(
        sample.starts_with("user n3 after 1 attempt(s) (InvalidInput"),
        "{p}"
    );
    verify_signature(&hooks[0]);
    let mails = r.smtp.mails();
    assert_eq!(mails.len(), 1, "{first}");
    let text = unquote(&mails[0].data);
    assert!(text.contains("1 objects waiting for retry"), "{text}");

    let second = run_once(&cfg, token);
    assert_eq!(
        r.hooks().len(),
        1,
        "the same wait is not notified again: {second}"
    );
    assert_eq!(r.smtp.mails().len(), 1, "{second}");
}
