//! A SCIM service provider's endpoints and the requests Entra-style
//! connectors send to them: the shared part of every SCIM-speaking vendor
//! connector (RFPIO, Zenya, …). Vendor quirks (error wording, unsupported
//! filters, immutable attributes) stay in the connector.
//!
//! Builders (`find`, `get`, `create`, …) are pure and unit-tested natively;
//! [`Endpoint::update`] sends (it retries a `noTarget` PATCH with whole
//! multi-valued attributes).

use crate::errors::{self, ScimError};
use crate::http::{Auth, Method, RequestBuilder, Response, percent_encode};
use crate::scim::{self, Filter, ListResponse, PatchOp};
use crate::{Attribute, ConnectorError, ObjectKind, Page, TargetObject};

/// The SCIM base URL, the Users/Groups paths and the bearer-token secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The base URL without a trailing slash.
    pub base_url: String,
    /// The Users path, with a leading and without a trailing slash.
    pub users_path: String,
    /// The Groups path, with a leading and without a trailing slash.
    pub groups_path: String,
    /// The name of the secret sent as the bearer token.
    pub token_secret: String,
}

fn normalise_path(path: &str) -> String {
    format!("/{}", path.trim().trim_matches('/'))
}

impl Endpoint {
    /// An endpoint from a base URL setting (named `setting` in errors);
    /// empty paths fall back to `/Users` and `/Groups`. A trailing slash on
    /// the base URL is ignored; it must be an http(s) URL.
    pub fn new(
        setting: &str,
        base_url: Option<String>,
        users_path: Option<String>,
        groups_path: Option<String>,
        token_secret: &str,
    ) -> Result<Self, ConnectorError> {
        let base = crate::config::require_value(setting, base_url)?;
        let base = base.trim().trim_end_matches('/').to_string();
        let lower = base.to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(ConnectorError::InvalidInput(format!(
                "the setting `{setting}` must be an http(s) URL, got `{base}`"
            )));
        }
        let path = |value: Option<String>, default: &str| {
            let value = value.filter(|v| !v.trim().trim_matches('/').is_empty());
            normalise_path(value.as_deref().unwrap_or(default))
        };
        Ok(Endpoint {
            base_url: base,
            users_path: path(users_path, "/Users"),
            groups_path: path(groups_path, "/Groups"),
            token_secret: token_secret.to_string(),
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

    /// A request with the bearer token and `Accept: application/scim+json`.
    pub fn request(&self, method: Method, url: String) -> RequestBuilder {
        RequestBuilder::new(method, url)
            .auth(Auth::bearer(self.token_secret.clone()))
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

    /// `GET /Users?filter=<filter>` (groups with `excludedAttributes=members`).
    pub fn find(&self, kind: ObjectKind, filter: &Filter) -> RequestBuilder {
        let mut builder = self.request(Method::Get, self.collection(kind));
        if kind == ObjectKind::Group {
            builder = builder.query("excludedAttributes", "members");
        }
        builder.query("filter", filter.to_string())
    }

    /// `GET /Users/{id}` or `GET /Groups/{id}`.
    pub fn get(&self, kind: ObjectKind, id: &str) -> Result<RequestBuilder, ConnectorError> {
        Self::check_id(kind, id)?;
        Ok(self.request(Method::Get, self.resource(kind, id)))
    }

    /// `POST /Users` or `POST /Groups` (groups without `members`).
    pub fn create(
        &self,
        kind: ObjectKind,
        attributes: &[Attribute],
    ) -> Result<RequestBuilder, ConnectorError> {
        let attributes: Vec<Attribute> = attributes
            .iter()
            .filter(|a| kind == ObjectKind::User || !a.name.eq_ignore_ascii_case("members"))
            .cloned()
            .collect();
        let resource = scim::resource_from_attributes(kind, &attributes)?;
        Ok(Self::with_json(
            self.request(Method::Post, self.collection(kind)),
            &resource,
        ))
    }

    /// `PATCH /Users/{id}` (or Groups) with a PatchOp.
    pub fn patch(
        &self,
        kind: ObjectKind,
        id: &str,
        patch: &PatchOp,
    ) -> Result<RequestBuilder, ConnectorError> {
        Self::check_id(kind, id)?;
        Ok(Self::with_json(
            self.request(Method::Patch, self.resource(kind, id)),
            &patch.to_json(),
        ))
    }

    /// `PATCH /Users/{id}` with `replace active=<active>`.
    pub fn set_active(&self, id: &str, active: bool) -> Result<RequestBuilder, ConnectorError> {
        self.patch(
            ObjectKind::User,
            id,
            &PatchOp::new().replace("active", active),
        )
    }

    /// `DELETE /Users/{id}` or `DELETE /Groups/{id}`.
    pub fn delete(&self, kind: ObjectKind, id: &str) -> Result<RequestBuilder, ConnectorError> {
        Self::check_id(kind, id)?;
        Ok(self.request(Method::Delete, self.resource(kind, id)))
    }

    /// `GET /Users?startIndex=<start>&count=<count>` (groups without members).
    pub fn list(&self, kind: ObjectKind, start_index: u64, count: u32) -> RequestBuilder {
        let mut builder = self
            .request(Method::Get, self.collection(kind))
            .query("startIndex", start_index.to_string())
            .query("count", count.to_string());
        if kind == ObjectKind::Group {
            builder = builder.query("excludedAttributes", "members");
        }
        builder
    }

    /// Send a PatchOp built from `changes`; when the target answers
    /// `400 noTarget` for a filtered path (`emails[type eq "work"].value` on
    /// a user without a work email), read the resource and replace the whole
    /// multi-valued attributes instead. `check` maps error responses.
    pub fn update(
        &self,
        kind: ObjectKind,
        id: &str,
        changes: &[Attribute],
        check: impl Fn(Response) -> Result<Response, ConnectorError>,
    ) -> Result<(), ConnectorError> {
        let patch = scim::patch_from_changes(changes)?;
        if patch.is_empty() {
            return Ok(());
        }
        let response = self.patch(kind, id, &patch)?.send()?;
        if is_no_target(&response) && scim::has_value_filter(changes) {
            let current: serde_json::Value = check(self.get(kind, id)?.send()?)?.json()?;
            let merged = scim::merged_patch(&current, changes)?;
            check(self.patch(kind, id, &merged)?.send()?)?;
            return Ok(());
        }
        check(response).map(|_| ())
    }
}

/// Whether a PATCH failed because a filtered path matched no element
/// (`400` with `scimType: noTarget`).
pub fn is_no_target(response: &Response) -> bool {
    response.status() == 400
        && ScimError::parse(response.body())
            .and_then(|e| e.scim_type)
            .is_some_and(|t| t.eq_ignore_ascii_case("noTarget"))
}

/// The standard check: a 2xx response passes, anything else is mapped by
/// [`errors::from_response`].
pub fn check_status(response: Response) -> Result<Response, ConnectorError> {
    if response.is_success() {
        Ok(response)
    } else {
        Err(errors::from_response(&response))
    }
}

/// The objects of a (checked) list response.
pub fn objects(response: &Response) -> Result<Vec<TargetObject>, ConnectorError> {
    ListResponse::from_slice(response.body())?
        .resources
        .iter()
        .map(scim::object_from_resource)
        .collect()
}

/// A page for `list` from a (checked) list response: the objects and the
/// next `startIndex` as the cursor.
pub fn page(response: &Response, start_index: u64, count: u32) -> Result<Page, ConnectorError> {
    let list = ListResponse::from_slice(response.body())?;
    Ok(Page {
        objects: list
            .resources
            .iter()
            .map(scim::object_from_resource)
            .collect::<Result<_, _>>()?,
        next_cursor: list
            .next_start_index(start_index, u64::from(count))
            .map(|n| n.to_string()),
        total: list.total_results,
    })
}

/// The object a (checked) `GET` or `POST` answered with.
pub fn object(response: &Response) -> Result<TargetObject, ConnectorError> {
    if response.body_is_empty() {
        return Err(ConnectorError::Other(format!(
            "HTTP {}: the target answered without the resource",
            response.status()
        )));
    }
    let json: serde_json::Value = response.json()?;
    scim::object_from_resource(&json)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint::new(
            "tenant_url",
            Some("http://127.0.0.1:1/scim/".into()),
            Some("users/".into()),
            None,
            "token",
        )
        .unwrap()
    }

    #[test]
    fn urls() {
        let e = endpoint();
        assert_eq!(
            e.collection(ObjectKind::User),
            "http://127.0.0.1:1/scim/users"
        );
        assert_eq!(
            e.collection(ObjectKind::Group),
            "http://127.0.0.1:1/scim/Groups"
        );
        assert_eq!(
            e.resource(ObjectKind::User, "a b"),
            "http://127.0.0.1:1/scim/users/a%20b"
        );
        let missing = Endpoint::new("tenant_url", None, None, None, "token");
        assert!(
            matches!(missing, Err(ConnectorError::InvalidInput(m)) if m.contains("tenant_url"))
        );
        let bad = Endpoint::new("tenant_url", Some("ftp://x".into()), None, None, "t");
        assert!(bad.is_err());
    }

    #[test]
    fn requests() {
        let e = endpoint();
        let f = e.find(ObjectKind::User, &Filter::eq("userName", "a@b"));
        assert_eq!(
            f.url(),
            "http://127.0.0.1:1/scim/users?filter=userName%20eq%20%22a%40b%22"
        );
        let c = e
            .create(
                ObjectKind::Group,
                &[
                    Attribute::new("displayName", "G"),
                    Attribute::new("members", vec!["1".to_string()]),
                ],
            )
            .unwrap();
        let body: serde_json::Value = serde_json::from_str(&c.body_text().unwrap()).unwrap();
        assert_eq!(body["displayName"], "G");
        assert!(body.get("members").is_none());
        assert!(e.delete(ObjectKind::User, " ").is_err());
        let l = e.list(ObjectKind::Group, 3, 2);
        assert!(l.url().contains("startIndex=3&count=2"), "{}", l.url());
    }

    #[test]
    fn responses() {
        let r = Response::new(
            200,
            vec![],
            br#"{"totalResults":3,"startIndex":1,"itemsPerPage":2,"Resources":[{"id":"1","userName":"a"},{"id":"2","userName":"b"}]}"#.to_vec(),
        );
        let p = page(&r, 1, 2).unwrap();
        assert_eq!(p.objects.len(), 2);
        assert_eq!(p.next_cursor.as_deref(), Some("3"));
        assert_eq!(objects(&r).unwrap()[1].id, "2");
        let e = check_status(Response::new(404, vec![], b"{}".to_vec()));
        assert!(matches!(e, Err(ConnectorError::NotFound(_))));
        let nt = Response::new(
            400,
            vec![],
            br#"{"scimType":"noTarget","detail":"x","status":"400"}"#.to_vec(),
        );
        assert!(is_no_target(&nt));
    }
}
