//! SCIM filter expressions (RFC 7644 §3.4.2.2).

use std::fmt;

use super::path::{AttrPath, json_literal};
use crate::{ConnectorError, Value};

/// Quote a string as a SCIM filter literal: a JSON string, so `"` and `\`
/// are escaped (`a"b` → `"a\"b"`).
pub fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// `eq`: equal.
    Eq,
    /// `ne`: not equal.
    Ne,
    /// `co`: contains.
    Co,
    /// `sw`: starts with.
    Sw,
    /// `ew`: ends with.
    Ew,
    /// `gt`: greater than.
    Gt,
    /// `ge`: greater than or equal.
    Ge,
    /// `lt`: less than.
    Lt,
    /// `le`: less than or equal.
    Le,
}

impl CompareOp {
    /// The operator keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }
}

/// A SCIM filter. Build it with the constructors and render it with
/// `to_string()`:
///
/// ```
/// use provisio_sdk::scim::Filter;
/// let f = Filter::eq("userName", "a\"b").and(Filter::eq("active", true));
/// assert_eq!(f.to_string(), r#"userName eq "a\"b" and active eq true"#);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// `path op value`.
    Compare {
        /// The attribute path.
        path: String,
        /// The operator.
        op: CompareOp,
        /// The comparison value (strings are quoted when rendered).
        value: serde_json::Value,
    },
    /// `path pr`.
    Present(String),
    /// `left and right`.
    And(Box<Filter>, Box<Filter>),
    /// `left or right`.
    Or(Box<Filter>, Box<Filter>),
    /// `not (inner)`.
    Not(Box<Filter>),
    /// `attribute[inner]`: a filter on the elements of a multi-valued attribute.
    ValuePath {
        /// The multi-valued attribute (with its schema prefix if any).
        attribute: String,
        /// The filter its elements must match.
        filter: Box<Filter>,
    },
}

impl Filter {
    /// `path op value`.
    pub fn compare(
        path: impl Into<String>,
        op: CompareOp,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        Filter::Compare {
            path: path.into(),
            op,
            value: value.into(),
        }
    }

    /// `path eq value`.
    pub fn eq(path: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        Filter::compare(path, CompareOp::Eq, value)
    }

    /// `path ne value`.
    pub fn ne(path: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        Filter::compare(path, CompareOp::Ne, value)
    }

    /// `path co value`.
    pub fn co(path: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        Filter::compare(path, CompareOp::Co, value)
    }

    /// `path sw value`.
    pub fn sw(path: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        Filter::compare(path, CompareOp::Sw, value)
    }

    /// `path pr`.
    pub fn present(path: impl Into<String>) -> Self {
        Filter::Present(path.into())
    }

    /// `self and other`.
    pub fn and(self, other: Filter) -> Self {
        Filter::And(Box::new(self), Box::new(other))
    }

    /// `self or other`.
    pub fn or(self, other: Filter) -> Self {
        Filter::Or(Box::new(self), Box::new(other))
    }

    /// `not (inner)`; also available as `!inner`.
    pub fn negate(inner: Filter) -> Self {
        Filter::Not(Box::new(inner))
    }

    /// `attribute[inner]`.
    pub fn value_path(attribute: impl Into<String>, inner: Filter) -> Self {
        Filter::ValuePath {
            attribute: attribute.into(),
            filter: Box::new(inner),
        }
    }

    /// The filter that finds objects whose flat attribute `path` equals
    /// `value`:
    ///
    /// - `userName` → `userName eq "v"`
    /// - `emails[type eq "work"].value` → `emails[type eq "work" and value eq "v"]`
    /// - `urn:…:User:manager` → `urn:…:User:manager.value eq "v"`
    /// - `active` given as `"True"`/`"False"` text → `active eq true`/`false`
    ///
    /// `null` and multi-element lists cannot be searched for (`InvalidInput`).
    pub fn for_attribute(path: &str, value: &Value) -> Result<Self, ConnectorError> {
        let parsed = AttrPath::parse(path)?;
        let json = match value {
            Value::Null => {
                return Err(ConnectorError::InvalidInput(format!(
                    "cannot search for `{path}` equal to null"
                )));
            }
            Value::TextList(items) if items.len() == 1 => {
                serde_json::Value::String(items[0].clone())
            }
            Value::TextList(_) => {
                return Err(ConnectorError::InvalidInput(format!(
                    "cannot search for `{path}` by a list of values"
                )));
            }
            other => super::value_to_json(&parsed, other),
        };
        if let Some(vf) = &parsed.filter {
            let sub = if parsed.sub_attributes.is_empty() {
                "value".to_string()
            } else {
                parsed.sub_attributes.join(".")
            };
            let inner =
                Filter::eq(vf.attribute.clone(), vf.value.clone()).and(Filter::eq(sub, json));
            return Ok(Filter::value_path(parsed.attribute_path(), inner));
        }
        if parsed.is_core_simple("members") || parsed.is_core_simple("groups") {
            return Ok(Filter::value_path(
                parsed.attribute.clone(),
                Filter::eq("value", json),
            ));
        }
        if parsed.is_enterprise_manager() {
            // value_to_json wrapped the id as {"value": id}.
            let id = json.get("value").cloned().unwrap_or(json);
            return Ok(Filter::eq(format!("{}.value", parsed.attribute_path()), id));
        }
        Ok(Filter::eq(parsed.to_string(), json))
    }

    fn fmt_operand(&self, f: &mut fmt::Formatter<'_>, parent_is_and: bool) -> fmt::Result {
        match self {
            Filter::Or(..) if parent_is_and => write!(f, "({self})"),
            _ => write!(f, "{self}"),
        }
    }
}

impl std::ops::Not for Filter {
    type Output = Filter;
    fn not(self) -> Filter {
        Filter::negate(self)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { path, op, value } => {
                write!(f, "{path} {} {}", op.as_str(), json_literal(value))
            }
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::And(l, r) => {
                l.fmt_operand(f, true)?;
                f.write_str(" and ")?;
                r.fmt_operand(f, true)
            }
            Filter::Or(l, r) => write!(f, "{l} or {r}"),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath { attribute, filter } => write!(f, "{attribute}[{filter}]"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote(r#"a"b"#), r#""a\"b""#);
        assert_eq!(quote(r"a\b"), r#""a\\b""#);
        assert_eq!(quote("tab\there"), r#""tab\there""#);
        assert_eq!(
            Filter::eq("userName", r#"a"b"#).to_string(),
            r#"userName eq "a\"b""#
        );
    }

    #[test]
    fn composition() {
        let f = Filter::eq("a", 1)
            .or(Filter::eq("b", false))
            .and(Filter::present("c"));
        assert_eq!(f.to_string(), "(a eq 1 or b eq false) and c pr");
        let f = !Filter::sw("userName", "x");
        assert_eq!(f.to_string(), r#"not (userName sw "x")"#);
        let f = Filter::value_path(
            "emails",
            Filter::eq("type", "work").and(Filter::co("value", "@x")),
        );
        assert_eq!(f.to_string(), r#"emails[type eq "work" and value co "@x"]"#);
    }

    #[test]
    fn for_attribute_paths() {
        let t = |p: &str, v: Value| Filter::for_attribute(p, &v).unwrap().to_string();
        assert_eq!(t("userName", "alice@x".into()), r#"userName eq "alice@x""#);
        assert_eq!(t("externalId", "1".into()), r#"externalId eq "1""#);
        assert_eq!(
            t(r#"emails[type eq "work"].value"#, "a@x".into()),
            r#"emails[type eq "work" and value eq "a@x"]"#
        );
        assert_eq!(
            t("name.givenName", "Al".into()),
            r#"name.givenName eq "Al""#
        );
        assert_eq!(
            t(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
                "E1".into()
            ),
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "E1""#
        );
        assert_eq!(
            t(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                "m1".into()
            ),
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m1""#
        );
        assert_eq!(t("active", "False".into()), "active eq false");
        assert_eq!(t("active", Value::Boolean(true)), "active eq true");
        assert_eq!(
            t("members", Value::TextList(vec!["u1".into()])),
            r#"members[value eq "u1"]"#
        );
        assert!(Filter::for_attribute("userName", &Value::Null).is_err());
        assert!(Filter::for_attribute("x", &Value::TextList(vec![])).is_err());
        assert!(Filter::for_attribute("a[", &"x".into()).is_err());
    }
}
