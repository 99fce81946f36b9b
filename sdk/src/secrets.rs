//! Secrets, by reference only.
//!
//! A connector never sees a secret's value. It names the secret in a request
//! ([`crate::http::Auth::bearer`], [`crate::http::secret`],
//! [`crate::http::secret_json`]) and the host substitutes the value at send
//! time, only toward the hosts the secret is bound to.

use crate::bindings::provisio::connector::secrets as wit;

/// The names of the secrets granted to this connection.
pub fn granted() -> Vec<String> {
    wit::granted()
}

/// Whether the named secret is granted to this connection.
pub fn is_granted(name: &str) -> bool {
    granted().iter().any(|n| n == name)
}
