//! Secrets: placements, login exchanges, derived secrets, scrubbing of every
//! encoding, refusal of any request carrying a secret the connector wrote.
//! Each attack runs beside a well-behaved connection that keeps working.

use super::*;
use common::{FIXTURE_SESSION, find_secret_form, secret_forms};

/// Every secret the World's connections hold.
const ALL: [&str; 4] = [TOKEN, TOKEN2, PASSWORD, FIXTURE_SESSION];

/// The behaviours that report what the guest read return it reversed (so
/// the host's redaction of the result cannot hide it); read it forwards.
fn unreverse(text: String) -> String {
    text.chars().rev().collect()
}

fn assert_clean(what: &str, text: &str) {
    if let Some(form) = find_secret_form(text, &ALL) {
        panic!("{what} carries the {form}:\n{text}");
    }
}

#[tokio::test]
async fn a_secret_is_never_placed_in_a_body_or_an_undeclared_header() {
    let w = world().await;
    let m = denied(w.run("body-secret").await);
    assert!(m.contains("may not be placed in a request body"), "{m}");
    assert!(m.contains("login exchange"), "says how to do it: {m}");
    let m = denied(w.run("url-secret-header").await);
    assert!(m.contains("header 'X-Other'"), "{m}");
    assert!(m.contains("allowed: bearer, header:X-Token"), "{m}");
    assert!(
        w.a.requests().iter().all(|r| r.path != "/store"),
        "nothing was sent"
    );
    w.assert_healthy("body-secret").await;
}

#[tokio::test]
async fn a_stored_secret_read_back_later_is_scrubbed() {
    let w = world().await;
    for behaviour in ["readback", "readback-second-secret", "see-other"] {
        let got = unreverse(w.run(behaviour).await.unwrap());
        // The bound origin did store the real value...
        assert!(
            w.a.requests()
                .iter()
                .any(|r| r.headers.iter().any(|(k, v)| k == "x-token" && v == TOKEN)),
            "{behaviour}: the token reached its bound origin"
        );
        // ...but the guest read it back scrubbed, on every hop.
        assert_clean(behaviour, &got);
        assert!(got.contains("[REDACTED]"), "{behaviour}: {got}");
        w.assert_healthy(behaviour).await;
    }
}

#[tokio::test]
async fn every_encoding_of_a_secret_is_scrubbed_from_responses() {
    let w = world().await;
    let got = unreverse(w.run("encodings").await.unwrap());
    let forms = secret_forms(TOKEN);
    assert!(forms.len() >= 8, "{forms:?}");
    assert_clean("the /reflect response", &got);
    assert!(
        got.matches("[REDACTED]").count() >= forms.len(),
        "every form was redacted, the header too: {got}"
    );
    w.assert_healthy("encodings").await;
}

#[tokio::test]
async fn a_secret_the_guest_got_anyway_cannot_leave() {
    let (logs, _guard) = capture_logs();
    let w = world().await;
    // The fixture hands the guest the token reversed: a form no scrubber
    // knows, so the guest now holds the plaintext. Every way out is shut.
    let conn = w.conn("reversed-leak", test_limits());
    let got = conn.test_connection().await.unwrap();
    assert!(
        got.starts_with("denied,denied,denied |"),
        "URL, header and split body to another origin refused: {got}"
    );
    assert!(w.b.requests().is_empty(), "nothing reached origin B");
    assert_clean("the test-connection message", &got);
    assert_clean("the logs", &logs.text());
    w.assert_healthy("reversed-leak").await;
}

#[tokio::test]
async fn a_login_exchange_places_the_password_and_keeps_the_session() {
    let w = world().await;
    let got = unreverse(w.run("login").await.unwrap());
    assert!(
        got.starts_with(
            "login 200 captured [\"session\"] derived [\"session\"] whoami 200 after-forget []"
        ),
        "{got}"
    );
    // The host built the login body with the real password...
    let login =
        w.a.requests()
            .into_iter()
            .find(|r| r.path == "/login")
            .unwrap();
    let body: serde_json::Value = serde_json::from_str(&login.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"user": "misbehave", "password": PASSWORD})
    );
    // ...the session reached the bound origin in the declared header...
    let who =
        w.a.requests()
            .into_iter()
            .find(|r| r.path == "/whoami")
            .unwrap();
    assert!(
        who.headers
            .iter()
            .any(|(k, v)| k == "authorization" && *v == format!("Session {FIXTURE_SESSION}"))
    );
    // ...and neither the password (echoed back by /login), nor the session
    // (in the body, the cookie and /whoami's answer) reached the guest.
    assert_clean("what the guest read", &got);
    w.assert_healthy("login").await;
}

#[tokio::test]
async fn login_and_derived_secrets_stay_on_their_origins_and_paths() {
    let w = world().await;
    let m = denied(w.run("login-elsewhere").await);
    assert!(m.contains("may not be sent to"), "{m}");
    let m = denied(w.run("login-wrong-path").await);
    assert!(m.contains("path ending in '/login'"), "{m}");
    let m = denied(w.run("derived-elsewhere").await);
    assert!(m.contains("secret 'session' may not be sent to"), "{m}");
    assert!(
        w.b.requests().is_empty(),
        "neither the password nor the session reached origin B"
    );
    w.assert_healthy("login-elsewhere").await;
}

#[tokio::test]
async fn a_login_placement_needs_the_operators_confirmation() {
    let w = world().await;
    let spec = provisio::runtime::ConnectionSpec {
        name: "unconfirmed".into(),
        settings: BTreeMap::from([
            ("behaviour".to_string(), "ok".to_string()),
            ("url".to_string(), w.a.url.clone()),
        ]),
        allowed_hosts: vec![HostPattern::parse(&w.a.url).unwrap()],
        private_hosts: vec![],
        secrets: BTreeMap::from([(
            "password".to_string(),
            Arc::new(Secret {
                name: "pw".into(),
                value: SecretValue::new(PASSWORD.into()),
                bound_to: vec![HostPattern::parse(&w.a.url).unwrap()],
            }),
        )]),
        secret_placements: BTreeMap::new(),
        limits: test_limits(),
    };
    let e = w
        .runtime
        .connect(w.plugin.clone(), spec.clone())
        .unwrap_err()
        .to_string();
    assert!(e.contains("login exchange 'login'"), "{e}");
    assert!(
        e.contains(r#"placements = ["login:login"]"#),
        "says how: {e}"
    );
    let spec = provisio::runtime::ConnectionSpec {
        secret_placements: BTreeMap::from([("password".to_string(), vec![Placement::Bearer])]),
        ..spec
    };
    let e = w
        .runtime
        .connect(w.plugin.clone(), spec)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not declare"), "{e}");
}

/// The start of a `provisio.toml` for the binary-level tests: state in
/// `state/`, the pinned misbehave plugin, the token bound to origin `a`.
fn binary_config_head(a: &str) -> String {
    let (plugin_path, sha) = common::pinned("provisio_test_misbehave");
    format!(
        r#"[runtime]
state_dir = "state"

[plugins.misbehave]
path = {plugin:?}
sha256 = "{sha}"

[secrets.tok]
value = "{TOKEN}"
hosts = ["{a}"]
"#,
        plugin = plugin_path.display().to_string(),
    )
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_binary_leaks_no_secret_to_any_output_or_state_file() {
    // The whole secrets class through `provisio` itself, trace logs on, in
    // text and JSON: afterwards every byte it printed and every file of its
    // state directory (SQLite database, -wal, -shm, plugin cache) is searched
    // for every secret in every encoding.
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let behaviours = [
        "ok",
        "echo-secret",
        "body-secret",
        "readback",
        "readback-second-secret",
        "see-other",
        "encodings",
        "reversed-leak",
        "login",
        "login-elsewhere",
        "derived-elsewhere",
    ];
    let a = &w.a.url;
    let b = &w.b.url;
    let mut config = binary_config_head(a);
    config.push_str(&format!(
        r#"
[secrets.tok2]
value = "{TOKEN2}"
hosts = ["{a}"]

[secrets.pw]
value = {pw}
hosts = ["{a}"]
"#,
        pw = toml::Value::String(PASSWORD.to_string()),
    ));
    for beh in behaviours {
        config.push_str(&format!(
            r#"
[connections.{name}]
plugin = "misbehave"
settings = {{ behaviour = "{beh}", url = "{a}", other_url = "{b}" }}
secrets = {{ token = "tok", token2 = "tok2", password = {{ secret = "pw", placements = ["login:login"] }} }}
allowed_hosts = ["{a}", "{b}"]
"#,
            name = beh.replace('-', "_"),
        ));
    }
    let path = dir.path().join("provisio.toml");
    std::fs::write(&path, config).unwrap();
    let mut transcript = String::new();
    let mut outcomes = Vec::new();
    for beh in behaviours {
        for format in ["text", "json"] {
            let name = beh.replace('-', "_");
            let path = path.clone();
            let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
                let mut t = String::new();
                common::provisio(
                    &path,
                    &[("PROVISIO_LOG", "trace")],
                    &["--log-format", format, "test-connection", &name],
                    &mut t,
                )
            })
            .await
            .unwrap();
            outcomes.push(format!("{beh}/{format}: {ok}"));
            transcript.push_str(&stdout);
            transcript.push_str(&stderr);
        }
    }
    assert!(
        outcomes.contains(&"login/text: true".to_string())
            && outcomes.contains(&"ok/json: true".to_string()),
        "{outcomes:?}\n{transcript}"
    );
    assert!(transcript.contains("egress"), "trace logs were written");
    assert_clean("what provisio printed", &transcript);
    let files = files_under(&dir.path().join("state"));
    assert!(
        !files.is_empty(),
        "the state directory holds the plugin cache"
    );
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert_clean(&f.display().to_string(), &String::from_utf8_lossy(&bytes));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thief_connector_in_a_real_sync_gets_no_secret_into_the_store_logs_or_output() {
    // The `thief` holds the token's plaintext (its bound origin hands it
    // back reversed) and, through a whole `provisio sync` of seven users,
    // tries every way into what the host keeps and prints: the object id
    // (raw, base64), attribute names and values, error messages (raw, hex,
    // base64), a conflict's existing id, log lines and fields, kv. Then
    // `provisio logs` (text, JSON, CSV) and `status` print what was kept.
    // Every byte printed and every state file (database, -wal, -shm, plugin
    // cache), read forwards and backwards, is searched for every form.
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let users: Vec<serde_json::Value> = (1..=7)
        .map(|i| serde_json::json!({"id": format!("s{i}"), "userPrincipalName": format!("s{i}@example.com"), "displayName": format!("S {i}"), "accountEnabled": true}))
        .collect();
    std::fs::write(
        dir.path().join("directory.json"),
        serde_json::json!({"users": users, "groups": [], "assignments": []}).to_string(),
    )
    .unwrap();
    let a = &w.a.url;
    let mut config = binary_config_head(a);
    config.push_str(&format!(
        r#"
[sources.d]
path = "directory.json"

[connections.thief]
plugin = "misbehave"
source = "d"
settings = {{ behaviour = "thief", url = "{a}" }}
secrets = {{ token = "tok" }}
allowed_hosts = ["{a}"]
concurrency = 1
[connections.thief.scope]
assigned_only = false
[[connections.thief.mappings.users]]
target = "userName"
source = "userPrincipalName"
matching_precedence = 1
[[connections.thief.mappings.users]]
target = "displayName"
source = "displayName"
"#,
    ));
    let path = dir.path().join("provisio.toml");
    std::fs::write(&path, config).unwrap();
    let mut transcript = String::new();
    let mut run = |args: &'static [&'static str]| {
        let path = path.clone();
        let mut t = String::new();
        let r = common::provisio(&path, &[("PROVISIO_LOG", "trace")], args, &mut t);
        transcript.push_str(&t);
        r
    };
    let (_, summary, err) = run(&["sync", "thief", "--json"]);
    let summary: serde_json::Value = serde_json::from_str(&summary)
        .unwrap_or_else(|e| panic!("sync printed no summary ({e}):\n{err}"));
    assert_eq!(
        summary["failures"], 7,
        "every user failed: {summary}\n{err}"
    );
    assert!(
        err.contains("carries a secret value the connection holds"),
        "the refusals say why:\n{err}"
    );
    // Text and JSON logs of the host, and every reading of the store.
    let _ = run(&["--log-format", "json", "sync", "thief", "--json"]);
    for args in [
        &["logs"][..],
        &["logs", "--format", "json"],
        &["logs", "--format", "csv"],
        &["status", "thief"],
        &["status", "thief", "--json"],
    ] {
        let (ok, _, err) = {
            let path = path.clone();
            let mut t = String::new();
            let r = common::provisio(&path, &[], args, &mut t);
            transcript.push_str(&t);
            r
        };
        assert!(ok, "{args:?}: {err}");
    }
    // The plaintext really was in the guest, and the thief really tried.
    assert!(
        w.a.requests()
            .iter()
            .filter(|r| r.path == "/reversed")
            .count()
            >= 7,
        "the thief fetched the token"
    );
    assert!(transcript.contains("[REDACTED]"), "{transcript}");
    assert!(
        transcript.contains("the conflict's existing id"),
        "{transcript}"
    );
    let backwards = |t: &str| t.chars().rev().collect::<String>();
    assert_clean("what provisio printed", &transcript);
    assert_clean("what provisio printed, backwards", &backwards(&transcript));
    let files = files_under(&dir.path().join("state"));
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "db")),
        "the store was written: {files:?}"
    );
    for f in files {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        assert_clean(&f.display().to_string(), &text);
        assert_clean(&format!("{} backwards", f.display()), &backwards(&text));
    }
}
