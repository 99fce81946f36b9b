//! Convenience constructors and accessors on the generated contract types.

use crate::{
    ApplyOn, Attribute, BodyFormat, CaptureSource, ConnectorError, DerivedSecret, LoginExchange,
    LoginField, LoginValue, Mapping, ObjectKind, SecretPlacement, SecretSpec, SettingSpec,
    TargetObject, Value,
};

impl Mapping {
    /// A mapping applied on create and update, not used for matching.
    pub fn new(target: impl Into<String>, source: impl Into<String>) -> Self {
        Mapping {
            target: target.into(),
            source: source.into(),
            matching_precedence: None,
            apply: ApplyOn::Always,
        }
    }

    /// Use this mapping to match existing objects, with the given precedence
    /// (1 is tried first).
    pub fn matching(mut self, precedence: u32) -> Self {
        self.matching_precedence = Some(precedence);
        self
    }

    /// Apply this mapping only when the object is created.
    pub fn create_only(mut self) -> Self {
        self.apply = ApplyOn::CreateOnly;
        self
    }
}

impl SettingSpec {
    /// A setting the operator must provide.
    pub fn required(name: impl Into<String>, description: impl Into<String>) -> Self {
        SettingSpec {
            name: name.into(),
            description: description.into(),
            required: true,
            default_value: None,
        }
    }

    /// An optional setting, with an optional default value.
    pub fn optional(
        name: impl Into<String>,
        description: impl Into<String>,
        default_value: Option<&str>,
    ) -> Self {
        SettingSpec {
            name: name.into(),
            description: description.into(),
            required: false,
            default_value: default_value.map(str::to_string),
        }
    }
}

impl SecretSpec {
    /// A secret the connection must be granted.
    pub fn required(name: impl Into<String>, description: impl Into<String>) -> Self {
        SecretSpec {
            name: name.into(),
            description: description.into(),
            required: true,
            placements: Vec::new(),
        }
    }

    /// A secret the connector can work without.
    pub fn optional(name: impl Into<String>, description: impl Into<String>) -> Self {
        SecretSpec {
            name: name.into(),
            description: description.into(),
            required: false,
            placements: Vec::new(),
        }
    }

    /// Allow the host to place this secret at `placement` too (without any,
    /// a secret goes only into bearer or basic auth).
    pub fn placement(mut self, placement: SecretPlacement) -> Self {
        self.placements.push(placement);
        self
    }
}

impl LoginExchange {
    /// A login exchange posting a JSON body to a path ending in `path_suffix`.
    pub fn json(
        name: impl Into<String>,
        description: impl Into<String>,
        path_suffix: impl Into<String>,
    ) -> Self {
        LoginExchange {
            name: name.into(),
            description: description.into(),
            path_suffix: path_suffix.into(),
            body_format: BodyFormat::Json,
            fields: Vec::new(),
            captures: Vec::new(),
        }
    }

    /// A login exchange posting a form-encoded body.
    pub fn form(
        name: impl Into<String>,
        description: impl Into<String>,
        path_suffix: impl Into<String>,
    ) -> Self {
        LoginExchange {
            body_format: BodyFormat::Form,
            ..LoginExchange::json(name, description, path_suffix)
        }
    }

    /// A body field of literal text.
    pub fn text_field(mut self, name: impl Into<String>, text: impl Into<String>) -> Self {
        self.fields.push(LoginField {
            name: name.into(),
            value: LoginValue::Text(text.into()),
        });
        self
    }

    /// A body field holding a connection setting's value.
    pub fn setting_field(mut self, name: impl Into<String>, setting: impl Into<String>) -> Self {
        self.fields.push(LoginField {
            name: name.into(),
            value: LoginValue::Setting(setting.into()),
        });
        self
    }

    /// A body field holding a secret's value (the secret must be declared
    /// with placement `login(<this exchange>)`).
    pub fn secret_field(mut self, name: impl Into<String>, secret: impl Into<String>) -> Self {
        self.fields.push(LoginField {
            name: name.into(),
            value: LoginValue::Secret(secret.into()),
        });
        self
    }

    /// A derived secret the host captures from the response.
    pub fn capture(mut self, derived: DerivedSecret) -> Self {
        self.captures.push(derived);
        self
    }
}

impl DerivedSecret {
    /// A derived secret captured from `source`, valid for `ttl_seconds`,
    /// placed in the header `header` (e.g. `Authorization`).
    pub fn header(
        name: impl Into<String>,
        description: impl Into<String>,
        source: CaptureSource,
        ttl_seconds: u32,
        header: impl Into<String>,
    ) -> Self {
        DerivedSecret {
            name: name.into(),
            description: description.into(),
            source,
            ttl_seconds,
            placements: vec![SecretPlacement::Header(header.into())],
        }
    }
}

impl Attribute {
    /// An attribute with the given path and value.
    pub fn new(name: impl Into<String>, value: impl Into<Value>) -> Self {
        Attribute {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl Value {
    /// The text, when this is a `text` value.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, when this is a `boolean` value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// Whether this is the explicit `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A plain-text rendering of a scalar (for filters, URLs and messages);
    /// `None` for `null` and lists.
    pub fn to_plain_string(&self) -> Option<String> {
        match self {
            Value::Null | Value::TextList(_) => None,
            Value::Boolean(b) => Some(b.to_string()),
            Value::Integer(i) => Some(i.to_string()),
            Value::Number(n) => Some(n.to_string()),
            Value::Text(s) => Some(s.clone()),
        }
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::Text(value.to_string())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::Text(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Boolean(value)
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Integer(value)
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Number(value)
    }
}

impl From<Vec<String>> for Value {
    fn from(value: Vec<String>) -> Self {
        Value::TextList(value)
    }
}

impl TargetObject {
    /// The value of the attribute with this exact path, if present.
    pub fn attribute(&self, name: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| &a.value)
    }
}

impl ObjectKind {
    /// `"user"` or `"group"`, for messages.
    pub fn as_str(&self) -> &'static str {
        match self {
            ObjectKind::User => "user",
            ObjectKind::Group => "group",
        }
    }
}

impl ConnectorError {
    /// `Unsupported` naming the operation, e.g. `unsupported("disable of groups")`.
    pub fn unsupported(operation: impl AsRef<str>) -> Self {
        ConnectorError::Unsupported(format!(
            "this connector does not support {}",
            operation.as_ref()
        ))
    }

    /// An `InvalidInput` error.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        ConnectorError::InvalidInput(message.into())
    }

    /// An `Other` error.
    pub fn other(message: impl Into<String>) -> Self {
        ConnectorError::Other(message.into())
    }

    /// The human-readable message of any variant.
    pub fn message(&self) -> &str {
        match self {
            ConnectorError::NotFound(m)
            | ConnectorError::Unauthorized(m)
            | ConnectorError::Forbidden(m)
            | ConnectorError::InvalidInput(m)
            | ConnectorError::Transient(m)
            | ConnectorError::Unsupported(m)
            | ConnectorError::Denied(m)
            | ConnectorError::Other(m) => m,
            ConnectorError::Conflict(c) => &c.message,
            ConnectorError::RateLimited(r) => &r.message,
        }
    }

    /// The variant's name in the contract (`not-found`, `conflict`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorError::NotFound(_) => "not-found",
            ConnectorError::Conflict(_) => "conflict",
            ConnectorError::RateLimited(_) => "rate-limited",
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
    fn mapping_builders() {
        let m = Mapping::new("userName", "[userPrincipalName]").matching(1);
        assert_eq!(m.matching_precedence, Some(1));
        assert_eq!(m.apply, ApplyOn::Always);
        assert_eq!(
            Mapping::new("a", "b").create_only().apply,
            ApplyOn::CreateOnly
        );
    }

    #[test]
    fn error_message_and_kind() {
        let e = ConnectorError::unsupported("delete");
        assert_eq!(e.kind(), "unsupported");
        assert!(e.message().contains("delete"));
    }

    #[test]
    fn target_object_lookup() {
        let o = TargetObject {
            id: "1".into(),
            attributes: vec![Attribute::new("userName", "a")],
        };
        assert_eq!(o.attribute("userName"), Some(&Value::Text("a".into())));
        assert_eq!(o.attribute("x"), None);
    }
}
