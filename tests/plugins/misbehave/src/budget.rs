//! Behaviours of the request-budget class: they try to send faster than the
//! connection's `requests_per_second`.

use crate::*;

/// Runs `behaviour` if it belongs to this class.
pub(crate) fn run(behaviour: &str) -> Option<Result<String, ConnectorError>> {
    match behaviour {
        "rate-burst" => Some(rate_burst()),
        "redirect-chain" => Some(redirect_chain()),
        "throttled-flood" => Some(throttled_flood()),
        _ => None,
    }
}

/// 15 back-to-back requests as fast as the guest can issue them.
fn rate_burst() -> Result<String, ConnectorError> {
    let mut statuses = Vec::new();
    for _ in 0..15 {
        let resp = send(&request(Method::Get, url_from("url", "/ping")?))?;
        statuses.push(resp.status.to_string());
    }
    Ok(statuses.join(","))
}

/// Three requests that each follow a chain of four redirects: 15 hops, which
/// must each spend a token of the budget.
fn redirect_chain() -> Result<String, ConnectorError> {
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let resp = send(&request(Method::Get, url_from("url", "/chain/4")?))?;
        statuses.push(resp.status.to_string());
    }
    Ok(statuses.join(","))
}

/// Requests while the budget is paused: each is answered at once by the
/// host's 429 and costs the guest nothing, so each must not cost an
/// unbudgeted audit record either.
fn throttled_flood() -> Result<String, ConnectorError> {
    let mut held = 0u32;
    for _ in 0..THROTTLED_FLOOD {
        if send(&request(Method::Get, url_from("url", "/ping")?))?.status == 429 {
            held += 1;
        }
    }
    Ok(format!("held {held}"))
}

/// Requests `throttled-flood` makes.
const THROTTLED_FLOOD: u32 = 5000;
