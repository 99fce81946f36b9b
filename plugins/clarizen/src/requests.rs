//! Pure parts of the connector: settings, request building, JSON bodies,
//! response parsing and error mapping. Nothing here calls the host, so it is
//! unit-tested natively (`cargo test -p provisio-plugin-clarizen`).

use provisio_sdk::errors;
use provisio_sdk::http::{self, RequestBuilder, Response, Template};
use provisio_sdk::prelude::*;
use serde_json::{Map, Value as Json, json};

use crate::manifest::{
    API_URL, DEFAULT_API_URL, DISCOVERY_EXCHANGE, LOGIN_EXCHANGE, SESSION_SECRET, USER_NAME,
};

/// The largest page asked of `entityQuery`.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Pages followed at most by one `find`.
pub const MAX_FIND_PAGES: usize = 50;
/// The wait reported for the per-second API quota when Clarizen gives no
/// `Retry-After`: the quota is counted per second.
pub const QUOTA_RETRY_MS: u64 = 1000;

/// The User fields the connector writes, by their Clarizen names.
pub const USER_FIELDS: &[&str] = &[
    "UserName",
    "FirstName",
    "LastName",
    "Email",
    "OfficePhone",
    "MobilePhone",
    "JobTitle",
    "ExternalID",
    "Department",
];

/// Fields read back in addition to the writable ones (`State` gives `active`).
pub const READ_ONLY_FIELDS: &[&str] = &["Name", "State"];

/// Fields a user can be found by with `entityQuery` `Equal`.
pub const FIND_FIELDS: &[&str] = &["UserName", "Email", "ExternalID"];

/// The `State` of a disabled user.
pub const STATE_DISABLED: &str = "/State/Disabled";

/// The connection's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The discovery entry point without a trailing `/`.
    pub api_url: String,
    /// The admin user name.
    pub user_name: String,
}

/// Check that a URL from a setting or from Clarizen is an http(s) URL and
/// strip a trailing `/`.
pub fn http_url(what: &str, value: &str) -> Result<String, ConnectorError> {
    let v = value.trim().trim_end_matches('/');
    let rest = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"));
    match rest {
        Some(r)
            if !r.is_empty()
                && !r.starts_with('/')
                && !v.contains(['?', '#', ' ', '\r', '\n', '\t']) =>
        {
            Ok(v.to_string())
        }
        _ => Err(ConnectorError::invalid_input(format!(
            "{what} must be an http(s) URL such as {DEFAULT_API_URL}, got '{}'",
            errors::truncate(v, 200)
        ))),
    }
}

impl Settings {
    /// Read the settings through a lookup (`config::get` in the plugin).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConnectorError> {
        let user_name = provisio_sdk::config::require_value(USER_NAME, get(USER_NAME))?;
        let api_url = get(API_URL)
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_API_URL.to_string());
        let api_url = http_url(&format!("the setting `{API_URL}`"), &api_url)?;
        Ok(Settings {
            api_url,
            user_name: user_name.trim().to_string(),
        })
    }
}

/// A logged-in session: the discovered server. The session id itself is the
/// derived secret `session`, held by the host: requests name it in their
/// `Authorization` header and the connector never reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// `serverLocation` from discovery, without a trailing `/`.
    pub server: String,
}

impl Session {
    /// The URL of a path under the server location.
    pub fn url(&self, path: &str) -> String {
        http::join_url(&self.server, path)
    }

    fn authed(&self, r: RequestBuilder) -> RequestBuilder {
        r.header(
            "Authorization",
            Template::text("Session ") + http::secret(SESSION_SECRET),
        )
        .accept("application/json")
    }
}

// ------------------------------------------------------------ auth requests

/// `POST {api_url}/authentication/getServerDefinition`, the discovery login
/// exchange: the host builds `{"userName", "password"}`.
pub fn server_definition(s: &Settings) -> http::LoginBuilder {
    http::login(
        DISCOVERY_EXCHANGE,
        http::join_url(&s.api_url, "authentication/getServerDefinition"),
    )
    .header("Accept", "application/json")
}

/// `POST {serverLocation}/authentication/login`, the login exchange; the
/// host captures `sessionId` as the derived secret `session`.
pub fn login(server: &str) -> http::LoginBuilder {
    http::login(
        LOGIN_EXCHANGE,
        http::join_url(server, "authentication/login"),
    )
    .header("Accept", "application/json")
}

/// The `serverLocation` of a discovery answer (checked to be an http(s) URL).
pub fn parse_server_location(response: Response) -> Result<String, ConnectorError> {
    let body = login_body(response)?;
    let location = body
        .get("serverLocation")
        .and_then(Json::as_str)
        .ok_or_else(|| {
            ConnectorError::other("Clarizen's getServerDefinition answer has no `serverLocation`")
        })?;
    http_url("Clarizen's serverLocation", location)
}

/// What login returned (the session id stays with the host).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    /// The admin's user id, when given.
    pub user_id: Option<String>,
    /// The organization id, when given.
    pub organization_id: Option<String>,
    /// The license type, when given.
    pub license_type: Option<String>,
}

fn text_field(body: &Json, key: &str) -> Option<String> {
    match body.get(key)? {
        Json::String(s) if !s.is_empty() => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parse a login answer: the host must have captured the session.
pub fn parse_login(login: http::LoginResponse) -> Result<Login, ConnectorError> {
    let captured = login.captured(SESSION_SECRET);
    let body = login_body(login.response)?;
    if !captured {
        return Err(ConnectorError::other(
            "Clarizen's login answer has no usable `sessionId`",
        ));
    }
    Ok(Login {
        user_id: text_field(&body, "userId"),
        organization_id: text_field(&body, "organizationId"),
        license_type: text_field(&body, "licenseType"),
    })
}

/// Discovery and login answers: a failure is unauthorized when the
/// credentials were refused (401, `LoginFailure`), mapped as usual otherwise.
fn login_body(response: Response) -> Result<Json, ConnectorError> {
    check(response)?.json()
}

// ------------------------------------------------------------ data requests

/// Strip the `/User/` prefix of a Clarizen entity id and check that the rest
/// is safe in a path.
pub fn user_id(id: &str) -> Result<&str, ConnectorError> {
    let id = id.trim();
    let bare = id.strip_prefix("/User/").unwrap_or(id);
    if !bare.is_empty()
        && bare.len() <= 64
        && bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(bare)
    } else {
        Err(ConnectorError::invalid_input(format!(
            "'{}' is not a Clarizen user id (a GUID, optionally written /User/<guid>)",
            errors::truncate(id, 100)
        )))
    }
}

/// Every field read back.
pub fn read_fields() -> Vec<&'static str> {
    USER_FIELDS
        .iter()
        .chain(READ_ONLY_FIELDS)
        .copied()
        .collect()
}

/// `POST {sl}/data/entityQuery` for users, optionally `where field Equal value`,
/// starting at `from`.
pub fn entity_query(
    session: &Session,
    filter: Option<(&str, &str)>,
    from: u32,
    limit: u32,
) -> RequestBuilder {
    let mut body = json!({
        "typeName": "User",
        "fields": read_fields(),
        "paging": {"from": from, "limit": limit.clamp(1, MAX_PAGE_SIZE)},
    });
    if let Some((field, value)) = filter {
        body["where"] = json!({
            "leftExpression": {"fieldName": field},
            "operator": "Equal",
            "rightExpression": {"value": value},
        });
    }
    session.authed(http::post(session.url("data/entityQuery")).json(&body))
}

/// `GET {sl}/data/objects/User/{id}?fields=…`.
pub fn get_user(session: &Session, id: &str) -> Result<RequestBuilder, ConnectorError> {
    let id = user_id(id)?;
    Ok(session.authed(
        http::get(session.url(&format!("data/objects/User/{id}")))
            .query("fields", read_fields().join(",")),
    ))
}

/// `PUT {sl}/data/objects/User` with the fields: Clarizen's create.
pub fn create_user(session: &Session, fields: &Json) -> RequestBuilder {
    session.authed(http::put(session.url("data/objects/User")).json(fields))
}

/// `POST {sl}/data/objects/User/{id}` with the changed fields: Clarizen's update.
pub fn update_user(
    session: &Session,
    id: &str,
    fields: &Json,
) -> Result<RequestBuilder, ConnectorError> {
    let id = user_id(id)?;
    Ok(session.authed(http::post(session.url(&format!("data/objects/User/{id}"))).json(fields)))
}

/// `POST {sl}/data/lifecycle` `{"ids":["/User/<id>"],"operation":"Disable"|"Enable"}`.
pub fn lifecycle(
    session: &Session,
    id: &str,
    enable: bool,
) -> Result<RequestBuilder, ConnectorError> {
    let id = user_id(id)?;
    let operation = if enable { "Enable" } else { "Disable" };
    Ok(session.authed(
        http::post(session.url("data/lifecycle"))
            .json(&json!({"ids": [format!("/User/{id}")], "operation": operation})),
    ))
}

/// `DELETE {sl}/data/objects/User/{id}`.
pub fn delete_user(session: &Session, id: &str) -> Result<RequestBuilder, ConnectorError> {
    let id = user_id(id)?;
    Ok(session.authed(http::delete(
        session.url(&format!("data/objects/User/{id}")),
    )))
}

// ------------------------------------------------------------------ bodies

/// The canonical Clarizen name of a writable field (case-insensitive), or a
/// custom field (`C_…`) as given.
pub fn field_name(name: &str) -> Option<String> {
    if let Some(f) = USER_FIELDS.iter().find(|f| f.eq_ignore_ascii_case(name)) {
        return Some((*f).to_string());
    }
    let custom = name.len() > 2
        && name[..2].eq_ignore_ascii_case("c_")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    custom.then(|| name.to_string())
}

fn to_json(name: &str, value: &Value) -> Result<Json, ConnectorError> {
    Ok(match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => Json::from(*i),
        Value::Number(n) => Json::from(*n),
        Value::Text(t) => Json::String(t.clone()),
        Value::TextList(_) => {
            return Err(ConnectorError::invalid_input(format!(
                "Clarizen field `{name}` takes a single value, not a list"
            )));
        }
    })
}

/// The fields of a create or update, and the lifecycle state asked for
/// (`active`, applied with `data/lifecycle`, not as a field).
#[derive(Clone, Debug, PartialEq)]
pub struct UserChanges {
    /// The JSON object of Clarizen fields.
    pub fields: Json,
    /// `Some(true)` enable, `Some(false)` disable, `None` leave.
    pub active: Option<bool>,
}

/// Build the Clarizen fields from flat attributes. Names are Clarizen's User
/// fields ([`USER_FIELDS`], case-insensitive) or custom fields `C_…`;
/// `active` becomes a lifecycle operation. A create needs a `UserName`.
pub fn user_changes(
    attributes: &[Attribute],
    creating: bool,
) -> Result<UserChanges, ConnectorError> {
    let mut fields = Map::new();
    let mut active = None;
    for a in attributes {
        if a.name == "active" {
            active = match &a.value {
                Value::Null => None,
                Value::Boolean(b) => Some(*b),
                Value::Text(t) if t.eq_ignore_ascii_case("true") => Some(true),
                Value::Text(t) if t.eq_ignore_ascii_case("false") => Some(false),
                other => {
                    return Err(ConnectorError::invalid_input(format!(
                        "`active` must be a boolean, got {other:?}"
                    )));
                }
            };
            continue;
        }
        let Some(name) = field_name(&a.name) else {
            return Err(ConnectorError::invalid_input(format!(
                "Clarizen users have no attribute `{}`; use one of {}, a custom field C_<name>, or active",
                a.name,
                USER_FIELDS.join(", ")
            )));
        };
        fields.insert(name.clone(), to_json(&name, &a.value)?);
    }
    if creating {
        let has_user_name = fields
            .get("UserName")
            .and_then(Json::as_str)
            .is_some_and(|u| !u.trim().is_empty());
        if !has_user_name {
            return Err(ConnectorError::invalid_input(
                "a Clarizen user needs a `UserName` (unique in the organization)",
            ));
        }
    }
    Ok(UserChanges {
        fields: Json::Object(fields),
        active,
    })
}

// --------------------------------------------------------------- responses

fn from_json(value: &Json) -> Option<Value> {
    match value {
        Json::Null => Some(Value::Null),
        Json::Bool(b) => Some(Value::Boolean(*b)),
        Json::Number(n) => n
            .as_i64()
            .map(Value::Integer)
            .or_else(|| n.as_f64().map(Value::Number)),
        Json::String(s) => Some(Value::Text(s.clone())),
        Json::Array(_) | Json::Object(_) => None,
    }
}

/// A Clarizen User entity as a [`TargetObject`]: the id without `/User/`,
/// its fields, and `active` = `State` is not `/State/Disabled`.
pub fn user_object(entity: &Json) -> Result<TargetObject, ConnectorError> {
    let raw = entity
        .get("id")
        .and_then(Json::as_str)
        .ok_or_else(|| ConnectorError::other("Clarizen returned a user without an id"))?;
    let id = user_id(raw)
        .map_err(|_| ConnectorError::other(format!("Clarizen returned an odd user id '{raw}'")))?
        .to_string();
    let mut attributes = Vec::new();
    if let Some(obj) = entity.as_object() {
        for (k, v) in obj {
            if k == "id" || k == "State" {
                continue;
            }
            if let Some(v) = from_json(v) {
                attributes.push(Attribute::new(k.clone(), v));
            }
        }
    }
    if let Some(state) = entity.get("State") {
        let state_id = state
            .get("id")
            .and_then(Json::as_str)
            .or_else(|| state.as_str())
            .unwrap_or("");
        attributes.push(Attribute::new("State", state_id));
        attributes.push(Attribute::new("active", state_id != STATE_DISABLED));
    }
    Ok(TargetObject { id, attributes })
}

/// A successful single-object answer (`GET data/objects/User/{id}`).
pub fn single(response: Response) -> Result<TargetObject, ConnectorError> {
    user_object(&check(response)?.json::<Json>()?)
}

/// The id of a create answer `{"id":"/User/<guid>"}`.
pub fn created_id(response: Response) -> Result<String, ConnectorError> {
    let body: Json = check(response)?.json()?;
    let raw = body
        .get("id")
        .and_then(Json::as_str)
        .ok_or_else(|| ConnectorError::other("Clarizen's create answer has no `id`"))?;
    user_id(raw)
        .map(str::to_string)
        .map_err(|_| ConnectorError::other(format!("Clarizen returned an odd user id '{raw}'")))
}

/// A page of an `entityQuery` answer and the `from` of the next page, when
/// `paging.hasMore`.
pub fn query_page(response: Response) -> Result<(Vec<TargetObject>, Option<u32>), ConnectorError> {
    let body: Json = check(response)?.json()?;
    let objects = body
        .get("entities")
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .map(user_object)
        .collect::<Result<Vec<_>, _>>()?;
    let paging = body.get("paging");
    let has_more = paging
        .and_then(|p| p.get("hasMore"))
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let next = if has_more {
        let from = paging
            .and_then(|p| p.get("from"))
            .and_then(Json::as_u64)
            .and_then(|f| u32::try_from(f).ok())
            .ok_or_else(|| {
                ConnectorError::other("Clarizen said hasMore but gave no numeric `paging.from`")
            })?;
        Some(from)
    } else {
        None
    };
    Ok((objects, next))
}

/// Parse a list cursor (the paging `from` of the next page).
pub fn cursor_from(cursor: Option<&str>) -> Result<u32, ConnectorError> {
    match cursor.map(str::trim).filter(|c| !c.is_empty()) {
        None => Ok(0),
        Some(c) => c.parse().map_err(|_| {
            ConnectorError::invalid_input(format!(
                "'{}' is not a Clarizen list cursor (a paging offset)",
                errors::truncate(c, 50)
            ))
        }),
    }
}

// ------------------------------------------------------------------ errors

/// A Clarizen error body `{"errorCode","message","referenceId"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClarizenError {
    /// `errorCode`, e.g. `EntityNotFound`, `SessionTimeout`, `LoginFailure`.
    pub code: Option<String>,
    /// `message`.
    pub message: Option<String>,
    /// `referenceId`, for Clarizen support.
    pub reference: Option<String>,
}

impl ClarizenError {
    /// Parse an error body; `None` when it is not Clarizen's error shape.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let json: Json = serde_json::from_slice(body).ok()?;
        let e = ClarizenError {
            code: text_field(&json, "errorCode"),
            message: text_field(&json, "message"),
            reference: text_field(&json, "referenceId"),
        };
        (e.code.is_some() || e.message.is_some()).then_some(e)
    }
}

/// Whether a response says the session expired (`errorCode` `SessionTimeout`,
/// whatever the status): log in again and retry.
pub fn is_session_timeout(response: &Response) -> bool {
    !response.is_success()
        && ClarizenError::parse(&response.body)
            .and_then(|e| e.code)
            .is_some_and(|c| c.eq_ignore_ascii_case("SessionTimeout"))
}

fn is_duplicate(e: &ClarizenError) -> bool {
    let code = e.code.as_deref().unwrap_or("").to_ascii_lowercase();
    let msg = e.message.as_deref().unwrap_or("").to_ascii_lowercase();
    code.contains("duplicate")
        || code.contains("unique")
        || msg.contains("must be unique")
        || msg.contains("already exists")
}

/// Map a non-2xx Clarizen answer (see `docs/connectors/clarizen.md`):
/// `EntityNotFound` (HTTP 500) → not-found; "API calls quota exceeded" or
/// 429 → rate-limited (`Retry-After`, else 1 s for the quota); a duplicate
/// unique value → conflict; `LoginFailure`/401 → unauthorized;
/// `SessionTimeout` → transient (after the one re-login retry); other 5xx →
/// transient; other 4xx by status.
pub fn error(response: &Response) -> ConnectorError {
    let status = response.status;
    let Some(e) = ClarizenError::parse(&response.body) else {
        return errors::from_response(response);
    };
    let code = e.code.clone().unwrap_or_default();
    let mut text = format!("Clarizen HTTP {status}");
    if !code.is_empty() {
        text.push(' ');
        text.push_str(&code);
    }
    if let Some(m) = &e.message {
        text.push_str(": ");
        text.push_str(m);
    }
    if let Some(r) = &e.reference {
        text.push_str(&format!(" (referenceId {r})"));
    }
    let message = errors::truncate(&text, errors::MAX_MESSAGE_LEN);
    let retry_after = response
        .header("retry-after")
        .and_then(|v| errors::retry_after_ms(v, None));
    let quota = e
        .message
        .as_deref()
        .is_some_and(|m| m.to_ascii_lowercase().contains("api calls quota exceeded"));
    let code_is = |c: &str| code.eq_ignore_ascii_case(c);
    if status == 429 || quota {
        return ConnectorError::RateLimited(RateLimit {
            message,
            retry_after_ms: retry_after.or(quota.then_some(QUOTA_RETRY_MS)),
        });
    }
    if code_is("EntityNotFound") || status == 404 {
        return ConnectorError::NotFound(message);
    }
    if code_is("SessionTimeout") {
        return ConnectorError::Transient(format!(
            "{message}; the session expired again right after a new login"
        ));
    }
    if code_is("LoginFailure") || status == 401 {
        return ConnectorError::Unauthorized(message);
    }
    if is_duplicate(&e) || status == 409 {
        return ConnectorError::Conflict(Conflict {
            message,
            existing_id: None,
        });
    }
    match status {
        403 => ConnectorError::Forbidden(message),
        400 | 422 => ConnectorError::InvalidInput(message),
        500..=599 => ConnectorError::Transient(message),
        _ => ConnectorError::Other(message),
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

/// Add the existing user's id to a conflict, when exactly one was found.
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use provisio_sdk::http::Method;

    fn settings() -> Settings {
        Settings::from_lookup(|k| match k {
            "user_name" => Some("admin@acme.test".into()),
            _ => None,
        })
        .unwrap()
    }

    fn session() -> Session {
        Session {
            server: "https://api2.clarizen.com/V2.0/services".into(),
        }
    }

    fn resp(status: u16, body: &str) -> Response {
        Response::new(status, vec![], body.as_bytes().to_vec())
    }

    fn body_json(r: &RequestBuilder) -> Json {
        serde_json::from_str(&r.body_text().unwrap()).unwrap()
    }

    #[test]
    fn settings_defaults_and_validation() {
        let s = settings();
        assert_eq!(s.api_url, DEFAULT_API_URL);
        assert_eq!(s.user_name, "admin@acme.test");
        let s = Settings::from_lookup(|k| match k {
            "user_name" => Some("a".into()),
            "api_url" => Some("http://127.0.0.1:9/V2.0/services/".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.api_url, "http://127.0.0.1:9/V2.0/services");
        let err = Settings::from_lookup(|k| match k {
            "user_name" => Some("a".into()),
            "api_url" => Some("api.clarizen.com".into()),
            _ => None,
        })
        .unwrap_err();
        assert!(
            matches!(&err, ConnectorError::InvalidInput(m) if m.contains("`api_url`")),
            "{err:?}"
        );
        let err = Settings::from_lookup(|_| None).unwrap_err();
        assert!(err.message().contains("`user_name`"), "{err:?}");
    }

    #[test]
    fn discovery_and_login_answers() {
        let loc = parse_server_location(resp(
            200,
            r#"{"serverLocation":"https://api2.clarizen.com/V2.0/services/","appLocation":"x","organizationId":"1"}"#,
        ))
        .unwrap();
        assert_eq!(loc, "https://api2.clarizen.com/V2.0/services");
        let err = parse_server_location(resp(200, r#"{"serverLocation":"ftp://x"}"#)).unwrap_err();
        assert!(err.message().contains("serverLocation"), "{err:?}");
        let captured = |status, body: &str| http::LoginResponse {
            response: resp(status, body),
            captured: if status == 200 {
                vec![SESSION_SECRET.to_string()]
            } else {
                vec![]
            },
        };
        let l = parse_login(captured(
            200,
            r#"{"sessionId":"[REDACTED]","userId":"u","organizationId":7,"licenseType":"Full"}"#,
        ))
        .unwrap();
        assert_eq!(l.organization_id.as_deref(), Some("7"));
        let none = http::LoginResponse {
            response: resp(200, r#"{"userId":"u"}"#),
            captured: vec![],
        };
        assert!(parse_login(none).is_err(), "no captured session");
        let err = parse_login(captured(
            401,
            r#"{"errorCode":"LoginFailure","message":"Invalid user name or password","referenceId":"r1"}"#,
        ))
        .unwrap_err();
        assert!(
            matches!(&err, ConnectorError::Unauthorized(m) if m.contains("Invalid user name or password") && m.contains("r1")),
            "{err:?}"
        );
    }

    #[test]
    fn data_requests() {
        let s = session();
        let r = entity_query(&s, Some(("UserName", "ada@x.test")), 0, 500);
        assert_eq!(r.method(), Method::Post);
        assert_eq!(
            r.url(),
            "https://api2.clarizen.com/V2.0/services/data/entityQuery"
        );
        assert_eq!(
            r.header_value("authorization").map(Template::redacted),
            Some("Session {secret:session}".into()),
            "the session is the host's derived secret, named only"
        );
        let b = body_json(&r);
        assert_eq!(b["typeName"], "User");
        assert_eq!(b["where"]["leftExpression"]["fieldName"], "UserName");
        assert_eq!(b["where"]["operator"], "Equal");
        assert_eq!(b["where"]["rightExpression"]["value"], "ada@x.test");
        assert_eq!(b["paging"], json!({"from": 0, "limit": 100}));
        assert!(b["fields"].as_array().unwrap().contains(&json!("State")));
        let b = body_json(&entity_query(&s, None, 50, 10));
        assert!(b.get("where").is_none());
        assert_eq!(b["paging"], json!({"from": 50, "limit": 10}));

        let r = get_user(&s, "/User/abc-123").unwrap();
        assert_eq!(r.method(), Method::Get);
        assert!(
            r.url()
                .starts_with("https://api2.clarizen.com/V2.0/services/data/objects/User/abc-123?fields=UserName%2C"),
            "{}",
            r.url()
        );
        let r = create_user(&s, &json!({"UserName": "a"}));
        assert_eq!(r.method(), Method::Put, "PUT creates");
        assert!(r.url().ends_with("/data/objects/User"));
        let r = update_user(&s, "abc", &json!({"FirstName": "A"})).unwrap();
        assert_eq!(r.method(), Method::Post, "POST updates");
        assert!(r.url().ends_with("/data/objects/User/abc"));
        assert_eq!(body_json(&r), json!({"FirstName": "A"}));
        let r = lifecycle(&s, "abc", false).unwrap();
        assert!(r.url().ends_with("/data/lifecycle"));
        assert_eq!(
            body_json(&r),
            json!({"ids": ["/User/abc"], "operation": "Disable"})
        );
        assert_eq!(
            body_json(&lifecycle(&s, "abc", true).unwrap())["operation"],
            "Enable"
        );
        let r = delete_user(&s, "abc").unwrap();
        assert_eq!(r.method(), Method::Delete);
        for bad in ["", "../x", "a/b", "a b", "/Project/x?y"] {
            assert!(get_user(&s, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bodies() {
        let c = user_changes(
            &[
                Attribute::new("userName", "ada@x.test"),
                Attribute::new("email", "ada@x.test"),
                Attribute::new("FirstName", "Ada"),
                Attribute::new("MobilePhone", Value::Null),
                Attribute::new("C_CostCenter", "42"),
                Attribute::new("active", false),
            ],
            true,
        )
        .unwrap();
        assert_eq!(
            c.fields,
            json!({"UserName": "ada@x.test", "Email": "ada@x.test", "FirstName": "Ada",
                   "MobilePhone": null, "C_CostCenter": "42"})
        );
        assert_eq!(c.active, Some(false));
        let err = user_changes(&[Attribute::new("Email", "a@x")], true).unwrap_err();
        assert!(err.message().contains("UserName"), "{err:?}");
        assert!(user_changes(&[Attribute::new("Email", "a@x")], false).is_ok());
        let err = user_changes(&[Attribute::new("title", "x")], false).unwrap_err();
        assert!(
            matches!(&err, ConnectorError::InvalidInput(m) if m.contains("`title`") && m.contains("JobTitle")),
            "{err:?}"
        );
        assert!(
            user_changes(
                &[Attribute::new(
                    "Email",
                    vec!["a".to_string(), "b".to_string()]
                )],
                false
            )
            .is_err()
        );
    }

    #[test]
    fn responses() {
        let u = single(resp(
            200,
            r#"{"id":"/User/g-1","UserName":"ada","Email":"ada@x","MobilePhone":null,"State":{"id":"/State/Disabled"}}"#,
        ))
        .unwrap();
        assert_eq!(u.id, "g-1");
        assert_eq!(u.attribute("UserName"), Some(&Value::Text("ada".into())));
        assert_eq!(u.attribute("active"), Some(&Value::Boolean(false)));
        let u = user_object(&json!({"id":"/User/g-2","State":{"id":"/State/Active"}})).unwrap();
        assert_eq!(u.attribute("active"), Some(&Value::Boolean(true)));
        assert_eq!(
            created_id(resp(200, r#"{"id":"/User/abc-9"}"#)).unwrap(),
            "abc-9"
        );
        let (objs, next) = query_page(resp(
            200,
            r#"{"entities":[{"id":"/User/a"},{"id":"/User/b"}],"paging":{"from":2,"limit":2,"hasMore":true}}"#,
        ))
        .unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(next, Some(2));
        let (objs, next) = query_page(resp(
            200,
            r#"{"entities":[],"paging":{"from":2,"limit":2,"hasMore":false}}"#,
        ))
        .unwrap();
        assert!(objs.is_empty() && next.is_none());
        assert!(query_page(resp(200, r#"{"entities":[],"paging":{"hasMore":true}}"#)).is_err());
        assert_eq!(cursor_from(None).unwrap(), 0);
        assert_eq!(cursor_from(Some("150")).unwrap(), 150);
        assert!(cursor_from(Some("x")).is_err());
    }

    #[test]
    fn error_mapping() {
        let e = error(&resp(
            500,
            r#"{"errorCode":"EntityNotFound","message":"Entity /User/x was not found","referenceId":"ref-1"}"#,
        ));
        assert!(
            matches!(&e, ConnectorError::NotFound(m) if m.contains("EntityNotFound") && m.contains("ref-1")),
            "{e:?}"
        );
        let quota = resp(
            500,
            r#"{"errorCode":"General","message":"API calls quota exceeded","referenceId":"r"}"#,
        );
        assert!(
            matches!(
                error(&quota),
                ConnectorError::RateLimited(RateLimit {
                    retry_after_ms: Some(1000),
                    ..
                })
            ),
            "{:?}",
            error(&quota)
        );
        let r429 = Response::new(
            429,
            vec![("Retry-After".into(), "7".into())],
            br#"{"errorCode":"TooManyRequests","message":"slow down"}"#.to_vec(),
        );
        assert!(matches!(
            error(&r429),
            ConnectorError::RateLimited(RateLimit {
                retry_after_ms: Some(7000),
                ..
            })
        ));
        let plain429 = Response::new(429, vec![("Retry-After".into(), "3".into())], b"".to_vec());
        assert!(matches!(
            error(&plain429),
            ConnectorError::RateLimited(RateLimit {
                retry_after_ms: Some(3000),
                ..
            })
        ));
        let dup = resp(
            500,
            r#"{"errorCode":"DuplicateUniqueValue","message":"The value 'ada' of field UserName must be unique"}"#,
        );
        assert!(matches!(error(&dup), ConnectorError::Conflict(_)));
        let timeout = resp(
            500,
            r#"{"errorCode":"SessionTimeout","message":"Session timed out"}"#,
        );
        assert!(is_session_timeout(&timeout));
        assert!(!is_session_timeout(&dup));
        assert!(!is_session_timeout(&resp(
            200,
            r#"{"errorCode":"SessionTimeout"}"#
        )));
        assert!(matches!(error(&timeout), ConnectorError::Transient(_)));
        assert!(matches!(
            error(&resp(
                401,
                r#"{"errorCode":"Unauthorized","message":"bad session"}"#
            )),
            ConnectorError::Unauthorized(_)
        ));
        assert!(matches!(
            error(&resp(503, r#"{"errorCode":"General","message":"down"}"#)),
            ConnectorError::Transient(_)
        ));
        assert!(matches!(
            error(&resp(502, "<html>bad gateway</html>")),
            ConnectorError::Transient(_)
        ));
        assert!(matches!(
            error(&resp(400, r#"{"errorCode":"InvalidArgument","message":"LastName is required"}"#)),
            ConnectorError::InvalidInput(m) if m.contains("LastName")
        ));
        let c = conflict_with(
            error(&dup),
            &[TargetObject {
                id: "g-7".into(),
                attributes: vec![],
            }],
        );
        assert!(
            matches!(&c, ConnectorError::Conflict(Conflict { existing_id: Some(id), message }) if id == "g-7" && message.contains("g-7"))
        );
    }
}
