//! The RFPIO connector for Provisio: SCIM 2.0 users (no groups).
//!
//! RFPIO's SCIM API (`https://<tenant>.rfpio.com/rfpserver/scim/v2`, bearer
//! "SCIM API token") follows RFC 7644 for users. Its rules, enforced here
//! before anything is sent:
//!
//! - the email is the unique identifier: `userName` must be the email, and a
//!   work email, when given, must equal it;
//! - `userName`/email cannot be changed: an update that would change them is
//!   refused with `InvalidInput` (and not sent);
//! - role and business unit are fixed at creation (create-only mappings; an
//!   update carrying them is refused);
//! - groups are not supported ("RFPIO does not support groups provisioning");
//! - `403` means SCIM is disabled for the company: `Forbidden` with how to
//!   enable it.
//!
//! Requests go through [`provisio_sdk::scim::Endpoint`]. See
//! `docs/connectors/rfpio.md`.

use provisio_sdk::http::Response;
use provisio_sdk::prelude::*;
use provisio_sdk::scim::{self, Endpoint, Filter, endpoint};
use provisio_sdk::{config, errors};

/// The setting holding the SCIM base URL.
pub const TENANT_URL: &str = "tenant_url";
/// The name of the bearer-token secret.
pub const TOKEN_SECRET: &str = "token";
/// The work-email attribute path.
pub const WORK_EMAIL: &str = r#"emails[type eq "work"].value"#;
/// The role attribute (fixed at creation).
pub const ROLE: &str = r#"roles[primary eq "True"].value"#;
/// The business-unit attribute (fixed at creation).
pub const BUSINESS_UNIT: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department";
/// The `userName` the connection test looks for; no real user has it.
pub const TEST_CONNECTION_USER_NAME: &str = "provisio-test-connection@invalid.example";
/// The page size used when the host asks for 0.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// The message of the `Forbidden` error for a 403.
pub const SCIM_DISABLED: &str = "RFPIO answered 403: SCIM provisioning is disabled for this company \
     (or the token lacks admin rights). To enable it, sign in to RFPIO as an admin, open \
     Tenant > Organization Settings > USER MANAGEMENT > SECURITY > SCIM, turn on \
     'Auto User Provisioning' and generate a new SCIM API token";

/// The manifest.
pub fn manifest() -> Manifest {
    Manifest {
        name: "rfpio".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "RFPIO users over SCIM 2.0 (RFPIO does not support groups provisioning); \
                      the email is the immutable userName."
            .into(),
        vendor: "RFPIO".into(),
        capabilities: vec![
            Capability::Users,
            Capability::Disable,
            Capability::Delete,
            Capability::List,
        ],
        settings: vec![SettingSpec::required(
            TENANT_URL,
            "RFPIO SCIM base URL (Tenant URL), e.g. https://acme.rfpio.com/rfpserver/scim/v2",
        )],
        secrets: vec![SecretSpec::required(
            TOKEN_SECRET,
            "RFPIO SCIM API token (Organization Settings > USER MANAGEMENT > SECURITY > SCIM > Generate SCIM API token)",
        )],
        hosts: vec![format!("{{{TENANT_URL}}}")],
        user_mappings: user_mappings(),
        group_mappings: vec![],
        logins: vec![],
    }
}

/// The default user mappings (Entra's RFPIO app: the email is the userName).
pub fn user_mappings() -> Vec<Mapping> {
    vec![
        Mapping::new("userName", "[userPrincipalName]").matching(1),
        Mapping::new(
            "active",
            r#"Switch([IsSoftDeleted], , "False", "True", "True", "False")"#,
        ),
        Mapping::new(WORK_EMAIL, "[userPrincipalName]"),
        Mapping::new("displayName", "[displayName]"),
        Mapping::new("name.givenName", "[givenName]"),
        Mapping::new("name.familyName", "[surname]"),
        Mapping::new("title", "[jobTitle]"),
        Mapping::new("externalId", "[id]"),
        Mapping::new(ROLE, "SingleAppRoleAssignment([appRoleAssignments])").create_only(),
        Mapping::new(BUSINESS_UNIT, "[department]").create_only(),
    ]
}

fn settings() -> Result<Endpoint, ConnectorError> {
    Endpoint::new(
        TENANT_URL,
        config::get(TENANT_URL),
        None,
        None,
        TOKEN_SECRET,
    )
}

fn groups_unsupported() -> ConnectorError {
    ConnectorError::Unsupported("RFPIO does not support groups provisioning (users only)".into())
}

fn users_only(kind: ObjectKind) -> Result<(), ConnectorError> {
    match kind {
        ObjectKind::User => Ok(()),
        ObjectKind::Group => Err(groups_unsupported()),
    }
}

/// Map a response: 2xx passes; 403 is "SCIM disabled"; others as usual.
pub fn check(response: Response) -> Result<Response, ConnectorError> {
    if response.status() == 403 {
        let detail = errors::status_message(403, response.body());
        return Err(ConnectorError::Forbidden(format!(
            "{SCIM_DISABLED} ({detail})"
        )));
    }
    endpoint::check_status(response)
}

fn is_email_attribute(name: &str) -> bool {
    name == "userName" || name == WORK_EMAIL || name == "emails"
}

fn is_fixed_at_creation(name: &str) -> bool {
    name == ROLE || name.starts_with("roles") || name == BUSINESS_UNIT
}

/// Check and complete a user to create: `userName` must be an email, the
/// work email (if any) must equal it, and is filled from it when absent.
pub fn create_attributes(attributes: &[Attribute]) -> Result<Vec<Attribute>, ConnectorError> {
    let user_name = attributes
        .iter()
        .find(|a| a.name == "userName")
        .and_then(|a| a.value.as_text())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ConnectorError::invalid_input("RFPIO needs a userName (the user's email address)")
        })?
        .to_string();
    if !user_name.contains('@') {
        return Err(ConnectorError::invalid_input(format!(
            "RFPIO uses the email address as userName, and '{user_name}' is not one"
        )));
    }
    let mut out = attributes.to_vec();
    match out.iter().find(|a| a.name == WORK_EMAIL) {
        Some(email) => {
            let email = email.value.as_text().unwrap_or_default();
            if !email.eq_ignore_ascii_case(&user_name) {
                return Err(ConnectorError::invalid_input(format!(
                    "RFPIO requires the userName to equal the email address: userName is \
                     '{user_name}' but the work email is '{email}'"
                )));
            }
        }
        None => out.push(Attribute::new(WORK_EMAIL, user_name)),
    }
    Ok(out)
}

/// The changes left to send once the immutable ones are checked against the
/// user's current `userName`: an unchanged userName/email is dropped; a
/// changed one, or a role/business unit, is refused.
pub fn update_changes(
    id: &str,
    current_user_name: Option<&str>,
    changes: &[Attribute],
) -> Result<Vec<Attribute>, ConnectorError> {
    let mut out = Vec::new();
    for change in changes {
        if is_fixed_at_creation(&change.name) {
            return Err(ConnectorError::invalid_input(format!(
                "RFPIO fixes the role and business unit at creation: `{}` of user {id} cannot be \
                 updated (change it in RFPIO, or make the mapping create-only)",
                change.name
            )));
        }
        if is_email_attribute(&change.name) {
            let wanted = change.value.as_text().unwrap_or_default();
            let same = current_user_name.is_some_and(|c| c.eq_ignore_ascii_case(wanted));
            if !same {
                return Err(ConnectorError::invalid_input(format!(
                    "RFPIO does not allow changing a user's userName/email (the email is the \
                     account's unique, immutable identifier): user {id} is '{}', the update \
                     asked `{}` = '{wanted}'. Not sent; create a new account instead",
                    current_user_name.unwrap_or("?"),
                    change.name
                )));
            }
            continue;
        }
        out.push(change.clone());
    }
    Ok(out)
}

/// The RFPIO connector.
pub struct Rfpio;

impl Connector for Rfpio {
    fn describe() -> Manifest {
        manifest()
    }

    fn test_connection() -> Result<String, ConnectorError> {
        let e = settings()?;
        let response = check(
            e.find(
                ObjectKind::User,
                &Filter::eq("userName", TEST_CONNECTION_USER_NAME),
            )
            .send()?,
        )?;
        let found = endpoint::objects(&response)?.len();
        if found != 0 {
            return Err(ConnectorError::other(format!(
                "the connection test looked up a user that cannot exist and RFPIO returned {found}"
            )));
        }
        Ok(format!(
            "{}: the SCIM API token was accepted and SCIM is enabled",
            e.collection(ObjectKind::User)
        ))
    }

    fn find(kind: ObjectKind, attribute: Attribute) -> Result<Vec<TargetObject>, ConnectorError> {
        users_only(kind)?;
        let e = settings()?;
        let filter = Filter::for_attribute(&attribute.name, &attribute.value)?;
        endpoint::objects(&check(e.find(kind, &filter).send()?)?)
    }

    fn get(kind: ObjectKind, id: String) -> Result<TargetObject, ConnectorError> {
        users_only(kind)?;
        let e = settings()?;
        endpoint::object(&check(e.get(kind, &id)?.send()?)?)
    }

    fn create(
        kind: ObjectKind,
        attributes: Vec<Attribute>,
    ) -> Result<TargetObject, ConnectorError> {
        users_only(kind)?;
        let e = settings()?;
        let attributes = create_attributes(&attributes)?;
        match check(e.create(kind, &attributes)?.send()?) {
            Ok(response) => endpoint::object(&response),
            Err(ConnectorError::Conflict(mut conflict)) => {
                let user_name = attributes
                    .iter()
                    .find(|a| a.name == "userName")
                    .map(|a| a.value.clone());
                if let Some(value) = user_name {
                    let filter = Filter::for_attribute("userName", &value)?;
                    if let Ok(found) = e.find(kind, &filter).send().and_then(check)
                        && let Ok(found) = endpoint::objects(&found)
                        && found.len() == 1
                    {
                        conflict.existing_id = found.into_iter().next().map(|o| o.id);
                    }
                }
                Err(ConnectorError::Conflict(conflict))
            }
            Err(other) => Err(other),
        }
    }

    fn update(kind: ObjectKind, id: String, changes: Vec<Attribute>) -> Result<(), ConnectorError> {
        users_only(kind)?;
        let e = settings()?;
        let touches_email = changes.iter().any(|c| is_email_attribute(&c.name));
        let current = if touches_email {
            let user: serde_json::Value = check(e.get(kind, &id)?.send()?)?.json()?;
            user.get("userName")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        } else {
            None
        };
        let changes = update_changes(&id, current.as_deref(), &changes)?;
        e.update(kind, &id, &changes, check)
    }

    fn disable(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        users_only(kind)?;
        check(settings()?.set_active(&id, false)?.send()?).map(|_| ())
    }

    fn enable(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        users_only(kind)?;
        check(settings()?.set_active(&id, true)?.send()?).map(|_| ())
    }

    fn delete(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        users_only(kind)?;
        check(settings()?.delete(kind, &id)?.send()?).map(|_| ())
    }

    fn list(
        kind: ObjectKind,
        cursor: Option<String>,
        page_size: u32,
    ) -> Result<Page, ConnectorError> {
        users_only(kind)?;
        let e = settings()?;
        let start = scim::cursor_to_start_index(cursor.as_deref())?;
        let count = if page_size == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            page_size
        };
        endpoint::page(&check(e.list(kind, start, count).send()?)?, start, count)
    }

    fn add_members(_group_id: String, _member_ids: Vec<String>) -> Result<(), ConnectorError> {
        Err(groups_unsupported())
    }

    fn remove_members(_group_id: String, _member_ids: Vec<String>) -> Result<(), ConnectorError> {
        Err(groups_unsupported())
    }
}

provisio_sdk::export_connector!(Rfpio);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn manifest_shape() {
        let m = manifest();
        assert_eq!(m.hosts, vec!["{tenant_url}".to_string()]);
        assert!(!m.capabilities.contains(&Capability::Groups));
        for mapping in user_mappings() {
            assert!(
                scim::AttrPath::parse(&mapping.target).is_ok(),
                "{}",
                mapping.target
            );
        }
    }

    #[test]
    fn create_rules() {
        let a = create_attributes(&[Attribute::new("userName", "a@x.com")]).unwrap();
        assert_eq!(a[1].name, WORK_EMAIL);
        assert!(create_attributes(&[Attribute::new("userName", "ada")]).is_err());
        let differs = create_attributes(&[
            Attribute::new("userName", "a@x.com"),
            Attribute::new(WORK_EMAIL, "b@x.com"),
        ]);
        assert!(matches!(differs, Err(ConnectorError::InvalidInput(m)) if m.contains("equal")));
    }

    #[test]
    fn update_rules() {
        let same = update_changes(
            "1",
            Some("A@x.com"),
            &[
                Attribute::new("userName", "a@x.com"),
                Attribute::new("displayName", "A"),
            ],
        )
        .unwrap();
        assert_eq!(same.len(), 1);
        let changed = update_changes("1", Some("a@x.com"), &[Attribute::new(WORK_EMAIL, "b@x")]);
        assert!(matches!(changed, Err(ConnectorError::InvalidInput(m)) if m.contains("immutable")));
        let role = update_changes("1", None, &[Attribute::new(ROLE, "Admin")]);
        assert!(matches!(role, Err(ConnectorError::InvalidInput(_))));
    }

    #[test]
    fn forbidden_means_scim_disabled() {
        let r = check(Response::new(
            403,
            vec![],
            b"{\"detail\":\"SCIM disabled\"}".to_vec(),
        ));
        assert!(
            matches!(r, Err(ConnectorError::Forbidden(m)) if m.contains("Auto User Provisioning"))
        );
        let r = check(Response::new(401, vec![], b"".to_vec()));
        assert!(matches!(r, Err(ConnectorError::Unauthorized(_))));
    }
}
