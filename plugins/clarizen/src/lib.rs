//! The Clarizen connector for Provisio.
//!
//! Talks Clarizen's REST API V2 as the admin user the operator names:
//!
//! - **server discovery**: `POST {api_url}/authentication/getServerDefinition`
//!   `{"userName","password"}` → `serverLocation`, the data server of the
//!   organization; every later call goes there;
//! - **login**: `POST {serverLocation}/authentication/login` with the same
//!   body → `sessionId`, sent as `Authorization: Session <id>`.
//!
//! Both are **login exchanges** declared in the manifest: the host builds the
//! bodies (the password never enters the connector) and captures login's
//! `sessionId` as the derived secret `session`, which requests name in their
//! `Authorization: Session <secret:session>` header. The connector never
//! holds the session id either. The server location is cached in the
//! connection's `kv` store. When a call answers `errorCode`
//! `SessionTimeout`, the connector forgets the session, logs in again and
//! retries that call once, so an expired session never fails an object.
//!
//! Users only: find (`data/entityQuery` with `Equal`, following `hasMore`),
//! get (`GET data/objects/User/{id}`), create (**`PUT`** `data/objects/User`),
//! update (**`POST`** `data/objects/User/{id}`, changed fields only),
//! disable/enable (`POST data/lifecycle`), delete, list (cursor = the paging
//! `from`). Request building and error mapping live in [`requests`] (pure,
//! unit-tested natively); this file sends. See `docs/connectors/clarizen.md`.

pub mod manifest;
pub mod requests;

use provisio_sdk::http::{RequestBuilder, Response};
use provisio_sdk::prelude::*;
use provisio_sdk::{config, kv, log};

use requests::{Session, Settings};

/// The kv key of the discovered server location.
const KV_SERVER: &str = "clarizen.server_location";
/// How long the server location is cached (it changes only when the
/// organization moves).
const SERVER_TTL_SECONDS: u32 = 12 * 3600;
/// The Clarizen connector.
pub struct Clarizen;

fn settings() -> Result<Settings, ConnectorError> {
    Settings::from_lookup(config::get)
}

/// The data server: cached, or discovered now.
fn server(s: &Settings, fresh: bool) -> Result<String, ConnectorError> {
    if !fresh && let Some(server) = kv::get_string(KV_SERVER) {
        return Ok(server);
    }
    let server = requests::parse_server_location(requests::server_definition(s).send()?.response)?;
    log::debug!("Clarizen server discovery: data server {}", server);
    kv::set_string(KV_SERVER, &server, SERVER_TTL_SECONDS);
    Ok(server)
}

/// Log in at the data server: the host keeps the session.
fn login(s: &Settings, server: String) -> Result<(Session, requests::Login), ConnectorError> {
    let login = requests::parse_login(requests::login(&server).send()?)?;
    log::debug!("logged in to Clarizen at {} as {}", server, s.user_name);
    Ok((Session { server }, login))
}

/// A session: the one the host holds, or a new login.
fn session(s: &Settings) -> Result<Session, ConnectorError> {
    let server = server(s, false)?;
    if provisio_sdk::secrets::holds(manifest::SESSION_SECRET) {
        return Ok(Session { server });
    }
    login(s, server).map(|(session, _)| session)
}

/// Send the request `build` makes for a session; on `SessionTimeout`, log in
/// again and send it once more.
fn send(
    s: &Settings,
    build: impl Fn(&Session) -> Result<RequestBuilder, ConnectorError>,
) -> Result<Response, ConnectorError> {
    let current = session(s)?;
    let response = build(&current)?.send()?;
    if !requests::is_session_timeout(&response) {
        return Ok(response);
    }
    log::info!("the Clarizen session expired; logging in again");
    provisio_sdk::secrets::forget(manifest::SESSION_SECRET);
    let (fresh, _) = login(s, current.server)?;
    build(&fresh)?.send()
}

/// Every user whose `field` equals `value`, across all pages.
fn query_all(s: &Settings, field: &str, value: &str) -> Result<Vec<TargetObject>, ConnectorError> {
    let mut out = Vec::new();
    let mut from = 0;
    for _ in 0..requests::MAX_FIND_PAGES {
        let response = send(s, |session| {
            Ok(requests::entity_query(
                session,
                Some((field, value)),
                from,
                requests::MAX_PAGE_SIZE,
            ))
        })?;
        let (objects, next) = requests::query_page(response)?;
        out.extend(objects);
        match next {
            Some(n) if n > from => from = n,
            _ => return Ok(out),
        }
    }
    log::warn!(
        "Clarizen query on {} stopped after {} pages",
        field,
        requests::MAX_FIND_PAGES
    );
    Ok(out)
}

fn set_active(s: &Settings, id: &str, active: bool) -> Result<(), ConnectorError> {
    requests::check(send(s, |session| requests::lifecycle(session, id, active))?).map(|_| ())
}

impl Connector for Clarizen {
    fn describe() -> Manifest {
        manifest::manifest()
    }

    fn test_connection() -> Result<String, ConnectorError> {
        let s = settings()?;
        // Always discover and log in afresh: this checks the credentials.
        let server = server(&s, true)?;
        let (session, login) = login(&s, server)?;
        let response = requests::check(requests::entity_query(&session, None, 0, 1).send()?)?;
        let (_, more) = requests::query_page(response)?;
        Ok(format!(
            "signed in to {} as {} (organization {}, license {}); user query OK{}",
            session.server,
            s.user_name,
            login.organization_id.as_deref().unwrap_or("?"),
            login.license_type.as_deref().unwrap_or("?"),
            if more.is_some() {
                ", more than one user visible"
            } else {
                ""
            }
        ))
    }

    fn find(kind: ObjectKind, attribute: Attribute) -> Result<Vec<TargetObject>, ConnectorError> {
        if kind == ObjectKind::Group {
            return Err(ConnectorError::unsupported(
                "groups (Clarizen provisions users only)",
            ));
        }
        let s = settings()?;
        let value = attribute.value.to_plain_string().ok_or_else(|| {
            ConnectorError::invalid_input(format!(
                "cannot search by a null or list `{}`",
                attribute.name
            ))
        })?;
        if attribute.name == "id" {
            return match Self::get(kind, value) {
                Ok(o) => Ok(vec![o]),
                Err(ConnectorError::NotFound(_)) => Ok(vec![]),
                Err(e) => Err(e),
            };
        }
        let field = requests::FIND_FIELDS
            .iter()
            .find(|f| f.eq_ignore_ascii_case(&attribute.name))
            .ok_or_else(|| {
                ConnectorError::invalid_input(format!(
                    "Clarizen users can be found by {} or id, not `{}`",
                    requests::FIND_FIELDS.join(", "),
                    attribute.name
                ))
            })?;
        query_all(&s, field, &value)
    }

    fn get(kind: ObjectKind, id: String) -> Result<TargetObject, ConnectorError> {
        if kind == ObjectKind::Group {
            return Err(ConnectorError::unsupported(
                "groups (Clarizen provisions users only)",
            ));
        }
        let s = settings()?;
        requests::single(send(&s, |session| requests::get_user(session, &id))?)
    }

    fn create(
        kind: ObjectKind,
        attributes: Vec<Attribute>,
    ) -> Result<TargetObject, ConnectorError> {
        if kind == ObjectKind::Group {
            return Err(ConnectorError::unsupported(
                "groups (Clarizen provisions users only)",
            ));
        }
        let s = settings()?;
        let changes = requests::user_changes(&attributes, true)?;
        let response = send(&s, |session| {
            Ok(requests::create_user(session, &changes.fields))
        })?;
        let id = match requests::created_id(response) {
            Ok(id) => id,
            Err(err @ ConnectorError::Conflict(_)) => {
                // Name the user in the way, when the query finds exactly one.
                let existing = changes
                    .fields
                    .get("UserName")
                    .and_then(serde_json::Value::as_str)
                    .and_then(|u| query_all(&s, "UserName", u).ok())
                    .unwrap_or_default();
                return Err(requests::conflict_with(err, &existing));
            }
            Err(e) => return Err(e),
        };
        if changes.active == Some(false) {
            set_active(&s, &id, false)?;
        }
        // Clarizen answers a create with the id only; report what was written
        // rather than spend another request (the quota is per second).
        let mut attributes: Vec<Attribute> = attributes
            .into_iter()
            .filter(|a| a.name != "active")
            .collect();
        attributes.push(Attribute::new("active", changes.active.unwrap_or(true)));
        Ok(TargetObject { id, attributes })
    }

    fn update(kind: ObjectKind, id: String, changes: Vec<Attribute>) -> Result<(), ConnectorError> {
        if kind == ObjectKind::Group {
            return Err(ConnectorError::unsupported(
                "groups (Clarizen provisions users only)",
            ));
        }
        let s = settings()?;
        let changes = requests::user_changes(&changes, false)?;
        if changes.fields.as_object().is_some_and(|o| !o.is_empty()) {
            requests::check(send(&s, |session| {
                requests::update_user(session, &id, &changes.fields)
            })?)?;
        }
        if let Some(active) = changes.active {
            set_active(&s, &id, active)?;
        }
        Ok(())
    }

    fn disable(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        if kind == ObjectKind::Group {
            return Err(ConnectorError::unsupported(
                "groups (Clarizen provisions users only)",
            ));
        }
        set_active(&settings()?, &id, false)
    }

    fn enable(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        if kind == ObjectKind::Group {
            return Err(ConnectorError::unsupported(
                "groups (Clarizen provisions users only)",
            ));
        }
        set_active(&settings()?, &id, true)
    }

    fn delete(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        if kind == ObjectKind::Group {
            return Err(ConnectorError::unsupported(
                "groups (Clarizen provisions users only)",
            ));
        }
        let s = settings()?;
        requests::check(send(&s, |session| requests::delete_user(session, &id))?).map(|_| ())
    }

    fn list(
        kind: ObjectKind,
        cursor: Option<String>,
        page_size: u32,
    ) -> Result<Page, ConnectorError> {
        if kind == ObjectKind::Group {
            return Err(ConnectorError::unsupported(
                "groups (Clarizen provisions users only)",
            ));
        }
        let s = settings()?;
        let from = requests::cursor_from(cursor.as_deref())?;
        let size = if page_size == 0 {
            requests::MAX_PAGE_SIZE
        } else {
            page_size
        };
        let response = send(&s, |session| {
            Ok(requests::entity_query(session, None, from, size))
        })?;
        let (objects, next) = requests::query_page(response)?;
        Ok(Page {
            objects,
            next_cursor: next.filter(|n| *n > from).map(|n| n.to_string()),
            total: None,
        })
    }
}

provisio_sdk::export_connector!(Clarizen);
