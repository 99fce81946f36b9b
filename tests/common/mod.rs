//! Helpers shared by the integration tests: locating the wasm plugins built
//! by `scripts/build-plugins.sh`, capturing logs, and small local HTTP fixtures.

#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Path of a plugin built for wasm32-wasip2 (release). Panics with the fix if missing.
pub fn plugin(file_stem: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let path = target
        .join("wasm32-wasip2/release")
        .join(format!("{file_stem}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the plugins first with `scripts/build-plugins.sh`",
        path.display()
    );
    path
}

/// A log buffer usable as a tracing writer.
#[derive(Clone, Default)]
pub struct LogBuf(pub Arc<Mutex<Vec<u8>>>);

impl LogBuf {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogBuf {
    fn write(&mut self, d: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(d);
        Ok(d.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Capture every log record (trace level and up) of this thread, through the
/// same redacting writer the binary uses.
pub fn capture_logs() -> (LogBuf, tracing::subscriber::DefaultGuard) {
    let buf = LogBuf::default();
    let b2 = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(provisio::telemetry::Redacting(move || b2.clone()))
        .finish();
    let guard = tracing::subscriber::set_default(sub);
    // Callsites first hit under another thread's (or no) subscriber may have
    // cached "never interested"; re-ask them now that this one is in place.
    tracing::callsite::rebuild_interest_cache();
    (buf, guard)
}

/// What a fixture server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// When the request arrived.
    pub at: std::time::Instant,
}

/// A local HTTP server recording every request.
pub struct Fixture {
    pub url: String,
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fixture {
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Start a fixture: `/ping`, `/echo` (echoes headers and body as JSON),
/// `/redirect` (302 to `redirect_to`), `/slow` (sleeps 5 s), `/big` (2 MiB),
/// `/chain/N` (N redirects, then 200).
pub async fn fixture(redirect_to: Option<String>) -> Fixture {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, Uri};
    use axum::response::IntoResponse;

    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let s2 = seen.clone();
    let store: Arc<Mutex<Vec<String>>> = Arc::default();
    let redirect_to = Arc::new(redirect_to);
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let seen = s2.clone();
            let redirect_to = redirect_to.clone();
            let store = store.clone();
            async move {
                let headers: Vec<(String, String)> = headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
                let body = String::from_utf8_lossy(&body).into_owned();
                seen.lock().unwrap().push(Seen {
                    method: method.to_string(),
                    path: uri.path().to_string(),
                    headers: headers.clone(),
                    body: body.clone(),
                    at: std::time::Instant::now(),
                });
                // ---- secrets class (issue 9): endpoints a hostile target offers.
                let bearer = headers
                    .iter()
                    .find(|(k, _)| k == "authorization")
                    .and_then(|(_, v)| v.strip_prefix("Bearer "))
                    .unwrap_or_default()
                    .to_string();
                match uri.path() {
                    "/store" => {
                        if let Some((_, v)) = headers.iter().find(|(k, _)| k == "x-token") {
                            store.lock().unwrap().push(v.clone());
                        }
                        return "stored".into_response();
                    }
                    "/stored" => return store.lock().unwrap().join(",").into_response(),
                    "/see-other" => {
                        if let Some((_, v)) = headers.iter().find(|(k, _)| k == "x-token") {
                            store.lock().unwrap().push(v.clone());
                        }
                        return (axum::http::StatusCode::SEE_OTHER, [("location", "/stored")])
                            .into_response();
                    }
                    "/reflect" => {
                        let forms: Vec<String> =
                            secret_forms(&bearer).into_iter().map(|(_, f)| f).collect();
                        let header = forms.first().cloned().unwrap_or_default();
                        return (
                            [("x-reflect", header)],
                            forms.join(
                                "
",
                            ),
                        )
                            .into_response();
                    }
                    "/reversed" => {
                        return bearer.chars().rev().collect::<String>().into_response();
                    }
                    "/login" => {
                        return (
                            [("set-cookie", format!("sid={FIXTURE_SESSION}; Path=/"))],
                            axum::Json(serde_json::json!({
                                "sessionId": FIXTURE_SESSION,
                                "echo": body,
                            })),
                        )
                            .into_response();
                    }
                    "/whoami" => {
                        let want = format!("Session {FIXTURE_SESSION}");
                        let ok = headers
                            .iter()
                            .any(|(k, v)| k == "authorization" && *v == want);
                        return if ok {
                            format!("you are misbehave, session {FIXTURE_SESSION}").into_response()
                        } else {
                            (axum::http::StatusCode::UNAUTHORIZED, "no session").into_response()
                        };
                    }
                    _ => {}
                }
                // `/chain/N` redirects to `/chain/N-1`; `/chain/0` answers 200.
                if let Some(n) = uri.path().strip_prefix("/chain/") {
                    return match n.parse::<u32>() {
                        Ok(0) => "end of chain".into_response(),
                        Ok(n) => (
                            axum::http::StatusCode::FOUND,
                            [("location", format!("/chain/{}", n - 1))],
                        )
                            .into_response(),
                        Err(_) => {
                            (axum::http::StatusCode::BAD_REQUEST, "bad chain").into_response()
                        }
                    };
                }
                match uri.path() {
                    "/ping" => "pong".into_response(),
                    "/echo" => axum::Json(serde_json::json!({"headers": headers, "body": body}))
                        .into_response(),
                    "/redirect" => (
                        axum::http::StatusCode::FOUND,
                        [(
                            "location",
                            redirect_to.as_deref().unwrap_or("/ping").to_string(),
                        )],
                    )
                        .into_response(),
                    "/slow" => {
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                        "slow".into_response()
                    }
                    "/big" => vec![b'x'; 2 * 1024 * 1024].into_response(),
                    _ => (axum::http::StatusCode::NOT_FOUND, "no such path").into_response(),
                }
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Fixture {
        url: format!("http://127.0.0.1:{port}"),
        port,
        seen,
    }
}

/// A built plugin's path and the sha256 a config pins it with.
pub fn pinned(file_stem: &str) -> (PathBuf, String) {
    let path = plugin(file_stem);
    let sha = provisio::runtime::plugin::sha256_hex(&std::fs::read(&path).unwrap());
    (path, sha)
}

/// Run the `provisio` binary with `--config`, the environment and the
/// arguments; append everything it printed to `transcript`.
pub fn provisio(
    config: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
    transcript: &mut String,
) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_provisio"));
    cmd.arg("--config").arg(config).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    transcript.push_str(&format!(
        "$ provisio {}\n{stdout}{stderr}\n",
        args.join(" ")
    ));
    (out.status.success(), stdout, stderr)
}

/// Write `provisio.toml` in `dir` for the usual test setup: the SCIM plugin,
/// the source `directory.json` in `dir`, and one connection `t` to the SCIM
/// service at `origin` (base URL `{origin}/v2`) with its bearer token from
/// the environment variable `token_env`; `extra` is appended to the
/// connection's table (`concurrency = 4`, `limits = ...`). Returns its path.
pub fn scim_connection_config(
    dir: &std::path::Path,
    origin: &str,
    token_env: &str,
    extra: &str,
) -> PathBuf {
    let (plugin, sha) = pinned("provisio_plugin_scim");
    let config = dir.join("provisio.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[plugins.scim]
path = "{}"
sha256 = "{sha}"
[secrets.tok]
env = "{token_env}"
hosts = ["{origin}"]
[sources.d]
path = "directory.json"
[connections.t]
plugin = "scim"
source = "d"
settings = {{ base_url = "{origin}/v2" }}
secrets = {{ token = "tok" }}
allowed_hosts = ["{origin}"]
{extra}
"#,
            plugin.display(),
        ),
    )
    .unwrap();
    config
}

/// Run the `provisio` binary with `--config` and the environment, off the
/// async runtime: its exit code, stdout and stderr.
pub async fn provisio_exit(
    config: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_provisio"));
    cmd.arg("--config").arg(config).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The JSON (or text) a run printed; fails the test, showing stderr, if it failed.
pub fn expect_ok(args: &[&str], (ok, stdout, stderr): (bool, String, String)) -> serde_json::Value {
    assert!(ok, "provisio {args:?} failed:\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or(serde_json::Value::String(stdout))
}

/// The stderr of a run that must fail.
pub fn expect_failure(args: &[&str], (ok, _, stderr): (bool, String, String)) -> String {
    assert!(!ok, "provisio {args:?} should have failed");
    stderr
}

/// Poll `f` every 200 ms until it holds; fail the test naming `what` after `limit`.
pub fn wait_for(what: &str, limit: std::time::Duration, mut f: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The session id the fixture's `/login` hands out.
pub const FIXTURE_SESSION: &str = "fixture-session-5b1e0c7d9a";

/// Every encoding of `secret` the host promises to scrub and refuse: raw,
/// JSON-escaped (also every char as `\uXXXX`), percent-encoded, base64
/// (standard and URL, padded or not, alone and after a prefix), hex,
/// upper and lower case.
pub fn secret_forms(secret: &str) -> Vec<(&'static str, String)> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    if secret.is_empty() {
        return Vec::new();
    }
    let json = serde_json::to_string(secret).unwrap();
    let all_u: String = secret
        .encode_utf16()
        .map(|u| format!("\\u{u:04x}"))
        .collect();
    let pct: String = secret.bytes().map(|b| format!("%{b:02X}")).collect();
    let mut forms = vec![
        ("raw", secret.to_string()),
        ("json", json.trim_matches('"').to_string()),
        ("json-all-u", all_u),
        ("percent-all", pct),
        ("base64", STANDARD.encode(secret)),
        ("base64-nopad", STANDARD_NO_PAD.encode(secret)),
        ("base64url", URL_SAFE.encode(secret)),
        ("base64url-nopad", URL_SAFE_NO_PAD.encode(secret)),
        ("base64-prefixed", STANDARD.encode(format!("user:{secret}"))),
        ("hex", hex::encode(secret)),
        ("hex-upper", hex::encode_upper(secret)),
        ("upper", secret.to_uppercase()),
        ("lower", secret.to_lowercase()),
    ];
    forms.dedup_by(|a, b| a.1 == b.1);
    forms
}

/// The first encoding of any of `secrets` found in `text`, if any.
pub fn find_secret_form(text: &str, secrets: &[&str]) -> Option<String> {
    for s in secrets {
        for (label, form) in secret_forms(s) {
            if text.contains(&form) {
                return Some(format!("{label} of a secret ({form})"));
            }
        }
    }
    None
}
