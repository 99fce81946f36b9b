//! The Zendesk Support connector for Provisio.
//!
//! Talks the Zendesk Support API v2 (`https://{subdomain}.zendesk.com/api/v2`)
//! with HTTP Basic `{admin_email}/token:{api_token}` (the host fills in the
//! token; the guest never sees it):
//!
//! - test connection: `GET /users/me.json`; Zendesk answers bad credentials
//!   with **200 and the anonymous user** (no `id`), reported as unauthorized;
//!   a signed-in non-admin is forbidden;
//! - users: find by email (`/users/search.json?query=email:x`, exact match
//!   kept) or `external_id` (`?external_id=`), create (`POST`), get, update
//!   (partial `PUT`), disable/enable (`PUT {"user":{"suspended":…}}`), delete
//!   (soft: `DELETE` → 200 with the user, `active:false`), list (cursor pages);
//! - groups: create, get (with `members`), update, delete (204), find by name
//!   (cursor-paged list, exact name), list;
//! - memberships (agents only): the batch's users are checked with one
//!   `GET /users/show_many.json` (an end-user refuses the whole batch before
//!   any write), the group's memberships are read once, then one
//!   `POST /group_memberships.json` per missing member; removal looks the
//!   membership ids up and sends one `DELETE /group_memberships/{id}.json`
//!   each. Both are idempotent, so a retried batch is harmless.
//!
//! Request building and response handling live in [`requests`] (pure,
//! unit-tested natively); this file only sends. See `docs/connectors/zendesk.md`.

pub mod manifest;
pub mod requests;

use provisio_sdk::http::RequestBuilder;
use provisio_sdk::prelude::*;
use provisio_sdk::{config, log};
use serde_json::Value as Json;
use std::collections::BTreeMap;

use requests::Settings;

/// The Zendesk connector.
pub struct Zendesk;

fn settings() -> Result<Settings, ConnectorError> {
    Settings::from_lookup(config::get)
}

fn fetch(request: RequestBuilder) -> Result<Json, ConnectorError> {
    requests::body(request.send()?)
}

/// Every user the search returns (following `next_page`), as JSON.
fn search_users(s: &Settings, first: RequestBuilder) -> Result<Vec<Json>, ConnectorError> {
    let mut users = Vec::new();
    let mut body = fetch(first)?;
    for _ in 0..requests::MAX_SEARCH_PAGES {
        users.extend(requests::array(&body, "users").iter().cloned());
        match body.get("next_page").and_then(Json::as_str) {
            Some(next) if !next.is_empty() => body = fetch(requests::next_page(s, next))?,
            _ => return Ok(users),
        }
    }
    log::warn!(
        "user search stopped after {} pages",
        requests::MAX_SEARCH_PAGES
    );
    Ok(users)
}

fn find_users_by_email(s: &Settings, email: &str) -> Result<Vec<TargetObject>, ConnectorError> {
    // Zendesk search is full-text: keep exact (case-insensitive) matches only.
    search_users(s, requests::search_email(s, email))?
        .iter()
        .filter(|u| {
            u.get("email")
                .and_then(Json::as_str)
                .is_some_and(|e| requests::same_email(e, email))
        })
        .map(requests::user_object)
        .collect()
}

fn find_users_by_external_id(s: &Settings, id: &str) -> Result<Vec<TargetObject>, ConnectorError> {
    search_users(s, requests::search_external_id(s, id))?
        .iter()
        .filter(|u| u.get("external_id").and_then(Json::as_str) == Some(id))
        .map(requests::user_object)
        .collect()
}

fn all_groups(s: &Settings) -> Result<Vec<Json>, ConnectorError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let body = fetch(requests::list(
            s,
            ObjectKind::Group,
            cursor.as_deref(),
            requests::MAX_PAGE_SIZE,
        ))?;
        out.extend(requests::array(&body, "groups").iter().cloned());
        match requests::after_cursor(&body) {
            Some(c) if Some(&c) != cursor.as_ref() => cursor = Some(c),
            _ => return Ok(out),
        }
    }
}

fn find_groups_by_name(s: &Settings, name: &str) -> Result<Vec<TargetObject>, ConnectorError> {
    all_groups(s)?
        .iter()
        .filter(|g| g.get("deleted").and_then(Json::as_bool) != Some(true))
        .filter(|g| {
            g.get("name")
                .and_then(Json::as_str)
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(name.trim()))
        })
        .map(requests::group_object)
        .collect()
}

/// The group's memberships: user id → membership id.
fn memberships(s: &Settings, group_id: &str) -> Result<BTreeMap<String, String>, ConnectorError> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let body = fetch(requests::group_memberships(s, group_id, cursor.as_deref())?)?;
        for m in requests::array(&body, "group_memberships") {
            let user = m.get("user_id").map(Json::to_string);
            let id = m.get("id").map(Json::to_string);
            if let (Some(user), Some(id)) = (user, id) {
                out.insert(
                    user.trim_matches('"').to_string(),
                    id.trim_matches('"').to_string(),
                );
            }
        }
        match requests::after_cursor(&body) {
            Some(c) if Some(&c) != cursor.as_ref() => cursor = Some(c),
            _ => return Ok(out),
        }
    }
}

/// Refuse the batch unless every member is an agent or admin.
fn check_agents(s: &Settings, member_ids: &[String]) -> Result<(), ConnectorError> {
    for chunk in member_ids.chunks(requests::MAX_PAGE_SIZE as usize) {
        let body = fetch(requests::show_many(s, chunk)?)?;
        let users = requests::array(&body, "users");
        let mut end_users = Vec::new();
        for id in chunk {
            let user = users.iter().find(|u| {
                u.get("id")
                    .map(Json::to_string)
                    .is_some_and(|x| x == id.trim())
            });
            match user {
                None => {
                    return Err(ConnectorError::NotFound(format!(
                        "Zendesk user {id} does not exist"
                    )));
                }
                Some(u) => {
                    let role = u.get("role").and_then(Json::as_str).unwrap_or("end-user");
                    if role != "agent" && role != "admin" {
                        let email = u.get("email").and_then(Json::as_str).unwrap_or("");
                        end_users.push(format!("{id} ({email}, {role})"));
                    }
                }
            }
        }
        if !end_users.is_empty() {
            return Err(ConnectorError::invalid_input(format!(
                "Zendesk groups hold agents only: {} not an agent; give the Agent or Admin role \
                 first (nothing was added)",
                if end_users.len() == 1 {
                    format!("user {} is", end_users[0])
                } else {
                    format!("users {} are", end_users.join(", "))
                }
            )));
        }
    }
    Ok(())
}

impl Connector for Zendesk {
    fn describe() -> Manifest {
        manifest::manifest()
    }

    fn test_connection() -> Result<String, ConnectorError> {
        let s = settings()?;
        requests::test_connection_result(&s, requests::me(&s).send()?)
    }

    fn find(kind: ObjectKind, attribute: Attribute) -> Result<Vec<TargetObject>, ConnectorError> {
        let s = settings()?;
        let value = attribute.value.to_plain_string().ok_or_else(|| {
            ConnectorError::invalid_input(format!(
                "cannot search by a null or list `{}`",
                attribute.name
            ))
        })?;
        match (kind, attribute.name.as_str()) {
            (_, "id") => match Self::get(kind, value) {
                Ok(o) => Ok(vec![o]),
                Err(ConnectorError::NotFound(_)) => Ok(vec![]),
                Err(e) => Err(e),
            },
            (ObjectKind::User, "email" | "userName" | "mail") => find_users_by_email(&s, &value),
            (ObjectKind::User, "external_id" | "externalId") => {
                find_users_by_external_id(&s, &value)
            }
            (ObjectKind::Group, "name" | "displayName") => find_groups_by_name(&s, &value),
            (ObjectKind::User, other) => Err(ConnectorError::invalid_input(format!(
                "Zendesk users can be found by email, external_id or id, not `{other}`"
            ))),
            (ObjectKind::Group, other) => Err(ConnectorError::invalid_input(format!(
                "Zendesk groups can be found by name or id, not `{other}`"
            ))),
        }
    }

    fn get(kind: ObjectKind, id: String) -> Result<TargetObject, ConnectorError> {
        let s = settings()?;
        let mut object = requests::single(kind, requests::get(&s, kind, &id)?.send()?)?;
        if kind == ObjectKind::Group {
            let members: Vec<String> = memberships(&s, &object.id)?.into_keys().collect();
            object.attributes.push(Attribute::new("members", members));
        }
        Ok(object)
    }

    fn create(
        kind: ObjectKind,
        attributes: Vec<Attribute>,
    ) -> Result<TargetObject, ConnectorError> {
        let s = settings()?;
        let body = match kind {
            ObjectKind::User => requests::user_body(&attributes, true)?,
            ObjectKind::Group => requests::group_body(&attributes, true)?,
        };
        match requests::single(kind, requests::create(&s, kind, &body).send()?) {
            Err(err @ ConnectorError::Conflict(_)) => {
                // Name the object in the way, when a lookup finds exactly one.
                let existing = match kind {
                    ObjectKind::User => body
                        .get("email")
                        .and_then(Json::as_str)
                        .and_then(|e| find_users_by_email(&s, e).ok()),
                    ObjectKind::Group => body
                        .get("name")
                        .and_then(Json::as_str)
                        .and_then(|n| find_groups_by_name(&s, n).ok()),
                };
                Err(requests::conflict_with(err, &existing.unwrap_or_default()))
            }
            other => other,
        }
    }

    fn update(kind: ObjectKind, id: String, changes: Vec<Attribute>) -> Result<(), ConnectorError> {
        let s = settings()?;
        let body = match kind {
            ObjectKind::User => requests::user_body(&changes, false)?,
            ObjectKind::Group => requests::group_body(&changes, false)?,
        };
        if body.as_object().is_some_and(|o| o.is_empty()) {
            return Ok(());
        }
        requests::check(requests::update(&s, kind, &id, &body)?.send()?).map(|_| ())
    }

    fn disable(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        if kind == ObjectKind::Group {
            return Err(ConnectorError::unsupported(
                "disabling groups (Zendesk groups can only be deleted)",
            ));
        }
        let s = settings()?;
        requests::check(requests::set_suspended(&s, &id, true)?.send()?).map(|_| ())
    }

    fn enable(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        if kind == ObjectKind::Group {
            return Err(ConnectorError::unsupported(
                "enabling groups (Zendesk groups can only be deleted)",
            ));
        }
        let s = settings()?;
        requests::check(requests::set_suspended(&s, &id, false)?.send()?).map(|_| ())
    }

    fn delete(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        let s = settings()?;
        requests::check(requests::delete(&s, kind, &id)?.send()?).map(|_| ())
    }

    fn list(
        kind: ObjectKind,
        cursor: Option<String>,
        page_size: u32,
    ) -> Result<Page, ConnectorError> {
        let s = settings()?;
        let size = if page_size == 0 {
            requests::MAX_PAGE_SIZE
        } else {
            page_size
        };
        requests::page(
            kind,
            requests::list(&s, kind, cursor.as_deref(), size).send()?,
        )
    }

    fn add_members(group_id: String, member_ids: Vec<String>) -> Result<(), ConnectorError> {
        if member_ids.is_empty() {
            return Ok(());
        }
        let s = settings()?;
        check_agents(&s, &member_ids)?;
        let existing = memberships(&s, &group_id)?;
        for user in &member_ids {
            if existing.contains_key(user.trim()) {
                continue;
            }
            requests::check(requests::add_membership(&s, &group_id, user)?.send()?)?;
        }
        Ok(())
    }

    fn remove_members(group_id: String, member_ids: Vec<String>) -> Result<(), ConnectorError> {
        if member_ids.is_empty() {
            return Ok(());
        }
        let s = settings()?;
        let existing = memberships(&s, &group_id)?;
        for user in &member_ids {
            let Some(membership) = existing.get(user.trim()) else {
                continue;
            };
            let response = requests::delete_membership(&s, membership)?.send()?;
            if response.status != 404 {
                requests::check(response)?;
            }
        }
        Ok(())
    }
}

provisio_sdk::export_connector!(Zendesk);
