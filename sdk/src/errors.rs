//! Mapping of HTTP error responses to [`ConnectorError`].
//!
//! | status | error |
//! |---|---|
//! | 429 | `RateLimited`, with `Retry-After` (seconds or HTTP-date) in ms |
//! | 401 | `Unauthorized` |
//! | 403 | `Forbidden` |
//! | 404 | `NotFound` |
//! | 409 | `Conflict` |
//! | 400, 422 | `InvalidInput` |
//! | 5xx | `Transient` |
//! | anything else | `Other` |
//!
//! The message names the status and the most useful part of the body: the
//! `scimType` and `detail` of a SCIM error, a `message`/`detail`/`error` field
//! of other JSON bodies, or the text itself, truncated to
//! [`MAX_MESSAGE_LEN`] characters.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::http::Response;
use crate::{Conflict, ConnectorError, RateLimit};

/// The longest body detail kept in an error message, in characters.
pub const MAX_MESSAGE_LEN: usize = 500;

/// The error for a non-2xx response (see the module docs).
pub fn from_response(response: &Response) -> ConnectorError {
    let now = response
        .header("date")
        .and_then(parse_http_date)
        .or_else(system_now);
    from_parts(response.status, &response.headers, &response.body, now)
}

fn system_now() -> Option<u64> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// The error for a status, headers and body. `now_unix_secs` is the
/// reference time for an HTTP-date `Retry-After` (pure; for tests).
pub fn from_parts(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    now_unix_secs: Option<u64>,
) -> ConnectorError {
    let message = status_message(status, body);
    match status {
        429 => {
            let retry_after_ms = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("retry-after"))
                .and_then(|(_, v)| retry_after_ms(v, now_unix_secs));
            ConnectorError::RateLimited(RateLimit {
                message,
                retry_after_ms,
            })
        }
        401 => ConnectorError::Unauthorized(message),
        403 => ConnectorError::Forbidden(message),
        404 => ConnectorError::NotFound(message),
        409 => ConnectorError::Conflict(Conflict {
            message,
            existing_id: None,
        }),
        400 | 422 => ConnectorError::InvalidInput(message),
        500..=599 => ConnectorError::Transient(message),
        _ => ConnectorError::Other(message),
    }
}

/// `HTTP <status> <reason>: <detail>` for a response.
pub fn status_message(status: u16, body: &[u8]) -> String {
    let reason = reason_phrase(status);
    let head = if reason.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status} {reason}")
    };
    match body_detail(body) {
        Some(detail) => format!("{head}: {detail}"),
        None => head,
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// A SCIM error response (RFC 7644 §3.12). Note that `status` is a string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScimError {
    /// The HTTP status as the body states it (a string in SCIM).
    pub status: Option<String>,
    /// The SCIM detail error keyword, e.g. `uniqueness`, `invalidFilter`, `noTarget`.
    pub scim_type: Option<String>,
    /// The human-readable detail.
    pub detail: Option<String>,
}

impl ScimError {
    /// The schema URN of SCIM error responses.
    pub const SCHEMA: &'static str = "urn:ietf:params:scim:api:messages:2.0:Error";

    /// Parse a SCIM error body; `None` if the body is not one. A body is
    /// taken as a SCIM error when its `schemas` contain the error URN, or it
    /// has a `scimType`.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let json: serde_json::Value = serde_json::from_slice(body).ok()?;
        let obj = json.as_object()?;
        let is_error_schema = obj
            .get("schemas")
            .and_then(|s| s.as_array())
            .is_some_and(|a| a.iter().any(|s| s.as_str() == Some(Self::SCHEMA)));
        if !is_error_schema && !obj.contains_key("scimType") {
            return None;
        }
        let text = |key: &str| {
            obj.get(key).and_then(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        Some(ScimError {
            status: text("status"),
            scim_type: text("scimType"),
            detail: text("detail"),
        })
    }
}

/// The most useful short text of an error body, truncated to
/// [`MAX_MESSAGE_LEN`]; `None` for an empty body.
pub fn body_detail(body: &[u8]) -> Option<String> {
    if let Some(e) = ScimError::parse(body) {
        let text = match (e.scim_type, e.detail) {
            (Some(t), Some(d)) => format!("{t}: {d}"),
            (Some(t), None) => t,
            (None, Some(d)) => d,
            (None, None) => String::from("SCIM error without detail"),
        };
        return Some(truncate(&text, MAX_MESSAGE_LEN));
    }
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(text) = json_message(&json)
    {
        return Some(truncate(&text, MAX_MESSAGE_LEN));
    }
    let text = String::from_utf8_lossy(body);
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        None
    } else {
        Some(truncate(&collapsed, MAX_MESSAGE_LEN))
    }
}

/// A message field of a non-SCIM JSON error body.
fn json_message(json: &serde_json::Value) -> Option<String> {
    for key in [
        "detail",
        "message",
        "error_description",
        "description",
        "title",
    ] {
        if let Some(s) = json.get(key).and_then(|v| v.as_str()) {
            return Some(s.to_string());
        }
    }
    match json.get("error") {
        Some(serde_json::Value::String(s)) => return Some(s.clone()),
        Some(obj @ serde_json::Value::Object(_)) => {
            if let Some(m) = json_message(obj) {
                return Some(m);
            }
        }
        _ => {}
    }
    if let Some(first) = json
        .get("errors")
        .and_then(|e| e.as_array())
        .and_then(|a| a.first())
    {
        if let Some(s) = first.as_str() {
            return Some(s.to_string());
        }
        return json_message(first);
    }
    None
}

/// Truncate `text` to at most `max` characters, marking a cut with `…`.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Parse a `Retry-After` value into milliseconds: either delay-seconds or an
/// HTTP-date, relative to `now_unix_secs` (a date in the past gives 0; a
/// date without a reference time gives `None`).
pub fn retry_after_ms(value: &str, now_unix_secs: Option<u64>) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    // Some servers send fractional seconds.
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            // Truncation to whole milliseconds is intended.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            return Some((secs * 1000.0).min(u64::MAX as f64) as u64);
        }
        return None;
    }
    let at = parse_http_date(value)?;
    let now = now_unix_secs?;
    Some(at.saturating_sub(now).saturating_mul(1000))
}

/// Parse an HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, RFC 850 or asctime
/// format) into seconds since the Unix epoch.
pub fn parse_http_date(value: &str) -> Option<u64> {
    let value = value.trim();
    let parts: Vec<&str> = value.split_whitespace().collect();
    let (day, month, year, time) = match parts.as_slice() {
        // Sun, 06 Nov 1994 08:49:37 GMT
        [_, d, m, y, t, "GMT"] => (d.parse::<u32>().ok()?, *m, y.parse::<i64>().ok()?, *t),
        // Sunday, 06-Nov-94 08:49:37 GMT
        [_, dmy, t, "GMT"] => {
            let mut it = dmy.split('-');
            let d = it.next()?.parse::<u32>().ok()?;
            let m = it.next()?;
            let y = it.next()?.parse::<i64>().ok()?;
            let y = if y < 70 {
                2000 + y
            } else if y < 100 {
                1900 + y
            } else {
                y
            };
            (d, m, y, *t)
        }
        // Sun Nov  6 08:49:37 1994
        [_, m, d, t, y] => (d.parse::<u32>().ok()?, *m, y.parse::<i64>().ok()?, *t),
        _ => return None,
    };
    let month = match month {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let mut hms = time.split(':');
    let h = hms.next()?.parse::<u64>().ok()?;
    let mi = hms.next()?.parse::<u64>().ok()?;
    let s = hms.next()?.parse::<u64>().ok()?;
    if hms.next().is_some()
        || !(1..=31).contains(&day)
        || !(1970..=9999).contains(&year)
        || h > 23
        || mi > 59
        || s > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let days = u64::try_from(days).ok()?;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sun Nov  6 08:49:37 1994"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Mon, 23 Nov 2026 13:16:38 GMT"),
            Some(1_795_439_798)
        );
        assert_eq!(parse_http_date("garbage"), None);
        assert_eq!(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT"), None);
        // Absurd years from a misbehaving target must not overflow.
        assert_eq!(
            parse_http_date("Sun, 06 Nov 9223372036854775807 08:49:37 GMT"),
            None
        );
        assert_eq!(parse_http_date("Sun, 06 Nov -5 08:49:37 GMT"), None);
    }

    #[test]
    fn retry_after() {
        assert_eq!(retry_after_ms("120", None), Some(120_000));
        assert_eq!(retry_after_ms(" 0 ", None), Some(0));
        assert_eq!(retry_after_ms("1.5", None), Some(1_500));
        assert_eq!(retry_after_ms("-1", None), None);
        assert_eq!(
            retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", Some(784_111_777 - 30)),
            Some(30_000)
        );
        assert_eq!(
            retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", Some(784_111_777 + 30)),
            Some(0)
        );
        assert_eq!(retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", None), None);
        assert_eq!(retry_after_ms("soon", Some(0)), None);
    }

    #[test]
    fn rate_limited_uses_date_header_as_reference() {
        let resp = Response::new(
            429,
            vec![
                h("Date", "Sun, 06 Nov 1994 08:49:00 GMT"),
                h("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ],
            b"slow down".to_vec(),
        );
        match from_response(&resp) {
            ConnectorError::RateLimited(r) => {
                assert_eq!(r.retry_after_ms, Some(37_000));
                assert_eq!(r.message, "HTTP 429 Too Many Requests: slow down");
            }
            other => panic!("unexpected {other:?}"),
        }
        let resp = Response::new(429, vec![h("Retry-After", "7")], Vec::new());
        assert!(matches!(
            from_response(&resp),
            ConnectorError::RateLimited(RateLimit {
                retry_after_ms: Some(7000),
                ..
            })
        ));
        let resp = Response::new(429, vec![], Vec::new());
        assert!(matches!(
            from_response(&resp),
            ConnectorError::RateLimited(RateLimit {
                retry_after_ms: None,
                ..
            })
        ));
    }

    #[test]
    fn status_mapping() {
        let e = |s| from_parts(s, &[], b"", None);
        assert!(matches!(e(401), ConnectorError::Unauthorized(_)));
        assert!(matches!(e(403), ConnectorError::Forbidden(_)));
        assert!(matches!(e(404), ConnectorError::NotFound(_)));
        assert!(matches!(
            e(409),
            ConnectorError::Conflict(Conflict {
                existing_id: None,
                ..
            })
        ));
        assert!(matches!(e(400), ConnectorError::InvalidInput(_)));
        assert!(matches!(e(422), ConnectorError::InvalidInput(_)));
        assert!(matches!(e(500), ConnectorError::Transient(_)));
        assert!(matches!(e(503), ConnectorError::Transient(_)));
        assert!(matches!(e(418), ConnectorError::Other(m) if m == "HTTP 418"));
        assert!(matches!(e(302), ConnectorError::Other(_)));
    }

    #[test]
    fn scim_error_body() {
        let body = br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409","scimType":"uniqueness","detail":"One or more of the attribute values are already in use or are reserved"}"#;
        let parsed = ScimError::parse(body).unwrap();
        assert_eq!(parsed.status.as_deref(), Some("409"));
        assert_eq!(parsed.scim_type.as_deref(), Some("uniqueness"));
        match from_parts(409, &[], body, None) {
            ConnectorError::Conflict(c) => assert_eq!(
                c.message,
                "HTTP 409 Conflict: uniqueness: One or more of the attribute values are already in use or are reserved"
            ),
            other => panic!("unexpected {other:?}"),
        }
        // status as a number, no scimType
        let body = br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":404,"detail":"User 'x' not found"}"#;
        assert_eq!(
            from_parts(404, &[], body, None).message(),
            "HTTP 404 Not Found: User 'x' not found"
        );
    }

    #[test]
    fn other_bodies() {
        assert_eq!(
            body_detail(br#"{"error":{"message":"bad token"}}"#).as_deref(),
            Some("bad token")
        );
        assert_eq!(
            body_detail(br#"{"errors":[{"message":"first"}]}"#).as_deref(),
            Some("first")
        );
        assert_eq!(
            body_detail(b"  <h1>Bad\n gateway</h1> ").as_deref(),
            Some("<h1>Bad gateway</h1>")
        );
        assert_eq!(body_detail(b"   "), None);
        let long = "x".repeat(2000);
        let d = body_detail(long.as_bytes()).unwrap();
        assert_eq!(d.chars().count(), MAX_MESSAGE_LEN);
        assert!(d.ends_with('…'));
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("ééé", 2), "é…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
