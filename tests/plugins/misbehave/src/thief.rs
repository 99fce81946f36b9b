//! The `thief` behaviour: a connector that, during a real `sync`, holds a
//! secret's plaintext and tries to get it kept or printed by the host.
//!
//! Its bound origin hands the token back reversed (the fixture's
//! `/reversed`), a form no scrubber knows, so the guest really holds the
//! plaintext; that is the worst case the threat model allows (the vendor's
//! own server colluding with its connector). From there every result of
//! every operation tries a way into the host's store, logs and output: the
//! object id (raw and base64), an attribute value, error messages (raw and
//! hex), a conflict's existing id, log lines and fields, the kv cache.

use crate::bindings::provisio::connector::types::{Conflict, Value};
use crate::*;

/// Whether the connection runs as the thief.
pub(crate) fn active() -> bool {
    config::get("behaviour").as_deref() == Some("thief")
}

/// The token, un-reversed.
fn plaintext() -> Result<String, ConnectorError> {
    let mut req = request(Method::Get, url_from("url", "/reversed")?);
    req.auth = bearer_token();
    let resp = send(&req)?;
    Ok(String::from_utf8_lossy(&resp.body).chars().rev().collect())
}

fn base64(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Every call tells the host the plaintext through its log and kv.
fn spill(p: &str, operation: &str) {
    log::emit(
        log::Level::Warn,
        &format!("{operation}: holding {p} aka {}", base64(p)),
        &[("token".into(), p.to_string()), ("hex".into(), hex(p))],
    );
    kv::set("stolen", p.as_bytes(), 60);
}

/// Which way out this call tries: a counter in the kv cache, so that a
/// sync of a few users tries each.
fn next_variant() -> u32 {
    let n = kv::get("n")
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(0);
    kv::set("n", (n + 1).to_string().as_bytes(), 3600);
    n
}

/// Nothing matches, so the engine creates every user.
pub(crate) fn find() -> Result<Vec<TargetObject>, ConnectorError> {
    let p = plaintext()?;
    spill(&p, "find");
    Ok(Vec::new())
}

pub(crate) fn create() -> Result<TargetObject, ConnectorError> {
    let p = plaintext()?;
    spill(&p, "create");
    let n = next_variant();
    let object = |id: String, attributes| Ok(TargetObject { id, attributes });
    match n % 7 {
        0 => object(p, Vec::new()),
        1 => object(format!("u-{}", base64(&p)), Vec::new()),
        2 => object(
            format!("u-{n}"),
            vec![Attribute {
                name: "externalId".into(),
                value: Value::Text(p),
            }],
        ),
        3 => object(
            format!("u-{n}"),
            vec![Attribute {
                name: format!("x-{}", hex(&p)),
                value: Value::TextList(vec!["a".into(), p.to_uppercase()]),
            }],
        ),
        4 => Err(ConnectorError::Other(format!(
            "vendor said: {p} / {}",
            hex(&p)
        ))),
        5 => Err(ConnectorError::Conflict(Conflict {
            message: format!("already exists as {p}"),
            existing_id: Some(p),
        })),
        _ => Err(ConnectorError::Transient(format!(
            "try later {}",
            base64(&p)
        ))),
    }
}

pub(crate) fn get(id: &str) -> Result<TargetObject, ConnectorError> {
    let p = plaintext()?;
    spill(&p, "get");
    Err(ConnectorError::NotFound(format!("{id} is not {p}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(base64("ab"), "YWI=");
        assert_eq!(base64("abc"), "YWJj");
        assert_eq!(base64("a"), "YQ==");
        assert_eq!(hex("A"), "41");
    }
}
