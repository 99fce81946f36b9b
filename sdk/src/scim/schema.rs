//! The types RFC 7643 gives the core User and Group attributes and the
//! enterprise User extension, so that values built from flat attributes are
//! sent with their schema type.
//!
//! The host's values come from expressions, which mostly yield text: the
//! `"True"` of `roles[primary eq "True"].value` or of a `Switch(...)` mapped to
//! `active`. A server that checks types (as RFC 7643 §2.3 allows) rejects
//! `{"primary": "True"}` with `400 invalidValue`. [`AttrPath::schema_type`]
//! names the type of the attribute a path addresses, and
//! [`coerce`] converts a JSON value to it where the conversion is exact
//! (`"True"` → `true`, `"42"` → `42` for an integer, `42` → `"42"` for a
//! string); anything else is left as it is, for the server to judge.
//! Attributes of other extensions are unknown here and are never converted.

use serde_json::Value as Json;

use super::ENTERPRISE_USER_SCHEMA;
use super::path::AttrPath;

/// An attribute's data type (RFC 7643 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaType {
    /// A JSON string.
    String,
    /// A JSON `true` or `false`.
    Boolean,
    /// A JSON number without a fraction.
    Integer,
    /// A URI, as a JSON string (`profileUrl`, `$ref`, `photos.value`).
    Reference,
    /// An object of sub-attributes (`name`, `manager`, an element of
    /// `emails`).
    Complex,
    /// Base64 text, as a JSON string (`x509Certificates.value`).
    Binary,
}

/// The core User and Group attributes: (name, type, multi-valued).
const CORE: &[(&str, SchemaType, bool)] = &[
    ("userName", SchemaType::String, false),
    ("name", SchemaType::Complex, false),
    ("displayName", SchemaType::String, false),
    ("nickName", SchemaType::String, false),
    ("profileUrl", SchemaType::Reference, false),
    ("title", SchemaType::String, false),
    ("userType", SchemaType::String, false),
    ("preferredLanguage", SchemaType::String, false),
    ("locale", SchemaType::String, false),
    ("timezone", SchemaType::String, false),
    ("active", SchemaType::Boolean, false),
    ("password", SchemaType::String, false),
    ("externalId", SchemaType::String, false),
    ("emails", SchemaType::Complex, true),
    ("phoneNumbers", SchemaType::Complex, true),
    ("ims", SchemaType::Complex, true),
    ("photos", SchemaType::Complex, true),
    ("addresses", SchemaType::Complex, true),
    ("groups", SchemaType::Complex, true),
    ("entitlements", SchemaType::Complex, true),
    ("roles", SchemaType::Complex, true),
    ("x509Certificates", SchemaType::Complex, true),
    ("members", SchemaType::Complex, true),
];

/// The enterprise User extension's attributes.
const ENTERPRISE: &[(&str, SchemaType)] = &[
    ("employeeNumber", SchemaType::String),
    ("costCenter", SchemaType::String),
    ("organization", SchemaType::String),
    ("division", SchemaType::String),
    ("department", SchemaType::String),
    ("manager", SchemaType::Complex),
];

/// The type of sub-attribute `sub` of the core or enterprise attribute
/// `attribute` (both compared case-insensitively), `None` when RFC 7643
/// defines no such sub-attribute.
pub fn sub_attribute_type(attribute: &str, sub: &str) -> Option<SchemaType> {
    let is = |a: &str| attribute.eq_ignore_ascii_case(a);
    let sub_is = |s: &str| sub.eq_ignore_ascii_case(s);
    if is("name") {
        return [
            "formatted",
            "familyName",
            "givenName",
            "middleName",
            "honorificPrefix",
            "honorificSuffix",
        ]
        .iter()
        .any(|s| sub_is(s))
        .then_some(SchemaType::String);
    }
    if is("manager") {
        return if sub_is("$ref") {
            Some(SchemaType::Reference)
        } else if sub_is("value") || sub_is("displayName") {
            Some(SchemaType::String)
        } else {
            None
        };
    }
    if is("addresses") {
        return if sub_is("primary") {
            Some(SchemaType::Boolean)
        } else {
            [
                "formatted",
                "streetAddress",
                "locality",
                "region",
                "postalCode",
                "country",
                "type",
            ]
            .iter()
            .any(|s| sub_is(s))
            .then_some(SchemaType::String)
        };
    }
    let multi_valued = CORE
        .iter()
        .any(|(name, _, multi)| *multi && attribute.eq_ignore_ascii_case(name));
    if !multi_valued {
        return None;
    }
    // The sub-attributes every multi-valued attribute has (RFC 7643 §2.4).
    if sub_is("primary") {
        Some(SchemaType::Boolean)
    } else if sub_is("$ref") {
        Some(SchemaType::Reference)
    } else if sub_is("type") || sub_is("display") {
        Some(SchemaType::String)
    } else if sub_is("value") {
        Some(if is("photos") {
            SchemaType::Reference
        } else if is("x509Certificates") {
            SchemaType::Binary
        } else {
            SchemaType::String
        })
    } else {
        None
    }
}

impl AttrPath {
    /// The schema type of the attribute this path addresses, `None` when it
    /// is not a core or enterprise attribute RFC 7643 defines. A filtered
    /// path without sub-attribute addresses the element's `value`.
    pub fn schema_type(&self) -> Option<SchemaType> {
        let top = match &self.schema {
            None => CORE
                .iter()
                .find(|(name, ..)| self.attribute.eq_ignore_ascii_case(name))
                .map(|(_, t, _)| *t)?,
            Some(s) if s.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA) => ENTERPRISE
                .iter()
                .find(|(name, _)| self.attribute.eq_ignore_ascii_case(name))
                .map(|(_, t)| *t)?,
            Some(_) => return None,
        };
        match (self.sub_attributes.as_slice(), &self.filter) {
            ([], None) => Some(top),
            ([], Some(_)) => sub_attribute_type(&self.attribute, "value"),
            ([sub], _) => sub_attribute_type(&self.attribute, sub),
            _ => None,
        }
    }
}

/// `value` converted to `to` where the conversion is exact: text
/// `"true"`/`"false"` (any case, trimmed) to a boolean, integer text to an
/// integer, a number or boolean to text for a string, reference or binary.
/// Anything else (text that is no boolean, a fraction for an integer, an
/// object) is returned unchanged.
pub fn coerce(value: Json, to: SchemaType) -> Json {
    match (to, value) {
        (SchemaType::Boolean, Json::String(s)) => match s.trim() {
            t if t.eq_ignore_ascii_case("true") => Json::Bool(true),
            t if t.eq_ignore_ascii_case("false") => Json::Bool(false),
            _ => Json::String(s),
        },
        (SchemaType::Integer, Json::String(s)) => match s.trim().parse::<i64>() {
            Ok(i) => Json::from(i),
            Err(_) => Json::String(s),
        },
        (
            SchemaType::String | SchemaType::Reference | SchemaType::Binary,
            v @ (Json::Number(_) | Json::Bool(_)),
        ) => Json::String(v.to_string()),
        (_, v) => v,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ty(path: &str) -> Option<SchemaType> {
        AttrPath::parse(path).unwrap().schema_type()
    }

    #[test]
    fn types_of_paths() {
        assert_eq!(ty("active"), Some(SchemaType::Boolean));
        assert_eq!(ty("ACTIVE"), Some(SchemaType::Boolean));
        assert_eq!(ty("userName"), Some(SchemaType::String));
        assert_eq!(ty("name.givenName"), Some(SchemaType::String));
        assert_eq!(ty("profileUrl"), Some(SchemaType::Reference));
        assert_eq!(
            ty(r#"emails[type eq "work"].value"#),
            Some(SchemaType::String)
        );
        assert_eq!(ty(r#"emails[type eq "work"]"#), Some(SchemaType::String));
        assert_eq!(
            ty(r#"emails[type eq "work"].primary"#),
            Some(SchemaType::Boolean)
        );
        assert_eq!(
            ty(r#"roles[primary eq "True"].value"#),
            Some(SchemaType::String)
        );
        assert_eq!(
            ty(r#"photos[type eq "photo"].value"#),
            Some(SchemaType::Reference)
        );
        assert_eq!(
            ty(r#"addresses[type eq "work"].primary"#),
            Some(SchemaType::Boolean)
        );
        assert_eq!(
            ty("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"),
            Some(SchemaType::String)
        );
        assert_eq!(
            ty("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"),
            Some(SchemaType::Complex)
        );
        assert_eq!(ty("urn:example:custom:1.0:User:level"), None);
        assert_eq!(ty("nickname.x"), None);
        assert_eq!(ty("unknownAttribute"), None);
        assert_eq!(ty("name.givenName.deeper"), None);
    }

    #[test]
    fn exact_conversions_only() {
        assert_eq!(coerce(json!("True"), SchemaType::Boolean), json!(true));
        assert_eq!(coerce(json!(" false "), SchemaType::Boolean), json!(false));
        assert_eq!(coerce(json!("yes"), SchemaType::Boolean), json!("yes"));
        assert_eq!(coerce(json!(true), SchemaType::Boolean), json!(true));
        assert_eq!(coerce(json!("42"), SchemaType::Integer), json!(42));
        assert_eq!(coerce(json!("4.2"), SchemaType::Integer), json!("4.2"));
        assert_eq!(coerce(json!(42), SchemaType::String), json!("42"));
        assert_eq!(coerce(json!(1.5), SchemaType::String), json!("1.5"));
        assert_eq!(coerce(json!(false), SchemaType::String), json!("false"));
        assert_eq!(coerce(json!("x"), SchemaType::String), json!("x"));
        assert_eq!(coerce(json!({"a": 1}), SchemaType::String), json!({"a": 1}));
    }
}
