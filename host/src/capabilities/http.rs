//! Outbound HTTP for connectors, decided and performed by the host.
//!
//! A connector never opens a socket. It hands the host an [`OutboundRequest`]
//! whose header values, basic-auth parts and body are [`Segment`] templates that
//! may refer to secrets by name. For every hop (the first request and each
//! redirect) the host:
//!
//! 1. checks the URL against the connection's [`Allowlist`]: the plugin's
//!    declared host patterns (filled from settings) **intersected** with the
//!    operator's grant; plain `http` only where the operator granted an `http`
//!    origin explicitly; then the egress rules of [`super::egress`]: an IP
//!    literal must be public or named by the grant, a path under a path-prefix
//!    grant may not hide `/`, `\` or `.` in encodings, and forwarding and
//!    hop-by-hop headers are refused. Host names are resolved by the
//!    connection's [`HttpClient`] through [`super::resolve`], which connects
//!    only to public addresses unless the operator opted the origin in
//!    (`{ origin = "...", private = true }`);
//! 2. refuses the request if any text the guest wrote (the URL, header names
//!    and literal parts of headers, auth and body) carries a value the
//!    connection holds, in any encoding the [`SecretScanner`] knows; then
//!    resolves every secret reference through [`GrantedSecrets`], which
//!    refuses ungranted names, origins a secret is not bound to and
//!    placements the manifest and the grant did not both allow (a secret is
//!    never placed in a body: only a login exchange, built by the host,
//!    carries one there);
//! 3. takes a token of the connection's request budget
//!    ([`super::ratelimit`]; a host-made 429 when the budget is paused longer
//!    than [`max_budget_wait`]), sends with a timeout, reads at most
//!    `max_response_bytes` of the body;
//! 4. scrubs every value the connection holds (granted, derived, retired), in
//!    every encoding, from the response's headers and body before the guest
//!    sees it, whatever the request carried (a server that stores a token and
//!    echoes it later, on another hop or to another request, cannot leak it);
//! 5. writes one audit record (`target: provisio::audit`): decision, method,
//!    origin and path, status, bytes, milliseconds.
//!
//! A connection attached from Rust code to an [`Interceptor`] (the conformance
//! kit's hook, see [`super::intercept`]) also records each hop there and may
//! have a fault injected after steps 1–2: a lost response or a 429.
//!
//! [`HttpClient::login`] runs a manifest-declared login exchange: a POST
//! whose body the host builds from declared fields (literal text, settings,
//! secrets whose placements name the exchange), never redirected; values it
//! captures from the response become derived secrets
//! ([`GrantedSecrets::capture`]) and are scrubbed from what the guest reads.
//!
//! [`SecretScanner`]: super::secret_scan::SecretScanner

use super::intercept::{Decision, EgressRecord, Fault, Interceptor};
use super::secrets::{GrantedSecrets, SecretError, redact};
use crate::model::{BodyFormat, CaptureSource, LoginExchange, LoginValue, Placement};
use base64::Engine as _;
use std::fmt;
use std::time::{Duration, Instant};
use url::Url;

/// An origin pattern: `https://*.zendesk.com`, `http://127.0.0.1:18080/v2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    scheme: String,
    host: String,
    wildcard: bool,
    port: u16,
    path_prefix: String,
}

const WILDCARD_LABEL: &str = "provisio-wildcard-label";

impl HostPattern {
    /// Parse a pattern. It must have a scheme (`http` or `https`) and a host,
    /// may start the host with `*.`, may have a port and a path prefix, and may
    /// not have credentials, a query or a fragment.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let trimmed = pattern.trim();
        let (scheme, rest) = trimmed.split_once("://").ok_or_else(|| {
            format!("host pattern '{pattern}' has no scheme: write it as 'https://host' or 'http://host:port'")
        })?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return Err(format!(
                "host pattern '{pattern}' uses scheme '{scheme}'; only https (and explicitly granted http) are allowed"
            ));
        }
        let wildcard = rest.starts_with("*.");
        let rest = if wildcard {
            format!("{WILDCARD_LABEL}.{}", &rest[2..])
        } else {
            rest.to_string()
        };
        if rest.contains('*') {
            return Err(format!(
                "host pattern '{pattern}' has a '*' that is not a leading '*.' label"
            ));
        }
        let url = Url::parse(&format!("{scheme}://{rest}"))
            .map_err(|e| format!("host pattern '{pattern}' is not a valid origin: {e}"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "host pattern '{pattern}' contains credentials; use a secret instead"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "host pattern '{pattern}' has a query or fragment; patterns name an origin and optional path prefix"
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("host pattern '{pattern}' has no host"))?
            .to_ascii_lowercase();
        let host = if wildcard {
            host.trim_start_matches(WILDCARD_LABEL).to_string() // keeps the leading '.'
        } else {
            host
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| format!("host pattern '{pattern}' has no port"))?;
        let path_prefix = url.path().trim_end_matches('/').to_string();
        Ok(HostPattern {
            scheme,
            host,
            wildcard,
            port,
            path_prefix,
        })
    }

    /// Whether `host` (a URL's host as serialised, or a name to resolve) is
    /// this pattern's host, or one of its subdomains for a wildcard pattern.
    pub fn host_matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        if self.wildcard {
            host.ends_with(&self.host) && host.len() > self.host.len()
        } else {
            host == self.host
        }
    }

    /// Whether this pattern's host is the IP literal `addr` (in any of the
    /// forms the URL parser accepts for it).
    pub fn names_address(&self, addr: std::net::IpAddr) -> bool {
        !self.wildcard
            && self
                .host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a == addr)
    }

    /// The path prefix (no trailing `/`; empty for an origin-wide pattern).
    pub fn path_prefix(&self) -> &str {
        &self.path_prefix
    }

    /// Whether `url` lies within this pattern.
    pub fn matches(&self, url: &Url) -> bool {
        if url.scheme() != self.scheme || url.port_or_known_default() != Some(self.port) {
            return false;
        }
        let Some(host) = url.host_str() else {
            return false;
        };
        if !self.host_matches(host) {
            return false;
        }
        if self.path_prefix.is_empty() {
            return true;
        }
        let path = url.path();
        path == self.path_prefix
            || path
                .strip_prefix(&self.path_prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.wildcard {
            format!("*{}", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.scheme == "https" { 443 } else { 80 };
        write!(f, "{}://{}", self.scheme, host)?;
        if self.port != default_port {
            write!(f, ":{}", self.port)?;
        }
        write!(f, "{}", self.path_prefix)
    }
}

/// `scheme://host[:port]` of a URL, for messages and audit records.
pub fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Fill a declared pattern's `{setting}` placeholders. `Ok(None)` when a
/// placeholder names a setting that is not set (the pattern then allows nothing).
pub fn fill_pattern(
    pattern: &str,
    setting: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("declared host pattern '{pattern}' has an unclosed '{{'"))?;
        let name = &after[..end];
        match setting(name) {
            Some(v) => out.push_str(v.trim_end_matches('/')),
            None => return Ok(None),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Some(out))
}

/// The effective allowlist of one connection.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    declared: Vec<HostPattern>,
    granted: Vec<HostPattern>,
    /// Granted origins the operator opted in to non-public addresses
    /// (`{ origin = "...", private = true }`); see [`super::egress`].
    private: Vec<HostPattern>,
}

impl Allowlist {
    /// Build from the plugin's filled declared patterns and the operator's grant.
    pub fn new(declared: Vec<HostPattern>, granted: Vec<HostPattern>) -> Self {
        Allowlist {
            declared,
            granted,
            private: Vec::new(),
        }
    }

    /// Opt these origins in to non-public addresses (their host names may
    /// resolve to loopback, private, … addresses). They grant nothing by
    /// themselves: each must also be among the granted patterns.
    pub fn with_private(mut self, private: Vec<HostPattern>) -> Self {
        self.private = private;
        self
    }

    /// The operator's granted patterns.
    pub fn granted(&self) -> &[HostPattern] {
        &self.granted
    }

    /// The origins opted in to non-public addresses.
    pub fn private(&self) -> &[HostPattern] {
        &self.private
    }

    /// Whether `url` lies in an origin opted in to non-public addresses.
    pub fn is_private(&self, url: &Url) -> bool {
        self.private.iter().any(|p| p.matches(url))
    }

    /// The egress checks of one hop after the allowlist (see
    /// [`super::egress`]): an IP-literal host must be public or named by a
    /// grant; under a path-prefix grant the path (as written in `raw` and as
    /// parsed) may not hide separators or dot segments.
    pub fn check_egress(&self, raw: &str, url: &Url) -> Result<(), super::egress::EgressError> {
        super::egress::check_literal(url, &self.granted)?;
        if let Some(grant) = super::egress::prefix_guard(&self.declared, &self.granted, url) {
            super::egress::check_path(raw, url, grant)?;
        }
        Ok(())
    }

    /// An allowlist that allows nothing (used for `describe`).
    pub fn deny_all() -> Self {
        Allowlist::default()
    }

    /// Check a URL; the error says which side refused it.
    pub fn check(&self, url: &Url) -> Result<(), String> {
        let declared = self.declared.iter().any(|p| p.matches(url));
        let granted = self.granted.iter().any(|p| p.matches(url));
        let list = |ps: &[HostPattern]| {
            if ps.is_empty() {
                "nothing".to_string()
            } else {
                ps.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        match (declared, granted) {
            (true, true) => Ok(()),
            (false, _) => Err(format!(
                "{} is not among the hosts the plugin declared ({})",
                origin_of(url),
                list(&self.declared)
            )),
            (true, false) => Err(format!(
                "{} is not granted to this connection (allowed_hosts: {}); add it to `allowed_hosts` if it should be",
                origin_of(url),
                list(&self.granted)
            )),
        }
    }

    /// The declared patterns (after filling), for `inspect` and messages.
    pub fn declared(&self) -> &[HostPattern] {
        &self.declared
    }
}

/// HTTP methods a connector may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// HEAD
    Head,
}

impl Method {
    fn as_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
            Method::Head => reqwest::Method::HEAD,
        }
    }
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// Literal text.
    Text(String),
    /// A secret's value (granted or derived), where its placements allow.
    Secret(String),
}

/// Authentication the host adds.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// HTTP Basic.
    Basic {
        /// User name template.
        username: Vec<Segment>,
        /// Password template.
        password: Vec<Segment>,
    },
    /// Bearer token.
    Bearer(Vec<Segment>),
}

/// A request as the guest asked for it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundRequest {
    /// Method.
    pub method: Method,
    /// Absolute URL.
    pub url: String,
    /// Headers (templates).
    pub headers: Vec<(String, Vec<Segment>)>,
    /// Authentication.
    pub auth: Option<Auth>,
    /// Body (template).
    pub body: Option<Vec<Segment>>,
}

/// A response handed back to the guest.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body (secret values scrubbed).
    pub body: Vec<u8>,
}

/// Why no response was delivered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HttpError {
    /// Policy refused it.
    #[error("request denied: {0}")]
    Denied(String),
    /// Malformed request.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Timed out.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Connection failed.
    #[error("connection failed: {0}")]
    Connection(String),
    /// Body over the cap.
    #[error("response too large: {0}")]
    TooLarge(String),
}

impl From<SecretError> for HttpError {
    fn from(e: SecretError) -> Self {
        HttpError::Denied(e.to_string())
    }
}

/// Per-connection HTTP policy.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    /// Connection name (for audit records).
    pub connection: String,
    /// Where requests may go.
    pub allowlist: Allowlist,
    /// Secrets the guest may reference.
    pub secrets: GrantedSecrets,
    /// Timeout of one request (one hop).
    pub timeout: Duration,
    /// Cap on a response body.
    pub max_response_bytes: usize,
    /// Redirect hops followed at most.
    pub max_redirects: usize,
    /// The connection's request budget (shared by all its calls).
    pub limiter: std::sync::Arc<super::ratelimit::RateLimiter>,
    /// Longest one hop waits for the budget ([`max_budget_wait`]).
    pub max_budget_wait: Duration,
    /// The conformance kit's hook (never set from configuration).
    pub interceptor: Option<Interceptor>,
    /// The manifest's login exchanges, `setting` fields filled in.
    pub logins: Vec<LoginExchange>,
}

/// What a login exchange hands back to the guest.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginResponse {
    /// The response, scrubbed of every secret and every captured value.
    pub response: InboundResponse,
    /// Names of the derived secrets captured.
    pub captured: Vec<String>,
}

/// One connection's HTTP client: connection pooling within the connection,
/// and the resolve-check-connect hook of [`super::resolve`].
#[derive(Debug, Clone)]
pub struct HttpClient {
    /// Every request, except to origins opted in to non-public addresses.
    client: reqwest::Client,
    /// Requests to origins opted in to non-public addresses (own pool).
    private: Option<reqwest::Client>,
    /// Those origins.
    private_origins: Vec<HostPattern>,
}

fn build_client(resolver: super::resolve::CheckedResolver) -> Result<reqwest::Client, HttpError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("provisio/", env!("CARGO_PKG_VERSION")))
        // Direct connections only: through a proxy the checked address
        // would be the proxy's, not the target's.
        .no_proxy()
        .dns_resolver(std::sync::Arc::new(resolver))
        .build()
        .map_err(|e| HttpError::Connection(format!("cannot build the HTTP client: {e}")))
}

impl HttpClient {
    /// A client that connects to public addresses only (and IP literals the
    /// policy's grant names): rustls, no automatic redirects (the host
    /// follows them itself, checking each hop), no proxy.
    pub fn new() -> Result<Self, HttpError> {
        Ok(HttpClient {
            client: build_client(super::resolve::CheckedResolver::public_only())?,
            private: None,
            private_origins: Vec::new(),
        })
    }

    /// The client of a connection with `allowlist`: like [`HttpClient::new`],
    /// plus a second client for the origins opted in to non-public addresses
    /// when there are any.
    pub fn for_allowlist(allowlist: &Allowlist) -> Result<Self, HttpError> {
        let mut client = HttpClient::new()?;
        if !allowlist.private().is_empty() {
            client.private = Some(build_client(
                super::resolve::CheckedResolver::allowing_private(allowlist.private().to_vec()),
            )?);
            client.private_origins = allowlist.private().to_vec();
        }
        Ok(client)
    }

    /// The client for a hop to `url`.
    fn pick(&self, url: &Url) -> &reqwest::Client {
        match &self.private {
            Some(private) if self.private_origins.iter().any(|p| p.matches(url)) => private,
            _ => &self.client,
        }
    }

    /// Send a guest request under `policy`, following redirects hop by hop.
    pub async fn send(
        &self,
        policy: &HttpPolicy,
        request: OutboundRequest,
    ) -> Result<InboundResponse, HttpError> {
        let mut url = Url::parse(&request.url).map_err(|e| {
            HttpError::InvalidRequest(format!("'{}' is not an absolute URL: {e}", request.url))
        })?;
        let mut method = request.method;
        let mut body = request.body.clone();
        let mut raw = request.url.clone();
        for hop in 0..=policy.max_redirects {
            let started = Instant::now();
            let response = self
                .send_one(policy, method, (&url, &raw), &request, body.as_ref())
                .await;
            let ms = started.elapsed().as_millis() as u64;
            let (resp, fault) = match response {
                // Not sent: audited as throttled, host-made, never a redirect.
                Ok(Hop::Held(r)) => return Ok(r),
                Ok(Hop::Sent(r, fault)) => (r, fault),
                Err((e, fault)) => {
                    audit_failure(policy, method, &url, &e, ms);
                    let decision = if matches!(e, HttpError::Denied(_)) {
                        Decision::Denied
                    } else {
                        Decision::Failed
                    };
                    intercept_record(policy, method, &url, decision, None, fault);
                    return Err(e);
                }
            };
            audit_allowed(policy, method, &url, resp.status, resp.body.len(), ms, hop);
            intercept_record(
                policy,
                method,
                &url,
                Decision::Allowed,
                Some(resp.status),
                fault,
            );
            let location = resp
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.clone());
            let is_redirect = matches!(resp.status, 301 | 302 | 303 | 307 | 308);
            match (is_redirect, location) {
                (true, Some(loc)) => {
                    if hop == policy.max_redirects {
                        return Err(HttpError::Denied(format!(
                            "too many redirects (more than {}) starting at {}",
                            policy.max_redirects,
                            origin_of(&url)
                        )));
                    }
                    let next = url.join(&loc).map_err(|e| {
                        HttpError::InvalidRequest(format!(
                            "redirect to invalid location '{loc}': {e}"
                        ))
                    })?;
                    if matches!(resp.status, 301..=303) && method != Method::Head {
                        method = Method::Get;
                        body = None;
                    }
                    url = next;
                    raw = loc;
                }
                _ => return Ok(scrub(resp, &policy.secrets)),
            }
        }
        Err(HttpError::Denied("too many redirects".to_string()))
    }

    async fn send_one(
        &self,
        policy: &HttpPolicy,
        method: Method,
        (url, raw): (&Url, &str),
        request: &OutboundRequest,
        body: Option<&Vec<Segment>>,
    ) -> Result<Hop, (HttpError, Option<Fault>)> {
        let request = self
            .prepare(policy, method, (url, raw), request, body)
            .map_err(|e| (e, None))?;
        // Every hop that passed the policy spends one token of the
        // connection's budget (a refused request is never sent, so it costs
        // none).
        if let Err(held) = spend_budget(policy, method, url).await {
            return Ok(Hop::Held(held));
        }
        let fault = policy
            .interceptor
            .as_ref()
            .and_then(|i| i.take_fault(method));
        if let Some(Fault::RateLimit { retry_after }) = fault {
            let response = injected_429(retry_after);
            super::ratelimit::observe(&policy.limiter, response.status, &response.headers);
            return Ok(Hop::Sent(response, fault));
        }
        let response = self
            .execute(policy, url, request)
            .await
            .map_err(|e| (e, fault))?;
        if fault == Some(Fault::LoseResponse) {
            return Err((
                HttpError::Timeout(format!(
                    "the response from {} was lost (fault injected by the host's interceptor \
                     after the request was sent)",
                    origin_of(url)
                )),
                fault,
            ));
        }
        Ok(Hop::Sent(response, fault))
    }

    /// Steps 1 and 2 of a hop: the allowlist and the egress checks (`raw` is
    /// the URL as the guest or the redirect wrote it), the scan of what the
    /// guest wrote, then the request with its secrets placed.
    fn prepare(
        &self,
        policy: &HttpPolicy,
        method: Method,
        (url, raw): (&Url, &str),
        request: &OutboundRequest,
        body: Option<&Vec<Segment>>,
    ) -> Result<reqwest::Request, HttpError> {
        policy.allowlist.check(url).map_err(HttpError::Denied)?;
        policy
            .allowlist
            .check_egress(raw, url)
            .map_err(|e| HttpError::Denied(e.to_string()))?;
        let scanner = policy.secrets.scanner();
        let refuse_carried = |what: &str, text: &str| -> Result<(), HttpError> {
            match scanner.find(text.as_bytes()) {
                None => Ok(()),
                Some(m) => Err(HttpError::Denied(format!(
                    "the request's {what} carries the value of secret '{}' (or an encoding of \
                     it) written by the connector itself; a connector refers to secrets by \
                     name only, and the host places them",
                    m.label
                ))),
            }
        };
        refuse_carried("URL", url.as_str())?;
        let mut builder = self
            .pick(url)
            .request(method.as_reqwest(), url.clone())
            .timeout(policy.timeout);
        for (name, value) in &request.headers {
            super::egress::check_header(name)
                .map_err(|e| HttpError::InvalidRequest(e.to_string()))?;
            refuse_carried("header name", name)?;
            refuse_carried(&format!("header '{name}'"), &literal_text(value))?;
            let rendered = render(
                value,
                &policy.secrets,
                url,
                &Placement::Header(name.clone()),
            )?;
            builder = builder.header(name.as_str(), rendered);
        }
        match &request.auth {
            Some(Auth::Basic { username, password }) => {
                refuse_carried("basic user name", &literal_text(username))?;
                refuse_carried("basic password", &literal_text(password))?;
                let user = render(username, &policy.secrets, url, &Placement::Basic)?;
                let pass = render(password, &policy.secrets, url, &Placement::Basic)?;
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                builder = builder.header("authorization", format!("Basic {encoded}"));
            }
            Some(Auth::Bearer(token)) => {
                refuse_carried("bearer token", &literal_text(token))?;
                let token = render(token, &policy.secrets, url, &Placement::Bearer)?;
                builder = builder.header("authorization", format!("Bearer {token}"));
            }
            None => {}
        }
        if let Some(body) = body {
            let mut text = String::new();
            for segment in body {
                match segment {
                    Segment::Text(t) => text.push_str(t),
                    Segment::Secret(name) => {
                        return Err(HttpError::Denied(format!(
                            "secret '{name}' may not be placed in a request body: a body is \
                             written by the connector and may be read back; send a secret in \
                             a body only through a login exchange the manifest declares"
                        )));
                    }
                }
            }
            refuse_carried("body", &text)?;
            builder = builder.body(text);
        }
        builder
            .build()
            .map_err(|e| HttpError::InvalidRequest(redact(&e.to_string())))
    }

    /// Run the manifest's login exchange `exchange` (see the module docs).
    pub async fn login(
        &self,
        policy: &HttpPolicy,
        exchange: &str,
        url: &str,
        headers: Vec<(String, Vec<Segment>)>,
    ) -> Result<LoginResponse, HttpError> {
        let raw = url;
        let url = Url::parse(raw).map_err(|e| {
            HttpError::InvalidRequest(format!("'{raw}' is not an absolute URL: {e}"))
        })?;
        let Some(x) = policy.logins.iter().find(|l| l.name == exchange) else {
            let declared: Vec<&str> = policy.logins.iter().map(|l| l.name.as_str()).collect();
            return Err(HttpError::Denied(format!(
                "login exchange '{exchange}' is not declared in the plugin's manifest (declared: {})",
                if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared.join(", ")
                }
            )));
        };
        if !url.path().ends_with(&x.path_suffix) {
            return Err(HttpError::Denied(format!(
                "login exchange '{exchange}' may only post to a path ending in '{}', not '{}'",
                x.path_suffix,
                url.path()
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(HttpError::Denied(format!(
                "login exchange '{exchange}' posts to a URL without query or fragment"
            )));
        }
        let outbound = OutboundRequest {
            method: Method::Post,
            url: url.to_string(),
            headers,
            auth: None,
            body: None,
        };
        let started = Instant::now();
        let mut request = match self.prepare(policy, Method::Post, (&url, raw), &outbound, None) {
            Ok(r) => r,
            Err(e) => {
                audit_failure(policy, Method::Post, &url, &e, 0);
                return Err(e);
            }
        };
        // Like every hop: the budget is spent once the request passed the
        // policy (a refused login costs none).
        if let Err(held) = spend_budget(policy, Method::Post, &url).await {
            return Ok(LoginResponse {
                response: held,
                captured: Vec::new(),
            });
        }
        // The body, built by the host from the declared fields.
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut bound: Vec<HostPattern> = Vec::new();
        for (name, value) in &x.fields {
            let v = match value {
                LoginValue::Text(t) => t.clone(),
                LoginValue::Setting(s) => {
                    return Err(HttpError::InvalidRequest(format!(
                        "login exchange '{exchange}': field '{name}' needs setting '{s}', which \
                         the connection does not set"
                    )));
                }
                LoginValue::Secret(secret) => {
                    let placement = Placement::Login(exchange.to_string());
                    let v = match policy.secrets.resolve(secret, &url, &placement) {
                        Ok(v) => v,
                        Err(e) => {
                            let e = HttpError::from(e);
                            audit_failure(policy, Method::Post, &url, &e, 0);
                            return Err(e);
                        }
                    };
                    bound.extend(policy.secrets.bound_to(secret).unwrap_or_default());
                    v.expose().to_string()
                }
            };
            fields.push((name.clone(), v));
        }
        if bound.is_empty() {
            bound.push(HostPattern::parse(&origin_of(&url)).map_err(HttpError::InvalidRequest)?);
        }
        let (content_type, body) = match x.body_format {
            BodyFormat::Json => (
                "application/json",
                serde_json::Value::Object(
                    fields
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::Value::String(v)))
                        .collect(),
                )
                .to_string(),
            ),
            BodyFormat::Form => (
                "application/x-www-form-urlencoded",
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields)
                    .finish(),
            ),
        };
        request.headers_mut().insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static(content_type),
        );
        *request.body_mut() = Some(body.into());
        let result = self.execute(policy, &url, request).await;
        let ms = started.elapsed().as_millis() as u64;
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                audit_failure(policy, Method::Post, &url, &e, ms);
                return Err(e);
            }
        };
        audit_allowed(
            policy,
            Method::Post,
            &url,
            resp.status,
            resp.body.len(),
            ms,
            0,
        );
        let mut captured = Vec::new();
        if (200..300).contains(&resp.status) {
            for spec in &x.captures {
                if let Some(value) = capture(&resp, &spec.source)
                    && value.len() >= super::secrets::MIN_SECRET_LEN
                {
                    policy.secrets.capture(spec, value, bound.clone())?;
                    captured.push(spec.name.clone());
                }
            }
        }
        Ok(LoginResponse {
            response: scrub(resp, &policy.secrets),
            captured,
        })
    }

    /// Step 3 of a hop: send, observe rate-limit headers, read the capped body.
    async fn execute(
        &self,
        policy: &HttpPolicy,
        url: &Url,
        request: reqwest::Request,
    ) -> Result<InboundResponse, HttpError> {
        let mut resp = self
            .pick(url)
            .execute(request)
            .await
            .map_err(|e| classify(&e, policy, url))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect::<Vec<(String, String)>>();
        super::ratelimit::observe(&policy.limiter, status, &headers);
        if let Some(len) = resp.content_length()
            && len as usize > policy.max_response_bytes
        {
            return Err(too_large(policy, url));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| classify(&e, policy, url))? {
            if body.len() + chunk.len() > policy.max_response_bytes {
                return Err(too_large(policy, url));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(InboundResponse {
            status,
            headers,
            body,
        })
    }
}

/// Longest a request waits for the connection's budget inside a call of
/// wall-clock limit `wall_time`: half of it, at most 30 s. Past it the guest
/// gets [`budget_429`] instead, so a long pause (a target's `Retry-After`)
/// is sat out between calls, not inside one call's wall time.
pub fn max_budget_wait(wall_time: Duration) -> Duration {
    (wall_time / 2).min(Duration::from_secs(30))
}

/// Header marking a 429 the host made itself (the request was never sent).
pub const HOST_THROTTLED_HEADER: &str = "x-provisio-throttled";

/// The 429 the host answers when the connection's budget is paused for
/// longer than [`HttpPolicy::max_budget_wait`]: the request was not sent.
fn budget_429(wait: Duration) -> InboundResponse {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    InboundResponse {
        status: 429,
        headers: vec![
            ("retry-after".to_string(), secs.to_string()),
            (HOST_THROTTLED_HEADER.to_string(), "budget".to_string()),
            ("content-type".to_string(), "application/json".to_string()),
        ],
        body: format!(
            "{{\"error\":\"the connection's request budget is paused for {secs} s; \
             the request was not sent\"}}"
        )
        .into_bytes(),
    }
}

/// The 429 a [`Fault::RateLimit`] answers with.
fn injected_429(retry_after: std::time::Duration) -> InboundResponse {
    let secs = retry_after.as_secs().max(1);
    InboundResponse {
        status: 429,
        headers: vec![
            ("retry-after".to_string(), secs.to_string()),
            ("content-type".to_string(), "application/json".to_string()),
        ],
        body: format!(
            r#"{{"error":"TooManyRequests","description":"rate limited (fault injected by the host's interceptor); retry after {secs} s"}}"#
        )
        .into_bytes(),
    }
}

/// Hand one hop to the connection's interceptor, if it has one.
fn intercept_record(
    policy: &HttpPolicy,
    method: Method,
    url: &Url,
    decision: Decision,
    status: Option<u16>,
    fault: Option<Fault>,
) {
    if let Some(i) = &policy.interceptor {
        i.record(EgressRecord {
            method,
            origin: origin_of(url),
            path: url.path().to_string(),
            declared: policy.allowlist.declared().iter().any(|p| p.matches(url)),
            decision,
            status,
            fault,
        });
    }
}

fn too_large(policy: &HttpPolicy, url: &Url) -> HttpError {
    HttpError::TooLarge(format!(
        "the response from {} exceeds the cap of {} bytes",
        origin_of(url),
        policy.max_response_bytes
    ))
}

fn classify(e: &reqwest::Error, policy: &HttpPolicy, url: &Url) -> HttpError {
    // The resolver's refusal (resolve-check-connect, see `super::resolve`).
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<super::egress::EgressError>() {
            return HttpError::Denied(format!(
                "{refused}; the connection reaches non-public addresses only where the operator \
                 allows it: grant the origin as {{ origin = \"{}\", private = true }} in the \
                 connection's allowed_hosts, or grant the address literally",
                origin_of(url)
            ));
        }
        if let Some(failed) = s.downcast_ref::<super::resolve::ResolveError>() {
            return HttpError::Connection(failed.to_string());
        }
        source = s.source();
    }
    // reqwest's messages include the URL, never our headers.
    let msg = e.to_string();
    if e.is_timeout() {
        HttpError::Timeout(format!(
            "request timed out after {:?}: {msg}",
            policy.timeout
        ))
    } else {
        HttpError::Connection(msg)
    }
}

/// The text the guest wrote in a template, secret references left out
/// (adjacent literal parts joined, so a value split over segments is whole).
fn literal_text(segments: &[Segment]) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Text(t) => out.push_str(t),
            Segment::Secret(_) => out.push('\u{0}'),
        }
    }
    out
}

/// Render a template, resolving secrets for `url` at `placement`.
fn render(
    segments: &[Segment],
    secrets: &GrantedSecrets,
    url: &Url,
    placement: &Placement,
) -> Result<String, HttpError> {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Text(t) => out.push_str(t),
            Segment::Secret(name) => out.push_str(secrets.resolve(name, url, placement)?.expose()),
        }
    }
    Ok(out)
}

/// The value a login response carries at `source`.
fn capture(resp: &InboundResponse, source: &CaptureSource) -> Option<String> {
    fn named<'a>(resp: &'a InboundResponse, name: &'a str) -> impl Iterator<Item = &'a str> {
        resp.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    match source {
        CaptureSource::JsonPointer(p) => {
            let v: serde_json::Value = serde_json::from_slice(&resp.body).ok()?;
            match v.pointer(p)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        }
        CaptureSource::Header(h) => named(resp, h).next().map(|v| v.trim().to_string()),
        CaptureSource::Cookie(c) => named(resp, "set-cookie").find_map(|v| {
            let first = v.split(';').next()?;
            let (k, v) = first.split_once('=')?;
            (k.trim() == c).then(|| v.trim().to_string())
        }),
    }
}

/// Remove every value the connection holds, in every encoding, from what
/// the guest will see; keep `content-length` true to the scrubbed body.
fn scrub(mut resp: InboundResponse, secrets: &GrantedSecrets) -> InboundResponse {
    let scanner = secrets.scanner();
    if scanner.is_empty() {
        return resp;
    }
    for (_, v) in resp.headers.iter_mut() {
        if scanner.find(v.as_bytes()).is_some() {
            *v = scanner.redact_str(v);
        }
    }
    let (body, n) = scanner.redact(&resp.body);
    if n > 0 {
        resp.body = body;
        for (k, v) in resp.headers.iter_mut() {
            if k.eq_ignore_ascii_case("content-length") {
                *v = resp.body.len().to_string();
            }
        }
    }
    resp
}

fn method_str(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
        Method::Head => "HEAD",
    }
}

/// The guest-controlled parts of an audit record, escaped and capped.
fn audit_text(text: &str, max: usize) -> String {
    crate::untrusted::escape_for_log(text, max)
}

/// One audit record of an answered hop, if the connection's audit budget allows.
#[allow(clippy::too_many_arguments)]
fn audit_allowed(
    policy: &HttpPolicy,
    method: Method,
    url: &Url,
    status: u16,
    bytes: usize,
    ms: u64,
    hop: usize,
) {
    use super::audit::{AuditKind, MAX_PATH_BYTES, admit};
    crate::metrics::metrics()
        .request_seconds
        .get_or_create(&crate::metrics::conn(&policy.connection))
        .observe(ms as f64 / 1000.0);
    if !admit(&policy.connection, AuditKind::Allowed) {
        return;
    }
    tracing::info!(
        target: "provisio::audit",
        connection = %policy.connection,
        decision = "allowed",
        method = method_str(method),
        origin = %audit_text(&origin_of(url), MAX_PATH_BYTES),
        path = audit_text(url.path(), MAX_PATH_BYTES).as_str(),
        status,
        bytes,
        ms,
        hop,
        "egress"
    );
}

/// What became of one hop that passed the policy.
enum Hop {
    /// Sent (or answered by an injected fault), with the fault if any.
    Sent(InboundResponse, Option<Fault>),
    /// Held back by the request budget: the host's 429, nothing was sent.
    Held(InboundResponse),
}

/// Take one token of the connection's request budget for a hop to `url`,
/// waiting at most [`HttpPolicy::max_budget_wait`]; when the budget is paused
/// longer, the hop is not sent: one `throttled` audit record (if the audit
/// budget allows) and the host-made 429 the guest gets instead.
async fn spend_budget(
    policy: &HttpPolicy,
    method: Method,
    url: &Url,
) -> Result<(), InboundResponse> {
    use super::audit::{AuditKind, admit};
    let Err(wait) = policy.limiter.acquire_within(policy.max_budget_wait).await else {
        return Ok(());
    };
    if admit(&policy.connection, AuditKind::Throttled) {
        tracing::info!(
            target: "provisio::audit",
            connection = %policy.connection,
            decision = "throttled",
            method = method_str(method),
            origin = %audit_text(&origin_of(url), super::audit::MAX_PATH_BYTES),
            wait_ms = wait.as_millis() as u64,
            "request held back: the connection's request budget is paused"
        );
    }
    Err(budget_429(wait))
}

/// One audit record of a denied or failed hop, if the connection's audit budget allows.
fn audit_failure(policy: &HttpPolicy, method: Method, url: &Url, e: &HttpError, ms: u64) {
    use super::audit::{AuditKind, MAX_PATH_BYTES, MAX_REASON_BYTES, admit};
    let (decision, kind) = if matches!(e, HttpError::Denied(_)) {
        ("denied", AuditKind::Denied)
    } else {
        crate::metrics::metrics()
            .request_seconds
            .get_or_create(&crate::metrics::conn(&policy.connection))
            .observe(ms as f64 / 1000.0);
        ("failed", AuditKind::Failed)
    };
    if !admit(&policy.connection, kind) {
        return;
    }
    tracing::warn!(
        target: "provisio::audit",
        connection = %policy.connection,
        decision,
        method = method_str(method),
        origin = %audit_text(&origin_of(url), MAX_PATH_BYTES),
        path = audit_text(url.path(), MAX_PATH_BYTES).as_str(),
        ms,
        reason = audit_text(&e.to_string(), MAX_REASON_BYTES).as_str(),
        "egress"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        HostPattern::parse(s).unwrap()
    }
    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn exact_origin_patterns() {
        let pat = p("https://acme.zendesk.com");
        assert!(pat.matches(&u("https://acme.zendesk.com/api/v2/users.json")));
        assert!(pat.matches(&u("https://ACME.zendesk.com:443/")));
        assert!(
            !pat.matches(&u("http://acme.zendesk.com/")),
            "scheme must match"
        );
        assert!(
            !pat.matches(&u("https://acme.zendesk.com:8443/")),
            "port must match"
        );
        assert!(!pat.matches(&u("https://acme.zendesk.com.evil.com/")));
        assert_eq!(pat.to_string(), "https://acme.zendesk.com");
    }

    #[test]
    fn wildcard_patterns_match_subdomains_only() {
        let pat = p("https://*.zendesk.com");
        assert!(pat.matches(&u("https://acme.zendesk.com/")));
        assert!(pat.matches(&u("https://a.b.zendesk.com/")));
        assert!(!pat.matches(&u("https://zendesk.com/")));
        assert!(!pat.matches(&u("https://evilzendesk.com/")));
        assert_eq!(pat.to_string(), "https://*.zendesk.com");
    }

    #[test]
    fn path_prefixes_are_respected() {
        let pat = p("http://127.0.0.1:18080/v2/");
        assert!(pat.matches(&u("http://127.0.0.1:18080/v2")));
        assert!(pat.matches(&u("http://127.0.0.1:18080/v2/Users?filter=x")));
        assert!(!pat.matches(&u("http://127.0.0.1:18080/v20/Users")));
        assert!(!pat.matches(&u("http://127.0.0.1:18080/admin")));
        assert_eq!(pat.to_string(), "http://127.0.0.1:18080/v2");
    }

    #[test]
    fn bad_patterns_are_explained() {
        for (bad, needle) in [
            ("acme.zendesk.com", "no scheme"),
            ("ftp://x", "scheme 'ftp'"),
            ("https://a*.b.com", "'*'"),
            ("https://user:pw@x.com", "credentials"),
            ("https://x.com/?q=1", "query"),
        ] {
            let e = HostPattern::parse(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn filling_declared_patterns() {
        let settings = |n: &str| match n {
            "subdomain" => Some("acme".to_string()),
            "base_url" => Some("http://127.0.0.1:1/v2/".to_string()),
            _ => None,
        };
        assert_eq!(
            fill_pattern("https://{subdomain}.zendesk.com", settings)
                .unwrap()
                .as_deref(),
            Some("https://acme.zendesk.com")
        );
        assert_eq!(
            fill_pattern("{base_url}", settings).unwrap().as_deref(),
            Some("http://127.0.0.1:1/v2")
        );
        assert_eq!(fill_pattern("{other}", settings).unwrap(), None);
        assert!(fill_pattern("{broken", settings).is_err());
    }

    #[test]
    fn allowlist_is_the_intersection() {
        let a = Allowlist::new(
            vec![p("https://*.zendesk.com")],
            vec![
                p("https://acme.zendesk.com"),
                p("https://other.example.com"),
            ],
        );
        assert!(a.check(&u("https://acme.zendesk.com/api")).is_ok());
        let e = a.check(&u("https://other.example.com/")).unwrap_err();
        assert!(e.contains("not among the hosts the plugin declared"), "{e}");
        let e = a.check(&u("https://evil.zendesk.com/")).unwrap_err();
        assert!(e.contains("not granted"), "{e}");
        assert!(
            Allowlist::deny_all()
                .check(&u("https://acme.zendesk.com/"))
                .is_err()
        );
    }

    #[test]
    fn egress_checks_of_a_hop() {
        let a = Allowlist::new(
            vec![p("http://127.0.0.1:8080"), p("https://api.example.com")],
            vec![p("http://127.0.0.1:8080"), p("https://api.example.com/v2")],
        )
        .with_private(vec![p("https://api.example.com/v2")]);
        // IP literals: checked even if a caller skipped the allowlist.
        let ok = u("http://127.0.0.1:8080/x");
        a.check_egress(ok.as_str(), &ok).unwrap();
        let mapped = u("http://[::ffff:127.0.0.1]:8080/x");
        let e = a.check_egress(mapped.as_str(), &mapped).unwrap_err();
        assert!(
            e.to_string()
                .contains("no entry of the connection's allowed_hosts names it"),
            "{e}"
        );
        // Paths under the granted prefix, as written and as parsed.
        let raw = "https://api.example.com/v2/x/%2e%2e/users";
        let e = a.check_egress(raw, &u(raw)).unwrap_err();
        assert!(
            e.to_string()
                .contains("under the path-prefix grant https://api.example.com/v2"),
            "{e}"
        );
        let plain = u("https://api.example.com/v2/users");
        a.check_egress(plain.as_str(), &plain).unwrap();
        assert!(a.is_private(&plain));
        assert!(!a.is_private(&ok));
    }

    #[test]
    fn scrub_removes_every_held_value_from_body_and_headers() {
        let secret = std::sync::Arc::new(super::super::secrets::Secret {
            name: "t".into(),
            value: super::super::secrets::SecretValue::new("tok-123456".into()),
            bound_to: vec![p("https://a.example")],
        });
        let grants = std::collections::BTreeMap::from([(
            "token".to_string(),
            super::super::secrets::SecretGrant {
                secret,
                placements: vec![Placement::Bearer],
            },
        )]);
        let secrets = GrantedSecrets::new("c", grants).unwrap();
        let resp = InboundResponse {
            status: 200,
            headers: vec![
                ("x-echo".into(), "Bearer tok-123456".into()),
                ("content-length".into(), "28".into()),
            ],
            body: br#"{"auth":"Bearer tok-123456"}"#.to_vec(),
        };
        let out = scrub(resp, &secrets);
        assert_eq!(out.headers[0].1, "Bearer [REDACTED]");
        assert_eq!(out.body, br#"{"auth":"Bearer [REDACTED]"}"#.to_vec());
        assert_eq!(out.headers[1].1, out.body.len().to_string());
    }

    /// A loopback server counting the requests it receives.
    async fn counting_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hits = std::sync::Arc::new(AtomicUsize::new(0));
        let h2 = hits.clone();
        let app = axum::Router::new().fallback(move || {
            let hits = h2.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                "{\"id\":\"1\"}"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (origin, hits)
    }

    fn intercepted_policy(origin: &str, interceptor: &Interceptor) -> HttpPolicy {
        HttpPolicy {
            connection: "t".into(),
            allowlist: Allowlist::new(vec![p(origin)], vec![p(origin), p("http://127.0.0.2:9")]),
            secrets: GrantedSecrets::default(),
            logins: Vec::new(),
            timeout: Duration::from_secs(10),
            max_response_bytes: 1 << 20,
            max_redirects: 0,
            limiter: std::sync::Arc::new(super::super::ratelimit::RateLimiter::new(1000.0)),
            max_budget_wait: Duration::from_secs(30),
            interceptor: Some(interceptor.clone()),
        }
    }

    fn req(method: Method, url: String) -> OutboundRequest {
        OutboundRequest {
            method,
            url,
            headers: Vec::new(),
            auth: None,
            body: Some(vec![Segment::Text("{}".into())]),
        }
    }

    #[tokio::test]
    async fn interceptor_loses_a_sent_response_and_substitutes_a_429() {
        use std::sync::atomic::Ordering;
        let (origin, hits) = counting_server().await;
        let interceptor = Interceptor::new();
        let policy = intercepted_policy(&origin, &interceptor);
        let client = HttpClient::new().unwrap();

        // Lost response: the write reaches the server, the guest sees a timeout.
        interceptor.arm(Fault::LoseResponse);
        let ok = client
            .send(&policy, req(Method::Get, format!("{origin}/Users")))
            .await
            .unwrap();
        assert_eq!(ok.status, 200, "a read is not faulted by LoseResponse");
        let lost = client
            .send(&policy, req(Method::Post, format!("{origin}/Users")))
            .await
            .unwrap_err();
        assert!(
            matches!(lost, HttpError::Timeout(ref m) if m.contains("lost")),
            "{lost:?}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 2, "the lost write was sent");

        // 429: not sent; Retry-After as armed.
        interceptor.arm(Fault::RateLimit {
            retry_after: Duration::from_secs(3),
        });
        let limited = client
            .send(&policy, req(Method::Get, format!("{origin}/Users/1")))
            .await
            .unwrap();
        assert_eq!(limited.status, 429);
        assert!(
            limited
                .headers
                .iter()
                .any(|(k, v)| k == "retry-after" && v == "3"),
            "{:?}",
            limited.headers
        );
        assert_eq!(
            hits.load(Ordering::SeqCst),
            2,
            "a substituted 429 is not sent"
        );

        // A request outside the declared hosts is denied and recorded as such.
        let denied = client
            .send(&policy, req(Method::Get, "http://127.0.0.2:9/x".into()))
            .await
            .unwrap_err();
        assert!(matches!(denied, HttpError::Denied(_)), "{denied:?}");

        let records = interceptor.records();
        type Summary = (Method, Decision, Option<u16>, Option<Fault>, bool);
        let summary: Vec<Summary> = records
            .iter()
            .map(|r| (r.method, r.decision, r.status, r.fault, r.declared))
            .collect();
        assert_eq!(
            summary,
            vec![
                (Method::Get, Decision::Allowed, Some(200), None, true),
                (
                    Method::Post,
                    Decision::Failed,
                    None,
                    Some(Fault::LoseResponse),
                    true
                ),
                (
                    Method::Get,
                    Decision::Allowed,
                    Some(429),
                    Some(Fault::RateLimit {
                        retry_after: Duration::from_secs(3)
                    }),
                    true
                ),
                (Method::Get, Decision::Denied, None, None, false),
            ]
        );
        assert_eq!(records[1].path, "/Users");
        assert!(interceptor.armed().is_empty());
    }
}
