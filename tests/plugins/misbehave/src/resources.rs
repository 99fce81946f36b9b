//! Behaviours of the resources class (see the crate README): host work the
//! guest triggers for free, calls that hold resources, and results over the
//! host's caps.

use crate::bindings::provisio::connector::types::Value;
use crate::*;
use std::hint::black_box;

/// Runs `behaviour` if it belongs to this class.
pub(crate) fn run(behaviour: &str) -> Option<Result<String, ConnectorError>> {
    Some(match behaviour {
        "host-call-loop" => Ok(host_call_loop()),
        "hold-memory" => hold_memory(),
        "huge-error" => Err(ConnectorError::Other(huge_text(20 << 20))),
        "huge-message" => Ok(huge_text(1 << 20)),
        _ => return None,
    })
}

/// `get` under this class's behaviours; `None` for the others.
pub(crate) fn get(id: &str) -> Option<Result<TargetObject, ConnectorError>> {
    let behaviour = config::get("behaviour")?;
    let object = |id: String, attributes| Some(Ok(TargetObject { id, attributes }));
    match behaviour.as_str() {
        // 10 MiB of id: once stored whole (105 MB of database for 2 users).
        "huge-id" => object("u".repeat(10 << 20), Vec::new()),
        // An id that would clear the screen and start a forged log line.
        "control-id" => object(format!("{id}\u{1b}[2J\nforged"), Vec::new()),
        // More attributes than any object needs.
        "many-attributes" => object(
            id.to_string(),
            (0..5000)
                .map(|i| Attribute {
                    name: format!("a{i}"),
                    value: Value::Integer(i64::from(i)),
                })
                .collect(),
        ),
        // One 2 MiB text value.
        "huge-value" => object(
            id.to_string(),
            vec![Attribute {
                name: "note".into(),
                value: Value::Text("v".repeat(2 << 20)),
            }],
        ),
        _ => None,
    }
}

/// `list` under this class's behaviours; `None` for the others.
pub(crate) fn list(page_size: u32) -> Option<Result<Page, ConnectorError>> {
    let behaviour = config::get("behaviour")?;
    let page = |n: u32, cursor: Option<String>| {
        Some(Ok(Page {
            objects: (0..n)
                .map(|i| TargetObject {
                    id: format!("u-{i}"),
                    attributes: Vec::new(),
                })
                .collect(),
            next_cursor: cursor,
            total: None,
        }))
    };
    match behaviour.as_str() {
        // Far more objects than asked for in one page.
        "huge-page" => page(page_size.max(1) * 100, None),
        // A cursor with a newline and an escape sequence in it.
        "control-cursor" => page(1, Some("next\r\n\u{1b}]0;pwned\u{7}".into())),
        // A well-behaved page, the control case for list.
        "small-page" => page(page_size.min(10), None),
        _ => None,
    }
}

fn huge_text(bytes: usize) -> String {
    "E".repeat(bytes)
}

/// Calls host imports whose work is on the host side, with small arguments
/// (kv.set of distinct keys over a full cache, which evicts on every call;
/// an HTTP request to an ungranted host, refused and audited without any
/// network wait) for 3 s of wall time. Returns `Ok` if the host let it finish.
fn host_call_loop() -> String {
    let keys: Vec<String> = (0..1000).map(|i| format!("key-{i}")).collect();
    let denied = request(Method::Get, "https://evil.example.com/x".into());
    let started = std::time::Instant::now();
    let mut calls: u64 = 0;
    while started.elapsed() < std::time::Duration::from_secs(3) {
        for key in &keys {
            kv::set(key, b"v", 60);
            calls += 1;
        }
        let _ = http::send(&denied);
        calls += 1;
    }
    format!("host-call-loop finished after {calls} host calls")
}

/// Allocates and touches 1 MiB, then waits on a slow request while holding
/// it (and the call's instance slot).
fn hold_memory() -> Result<String, ConnectorError> {
    let mut held = vec![0u8; 1 << 20];
    for i in (0..held.len()).step_by(4096) {
        held[i] = black_box(1);
    }
    black_box(&held);
    let req = request(Method::Get, url_from("url", "/slow")?);
    let result = send(&req);
    black_box(&held);
    result.map(|r| format!("held until status {}", r.status))
}
