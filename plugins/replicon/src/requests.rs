//! Pure parts of the connector: settings, request building, JSON bodies,
//! response parsing and error mapping. Nothing here calls the host, so it is
//! unit-tested natively (`cargo test -p provisio-plugin-replicon`).
//!
//! Replicon is JSON-over-POST RPC: every operation is
//! `POST {applicationRootUrl}services/<Service>.svc/<Operation>` with a JSON
//! body, answered `200 {"d": <result>}` or, for a refused request, **HTTP 400**
//! with `{"error":{"code","correlationId","reason","details":{"displayText"},"type"}}`.

use provisio_sdk::errors;
use provisio_sdk::http::{self, Auth, RequestBuilder, Response, Template, secret};
use provisio_sdk::prelude::*;
use serde_json::{Map, Value as Json, json};

use crate::manifest::{COMPANY_KEY, DEFAULT_DISCOVERY_URL, DISCOVERY_URL, LOGIN, PASSWORD_SECRET};

/// Rows asked for per `GetData` page when the host gives no page size.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The largest `GetData` page the connector asks for.
pub const MAX_PAGE_SIZE: u32 = 500;
/// Most pages read for one `find` (a filter matches few users).
pub const MAX_FIND_PAGES: u32 = 20;
/// Seconds the discovered application root stays cached.
pub const ROOT_TTL_SECONDS: u32 = 3600;

/// The user attributes the connector writes.
pub const USER_FIELDS: &[&str] = &[
    "loginName",
    "firstName",
    "lastName",
    "emailAddress",
    "employeeId",
    "active",
];

/// `UserListService1` column of the user reference (cell: `uri`, `textValue` = display text).
pub const COLUMN_USER: &str = "urn:replicon:user-list-column:user";
/// Column of the login name.
pub const COLUMN_LOGIN_NAME: &str = "urn:replicon:user-list-column:login-name";
/// Column of the first name.
pub const COLUMN_FIRST_NAME: &str = "urn:replicon:user-list-column:first-name";
/// Column of the last name.
pub const COLUMN_LAST_NAME: &str = "urn:replicon:user-list-column:last-name";
/// Column of the email address.
pub const COLUMN_EMAIL: &str = "urn:replicon:user-list-column:email-address";
/// Column of the employee id.
pub const COLUMN_EMPLOYEE_ID: &str = "urn:replicon:user-list-column:employee-id";
/// Column of the login-enabled flag (cell: `boolValue`).
pub const COLUMN_LOGIN_ENABLED: &str = "urn:replicon:user-list-column:login-enabled";

/// The columns `GetData` is asked for, in order, with the attribute each fills.
pub const COLUMNS: &[(&str, &str)] = &[
    (COLUMN_USER, "displayText"),
    (COLUMN_LOGIN_NAME, "loginName"),
    (COLUMN_FIRST_NAME, "firstName"),
    (COLUMN_LAST_NAME, "lastName"),
    (COLUMN_EMAIL, "emailAddress"),
    (COLUMN_EMPLOYEE_ID, "employeeId"),
    (COLUMN_LOGIN_ENABLED, "active"),
];

/// The `GetData` filter of an attribute the connector can search by.
pub fn filter_for(attribute: &str) -> Option<&'static str> {
    match attribute {
        "loginName" | "userName" => Some("urn:replicon:user-list-filter:login-name"),
        "emailAddress" | "email" | "mail" => Some("urn:replicon:user-list-filter:email-address"),
        "employeeId" => Some("urn:replicon:user-list-filter:employee-id"),
        _ => None,
    }
}

/// The connection's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The company key (`CompanyKey` of `CompanyKey\LoginName`).
    pub company_key: String,
    /// The admin's login name.
    pub login: String,
    /// The discovery origin without a trailing `/`.
    pub discovery: String,
}

impl Settings {
    /// Read the settings through a lookup (`config::get` in the plugin).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConnectorError> {
        let company_key = provisio_sdk::config::require_value(COMPANY_KEY, get(COMPANY_KEY))?
            .trim()
            .to_string();
        let login = provisio_sdk::config::require_value(LOGIN, get(LOGIN))?
            .trim()
            .to_string();
        if company_key.is_empty() || company_key.contains(['\\', '/', ':']) {
            return Err(ConnectorError::invalid_input(format!(
                "the setting `{COMPANY_KEY}` must be your Replicon company key (no '\\', '/' or ':'), got '{company_key}'"
            )));
        }
        if login.is_empty() || login.contains([':', '\\']) {
            return Err(ConnectorError::invalid_input(format!(
                "the setting `{LOGIN}` must be a Replicon login name (no ':' or '\\'), got '{login}'"
            )));
        }
        let discovery = get(DISCOVERY_URL)
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_DISCOVERY_URL.to_string());
        let discovery = discovery.trim().trim_end_matches('/').to_string();
        if !(discovery.starts_with("https://") || discovery.starts_with("http://")) {
            return Err(ConnectorError::invalid_input(format!(
                "the setting `{DISCOVERY_URL}` must be an http(s) URL such as {DEFAULT_DISCOVERY_URL}, got '{discovery}'"
            )));
        }
        Ok(Settings {
            company_key,
            login,
            discovery,
        })
    }

    /// `CompanyKey\LoginName`, the Basic user name.
    pub fn principal(&self) -> String {
        format!("{}\\{}", self.company_key, self.login)
    }

    /// HTTP Basic `CompanyKey\LoginName:password`; the host fills in the password.
    pub fn auth(&self) -> Auth {
        Auth::basic(Template::text(self.principal()), secret(PASSWORD_SECRET))
    }

    /// The kv key the discovered root is cached under.
    pub fn root_key(&self) -> String {
        let mut key = format!("root:{}:{}", self.discovery, self.company_key);
        key.truncate(200);
        key
    }
}

/// `X-Replicon-Application: <Company>_<Op>_<Version>`.
pub fn application_header() -> String {
    format!("Provisio_UserProvisioning_{}", env!("CARGO_PKG_VERSION"))
}

// ---------------------------------------------------------------- requests

/// `POST {discovery}/DiscoveryService1.svc/GetTenantEndpointDetails` (anonymous).
pub fn discover(s: &Settings) -> RequestBuilder {
    http::post(format!(
        "{}/DiscoveryService1.svc/GetTenantEndpointDetails",
        s.discovery
    ))
    .header("X-Replicon-Application", application_header())
    .json(&json!({"tenant": {"companyKey": s.company_key}}))
}

/// The application root from the discovery answer. An unknown company key
/// (a 400 error object or `{"d": null}`) is an invalid-input naming it.
pub fn discovered_root(s: &Settings, response: Response) -> Result<String, ConnectorError> {
    let unknown = |why: String| {
        ConnectorError::invalid_input(format!(
            "Replicon's discovery service at {} does not know the company key '{}' ({why}): \
             check the `{COMPANY_KEY}` setting (the company name you sign in to Replicon with)",
            s.discovery, s.company_key
        ))
    };
    if response.status == 400 {
        let detail = error_object(&response.body)
            .map(|e| e.summary())
            .unwrap_or_else(|| errors::status_message(400, &response.body));
        return Err(unknown(detail));
    }
    if response.status == 404 {
        return Err(ConnectorError::invalid_input(format!(
            "{} answered 404 for DiscoveryService1.svc/GetTenantEndpointDetails: the setting \
             `{DISCOVERY_URL}` must be Replicon's discovery origin ({DEFAULT_DISCOVERY_URL})",
            s.discovery
        )));
    }
    let d = result(response)?;
    let root = d
        .get("applicationRootUrl")
        .and_then(Json::as_str)
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let Some(root) = root else {
        return Err(unknown("no applicationRootUrl in the answer".into()));
    };
    if !(root.starts_with("https://") || root.starts_with("http://")) {
        return Err(ConnectorError::other(format!(
            "Replicon's discovery service returned an application root that is not an http(s) URL: '{}'",
            errors::truncate(root, 200)
        )));
    }
    Ok(if root.ends_with('/') {
        root.to_string()
    } else {
        format!("{root}/")
    })
}

/// `POST {root}services/{service}.svc/{operation}` with a JSON body.
pub fn rpc(
    s: &Settings,
    root: &str,
    service: &str,
    operation: &str,
    body: &Json,
) -> RequestBuilder {
    http::post(format!("{root}services/{service}.svc/{operation}"))
        .auth(s.auth())
        .header("X-Replicon-Application", application_header())
        .json(body)
}

/// A user target parameter: exactly one of uri, loginName, employeeId.
pub fn target(uri: Option<&str>, login_name: Option<&str>, employee_id: Option<&str>) -> Json {
    json!({"uri": uri, "loginName": login_name, "employeeId": employee_id,
           "parameterCorrelationId": null})
}

/// `UserService1.svc/GetUser2` body for a login name.
pub fn get_user_body(login_name: &str) -> Json {
    json!({"user": target(None, Some(login_name), None)})
}

/// `ImportService1.svc/BulkGetUsers3` body for user URIs.
pub fn bulk_get_body(uris: &[&str]) -> Json {
    let users: Vec<Json> = uris.iter().map(|u| target(Some(u), None, None)).collect();
    json!({"users": users})
}

/// `{"userUri": uri}` (SecurityService1 DisableLogin/EnableLogin, UserService1 Delete).
pub fn user_uri_body(uri: &str) -> Json {
    json!({"userUri": uri})
}

/// `UserListService1.svc/GetData` body: one page (1-based) of every column in
/// [`COLUMNS`], optionally filtered by `filter = value`.
pub fn get_data_body(page: u32, page_size: u32, filter: Option<(&str, &str)>) -> Json {
    let columns: Vec<&str> = COLUMNS.iter().map(|(c, _)| *c).collect();
    let filter_expression = filter.map(|(definition, value)| {
        json!({
            "leftExpression": {"filterDefinitionUri": definition},
            "operatorUri": "urn:replicon:filter-operator:equal",
            "rightExpression": {"value": {"text": value}}
        })
    });
    json!({
        "page": page.max(1),
        "pagesize": page_size.clamp(1, MAX_PAGE_SIZE),
        "columnUris": columns,
        "sort": [],
        "filterExpression": filter_expression,
    })
}

/// The page a list cursor names (cursor = page number, absent = 1).
pub fn cursor_page(cursor: Option<&str>) -> Result<u32, ConnectorError> {
    match cursor.map(str::trim).filter(|c| !c.is_empty()) {
        None => Ok(1),
        Some(c) => c.parse::<u32>().ok().filter(|p| *p >= 1).ok_or_else(|| {
            ConnectorError::invalid_input(format!(
                "'{c}' is not a Replicon list cursor (a page number from 1)"
            ))
        }),
    }
}

/// Check that an id is a Replicon user URI (`urn:replicon-tenant:<tenant>:user:<n>`).
pub fn user_uri(id: &str) -> Result<&str, ConnectorError> {
    let id = id.trim();
    let ok = id
        .strip_prefix("urn:replicon-tenant:")
        .and_then(|rest| rest.rsplit_once(":user:"))
        .is_some_and(|(tenant, n)| !tenant.is_empty() && !n.is_empty() && id.len() <= 300);
    if ok {
        Ok(id)
    } else {
        Err(ConnectorError::invalid_input(format!(
            "'{}' is not a Replicon user URI (urn:replicon-tenant:<tenant>:user:<n>)",
            errors::truncate(id, 100)
        )))
    }
}

// ------------------------------------------------------------------ bodies

fn text_of(name: &str, value: &Value) -> Result<Option<String>, ConnectorError> {
    match value {
        Value::Null => Ok(None),
        Value::Text(t) => Ok(Some(t.trim().to_string())),
        Value::Integer(i) => Ok(Some(i.to_string())),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(ConnectorError::invalid_input(format!(
            "Replicon's `{name}` is text, got {other:?}"
        ))),
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

fn unknown_attribute(name: &str) -> ConnectorError {
    ConnectorError::invalid_input(format!(
        "Replicon users have no attribute `{name}`; use one of {}",
        USER_FIELDS.join(", ")
    ))
}

/// The attributes of a create, checked and by name.
#[derive(Debug, Default, PartialEq)]
pub struct NewUser {
    /// `PutUser3`'s body.
    pub body: Json,
    /// The login name (also the target of the put).
    pub login_name: String,
}

/// `ImportService1.svc/PutUser3` body from flat attributes. `loginName` is
/// required; `active` (default true) becomes `securityConfiguration.isLoginEnabled`.
/// Note Replicon's spelling: `firstname`/`lastname` here, `firstName` elsewhere.
pub fn put_user_body(attributes: &[Attribute]) -> Result<NewUser, ConnectorError> {
    let mut user = Map::new();
    let mut login_name = None;
    let mut active = true;
    for a in attributes {
        let name = a.name.as_str();
        match name {
            "loginName" => login_name = text_of(name, &a.value)?.filter(|l| !l.is_empty()),
            "active" => active = bool_of(name, &a.value)?.unwrap_or(true),
            "firstName" | "lastName" | "emailAddress" | "employeeId" => {
                let key = match name {
                    "firstName" => "firstname",
                    "lastName" => "lastname",
                    other => other,
                };
                if let Some(v) = text_of(name, &a.value)? {
                    user.insert(key.into(), Json::String(v));
                }
            }
            other => return Err(unknown_attribute(other)),
        }
    }
    let Some(login_name) = login_name else {
        return Err(ConnectorError::invalid_input(
            "a Replicon user needs a `loginName` (the default mapping fills it from userPrincipalName)",
        ));
    };
    user.insert("target".into(), json!({ "loginName": login_name }));
    user.insert(
        "securityConfiguration".into(),
        json!({"isLoginEnabled": active, "loginName": login_name}),
    );
    Ok(NewUser {
        body: json!({ "user": Json::Object(user) }),
        login_name,
    })
}

/// The body of an update and whether it changes the login state.
#[derive(Debug, PartialEq)]
pub struct Modifications {
    /// `ImportService2.svc/CreateUserOrApplyModifications` body, `None` when
    /// no field changes.
    pub body: Option<Json>,
    /// `Some(enabled)` when `active` was among the changes.
    pub active: Option<bool>,
}

/// `CreateUserOrApplyModifications` body with only the changed fields
/// (`{"field":{"value":…}}`; a `null` clears the field).
pub fn modifications_body(
    uri: &str,
    changes: &[Attribute],
) -> Result<Modifications, ConnectorError> {
    let uri = user_uri(uri)?;
    let mut modifications = Map::new();
    let mut active = None;
    for a in changes {
        let name = a.name.as_str();
        match name {
            "active" => active = bool_of(name, &a.value)?,
            "loginName" | "firstName" | "lastName" | "emailAddress" | "employeeId" => {
                let value = text_of(name, &a.value)?;
                if name == "loginName" && value.as_deref().is_none_or(str::is_empty) {
                    return Err(ConnectorError::invalid_input(
                        "a Replicon user's `loginName` cannot be cleared",
                    ));
                }
                modifications.insert(
                    name.into(),
                    json!({ "value": value.map(Json::String).unwrap_or(Json::Null) }),
                );
            }
            other => return Err(unknown_attribute(other)),
        }
    }
    let body = (!modifications.is_empty()).then(|| {
        json!({
            "target": target(Some(uri), None, None),
            "modifications": Json::Object(modifications),
        })
    });
    Ok(Modifications { body, active })
}

// --------------------------------------------------------------- responses

/// The `d` of a successful answer, or the mapped error.
pub fn result(response: Response) -> Result<Json, ConnectorError> {
    let response = check(response)?;
    let body: Json = response.json()?;
    match body {
        Json::Object(mut o) if o.contains_key("d") => Ok(o.remove("d").unwrap_or(Json::Null)),
        other => Err(ConnectorError::other(format!(
            "Replicon's answer has no `d` envelope: {}",
            errors::truncate(&other.to_string(), 200)
        ))),
    }
}

fn text_field(v: &Json, key: &str) -> Option<String> {
    match v.get(key)? {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A user from `BulkGetUsers3`'s `userDetails` (or a bare user object).
pub fn user_object(details: &Json) -> Result<TargetObject, ConnectorError> {
    let details = details.get("userDetails").unwrap_or(details);
    let id = text_field(details, "uri")
        .ok_or_else(|| ConnectorError::other("Replicon returned a user without a uri"))?;
    let mut attributes = Vec::new();
    for field in [
        "displayText",
        "loginName",
        "firstName",
        "lastName",
        "emailAddress",
        "employeeId",
        "slug",
    ] {
        if let Some(v) = text_field(details, field) {
            attributes.push(Attribute::new(field, v));
        }
    }
    let enabled = details
        .get("isEnabled")
        .or_else(|| details.pointer("/securityConfiguration/isLoginEnabled"))
        .and_then(Json::as_bool);
    if let Some(enabled) = enabled {
        attributes.push(Attribute::new("active", enabled));
    }
    Ok(TargetObject { id, attributes })
}

/// The users of a `BulkGetUsers3` answer (`d`: a list of `{userDetails}`).
pub fn bulk_users(d: &Json) -> Result<Vec<TargetObject>, ConnectorError> {
    d.as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter(|u| !u.is_null())
        .map(user_object)
        .collect()
}

fn cell_value(cell: &Json) -> Option<Value> {
    if let Some(b) = cell.get("boolValue").and_then(Json::as_bool) {
        return Some(Value::Boolean(b));
    }
    match cell.get("textValue") {
        Some(Json::String(s)) => Some(Value::Text(s.clone())),
        Some(Json::Number(n)) => Some(Value::Text(n.to_string())),
        _ => None,
    }
}

/// The users of a `GetData` answer (`d.rows[].cells[]`, one cell per
/// requested column, in the order of `d.header.columns` when present).
pub fn rows(d: &Json) -> Result<Vec<TargetObject>, ConnectorError> {
    let header: Vec<String> = d
        .pointer("/header/columns")
        .and_then(Json::as_array)
        .map(|cols| {
            cols.iter()
                .map(|c| {
                    c.get("uri")
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_else(|| COLUMNS.iter().map(|(c, _)| c.to_string()).collect());
    let mut out = Vec::new();
    for row in d
        .get("rows")
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let cells = row
            .get("cells")
            .and_then(Json::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut id = None;
        let mut attributes = Vec::new();
        for (column, cell) in header.iter().zip(cells) {
            if column == COLUMN_USER {
                id = text_field(cell, "uri");
            }
            let Some((_, attribute)) = COLUMNS.iter().find(|(c, _)| c == column) else {
                continue;
            };
            if let Some(v) = cell_value(cell) {
                attributes.push(Attribute::new(*attribute, v));
            }
        }
        let id = id.ok_or_else(|| {
            ConnectorError::other("Replicon's user list has a row without a user uri")
        })?;
        out.push(TargetObject { id, attributes });
    }
    Ok(out)
}

/// The number of rows in a `GetData` answer.
pub fn row_count(d: &Json) -> usize {
    d.get("rows").and_then(Json::as_array).map_or(0, Vec::len)
}

// ------------------------------------------------------------------ errors

/// Replicon's error object (`{"error":{…}}`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorObject {
    /// `code` (`Sender` / `Receiver`).
    pub code: String,
    /// `type`, e.g. `InvalidUserTargetParameterError1`.
    pub kind: String,
    /// `reason`.
    pub reason: String,
    /// `details.displayText`.
    pub display_text: String,
}

impl ErrorObject {
    /// `Type: display text` (or the reason when there is no display text).
    pub fn summary(&self) -> String {
        let text = if self.display_text.is_empty() {
            &self.reason
        } else {
            &self.display_text
        };
        match (self.kind.is_empty(), text.is_empty()) {
            (false, false) => format!("{}: {text}", self.kind),
            (false, true) => self.kind.clone(),
            (true, _) => text.clone(),
        }
    }

    fn is_duplicate(&self) -> bool {
        let kind = self.kind.to_ascii_lowercase();
        let text = format!("{} {}", self.reason, self.display_text).to_ascii_lowercase();
        kind.contains("duplicate")
            || kind.contains("notunique")
            || kind.contains("alreadyexists")
            || text.contains("already exists")
            || text.contains("already in use")
            || text.contains("must be unique")
    }

    fn is_not_found(&self) -> bool {
        let kind = self.kind.to_ascii_lowercase();
        kind.starts_with("invalidusertargetparametererror")
            || kind.contains("notfound")
            || kind.contains("nosuch")
    }
}

/// Parse Replicon's error object from a body.
pub fn error_object(body: &[u8]) -> Option<ErrorObject> {
    let v: Json = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?.as_object()?;
    let s = |k: &str| e.get(k).and_then(Json::as_str).unwrap_or("").to_string();
    Some(ErrorObject {
        code: s("code"),
        kind: s("type"),
        reason: s("reason"),
        display_text: e
            .get("details")
            .and_then(|d| d.get("displayText"))
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string(),
    })
}

/// Map a non-2xx answer. HTTP 400 carries Replicon's error object: a
/// duplicate (type or text) → `Conflict`; an unknown user target
/// (`InvalidUserTargetParameterError1`, `…NotFound…`) → `NotFound`; anything
/// else (validation) → `InvalidInput` with the display text. 401 →
/// `Unauthorized`, 403 → `Forbidden`, 429 → `RateLimited` with `Retry-After`,
/// 5xx → `Transient`.
pub fn error(response: &Response) -> ConnectorError {
    let object = error_object(&response.body);
    if response.status == 400
        && let Some(e) = &object
    {
        let message = errors::truncate(
            &format!("HTTP 400 Replicon {}", e.summary()),
            errors::MAX_MESSAGE_LEN,
        );
        return if e.is_duplicate() {
            ConnectorError::Conflict(Conflict {
                message,
                existing_id: None,
            })
        } else if e.is_not_found() {
            ConnectorError::NotFound(message)
        } else {
            ConnectorError::InvalidInput(message)
        };
    }
    let mapped = errors::from_response(response);
    let mapped = if response.status == 404 {
        // A 404 is a wrong URL (Replicon answers unknown objects with 400),
        // never "this object is gone": the engine would drop the link.
        ConnectorError::Other(format!(
            "{} (the service URL does not exist: the application root or operation is wrong)",
            mapped.message()
        ))
    } else {
        mapped
    };
    match object {
        Some(e) => {
            let message = errors::truncate(
                &format!("HTTP {} Replicon {}", response.status, e.summary()),
                errors::MAX_MESSAGE_LEN,
            );
            with_message(mapped, message)
        }
        None => mapped,
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

/// Say which credentials were refused, on top of Replicon's message.
pub fn explain_unauthorized(s: &Settings, err: ConnectorError) -> ConnectorError {
    match err {
        ConnectorError::Unauthorized(m) => ConnectorError::Unauthorized(format!(
            "{m}: Replicon refused the sign-in of '{}'; check the `{LOGIN}` setting, the \
             `{PASSWORD_SECRET}` secret and that the login is enabled",
            s.principal()
        )),
        other => other,
    }
}

/// Add the existing user's uri to a conflict, when exactly one was found.
pub fn conflict_with(err: ConnectorError, existing: &[TargetObject]) -> ConnectorError {
    match (err, existing) {
        (ConnectorError::Conflict(mut c), [one]) => {
            c.existing_id = Some(one.id.clone());
            c.message = format!("{} (existing user {})", c.message, one.id);
            ConnectorError::Conflict(c)
        }
        (err, _) => err,
    }
}

/// Whether a failure means the cached application root no longer serves the
/// API (404, or the host refused the connection), so discovery should run again.
pub fn root_is_stale(outcome: &Result<Response, ConnectorError>) -> bool {
    match outcome {
        Ok(r) => r.status == 404,
        Err(ConnectorError::Transient(m)) => m.starts_with("connection failed"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn settings() -> Settings {
        Settings::from_lookup(|n| match n {
            "company_key" => Some("Acme".into()),
            "login" => Some("admin".into()),
            _ => None,
        })
        .unwrap()
    }

    const ROOT: &str = "https://na5.replicon.com/Acme/";

    #[test]
    fn settings_default_and_check() {
        let s = settings();
        assert_eq!(s.discovery, "https://global.replicon.com");
        assert_eq!(s.principal(), "Acme\\admin");
        let t = Settings::from_lookup(|n| match n {
            "company_key" => Some(" Acme ".into()),
            "login" => Some("admin".into()),
            "discovery_url" => Some("http://127.0.0.1:9/".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(t.discovery, "http://127.0.0.1:9");
        assert_eq!(t.company_key, "Acme");
        let bad = Settings::from_lookup(|n| match n {
            "company_key" => Some("Ac\\me".into()),
            "login" => Some("admin".into()),
            _ => None,
        });
        assert!(matches!(bad, Err(ConnectorError::InvalidInput(m)) if m.contains("company_key")));
        let missing = Settings::from_lookup(|n| (n == "company_key").then(|| "x".to_string()));
        assert!(matches!(missing, Err(ConnectorError::InvalidInput(m)) if m.contains("login")));
        let scheme = Settings::from_lookup(|n| match n {
            "company_key" => Some("Acme".into()),
            "login" => Some("admin".into()),
            "discovery_url" => Some("global.replicon.com".into()),
            _ => None,
        });
        assert!(scheme.is_err());
    }

    #[test]
    fn discovery_request_and_answer() {
        let s = settings();
        let r = discover(&s);
        assert_eq!(
            r.url(),
            "https://global.replicon.com/DiscoveryService1.svc/GetTenantEndpointDetails"
        );
        assert!(r.auth_ref().is_none(), "discovery is anonymous");
        let body: Json = serde_json::from_str(&r.body_text().unwrap()).unwrap();
        assert_eq!(body, json!({"tenant": {"companyKey": "Acme"}}));
        let ok = Response::new(
            200,
            vec![],
            r#"{"d":{"applicationRootUrl":"https://na5.replicon.com/Acme","tenant":{}}}"#,
        );
        assert_eq!(discovered_root(&s, ok).unwrap(), ROOT);
        let unknown = Response::new(
            400,
            vec![],
            r#"{"error":{"code":"Sender","reason":"No tenant","details":{"displayText":"No tenant has the company key 'Acme'."},"type":"TenantNotFoundError1"}}"#,
        );
        match discovered_root(&s, unknown) {
            Err(ConnectorError::InvalidInput(m)) => {
                assert!(
                    m.contains("company key 'Acme'") && m.contains("company_key"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
        let null = Response::new(200, vec![], r#"{"d":null}"#);
        assert!(matches!(
            discovered_root(&s, null),
            Err(ConnectorError::InvalidInput(_))
        ));
    }

    #[test]
    fn rpc_uses_basic_company_login_and_the_password_by_reference() {
        let s = settings();
        let r = rpc(&s, ROOT, "UserService1", "GetUser2", &get_user_body("jdoe"));
        assert_eq!(
            r.url(),
            "https://na5.replicon.com/Acme/services/UserService1.svc/GetUser2"
        );
        match r.auth_ref() {
            Some(Auth::Basic { username, password }) => {
                assert_eq!(username.as_literal().as_deref(), Some("Acme\\admin"));
                assert_eq!(password.secret_names(), vec!["password"]);
                assert!(password.as_literal().is_none());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            r.header_value("X-Replicon-Application")
                .and_then(Template::as_literal)
                .as_deref(),
            Some(application_header().as_str())
        );
        let body: Json = serde_json::from_str(&r.body_text().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"user":{"uri":null,"loginName":"jdoe","employeeId":null,"parameterCorrelationId":null}})
        );
    }

    #[test]
    fn put_user_body_shape() {
        let u = put_user_body(&[
            Attribute::new("loginName", "ada@example.com"),
            Attribute::new("firstName", "Ada"),
            Attribute::new("lastName", "Lovelace"),
            Attribute::new("emailAddress", "ada@example.com"),
            Attribute::new("employeeId", Value::Integer(1001)),
            Attribute::new("active", false),
        ])
        .unwrap();
        assert_eq!(u.login_name, "ada@example.com");
        assert_eq!(
            u.body,
            json!({"user":{"target":{"loginName":"ada@example.com"},"firstname":"Ada","lastname":"Lovelace",
                   "emailAddress":"ada@example.com","employeeId":"1001",
                   "securityConfiguration":{"isLoginEnabled":false,"loginName":"ada@example.com"}}})
        );
        assert!(matches!(
            put_user_body(&[Attribute::new("firstName", "A")]),
            Err(ConnectorError::InvalidInput(m)) if m.contains("loginName")
        ));
        assert!(matches!(
            put_user_body(&[Attribute::new("loginName", "a"), Attribute::new("title", "x")]),
            Err(ConnectorError::InvalidInput(m)) if m.contains("`title`")
        ));
    }

    #[test]
    fn modifications_only_carry_changes() {
        let uri = "urn:replicon-tenant:acme:user:7";
        let m = modifications_body(
            uri,
            &[
                Attribute::new("lastName", "King"),
                Attribute::new("emailAddress", Value::Null),
            ],
        )
        .unwrap();
        assert_eq!(m.active, None);
        assert_eq!(
            m.body.unwrap(),
            json!({"target":{"uri":uri,"loginName":null,"employeeId":null,"parameterCorrelationId":null},
                   "modifications":{"lastName":{"value":"King"},"emailAddress":{"value":null}}})
        );
        let only_active = modifications_body(uri, &[Attribute::new("active", false)]).unwrap();
        assert_eq!(only_active.body, None);
        assert_eq!(only_active.active, Some(false));
        assert!(modifications_body("42", &[]).is_err());
        assert!(modifications_body(uri, &[Attribute::new("loginName", Value::Null)]).is_err());
    }

    #[test]
    fn get_data_paging_and_filters() {
        let b = get_data_body(3, 1000, Some((filter_for("emailAddress").unwrap(), "a@x")));
        assert_eq!(b["page"], 3);
        assert_eq!(b["pagesize"], MAX_PAGE_SIZE);
        assert_eq!(b["columnUris"].as_array().unwrap().len(), COLUMNS.len());
        assert_eq!(
            b["filterExpression"]["leftExpression"]["filterDefinitionUri"],
            "urn:replicon:user-list-filter:email-address"
        );
        assert_eq!(
            b["filterExpression"]["rightExpression"]["value"]["text"],
            "a@x"
        );
        assert_eq!(get_data_body(1, 10, None)["filterExpression"], Json::Null);
        assert_eq!(cursor_page(None).unwrap(), 1);
        assert_eq!(cursor_page(Some("4")).unwrap(), 4);
        assert!(cursor_page(Some("0")).is_err());
        assert!(cursor_page(Some("abc")).is_err());
        assert_eq!(filter_for("title"), None);
    }

    #[test]
    fn rows_and_details_parse() {
        let d = json!({"header":{"columns":[{"uri":COLUMN_LOGIN_NAME},{"uri":COLUMN_USER},{"uri":COLUMN_LOGIN_ENABLED}]},
                       "rows":[{"cells":[{"textValue":"ada"},{"uri":"urn:replicon-tenant:acme:user:2","textValue":"Lovelace, Ada"},{"boolValue":false}]}]});
        let objects = rows(&d).unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].id, "urn:replicon-tenant:acme:user:2");
        assert_eq!(
            objects[0].attribute("loginName"),
            Some(&Value::Text("ada".into()))
        );
        assert_eq!(
            objects[0].attribute("displayText"),
            Some(&Value::Text("Lovelace, Ada".into()))
        );
        assert_eq!(objects[0].attribute("active"), Some(&Value::Boolean(false)));
        assert_eq!(row_count(&json!({"rows": []})), 0);
        assert!(rows(&json!({"rows":[{"cells":[]}]})).is_err());

        let bulk = json!([{"userDetails":{"uri":"urn:replicon-tenant:acme:user:3","loginName":"bob","firstName":"Bob","isEnabled":true}}]);
        let users = bulk_users(&bulk).unwrap();
        assert_eq!(users[0].id, "urn:replicon-tenant:acme:user:3");
        assert_eq!(
            users[0].attribute("firstName"),
            Some(&Value::Text("Bob".into()))
        );
        assert_eq!(users[0].attribute("active"), Some(&Value::Boolean(true)));
        assert!(user_uri("urn:replicon-tenant:acme:user:3").is_ok());
        assert!(user_uri("urn:replicon-tenant::user:3").is_err());
        assert!(user_uri("3").is_err());
    }

    fn replicon_400(kind: &str, reason: &str, display: &str) -> Response {
        Response::new(
            400,
            vec![],
            json!({"error":{"code":"Sender","correlationId":"c-1","reason":reason,
                            "details":{"displayText":display},"type":kind}})
            .to_string(),
        )
    }

    #[test]
    fn errors_map_by_type_and_status() {
        let dup = replicon_400(
            "DuplicateLoginNameError1",
            "Login name must be unique",
            "The login name 'ada' is already in use.",
        );
        match error(&dup) {
            ConnectorError::Conflict(c) => {
                assert!(c.message.contains("already in use"), "{}", c.message);
                assert_eq!(c.existing_id, None);
            }
            other => panic!("{other:?}"),
        }
        let nf = replicon_400(
            "InvalidUserTargetParameterError1",
            "Invalid user target",
            "No user matches the target.",
        );
        assert!(
            matches!(error(&nf), ConnectorError::NotFound(m) if m.contains("InvalidUserTargetParameterError1"))
        );
        let invalid = replicon_400(
            "ValidationError1",
            "Validation failed",
            "Last name is required.",
        );
        assert_eq!(
            error(&invalid),
            ConnectorError::InvalidInput(
                "HTTP 400 Replicon ValidationError1: Last name is required.".into()
            )
        );
        let rl = Response::new(
            429,
            vec![("Retry-After".into(), "12".into())],
            "Too many requests",
        );
        match error(&rl) {
            ConnectorError::RateLimited(r) => assert_eq!(r.retry_after_ms, Some(12_000)),
            other => panic!("{other:?}"),
        }
        let unauth = Response::new(
            401,
            vec![],
            r#"{"error":{"code":"Sender","reason":"Authentication failed","type":"AuthenticationFailedError1"}}"#,
        );
        match explain_unauthorized(&settings(), error(&unauth)) {
            ConnectorError::Unauthorized(m) => {
                assert!(
                    m.contains("AuthenticationFailedError1") && m.contains("Acme\\admin"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            error(&Response::new(503, vec![], "")),
            ConnectorError::Transient(_)
        ));
        assert!(matches!(
            error(&Response::new(404, vec![], "not here")),
            ConnectorError::Other(_)
        ));
        let with = conflict_with(
            error(&dup),
            &[TargetObject {
                id: "urn:replicon-tenant:acme:user:9".into(),
                attributes: vec![],
            }],
        );
        assert!(
            matches!(with, ConnectorError::Conflict(c) if c.existing_id.as_deref() == Some("urn:replicon-tenant:acme:user:9"))
        );
    }

    #[test]
    fn stale_roots_are_404s_and_refused_connections() {
        assert!(root_is_stale(&Ok(Response::new(404, vec![], ""))));
        assert!(!root_is_stale(&Ok(Response::new(400, vec![], ""))));
        assert!(root_is_stale(&Err(ConnectorError::Transient(
            "connection failed: refused".into()
        ))));
        assert!(!root_is_stale(&Err(ConnectorError::Transient(
            "HTTP 503".into()
        ))));
    }

    #[test]
    fn envelope() {
        let d = result(Response::new(200, vec![], r#"{"d":{"uri":"x"}}"#)).unwrap();
        assert_eq!(d, json!({"uri":"x"}));
        assert!(result(Response::new(200, vec![], r#"{"uri":"x"}"#)).is_err());
    }
}
