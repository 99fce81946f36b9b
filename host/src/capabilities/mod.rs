//! The capabilities the host grants a connector, one module each.
//!
//! A connector has no ambient authority: everything it can do outside its own
//! memory goes through one of these, and each enforces the operator's grant.
//!
//! - [`http`]: outbound requests, checked against the connection's allowlist
//!   (the plugin's declared host patterns intersected with the operator's grant),
//!   with secrets substituted at send time and every decision audited.
//! - [`egress`]: the pure egress policy inside a granted origin: address
//!   ranges, path encodings under path-prefix grants, forbidden headers.
//! - [`resolve`]: the DNS hook that resolves, checks every address with
//!   [`egress`], and lets the HTTP client connect only to what passed.
//! - [`audit`]: the per-connection budget of the egress audit records, with
//!   a count of the records it dropped.
//! - [`secrets`]: operator-defined secrets, bound to hosts, referenced by name;
//!   placed only where the manifest declared and the operator confirmed;
//!   derived secrets captured by login exchanges; also the
//!   [`secrets::Redactor`] that scrubs known values from all output.
//! - [`secret_scan`]: one Aho-Corasick automaton over every encoded form of
//!   every secret a connection holds, used to scrub responses and refuse
//!   requests that carry a secret the connector wrote itself.
//! - [`log`]: structured guest logging, size-capped and rate-limited.
//! - [`kv`]: a small per-connection cache with expiry.
//! - [`intercept`]: a hook reachable only from Rust code (the conformance kit)
//!   that records every HTTP hop and injects faults (a lost response, a 429).

pub mod audit;
pub mod bucket;
pub mod egress;
pub mod http;
pub mod intercept;
pub mod kv;
pub mod log;
pub mod ratelimit;
pub mod resolve;
pub mod secret_scan;
pub mod secrets;
