//! Host-side domain types: objects, attribute values and the connector error.
//!
//! These mirror the WIT contract's `types` interface but are owned by the host,
//! serialisable, and independent of the bindings, so the rest of the host (CLI,
//! later the sync engine and store) never touches generated code.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The kind of object an operation acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    /// A user account.
    User,
    /// A group.
    Group,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::User => "user",
            ObjectKind::Group => "group",
        })
    }
}

/// One attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value; in an update this clears the attribute.
    Null,
    /// A boolean.
    Boolean(bool),
    /// An integer.
    Integer(i64),
    /// A floating-point number.
    Number(f64),
    /// Text.
    Text(String),
    /// A list of strings.
    TextList(Vec<String>),
}

impl Value {
    /// Render as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Boolean(b) => serde_json::Value::Bool(*b),
            Value::Integer(i) => serde_json::Value::from(*i),
            Value::Number(n) => serde_json::Number::from_f64(*n)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Text(s) => serde_json::Value::String(s.clone()),
            Value::TextList(l) => {
                serde_json::Value::Array(l.iter().cloned().map(serde_json::Value::String).collect())
            }
        }
    }

    /// Convert a JSON value; `what` names the attribute for the error message.
    pub fn from_json(what: &str, v: &serde_json::Value) -> Result<Self, String> {
        Ok(match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Boolean(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Integer(i),
                None => Value::Number(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => Value::Text(s.clone()),
            serde_json::Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        serde_json::Value::String(s) => out.push(s.clone()),
                        other => {
                            return Err(format!(
                                "attribute '{what}' item {i} is {other}, but lists may only hold strings; \
                                 flatten complex values into paths such as 'emails[type eq \"work\"].value'"
                            ));
                        }
                    }
                }
                Value::TextList(out)
            }
            serde_json::Value::Object(_) => {
                return Err(format!(
                    "attribute '{what}' is a JSON object; attributes are flat: use paths such as \
                     'name.givenName' instead of nested objects"
                ));
            }
        })
    }
}

/// One attribute: a SCIM-style path and a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// SCIM-style path, e.g. `name.givenName`.
    pub name: String,
    /// The value.
    pub value: Value,
}

/// Attributes in the order the connector or user gave them.
pub type Attributes = Vec<Attribute>;

/// Convert a flat JSON object (`{"userName": "a", "active": true}`) into attributes.
pub fn attributes_from_json(v: &serde_json::Value) -> Result<Attributes, String> {
    let obj = v.as_object().ok_or_else(|| {
        format!(
            "expected a JSON object of attributes, found {}",
            json_kind(v)
        )
    })?;
    obj.iter()
        .map(|(k, v)| {
            Ok(Attribute {
                name: k.clone(),
                value: Value::from_json(k, v)?,
            })
        })
        .collect()
}

/// Render attributes as a flat JSON object.
pub fn attributes_to_json(attrs: &[Attribute]) -> serde_json::Value {
    serde_json::Value::Object(
        attrs
            .iter()
            .map(|a| (a.name.clone(), a.value.to_json()))
            .collect(),
    )
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// An object as the target holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetObject {
    /// The target's id (the anchor).
    pub id: String,
    /// Its attributes.
    pub attributes: Attributes,
}

impl TargetObject {
    /// Render as `{"id": ..., "attributes": {...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "id": self.id, "attributes": attributes_to_json(&self.attributes) })
    }
}

/// One page of a paged list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The objects on this page.
    pub objects: Vec<TargetObject>,
    /// Cursor for the next page.
    pub next_cursor: Option<String>,
    /// Total, when the target reports it.
    pub total: Option<u64>,
}

/// An error reported by a connector, classified so the host can act on it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectorError {
    /// The object does not exist in the target.
    #[error("not found: {0}")]
    NotFound(String),
    /// The object already exists.
    #[error("conflict: {message}{}", existing_id.as_ref().map(|i| format!(" (existing id {i})")).unwrap_or_default())]
    Conflict {
        /// What the target said.
        message: String,
        /// The existing object's id, when known.
        existing_id: Option<String>,
    },
    /// The target asked us to slow down.
    #[error("rate limited: {message}{}", retry_after.map(|d| format!(" (retry after {} ms)", d.as_millis())).unwrap_or_default())]
    RateLimited {
        /// What the target said.
        message: String,
        /// How long to wait, when the target said so.
        retry_after: Option<Duration>,
    },
    /// The credentials were rejected.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The credentials lack a permission.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The request can never succeed as it is.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A temporary failure: retry.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The operation is not supported.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The host refused a request the connector tried to make.
    #[error("denied by host policy: {0}")]
    Denied(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl ConnectorError {
    /// The same error with its text (and existing id) passed through `f`:
    /// the host redacts secrets from every guest-supplied message this way.
    pub fn map_text(self, f: impl Fn(&str) -> String) -> Self {
        use ConnectorError as E;
        match self {
            E::NotFound(m) => E::NotFound(f(&m)),
            E::Conflict {
                message,
                existing_id,
            } => E::Conflict {
                message: f(&message),
                existing_id: existing_id.map(|i| f(&i)),
            },
            E::RateLimited {
                message,
                retry_after,
            } => E::RateLimited {
                message: f(&message),
                retry_after,
            },
            E::Unauthorized(m) => E::Unauthorized(f(&m)),
            E::Forbidden(m) => E::Forbidden(f(&m)),
            E::InvalidInput(m) => E::InvalidInput(f(&m)),
            E::Transient(m) => E::Transient(f(&m)),
            E::Unsupported(m) => E::Unsupported(f(&m)),
            E::Denied(m) => E::Denied(f(&m)),
            E::Other(m) => E::Other(f(&m)),
        }
    }

    /// A short machine code for logs and the CLI's exit status.
    pub fn code(&self) -> &'static str {
        match self {
            ConnectorError::NotFound(_) => "not-found",
            ConnectorError::Conflict { .. } => "conflict",
            ConnectorError::RateLimited { .. } => "rate-limited",
            ConnectorError::Unauthorized(_) => "unauthorized",
            ConnectorError::Forbidden(_) => "forbidden",
            ConnectorError::InvalidInput(_) => "invalid-input",
            ConnectorError::Transient(_) => "transient",
            ConnectorError::Unsupported(_) => "unsupported",
            ConnectorError::Denied(_) => "denied",
            ConnectorError::Other(_) => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_json_round_trips() {
        let v = serde_json::json!({"userName": "a@b", "active": true, "n": 3, "tags": ["x", "y"], "gone": null});
        let attrs = attributes_from_json(&v).unwrap();
        assert_eq!(attrs.len(), 5);
        assert_eq!(attributes_to_json(&attrs), v);
    }

    #[test]
    fn nested_objects_are_refused_with_a_hint() {
        let v = serde_json::json!({"name": {"givenName": "A"}});
        let err = attributes_from_json(&v).unwrap_err();
        assert!(err.contains("name.givenName"), "{err}");
        let err = attributes_from_json(&serde_json::json!([1])).unwrap_err();
        assert!(err.contains("an array"), "{err}");
        let err = attributes_from_json(&serde_json::json!({"l": [1]})).unwrap_err();
        assert!(err.contains("item 0"), "{err}");
    }

    #[test]
    fn errors_display_their_details() {
        let e = ConnectorError::Conflict {
            message: "dup".into(),
            existing_id: Some("42".into()),
        };
        assert_eq!(e.to_string(), "conflict: dup (existing id 42)");
        let e = ConnectorError::RateLimited {
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(
            e.to_string(),
            "rate limited: slow down (retry after 2000 ms)"
        );
        assert_eq!(e.code(), "rate-limited");
    }
}

/// What a connector can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Users.
    Users,
    /// Groups.
    Groups,
    /// Group memberships.
    Memberships,
    /// Disable and enable (soft delete).
    Disable,
    /// Delete.
    Delete,
    /// Paged listing for import.
    List,
}

/// When a mapping applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApplyOn {
    /// On create and update.
    Always,
    /// On create only.
    CreateOnly,
}

/// A default attribute mapping shipped by a connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    /// Target attribute path.
    pub target: String,
    /// Source expression.
    pub source: String,
    /// Matching precedence (1 first), if a matching attribute.
    pub matching_precedence: Option<u32>,
    /// When it applies.
    pub apply: ApplyOn,
}

/// A setting a connector needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingSpec {
    /// Name.
    pub name: String,
    /// What it is.
    pub description: String,
    /// Whether the connection must set it.
    pub required: bool,
    /// Default.
    pub default_value: Option<String>,
}

/// Where the host may place a secret's value in a request (WIT
/// `secret-placement`). Written `bearer`, `basic`, `header:<name>` and
/// `login:<exchange>` in configuration and in `plugin inspect`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Placement {
    /// `Authorization: Bearer <value>`.
    Bearer,
    /// A part of `Authorization: Basic ...`.
    Basic,
    /// The named request header (compared case-insensitively).
    Header(String),
    /// A body field of the named login exchange, built by the host.
    Login(String),
}

impl Placement {
    /// Whether this is one of the auth-header placements a plain grant
    /// confirms (everything but `login`).
    pub fn is_header(&self) -> bool {
        !matches!(self, Placement::Login(_))
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Bearer => f.write_str("bearer"),
            Placement::Basic => f.write_str("basic"),
            Placement::Header(h) => write!(f, "header:{h}"),
            Placement::Login(l) => write!(f, "login:{l}"),
        }
    }
}

/// A placement string that is none of `bearer`, `basic`, `header:<name>`,
/// `login:<exchange>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a secret placement: use \"bearer\", \"basic\", \"header:<name>\" or \"login:<exchange>\""
)]
pub struct BadPlacement(pub String);

impl std::str::FromStr for Placement {
    type Err = BadPlacement;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPlacement(s.to_string());
        match s.split_once(':') {
            None if s == "bearer" => Ok(Placement::Bearer),
            None if s == "basic" => Ok(Placement::Basic),
            Some(("header", h)) if is_token(h) => Ok(Placement::Header(h.to_string())),
            Some(("login", l)) if !l.is_empty() && l.len() <= 64 => {
                Ok(Placement::Login(l.to_string()))
            }
            _ => Err(bad()),
        }
    }
}

/// An HTTP header name (RFC 9110 token), at most 64 characters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A secret a connector refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretSpec {
    /// Name the plugin uses.
    pub name: String,
    /// What it is.
    pub description: String,
    /// Whether the connection must grant it.
    pub required: bool,
    /// Where it may be placed; empty means bearer or basic.
    #[serde(default)]
    pub placements: Vec<Placement>,
}

impl SecretSpec {
    /// The declared placements, with the default (bearer, basic) filled in.
    pub fn declared_placements(&self) -> Vec<Placement> {
        if self.placements.is_empty() {
            vec![Placement::Bearer, Placement::Basic]
        } else {
            self.placements.clone()
        }
    }
}

/// Where a login exchange's body field comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoginValue {
    /// Literal text.
    Text(String),
    /// A connection setting's value.
    Setting(String),
    /// A granted secret's value.
    Secret(String),
}

/// How a login exchange's body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyFormat {
    /// A JSON object of string fields.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

/// Where a derived secret is captured from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaptureSource {
    /// A JSON pointer into the response body.
    JsonPointer(String),
    /// A response header.
    Header(String),
    /// A `Set-Cookie` cookie by name.
    Cookie(String),
}

/// A secret captured by the host from a login exchange's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerivedSpec {
    /// Name the plugin uses.
    pub name: String,
    /// What it is.
    pub description: String,
    /// Where it is captured from.
    pub source: CaptureSource,
    /// Lifetime after capture.
    pub ttl_seconds: u32,
    /// Where it may be placed (never `login`).
    pub placements: Vec<Placement>,
}

/// A login exchange a connector declares (WIT `login-exchange`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginExchange {
    /// Name, referred to by `login:<name>` placements.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The request path must end with this.
    pub path_suffix: String,
    /// Body encoding.
    pub body_format: BodyFormat,
    /// Body fields, in order.
    pub fields: Vec<(String, LoginValue)>,
    /// Derived secrets captured from the response.
    pub captures: Vec<DerivedSpec>,
}

/// A connector's self-description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Machine name.
    pub name: String,
    /// Connector version.
    pub version: String,
    /// Description.
    pub description: String,
    /// Vendor or author.
    pub vendor: String,
    /// Capabilities.
    pub capabilities: Vec<Capability>,
    /// Settings.
    pub settings: Vec<SettingSpec>,
    /// Secrets.
    pub secrets: Vec<SecretSpec>,
    /// Declared host patterns.
    pub hosts: Vec<String>,
    /// Default user mappings.
    pub user_mappings: Vec<Mapping>,
    /// Default group mappings.
    pub group_mappings: Vec<Mapping>,
    /// Login exchanges.
    #[serde(default)]
    pub logins: Vec<LoginExchange>,
}
