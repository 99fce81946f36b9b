//! `provisio.toml`: plugins, secrets and connections.
//!
//! ```toml
//! [runtime]
//! state_dir = ".provisio"           # relative to this file; holds the plugin cache
//! [runtime.limits]                  # defaults for every connection
//! memory_mb = 64
//! cpu_seconds = 10
//! timeout_seconds = 60
//! max_concurrent_calls = 8          # calls of one connection at once
//!
//! [plugins.scim]
//! path = "plugins/provisio_plugin_scim.wasm"
//! sha256 = "<64 hex digits>"         # required: a mismatch refuses to load
//!
//! [secrets.scim_token]
//! env = "SCIM_TOKEN"                 # or file = "...", or value = "..." (development only)
//! hosts = ["http://127.0.0.1:18080"] # where this secret may be sent
//!
//! [sources.corp]
//! path = "directory.json"            # users, groups, assignments (JSON)
//! users_csv = "users.csv"            # optional: users from CSV
//!
//! [connections.demo]
//! plugin = "scim"
//! source = "corp"
//! settings = { base_url = "http://127.0.0.1:18080/v2" }
//! secrets = { token = "scim_token" } # plugin's name -> [secrets.*] entry
//! allowed_hosts = ["http://127.0.0.1:18080"] # or { origin = "http://idp.internal:8080", private = true }
//! deletion_threshold = 500           # more disables+deletes in a cycle are held (0 = off)
//! skip_out_of_scope_deletions = false
//! concurrency = 4
//! escrow_max_interval_seconds = 86400 # longest wait before a failed object is retried
//! [connections.demo.reconcile]       # drift reconciliation, see the drift module
//! interval_seconds = 86400           # `provisio run` reconciles this often (default: never)
//! deleted_in_target = "recreate"     # or "report"
//! orphans = "report"                 # or "delete": target objects linked to nothing
//! ignore = ["title"]                 # attributes never compared
//! [connections.demo.scope]           # see the scope module
//! assigned_only = true
//! excluded_roles = ["Default Access"]
//! [[connections.demo.mappings.users]] # overrides of the connector's defaults
//! target = "title"
//! expression = "ToUpper([jobTitle])"
//!
//! [notifications]                  # optional; see the notify module
//! webhook = { url = "https://hooks.example.com/provisio", secret = "hook_key" }
//! email = { smtp_host = "smtp.example.com", tls = "starttls", from = "provisio@example.com",
//!           to = ["ops@example.com"], username = "provisio", password_secret = "smtp_password" }
//! events = ["cycle_failed", "quarantined", "left_quarantine", "staged_deletions", "objects_waiting"]
//! dedup_window_seconds = 3600
//! max_per_hour = 20
//! ```
//!
//! Every error names the file, line, column and field, and says how to fix it.
//! Secret values are resolved only for the connection being used, so a missing
//! environment variable of another connection does not stop this one.

use crate::capabilities::http::HostPattern;
use crate::capabilities::log::LogLimits;
use crate::capabilities::secrets::{MIN_SECRET_LEN, Secret, SecretValue};
use crate::mapping::MappingOverride;
use crate::notify::EventKind;
use crate::runtime::{ConnectionSpec, Limits};
use crate::scope::ScopeConfig;
use crate::source::DirectorySource;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// A configuration error.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A problem at a place in the file.
    #[error("{path}:{line}:{column}: {field}: {message}")]
    At {
        /// Path.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Dotted field path.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A problem not tied to one place.
    #[error("{path}: {message}")]
    General {
        /// Path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    runtime: RawRuntime,
    #[serde(default)]
    plugins: BTreeMap<String, RawPlugin>,
    #[serde(default)]
    secrets: BTreeMap<String, RawSecret>,
    #[serde(default)]
    connections: BTreeMap<String, RawConnection>,
    #[serde(default)]
    sources: BTreeMap<String, RawSource>,
    service: Option<Spanned<RawService>>,
    notifications: Option<RawNotifications>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotifications {
    webhook: Option<Spanned<RawWebhook>>,
    email: Option<Spanned<RawEmail>>,
    events: Option<Vec<Spanned<String>>>,
    dedup_window_seconds: Option<Spanned<u64>>,
    max_per_hour: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Spanned<String>,
    secret: Option<Spanned<String>>,
    auth: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    smtp_host: Spanned<String>,
    smtp_port: Option<u16>,
    tls: Option<Spanned<String>>,
    from: Spanned<String>,
    to: Spanned<Vec<Spanned<String>>>,
    username: Option<Spanned<String>>,
    password_secret: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawService {
    listen: Option<Spanned<String>>,
    token_secret: Option<Spanned<String>>,
    max_concurrent_cycles: Option<Spanned<usize>>,
    log_retention_days: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    path: Option<Spanned<String>>,
    users_csv: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMappings {
    #[serde(default)]
    users: Vec<MappingOverride>,
    #[serde(default)]
    groups: Vec<MappingOverride>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    state_dir: Option<String>,
    store: Option<String>,
    limits: Option<Spanned<RawLimits>>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_mb: Option<u64>,
    cpu_seconds: Option<f64>,
    timeout_seconds: Option<f64>,
    http_timeout_seconds: Option<f64>,
    max_response_mb: Option<u64>,
    max_redirects: Option<usize>,
    log_records_per_second: Option<f64>,
    log_burst: Option<u32>,
    requests_per_second: Option<f64>,
    max_concurrent_calls: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    path: Spanned<String>,
    sha256: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    env: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
    value: Option<Spanned<String>>,
    hosts: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    plugin: Spanned<String>,
    #[serde(default)]
    settings: BTreeMap<String, String>,
    #[serde(default)]
    secrets: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    allowed_hosts: Vec<Spanned<toml::Value>>,
    limits: Option<Spanned<RawLimits>>,
    source: Option<Spanned<String>>,
    scope: Option<Spanned<ScopeConfig>>,
    #[serde(default)]
    mappings: RawMappings,
    deletion_threshold: Option<usize>,
    #[serde(default)]
    skip_out_of_scope_deletions: bool,
    concurrency: Option<Spanned<usize>>,
    interval_seconds: Option<Spanned<f64>>,
    escrow_max_interval_seconds: Option<Spanned<f64>>,
    reconcile: Option<Spanned<RawReconcile>>,
}

/// `[connections.x.reconcile]`, see [`crate::drift::DriftPolicy`].
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawReconcile {
    interval_seconds: Option<Spanned<f64>>,
    deleted_in_target: Option<Spanned<String>>,
    orphans: Option<Spanned<String>>,
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
}

/// A plugin entry.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// Name.
    pub name: String,
    /// Absolute or config-relative path, resolved.
    pub path: PathBuf,
    /// Pinned sha256.
    pub sha256: String,
}

/// Where a secret's value comes from.
#[derive(Debug, Clone)]
enum SecretSource {
    Env(String),
    File(PathBuf),
    Inline(String),
}

#[derive(Debug, Clone)]
struct SecretConfig {
    source: SecretSource,
    hosts: Vec<HostPattern>,
    span: Range<usize>,
}

/// A connection entry.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Name.
    pub name: String,
    /// Plugin name.
    pub plugin: String,
    /// Settings.
    pub settings: BTreeMap<String, String>,
    /// plugin secret name -> operator secret name.
    pub secrets: BTreeMap<String, String>,
    /// plugin secret name -> the placements the operator confirmed (the long
    /// grant form); absent: the manifest's auth-header placements.
    pub secret_placements: BTreeMap<String, Vec<crate::model::Placement>>,
    /// Granted hosts.
    pub allowed_hosts: Vec<HostPattern>,
    /// Granted hosts opted in to non-public addresses (`private = true`);
    /// each is also in `allowed_hosts`.
    pub private_hosts: Vec<HostPattern>,
    /// Limits.
    pub limits: Limits,
    /// The source it syncs from.
    pub source: Option<String>,
    /// Scope.
    pub scope: ScopeConfig,
    /// User mapping overrides.
    pub user_mappings: Vec<MappingOverride>,
    /// Group mapping overrides.
    pub group_mappings: Vec<MappingOverride>,
    /// Disables + deletes per cycle above which they are held (None = no guard).
    pub deletion_threshold: Option<usize>,
    /// Do not disable objects that merely left scope.
    pub skip_out_of_scope_deletions: bool,
    /// Concurrent connector calls.
    pub concurrency: usize,
    /// Interval between cycles under `provisio run`.
    pub interval: std::time::Duration,
    /// The longest an object that failed waits in escrow before it is
    /// tried again (the doubling backoff stops growing there; 0 = it is
    /// retried in every cycle).
    pub escrow_max_interval: std::time::Duration,
    /// Drift reconciliation (`[connections.x.reconcile]`).
    pub reconcile: crate::drift::DriftPolicy,
}

/// Default of `deletion_threshold` (Entra's default for its accidental-deletions prevention).
pub const DEFAULT_DELETION_THRESHOLD: usize = 500;

/// `[service]`: how `provisio run` serves its admin API and schedules cycles.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Address of the admin API (`None`: no API).
    pub listen: Option<std::net::SocketAddr>,
    /// The `[secrets.*]` entry holding the API's bearer token.
    pub token_secret: Option<String>,
    /// Cycles that may run at once across all connections.
    pub max_concurrent_cycles: usize,
    /// Provisioning log records older than this are deleted.
    pub log_retention: Duration,
}

/// Default of `[service] max_concurrent_cycles`.
pub const DEFAULT_MAX_CONCURRENT_CYCLES: usize = 4;
/// Default of `[service] log_retention_days` (Entra keeps 30 days).
pub const DEFAULT_LOG_RETENTION_DAYS: u32 = 30;

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            listen: None,
            token_secret: None,
            max_concurrent_cycles: DEFAULT_MAX_CONCURRENT_CYCLES,
            log_retention: Duration::from_secs(u64::from(DEFAULT_LOG_RETENTION_DAYS) * 86_400),
        }
    }
}

/// The `[notifications]` section (absent: no notification is sent).
#[derive(Debug, Clone)]
pub struct NotificationsConfig {
    /// The webhook channel.
    pub webhook: Option<WebhookConfig>,
    /// The email channel.
    pub email: Option<EmailConfig>,
    /// The events that notify (default: all).
    pub events: std::collections::BTreeSet<EventKind>,
    /// The same event (connection, kind, reason) notifies once per this window.
    pub dedup_window: Duration,
    /// At most this many notifications per channel per hour.
    pub max_per_hour: u32,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            webhook: None,
            email: None,
            events: EventKind::ALL.iter().copied().collect(),
            dedup_window: crate::notify::DEFAULT_DEDUP_WINDOW,
            max_per_hour: crate::notify::DEFAULT_MAX_PER_HOUR,
        }
    }
}

/// How the webhook request proves it comes from Provisio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookAuth {
    /// `X-Provisio-Signature: sha256=<hex HMAC-SHA256 of the body>` keyed with the secret.
    Hmac,
    /// `Authorization: Bearer <secret>`.
    Bearer,
}

/// The webhook channel: a JSON POST to `url`.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// https, or http on a loopback address.
    pub url: url::Url,
    /// The `[secrets.*]` entry that signs (or authorises) the request.
    pub secret: Option<String>,
    /// How the secret is used.
    pub auth: WebhookAuth,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP; allowed only toward a loopback relay.
    None,
    /// Plain connection upgraded with STARTTLS (required, default; port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// The email channel: SMTP.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// The relay's host name.
    pub smtp_host: String,
    /// The relay's port.
    pub smtp_port: u16,
    /// Transport security.
    pub tls: SmtpTls,
    /// Sender address (`ops@example.com` or `Name <ops@example.com>`).
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// SMTP user name.
    pub username: Option<String>,
    /// The `[secrets.*]` entry holding the SMTP password.
    pub password_secret: Option<String>,
}

/// Whether `host` (a name or an IP literal, brackets allowed) is a loopback host.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A source entry.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Name.
    pub name: String,
    /// JSON directory file.
    pub path: Option<PathBuf>,
    /// CSV users file.
    pub users_csv: Option<PathBuf>,
}

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file.
    pub path: PathBuf,
    /// State directory (resolved).
    pub state_dir: PathBuf,
    /// Default limits.
    pub limits: Limits,
    /// The SQLite state file.
    pub store_path: PathBuf,
    /// `[service]`.
    pub service: ServiceConfig,
    /// Notifications (`[notifications]`).
    pub notifications: NotificationsConfig,
    sources: BTreeMap<String, SourceConfig>,
    plugins: BTreeMap<String, PluginConfig>,
    secrets: BTreeMap<String, SecretConfig>,
    connections: BTreeMap<String, ConnectionConfig>,
    text: String,
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn at(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError::At {
            path: self.path.to_path_buf(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// `[connections.x.reconcile]`: each value checked, with the field named.
fn parse_reconcile(
    cx: &Ctx<'_>,
    field: &str,
    raw: &RawReconcile,
) -> Result<crate::drift::DriftPolicy, ConfigError> {
    use crate::drift::{DeletedInTarget, DriftPolicy, Orphans};
    let mut policy = DriftPolicy::default();
    if let Some(v) = &raw.interval_seconds {
        if !(v.get_ref().is_finite() && *v.get_ref() >= 1.0) {
            return Err(cx.at(
                v.span(),
                format!("{field}.interval_seconds"),
                "must be a number of seconds, at least 1 (a reconcile reads the whole target; \
                 once a day, 86400, is usual); leave it out to reconcile only with \
                 `provisio reconcile`",
            ));
        }
        policy.interval = Some(Duration::from_secs_f64(v.get_ref().min(1e9)));
    }
    if let Some(v) = &raw.deleted_in_target {
        policy.deleted_in_target = match v.get_ref().as_str() {
            "recreate" => DeletedInTarget::Recreate,
            "report" => DeletedInTarget::Report,
            other => {
                return Err(cx.at(
                    v.span(),
                    format!("{field}.deleted_in_target"),
                    format!(
                        "'{other}' is not a policy: use \"recreate\" (create the object again) \
                         or \"report\" (only log it)"
                    ),
                ));
            }
        };
    }
    if let Some(v) = &raw.orphans {
        policy.orphans = match v.get_ref().as_str() {
            "report" => Orphans::Report,
            "delete" => Orphans::Delete,
            other => {
                return Err(cx.at(
                    v.span(),
                    format!("{field}.orphans"),
                    format!(
                        "'{other}' is not a policy: use \"report\" (log target objects linked \
                         to nothing) or \"delete\" (delete them from the target)"
                    ),
                ));
            }
        };
    }
    for name in &raw.ignore {
        if name.get_ref().trim().is_empty() {
            return Err(cx.at(
                name.span(),
                format!("{field}.ignore"),
                "an empty attribute name; list target attribute names such as \"title\"",
            ));
        }
        policy.ignore.insert(name.get_ref().to_ascii_lowercase());
    }
    Ok(policy)
}

fn apply_limits(base: Limits, raw: &RawLimits) -> Result<Limits, String> {
    let mut l = base;
    let secs = |v: f64, what: &str| -> Result<Duration, String> {
        if v.is_finite() && v > 0.0 && v < 86_400.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(format!(
                "{what} must be a positive number of seconds below 86400, got {v}"
            ))
        }
    };
    if let Some(mb) = raw.memory_mb {
        if !(1..=4096).contains(&mb) {
            return Err(format!("memory_mb must be between 1 and 4096, got {mb}"));
        }
        l.memory_bytes = (mb as usize) * 1024 * 1024;
    }
    if let Some(v) = raw.cpu_seconds {
        l.cpu_time = secs(v, "cpu_seconds")?;
    }
    if let Some(v) = raw.timeout_seconds {
        l.wall_time = secs(v, "timeout_seconds")?;
    }
    if let Some(v) = raw.http_timeout_seconds {
        l.http_timeout = secs(v, "http_timeout_seconds")?;
    }
    if let Some(mb) = raw.max_response_mb {
        if !(1..=1024).contains(&mb) {
            return Err(format!(
                "max_response_mb must be between 1 and 1024, got {mb}"
            ));
        }
        l.max_response_bytes = (mb as usize) * 1024 * 1024;
    }
    if let Some(n) = raw.max_redirects {
        if n > 20 {
            return Err(format!("max_redirects must be at most 20, got {n}"));
        }
        l.max_redirects = n;
    }
    if let Some(r) = raw.log_records_per_second {
        if !(r.is_finite() && r > 0.0) {
            return Err(format!("log_records_per_second must be positive, got {r}"));
        }
        l.log = LogLimits {
            records_per_second: r,
            ..l.log
        };
    }
    if let Some(r) = raw.requests_per_second {
        if !(r.is_finite() && (0.5..=10_000.0).contains(&r)) {
            return Err(format!(
                "requests_per_second must be between 0.5 and 10000, got {r}"
            ));
        }
        l.requests_per_second = r;
    }
    if let Some(n) = raw.max_concurrent_calls {
        if !(1..=64).contains(&n) {
            return Err(format!(
                "max_concurrent_calls must be between 1 and 64, got {n}"
            ));
        }
        l.max_concurrent_calls = n;
    }
    if let Some(b) = raw.log_burst {
        if b == 0 {
            return Err("log_burst must be at least 1".to_string());
        }
        l.log = LogLimits { burst: b, ..l.log };
    }
    Ok(l)
}

fn resolve(dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validate config text (`path` is used for messages and relative paths).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let cx = Ctx { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            cx.at(span, "toml", e.message().trim().to_string())
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };

        let mut limits = Limits::default();
        if let Some(l) = &raw.runtime.limits {
            limits = apply_limits(limits, l.get_ref())
                .map_err(|m| cx.at(l.span(), "runtime.limits", m))?;
        }
        let state_dir = resolve(
            &dir,
            raw.runtime.state_dir.as_deref().unwrap_or(".provisio"),
        );
        let store_path = resolve(
            &state_dir,
            raw.runtime.store.as_deref().unwrap_or("provisio.db"),
        );

        let mut sources = BTreeMap::new();
        for (name, s) in raw.sources {
            if s.path.is_none() && s.users_csv.is_none() {
                return Err(ConfigError::General {
                    path: path.to_path_buf(),
                    message: format!(
                        "sources.{name}: give path = \"directory.json\" and/or users_csv = \"users.csv\""
                    ),
                });
            }
            sources.insert(
                name.clone(),
                SourceConfig {
                    name,
                    path: s.path.map(|p| resolve(&dir, p.get_ref())),
                    users_csv: s.users_csv.map(|p| resolve(&dir, p.get_ref())),
                },
            );
        }

        let mut plugins = BTreeMap::new();
        for (name, p) in raw.plugins {
            let field = format!("plugins.{name}");
            let sha = p.sha256.ok_or_else(|| {
                cx.at(
                    p.path.span(),
                    format!("{field}.sha256"),
                    "every plugin must be pinned by its sha256; run `provisio plugin inspect <file>` \
                     to see the digest and add sha256 = \"<digest>\"",
                )
            })?;
            let s = sha.get_ref().trim().to_ascii_lowercase();
            if s.len() != 64 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(cx.at(
                    sha.span(),
                    format!("{field}.sha256"),
                    "must be 64 hexadecimal digits",
                ));
            }
            plugins.insert(
                name.clone(),
                PluginConfig {
                    name,
                    path: resolve(&dir, p.path.get_ref()),
                    sha256: s,
                },
            );
        }

        let mut secrets = BTreeMap::new();
        for (name, s) in raw.secrets {
            let field = format!("secrets.{name}");
            let span = s.hosts.span();
            let sources: Vec<(SecretSource, Range<usize>)> = [
                s.env
                    .map(|e| (SecretSource::Env(e.get_ref().clone()), e.span())),
                s.file
                    .map(|f| (SecretSource::File(resolve(&dir, f.get_ref())), f.span())),
                s.value
                    .map(|v| (SecretSource::Inline(v.get_ref().clone()), v.span())),
            ]
            .into_iter()
            .flatten()
            .collect();
            if sources.len() != 1 {
                return Err(cx.at(
                    span.clone(),
                    field,
                    "give exactly one of env = \"VAR\", file = \"path\" or value = \"...\" (development only)",
                ));
            }
            let (source, source_span) = sources
                .into_iter()
                .next()
                .ok_or_else(|| cx.at(span.clone(), "secrets", "no source"))?;
            let mut hosts = Vec::new();
            for h in s.hosts.get_ref() {
                hosts.push(
                    HostPattern::parse(h.get_ref())
                        .map_err(|m| cx.at(h.span(), format!("{field}.hosts"), m))?,
                );
            }
            secrets.insert(
                name,
                SecretConfig {
                    source,
                    hosts,
                    span: source_span,
                },
            );
        }

        let mut connections = BTreeMap::new();
        for (name, c) in raw.connections {
            let field = format!("connections.{name}");
            if !plugins.contains_key(c.plugin.get_ref()) {
                return Err(cx.at(
                    c.plugin.span(),
                    format!("{field}.plugin"),
                    format!(
                        "no plugin named '{}' (defined: {}); add a [plugins.{}] table",
                        c.plugin.get_ref(),
                        list(plugins.keys()),
                        c.plugin.get_ref()
                    ),
                ));
            }
            let mut grants = BTreeMap::new();
            let mut placements = BTreeMap::new();
            for (plugin_name, grant) in c.secrets {
                let gfield = format!("{field}.secrets.{plugin_name}");
                let span = grant.span();
                let (op, confirmed) = parse_secret_grant(grant.into_inner())
                    .map_err(|m| cx.at(span.clone(), gfield.clone(), m))?;
                let op = Spanned::new(span, op);
                if let Some(confirmed) = confirmed {
                    placements.insert(plugin_name.clone(), confirmed);
                }
                if !secrets.contains_key(op.get_ref()) {
                    return Err(cx.at(
                        op.span(),
                        format!("{field}.secrets.{plugin_name}"),
                        format!(
                            "no secret named '{}' (defined: {}); add a [secrets.{}] table",
                            op.get_ref(),
                            list(secrets.keys()),
                            op.get_ref()
                        ),
                    ));
                }
                if secrets
                    .get(op.get_ref())
                    .is_some_and(|s: &SecretConfig| s.hosts.is_empty())
                {
                    return Err(cx.at(
                        op.span(),
                        format!("{field}.secrets.{plugin_name}"),
                        format!(
                            "secret '{}' has hosts = []: bind it to at least one origin it may be sent to, e.g. hosts = [\"https://acme.zendesk.com\"]",
                            op.get_ref()
                        ),
                    ));
                }
                grants.insert(plugin_name, op.into_inner());
            }
            let mut allowed = Vec::new();
            let mut private = Vec::new();
            for h in &c.allowed_hosts {
                let (pattern, is_private) = parse_grant(h.get_ref())
                    .map_err(|m| cx.at(h.span(), format!("{field}.allowed_hosts"), m))?;
                if is_private {
                    private.push(pattern.clone());
                }
                allowed.push(pattern);
            }
            let conn_limits = match &c.limits {
                Some(l) => apply_limits(limits, l.get_ref())
                    .map_err(|m| cx.at(l.span(), format!("{field}.limits"), m))?,
                None => limits,
            };
            if let Some(src) = &c.source
                && !sources.contains_key(src.get_ref())
            {
                return Err(cx.at(
                    src.span(),
                    format!("{field}.source"),
                    format!(
                        "no source named '{}' (defined: {}); add a [sources.{}] table",
                        src.get_ref(),
                        list(sources.keys()),
                        src.get_ref()
                    ),
                ));
            }
            let scope = match c.scope {
                Some(s) => {
                    let span = s.span();
                    let scope = s.into_inner();
                    scope
                        .validate()
                        .map_err(|m| cx.at(span, format!("{field}.scope"), m))?;
                    scope
                }
                None => ScopeConfig::default(),
            };
            let interval = match &c.interval_seconds {
                Some(v) if !(v.get_ref().is_finite() && *v.get_ref() >= 0.1) => {
                    return Err(cx.at(
                        v.span(),
                        format!("{field}.interval_seconds"),
                        "must be a number of seconds, at least 0.1",
                    ));
                }
                Some(v) => Duration::from_secs_f64(*v.get_ref()),
                None => crate::scheduler::DEFAULT_INTERVAL,
            };
            let escrow_max_interval = match &c.escrow_max_interval_seconds {
                Some(v) if !(v.get_ref().is_finite() && *v.get_ref() >= 0.0) => {
                    return Err(cx.at(
                        v.span(),
                        format!("{field}.escrow_max_interval_seconds"),
                        "must be a number of seconds, 0 or more (0: retry failed objects in every cycle)",
                    ));
                }
                Some(v) => Duration::from_secs_f64(v.get_ref().min(1e9)),
                None => crate::store::ESCROW_MAX_BACKOFF,
            };
            let reconcile = match &c.reconcile {
                Some(r) => parse_reconcile(&cx, &format!("{field}.reconcile"), r.get_ref())?,
                None => crate::drift::DriftPolicy::default(),
            };
            let concurrency = match c.concurrency {
                Some(n) if *n.get_ref() == 0 || *n.get_ref() > 64 => {
                    return Err(cx.at(
                        n.span(),
                        format!("{field}.concurrency"),
                        "must be between 1 and 64",
                    ));
                }
                Some(n) => n.into_inner(),
                None => 4,
            };
            // The operator's mappings get the same bounds check as a
            // connector's defaults, before anything runs.
            for (kind, overrides) in [("users", &c.mappings.users), ("groups", &c.mappings.groups)]
            {
                for o in overrides {
                    if let Err(e) = crate::mapping::check_override(o) {
                        return Err(ConfigError::General {
                            path: path.to_path_buf(),
                            message: format!("{field}.mappings.{kind}: {}", e.render()),
                        });
                    }
                }
            }
            connections.insert(
                name.clone(),
                ConnectionConfig {
                    name,
                    plugin: c.plugin.into_inner(),
                    settings: c.settings,
                    secrets: grants,
                    secret_placements: placements,
                    allowed_hosts: allowed,
                    private_hosts: private,
                    limits: conn_limits,
                    source: c.source.map(Spanned::into_inner),
                    scope,
                    user_mappings: c.mappings.users,
                    group_mappings: c.mappings.groups,
                    deletion_threshold: match c.deletion_threshold {
                        Some(0) => None,
                        Some(n) => Some(n),
                        None => Some(DEFAULT_DELETION_THRESHOLD),
                    },
                    skip_out_of_scope_deletions: c.skip_out_of_scope_deletions,
                    concurrency,
                    interval,
                    escrow_max_interval,
                    reconcile,
                },
            );
        }

        let service = match raw.service {
            None => ServiceConfig::default(),
            Some(svc) => {
                let span = svc.span();
                let svc = svc.into_inner();
                let mut out = ServiceConfig::default();
                if let Some(l) = svc.listen {
                    out.listen = Some(l.get_ref().parse().map_err(|_| {
                        cx.at(
                            l.span(),
                            "service.listen",
                            format!(
                                "'{}' is not an address: write ip:port, e.g. \"127.0.0.1:8787\"",
                                l.get_ref()
                            ),
                        )
                    })?);
                }
                if let Some(t) = svc.token_secret {
                    if !secrets.contains_key(t.get_ref()) {
                        return Err(cx.at(
                            t.span(),
                            "service.token_secret",
                            format!(
                                "no secret named '{}' (defined: {}); add a [secrets.{}] entry with hosts = []",
                                t.get_ref(),
                                list(secrets.keys()),
                                t.get_ref()
                            ),
                        ));
                    }
                    out.token_secret = Some(t.into_inner());
                }
                if out.listen.is_some() && out.token_secret.is_none() {
                    return Err(cx.at(
                        span,
                        "service.token_secret",
                        "the admin API needs a bearer token: set token_secret to a [secrets.*] entry \
                         (e.g. env = \"PROVISIO_ADMIN_TOKEN\", hosts = []), or remove listen",
                    ));
                }
                if let Some(n) = svc.max_concurrent_cycles {
                    if !(1..=256).contains(n.get_ref()) {
                        return Err(cx.at(
                            n.span(),
                            "service.max_concurrent_cycles",
                            "must be between 1 and 256",
                        ));
                    }
                    out.max_concurrent_cycles = n.into_inner();
                }
                if let Some(d) = svc.log_retention_days {
                    if !(1..=3650).contains(d.get_ref()) {
                        return Err(cx.at(
                            d.span(),
                            "service.log_retention_days",
                            "must be between 1 and 3650",
                        ));
                    }
                    out.log_retention = Duration::from_secs(u64::from(*d.get_ref()) * 86_400);
                }
                out
            }
        };

        let notifications = match raw.notifications {
            Some(n) => parse_notifications(&cx, n, &secrets)?,
            None => NotificationsConfig::default(),
        };

        Ok(Config {
            path: path.to_path_buf(),
            state_dir,
            limits,
            store_path,
            service,
            notifications,
            sources,
            plugins,
            secrets,
            connections,
            text: text.to_string(),
        })
    }

    /// A plugin entry.
    pub fn plugin(&self, name: &str) -> Result<&PluginConfig, ConfigError> {
        self.plugins.get(name).ok_or_else(|| ConfigError::General {
            path: self.path.clone(),
            message: format!(
                "no plugin named '{name}' (defined: {})",
                list(self.plugins.keys())
            ),
        })
    }

    /// A connection entry.
    pub fn connection(&self, name: &str) -> Result<&ConnectionConfig, ConfigError> {
        self.connections
            .get(name)
            .ok_or_else(|| ConfigError::General {
                path: self.path.clone(),
                message: format!(
                    "no connection named '{name}' (defined: {}); add a [connections.{name}] table",
                    list(self.connections.keys())
                ),
            })
    }

    /// The source a connection syncs from.
    pub fn source_for(&self, connection: &str) -> Result<DirectorySource, ConfigError> {
        let c = self.connection(connection)?;
        let name = c.source.as_ref().ok_or_else(|| ConfigError::General {
            path: self.path.clone(),
            message: format!("connection '{connection}' has no source; add source = \"<name of a [sources.*] table>\""),
        })?;
        let s = self.sources.get(name).ok_or_else(|| ConfigError::General {
            path: self.path.clone(),
            message: format!("no source named '{name}'"),
        })?;
        Ok(DirectorySource {
            json: s.path.clone(),
            users_csv: s.users_csv.clone(),
        })
    }

    /// Names of the connections that have a source.
    pub fn connections_with_source(&self) -> Vec<String> {
        self.connections
            .values()
            .filter(|c| c.source.is_some())
            .map(|c| c.name.clone())
            .collect()
    }

    /// Names of all connections.
    pub fn connection_names(&self) -> Vec<String> {
        self.connections.keys().cloned().collect()
    }

    /// Resolve a connection into the runtime's spec, reading its secrets' values.
    pub fn connection_spec(
        &self,
        name: &str,
    ) -> Result<(PluginConfig, ConnectionSpec), ConfigError> {
        let c = self.connection(name)?;
        let plugin = self.plugin(&c.plugin)?.clone();
        let mut secrets = BTreeMap::new();
        for (plugin_name, op_name) in &c.secrets {
            let s = self
                .secrets
                .get(op_name)
                .ok_or_else(|| ConfigError::General {
                    path: self.path.clone(),
                    message: format!("no secret named '{op_name}'"),
                })?;
            let value = self.resolve_secret(op_name, s, &format!("connection '{name}'"))?;
            secrets.insert(
                plugin_name.clone(),
                Arc::new(Secret {
                    name: op_name.clone(),
                    value,
                    bound_to: s.hosts.clone(),
                }),
            );
        }
        Ok((
            plugin,
            ConnectionSpec {
                name: c.name.clone(),
                settings: c.settings.clone(),
                allowed_hosts: c.allowed_hosts.clone(),
                private_hosts: c.private_hosts.clone(),
                secrets,
                secret_placements: c.secret_placements.clone(),
                limits: c.limits,
            },
        ))
    }

    /// The value of the `[secrets.<name>]` entry, for `needed_by` (named in
    /// the error when it cannot be read). Registered with the redactor, so
    /// it never shows in a log line.
    pub fn secret_value(&self, name: &str, needed_by: &str) -> Result<SecretValue, ConfigError> {
        let s = self.secrets.get(name).ok_or_else(|| ConfigError::General {
            path: self.path.clone(),
            message: format!("no secret named '{name}' (needed by {needed_by})"),
        })?;
        self.resolve_secret(name, s, needed_by)
    }

    fn resolve_secret(
        &self,
        op_name: &str,
        s: &SecretConfig,
        needed_by: &str,
    ) -> Result<SecretValue, ConfigError> {
        {
            let field = format!("secrets.{op_name}");
            let cx = Ctx {
                path: &self.path,
                text: &self.text,
            };
            let value = match &s.source {
                SecretSource::Env(var) => std::env::var(var).map_err(|_| {
                    cx.at(
                        s.span.clone(),
                        format!("{field}.env"),
                        format!("environment variable {var} is not set (needed by {needed_by})"),
                    )
                })?,
                SecretSource::File(p) => std::fs::read_to_string(p)
                    .map_err(|e| {
                        cx.at(
                            s.span.clone(),
                            format!("{field}.file"),
                            format!("cannot read {}: {e}", p.display()),
                        )
                    })?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
                SecretSource::Inline(v) => {
                    tracing::warn!(
                        "{field}: inline secret value; use env or file outside development"
                    );
                    v.clone()
                }
            };
            if value.len() < MIN_SECRET_LEN {
                return Err(cx.at(
                    s.span.clone(),
                    field,
                    format!("the secret's value is shorter than {MIN_SECRET_LEN} characters; that cannot be a real credential"),
                ));
            }
            Ok(SecretValue::new(value))
        }
    }
}

fn parse_notifications(
    cx: &Ctx<'_>,
    n: RawNotifications,
    secrets: &BTreeMap<String, SecretConfig>,
) -> Result<NotificationsConfig, ConfigError> {
    let known_secret =
        |name: &Spanned<String>, field: &str| -> Result<&SecretConfig, ConfigError> {
            secrets.get(name.get_ref()).ok_or_else(|| {
                cx.at(
                    name.span(),
                    field,
                    format!(
                        "no secret named '{}' (defined: {}); add a [secrets.{}] table",
                        name.get_ref(),
                        list(secrets.keys()),
                        name.get_ref()
                    ),
                )
            })
        };
    let mut out = NotificationsConfig::default();
    if let Some(w) = n.webhook {
        let w = w.into_inner();
        let field = "notifications.webhook.url";
        let url = url::Url::parse(w.url.get_ref()).map_err(|e| {
            cx.at(
                w.url.span(),
                field,
                format!(
                    "'{}' is not a URL ({e}); write it as \"https://hooks.example.com/provisio\"",
                    w.url.get_ref()
                ),
            )
        })?;
        let loopback = url.host_str().is_some_and(is_loopback_host);
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(cx.at(
                    w.url.span(),
                    field,
                    "the webhook must use https; plain http is allowed only on a loopback address (127.0.0.1, ::1, localhost)",
                ));
            }
            other => {
                return Err(cx.at(
                    w.url.span(),
                    field,
                    format!("scheme '{other}' is not supported; use https (or http on a loopback address)"),
                ));
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(cx.at(
                w.url.span(),
                field,
                "the URL contains credentials; put them in a [secrets.*] entry and name it with secret = \"...\"",
            ));
        }
        let auth = match w.auth.as_ref().map(|a| a.get_ref().as_str()) {
            None | Some("hmac") => WebhookAuth::Hmac,
            Some("bearer") => WebhookAuth::Bearer,
            Some(other) => {
                let span = w.auth.as_ref().map(Spanned::span).unwrap_or(0..0);
                return Err(cx.at(
                    span,
                    "notifications.webhook.auth",
                    format!("unknown auth '{other}'; use \"hmac\" (a signature header, the default) or \"bearer\""),
                ));
            }
        };
        if w.auth.is_some() && w.secret.is_none() {
            let span = w.auth.as_ref().map(Spanned::span).unwrap_or(0..0);
            return Err(cx.at(
                span,
                "notifications.webhook.auth",
                "auth needs a secret: add secret = \"<name of a [secrets.*] entry>\"",
            ));
        }
        if let Some(sec) = &w.secret {
            let conf = known_secret(sec, "notifications.webhook.secret")?;
            if !conf.hosts.iter().any(|h| h.matches(&url)) {
                return Err(cx.at(
                    sec.span(),
                    "notifications.webhook.secret",
                    format!(
                        "secret '{}' is not bound to the webhook's origin; add \"{}\" to secrets.{}.hosts",
                        sec.get_ref(),
                        url.origin().ascii_serialization(),
                        sec.get_ref()
                    ),
                ));
            }
        }
        out.webhook = Some(WebhookConfig {
            url,
            secret: w.secret.map(Spanned::into_inner),
            auth,
        });
    }
    if let Some(e) = n.email {
        let span = e.span();
        let e = e.into_inner();
        let tls = match e.tls.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("starttls") => SmtpTls::Starttls,
            Some("tls") => SmtpTls::Tls,
            Some("none") => SmtpTls::None,
            Some(other) => {
                let span = e.tls.as_ref().map(Spanned::span).unwrap_or(0..0);
                return Err(cx.at(
                    span,
                    "notifications.email.tls",
                    format!("unknown tls mode '{other}'; use \"starttls\" (default, port 587), \"tls\" (port 465) or \"none\" (loopback relays only)"),
                ));
            }
        };
        let host = e.smtp_host.get_ref().trim().to_string();
        let ip_literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok();
        if host.is_empty() || host.contains(['/', ' ']) || (host.contains(':') && !ip_literal) {
            return Err(cx.at(
                e.smtp_host.span(),
                "notifications.email.smtp_host",
                "give the relay's host name only, e.g. smtp_host = \"smtp.example.com\" (the port goes in smtp_port)",
            ));
        }
        if tls == SmtpTls::None && !is_loopback_host(&host) {
            return Err(cx.at(
                e.tls.as_ref().map(Spanned::span).unwrap_or(e.smtp_host.span()),
                "notifications.email.tls",
                "tls = \"none\" sends mail and password in the clear; it is allowed only toward a loopback relay (127.0.0.1, ::1, localhost); use \"starttls\" or \"tls\"",
            ));
        }
        let mailbox = |v: &Spanned<String>, field: &str| -> Result<String, ConfigError> {
            v.get_ref()
                .parse::<lettre::message::Mailbox>()
                .map(|_| v.get_ref().clone())
                .map_err(|err| {
                    cx.at(
                        v.span(),
                        field,
                        format!("'{}' is not an email address ({err}); write \"ops@example.com\" or \"Ops <ops@example.com>\"", v.get_ref()),
                    )
                })
        };
        let from = mailbox(&e.from, "notifications.email.from")?;
        if e.to.get_ref().is_empty() {
            return Err(cx.at(
                e.to.span(),
                "notifications.email.to",
                "give at least one recipient, e.g. to = [\"ops@example.com\"]",
            ));
        }
        let mut to = Vec::new();
        for t in e.to.get_ref() {
            to.push(mailbox(t, "notifications.email.to")?);
        }
        match (&e.username, &e.password_secret) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(cx.at(
                    span,
                    "notifications.email",
                    "give both username and password_secret (SMTP authentication) or neither",
                ));
            }
            _ => {}
        }
        if let Some(p) = &e.password_secret {
            known_secret(p, "notifications.email.password_secret")?;
        }
        out.email = Some(EmailConfig {
            smtp_port: e.smtp_port.unwrap_or(match tls {
                SmtpTls::None => 25,
                SmtpTls::Starttls => 587,
                SmtpTls::Tls => 465,
            }),
            smtp_host: host,
            tls,
            from,
            to,
            username: e.username.map(Spanned::into_inner),
            password_secret: e.password_secret.map(Spanned::into_inner),
        });
    }
    if let Some(events) = n.events {
        out.events.clear();
        for ev in events {
            let kind = EventKind::parse(ev.get_ref()).ok_or_else(|| {
                cx.at(
                    ev.span(),
                    "notifications.events",
                    format!(
                        "unknown event '{}'; the events are {}",
                        ev.get_ref(),
                        EventKind::ALL
                            .iter()
                            .map(|k| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            out.events.insert(kind);
        }
    }
    if let Some(w) = n.dedup_window_seconds {
        out.dedup_window = Duration::from_secs(*w.get_ref());
    }
    if let Some(m) = n.max_per_hour {
        if *m.get_ref() == 0 {
            return Err(cx.at(
                m.span(),
                "notifications.max_per_hour",
                "must be at least 1 (remove the channel to send nothing)",
            ));
        }
        out.max_per_hour = *m.get_ref();
    }
    Ok(out)
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

/// A connection's secret grant: `"<secret>"`, or the long form
/// `{ secret = "<secret>", placements = ["bearer", "login:<exchange>", ...] }`
/// that confirms where the plugin may place it.
fn parse_secret_grant(
    v: toml::Value,
) -> Result<(String, Option<Vec<crate::model::Placement>>), String> {
    const FORM: &str = "a grant is the name of a [secrets.*] entry, or \
        { secret = \"<name>\", placements = [\"bearer\" | \"basic\" | \"header:<name>\" | \"login:<exchange>\", ...] }";
    match v {
        toml::Value::String(name) => Ok((name, None)),
        toml::Value::Table(mut t) => {
            let secret = match t.remove("secret") {
                Some(toml::Value::String(s)) => s,
                Some(_) => return Err(format!("`secret` must be a string; {FORM}")),
                None => return Err(format!("`secret` is missing; {FORM}")),
            };
            let placements = match t.remove("placements") {
                Some(toml::Value::Array(items)) => {
                    let mut out = Vec::new();
                    for item in items {
                        let toml::Value::String(p) = item else {
                            return Err(format!("`placements` must list strings; {FORM}"));
                        };
                        out.push(
                            p.parse::<crate::model::Placement>()
                                .map_err(|e| e.to_string())?,
                        );
                    }
                    if out.is_empty() {
                        return Err(format!("`placements` is empty; {FORM}"));
                    }
                    out
                }
                Some(_) => return Err(format!("`placements` must be a list; {FORM}")),
                None => return Err(format!("`placements` is missing; {FORM}")),
            };
            if let Some(k) = t.keys().next() {
                return Err(format!("unknown key `{k}`; {FORM}"));
            }
            Ok((secret, Some(placements)))
        }
        _ => Err(FORM.to_string()),
    }
}

/// How an `allowed_hosts` entry is written, for error messages.
const GRANT_SYNTAX: &str = "an allowed_hosts entry is an origin string such as \"https://api.example.com\" \
     or a table { origin = \"http://idp.internal:8080\", private = true } (private = true lets the \
     origin's host name resolve to loopback, private and other non-public addresses)";

/// One `allowed_hosts` entry: an origin string, or `{ origin, private }`.
/// Returns the pattern and whether it is opted in to non-public addresses.
fn parse_grant(value: &toml::Value) -> Result<(HostPattern, bool), String> {
    match value {
        toml::Value::String(s) => Ok((HostPattern::parse(s)?, false)),
        toml::Value::Table(t) => {
            if let Some(k) = t
                .keys()
                .find(|k| !matches!(k.as_str(), "origin" | "private"))
            {
                return Err(format!("unknown key '{k}'; {GRANT_SYNTAX}"));
            }
            let origin = match t.get("origin") {
                Some(toml::Value::String(o)) => o,
                Some(other) => {
                    return Err(format!(
                        "origin must be a string, not {}; {GRANT_SYNTAX}",
                        with_article(other.type_str())
                    ));
                }
                None => return Err(format!("the table has no origin; {GRANT_SYNTAX}")),
            };
            let private = match t.get("private") {
                Some(toml::Value::Boolean(b)) => *b,
                Some(other) => {
                    return Err(format!(
                        "private must be true or false, not {}; {GRANT_SYNTAX}",
                        with_article(other.type_str())
                    ));
                }
                None => false,
            };
            Ok((HostPattern::parse(origin)?, private))
        }
        other => Err(format!(
            "{} is not a grant; {GRANT_SYNTAX}",
            with_article(other.type_str())
        )),
    }
}

/// "an integer", "a string".
fn with_article(noun: &str) -> String {
    if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {noun}")
    } else {
        format!("a {noun}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/provisio/provisio.toml"), text)
    }

    fn good() -> String {
        format!(
            r#"
[plugins.scim]
path = "scim.wasm"
sha256 = "{SHA}"

[secrets.tok]
value = "abcdef-inline"
hosts = ["http://127.0.0.1:18080"]

[connections.demo]
plugin = "scim"
settings = {{ base_url = "http://127.0.0.1:18080/v2" }}
secrets = {{ token = "tok" }}
allowed_hosts = ["http://127.0.0.1:18080"]
limits = {{ memory_mb = 32 }}
"#
        )
    }

    #[test]
    fn loads_a_good_config() {
        let c = parse(&good()).unwrap();
        assert_eq!(
            c.plugin("scim").unwrap().path,
            PathBuf::from("/etc/provisio/scim.wasm")
        );
        assert_eq!(c.state_dir, PathBuf::from("/etc/provisio/.provisio"));
        let (p, spec) = c.connection_spec("demo").unwrap();
        assert_eq!(p.name, "scim");
        assert_eq!(spec.limits.memory_bytes, 32 * 1024 * 1024);
        assert_eq!(spec.secrets["token"].value.expose(), "abcdef-inline");
    }

    #[test]
    fn reconcile_policy_defaults_and_bad_values_name_the_field() {
        use crate::drift::{DeletedInTarget, Orphans};
        let c = parse(&good()).unwrap();
        assert_eq!(
            c.connection("demo").unwrap().reconcile,
            crate::drift::DriftPolicy::default()
        );
        let with = |table: &str| format!("{}\n[connections.demo.reconcile]\n{table}\n", good());
        let c = parse(&with(
            "interval_seconds = 3600\ndeleted_in_target = \"report\"\norphans = \"delete\"\nignore = [\"Title\"]",
        ))
        .unwrap();
        let r = &c.connection("demo").unwrap().reconcile;
        assert_eq!(r.interval, Some(Duration::from_secs(3600)));
        assert_eq!(r.deleted_in_target, DeletedInTarget::Report);
        assert_eq!(r.orphans, Orphans::Delete);
        assert!(r.ignore.contains("title"));
        for (bad, field, hint) in [
            ("orphans = \"remove\"", "reconcile.orphans", "\"delete\""),
            (
                "deleted_in_target = \"ignore\"",
                "reconcile.deleted_in_target",
                "\"recreate\"",
            ),
            (
                "interval_seconds = 0",
                "reconcile.interval_seconds",
                "at least 1",
            ),
            ("ignore = [\"\"]", "reconcile.ignore", "empty"),
            ("orphan = \"delete\"", "unknown field `orphan`", "`orphans`"),
        ] {
            let e = parse(&with(bad)).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains(hint), "{bad}: {e}");
        }
    }

    #[test]
    fn escrow_max_interval_defaults_to_a_day_and_takes_zero() {
        let c = parse(&good()).unwrap();
        assert_eq!(
            c.connection("demo").unwrap().escrow_max_interval,
            crate::store::ESCROW_MAX_BACKOFF
        );
        let with = |v: &str| {
            good().replace(
                "limits = { memory_mb = 32 }",
                &format!("limits = {{ memory_mb = 32 }}\nescrow_max_interval_seconds = {v}"),
            )
        };
        let c = parse(&with("0")).unwrap();
        assert_eq!(
            c.connection("demo").unwrap().escrow_max_interval,
            Duration::ZERO
        );
        let c = parse(&with("90.5")).unwrap();
        assert_eq!(
            c.connection("demo").unwrap().escrow_max_interval,
            Duration::from_secs_f64(90.5)
        );
        for bad in ["-1", "nan", "inf"] {
            let e = parse(&with(bad)).unwrap_err().to_string();
            assert!(
                e.contains("connections.demo.escrow_max_interval_seconds")
                    && e.contains("0 or more"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn long_grants_confirm_placements() {
        let text = good().replace(
            r#"secrets = { token = "tok" }"#,
            r#"secrets = { token = { secret = "tok", placements = ["bearer", "header:X-Api-Key", "login:login"] } }"#,
        );
        let c = parse(&text).unwrap();
        let (_, spec) = c.connection_spec("demo").unwrap();
        assert_eq!(spec.secrets["token"].value.expose(), "abcdef-inline");
        assert_eq!(
            spec.secret_placements["token"],
            vec![
                crate::model::Placement::Bearer,
                crate::model::Placement::Header("X-Api-Key".into()),
                crate::model::Placement::Login("login".into()),
            ]
        );
        let plain = parse(&good()).unwrap();
        assert!(
            plain
                .connection_spec("demo")
                .unwrap()
                .1
                .secret_placements
                .is_empty()
        );
        for (bad, says) in [
            (r#"{ secret = "tok" }"#, "`placements` is missing"),
            (
                r#"{ secret = "tok", placements = ["url"] }"#,
                "'url' is not a secret placement",
            ),
            (
                r#"{ secret = "tok", placements = [] }"#,
                "`placements` is empty",
            ),
            (
                r#"{ secret = "tok", placements = ["bearer"], extra = 1 }"#,
                "unknown key `extra`",
            ),
            (r#"{ placements = ["bearer"] }"#, "`secret` is missing"),
            ("3", "a grant is the name of a [secrets.*] entry"),
        ] {
            let text = good().replace(
                r#"secrets = { token = "tok" }"#,
                &format!("secrets = {{ token = {bad} }}"),
            );
            let e = parse(&text).unwrap_err().to_string();
            assert!(
                e.contains("connections.demo.secrets.token") && e.contains(says),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn errors_name_line_and_field() {
        let text = good().replace("plugin = \"scim\"", "plugin = \"nope\"");
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.starts_with("/etc/provisio/provisio.toml:11:10: connections.demo.plugin:"),
            "{e}"
        );
        assert!(e.contains("defined: scim"), "{e}");

        let text = good().replace("memory_mb = 32", "memory_mb = 0");
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains(":15:") && e.contains("memory_mb must be between"),
            "{e}"
        );

        let text = good().replace("allowed_hosts", "allowed_host");
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains(":14:") && e.contains("unknown field `allowed_host`"),
            "{e}"
        );
    }

    #[test]
    fn allowed_hosts_take_strings_and_private_opt_in_tables() {
        let text = good().replace(
            r#"allowed_hosts = ["http://127.0.0.1:18080"]"#,
            r#"allowed_hosts = ["http://127.0.0.1:18080", { origin = "http://idp.internal:8080", private = true }, { origin = "https://api.example.com/v2" }, { origin = "https://b.example.com", private = false }]"#,
        );
        let c = parse(&text).unwrap();
        let (_, spec) = c.connection_spec("demo").unwrap();
        let names = |ps: &[HostPattern]| ps.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            names(&spec.allowed_hosts),
            [
                "http://127.0.0.1:18080",
                "http://idp.internal:8080",
                "https://api.example.com/v2",
                "https://b.example.com"
            ]
        );
        assert_eq!(names(&spec.private_hosts), ["http://idp.internal:8080"]);

        for (entry, needle) in [
            (
                r#"{ origin = "http://x:1", privat = true }"#,
                "unknown key 'privat'",
            ),
            (r#"{ private = true }"#, "the table has no origin"),
            (
                r#"{ origin = 5 }"#,
                "origin must be a string, not an integer",
            ),
            (
                r#"{ origin = "http://x:1", private = "yes" }"#,
                "private must be true or false",
            ),
            (
                r#"{ origin = "x.example", private = true }"#,
                "has no scheme",
            ),
            ("7", "an integer is not a grant"),
        ] {
            let text = good().replace(
                r#"allowed_hosts = ["http://127.0.0.1:18080"]"#,
                &format!("allowed_hosts = [{entry}]"),
            );
            let e = parse(&text).unwrap_err().to_string();
            assert!(
                e.contains(":14:")
                    && e.contains("connections.demo.allowed_hosts")
                    && e.contains(needle),
                "{entry}: {e}"
            );
            if !needle.contains("scheme") {
                assert!(e.contains("private = true"), "says how to write it: {e}");
            }
        }
    }

    #[test]
    fn pins_and_secret_sources_are_required() {
        let text = good().replace(&format!("sha256 = \"{SHA}\""), "");
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains("plugins.scim.sha256") && e.contains("plugin inspect"),
            "{e}"
        );

        let text = good().replace("value = \"abcdef-inline\"", "");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("exactly one of env"), "{e}");

        let text = good().replace(
            "hosts = [\"http://127.0.0.1:18080\"]\n\n[conn",
            "hosts = []\n\n[conn",
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains("secret 'tok' has hosts = []") && e.contains("connections.demo.secrets"),
            "a secret granted to a connection must be bound to origins: {e}"
        );
    }

    #[test]
    fn service_section() {
        let c = parse(&good()).unwrap();
        assert!(c.service.listen.is_none());
        assert_eq!(
            c.service.max_concurrent_cycles,
            DEFAULT_MAX_CONCURRENT_CYCLES
        );
        let with = |svc: &str| {
            format!(
                "{svc}\n[secrets.admin]\nenv = \"X\"\nhosts = []\n{}",
                good()
            )
        };
        let c = parse(&with(
            "[service]\nlisten = \"127.0.0.1:8787\"\ntoken_secret = \"admin\"\nlog_retention_days = 7",
        ))
        .unwrap();
        assert_eq!(c.service.listen.unwrap().port(), 8787);
        assert_eq!(c.service.log_retention, Duration::from_secs(7 * 86_400));
        let e = parse(&with("[service]\nlisten = \"127.0.0.1:8787\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("service.token_secret") && e.contains("bearer token"),
            "{e}"
        );
        let e = parse(&with(
            "[service]\nlisten = \"localhost\"\ntoken_secret = \"admin\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("service.listen") && e.contains(":2:"), "{e}");
        let e = parse(&with(
            "[service]\nlisten = \"127.0.0.1:1\"\ntoken_secret = \"nope\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("no secret named 'nope'"), "{e}");
    }

    #[test]
    fn missing_env_secret_is_reported_for_its_connection_only() {
        let text = good().replace(
            "value = \"abcdef-inline\"",
            "env = \"PROVISIO_TEST_UNSET_VAR_X\"",
        );
        let c = parse(&text).unwrap();
        let e = c.connection_spec("demo").unwrap_err().to_string();
        assert!(
            e.contains("PROVISIO_TEST_UNSET_VAR_X is not set") && e.contains(":7:"),
            "{e}"
        );
        let e = c.connection_spec("other").unwrap_err().to_string();
        assert!(e.contains("no connection named 'other'"), "{e}");
    }

    fn with_notifications(section: &str) -> Result<Config, ConfigError> {
        parse(&format!(
            "{}\n[secrets.hook]\nvalue = \"hook-secret-value\"\nhosts = [\"https://hooks.example.com\"]\n\n[notifications]\n{section}",
            good()
        ))
    }

    #[test]
    fn notifications_section_loads() {
        let c = with_notifications(
            r#"webhook = { url = "https://hooks.example.com/p", secret = "hook" }
email = { smtp_host = "smtp.example.com", from = "Provisio <p@example.com>", to = ["ops@example.com"], username = "p", password_secret = "tok" }
events = ["quarantined", "staged_deletions"]
dedup_window_seconds = 600
max_per_hour = 5
"#,
        )
        .unwrap();
        let n = &c.notifications;
        let w = n.webhook.as_ref().unwrap();
        assert_eq!(w.url.as_str(), "https://hooks.example.com/p");
        assert_eq!(w.auth, WebhookAuth::Hmac);
        let e = n.email.as_ref().unwrap();
        assert_eq!((e.tls, e.smtp_port), (SmtpTls::Starttls, 587));
        assert_eq!(e.to, ["ops@example.com"]);
        assert_eq!(
            n.events.iter().copied().collect::<Vec<_>>(),
            [EventKind::Quarantined, EventKind::StagedDeletions]
        );
        assert_eq!(n.dedup_window, Duration::from_secs(600));
        assert_eq!(n.max_per_hour, 5);
        // Absent: nothing configured, every event chosen, defaults.
        let d = parse(&good()).unwrap().notifications;
        assert!(d.webhook.is_none() && d.email.is_none());
        assert_eq!(d.events.len(), EventKind::ALL.len());
        // http is fine on loopback.
        let c = with_notifications(r#"webhook = { url = "http://127.0.0.1:9/h" }"#).unwrap();
        assert!(c.notifications.webhook.is_some());
    }

    #[test]
    fn notification_errors_name_the_spot_and_the_fix() {
        let base_line = good().lines().count() + 6;
        let e = with_notifications(r#"webhook = { url = "http://hooks.example.com/p" }"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!(":{}:", base_line + 1))
                && e.contains("notifications.webhook.url")
                && e.contains("must use https"),
            "{e}"
        );
        let e = with_notifications(
            r#"webhook = { url = "https://other.example.com/p", secret = "hook" }"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("not bound to the webhook's origin")
                && e.contains("\"https://other.example.com\""),
            "{e}"
        );
        assert!(!e.contains("hook-secret-value"), "{e}");
        let e = with_notifications(
            r#"email = { smtp_host = "smtp.example.com", tls = "none", from = "a@example.com", to = ["b@example.com"] }"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("notifications.email.tls") && e.contains("loopback"),
            "{e}"
        );
        let e = with_notifications(
            r#"email = { smtp_host = "127.0.0.1", tls = "none", from = "not an address", to = ["b@example.com"] }"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("notifications.email.from") && e.contains("not an email address"),
            "{e}"
        );
        let e = with_notifications(
            r#"email = { smtp_host = "127.0.0.1", tls = "none", from = "a@example.com", to = ["b@example.com"], username = "u" }"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("both username and password_secret"), "{e}");
        let e = with_notifications(
            r#"email = { smtp_host = "127.0.0.1", tls = "none", from = "a@example.com", to = ["b@example.com"], username = "u", password_secret = "nope" }"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no secret named 'nope'"), "{e}");
        let e = with_notifications(r#"events = ["quarantine"]"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown event 'quarantine'") && e.contains("left_quarantine"),
            "{e}"
        );
        let e = with_notifications("max_per_hour = 0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("notifications.max_per_hour"), "{e}");
    }

    #[test]
    fn bad_toml_points_at_the_spot() {
        let e = parse("[plugins.scim\npath = 1").unwrap_err().to_string();
        assert!(e.starts_with("/etc/provisio/provisio.toml:1:"), "{e}");
    }

    // ------------------------------------------------ expression bounds (issue 9 item 4)

    #[test]
    fn oversized_mapping_overrides_are_refused_at_load() {
        let mut e = "[x]".to_string();
        for _ in 0..5 {
            e = format!(r#"Replace({e}, "a", , , "aaaaaaaaaa", , )"#);
        }
        let text = format!(
            "{}\n[[connections.demo.mappings.users]]\ntarget = \"nickName\"\nexpression = '{e}'\n",
            good()
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("connections.demo.mappings.users"), "{err}");
        assert!(
            err.contains("'nickName'") && err.contains("max_value_bytes"),
            "{err}"
        );
        let ok = format!(
            "{}\n[[connections.demo.mappings.users]]\ntarget = \"nickName\"\nexpression = 'ToLower([x])'\n",
            good()
        );
        parse(&ok).unwrap();
    }
}
