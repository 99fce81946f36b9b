//! Pure request building and response handling: everything here is tested
//! natively, without the host.

use provisio_sdk::errors::ScimError;
use provisio_sdk::http::{Auth, Method, RequestBuilder, Response, percent_encode};
use provisio_sdk::prelude::*;
use provisio_sdk::scim::{self, Filter, ListResponse, PatchOp};

use crate::manifest::{
    BASE_URL, DEFAULT_GROUPS_PATH, DEFAULT_USERS_PATH, GROUPS_PATH, LIST_SORT_BY, TOKEN_SECRET,
    USERS_PATH,
};

/// The `userName` the connection test looks for; no real user has it.
pub const TEST_CONNECTION_USER_NAME: &str = "provisio-test-connection-7c9e6679-7425-40de-944b";

/// The page size used when the host asks for 0.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// The connection's settings, normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The base URL without a trailing slash.
    pub base_url: String,
    /// The Users path, with a leading and without a trailing slash.
    pub users_path: String,
    /// The Groups path, with a leading and without a trailing slash.
    pub groups_path: String,
    /// The `sortBy` attribute for lists, if any.
    pub list_sort_by: Option<String>,
}

fn normalise_path(path: &str) -> String {
    let trimmed = path.trim().trim_matches('/');
    format!("/{trimmed}")
}

impl Settings {
    /// Read and check the settings through `get` (the host's `config.get`).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConnectorError> {
        let base = provisio_sdk::config::require_value(BASE_URL, get(BASE_URL))?;
        let base = base.trim().trim_end_matches('/').to_string();
        let lower = base.to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(ConnectorError::InvalidInput(format!(
                "the setting `{BASE_URL}` must be an http(s) URL, got `{base}`"
            )));
        }
        let path = |name: &str, default: &str| {
            let value = get(name).filter(|v| !v.trim().trim_matches('/').is_empty());
            normalise_path(value.as_deref().unwrap_or(default))
        };
        Ok(Settings {
            base_url: base,
            users_path: path(USERS_PATH, DEFAULT_USERS_PATH),
            groups_path: path(GROUPS_PATH, DEFAULT_GROUPS_PATH),
            list_sort_by: get(LIST_SORT_BY)
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        })
    }

    /// The collection URL of a kind, e.g. `https://h/v2/Users`.
    pub fn collection(&self, kind: ObjectKind) -> String {
        let path = match kind {
            ObjectKind::User => &self.users_path,
            ObjectKind::Group => &self.groups_path,
        };
        format!("{}{path}", self.base_url)
    }

    /// The URL of one resource; the id is percent-encoded.
    pub fn resource(&self, kind: ObjectKind, id: &str) -> String {
        format!("{}/{}", self.collection(kind), percent_encode(id))
    }
}

fn request(method: Method, url: String) -> RequestBuilder {
    RequestBuilder::new(method, url)
        .auth(Auth::bearer(TOKEN_SECRET))
        .accept(scim::CONTENT_TYPE)
}

fn with_json(builder: RequestBuilder, body: &serde_json::Value) -> RequestBuilder {
    builder.content_type(scim::CONTENT_TYPE).json(body)
}

fn check_id(kind: ObjectKind, id: &str) -> Result<(), ConnectorError> {
    if id.trim().is_empty() {
        return Err(ConnectorError::InvalidInput(format!(
            "empty {} id",
            kind.as_str()
        )));
    }
    Ok(())
}

/// `GET /Users?filter=<attr> eq "<v>"`; for groups
/// `GET /Groups?excludedAttributes=members&filter=...`.
pub fn find(
    s: &Settings,
    kind: ObjectKind,
    attribute: &Attribute,
) -> Result<RequestBuilder, ConnectorError> {
    let filter = Filter::for_attribute(&attribute.name, &attribute.value)?;
    let mut builder = request(Method::Get, s.collection(kind));
    if kind == ObjectKind::Group {
        builder = builder.query("excludedAttributes", "members");
    }
    Ok(builder.query("filter", filter.to_string()))
}

/// `GET /Users/{id}` or `GET /Groups/{id}` (members included).
pub fn get(s: &Settings, kind: ObjectKind, id: &str) -> Result<RequestBuilder, ConnectorError> {
    check_id(kind, id)?;
    Ok(request(Method::Get, s.resource(kind, id)))
}

/// The attributes sent on create: groups are created without members.
pub fn create_attributes(kind: ObjectKind, attributes: &[Attribute]) -> Vec<Attribute> {
    attributes
        .iter()
        .filter(|a| kind == ObjectKind::User || !a.name.eq_ignore_ascii_case("members"))
        .cloned()
        .collect()
}

/// `POST /Users` or `POST /Groups` (without members) with the resource.
pub fn create(
    s: &Settings,
    kind: ObjectKind,
    attributes: &[Attribute],
) -> Result<RequestBuilder, ConnectorError> {
    let resource = scim::resource_from_attributes(kind, &create_attributes(kind, attributes))?;
    Ok(with_json(
        request(Method::Post, s.collection(kind)),
        &resource,
    ))
}

/// `PATCH /Users/{id}` (or Groups) with a PatchOp.
pub fn patch(
    s: &Settings,
    kind: ObjectKind,
    id: &str,
    patch: &PatchOp,
) -> Result<RequestBuilder, ConnectorError> {
    check_id(kind, id)?;
    Ok(with_json(
        request(Method::Patch, s.resource(kind, id)),
        &patch.to_json(),
    ))
}

/// `PATCH /Users/{id}` with `replace active=<active>`.
pub fn set_active(s: &Settings, id: &str, active: bool) -> Result<RequestBuilder, ConnectorError> {
    patch(
        s,
        ObjectKind::User,
        id,
        &PatchOp::new().replace("active", active),
    )
}

/// `DELETE /Users/{id}` or `DELETE /Groups/{id}`.
pub fn delete(s: &Settings, kind: ObjectKind, id: &str) -> Result<RequestBuilder, ConnectorError> {
    check_id(kind, id)?;
    Ok(request(Method::Delete, s.resource(kind, id)))
}

/// `GET /Users?startIndex=<start>&count=<count>` (groups without members).
pub fn list(s: &Settings, kind: ObjectKind, start_index: u64, count: u32) -> RequestBuilder {
    let mut builder = request(Method::Get, s.collection(kind))
        .query("startIndex", start_index.to_string())
        .query("count", count.to_string());
    if let Some(sort_by) = &s.list_sort_by {
        builder = builder.query("sortBy", sort_by.clone());
    }
    if kind == ObjectKind::Group {
        builder = builder.query("excludedAttributes", "members");
    }
    builder
}

/// One `PATCH /Groups/{id}` adding all members.
pub fn add_members(
    s: &Settings,
    group_id: &str,
    member_ids: &[String],
) -> Result<RequestBuilder, ConnectorError> {
    patch(
        s,
        ObjectKind::Group,
        group_id,
        &PatchOp::new().add_members(member_ids),
    )
}

/// One `PATCH /Groups/{id}` with a `remove` of `members[value eq "id"]` per member.
pub fn remove_members(
    s: &Settings,
    group_id: &str,
    member_ids: &[String],
) -> Result<RequestBuilder, ConnectorError> {
    patch(
        s,
        ObjectKind::Group,
        group_id,
        &PatchOp::new().remove_members(member_ids),
    )
}

/// The connection test: `GET /Users?filter=userName eq "<test name>"`.
pub fn test_connection(s: &Settings, connection_name: &str) -> RequestBuilder {
    let user_name = if connection_name.is_empty() {
        TEST_CONNECTION_USER_NAME.to_string()
    } else {
        format!("{TEST_CONNECTION_USER_NAME}-{connection_name}")
    };
    request(Method::Get, s.collection(ObjectKind::User))
        .query("filter", Filter::eq("userName", user_name).to_string())
}

/// Parse a successful list response.
pub fn list_response(response: Response) -> Result<ListResponse, ConnectorError> {
    let response = response.error_for_status()?;
    ListResponse::from_slice(response.body())
}

/// The objects of a list response.
pub fn objects(list: &ListResponse) -> Result<Vec<TargetObject>, ConnectorError> {
    list.resources
        .iter()
        .map(scim::object_from_resource)
        .collect()
}

/// A page for `list`: the objects and the next `startIndex` as the cursor.
pub fn page(response: Response, start_index: u64, count: u32) -> Result<Page, ConnectorError> {
    let list = list_response(response)?;
    Ok(Page {
        objects: objects(&list)?,
        next_cursor: list
            .next_start_index(start_index, u64::from(count))
            .map(|n| n.to_string()),
        total: list.total_results,
    })
}

/// The object a `GET` or `POST` answered with.
pub fn object(response: Response) -> Result<TargetObject, ConnectorError> {
    let response = response.error_for_status()?;
    if response.body_is_empty() {
        return Err(ConnectorError::Other(format!(
            "HTTP {}: the target answered without the resource",
            response.status()
        )));
    }
    let json: serde_json::Value = response.json()?;
    scim::object_from_resource(&json)
}

/// Success of a PATCH or DELETE: any 2xx (a PATCH answers 200 with the
/// resource or 204 without; a DELETE 204).
pub fn no_content(response: Response) -> Result<(), ConnectorError> {
    response.error_for_status().map(|_| ())
}

/// Whether a PATCH failed because a filtered path matched no element
/// (`400` with `scimType: noTarget`).
pub fn is_no_target(response: &Response) -> bool {
    response.status() == 400
        && ScimError::parse(response.body())
            .and_then(|e| e.scim_type)
            .is_some_and(|t| t.eq_ignore_ascii_case("noTarget"))
}

/// The result of the connection test.
pub fn test_connection_result(s: &Settings, response: Response) -> Result<String, ConnectorError> {
    let list = list_response(response)?;
    let found = list.total_results.unwrap_or(list.resources.len() as u64);
    if found != 0 {
        return Err(ConnectorError::Other(format!(
            "the connection test looked up a user that cannot exist and the target returned {found} result(s); \
             is filtering supported at {}{}?",
            s.base_url, s.users_path
        )));
    }
    Ok(format!(
        "{}{}: the bearer token was accepted and a filtered user query answered with no match",
        s.base_url, s.users_path
    ))
}

/// The conflict for a create answered with 409, with the existing id when a
/// lookup found exactly one match.
pub fn conflict(error: ConnectorError, existing: Option<Vec<TargetObject>>) -> ConnectorError {
    match (error, existing) {
        (ConnectorError::Conflict(mut c), Some(found)) if found.len() == 1 => {
            c.existing_id = found.into_iter().next().map(|o| o.id);
            ConnectorError::Conflict(c)
        }
        (error, _) => error,
    }
}

/// The attribute to look the existing object up by after a 409: `userName`
/// for users, `displayName` for groups.
pub fn conflict_key(kind: ObjectKind, attributes: &[Attribute]) -> Option<Attribute> {
    let key = match kind {
        ObjectKind::User => "userName",
        ObjectKind::Group => "displayName",
    };
    attributes
        .iter()
        .find(|a| a.name == key && a.value.as_text().is_some())
        .cloned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn is_patch(builder: &RequestBuilder) -> bool {
        builder.method() == Method::Patch && builder.body_template().is_some()
    }

    fn settings() -> Settings {
        Settings::from_lookup(|name| match name {
            "base_url" => Some("http://127.0.0.1:18099/v2/".into()),
            _ => None,
        })
        .unwrap()
    }

    fn body(b: &RequestBuilder) -> serde_json::Value {
        serde_json::from_str(&b.body_text().unwrap()).unwrap()
    }

    fn scim_json(status: u16, body: serde_json::Value) -> Response {
        Response::new(
            status,
            vec![("Content-Type".into(), "application/scim+json".into())],
            body.to_string().into_bytes(),
        )
    }

    #[test]
    fn settings_normalisation() {
        let s = settings();
        assert_eq!(s.base_url, "http://127.0.0.1:18099/v2");
        assert_eq!(
            s.collection(ObjectKind::User),
            "http://127.0.0.1:18099/v2/Users"
        );
        assert_eq!(
            s.collection(ObjectKind::Group),
            "http://127.0.0.1:18099/v2/Groups"
        );
        assert_eq!(
            s.resource(ObjectKind::User, "a/b c"),
            "http://127.0.0.1:18099/v2/Users/a%2Fb%20c"
        );
        let s = Settings::from_lookup(|name| match name {
            "base_url" => Some("https://x.test/scim".into()),
            "users_path" => Some("people/".into()),
            "groups_path" => Some("  ".into()),
            "list_sort_by" => Some("id".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.users_path, "/people");
        assert_eq!(s.groups_path, "/Groups");
        assert_eq!(s.list_sort_by.as_deref(), Some("id"));
        let missing = Settings::from_lookup(|_| None);
        assert!(matches!(missing, Err(ConnectorError::InvalidInput(m)) if m.contains("base_url")));
        let bad = Settings::from_lookup(|_| Some("ftp://x".into()));
        assert!(matches!(bad, Err(ConnectorError::InvalidInput(_))));
    }

    #[test]
    fn find_requests() {
        let s = settings();
        let r = find(
            &s,
            ObjectKind::User,
            &Attribute::new("userName", "a\"b+c@x"),
        )
        .unwrap();
        assert_eq!(r.method(), Method::Get);
        assert_eq!(
            r.url(),
            "http://127.0.0.1:18099/v2/Users?filter=userName%20eq%20%22a%5C%22b%2Bc%40x%22"
        );
        let req = r.build().unwrap();
        assert!(req.auth.is_some());
        assert!(req.body.is_none());
        let r = find(
            &s,
            ObjectKind::Group,
            &Attribute::new("displayName", "Sales"),
        )
        .unwrap();
        assert_eq!(
            r.url(),
            "http://127.0.0.1:18099/v2/Groups?excludedAttributes=members&filter=displayName%20eq%20%22Sales%22"
        );
        let r = find(
            &s,
            ObjectKind::User,
            &Attribute::new(r#"emails[type eq "work"].value"#, "a@x"),
        )
        .unwrap();
        assert!(r.url().ends_with(
            "filter=emails%5Btype%20eq%20%22work%22%20and%20value%20eq%20%22a%40x%22%5D"
        ));
        assert!(
            find(
                &s,
                ObjectKind::User,
                &Attribute::new("userName", Value::Null)
            )
            .is_err()
        );
    }

    #[test]
    fn create_requests() {
        let s = settings();
        let r = create(
            &s,
            ObjectKind::User,
            &[
                Attribute::new("userName", "alice"),
                Attribute::new("active", "True"),
                Attribute::new(r#"emails[type eq "work"].value"#, "alice@x"),
            ],
        )
        .unwrap();
        assert_eq!(r.method(), Method::Post);
        assert_eq!(r.url(), "http://127.0.0.1:18099/v2/Users");
        assert_eq!(
            r.header_value("content-type")
                .and_then(|t| t.as_literal())
                .as_deref(),
            Some("application/scim+json")
        );
        assert_eq!(
            body(&r),
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "alice",
                "active": true,
                "emails": [{"type": "work", "value": "alice@x", "primary": true}]
            })
        );
        let r = create(
            &s,
            ObjectKind::Group,
            &[
                Attribute::new("displayName", "G"),
                Attribute::new("members", Value::TextList(vec!["u1".into()])),
            ],
        )
        .unwrap();
        assert_eq!(
            body(&r),
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G"})
        );
    }

    #[test]
    fn patch_requests() {
        let s = settings();
        let r = set_active(&s, "u1", false).unwrap();
        assert!(is_patch(&r));
        assert_eq!(r.url(), "http://127.0.0.1:18099/v2/Users/u1");
        assert_eq!(
            body(&r),
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "active", "value": false}]
            })
        );
        let ids = vec!["u1".to_string(), "u2".to_string()];
        let r = add_members(&s, "g1", &ids).unwrap();
        assert_eq!(r.url(), "http://127.0.0.1:18099/v2/Groups/g1");
        assert_eq!(
            body(&r)["Operations"],
            json!([{"op": "add", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]}])
        );
        let r = remove_members(&s, "g1", &ids).unwrap();
        assert_eq!(
            body(&r)["Operations"],
            json!([
                {"op": "remove", "path": "members[value eq \"u1\"]"},
                {"op": "remove", "path": "members[value eq \"u2\"]"}
            ])
        );
        assert!(get(&s, ObjectKind::User, " ").is_err());
    }

    #[test]
    fn delete_and_list_requests() {
        let s = settings();
        let r = delete(&s, ObjectKind::Group, "g1").unwrap();
        assert_eq!(r.method(), Method::Delete);
        assert_eq!(r.url(), "http://127.0.0.1:18099/v2/Groups/g1");
        assert_eq!(
            list(&s, ObjectKind::User, 1, 50).url(),
            "http://127.0.0.1:18099/v2/Users?startIndex=1&count=50"
        );
        let mut sorted = s.clone();
        sorted.list_sort_by = Some("id".into());
        assert_eq!(
            list(&sorted, ObjectKind::Group, 51, 50).url(),
            "http://127.0.0.1:18099/v2/Groups?startIndex=51&count=50&sortBy=id&excludedAttributes=members"
        );
    }

    #[test]
    fn test_connection_flow() {
        let s = settings();
        let r = test_connection(&s, "acme");
        assert!(r.url().starts_with(
            "http://127.0.0.1:18099/v2/Users?filter=userName%20eq%20%22provisio-test-connection-"
        ));
        assert!(r.url().ends_with("-acme%22"));
        let empty = scim_json(
            200,
            json!({"schemas": [scim::LIST_RESPONSE_SCHEMA], "totalResults": 0, "Resources": []}),
        );
        assert!(test_connection_result(&s, empty).is_ok());
        let found = scim_json(200, json!({"totalResults": 3, "Resources": [{"id": "1"}]}));
        assert!(matches!(
            test_connection_result(&s, found),
            Err(ConnectorError::Other(_))
        ));
        let denied = scim_json(
            401,
            json!({"schemas": [scim::ERROR_SCHEMA], "status": "401", "detail": "Authorization failure"}),
        );
        assert!(matches!(
            test_connection_result(&s, denied),
            Err(ConnectorError::Unauthorized(m)) if m.contains("Authorization failure")
        ));
    }

    #[test]
    fn responses() {
        let created = scim_json(
            201,
            json!({"id": "abc", "userName": "alice", "active": true}),
        );
        let o = object(created).unwrap();
        assert_eq!(o.id, "abc");
        assert_eq!(o.attribute("active"), Some(&Value::Boolean(true)));
        assert!(matches!(
            object(Response::new(201, vec![], Vec::new())),
            Err(ConnectorError::Other(_))
        ));
        assert!(matches!(
            object(Response::new(200, vec![], b"<html>".to_vec())),
            Err(ConnectorError::Other(_))
        ));
        let dup = scim_json(
            409,
            json!({"schemas": [scim::ERROR_SCHEMA], "status": "409", "scimType": "uniqueness", "detail": "taken"}),
        );
        let err = object(dup).unwrap_err();
        assert!(
            matches!(&err, ConnectorError::Conflict(c) if c.message.contains("uniqueness: taken"))
        );
        let existing = vec![TargetObject {
            id: "old".into(),
            attributes: vec![],
        }];
        assert!(matches!(
            conflict(err.clone(), Some(existing)),
            ConnectorError::Conflict(c) if c.existing_id.as_deref() == Some("old")
        ));
        assert!(
            matches!(conflict(err, Some(vec![])), ConnectorError::Conflict(c) if c.existing_id.is_none())
        );
        assert!(no_content(Response::new(204, vec![], Vec::new())).is_ok());
        assert!(no_content(scim_json(200, json!({"id": "x"}))).is_ok());
        assert!(matches!(
            no_content(scim_json(
                404,
                json!({"schemas": [scim::ERROR_SCHEMA], "status": "404", "detail": "User 'x' not found"})
            )),
            Err(ConnectorError::NotFound(_))
        ));
        let no_target = scim_json(
            400,
            json!({"schemas": [scim::ERROR_SCHEMA], "status": "400", "scimType": "noTarget", "detail": "no value"}),
        );
        assert!(is_no_target(&no_target));
        assert!(!is_no_target(&scim_json(
            400,
            json!({"scimType": "invalidPath"})
        )));
    }

    #[test]
    fn pages() {
        let r = scim_json(
            200,
            json!({
                "totalResults": 3, "startIndex": 1, "itemsPerPage": 2,
                "Resources": [{"id": "a", "userName": "a"}, {"id": "b", "userName": "b"}]
            }),
        );
        let p = page(r, 1, 2).unwrap();
        assert_eq!(p.objects.len(), 2);
        assert_eq!(p.next_cursor.as_deref(), Some("3"));
        assert_eq!(p.total, Some(3));
        let r = scim_json(
            200,
            json!({"totalResults": 3, "startIndex": 3, "Resources": [{"id": "c"}]}),
        );
        assert_eq!(page(r, 3, 2).unwrap().next_cursor, None);
        let r = scim_json(
            200,
            json!({"totalResults": 1, "Resources": [{"userName": "no id"}]}),
        );
        assert!(page(r, 1, 2).is_err());
        let r = scim_json(503, json!({"detail": "maintenance"}));
        assert!(matches!(page(r, 1, 2), Err(ConnectorError::Transient(_))));
    }

    #[test]
    fn conflict_keys() {
        let attrs = [
            Attribute::new("displayName", "G"),
            Attribute::new("userName", "u"),
        ];
        assert_eq!(
            conflict_key(ObjectKind::User, &attrs).map(|a| a.name),
            Some("userName".into())
        );
        assert_eq!(
            conflict_key(ObjectKind::Group, &attrs).map(|a| a.name),
            Some("displayName".into())
        );
        assert_eq!(conflict_key(ObjectKind::User, &[]), None);
    }
}
