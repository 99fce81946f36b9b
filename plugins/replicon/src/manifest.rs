//! The connector's manifest: settings, secret, hosts and default mappings.

use provisio_sdk::prelude::*;

/// The setting holding the Replicon company key (Entra's "CompanyId").
pub const COMPANY_KEY: &str = "company_key";
/// The setting holding the admin's login name (Entra's "Admin Username").
pub const LOGIN: &str = "login";
/// The setting holding the discovery service's origin (Entra's "Domain").
pub const DISCOVERY_URL: &str = "discovery_url";
/// The default discovery origin.
pub const DEFAULT_DISCOVERY_URL: &str = "https://global.replicon.com";
/// The name of the admin-password secret.
pub const PASSWORD_SECRET: &str = "password";

/// The default user mappings, modelled on Entra ID's Replicon gallery app,
/// over the source directory's attribute names. Target names are the
/// connector's attribute names (Replicon's user fields); users are matched by
/// `loginName`.
pub fn user_mappings() -> Vec<Mapping> {
    vec![
        Mapping::new("loginName", "[userPrincipalName]").matching(1),
        Mapping::new(
            "active",
            r#"Switch([IsSoftDeleted], , "False", "True", "True", "False")"#,
        ),
        Mapping::new("firstName", "[givenName]"),
        Mapping::new("lastName", "[surname]"),
        Mapping::new("emailAddress", "[mail]"),
        Mapping::new("employeeId", "[employeeId]"),
    ]
}

/// The manifest.
pub fn manifest() -> Manifest {
    Manifest {
        name: "replicon".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Replicon (JSON-over-POST services): users; disable by disabling the login, \
                      delete."
            .into(),
        vendor: "Replicon".into(),
        capabilities: vec![
            Capability::Users,
            Capability::Disable,
            Capability::Delete,
            Capability::List,
        ],
        settings: vec![
            SettingSpec::required(
                COMPANY_KEY,
                "Replicon company key (Entra's 'CompanyId'), the name used at sign-in",
            ),
            SettingSpec::required(
                LOGIN,
                "Login name of a Replicon user with Admin permissions (sent as `CompanyKey\\LoginName`)",
            ),
            SettingSpec::optional(
                DISCOVERY_URL,
                "Origin of Replicon's discovery service (Entra's 'Domain'); it names the tenant's swimlane",
                Some(DEFAULT_DISCOVERY_URL),
            ),
        ],
        secrets: vec![SecretSpec::required(
            PASSWORD_SECRET,
            "Password of the Replicon admin login (Entra's 'Admin Password')",
        )],
        hosts: vec![
            format!("{{{DISCOVERY_URL}}}"),
            "https://*.replicon.com".into(),
        ],
        user_mappings: user_mappings(),
        group_mappings: vec![],
        logins: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_shape() {
        let m = manifest();
        assert_eq!(m.name, "replicon");
        assert_eq!(
            m.hosts,
            vec![
                "{discovery_url}".to_string(),
                "https://*.replicon.com".to_string()
            ]
        );
        assert_eq!(m.secrets.len(), 1);
        assert_eq!(m.secrets[0].name, "password");
        let required: Vec<_> = m
            .settings
            .iter()
            .filter(|s| s.required)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(required, vec!["company_key", "login"]);
        let discovery = m.settings.iter().find(|s| s.name == DISCOVERY_URL);
        assert_eq!(
            discovery.and_then(|s| s.default_value.as_deref()),
            Some("https://global.replicon.com")
        );
        let matching: Vec<_> = user_mappings()
            .into_iter()
            .filter(|m| m.matching_precedence.is_some())
            .map(|m| m.target)
            .collect();
        assert_eq!(matching, vec!["loginName".to_string()]);
        assert!(m.group_mappings.is_empty());
        assert!(!m.capabilities.contains(&Capability::Groups));
    }
}
