//! An in-memory SCIM 2.0 server emulating two vendors' SCIM APIs, quirks
//! included, for the RFPIO and Zenya connectors' end-to-end tests
//! (facts: `vendor-apis.md`, sections RFPIO and Zenya; seeds 002 and 004),
//! and a plain RFC 7644 profile for the generic SCIM connector.
//!
//! Profiles:
//! - **RFPIO**: base `/rfpserver/scim/v2`; `/Users` only (`/Groups` → 501);
//!   userName must be an email, equals the work email, is unique
//!   (case-insensitive) and immutable (a PATCH changing it, or the email,
//!   → 400 `mutability`); a switch makes every request answer 403 "SCIM is
//!   disabled for this company".
//! - **Zenya**: base `/scim`, lowercase `/users` and `/groups` only; users can
//!   be filtered only by `userName eq "x"` and groups only by
//!   `displayName eq "x"` (any other filter → 400 `invalidFilter`); duplicate
//!   userName → 409 "User with given login_code already exists"; missing
//!   user → 404 "User not found"; PATCH accepts the standard PatchOp and also
//!   lowercase `operations` without `schemas`.
//! - **Generic**: base `/scim/v2`, `/Users` and `/Groups`; filters `eq` on
//!   `userName`, `displayName`, `externalId`, `id`, `emails.value`; unique
//!   userName / group displayName (409); standard PatchOp, answered 200.
//!   A switch makes filters on userName/displayName case-sensitive (some
//!   servers do, against RFC 7643) while uniqueness stays case-insensitive.
//! - **Types, every profile**: the known attributes of the core User and
//!   Group schemas and the enterprise extension must have their RFC 7643
//!   type, in a create and in the result of a PATCH: a string where a
//!   boolean belongs (`"active": "True"`, `{"primary": "True"}`), a number
//!   where a string or reference belongs, or a single value for a
//!   multi-valued attribute is `400 invalidValue` "Attribute 'primary'
//!   expected value type 'boolean' but found type 'string'" (the wording of
//!   scim2-models). A PATCH path filter comparing `primary` with a string
//!   (`roles[primary eq "True"]`) is refused the same way. scim2-server
//!   coerces such values silently, which is why this profile exists.
//! - All: bearer token check (401), a switchable fault answering 429 with
//!   `Retry-After: 1`, `startIndex`/`count` paging in creation order.
//!
//! UNKNOWN facts and the choices made here:
//! - RFPIO paths, filters, paging, PATCH, errors: RFC 7644. Filters: `eq` on
//!   one attribute (`userName` case-insensitive, others exact); `/Users` is
//!   case-sensitive. PATCH must carry the PatchOp schema; it answers 200 with
//!   the resource. Duplicate userName → 409 `uniqueness`. Role/business unit
//!   are stored as sent at creation; a PATCH touching `roles` or the
//!   enterprise `department` → 400 `mutability`.
//! - RFPIO `/Groups` answers 501 (SCIM error "RFPIO does not support groups
//!   provisioning"). The 403 switch is checked after the token (a bad token
//!   is still 401).
//! - Zenya collections are case-sensitive (`/Users` → 404) so the connector is
//!   proven to send lowercase; PATCH answers 204; groups' displayName is unique
//!   (409 "Group with given name already exists"); missing group → 404 "Group
//!   not found"; member ids are not validated; deleting a user removes it from
//!   groups. The "same provider" visibility rule is not emulated (one token =
//!   one provider). The rate limit is only the switch (numbers UNKNOWN).
//! - PATCH on a filtered path with no matching element (e.g.
//!   `emails[type eq "work"].value` on a user without one) adds the element
//!   (lenient) for both profiles.
//! - No page-size cap; `count=0` returns totals only.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};

const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Which vendor to emulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// RFPIO: `/rfpserver/scim/v2/Users`.
    Rfpio,
    /// Zenya: `/scim/users`, `/scim/groups`.
    Zenya,
    /// A plain RFC 7644 service provider (for the generic SCIM connector):
    /// `/scim/v2/Users`, `/scim/v2/Groups`.
    Generic,
}

impl Profile {
    fn base(self) -> &'static str {
        match self {
            Profile::Rfpio => "/rfpserver/scim/v2",
            Profile::Zenya => "/scim",
            Profile::Generic => "/scim/v2",
        }
    }
    fn users(self) -> &'static str {
        match self {
            Profile::Rfpio | Profile::Generic => "/Users",
            Profile::Zenya => "/users",
        }
    }
    fn groups(self) -> &'static str {
        match self {
            Profile::Rfpio | Profile::Generic => "/Groups",
            Profile::Zenya => "/groups",
        }
    }
}

/// The emulator's state.
#[derive(Default)]
pub struct State {
    /// Users in creation order.
    pub users: Vec<Value>,
    /// Groups in creation order.
    pub groups: Vec<Value>,
    /// Every request: `METHOD path?decoded-query`.
    pub requests: Vec<String>,
    /// RFPIO: answer every request 403 "SCIM disabled".
    pub scim_disabled: bool,
    /// Answer every request 429 with `Retry-After: 1`.
    pub rate_limited: bool,
    /// Compare `userName` and `displayName` in filters case-sensitively (a
    /// quirk of some servers, against RFC 7643); uniqueness stays
    /// case-insensitive, so a create differing only in case is a 409 that
    /// no exact lookup explains.
    pub case_sensitive_filter: bool,
    next_id: u64,
}

/// A running emulator; it stops when dropped.
pub struct Emulator {
    /// The SCIM base URL (the tenant URL), e.g. `http://127.0.0.1:1234/scim`.
    pub url: String,
    /// The origin, for grants.
    pub origin: String,
    /// The bearer token it accepts.
    pub token: String,
    /// Its state.
    pub state: Arc<Mutex<State>>,
    _runtime: tokio::runtime::Runtime,
}

impl Emulator {
    /// All users.
    pub fn users(&self) -> Vec<Value> {
        self.state.lock().unwrap().users.clone()
    }
    /// All groups.
    pub fn groups(&self) -> Vec<Value> {
        self.state.lock().unwrap().groups.clone()
    }
    /// Every request seen so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
    /// Switch the RFPIO "SCIM disabled" (403) mode.
    pub fn set_scim_disabled(&self, on: bool) {
        self.state.lock().unwrap().scim_disabled = on;
    }
    /// Switch the case-sensitive filter quirk.
    pub fn set_case_sensitive_filter(&self, on: bool) {
        self.state.lock().unwrap().case_sensitive_filter = on;
    }
    /// Switch the 429 fault.
    pub fn set_rate_limited(&self, on: bool) {
        self.state.lock().unwrap().rate_limited = on;
    }
}

/// Start an emulator on 127.0.0.1:0 (on its own runtime).
pub fn start(profile: Profile, token: &str) -> Emulator {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let state: Arc<Mutex<State>> = Arc::default();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let s2 = state.clone();
    let token2 = token.to_string();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = s2.clone();
            let token = token2.clone();
            async move { handle(profile, &token, &state, method, uri, headers, body) }
        },
    );
    runtime.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let origin = format!("http://127.0.0.1:{port}");
    Emulator {
        url: format!("{origin}{}", profile.base()),
        origin,
        token: token.to_string(),
        state,
        _runtime: runtime,
    }
}

fn error(status: u16, scim_type: Option<&str>, detail: &str) -> Response {
    let mut body =
        json!({"schemas": [ERROR_SCHEMA], "status": status.to_string(), "detail": detail});
    if let Some(t) = scim_type {
        body["scimType"] = json!(t);
    }
    scim(status, body)
}

fn scim(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/scim+json")],
        body.to_string(),
    )
        .into_response()
}

fn query(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn handle(
    profile: Profile,
    token: &str,
    state: &Mutex<State>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = state.lock().unwrap();
    let q = query(&uri);
    let decoded: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    st.requests
        .push(format!("{method} {}?{}", uri.path(), decoded.join("&")));
    if st.rate_limited {
        let mut r = error(429, None, "Too many requests");
        r.headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        return r;
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {token}") {
        return error(401, None, "Invalid or missing bearer token");
    }
    if profile == Profile::Rfpio && st.scim_disabled {
        return error(403, None, "SCIM is disabled for this company");
    }
    let Some(rest) = uri.path().strip_prefix(profile.base()) else {
        return error(404, None, "No such endpoint");
    };
    let (kind, id) = if let Some(r) = rest.strip_prefix(profile.users()) {
        ("user", r)
    } else if let Some(r) = rest.strip_prefix(profile.groups()) {
        if profile == Profile::Rfpio {
            return error(501, None, "RFPIO does not support groups provisioning");
        }
        ("group", r)
    } else {
        return error(404, None, "No such endpoint");
    };
    let id = match id {
        "" | "/" => None,
        s if s.starts_with('/') && !s[1..].contains('/') => Some(s[1..].to_string()),
        _ => return error(404, None, "No such endpoint"),
    };
    let body: Option<Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => return error(400, Some("invalidSyntax"), &format!("bad JSON: {e}")),
        }
    };
    let e = Emu {
        profile,
        st: &mut st,
    };
    match (method.as_str(), id) {
        ("GET", None) => e.list(kind, &q),
        ("POST", None) => e.create(kind, body.unwrap_or(Value::Null)),
        ("GET", Some(id)) => e.get(kind, &id, &q),
        ("PATCH", Some(id)) => e.patch(kind, &id, body.unwrap_or(Value::Null)),
        ("DELETE", Some(id)) => e.delete(kind, &id),
        _ => error(405, None, "Method not allowed"),
    }
}

struct Emu<'a> {
    profile: Profile,
    st: &'a mut State,
}

fn text<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Parse `attr eq "value"` (the only operator either vendor is known to use).
fn parse_filter(filter: &str) -> Option<(String, String)> {
    let (attr, rest) = filter.trim().split_once(' ')?;
    let rest = rest.trim_start();
    let value = rest
        .strip_prefix("eq ")
        .or_else(|| rest.strip_prefix("EQ "))?
        .trim();
    let inner = value.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else {
            out.push(c);
        }
    }
    Some((attr.to_string(), out))
}

/// An attribute type of RFC 7643 §2.3, as far as the emulator checks it.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bool,
    /// A URI: a JSON string.
    Ref,
    /// Sub-attributes; unknown ones are not checked.
    Complex(&'static [(&'static str, Ty)]),
}

/// The sub-attributes of every multi-valued attribute (RFC 7643 §2.4).
const MULTI: &[(&str, Ty)] = &[
    ("value", Ty::Str),
    ("display", Ty::Str),
    ("type", Ty::Str),
    ("primary", Ty::Bool),
    ("$ref", Ty::Ref),
];
const PHOTO: &[(&str, Ty)] = &[
    ("value", Ty::Ref),
    ("display", Ty::Str),
    ("type", Ty::Str),
    ("primary", Ty::Bool),
];
const NAME: &[(&str, Ty)] = &[
    ("formatted", Ty::Str),
    ("familyName", Ty::Str),
    ("givenName", Ty::Str),
    ("middleName", Ty::Str),
    ("honorificPrefix", Ty::Str),
    ("honorificSuffix", Ty::Str),
];
const ADDRESS: &[(&str, Ty)] = &[
    ("formatted", Ty::Str),
    ("streetAddress", Ty::Str),
    ("locality", Ty::Str),
    ("region", Ty::Str),
    ("postalCode", Ty::Str),
    ("country", Ty::Str),
    ("type", Ty::Str),
    ("primary", Ty::Bool),
];
const MANAGER: &[(&str, Ty)] = &[
    ("value", Ty::Str),
    ("$ref", Ty::Ref),
    ("displayName", Ty::Str),
];
/// Core User and Group attributes: (name, type, multi-valued).
const CORE: &[(&str, Ty, bool)] = &[
    ("externalId", Ty::Str, false),
    ("userName", Ty::Str, false),
    ("name", Ty::Complex(NAME), false),
    ("displayName", Ty::Str, false),
    ("nickName", Ty::Str, false),
    ("profileUrl", Ty::Ref, false),
    ("title", Ty::Str, false),
    ("userType", Ty::Str, false),
    ("preferredLanguage", Ty::Str, false),
    ("locale", Ty::Str, false),
    ("timezone", Ty::Str, false),
    ("active", Ty::Bool, false),
    ("password", Ty::Str, false),
    ("emails", Ty::Complex(MULTI), true),
    ("phoneNumbers", Ty::Complex(MULTI), true),
    ("ims", Ty::Complex(MULTI), true),
    ("photos", Ty::Complex(PHOTO), true),
    ("addresses", Ty::Complex(ADDRESS), true),
    ("groups", Ty::Complex(MULTI), true),
    ("entitlements", Ty::Complex(MULTI), true),
    ("roles", Ty::Complex(MULTI), true),
    ("x509Certificates", Ty::Complex(MULTI), true),
    ("members", Ty::Complex(MULTI), true),
];
const ENTERPRISE_ATTRS: &[(&str, Ty)] = &[
    ("employeeNumber", Ty::Str),
    ("costCenter", Ty::Str),
    ("organization", Ty::Str),
    ("division", Ty::Str),
    ("department", Ty::Str),
    ("manager", Ty::Complex(MANAGER)),
];

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "decimal",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "complex",
    }
}

fn mismatch(name: &str, expected: &str, v: &Value) -> String {
    format!(
        "Attribute '{name}' expected value type '{expected}' but found type '{}'",
        json_type(v)
    )
}

fn check_value(name: &str, ty: Ty, v: &Value) -> Result<(), String> {
    match (ty, v) {
        (_, Value::Null) | (Ty::Str | Ty::Ref, Value::String(_)) | (Ty::Bool, Value::Bool(_)) => {
            Ok(())
        }
        (Ty::Complex(subs), Value::Object(map)) => check_object(map, subs),
        (Ty::Str, _) => Err(mismatch(name, "string", v)),
        (Ty::Ref, _) => Err(mismatch(name, "reference", v)),
        (Ty::Bool, _) => Err(mismatch(name, "boolean", v)),
        (Ty::Complex(_), _) => Err(mismatch(name, "complex", v)),
    }
}

fn check_object(map: &Map<String, Value>, attrs: &[(&str, Ty)]) -> Result<(), String> {
    for (key, v) in map {
        if let Some((name, ty)) = attrs.iter().find(|(n, _)| n.eq_ignore_ascii_case(key)) {
            check_value(name, *ty, v)?;
        }
    }
    Ok(())
}

/// Check a resource's known attributes against their RFC 7643 types, as a
/// type-checking service provider does (`400 invalidValue`): a string where
/// a boolean belongs (`"active": "True"`, `{"primary": "True"}`), a number
/// where a string or reference belongs, a single value for a multi-valued
/// attribute. Attributes it does not know are not checked.
fn check_types(resource: &Value) -> Result<(), String> {
    let Some(obj) = resource.as_object() else {
        return Err("the resource is not a JSON object".into());
    };
    for (key, v) in obj {
        if key.eq_ignore_ascii_case(ENTERPRISE) {
            match v.as_object() {
                Some(ext) => check_object(ext, ENTERPRISE_ATTRS)?,
                None => return Err(mismatch(ENTERPRISE, "complex", v)),
            }
            continue;
        }
        let Some((name, ty, multi)) = CORE.iter().find(|(n, ..)| n.eq_ignore_ascii_case(key))
        else {
            continue;
        };
        if *multi {
            match v {
                Value::Null => {}
                Value::Array(items) => {
                    for item in items {
                        check_value(name, *ty, item)?;
                    }
                }
                other => {
                    return Err(format!(
                        "Attribute '{name}' is multi-valued but found type '{}'",
                        json_type(other)
                    ));
                }
            }
        } else {
            check_value(name, *ty, v)?;
        }
    }
    Ok(())
}

fn work_email(user: &Value) -> Option<String> {
    let emails = user.get("emails")?.as_array()?;
    emails
        .iter()
        .find(|e| text(e, "type").eq_ignore_ascii_case("work"))
        .or_else(|| emails.iter().find(|e| e["primary"] == json!(true)))
        .or_else(|| emails.first())
        .map(|e| text(e, "value").to_string())
}

impl Emu<'_> {
    fn store(&mut self, kind: &str) -> &mut Vec<Value> {
        if kind == "user" {
            &mut self.st.users
        } else {
            &mut self.st.groups
        }
    }

    fn not_found(&self, kind: &str, id: &str) -> Response {
        match (self.profile, kind) {
            (Profile::Zenya, "user") => error(404, None, "User not found"),
            (Profile::Zenya, _) => error(404, None, "Group not found"),
            _ => error(404, None, &format!("Resource {id} not found")),
        }
    }

    fn conflict(&self, kind: &str) -> Response {
        match (self.profile, kind) {
            (Profile::Zenya, "user") => error(
                409,
                Some("uniqueness"),
                "User with given login_code already exists",
            ),
            (Profile::Zenya, _) => error(
                409,
                Some("uniqueness"),
                "Group with given name already exists",
            ),
            (Profile::Generic, "user") => error(409, Some("uniqueness"), "userName is taken"),
            (Profile::Generic, _) => error(409, Some("uniqueness"), "displayName is taken"),
            _ => error(
                409,
                Some("uniqueness"),
                "A user with this email already exists",
            ),
        }
    }

    fn key(kind: &str) -> &'static str {
        if kind == "user" {
            "userName"
        } else {
            "displayName"
        }
    }

    fn duplicate(&self, kind: &str, value: &str, except: Option<&str>) -> bool {
        let list = if kind == "user" {
            &self.st.users
        } else {
            &self.st.groups
        };
        list.iter().any(|r| {
            text(r, Self::key(kind)).eq_ignore_ascii_case(value) && Some(text(r, "id")) != except
        })
    }

    fn list(mut self, kind: &str, q: &[(String, String)]) -> Response {
        let param = |name: &str| {
            q.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let mut items: Vec<Value> = self.store(kind).clone();
        if let Some(filter) = param("filter") {
            let Some((attr, value)) = parse_filter(&filter) else {
                return error(400, Some("invalidFilter"), "Unsupported filter");
            };
            let allowed = match (self.profile, kind) {
                (Profile::Zenya, "user") => attr == "userName",
                (Profile::Zenya, _) => attr == "displayName",
                (Profile::Generic, "group") => {
                    ["displayName", "externalId", "id"].contains(&attr.as_str())
                }
                (Profile::Rfpio | Profile::Generic, _) => [
                    "userName",
                    "externalId",
                    "id",
                    "displayName",
                    "emails.value",
                ]
                .contains(&attr.as_str()),
            };
            if !allowed {
                return error(
                    400,
                    Some("invalidFilter"),
                    &format!("Filtering on '{attr}' is not supported"),
                );
            }
            let exact = self.st.case_sensitive_filter;
            items.retain(|r| match attr.as_str() {
                "userName" | "displayName" if exact => text(r, &attr) == value,
                "userName" | "displayName" => text(r, &attr).eq_ignore_ascii_case(&value),
                "emails.value" => r["emails"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|e| text(e, "value").eq_ignore_ascii_case(&value))
                }),
                _ => text(r, &attr) == value,
            });
        }
        let total = items.len();
        let start = param("startIndex")
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let count = param("count")
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        let exclude_members = param("excludedAttributes").is_some_and(|e| e.contains("members"));
        let page: Vec<Value> = items
            .into_iter()
            .skip(start - 1)
            .take(count)
            .map(|mut r| {
                if exclude_members && let Some(o) = r.as_object_mut() {
                    o.remove("members");
                }
                r
            })
            .collect();
        scim(
            200,
            json!({"schemas": [LIST_SCHEMA], "totalResults": total, "startIndex": start,
                   "itemsPerPage": page.len(), "Resources": page}),
        )
    }

    fn find(&mut self, kind: &str, id: &str) -> Option<usize> {
        self.store(kind).iter().position(|r| text(r, "id") == id)
    }

    fn get(mut self, kind: &str, id: &str, q: &[(String, String)]) -> Response {
        match self.find(kind, id) {
            Some(i) => {
                let mut r = self.store(kind)[i].clone();
                if q.iter()
                    .any(|(k, v)| k == "excludedAttributes" && v.contains("members"))
                    && let Some(o) = r.as_object_mut()
                {
                    o.remove("members");
                }
                scim(200, r)
            }
            None => self.not_found(kind, id),
        }
    }

    fn validate_user(&self, user: &mut Value) -> Result<(), Box<Response>> {
        if text(user, "userName").trim().is_empty() {
            return Err(Box::new(error(
                400,
                Some("invalidValue"),
                "userName is required",
            )));
        }
        if self.profile == Profile::Rfpio {
            let name = text(user, "userName").to_string();
            if !name.contains('@') {
                return Err(Box::new(error(
                    400,
                    Some("invalidValue"),
                    "userName must be the user's email address",
                )));
            }
            match work_email(user) {
                None => {
                    user["emails"] = json!([{"value": name, "type": "work", "primary": true}]);
                }
                Some(email) if !email.eq_ignore_ascii_case(&name) => {
                    return Err(Box::new(error(
                        400,
                        Some("invalidValue"),
                        "userName must equal the email address",
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn create(mut self, kind: &str, mut body: Value) -> Response {
        let Some(obj) = body.as_object_mut() else {
            return error(400, Some("invalidSyntax"), "body must be a JSON object");
        };
        obj.remove("id");
        obj.remove("meta");
        if kind == "user" {
            obj.entry("active").or_insert(json!(true));
            if let Err(r) = self.validate_user(&mut body) {
                return *r;
            }
        } else if text(&body, "displayName").trim().is_empty() {
            return error(400, Some("invalidValue"), "displayName is required");
        }
        if let Err(detail) = check_types(&body) {
            return error(400, Some("invalidValue"), &detail);
        }
        if self.duplicate(kind, text(&body, Self::key(kind)), None) {
            return self.conflict(kind);
        }
        self.st.next_id += 1;
        let id = format!("{}-{:04}", &kind[..1], self.st.next_id);
        body["id"] = json!(id);
        let (schema, rt, coll) = if kind == "user" {
            (USER_SCHEMA, "User", self.profile.users())
        } else {
            (GROUP_SCHEMA, "Group", self.profile.groups())
        };
        if body.get("schemas").is_none() {
            body["schemas"] = json!([schema]);
        }
        body["meta"] =
            json!({"resourceType": rt, "location": format!("{}{coll}/{id}", self.profile.base())});
        self.store(kind).push(body.clone());
        scim(201, body)
    }

    fn delete(mut self, kind: &str, id: &str) -> Response {
        let Some(i) = self.find(kind, id) else {
            return self.not_found(kind, id);
        };
        self.store(kind).remove(i);
        if kind == "user" {
            for g in &mut self.st.groups {
                if let Some(m) = g.get_mut("members").and_then(Value::as_array_mut) {
                    m.retain(|x| text(x, "value") != id);
                }
            }
        }
        StatusCode::NO_CONTENT.into_response()
    }

    fn patch(mut self, kind: &str, id: &str, body: Value) -> Response {
        let Some(i) = self.find(kind, id) else {
            return self.not_found(kind, id);
        };
        let has_schema = body["schemas"]
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s == PATCH_SCHEMA));
        let ops = match (self.profile, body.get("Operations"), body.get("operations")) {
            (Profile::Rfpio | Profile::Generic, Some(ops), _) if has_schema => ops.clone(),
            (Profile::Zenya, Some(ops), _) | (Profile::Zenya, None, Some(ops)) => ops.clone(),
            _ => {
                return error(
                    400,
                    Some("invalidSyntax"),
                    "expected a PatchOp with schemas and Operations",
                );
            }
        };
        let Some(ops) = ops.as_array() else {
            return error(400, Some("invalidSyntax"), "Operations must be an array");
        };
        let before = self.store(kind)[i].clone();
        let mut res = before.clone();
        for op in ops {
            let name = text(op, "op").to_ascii_lowercase();
            let path = op.get("path").and_then(Value::as_str);
            if let Err(detail) = apply(&mut res, &name, path, op.get("value").cloned()) {
                return error(400, Some("invalidValue"), &detail);
            }
        }
        if let Err(detail) = check_types(&res) {
            return error(400, Some("invalidValue"), &detail);
        }
        if kind == "user" {
            let (old, new) = (text(&before, "userName"), text(&res, "userName"));
            if self.profile == Profile::Rfpio {
                if !old.eq_ignore_ascii_case(new)
                    || work_email(&res).is_some_and(|e| !e.eq_ignore_ascii_case(new))
                {
                    return error(
                        400,
                        Some("mutability"),
                        "userName (the email address) cannot be changed",
                    );
                }
                if res.get("roles") != before.get("roles")
                    || res[ENTERPRISE].get("department") != before[ENTERPRISE].get("department")
                {
                    return error(
                        400,
                        Some("mutability"),
                        "role and business unit are fixed at creation",
                    );
                }
            }
            if new.trim().is_empty() {
                return error(400, Some("invalidValue"), "userName is required");
            }
        }
        let key = text(&res, Self::key(kind)).to_string();
        if self.duplicate(kind, &key, Some(id)) {
            return self.conflict(kind);
        }
        self.store(kind)[i] = res.clone();
        match self.profile {
            Profile::Rfpio | Profile::Generic => scim(200, res),
            Profile::Zenya => StatusCode::NO_CONTENT.into_response(),
        }
    }
}

/// `attr[key eq "v"].sub` → (attr, key, v, sub); the literal may also be
/// `true`, `false` or a number (RFC 7644 §3.4.2.2), kept typed.
fn split_filtered(path: &str) -> Option<(String, String, Value, Option<String>)> {
    let open = path.find('[')?;
    let close = path.rfind(']')?;
    let attr = path[..open].to_string();
    let inner = &path[open + 1..close];
    let (key, value) = match parse_filter(inner) {
        Some((key, value)) => (key, Value::String(value)),
        None => {
            let (key, rest) = inner.trim().split_once(' ')?;
            let literal = rest.trim_start().strip_prefix("eq ")?.trim();
            let value: Value = serde_json::from_str(literal).ok()?;
            if !(value.is_boolean() || value.is_number()) {
                return None;
            }
            (key.to_string(), value)
        }
    };
    let sub = path[close + 1..].strip_prefix('.').map(str::to_string);
    Some((attr, key, value, sub))
}

fn apply(
    res: &mut Value,
    op: &str,
    path: Option<&str>,
    value: Option<Value>,
) -> Result<(), String> {
    let obj = res.as_object_mut().ok_or("resource is not an object")?;
    match (op, path) {
        ("add" | "replace", None) => {
            let Some(Value::Object(v)) = value else {
                return Err("a PATCH without path needs an object value".into());
            };
            for (k, v) in v {
                if op == "add" && k == "members" {
                    add_members(obj, &v);
                } else if k.starts_with("urn:") && v.is_object() {
                    let target = obj.entry(k).or_insert_with(|| json!({}));
                    for (ik, iv) in v.as_object().into_iter().flatten() {
                        target[ik.as_str()] = iv.clone();
                    }
                } else {
                    obj.insert(k, v);
                }
            }
            Ok(())
        }
        (_, None) => Err(format!("op '{op}' needs a path")),
        (_, Some(p)) if p.contains('[') => {
            let (attr, key, want, sub) =
                split_filtered(p).ok_or_else(|| format!("bad path {p}"))?;
            if key.eq_ignore_ascii_case("primary") && !want.is_boolean() {
                return Err(format!(
                    "invalid filter in path '{p}': attribute 'primary' is boolean, \
                     compare it with true or false"
                ));
            }
            let matches = |e: &Value| {
                e.get(&key).is_some_and(|x| match (x, &want) {
                    (Value::String(s), Value::String(w)) if key == "value" => s == w,
                    (Value::String(s), Value::String(w)) => s.eq_ignore_ascii_case(w),
                    (a, b) => a == b,
                })
            };
            let arr = obj.entry(attr.clone()).or_insert_with(|| json!([]));
            let Some(arr) = arr.as_array_mut() else {
                return Err(format!("{attr} is not multi-valued"));
            };
            match (op, sub) {
                ("remove", None) => arr.retain(|e| !matches(e)),
                ("remove", Some(sub)) => {
                    for e in arr.iter_mut().filter(|e| matches(e)) {
                        if let Some(o) = e.as_object_mut() {
                            o.remove(&sub);
                        }
                    }
                    arr.retain(|e| e.as_object().is_some_and(|o| o.keys().any(|k| k != &key)));
                }
                (_, Some(sub)) => {
                    let value = value.ok_or("missing value")?;
                    if let Some(e) = arr.iter_mut().find(|e| matches(e)) {
                        e[sub.as_str()] = value;
                    } else {
                        let mut e = Map::new();
                        e.insert(key.clone(), want.clone());
                        e.insert(sub, value);
                        arr.push(Value::Object(e));
                    }
                }
                (_, None) => {
                    let value = value.ok_or("missing value")?;
                    for e in arr.iter_mut().filter(|e| matches(e)) {
                        for (k, v) in value.as_object().into_iter().flatten() {
                            e[k.as_str()] = v.clone();
                        }
                    }
                }
            }
            if arr.is_empty() {
                obj.remove(&attr);
            }
            Ok(())
        }
        (_, Some(p)) => {
            // urn:...:attr, a.b or a
            let (container, leaf): (Option<String>, String) = if p.starts_with("urn:") {
                let (urn, a) = p.rsplit_once(':').ok_or("bad urn path")?;
                (Some(urn.to_string()), a.to_string())
            } else if let Some((a, b)) = p.split_once('.') {
                (Some(a.to_string()), b.to_string())
            } else {
                (None, p.to_string())
            };
            let target = match &container {
                Some(c) => {
                    let t = obj.entry(c.clone()).or_insert_with(|| json!({}));
                    t.as_object_mut().ok_or("path container is not an object")?
                }
                None => &mut *obj,
            };
            match op {
                "remove" if leaf == "members" && value.is_some() => {
                    let ids: Vec<String> = value
                        .iter()
                        .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                        .map(|m| text(&m, "value").to_string())
                        .collect();
                    if let Some(m) = target.get_mut("members").and_then(Value::as_array_mut) {
                        m.retain(|x| !ids.iter().any(|id| id == text(x, "value")));
                    }
                }
                "remove" => {
                    target.remove(&leaf);
                }
                "add" if leaf == "members" => add_members(target, &value.unwrap_or(json!([]))),
                "add" | "replace" => {
                    target.insert(leaf, value.ok_or("missing value")?);
                }
                other => return Err(format!("unknown op '{other}'")),
            }
            if let Some(c) = container
                && obj
                    .get(&c)
                    .and_then(Value::as_object)
                    .is_some_and(Map::is_empty)
            {
                obj.remove(&c);
            }
            Ok(())
        }
    }
}

fn add_members(obj: &mut Map<String, Value>, value: &Value) {
    let members = obj.entry("members").or_insert_with(|| json!([]));
    if !members.is_array() {
        *members = json!([]);
    }
    let arr = members.as_array_mut().unwrap();
    for m in value.as_array().into_iter().flatten() {
        let id = text(m, "value");
        if !arr.iter().any(|x| text(x, "value") == id) {
            arr.push(json!({"value": id}));
        }
    }
}
