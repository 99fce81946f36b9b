//! The sandbox around one call into a connector.
//!
//! Every unit of work gets a fresh [`wasmtime::Store`] holding a [`StoreState`]:
//! an empty WASI context (no environment, arguments, files or sockets; guest
//! stdout/stderr captured into bounded pipes and forwarded to the log), a memory
//! limiter, and a clock that separates guest time from time spent in host
//! imports. Three limits apply to each call:
//!
//! - **memory**: a linear memory may not grow past [`Limits::memory_bytes`];
//! - **CPU**: the epoch callback traps once *guest* time (wall time minus time
//!   in host imports such as HTTP) passes [`Limits::cpu_time`]; it also yields to
//!   the executor every tick so the wall-clock timeout can fire;
//! - **wall clock**: the whole call, host I/O included, is bounded by
//!   [`Limits::wall_time`].
//!
//! Any trap or limit becomes a [`CallError`] for that call; the store and
//! instance are dropped and the host carries on.

use crate::capabilities::http::{HttpClient, HttpPolicy};
use crate::capabilities::kv::KvCache;
use crate::capabilities::log::{GuestLog, LogLimits};
use crate::model::ConnectorError;
use std::collections::BTreeMap;
use std::sync::Arc;
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
        }
    }
}

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

/// Guest vs host time within one call.
#[derive(Debug)]
pub(crate) struct CallClock {
    pub started: Instant,
    pub host_time: Duration,
}

impl CallClock {
    fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.host_time)
    }
}

/// Memory limiter that remembers why it refused.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: usize,
    pub exceeded: Option<usize>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = Some(desired);
            return Err(wasmtime::Error::msg(format!(
                "memory limit exceeded: growing to {desired} bytes, limit {} bytes",
                self.limit
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The data of one store.
pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) ctx: Arc<ConnectionContext>,
    pub(crate) clock: CallClock,
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
    /// A memory grew past the limit.
    #[error(
        "plugin '{plugin}' exceeded its memory limit of {limit} MiB in '{operation}' (asked for {asked} MiB) and was stopped"
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
        limiter: MemoryLimiter {
            limit: limits.memory_bytes,
            exceeded: None,
        },
        ctx,
        clock: CallClock {
            started: Instant::now(),
            host_time: Duration::ZERO,
        },
        cpu_exceeded: false,
        stdout,
        stderr,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut cx| {
        let s = cx.data_mut();
        if s.clock.guest_time() > limits.cpu_time {
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

    #[test]
    fn panic_messages_are_extracted() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:10:5:\ndeliberate panic\nnote: run with RUST_BACKTRACE=1\n";
        let m = panic_message(stderr).unwrap();
        assert!(m.starts_with("deliberate panic"), "{m}");
        assert!(m.contains("src/lib.rs:10:5"), "{m}");
        assert_eq!(panic_message("nothing here"), None);
    }
}
