//! A small per-connection key-value cache with expiry, shared by all calls of
//! one connection (for example a login session id). The host caps sizes and
//! lifetimes; a value may disappear at any time, so always be ready to
//! recompute it.

use crate::bindings::provisio::connector::kv as wit;

/// The bytes stored under `key`, if present and not expired.
pub fn get(key: &str) -> Option<Vec<u8>> {
    wit::get(key)
}

/// The UTF-8 text stored under `key`, if present, unexpired and valid UTF-8.
pub fn get_string(key: &str) -> Option<String> {
    get(key).and_then(|b| String::from_utf8(b).ok())
}

/// Store bytes under `key` for at most `ttl_seconds`.
pub fn set(key: &str, value: &[u8], ttl_seconds: u32) {
    wit::set(key, value, ttl_seconds);
}

/// Store text under `key` for at most `ttl_seconds`.
pub fn set_string(key: &str, value: &str, ttl_seconds: u32) {
    set(key, value.as_bytes(), ttl_seconds);
}

/// Remove the value under `key`.
pub fn delete(key: &str) {
    wit::delete(key);
}
