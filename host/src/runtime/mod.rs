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
//! - [`cache`]: the HMAC-authenticated artifact cache.

pub mod cache;
pub mod connection;
pub mod loaded;
pub mod plugin;
pub mod sandbox;

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
/// enforced by the store's limiter; the pool's own ceiling is 4 GiB, the
/// largest `memory_mb` a configuration may set.
fn pool_config() -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 4)
        .total_memories(POOL_INSTANCES)
        .total_tables(POOL_INSTANCES * 4)
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

    /// Run `describe` in a sandbox with no network and no secrets.
    async fn describe(
        &self,
        plugin_name: &str,
        pre: &PluginPre<StoreState>,
    ) -> Result<Manifest, CallError> {
        let limits = Limits::default();
        let ctx = Arc::new(ConnectionContext {
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
                interceptor: None,
            },
            http_client: self.http.clone(),
            log: GuestLog::new(plugin_name, plugin_name, limits.log),
            kv: KvCache::new(KvLimits::default()),
            limits,
        });
        connection::call(&self.engine, pre, ctx, "describe", |inst, store| {
            Box::pin(async move { inst.call_describe(store).await.map(Ok) })
        })
        .await
        .map(Into::into)
    }
}
