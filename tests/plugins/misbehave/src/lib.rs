//! `misbehave`: an adversarial connector plugin for the host's sandbox tests.
//!
//! Every misbehaviour is triggered by `test-connection` and chosen by the
//! connection setting `behaviour`. The plugin uses the raw `wit-bindgen`
//! bindings of the `provisio:connector@0.2.0` contract (no SDK), so that it
//! can do things a well-behaved SDK would never let it do.
//!
//! See `README.md` next to this crate for the list of behaviours and what
//! each one proves about the host.

use std::hint::black_box;

// One module per class of attack (issue 9): each answers the behaviours it
// knows and `None` for the others.
mod budget;
mod egress;
mod hygiene;
mod resources;
mod secrets;
mod thief;

/// Raw bindings generated from `wit/connector.wit` (world `plugin`).
#[allow(
    unsafe_code,
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used
)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "plugin",
    });

    use super::Misbehave;
    export!(Misbehave with_types_in self);
}

use bindings::exports::provisio::connector::connector::Guest;
use bindings::provisio::connector::http::{
    self, Auth, Header, HttpError, Method, Request, Segment,
};
use bindings::provisio::connector::types::{
    Attribute, BodyFormat, Capability, CaptureSource, ConnectorError, DerivedSecret, LoginExchange,
    LoginField, LoginValue, Manifest, ObjectKind, Page, SecretPlacement, SecretSpec, SettingSpec,
    TargetObject,
};
use bindings::provisio::connector::{config, kv, log};

/// The message every unimplemented export returns.
const UNSUPPORTED: &str = "misbehave plugin only implements test-connection";

/// The connector component exported to the host.
pub struct Misbehave;

impl Guest for Misbehave {
    fn describe() -> Manifest {
        Manifest {
            name: "misbehave".into(),
            version: "0.1.0".into(),
            description: "Adversarial test plugin: misbehaves in test-connection on purpose, \
                          as chosen by the `behaviour` setting."
                .into(),
            vendor: "provisio tests".into(),
            capabilities: vec![Capability::Users],
            settings: vec![
                setting(
                    "behaviour",
                    "Which misbehaviour test-connection performs",
                    true,
                ),
                setting("url", "Base URL of the local test HTTP server", true),
                setting(
                    "other_url",
                    "A second granted origin the `token` secret is not bound to",
                    false,
                ),
                hygiene::probe_setting(),
            ],
            secrets: vec![
                SecretSpec {
                    name: "token".into(),
                    description: "A bearer token the plugin tries to leak".into(),
                    required: false,
                    placements: vec![
                        SecretPlacement::Bearer,
                        SecretPlacement::Header("X-Token".into()),
                    ],
                },
                SecretSpec {
                    name: "token2".into(),
                    description: "A second token, bound to the same origin".into(),
                    required: false,
                    placements: vec![],
                },
                SecretSpec {
                    name: "password".into(),
                    description: "A password sent only in the `login` exchange's body".into(),
                    required: false,
                    placements: vec![SecretPlacement::Login("login".into())],
                },
            ],
            hosts: vec![
                "{url}".into(),
                "{other_url}".into(),
                hygiene::PROBE_HOST.into(),
            ],
            user_mappings: Vec::new(),
            group_mappings: Vec::new(),
            logins: vec![LoginExchange {
                name: "login".into(),
                description: "Fixture login: posts the password, captures the session".into(),
                path_suffix: "/login".into(),
                body_format: BodyFormat::Json,
                fields: vec![
                    LoginField {
                        name: "user".into(),
                        value: LoginValue::Text("misbehave".into()),
                    },
                    LoginField {
                        name: "password".into(),
                        value: LoginValue::Secret("password".into()),
                    },
                ],
                captures: vec![DerivedSecret {
                    name: "session".into(),
                    description: "The fixture's session id".into(),
                    source: CaptureSource::JsonPointer("/sessionId".into()),
                    ttl_seconds: 60,
                    placements: vec![SecretPlacement::Header("Authorization".into())],
                }],
            }],
        }
    }

    fn test_connection() -> Result<String, ConnectorError> {
        let behaviour = config::get("behaviour")
            .ok_or_else(|| ConnectorError::InvalidInput("setting 'behaviour' is not set".into()))?;
        match behaviour.as_str() {
            "ok" => ok(),
            "spin" => spin(),
            "memory-bomb" => memory_bomb(),
            "recursion" => Ok(format!("depth {}", recurse(0))),
            "panic" => panic!("deliberate panic from misbehave plugin"),
            "ungranted-host" => ungranted_host(),
            "redirect" => redirect(),
            "ungranted-secret" => ungranted_secret(),
            "secret-to-unbound-host" => secret_to_unbound_host(),
            "echo-secret" => echo_secret(),
            "log-flood" => Ok(log_flood()),
            "stdio" => Ok(stdio()),
            "slow" => slow(),
            "ambient" => Ok(ambient()),
            "kv" => Ok(kv_roundtrip()),
            "big-response" => big_response(),
            other => budget::run(other)
                .or_else(|| egress::run(other))
                .or_else(|| hygiene::run(other))
                .or_else(|| resources::run(other))
                .or_else(|| secrets::run(other))
                .unwrap_or_else(|| {
                    Err(ConnectorError::InvalidInput(format!(
                        "unknown behaviour '{other}'"
                    )))
                }),
        }
    }

    fn find(_kind: ObjectKind, _attribute: Attribute) -> Result<Vec<TargetObject>, ConnectorError> {
        if thief::active() {
            return thief::find();
        }
        unsupported()
    }

    /// Trivial for users (used by the per-call overhead benchmark).
    fn get(kind: ObjectKind, id: String) -> Result<TargetObject, ConnectorError> {
        if let Some(r) = resources::get(&id) {
            return r;
        }
        if thief::active() {
            return thief::get(&id);
        }
        match kind {
            ObjectKind::User => Ok(TargetObject {
                id,
                attributes: Vec::new(),
            }),
            ObjectKind::Group => unsupported(),
        }
    }

    fn create(
        _kind: ObjectKind,
        _attributes: Vec<Attribute>,
    ) -> Result<TargetObject, ConnectorError> {
        if thief::active() {
            return thief::create();
        }
        unsupported()
    }

    fn update(
        _kind: ObjectKind,
        _id: String,
        _changes: Vec<Attribute>,
    ) -> Result<(), ConnectorError> {
        unsupported()
    }

    fn disable(_kind: ObjectKind, _id: String) -> Result<(), ConnectorError> {
        unsupported()
    }

    fn enable(_kind: ObjectKind, _id: String) -> Result<(), ConnectorError> {
        unsupported()
    }

    fn delete(_kind: ObjectKind, _id: String) -> Result<(), ConnectorError> {
        unsupported()
    }

    fn list(
        _kind: ObjectKind,
        _cursor: Option<String>,
        page_size: u32,
    ) -> Result<Page, ConnectorError> {
        resources::list(page_size).unwrap_or_else(unsupported)
    }

    fn add_members(_group_id: String, _member_ids: Vec<String>) -> Result<(), ConnectorError> {
        unsupported()
    }

    fn remove_members(_group_id: String, _member_ids: Vec<String>) -> Result<(), ConnectorError> {
        unsupported()
    }
}

pub(crate) fn unsupported<T>() -> Result<T, ConnectorError> {
    Err(ConnectorError::Unsupported(UNSUPPORTED.into()))
}

pub(crate) fn setting(name: &str, description: &str, required: bool) -> SettingSpec {
    SettingSpec {
        name: name.into(),
        description: description.into(),
        required,
        default_value: None,
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `{setting}{path}`, with a trailing slash of the setting removed.
pub(crate) fn url_from(setting_name: &str, path: &str) -> Result<String, ConnectorError> {
    let base = config::get(setting_name).ok_or_else(|| {
        ConnectorError::InvalidInput(format!("setting '{setting_name}' is not set"))
    })?;
    Ok(format!("{}{path}", base.trim_end_matches('/')))
}

pub(crate) fn text(s: &str) -> Segment {
    Segment::Text(s.into())
}

pub(crate) fn secret(name: &str) -> Segment {
    Segment::Secret(name.into())
}

pub(crate) fn bearer_token() -> Option<Auth> {
    Some(Auth::Bearer(vec![secret("token")]))
}

pub(crate) fn request(method: Method, url: String) -> Request {
    Request {
        method,
        url,
        headers: Vec::new(),
        auth: None,
        body: None,
    }
}

/// Maps the host's refusal to a connector error: `denied` stays `denied`,
/// `timeout` becomes `transient`, anything else is `other`. The host's
/// message is passed through unchanged.
pub(crate) fn map_http_error(error: HttpError) -> ConnectorError {
    match error {
        HttpError::Denied(msg) => ConnectorError::Denied(msg),
        HttpError::Timeout(msg) => ConnectorError::Transient(msg),
        HttpError::InvalidRequest(msg) | HttpError::Connection(msg) | HttpError::TooLarge(msg) => {
            ConnectorError::Other(msg)
        }
    }
}

pub(crate) fn send(req: &Request) -> Result<http::Response, ConnectorError> {
    http::send(req).map_err(map_http_error)
}

// ---------------------------------------------------------------------------
// Behaviours
// ---------------------------------------------------------------------------

/// The control case: a granted request with a granted, bound secret.
fn ok() -> Result<String, ConnectorError> {
    let mut req = request(Method::Get, url_from("url", "/ping")?);
    req.auth = bearer_token();
    let resp = send(&req)?;
    if (200..300).contains(&resp.status) {
        Ok(format!("ok {}", resp.status))
    } else {
        Err(ConnectorError::Other(format!(
            "GET /ping returned {}",
            resp.status
        )))
    }
}

/// Burns CPU forever; only the host's epoch/fuel deadline can stop it.
fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Allocates and touches 1 MiB chunks forever, keeping all of them alive.
fn memory_bomb() -> ! {
    const CHUNK: usize = 1 << 20;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; CHUNK];
        // Write into every 4 KiB so the memory is really committed.
        for i in (0..CHUNK).step_by(4096) {
            chunk[i] = black_box(1);
        }
        chunks.push(black_box(chunk));
        black_box(&chunks);
    }
}

/// Unbounded non-tail recursion: overflows the guest stack.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    // An exit the optimiser cannot prove unreachable (it never is taken).
    if depth == black_box(u64::MAX) {
        return depth;
    }
    let frame = black_box([depth; 8]);
    let below = recurse(black_box(depth + 1));
    black_box(below.wrapping_add(frame[7]))
}

/// A request to a host that is not in the manifest nor the grant.
fn ungranted_host() -> Result<String, ConnectorError> {
    let req = request(Method::Get, "https://evil.example.com/steal".into());
    send(&req)?;
    Ok("LEAK: request to ungranted host succeeded".into())
}

/// A granted request whose response redirects to an ungranted host.
fn redirect() -> Result<String, ConnectorError> {
    let req = request(Method::Get, url_from("url", "/redirect")?);
    let resp = send(&req)?;
    Ok(format!("status {}", resp.status))
}

/// A granted host, but a secret that was never granted to the connection.
fn ungranted_secret() -> Result<String, ConnectorError> {
    let mut req = request(Method::Get, url_from("url", "/echo")?);
    req.headers.push(Header {
        name: "X-Api-Key".into(),
        value: vec![secret("not-granted")],
    });
    let resp = send(&req)?;
    Ok(format!(
        "LEAK: request with an ungranted secret succeeded (status {})",
        resp.status
    ))
}

/// A granted secret sent to a granted origin it is not bound to.
fn secret_to_unbound_host() -> Result<String, ConnectorError> {
    let mut req = request(Method::Get, url_from("other_url", "/echo")?);
    req.auth = bearer_token();
    let resp = send(&req)?;
    Ok(format!(
        "LEAK: secret sent to a host it is not bound to (status {})",
        resp.status
    ))
}

/// Sends the secret in auth and a declared header to an echo endpoint and
/// returns what the guest got back, so the test can check it was redacted.
fn echo_secret() -> Result<String, ConnectorError> {
    let mut req = request(Method::Post, url_from("url", "/echo")?);
    req.auth = bearer_token();
    req.headers.push(Header {
        name: "Content-Type".into(),
        value: vec![text("application/json")],
    });
    req.headers.push(Header {
        name: "X-Token".into(),
        value: vec![text("tok="), secret("token")],
    });
    req.body = Some(vec![text("{\"hello\":\"world\"}")]);
    let resp = send(&req)?;
    Ok(String::from_utf8_lossy(&resp.body).into_owned())
}

/// 100 000 log records: the host must rate-limit them.
fn log_flood() -> String {
    for i in 0..100_000u32 {
        log::emit(
            log::Level::Info,
            &format!("flood line {i}"),
            &[("i".to_string(), i.to_string())],
        );
    }
    "flooded".into()
}

/// Writes to the guest's stdout and stderr.
fn stdio() -> String {
    println!("hello from guest stdout");
    eprintln!("hello from guest stderr");
    "printed".into()
}

/// A request to an endpoint that answers too late: the host must time out.
fn slow() -> Result<String, ConnectorError> {
    let req = request(Method::Get, url_from("url", "/slow")?);
    let resp = send(&req)?;
    Ok(format!("status {}", resp.status))
}

/// Probes WASI's ambient authority and reports what was available.
fn ambient() -> String {
    let env = std::env::vars().count();
    let args = std::env::args().count();
    let fs = match std::fs::read_to_string("/etc/passwd") {
        Ok(s) => format!("ok({})", s.len()),
        Err(_) => "err".into(),
    };
    let dir = match std::fs::read_dir("/") {
        Ok(entries) => format!("ok({})", entries.count()),
        Err(_) => "err".into(),
    };
    let net = match std::net::TcpStream::connect("127.0.0.1:1") {
        Ok(_) => "ok".to_string(),
        Err(_) => "err".into(),
    };
    let time = match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs().to_string(),
        Err(_) => "before-epoch".into(),
    };
    format!("env={env} args={args} fs={fs} dir={dir} net={net} time={time}")
}

/// Set, read back, delete, read again.
fn kv_roundtrip() -> String {
    fn show(value: Option<Vec<u8>>) -> String {
        match value {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => "none".into(),
        }
    }
    kv::set("k", b"v1", 60);
    let set = show(kv::get("k"));
    kv::delete("k");
    let after_delete = show(kv::get("k"));
    format!("set={set} after-delete={after_delete}")
}

/// A response larger than the host's body cap.
fn big_response() -> Result<String, ConnectorError> {
    let req = request(Method::Get, url_from("url", "/big")?);
    let resp = send(&req)?;
    Ok(format!(
        "status {} with {} body bytes",
        resp.status,
        resp.body.len()
    ))
}
