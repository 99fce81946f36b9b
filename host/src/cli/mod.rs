//! The `provisio` command line.
//!
//! Object commands read a flat JSON object of attributes (`--json`, `--file`, or
//! standard input) and print JSON on standard output; logs and errors go to
//! standard error, redacted.
//!
//! Everything a connector, a target or a source said is untrusted: the CLI
//! renders it through [`crate::untrusted`] (text escaped so that control
//! characters, ANSI sequences, CR/LF and bidi controls show visibly; JSON
//! through [`crate::untrusted::json_safe`]), so nothing printed can act on
//! the operator's terminal or forge a line. `plugin inspect` labels the
//! manifest's name, vendor and description as the plugin's own claims.

pub mod reconcile;
pub mod service;
pub mod sync;

use crate::config::Config;
use crate::model::{Attribute, ObjectKind, Value, attributes_from_json};
use crate::runtime::{CallError, Connection, Plugin, Runtime};
use crate::telemetry::{self, LogFormat};
use crate::untrusted::{Untrusted, json_safe};
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Provisio: user provisioning with sandboxed WebAssembly connectors.
#[derive(Debug, Parser)]
#[command(name = "provisio", version, about)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        short,
        long,
        global = true,
        env = "PROVISIO_CONFIG",
        default_value = "provisio.toml"
    )]
    pub config: PathBuf,
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with plugin files.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Check a connection's settings and credentials against its target.
    TestConnection {
        /// Connection name.
        connection: String,
    },
    /// Operate on users in a connection's target.
    #[command(subcommand)]
    User(ObjectCommand),
    /// Operate on groups in a connection's target.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Run one provisioning cycle (or, with --dry-run, print its plan).
    Sync {
        /// Connection name.
        connection: String,
        /// Print the plan and stop: nothing is sent to the target.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare the target with what was exported and repair the drift
    /// (deleted objects, changed attributes, members; orphans per policy).
    Reconcile {
        /// Connection name.
        connection: String,
        /// List what was found and the repair each needs; nothing is written.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Provision one user (or one group with up to 5 members) now, showing each step.
    Provision {
        /// Connection name.
        connection: String,
        /// A user id from the source.
        #[arg(long, conflicts_with = "group", required_unless_present = "group")]
        user: Option<String>,
        /// A group id from the source.
        #[arg(long)]
        group: Option<String>,
    },
    /// Query and export the provisioning logs.
    Logs {
        /// Only this connection.
        #[arg(long)]
        connection: Option<String>,
        /// Only this cycle.
        #[arg(long)]
        cycle: Option<String>,
        /// Only this object (source or target id).
        #[arg(long)]
        user: Option<String>,
        /// Only this action (create, match, update, enable, disable, delete, staged-disable, staged-delete, skip, drift, other).
        #[arg(long)]
        action: Option<String>,
        /// Only this status (success, failure, skipped, warning).
        #[arg(long)]
        status: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: sync::LogFormat,
        /// At most this many records (newest first).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Work with attribute mappings.
    #[command(subcommand)]
    Mapping(sync::MappingCommand),
    /// Review disables and deletes held by the accidental-deletion guard.
    #[command(subcommand)]
    Staged(sync::StagedCommand),
    /// Run as a service: cycles for every connection with a source (or the
    /// ones named) at their intervals, until SIGTERM or Ctrl-C.
    Run {
        /// Only these connections (default: every connection with a source).
        connections: Vec<String>,
        /// Cycles running at once, across connections (default: `[service]
        /// max_concurrent_cycles`, 4).
        #[arg(long)]
        max_concurrent_cycles: Option<usize>,
        /// Run one cycle per connection, then stop.
        #[arg(long)]
        once: bool,
    },
    /// Work with the state store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Status of every connection (or one) from the running service, or from
    /// the state store when it is not running.
    Status {
        /// Only this connection.
        connection: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Pause a connection under the service: the running cycle finishes, no
    /// new one starts until `resume` (kept across service restarts).
    Pause {
        /// Connection name.
        connection: String,
    },
    /// Resume a paused connection.
    Resume {
        /// Connection name.
        connection: String,
    },
    /// Ask the running service to run a cycle of a connection now.
    Start {
        /// Connection name.
        connection: String,
    },
    /// Restart a connection: the next cycle is an initial cycle and the
    /// escrow (retry queue) is emptied; links are kept unless --forget-links.
    Restart {
        /// Connection name.
        connection: String,
        /// Also forget links and staged actions: every object is matched again.
        #[arg(long)]
        forget_links: bool,
    },
}

/// Plugin commands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show a plugin's manifest, contract version, imports and declared hosts.
    Inspect {
        /// The .wasm file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Attributes given on the command line, in a file, or on standard input.
#[derive(Debug, Args)]
pub struct AttrInput {
    /// A flat JSON object of attributes, e.g. '{"userName":"a@b.c","active":true}'.
    #[arg(long, conflicts_with = "file")]
    pub json: Option<String>,
    /// A file holding the JSON object ("-" for standard input, the default).
    #[arg(long)]
    pub file: Option<PathBuf>,
}

/// Operations on users (and, through [`GroupCommand`], groups).
#[derive(Debug, Subcommand)]
pub enum ObjectCommand {
    /// Create an object from attributes.
    Create {
        /// Connection name.
        connection: String,
        /// Attributes.
        #[command(flatten)]
        input: AttrInput,
    },
    /// Read one object by target id.
    Get {
        /// Connection name.
        connection: String,
        /// Target id.
        id: String,
    },
    /// Find objects whose attribute equals a value.
    Find {
        /// Connection name.
        connection: String,
        /// Attribute path, e.g. userName.
        attribute: String,
        /// Value.
        value: String,
    },
    /// Update only the given attributes (null clears one).
    Update {
        /// Connection name.
        connection: String,
        /// Target id.
        id: String,
        /// Changed attributes.
        #[command(flatten)]
        input: AttrInput,
    },
    /// Disable (soft-delete).
    Disable {
        /// Connection name.
        connection: String,
        /// Target id.
        id: String,
    },
    /// Enable.
    Enable {
        /// Connection name.
        connection: String,
        /// Target id.
        id: String,
    },
    /// Delete.
    Delete {
        /// Connection name.
        connection: String,
        /// Target id.
        id: String,
    },
    /// List objects (all pages).
    List {
        /// Connection name.
        connection: String,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        page_size: u32,
        /// Stop after this many objects.
        #[arg(long)]
        limit: Option<usize>,
    },
}

/// Group commands: the object commands plus membership batches.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// The object operations.
    #[command(flatten)]
    Object(ObjectCommand),
    /// Add members (target ids) to a group in one batch.
    AddMembers {
        /// Connection name.
        connection: String,
        /// Group target id.
        group: String,
        /// Member target ids.
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Remove members (target ids) from a group in one batch.
    RemoveMembers {
        /// Connection name.
        connection: String,
        /// Group target id.
        group: String,
        /// Member target ids.
        #[arg(required = true)]
        members: Vec<String>,
    },
}

/// `provisio store ...`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Check the state file's integrity (SQLite `PRAGMA quick_check`); exits
    /// 1 and lists the problems when it is damaged.
    Check,
}

/// Exit codes of `provisio` (documented in the README).
pub mod exit {
    /// Everything done.
    pub const SUCCESS: u8 = 0;
    /// An error: configuration, setup, the store, a connector call.
    pub const FAILURE: u8 = 1;
    /// `sync`: the cycle ran, but some objects failed or wait in escrow for
    /// a retry (the target is not yet in step).
    pub const INCOMPLETE: u8 = 2;
    /// `sync`: the target rejected the connection's credentials (401); the
    /// cycle stopped and the connection is in quarantine.
    pub const CREDENTIALS_REJECTED: u8 = 3;
    /// Another process holds the connection's lease (`sync`, `provision`).
    pub const BUSY: u8 = 4;
}

/// An outcome that is not a success, with its own exit code (the message is
/// printed as the error).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// One of [`exit`]'s codes.
    pub code: u8,
    /// What to tell the operator.
    pub message: String,
}

/// The exit code for an error the CLI returned.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(x) = e.chain().find_map(|c| c.downcast_ref::<Exit>()) {
        return x.code;
    }
    let busy = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<crate::store::LeaseError>(),
            Some(crate::store::LeaseError::Held { .. })
        ) || matches!(
            c.downcast_ref::<crate::cycle::CycleError>(),
            Some(crate::cycle::CycleError::Busy(_))
        )
    });
    if busy { exit::BUSY } else { exit::FAILURE }
}

/// The subcommand, as a lease records it (`provisio sync`).
fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Sync { .. } => "provisio sync",
        Command::Run { .. } => "provisio run",
        Command::Reconcile { .. } => "provisio reconcile",
        Command::Provision { .. } => "provisio provision",
        _ => "provisio",
    }
}

/// Run the CLI; returns the process exit code.
pub async fn run(cli: Cli) -> Result<()> {
    telemetry::init(cli.log_format);
    crate::lease::set_command(command_name(&cli.command));
    match cli.command {
        Command::Plugin(PluginCommand::Inspect { file, json }) => {
            inspect(&cli.config, &file, json).await
        }
        Command::TestConnection { connection } => {
            let conn = open(&cli.config, &connection).await?;
            let detail = conn.test_connection().await.map_err(call_err)?;
            println!("connection '{connection}' OK: {}", Untrusted::new(&detail));
            Ok(())
        }
        Command::User(cmd) => object(&cli.config, ObjectKind::User, cmd).await,
        Command::Sync {
            connection,
            dry_run,
            json,
        } => sync::sync(&cli.config, &connection, dry_run, json).await,
        Command::Reconcile {
            connection,
            dry_run,
            json,
        } => reconcile::reconcile(&cli.config, &connection, dry_run, json).await,
        Command::Provision {
            connection,
            user,
            group,
        } => match (user, group) {
            (Some(u), _) => sync::provision(&cli.config, &connection, ObjectKind::User, &u).await,
            (None, Some(g)) => {
                sync::provision(&cli.config, &connection, ObjectKind::Group, &g).await
            }
            (None, None) => bail!("give --user <id> or --group <id>"),
        },
        Command::Logs {
            connection,
            cycle,
            user,
            action,
            status,
            format,
            limit,
        } => sync::logs(
            &cli.config,
            connection,
            cycle,
            user,
            action,
            status,
            format,
            limit,
        ),
        Command::Mapping(cmd) => sync::mapping_test(&cli.config, cmd).await,
        Command::Staged(cmd) => sync::staged(&cli.config, cmd).await,
        Command::Run {
            connections,
            max_concurrent_cycles,
            once,
        } => {
            let config = crate::config::Config::load(&cli.config)?;
            let names = if connections.is_empty() {
                config.connections_with_source()
            } else {
                connections
            };
            if names.is_empty() {
                bail!("no connection has a source to sync; add source = \"...\" to a connection");
            }
            for n in &names {
                config.connection(n)?;
            }
            let max = max_concurrent_cycles.unwrap_or(config.service.max_concurrent_cycles);
            crate::scheduler::run(cli.config.clone(), names, max, once).await
        }
        Command::Status { connection, json } => {
            service::status(&cli.config, connection, json).await
        }
        Command::Store(StoreCommand::Check) => {
            let config = Config::load(&cli.config)?;
            let store = open_store(&config)?;
            check_store(&store)?;
            println!("state store {}: ok", config.store_path.display());
            Ok(())
        }
        Command::Pause { connection } => {
            service::control(&cli.config, &connection, service::Control::Pause).await
        }
        Command::Resume { connection } => {
            service::control(&cli.config, &connection, service::Control::Resume).await
        }
        Command::Start { connection } => {
            service::control(&cli.config, &connection, service::Control::Start).await
        }
        Command::Restart {
            connection,
            forget_links,
        } => sync::restart(&cli.config, &connection, forget_links),
        Command::Group(GroupCommand::Object(cmd)) => {
            object(&cli.config, ObjectKind::Group, cmd).await
        }
        Command::Group(GroupCommand::AddMembers {
            connection,
            group,
            members,
        }) => {
            let conn = open(&cli.config, &connection).await?;
            conn.add_members(&group, &members).await.map_err(call_err)?;
            print_json(&serde_json::json!({"group": group, "added": members}))
        }
        Command::Group(GroupCommand::RemoveMembers {
            connection,
            group,
            members,
        }) => {
            let conn = open(&cli.config, &connection).await?;
            conn.remove_members(&group, &members)
                .await
                .map_err(call_err)?;
            print_json(&serde_json::json!({"group": group, "removed": members}))
        }
    }
}

fn call_err(e: CallError) -> anyhow::Error {
    anyhow::anyhow!("[{}] {e}", e.code())
}

/// Print `v` as pretty JSON, with the characters a terminal acts on escaped.
pub(crate) fn print_json(v: &serde_json::Value) -> Result<()> {
    println!("{}", json_safe(&serde_json::to_string_pretty(v)?));
    Ok(())
}

fn read_attrs(input: AttrInput) -> Result<Vec<Attribute>> {
    let text = match (input.json, input.file) {
        (Some(j), _) => j,
        (None, Some(f)) if f.as_os_str() != "-" => {
            std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?
        }
        _ => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read standard input")?;
            s
        }
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "the attributes are not valid JSON (line {}, column {}): {e}",
            e.line(),
            e.column()
        )
    })?;
    attributes_from_json(&v).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Open the configuration's state store, saying which file failed.
/// Fail with the problems `PRAGMA quick_check` finds (the service runs this
/// before it starts; `provisio store check` on demand).
pub(crate) fn check_store(store: &crate::store::Store) -> Result<()> {
    let problems = store.quick_check()?;
    if problems.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = problems
        .iter()
        .take(10)
        .map(|p| Untrusted::new(p).to_string())
        .collect();
    bail!(
        "the state store {} is damaged ({} problem(s): {}); it was not changed. Restore it \
         from a backup, or move it aside and start over with `provisio restart --forget-links` \
         for each connection",
        store.location(),
        problems.len(),
        shown.join("; ")
    )
}

pub(crate) fn open_store(config: &Config) -> Result<crate::store::Store> {
    crate::store::Store::open(&config.store_path).with_context(|| {
        format!(
            "cannot open the state store {}",
            config.store_path.display()
        )
    })
}

pub(crate) async fn open(config_path: &Path, connection: &str) -> Result<Connection> {
    open_in(config_path, connection, None).await
}

/// Open a connection, taking its plugin from `plugins` when given (the
/// service keeps plugins loaded across cycles).
pub(crate) async fn open_in(
    config_path: &Path,
    connection: &str,
    plugins: Option<&crate::runtime::LoadedPlugins>,
) -> Result<Connection> {
    let config = Config::load(config_path)?;
    let (plugin_cfg, spec) = config.connection_spec(connection)?;
    if let Some(plugins) = plugins {
        let plugin = plugins
            .get(&plugin_cfg.name, &plugin_cfg.path, &plugin_cfg.sha256)
            .await?;
        return Ok(plugins.runtime().connect(plugin, spec)?);
    }
    let runtime = Runtime::new(Some(&config.state_dir.join("cache")))?;
    let plugin = runtime
        .load_plugin(&plugin_cfg.name, &plugin_cfg.path, Some(&plugin_cfg.sha256))
        .await?;
    Ok(runtime.connect(Arc::new(plugin), spec)?)
}

async fn object(config: &Path, kind: ObjectKind, cmd: ObjectCommand) -> Result<()> {
    match cmd {
        ObjectCommand::Create { connection, input } => {
            let attrs = read_attrs(input)?;
            let conn = open(config, &connection).await?;
            let obj = conn.create(kind, attrs).await.map_err(call_err)?;
            print_json(&obj.to_json())
        }
        ObjectCommand::Get { connection, id } => {
            let conn = open(config, &connection).await?;
            print_json(&conn.get(kind, &id).await.map_err(call_err)?.to_json())
        }
        ObjectCommand::Find {
            connection,
            attribute,
            value,
        } => {
            let conn = open(config, &connection).await?;
            let found = conn
                .find(
                    kind,
                    Attribute {
                        name: attribute,
                        value: Value::Text(value),
                    },
                )
                .await
                .map_err(call_err)?;
            print_json(&serde_json::Value::Array(
                found.iter().map(|o| o.to_json()).collect(),
            ))
        }
        ObjectCommand::Update {
            connection,
            id,
            input,
        } => {
            let attrs = read_attrs(input)?;
            if attrs.is_empty() {
                bail!("nothing to update: give at least one attribute");
            }
            let conn = open(config, &connection).await?;
            conn.update(kind, &id, attrs).await.map_err(call_err)?;
            print_json(&serde_json::json!({"updated": id}))
        }
        ObjectCommand::Disable { connection, id } => {
            let conn = open(config, &connection).await?;
            conn.disable(kind, &id).await.map_err(call_err)?;
            print_json(&serde_json::json!({"disabled": id}))
        }
        ObjectCommand::Enable { connection, id } => {
            let conn = open(config, &connection).await?;
            conn.enable(kind, &id).await.map_err(call_err)?;
            print_json(&serde_json::json!({"enabled": id}))
        }
        ObjectCommand::Delete { connection, id } => {
            let conn = open(config, &connection).await?;
            conn.delete(kind, &id).await.map_err(call_err)?;
            print_json(&serde_json::json!({"deleted": id}))
        }
        ObjectCommand::List {
            connection,
            page_size,
            limit,
        } => {
            let conn = open(config, &connection).await?;
            let mut out = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                // A page the target refuses for its rate limit is asked for
                // again after the delay it gave (a few times), as a cycle would.
                let mut attempt = 1;
                let page = loop {
                    match conn.list(kind, cursor.as_deref(), page_size).await {
                        Err(crate::runtime::CallError::Connector(
                            crate::model::ConnectorError::RateLimited { retry_after, .. },
                        )) if attempt < LIST_ATTEMPTS => {
                            let wait = retry_after
                                .unwrap_or(std::time::Duration::from_secs(1))
                                .min(std::time::Duration::from_secs(60));
                            eprintln!(
                                "rate limited by the target; asking for the page again in {} ms",
                                wait.as_millis()
                            );
                            tokio::time::sleep(wait).await;
                            attempt += 1;
                        }
                        other => break other.map_err(call_err)?,
                    }
                };
                out.extend(page.objects.iter().map(|o| o.to_json()));
                if limit.is_some_and(|l| out.len() >= l) {
                    out.truncate(limit.unwrap_or(usize::MAX));
                    break;
                }
                match page.next_cursor {
                    Some(c) if Some(&c) != cursor.as_ref() => cursor = Some(c),
                    _ => break,
                }
            }
            print_json(&serde_json::Value::Array(out))
        }
    }
}

/// Attempts per page of `list` when the target answers rate-limited.
const LIST_ATTEMPTS: u32 = 4;

async fn inspect(config_path: &Path, file: &Path, json: bool) -> Result<()> {
    // Use the configured cache when there is a config; inspecting needs none.
    let cache = Config::load(config_path)
        .ok()
        .map(|c| c.state_dir.join("cache"));
    let runtime = Runtime::new(cache.as_deref())?;
    let plugin = runtime.load_plugin("inspected", file, None).await?;
    if json {
        return print_json(&inspect_json(&plugin));
    }
    print!("{}", inspect_text(&plugin));
    Ok(())
}

/// The inspect report as JSON.
pub fn inspect_json(p: &Plugin) -> serde_json::Value {
    serde_json::json!({
        "file": p.path.display().to_string(),
        "sha256": p.sha256,
        "size": p.size,
        "contract": format!("provisio:connector@{}", p.contract),
        "manifest": p.manifest,
        "imports": p.imports,
        "exports": p.exports,
    })
}

/// The label `plugin inspect` puts on what the manifest says about itself.
pub const CLAIMED: &str = "(claimed by the plugin, not verified)";

/// The inspect report as text.
///
/// Every string from the manifest and the component's imports and exports
/// is the plugin's own and is shown escaped ([`Untrusted`]): escape codes in
/// a description cannot move the cursor to hide the declared hosts.
pub fn inspect_text(p: &Plugin) -> String {
    inspect_render(
        &p.path.display().to_string(),
        p.size,
        &p.sha256,
        &p.contract,
        &p.manifest,
        &p.imports,
        &p.exports,
    )
}

/// [`inspect_text`] from its parts.
pub fn inspect_render(
    path: &str,
    size: u64,
    sha256: &str,
    contract: &str,
    m: &crate::model::Manifest,
    imports: &[String],
    exports: &[String],
) -> String {
    use std::fmt::Write;
    let u = Untrusted::new;
    let mut s = String::new();
    let _ = writeln!(s, "name:      {}  {CLAIMED}", u(&m.name));
    let _ = writeln!(s, "version:   {}  {CLAIMED}", u(&m.version));
    let _ = writeln!(s, "vendor:    {}  {CLAIMED}", u(&m.vendor));
    let _ = writeln!(s, "description {CLAIMED}:");
    let _ = writeln!(s, "  {}", u(&m.description));
    let _ = writeln!(s, "file:      {} ({size} bytes)", u(path));
    let _ = writeln!(s, "sha256:    {sha256}");
    let _ = writeln!(s, "contract:  provisio:connector@{}", u(contract));
    let caps: Vec<String> = m
        .capabilities
        .iter()
        .map(|c| {
            serde_json::to_value(c)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        })
        .collect();
    let _ = writeln!(
        s,
        "capabilities: {}",
        crate::untrusted::escape(&caps.join(", "))
    );
    let _ = writeln!(s, "declared hosts:");
    for h in &m.hosts {
        let _ = writeln!(s, "  {}", u(h));
    }
    let _ = writeln!(s, "settings:");
    for x in &m.settings {
        let req = if x.required { "required" } else { "optional" };
        let def = x
            .default_value
            .as_deref()
            .map(|d| format!(", default {}", u(d)))
            .unwrap_or_default();
        let _ = writeln!(s, "  {} ({req}{def}): {}", u(&x.name), u(&x.description));
    }
    let _ = writeln!(s, "secrets (by reference only):");
    for x in &m.secrets {
        let req = if x.required { "required" } else { "optional" };
        let _ = writeln!(s, "  {} ({req}): {}", u(&x.name), u(&x.description));
        let placed: Vec<String> = x
            .declared_placements()
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(s, "    placed in: {}", placed.join(", "));
    }
    if !m.logins.is_empty() {
        let _ = writeln!(
            s,
            "login exchanges (bodies built by the host; the grant must confirm login:<name>):"
        );
        for x in &m.logins {
            let _ = writeln!(
                s,
                "  {}: POST to a path ending in {}: {}",
                u(&x.name),
                u(&x.path_suffix),
                u(&x.description)
            );
            let fields: Vec<String> = x
                .fields
                .iter()
                .map(|(k, v)| match v {
                    crate::model::LoginValue::Text(_) => format!("{}=<text>", u(k)),
                    crate::model::LoginValue::Setting(n) => format!("{}=<setting {}>", u(k), u(n)),
                    crate::model::LoginValue::Secret(n) => format!("{}=<secret {}>", u(k), u(n)),
                })
                .collect();
            let _ = writeln!(s, "    fields: {}", fields.join(", "));
            for d in &x.captures {
                let placed: Vec<String> = d.placements.iter().map(ToString::to_string).collect();
                let (source, placed) = (format!("{:?}", d.source), placed.join(", "));
                let _ = writeln!(
                    s,
                    "    captures derived secret {} ({:?}, {} s, placed in {}): {}",
                    Untrusted::new(&d.name),
                    Untrusted::new(&source),
                    d.ttl_seconds,
                    Untrusted::new(&placed),
                    Untrusted::new(&d.description)
                );
            }
        }
    }
    for (title, maps) in [
        ("user mappings", &m.user_mappings),
        ("group mappings", &m.group_mappings),
    ] {
        if maps.is_empty() {
            continue;
        }
        let _ = writeln!(s, "{title}:");
        for x in maps {
            let matching = x
                .matching_precedence
                .map(|p| format!("  [matching {p}]"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  {:<45} <- {}{matching}",
                u(&x.target).to_string(),
                u(&x.source)
            );
        }
    }
    let _ = writeln!(s, "imports:");
    for i in imports {
        let _ = writeln!(s, "  {}", u(i));
    }
    let _ = writeln!(s, "exports:");
    for e in exports {
        let _ = writeln!(s, "  {}", u(e));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Manifest;

    #[test]
    fn inspect_marks_claims_and_shows_escape_codes_visibly() {
        let hide = "\x1b[3A\x1b[J\r";
        let m = Manifest {
            name: format!("okta{hide}"),
            version: "1.0\u{202e}".into(),
            description: format!("Trusted connector{hide}\x1b]0;title\x07"),
            vendor: "Okta, Inc.\x1b[8m".into(),
            capabilities: Vec::new(),
            settings: Vec::new(),
            secrets: Vec::new(),
            hosts: vec![
                "https://*.okta.com".into(),
                format!("https://exfil.example{hide}"),
            ],
            user_mappings: Vec::new(),
            group_mappings: Vec::new(),
            logins: Vec::new(),
        };
        let text = inspect_render("p.wasm", 1, "ab", "0.1.0", &m, &["i\x1b".into()], &[]);
        assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
        assert!(!text.contains('\u{202e}'), "{text:?}");
        for needle in [
            r"name:      okta\x1b[3A\x1b[J\r  (claimed by the plugin, not verified)",
            r"vendor:    Okta, Inc.\x1b[8m  (claimed by the plugin, not verified)",
            r"version:   1.0\u{202e}",
            "description (claimed by the plugin, not verified):",
            r"  Trusted connector\x1b[3A\x1b[J\r\x1b]0;title\x07",
            r"  https://exfil.example\x1b[3A\x1b[J\r",
            r"  i\x1b",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }
}
