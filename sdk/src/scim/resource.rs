//! Conversion between the host's flat attributes and SCIM JSON resources.
//!
//! Flat → JSON ([`resource_from_attributes`], [`apply_attributes`]):
//!
//! | flat attribute | JSON |
//! |---|---|
//! | `userName` = `"a"` | `"userName": "a"` |
//! | `name.givenName` = `"A"` | `"name": {"givenName": "A"}` |
//! | `emails[type eq "work"].value` = `"a@x"` | `"emails": [{"type": "work", "value": "a@x", "primary": true}]` (`primary` only for a sole email) |
//! | `urn:…:enterprise:2.0:User:department` = `"R&D"` | `"urn:…:enterprise:2.0:User": {"department": "R&D"}`, URN added to `schemas` |
//! | `urn:…:enterprise:2.0:User:manager` = `"42"` | `"urn:…:User": {"manager": {"value": "42"}}` |
//! | `active` = `"False"` (text) | `"active": false` |
//! | `members` = `["1","2"]` | `"members": [{"value": "1"}, {"value": "2"}]` |
//!
//! JSON → flat ([`attributes_from_resource`]) is the reverse: scalars keep
//! their name, nested objects become dotted paths, elements of multi-valued
//! attributes with a `type` become `x[type eq "t"].sub`, extension fields
//! become `urn:…:field`, `manager` becomes its `value`, and `members` /
//! `groups` become a text list of ids. `active` sent as the string
//! `"True"`/`"False"` is read as a boolean. `schemas`, `meta` and `id` are not
//! attributes (the id is [`TargetObject::id`]).

use serde_json::{Map, Value as Json};

use super::filter::quote;
use super::patch::PatchOp;
use super::path::AttrPath;
use crate::{Attribute, ConnectorError, ObjectKind, TargetObject, Value};

/// The JSON for a flat attribute's value at `path`, with the SCIM
/// conventions applied: the value takes the schema type of a core or
/// enterprise attribute where the conversion is exact ([`super::coerce`]:
/// `active`/`primary` text `"True"`/`"False"` become booleans, a number for a
/// string attribute such as `employeeNumber` becomes text), the enterprise
/// `manager` id becomes `{"value": id}`, and the ids of `members`/`groups`
/// become `[{"value": id}, ...]`. `null` (and a non-finite number) gives
/// `Json::Null`.
pub fn value_to_json(path: &AttrPath, value: &Value) -> Json {
    let json = match value {
        Value::Null => return Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => Json::from(*i),
        Value::Number(n) => serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number),
        Value::Text(s) => Json::String(s.clone()),
        Value::TextList(items) => {
            if path.is_core_simple("members") || path.is_core_simple("groups") {
                return Json::Array(
                    items
                        .iter()
                        .map(|id| serde_json::json!({ "value": id }))
                        .collect(),
                );
            }
            Json::Array(items.iter().cloned().map(Json::String).collect())
        }
    };
    if path.is_enterprise_manager() && !json.is_array() && !json.is_null() {
        return serde_json::json!({ "value": super::coerce(json, super::SchemaType::String) });
    }
    match path.schema_type() {
        Some(t) => super::coerce(json, t),
        None => json,
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        t if t.eq_ignore_ascii_case("true") => Some(true),
        t if t.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Build a SCIM resource from flat attributes, for a create. `null` values
/// are skipped. The core schema of `kind` is put into `schemas`, and any
/// extension schema used is added.
pub fn resource_from_attributes(
    kind: ObjectKind,
    attributes: &[Attribute],
) -> Result<Json, ConnectorError> {
    let mut resource = serde_json::json!({ "schemas": [super::core_schema(kind)] });
    let present: Vec<Attribute> = attributes
        .iter()
        .filter(|a| !a.value.is_null())
        .cloned()
        .collect();
    apply_attributes(&mut resource, &present)?;
    Ok(resource)
}

/// Apply flat attributes to a SCIM resource in place: set each value, and
/// remove the attribute for a `null` (an element of a multi-valued
/// attribute is removed when nothing but its `type` would remain). A sole
/// email without `primary` is marked primary.
pub fn apply_attributes(
    resource: &mut Json,
    attributes: &[Attribute],
) -> Result<(), ConnectorError> {
    if !resource.is_object() {
        return Err(ConnectorError::Other(
            "the SCIM resource is not a JSON object".into(),
        ));
    }
    for attribute in attributes {
        let path = AttrPath::parse(&attribute.name)?;
        let json = value_to_json(&path, &attribute.value);
        if json.is_null() {
            remove_at(resource, &path);
        } else {
            set_at(resource, &path, json);
        }
    }
    mark_sole_email_primary(resource);
    Ok(())
}

fn as_object_mut(value: &mut Json) -> &mut Map<String, Json> {
    if !value.is_object() {
        *value = Json::Object(Map::new());
    }
    match value {
        Json::Object(map) => map,
        _ => unreachable!("the value was replaced by an object above"),
    }
}

fn remove_nested(target: &mut Map<String, Json>, keys: &[String]) {
    match keys {
        [] => {}
        [last] => {
            target.remove(last);
        }
        [first, rest @ ..] => {
            if let Some(next) = target.get_mut(first).and_then(Json::as_object_mut) {
                remove_nested(next, rest);
            }
        }
    }
}

fn ensure_schema(resource: &mut Map<String, Json>, schema: &str) {
    let schemas = resource
        .entry("schemas")
        .or_insert_with(|| Json::Array(Vec::new()));
    if !schemas.is_array() {
        *schemas = Json::Array(Vec::new());
    }
    if let Json::Array(list) = schemas
        && !list
            .iter()
            .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(schema)))
    {
        list.push(Json::String(schema.to_string()));
    }
}

/// The object holding `path`'s top-level attribute (the resource itself or
/// its extension object), created when missing.
fn container_mut<'a>(resource: &'a mut Json, path: &AttrPath) -> &'a mut Map<String, Json> {
    let root = as_object_mut(resource);
    match &path.schema {
        None => root,
        Some(schema) => {
            ensure_schema(root, schema);
            as_object_mut(
                root.entry(schema.clone())
                    .or_insert_with(|| Json::Object(Map::new())),
            )
        }
    }
}

fn set_nested(mut target: &mut Map<String, Json>, keys: &[String], value: Json) {
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    for key in parents {
        target = as_object_mut(
            target
                .entry(key.clone())
                .or_insert_with(|| Json::Object(Map::new())),
        );
    }
    target.insert(last.clone(), value);
}

fn set_at(resource: &mut Json, path: &AttrPath, value: Json) {
    let container = container_mut(resource, path);
    let Some(filter) = &path.filter else {
        let mut keys = vec![path.attribute.clone()];
        keys.extend(path.sub_attributes.iter().cloned());
        set_nested(container, &keys, value);
        return;
    };
    let array = container
        .entry(path.attribute.clone())
        .or_insert_with(|| Json::Array(Vec::new()));
    if !array.is_array() {
        *array = Json::Array(Vec::new());
    }
    let Json::Array(items) = array else {
        return;
    };
    let index = match items.iter().position(|e| filter.matches(e)) {
        Some(i) => i,
        None => {
            let mut element = Map::new();
            element.insert(filter.attribute.clone(), filter.value.clone());
            items.push(Json::Object(element));
            items.len() - 1
        }
    };
    let Some(element) = items.get_mut(index) else {
        return;
    };
    let keys = if path.sub_attributes.is_empty() {
        vec!["value".to_string()]
    } else {
        path.sub_attributes.clone()
    };
    set_nested(as_object_mut(element), &keys, value);
}

fn remove_at(resource: &mut Json, path: &AttrPath) {
    let Some(root) = resource.as_object_mut() else {
        return;
    };
    let container = match &path.schema {
        None => Some(root),
        Some(schema) => root.get_mut(schema).and_then(Json::as_object_mut),
    };
    let Some(container) = container else {
        return;
    };
    let Some(filter) = &path.filter else {
        let mut keys = vec![path.attribute.clone()];
        keys.extend(path.sub_attributes.iter().cloned());
        remove_nested(container, &keys);
        return;
    };
    let Some(items) = container
        .get_mut(&path.attribute)
        .and_then(Json::as_array_mut)
    else {
        return;
    };
    if path.sub_attributes.is_empty() {
        items.retain(|e| !filter.matches(e));
    } else {
        for element in items.iter_mut().filter(|e| filter.matches(e)) {
            if let Some(obj) = element.as_object_mut() {
                remove_nested(obj, &path.sub_attributes);
            }
        }
        // Drop elements left with nothing but their type (and primary flag).
        items.retain(|e| {
            e.as_object().is_none_or(|obj| {
                obj.keys()
                    .any(|k| k != &filter.attribute && !k.eq_ignore_ascii_case("primary"))
            })
        });
    }
    if items.is_empty() {
        container.remove(&path.attribute);
    }
}

fn mark_sole_email_primary(resource: &mut Json) {
    if let Some(Json::Array(emails)) = resource.get_mut("emails")
        && emails.len() == 1
        && let Some(email) = emails.first_mut().and_then(Json::as_object_mut)
        && !email.contains_key("primary")
    {
        email.insert("primary".into(), Json::Bool(true));
    }
}

/// The flat attributes of a SCIM resource (see the module docs).
pub fn attributes_from_resource(resource: &Json) -> Vec<Attribute> {
    let mut out = Vec::new();
    let Some(obj) = resource.as_object() else {
        return out;
    };
    for (key, value) in obj {
        if matches!(key.as_str(), "schemas" | "meta" | "id") {
            continue;
        }
        if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
            if let Some(extension) = value.as_object() {
                for (field, v) in extension {
                    flatten(&format!("{key}:{field}"), field, v, &mut out);
                }
            }
            continue;
        }
        flatten(key, key, value, &mut out);
    }
    out
}

fn scalar_text(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn flatten(path: &str, leaf: &str, value: &Json, out: &mut Vec<Attribute>) {
    let push = |out: &mut Vec<Attribute>, v: Value| {
        out.push(Attribute {
            name: path.to_string(),
            value: v,
        });
    };
    match value {
        Json::Null => {}
        Json::Bool(b) => push(out, Value::Boolean(*b)),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                push(out, Value::Integer(i));
            } else if let Some(f) = n.as_f64() {
                push(out, Value::Number(f));
            }
        }
        Json::String(s) => {
            let is_bool =
                leaf.eq_ignore_ascii_case("active") || leaf.eq_ignore_ascii_case("primary");
            match parse_bool(s) {
                Some(b) if is_bool => push(out, Value::Boolean(b)),
                _ => push(out, Value::Text(s.clone())),
            }
        }
        Json::Object(map) => {
            if leaf.eq_ignore_ascii_case("manager")
                && let Some(id) = map.get("value").and_then(scalar_text)
            {
                push(out, Value::Text(id));
                return;
            }
            for (k, v) in map {
                flatten(&format!("{path}.{k}"), k, v, out);
            }
        }
        Json::Array(items) => flatten_array(path, leaf, items, out),
    }
}

fn flatten_array(path: &str, leaf: &str, items: &[Json], out: &mut Vec<Attribute>) {
    let is_reference_list =
        leaf.eq_ignore_ascii_case("members") || leaf.eq_ignore_ascii_case("groups");
    let typed = !is_reference_list
        && items
            .iter()
            .any(|i| i.get("type").and_then(Json::as_str).is_some());
    if items.iter().all(|i| !i.is_object()) {
        let list = items.iter().filter_map(scalar_text).collect();
        out.push(Attribute {
            name: path.to_string(),
            value: Value::TextList(list),
        });
    } else if typed {
        // Primary elements first, so that they win over a second element of
        // the same type.
        let is_primary = |i: &Json| i.get("primary").is_some_and(|p| p == true || p == "True");
        let ordered = items
            .iter()
            .filter(|i| is_primary(i))
            .chain(items.iter().filter(|i| !is_primary(i)));
        let mut seen: Vec<String> = Vec::new();
        for item in ordered {
            let (Some(t), Some(obj)) = (item.get("type").and_then(Json::as_str), item.as_object())
            else {
                continue;
            };
            if seen.iter().any(|s| s.eq_ignore_ascii_case(t)) {
                continue;
            }
            seen.push(t.to_string());
            for (k, v) in obj {
                if k == "type" {
                    continue;
                }
                flatten(&format!("{path}[type eq {}].{k}", quote(t)), k, v, out);
            }
        }
    } else {
        let list = items
            .iter()
            .filter_map(|i| i.get("value").and_then(scalar_text))
            .collect();
        out.push(Attribute {
            name: path.to_string(),
            value: Value::TextList(list),
        });
    }
}

/// A [`TargetObject`] from a SCIM resource: its `id` and flat attributes.
/// A resource without an `id` gives `ConnectorError::Other`.
pub fn object_from_resource(resource: &Json) -> Result<TargetObject, ConnectorError> {
    let id = resource
        .get("id")
        .and_then(scalar_text)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ConnectorError::Other("the SCIM resource has no `id`".into()))?;
    Ok(TargetObject {
        id,
        attributes: attributes_from_resource(resource),
    })
}

/// Whether any change addresses an element of a multi-valued attribute by a
/// filter (`emails[type eq "work"].value`).
pub fn has_value_filter(changes: &[Attribute]) -> bool {
    changes
        .iter()
        .any(|c| AttrPath::parse(&c.name).is_ok_and(|p| p.filter.is_some()))
}

/// The PatchOp for an update: one `replace` per changed attribute, with the
/// flat path as the PATCH path, and a `remove` for each `null`.
pub fn patch_from_changes(changes: &[Attribute]) -> Result<PatchOp, ConnectorError> {
    let mut patch = PatchOp::new();
    for change in changes {
        let path = AttrPath::parse(&change.name)?;
        let json = value_to_json(&path, &change.value);
        patch = if json.is_null() {
            patch.remove(path.to_string())
        } else {
            patch.replace(path.to_string(), json)
        };
    }
    Ok(patch)
}

/// Like [`patch_from_changes`], but for targets that reject a filtered path
/// whose element does not exist yet (`400 noTarget`): the changes to
/// filtered paths are applied to `current` (the resource as the target holds
/// it) and each multi-valued attribute they touch is replaced as a whole (or
/// removed when it ends up empty). Other changes stay as they are.
pub fn merged_patch(current: &Json, changes: &[Attribute]) -> Result<PatchOp, ConnectorError> {
    let mut merged = current.clone();
    let mut patch = PatchOp::new();
    let mut whole: Vec<AttrPath> = Vec::new();
    for change in changes {
        let path = AttrPath::parse(&change.name)?;
        if path.filter.is_some() {
            apply_attributes(&mut merged, std::slice::from_ref(change))?;
            if !whole
                .iter()
                .any(|w| w.attribute_path() == path.attribute_path())
            {
                whole.push(path);
            }
            continue;
        }
        let json = value_to_json(&path, &change.value);
        patch = if json.is_null() {
            patch.remove(path.to_string())
        } else {
            patch.replace(path.to_string(), json)
        };
    }
    for path in whole {
        let container = match &path.schema {
            None => Some(&merged),
            Some(schema) => merged.get(schema),
        };
        let value = container.and_then(|c| c.get(&path.attribute)).cloned();
        patch = match value {
            Some(v) if v.as_array().is_some_and(|a| !a.is_empty()) => {
                patch.replace(path.attribute_path(), v)
            }
            _ => patch.remove(path.attribute_path()),
        };
    }
    Ok(patch)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn a(name: &str, value: impl Into<Value>) -> Attribute {
        Attribute::new(name, value)
    }

    fn entra_user() -> Vec<Attribute> {
        vec![
            a("userName", "alice@contoso.com"),
            a("active", true),
            a("displayName", "Alice Anders"),
            a("title", "Engineer"),
            a(r#"emails[type eq "work"].value"#, "alice@contoso.com"),
            a("preferredLanguage", "en-US"),
            a("name.givenName", "Alice"),
            a("name.familyName", "Anders"),
            a(r#"phoneNumbers[type eq "work"].value"#, "+1 555 0100"),
            a("externalId", "src-1"),
            a(&format!("{ENT}:department"), "R&D"),
            a(&format!("{ENT}:employeeNumber"), "E1"),
            a(&format!("{ENT}:manager"), "m-42"),
        ]
    }

    #[test]
    fn user_resource_shape() {
        let r = resource_from_attributes(ObjectKind::User, &entra_user()).unwrap();
        assert_eq!(
            r,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
                "userName": "alice@contoso.com",
                "active": true,
                "displayName": "Alice Anders",
                "title": "Engineer",
                "emails": [{"type": "work", "value": "alice@contoso.com", "primary": true}],
                "preferredLanguage": "en-US",
                "name": {"givenName": "Alice", "familyName": "Anders"},
                "phoneNumbers": [{"type": "work", "value": "+1 555 0100"}],
                "externalId": "src-1",
                ENT: {"department": "R&D", "employeeNumber": "E1", "manager": {"value": "m-42"}}
            })
        );
    }

    #[test]
    fn active_text_and_nulls() {
        let r = resource_from_attributes(
            ObjectKind::User,
            &[
                a("userName", "u"),
                a("active", "False"),
                a("title", Value::Null),
            ],
        )
        .unwrap();
        assert_eq!(r["active"], json!(false));
        assert!(r.get("title").is_none());
        let r = resource_from_attributes(ObjectKind::User, &[a("active", "TRUE")]).unwrap();
        assert_eq!(r["active"], json!(true));
        // Other text stays text.
        let r = resource_from_attributes(ObjectKind::User, &[a("active", "maybe")]).unwrap();
        assert_eq!(r["active"], json!("maybe"));
    }

    #[test]
    fn two_emails_no_primary_added() {
        let r = resource_from_attributes(
            ObjectKind::User,
            &[
                a(r#"emails[type eq "work"].value"#, "w@x"),
                a(r#"emails[type eq "home"].value"#, "h@x"),
            ],
        )
        .unwrap();
        assert_eq!(
            r["emails"],
            json!([{"type": "work", "value": "w@x"}, {"type": "home", "value": "h@x"}])
        );
    }

    #[test]
    fn group_resource() {
        let r = resource_from_attributes(
            ObjectKind::Group,
            &[
                a("displayName", "Sales"),
                a("members", Value::TextList(vec!["u1".into(), "u2".into()])),
            ],
        )
        .unwrap();
        assert_eq!(
            r,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Sales",
                "members": [{"value": "u1"}, {"value": "u2"}]
            })
        );
    }

    #[test]
    fn reverse_conversion() {
        let resource = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
            "id": "abc",
            "meta": {"resourceType": "User"},
            "userName": "alice",
            "active": "False",
            "name": {"givenName": "Alice", "familyName": "Anders"},
            "emails": [
                {"value": "home@x", "type": "home"},
                {"value": "alice@x", "type": "work", "primary": true},
                {"value": "second@x", "type": "work"}
            ],
            "groups": [{"value": "g1", "display": "G"}],
            "roles": [{"value": "admin"}],
            "x-tags": ["a", "b"],
            "logins": 3,
            "score": 1.5,
            "nothing": null,
            ENT: {"department": "R&D", "manager": {"value": "m1", "displayName": "Boss"}}
        });
        let obj = object_from_resource(&resource).unwrap();
        assert_eq!(obj.id, "abc");
        let get = |n: &str| obj.attribute(n).cloned();
        assert_eq!(get("userName"), Some("alice".into()));
        assert_eq!(get("active"), Some(Value::Boolean(false)));
        assert_eq!(get("name.givenName"), Some("Alice".into()));
        assert_eq!(
            get(r#"emails[type eq "work"].value"#),
            Some("alice@x".into())
        );
        assert_eq!(
            get(r#"emails[type eq "work"].primary"#),
            Some(Value::Boolean(true))
        );
        assert_eq!(
            get(r#"emails[type eq "home"].value"#),
            Some("home@x".into())
        );
        assert_eq!(get("groups"), Some(Value::TextList(vec!["g1".into()])));
        assert_eq!(get("roles"), Some(Value::TextList(vec!["admin".into()])));
        assert_eq!(
            get("x-tags"),
            Some(Value::TextList(vec!["a".into(), "b".into()]))
        );
        assert_eq!(get("logins"), Some(Value::Integer(3)));
        assert_eq!(get("score"), Some(Value::Number(1.5)));
        assert_eq!(get(&format!("{ENT}:department")), Some("R&D".into()));
        assert_eq!(get(&format!("{ENT}:manager")), Some("m1".into()));
        for skipped in ["id", "meta", "schemas", "nothing", "meta.resourceType"] {
            assert_eq!(get(skipped), None, "{skipped}");
        }
        assert!(object_from_resource(&json!({"userName": "x"})).is_err());
    }

    #[test]
    fn group_members_reverse() {
        let obj = object_from_resource(&json!({
            "id": "g", "displayName": "G",
            "members": [{"value": "u1", "type": "User", "display": "U"}, {"value": "u2", "$ref": "x"}]
        }))
        .unwrap();
        assert_eq!(
            obj.attribute("members"),
            Some(&Value::TextList(vec!["u1".into(), "u2".into()]))
        );
    }

    #[test]
    fn round_trip_user() {
        let input = entra_user();
        let resource = resource_from_attributes(ObjectKind::User, &input).unwrap();
        let mut with_id = resource.clone();
        with_id["id"] = json!("id-1");
        let back = object_from_resource(&with_id).unwrap();
        for attr in &input {
            assert_eq!(
                back.attribute(&attr.name),
                Some(&attr.value),
                "{}",
                attr.name
            );
        }
        // The only additions are the primary flag of the sole email.
        let extra: Vec<_> = back
            .attributes
            .iter()
            .filter(|b| !input.iter().any(|i| i.name == b.name))
            .map(|b| b.name.as_str())
            .collect();
        assert_eq!(extra, vec![r#"emails[type eq "work"].primary"#]);
        // And the resource rebuilt from what we read back is the same resource.
        let again = resource_from_attributes(ObjectKind::User, &back.attributes).unwrap();
        assert_eq!(again, resource);
    }

    #[test]
    fn round_trip_group() {
        let input = vec![
            a("displayName", "G"),
            a("externalId", "g-1"),
            a("members", Value::TextList(vec!["u1".into(), "u2".into()])),
        ];
        let mut r = resource_from_attributes(ObjectKind::Group, &input).unwrap();
        r["id"] = json!("g");
        let back = object_from_resource(&r).unwrap();
        assert_eq!(back.attributes.len(), input.len());
        for attr in &input {
            assert_eq!(back.attribute(&attr.name), Some(&attr.value));
        }
    }

    #[test]
    fn patch_for_changes() {
        let patch = patch_from_changes(&[
            a("displayName", "B"),
            a("name.givenName", "Bo"),
            a(r#"emails[type eq "work"].value"#, "b@x"),
            a(&format!("{ENT}:manager"), "m2"),
            a(&format!("{ENT}:department"), Value::Null),
            a("active", "False"),
        ])
        .unwrap();
        assert_eq!(
            patch.to_json()["Operations"],
            json!([
                {"op": "replace", "path": "displayName", "value": "B"},
                {"op": "replace", "path": "name.givenName", "value": "Bo"},
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@x"},
                {"op": "replace", "path": format!("{ENT}:manager"), "value": {"value": "m2"}},
                {"op": "remove", "path": format!("{ENT}:department")},
                {"op": "replace", "path": "active", "value": false}
            ])
        );
        assert!(patch_from_changes(&[a("bad[", "x")]).is_err());
        assert!(has_value_filter(&[a(
            r#"emails[type eq "work"].value"#,
            "x"
        )]));
        assert!(!has_value_filter(&[a("userName", "x")]));
    }

    #[test]
    fn merged_patch_replaces_whole_multi_valued() {
        let current = json!({
            "id": "u", "userName": "dave",
            "emails": [{"type": "home", "value": "h@x"}],
            "phoneNumbers": [{"type": "work", "value": "1"}]
        });
        let patch = merged_patch(
            &current,
            &[
                a("displayName", "Dave"),
                a(r#"emails[type eq "work"].value"#, "d@x"),
                a(r#"phoneNumbers[type eq "work"].value"#, Value::Null),
            ],
        )
        .unwrap();
        assert_eq!(
            patch.to_json()["Operations"],
            json!([
                {"op": "replace", "path": "displayName", "value": "Dave"},
                {"op": "replace", "path": "emails", "value": [
                    {"type": "home", "value": "h@x"}, {"type": "work", "value": "d@x"}
                ]},
                {"op": "remove", "path": "phoneNumbers"}
            ])
        );
    }

    #[test]
    fn apply_removes() {
        let mut r = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
            "name": {"givenName": "A", "familyName": "B"},
            "emails": [{"type": "work", "value": "w@x", "primary": true}, {"type": "home", "value": "h@x"}],
            ENT: {"department": "D"}
        });
        apply_attributes(
            &mut r,
            &[
                a("name.givenName", Value::Null),
                a(r#"emails[type eq "work"].value"#, Value::Null),
                a(&format!("{ENT}:department"), Value::Null),
                a("nickName.deep", Value::Null),
            ],
        )
        .unwrap();
        assert_eq!(r["name"], json!({"familyName": "B"}));
        assert_eq!(
            r["emails"],
            json!([{"type": "home", "value": "h@x", "primary": true}])
        );
        assert_eq!(r[ENT], json!({}));
        assert!(apply_attributes(&mut json!([]), &[]).is_err());
    }

    #[test]
    fn values_take_their_schema_type() {
        let role = r#"roles[primary eq "True"].value"#;
        let r = resource_from_attributes(
            ObjectKind::User,
            &[
                a("userName", "u"),
                a(role, "Admin"),
                a(&format!("{ENT}:employeeNumber"), Value::Integer(42)),
                a(&format!("{ENT}:manager"), Value::Integer(7)),
                a("title", Value::Number(1.5)),
                a(r#"emails[type eq "work"].primary"#, "False"),
                a(r#"emails[type eq "work"].value"#, "u@x"),
                a("urn:example:ext:1.0:User:level", "True"),
            ],
        )
        .unwrap();
        assert_eq!(r["roles"], json!([{"primary": true, "value": "Admin"}]));
        assert_eq!(r[ENT]["employeeNumber"], json!("42"));
        assert_eq!(r[ENT]["manager"], json!({"value": "7"}));
        assert_eq!(r["title"], json!("1.5"));
        assert_eq!(
            r["emails"],
            json!([{"type": "work", "primary": false, "value": "u@x"}])
        );
        assert_eq!(r["urn:example:ext:1.0:User"]["level"], json!("True"));
        // The PATCH path is a valid SCIM filter comparing a boolean.
        let patch = patch_from_changes(&[a(role, "User")]).unwrap();
        assert_eq!(
            patch.to_json()["Operations"][0]["path"],
            json!("roles[primary eq true].value")
        );
        // Applied again, the existing element is found, not duplicated.
        let mut again = r.clone();
        apply_attributes(&mut again, &[a(role, "User")]).unwrap();
        assert_eq!(again["roles"], json!([{"primary": true, "value": "User"}]));
    }

    #[test]
    fn odd_resources_do_not_panic() {
        for odd in [
            json!(null),
            json!("x"),
            json!([1, 2]),
            json!({"id": 5, "emails": "not-an-array", "name": [1, {"a": null}]}),
            json!({"id": "x", "emails": [[1], null, {"type": 3}, {"type": "work"}], "members": [1, {"value": null}]}),
            json!({"id": "x", "urn:x:y": "not-an-object", "urn:": {"a": 1}, "manager": {"value": {"deep": 1}}}),
            json!({"id": "", "active": "maybe", "primary": [true]}),
        ] {
            let _ = object_from_resource(&odd);
            let _ = attributes_from_resource(&odd);
            let mut target = odd.clone();
            let _ = apply_attributes(
                &mut target,
                &[
                    a(r#"emails[type eq "work"].value"#, "x"),
                    a("name.givenName", "y"),
                    a(&format!("{ENT}:manager"), "m"),
                    a(r#"emails[type eq "work"].value"#, Value::Null),
                ],
            );
            let _ = merged_patch(&odd, &[a(r#"emails[type eq "work"].value"#, "x")]);
        }
        assert_eq!(object_from_resource(&json!({"id": 5})).unwrap().id, "5");
        assert!(object_from_resource(&json!({"id": ""})).is_err());
    }
}
