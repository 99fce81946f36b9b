//! A fast local SCIM 2.0 target for benchmarks: in memory, HTTP/1.1 with
//! keep-alive over loopback (axum on hyper), any number of connections.
//!
//! It answers exactly what the SCIM connector asks during a sync
//! (`GET /Users?filter=userName eq "x"`, `POST`, `GET /{id}`, `PATCH` with a
//! PatchOp, `DELETE`, the same for `/Groups`, members by PATCH `add` /
//! `remove`), checks the bearer token, and enforces uniqueness of `userName` /
//! `displayName` (409 like a real target). It keeps no history and writes
//! nothing to disk: it is built to cost as little as possible per request so
//! that a benchmark measures the host, not the target (scim2-server, the
//! correctness peer, manages about 600 requests/s).
//!
//! Every path is `/{tenant}/v2/...`: each tenant is an independent store, so
//! many connections can share one target process. `GET /stats` answers the
//! number of requests served and the objects held per tenant.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// One resource type of one tenant.
#[derive(Default)]
struct Objects {
    by_id: HashMap<String, Value>,
    /// Lower-cased unique key (`userName` / `displayName`) -> id.
    by_key: HashMap<String, String>,
    next: u64,
}

#[derive(Default)]
struct Tenant {
    users: Objects,
    groups: Objects,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Users,
    Groups,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        match s {
            "Users" => Some(Kind::Users),
            "Groups" => Some(Kind::Groups),
            _ => None,
        }
    }
    fn key(self) -> &'static str {
        match self {
            Kind::Users => "userName",
            Kind::Groups => "displayName",
        }
    }
    fn schema(self) -> &'static str {
        match self {
            Kind::Users => USER_SCHEMA,
            Kind::Groups => GROUP_SCHEMA,
        }
    }
}

/// The target's state, shared by all its connections.
pub struct Target {
    token: String,
    requests: AtomicU64,
    tenants: Mutex<HashMap<String, Tenant>>,
}

type Shared = Arc<Target>;

impl Target {
    /// A target accepting `Authorization: Bearer <token>`.
    pub fn new(token: &str) -> Shared {
        Arc::new(Target {
            token: format!("Bearer {token}"),
            requests: AtomicU64::new(0),
            tenants: Mutex::new(HashMap::new()),
        })
    }

    fn tenants(&self) -> MutexGuard<'_, HashMap<String, Tenant>> {
        // A poisoned lock only means a handler panicked mid-update; the maps
        // are still usable for a benchmark.
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The axum router of a target.
pub fn router(target: Shared) -> Router {
    Router::new()
        .route("/stats", get(stats))
        .route("/{tenant}/v2/{kind}", get(list).post(create))
        .route(
            "/{tenant}/v2/{kind}/{id}",
            get(read).patch(patch).delete(delete),
        )
        .with_state(target)
}

/// Serve `target` on `listener` until the process ends (TCP_NODELAY on every
/// accepted connection; keep-alive is hyper's default).
pub async fn serve(listener: tokio::net::TcpListener, target: Shared) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(target)).await
}

fn error(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Response {
    let mut body =
        json!({"schemas": [ERROR_SCHEMA], "status": status.as_u16().to_string(), "detail": detail});
    if let Some(t) = scim_type {
        body["scimType"] = json!(t);
    }
    (status, scim_json(), body.to_string()).into_response()
}

fn scim_json() -> [(header::HeaderName, &'static str); 1] {
    [(header::CONTENT_TYPE, "application/scim+json")]
}

fn ok(status: StatusCode, body: &Value) -> Response {
    (status, scim_json(), body.to_string()).into_response()
}

/// Count the request and check the token and the resource type. The error
/// is the response to send (returned once per refused request: its size
/// does not matter).
#[allow(clippy::result_large_err)]
fn admit(t: &Target, headers: &HeaderMap, kind: &str) -> Result<Kind, Response> {
    t.requests.fetch_add(1, Ordering::Relaxed);
    let authorised = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == t.token);
    if !authorised {
        return Err(error(StatusCode::UNAUTHORIZED, None, "bad bearer token"));
    }
    Kind::parse(kind).ok_or_else(|| error(StatusCode::NOT_FOUND, None, "no such resource type"))
}

async fn stats(State(t): State<Shared>) -> Response {
    let tenants = t.tenants();
    let per: Map<String, Value> = tenants
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                json!({"users": v.users.by_id.len(), "groups": v.groups.by_id.len()}),
            )
        })
        .collect();
    ok(
        StatusCode::OK,
        &json!({"requests": t.requests.load(Ordering::Relaxed), "tenants": per}),
    )
}

/// `attr eq "value"` (the only filter the connector sends).
fn parse_filter(filter: &str) -> Option<(String, String)> {
    let (attr, rest) = filter.split_once(" eq ")?;
    let rest = rest.trim();
    let inner = rest.strip_prefix('"')?.strip_suffix('"')?;
    let mut value = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                value.push(n);
            }
        } else {
            value.push(c);
        }
    }
    Some((attr.trim().to_string(), value))
}

fn without_members(kind: Kind, v: &Value, exclude: bool) -> Value {
    if kind == Kind::Groups && exclude {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("members");
        }
        v
    } else {
        v.clone()
    }
}

async fn list(
    State(t): State<Shared>,
    Path((tenant, kind)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let kind = match admit(&t, &headers, &kind) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let exclude = q
        .get("excludedAttributes")
        .is_some_and(|e| e.contains("members"));
    let tenants = t.tenants();
    let objects = tenants.get(&tenant).map(|t| match kind {
        Kind::Users => &t.users,
        Kind::Groups => &t.groups,
    });
    let mut found: Vec<Value> = Vec::new();
    let mut total = 0usize;
    let start = q
        .get("startIndex")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let count = q
        .get("count")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(100)
        .min(1000);
    if let Some(objects) = objects {
        match q.get("filter") {
            Some(filter) => {
                let Some((attr, value)) = parse_filter(filter) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        Some("invalidFilter"),
                        "only `attr eq \"value\"` is supported",
                    );
                };
                if attr.eq_ignore_ascii_case(kind.key()) {
                    if let Some(o) = objects
                        .by_key
                        .get(&value.to_lowercase())
                        .and_then(|id| objects.by_id.get(id))
                    {
                        found.push(without_members(kind, o, exclude));
                    }
                } else {
                    found.extend(
                        objects
                            .by_id
                            .values()
                            .filter(|o| o.get(&attr).and_then(Value::as_str) == Some(&value))
                            .map(|o| without_members(kind, o, exclude)),
                    );
                }
                total = found.len();
            }
            None => {
                total = objects.by_id.len();
                let mut all: Vec<&Value> = objects.by_id.values().collect();
                all.sort_by(|a, b| {
                    a.get("id")
                        .and_then(Value::as_str)
                        .cmp(&b.get("id").and_then(Value::as_str))
                });
                found.extend(
                    all.into_iter()
                        .skip(start - 1)
                        .take(count)
                        .map(|o| without_members(kind, o, exclude)),
                );
            }
        }
    }
    ok(
        StatusCode::OK,
        &json!({"schemas": [LIST_SCHEMA], "totalResults": total, "startIndex": start,
                "itemsPerPage": found.len(), "Resources": found}),
    )
}

async fn create(
    State(t): State<Shared>,
    Path((tenant, kind)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let kind = match admit(&t, &headers, &kind) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let Ok(Value::Object(mut resource)) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            "not a JSON object",
        );
    };
    let Some(key) = resource
        .get(kind.key())
        .and_then(Value::as_str)
        .map(str::to_lowercase)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
            &format!("{} is required", kind.key()),
        );
    };
    let mut tenants = t.tenants();
    let objects = match kind {
        Kind::Users => &mut tenants.entry(tenant).or_default().users,
        Kind::Groups => &mut tenants.entry(tenant).or_default().groups,
    };
    if objects.by_key.contains_key(&key) {
        return error(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            &format!("{} is already taken", kind.key()),
        );
    }
    objects.next += 1;
    let id = format!("{:016x}", objects.next);
    resource.insert("id".into(), json!(id));
    resource.insert("schemas".into(), json!([kind.schema()]));
    if kind == Kind::Users && !resource.contains_key("active") {
        resource.insert("active".into(), json!(true));
    }
    if kind == Kind::Groups && !resource.contains_key("members") {
        resource.insert("members".into(), json!([]));
    }
    let resource = Value::Object(resource);
    objects.by_key.insert(key, id.clone());
    objects.by_id.insert(id, resource.clone());
    ok(StatusCode::CREATED, &resource)
}

fn object_mut<'a>(
    tenants: &'a mut HashMap<String, Tenant>,
    tenant: &str,
    kind: Kind,
) -> Option<&'a mut Objects> {
    tenants.get_mut(tenant).map(|t| match kind {
        Kind::Users => &mut t.users,
        Kind::Groups => &mut t.groups,
    })
}

async fn read(
    State(t): State<Shared>,
    Path((tenant, kind, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let kind = match admit(&t, &headers, &kind) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let mut tenants = t.tenants();
    match object_mut(&mut tenants, &tenant, kind).and_then(|o| o.by_id.get(&id)) {
        Some(o) => ok(StatusCode::OK, o),
        None => error(StatusCode::NOT_FOUND, None, "no such resource"),
    }
}

async fn delete(
    State(t): State<Shared>,
    Path((tenant, kind, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let kind = match admit(&t, &headers, &kind) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let mut tenants = t.tenants();
    let Some(objects) = object_mut(&mut tenants, &tenant, kind) else {
        return error(StatusCode::NOT_FOUND, None, "no such resource");
    };
    match objects.by_id.remove(&id) {
        Some(o) => {
            if let Some(k) = o.get(kind.key()).and_then(Value::as_str) {
                objects.by_key.remove(&k.to_lowercase());
            }
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(StatusCode::NOT_FOUND, None, "no such resource"),
    }
}

/// `members[value eq "id"]` -> `id`.
fn member_filter(path: &str) -> Option<String> {
    let inner = path.strip_prefix("members[")?.strip_suffix(']')?;
    let (attr, value) = parse_filter(inner)?;
    (attr == "value").then_some(value)
}

fn apply_op(o: &mut Map<String, Value>, op: &Value) -> Result<(), String> {
    let name = op
        .get("op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .ok_or("an operation without `op`")?;
    let path = op.get("path").and_then(Value::as_str);
    let value = op.get("value").cloned().unwrap_or(Value::Null);
    match (name.as_str(), path) {
        ("add", Some("members")) => {
            let members = o.entry("members").or_insert_with(|| json!([]));
            if let (Some(list), Some(new)) = (members.as_array_mut(), value.as_array()) {
                for m in new {
                    if !list.contains(m) {
                        list.push(m.clone());
                    }
                }
            }
        }
        ("remove", Some(p)) if p.starts_with("members[") => {
            let id = member_filter(p).ok_or("bad member filter")?;
            if let Some(list) = o.get_mut("members").and_then(Value::as_array_mut) {
                list.retain(|m| m.get("value").and_then(Value::as_str) != Some(&id));
            }
        }
        ("remove", Some(p)) => {
            o.remove(p);
        }
        ("add" | "replace", None) => {
            let Value::Object(m) = value else {
                return Err("a path-less operation needs an object value".into());
            };
            o.extend(m);
        }
        ("add" | "replace", Some(p)) => {
            // Sub-attributes and filtered paths are kept under their path:
            // the benchmark needs the write to happen, not SCIM's full path
            // grammar.
            o.insert(p.to_string(), value);
        }
        (other, _) => return Err(format!("unknown op '{other}'")),
    }
    Ok(())
}

async fn patch(
    State(t): State<Shared>,
    Path((tenant, kind, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let kind = match admit(&t, &headers, &kind) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, Some("invalidSyntax"), "not JSON");
    };
    let Some(ops) = body.get("Operations").and_then(Value::as_array) else {
        return error(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            "no Operations",
        );
    };
    let mut tenants = t.tenants();
    let Some(objects) = object_mut(&mut tenants, &tenant, kind) else {
        return error(StatusCode::NOT_FOUND, None, "no such resource");
    };
    let Some(Value::Object(o)) = objects.by_id.get(&id).cloned() else {
        return error(StatusCode::NOT_FOUND, None, "no such resource");
    };
    let old_key = o
        .get(kind.key())
        .and_then(Value::as_str)
        .map(str::to_lowercase);
    let mut o = o;
    for op in ops {
        if let Err(e) = apply_op(&mut o, op) {
            return error(StatusCode::BAD_REQUEST, Some("invalidSyntax"), &e);
        }
    }
    let new_key = o
        .get(kind.key())
        .and_then(Value::as_str)
        .map(str::to_lowercase);
    if new_key != old_key {
        if let Some(k) = &new_key
            && objects.by_key.get(k).is_some_and(|other| other != &id)
        {
            return error(StatusCode::CONFLICT, Some("uniqueness"), "key taken");
        }
        if let Some(k) = old_key {
            objects.by_key.remove(&k);
        }
        if let Some(k) = new_key {
            objects.by_key.insert(k, id.clone());
        }
    }
    objects.by_id.insert(id, Value::Object(o));
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_with_escapes() {
        assert_eq!(
            parse_filter(r#"userName eq "a\"b@x""#),
            Some(("userName".into(), "a\"b@x".into()))
        );
        assert_eq!(parse_filter("userName sw \"a\""), None);
        assert_eq!(
            member_filter(r#"members[value eq "42"]"#),
            Some("42".into())
        );
    }

    #[test]
    fn patch_ops_add_and_remove_members() {
        let mut o = Map::new();
        apply_op(
            &mut o,
            &json!({"op": "add", "path": "members", "value": [{"value": "1"}, {"value": "2"}]}),
        )
        .unwrap();
        apply_op(
            &mut o,
            &json!({"op": "remove", "path": "members[value eq \"1\"]"}),
        )
        .unwrap();
        assert_eq!(o["members"], json!([{"value": "2"}]));
        assert!(apply_op(&mut o, &json!({"op": "move"})).is_err());
    }
}
