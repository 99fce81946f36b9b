//! An in-memory emulator of the Zendesk Support API v2, faithful to the shapes
//! and status codes in `vendor-apis.md` (section Zendesk), for end-to-end tests.
//!
//! Implemented: `/api/v2/users/me`, `users/search` (`query=email:x`, free text,
//! `external_id=`; offset pages with `next_page`), `users/show_many`, `users`
//! (cursor pages: `page[size]`, `page[after]`, `meta.has_more`,
//! `meta.after_cursor`, `links.next`), `users/{id}` GET/PUT/DELETE,
//! `users/create_or_update`, `users/{id}/group_memberships`, `groups` (cursor
//! pages), `groups/{id}` GET/PUT/DELETE, `groups/{id}/memberships`,
//! `group_memberships` POST, `group_memberships/{id}` DELETE. The `.json`
//! suffix is optional. Every response carries `X-Rate-Limit`,
//! `X-Rate-Limit-Remaining`, `ratelimit-limit`, `ratelimit-remaining` and
//! `ratelimit-reset`.
//!
//! Behaviour from the reference: Basic auth `{email}/token:{token}`; bad
//! credentials get **200 with the anonymous user** (no `id`) on `users/me` and
//! 401 `{"error":"Couldn't authenticate you"}` elsewhere; duplicate email → 422
//! `RecordInvalid` with `DuplicateValue`; missing → 404 `RecordNotFound`; user
//! DELETE → 200 with `active:false` (soft: still readable); group DELETE → 204;
//! memberships for agents only; switchable 429 burst (`Retry-After`,
//! `text/plain` body) and switchable 503s.
//!
//! UNKNOWN in the reference, chosen here (each is a guess about real Zendesk):
//! - emails are stored lower-cased; `external_id` is unique like email (422
//!   `DuplicateValue`); group names are unique among live groups (422
//!   `DuplicateValue`);
//! - soft-deleted users are left out of `users` lists and searches and do not
//!   block a new user with the same email; `show_many` and `users/{id}` still
//!   return them; deleting one again answers 200 again; their group
//!   memberships are removed;
//! - a deleted group answers 404 and leaves lists; its memberships go with it;
//! - a membership for an end-user → 422 `RecordInvalid`, details
//!   `user_id: [{"error":"InvalidValue","description":"User must be an agent"}]`;
//!   a second membership of the same user in a group → 422 `DuplicateValue`;
//! - writes (POST/PUT/DELETE) by a non-admin → 403 `{"error":"Forbidden",...}`;
//!   reads by agents are allowed;
//! - cursors are opaque strings (here the last id, prefixed); the 429 body is
//!   `Rate limit exceeded. Retry after N seconds.`; a 503 body is
//!   `{"error":"ServiceUnavailable","description":"Service temporarily unavailable"}`;
//! - the rate-limit window is a fixed minute of 700 requests, only reported
//!   (the burst switch is what produces 429s).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Requests per minute the emulator reports in `X-Rate-Limit`.
pub const RATE_LIMIT: u32 = 700;

/// Switches a test flips to make the emulator misbehave.
#[derive(Default)]
pub struct Controls {
    /// The next N requests answer 429.
    pub burst_429: AtomicU32,
    /// The `Retry-After` seconds of those 429s.
    pub retry_after: AtomicU32,
    /// The next N requests answer 503.
    pub fail_5xx: AtomicU32,
}

/// A membership row.
#[derive(Clone, Debug)]
pub struct Membership {
    pub id: u64,
    pub user_id: u64,
    pub group_id: u64,
    pub created_at: String,
}

/// The emulator's whole state.
pub struct State {
    pub base: String,
    pub token: String,
    pub users: BTreeMap<u64, Value>,
    pub groups: BTreeMap<u64, Value>,
    pub memberships: BTreeMap<u64, Membership>,
    pub next_id: u64,
    /// (method, path and query) of every request.
    pub log: Vec<String>,
    window: (Instant, u32),
}

/// A running emulator.
pub struct Emulator {
    pub url: String,
    pub port: u16,
    pub token: String,
    pub admin_email: String,
    pub admin_id: u64,
    pub state: Arc<Mutex<State>>,
    pub controls: Arc<Controls>,
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Start an emulator on 127.0.0.1:0 with one admin (`admin_email`, id 10001)
/// and the API token `token`. It runs on its own thread for the rest of the process.
pub fn start(admin_email: &str, token: &str) -> Emulator {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let port = std_listener.local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let state = Arc::new(Mutex::new(State {
        base: url.clone(),
        token: token.to_string(),
        users: BTreeMap::new(),
        groups: BTreeMap::new(),
        memberships: BTreeMap::new(),
        next_id: 10001,
        log: Vec::new(),
        window: (Instant::now(), 0),
    }));
    let controls = Arc::new(Controls::default());
    let admin_id = {
        let mut s = state.lock().unwrap();
        let mut fields = Map::new();
        fields.insert("name".into(), json!("Admin"));
        fields.insert("email".into(), json!(admin_email));
        fields.insert("role".into(), json!("admin"));
        fields.insert("verified".into(), json!(true));
        s.insert_user(&fields)
    };
    let (st, ct) = (state.clone(), controls.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let app = axum::Router::new().fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let (st, ct) = (st.clone(), ct.clone());
                    async move { handle(&st, &ct, method, uri, headers, body) }
                },
            );
            let _ = axum::serve(listener, app).await;
        });
    });
    Emulator {
        url,
        port,
        token: token.to_string(),
        admin_email: admin_email.to_string(),
        admin_id,
        state,
        controls,
    }
}

impl Emulator {
    /// Seed a user directly (bypassing the API); returns its id.
    pub fn add_user(&self, name: &str, email: &str, role: &str) -> u64 {
        let mut fields = Map::new();
        fields.insert("name".into(), json!(name));
        fields.insert("email".into(), json!(email));
        fields.insert("role".into(), json!(role));
        self.state.lock().unwrap().insert_user(&fields)
    }

    /// A user as stored (deleted ones included).
    pub fn user(&self, id: &str) -> Option<Value> {
        let id: u64 = id.parse().ok()?;
        self.state.lock().unwrap().users.get(&id).cloned()
    }

    /// Every user as stored (deleted ones included).
    pub fn users(&self) -> Vec<Value> {
        self.state.lock().unwrap().users.values().cloned().collect()
    }

    /// A group as stored.
    pub fn group(&self, id: &str) -> Option<Value> {
        let id: u64 = id.parse().ok()?;
        self.state.lock().unwrap().groups.get(&id).cloned()
    }

    /// Every group as stored (deleted ones included).
    pub fn groups(&self) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .groups
            .values()
            .cloned()
            .collect()
    }

    /// The user ids in a group.
    pub fn members(&self, group_id: &str) -> Vec<u64> {
        let gid: u64 = group_id.parse().unwrap_or(0);
        let s = self.state.lock().unwrap();
        let mut m: Vec<u64> = s
            .memberships
            .values()
            .filter(|m| m.group_id == gid)
            .map(|m| m.user_id)
            .collect();
        m.sort();
        m
    }

    /// Make the next `n` requests answer 429 with `Retry-After: retry_after`.
    pub fn burst_429(&self, n: u32, retry_after: u32) {
        self.controls
            .retry_after
            .store(retry_after, Ordering::SeqCst);
        self.controls.burst_429.store(n, Ordering::SeqCst);
    }

    /// Make the next `n` requests answer 503.
    pub fn fail_5xx(&self, n: u32) {
        self.controls.fail_5xx.store(n, Ordering::SeqCst);
    }

    /// Requests seen so far ("METHOD /path?query").
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }
}

impl State {
    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn insert_user(&mut self, fields: &Map<String, Value>) -> u64 {
        let id = self.id();
        let t = now();
        let mut user = json!({
            "id": id, "url": format!("{}/api/v2/users/{id}.json", self.base),
            "name": null, "email": null, "created_at": t, "updated_at": t,
            "time_zone": "UTC", "iana_time_zone": "Etc/UTC", "phone": null,
            "shared_phone_number": null, "photo": null, "locale_id": 1, "locale": "en-US",
            "organization_id": null, "role": "end-user", "verified": false, "external_id": null,
            "tags": [], "alias": null, "active": true, "shared": false, "shared_agent": false,
            "last_login_at": null, "two_factor_auth_enabled": false, "signature": null,
            "details": "", "notes": "", "role_type": null, "custom_role_id": null,
            "moderator": false, "ticket_restriction": "requested", "only_private_comments": false,
            "restricted_agent": true, "suspended": false, "default_group_id": null,
            "report_csv": false, "user_fields": {}
        });
        apply_user(&mut user, fields);
        self.users.insert(id, user);
        id
    }

    fn live_users(&self) -> impl Iterator<Item = &Value> {
        self.users.values().filter(|u| u["active"] == true)
    }

    /// The first live user other than `except` whose `field` equals `value`.
    fn conflict(&self, field: &str, value: &str, except: Option<u64>) -> bool {
        self.live_users().any(|u| {
            u["id"].as_u64() != except
                && u[field]
                    .as_str()
                    .is_some_and(|v| v.eq_ignore_ascii_case(value))
        })
    }
}

const READ_ONLY: &[&str] = &[
    "id",
    "url",
    "created_at",
    "updated_at",
    "active",
    "last_login_at",
    "photo",
    "shared",
    "shared_agent",
    "role_type",
];

fn apply_user(user: &mut Value, fields: &Map<String, Value>) {
    for (k, v) in fields {
        if READ_ONLY.contains(&k.as_str()) {
            continue;
        }
        if k == "user_fields" {
            if let (Some(target), Some(src)) = (user["user_fields"].as_object_mut(), v.as_object())
            {
                for (fk, fv) in src {
                    target.insert(fk.clone(), fv.clone());
                }
            }
            continue;
        }
        let v = if k == "email" {
            v.as_str()
                .map_or(v.clone(), |e| json!(e.trim().to_lowercase()))
        } else {
            v.clone()
        };
        user[k] = v;
    }
    let agent = user["role"] != "end-user";
    user["restricted_agent"] = json!(!agent);
    if agent {
        user["ticket_restriction"] = Value::Null;
    }
    user["updated_at"] = json!(now());
}

/// A Zendesk validation error body.
fn invalid(field: &str, error: &str, description: String) -> Response {
    reply(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"error": "RecordInvalid", "description": "Record validation errors",
               "details": {field: [{"description": description, "error": error}]}}),
    )
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn not_found() -> Response {
    reply(
        StatusCode::NOT_FOUND,
        json!({"error": "RecordNotFound", "description": "Not found"}),
    )
}

fn validate_user(s: &State, fields: &Map<String, Value>, except: Option<u64>) -> Option<Response> {
    if let Some(email) = fields.get("email").and_then(Value::as_str)
        && s.conflict("email", email.trim(), except)
    {
        return Some(invalid(
            "email",
            "DuplicateValue",
            format!("Email: {email} is already being used by another user"),
        ));
    }
    if let Some(ext) = fields.get("external_id").and_then(Value::as_str)
        && s.live_users()
            .any(|u| u["id"].as_u64() != except && u["external_id"] == ext)
    {
        return Some(invalid(
            "external_id",
            "DuplicateValue",
            format!("External: {ext} has already been taken"),
        ));
    }
    if let Some(role) = fields.get("role")
        && !matches!(role.as_str(), Some("end-user" | "agent" | "admin"))
    {
        return Some(invalid(
            "role",
            "InvalidValue",
            format!("Role: {role} is not valid"),
        ));
    }
    if let Some(name) = fields.get("name")
        && name.as_str().is_none_or(|n| n.trim().is_empty())
    {
        return Some(invalid(
            "name",
            "BlankValue",
            "Name: cannot be blank".into(),
        ));
    }
    None
}

fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A cursor page over items sorted by id.
fn cursor_page(
    base: &str,
    path: &str,
    key: &str,
    items: Vec<Value>,
    q: &[(String, String)],
) -> Response {
    let size = param(q, "page[size]")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(100);
    if size == 0 || size > 100 {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "InvalidPaginationParameter", "description": "page[size] must be between 1 and 100"}),
        );
    }
    let after: u64 = match param(q, "page[after]") {
        None => 0,
        Some(c) => match c.strip_prefix("zdc").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "InvalidPaginationParameter", "description": "invalid cursor"}),
                );
            }
        },
    };
    let rest: Vec<Value> = items
        .into_iter()
        .filter(|i| i["id"].as_u64().unwrap_or(0) > after)
        .collect();
    let has_more = rest.len() > size;
    let page: Vec<Value> = rest.into_iter().take(size).collect();
    let after_cursor = page.last().map(|l| format!("zdc{}", l["id"]));
    let before_cursor = page.first().map(|f| format!("zdc{}", f["id"]));
    let next = match (&after_cursor, has_more) {
        (Some(c), true) => {
            json!(format!(
                "{base}/api/v2/{path}.json?page%5Bsize%5D={size}&page%5Bafter%5D={c}"
            ))
        }
        _ => Value::Null,
    };
    reply(
        StatusCode::OK,
        json!({key: page, "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": before_cursor},
               "links": {"next": next, "prev": null}}),
    )
}

fn membership_json(base: &str, m: &Membership) -> Value {
    json!({"id": m.id, "url": format!("{base}/api/v2/group_memberships/{}.json", m.id),
           "user_id": m.user_id, "group_id": m.group_id, "default": false,
           "created_at": m.created_at, "updated_at": m.created_at})
}

fn with_rate_headers(mut response: Response, remaining: u32, reset: u64) -> Response {
    let h = response.headers_mut();
    let limit = HeaderValue::from(RATE_LIMIT);
    let rem = HeaderValue::from(remaining);
    h.insert("x-rate-limit", limit.clone());
    h.insert("x-rate-limit-remaining", rem.clone());
    h.insert("ratelimit-limit", limit);
    h.insert("ratelimit-remaining", rem);
    h.insert("ratelimit-reset", HeaderValue::from(reset));
    response
}

fn handle(
    st: &Mutex<State>,
    ct: &Controls,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = st.lock().unwrap();
    s.log.push(format!(
        "{method} {}",
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("")
    ));
    if s.window.0.elapsed().as_secs() >= 60 {
        s.window = (Instant::now(), 0);
    }
    s.window.1 += 1;
    let remaining = RATE_LIMIT.saturating_sub(s.window.1);
    let reset = 60u64.saturating_sub(s.window.0.elapsed().as_secs());

    let take = |c: &AtomicU32| {
        c.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    };
    if take(&ct.burst_429) {
        let secs = ct.retry_after.load(Ordering::SeqCst);
        let r = (
            StatusCode::TOO_MANY_REQUESTS,
            [
                ("content-type", "text/plain; charset=utf-8".to_string()),
                ("retry-after", secs.to_string()),
            ],
            format!("Rate limit exceeded. Retry after {secs} seconds."),
        )
            .into_response();
        return with_rate_headers(r, 0, reset);
    }
    if take(&ct.fail_5xx) {
        let r = reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "ServiceUnavailable", "description": "Service temporarily unavailable"}),
        );
        return with_rate_headers(r, remaining, reset);
    }
    let r = route(&mut s, method, &uri, &headers, &body);
    with_rate_headers(r, remaining, reset)
}

/// The authenticated user's id, from `Authorization: Basic {email}/token:{token}`.
fn authenticate(s: &State, headers: &HeaderMap) -> Option<u64> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    let email = user.strip_suffix("/token")?;
    if password != s.token {
        return None;
    }
    s.live_users()
        .find(|u| {
            u["suspended"] != true
                && u["email"]
                    .as_str()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
        .and_then(|u| u["id"].as_u64())
}

fn parse_body(body: &Bytes, key: &str) -> Result<Map<String, Value>, Box<Response>> {
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        Box::new(reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "InvalidJSON", "description": "The request body is not valid JSON"}),
        ))
    })?;
    v.get(key).and_then(Value::as_object).cloned().ok_or_else(|| {
        Box::new(reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "ParameterMissing", "description": format!("param is missing or the value is empty: {key}")}),
        ))
    })
}

fn route(s: &mut State, method: Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Response {
    let Some(rest) = uri.path().strip_prefix("/api/v2/") else {
        return (
            StatusCode::NOT_FOUND,
            "The page you were looking for doesn't exist",
        )
            .into_response();
    };
    let rest = rest.strip_suffix(".json").unwrap_or(rest);
    let seg: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let q = query_pairs(uri);
    let base = s.base.clone();

    let Some(me) = authenticate(s, headers) else {
        if method == Method::GET && seg == ["users", "me"] {
            return reply(
                StatusCode::OK,
                json!({"user": {"url": null, "name": "Anonymous user", "email": "invalid@example.com",
                    "created_at": null, "updated_at": null, "time_zone": "UTC", "iana_time_zone": "Etc/UTC",
                    "phone": null, "locale_id": 1, "locale": "en-US", "organization_id": null,
                    "role": "end-user", "verified": false, "authenticity_token": "x"}}),
            );
        }
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "Couldn't authenticate you"}),
        );
    };
    let is_admin = s.users.get(&me).is_some_and(|u| u["role"] == "admin");
    if method != Method::GET && !is_admin {
        return reply(
            StatusCode::FORBIDDEN,
            json!({"error": "Forbidden", "description": "You do not have access to this page. Please contact the account owner of this help desk for further help."}),
        );
    }
    let id_of = |x: &str| x.parse::<u64>().ok();

    match (method.clone(), seg.as_slice()) {
        (Method::GET, ["users", "me"]) => reply(StatusCode::OK, json!({"user": s.users[&me]})),
        (Method::GET, ["users", "search"]) => {
            let mut found: Vec<Value> = if let Some(ext) = param(&q, "external_id") {
                s.live_users()
                    .filter(|u| u["external_id"] == ext)
                    .cloned()
                    .collect()
            } else if let Some(query) = param(&q, "query") {
                let query = query.trim();
                if let Some(email) = query.strip_prefix("email:") {
                    let email = email.trim_matches('"');
                    s.live_users()
                        .filter(|u| {
                            u["email"]
                                .as_str()
                                .is_some_and(|e| e.eq_ignore_ascii_case(email))
                        })
                        .cloned()
                        .collect()
                } else {
                    let needle = query.to_lowercase();
                    s.live_users()
                        .filter(|u| {
                            ["name", "email"].iter().any(|f| {
                                u[*f]
                                    .as_str()
                                    .is_some_and(|v| v.to_lowercase().contains(&needle))
                            })
                        })
                        .cloned()
                        .collect()
                }
            } else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "InvalidSearch", "description": "query or external_id is required"}),
                );
            };
            found.sort_by_key(|u| u["id"].as_u64());
            let per_page = param(&q, "per_page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(100usize)
                .clamp(1, 100);
            let page = param(&q, "page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1usize)
                .max(1);
            let count = found.len();
            let items: Vec<Value> = found
                .into_iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .collect();
            let link = |p: usize| {
                let mut ser = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in q.iter().filter(|(k, _)| k != "page" && k != "per_page") {
                    ser.append_pair(k, v);
                }
                ser.append_pair("page", &p.to_string());
                ser.append_pair("per_page", &per_page.to_string());
                json!(format!("{base}/api/v2/users/search.json?{}", ser.finish()))
            };
            let next = if page * per_page < count {
                link(page + 1)
            } else {
                Value::Null
            };
            let prev = if page > 1 {
                link(page - 1)
            } else {
                Value::Null
            };
            reply(
                StatusCode::OK,
                json!({"users": items, "next_page": next, "previous_page": prev, "count": count}),
            )
        }
        (Method::GET, ["users", "show_many"]) => {
            let users: Vec<Value> = param(&q, "ids")
                .unwrap_or("")
                .split(',')
                .filter_map(|i| i.trim().parse::<u64>().ok())
                .filter_map(|i| s.users.get(&i).cloned())
                .collect();
            reply(
                StatusCode::OK,
                json!({"users": users, "next_page": null, "previous_page": null, "count": users.len()}),
            )
        }
        (Method::GET, ["users"]) => {
            let items = s.live_users().cloned().collect();
            cursor_page(&base, "users", "users", items, &q)
        }
        (Method::POST, ["users"]) => {
            let fields = match parse_body(body, "user") {
                Ok(f) => f,
                Err(r) => return *r,
            };
            if !fields.contains_key("name") {
                return invalid("name", "BlankValue", "Name: cannot be blank".into());
            }
            if let Some(r) = validate_user(s, &fields, None) {
                return r;
            }
            let id = s.insert_user(&fields);
            let location = format!("{base}/api/v2/users/{id}.json");
            (
                StatusCode::CREATED,
                [("location", location)],
                axum::Json(json!({"user": s.users[&id]})),
            )
                .into_response()
        }
        (Method::POST, ["users", "create_or_update"]) => {
            let fields = match parse_body(body, "user") {
                Ok(f) => f,
                Err(r) => return *r,
            };
            let existing = s
                .live_users()
                .find(|u| {
                    fields
                        .get("email")
                        .and_then(Value::as_str)
                        .is_some_and(|e| {
                            u["email"]
                                .as_str()
                                .is_some_and(|x| x.eq_ignore_ascii_case(e))
                        })
                        || fields
                            .get("external_id")
                            .is_some_and(|x| !x.is_null() && u["external_id"] == *x)
                })
                .and_then(|u| u["id"].as_u64());
            if let Some(r) = validate_user(s, &fields, existing) {
                return r;
            }
            match existing {
                Some(id) => {
                    let user = s.users.get_mut(&id).unwrap();
                    apply_user(user, &fields);
                    reply(StatusCode::OK, json!({"user": user}))
                }
                None => {
                    if !fields.contains_key("name") {
                        return invalid("name", "BlankValue", "Name: cannot be blank".into());
                    }
                    let id = s.insert_user(&fields);
                    reply(StatusCode::CREATED, json!({"user": s.users[&id]}))
                }
            }
        }
        (Method::GET, ["users", id]) => match id_of(id).and_then(|i| s.users.get(&i)) {
            Some(u) => reply(StatusCode::OK, json!({"user": u})),
            None => not_found(),
        },
        (Method::PUT, ["users", id]) => {
            let Some(id) = id_of(id).filter(|i| s.users.contains_key(i)) else {
                return not_found();
            };
            let fields = match parse_body(body, "user") {
                Ok(f) => f,
                Err(r) => return *r,
            };
            if let Some(r) = validate_user(s, &fields, Some(id)) {
                return r;
            }
            let user = s.users.get_mut(&id).unwrap();
            apply_user(user, &fields);
            let user = user.clone();
            if user["role"] == "end-user" {
                s.memberships.retain(|_, m| m.user_id != id);
            }
            reply(StatusCode::OK, json!({"user": user}))
        }
        (Method::DELETE, ["users", id]) => {
            let Some(id) = id_of(id).filter(|i| s.users.contains_key(i)) else {
                return not_found();
            };
            s.memberships.retain(|_, m| m.user_id != id);
            let user = s.users.get_mut(&id).unwrap();
            user["active"] = json!(false);
            user["updated_at"] = json!(now());
            reply(StatusCode::OK, json!({"user": user}))
        }
        (Method::GET, ["users", id, "group_memberships"]) => {
            let Some(uid) = id_of(id).filter(|i| s.users.contains_key(i)) else {
                return not_found();
            };
            let items = s
                .memberships
                .values()
                .filter(|m| m.user_id == uid)
                .map(|m| membership_json(&base, m))
                .collect();
            cursor_page(
                &base,
                &format!("users/{uid}/group_memberships"),
                "group_memberships",
                items,
                &q,
            )
        }
        (Method::GET, ["groups"]) => {
            let items = s
                .groups
                .values()
                .filter(|g| g["deleted"] != true)
                .cloned()
                .collect();
            cursor_page(&base, "groups", "groups", items, &q)
        }
        (Method::POST, ["groups"]) => {
            let fields = match parse_body(body, "group") {
                Ok(f) => f,
                Err(r) => return *r,
            };
            let Some(name) = fields
                .get("name")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|n| !n.is_empty())
            else {
                return invalid("name", "BlankValue", "Name: cannot be blank".into());
            };
            if s.groups.values().any(|g| {
                g["deleted"] != true
                    && g["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
            }) {
                return invalid(
                    "name",
                    "DuplicateValue",
                    format!("Name: {name} has already been taken"),
                );
            }
            let id = s.id();
            let t = now();
            let group = json!({"id": id, "url": format!("{base}/api/v2/groups/{id}.json"), "name": name,
                "description": fields.get("description").cloned().unwrap_or(json!("")),
                "default": false, "deleted": false,
                "is_public": fields.get("is_public").cloned().unwrap_or(json!(true)),
                "created_at": t, "updated_at": t});
            s.groups.insert(id, group.clone());
            (
                StatusCode::CREATED,
                [("location", format!("{base}/api/v2/groups/{id}.json"))],
                axum::Json(json!({"group": group})),
            )
                .into_response()
        }
        (Method::GET, ["groups", id]) => match id_of(id)
            .and_then(|i| s.groups.get(&i))
            .filter(|g| g["deleted"] != true)
        {
            Some(g) => reply(StatusCode::OK, json!({"group": g})),
            None => not_found(),
        },
        (Method::PUT, ["groups", id]) => {
            let Some(id) =
                id_of(id).filter(|i| s.groups.get(i).is_some_and(|g| g["deleted"] != true))
            else {
                return not_found();
            };
            let fields = match parse_body(body, "group") {
                Ok(f) => f,
                Err(r) => return *r,
            };
            if let Some(name) = fields.get("name") {
                let Some(name) = name.as_str().map(str::trim).filter(|n| !n.is_empty()) else {
                    return invalid("name", "BlankValue", "Name: cannot be blank".into());
                };
                if s.groups.iter().any(|(gid, g)| {
                    *gid != id
                        && g["deleted"] != true
                        && g["name"]
                            .as_str()
                            .is_some_and(|n| n.eq_ignore_ascii_case(name))
                }) {
                    return invalid(
                        "name",
                        "DuplicateValue",
                        format!("Name: {name} has already been taken"),
                    );
                }
            }
            let group = s.groups.get_mut(&id).unwrap();
            for key in ["name", "description", "is_public"] {
                if let Some(v) = fields.get(key) {
                    group[key] = v.clone();
                }
            }
            group["updated_at"] = json!(now());
            reply(StatusCode::OK, json!({"group": group}))
        }
        (Method::DELETE, ["groups", id]) => {
            let Some(id) =
                id_of(id).filter(|i| s.groups.get(i).is_some_and(|g| g["deleted"] != true))
            else {
                return not_found();
            };
            s.memberships.retain(|_, m| m.group_id != id);
            s.groups.get_mut(&id).unwrap()["deleted"] = json!(true);
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::GET, ["groups", id, "memberships"]) => {
            let Some(gid) =
                id_of(id).filter(|i| s.groups.get(i).is_some_and(|g| g["deleted"] != true))
            else {
                return not_found();
            };
            let items = s
                .memberships
                .values()
                .filter(|m| m.group_id == gid)
                .map(|m| membership_json(&base, m))
                .collect();
            cursor_page(
                &base,
                &format!("groups/{gid}/memberships"),
                "group_memberships",
                items,
                &q,
            )
        }
        (Method::POST, ["group_memberships"]) => {
            let fields = match parse_body(body, "group_membership") {
                Ok(f) => f,
                Err(r) => return *r,
            };
            let num = |k: &str| {
                fields.get(k).and_then(|v| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|x| x.parse().ok()))
                })
            };
            let (Some(uid), Some(gid)) = (num("user_id"), num("group_id")) else {
                return invalid(
                    "group_membership",
                    "BlankValue",
                    "user_id and group_id are required".into(),
                );
            };
            if !s.groups.get(&gid).is_some_and(|g| g["deleted"] != true) {
                return invalid(
                    "group_id",
                    "InvalidValue",
                    format!("Group: {gid} does not exist"),
                );
            }
            let Some(user) = s.users.get(&uid).filter(|u| u["active"] == true) else {
                return invalid(
                    "user_id",
                    "InvalidValue",
                    format!("User: {uid} does not exist"),
                );
            };
            if user["role"] == "end-user" {
                return invalid("user_id", "InvalidValue", "User must be an agent".into());
            }
            if s.memberships
                .values()
                .any(|m| m.user_id == uid && m.group_id == gid)
            {
                return invalid(
                    "user_id",
                    "DuplicateValue",
                    "User is already a member of this group".into(),
                );
            }
            let id = s.id();
            let m = Membership {
                id,
                user_id: uid,
                group_id: gid,
                created_at: now(),
            };
            let body = membership_json(&base, &m);
            s.memberships.insert(id, m);
            (
                StatusCode::CREATED,
                [(
                    "location",
                    format!("{base}/api/v2/group_memberships/{id}.json"),
                )],
                axum::Json(json!({"group_membership": body})),
            )
                .into_response()
        }
        (Method::DELETE, ["group_memberships", id]) => {
            match id_of(id).and_then(|i| s.memberships.remove(&i)) {
                Some(_) => StatusCode::NO_CONTENT.into_response(),
                None => not_found(),
            }
        }
        _ => not_found(),
    }
}
