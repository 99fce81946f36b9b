//! The generic SCIM 2.0 connector for Provisio.
//!
//! Talks RFC 7643/7644 to any SCIM service provider, following the request
//! pattern Microsoft Entra ID uses for its generic SCIM app:
//!
//! - users: `GET /Users?filter=userName eq "x"` → `POST /Users` →
//!   `GET /Users/{id}` → `PATCH /Users/{id}` (`replace` / `remove` ops) →
//!   disable with `replace active=false` → `DELETE /Users/{id}`;
//! - groups: `POST /Groups` without members,
//!   `GET /Groups?excludedAttributes=members&filter=displayName eq "x"`,
//!   members added with one `PATCH` `add` per batch and removed with one
//!   `remove` op of `members[value eq "id"]` per member.
//!
//! Settings: `base_url` (required), `users_path` (`/Users`), `groups_path`
//! (`/Groups`), `list_sort_by` (optional). Secret: `token` (bearer).
//! See `docs/connectors/scim.md`.
//!
//! Request building and response handling live in [`requests`] as pure
//! functions (unit-tested natively); this file only sends.

pub mod manifest;
pub mod requests;

use provisio_sdk::prelude::*;
use provisio_sdk::{config, errors, log, scim};

use requests::Settings;

/// The SCIM connector.
pub struct ScimConnector;

impl ScimConnector {
    fn settings() -> Result<Settings, ConnectorError> {
        Settings::from_lookup(config::get)
    }

    fn find_objects(
        s: &Settings,
        kind: ObjectKind,
        attribute: &Attribute,
    ) -> Result<Vec<TargetObject>, ConnectorError> {
        let list = requests::list_response(requests::find(s, kind, attribute)?.send()?)?;
        requests::objects(&list)
    }
}

impl Connector for ScimConnector {
    fn describe() -> Manifest {
        manifest::manifest()
    }

    fn test_connection() -> Result<String, ConnectorError> {
        let s = Self::settings()?;
        let response = requests::test_connection(&s, &config::connection_name()).send()?;
        requests::test_connection_result(&s, response)
    }

    fn find(kind: ObjectKind, attribute: Attribute) -> Result<Vec<TargetObject>, ConnectorError> {
        let s = Self::settings()?;
        Self::find_objects(&s, kind, &attribute)
    }

    fn get(kind: ObjectKind, id: String) -> Result<TargetObject, ConnectorError> {
        let s = Self::settings()?;
        requests::object(requests::get(&s, kind, &id)?.send()?)
    }

    fn create(
        kind: ObjectKind,
        attributes: Vec<Attribute>,
    ) -> Result<TargetObject, ConnectorError> {
        let s = Self::settings()?;
        match requests::object(requests::create(&s, kind, &attributes)?.send()?) {
            Err(err @ ConnectorError::Conflict(_)) => {
                // Tell the host which object is in the way, when it is unambiguous.
                let existing = requests::conflict_key(kind, &attributes)
                    .and_then(|key| Self::find_objects(&s, kind, &key).ok());
                Err(requests::conflict(err, existing))
            }
            other => other,
        }
    }

    fn update(kind: ObjectKind, id: String, changes: Vec<Attribute>) -> Result<(), ConnectorError> {
        let s = Self::settings()?;
        let patch = scim::patch_from_changes(&changes)?;
        if patch.is_empty() {
            return Ok(());
        }
        let response = requests::patch(&s, kind, &id, &patch)?.send()?;
        if response.is_success() {
            return Ok(());
        }
        if requests::is_no_target(&response) && scim::has_value_filter(&changes) {
            // The target has no element for a filtered path such as
            // emails[type eq "work"].value yet: replace the whole
            // multi-valued attribute instead.
            log::debug!(
                "PATCH of {} {id} hit noTarget; retrying with whole multi-valued attributes",
                kind.as_str()
            );
            let current: serde_json::Value = requests::get(&s, kind, &id)?
                .send()?
                .error_for_status()?
                .json()?;
            let merged = scim::merged_patch(&current, &changes)?;
            return requests::no_content(requests::patch(&s, kind, &id, &merged)?.send()?);
        }
        Err(errors::from_response(&response))
    }

    fn disable(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        if kind == ObjectKind::Group {
            return Err(ConnectorError::unsupported(
                "disabling groups (SCIM groups have no `active`)",
            ));
        }
        let s = Self::settings()?;
        requests::no_content(requests::set_active(&s, &id, false)?.send()?)
    }

    fn enable(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        if kind == ObjectKind::Group {
            return Err(ConnectorError::unsupported(
                "enabling groups (SCIM groups have no `active`)",
            ));
        }
        let s = Self::settings()?;
        requests::no_content(requests::set_active(&s, &id, true)?.send()?)
    }

    fn delete(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        let s = Self::settings()?;
        requests::no_content(requests::delete(&s, kind, &id)?.send()?)
    }

    fn list(
        kind: ObjectKind,
        cursor: Option<String>,
        page_size: u32,
    ) -> Result<Page, ConnectorError> {
        let s = Self::settings()?;
        let start = scim::cursor_to_start_index(cursor.as_deref())?;
        let count = if page_size == 0 {
            requests::DEFAULT_PAGE_SIZE
        } else {
            page_size
        };
        requests::page(requests::list(&s, kind, start, count).send()?, start, count)
    }

    fn add_members(group_id: String, member_ids: Vec<String>) -> Result<(), ConnectorError> {
        if member_ids.is_empty() {
            return Ok(());
        }
        let s = Self::settings()?;
        requests::no_content(requests::add_members(&s, &group_id, &member_ids)?.send()?)
    }

    fn remove_members(group_id: String, member_ids: Vec<String>) -> Result<(), ConnectorError> {
        if member_ids.is_empty() {
            return Ok(());
        }
        let s = Self::settings()?;
        requests::no_content(requests::remove_members(&s, &group_id, &member_ids)?.send()?)
    }
}

provisio_sdk::export_connector!(ScimConnector);
