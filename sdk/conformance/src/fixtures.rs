//! The kit's test objects: synthetic directory users and groups, named with
//! the run prefix, mapped into target attributes by the connector's own
//! default mappings through the host's mapping engine.

use provisio::mapping::expr::MapContext;
use provisio::mapping::{MappingSet, MappingSource};
use provisio::model::{Attribute, Value};

/// Source attributes of directory users the kit knows (Entra ID's user
/// attributes plus the ones the sync engine derives). A default mapping that
/// reads anything else reads nothing in a real directory.
pub const KNOWN_USER_ATTRIBUTES: &[&str] = &[
    "id",
    "objectId",
    "userPrincipalName",
    "mail",
    "mailNickname",
    "displayName",
    "givenName",
    "surname",
    "jobTitle",
    "department",
    "companyName",
    "employeeId",
    "employeeType",
    "employeeHireDate",
    "officeLocation",
    "streetAddress",
    "city",
    "state",
    "postalCode",
    "country",
    "usageLocation",
    "preferredLanguage",
    "phone",
    "mobilePhone",
    "telephoneNumber",
    "businessPhones",
    "faxNumber",
    "manager",
    "accountEnabled",
    "IsSoftDeleted",
    "appRoleAssignments",
    "onPremisesSamAccountName",
    "onPremisesImmutableId",
];

/// Source attributes of directory groups the kit knows.
pub const KNOWN_GROUP_ATTRIBUTES: &[&str] = &[
    "id",
    "objectId",
    "displayName",
    "description",
    "mail",
    "mailNickname",
    "members",
    "appRoleAssignments",
];

/// Source attributes a mapping reads.
pub fn sources_of(set: &MappingSet) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in set.mappings() {
        match &m.source {
            MappingSource::Direct(name) => out.push((m.target.clone(), name.clone())),
            MappingSource::Constant(_) => {}
            MappingSource::Expression(e) => {
                for a in e.attributes() {
                    out.push((m.target.clone(), a));
                }
            }
        }
    }
    out
}

/// A synthetic directory user.
pub fn user(prefix: &str, n: usize, domain: &str, extra: &[(String, Value)]) -> Vec<Attribute> {
    let id = format!("{prefix}-u{n}");
    let upn = format!("{id}@{domain}");
    let text = |s: &str| Value::Text(s.to_string());
    let mut attrs = vec![
        ("id", text(&id)),
        ("objectId", text(&id)),
        ("userPrincipalName", text(&upn)),
        ("mail", text(&upn)),
        ("mailNickname", text(&id)),
        ("displayName", text(&format!("Conformance {prefix} U{n}"))),
        ("givenName", text("Conformance")),
        ("surname", text(&format!("U{n}"))),
        ("jobTitle", text("Tester")),
        ("department", text("Conformance")),
        ("employeeId", text(&format!("{prefix}-{n}"))),
        ("preferredLanguage", text("en-US")),
        ("accountEnabled", Value::Boolean(true)),
        ("IsSoftDeleted", Value::Boolean(false)),
        ("appRoleAssignments", Value::TextList(vec!["User".into()])),
    ]
    .into_iter()
    .map(|(k, v)| Attribute {
        name: k.to_string(),
        value: v,
    })
    .collect::<Vec<_>>();
    overlay(&mut attrs, extra);
    attrs
}

/// The same user after an edit in the directory: a new display name and title.
pub fn edited_user(user: &[Attribute]) -> Vec<Attribute> {
    let mut out = user.to_vec();
    for a in out.iter_mut() {
        match a.name.as_str() {
            "displayName" => {
                if let Value::Text(t) = &a.value {
                    a.value = Value::Text(format!("{t} Renamed"));
                }
            }
            "jobTitle" => a.value = Value::Text("Senior Tester".into()),
            _ => {}
        }
    }
    out
}

/// A synthetic directory group.
pub fn group(prefix: &str, n: usize, extra: &[(String, Value)]) -> Vec<Attribute> {
    let id = format!("{prefix}-g{n}");
    let text = |s: &str| Value::Text(s.to_string());
    let mut attrs = vec![
        ("id", text(&id)),
        ("objectId", text(&id)),
        ("displayName", text(&format!("Conformance {prefix} G{n}"))),
        ("description", text("Provisio conformance kit test group")),
        ("mailNickname", text(&id)),
    ]
    .into_iter()
    .map(|(k, v)| Attribute {
        name: k.to_string(),
        value: v,
    })
    .collect::<Vec<_>>();
    overlay(&mut attrs, extra);
    attrs
}

fn overlay(attrs: &mut Vec<Attribute>, extra: &[(String, Value)]) {
    for (name, value) in extra {
        match attrs.iter_mut().find(|a| a.name.eq_ignore_ascii_case(name)) {
            Some(a) => a.value = value.clone(),
            None => attrs.push(Attribute {
                name: name.clone(),
                value: value.clone(),
            }),
        }
    }
}

/// Target attributes for a source object, as a sync would send them:
/// nulls never sent, and `members` left to add/remove-members.
pub fn map(
    set: &MappingSet,
    source: &[Attribute],
    on_create: bool,
) -> Result<Vec<Attribute>, String> {
    let ctx = MapContext::from_attributes(source);
    let mapped = set.apply(&ctx, on_create).map_err(|errors| {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    Ok(mapped
        .attributes
        .into_iter()
        .filter(|a| a.value != Value::Null && !a.name.eq_ignore_ascii_case("members"))
        .collect())
}

/// The first matching attribute (lowest precedence number) with a value.
pub fn matching(set: &MappingSet, target: &[Attribute]) -> Option<Attribute> {
    set.matching()
        .into_iter()
        .find_map(|m| {
            target
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case(&m.target))
        })
        .cloned()
}

/// The attributes of `after` that differ from (or are missing in) `before`.
pub fn changes(before: &[Attribute], after: &[Attribute]) -> Vec<Attribute> {
    after
        .iter()
        .filter(|a| {
            !before
                .iter()
                .any(|b| b.name.eq_ignore_ascii_case(&a.name) && same(&b.value, &a.value))
        })
        .cloned()
        .collect()
}

/// Whether two values are the same as a target would store them: text
/// compared case-insensitively when it looks like an email or id, a one-item
/// list equal to its item.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Text(x), Value::Text(y)) => {
            x == y || (x.contains('@') && x.eq_ignore_ascii_case(y))
        }
        (Value::TextList(l), Value::Text(t)) | (Value::Text(t), Value::TextList(l)) => {
            l.len() == 1 && same(&Value::Text(l[0].clone()), &Value::Text(t.clone()))
        }
        (Value::Integer(i), Value::Text(t)) | (Value::Text(t), Value::Integer(i)) => {
            t == &i.to_string()
        }
        (Value::Boolean(b), Value::Text(t)) | (Value::Text(t), Value::Boolean(b)) => {
            t.eq_ignore_ascii_case(if *b { "true" } else { "false" })
        }
        _ => a == b,
    }
}

/// Render a value for messages.
pub fn show(v: &Value) -> String {
    v.to_json().to_string()
}

/// The value of a named attribute (case-insensitive).
pub fn get<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
        .map(|a| &a.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use provisio::model::{ApplyOn, Mapping};

    fn set(mappings: &[Mapping]) -> MappingSet {
        provisio::mapping::compile(mappings, &[]).unwrap()
    }

    trait New {
        fn new(target: &str, source: &str) -> Self;
        fn matching(self, p: u32) -> Self;
    }

    impl New for Mapping {
        fn new(target: &str, source: &str) -> Self {
            Mapping {
                target: target.into(),
                source: source.into(),
                matching_precedence: None,
                apply: ApplyOn::Always,
            }
        }
        fn matching(mut self, p: u32) -> Self {
            self.matching_precedence = Some(p);
            self
        }
    }

    #[test]
    fn users_are_mapped_by_the_connectors_mappings() {
        let s = set(&[
            Mapping::new("userName", "[userPrincipalName]").matching(1),
            Mapping::new("title", "[jobTitle]"),
            Mapping::new("phone", "[phone]"),
            Mapping::new("active", "Not([IsSoftDeleted])"),
        ]);
        let u = user("pcx1", 3, "example.org", &[]);
        let mapped = map(&s, &u, true).unwrap();
        assert_eq!(
            get(&mapped, "userName"),
            Some(&Value::Text("pcx1-u3@example.org".into()))
        );
        assert_eq!(get(&mapped, "active"), Some(&Value::Boolean(true)));
        assert_eq!(
            get(&mapped, "phone"),
            None,
            "absent source values are not sent"
        );
        assert_eq!(matching(&s, &mapped).unwrap().name, "userName");
        let edited = map(&s, &edited_user(&u), false).unwrap();
        let ch = changes(&mapped, &edited);
        assert_eq!(ch.len(), 1, "{ch:?}");
        assert_eq!(ch[0].value, Value::Text("Senior Tester".into()));
    }

    #[test]
    fn extra_attributes_override_the_defaults() {
        let u = user(
            "p",
            1,
            "d.example",
            &[(
                "appRoleAssignments".into(),
                Value::TextList(vec!["Agent".into()]),
            )],
        );
        assert_eq!(
            get(&u, "appRoleAssignments"),
            Some(&Value::TextList(vec!["Agent".into()]))
        );
        let s = set(&[Mapping::new("x", "Join(\",\", [givenName], [nickname])")]);
        let sources: Vec<String> = sources_of(&s).into_iter().map(|(_, a)| a).collect();
        assert_eq!(sources, vec!["givenName", "nickname"]);
    }

    #[test]
    fn values_compare_as_targets_store_them() {
        assert!(same(
            &Value::Text("A@B.com".into()),
            &Value::Text("a@b.com".into())
        ));
        assert!(!same(
            &Value::Text("Ada".into()),
            &Value::Text("ada".into())
        ));
        assert!(same(
            &Value::TextList(vec!["x".into()]),
            &Value::Text("x".into())
        ));
        assert!(same(&Value::Integer(7), &Value::Text("7".into())));
        assert!(!same(&Value::Boolean(true), &Value::Boolean(false)));
        assert!(same(&Value::Text("True".into()), &Value::Boolean(true)));
        assert!(!same(&Value::Text("True".into()), &Value::Boolean(false)));
    }
}
