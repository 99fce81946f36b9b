//! Bindings generated from `wit/` and the glue from the guest's imports to the
//! host capabilities. Generated code stays in here; the rest of the host uses
//! [`crate::model`] types.

#![allow(missing_docs, clippy::all)]

use super::sandbox::StoreState;
use crate::capabilities::{http as cap_http, log as cap_log};
use crate::model;
use std::time::Duration;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

use self::provisio::connector::{config, http, kv, log, secrets, types};
pub use exports::provisio::connector::connector as guest;

impl types::Host for StoreState {}

impl http::Host for StoreState {
    async fn send(
        &mut self,
        request: http::Request,
    ) -> wasmtime::Result<Result<http::Response, http::HttpError>> {
        // Waiting on the network or the rate limiter is not charged to the
        // call's CPU budget; the host's own work in here is (see
        // `sandbox::CpuMeter`).
        let ctx = self.ctx.clone();
        let result = ctx.http_client.send(&ctx.http, request.into()).await;
        Ok(match result {
            Ok(r) => Ok(http::Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(e) => Err(match e {
                cap_http::HttpError::Denied(m) => http::HttpError::Denied(m),
                cap_http::HttpError::InvalidRequest(m) => http::HttpError::InvalidRequest(m),
                cap_http::HttpError::Timeout(m) => http::HttpError::Timeout(m),
                cap_http::HttpError::Connection(m) => http::HttpError::Connection(m),
                cap_http::HttpError::TooLarge(m) => http::HttpError::TooLarge(m),
            }),
        })
    }
}

impl secrets::Host for StoreState {
    async fn granted(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.ctx.http.secrets.names())
    }
}

impl config::Host for StoreState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.ctx.setting(&name))
    }
    async fn connection_name(&mut self) -> wasmtime::Result<String> {
        Ok(self.ctx.name.clone())
    }
}

impl log::Host for StoreState {
    async fn emit(
        &mut self,
        level: log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => cap_log::Level::Trace,
            log::Level::Debug => cap_log::Level::Debug,
            log::Level::Info => cap_log::Level::Info,
            log::Level::Warn => cap_log::Level::Warn,
            log::Level::Error => cap_log::Level::Error,
        };
        // Charged to the call's CPU budget like guest code.
        self.ctx.log.emit(level, &message, &fields);
        Ok(())
    }
}

impl kv::Host for StoreState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.ctx.kv.get(&key))
    }
    async fn set(&mut self, key: String, value: Vec<u8>, ttl_seconds: u32) -> wasmtime::Result<()> {
        if let Err(why) = self
            .ctx
            .kv
            .set(&key, value, Duration::from_secs(u64::from(ttl_seconds)))
        {
            self.ctx
                .log
                .emit(cap_log::Level::Warn, &format!("kv set refused: {why}"), &[]);
        }
        Ok(())
    }
    async fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.ctx.kv.delete(&key);
        Ok(())
    }
}

// ---- conversions between generated and host types ----

fn segments(t: Vec<http::Segment>) -> Vec<cap_http::Segment> {
    t.into_iter()
        .map(|s| match s {
            http::Segment::Text(t) => cap_http::Segment::Text(t),
            http::Segment::Secret(n) => cap_http::Segment::Secret(n),
            http::Segment::SecretJson(n) => cap_http::Segment::SecretJson(n),
        })
        .collect()
}

impl From<http::Request> for cap_http::OutboundRequest {
    fn from(r: http::Request) -> Self {
        cap_http::OutboundRequest {
            method: match r.method {
                http::Method::Get => cap_http::Method::Get,
                http::Method::Post => cap_http::Method::Post,
                http::Method::Put => cap_http::Method::Put,
                http::Method::Patch => cap_http::Method::Patch,
                http::Method::Delete => cap_http::Method::Delete,
                http::Method::Head => cap_http::Method::Head,
            },
            url: r.url,
            headers: r
                .headers
                .into_iter()
                .map(|h| (h.name, segments(h.value)))
                .collect(),
            auth: r.auth.map(|a| match a {
                http::Auth::Basic(b) => cap_http::Auth::Basic {
                    username: segments(b.username),
                    password: segments(b.password),
                },
                http::Auth::Bearer(t) => cap_http::Auth::Bearer(segments(t)),
            }),
            body: r.body.map(segments),
        }
    }
}

impl From<model::ObjectKind> for types::ObjectKind {
    fn from(k: model::ObjectKind) -> Self {
        match k {
            model::ObjectKind::User => types::ObjectKind::User,
            model::ObjectKind::Group => types::ObjectKind::Group,
        }
    }
}

impl From<types::Value> for model::Value {
    fn from(v: types::Value) -> Self {
        match v {
            types::Value::Null => model::Value::Null,
            types::Value::Boolean(b) => model::Value::Boolean(b),
            types::Value::Integer(i) => model::Value::Integer(i),
            types::Value::Number(n) => model::Value::Number(n),
            types::Value::Text(s) => model::Value::Text(s),
            types::Value::TextList(l) => model::Value::TextList(l),
        }
    }
}

impl From<model::Value> for types::Value {
    fn from(v: model::Value) -> Self {
        match v {
            model::Value::Null => types::Value::Null,
            model::Value::Boolean(b) => types::Value::Boolean(b),
            model::Value::Integer(i) => types::Value::Integer(i),
            model::Value::Number(n) => types::Value::Number(n),
            model::Value::Text(s) => types::Value::Text(s),
            model::Value::TextList(l) => types::Value::TextList(l),
        }
    }
}

impl From<types::Attribute> for model::Attribute {
    fn from(a: types::Attribute) -> Self {
        model::Attribute {
            name: a.name,
            value: a.value.into(),
        }
    }
}

impl From<model::Attribute> for types::Attribute {
    fn from(a: model::Attribute) -> Self {
        types::Attribute {
            name: a.name,
            value: a.value.into(),
        }
    }
}

impl From<types::TargetObject> for model::TargetObject {
    fn from(o: types::TargetObject) -> Self {
        model::TargetObject {
            id: o.id,
            attributes: o.attributes.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<types::Page> for model::Page {
    fn from(p: types::Page) -> Self {
        model::Page {
            objects: p.objects.into_iter().map(Into::into).collect(),
            next_cursor: p.next_cursor,
            total: p.total,
        }
    }
}

impl From<types::ConnectorError> for model::ConnectorError {
    fn from(e: types::ConnectorError) -> Self {
        use types::ConnectorError as E;
        match e {
            E::NotFound(m) => model::ConnectorError::NotFound(m),
            E::Conflict(c) => model::ConnectorError::Conflict {
                message: c.message,
                existing_id: c.existing_id,
            },
            E::RateLimited(r) => model::ConnectorError::RateLimited {
                message: r.message,
                retry_after: r.retry_after_ms.map(Duration::from_millis),
            },
            E::Unauthorized(m) => model::ConnectorError::Unauthorized(m),
            E::Forbidden(m) => model::ConnectorError::Forbidden(m),
            E::InvalidInput(m) => model::ConnectorError::InvalidInput(m),
            E::Transient(m) => model::ConnectorError::Transient(m),
            E::Unsupported(m) => model::ConnectorError::Unsupported(m),
            E::Denied(m) => model::ConnectorError::Denied(m),
            E::Other(m) => model::ConnectorError::Other(m),
        }
    }
}

impl From<types::Manifest> for model::Manifest {
    fn from(m: types::Manifest) -> Self {
        let mapping = |x: types::Mapping| model::Mapping {
            target: x.target,
            source: x.source,
            matching_precedence: x.matching_precedence,
            apply: match x.apply {
                types::ApplyOn::Always => model::ApplyOn::Always,
                types::ApplyOn::CreateOnly => model::ApplyOn::CreateOnly,
            },
        };
        model::Manifest {
            name: m.name,
            version: m.version,
            description: m.description,
            vendor: m.vendor,
            capabilities: m
                .capabilities
                .into_iter()
                .map(|c| match c {
                    types::Capability::Users => model::Capability::Users,
                    types::Capability::Groups => model::Capability::Groups,
                    types::Capability::Memberships => model::Capability::Memberships,
                    types::Capability::Disable => model::Capability::Disable,
                    types::Capability::Delete => model::Capability::Delete,
                    types::Capability::List => model::Capability::List,
                })
                .collect(),
            settings: m
                .settings
                .into_iter()
                .map(|s| model::SettingSpec {
                    name: s.name,
                    description: s.description,
                    required: s.required,
                    default_value: s.default_value,
                })
                .collect(),
            secrets: m
                .secrets
                .into_iter()
                .map(|s| model::SecretSpec {
                    name: s.name,
                    description: s.description,
                    required: s.required,
                })
                .collect(),
            hosts: m.hosts,
            user_mappings: m.user_mappings.into_iter().map(mapping).collect(),
            group_mappings: m.group_mappings.into_iter().map(mapping).collect(),
        }
    }
}
