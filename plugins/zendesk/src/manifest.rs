//! The connector's manifest: settings, secret, hosts and default mappings.

use provisio_sdk::prelude::*;

/// The setting holding the Zendesk subdomain (`acme` for `acme.zendesk.com`).
pub const SUBDOMAIN: &str = "subdomain";
/// The setting holding the email of the Zendesk admin the API token belongs to.
pub const ADMIN_EMAIL: &str = "admin_email";
/// The optional setting overriding `https://{subdomain}.zendesk.com` (tests, proxies).
pub const BASE_URL: &str = "base_url";
/// The name of the API-token secret.
pub const TOKEN_SECRET: &str = "api_token";

/// The role mapping: the single app role assigned in the source, named after
/// a Zendesk role (`Agent`, `Admin`; anything else is an end-user).
pub const ROLE_EXPRESSION: &str = r#"Switch(SingleAppRoleAssignment([appRoleAssignments]), "end-user", "Agent", "agent", "Admin", "admin", "End-user", "end-user")"#;

/// The default user mappings, modelled on Entra ID's Zendesk gallery app,
/// over the source directory's attribute names. Target names are Zendesk's
/// own user fields; users are matched by `email`.
pub fn user_mappings() -> Vec<Mapping> {
    vec![
        Mapping::new("email", "Coalesce([mail], [userPrincipalName])").matching(1),
        Mapping::new(
            "active",
            r#"Switch([IsSoftDeleted], , "False", "True", "True", "False")"#,
        ),
        Mapping::new("name", "[displayName]"),
        Mapping::new("role", ROLE_EXPRESSION),
        Mapping::new("external_id", "[id]"),
        Mapping::new("phone", "[phone]"),
        Mapping::new("locale", "[preferredLanguage]"),
    ]
}

/// The default group mappings (groups are matched by `name`).
pub fn group_mappings() -> Vec<Mapping> {
    vec![
        Mapping::new("name", "[displayName]").matching(1),
        Mapping::new("description", "[description]"),
    ]
}

/// The manifest.
pub fn manifest() -> Manifest {
    Manifest {
        name: "zendesk".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Zendesk Support (API v2): users, agent groups and group memberships; \
                      disable by suspending, soft delete."
            .into(),
        vendor: "Zendesk".into(),
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
                SUBDOMAIN,
                "Zendesk subdomain: `acme` for https://acme.zendesk.com",
            ),
            SettingSpec::required(
                ADMIN_EMAIL,
                "Email of the Zendesk admin the API token is used with (sent as `{email}/token`)",
            ),
            SettingSpec::optional(
                BASE_URL,
                "Override of the API origin (default https://{subdomain}.zendesk.com); for tests and proxies",
                None,
            ),
        ],
        secrets: vec![SecretSpec::required(
            TOKEN_SECRET,
            "Zendesk API token (Admin Center > Apps and integrations > Zendesk API); Entra's 'Secret Token'",
        )],
        hosts: vec![
            format!("https://{{{SUBDOMAIN}}}.zendesk.com"),
            format!("{{{BASE_URL}}}"),
        ],
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
        assert_eq!(m.name, "zendesk");
        assert_eq!(
            m.hosts,
            vec![
                "https://{subdomain}.zendesk.com".to_string(),
                "{base_url}".to_string()
            ]
        );
        assert_eq!(m.secrets.len(), 1);
        assert_eq!(m.secrets[0].name, "api_token");
        let required: Vec<_> = m
            .settings
            .iter()
            .filter(|s| s.required)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(required, vec!["subdomain", "admin_email"]);
        let matching: Vec<_> = user_mappings()
            .into_iter()
            .filter(|m| m.matching_precedence.is_some())
            .map(|m| m.target)
            .collect();
        assert_eq!(matching, vec!["email".to_string()]);
    }
}
