//! The Zenya connector for Provisio: SCIM 2.0 users, groups and memberships.
//!
//! Zenya's SCIM API lives at the tenant URL (the SCIM base URL with `/scim/`
//! appended; a trailing slash is ignored), bearer "permanent token", with
//! lowercase collections `/users` and `/groups` (settings `users_path`,
//! `groups_path`). Its quirks, handled here:
//!
//! - only the `userName` filter works on users (and `displayName` on
//!   groups): a find by any other attribute is refused with `Unsupported`
//!   and **no request is sent** (a filter Zenya does not support must never
//!   reach it; match on `userName`);
//! - errors are SCIM-style; detail "User with given login_code already
//!   exists" is a `Conflict` and "User not found" a `NotFound`, whatever the
//!   status;
//! - groups are created without members; members are added and removed by
//!   `PATCH` on `members`.
//!
//! Requests go through [`provisio_sdk::scim::Endpoint`]. See
//! `docs/connectors/zenya.md`.

use provisio_sdk::config;
use provisio_sdk::errors;
use provisio_sdk::http::Response;
use provisio_sdk::prelude::*;
use provisio_sdk::scim::{self, Endpoint, Filter, PatchOp, endpoint};

/// The setting holding the SCIM base URL.
pub const TENANT_URL: &str = "tenant_url";
/// The setting holding the path of the users endpoint.
pub const USERS_PATH: &str = "users_path";
/// The setting holding the path of the groups endpoint.
pub const GROUPS_PATH: &str = "groups_path";
/// The name of the bearer-token secret.
pub const TOKEN_SECRET: &str = "token";
/// The `userName` the connection test looks for; no real user has it.
pub const TEST_CONNECTION_USER_NAME: &str = "provisio-test-connection-2f8a41";
/// The page size used when the host asks for 0.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// The manifest.
pub fn manifest() -> Manifest {
    Manifest {
        name: "zenya".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Zenya users, groups and memberships over SCIM 2.0 (users are found by \
                      userName only)."
            .into(),
        vendor: "Infoland (Zenya)".into(),
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
                TENANT_URL,
                "Zenya SCIM base URL with /scim/ appended (Tenant URL), e.g. \
                 https://identitymanagement.services.zenya.work/<tenant>/scim/",
            ),
            SettingSpec::optional(USERS_PATH, "Path of the users endpoint", Some("/users")),
            SettingSpec::optional(GROUPS_PATH, "Path of the groups endpoint", Some("/groups")),
        ],
        secrets: vec![SecretSpec::required(
            TOKEN_SECRET,
            "Zenya permanent token (Application Management > External user management > provider > Permanent token)",
        )],
        hosts: vec![format!("{{{TENANT_URL}}}")],
        user_mappings: user_mappings(),
        group_mappings: group_mappings(),
        logins: vec![],
    }
}

/// The default user mappings: Entra's attribute table for Zenya.
pub fn user_mappings() -> Vec<Mapping> {
    vec![
        Mapping::new("userName", "[userPrincipalName]").matching(1),
        Mapping::new(
            "active",
            r#"Switch([IsSoftDeleted], , "False", "True", "True", "False")"#,
        ),
        Mapping::new("displayName", "[displayName]"),
        Mapping::new(r#"emails[type eq "work"].value"#, "[mail]"),
        Mapping::new("preferredLanguage", "[preferredLanguage]"),
        Mapping::new(r#"phoneNumbers[type eq "work"].value"#, "[phone]"),
        Mapping::new("externalId", "[id]"),
    ]
}

/// The default group mappings: Entra's attribute table for Zenya.
pub fn group_mappings() -> Vec<Mapping> {
    vec![
        Mapping::new("displayName", "[displayName]").matching(1),
        Mapping::new("members", "[members]"),
        Mapping::new("externalId", "[id]"),
    ]
}

fn settings() -> Result<Endpoint, ConnectorError> {
    Endpoint::new(
        TENANT_URL,
        config::get(TENANT_URL),
        Some(config::get(USERS_PATH).unwrap_or_else(|| "/users".into())),
        Some(config::get(GROUPS_PATH).unwrap_or_else(|| "/groups".into())),
        TOKEN_SECRET,
    )
}

/// Map a response: 2xx passes; Zenya's error details decide before the
/// status ("already exists" → conflict, "not found" → not-found).
pub fn check(response: Response) -> Result<Response, ConnectorError> {
    if response.is_success() {
        return Ok(response);
    }
    let detail = errors::body_detail(response.body())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let message = errors::status_message(response.status(), response.body());
    if detail.contains("already exists") {
        return Err(ConnectorError::Conflict(Conflict {
            message,
            existing_id: None,
        }));
    }
    if detail.contains("not found") && response.status() != 401 {
        return Err(ConnectorError::NotFound(message));
    }
    Err(errors::from_response(&response))
}

/// The one filter Zenya supports for a find: `userName eq` for users,
/// `displayName eq` for groups; anything else is `Unsupported` (not sent).
pub fn find_filter(kind: ObjectKind, attribute: &Attribute) -> Result<Filter, ConnectorError> {
    let supported = match kind {
        ObjectKind::User => "userName",
        ObjectKind::Group => "displayName",
    };
    if !attribute.name.eq_ignore_ascii_case(supported) {
        return Err(ConnectorError::Unsupported(format!(
            "Zenya's SCIM API filters {}s only by {supported}; a find by `{}` is not sent \
             (Zenya ignores other filters). Use {supported} as the matching attribute",
            kind.as_str(),
            attribute.name
        )));
    }
    Filter::for_attribute(supported, &attribute.value)
}

/// The Zenya connector.
pub struct Zenya;

impl Zenya {
    fn find_objects(
        e: &Endpoint,
        kind: ObjectKind,
        attribute: &Attribute,
    ) -> Result<Vec<TargetObject>, ConnectorError> {
        let filter = find_filter(kind, attribute)?;
        endpoint::objects(&check(e.find(kind, &filter).send()?)?)
    }

    fn members(group_id: &str, patch: PatchOp) -> Result<(), ConnectorError> {
        let e = settings()?;
        check(e.patch(ObjectKind::Group, group_id, &patch)?.send()?).map(|_| ())
    }
}

impl Connector for Zenya {
    fn describe() -> Manifest {
        manifest()
    }

    fn test_connection() -> Result<String, ConnectorError> {
        let e = settings()?;
        let filter = Filter::eq("userName", TEST_CONNECTION_USER_NAME);
        let found = endpoint::objects(&check(e.find(ObjectKind::User, &filter).send()?)?)?;
        if !found.is_empty() {
            return Err(ConnectorError::other(format!(
                "the connection test looked up a user that cannot exist and Zenya returned {}; \
                 is {} the SCIM base URL?",
                found.len(),
                e.base_url
            )));
        }
        Ok(format!(
            "{}: the permanent token was accepted and a userName query answered",
            e.collection(ObjectKind::User)
        ))
    }

    fn find(kind: ObjectKind, attribute: Attribute) -> Result<Vec<TargetObject>, ConnectorError> {
        let e = settings()?;
        Self::find_objects(&e, kind, &attribute)
    }

    fn get(kind: ObjectKind, id: String) -> Result<TargetObject, ConnectorError> {
        let e = settings()?;
        endpoint::object(&check(e.get(kind, &id)?.send()?)?)
    }

    fn create(
        kind: ObjectKind,
        attributes: Vec<Attribute>,
    ) -> Result<TargetObject, ConnectorError> {
        let e = settings()?;
        match check(e.create(kind, &attributes)?.send()?) {
            Ok(response) => endpoint::object(&response),
            Err(ConnectorError::Conflict(mut conflict)) => {
                let key = match kind {
                    ObjectKind::User => "userName",
                    ObjectKind::Group => "displayName",
                };
                if let Some(attribute) = attributes.iter().find(|a| a.name == key)
                    && let Ok(found) = Self::find_objects(&e, kind, attribute)
                    && found.len() == 1
                {
                    conflict.existing_id = found.into_iter().next().map(|o| o.id);
                }
                Err(ConnectorError::Conflict(conflict))
            }
            Err(other) => Err(other),
        }
    }

    fn update(kind: ObjectKind, id: String, changes: Vec<Attribute>) -> Result<(), ConnectorError> {
        let e = settings()?;
        e.update(kind, &id, &changes, check)
    }

    fn disable(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        if kind == ObjectKind::Group {
            return Err(ConnectorError::unsupported("disabling Zenya groups"));
        }
        check(settings()?.set_active(&id, false)?.send()?).map(|_| ())
    }

    fn enable(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        if kind == ObjectKind::Group {
            return Err(ConnectorError::unsupported("enabling Zenya groups"));
        }
        check(settings()?.set_active(&id, true)?.send()?).map(|_| ())
    }

    fn delete(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        check(settings()?.delete(kind, &id)?.send()?).map(|_| ())
    }

    fn list(
        kind: ObjectKind,
        cursor: Option<String>,
        page_size: u32,
    ) -> Result<Page, ConnectorError> {
        let e = settings()?;
        let start = scim::cursor_to_start_index(cursor.as_deref())?;
        let count = if page_size == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            page_size
        };
        endpoint::page(&check(e.list(kind, start, count).send()?)?, start, count)
    }

    fn add_members(group_id: String, member_ids: Vec<String>) -> Result<(), ConnectorError> {
        if member_ids.is_empty() {
            return Ok(());
        }
        Self::members(&group_id, PatchOp::new().add_members(&member_ids))
    }

    fn remove_members(group_id: String, member_ids: Vec<String>) -> Result<(), ConnectorError> {
        if member_ids.is_empty() {
            return Ok(());
        }
        Self::members(&group_id, PatchOp::new().remove_members(&member_ids))
    }
}

provisio_sdk::export_connector!(Zenya);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn manifest_shape() {
        let m = manifest();
        assert_eq!(m.hosts, vec!["{tenant_url}".to_string()]);
        let targets: Vec<_> = user_mappings().into_iter().map(|m| m.target).collect();
        assert_eq!(targets.len(), 7);
        for t in targets
            .iter()
            .chain(group_mappings().iter().map(|m| &m.target))
        {
            assert!(scim::AttrPath::parse(t).is_ok(), "{t}");
        }
    }

    #[test]
    fn only_user_name_is_filtered() {
        let f = find_filter(ObjectKind::User, &Attribute::new("userName", "a")).unwrap();
        assert_eq!(f.to_string(), r#"userName eq "a""#);
        let e = find_filter(ObjectKind::User, &Attribute::new("externalId", "x"));
        assert!(matches!(e, Err(ConnectorError::Unsupported(m)) if m.contains("only by userName")));
        assert!(find_filter(ObjectKind::Group, &Attribute::new("displayName", "G")).is_ok());
    }

    #[test]
    fn error_details() {
        let dup = Response::new(
            400,
            vec![],
            br#"{"detail":"User with given login_code already exists","status":"400"}"#.to_vec(),
        );
        assert!(matches!(check(dup), Err(ConnectorError::Conflict(_))));
        let missing = Response::new(
            400,
            vec![],
            br#"{"detail":"User not found","status":"400"}"#.to_vec(),
        );
        assert!(matches!(check(missing), Err(ConnectorError::NotFound(_))));
        let unauth = Response::new(401, vec![], b"".to_vec());
        assert!(matches!(
            check(unauth),
            Err(ConnectorError::Unauthorized(_))
        ));
    }
}
