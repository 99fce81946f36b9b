//! The connector's manifest: settings, secret, hosts and default mappings.

use provisio_sdk::prelude::*;

/// The setting holding the Clarizen admin's user name (Entra's "Admin User Name").
pub const USER_NAME: &str = "user_name";
/// The setting holding the API entry point used for server discovery.
pub const API_URL: &str = "api_url";
/// The default of [`API_URL`]: Clarizen's global REST API V2 entry point.
pub const DEFAULT_API_URL: &str = "https://api.clarizen.com/V2.0/services";
/// The name of the admin password secret (Entra's "Admin Password").
pub const PASSWORD_SECRET: &str = "password";
/// The login exchange for server discovery (`getServerDefinition`).
pub const DISCOVERY_EXCHANGE: &str = "discovery";
/// The login exchange that opens a session.
pub const LOGIN_EXCHANGE: &str = "login";
/// The derived secret holding the session id the host captures at login.
pub const SESSION_SECRET: &str = "session";
/// How long the host keeps a session before the connector logs in again.
/// Clarizen expires idle sessions on its own; an earlier `SessionTimeout` is
/// handled by forgetting the session and logging in again.
pub const SESSION_TTL_SECONDS: u32 = 30 * 60;

/// The two login exchanges: both post `{"userName", "password"}`, built by
/// the host (the password never enters the connector); login's `sessionId`
/// becomes the derived secret [`SESSION_SECRET`], placed only in
/// `Authorization`.
pub fn logins() -> Vec<LoginExchange> {
    let credentials = |x: LoginExchange| {
        x.setting_field("userName", USER_NAME)
            .secret_field("password", PASSWORD_SECRET)
    };
    vec![
        credentials(LoginExchange::json(
            DISCOVERY_EXCHANGE,
            "server discovery: finds the organization's data server",
            "/authentication/getServerDefinition",
        )),
        credentials(LoginExchange::json(
            LOGIN_EXCHANGE,
            "login at the data server: opens a session",
            "/authentication/login",
        ))
        .capture(DerivedSecret::header(
            SESSION_SECRET,
            "Clarizen session id, sent as `Authorization: Session <id>`",
            CaptureSource::JsonPointer("/sessionId".into()),
            SESSION_TTL_SECONDS,
            "Authorization",
        )),
    ]
}

/// The default user mappings. The seed tutorial names no attribute table, so
/// these are a reconstruction over Clarizen's User fields: users are matched
/// by `UserName` (unique in Clarizen) from the user principal name.
pub fn user_mappings() -> Vec<Mapping> {
    vec![
        Mapping::new("UserName", "[userPrincipalName]").matching(1),
        Mapping::new("Email", "Coalesce([mail], [userPrincipalName])"),
        Mapping::new(
            "active",
            r#"Switch([IsSoftDeleted], , "False", "True", "True", "False")"#,
        ),
        Mapping::new("FirstName", "[givenName]"),
        Mapping::new("LastName", "[surname]"),
        Mapping::new("JobTitle", "[jobTitle]"),
        Mapping::new("OfficePhone", "[telephoneNumber]"),
        Mapping::new("MobilePhone", "[mobilePhone]"),
        Mapping::new("ExternalID", "[id]"),
    ]
}

/// The manifest.
pub fn manifest() -> Manifest {
    Manifest {
        name: "clarizen".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Clarizen (REST API V2): users; server discovery and session login, \
                      disable/enable through the lifecycle API, delete."
            .into(),
        vendor: "Clarizen".into(),
        capabilities: vec![
            Capability::Users,
            Capability::Disable,
            Capability::Delete,
            Capability::List,
        ],
        settings: vec![
            SettingSpec::required(
                USER_NAME,
                "User name of a Clarizen admin (Entra's 'Admin User Name'); provisioning runs as this user",
            ),
            SettingSpec::optional(
                API_URL,
                "Clarizen REST API V2 entry point used for server discovery (getServerDefinition); \
                 override for tests and proxies",
                Some(DEFAULT_API_URL),
            ),
        ],
        secrets: vec![
            SecretSpec::required(
                PASSWORD_SECRET,
                "Password of the admin user (Entra's 'Admin Password'); sent only in the discovery and login bodies",
            )
            .placement(SecretPlacement::Login(DISCOVERY_EXCHANGE.into()))
            .placement(SecretPlacement::Login(LOGIN_EXCHANGE.into())),
        ],
        hosts: vec![format!("{{{API_URL}}}"), "https://*.clarizen.com".into()],
        user_mappings: user_mappings(),
        group_mappings: vec![],
        logins: logins(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_shape() {
        let m = manifest();
        assert_eq!(m.name, "clarizen");
        assert_eq!(
            m.hosts,
            vec![
                "{api_url}".to_string(),
                "https://*.clarizen.com".to_string()
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
        assert_eq!(required, vec!["user_name"]);
        let api = m.settings.iter().find(|s| s.name == API_URL);
        assert_eq!(
            api.and_then(|s| s.default_value.as_deref()),
            Some(DEFAULT_API_URL)
        );
        assert!(!m.capabilities.contains(&Capability::Groups));
        let matching: Vec<_> = user_mappings()
            .into_iter()
            .filter(|m| m.matching_precedence.is_some())
            .map(|m| m.target)
            .collect();
        assert_eq!(matching, vec!["UserName".to_string()]);
        assert!(m.group_mappings.is_empty());
    }
}
