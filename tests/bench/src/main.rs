//! `bench`: Provisio's benchmark. One command prints one table:
//!
//! ```sh
//! scripts/build-plugins.sh
//! cargo run --release -p provisio-bench --bin bench              # 10,000 users
//! cargo run --release -p provisio-bench --bin bench -- --large   # 100,000 users
//! ```
//!
//! How the parts fit:
//! - [`target`] is the fast SCIM target. It runs in a child process of its
//!   own (`bench serve`), so its CPU and memory are never counted as the host's.
//! - Per-operation figures are measured in this process with the `provisio`
//!   library: instantiate + trivial export (the `misbehave` test plugin in its
//!   well-behaved mode), and create-user through the wasm SCIM plugin versus a
//!   native `reqwest` client sending the same request to the same target,
//!   interleaved in batches so that load from other processes hits both alike.
//! - Sync cycles, cold starts and idle memory run the real `provisio` command
//!   line (`provisio::cli::run`, the code behind the `provisio` binary) in child
//!   processes (`bench cli ...`), one per phase, so each phase's peak RSS
//!   (`VmHWM`) is its own and a cold start is a real process start.
//!
//! Each phase checks its result (no failures, the target holds every user, a
//! no-change cycle makes no request) and stops the run if it is wrong: a fast
//! wrong answer is not a figure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod target;

use anyhow::{Context, Result, bail, ensure};
use clap::{Parser, Subcommand};
use provisio::model::{Attribute, ObjectKind, Value};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The benchmark's options.
#[derive(Debug, Parser)]
#[command(name = "bench", about = "Provisio benchmark: prints one table")]
struct Args {
    /// A child mode (used by the benchmark itself).
    #[command(subcommand)]
    mode: Option<Mode>,
    /// Users in the source for the sync phases.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// The large run: 100,000 users (overrides --users).
    #[arg(long)]
    large: bool,
    /// Samples per per-operation measurement.
    #[arg(long, default_value_t = 2_000)]
    per_op: usize,
    /// Connection counts of the idle-memory measurement.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    idle: Vec<usize>,
    /// Process starts per cold-start measurement.
    #[arg(long, default_value_t = 5)]
    cold_runs: usize,
    /// The sync connection's `concurrency` (connector calls in flight).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Directory holding the release wasm plugins
    /// (default: $CARGO_TARGET_DIR or target/, then wasm32-wasip2/release).
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// Keep the work files (configs, directory, state) in this directory.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Only the per-operation rows (for profiling them).
    #[arg(long)]
    per_op_only: bool,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Run the fast SCIM target; prints `PORT <n>` on standard output.
    #[command(hide = true)]
    Serve {
        /// Accepted bearer token.
        #[arg(long)]
        token: String,
    },
    /// Run the provisio command line with these arguments, then print
    /// `PEAK_RSS_KB <n>` on standard output.
    #[command(hide = true)]
    Cli {
        /// Arguments after `provisio`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

const TOKEN: &str = "bench-token-0123456789";
const PEAK: &str = "PEAK_RSS_KB";

fn main() -> Result<()> {
    let args = Args::parse();
    // A developer's RUST_BACKTRACE=1 makes every error capture a backtrace;
    // an operator's host runs without it. Measure that host.
    if args.mode.is_none()
        && ["RUST_BACKTRACE", "RUST_LIB_BACKTRACE"]
            .iter()
            .any(|v| std::env::var_os(v).is_some())
    {
        let status = Command::new(std::env::current_exe()?)
            .args(std::env::args_os().skip(1))
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .status()?;
        std::process::exit(status.code().unwrap_or(1));
    }
    match &args.mode {
        Some(Mode::Serve { token }) => serve(token),
        Some(Mode::Cli { args }) => cli(args),
        None => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(bench(args))
        }
    }
}

fn serve(token: &str) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("PORT {}", listener.local_addr()?.port());
        target::serve(listener, target::Target::new(token)).await?;
        Ok(())
    })
}

/// The `provisio` binary's main, as a child mode.
fn cli(args: &[String]) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let parsed = <provisio::cli::Cli as Parser>::try_parse_from(
        std::iter::once("provisio".to_string()).chain(args.iter().cloned()),
    )?;
    let result = rt.block_on(provisio::cli::run(parsed));
    drop(rt);
    if let Err(e) = &result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    println!("{PEAK} {}", status_kb("VmHWM:", "self").unwrap_or(0));
    Ok(())
}

/// A field of `/proc/<pid>/status`, in KiB.
fn status_kb(field: &str, pid: &str) -> Option<u64> {
    provisio::metrics::proc_status_kib(pid, field)
}

/// A child process killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn plugin_dir(args: &Args) -> PathBuf {
    if let Some(p) = &args.plugins {
        return p.clone();
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("wasm32-wasip2/release")
}

fn sha256_hex(path: &Path) -> Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    Ok(hex::encode(sha2::Sha256::digest(&bytes)))
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mean(v: &[Duration]) -> Duration {
    v.iter().sum::<Duration>() / v.len().max(1) as u32
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// The table.
#[derive(Default)]
struct Table {
    rows: Vec<[String; 3]>,
}

impl Table {
    fn row(&mut self, what: &str, result: String, reference: impl Into<String>) {
        eprintln!("bench: {what}: {result}");
        self.rows.push([what.to_string(), result, reference.into()]);
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

struct Work {
    dir: PathBuf,
    exe: PathBuf,
    origin: String,
    stats_url: String,
    http: reqwest::Client,
}

/// What one `bench cli` child did.
struct ChildRun {
    wall: Duration,
    stdout: String,
    peak_kb: u64,
}

impl Work {
    fn cli(&self, config: &str, args: &[&str]) -> Result<ChildRun> {
        let log = self.dir.join("child-stderr.log");
        let started = Instant::now();
        let out = Command::new(&self.exe)
            .arg("cli")
            .arg("--config")
            .arg(self.dir.join(config))
            .args(args)
            .current_dir(&self.dir)
            .stderr(std::fs::File::create(&log)?)
            .output()?;
        let wall = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            let err = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = err.lines().rev().take(20).collect();
            bail!(
                "`provisio {}` failed: {}\n{}",
                args.join(" "),
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let peak_kb = stdout
            .lines()
            .find_map(|l| l.strip_prefix(PEAK))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let stdout = stdout
            .lines()
            .filter(|l| !l.starts_with(PEAK))
            .collect::<Vec<_>>()
            .join("\n");
        Ok(ChildRun {
            wall,
            stdout,
            peak_kb,
        })
    }

    async fn stats(&self) -> Result<serde_json::Value> {
        let bytes = self.http.get(&self.stats_url).send().await?.bytes().await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    async fn requests(&self) -> Result<u64> {
        Ok(self.stats().await?["requests"].as_u64().unwrap_or(0))
    }
}

fn user_json(i: usize, title: &str) -> serde_json::Value {
    json!({
        "id": format!("u{i:06}"), "userPrincipalName": format!("user{i:06}@example.com"),
        "displayName": format!("User {i:06}"), "givenName": "User", "surname": format!("N{i:06}"),
        "mail": format!("user{i:06}@example.com"), "jobTitle": title,
        "department": format!("Dept {}", i % 10), "employeeId": format!("{i}"), "accountEnabled": true
    })
}

/// The source: `n` users; a team group per 100 users and ten department
/// groups, all assigned to `connections` (every user is in scope through them).
fn directory(
    n: usize,
    changed: impl Fn(usize) -> bool,
    connections: &[String],
) -> serde_json::Value {
    let users: Vec<_> = (0..n)
        .map(|i| {
            user_json(
                i,
                if changed(i) {
                    "Staff Engineer"
                } else {
                    "Engineer"
                },
            )
        })
        .collect();
    let teams = n.div_ceil(100);
    let mut groups = Vec::new();
    for t in 0..teams {
        let members: Vec<String> = (t * 100..((t + 1) * 100).min(n))
            .map(|i| format!("u{i:06}"))
            .collect();
        groups.push(json!({"id": format!("team{t:05}"), "displayName": format!("Team {t:05}"), "members": members}));
    }
    for d in 0..10.min(n) {
        let members: Vec<String> = (0..n)
            .filter(|i| i % 10 == d)
            .map(|i| format!("u{i:06}"))
            .collect();
        groups.push(json!({"id": format!("dept{d}"), "displayName": format!("Department {d}"), "members": members}));
    }
    let assignments: Vec<_> = connections
        .iter()
        .flat_map(|c| {
            groups
                .iter()
                .map(move |g| json!({"principal": g["id"], "connection": c, "role": "User"}))
        })
        .collect();
    json!({"users": users, "groups": groups, "assignments": assignments})
}

fn config(
    plugin: &Path,
    sha: &str,
    origin: &str,
    state_dir: &str,
    connections: &[(String, Option<&str>)],
    concurrency: usize,
    sources: &[(&str, &str)],
) -> String {
    let mut s = format!(
        r#"[runtime]
state_dir = "{state_dir}"

[plugins.scim]
path = "{plugin}"
sha256 = "{sha}"

[secrets.tok]
file = "token.txt"
hosts = ["{origin}"]
"#,
        plugin = plugin.display()
    );
    for (name, path) in sources {
        s.push_str(&format!("\n[sources.{name}]\npath = \"{path}\"\n"));
    }
    for (name, source) in connections {
        s.push_str(&format!(
            r#"
[connections.{name}]
plugin = "scim"
settings = {{ base_url = "{origin}/{name}/v2" }}
secrets = {{ token = "tok" }}
allowed_hosts = ["{origin}"]
concurrency = {concurrency}
interval_seconds = 3600
limits = {{ requests_per_second = 10000 }}
"#
        ));
        if let Some(src) = source {
            s.push_str(&format!("source = \"{src}\"\n"));
        }
    }
    s
}

/// Sync-cycle figures.
struct Cycle {
    summary: serde_json::Value,
    run: ChildRun,
    requests: u64,
}

impl Cycle {
    fn seconds(&self) -> f64 {
        self.summary["duration_seconds"].as_f64().unwrap_or(0.0)
    }
    fn calls(&self) -> u64 {
        self.summary["target_calls"].as_u64().unwrap_or(0)
    }
}

async fn cycle(w: &Work) -> Result<Cycle> {
    let before = w.requests().await?;
    let run = w.cli("bench.toml", &["sync", "bench", "--json"])?;
    let requests = w.requests().await? - before;
    let summary: serde_json::Value =
        serde_json::from_str(&run.stdout).context("the sync summary is not JSON")?;
    ensure!(
        summary["failures"].as_u64() == Some(0),
        "the cycle had failures: {summary}"
    );
    Ok(Cycle {
        summary,
        run,
        requests,
    })
}

async fn bench(args: Args) -> Result<()> {
    let n = if args.large { 100_000 } else { args.users };
    let plugins = plugin_dir(&args);
    let scim = plugins.join("provisio_plugin_scim.wasm");
    let misbehave = plugins.join("provisio_test_misbehave.wasm");
    ensure!(
        scim.exists() && misbehave.exists(),
        "build the plugins first (scripts/build-plugins.sh): {} / {} not found",
        scim.display(),
        misbehave.display()
    );
    let sha = sha256_hex(&scim)?;
    let tmp = tempfile::tempdir()?;
    let dir = match &args.keep {
        Some(k) => {
            std::fs::create_dir_all(k)?;
            std::fs::canonicalize(k)?
        }
        None => tmp.path().to_path_buf(),
    };
    std::fs::write(dir.join("token.txt"), TOKEN)?;
    let exe = std::env::current_exe()?;

    // The target, in its own process.
    let mut child = Command::new(&exe)
        .args(["serve", "--token", TOKEN])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("target stdout")?).read_line(&mut line)?;
    let _target = Guard(child);
    let port: u16 = line
        .strip_prefix("PORT ")
        .and_then(|p| p.trim().parse().ok())
        .with_context(|| format!("the target said {line:?}"))?;
    let origin = format!("http://127.0.0.1:{port}");
    let w = Work {
        dir: dir.clone(),
        exe: exe.clone(),
        stats_url: format!("{origin}/stats"),
        origin: origin.clone(),
        http: reqwest::Client::new(),
    };
    let mut t = Table::default();

    // ---- per operation --------------------------------------------------
    let names = |v: &[&str]| v.iter().map(|s| (s.to_string(), None)).collect::<Vec<_>>();
    std::fs::write(
        dir.join("perop.toml"),
        config(
            &scim,
            &sha,
            &origin,
            "perop-state",
            &names(&["perop"]),
            4,
            &[],
        ),
    )?;
    per_operation(&w, &args, &misbehave, &mut t).await?;
    if args.per_op_only {
        print_table(&t, 0, 0, &args);
        return Ok(());
    }

    // ---- sync cycles ----------------------------------------------------
    let conns = vec!["bench".to_string()];
    let write_dir = |changed: &dyn Fn(usize) -> bool| -> Result<()> {
        std::fs::write(
            dir.join("directory.json"),
            serde_json::to_vec(&directory(n, changed, &conns))?,
        )?;
        Ok(())
    };
    write_dir(&|_| false)?;
    std::fs::write(
        dir.join("bench.toml"),
        config(
            &scim,
            &sha,
            &origin,
            "state",
            &[("bench".into(), Some("corp"))],
            args.concurrency,
            &[("corp", "directory.json")],
        ),
    )?;
    let groups = n.div_ceil(100) + 10.min(n);
    let initial = cycle(&w).await?;
    let held = w.stats().await?["tenants"]["bench"].clone();
    ensure!(
        held["users"].as_u64() == Some(n as u64) && held["groups"].as_u64() == Some(groups as u64),
        "after the initial cycle the target holds {held}, expected {n} users and {groups} groups"
    );
    let secs = initial.seconds();
    let per_min = secs / 60.0 / n as f64;
    t.row(
        &format!("initial sync of {n} users + {groups} groups: wall time"),
        format!(
            "{secs:.1} s cycle ({:.1} s process); {:.6} min/object",
            initial.run.wall.as_secs_f64(),
            per_min
        ),
        format!(
            "Entra: 0.01-0.08 min/object = {:.0}-{:.0} min for {n}; {}",
            n as f64 * 0.01,
            n as f64 * 0.08,
            if n >= 100_000 {
                format!("target < 120 s: {}", met(secs < 120.0))
            } else {
                "target (100k) < 120 s: run --large".into()
            }
        ),
    );
    t.row(
        "initial sync: users/s",
        format!("{:.0} users/s", n as f64 / secs),
        format!(
            "Entra: {:.1}-{:.1} users/s",
            1.0 / (0.08 * 60.0),
            1.0 / (0.01 * 60.0)
        ),
    );
    t.row(
        "initial sync: target requests/s",
        format!(
            "{:.0} requests/s ({} requests, {} connector calls)",
            initial.requests as f64 / secs,
            initial.requests,
            initial.calls()
        ),
        "Entra gallery apps must sustain >= 25 requests/s",
    );
    t.row(
        "initial sync: peak RSS of the host",
        mb(initial.run.peak_kb),
        "",
    );

    let nochange = cycle(&w).await?;
    ensure!(
        nochange.requests == 0 && nochange.calls() == 0,
        "a no-change cycle made {} requests",
        nochange.requests
    );
    t.row(
        &format!("no-change cycle over {n} users"),
        format!(
            "{:.2} s cycle ({:.2} s process), {} target requests, peak RSS {}",
            nochange.seconds(),
            nochange.run.wall.as_secs_f64(),
            nochange.requests,
            mb(nochange.run.peak_kb)
        ),
        if n >= 100_000 {
            format!(
                "target < 5 s at 100k: {}; Entra: < 30 min",
                met(nochange.seconds() < 5.0)
            )
        } else {
            "target < 5 s at 100k (run --large); Entra: < 30 min".into()
        },
    );

    write_dir(&|i| i % 100 == 7)?;
    let changed = cycle(&w).await?;
    let expect = (0..n).filter(|i| i % 100 == 7).count() as u64;
    ensure!(
        changed.requests == expect,
        "1% changed: {} requests, expected {expect} (one PATCH per changed user)",
        changed.requests
    );
    t.row(
        &format!("incremental cycle, 1% changed ({expect} users)"),
        format!(
            "{:.2} s cycle ({:.2} s process), {} target requests, peak RSS {}",
            changed.seconds(),
            changed.run.wall.as_secs_f64(),
            changed.requests,
            mb(changed.run.peak_kb)
        ),
        "Entra: < 30 min",
    );

    // ---- cold start -----------------------------------------------------
    cold_start(&w, &args, &scim, &sha, &mut t).await?;

    // ---- idle memory ----------------------------------------------------
    for &k in &args.idle {
        let kb = idle_rss(&w, k, &scim, &sha).await?;
        t.row(
            &format!(
                "idle host RSS, {k} connection{}",
                if k == 1 { "" } else { "s" }
            ),
            mb(kb),
            if k == 10 {
                format!("target < 50 MB: {}", met(kb < 50 * 1024))
            } else {
                String::new()
            },
        );
    }

    print_table(&t, n, groups, &args);
    Ok(())
}

async fn per_operation(w: &Work, args: &Args, misbehave: &Path, t: &mut Table) -> Result<()> {
    use provisio::runtime::{ConnectionSpec, Limits, Runtime};
    let cache = w.dir.join("perop-cache");
    let rt = Runtime::new(Some(&cache))?;
    let p = Arc::new(rt.load_plugin("misbehave", misbehave, None).await?);
    let spec = ConnectionSpec {
        name: "trivial".into(),
        settings: [
            ("behaviour".to_string(), "ok".to_string()),
            ("url".to_string(), "http://127.0.0.1:9".to_string()),
        ]
        .into_iter()
        .collect(),
        allowed_hosts: vec![],
        private_hosts: vec![],
        secrets: Default::default(),
        secret_placements: Default::default(),
        limits: Limits::default(),
    };
    let conn = rt.connect(p, spec)?;
    let n = args.per_op.max(10);
    for _ in 0..n / 10 {
        conn.get(ObjectKind::User, "warm").await?;
    }
    let mut inst = Vec::with_capacity(n);
    let mut calls = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Instant::now();
        conn.instantiate().await?;
        inst.push(s.elapsed());
        let s = Instant::now();
        conn.get(ObjectKind::User, "u-1").await?;
        calls.push(s.elapsed());
    }
    let (mi, mc) = (median(&mut inst), median(&mut calls));
    t.row(
        "instantiate (fresh store, no call)",
        format!("{} median, {} mean (n={n})", us(mi), us(mean(&inst))),
        "wasmtime: about 5-20 µs to instantiate",
    );
    t.row(
        "instantiate + call of a trivial export",
        format!(
            "{} median; the call itself {}",
            us(mc),
            us(mc.saturating_sub(mi))
        ),
        "wasmtime: well under 1 µs per call",
    );

    // create-user: wasm plugin vs native client, same request, same target.
    let config = provisio::config::Config::load(&w.dir.join("perop.toml"))?;
    let (pc, mut spec) = config.connection_spec("perop")?;
    spec.limits.requests_per_second = 1e9;
    let plugin = Arc::new(rt.load_plugin("scim", &pc.path, Some(&pc.sha256)).await?);
    let conn = rt.connect(plugin, spec)?;
    let native = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()?;
    let url = format!("{}/perop/v2/Users", w.origin);
    let attrs = |who: &str, i: usize| -> Vec<Attribute> {
        let text = |n: &str, v: String| Attribute {
            name: n.into(),
            value: Value::Text(v),
        };
        vec![
            text("userName", format!("{who}{i}@example.com")),
            Attribute {
                name: "active".into(),
                value: Value::Boolean(true),
            },
            text("displayName", format!("User {who} {i}")),
            text("name.givenName", "User".into()),
            text("name.familyName", format!("N{i}")),
            text(
                r#"emails[type eq "work"].value"#,
                format!("{who}{i}@example.com"),
            ),
            text("title", "Engineer".into()),
            text("externalId", format!("{who}-{i}")),
        ]
    };
    let body = |who: &str, i: usize| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": format!("{who}{i}@example.com"), "active": true,
            "displayName": format!("User {who} {i}"),
            "name": {"givenName": "User", "familyName": format!("N{i}")},
            "emails": [{"type": "work", "value": format!("{who}{i}@example.com")}],
            "title": "Engineer", "externalId": format!("{who}-{i}")
        })
    };
    let native_create = |i: usize, who: &'static str| {
        let req = native
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/scim+json")
            .header("accept", "application/scim+json")
            .body(serde_json::to_vec(&body(who, i)).unwrap_or_default());
        async move {
            let resp = req.send().await?;
            ensure!(
                resp.status().as_u16() == 201,
                "native create: {}",
                resp.status()
            );
            let v: serde_json::Value = serde_json::from_slice(&resp.bytes().await?)?;
            ensure!(v["id"].is_string(), "native create: no id");
            anyhow::Ok(())
        }
    };
    // Warm both paths (connections in the pools, caches).
    for i in 0..100 {
        conn.create(ObjectKind::User, attrs("wwarm", i)).await?;
        native_create(i, "nwarm").await?;
    }
    let mut wasm = Vec::with_capacity(n);
    let mut nat = Vec::with_capacity(n);
    let batch = 50;
    let mut i = 0;
    while i < n {
        for j in i..(i + batch).min(n) {
            let a = attrs("wasm", j);
            let s = Instant::now();
            let o = conn.create(ObjectKind::User, a).await?;
            wasm.push(s.elapsed());
            ensure!(!o.id.is_empty(), "wasm create: no id");
        }
        for j in i..(i + batch).min(n) {
            let s = Instant::now();
            native_create(j, "native").await?;
            nat.push(s.elapsed());
        }
        i += batch;
    }
    let (mw, mn) = (median(&mut wasm), median(&mut nat));
    let ratio = mw.as_secs_f64() / mn.as_secs_f64();
    t.row(
        "create-user through the wasm SCIM plugin",
        format!("{} median, {} mean (n={n})", us(mw), us(mean(&wasm))),
        "",
    );
    t.row(
        "create-user by a native Rust client (reqwest)",
        format!("{} median, {} mean (n={n})", us(mn), us(mean(&nat))),
        "the physical limit",
    );
    t.row(
        "sandbox overhead on create-user (wasm / native)",
        format!("{ratio:.2}x ({} per call)", us(mw.saturating_sub(mn))),
        format!("target <= 1.10x: {}", met(ratio <= 1.10)),
    );
    Ok(())
}

async fn cold_start(w: &Work, args: &Args, scim: &Path, sha: &str, t: &mut Table) -> Result<()> {
    std::fs::write(
        w.dir.join("cold.toml"),
        config(
            scim,
            sha,
            &w.origin,
            "cold-state",
            &[("cold".into(), None)],
            4,
            &[],
        ),
    )?;
    // One user to read.
    let resp = w
        .http
        .post(format!("{}/cold/v2/Users", w.origin))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(json!({"userName": "cold@example.com"}).to_string())
        .send()
        .await?;
    let id = serde_json::from_slice::<serde_json::Value>(&resp.bytes().await?)?["id"]
        .as_str()
        .context("no id")?
        .to_string();
    let cache = w.dir.join("cold-state/cache");
    let runs = args.cold_runs.max(1);
    let mut without = Vec::new();
    for _ in 0..runs {
        let _ = std::fs::remove_dir_all(&cache);
        let r = w.cli("cold.toml", &["user", "get", "cold", &id])?;
        ensure!(
            r.stdout.contains(&id),
            "cold start: wrong answer {}",
            r.stdout
        );
        without.push(r.wall);
    }
    let mut with = Vec::new();
    for _ in 0..runs {
        let r = w.cli("cold.toml", &["user", "get", "cold", &id])?;
        ensure!(
            r.stdout.contains(&id),
            "cold start: wrong answer {}",
            r.stdout
        );
        with.push(r.wall);
    }
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    t.row(
        "cold start to first completed call, no precompiled cache",
        format!("{} median of {runs}", ms(median(&mut without))),
        "process start, config, compile (Cranelift), call, exit",
    );
    t.row(
        "cold start to first completed call, precompiled cache",
        format!("{} median of {runs}", ms(median(&mut with))),
        "process start, config, load artifact, call, exit",
    );
    Ok(())
}

/// RSS of `provisio run` with `k` connections once every connection has run
/// its first cycle and the service waits for the next interval.
async fn idle_rss(w: &Work, k: usize, scim: &Path, sha: &str) -> Result<u64> {
    let names: Vec<String> = (0..k).map(|i| format!("idle{k}c{i}")).collect();
    std::fs::write(
        w.dir.join(format!("idle{k}.json")),
        serde_json::to_vec(&directory(10, |_| false, &names))?,
    )?;
    let source = format!("idle{k}");
    let conns: Vec<(String, Option<&str>)> = names
        .iter()
        .map(|n| (n.clone(), Some(source.as_str())))
        .collect();
    let state = format!("idle{k}-state");
    std::fs::write(
        w.dir.join(format!("idle{k}.toml")),
        config(
            scim,
            sha,
            &w.origin,
            &state,
            &conns,
            4,
            &[(&source, &format!("idle{k}.json"))],
        ),
    )?;
    let log = w.dir.join(format!("idle{k}-stderr.log"));
    let child = Command::new(&w.exe)
        .arg("cli")
        .arg("--config")
        .arg(w.dir.join(format!("idle{k}.toml")))
        .arg("run")
        .current_dir(&w.dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let pid = child.id().to_string();
    let mut guard = Guard(child);
    let db = w.dir.join(&state).join("provisio.db");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Some(status) = guard.0.try_wait()? {
            bail!(
                "`provisio run` exited early ({status}); see {}",
                log.display()
            );
        }
        let done =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .and_then(|c| {
                    c.query_row(
                        "SELECT count(*) FROM cycles WHERE status = 'succeeded'",
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                })
                .unwrap_or(0);
        if done as usize >= k {
            break;
        }
        ensure!(Instant::now() < deadline, "idle {k}: cycles did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Idle: every cycle done, the service waits for the next interval.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kb = status_kb("VmRSS:", &pid).context("no VmRSS")?;
    drop(guard);
    Ok(kb)
}

fn print_table(t: &Table, n: usize, groups: usize, args: &Args) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!();
    println!(
        "Provisio benchmark: {n} users, {groups} groups, concurrency {}, {cores} cores ({cpu}), load average at the end {}",
        args.concurrency,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!();
    println!("| measurement | result | reference / target |");
    println!("|---|---|---|");
    for [a, b, c] in &t.rows {
        println!("| {a} | {b} | {c} |");
    }
}
