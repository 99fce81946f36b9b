//! The sandboxed connector runtime.
//!
//! One [`Runtime`] per process holds the wasmtime [`Engine`] (with epoch
//! interruption driven by a ticker thread), the [`Linker`] with WASI (empty
//! context) and the host capabilities, the precompiled-artifact cache, and the
//! HTTP client of `describe` (which may reach nothing). Each connection builds
//! its own HTTP client at connect (own pool, own resolver policy).
//!
//! - [`plugin`]: load a file into a [`Plugin`] (pin check, compile or cached
//!   artifact, contract check, `InstancePre`, manifest).
//! - [`connection`]: a [`Connection`] binds a plugin to one operator
//!   configuration (settings, allowed hosts, private-address opt-ins, secrets,
//!   limits, its own HTTP client) and exposes the
//!   connector operations as async methods; each call runs in a fresh store.
//! - [`sandbox`]: the store, its limits, and how traps become [`CallError`]s.
//! - [`shape`]: caps on a component's instances, memories and tables,
//!   checked when it loads.
//! - [`guest_output`]: caps on what a call returns (messages, ids, objects,
//!   pages), applied before anything else sees it.
//! - [`cache`]: the HMAC-authenticated artifact cache.

pub mod cache;
pub mod connection;
pub mod guest_output;
pub mod loaded;
pub mod plugin;
pub mod sandbox;
pub mod shape;

mod bindings;

pub use connection::{Connection, ConnectionError, ConnectionSpec};
pub use loaded::LoadedPlugins;
pub use plugin::{CONTRACT_VERSION, LoadTimings, Plugin, PluginError};
pub use sandbox::{CallError, Limits};

use crate::capabilities::http::{Allowlist, HttpClient, HttpError, HttpPolicy};
use crate::capabilities::kv::{KvCache, KvLimits};
use crate::capabilities::log::GuestLog;
use crate::capabilities::secrets::GrantedSecrets;
use crate::model::Manifest;
use bindings::PluginPre;
use sandbox::{ConnectionContext, StoreState};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Instances (and their memories and async stacks) that can exist at once
/// in one [`Runtime`]: calls in flight across its connections. A call beyond
/// it fails cleanly (a `Trap` naming the limit).
pub const POOL_INSTANCES: u32 = 256;

/// Bytes of each linear memory kept resident between calls (zeroed with
/// `memset` instead of `madvise`). None: measured with the bench, zeroing the
/// first 1 MiB (a Rust guest's stack region, mostly untouched) cost more
/// (create-user 202 µs, instantiate 35 µs) than faulting in the few pages a
/// call touches (139 µs, 17 µs).
pub const POOL_KEEP_RESIDENT: usize = 0;

/// The pooling instance allocator: a fresh store and instance per call as
/// before, but its linear memory, tables and async stack come from slots
/// reserved once and reset (`madvise`) when the call ends, instead of a new
/// `mmap` / `munmap` of memory and async stack on every call. The memory limit is still
/// enforced by the store's limiter (all memories and tables of a call
/// together); the pool's own ceiling per memory is 4 GiB, the largest
/// `memory_mb` a configuration may set.
///
/// Per component, the pool allows what [`shape::COMPONENT_CAPS`] allows (a
/// plugin over them is refused at load anyway), and its totals are sized so
/// that [`POOL_INSTANCES`] calls each at those caps fit at once: a call can
/// never take another call's memory or table slot, only an instance slot,
/// and those are shared out per connection (`limits.max_concurrent_calls`).
fn pool_config() -> PoolingAllocationConfig {
    let caps = shape::COMPONENT_CAPS;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_INSTANCES)
        .max_core_instances_per_component(caps.core_instances)
        .max_memories_per_component(caps.memories)
        .max_tables_per_component(caps.tables)
        .total_core_instances(POOL_INSTANCES * caps.core_instances)
        .total_memories(POOL_INSTANCES * caps.memories)
        .total_tables(POOL_INSTANCES * caps.tables)
        .total_stacks(POOL_INSTANCES)
        .max_memory_size(4 << 30)
        .linear_memory_keep_resident(POOL_KEEP_RESIDENT);
    pool
}

/// How often the epoch advances; the granularity of CPU accounting.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Engine configuration failed.
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// Linking the host functions failed.
    #[error("cannot link host functions: {0}")]
    Linker(String),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The cache directory is unusable.
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
}

struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The process-wide runtime.
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<StoreState>,
    pub(crate) cache: Option<cache::ArtifactCache>,
    pub(crate) http: HttpClient,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Create the runtime; `cache_dir` enables the precompiled-artifact cache.
    pub fn new(cache_dir: Option<&Path>) -> Result<Self, RuntimeError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        config.max_wasm_stack(512 * 1024);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool_config()));
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;

        let mut linker: Linker<StoreState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Linker(format!("{e:#}")))?;
        bindings::Plugin::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::Linker(format!("{e:#}")))?;

        let cache = match cache_dir {
            Some(dir) => Some(cache::ArtifactCache::open(dir, &engine)?),
            None => None,
        };

        let stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("provisio-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch thread: {e}")))?;
        }

        Ok(Runtime {
            engine,
            linker,
            cache,
            http: HttpClient::new()?,
            _ticker: EpochTicker { stop },
        })
    }

    /// The engine's compatibility hash (part of the cache key).
    pub fn engine_hash(&self) -> String {
        cache::engine_hash(&self.engine)
    }

    /// A context with no network, no secrets and no settings: for
    /// `describe`, and for tests of the sandbox itself.
    pub(crate) fn isolated_context(&self, plugin_name: &str, limits: Limits) -> ConnectionContext {
        ConnectionContext {
            name: format!("{plugin_name}:describe"),
            plugin: plugin_name.to_string(),
            settings: Default::default(),
            defaults: Default::default(),
            http: HttpPolicy {
                connection: format!("{plugin_name}:describe"),
                allowlist: Allowlist::deny_all(),
                secrets: GrantedSecrets::default(),
                timeout: limits.http_timeout,
                max_response_bytes: limits.max_response_bytes,
                max_redirects: 0,
                limiter: std::sync::Arc::new(crate::capabilities::ratelimit::RateLimiter::new(
                    limits.requests_per_second,
                )),
                max_budget_wait: crate::capabilities::http::max_budget_wait(limits.wall_time),
                interceptor: None,
                logins: Vec::new(),
            },
            http_client: self.http.clone(),
            log: GuestLog::new(plugin_name, plugin_name, limits.log),
            kv: KvCache::new(KvLimits::default()),
            slots: Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent_calls)),
            limits,
        }
    }

    /// Run `describe` in a sandbox with no network and no secrets.
    async fn describe(
        &self,
        plugin_name: &str,
        pre: &PluginPre<StoreState>,
    ) -> Result<Manifest, CallError> {
        let ctx = Arc::new(self.isolated_context(plugin_name, Limits::default()));
        connection::call(&self.engine, pre, ctx, "describe", |inst, store| {
            Box::pin(async move { inst.call_describe(store).await.map(Ok) })
        })
        .await
        .map(Into::into)
    }
}
