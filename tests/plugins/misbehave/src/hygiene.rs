//! Behaviours of the hygiene class (see the crate README): guest strings
//! built to forge log records and act on the operator's terminal, and a flood
//! of denied requests aimed at the audit trail.

#[allow(unused_imports)]
use crate::*;

/// A forged audit record, on a line of its own after a newline.
pub(crate) const FORGED_AUDIT: &str = "innocent\n2025-01-01T00:00:00.000000Z  INFO provisio::audit: egress connection=\"conn-log-inject\" decision=\"allowed\" method=\"GET\" origin=https://evil.example.com path=\"/exfil\" status=200";

/// Terminal control: retitle the window, erase the line, go back to its
/// start, print a fake success in green, hide what follows, reverse the text.
pub(crate) const ANSI: &str =
    "\x1b]0;owned\x07\x1b[2K\r\x1b[32m✓ export success\x1b[0m\x1b[8mhidden\u{202e}txt.exe";

/// Denied requests `audit-flood` makes.
pub(crate) const FLOOD_REQUESTS: u32 = 20_000;

/// A setting whose description, printed by `plugin inspect` after the
/// declared hosts, moves the cursor up and erases them (shown escaped by the
/// host), with a declared host it would hide. Nothing sets it, so the host
/// pattern allows nothing.
pub(crate) fn probe_setting() -> SettingSpec {
    setting(
        "hygiene_probe",
        "inspect probe\x1b[3A\x1b[J\r\u{202e}nothing to see",
        false,
    )
}

/// The declared host [`probe_setting`] tries to hide.
pub(crate) const PROBE_HOST: &str = "https://{hygiene_probe}.exfil.invalid";

/// Runs `behaviour` if it belongs to this class.
pub(crate) fn run(behaviour: &str) -> Option<Result<String, ConnectorError>> {
    match behaviour {
        "log-inject" => Some(Ok(log_inject())),
        "ansi-error" => Some(Err(ConnectorError::Other(format!(
            "failed {ANSI}\n{FORGED_AUDIT}"
        )))),
        "ansi-ok" => Some(Ok(format!("fine {ANSI}\r\nexport success"))),
        "audit-flood" => Some(audit_flood()),
        "audit-inject" => Some(audit_inject()),
        _ => None,
    }
}

/// A log record whose message forges a second record, and fields full of
/// terminal control.
fn log_inject() -> String {
    log::emit(
        log::Level::Info,
        FORGED_AUDIT,
        &[
            (format!("step{ANSI}"), format!("done{ANSI}")),
            ("decision".to_string(), "\"allowed\"".to_string()),
        ],
    );
    "injected".into()
}

/// Many denied requests in one call (an ungranted host costs the guest
/// nothing), each with an escape-laden path.
fn audit_flood() -> Result<String, ConnectorError> {
    let mut denied = 0u32;
    for i in 0..FLOOD_REQUESTS {
        let req = request(
            Method::Get,
            format!("https://evil.example.com/flood/{i}/\x1b[2K\u{202e}"),
        );
        match http::send(&req) {
            Err(HttpError::Denied(_)) => denied += 1,
            Ok(_) => return Ok("LEAK: request to ungranted host succeeded".into()),
            Err(e) => return Err(map_http_error(e)),
        }
    }
    Ok(format!("denied {denied}"))
}

/// A denied request whose reason quotes guest text: a secret name holding a
/// forged audit record, terminal control and 8 KB of padding.
fn audit_inject() -> Result<String, ConnectorError> {
    let mut req = request(Method::Get, url_from("url", "/echo")?);
    req.headers.push(Header {
        name: "X-Api-Key".into(),
        value: vec![secret(&format!("{FORGED_AUDIT}{ANSI}{}", "x".repeat(8192)))],
    });
    match http::send(&req) {
        Err(HttpError::Denied(_)) => Ok("denied".into()),
        Ok(_) => Ok("LEAK: an ungranted secret was sent".into()),
        Err(e) => Err(map_http_error(e)),
    }
}
