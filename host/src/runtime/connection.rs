//! A connection: one plugin bound to one operator configuration.
//!
//! [`Connection::new`] checks the configuration against the plugin's manifest
//! (required settings set, required secrets granted with the placements in
//! effect — the operator confirms a login exchange's body placement
//! explicitly —, declared host patterns filled) and builds the connection's
//! capabilities. Each operation then runs in
//! a fresh store instantiated from the plugin's `InstancePre`, under the
//! connection's limits (see [`super::sandbox`]).

use super::bindings::{PluginPre, guest};
use super::guest_output::{self, GUEST_OUTPUT_LIMITS, GuestOutput, GuestOutputError};
use super::sandbox::{self, CallError, ConnectionContext, Limits, Metered, StoreState};
use super::{Plugin, Runtime};
use crate::capabilities::http::{Allowlist, HostPattern, HttpClient, HttpPolicy, fill_pattern};
use crate::capabilities::intercept::Interceptor;
use crate::capabilities::kv::{KvCache, KvLimits};
use crate::capabilities::log::GuestLog;
use crate::capabilities::secrets::{GrantedSecrets, Secret, SecretGrant};
use crate::model::{
    Attribute, ConnectorError, LoginValue, Manifest, ObjectKind, Page, Placement, TargetObject,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use wasmtime::Store;

/// The operator's configuration of one connection.
#[derive(Debug, Clone)]
pub struct ConnectionSpec {
    /// Connection name.
    pub name: String,
    /// Settings.
    pub settings: BTreeMap<String, String>,
    /// Hosts the operator grants.
    pub allowed_hosts: Vec<HostPattern>,
    /// Granted origins whose host names may resolve to non-public addresses
    /// (loopback, private, link-local, …): `{ origin = "...", private = true }`
    /// in `allowed_hosts`. Each must also be in `allowed_hosts`; this grants
    /// nothing by itself. IP literals in `allowed_hosts` need no opt-in.
    pub private_hosts: Vec<HostPattern>,
    /// Secrets granted, keyed by the plugin's names.
    pub secrets: BTreeMap<String, Arc<Secret>>,
    /// Placements the operator confirmed for a secret, keyed by the plugin's
    /// names (the long grant form `{ secret = "...", placements = [...] }`).
    /// A secret without an entry gets the manifest's auth-header placements
    /// only (bearer, basic, named headers), never a login exchange's body.
    pub secret_placements: BTreeMap<String, Vec<crate::model::Placement>>,
    /// Limits.
    pub limits: Limits,
}

/// Why a connection could not be set up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectionError {
    /// A required setting is missing.
    #[error(
        "connection '{connection}': plugin '{plugin}' requires setting '{setting}' ({description}); \
         add it to the connection's `settings`"
    )]
    MissingSetting {
        /// Connection.
        connection: String,
        /// Plugin.
        plugin: String,
        /// Setting.
        setting: String,
        /// Its description.
        description: String,
    },
    /// A setting the plugin does not know.
    #[error(
        "connection '{connection}': plugin '{plugin}' has no setting '{setting}' (known: {known})"
    )]
    UnknownSetting {
        /// Connection.
        connection: String,
        /// Plugin.
        plugin: String,
        /// Setting.
        setting: String,
        /// Known settings.
        known: String,
    },
    /// A required secret is not granted.
    #[error(
        "connection '{connection}': plugin '{plugin}' requires secret '{secret}' ({description}); \
         grant one in the connection's `secrets` table, e.g. secrets = {{ {secret} = \"<name of a [secrets.*] entry>\" }}"
    )]
    MissingSecret {
        /// Connection.
        connection: String,
        /// Plugin.
        plugin: String,
        /// Secret.
        secret: String,
        /// Its description.
        description: String,
    },
    /// A secret grant under a name the plugin does not declare.
    #[error(
        "connection '{connection}': plugin '{plugin}' declares no secret '{secret}' (declared: {known})"
    )]
    UnknownSecret {
        /// Connection.
        connection: String,
        /// Plugin.
        plugin: String,
        /// Secret.
        secret: String,
        /// Declared secrets.
        known: String,
    },
    /// The operator confirmed a placement the manifest does not declare.
    #[error(
        "connection '{connection}': secret '{secret}' is granted with placement {placement}, \
         which the plugin does not declare (declared: {declared})"
    )]
    UndeclaredPlacement {
        /// Connection.
        connection: String,
        /// Secret.
        secret: String,
        /// The placement.
        placement: String,
        /// What the manifest declares.
        declared: String,
    },
    /// A login exchange needs a secret in its body and the operator did not
    /// confirm that placement.
    #[error(
        "connection '{connection}': plugin '{plugin}' sends secret '{secret}' in the body of its \
         login exchange '{exchange}'; confirm it in the grant: \
         secrets = {{ {secret} = {{ secret = \"<name of a [secrets.*] entry>\", placements = [{placements}] }} }}"
    )]
    UnconfirmedPlacement {
        /// Connection.
        connection: String,
        /// Plugin.
        plugin: String,
        /// Secret.
        secret: String,
        /// The exchange.
        exchange: String,
        /// Every placement the manifest declares for it, quoted.
        placements: String,
    },
    /// The connection's secret scanner could not be built.
    #[error("connection '{connection}': {source}")]
    Secrets {
        /// Connection.
        connection: String,
        /// Cause.
        source: Box<crate::capabilities::secrets::SecretError>,
    },
    /// A declared host pattern is invalid once filled.
    #[error(
        "connection '{connection}': plugin '{plugin}' declared host pattern '{pattern}': {message}"
    )]
    BadHostPattern {
        /// Connection.
        connection: String,
        /// Plugin.
        plugin: String,
        /// The declared pattern.
        pattern: String,
        /// Why.
        message: String,
    },
    /// The connection's HTTP client could not be built.
    #[error("connection '{connection}': {message}")]
    HttpClient {
        /// Connection.
        connection: String,
        /// Why.
        message: String,
    },
}

/// A ready connection.
pub struct Connection {
    engine: wasmtime::Engine,
    plugin: Arc<Plugin>,
    ctx: Arc<ConnectionContext>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("name", &self.ctx.name)
            .field("plugin", &self.plugin.name)
            .finish_non_exhaustive()
    }
}

/// The placements in effect for each granted secret: the operator's
/// confirmed list (each declared by the manifest), or else the manifest's
/// auth-header placements. A login exchange's secret field must be confirmed.
fn effective_grants(
    m: &Manifest,
    spec: &ConnectionSpec,
    plugin: &str,
) -> Result<BTreeMap<String, SecretGrant>, ConnectionError> {
    let mut grants = BTreeMap::new();
    for (name, secret) in &spec.secrets {
        let declared = m
            .secrets
            .iter()
            .find(|s| &s.name == name)
            .map(|s| s.declared_placements())
            .unwrap_or_default();
        let show = |ps: &[Placement]| {
            ps.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let placements = match spec.secret_placements.get(name) {
            Some(confirmed) => {
                for p in confirmed {
                    if !declared.contains(p) {
                        return Err(ConnectionError::UndeclaredPlacement {
                            connection: spec.name.clone(),
                            secret: name.clone(),
                            placement: p.to_string(),
                            declared: show(&declared),
                        });
                    }
                }
                confirmed.clone()
            }
            None => declared.iter().filter(|p| p.is_header()).cloned().collect(),
        };
        for x in &m.logins {
            let uses = x
                .fields
                .iter()
                .any(|(_, v)| matches!(v, LoginValue::Secret(s) if s == name));
            if uses && !placements.contains(&Placement::Login(x.name.clone())) {
                return Err(ConnectionError::UnconfirmedPlacement {
                    connection: spec.name.clone(),
                    plugin: plugin.to_string(),
                    secret: name.clone(),
                    exchange: x.name.clone(),
                    placements: declared
                        .iter()
                        .map(|p| format!("\"{p}\""))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        grants.insert(
            name.clone(),
            SecretGrant {
                secret: secret.clone(),
                placements,
            },
        );
    }
    Ok(grants)
}

fn names<T>(items: &[T], name: impl Fn(&T) -> &str) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items
            .iter()
            .map(|i| name(i).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Runtime {
    /// Bind a plugin to a connection's configuration.
    pub fn connect(
        &self,
        plugin: Arc<Plugin>,
        spec: ConnectionSpec,
    ) -> Result<Connection, ConnectionError> {
        self.connect_with(plugin, spec, None)
    }

    /// Like [`Runtime::connect`], with an [`Interceptor`] on the connection's
    /// HTTP traffic: every hop is recorded there and armed faults are
    /// injected. For the conformance kit and tests only; configuration
    /// cannot reach this.
    pub fn connect_intercepted(
        &self,
        plugin: Arc<Plugin>,
        spec: ConnectionSpec,
        interceptor: Interceptor,
    ) -> Result<Connection, ConnectionError> {
        self.connect_with(plugin, spec, Some(interceptor))
    }

    fn connect_with(
        &self,
        plugin: Arc<Plugin>,
        spec: ConnectionSpec,
        interceptor: Option<Interceptor>,
    ) -> Result<Connection, ConnectionError> {
        let m: &Manifest = &plugin.manifest;
        let (connection, pname) = (spec.name.clone(), plugin.name.clone());
        for s in &m.settings {
            if s.required && s.default_value.is_none() && !spec.settings.contains_key(&s.name) {
                return Err(ConnectionError::MissingSetting {
                    connection,
                    plugin: pname,
                    setting: s.name.clone(),
                    description: s.description.clone(),
                });
            }
        }
        for key in spec.settings.keys() {
            if !m.settings.iter().any(|s| &s.name == key) {
                return Err(ConnectionError::UnknownSetting {
                    connection,
                    plugin: pname,
                    setting: key.clone(),
                    known: names(&m.settings, |s| &s.name),
                });
            }
        }
        for s in &m.secrets {
            if s.required && !spec.secrets.contains_key(&s.name) {
                return Err(ConnectionError::MissingSecret {
                    connection,
                    plugin: pname,
                    secret: s.name.clone(),
                    description: s.description.clone(),
                });
            }
        }
        for key in spec.secrets.keys() {
            if !m.secrets.iter().any(|s| &s.name == key) {
                return Err(ConnectionError::UnknownSecret {
                    connection,
                    plugin: pname,
                    secret: key.clone(),
                    known: names(&m.secrets, |s| &s.name),
                });
            }
        }
        let defaults: BTreeMap<String, String> = m
            .settings
            .iter()
            .filter_map(|s| s.default_value.clone().map(|d| (s.name.clone(), d)))
            .collect();
        let setting = |n: &str| spec.settings.get(n).or_else(|| defaults.get(n)).cloned();
        let mut declared = Vec::new();
        for pattern in &m.hosts {
            let bad = |message: String| ConnectionError::BadHostPattern {
                connection: connection.clone(),
                plugin: pname.clone(),
                pattern: pattern.clone(),
                message,
            };
            match fill_pattern(pattern, setting).map_err(bad)? {
                Some(filled) => declared.push(HostPattern::parse(&filled).map_err(bad)?),
                None => tracing::debug!(
                    connection = %spec.name,
                    "declared host pattern '{}' names an unset setting; it allows nothing",
                    crate::untrusted::Untrusted::new(pattern).for_log()
                ),
            }
        }
        let grants = effective_grants(m, &spec, &pname)?;
        let secrets = GrantedSecrets::new(spec.name.clone(), grants).map_err(|source| {
            ConnectionError::Secrets {
                connection: spec.name.clone(),
                source: Box::new(source),
            }
        })?;
        let logins = m
            .logins
            .iter()
            .map(|x| {
                let mut x = x.clone();
                for (_, value) in x.fields.iter_mut() {
                    if let LoginValue::Setting(name) = value
                        && let Some(v) = setting(name)
                    {
                        *value = LoginValue::Text(v);
                    }
                }
                x
            })
            .collect();
        let limits = spec.limits;
        let allowlist =
            Allowlist::new(declared, spec.allowed_hosts).with_private(spec.private_hosts);
        let http_client =
            HttpClient::for_allowlist(&allowlist).map_err(|e| ConnectionError::HttpClient {
                connection: connection.clone(),
                message: e.to_string(),
            })?;
        let ctx = ConnectionContext {
            name: spec.name.clone(),
            plugin: plugin.name.clone(),
            settings: spec.settings,
            defaults,
            http: HttpPolicy {
                connection: spec.name.clone(),
                allowlist,
                secrets,
                timeout: limits.http_timeout,
                max_response_bytes: limits.max_response_bytes,
                max_redirects: limits.max_redirects,
                limiter: std::sync::Arc::new(crate::capabilities::ratelimit::RateLimiter::new(
                    limits.requests_per_second,
                )),
                max_budget_wait: crate::capabilities::http::max_budget_wait(limits.wall_time),
                interceptor,
                logins,
            },
            http_client,
            log: GuestLog::new(spec.name.clone(), plugin.name.clone(), limits.log),
            kv: KvCache::new(KvLimits::default()),
            slots: Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent_calls)),
            limits,
        };
        Ok(Connection {
            engine: self.engine.clone(),
            plugin,
            ctx: Arc::new(ctx),
        })
    }
}

type CallFuture<'a, R> =
    Pin<Box<dyn Future<Output = wasmtime::Result<Result<R, ConnectorError>>> + Send + 'a>>;

/// Run one operation in a fresh store: take one of the connection's call
/// slots, instantiate, call, check the result's caps, classify the outcome.
///
/// The slot is what keeps one connection from starving the others: the
/// runtime's pool has [`super::POOL_INSTANCES`] instance slots for all
/// connections, and a connection may hold at most
/// [`Limits::max_concurrent_calls`] of them. A call beyond that waits for one
/// of its own connection's calls to finish, at most [`Limits::wall_time`]
/// (one call's worth), then fails with [`CallError::Busy`], which the sync
/// treats as transient.
pub(crate) async fn call<R, F>(
    engine: &wasmtime::Engine,
    pre: &PluginPre<StoreState>,
    ctx: Arc<ConnectionContext>,
    operation: &str,
    f: F,
) -> Result<R, CallError>
where
    R: GuestOutput,
    F: for<'a> FnOnce(&'a guest::Guest, &'a mut Store<StoreState>) -> CallFuture<'a, R>,
{
    let wall = ctx.limits.wall_time;
    let _slot = match tokio::time::timeout(wall, ctx.slots.clone().acquire_owned()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) | Err(_) => {
            let e = CallError::Busy {
                connection: ctx.name.clone(),
                operation: operation.to_string(),
                limit: ctx.limits.max_concurrent_calls,
                waited: wall,
            };
            tracing::warn!(connection = %ctx.name, operation, code = e.code(), "call not started: {e}");
            return Err(e);
        }
    };
    let throttled_before = ctx.http.limiter.throttle_events();
    let mut store = sandbox::new_store(engine, ctx.clone());
    let meter = store.data().cpu.clone();
    let outcome = {
        let store = &mut store;
        let run = async move {
            let instance = pre.instantiate_async(&mut *store).await?;
            let guest = instance.provisio_connector_connector().clone();
            f(&guest, store).await
        };
        tokio::time::timeout(wall, Metered::new(meter, run)).await
    };
    let stderr = sandbox::drain_stdio(&store);
    let limits = &GUEST_OUTPUT_LIMITS;
    let bad = |source| CallError::BadOutput {
        plugin: ctx.plugin.clone(),
        operation: operation.to_string(),
        source,
    };
    // Every value the connection holds, in every encoding its scanner knows.
    let scanner = ctx.http.secrets.scanner();
    let holds = |s: &str| scanner.find(s.as_bytes()).is_some();
    let result = match outcome {
        Err(_elapsed) => Err(CallError::Timeout {
            plugin: ctx.plugin.clone(),
            operation: operation.to_string(),
            limit: wall,
        }),
        Ok(Err(trap)) => Err(sandbox::classify(&store, operation, trap, &stderr)),
        // A guest's message is untrusted text: every value the connection
        // holds is scrubbed from it, in every encoding, then it is capped.
        Ok(Ok(Err(e))) => match guest_output::error_secret(&e, &holds) {
            Some(what) => Err(bad(GuestOutputError::CarriesSecret { what })),
            None => match guest_output::cap_error(e.map_text(|m| scanner.redact_str(m)), limits) {
                Ok(e) => Err(CallError::Connector(e)),
                Err(why) => Err(bad(why)),
            },
        },
        // Ids, cursors and attributes are kept exactly, so one that carries
        // a secret cannot be redacted: the result is refused.
        Ok(Ok(Ok(r))) => {
            r.checked(limits)
                .map_err(bad)
                .and_then(|r| match r.carried_secret(&holds) {
                    Some(what) => Err(bad(GuestOutputError::CarriesSecret { what })),
                    None => Ok(r),
                })
        }
    };
    // A vendor may signal its quota without a 429 (Clarizen answers HTTP
    // 500 "API calls quota exceeded"): when the connector reports
    // rate-limited and the HTTP layer did not already slow the connection
    // down during this call, the connection's whole budget adapts here.
    if let Err(CallError::Connector(ConnectorError::RateLimited { retry_after, .. })) = &result
        && ctx.http.limiter.throttle_events() == throttled_before
    {
        ctx.http.limiter.throttle(*retry_after);
    }
    if let Err(e) = &result {
        if !matches!(e, CallError::Connector(_)) {
            crate::metrics::metrics()
                .sandbox_traps
                .get_or_create(&crate::metrics::status(&ctx.name, e.code()))
                .inc();
        }
        tracing::warn!(
            connection = %ctx.name,
            plugin = %ctx.plugin,
            operation,
            code = e.code(),
            "call failed: {}",
            crate::untrusted::Untrusted::new(&e.to_string()).for_log()
        );
    }
    result
}

macro_rules! op {
    ($self:ident, $name:literal, |$g:ident, $s:ident| $body:expr) => {
        call(
            &$self.engine,
            &$self.plugin.pre,
            $self.ctx.clone(),
            $name,
            |$g, $s| Box::pin(async move { $body.map(|r| r.map_err(ConnectorError::from)) }),
        )
        .await
    };
}

fn attrs(a: Vec<Attribute>) -> Vec<super::bindings::provisio::connector::types::Attribute> {
    a.into_iter().map(Into::into).collect()
}

impl Connection {
    /// Connection name.
    pub fn name(&self) -> &str {
        &self.ctx.name
    }

    /// The plugin.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// The connection's request budget (shared by all its calls).
    pub fn limiter(&self) -> &Arc<crate::capabilities::ratelimit::RateLimiter> {
        &self.ctx.http.limiter
    }

    /// Guest log counters (emitted, suppressed).
    pub fn log_stats(&self) -> crate::capabilities::log::LogStats {
        self.ctx.log.stats()
    }

    /// Instantiate the plugin in a fresh store and drop it, calling nothing:
    /// the fixed cost every operation pays (used by health checks and benches).
    pub async fn instantiate(&self) -> Result<(), CallError> {
        call(
            &self.engine,
            &self.plugin.pre,
            self.ctx.clone(),
            "instantiate",
            |_g, _s| Box::pin(async move { Ok(Ok(())) }),
        )
        .await
    }

    /// Check settings and credentials against the target.
    pub async fn test_connection(&self) -> Result<String, CallError> {
        let message = op!(self, "test-connection", |g, s| g
            .call_test_connection(s)
            .await)?;
        Ok(self.ctx.http.secrets.scanner().redact_str(&message))
    }

    /// Find objects whose attribute equals a value.
    pub async fn find(
        &self,
        kind: ObjectKind,
        attribute: Attribute,
    ) -> Result<Vec<TargetObject>, CallError> {
        op!(self, "find", |g, s| g
            .call_find(s, kind.into(), &attribute.into())
            .await
            .map(|r| r.map(|v| v.into_iter().map(Into::into).collect())))
    }

    /// Read one object.
    pub async fn get(&self, kind: ObjectKind, id: &str) -> Result<TargetObject, CallError> {
        let id = id.to_string();
        op!(self, "get", |g, s| g
            .call_get(s, kind.into(), &id)
            .await
            .map(|r| r.map(Into::into)))
    }

    /// Create an object.
    pub async fn create(
        &self,
        kind: ObjectKind,
        attributes: Vec<Attribute>,
    ) -> Result<TargetObject, CallError> {
        op!(self, "create", |g, s| g
            .call_create(s, kind.into(), &attrs(attributes))
            .await
            .map(|r| r.map(Into::into)))
    }

    /// Update only the given attributes.
    pub async fn update(
        &self,
        kind: ObjectKind,
        id: &str,
        changes: Vec<Attribute>,
    ) -> Result<(), CallError> {
        let id = id.to_string();
        op!(self, "update", |g, s| g
            .call_update(s, kind.into(), &id, &attrs(changes))
            .await)
    }

    /// Disable an object.
    pub async fn disable(&self, kind: ObjectKind, id: &str) -> Result<(), CallError> {
        let id = id.to_string();
        op!(self, "disable", |g, s| g
            .call_disable(s, kind.into(), &id)
            .await)
    }

    /// Enable an object.
    pub async fn enable(&self, kind: ObjectKind, id: &str) -> Result<(), CallError> {
        let id = id.to_string();
        op!(self, "enable", |g, s| g
            .call_enable(s, kind.into(), &id)
            .await)
    }

    /// Delete an object.
    pub async fn delete(&self, kind: ObjectKind, id: &str) -> Result<(), CallError> {
        let id = id.to_string();
        op!(self, "delete", |g, s| g
            .call_delete(s, kind.into(), &id)
            .await)
    }

    /// One page of objects.
    pub async fn list(
        &self,
        kind: ObjectKind,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<Page, CallError> {
        let cursor = cursor.map(str::to_string);
        op!(self, "list", |g, s| g
            .call_list(s, kind.into(), cursor.as_deref(), page_size)
            .await
            .map(|r| r.map(Into::into)))
    }

    /// Add members to a group in one batch.
    pub async fn add_members(
        &self,
        group_id: &str,
        member_ids: &[String],
    ) -> Result<(), CallError> {
        let (group_id, member_ids) = (group_id.to_string(), member_ids.to_vec());
        op!(self, "add-members", |g, s| g
            .call_add_members(s, &group_id, &member_ids)
            .await)
    }

    /// Remove members from a group in one batch.
    pub async fn remove_members(
        &self,
        group_id: &str,
        member_ids: &[String],
    ) -> Result<(), CallError> {
        let (group_id, member_ids) = (group_id.to_string(), member_ids.to_vec());
        op!(self, "remove-members", |g, s| g
            .call_remove_members(s, &group_id, &member_ids)
            .await)
    }
}
