//! The sandbox around one call into a connector.
//!
//! Every unit of work gets a fresh [`wasmtime::Store`] holding a [`StoreState`]:
//! an empty WASI context (no environment, arguments, files or sockets; guest
//! stdout/stderr captured into bounded pipes and forwarded to the log), a memory
//! limiter, and a CPU meter. These limits apply to each call:
//!
//! - **memory**: all linear memories and tables of the call's instance
//!   together (tables at one pointer per element) may not grow past
//!   [`Limits::memory_bytes`]; the store also refuses more instances,
//!   memories or tables than [`super::shape::COMPONENT_CAPS`];
//! - **CPU**: the epoch callback traps once the call's CPU time passes
//!   [`Limits::cpu_time`]. CPU time is the time spent inside polls of the
//!   call's future ([`CpuMeter`]): guest code *and* the host's work in
//!   imports (logging, kv, assembling and scrubbing HTTP), but not waiting on
//!   the network, the rate limiter or timers. The callback also yields to the
//!   executor every tick so the wall-clock timeout can fire;
//! - **wall clock**: the whole call, host I/O included, is bounded by
//!   [`Limits::wall_time`];
//! - **concurrency**: a connection runs at most
//!   [`Limits::max_concurrent_calls`] calls at once (see
//!   [`super::connection::call`]).
//!
//! Any trap or limit becomes a [`CallError`] for that call; the store and
//! instance are dropped and the host carries on.

use crate::capabilities::http::{HttpClient, HttpPolicy};
use crate::capabilities::kv::KvCache;
use crate::capabilities::log::{GuestLog, LogLimits};
use crate::model::ConnectorError;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Resource limits of a connection's calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Largest size of a guest linear memory.
    pub memory_bytes: usize,
    /// Guest CPU time per call.
    pub cpu_time: Duration,
    /// Wall-clock time per call, host I/O included.
    pub wall_time: Duration,
    /// Timeout of one HTTP request.
    pub http_timeout: Duration,
    /// Largest HTTP response body.
    pub max_response_bytes: usize,
    /// Redirect hops followed at most.
    pub max_redirects: usize,
    /// Guest logging budget.
    pub log: LogLimits,
    /// HTTP requests per second the connection may make.
    pub requests_per_second: f64,
    /// Calls of one connection that may run at once (each holds one pool
    /// instance slot); a call beyond it waits for a free slot, at most
    /// [`Limits::wall_time`], then fails with [`CallError::Busy`].
    pub max_concurrent_calls: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 * 1024 * 1024,
            cpu_time: Duration::from_secs(10),
            wall_time: Duration::from_secs(60),
            http_timeout: Duration::from_secs(30),
            max_response_bytes: 16 * 1024 * 1024,
            max_redirects: 5,
            log: LogLimits::default(),
            requests_per_second: 25.0,
            max_concurrent_calls: DEFAULT_CONCURRENT_CALLS,
        }
    }
}

/// Default of [`Limits::max_concurrent_calls`]: twice the default
/// `concurrency` of a connection's sync, so its own calls never wait.
pub const DEFAULT_CONCURRENT_CALLS: usize = 8;

/// Bytes of guest stdout or stderr kept per call.
const STDIO_CAPACITY: usize = 64 * 1024;

/// Everything a call of one connection may use; shared by all its calls.
#[derive(Debug)]
pub struct ConnectionContext {
    /// Connection name.
    pub name: String,
    /// Plugin name.
    pub plugin: String,
    /// Settings given by the operator.
    pub settings: BTreeMap<String, String>,
    /// Defaults from the manifest.
    pub defaults: BTreeMap<String, String>,
    /// HTTP policy.
    pub http: HttpPolicy,
    /// Shared HTTP client.
    pub http_client: HttpClient,
    /// Guest logging.
    pub log: GuestLog,
    /// Key-value cache.
    pub kv: KvCache,
    /// Limits.
    pub limits: Limits,
    /// The connection's call slots ([`Limits::max_concurrent_calls`]).
    pub slots: Arc<tokio::sync::Semaphore>,
}

impl ConnectionContext {
    /// A setting, falling back to the manifest default.
    pub fn setting(&self, name: &str) -> Option<String> {
        self.settings
            .get(name)
            .or_else(|| self.defaults.get(name))
            .cloned()
    }
}

/// The CPU time of one call: guest execution *and* host work done inside host
/// imports, but not time spent waiting.
///
/// The call's future is wrapped in [`Metered`], which adds the time spent
/// inside each `poll` to `used`. The guest runs (on its fiber) only inside a
/// poll, and so does synchronous host work in imports (`log.emit`, `kv.set`,
/// header and body assembly, response scrubbing); waiting on the network, the
/// rate limiter or a timer returns `Pending`, and the time until the next
/// poll is not charged. The epoch callback reads the meter while a poll is in
/// progress, so a guest looping over a cheap import is stopped like one
/// spinning in wasm.
#[derive(Debug, Default)]
pub(crate) struct CpuMeter {
    used: Duration,
    polling_since: Option<Instant>,
}

impl CpuMeter {
    /// CPU time charged so far, the poll in progress included.
    pub(crate) fn used(&self) -> Duration {
        self.used + self.polling_since.map(|t| t.elapsed()).unwrap_or_default()
    }
}

/// A future whose time inside `poll` is charged to a [`CpuMeter`].
pub(crate) struct Metered<F> {
    meter: Arc<Mutex<CpuMeter>>,
    inner: Pin<Box<F>>,
}

impl<F> Metered<F> {
    pub(crate) fn new(meter: Arc<Mutex<CpuMeter>>, inner: F) -> Self {
        Metered {
            meter,
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let started = Instant::now();
        if let Ok(mut m) = self.meter.lock() {
            m.polling_since = Some(started);
        }
        let out = self.inner.as_mut().poll(cx);
        if let Ok(mut m) = self.meter.lock() {
            let since = m.polling_since.take().unwrap_or(started);
            m.used += since.elapsed();
        }
        out
    }
}

/// Bytes a table element is charged: one pointer.
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// The memory budget of one call: the sum of all its linear memories and
/// tables (elements × pointer size) against `limits.memory_mb`, so that many
/// small memories cost as much as one big one. It also caps how many
/// instances, memories and tables the store may create (the same caps a
/// plugin is checked against at load, see [`super::shape`]).
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: usize,
    used: usize,
    /// Set when a growth was refused: the total the call asked for, bytes.
    pub exceeded: Option<usize>,
}

impl MemoryLimiter {
    fn new(limit: usize) -> Self {
        MemoryLimiter {
            limit,
            used: 0,
            exceeded: None,
        }
    }

    /// Charge growth from `current` to `desired` bytes against the budget.
    fn charge(&mut self, current: usize, desired: usize) -> wasmtime::Result<bool> {
        let total = self.used.saturating_add(desired.saturating_sub(current));
        if total > self.limit {
            self.exceeded = Some(total);
            return Err(wasmtime::Error::msg(format!(
                "memory limit exceeded: the call's memories and tables would hold {total} bytes \
                 together, limit {} bytes (limits.memory_mb)",
                self.limit
            )));
        }
        self.used = total;
        Ok(true)
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.charge(current, desired)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.charge(
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }

    fn instances(&self) -> usize {
        super::shape::COMPONENT_CAPS.core_instances as usize
    }

    fn memories(&self) -> usize {
        super::shape::COMPONENT_CAPS.memories as usize
    }

    fn tables(&self) -> usize {
        super::shape::COMPONENT_CAPS.tables as usize
    }
}

/// The data of one store.
pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) ctx: Arc<ConnectionContext>,
    pub(crate) cpu: Arc<Mutex<CpuMeter>>,
    pub(crate) cpu_exceeded: bool,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Why a call did not return a result from the connector.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The connector returned an error.
    #[error("{0}")]
    Connector(ConnectorError),
    /// Guest CPU time ran out.
    #[error(
        "plugin '{plugin}' exceeded its CPU limit of {limit:?} in '{operation}' and was stopped"
    )]
    CpuLimit {
        /// Plugin.
        plugin: String,
        /// Operation.
        operation: String,
        /// Limit.
        limit: Duration,
    },
    /// The call's memories and tables together grew past the limit.
    #[error(
        "plugin '{plugin}' exceeded its memory limit of {limit} MiB in '{operation}' \
         (all its memories and tables together asked for {asked} MiB) and was stopped; \
         raise `memory_mb` in the connection's limits if it really needs more"
    )]
    MemoryLimit {
        /// Plugin.
        plugin: String,
        /// Operation.
        operation: String,
        /// Limit, MiB.
        limit: usize,
        /// Requested size, MiB.
        asked: usize,
    },
    /// The connection already ran its maximum of concurrent calls and none
    /// finished in time; this call was not started.
    #[error(
        "connection '{connection}' already runs {limit} calls at once (limits.max_concurrent_calls) \
         and no slot freed within {waited:?}; '{operation}' was not started. Lower the connection's \
         `concurrency` or raise `max_concurrent_calls` in its limits"
    )]
    Busy {
        /// Connection.
        connection: String,
        /// Operation.
        operation: String,
        /// The slot limit.
        limit: usize,
        /// How long the call waited.
        waited: Duration,
    },
    /// The connector returned a result that breaks the host's caps (see
    /// [`super::guest_output`]); the result was discarded.
    #[error(
        "plugin '{plugin}' returned a bad result from '{operation}': {source}; \
         the result was discarded (a bug in the connector: report it to its vendor)"
    )]
    BadOutput {
        /// Plugin.
        plugin: String,
        /// Operation.
        operation: String,
        /// Which rule it broke.
        source: super::guest_output::GuestOutputError,
    },
    /// The guest's stack overflowed.
    #[error(
        "plugin '{plugin}' overflowed its stack in '{operation}' (runaway recursion?) and was stopped"
    )]
    StackOverflow {
        /// Plugin.
        plugin: String,
        /// Operation.
        operation: String,
    },
    /// The guest panicked.
    #[error("plugin '{plugin}' panicked in '{operation}': {message}")]
    Panic {
        /// Plugin.
        plugin: String,
        /// Operation.
        operation: String,
        /// The panic message from the guest's stderr.
        message: String,
    },
    /// The call took longer than the wall-clock limit.
    #[error("plugin '{plugin}' did not finish '{operation}' within {limit:?} and was stopped")]
    Timeout {
        /// Plugin.
        plugin: String,
        /// Operation.
        operation: String,
        /// Limit.
        limit: Duration,
    },
    /// Any other trap or instantiation failure.
    #[error("plugin '{plugin}' failed in '{operation}': {message}")]
    Trap {
        /// Plugin.
        plugin: String,
        /// Operation.
        operation: String,
        /// What wasmtime said.
        message: String,
    },
}

impl CallError {
    /// A short machine code.
    pub fn code(&self) -> &'static str {
        match self {
            CallError::Connector(e) => e.code(),
            CallError::CpuLimit { .. } => "cpu-limit",
            CallError::MemoryLimit { .. } => "memory-limit",
            CallError::Busy { .. } => "busy",
            CallError::BadOutput { .. } => "bad-output",
            CallError::StackOverflow { .. } => "stack-overflow",
            CallError::Panic { .. } => "panic",
            CallError::Timeout { .. } => "timeout",
            CallError::Trap { .. } => "trap",
        }
    }
}

/// Build a fresh store for one unit of work.
pub(crate) fn new_store(
    engine: &wasmtime::Engine,
    ctx: Arc<ConnectionContext>,
) -> Store<StoreState> {
    let stdout = MemoryOutputPipe::new(STDIO_CAPACITY);
    let stderr = MemoryOutputPipe::new(STDIO_CAPACITY);
    // An empty context: no env, args, preopens; sockets and name lookup stay
    // disallowed (the defaults). Clocks and randomness are harmless.
    let wasi = WasiCtx::builder()
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let limits = ctx.limits;
    let state = StoreState {
        wasi,
        table: ResourceTable::new(),
        limiter: MemoryLimiter::new(limits.memory_bytes),
        ctx,
        cpu: Arc::new(Mutex::new(CpuMeter::default())),
        cpu_exceeded: false,
        stdout,
        stderr,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut cx| {
        let s = cx.data_mut();
        let used = s.cpu.lock().map(|m| m.used()).unwrap_or_default();
        if used > limits.cpu_time {
            s.cpu_exceeded = true;
            return Err(wasmtime::Error::msg("CPU limit exceeded"));
        }
        Ok(wasmtime::UpdateDeadline::Yield(1))
    });
    store
}

/// Forward what the guest printed to the log, tagged with the connection.
pub(crate) fn drain_stdio(store: &Store<StoreState>) -> String {
    let s = store.data();
    let out = String::from_utf8_lossy(&s.stdout.contents()).into_owned();
    let err = String::from_utf8_lossy(&s.stderr.contents()).into_owned();
    s.ctx.log.emit_stdio("stdout", &out);
    s.ctx.log.emit_stdio("stderr", &err);
    s.ctx.log.flush_suppressed();
    crate::capabilities::audit::flush(&s.ctx.http.connection);
    err
}

/// Turn a failed call into a [`CallError`].
pub(crate) fn classify(
    store: &Store<StoreState>,
    operation: &str,
    error: wasmtime::Error,
    stderr: &str,
) -> CallError {
    let s = store.data();
    let plugin = s.ctx.plugin.clone();
    let operation = operation.to_string();
    if s.cpu_exceeded {
        return CallError::CpuLimit {
            plugin,
            operation,
            limit: s.ctx.limits.cpu_time,
        };
    }
    if let Some(asked) = s.limiter.exceeded {
        return CallError::MemoryLimit {
            plugin,
            operation,
            limit: s.ctx.limits.memory_bytes / (1024 * 1024),
            asked: asked / (1024 * 1024),
        };
    }
    let trap = error.downcast_ref::<Trap>().copied();
    if trap == Some(Trap::StackOverflow) {
        return CallError::StackOverflow { plugin, operation };
    }
    if let Some(message) = panic_message(stderr) {
        return CallError::Panic {
            plugin,
            operation,
            message,
        };
    }
    let message = match trap {
        Some(t) => format!("{t}"),
        None => format!("{error:#}"),
    };
    CallError::Trap {
        plugin,
        operation,
        message: crate::capabilities::secrets::redact(&message),
    }
}

/// Extract a Rust panic message from guest stderr.
fn panic_message(stderr: &str) -> Option<String> {
    let idx = stderr.find("panicked at")?;
    let rest = &stderr[idx..];
    let mut lines = rest.lines();
    let first = lines.next().unwrap_or_default();
    let detail = lines.next().unwrap_or_default().trim();
    let msg = if detail.is_empty() {
        first.to_string()
    } else {
        format!("{detail} ({first})")
    };
    Some(crate::capabilities::log::truncate(&msg, 1024))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::component::Component;

    /// Instantiate a hand-written component in a store of the runtime's
    /// (pooling) engine under `memory_mb`, as a call would.
    async fn instantiate(wat: &str, memory_mb: usize) -> Result<(), CallError> {
        let rt = super::super::Runtime::new(None).unwrap_or_else(|e| panic!("{e}"));
        let limits = Limits {
            memory_bytes: memory_mb << 20,
            ..Limits::default()
        };
        let ctx = Arc::new(rt.isolated_context("wat", limits));
        let bytes = wat::parse_str(wat).unwrap_or_else(|e| panic!("{e}"));
        let component = Component::new(&rt.engine, &bytes).unwrap_or_else(|e| panic!("{e:#}"));
        let mut store = new_store(&rt.engine, ctx);
        match rt.linker.instantiate_async(&mut store, &component).await {
            Ok(_) => Ok(()),
            Err(e) => Err(classify(&store, "instantiate", e, "")),
        }
    }

    /// `n` core instances of a module with a memory of `pages` 64 KiB pages
    /// (every page touched by its start function) and a table of `elements`.
    fn memories(n: usize, pages: u32, elements: u32) -> String {
        format!(
            r#"(component
                 (core module $m
                   (memory {pages})
                   (table {elements} funcref)
                   (func $touch (local $p i32)
                     (block $done
                       (loop $l
                         (br_if $done (i32.ge_u (local.get $p) (i32.const {bytes})))
                         (i32.store8 (local.get $p) (i32.const 1))
                         (local.set $p (i32.add (local.get $p) (i32.const 4096)))
                         (br $l))))
                   (start $touch))
                 {instances})"#,
            bytes = u64::from(pages) * 65536,
            instances = "(core instance (instantiate $m))".repeat(n),
        )
    }

    use crate::metrics::peak_rss_kib;

    /// The review's attack below the load-time check: 60 core instances with
    /// a touched 64 MiB memory each, instantiated directly in a call's store.
    /// The pool refuses the component (per-component caps); were it
    /// compiled, the store's caps and the one budget would stop it. Prints
    /// the peak RSS.
    #[tokio::test]
    async fn many_memories_peak_rss() {
        let before = peak_rss_kib();
        let rt = super::super::Runtime::new(None).unwrap_or_else(|e| panic!("{e}"));
        let bytes = wat::parse_str(memories(60, 1024, 0)).unwrap_or_else(|e| panic!("{e}"));
        let outcome = match Component::new(&rt.engine, &bytes) {
            Err(e) => format!("refused by the pool: {e:#}"),
            Ok(component) => {
                let ctx = Arc::new(rt.isolated_context("wat", Limits::default()));
                let mut store = new_store(&rt.engine, ctx);
                match rt.linker.instantiate_async(&mut store, &component).await {
                    Ok(_) => "INSTANTIATED".to_string(),
                    Err(e) => classify(&store, "instantiate", e, "").to_string(),
                }
            }
        };
        let after = peak_rss_kib();
        println!("60 x 64 MiB memories: {outcome}; peak RSS {before} KiB -> {after} KiB");
        assert_ne!(outcome, "INSTANTIATED");
        assert!(
            after.saturating_sub(before) < 128 * 1024,
            "{before} -> {after} KiB"
        );
    }

    #[tokio::test]
    async fn memories_and_tables_of_a_call_share_one_budget() {
        // Two memories of 20 MiB: each under 32 MiB, together over it.
        let r = instantiate(&memories(2, 320, 0), 32).await;
        let Err(CallError::MemoryLimit { limit, asked, .. }) = &r else {
            panic!("{r:?}")
        };
        assert_eq!((*limit, *asked), (32, 40));
        let m = r.unwrap_err().to_string();
        assert!(
            m.contains("all its memories and tables together") && m.contains("memory_mb"),
            "{m}"
        );
        assert_eq!(instantiate(&memories(2, 320, 0), 48).await, Ok(()));
        // Tables count too: 511 pages fit in 32 MiB, plus 20 000 elements do not.
        assert_eq!(instantiate(&memories(1, 511, 0), 32).await, Ok(()));
        let r = instantiate(&memories(1, 511, 20_000), 32).await;
        assert!(matches!(r, Err(CallError::MemoryLimit { .. })), "{r:?}");
    }

    #[test]
    fn panic_messages_are_extracted() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:10:5:\ndeliberate panic\nnote: run with RUST_BACKTRACE=1\n";
        let m = panic_message(stderr).unwrap();
        assert!(m.starts_with("deliberate panic"), "{m}");
        assert!(m.contains("src/lib.rs:10:5"), "{m}");
        assert_eq!(panic_message("nothing here"), None);
    }
}
