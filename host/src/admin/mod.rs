//! The admin HTTP API of `provisio run` (axum), described by the OpenAPI
//! document served at `/openapi.json` (the file `openapi.json` next to this
//! module).
//!
//! Every route but `/healthz` and `/openapi.json` needs
//! `Authorization: Bearer <token>`, the value of the `[secrets.*]` entry
//! named by `[service] token_secret`; without it the answer is 401. The
//! token is compared in constant time and never logged.
//!
//! The handlers are thin: state and control live in
//! [`crate::scheduler::Service`], logs and staged actions in the store.
//! `/metrics` serves [`crate::metrics`] in the Prometheus text format.

pub mod client;

use crate::capabilities::secrets::SecretValue;
use crate::model::ObjectKind;
use crate::scheduler::{ControlError, RestartScope, Service};
use crate::store::{Decision, LogQuery, StagedSelection, export_csv, export_json, parse_time};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The OpenAPI 3 description of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route: (method, path as in the OpenAPI document).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/openapi.json"),
    ("get", "/metrics"),
    ("get", "/v1/connections"),
    ("get", "/v1/connections/{name}"),
    ("post", "/v1/connections/{name}/start"),
    ("post", "/v1/connections/{name}/pause"),
    ("post", "/v1/connections/{name}/resume"),
    ("post", "/v1/connections/{name}/restart"),
    ("post", "/v1/connections/{name}/test"),
    ("post", "/v1/connections/{name}/provision"),
    ("get", "/v1/connections/{name}/staged"),
    ("post", "/v1/connections/{name}/staged/allow"),
    ("post", "/v1/connections/{name}/staged/reject"),
    ("get", "/v1/logs"),
];

#[derive(Clone)]
struct AppState {
    service: Arc<Service>,
    token: Arc<SecretValue>,
}

/// The API's router over a running service, guarded by `token`.
pub fn router(service: Arc<Service>, token: SecretValue) -> Router {
    let state = AppState {
        service,
        token: Arc::new(token),
    };
    let guarded = Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/connections", get(list))
        .route("/v1/connections/{name}", get(one))
        .route("/v1/connections/{name}/start", post(start))
        .route("/v1/connections/{name}/pause", post(pause))
        .route("/v1/connections/{name}/resume", post(resume))
        .route("/v1/connections/{name}/restart", post(restart))
        .route("/v1/connections/{name}/test", post(test))
        .route("/v1/connections/{name}/provision", post(provision))
        .route("/v1/connections/{name}/staged", get(staged))
        .route("/v1/connections/{name}/staged/allow", post(allow))
        .route("/v1/connections/{name}/staged/reject", post(reject))
        .route("/v1/logs", get(logs))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route(
            "/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .merge(guarded)
        .with_state(state)
}

/// An API error: status and a message saying what and how to fix it.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, safe_json(&json!({"error": self.1}))).into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let status = match &e {
            ControlError::UnknownConnection(_) => StatusCode::NOT_FOUND,
            ControlError::Busy(_) | ControlError::HeldElsewhere(_) => StatusCode::CONFLICT,
            ControlError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ControlError::Other(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError(status, e.to_string())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(v: impl serde::Serialize) -> ApiResult {
    Ok(safe_json(&v))
}

/// A JSON response whose text a terminal cannot act on: connector-supplied
/// strings in it (errors, the test-connection message, staged ids) keep
/// their data, with DEL, C1, bidi and invisible format characters written
/// as `\uXXXX` escapes ([`crate::untrusted::json_safe`]), so `curl` of the
/// API is as safe to read as `provisio` output.
fn safe_json(v: &impl serde::Serialize) -> Response {
    match serde_json::to_string(v) {
        Ok(text) => (
            [(header::CONTENT_TYPE, "application/json")],
            crate::untrusted::json_safe(&text),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": format!("cannot serialize the response: {e}")}).to_string(),
        )
            .into_response(),
    }
}

/// Constant-time comparison, so the token cannot be guessed byte by byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(
    State(st): State<AppState>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if same(t.trim().as_bytes(), st.token.expose().as_bytes()) => next.run(req).await,
        other => {
            let msg = if other.is_none() {
                "missing bearer token: send Authorization: Bearer <token> (the secret named by [service] token_secret)"
            } else {
                "wrong bearer token"
            };
            tracing::warn!(path = %crate::untrusted::Untrusted::new(req.uri().path()).for_log(), "admin API: {}", crate::untrusted::Untrusted::new(msg).for_log());
            let mut r = ApiError(StatusCode::UNAUTHORIZED, msg.into()).into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
    }
}

async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::metrics().encode(),
    )
        .into_response()
}

async fn list(State(st): State<AppState>) -> ApiResult {
    ok(json!({ "connections": st.service.statuses()? }))
}

async fn one(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult {
    ok(st.service.status(&name)?)
}

async fn start(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult {
    st.service.start(&name)?;
    ok(json!({"connection": name, "accepted": "a cycle starts as soon as a slot is free"}))
}

async fn pause(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult {
    st.service.pause(&name)?;
    ok(json!({"connection": name, "paused": true}))
}

async fn resume(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult {
    st.service.resume(&name)?;
    ok(json!({"connection": name, "paused": false}))
}

async fn restart(
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: Option<Json<RestartScope>>,
) -> ApiResult {
    let scope = body.map(|Json(s)| s).unwrap_or_default();
    st.service.restart(&name, scope)?;
    ok(json!({"connection": name, "restarted": true, "scope": {
        "watermark": scope.watermark, "escrow": scope.escrow,
        "quarantine": scope.quarantine, "links": scope.links}}))
}

async fn test(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult {
    match st.service.test_connection(&name).await {
        Ok(message) => ok(json!({"ok": true, "message": message})),
        Err(ControlError::Other(e)) => ok(json!({"ok": false, "error": e})),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvisionBody {
    kind: String,
    id: String,
}

async fn provision(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<ProvisionBody>,
) -> ApiResult {
    let kind = match body.kind.as_str() {
        "user" => ObjectKind::User,
        "group" => ObjectKind::Group,
        other => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("kind must be \"user\" or \"group\", not \"{other}\""),
            ));
        }
    };
    let records = st.service.provision(&name, kind, &body.id).await?;
    ok(json!({"connection": name, "records": records}))
}

async fn staged(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult {
    st.service.status(&name)?;
    ok(json!({"staged": st.service.store().staged_pending(&name)?}))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DecideBody {
    #[serde(default)]
    ids: Vec<i64>,
}

async fn decide(
    st: &AppState,
    name: &str,
    body: Option<Json<DecideBody>>,
    d: Decision,
) -> ApiResult {
    st.service.status(name)?;
    let ids = body.map(|Json(b)| b.ids).unwrap_or_default();
    let sel = StagedSelection::from_ids(ids);
    let store = st.service.store();
    let changed = crate::lease::with_lease(store, name, || store.decide_staged(name, &sel, d))
        .map_err(ControlError::from)?;
    ok(json!({"decision": d.as_str(), "changed": changed}))
}

async fn allow(
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: Option<Json<DecideBody>>,
) -> ApiResult {
    decide(&st, &name, body, Decision::Allowed).await
}

async fn reject(
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: Option<Json<DecideBody>>,
) -> ApiResult {
    decide(&st, &name, body, Decision::Rejected).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogParams {
    connection: Option<String>,
    cycle: Option<String>,
    object: Option<String>,
    action: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    format: Option<String>,
}

async fn logs(State(st): State<AppState>, Query(p): Query<LogParams>) -> ApiResult {
    let bad = |m: String| ApiError(StatusCode::BAD_REQUEST, m);
    let time = |name: &str, v: Option<String>| -> Result<_, ApiError> {
        v.map(|t| {
            parse_time(&t).ok_or_else(|| {
                bad(format!(
                    "{name}: '{t}' is not a time; use RFC 3339 UTC, e.g. 2026-01-02T03:04:05Z"
                ))
            })
        })
        .transpose()
    };
    let query = LogQuery {
        connection: p.connection,
        cycle_id: p.cycle,
        object_id: p.object,
        action: p
            .action
            .map(|a| a.parse())
            .transpose()
            .map_err(|e| bad(format!("action: {e}")))?,
        status: p
            .status
            .map(|a| a.parse())
            .transpose()
            .map_err(|e| bad(format!("status: {e}")))?,
        since: time("since", p.since)?,
        until: time("until", p.until)?,
        limit: Some(p.limit.unwrap_or(1000).min(100_000)),
    };
    let records = st.service.store().query_logs(&query)?;
    match p.format.as_deref().unwrap_or("json") {
        "json" => Ok((
            [(header::CONTENT_TYPE, "application/json")],
            export_json(&records)?,
        )
            .into_response()),
        "csv" => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            export_csv(&records)?,
        )
            .into_response()),
        other => Err(bad(format!("format must be json or csv, not '{other}'"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::Value;

    #[tokio::test]
    async fn responses_carry_no_raw_terminal_controls() {
        let text = "ok\u{202e}evil\u{9b}31m\u{7f}";
        let r = ok(json!({"message": text})).unwrap_or_else(|_| unreachable!());
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let body = std::str::from_utf8(&body).unwrap();
        assert!(
            !body.contains('\u{202e}') && !body.contains('\u{9b}'),
            "{body}"
        );
        assert!(body.contains("\\u202e"), "{body}");
        let back: Value = serde_json::from_str(body).unwrap();
        assert_eq!(back["message"], text, "the data is unchanged");
        let e = ApiError(StatusCode::CONFLICT, "busy\u{2066}".into()).into_response();
        let body = axum::body::to_bytes(e.into_body(), 1 << 20).await.unwrap();
        assert!(!std::str::from_utf8(&body).unwrap().contains('\u{2066}'));
    }

    #[test]
    fn token_comparison() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }

    #[test]
    fn the_openapi_document_describes_exactly_the_routes() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let paths = doc["paths"].as_object().expect("paths");
        let mut documented = Vec::new();
        for (path, ops) in paths {
            for method in ops.as_object().expect("operations").keys() {
                if method != "parameters" {
                    documented.push((method.clone(), path.clone()));
                }
            }
        }
        documented.sort();
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        routes.sort();
        assert_eq!(documented, routes);
        // Every guarded operation names the bearer scheme.
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }
}
