//! Provisio: self-hosted user provisioning with sandboxed WebAssembly connectors.
//!
//! The host keeps everything that must be trustworthy (scheduling, retries,
//! state, logs, secrets and the network); a connector plugin, a WebAssembly
//! component possibly written by a third party, only translates operations such
//! as "create this user" into a vendor's API calls.
//!
//! How the parts fit:
//! - [`config`] reads `provisio.toml` (plugins, secrets, connections) with
//!   errors that name file, line and field.
//! - [`runtime`] loads plugins into the sandbox and runs their operations;
//!   [`runtime::Connection`] is the API the rest of the host (the CLI now, the
//!   sync engine later) calls.
//! - [`capabilities`] are what a plugin may use: HTTP, secrets by reference,
//!   log, a key-value cache; each enforces the operator's grant.
//! - [`model`] holds the host-side domain types.
//! - [`telemetry`] sets up logging with secret redaction on every line.
//! - [`untrusted`] renders guest-supplied text safely for a terminal or a log
//!   line (control characters, ANSI and bidi shown visibly, length capped).
//! - [`notify`] tells operators about failed cycles, quarantine and held
//!   deletions (webhook, email), de-duplicated and rate-limited.
//! - [`drift`] compares the target with what was exported (`provisio
//!   reconcile`) and turns each difference into a repair the cycle makes;
//!   [`repair`] runs a reconcile end to end under the connection's lease.
//! - [`cli`] is the `provisio` command.

pub mod admin;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod cycle;
pub mod drift;
pub mod execute;
pub mod lease;
pub mod mapping;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod progress;
pub mod reconcile;
pub mod repair;
pub mod runtime;
pub mod scheduler;
pub mod scope;
pub mod source;
pub mod store;
pub mod telemetry;
pub mod untrusted;
