//! The Provisio connector conformance kit.
//!
//! A connector author runs it against their connector (a wasm component
//! pinned in a `provisio.toml`) and a target: an emulator or a real tenant. It
//! loads the component into the host's real sandbox ([`provisio::runtime`]),
//! calls each operation the way the sync engine does, and reports every check
//! as passed, failed (with the reason) or skipped (with why it cannot apply).
//!
//! How the parts fit:
//! - [`run`] / [`run_async`] read the config, open the connection through
//!   [`provisio::runtime::Runtime::connect_intercepted`] with an
//!   [`Interceptor`](provisio::capabilities::intercept::Interceptor) on its
//!   HTTP traffic (fault injection and an egress record, reachable only from
//!   Rust), and run the checks in `checks` in order, then clean up.
//! - `fixtures` makes the test objects: synthetic directory users and groups
//!   named with a unique run prefix, turned into target attributes by the
//!   connector's own default mappings (the host's mapping engine), exactly
//!   as a sync would.
//! - [`Report`] holds the outcome; [`Report::table`] and [`Report::to_json`]
//!   render it and [`Report::assert_passed`] fails a `cargo test` with the
//!   table.
//!
//! Objects the kit creates are deleted at the end (disabled when the
//! connector cannot delete) unless [`Options::keep`] is set.

mod checks;
mod fixtures;
mod report;

use provisio::capabilities::intercept::Interceptor;
use provisio::config::{Config, ConfigError};
/// Attribute values, for [`Options::user_attributes`] and [`Options::group_attributes`].
pub use provisio::model::Value;
use provisio::runtime::{ConnectionError, PluginError, Runtime, RuntimeError};
pub use report::{Check, Report, Status};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The checks, in the order they run. `--only` takes these names.
pub const CHECKS: &[&str] = &[
    "manifest",
    "test-connection",
    "user-lifecycle",
    "user-lost-create-response",
    "user-paging",
    "rate-limit",
    "group-lifecycle",
    "declared-hosts",
];

/// How the kit runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Run only these checks (names from [`CHECKS`]); empty runs all.
    pub only: Vec<String>,
    /// Leave the objects the kit created in the target.
    pub keep: bool,
    /// The page size the paging check lists with.
    pub page_size: u32,
    /// Users the paging check creates (more than `page_size`).
    pub paging_users: usize,
    /// Pages the paging check reads at most before giving up (a real tenant
    /// with many users needs many pages at a small page size).
    pub max_pages: usize,
    /// The `Retry-After` of the injected 429 (whole seconds).
    pub retry_after: Duration,
    /// Domain of the test users' `userPrincipalName` and `mail`.
    pub email_domain: String,
    /// Source attributes added to (or replacing those of) every synthetic
    /// directory user before the connector's mappings run, e.g.
    /// `appRoleAssignments = ["Agent"]` for a target whose groups only
    /// take agents, or an attribute a custom mapping reads.
    pub user_attributes: Vec<(String, Value)>,
    /// The same for synthetic groups.
    pub group_attributes: Vec<(String, Value)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            only: Vec::new(),
            keep: false,
            page_size: 2,
            paging_users: 5,
            max_pages: 1000,
            retry_after: Duration::from_secs(2),
            email_domain: "example.com".to_string(),
            user_attributes: Vec::new(),
            group_attributes: Vec::new(),
        }
    }
}

impl Options {
    /// Whether a check is selected.
    pub fn selected(&self, check: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == check)
    }
}

/// Why the kit could not run at all (a failing check is a [`Report`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    /// The config file is unreadable or invalid, or names no such connection.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The runtime could not start.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The plugin could not be loaded (pin, contract, `describe`).
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The connection's configuration does not fit the plugin's manifest.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// `--only` named a check that does not exist.
    #[error("there is no check named '{name}'; the checks are: {known}")]
    UnknownCheck {
        /// The name given.
        name: String,
        /// The known names.
        known: String,
    },
    /// The async runtime for [`run`] could not start.
    #[error("cannot start the async runtime: {0}")]
    Tokio(#[source] std::io::Error),
    /// Option values that cannot work.
    #[error("invalid option: {0}")]
    Options(String),
}

/// Run the kit against `connection` of the config at `config_path`, blocking
/// (it starts its own async runtime; from async code use [`run_async`]).
pub fn run(
    config_path: &Path,
    connection: &str,
    options: &Options,
) -> Result<Report, ConformanceError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ConformanceError::Tokio)?;
    rt.block_on(run_async(config_path, connection, options))
}

/// Run the kit from async code (see [`run`]).
pub async fn run_async(
    config_path: &Path,
    connection: &str,
    options: &Options,
) -> Result<Report, ConformanceError> {
    for name in &options.only {
        if !CHECKS.contains(&name.as_str()) {
            return Err(ConformanceError::UnknownCheck {
                name: name.clone(),
                known: CHECKS.join(", "),
            });
        }
    }
    if options.page_size == 0 || options.paging_users <= options.page_size as usize {
        return Err(ConformanceError::Options(format!(
            "paging needs a page size of at least 1 and more users than the page size \
             (page size {}, users {}); raise the number of paging users",
            options.page_size, options.paging_users
        )));
    }
    let config = Config::load(config_path)?;
    let (plugin_cfg, spec) = config.connection_spec(connection)?;
    let runtime = Runtime::new(Some(&config.state_dir.join("cache")))?;
    let plugin = runtime
        .load_plugin(&plugin_cfg.name, &plugin_cfg.path, Some(&plugin_cfg.sha256))
        .await?;
    let interceptor = Interceptor::new();
    let conn = runtime.connect_intercepted(Arc::new(plugin), spec, interceptor.clone())?;
    let report = checks::Kit::new(conn, interceptor, options.clone())
        .run()
        .await;
    drop(runtime);
    Ok(report)
}
