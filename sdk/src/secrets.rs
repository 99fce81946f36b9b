//! Secrets, by reference only.
//!
//! A connector never sees a secret's value. It names the secret in a request
//! ([`crate::http::Auth::bearer`], [`crate::http::secret`]) and the host
//! substitutes the value at send time, only toward the origins the secret is
//! bound to and only where its placements allow. A login exchange
//! ([`crate::http::login`]) captures *derived* secrets (a session id) that the
//! connector names the same way; [`derived`] lists them and [`forget`] drops
//! one the target rejected.

use crate::bindings::provisio::connector::secrets as wit;

/// The names of the secrets granted to this connection.
pub fn granted() -> Vec<String> {
    wit::granted()
}

/// Whether the named secret is granted to this connection.
pub fn is_granted(name: &str) -> bool {
    granted().iter().any(|n| n == name)
}

/// The derived secrets the connection holds now (captured and not expired).
pub fn derived() -> Vec<String> {
    wit::derived()
}

/// Whether the connection holds the derived secret `name` now.
pub fn holds(name: &str) -> bool {
    derived().iter().any(|n| n == name)
}

/// Drop the derived secret `name` (the target rejected the session), so the
/// next call logs in again.
pub fn forget(name: &str) {
    wit::forget(name)
}
