//! CLI commands of the sync engine: `sync`, `provision`, `logs`,
//! `mapping test` and `staged`.
//!
//! Target ids, errors, step details, attribute values and source names are
//! untrusted text: every rendering here escapes them with
//! [`crate::untrusted`] (stored records keep them as received).

use crate::config::Config;
use crate::cycle::{Cycle, Plan, SyncSettings, detail};
use crate::execute::Executor;
use crate::mapping::expr::MapContext;
use crate::mapping::{self, ExplainTable, MappingSet};
use crate::model::{ObjectKind, attributes_from_json};
use crate::runtime::Connection;
use crate::source::{DirectorySource, Source};
use crate::store::{
    Decision, LogQuery, LogRecord, StagedSelection, Store, export_csv, export_json,
};
use crate::untrusted::{Untrusted, escape, json_safe};
use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Everything a sync command needs for one connection.
pub struct SyncEnv {
    /// The connection.
    pub conn: Connection,
    /// The state store.
    pub store: Store,
    /// The source.
    pub source: DirectorySource,
    /// Sync settings (scope, compiled mappings, policy).
    pub settings: SyncSettings,
    /// Interval between cycles when run as a service.
    pub interval: std::time::Duration,
    /// Drift reconciliation (`[connections.x.reconcile]`).
    pub reconcile: crate::drift::DriftPolicy,
}

/// Open a connection with its source, store and compiled mappings.
pub async fn open_sync(config_path: &Path, name: &str) -> Result<SyncEnv> {
    open_sync_in(config_path, name, None).await
}

/// [`open_sync`], taking the plugin from `plugins` when given.
pub async fn open_sync_in(
    config_path: &Path,
    name: &str,
    plugins: Option<&crate::runtime::LoadedPlugins>,
) -> Result<SyncEnv> {
    let config = Config::load(config_path)?;
    let cc = config.connection(name)?.clone();
    let source = config.source_for(name)?;
    let conn = super::open_in(config_path, name, plugins).await?;
    let manifest = &conn.plugin().manifest;
    let users =
        mapping::compile(&manifest.user_mappings, &cc.user_mappings).with_context(|| {
            format!(
                "{}: connection '{name}': user mappings",
                config.path.display()
            )
        })?;
    let groups =
        mapping::compile(&manifest.group_mappings, &cc.group_mappings).with_context(|| {
            format!(
                "{}: connection '{name}': group mappings",
                config.path.display()
            )
        })?;
    let store = super::open_store(&config)?;
    Ok(SyncEnv {
        conn,
        store,
        source,
        settings: SyncSettings {
            scope: cc.scope.clone(),
            users,
            groups,
            deletion_threshold: cc.deletion_threshold,
            skip_out_of_scope_deletions: cc.skip_out_of_scope_deletions,
            concurrency: cc.concurrency,
            membership_batch: 100,
            escrow_max_interval: cc.escrow_max_interval,
        },
        interval: cc.interval,
        reconcile: cc.reconcile.clone(),
    })
}

impl SyncEnv {
    /// The cycle of this connection.
    pub fn cycle(&self) -> Cycle<'_> {
        Cycle {
            connection: &self.conn,
            store: &self.store,
            source: &self.source,
            settings: &self.settings,
        }
    }
}

/// Log export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// A table for people.
    Table,
    /// JSON array.
    Json,
    /// CSV.
    Csv,
}

/// `provisio mapping ...`
#[derive(Debug, Subcommand)]
pub enum MappingCommand {
    /// Evaluate a connection's mappings on a sample user (Entra's expression builder).
    Test {
        /// Connection name.
        connection: String,
        /// A user id from the connection's source.
        #[arg(long, conflicts_with = "json")]
        user: Option<String>,
        /// Or a flat JSON object of source attributes.
        #[arg(long)]
        json: Option<String>,
        /// Evaluate as for a create (default values, create-only mappings).
        #[arg(long)]
        create: bool,
    },
}

/// `provisio staged ...`
#[derive(Debug, Subcommand)]
pub enum StagedCommand {
    /// Disables and deletes held by the accidental-deletion guard.
    List {
        /// Connection name.
        connection: String,
    },
    /// Allow held actions (all, or the given ids); the next sync carries them out.
    Allow {
        /// Connection name.
        connection: String,
        /// Staged ids (default: all).
        ids: Vec<i64>,
    },
    /// Reject held actions (all, or the given ids).
    Reject {
        /// Connection name.
        connection: String,
        /// Staged ids (default: all).
        ids: Vec<i64>,
    },
}

/// `provisio sync`.
pub async fn sync(config: &Path, name: &str, dry_run: bool, json: bool) -> Result<()> {
    let env = open_sync(config, name).await?;
    let cycle = env.cycle();
    if dry_run {
        let plan = cycle.plan()?;
        if json {
            super::print_json(&plan.to_json())?;
        } else {
            print!("{}", render_plan(name, &plan));
        }
        return Ok(());
    }
    let summary = run_with_bar(&cycle, !json).await?;
    settle_quarantine(&env.store, name, &summary);
    // What the service would notify about after this cycle (a cycle that
    // failed as a whole goes to quarantine instead, see settle_quarantine).
    let mut events = Vec::new();
    if summary.staged > 0 {
        events.push(crate::scheduler::staged_event(&env.store, name, &summary));
    }
    if summary.credentials_rejected.is_none()
        && let Some(e) = crate::scheduler::waiting_event(&env.store, name, &summary)
    {
        events.push(e);
    }
    if !events.is_empty() {
        // Notify as the service would; a notification problem never fails the sync.
        match crate::notify::Notifier::from_config(&Config::load(config)?) {
            Ok(n) => {
                for e in events {
                    n.notify(e).await;
                }
            }
            Err(e) => tracing::warn!(
                "notifications are not sent: {}",
                crate::capabilities::secrets::redact(&e.to_string())
            ),
        }
    }
    if json {
        println!("{}", json_safe(&serde_json::to_string_pretty(&summary)?));
        return incomplete(name, &summary);
    }
    println!(
        "{} cycle {} of '{name}' finished in {:.1} s: {} target calls, {} failures, {} staged, {} malformed source records",
        summary.cycle_type,
        summary.cycle_id,
        summary.duration_seconds,
        summary.target_calls,
        summary.failures,
        summary.staged,
        summary.source_issues
    );
    for (k, v) in &summary.counts {
        println!("  {v:>6}  {k}");
    }
    if summary.counts.is_empty() {
        println!("  nothing to do: the target is in step with the source");
    }
    if summary.staged > 0 {
        println!("held by the deletion guard: review with `provisio staged list {name}`");
    }
    for issue in &summary.issues {
        println!("  source issue: {}", escape(issue));
    }
    if let Some(reason) = &summary.held_reason {
        println!(
            "{} disables, deletes or membership removals {}",
            summary.held,
            escape(reason)
        );
    }
    incomplete(name, &summary)
}

/// The quarantine after a manual cycle, as the service would keep it: a
/// cycle the target stopped with a 401 puts the connection in quarantine
/// (so `provisio run` does not hammer the target with the revoked
/// credentials); a cycle in which everything succeeded ends one.
pub(super) fn settle_quarantine(
    store: &crate::store::Store,
    name: &str,
    s: &crate::cycle::CycleSummary,
) {
    if let Some(why) = crate::scheduler::quarantine_reason(s) {
        if let Err(e) = crate::scheduler::enter_quarantine(store, name, &why) {
            tracing::warn!(connection = %name, "cannot record the quarantine: {e}");
        }
    } else if s.failures == 0
        && s.waiting == 0
        && s.untried == 0
        && store.clear_quarantine(name).unwrap_or(false)
    {
        eprintln!("provisio: connection '{name}' left quarantine: the cycle succeeded");
    }
}

/// A cycle with failed or waiting objects is not a success: exit code 2
/// ([`super::exit::INCOMPLETE`]) with what is left; one the target stopped
/// with a 401 exits 3 ([`super::exit::CREDENTIALS_REJECTED`]).
pub(super) fn incomplete(name: &str, s: &crate::cycle::CycleSummary) -> Result<()> {
    if let Some(m) = &s.credentials_rejected {
        return Err(super::Exit {
            code: super::exit::CREDENTIALS_REJECTED,
            message: format!(
                "connection '{name}': the target rejected the credentials ({}); the cycle \
                 stopped after {} target calls, {} object(s) were left untouched, and the \
                 connection is in quarantine. Fix its secret, check it with `provisio \
                 test-connection {name}`, then `provisio restart {name}`",
                escape(m),
                s.target_calls,
                s.untried
            ),
        }
        .into());
    }
    if s.failures == 0 && s.waiting == 0 {
        return Ok(());
    }
    let mut parts = Vec::new();
    if s.failures > 0 {
        parts.push(format!("{} object(s) failed", s.failures));
    }
    if s.waiting > 0 {
        parts.push(format!(
            "{} object(s) wait in escrow for their next retry",
            s.waiting
        ));
    }
    Err(super::Exit {
        code: super::exit::INCOMPLETE,
        message: format!(
            "connection '{name}' is not in step: {}; see `provisio logs --connection {name} \
             --status failure` (or `provisio restart {name}` to retry escrowed objects now)",
            parts.join(", ")
        ),
    }
    .into())
}

/// Run a cycle; in a terminal (and unless `show` is false), with a progress
/// bar on stderr counting units done and actions by status.
async fn run_with_bar(cycle: &Cycle<'_>, show: bool) -> Result<crate::cycle::CycleSummary> {
    use std::io::IsTerminal as _;
    let progress = crate::progress::Progress::new();
    if !show || !std::io::stderr().is_terminal() {
        return Ok(cycle.run_with_progress(&progress).await?);
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {prefix:>14} [{bar:30}] {pos}/{len} {wide_msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let run = cycle.run_with_progress(&progress);
    let tick = async {
        loop {
            let snap = progress.snapshot();
            bar.set_length(snap.total);
            bar.set_position(snap.done);
            bar.set_prefix(snap.phase.clone());
            bar.set_message(bar_message(&snap));
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    let r = tokio::select! {
        r = run => r,
        _ = tick => unreachable!("the ticker never ends"),
    };
    bar.finish_and_clear();
    Ok(r?)
}

/// The progress bar's message: counts by action and status.
pub fn bar_message(snap: &crate::progress::ProgressSnapshot) -> String {
    snap.by_action()
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The dry-run plan as text.
pub fn render_plan(name: &str, plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "plan for '{name}' (dry run: nothing was sent to the target)"
    );
    for p in plan.objects.iter().filter(|p| p.action.name() != "none") {
        let _ = writeln!(
            s,
            "  {:<8} {:<5} {:<36} {}",
            p.action.name(),
            p.desired.kind.to_string(),
            escape(&p.desired.display),
            Untrusted::new(&detail(p))
        );
    }
    for m in &plan.memberships {
        let _ = writeln!(
            s,
            "  members  group {:<30} +{} -{}",
            escape(&m.group),
            m.add.len(),
            m.remove.len()
        );
    }
    for i in &plan.issues {
        let _ = writeln!(s, "  invalid  {}", Untrusted::new(&i.to_string()));
    }
    let unchanged = plan
        .objects
        .iter()
        .filter(|p| p.action.name() == "none")
        .count();
    let _ = writeln!(s, "{unchanged} objects unchanged or out of scope");
    if plan.guard_tripped {
        let _ = writeln!(
            s,
            "the deletion guard would hold this cycle's disables and deletes for review"
        );
    }
    for (k, v) in plan.counts() {
        let _ = writeln!(s, "  {v:>6}  {k}");
    }
    s
}

/// `provisio provision`: one user, or one group with up to 5 members, now.
pub async fn provision(config: &Path, name: &str, kind: ObjectKind, id: &str) -> Result<()> {
    let env = open_sync(config, name).await?;
    let records = provision_records(&env, name, kind, id).await?;
    if records.is_empty() {
        let plan = env.cycle().plan()?;
        if let Some(p) = plan
            .objects
            .iter()
            .find(|p| p.desired.kind == kind && p.desired.source_id == id)
        {
            println!(
                "{kind} '{}': {}",
                Untrusted::new(&p.desired.display),
                Untrusted::new(&detail(p))
            );
        }
        return Ok(());
    }
    for r in records.iter().rev() {
        print!("{}", render_record(r));
    }
    Ok(())
}

/// Provision one user, or one group with up to 5 members, now; the log
/// records of what was done (none when the object needed nothing).
pub async fn provision_records(
    env: &SyncEnv,
    name: &str,
    kind: ObjectKind,
    id: &str,
) -> Result<Vec<LogRecord>> {
    // Provisioning on demand writes like a cycle: it holds the lease.
    crate::lease::hold(&env.store, name, |lease| {
        provision_under_lease(env, name, kind, id, lease)
    })
    .await?
}

async fn provision_under_lease(
    env: &SyncEnv,
    name: &str,
    kind: ObjectKind,
    id: &str,
    lease: crate::store::Lease,
) -> Result<Vec<LogRecord>> {
    let cycle = env.cycle();
    let read = cycle.read_source()?;
    let plan = cycle.plan_from(&read)?;
    let Some(target) = plan
        .objects
        .iter()
        .find(|p| p.desired.kind == kind && p.desired.source_id == id)
    else {
        bail!("no {kind} with id '{id}' in the source of connection '{name}'");
    };
    let cycle_id = format!("on-demand-{}", uuid::Uuid::new_v4());
    let exec = Executor::new(&env.conn, &env.store, &cycle_id, 1).with_lease(lease);
    let mut objects = Vec::new();
    if kind == ObjectKind::Group {
        let members: Vec<String> = plan
            .memberships
            .iter()
            .filter(|m| m.group == id)
            .flat_map(|m| m.add.clone())
            .take(5)
            .collect();
        objects.extend(plan.objects.iter().filter(|p| {
            p.desired.kind == ObjectKind::User && members.contains(&p.desired.source_id)
        }));
    }
    objects.push(target);
    let ran = exec.run_objects(objects).await;
    if kind == ObjectKind::Group {
        let again = cycle.plan_from(&read)?;
        let mut m: Vec<_> = again
            .memberships
            .into_iter()
            .filter(|m| m.group == id)
            .collect();
        for x in &mut m {
            x.add.truncate(5);
        }
        exec.run_memberships(&m, 100).await;
    }
    if ran.is_empty() {
        return Ok(Vec::new());
    }
    Ok(env.store.query_logs(&LogQuery {
        connection: Some(name.to_string()),
        cycle_id: Some(cycle_id),
        ..LogQuery::default()
    })?)
}

/// One log record, Entra's on-demand view. Every stored string is shown
/// escaped ([`Untrusted`]): a target id or an error from the connector cannot
/// forge a step line or act on the terminal.
pub fn render_record(r: &LogRecord) -> String {
    let u = Untrusted::new;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} {} '{}' -> {}: {}",
        r.kind,
        r.action.as_str(),
        u(r.source_display.as_deref().unwrap_or("-")),
        u(r.target_id.as_deref().unwrap_or("-")),
        r.status.as_str()
    );
    for st in &r.steps {
        let _ = writeln!(
            s,
            "  {:<22} {:<8} {}",
            st.step.as_str(),
            st.status.as_str(),
            u(&st.detail)
        );
    }
    for m in &r.modified {
        let show = |v: &Option<serde_json::Value>| {
            v.as_ref()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "(none)".into())
        };
        let _ = writeln!(
            s,
            "  modified {:<40} {} -> {}",
            escape(&m.name),
            escape(&show(&m.old)),
            escape(&show(&m.new))
        );
    }
    if let (Some(c), Some(reason)) = (&r.error_code, &r.error_reason) {
        let _ = writeln!(s, "  error {}: {}", u(c), u(reason));
    }
    s
}

/// `provisio logs`.
#[allow(clippy::too_many_arguments)]
pub fn logs(
    config: &Path,
    connection: Option<String>,
    cycle: Option<String>,
    user: Option<String>,
    action: Option<String>,
    status: Option<String>,
    format: LogFormat,
    limit: usize,
) -> Result<()> {
    let config = Config::load(config)?;
    let store = super::open_store(&config)?;
    let query = LogQuery {
        connection,
        cycle_id: cycle,
        object_id: user,
        action: action
            .map(|a| a.parse())
            .transpose()
            .map_err(|e| anyhow::anyhow!("--action: {e}"))?,
        status: status
            .map(|a| a.parse())
            .transpose()
            .map_err(|e| anyhow::anyhow!("--status: {e}"))?,
        limit: Some(limit),
        ..LogQuery::default()
    };
    let records = store.query_logs(&query)?;
    let u = Untrusted::new;
    match format {
        LogFormat::Json => println!("{}", export_json(&records)?),
        LogFormat::Csv => print!("{}", export_csv(&records)?),
        LogFormat::Table => {
            for r in records.iter().rev() {
                println!(
                    "{} cycle {}",
                    u(&r.time),
                    u(r.cycle_id.as_deref().unwrap_or("-"))
                );
                print!("{}", render_record(r));
            }
            if records.is_empty() {
                println!("no provisioning log records match");
            }
        }
    }
    Ok(())
}

/// `provisio mapping test`.
pub async fn mapping_test(config: &Path, cmd: MappingCommand) -> Result<()> {
    let MappingCommand::Test {
        connection,
        user,
        json,
        create,
    } = cmd;
    let env = open_sync(config, &connection).await?;
    let attrs: BTreeMap<String, crate::model::Value> = match (user, json) {
        (Some(id), _) => {
            let read = env.source.read()?;
            let u = read
                .directory
                .user(&id)
                .with_context(|| format!("no user '{id}' in the source"))?;
            u.attributes.clone()
        }
        (None, Some(j)) => {
            let v: serde_json::Value =
                serde_json::from_str(&j).context("--json is not valid JSON")?;
            attributes_from_json(&v)
                .map_err(|e| anyhow::anyhow!(e))?
                .into_iter()
                .map(|a| (a.name, a.value))
                .collect()
        }
        (None, None) => bail!("give --user <id> or --json '<attributes>'"),
    };
    let mut ctx = MapContext::new();
    for (k, v) in attrs {
        ctx.insert(&k, v);
    }
    let set: &MappingSet = &env.settings.users;
    let rows = mapping::explain(set, &ctx, create);
    print!("{}", ExplainTable::new(&rows));
    Ok(())
}

/// `provisio staged ...`.
pub async fn staged(config: &Path, cmd: StagedCommand) -> Result<()> {
    let config = Config::load(config)?;
    let store = super::open_store(&config)?;
    let (connection, decision, ids) = match cmd {
        StagedCommand::List { connection } => {
            let pending = store.staged_pending(&connection)?;
            if pending.is_empty() {
                println!("nothing is held for '{connection}'");
            }
            for s in pending {
                println!(
                    "{:>5}  {:<8} {} {} (target {}): {}",
                    s.id,
                    s.action.as_str(),
                    s.kind,
                    Untrusted::new(&s.source_id),
                    Untrusted::new(&s.target_id),
                    Untrusted::new(&s.reason)
                );
            }
            return Ok(());
        }
        StagedCommand::Allow { connection, ids } => (connection, Decision::Allowed, ids),
        StagedCommand::Reject { connection, ids } => (connection, Decision::Rejected, ids),
    };
    let sel = StagedSelection::from_ids(ids);
    // A decision must not change what a running cycle is carrying out.
    let changed = crate::lease::with_lease(&store, &connection, || {
        store.decide_staged(&connection, &sel, decision)
    })?;
    println!(
        "{} {} staged actions of '{connection}'",
        decision.as_str(),
        changed.len()
    );
    if decision == Decision::Allowed && !changed.is_empty() {
        println!("the next `provisio sync {connection}` carries them out");
    }
    Ok(())
}

/// `provisio restart`.
pub fn restart(config: &Path, name: &str, forget_links: bool) -> Result<()> {
    let config = Config::load(config)?;
    config.connection(name)?;
    let store = super::open_store(&config)?;
    let scope = if forget_links {
        crate::store::ResetScope::all()
    } else {
        crate::store::ResetScope::restart()
    };
    // Not under a running cycle (of `run` or `sync` in another process).
    let (escrowed, left_quarantine) = crate::lease::with_lease(&store, name, || {
        let escrowed = store.escrow_all(name)?.len();
        store.reset(name, scope)?;
        Ok((escrowed, store.clear_quarantine(name)?))
    })?;
    if left_quarantine {
        println!("'{name}' left quarantine");
    }
    println!(
        "restarted '{name}': the next cycle is an initial cycle; {escrowed} objects left escrow{}",
        if forget_links {
            "; links and staged actions forgotten: every object will be matched again"
        } else {
            "; links kept"
        }
    );
    Ok(())
}
