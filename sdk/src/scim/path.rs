//! Parsing of flat SCIM attribute paths.

use std::fmt;

use super::{GROUP_SCHEMA, USER_SCHEMA, quote};
use crate::ConnectorError;

/// A value filter inside brackets: `[type eq "work"]`. Only `eq` is
/// supported, which is all that flat attribute paths need.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueFilter {
    /// The sub-attribute compared, e.g. `type`.
    pub attribute: String,
    /// The value it must equal, e.g. `"work"`.
    pub value: serde_json::Value,
}

impl ValueFilter {
    /// Whether a multi-valued element matches (strings compare
    /// case-insensitively, as `type` is not case-exact in SCIM; a boolean
    /// matches its text too).
    pub fn matches(&self, element: &serde_json::Value) -> bool {
        match (element.get(&self.attribute), &self.value) {
            (Some(serde_json::Value::String(a)), serde_json::Value::String(b)) => {
                a.eq_ignore_ascii_case(b)
            }
            // A server that stores `primary` as the text "True" still holds
            // the element `[primary eq true]` selects.
            (Some(serde_json::Value::String(a)), serde_json::Value::Bool(b)) => a
                .trim()
                .eq_ignore_ascii_case(if *b { "true" } else { "false" }),
            (Some(a), b) => a == b,
            (None, _) => false,
        }
    }
}

/// A parsed flat attribute path:
/// `[<schema URN>:]<attribute>[\[<sub> eq <value>\]][.<sub>[.<sub>…]]`.
///
/// A path qualified with a core schema URN
/// (`urn:ietf:params:scim:schemas:core:2.0:User:userName`) is normalised to
/// the unqualified form.
#[derive(Clone, Debug, PartialEq)]
pub struct AttrPath {
    /// The extension schema URN, `None` for core attributes.
    pub schema: Option<String>,
    /// The top-level attribute name, e.g. `emails`.
    pub attribute: String,
    /// The value filter selecting an element of a multi-valued attribute.
    pub filter: Option<ValueFilter>,
    /// Sub-attributes after the attribute (or its filter), e.g. `["value"]`.
    pub sub_attributes: Vec<String>,
}

impl AttrPath {
    /// Parse a flat attribute path. Anything outside the grammar above gives
    /// `InvalidInput`.
    pub fn parse(path: &str) -> Result<Self, ConnectorError> {
        let invalid = |why: &str| {
            ConnectorError::InvalidInput(format!("unsupported SCIM attribute path `{path}`: {why}"))
        };
        let path = path.trim();
        if path.is_empty() {
            return Err(invalid("empty"));
        }
        // Split off a schema URN: everything up to the last ':' before any '['.
        let (schema, rest) = if path
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        {
            let head_end = path.find('[').unwrap_or(path.len());
            let colon = path[..head_end]
                .rfind(':')
                .ok_or_else(|| invalid("no attribute after the schema URN"))?;
            let schema = &path[..colon];
            let rest = &path[colon + 1..];
            if schema.eq_ignore_ascii_case(USER_SCHEMA) || schema.eq_ignore_ascii_case(GROUP_SCHEMA)
            {
                (None, rest)
            } else {
                (Some(schema.to_string()), rest)
            }
        } else {
            (None, path)
        };
        let name_end = rest.find(['[', '.']).unwrap_or(rest.len());
        let attribute = &rest[..name_end];
        if !is_attr_name(attribute) {
            return Err(invalid("bad attribute name"));
        }
        let mut remainder = &rest[name_end..];
        let mut filter = None;
        if let Some(after_bracket) = remainder.strip_prefix('[') {
            let close =
                find_closing_bracket(after_bracket).ok_or_else(|| invalid("unclosed `[`"))?;
            filter = Some(parse_value_filter(&after_bracket[..close]).ok_or_else(|| {
                invalid("only filters of the form `[sub eq \"value\"]` are supported")
            })?);
            remainder = &after_bracket[close + 1..];
        }
        let mut sub_attributes = Vec::new();
        if !remainder.is_empty() {
            let subs = remainder
                .strip_prefix('.')
                .ok_or_else(|| invalid("expected `.` after `]`"))?;
            for sub in subs.split('.') {
                if !is_attr_name(sub) {
                    return Err(invalid("bad sub-attribute name"));
                }
                sub_attributes.push(sub.to_string());
            }
        }
        // The filter's value takes its sub-attribute's schema type:
        // `roles[primary eq "True"]` selects (and creates) `{"primary": true}`.
        let typed_schema = schema
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case(super::ENTERPRISE_USER_SCHEMA));
        if let Some(f) = filter.as_mut()
            && typed_schema
            && let Some(t) = super::schema::sub_attribute_type(attribute, &f.attribute)
        {
            f.value = super::schema::coerce(f.value.take(), t);
        }
        Ok(AttrPath {
            schema,
            attribute: attribute.to_string(),
            filter,
            sub_attributes,
        })
    }

    /// Whether this is the attribute `name` of the core schema, without
    /// filter or sub-attributes (compared case-insensitively).
    pub fn is_core_simple(&self, name: &str) -> bool {
        self.schema.is_none()
            && self.filter.is_none()
            && self.sub_attributes.is_empty()
            && self.attribute.eq_ignore_ascii_case(name)
    }

    /// Whether this is the enterprise extension's `manager` (without a
    /// sub-attribute), whose text value is the manager's id.
    pub fn is_enterprise_manager(&self) -> bool {
        self.schema
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case(super::ENTERPRISE_USER_SCHEMA))
            && self.filter.is_none()
            && self.sub_attributes.is_empty()
            && self.attribute.eq_ignore_ascii_case("manager")
    }

    /// The attribute with its schema prefix, without filter or
    /// sub-attributes: `emails`, `urn:…:User:manager`.
    pub fn attribute_path(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}:{}", self.attribute),
            None => self.attribute.clone(),
        }
    }
}

impl fmt::Display for AttrPath {
    /// The canonical path, usable as a SCIM PATCH `path`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.attribute_path())?;
        if let Some(filter) = &self.filter {
            write!(
                f,
                "[{} eq {}]",
                filter.attribute,
                json_literal(&filter.value)
            )?;
        }
        for sub in &self.sub_attributes {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// Render a JSON value as a filter literal (strings quoted and escaped).
pub(crate) fn json_literal(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => quote(s),
        other => other.to_string(),
    }
}

fn is_attr_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '$' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
}

/// The index of the `]` closing a filter, skipping quoted strings.
fn find_closing_bracket(s: &str) -> Option<usize> {
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c == ']' {
            return Some(i);
        }
    }
    None
}

fn parse_value_filter(s: &str) -> Option<ValueFilter> {
    let s = s.trim();
    let (attribute, rest) = s.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    let (op, literal) = rest.split_once(char::is_whitespace)?;
    if !op.eq_ignore_ascii_case("eq") || !is_attr_name(attribute) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(literal.trim()).ok()?;
    if value.is_array() || value.is_object() {
        return None;
    }
    Some(ValueFilter {
        attribute: attribute.to_string(),
        value,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn simple_and_nested() {
        let p = AttrPath::parse("userName").unwrap();
        assert_eq!(p.attribute, "userName");
        assert!(p.is_core_simple("username"));
        let p = AttrPath::parse("name.givenName").unwrap();
        assert_eq!(p.sub_attributes, vec!["givenName"]);
        assert_eq!(p.to_string(), "name.givenName");
    }

    #[test]
    fn typed_multi_valued() {
        let p = AttrPath::parse(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.attribute, "emails");
        assert_eq!(
            p.filter,
            Some(ValueFilter {
                attribute: "type".into(),
                value: json!("work")
            })
        );
        assert_eq!(p.sub_attributes, vec!["value"]);
        assert_eq!(p.to_string(), r#"emails[type eq "work"].value"#);
        let p = AttrPath::parse(r#"members[value eq "a]\"b"]"#).unwrap();
        assert_eq!(p.filter.unwrap().value, json!("a]\"b"));
        let p = AttrPath::parse(r#"emails[primary eq true].value"#).unwrap();
        assert_eq!(p.filter.unwrap().value, json!(true));
    }

    #[test]
    fn filter_values_take_their_schema_type() {
        // RFC 7643: `primary` is a boolean. The text of an Entra-style path
        // selects and creates a boolean, and renders as a boolean literal.
        let p = AttrPath::parse(r#"roles[primary eq "True"].value"#).unwrap();
        let filter = p.filter.clone().unwrap();
        assert_eq!(filter.value, json!(true));
        assert_eq!(p.to_string(), "roles[primary eq true].value");
        assert!(filter.matches(&json!({"primary": true, "value": "a"})));
        assert!(filter.matches(&json!({"primary": "True", "value": "a"})));
        assert!(!filter.matches(&json!({"primary": false, "value": "a"})));
        assert!(!filter.matches(&json!({"primary": "no", "value": "a"})));
        let p = AttrPath::parse(r#"addresses[primary eq "false"].locality"#).unwrap();
        assert_eq!(p.filter.unwrap().value, json!(false));
        // `type` is a string: a number in the filter becomes its text.
        let p = AttrPath::parse("phoneNumbers[type eq 5].value").unwrap();
        assert_eq!(p.filter.unwrap().value, json!("5"));
        // An unknown extension keeps the literal as written.
        let p =
            AttrPath::parse(r#"urn:example:ext:1.0:User:roles[primary eq "True"].value"#).unwrap();
        assert_eq!(p.filter.unwrap().value, json!("True"));
    }

    #[test]
    fn extension_paths() {
        let p = AttrPath::parse(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        )
        .unwrap();
        assert_eq!(
            p.schema.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(p.attribute, "department");
        assert!(!p.is_enterprise_manager());
        let p =
            AttrPath::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager")
                .unwrap();
        assert!(p.is_enterprise_manager());
        let p = AttrPath::parse(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName",
        )
        .unwrap();
        assert_eq!(p.sub_attributes, vec!["displayName"]);
        assert_eq!(
            p.to_string(),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName"
        );
        // Core-qualified paths are normalised.
        let p = AttrPath::parse("urn:ietf:params:scim:schemas:core:2.0:User:userName").unwrap();
        assert_eq!(p.schema, None);
        assert_eq!(p.to_string(), "userName");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "emails[type eq \"work\"",
            "emails[type ne \"work\"].value",
            "emails[type eq \"a\" and value eq \"b\"]",
            "emails[type eq \"work\"]value",
            "a..b",
            "1abc",
            "é[x]",
        ] {
            assert!(
                matches!(AttrPath::parse(bad), Err(ConnectorError::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        // A small deterministic generator over characters that matter to the grammar.
        let alphabet: Vec<char> = "ab:.[]\" é\\ eqtype1urn$_-".chars().collect();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let mut s = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 24) as usize;
            for i in 0..len {
                let idx = ((state >> (i % 50)) as usize + i * 7) % alphabet.len();
                s.push(alphabet[idx]);
            }
            if let Ok(p) = AttrPath::parse(&s) {
                // A parsed path renders to something that parses to the same path.
                assert_eq!(AttrPath::parse(&p.to_string()).ok(), Some(p), "{s}");
            }
            let _ = super::super::Filter::for_attribute(&s, &crate::Value::Text(s.clone()));
        }
    }
}
