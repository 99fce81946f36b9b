//! Behaviours of the egress class (see the crate README).
//!
//! They take their argument after a colon in the behaviour name, so one
//! behaviour covers a family of URLs or headers:
//!
//! - `egress-get:<path>`: GET `{url}<path>`, the path exactly as given;
//! - `egress-url:<url>`: GET `<url>` exactly as given;
//! - `egress-header:<name>`: GET `{url}/ping` with the header `<name>: 10.0.0.1`.
//!
//! Each answers `Ok("status <n>")` when the host sent the request, so a test
//! expecting a refusal fails showing that the request went out.

use crate::*;

/// Runs `behaviour` if it belongs to this class.
pub(crate) fn run(behaviour: &str) -> Option<Result<String, ConnectorError>> {
    let (name, arg) = behaviour.split_once(':')?;
    match name {
        "egress-get" => Some(url_from("url", arg).and_then(|u| get(u, None))),
        "egress-url" => Some(get(arg.to_string(), None)),
        "egress-header" => Some(url_from("url", "/ping").and_then(|u| get(u, Some(arg)))),
        _ => None,
    }
}

/// GET `url`, with `header: 10.0.0.1` when given; the status on success.
fn get(url: String, header: Option<&str>) -> Result<String, ConnectorError> {
    let mut req = request(Method::Get, url);
    if let Some(name) = header {
        req.headers.push(Header {
            name: name.into(),
            value: vec![text("10.0.0.1")],
        });
    }
    let resp = send(&req)?;
    Ok(format!("status {}", resp.status))
}
