//! Outbound HTTP through the host.
//!
//! The host performs every request: it checks the URL against the
//! connection's allowlist, substitutes secrets, follows redirects (checking
//! each hop), caps the response size and enforces timeouts. This module gives
//! that import a builder:
//!
//! ```no_run
//! # fn demo() -> Result<(), provisio_sdk::ConnectorError> {
//! use provisio_sdk::http::{self, secret, Auth, Template};
//!
//! // Bearer token held by the host under the secret name "token".
//! let users: serde_json::Value = http::get("https://api.example.com/v2/Users")
//!     .query("filter", r#"userName eq "alice""#)
//!     .auth(Auth::bearer("token"))
//!     .send()?
//!     .error_for_status()?
//!     .json()?;
//!
//! // A login exchange declared in the manifest as "login": the host builds
//! // the body (with the password) and keeps the session id it returns as the
//! // derived secret "session"; the connector only ever names it.
//! let login = http::login("login", "https://api.example.com/auth/login").send()?;
//! assert!(login.captured("session"));
//! let me = http::get("https://api.example.com/me")
//!     .header("Authorization", Template::text("Session ") + secret("session"))
//!     .send()?;
//! # let _ = (users, me); Ok(()) }
//! ```
//!
//! Secrets go only where the manifest declares (`SecretSpec::placement`) and
//! the operator's grant confirms: auth headers, named headers, and the
//! host-built bodies of login exchanges — never a URL or a body the
//! connector writes (the host refuses such a request).
//!
//! Transport failures are mapped to [`ConnectorError`] by [`map_http_error`];
//! non-2xx statuses by [`Response::error_for_status`] (see [`crate::errors`]).

use std::fmt;
use std::ops::Add;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ConnectorError;
use crate::bindings::provisio::connector::http as wit;
pub use crate::bindings::provisio::connector::http::Method;

impl Method {
    /// The method's name as sent on the wire, e.g. `"PATCH"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
        }
    }
}

/// Text built from literal parts and references to secrets. The host
/// assembles it at send time; the guest never sees a secret's value.
#[derive(Clone, Default, PartialEq)]
pub struct Template {
    segments: Vec<wit::Segment>,
}

impl Template {
    /// An empty template.
    pub fn new() -> Self {
        Template::default()
    }

    /// A template of literal text.
    pub fn text(text: impl Into<String>) -> Self {
        let mut t = Template::new();
        t.push_text(text);
        t
    }

    /// A template that is the named secret's value, as it is.
    pub fn secret(name: impl Into<String>) -> Self {
        Template {
            segments: vec![wit::Segment::Secret(name.into())],
        }
    }

    /// Append literal text (merged with a preceding literal segment).
    pub fn push_text(&mut self, text: impl Into<String>) {
        let text = text.into();
        if text.is_empty() {
            return;
        }
        if let Some(wit::Segment::Text(last)) = self.segments.last_mut() {
            last.push_str(&text);
        } else {
            self.segments.push(wit::Segment::Text(text));
        }
    }

    /// Append a reference to a secret's raw value.
    pub fn push_secret(&mut self, name: impl Into<String>) {
        self.segments.push(wit::Segment::Secret(name.into()));
    }

    /// Append another template.
    pub fn append(&mut self, other: Template) {
        for segment in other.segments {
            match segment {
                wit::Segment::Text(t) => self.push_text(t),
                other => self.segments.push(other),
            }
        }
    }

    /// The segments, as the host receives them.
    pub fn segments(&self) -> &[wit::Segment] {
        &self.segments
    }

    /// The names of the secrets this template refers to.
    pub fn secret_names(&self) -> Vec<&str> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                wit::Segment::Secret(n) => Some(n.as_str()),
                wit::Segment::Text(_) => None,
            })
            .collect()
    }

    /// The text, when the template has no secret segments.
    pub fn as_literal(&self) -> Option<String> {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                wit::Segment::Text(t) => out.push_str(t),
                _ => return None,
            }
        }
        Some(out)
    }

    /// A rendering safe to log: secrets appear as `{secret:name}`.
    pub fn redacted(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                wit::Segment::Text(t) => out.push_str(t),
                wit::Segment::Secret(n) => {
                    out.push_str("{secret:");
                    out.push_str(n);
                    out.push('}');
                }
            }
        }
        out
    }

    /// Convert into the WIT representation.
    pub fn into_wit(self) -> wit::Template {
        self.segments
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.redacted())
    }
}

impl From<&str> for Template {
    fn from(value: &str) -> Self {
        Template::text(value)
    }
}

impl From<String> for Template {
    fn from(value: String) -> Self {
        Template::text(value)
    }
}

impl From<&String> for Template {
    fn from(value: &String) -> Self {
        Template::text(value.as_str())
    }
}

impl Add<Template> for Template {
    type Output = Template;
    fn add(mut self, rhs: Template) -> Template {
        self.append(rhs);
        self
    }
}

impl Add<&str> for Template {
    type Output = Template;
    fn add(mut self, rhs: &str) -> Template {
        self.push_text(rhs);
        self
    }
}

/// A template that is the named secret's raw value (see [`Template::secret`]).
pub fn secret(name: impl Into<String>) -> Template {
    Template::secret(name)
}

/// Authentication the host adds to a request.
#[derive(Clone, Debug, PartialEq)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(Template),
    /// `Authorization: Basic base64(username:password)`, encoded by the host.
    Basic {
        /// The user name.
        username: Template,
        /// The password.
        password: Template,
    },
}

impl Auth {
    /// Bearer authentication with the token held in the named secret.
    pub fn bearer(secret_name: impl Into<String>) -> Self {
        Auth::Bearer(Template::secret(secret_name))
    }

    /// Bearer authentication with a token built from a template.
    pub fn bearer_template(token: Template) -> Self {
        Auth::Bearer(token)
    }

    /// Basic authentication. Each part is a template, for example
    /// `Auth::basic("api-user", secret("password"))` or
    /// `Auth::basic(secret("user"), secret("password"))`.
    pub fn basic(username: impl Into<Template>, password: impl Into<Template>) -> Self {
        Auth::Basic {
            username: username.into(),
            password: password.into(),
        }
    }

    fn into_wit(self) -> wit::Auth {
        match self {
            Auth::Bearer(t) => wit::Auth::Bearer(t.into_wit()),
            Auth::Basic { username, password } => wit::Auth::Basic(wit::BasicCredentials {
                username: username.into_wit(),
                password: password.into_wit(),
            }),
        }
    }
}

/// Percent-encode a string for a URL query component or a path segment:
/// everything except the RFC 3986 unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) is encoded as `%XX` of its UTF-8 bytes.
pub fn percent_encode(input: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(input.len());
    for byte in input.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(byte));
            }
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0x0f)]));
            }
        }
    }
    out
}

/// Join a base URL and a path, with exactly one `/` between them.
pub fn join_url(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    let path = path.trim_start_matches('/');
    if path.is_empty() {
        base.to_string()
    } else {
        format!("{base}/{path}")
    }
}

/// A request under construction. Create one with [`get`], [`post`], [`put`],
/// [`patch`], [`delete`], [`head`] or [`RequestBuilder::new`].
#[derive(Clone, Debug)]
pub struct RequestBuilder {
    method: Method,
    url: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, Template)>,
    auth: Option<Auth>,
    body: Option<Template>,
    error: Option<String>,
}

impl RequestBuilder {
    /// A request with the given method and URL. The URL may already carry a
    /// query string; [`query`](Self::query) parameters are appended to it.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        RequestBuilder {
            method,
            url: url.into(),
            query: Vec::new(),
            headers: Vec::new(),
            auth: None,
            body: None,
            error: None,
        }
    }

    /// Append a query parameter; name and value are percent-encoded.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Set a header, replacing any earlier header of the same name
    /// (compared case-insensitively).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Template>) -> Self {
        let name = name.into();
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
        self
    }

    /// Set the `Content-Type` header.
    pub fn content_type(self, value: &str) -> Self {
        self.header("Content-Type", value)
    }

    /// Set the `Accept` header.
    pub fn accept(self, value: &str) -> Self {
        self.header("Accept", value)
    }

    /// Authenticate the request (the host adds the `Authorization` header).
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Set a body built from a template (may contain secret segments).
    pub fn body(mut self, body: impl Into<Template>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Serialize `value` as the JSON body; sets `Content-Type:
    /// application/json` unless a content type was set already.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_string(value) {
            Ok(text) => {
                self.body = Some(Template::text(text));
                if !self.has_header("content-type") {
                    self = self.content_type("application/json");
                }
            }
            Err(e) => self.error = Some(format!("cannot serialize the request body: {e}")),
        }
        self
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The full URL, with the query parameters encoded and appended.
    pub fn url(&self) -> String {
        if self.query.is_empty() {
            return self.url.clone();
        }
        let mut url = self.url.clone();
        let mut sep = if url.contains('?') {
            if url.ends_with('?') || url.ends_with('&') {
                ""
            } else {
                "&"
            }
        } else {
            "?"
        };
        for (name, value) in &self.query {
            url.push_str(sep);
            url.push_str(&percent_encode(name));
            url.push('=');
            url.push_str(&percent_encode(value));
            sep = "&";
        }
        url
    }

    /// The value of a header set on this builder (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&Template> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The body, if one was set.
    pub fn body_template(&self) -> Option<&Template> {
        self.body.as_ref()
    }

    /// The body as text when it has no secret segments (for tests).
    pub fn body_text(&self) -> Option<String> {
        self.body.as_ref().and_then(Template::as_literal)
    }

    /// The authentication, if any.
    pub fn auth_ref(&self) -> Option<&Auth> {
        self.auth.as_ref()
    }

    /// Assemble the WIT request. Pure: no host call is made.
    pub fn build(&self) -> Result<wit::Request, ConnectorError> {
        if let Some(e) = &self.error {
            return Err(ConnectorError::InvalidInput(e.clone()));
        }
        if self.url.is_empty() {
            return Err(ConnectorError::InvalidInput(
                "the request URL is empty".into(),
            ));
        }
        Ok(wit::Request {
            method: self.method,
            url: self.url(),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| wit::Header {
                    name: name.clone(),
                    value: value.clone().into_wit(),
                })
                .collect(),
            auth: self.auth.clone().map(Auth::into_wit),
            body: self.body.clone().map(Template::into_wit),
        })
    }

    /// Send the request through the host. A response with any status is
    /// `Ok`; call [`Response::error_for_status`] to turn non-2xx into errors.
    pub fn send(&self) -> Result<Response, ConnectorError> {
        send(&self.build()?)
    }
}

/// A `GET` request.
pub fn get(url: impl Into<String>) -> RequestBuilder {
    RequestBuilder::new(Method::Get, url)
}

/// A `POST` request.
pub fn post(url: impl Into<String>) -> RequestBuilder {
    RequestBuilder::new(Method::Post, url)
}

/// A `PUT` request.
pub fn put(url: impl Into<String>) -> RequestBuilder {
    RequestBuilder::new(Method::Put, url)
}

/// A `PATCH` request.
pub fn patch(url: impl Into<String>) -> RequestBuilder {
    RequestBuilder::new(Method::Patch, url)
}

/// A `DELETE` request.
pub fn delete(url: impl Into<String>) -> RequestBuilder {
    RequestBuilder::new(Method::Delete, url)
}

/// A `HEAD` request.
pub fn head(url: impl Into<String>) -> RequestBuilder {
    RequestBuilder::new(Method::Head, url)
}

/// Send a WIT request through the host import, mapping transport errors.
pub fn send(request: &wit::Request) -> Result<Response, ConnectorError> {
    wit::send(request)
        .map(Response::from)
        .map_err(map_http_error)
}

/// A login exchange to run: see [`login`].
#[derive(Clone, Debug)]
pub struct LoginBuilder {
    exchange: String,
    url: String,
    headers: Vec<wit::Header>,
}

/// Prepare the manifest's login exchange `exchange` against `url` (a POST;
/// the host builds the body from the exchange's declared fields).
pub fn login(exchange: impl Into<String>, url: impl Into<String>) -> LoginBuilder {
    LoginBuilder {
        exchange: exchange.into(),
        url: url.into(),
        headers: Vec::new(),
    }
}

impl LoginBuilder {
    /// Add a request header (a template; secrets only where their placements allow).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Template>) -> Self {
        self.headers.push(wit::Header {
            name: name.into(),
            value: value.into().into_wit(),
        });
        self
    }

    /// Run the exchange.
    pub fn send(self) -> Result<LoginResponse, ConnectorError> {
        wit::login(&self.exchange, &self.url, &self.headers)
            .map(|r| LoginResponse {
                response: Response {
                    status: r.status,
                    headers: r.headers,
                    body: r.body,
                },
                captured: r.captured,
            })
            .map_err(map_http_error)
    }
}

/// The outcome of a login exchange: the response (scrubbed of every secret
/// and captured value by the host) and the derived secrets captured.
#[derive(Clone, Debug, PartialEq)]
pub struct LoginResponse {
    /// The response.
    pub response: Response,
    /// Names of the derived secrets the host captured.
    pub captured: Vec<String>,
}

impl LoginResponse {
    /// Whether the host captured the derived secret `name`.
    pub fn captured(&self, name: &str) -> bool {
        self.captured.iter().any(|c| c == name)
    }
}

/// Map a transport error to a [`ConnectorError`], keeping the host's message:
/// denied → `Denied`, timeout and connection → `Transient`, too-large →
/// `Other`, invalid-request → `InvalidInput`.
pub fn map_http_error(error: wit::HttpError) -> ConnectorError {
    match error {
        wit::HttpError::Denied(m) => ConnectorError::Denied(m),
        wit::HttpError::InvalidRequest(m) => {
            ConnectorError::InvalidInput(format!("invalid request: {m}"))
        }
        wit::HttpError::Timeout(m) => ConnectorError::Transient(format!("timeout: {m}")),
        wit::HttpError::Connection(m) => {
            ConnectorError::Transient(format!("connection failed: {m}"))
        }
        wit::HttpError::TooLarge(m) => ConnectorError::Other(format!("response too large: {m}")),
    }
}

/// A response from the target.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The headers, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body bytes (empty when there is none).
    pub body: Vec<u8>,
}

impl From<wit::Response> for Response {
    fn from(r: wit::Response) -> Self {
        Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}

impl Response {
    /// A response from its parts (useful in tests).
    pub fn new(status: u16, headers: Vec<(String, String)>, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers,
            body: body.into(),
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header with this name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Whether the body is empty or only whitespace.
    pub fn body_is_empty(&self) -> bool {
        self.body.iter().all(u8::is_ascii_whitespace)
    }

    /// The body as text (invalid UTF-8 is replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Parse the body as JSON. A body that does not parse gives
    /// `ConnectorError::Other` naming the status and the start of the body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ConnectorError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ConnectorError::Other(format!(
                "HTTP {}: the response is not the expected JSON ({e}): {}",
                self.status,
                crate::errors::truncate(&self.text(), 200)
            ))
        })
    }

    /// `Ok(self)` for 2xx; otherwise the error [`crate::errors::from_response`]
    /// maps the status to.
    pub fn error_for_status(self) -> Result<Self, ConnectorError> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(crate::errors::from_response(&self))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding() {
        assert_eq!(
            percent_encode("a b+c&d=é/\"~"),
            "a%20b%2Bc%26d%3D%C3%A9%2F%22~"
        );
        assert_eq!(percent_encode("AZaz09-._~"), "AZaz09-._~");
    }

    #[test]
    fn url_with_query() {
        let r = get("https://x.test/v2/Users")
            .query("filter", r#"userName eq "a+b""#)
            .query("count", "10");
        assert_eq!(
            r.url(),
            "https://x.test/v2/Users?filter=userName%20eq%20%22a%2Bb%22&count=10"
        );
        let r = get("https://x.test/a?x=1").query("y", "2");
        assert_eq!(r.url(), "https://x.test/a?x=1&y=2");
        assert_eq!(get("https://x.test/a").url(), "https://x.test/a");
    }

    #[test]
    fn join() {
        assert_eq!(join_url("http://h/v2/", "/Users"), "http://h/v2/Users");
        assert_eq!(join_url("http://h/v2", "Users"), "http://h/v2/Users");
    }

    #[test]
    fn templates_merge_and_redact() {
        let t = Template::text("Session ") + secret("pw") + " x" + "y";
        assert_eq!(
            t.segments(),
            &[
                wit::Segment::Text("Session ".into()),
                wit::Segment::Secret("pw".into()),
                wit::Segment::Text(" xy".into()),
            ]
        );
        assert_eq!(t.redacted(), "Session {secret:pw} xy");
        assert_eq!(t.secret_names(), vec!["pw"]);
        assert_eq!(t.as_literal(), None);
        assert_eq!(Template::text("x").as_literal().as_deref(), Some("x"));
    }

    #[test]
    fn build_request() {
        let req = post("https://x.test/Users")
            .auth(Auth::bearer("token"))
            .json(&serde_json::json!({"userName": "a"}))
            .header("X-Trace", "1")
            .build()
            .unwrap();
        assert_eq!(req.method, Method::Post);
        assert_eq!(req.method.as_str(), "POST");
        assert_eq!(req.url, "https://x.test/Users");
        assert_eq!(
            req.auth,
            Some(wit::Auth::Bearer(vec![wit::Segment::Secret(
                "token".into()
            )]))
        );
        assert_eq!(
            req.body,
            Some(vec![wit::Segment::Text(r#"{"userName":"a"}"#.into())])
        );
        let names: Vec<_> = req.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, vec!["Content-Type", "X-Trace"]);
    }

    #[test]
    fn json_keeps_explicit_content_type() {
        let r = post("https://x")
            .content_type("application/scim+json")
            .json(&serde_json::json!({}));
        assert_eq!(
            r.header_value("content-type")
                .and_then(Template::as_literal)
                .as_deref(),
            Some("application/scim+json")
        );
    }

    #[test]
    fn basic_auth_templates() {
        let a = Auth::basic("svc", secret("pw")).into_wit();
        assert_eq!(
            a,
            wit::Auth::Basic(wit::BasicCredentials {
                username: vec![wit::Segment::Text("svc".into())],
                password: vec![wit::Segment::Secret("pw".into())],
            })
        );
    }

    #[test]
    fn transport_errors() {
        assert!(matches!(
            map_http_error(wit::HttpError::Denied("host x not granted".into())),
            ConnectorError::Denied(m) if m == "host x not granted"
        ));
        assert!(matches!(
            map_http_error(wit::HttpError::Timeout("30s".into())),
            ConnectorError::Transient(m) if m.contains("30s")
        ));
        assert!(matches!(
            map_http_error(wit::HttpError::Connection("refused".into())),
            ConnectorError::Transient(_)
        ));
        assert!(matches!(
            map_http_error(wit::HttpError::TooLarge("cap".into())),
            ConnectorError::Other(_)
        ));
        assert!(matches!(
            map_http_error(wit::HttpError::InvalidRequest("bad url".into())),
            ConnectorError::InvalidInput(_)
        ));
    }

    #[test]
    fn response_helpers() {
        let r = Response::new(
            200,
            vec![("Content-Type".into(), "application/json".into())],
            br#"{"a":1}"#.to_vec(),
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v: serde_json::Value = r.json().unwrap();
        assert_eq!(v["a"], 1);
        let bad = Response::new(200, vec![], b"<html>".to_vec());
        assert!(matches!(
            bad.json::<serde_json::Value>(),
            Err(ConnectorError::Other(_))
        ));
        assert!(Response::new(204, vec![], Vec::new()).body_is_empty());
    }
}
