//! The connector's manifest: settings, secret, hosts and default mappings.

use provisio_sdk::prelude::*;
use provisio_sdk::scim::ENTERPRISE_USER_SCHEMA;

/// The name of the bearer-token secret.
pub const TOKEN_SECRET: &str = "token";
/// The setting holding the SCIM base URL.
pub const BASE_URL: &str = "base_url";
/// The setting holding the path of the Users endpoint.
pub const USERS_PATH: &str = "users_path";
/// The setting holding the path of the Groups endpoint.
pub const GROUPS_PATH: &str = "groups_path";
/// The optional setting naming the attribute lists are sorted by.
pub const LIST_SORT_BY: &str = "list_sort_by";

/// Default of [`USERS_PATH`].
pub const DEFAULT_USERS_PATH: &str = "/Users";
/// Default of [`GROUPS_PATH`].
pub const DEFAULT_GROUPS_PATH: &str = "/Groups";

fn enterprise(attribute: &str) -> String {
    format!("{ENTERPRISE_USER_SCHEMA}:{attribute}")
}

/// The default user mappings, as Entra ID ships them for a generic SCIM app,
/// over the source directory's attribute names.
pub fn user_mappings() -> Vec<Mapping> {
    vec![
        Mapping::new("userName", "[userPrincipalName]").matching(1),
        Mapping::new(
            "active",
            r#"Switch([IsSoftDeleted], , "False", "True", "True", "False")"#,
        ),
        Mapping::new("displayName", "[displayName]"),
        Mapping::new("title", "[jobTitle]"),
        Mapping::new(r#"emails[type eq "work"].value"#, "[mail]"),
        Mapping::new("preferredLanguage", "[preferredLanguage]"),
        Mapping::new("name.givenName", "[givenName]"),
        Mapping::new("name.familyName", "[surname]"),
        Mapping::new(r#"phoneNumbers[type eq "work"].value"#, "[phone]"),
        Mapping::new("externalId", "[id]"),
        Mapping::new(enterprise("department"), "[department]"),
        Mapping::new(enterprise("employeeNumber"), "[employeeId]"),
        Mapping::new(enterprise("manager"), "[manager]"),
    ]
}

/// The default group mappings.
pub fn group_mappings() -> Vec<Mapping> {
    vec![
        Mapping::new("displayName", "[displayName]").matching(1),
        Mapping::new("externalId", "[id]"),
        Mapping::new("members", "[members]"),
    ]
}

/// The manifest.
pub fn manifest() -> Manifest {
    Manifest {
        name: "scim".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Generic SCIM 2.0 (RFC 7643/7644) connector: users, groups and \
                      memberships, following the request pattern Entra ID uses."
            .into(),
        vendor: "Provisio".into(),
        capabilities: vec![
            Capability::Users,
            Capability::Groups,
            Capability::Memberships,
            Capability::Disable,
            Capability::Delete,
            Capability::List,
        ],
        settings: vec![
            SettingSpec::required(
                BASE_URL,
                "SCIM base URL (the tenant URL), e.g. https://scim.example.com/v2; a trailing slash is ignored",
            ),
            SettingSpec::optional(
                USERS_PATH,
                "Path of the Users endpoint below base_url",
                Some(DEFAULT_USERS_PATH),
            ),
            SettingSpec::optional(
                GROUPS_PATH,
                "Path of the Groups endpoint below base_url",
                Some(DEFAULT_GROUPS_PATH),
            ),
            SettingSpec::optional(
                LIST_SORT_BY,
                "Attribute to sort by when listing for import (sent as sortBy), e.g. id; \
                 unset sends no sortBy. Set it when the target's paging order is unstable",
                None,
            ),
        ],
        secrets: vec![SecretSpec::required(
            TOKEN_SECRET,
            "Bearer token for the SCIM endpoint (the 'secret token' of Entra's admin credentials)",
        )],
        hosts: vec![format!("{{{BASE_URL}}}")],
        user_mappings: user_mappings(),
        group_mappings: group_mappings(),
        logins: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_shape() {
        let m = manifest();
        assert_eq!(m.name, "scim");
        assert_eq!(m.hosts, vec!["{base_url}".to_string()]);
        assert_eq!(m.secrets.len(), 1);
        assert_eq!(m.secrets[0].name, "token");
        let required: Vec<_> = m
            .settings
            .iter()
            .filter(|s| s.required)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(required, vec!["base_url"]);
        let users_path = m.settings.iter().find(|s| s.name == "users_path");
        assert_eq!(
            users_path.and_then(|s| s.default_value.as_deref()),
            Some("/Users")
        );
    }

    #[test]
    fn mappings_are_valid_paths() {
        for m in user_mappings().iter().chain(group_mappings().iter()) {
            assert!(
                provisio_sdk::scim::AttrPath::parse(&m.target).is_ok(),
                "{}",
                m.target
            );
        }
        let matching: Vec<_> = user_mappings()
            .into_iter()
            .filter(|m| m.matching_precedence.is_some())
            .map(|m| m.target)
            .collect();
        assert_eq!(matching, vec!["userName".to_string()]);
        let active = user_mappings().into_iter().find(|m| m.target == "active");
        assert_eq!(
            active.map(|m| m.source),
            Some(r#"Switch([IsSoftDeleted], , "False", "True", "True", "False")"#.to_string())
        );
    }
}
