//! Pure parts of the connector: settings, request building, JSON bodies,
//! response parsing and error mapping. Nothing here calls the host, so it is
//! unit-tested natively (`cargo test -p provisio-plugin-zendesk`).

use provisio_sdk::errors;
use provisio_sdk::http::{self, Auth, RequestBuilder, Response, Template, secret};
use provisio_sdk::prelude::*;
use serde_json::{Map, Value as Json, json};

use crate::manifest::{ADMIN_EMAIL, BASE_URL, SUBDOMAIN, TOKEN_SECRET};

/// Zendesk's largest page (cursor pages and search pages).
pub const MAX_PAGE_SIZE: u32 = 100;
/// The most search pages followed for one lookup.
pub const MAX_SEARCH_PAGES: usize = 20;

/// The user fields the connector writes, by their Zendesk names.
pub const USER_FIELDS: &[&str] = &[
    "name",
    "email",
    "role",
    "external_id",
    "phone",
    "shared_phone_number",
    "locale",
    "locale_id",
    "time_zone",
    "iana_time_zone",
    "alias",
    "details",
    "notes",
    "signature",
    "organization_id",
    "default_group_id",
    "custom_role_id",
    "tags",
    "verified",
    "suspended",
    "moderator",
    "only_private_comments",
    "restricted_agent",
    "ticket_restriction",
    "remote_photo_url",
];

/// The group fields the connector writes.
pub const GROUP_FIELDS: &[&str] = &["name", "description", "is_public"];

/// Fields read back in addition to the writable ones.
const READ_ONLY_USER_FIELDS: &[&str] = &["url", "created_at", "updated_at", "last_login_at"];
const READ_ONLY_GROUP_FIELDS: &[&str] = &["url", "default", "deleted", "created_at", "updated_at"];

/// The connection's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The API origin without a trailing `/`, e.g. `https://acme.zendesk.com`.
    pub base: String,
    /// The admin's email (the user part of `{email}/token`).
    pub admin_email: String,
}

impl Settings {
    /// Read the settings through a lookup (`config::get` in the plugin).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConnectorError> {
        let subdomain = provisio_sdk::config::require_value(SUBDOMAIN, get(SUBDOMAIN))?;
        let admin_email = provisio_sdk::config::require_value(ADMIN_EMAIL, get(ADMIN_EMAIL))?;
        let base = match get(BASE_URL).filter(|b| !b.trim().is_empty()) {
            Some(b) => {
                let b = b.trim().trim_end_matches('/').to_string();
                if !(b.starts_with("https://") || b.starts_with("http://")) {
                    return Err(ConnectorError::invalid_input(format!(
                        "the setting `{BASE_URL}` must be an http(s) URL, got '{b}'"
                    )));
                }
                b
            }
            None => {
                let s = subdomain.trim();
                if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    return Err(ConnectorError::invalid_input(format!(
                        "the setting `{SUBDOMAIN}` must be a bare subdomain such as `acme`, got '{s}'"
                    )));
                }
                format!("https://{s}.zendesk.com")
            }
        };
        Ok(Settings {
            base,
            admin_email: admin_email.trim().to_string(),
        })
    }

    /// The URL of an API path, e.g. `url("/users/me.json")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v2{path}", self.base)
    }

    /// HTTP Basic `{admin_email}/token:{api_token}`; the host fills in the token.
    pub fn auth(&self) -> Auth {
        Auth::basic(
            Template::text(self.admin_email.clone()) + "/token",
            secret(TOKEN_SECRET),
        )
    }

    fn get(&self, path: &str) -> RequestBuilder {
        http::get(self.url(path)).auth(self.auth())
    }
}

/// Check that an id is a Zendesk numeric id (so it is safe in a path).
pub fn numeric_id(id: &str) -> Result<&str, ConnectorError> {
    let id = id.trim();
    if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(ConnectorError::invalid_input(format!(
            "'{id}' is not a Zendesk id (a number)"
        )))
    }
}

fn id_number(id: &str) -> Result<Json, ConnectorError> {
    let id = numeric_id(id)?;
    id.parse::<u64>()
        .map(Json::from)
        .map_err(|_| ConnectorError::invalid_input(format!("'{id}' is not a Zendesk id")))
}

fn collection(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::User => "users",
        ObjectKind::Group => "groups",
    }
}

fn singular(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::User => "user",
        ObjectKind::Group => "group",
    }
}

// ---------------------------------------------------------------- requests

/// `GET /api/v2/users/me.json`.
pub fn me(s: &Settings) -> RequestBuilder {
    s.get("/users/me.json")
}

/// `GET /api/v2/users/search.json?query=email:x`.
pub fn search_email(s: &Settings, email: &str) -> RequestBuilder {
    s.get("/users/search.json")
        .query("query", format!("email:{}", email.trim()))
}

/// `GET /api/v2/users/search.json?external_id=x`.
pub fn search_external_id(s: &Settings, external_id: &str) -> RequestBuilder {
    s.get("/users/search.json")
        .query("external_id", external_id.trim())
}

/// A follow-up search page (`next_page` is an absolute URL from Zendesk).
pub fn next_page(s: &Settings, url: &str) -> RequestBuilder {
    http::get(url).auth(s.auth())
}

/// `GET /api/v2/{users|groups}/{id}.json`.
pub fn get(s: &Settings, kind: ObjectKind, id: &str) -> Result<RequestBuilder, ConnectorError> {
    Ok(s.get(&format!("/{}/{}.json", collection(kind), numeric_id(id)?)))
}

/// `GET /api/v2/users/show_many.json?ids=1,2,3` (at most 100 ids).
pub fn show_many(s: &Settings, ids: &[String]) -> Result<RequestBuilder, ConnectorError> {
    let ids = ids
        .iter()
        .map(|i| numeric_id(i).map(str::to_string))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(s.get("/users/show_many.json").query("ids", ids.join(",")))
}

/// `POST /api/v2/{users|groups}.json` with `{"user": {...}}` / `{"group": {...}}`.
pub fn create(s: &Settings, kind: ObjectKind, body: &Json) -> RequestBuilder {
    http::post(s.url(&format!("/{}.json", collection(kind))))
        .auth(s.auth())
        .json(&json!({ singular(kind): body }))
}

/// `PUT /api/v2/{users|groups}/{id}.json` with a partial object.
pub fn update(
    s: &Settings,
    kind: ObjectKind,
    id: &str,
    body: &Json,
) -> Result<RequestBuilder, ConnectorError> {
    Ok(
        http::put(s.url(&format!("/{}/{}.json", collection(kind), numeric_id(id)?)))
            .auth(s.auth())
            .json(&json!({ singular(kind): body })),
    )
}

/// `PUT /api/v2/users/{id}.json` `{"user":{"suspended":…}}`: Zendesk's disable.
pub fn set_suspended(
    s: &Settings,
    id: &str,
    suspended: bool,
) -> Result<RequestBuilder, ConnectorError> {
    update(s, ObjectKind::User, id, &json!({ "suspended": suspended }))
}

/// `DELETE /api/v2/{users|groups}/{id}.json` (users: soft delete, 200 with the user; groups: 204).
pub fn delete(s: &Settings, kind: ObjectKind, id: &str) -> Result<RequestBuilder, ConnectorError> {
    Ok(
        http::delete(s.url(&format!("/{}/{}.json", collection(kind), numeric_id(id)?)))
            .auth(s.auth()),
    )
}

/// `GET /api/v2/{users|groups}.json?page[size]=n[&page[after]=cursor]`.
pub fn list(
    s: &Settings,
    kind: ObjectKind,
    cursor: Option<&str>,
    page_size: u32,
) -> RequestBuilder {
    let size = page_size.clamp(1, MAX_PAGE_SIZE);
    let mut r = s
        .get(&format!("/{}.json", collection(kind)))
        .query("page[size]", size.to_string());
    if let Some(c) = cursor.filter(|c| !c.is_empty()) {
        r = r.query("page[after]", c);
    }
    r
}

/// `GET /api/v2/groups/{id}/memberships.json?page[size]=100[&page[after]=cursor]`.
pub fn group_memberships(
    s: &Settings,
    group_id: &str,
    cursor: Option<&str>,
) -> Result<RequestBuilder, ConnectorError> {
    let mut r = s
        .get(&format!(
            "/groups/{}/memberships.json",
            numeric_id(group_id)?
        ))
        .query("page[size]", MAX_PAGE_SIZE.to_string());
    if let Some(c) = cursor.filter(|c| !c.is_empty()) {
        r = r.query("page[after]", c);
    }
    Ok(r)
}

/// `POST /api/v2/group_memberships.json` `{"group_membership":{"group_id","user_id"}}`.
pub fn add_membership(
    s: &Settings,
    group_id: &str,
    user_id: &str,
) -> Result<RequestBuilder, ConnectorError> {
    let body = json!({"group_membership": {"group_id": id_number(group_id)?, "user_id": id_number(user_id)?}});
    Ok(http::post(s.url("/group_memberships.json"))
        .auth(s.auth())
        .json(&body))
}

/// `DELETE /api/v2/group_memberships/{membership_id}.json`.
pub fn delete_membership(
    s: &Settings,
    membership_id: &str,
) -> Result<RequestBuilder, ConnectorError> {
    Ok(http::delete(s.url(&format!(
        "/group_memberships/{}.json",
        numeric_id(membership_id)?
    )))
    .auth(s.auth()))
}

// ------------------------------------------------------------------ bodies

fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => Json::from(*i),
        Value::Number(n) => Json::from(*n),
        Value::Text(t) => Json::String(t.clone()),
        Value::TextList(l) => Json::Array(l.iter().cloned().map(Json::String).collect()),
    }
}

fn bool_of(name: &str, value: &Value) -> Result<Option<bool>, ConnectorError> {
    match value {
        Value::Null => Ok(None),
        Value::Boolean(b) => Ok(Some(*b)),
        Value::Text(t) if t.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Value::Text(t) if t.eq_ignore_ascii_case("false") => Ok(Some(false)),
        other => Err(ConnectorError::invalid_input(format!(
            "`{name}` must be a boolean, got {other:?}"
        ))),
    }
}

/// A Zendesk user object (the inside of `{"user": …}`) from flat attributes.
///
/// Names are Zendesk's user fields ([`USER_FIELDS`]); `user_fields.<key>`
/// sets a custom user field; `active` (Provisio's lifecycle attribute) becomes
/// `suspended = !active`. On create a missing `name` is filled from `email`
/// (Zendesk requires a name).
pub fn user_body(attributes: &[Attribute], creating: bool) -> Result<Json, ConnectorError> {
    let mut body = Map::new();
    let mut custom = Map::new();
    for a in attributes {
        let name = a.name.as_str();
        if name == "active" {
            if let Some(active) = bool_of(name, &a.value)? {
                body.insert("suspended".into(), Json::Bool(!active));
            }
        } else if let Some(key) = name.strip_prefix("user_fields.") {
            if key.is_empty() {
                return Err(ConnectorError::invalid_input(
                    "`user_fields.` needs a field key",
                ));
            }
            custom.insert(key.to_string(), to_json(&a.value));
        } else if USER_FIELDS.contains(&name) {
            let value = match name {
                "suspended"
                | "verified"
                | "moderator"
                | "only_private_comments"
                | "restricted_agent" => bool_of(name, &a.value)?.map_or(Json::Null, Json::Bool),
                "organization_id" | "default_group_id" | "custom_role_id" | "locale_id" => {
                    match &a.value {
                        Value::Text(t) => id_number(t)?,
                        other => to_json(other),
                    }
                }
                "role" => match &a.value {
                    Value::Text(t) => Json::String(normalise_role(t)?),
                    other => to_json(other),
                },
                _ => to_json(&a.value),
            };
            body.insert(name.to_string(), value);
        } else {
            return Err(ConnectorError::invalid_input(format!(
                "Zendesk users have no attribute `{name}`; use one of {} or user_fields.<key>",
                USER_FIELDS.join(", ")
            )));
        }
    }
    if !custom.is_empty() {
        body.insert("user_fields".into(), Json::Object(custom));
    }
    if creating {
        let has_name = body
            .get("name")
            .and_then(Json::as_str)
            .is_some_and(|n| !n.trim().is_empty());
        if !has_name {
            match body.get("email").and_then(Json::as_str) {
                Some(email) if !email.trim().is_empty() => {
                    let email = email.to_string();
                    body.insert("name".into(), Json::String(email));
                }
                _ => {
                    return Err(ConnectorError::invalid_input(
                        "a Zendesk user needs a `name` (or an `email` to use as the name)",
                    ));
                }
            }
        }
    }
    Ok(Json::Object(body))
}

/// `end-user`, `agent` or `admin` (case-insensitive, `End-user`/`end user` accepted).
pub fn normalise_role(role: &str) -> Result<String, ConnectorError> {
    let r = role.trim().to_ascii_lowercase().replace([' ', '_'], "-");
    match r.as_str() {
        "end-user" | "enduser" | "user" => Ok("end-user".into()),
        "agent" => Ok("agent".into()),
        "admin" | "administrator" => Ok("admin".into()),
        _ => Err(ConnectorError::invalid_input(format!(
            "'{role}' is not a Zendesk role (end-user, agent or admin)"
        ))),
    }
}

/// A Zendesk group object from flat attributes.
pub fn group_body(attributes: &[Attribute], creating: bool) -> Result<Json, ConnectorError> {
    let mut body = Map::new();
    for a in attributes {
        match a.name.as_str() {
            "members" => {
                return Err(ConnectorError::invalid_input(
                    "Zendesk group members are managed with add-members/remove-members",
                ));
            }
            "is_public" => {
                if let Some(b) = bool_of("is_public", &a.value)? {
                    body.insert("is_public".into(), Json::Bool(b));
                }
            }
            n if GROUP_FIELDS.contains(&n) => {
                body.insert(n.to_string(), to_json(&a.value));
            }
            n => {
                return Err(ConnectorError::invalid_input(format!(
                    "Zendesk groups have no attribute `{n}`; use one of {}",
                    GROUP_FIELDS.join(", ")
                )));
            }
        }
    }
    if creating
        && body
            .get("name")
            .and_then(Json::as_str)
            .is_none_or(|n| n.trim().is_empty())
    {
        return Err(ConnectorError::invalid_input(
            "a Zendesk group needs a `name`",
        ));
    }
    Ok(Json::Object(body))
}

// --------------------------------------------------------------- responses

fn from_json(value: &Json) -> Option<Value> {
    match value {
        Json::Null => None,
        Json::Bool(b) => Some(Value::Boolean(*b)),
        Json::Number(n) => n
            .as_i64()
            .map(Value::Integer)
            .or_else(|| n.as_f64().map(Value::Number)),
        Json::String(s) => Some(Value::Text(s.clone())),
        Json::Array(items) => Some(Value::TextList(
            items
                .iter()
                .map(|i| match i {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        )),
        Json::Object(_) => None,
    }
}

fn id_text(object: &Json) -> Option<String> {
    match object.get("id") {
        Some(Json::Number(n)) => Some(n.to_string()),
        Some(Json::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// A user object (the inside of `{"user": …}`) as a [`TargetObject`]. Adds
/// `active` = not deleted and not suspended.
pub fn user_object(user: &Json) -> Result<TargetObject, ConnectorError> {
    let id = id_text(user)
        .ok_or_else(|| ConnectorError::other("Zendesk returned a user without an id"))?;
    let mut attributes = Vec::new();
    for field in USER_FIELDS.iter().chain(READ_ONLY_USER_FIELDS) {
        if let Some(v) = user.get(*field).and_then(from_json) {
            attributes.push(Attribute::new(*field, v));
        }
    }
    if let Some(Json::Object(custom)) = user.get("user_fields") {
        for (k, v) in custom {
            if let Some(v) = from_json(v) {
                attributes.push(Attribute::new(format!("user_fields.{k}"), v));
            }
        }
    }
    let not_deleted = user.get("active").and_then(Json::as_bool).unwrap_or(true);
    let suspended = user
        .get("suspended")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    attributes.push(Attribute::new("deleted", !not_deleted));
    attributes.push(Attribute::new("active", not_deleted && !suspended));
    Ok(TargetObject { id, attributes })
}

/// A group object as a [`TargetObject`].
pub fn group_object(group: &Json) -> Result<TargetObject, ConnectorError> {
    let id = id_text(group)
        .ok_or_else(|| ConnectorError::other("Zendesk returned a group without an id"))?;
    let mut attributes = Vec::new();
    for field in GROUP_FIELDS.iter().chain(READ_ONLY_GROUP_FIELDS) {
        if let Some(v) = group.get(*field).and_then(from_json) {
            attributes.push(Attribute::new(*field, v));
        }
    }
    Ok(TargetObject { id, attributes })
}

/// An object of either kind.
pub fn object(kind: ObjectKind, value: &Json) -> Result<TargetObject, ConnectorError> {
    match kind {
        ObjectKind::User => user_object(value),
        ObjectKind::Group => group_object(value),
    }
}

/// Parse a successful response's JSON body, or map the error.
pub fn body(response: Response) -> Result<Json, ConnectorError> {
    let response = check(response)?;
    response.json()
}

/// The single object of `{"user": …}` / `{"group": …}`.
pub fn single(kind: ObjectKind, response: Response) -> Result<TargetObject, ConnectorError> {
    let body = body(response)?;
    let inner = body.get(singular(kind)).ok_or_else(|| {
        ConnectorError::other(format!("Zendesk's answer has no `{}`", singular(kind)))
    })?;
    object(kind, inner)
}

/// The array `key` of a body (absent → empty).
pub fn array<'a>(body: &'a Json, key: &str) -> &'a [Json] {
    body.get(key)
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The next cursor of a cursor-paged list: `meta.after_cursor` while `meta.has_more`.
pub fn after_cursor(body: &Json) -> Option<String> {
    let meta = body.get("meta")?;
    if meta.get("has_more").and_then(Json::as_bool) != Some(true) {
        return None;
    }
    meta.get("after_cursor")
        .and_then(Json::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

/// A page of objects from a cursor-paged list response.
pub fn page(kind: ObjectKind, response: Response) -> Result<Page, ConnectorError> {
    let body = body(response)?;
    let objects = array(&body, collection(kind))
        .iter()
        .map(|o| object(kind, o))
        .collect::<Result<Vec<_>, _>>()?;
    let total = body.get("count").and_then(Json::as_u64);
    Ok(Page {
        objects,
        next_cursor: after_cursor(&body),
        total,
    })
}

/// The outcome of `GET /users/me`: a description, or why the credentials
/// cannot provision. Zendesk answers bad credentials with **200 and the
/// anonymous user** (no `id`), so the status alone proves nothing.
pub fn test_connection_result(s: &Settings, response: Response) -> Result<String, ConnectorError> {
    let body = body(response)?;
    let user = body.get("user").cloned().unwrap_or(Json::Null);
    let Some(id) = id_text(&user) else {
        let name = user.get("name").and_then(Json::as_str).unwrap_or("?");
        return Err(ConnectorError::Unauthorized(format!(
            "Zendesk answered as '{name}' (no user id): the admin email '{}' or the API token \
             was not accepted (check both, and that token access is enabled in the Admin Center)",
            s.admin_email
        )));
    };
    let role = user.get("role").and_then(Json::as_str).unwrap_or("unknown");
    let email = user.get("email").and_then(Json::as_str).unwrap_or("");
    if role != "admin" {
        return Err(ConnectorError::Forbidden(format!(
            "signed in to {} as {email} (user {id}) with role '{role}': provisioning needs a \
             Zendesk admin",
            s.base
        )));
    }
    Ok(format!(
        "signed in to {} as {email} (user {id}, admin)",
        s.base
    ))
}

// ------------------------------------------------------------------ errors

/// Whether a 422 body reports a `DuplicateValue`.
fn duplicate_detail(body: &Json) -> Option<String> {
    let details = body.get("details")?.as_object()?;
    details
        .values()
        .flat_map(|v| v.as_array().into_iter().flatten())
        .find_map(|d| {
            (d.get("error").and_then(Json::as_str) == Some("DuplicateValue")).then(|| {
                d.get("description")
                    .and_then(Json::as_str)
                    .unwrap_or("duplicate value")
                    .to_string()
            })
        })
}

fn details_text(body: &Json) -> Option<String> {
    let details = body.get("details")?.as_object()?;
    let parts: Vec<String> = details
        .values()
        .flat_map(|v| v.as_array().into_iter().flatten())
        .filter_map(|d| {
            d.get("description")
                .and_then(Json::as_str)
                .map(str::to_string)
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Map a non-2xx Zendesk response: 422 `DuplicateValue` → `Conflict`,
/// other 422 → `InvalidInput` with the field messages, 404 `RecordNotFound`
/// → `NotFound`, 429 → `RateLimited` with `Retry-After` (body may be plain
/// text), 401 → `Unauthorized`, 403 → `Forbidden`, 5xx → `Transient`.
pub fn error(response: &Response) -> ConnectorError {
    if response.status == 422 {
        let parsed: Option<Json> = serde_json::from_slice(&response.body).ok();
        if let Some(body) = parsed {
            if let Some(detail) = duplicate_detail(&body) {
                return ConnectorError::Conflict(Conflict {
                    message: format!("HTTP 422 DuplicateValue: {detail}"),
                    existing_id: None,
                });
            }
            let head = body
                .get("description")
                .or_else(|| body.get("error"))
                .and_then(Json::as_str)
                .unwrap_or("Unprocessable Entity");
            let text = match details_text(&body) {
                Some(d) => format!("HTTP 422 {head}: {d}"),
                None => format!("HTTP 422 {head}"),
            };
            return ConnectorError::InvalidInput(errors::truncate(&text, errors::MAX_MESSAGE_LEN));
        }
    }
    let mapped = errors::from_response(response);
    // Keep Zendesk's error code next to its description, e.g.
    // `HTTP 404 Not Found: Not found (RecordNotFound)`.
    let parsed: Option<Json> = serde_json::from_slice(&response.body).ok();
    let code = parsed
        .as_ref()
        .and_then(|b| b.get("error"))
        .and_then(Json::as_str);
    match code {
        Some(code) if !mapped.message().contains(code) => {
            let message = format!("{} ({code})", mapped.message());
            with_message(mapped, message)
        }
        _ => mapped,
    }
}

fn with_message(err: ConnectorError, message: String) -> ConnectorError {
    match err {
        ConnectorError::NotFound(_) => ConnectorError::NotFound(message),
        ConnectorError::Unauthorized(_) => ConnectorError::Unauthorized(message),
        ConnectorError::Forbidden(_) => ConnectorError::Forbidden(message),
        ConnectorError::InvalidInput(_) => ConnectorError::InvalidInput(message),
        ConnectorError::Transient(_) => ConnectorError::Transient(message),
        ConnectorError::Unsupported(_) => ConnectorError::Unsupported(message),
        ConnectorError::Denied(_) => ConnectorError::Denied(message),
        ConnectorError::Other(_) => ConnectorError::Other(message),
        ConnectorError::Conflict(c) => ConnectorError::Conflict(Conflict { message, ..c }),
        ConnectorError::RateLimited(r) => ConnectorError::RateLimited(RateLimit { message, ..r }),
    }
}

/// `Ok` for 2xx, otherwise the mapped [`error`].
pub fn check(response: Response) -> Result<Response, ConnectorError> {
    if response.is_success() {
        Ok(response)
    } else {
        Err(error(&response))
    }
}

/// Add the existing object's id to a conflict, when exactly one was found.
pub fn conflict_with(err: ConnectorError, existing: &[TargetObject]) -> ConnectorError {
    match (err, existing) {
        (ConnectorError::Conflict(mut c), [one]) => {
            c.existing_id = Some(one.id.clone());
            c.message = format!("{} (existing id {})", c.message, one.id);
            ConnectorError::Conflict(c)
        }
        (err, _) => err,
    }
}

/// Emails compare case-insensitively.
pub fn same_email(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn settings() -> Settings {
        Settings::from_lookup(|n| match n {
            "subdomain" => Some("acme".into()),
            "admin_email" => Some("admin@acme.test".into()),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn base_url_defaults_to_the_subdomain() {
        let s = settings();
        assert_eq!(s.base, "https://acme.zendesk.com");
        assert_eq!(
            s.url("/users/me.json"),
            "https://acme.zendesk.com/api/v2/users/me.json"
        );
        let t = Settings::from_lookup(|n| match n {
            "subdomain" => Some("acme".into()),
            "admin_email" => Some("a@b".into()),
            "base_url" => Some("http://127.0.0.1:9/".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(t.base, "http://127.0.0.1:9");
        assert!(Settings::from_lookup(|n| (n == "subdomain").then(|| "x".to_string())).is_err());
    }

    #[test]
    fn auth_is_email_slash_token_and_the_token_stays_a_reference() {
        let s = settings();
        let r = me(&s);
        match r.auth_ref() {
            Some(Auth::Basic { username, password }) => {
                assert_eq!(
                    username.as_literal().as_deref(),
                    Some("admin@acme.test/token")
                );
                assert_eq!(password.secret_names(), vec!["api_token"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn search_and_list_urls() {
        let s = settings();
        assert_eq!(
            search_email(&s, "a+b@x.com").url(),
            "https://acme.zendesk.com/api/v2/users/search.json?query=email%3Aa%2Bb%40x.com"
        );
        assert_eq!(
            list(&s, ObjectKind::User, Some("abc"), 500).url(),
            "https://acme.zendesk.com/api/v2/users.json?page%5Bsize%5D=100&page%5Bafter%5D=abc"
        );
        assert!(get(&s, ObjectKind::User, "../x").is_err());
    }

    #[test]
    fn user_body_maps_active_and_custom_fields() {
        let b = user_body(
            &[
                Attribute::new("email", "a@x.com"),
                Attribute::new("active", false),
                Attribute::new("role", "Agent"),
                Attribute::new("user_fields.dept", "R&D"),
            ],
            true,
        )
        .unwrap();
        assert_eq!(
            b,
            json!({"email":"a@x.com","suspended":true,"role":"agent","user_fields":{"dept":"R&D"},"name":"a@x.com"})
        );
        assert!(user_body(&[Attribute::new("userName", "x")], false).is_err());
        let clear = user_body(&[Attribute::new("phone", Value::Null)], false).unwrap();
        assert_eq!(clear, json!({"phone": null}));
    }

    #[test]
    fn anonymous_user_is_unauthorized_and_agents_are_forbidden() {
        let s = settings();
        let anon = Response::new(
            200,
            vec![],
            r#"{"user":{"name":"Anonymous user","role":"end-user"}}"#,
        );
        assert!(matches!(
            test_connection_result(&s, anon),
            Err(ConnectorError::Unauthorized(_))
        ));
        let agent = Response::new(
            200,
            vec![],
            r#"{"user":{"id":7,"email":"a@x","role":"agent"}}"#,
        );
        assert!(matches!(
            test_connection_result(&s, agent),
            Err(ConnectorError::Forbidden(_))
        ));
        let admin = Response::new(
            200,
            vec![],
            r#"{"user":{"id":1,"email":"a@x","role":"admin"}}"#,
        );
        assert!(test_connection_result(&s, admin).unwrap().contains("admin"));
    }

    #[test]
    fn errors_map() {
        let dup = Response::new(
            422,
            vec![],
            r#"{"error":"RecordInvalid","description":"Record validation errors","details":{"email":[{"description":"Email: a@x is already being used by another user","error":"DuplicateValue"}]}}"#,
        );
        assert!(matches!(error(&dup), ConnectorError::Conflict(_)));
        let nf = Response::new(
            404,
            vec![],
            r#"{"error":"RecordNotFound","description":"Not found"}"#,
        );
        match error(&nf) {
            ConnectorError::NotFound(m) => {
                assert_eq!(m, "HTTP 404 Not Found: Not found (RecordNotFound)")
            }
            other => panic!("{other:?}"),
        }
        let rl = Response::new(
            429,
            vec![
                ("Retry-After".into(), "7".into()),
                ("Content-Type".into(), "text/plain".into()),
            ],
            "Rate limit exceeded",
        );
        match error(&rl) {
            ConnectorError::RateLimited(r) => assert_eq!(r.retry_after_ms, Some(7000)),
            other => panic!("{other:?}"),
        }
        let bad = Response::new(401, vec![], r#"{"error":"Couldn't authenticate you"}"#);
        assert!(matches!(error(&bad), ConnectorError::Unauthorized(_)));
    }

    #[test]
    fn user_object_and_paging() {
        let o = user_object(&json!({"id": 12, "email":"a@x", "name":"A", "active": true, "suspended": true, "tags":["x"]})).unwrap();
        assert_eq!(o.id, "12");
        assert_eq!(o.attribute("active"), Some(&Value::Boolean(false)));
        assert_eq!(
            o.attribute("tags"),
            Some(&Value::TextList(vec!["x".into()]))
        );
        let body = json!({"users":[], "meta":{"has_more":true,"after_cursor":"c2"}});
        assert_eq!(after_cursor(&body).as_deref(), Some("c2"));
        let body = json!({"users":[], "meta":{"has_more":false,"after_cursor":"c2"}});
        assert_eq!(after_cursor(&body), None);
    }
}
