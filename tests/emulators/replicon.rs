//! An in-memory emulator of Replicon's discovery service and the tenant
//! services the connector uses, faithful to the shapes in `vendor-apis.md`
//! (section Replicon), for end-to-end tests.
//!
//! Implemented: `POST /DiscoveryService1.svc/GetTenantEndpointDetails`
//! (anonymous; `{"tenant":{"companyKey"}}` → `{"d":{"applicationRootUrl",…}}`),
//! and under the application root `{url}/{swimlane}/{slug}/services/`:
//! `UserService1.svc/GetUser2`, `UserService1.svc/Delete`,
//! `ImportService1.svc/BulkGetUsers3`, `ImportService1.svc/PutUser3`,
//! `ImportService2.svc/CreateUserOrApplyModifications`,
//! `SecurityService1.svc/DisableLogin` / `EnableLogin` and
//! `UserListService1.svc/GetData` (`page`, `pagesize`, `columnUris`,
//! `filterExpression`; a page past the end has no rows).
//!
//! Behaviour from the reference: every answer is `200 {"d": …}`; refusals are
//! **HTTP 400** `{"error":{"code":"Sender","correlationId","reason","details":{"displayText"},"type"}}`;
//! user URIs are `urn:replicon-tenant:<tenant>:user:<n>`; loginName is unique;
//! Basic auth with `CompanyKey\LoginName` and the password; 429 and 500 are possible.
//!
//! UNKNOWN in the reference, chosen here (each is a guess about real Replicon):
//! - an unknown company key at discovery → 400, type `TenantNotFoundError1`;
//! - bad credentials → 401 with an error object of type `AuthenticationError1`;
//!   a disabled login cannot sign in; only the admin has a password;
//! - login names are unique case-insensitively; a `PutUser3` whose target
//!   loginName exists → 400 `ValidationError1` "Login name 'x' is already in
//!   use by another user." (PutUser3 is treated as create-only);
//! - first and last name are required (400 `ValidationError1`, "First name is
//!   required."); an email address must contain `@`;
//! - an unknown target (uri, loginName or employeeId) → 400
//!   `InvalidUserTargetParameterError1`; `CreateUserOrApplyModifications`
//!   with an unknown *uri* target is refused the same way (only a loginName
//!   target creates);
//! - `BulkGetUsers3` takes `{"users":[target…]}` and answers
//!   `{"d":[{"userDetails":{uri,displayText,loginName,firstName,lastName,emailAddress,employeeId,isEnabled,slug}}]}`;
//!   `isEnabled` is the login-enabled flag;
//! - `GetData` cells are `{"textValue"}` (the user column adds `uri`), the
//!   login-enabled column is `{"boolValue"}`; rows come in user-number order;
//!   `pagesize` is capped at [`MAX_PAGE_SIZE`]; filters `login-name`,
//!   `email-address`, `employee-id` with operator `equal`, compared
//!   case-insensitively;
//! - displayText is `Last, First`; deletion is immediate and permanent;
//! - the 429 body is text (`Rate limit exceeded`) with `Retry-After` seconds;
//!   the 5xx is `500 {"error":{"code":"Receiver",…,"type":"InternalServerError"}}`;
//! - the X-Replicon-Application header is recorded, not required;
//! - an old application root (after the swimlane moved) answers 404.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::result_large_err
)]

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The largest `GetData` page the emulator serves.
pub const MAX_PAGE_SIZE: usize = 100;

/// Switches a test flips to make the emulator misbehave.
#[derive(Default)]
pub struct Controls {
    /// The next N requests answer 429.
    pub burst_429: AtomicU32,
    /// The `Retry-After` seconds of those 429s.
    pub retry_after: AtomicU32,
    /// The next N requests answer 500.
    pub fail_5xx: AtomicU32,
    /// The next N requests are delayed by `slow_ms`.
    pub slow: AtomicU32,
    /// The delay of slow requests, ms.
    pub slow_ms: AtomicU64,
    /// After N more tenant requests the swimlane moves (0 = never).
    pub move_after: AtomicU32,
    /// The next N successful `PutUser3` calls create the user but answer 500
    /// (a create whose response is lost).
    pub lose_put: AtomicU32,
}

/// A stored user.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub n: u64,
    pub login_name: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub employee_id: Option<String>,
    pub login_enabled: bool,
}

/// The emulator's whole state.
pub struct State {
    pub base: String,
    pub company_key: String,
    pub tenant: String,
    pub password: String,
    pub admin_login: String,
    /// The swimlane generation: the root is `{base}/sl{generation}/{tenant}/`.
    pub generation: u32,
    pub users: BTreeMap<u64, User>,
    pub next: u64,
    /// `POST /path` of every request.
    pub log: Vec<String>,
    /// The X-Replicon-Application header of every tenant request ("" if absent).
    pub applications: Vec<String>,
    /// (operation, JSON body) of every authenticated tenant request.
    pub bodies: Vec<(String, Value)>,
}

/// A running emulator.
pub struct Emulator {
    pub url: String,
    pub company_key: String,
    pub tenant: String,
    pub admin_login: String,
    pub password: String,
    pub state: Arc<Mutex<State>>,
    pub controls: Arc<Controls>,
}

/// Start an emulator on 127.0.0.1:0 for company `company_key` (tenant slug
/// `tenant`) with one admin (`admin_login`, user 1) whose password is
/// `password`. It runs on its own thread for the rest of the process.
pub fn start(company_key: &str, tenant: &str, admin_login: &str, password: &str) -> Emulator {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let port = std_listener.local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let mut users = BTreeMap::new();
    users.insert(
        1,
        User {
            n: 1,
            login_name: admin_login.to_string(),
            first_name: "System".into(),
            last_name: "Administrator".into(),
            email: Some(format!("{admin_login}@{tenant}.test")),
            employee_id: None,
            login_enabled: true,
        },
    );
    let state = Arc::new(Mutex::new(State {
        base: url.clone(),
        company_key: company_key.to_string(),
        tenant: tenant.to_string(),
        password: password.to_string(),
        admin_login: admin_login.to_string(),
        generation: 1,
        users,
        next: 2,
        log: Vec::new(),
        applications: Vec::new(),
        bodies: Vec::new(),
    }));
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
                        if take(&ct.slow) {
                            let ms = ct.slow_ms.load(Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                        }
                        handle(&st, &ct, method, uri, headers, body)
                    }
                },
            );
            let _ = axum::serve(listener, app).await;
        });
    });
    Emulator {
        url,
        company_key: company_key.to_string(),
        tenant: tenant.to_string(),
        admin_login: admin_login.to_string(),
        password: password.to_string(),
        state,
        controls,
    }
}

fn take(c: &AtomicU32) -> bool {
    c.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl Emulator {
    /// The URI of user number `n`.
    pub fn uri(&self, n: u64) -> String {
        format!("urn:replicon-tenant:{}:user:{n}", self.tenant)
    }

    /// The current application root.
    pub fn root(&self) -> String {
        self.state.lock().unwrap().root()
    }

    /// Every user as stored (the admin included), by number.
    pub fn users(&self) -> Vec<User> {
        self.state.lock().unwrap().users.values().cloned().collect()
    }

    /// A user by login name (case-insensitive).
    pub fn user_by_login(&self, login: &str) -> Option<User> {
        let s = self.state.lock().unwrap();
        s.find_login(login).and_then(|n| s.users.get(&n).cloned())
    }

    /// A user by URI.
    pub fn user(&self, uri: &str) -> Option<User> {
        let s = self.state.lock().unwrap();
        s.number_of(uri).and_then(|n| s.users.get(&n).cloned())
    }

    /// Seed a user directly (bypassing the API); returns its URI.
    pub fn add_user(&self, login: &str, first: &str, last: &str, email: Option<&str>) -> String {
        let mut s = self.state.lock().unwrap();
        let n = s.next;
        s.next += 1;
        s.users.insert(
            n,
            User {
                n,
                login_name: login.into(),
                first_name: first.into(),
                last_name: last.into(),
                email: email.map(str::to_string),
                employee_id: None,
                login_enabled: true,
            },
        );
        s.uri(n)
    }

    /// Make the next `n` requests answer 429 with `Retry-After: retry_after`.
    pub fn burst_429(&self, n: u32, retry_after: u32) {
        self.controls
            .retry_after
            .store(retry_after, Ordering::SeqCst);
        self.controls.burst_429.store(n, Ordering::SeqCst);
    }

    /// Make the next `n` requests answer 500.
    pub fn fail_5xx(&self, n: u32) {
        self.controls.fail_5xx.store(n, Ordering::SeqCst);
    }

    /// Delay the next `n` requests by `ms` milliseconds each.
    pub fn slow(&self, n: u32, ms: u64) {
        self.controls.slow_ms.store(ms, Ordering::SeqCst);
        self.controls.slow.store(n, Ordering::SeqCst);
    }

    /// Move the tenant to a new swimlane after `n` more tenant requests: the
    /// old application root then answers 404 and discovery names the new one.
    pub fn move_swimlane_after(&self, n: u32) {
        self.controls.move_after.store(n, Ordering::SeqCst);
    }

    /// Requests seen so far (`POST /path`).
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// How many discovery calls were made.
    pub fn discoveries(&self) -> usize {
        self.log()
            .iter()
            .filter(|l| l.contains("GetTenantEndpointDetails"))
            .count()
    }

    /// Make the next `n` successful creates answer 500 (the user is created).
    pub fn lose_put_responses(&self, n: u32) {
        self.controls.lose_put.store(n, Ordering::SeqCst);
    }

    /// The bodies sent to one operation (e.g. `"SecurityService1.svc/DisableLogin"`).
    pub fn bodies(&self, operation: &str) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .bodies
            .iter()
            .filter(|(op, _)| op == operation)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// The X-Replicon-Application header of every tenant request.
    pub fn applications(&self) -> Vec<String> {
        self.state.lock().unwrap().applications.clone()
    }
}

impl State {
    fn root(&self) -> String {
        format!("{}/sl{}/{}/", self.base, self.generation, self.tenant)
    }

    fn uri(&self, n: u64) -> String {
        format!("urn:replicon-tenant:{}:user:{n}", self.tenant)
    }

    fn number_of(&self, uri: &str) -> Option<u64> {
        let n = uri
            .strip_prefix(&format!("urn:replicon-tenant:{}:user:", self.tenant))?
            .parse()
            .ok()?;
        self.users.contains_key(&n).then_some(n)
    }

    fn find_login(&self, login: &str) -> Option<u64> {
        self.users
            .values()
            .find(|u| u.login_name.eq_ignore_ascii_case(login.trim()))
            .map(|u| u.n)
    }

    fn reference(&self, u: &User) -> Value {
        json!({"uri": self.uri(u.n), "displayText": display(u), "loginName": u.login_name,
               "slug": u.login_name.to_ascii_lowercase()})
    }

    fn details(&self, u: &User) -> Value {
        json!({"userDetails": {"uri": self.uri(u.n), "displayText": display(u),
               "loginName": u.login_name, "firstName": u.first_name, "lastName": u.last_name,
               "emailAddress": u.email, "employeeId": u.employee_id, "isEnabled": u.login_enabled,
               "slug": u.login_name.to_ascii_lowercase()}})
    }

    /// Resolve a target parameter `{uri|loginName|employeeId}`.
    fn resolve(&self, target: &Value) -> Result<u64, Response> {
        let by = |k: &str| {
            target
                .get(k)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        };
        let found = if let Some(uri) = by("uri") {
            self.number_of(uri)
        } else if let Some(login) = by("loginName") {
            self.find_login(login)
        } else if let Some(id) = by("employeeId") {
            self.users
                .values()
                .find(|u| u.employee_id.as_deref() == Some(id))
                .map(|u| u.n)
        } else {
            return Err(error(
                "InvalidUserTargetParameterError1",
                "Invalid user target",
                "The user target has no uri, loginName or employeeId.".into(),
            ));
        };
        found.ok_or_else(|| {
            error(
                "InvalidUserTargetParameterError1",
                "Invalid user target",
                format!("No user matches the target {target}."),
            )
        })
    }
}

fn display(u: &User) -> String {
    format!("{}, {}", u.last_name, u.first_name)
}

/// A 400 Replicon error object.
fn error(kind: &str, reason: &str, display_text: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(
            json!({"error": {"code": "Sender", "correlationId": uuid::Uuid::new_v4().to_string(),
            "reason": reason, "details": {"displayText": display_text}, "type": kind}}),
        ),
    )
        .into_response()
}

fn validation(text: String) -> Response {
    error("ValidationError1", "Validation failed", text)
}

fn ok(d: Value) -> Response {
    axum::Json(json!({ "d": d })).into_response()
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
    let path = uri.path().to_string();
    s.log.push(format!("{method} {path}"));
    if take(&ct.burst_429) {
        let secs = ct.retry_after.load(Ordering::SeqCst);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [
                ("content-type", "text/plain; charset=utf-8".to_string()),
                ("retry-after", secs.to_string()),
            ],
            "Rate limit exceeded",
        )
            .into_response();
    }
    if take(&ct.fail_5xx) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": {"code": "Receiver", "correlationId": "c-500",
                "reason": "Internal error", "details": {"displayText": "An internal error occurred."},
                "type": "InternalServerError"}})),
        )
            .into_response();
    }
    if method != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, "POST only").into_response();
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return validation(format!("The request body is not valid JSON: {e}")),
    };
    if path == "/DiscoveryService1.svc/GetTenantEndpointDetails" {
        let key = body
            .pointer("/tenant/companyKey")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !key.eq_ignore_ascii_case(&s.company_key) {
            return error(
                "TenantNotFoundError1",
                "Tenant not found",
                format!("No tenant has the company key '{key}'."),
            );
        }
        return ok(json!({"applicationRootUrl": s.root(),
            "tenant": {"companyKey": s.company_key, "slug": s.tenant}}));
    }
    let prefix = format!("/sl{}/{}/services/", s.generation, s.tenant);
    let Some(op) = path.strip_prefix(&prefix).map(str::to_string) else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    s.applications.push(
        headers
            .get("x-replicon-application")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
    );
    if !authenticated(&s, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"code": "Sender", "correlationId": "c-401",
                "reason": "Authentication failed",
                "details": {"displayText": "The company key, login name or password is incorrect."},
                "type": "AuthenticationError1"}})),
        )
            .into_response();
    }
    s.bodies.push((op.clone(), body.clone()));
    let mut response = route(&mut s, &op, &body);
    if op == "ImportService1.svc/PutUser3"
        && response.status() == StatusCode::OK
        && take(&ct.lose_put)
    {
        response = (StatusCode::INTERNAL_SERVER_ERROR, "upstream timeout").into_response();
    }
    if take(&ct.move_after) && ct.move_after.load(Ordering::SeqCst) == 0 {
        s.generation += 1;
    }
    response
}

/// `Authorization: Basic CompanyKey\LoginName:password` of the enabled admin.
fn authenticated(s: &State, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return false;
    };
    let Some((user, password)) = text.split_once(':') else {
        return false;
    };
    let Some((company, login)) = user.split_once('\\') else {
        return false;
    };
    company.eq_ignore_ascii_case(&s.company_key)
        && login.eq_ignore_ascii_case(&s.admin_login)
        && password == s.password
        && s.find_login(login)
            .and_then(|n| s.users.get(&n))
            .is_some_and(|u| u.login_enabled)
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn check_email(email: &Option<String>) -> Result<(), Response> {
    match email {
        Some(e) if !e.is_empty() && !e.contains('@') => {
            Err(validation(format!("'{e}' is not a valid email address.")))
        }
        _ => Ok(()),
    }
}

fn route(s: &mut State, op: &str, body: &Value) -> Response {
    match op {
        "UserService1.svc/GetUser2" => match s.resolve(body.get("user").unwrap_or(&Value::Null)) {
            Ok(n) => ok(s.reference(&s.users[&n])),
            Err(r) => r,
        },
        "ImportService1.svc/BulkGetUsers3" => {
            let targets = body
                .get("users")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut out = Vec::new();
            for t in &targets {
                match s.resolve(t) {
                    Ok(n) => out.push(s.details(&s.users[&n])),
                    Err(r) => return r,
                }
            }
            ok(Value::Array(out))
        }
        "ImportService1.svc/PutUser3" => {
            let Some(user) = body.get("user") else {
                return validation("The parameter 'user' is required.".into());
            };
            let login = user
                .pointer("/target/loginName")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|l| !l.is_empty());
            let Some(login) = login else {
                return validation("The target loginName is required.".into());
            };
            if s.find_login(login).is_some() {
                return validation(format!(
                    "Login name '{login}' is already in use by another user."
                ));
            }
            let first = text(user, "firstname").unwrap_or_default();
            let last = text(user, "lastname").unwrap_or_default();
            if first.is_empty() {
                return validation("First name is required.".into());
            }
            if last.is_empty() {
                return validation("Last name is required.".into());
            }
            let email = text(user, "emailAddress");
            if let Err(r) = check_email(&email) {
                return r;
            }
            let enabled = user
                .pointer("/securityConfiguration/isLoginEnabled")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let n = s.next;
            s.next += 1;
            let u = User {
                n,
                login_name: login.to_string(),
                first_name: first,
                last_name: last,
                email,
                employee_id: text(user, "employeeId"),
                login_enabled: enabled,
            };
            let reference = s.reference(&u);
            s.users.insert(n, u);
            ok(reference)
        }
        "ImportService2.svc/CreateUserOrApplyModifications" => {
            let target = body.get("target").cloned().unwrap_or(Value::Null);
            let n = match s.resolve(&target) {
                Ok(n) => n,
                Err(r) => return r,
            };
            let mods = body
                .get("modifications")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let mut u = s.users[&n].clone();
            for (field, change) in &mods {
                let value = change.get("value").and_then(|v| match v {
                    Value::String(t) => Some(t.trim().to_string()),
                    Value::Number(x) => Some(x.to_string()),
                    _ => None,
                });
                match field.as_str() {
                    "firstName" | "lastName" => {
                        let Some(v) = value.filter(|v| !v.is_empty()) else {
                            let which = if field == "firstName" {
                                "First"
                            } else {
                                "Last"
                            };
                            return validation(format!("{which} name is required."));
                        };
                        if field == "firstName" {
                            u.first_name = v;
                        } else {
                            u.last_name = v;
                        }
                    }
                    "emailAddress" => u.email = value,
                    "employeeId" => u.employee_id = value,
                    "loginName" => {
                        let Some(v) = value.filter(|v| !v.is_empty()) else {
                            return validation("Login name is required.".into());
                        };
                        if s.find_login(&v).is_some_and(|other| other != n) {
                            return validation(format!(
                                "Login name '{v}' is already in use by another user."
                            ));
                        }
                        u.login_name = v;
                    }
                    other => {
                        return validation(format!("Unknown modification '{other}'."));
                    }
                }
            }
            if let Err(r) = check_email(&u.email) {
                return r;
            }
            let reference = s.reference(&u);
            s.users.insert(n, u);
            ok(reference)
        }
        "SecurityService1.svc/DisableLogin" | "SecurityService1.svc/EnableLogin" => {
            let uri = body.get("userUri").and_then(Value::as_str).unwrap_or("");
            match s.resolve(&json!({ "uri": uri })) {
                Ok(n) => {
                    let enable = op.ends_with("EnableLogin");
                    s.users.get_mut(&n).unwrap().login_enabled = enable;
                    ok(Value::Null)
                }
                Err(r) => r,
            }
        }
        "UserService1.svc/Delete" => {
            let uri = body.get("userUri").and_then(Value::as_str).unwrap_or("");
            match s.resolve(&json!({ "uri": uri })) {
                Ok(n) => {
                    s.users.remove(&n);
                    ok(Value::Null)
                }
                Err(r) => r,
            }
        }
        "UserListService1.svc/GetData" => get_data(s, body),
        _ => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

const COLUMNS: &[&str] = &[
    "urn:replicon:user-list-column:user",
    "urn:replicon:user-list-column:login-name",
    "urn:replicon:user-list-column:first-name",
    "urn:replicon:user-list-column:last-name",
    "urn:replicon:user-list-column:email-address",
    "urn:replicon:user-list-column:employee-id",
    "urn:replicon:user-list-column:login-enabled",
];

fn cell(s: &State, u: &User, column: &str) -> Value {
    let t = |v: Option<&str>| json!({ "textValue": v });
    match column {
        "urn:replicon:user-list-column:user" => {
            json!({"uri": s.uri(u.n), "textValue": display(u)})
        }
        "urn:replicon:user-list-column:login-name" => t(Some(&u.login_name)),
        "urn:replicon:user-list-column:first-name" => t(Some(&u.first_name)),
        "urn:replicon:user-list-column:last-name" => t(Some(&u.last_name)),
        "urn:replicon:user-list-column:email-address" => t(u.email.as_deref()),
        "urn:replicon:user-list-column:employee-id" => t(u.employee_id.as_deref()),
        _ => json!({ "boolValue": u.login_enabled }),
    }
}

fn get_data(s: &State, body: &Value) -> Response {
    let page = body.get("page").and_then(Value::as_u64).unwrap_or(1).max(1) as usize;
    let size = (body.get("pagesize").and_then(Value::as_u64).unwrap_or(10) as usize)
        .clamp(1, MAX_PAGE_SIZE);
    let columns: Vec<String> = body
        .get("columnUris")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if let Some(bad) = columns.iter().find(|c| !COLUMNS.contains(&c.as_str())) {
        return validation(format!("Unknown column '{bad}'."));
    }
    let filter = match body.get("filterExpression") {
        None | Some(Value::Null) => None,
        Some(f) => {
            let definition = f
                .pointer("/leftExpression/filterDefinitionUri")
                .and_then(Value::as_str)
                .unwrap_or("");
            let operator = f.get("operatorUri").and_then(Value::as_str).unwrap_or("");
            let value = f
                .pointer("/rightExpression/value/text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if operator != "urn:replicon:filter-operator:equal" {
                return validation(format!("Unsupported filter operator '{operator}'."));
            }
            let field: fn(&User) -> Option<&str> = match definition {
                "urn:replicon:user-list-filter:login-name" => |u| Some(u.login_name.as_str()),
                "urn:replicon:user-list-filter:email-address" => |u| u.email.as_deref(),
                "urn:replicon:user-list-filter:employee-id" => |u| u.employee_id.as_deref(),
                other => return validation(format!("Unknown filter definition '{other}'.")),
            };
            Some((field, value))
        }
    };
    let matching: Vec<&User> = s
        .users
        .values()
        .filter(|u| match &filter {
            None => true,
            Some((field, value)) => field(u).is_some_and(|v| v.eq_ignore_ascii_case(value)),
        })
        .collect();
    let rows: Vec<Value> = matching
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|u| json!({"cells": columns.iter().map(|c| cell(s, u, c)).collect::<Vec<_>>()}))
        .collect();
    let header: Vec<Value> = columns.iter().map(|c| json!({ "uri": c })).collect();
    ok(json!({"header": {"columns": header}, "rows": rows}))
}
