//! The Replicon connector for Provisio.
//!
//! Replicon's API is JSON-over-POST RPC on a per-tenant "swimlane":
//!
//! - discovery: `POST {discovery_url}/DiscoveryService1.svc/GetTenantEndpointDetails`
//!   `{"tenant":{"companyKey"}}` names the tenant's `applicationRootUrl`; it is
//!   cached in the host's kv for [`requests::ROOT_TTL_SECONDS`] and
//!   discovered again, once, when the cached root stops answering (404 or a
//!   refused connection);
//! - every operation: `POST {applicationRootUrl}services/<Service>.svc/<Op>`
//!   with HTTP Basic `CompanyKey\LoginName:password` (the host fills in the
//!   password; the guest never sees it) and `X-Replicon-Application`;
//! - test connection: discovery, then `UserService1.svc/GetUser2` of the
//!   admin's own login;
//! - users: find by loginName, emailAddress or employeeId
//!   (`UserListService1.svc/GetData` with a `filterExpression`), get
//!   (`ImportService1.svc/BulkGetUsers3`), create (`ImportService1.svc/PutUser3`),
//!   update (`ImportService2.svc/CreateUserOrApplyModifications` with only the
//!   changed fields), disable/enable (`SecurityService1.svc/DisableLogin` /
//!   `EnableLogin`), delete (`UserService1.svc/Delete`), list (`GetData`
//!   pages; cursor = page number, until a page has no rows).
//!
//! Groups are not provisioned (Entra's Replicon app provisions users only).
//! Request building and response handling live in [`requests`] (pure,
//! unit-tested natively); this file only sends. See `docs/connectors/replicon.md`.

pub mod manifest;
pub mod requests;

use provisio_sdk::http::Response;
use provisio_sdk::prelude::*;
use provisio_sdk::{config, kv, log};
use serde_json::Value as Json;

use requests::Settings;

/// The Replicon connector.
pub struct Replicon;

fn settings() -> Result<Settings, ConnectorError> {
    Settings::from_lookup(config::get)
}

/// Ask the discovery service for the application root and cache it.
fn discover(s: &Settings) -> Result<String, ConnectorError> {
    let root = requests::discovered_root(s, requests::discover(s).send()?)?;
    kv::set_string(&s.root_key(), &root, requests::ROOT_TTL_SECONDS);
    log::debug!("Replicon tenant '{}' is served at {root}", s.company_key);
    Ok(root)
}

/// The cached application root (and `true`), or a fresh discovery (and `false`).
fn root(s: &Settings) -> Result<(String, bool), ConnectorError> {
    match kv::get_string(&s.root_key()) {
        Some(root) if !root.is_empty() => Ok((root, true)),
        _ => Ok((discover(s)?, false)),
    }
}

/// Send one operation; when the cached root no longer answers, discover once
/// more and resend.
fn send(
    s: &Settings,
    service: &str,
    operation: &str,
    body: &Json,
) -> Result<Response, ConnectorError> {
    let (root, cached) = root(s)?;
    let outcome = requests::rpc(s, &root, service, operation, body).send();
    if cached && requests::root_is_stale(&outcome) {
        log::info!(
            "Replicon application root {root} stopped answering {service}/{operation}; discovering again"
        );
        kv::delete(&s.root_key());
        let fresh = discover(s)?;
        return requests::rpc(s, &fresh, service, operation, body).send();
    }
    outcome
}

/// Send one operation and return the `d` of its answer.
fn call(s: &Settings, service: &str, operation: &str, body: &Json) -> Result<Json, ConnectorError> {
    requests::result(send(s, service, operation, body)?)
        .map_err(|e| requests::explain_unauthorized(s, e))
}

/// Every user `GetData` returns for `filter = value` (all pages).
fn find_by_filter(
    s: &Settings,
    filter: &str,
    value: &str,
) -> Result<Vec<TargetObject>, ConnectorError> {
    let mut out = Vec::new();
    for page in 1..=requests::MAX_FIND_PAGES {
        let body =
            requests::get_data_body(page, requests::DEFAULT_PAGE_SIZE, Some((filter, value)));
        let d = call(s, "UserListService1", "GetData", &body)?;
        let rows = requests::row_count(&d);
        out.extend(requests::rows(&d)?);
        // A filter matches few users: a short page is the last one.
        if rows < requests::DEFAULT_PAGE_SIZE as usize {
            return Ok(out);
        }
    }
    log::warn!(
        "Replicon user search stopped after {} pages",
        requests::MAX_FIND_PAGES
    );
    Ok(out)
}

fn find_users(
    s: &Settings,
    attribute: &str,
    value: &str,
) -> Result<Vec<TargetObject>, ConnectorError> {
    let Some(filter) = requests::filter_for(attribute) else {
        return Err(ConnectorError::invalid_input(format!(
            "Replicon users can be found by loginName, emailAddress, employeeId or id (the uri), not `{attribute}`"
        )));
    };
    let target = match attribute {
        "loginName" | "userName" => "loginName",
        "employeeId" => "employeeId",
        _ => "emailAddress",
    };
    // Keep exact matches only (login names and emails compare case-insensitively).
    let found = find_by_filter(s, filter, value)?;
    Ok(found
        .into_iter()
        .filter(|o| {
            o.attribute(target)
                .and_then(|v| v.to_plain_string())
                .is_some_and(|v| {
                    if target == "employeeId" {
                        v.trim() == value.trim()
                    } else {
                        v.trim().eq_ignore_ascii_case(value.trim())
                    }
                })
        })
        .collect())
}

fn users_only(kind: ObjectKind) -> Result<(), ConnectorError> {
    match kind {
        ObjectKind::User => Ok(()),
        ObjectKind::Group => Err(ConnectorError::unsupported(
            "groups (the Replicon connector provisions users only)",
        )),
    }
}

impl Connector for Replicon {
    fn describe() -> Manifest {
        manifest::manifest()
    }

    fn test_connection() -> Result<String, ConnectorError> {
        let s = settings()?;
        // Always discover afresh: the check is that discovery works.
        let root = discover(&s)?;
        let response = requests::rpc(
            &s,
            &root,
            "UserService1",
            "GetUser2",
            &requests::get_user_body(&s.login),
        )
        .send()?;
        let d = requests::result(response).map_err(|e| match e {
            ConnectorError::NotFound(m) => ConnectorError::Unauthorized(format!(
                "{m}: the sign-in worked but Replicon has no user '{}' to read back; check the `login` setting",
                s.login
            )),
            other => requests::explain_unauthorized(&s, other),
        })?;
        let uri = d.get("uri").and_then(Json::as_str).unwrap_or("?");
        let display = d.get("displayText").and_then(Json::as_str).unwrap_or("");
        Ok(format!(
            "Replicon tenant '{}' at {root}: signed in as {} ({display}, {uri})",
            s.company_key,
            s.principal()
        ))
    }

    fn find(kind: ObjectKind, attribute: Attribute) -> Result<Vec<TargetObject>, ConnectorError> {
        users_only(kind)?;
        let s = settings()?;
        let value = attribute.value.to_plain_string().ok_or_else(|| {
            ConnectorError::invalid_input(format!(
                "cannot search by a null or list `{}`",
                attribute.name
            ))
        })?;
        match attribute.name.as_str() {
            "id" | "uri" => match Self::get(kind, value) {
                Ok(o) => Ok(vec![o]),
                Err(ConnectorError::NotFound(_)) => Ok(vec![]),
                Err(e) => Err(e),
            },
            other => find_users(&s, other, &value),
        }
    }

    fn get(kind: ObjectKind, id: String) -> Result<TargetObject, ConnectorError> {
        users_only(kind)?;
        let s = settings()?;
        let uri = requests::user_uri(&id)?;
        let d = call(
            &s,
            "ImportService1",
            "BulkGetUsers3",
            &requests::bulk_get_body(&[uri]),
        )?;
        requests::bulk_users(&d)?
            .into_iter()
            .find(|u| u.id == uri)
            .ok_or_else(|| ConnectorError::NotFound(format!("Replicon has no user {uri}")))
    }

    fn create(
        kind: ObjectKind,
        attributes: Vec<Attribute>,
    ) -> Result<TargetObject, ConnectorError> {
        users_only(kind)?;
        let s = settings()?;
        let new = requests::put_user_body(&attributes)?;
        match call(&s, "ImportService1", "PutUser3", &new.body) {
            Ok(d) => {
                let mut object = requests::user_object(&d)?;
                // PutUser3 answers the reference (uri, displayText, loginName,
                // slug); the rest is what was sent.
                for a in attributes {
                    if object.attribute(&a.name).is_none() && !a.value.is_null() {
                        object.attributes.push(a);
                    }
                }
                if object.attribute("active").is_none() {
                    object.attributes.push(Attribute::new("active", true));
                }
                Ok(object)
            }
            Err(err @ ConnectorError::Conflict(_)) => {
                let existing = find_users(&s, "loginName", &new.login_name).unwrap_or_default();
                Err(requests::conflict_with(err, &existing))
            }
            Err(e) => Err(e),
        }
    }

    fn update(kind: ObjectKind, id: String, changes: Vec<Attribute>) -> Result<(), ConnectorError> {
        users_only(kind)?;
        let s = settings()?;
        let m = requests::modifications_body(&id, &changes)?;
        if let Some(body) = &m.body {
            call(&s, "ImportService2", "CreateUserOrApplyModifications", body)?;
        }
        match m.active {
            Some(true) => Self::enable(kind, id),
            Some(false) => Self::disable(kind, id),
            None => Ok(()),
        }
    }

    fn disable(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        users_only(kind)?;
        let s = settings()?;
        let uri = requests::user_uri(&id)?;
        call(
            &s,
            "SecurityService1",
            "DisableLogin",
            &requests::user_uri_body(uri),
        )
        .map(|_| ())
    }

    fn enable(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        users_only(kind)?;
        let s = settings()?;
        let uri = requests::user_uri(&id)?;
        call(
            &s,
            "SecurityService1",
            "EnableLogin",
            &requests::user_uri_body(uri),
        )
        .map(|_| ())
    }

    fn delete(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        users_only(kind)?;
        let s = settings()?;
        let uri = requests::user_uri(&id)?;
        call(&s, "UserService1", "Delete", &requests::user_uri_body(uri)).map(|_| ())
    }

    fn list(
        kind: ObjectKind,
        cursor: Option<String>,
        page_size: u32,
    ) -> Result<Page, ConnectorError> {
        users_only(kind)?;
        let s = settings()?;
        let page = requests::cursor_page(cursor.as_deref())?;
        let size = if page_size == 0 {
            requests::DEFAULT_PAGE_SIZE
        } else {
            page_size
        };
        let d = call(
            &s,
            "UserListService1",
            "GetData",
            &requests::get_data_body(page, size, None),
        )?;
        let objects = requests::rows(&d)?;
        // Replicon pages until a page comes back without rows.
        let next_cursor = (!objects.is_empty()).then(|| (page + 1).to_string());
        Ok(Page {
            objects,
            next_cursor,
            total: None,
        })
    }
}

provisio_sdk::export_connector!(Replicon);
