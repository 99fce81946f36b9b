//! An in-memory emulator of Clarizen's REST API V2, faithful to the shapes in
//! `vendor-apis.md` (section Clarizen), for end-to-end tests.
//!
//! Implemented, under `/V2.0/services`: `authentication/getServerDefinition`
//! and `authentication/login` (`{"userName","password"}`), `data/entityQuery`
//! (`typeName` `User`, `fields`, `where` with `Equal`, `paging`
//! `{from,limit}` answered with `{from,limit,hasMore}` where `from` is the
//! next page's offset), `data/objects/User/{id}` GET (`?fields=`), **PUT
//! creates** (`data/objects/User` → `{"id":"/User/<guid>"}`), **POST updates**
//! (200, empty body), DELETE, and `data/lifecycle`
//! `{"ids":["/User/<id>"],"operation":"Disable"|"Enable"}` (sets
//! `State` to `/State/Disabled` / `/State/Active`). Errors are
//! `{"errorCode","message","referenceId"}`; `EntityNotFound` comes with
//! **HTTP 500**; more than 25 requests in one second (per organization, a
//! fixed one-second window; switchable) answer "API calls quota exceeded".
//! Data calls need `Authorization: Session <sessionId>`.
//!
//! Switchable faults: 429 bursts (`Retry-After`), quota bursts, 5xx bursts,
//! the same three every n-th request, slow responses, expiring every session
//! now or every n-th data request, and a discovery answer that names another
//! server. Inspection: users as stored, the request log, entityQuery bodies,
//! discovery/login counts, quota answers.
//!
//! UNKNOWN in the reference, chosen here (each is a guess about real Clarizen):
//! - discovery checks the credentials like login (401 `LoginFailure`
//!   "Invalid user name or password");
//! - the data server is the emulator itself (`{origin}/V2.0/services`);
//! - an expired session answers **HTTP 500** `SessionTimeout`; an unknown or
//!   missing one 401 `Unauthorized`;
//! - the quota answer is HTTP 500 `errorCode` `General` with no `Retry-After`;
//! - `UserName` is unique (case-insensitive): a duplicate is HTTP 400
//!   `DuplicateUniqueValue`; `UserName` and `LastName` are required on create
//!   (400 `MissingArgument`); an unknown field is 400 `InvalidField`; custom
//!   fields are `C_…`;
//! - `Equal` compares text case-insensitively; entities are returned in
//!   creation order; `Name` is `FirstName LastName`;
//! - a create answers 200; the admin is itself a User entity.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests per second per organization before the quota answer.
pub const QUOTA_PER_SECOND: u32 = 25;
/// The API prefix.
pub const PREFIX: &str = "/V2.0/services";
/// The text of the quota answer.
pub const QUOTA_MESSAGE: &str = "API calls quota exceeded: 25 requests per second per organization";

/// The User fields the emulator knows (besides `C_…` custom fields).
pub const FIELDS: &[&str] = &[
    "UserName",
    "FirstName",
    "LastName",
    "Email",
    "OfficePhone",
    "MobilePhone",
    "JobTitle",
    "ExternalID",
    "Department",
    "Name",
    "State",
];

/// Switches a test flips to make the emulator misbehave.
#[derive(Default)]
pub struct Controls {
    /// The next N requests answer 429.
    pub burst_429: AtomicU32,
    /// The `Retry-After` seconds of the 429s.
    pub retry_after: AtomicU32,
    /// The next N requests answer the quota message.
    pub burst_quota: AtomicU32,
    /// The next N requests answer 503.
    pub burst_5xx: AtomicU32,
    /// Every n-th request answers 429 (0 = off).
    pub every_nth_429: AtomicU32,
    /// Every n-th request answers the quota message (0 = off).
    pub every_nth_quota: AtomicU32,
    /// Every n-th request answers 503 (0 = off).
    pub every_nth_5xx: AtomicU32,
    /// Every n-th authenticated data request first expires every session (0 = off).
    pub expire_every_nth: AtomicU32,
    /// Delay before every answer, in ms.
    pub slow_ms: AtomicU64,
    /// Turn the per-second quota off.
    pub no_quota: AtomicBool,
}

/// A session.
struct SessionRow {
    expired: bool,
}

/// The emulator's whole state.
pub struct State {
    pub base: String,
    pub user_name: String,
    pub password: String,
    pub organization_id: String,
    pub admin_id: String,
    /// Users by GUID (creation order), each a JSON object of fields incl. `State`.
    pub users: BTreeMap<String, Map<String, Value>>,
    sessions: HashMap<String, SessionRow>,
    next: u64,
    /// (method, path) of every request.
    pub log: Vec<String>,
    /// Bodies of every `entityQuery`.
    pub queries: Vec<Value>,
    pub discoveries: u32,
    pub logins: u32,
    pub quota_answers: u32,
    pub session_timeouts: u32,
    /// Requests counted for the every-n-th faults.
    requests: u32,
    data_requests: u32,
    window: (Instant, u32),
    /// Override of the `serverLocation` discovery answers.
    pub server_location: Option<String>,
}

/// A running emulator.
pub struct Emulator {
    pub url: String,
    pub api_url: String,
    pub port: u16,
    pub user_name: String,
    pub password: String,
    pub admin_id: String,
    pub state: Arc<Mutex<State>>,
    pub controls: Arc<Controls>,
}

/// Start an emulator on 127.0.0.1:0 whose organization has one admin
/// (`user_name` / `password`). It runs on its own thread for the rest of the process.
pub fn start(user_name: &str, password: &str) -> Emulator {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let port = std_listener.local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let mut state = State {
        base: url.clone(),
        user_name: user_name.to_string(),
        password: password.to_string(),
        organization_id: "4711".into(),
        admin_id: String::new(),
        users: BTreeMap::new(),
        sessions: HashMap::new(),
        next: 1,
        log: Vec::new(),
        queries: Vec::new(),
        discoveries: 0,
        logins: 0,
        quota_answers: 0,
        session_timeouts: 0,
        requests: 0,
        data_requests: 0,
        window: (Instant::now(), 0),
        server_location: None,
    };
    let mut admin = Map::new();
    admin.insert("UserName".into(), json!(user_name));
    admin.insert("FirstName".into(), json!("Org"));
    admin.insert("LastName".into(), json!("Admin"));
    admin.insert("Email".into(), json!(user_name));
    state.admin_id = state.insert_user(admin);
    let admin_id = state.admin_id.clone();
    let state = Arc::new(Mutex::new(state));
    let controls = Arc::new(Controls::default());
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
                    async move {
                        let slow = ct.slow_ms.load(Ordering::SeqCst);
                        if slow > 0 {
                            tokio::time::sleep(Duration::from_millis(slow)).await;
                        }
                        handle(&st, &ct, method, uri, headers, body)
                    }
                },
            );
            let _ = axum::serve(listener, app).await;
        });
    });
    Emulator {
        api_url: format!("{url}{PREFIX}"),
        url,
        port,
        user_name: user_name.to_string(),
        password: password.to_string(),
        admin_id,
        state,
        controls,
    }
}

impl Emulator {
    /// A user as stored, by GUID (without `/User/`).
    pub fn user(&self, id: &str) -> Option<Map<String, Value>> {
        self.state.lock().unwrap().users.get(id).cloned()
    }

    /// Every user as stored (the admin included), in creation order.
    pub fn users(&self) -> Vec<(String, Map<String, Value>)> {
        let s = self.state.lock().unwrap();
        s.users
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Seed a user directly (bypassing the API); returns its GUID.
    pub fn add_user(&self, fields: Value) -> String {
        let fields = fields.as_object().unwrap().clone();
        self.state.lock().unwrap().insert_user(fields)
    }

    /// Requests seen so far ("METHOD /path").
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// The bodies of every entityQuery so far.
    pub fn queries(&self) -> Vec<Value> {
        self.state.lock().unwrap().queries.clone()
    }

    /// (discoveries, logins) so far.
    pub fn auth_counts(&self) -> (u32, u32) {
        let s = self.state.lock().unwrap();
        (s.discoveries, s.logins)
    }

    /// Quota answers given so far.
    pub fn quota_answers(&self) -> u32 {
        self.state.lock().unwrap().quota_answers
    }

    /// `SessionTimeout` answers given so far.
    pub fn session_timeouts(&self) -> u32 {
        self.state.lock().unwrap().session_timeouts
    }

    /// Every session id issued so far.
    pub fn session_ids(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .sessions
            .keys()
            .cloned()
            .collect()
    }

    /// Expire every session now (the next call with one answers `SessionTimeout`).
    pub fn expire_sessions(&self) {
        let mut s = self.state.lock().unwrap();
        for row in s.sessions.values_mut() {
            row.expired = true;
        }
    }

    /// Make discovery answer this `serverLocation`.
    pub fn set_server_location(&self, location: &str) {
        self.state.lock().unwrap().server_location = Some(location.to_string());
    }

    /// Make the next `n` requests answer 429 with `Retry-After: retry_after`.
    pub fn burst_429(&self, n: u32, retry_after: u32) {
        self.controls
            .retry_after
            .store(retry_after, Ordering::SeqCst);
        self.controls.burst_429.store(n, Ordering::SeqCst);
    }

    /// Make the next `n` requests answer the quota message.
    pub fn burst_quota(&self, n: u32) {
        self.controls.burst_quota.store(n, Ordering::SeqCst);
    }

    /// Make the next `n` requests answer 503.
    pub fn burst_5xx(&self, n: u32) {
        self.controls.burst_5xx.store(n, Ordering::SeqCst);
    }

    /// Turn the per-second quota on or off.
    pub fn set_quota(&self, on: bool) {
        self.controls.no_quota.store(!on, Ordering::SeqCst);
    }
}

impl State {
    fn guid(&mut self) -> String {
        let n = self.next;
        self.next += 1;
        format!("5c1a{n:04x}-77d2-4e0b-9f1a-{:012x}", n * 7919)
    }

    fn insert_user(&mut self, mut fields: Map<String, Value>) -> String {
        let id = self.guid();
        fields.insert("State".into(), json!({"id": "/State/Active"}));
        fields.remove("Name");
        self.users.insert(id.clone(), fields);
        id
    }

    fn user_name_taken(&self, name: &str, except: Option<&str>) -> bool {
        self.users.iter().any(|(id, u)| {
            Some(id.as_str()) != except
                && u.get("UserName")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(name.trim()))
        })
    }

    fn reference(&mut self) -> String {
        self.next += 1;
        format!("ref-{:08x}", self.next * 104_729)
    }
}

fn error(s: &mut State, status: StatusCode, code: &str, message: &str) -> Response {
    let reference = s.reference();
    (
        status,
        axum::Json(json!({"errorCode": code, "message": message, "referenceId": reference})),
    )
        .into_response()
}

fn not_found(s: &mut State, id: &str) -> Response {
    error(
        s,
        StatusCode::INTERNAL_SERVER_ERROR,
        "EntityNotFound",
        &format!("Entity /User/{id} was not found"),
    )
}

fn quota(s: &mut State) -> Response {
    s.quota_answers += 1;
    error(
        s,
        StatusCode::INTERNAL_SERVER_ERROR,
        "General",
        QUOTA_MESSAGE,
    )
}

fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

fn nth(counter: &AtomicU32, request: u32) -> bool {
    let n = counter.load(Ordering::SeqCst);
    n > 0 && request.is_multiple_of(n)
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
    s.log.push(format!("{method} {}", uri.path()));
    s.requests += 1;
    let request = s.requests;
    if take(&ct.burst_429) || nth(&ct.every_nth_429, request) {
        let secs = ct.retry_after.load(Ordering::SeqCst).max(1);
        let reference = s.reference();
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
            axum::Json(json!({"errorCode": "TooManyRequests",
                "message": format!("Too many requests, retry after {secs} seconds"),
                "referenceId": reference})),
        )
            .into_response();
    }
    if take(&ct.burst_quota) || nth(&ct.every_nth_quota, request) {
        return quota(&mut s);
    }
    if take(&ct.burst_5xx) || nth(&ct.every_nth_5xx, request) {
        return error(
            &mut s,
            StatusCode::SERVICE_UNAVAILABLE,
            "General",
            "Service temporarily unavailable",
        );
    }
    if !ct.no_quota.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now.duration_since(s.window.0) >= Duration::from_secs(1) {
            s.window = (now, 0);
        }
        s.window.1 += 1;
        if s.window.1 > QUOTA_PER_SECOND {
            return quota(&mut s);
        }
    }
    let Some(path) = uri.path().strip_prefix(PREFIX) else {
        return error(
            &mut s,
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "No such resource",
        );
    };
    let path = path.trim_matches('/').to_string();
    let json_body: Option<Value> = serde_json::from_slice(&body).ok();
    match (method.clone(), path.as_str()) {
        (Method::POST, "authentication/getServerDefinition") => {
            s.discoveries += 1;
            if let Some(r) = check_credentials(&mut s, json_body.as_ref()) {
                return r;
            }
            let location = s
                .server_location
                .clone()
                .unwrap_or_else(|| format!("{}{PREFIX}", s.base));
            let app = format!("{}/Clarizen", s.base);
            axum::Json(json!({"serverLocation": location, "appLocation": app,
                "organizationId": s.organization_id}))
            .into_response()
        }
        (Method::POST, "authentication/login") => {
            s.logins += 1;
            if let Some(r) = check_credentials(&mut s, json_body.as_ref()) {
                return r;
            }
            let n = s.logins;
            let session = format!(
                "{}-sess-{n}-{:x}",
                s.organization_id,
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            );
            s.sessions
                .insert(session.clone(), SessionRow { expired: false });
            axum::Json(
                json!({"sessionId": session, "userId": format!("/User/{}", s.admin_id),
                "organizationId": s.organization_id, "licenseType": "Full"}),
            )
            .into_response()
        }
        _ => {
            if let Some(r) = check_session(&mut s, ct, &headers) {
                return r;
            }
            data(&mut s, method, &uri, &path, json_body)
        }
    }
}

fn check_credentials(s: &mut State, body: Option<&Value>) -> Option<Response> {
    let user = body.and_then(|b| b.get("userName")).and_then(Value::as_str);
    let password = body.and_then(|b| b.get("password")).and_then(Value::as_str);
    match (user, password) {
        (Some(u), Some(p)) if u.eq_ignore_ascii_case(&s.user_name) && p == s.password => None,
        (Some(_), Some(_)) => Some(error(
            s,
            StatusCode::UNAUTHORIZED,
            "LoginFailure",
            "Invalid user name or password",
        )),
        _ => Some(error(
            s,
            StatusCode::BAD_REQUEST,
            "MissingArgument",
            "userName and password are required",
        )),
    }
}

fn check_session(s: &mut State, ct: &Controls, headers: &HeaderMap) -> Option<Response> {
    s.data_requests += 1;
    if nth(&ct.expire_every_nth, s.data_requests) {
        for row in s.sessions.values_mut() {
            row.expired = true;
        }
    }
    let id = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Session "))
        .map(str::to_string);
    match id.and_then(|id| s.sessions.get(&id).map(|r| r.expired)) {
        Some(false) => None,
        Some(true) => {
            s.session_timeouts += 1;
            Some(error(
                s,
                StatusCode::INTERNAL_SERVER_ERROR,
                "SessionTimeout",
                "Session timed out, please login again",
            ))
        }
        None => Some(error(
            s,
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Session id is missing or invalid",
        )),
    }
}

fn known_field(name: &str) -> bool {
    FIELDS.contains(&name)
        || (name.len() > 2
            && name.starts_with("C_")
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

/// The entity as the API shows it: `id` and the requested fields.
fn entity(id: &str, user: &Map<String, Value>, fields: &[String]) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(format!("/User/{id}")));
    for f in fields {
        let v = if f == "Name" {
            let part = |k: &str| {
                user.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            json!(
                format!("{} {}", part("FirstName"), part("LastName"))
                    .trim()
                    .to_string()
            )
        } else {
            user.get(f).cloned().unwrap_or(Value::Null)
        };
        out.insert(f.clone(), v);
    }
    Value::Object(out)
}

fn bad_field(s: &mut State, name: &str) -> Response {
    error(
        s,
        StatusCode::BAD_REQUEST,
        "InvalidField",
        &format!("Field '{name}' does not exist on entity User"),
    )
}

/// Validate a create/update body: known writable fields, unique UserName.
fn validate(s: &mut State, fields: &Map<String, Value>, except: Option<&str>) -> Option<Response> {
    for k in fields.keys() {
        if !known_field(k) || k == "Name" || k == "State" {
            return Some(bad_field(s, k));
        }
    }
    if let Some(name) = fields.get("UserName") {
        let Some(name) = name.as_str().filter(|n| !n.trim().is_empty()) else {
            return Some(error(
                s,
                StatusCode::BAD_REQUEST,
                "MissingArgument",
                "UserName cannot be empty",
            ));
        };
        if s.user_name_taken(name, except) {
            return Some(error(
                s,
                StatusCode::BAD_REQUEST,
                "DuplicateUniqueValue",
                &format!("The value '{name}' of field UserName must be unique"),
            ));
        }
    }
    None
}

fn data(s: &mut State, method: Method, uri: &Uri, path: &str, body: Option<Value>) -> Response {
    let segments: Vec<&str> = path.split('/').collect();
    match (method, segments.as_slice()) {
        (Method::POST, ["data", "entityQuery"]) => {
            let Some(q) = body else {
                return error(
                    s,
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    "a JSON body is required",
                );
            };
            s.queries.push(q.clone());
            if q["typeName"] != "User" {
                return error(
                    s,
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    &format!("type {} is not supported here", q["typeName"]),
                );
            }
            let fields: Vec<String> = q["fields"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(bad) = fields.iter().find(|f| !known_field(f)) {
                let bad = bad.clone();
                return bad_field(s, &bad);
            }
            let filter = match q.get("where") {
                None | Some(Value::Null) => None,
                Some(w) => {
                    let field = w["leftExpression"]["fieldName"].as_str().unwrap_or("");
                    if w["operator"] != "Equal" || !known_field(field) {
                        return error(
                            s,
                            StatusCode::BAD_REQUEST,
                            "InvalidArgument",
                            "only `fieldName Equal value` conditions on User fields are supported",
                        );
                    }
                    Some((field.to_string(), w["rightExpression"]["value"].clone()))
                }
            };
            let from = q["paging"]["from"].as_u64().unwrap_or(0) as usize;
            let limit = q["paging"]["limit"].as_u64().unwrap_or(100).clamp(1, 1000) as usize;
            let matching: Vec<Value> = s
                .users
                .iter()
                .filter(|(_, u)| match &filter {
                    None => true,
                    Some((f, v)) => match (u.get(f), v) {
                        (Some(Value::String(a)), Value::String(b)) => a.eq_ignore_ascii_case(b),
                        (Some(a), b) => a == b,
                        (None, _) => false,
                    },
                })
                .map(|(id, u)| entity(id, u, &fields))
                .collect();
            let page: Vec<Value> = matching.iter().skip(from).take(limit).cloned().collect();
            let next = from + page.len();
            axum::Json(json!({"entities": page,
                "paging": {"from": next, "limit": limit, "hasMore": next < matching.len()}}))
            .into_response()
        }
        (Method::GET, ["data", "objects", "User", id]) => {
            let fields: Vec<String> = uri
                .query()
                .unwrap_or("")
                .split('&')
                .filter_map(|p| p.strip_prefix("fields="))
                .flat_map(|v| {
                    percent_decode(v)
                        .split(',')
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .filter(|f| !f.is_empty())
                .collect();
            if let Some(bad) = fields.iter().find(|f| !known_field(f)) {
                let bad = bad.clone();
                return bad_field(s, &bad);
            }
            let fields = if fields.is_empty() {
                FIELDS.iter().map(|f| f.to_string()).collect()
            } else {
                fields
            };
            match s.users.get(*id) {
                Some(u) => axum::Json(entity(id, u, &fields)).into_response(),
                None => not_found(s, id),
            }
        }
        (Method::PUT, ["data", "objects", "User"]) => {
            let Some(fields) = body.and_then(|b| b.as_object().cloned()) else {
                return error(
                    s,
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    "a JSON object is required",
                );
            };
            if let Some(r) = validate(s, &fields, None) {
                return r;
            }
            for required in ["UserName", "LastName"] {
                if fields
                    .get(required)
                    .and_then(Value::as_str)
                    .is_none_or(|v| v.trim().is_empty())
                {
                    return error(
                        s,
                        StatusCode::BAD_REQUEST,
                        "MissingArgument",
                        &format!("{required} is required"),
                    );
                }
            }
            let id = s.insert_user(fields);
            axum::Json(json!({"id": format!("/User/{id}")})).into_response()
        }
        (Method::POST, ["data", "objects", "User", id]) => {
            let id = id.to_string();
            let Some(fields) = body.and_then(|b| b.as_object().cloned()) else {
                return error(
                    s,
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    "a JSON object is required",
                );
            };
            if !s.users.contains_key(&id) {
                return not_found(s, &id);
            }
            if let Some(r) = validate(s, &fields, Some(&id)) {
                return r;
            }
            let user = s.users.get_mut(&id).unwrap();
            for (k, v) in fields {
                user.insert(k, v);
            }
            StatusCode::OK.into_response()
        }
        (Method::DELETE, ["data", "objects", "User", id]) => {
            if *id == s.admin_id {
                return error(
                    s,
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "you cannot delete yourself",
                );
            }
            match s.users.remove(*id) {
                Some(_) => StatusCode::OK.into_response(),
                None => not_found(s, id),
            }
        }
        (Method::POST, ["data", "lifecycle"]) => {
            let Some(b) = body else {
                return error(
                    s,
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    "a JSON body is required",
                );
            };
            let state = match b["operation"].as_str() {
                Some("Disable") => "/State/Disabled",
                Some("Enable") => "/State/Active",
                _ => {
                    return error(
                        s,
                        StatusCode::BAD_REQUEST,
                        "InvalidArgument",
                        "operation must be Disable or Enable for users",
                    );
                }
            };
            let ids: Vec<String> = b["ids"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|i| i.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if ids.is_empty() {
                return error(
                    s,
                    StatusCode::BAD_REQUEST,
                    "MissingArgument",
                    "ids are required",
                );
            }
            let mut guids = Vec::new();
            for raw in &ids {
                match raw.strip_prefix("/User/") {
                    Some(g) if s.users.contains_key(g) => guids.push(g.to_string()),
                    Some(g) => return not_found(s, g),
                    None => {
                        return error(
                            s,
                            StatusCode::BAD_REQUEST,
                            "InvalidArgument",
                            &format!("'{raw}' is not an entity id"),
                        );
                    }
                }
            }
            for g in guids {
                s.users
                    .get_mut(&g)
                    .unwrap()
                    .insert("State".into(), json!({"id": state}));
            }
            StatusCode::OK.into_response()
        }
        _ => error(
            s,
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "No such resource",
        ),
    }
}

fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&v[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
