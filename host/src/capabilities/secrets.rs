//! Secrets: operator-defined values a connector may refer to by name but never read.
//!
//! The operator defines secrets in the config (`[secrets.<name>]`, from an
//! environment variable, a file, or inline for development) and binds each to
//! the origins it may be sent to. A connection grants its plugin some of them
//! under the plugin's own names (`secrets = { token = "scim_token" }`).
//!
//! **Secrets never enter the guest, by construction.** The guest refers to a
//! secret by name inside an HTTP template; the [`http`](super::http)
//! capability asks [`GrantedSecrets::resolve`] for the value at send time,
//! naming *where* it goes (a [`Placement`]). A secret is placed only where the
//! plugin's manifest declared it and the operator's grant confirmed it: a
//! plain grant confirms the auth-header placements (bearer, basic, a named
//! header); a body field of a login exchange needs the long form
//! `{ secret = "...", placements = ["login:<exchange>"] }`. No placement puts
//! a secret in a URL or in a body the guest writes.
//!
//! **Derived secrets** are values a login exchange's response carries (a
//! session id). The host captures them ([`GrantedSecrets::capture`]), binds
//! them to the origins of the secrets the exchange used, lets them expire,
//! and scrubs them from everything the guest reads; the guest refers to them
//! by name like granted ones.
//!
//! **Defence in depth**: every value the connection holds (granted, derived,
//! and recently retired derived ones) is compiled into one
//! [`SecretScanner`] over all its encodings; the HTTP capability scrubs every
//! response with it and refuses any request whose guest-written text carries
//! one. Every value is also registered with the process-wide [`Redactor`],
//! which scrubs log lines and error messages.

use super::http::HostPattern;
use super::secret_scan::{ScanError, SecretScanner};
use crate::model::{DerivedSpec, Placement};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};
use url::Url;

/// A secret's value. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Arc<str>);

impl SecretValue {
    /// Wrap a value and register it with the global redactor.
    pub fn new(value: String) -> Self {
        Redactor::global().register(&value);
        SecretValue(Arc::from(value))
    }

    /// Wrap a short-lived value (a captured session id) and register it
    /// with the global redactor's bounded set of recent derived values.
    pub fn derived(value: String) -> Self {
        Redactor::global().register_ephemeral(&value);
        SecretValue(Arc::from(value))
    }

    /// The plaintext. Only the HTTP capability calls this, at send time.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([REDACTED])")
    }
}

/// An operator-defined secret: its value and the hosts it may be sent to.
#[derive(Debug, Clone)]
pub struct Secret {
    /// The operator's name for it (`[secrets.<name>]`).
    pub name: String,
    /// The value.
    pub value: SecretValue,
    /// Hosts the value may be sent to.
    pub bound_to: Vec<HostPattern>,
}

impl Secret {
    /// Whether the secret may be sent to this URL.
    pub fn may_send_to(&self, url: &Url) -> bool {
        self.bound_to.iter().any(|p| p.matches(url))
    }
}

/// A granted secret and the placements in effect for it (declared by the
/// manifest, confirmed by the operator).
#[derive(Debug, Clone)]
pub struct SecretGrant {
    /// The secret.
    pub secret: Arc<Secret>,
    /// Where it may be placed.
    pub placements: Vec<Placement>,
}

/// Why a secret reference was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SecretError {
    /// The connection was not granted a secret of that name.
    #[error(
        "secret '{name}' is not granted to connection '{connection}' (granted: {granted}); \
         grant it in the connection's `secrets` table"
    )]
    NotGranted {
        /// Name the guest used.
        name: String,
        /// Connection name.
        connection: String,
        /// The names that are granted (and derived secrets held).
        granted: String,
    },
    /// The secret may not be sent to that host.
    #[error(
        "secret '{name}' may not be sent to {origin}: it is bound to [{bound}]; \
         add the origin to the secret's `hosts` if it should be"
    )]
    NotBound {
        /// Name the guest used.
        name: String,
        /// The destination origin.
        origin: String,
        /// Where the secret is bound.
        bound: String,
    },
    /// The secret may not be placed there.
    #[error(
        "secret '{name}' may not be placed in {placement} (allowed: {allowed}); secrets go only \
         where the plugin's manifest declares and the connection's grant confirms, never in a \
         URL or a body the connector writes"
    )]
    NotPlaced {
        /// Name the guest used.
        name: String,
        /// Where the guest tried to put it.
        placement: String,
        /// Where it may go.
        allowed: String,
    },
    /// A derived secret expired (or was forgotten): log in again.
    #[error("derived secret '{name}' has expired or was forgotten; run the login exchange again")]
    Expired {
        /// Name the guest used.
        name: String,
    },
    /// The secret scanner could not be built.
    #[error("secret scanner: {0}")]
    Scanner(#[from] ScanError),
}

/// A captured value, alive until `expires`.
#[derive(Debug, Clone)]
struct Derived {
    value: SecretValue,
    bound_to: Vec<HostPattern>,
    placements: Vec<Placement>,
    expires: Instant,
}

/// Retired derived values kept in the scanner (a target may echo an old
/// session id after it expired).
const RETIRED_KEPT: usize = 64;

/// Mutable state shared by every call of a connection.
#[derive(Debug, Default)]
struct DerivedStore {
    live: BTreeMap<String, Derived>,
    retired: VecDeque<SecretValue>,
}

/// The secrets one connection may use, keyed by the plugin's names for them.
#[derive(Debug, Clone, Default)]
pub struct GrantedSecrets {
    connection: String,
    grants: BTreeMap<String, SecretGrant>,
    derived: Arc<Mutex<DerivedStore>>,
    scanner: Arc<RwLock<Arc<SecretScanner>>>,
}

impl GrantedSecrets {
    /// Build the grant for a connection.
    pub fn new(
        connection: impl Into<String>,
        grants: BTreeMap<String, SecretGrant>,
    ) -> Result<Self, SecretError> {
        let g = GrantedSecrets {
            connection: connection.into(),
            grants,
            derived: Arc::default(),
            scanner: Arc::default(),
        };
        g.rebuild_scanner()?;
        Ok(g)
    }

    /// The granted names the guest may use.
    pub fn names(&self) -> Vec<String> {
        self.grants.keys().cloned().collect()
    }

    /// The derived secrets held now (not expired).
    pub fn derived_names(&self) -> Vec<String> {
        let now = Instant::now();
        self.derived
            .lock()
            .map(|d| {
                d.live
                    .iter()
                    .filter(|(_, v)| v.expires > now)
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The scanner over every value the connection holds, in every encoding.
    pub fn scanner(&self) -> Arc<SecretScanner> {
        self.scanner
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Resolve a guest reference to be placed at `placement` in a request to `url`.
    pub fn resolve(
        &self,
        name: &str,
        url: &Url,
        placement: &Placement,
    ) -> Result<SecretValue, SecretError> {
        if let Some(grant) = self.grants.get(name) {
            check_bound(name, url, &grant.secret.bound_to)?;
            check_placed(name, placement, &grant.placements)?;
            return Ok(grant.secret.value.clone());
        }
        let derived = self
            .derived
            .lock()
            .ok()
            .and_then(|d| d.live.get(name).cloned());
        match derived {
            Some(d) if d.expires > Instant::now() => {
                check_bound(name, url, &d.bound_to)?;
                check_placed(name, placement, &d.placements)?;
                Ok(d.value)
            }
            Some(_) => {
                self.forget(name);
                Err(SecretError::Expired {
                    name: name.to_string(),
                })
            }
            None => Err(SecretError::NotGranted {
                name: name.to_string(),
                connection: self.connection.clone(),
                granted: {
                    let mut all = self.names();
                    all.extend(self.derived_names());
                    if all.is_empty() {
                        "none".to_string()
                    } else {
                        all.join(", ")
                    }
                },
            }),
        }
    }

    /// The origins a granted secret is bound to.
    pub fn bound_to(&self, name: &str) -> Option<Vec<HostPattern>> {
        self.grants.get(name).map(|g| g.secret.bound_to.clone())
    }

    /// Keep a value captured by a login exchange as the derived secret
    /// `spec.name`, bound to `bound_to`, for `spec.ttl_seconds`.
    pub fn capture(
        &self,
        spec: &DerivedSpec,
        value: String,
        bound_to: Vec<HostPattern>,
    ) -> Result<(), SecretError> {
        let value = SecretValue::derived(value);
        if let Ok(mut d) = self.derived.lock() {
            let old = d.live.insert(
                spec.name.clone(),
                Derived {
                    value,
                    bound_to,
                    placements: spec.placements.clone(),
                    expires: Instant::now() + Duration::from_secs(u64::from(spec.ttl_seconds)),
                },
            );
            if let Some(old) = old {
                d.retire(old.value);
            }
        }
        self.rebuild_scanner()
    }

    /// Drop a derived secret (the target rejected it). Its value stays in
    /// the scanner for a while.
    pub fn forget(&self, name: &str) {
        if let Ok(mut d) = self.derived.lock()
            && let Some(old) = d.live.remove(name)
        {
            d.retire(old.value);
        }
    }

    /// Whether `text` carries any value the connection holds, in any encoding.
    pub fn holds_secret(&self, text: &[u8]) -> bool {
        self.scanner().find(text).is_some()
    }

    fn rebuild_scanner(&self) -> Result<(), SecretError> {
        let mut values: Vec<(String, SecretValue)> = self
            .grants
            .iter()
            .map(|(k, g)| (k.clone(), g.secret.value.clone()))
            .collect();
        if let Ok(d) = self.derived.lock() {
            values.extend(d.live.iter().map(|(k, v)| (k.clone(), v.value.clone())));
            values.extend(
                d.retired
                    .iter()
                    .map(|v| ("retired derived secret".to_string(), v.clone())),
            );
        }
        let refs: Vec<(String, &str)> = values
            .iter()
            .map(|(k, v)| (k.clone(), v.expose()))
            .collect();
        let scanner = cached_scanner(&refs)?;
        if let Ok(mut s) = self.scanner.write() {
            *s = scanner;
        }
        Ok(())
    }
}

/// Scanners built recently, by a digest of their (label, value) list.
/// Building one takes milliseconds (half a second for a PEM key), and the
/// service opens every connection again for each cycle with the same
/// grants: the scanner is reused instead. Only digests are kept as keys,
/// in memory; the cache holds [`SCANNER_CACHE`] scanners at most.
fn cached_scanner(refs: &[(String, &str)]) -> Result<Arc<SecretScanner>, ScanError> {
    use sha2::{Digest, Sha256};
    type Cache = Mutex<VecDeque<([u8; 32], Arc<SecretScanner>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let mut h = Sha256::new();
    for (label, value) in refs {
        for part in [label.as_bytes(), value.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
    }
    let key: [u8; 32] = h.finalize().into();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Ok(mut c) = cache.lock()
        && let Some(i) = c.iter().position(|(k, _)| *k == key)
        && let Some(hit) = c.remove(i)
    {
        let scanner = hit.1.clone();
        c.push_back(hit);
        return Ok(scanner);
    }
    let scanner = Arc::new(SecretScanner::new(refs)?);
    if let Ok(mut c) = cache.lock() {
        if c.len() >= SCANNER_CACHE {
            c.pop_front();
        }
        c.push_back((key, scanner.clone()));
    }
    Ok(scanner)
}

/// Scanners [`cached_scanner`] keeps.
const SCANNER_CACHE: usize = 64;

impl DerivedStore {
    fn retire(&mut self, value: SecretValue) {
        if self.retired.len() == RETIRED_KEPT {
            self.retired.pop_front();
        }
        self.retired.push_back(value);
    }
}

fn check_bound(name: &str, url: &Url, bound: &[HostPattern]) -> Result<(), SecretError> {
    if bound.iter().any(|p| p.matches(url)) {
        return Ok(());
    }
    Err(SecretError::NotBound {
        name: name.to_string(),
        origin: super::http::origin_of(url),
        bound: bound
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

fn check_placed(
    name: &str,
    placement: &Placement,
    allowed: &[Placement],
) -> Result<(), SecretError> {
    let ok = allowed.iter().any(|a| match (a, placement) {
        (Placement::Header(x), Placement::Header(y)) => x.eq_ignore_ascii_case(y),
        (a, p) => a == p,
    });
    if ok {
        return Ok(());
    }
    Err(SecretError::NotPlaced {
        name: name.to_string(),
        placement: match placement {
            Placement::Header(h) => format!("header '{h}'"),
            Placement::Login(l) => format!("login exchange '{l}'"),
            other => format!("{other} auth"),
        },
        allowed: if allowed.is_empty() {
            "nowhere".to_string()
        } else {
            allowed
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        },
    })
}

/// Why a manifest's secrets, placements or login exchanges are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// A placement names a login exchange the manifest does not declare.
    #[error(
        "secret '{secret}' names placement login:{exchange}, but no login exchange '{exchange}' is declared"
    )]
    UnknownExchange {
        /// Secret.
        secret: String,
        /// Exchange named.
        exchange: String,
    },
    /// A login field uses a secret whose placements do not name the exchange.
    #[error(
        "login exchange '{exchange}' field '{field}' uses secret '{secret}', which is {why}; \
         declare the secret with placement login:{exchange}"
    )]
    FieldSecret {
        /// Exchange.
        exchange: String,
        /// Field.
        field: String,
        /// Secret.
        secret: String,
        /// Why not.
        why: &'static str,
    },
    /// A derived secret is declared badly.
    #[error("login exchange '{exchange}' derived secret '{derived}': {why}")]
    Derived {
        /// Exchange.
        exchange: String,
        /// Derived secret.
        derived: String,
        /// What is wrong.
        why: String,
    },
    /// Two things share a name.
    #[error(
        "the name '{0}' is declared twice (secrets, derived secrets and login exchanges share one namespace)"
    )]
    Duplicate(String),
    /// An exchange is declared badly.
    #[error("login exchange '{exchange}': {why}")]
    Exchange {
        /// Exchange.
        exchange: String,
        /// What is wrong.
        why: String,
    },
}

/// Longest lifetime of a derived secret.
pub const MAX_DERIVED_TTL_SECONDS: u32 = 24 * 3600;

/// Check a manifest's secrets, placements and login exchanges, when the
/// plugin loads: every `login:` placement names a declared exchange, every
/// secret field of an exchange is declared with that placement, derived
/// secrets have a lifetime and header-only placements, names are unique.
pub fn check_manifest(m: &crate::model::Manifest) -> Result<(), ManifestError> {
    let mut names = std::collections::BTreeSet::new();
    let mut unique = |n: &str| {
        if names.insert(n.to_string()) {
            Ok(())
        } else {
            Err(ManifestError::Duplicate(n.to_string()))
        }
    };
    for s in &m.secrets {
        unique(&s.name)?;
        for p in &s.placements {
            if let Placement::Login(x) = p
                && !m.logins.iter().any(|l| &l.name == x)
            {
                return Err(ManifestError::UnknownExchange {
                    secret: s.name.clone(),
                    exchange: x.clone(),
                });
            }
        }
    }
    for x in &m.logins {
        unique(&x.name)?;
        if !x.path_suffix.starts_with('/') || x.path_suffix.contains(['?', '#']) {
            return Err(ManifestError::Exchange {
                exchange: x.name.clone(),
                why: format!(
                    "path-suffix '{}' must be a path starting with '/'",
                    x.path_suffix
                ),
            });
        }
        for (field, value) in &x.fields {
            if let crate::model::LoginValue::Secret(secret) = value {
                let why = match m.secrets.iter().find(|s| &s.name == secret) {
                    None => Some("not declared"),
                    Some(s) if !s.placements.contains(&Placement::Login(x.name.clone())) => {
                        Some("not declared with this placement")
                    }
                    Some(_) => None,
                };
                if let Some(why) = why {
                    return Err(ManifestError::FieldSecret {
                        exchange: x.name.clone(),
                        field: field.clone(),
                        secret: secret.clone(),
                        why,
                    });
                }
            }
        }
        for d in &x.captures {
            unique(&d.name)?;
            let bad = |why: String| ManifestError::Derived {
                exchange: x.name.clone(),
                derived: d.name.clone(),
                why,
            };
            if d.ttl_seconds == 0 || d.ttl_seconds > MAX_DERIVED_TTL_SECONDS {
                return Err(bad(format!(
                    "ttl-seconds must be between 1 and {MAX_DERIVED_TTL_SECONDS}"
                )));
            }
            if d.placements.is_empty() || d.placements.iter().any(|p| !p.is_header()) {
                return Err(bad(
                    "placements must name auth headers (bearer, basic, header) only".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Scrubs known secret values (in every encoding the [`SecretScanner`]
/// knows) from text. One per process, fed by [`SecretValue::new`] (values
/// from the config, kept for the life of the process) and
/// [`SecretValue::derived`] (values captured by login exchanges, of which
/// only the most recent [`EPHEMERAL_VALUES`] are kept).
///
/// Values are compiled into shards of at most [`SHARD_VALUES`] values each,
/// so that registering a value rebuilds one small scanner rather than one
/// over every value ever seen, and so that no number of values runs into
/// the scanner's pattern limits: a shard that would exceed them is closed
/// and a new one begun. A lasting value that is a substring of another (or
/// holds one) joins that value's shard, so that the longer one is still
/// scrubbed whole. A value that cannot be scanned at all is counted
/// ([`Redactor::unscanned`]) and reported as an error, never dropped
/// silently.
#[derive(Debug, Default)]
pub struct Redactor {
    inner: RwLock<RedactorInner>,
}

#[derive(Debug, Default)]
struct RedactorInner {
    lasting: Vec<Shard>,
    ephemeral: VecDeque<Shard>,
    unscanned: u64,
    evicted: u64,
}

#[derive(Debug)]
struct Shard {
    values: Vec<SecretValue>,
    scanner: Arc<SecretScanner>,
}

impl Shard {
    fn build(values: Vec<SecretValue>) -> Result<Shard, ScanError> {
        let refs: Vec<(&str, &str)> = values.iter().map(|v| ("secret", v.expose())).collect();
        let scanner = Arc::new(SecretScanner::new(&refs)?);
        Ok(Shard { values, scanner })
    }

    fn holds(&self, value: &str) -> bool {
        self.values.iter().any(|v| v.expose() == value)
    }

    fn overlaps(&self, value: &str) -> bool {
        self.values
            .iter()
            .any(|v| v.expose().contains(value) || value.contains(v.expose()))
    }
}

/// Values per redactor shard.
pub const SHARD_VALUES: usize = 32;

/// Derived (login-captured) values the redactor keeps; older ones are
/// evicted, a shard at a time. Each connection's own scanner keeps its
/// live and recently retired derived values regardless.
pub const EPHEMERAL_VALUES: usize = 8 * SHARD_VALUES;

/// What replaces a secret value in output.
pub const REDACTED: &str = "[REDACTED]";

/// Values shorter than this are not scanned for (they would match ordinary
/// text); the config loader refuses such secrets.
pub const MIN_SECRET_LEN: usize = super::secret_scan::MIN_SCAN_SECRET_LEN;

impl Redactor {
    /// The process-wide redactor.
    pub fn global() -> &'static Redactor {
        static GLOBAL: OnceLock<Redactor> = OnceLock::new();
        GLOBAL.get_or_init(Redactor::default)
    }

    /// Register a value for the life of the process; every encoding of it
    /// is scrubbed from then on.
    pub fn register(&self, value: &str) {
        self.add(value, false);
    }

    /// Register a short-lived value (a captured session id). The most
    /// recent [`EPHEMERAL_VALUES`] such values are scrubbed.
    pub fn register_ephemeral(&self, value: &str) {
        self.add(value, true);
    }

    /// Values that could not be compiled into any scanner (each was also
    /// reported as an error). Zero unless a value breaks the scanner's
    /// per-value limits, which the config loader refuses.
    pub fn unscanned(&self) -> u64 {
        self.inner.read().map(|g| g.unscanned).unwrap_or(0)
    }

    /// Derived values evicted so far to keep [`EPHEMERAL_VALUES`].
    pub fn evicted(&self) -> u64 {
        self.inner.read().map(|g| g.evicted).unwrap_or(0)
    }

    /// Scanner shards in use (lasting, ephemeral).
    pub fn shards(&self) -> (usize, usize) {
        self.inner
            .read()
            .map(|g| (g.lasting.len(), g.ephemeral.len()))
            .unwrap_or((0, 0))
    }

    fn add(&self, value: &str, ephemeral: bool) {
        if value.len() < MIN_SECRET_LEN {
            return;
        }
        // Report outside the lock: the log layer redacts through us.
        let failure = match self.inner.write() {
            Ok(mut g) => g.add(SecretValue(Arc::from(value)), ephemeral).err(),
            Err(_) => None,
        };
        if let Some(e) = failure {
            tracing::error!(
                error = %e,
                "a secret value cannot be scanned for; it will not be redacted from output"
            );
        }
    }

    /// Replace every known value in `text`.
    pub fn redact(&self, text: &str) -> String {
        let scanners: Vec<Arc<SecretScanner>> = match self.inner.read() {
            Ok(g) => g
                .lasting
                .iter()
                .chain(g.ephemeral.iter())
                .map(|s| s.scanner.clone())
                .collect(),
            Err(_) => return text.to_string(),
        };
        let mut out = text.to_string();
        for s in scanners {
            if !s.is_empty() {
                out = s.redact_str(&out);
            }
        }
        out
    }
}

impl RedactorInner {
    fn add(&mut self, value: SecretValue, ephemeral: bool) -> Result<(), ScanError> {
        let v = value.expose();
        if self
            .lasting
            .iter()
            .chain(self.ephemeral.iter())
            .any(|s| s.holds(v))
        {
            return Ok(());
        }
        let result = if ephemeral {
            let r = add_to_last(self.ephemeral.back_mut(), &value);
            match r {
                Some(r) => r,
                None => {
                    let shard = Shard::build(vec![value]);
                    shard.map(|s| {
                        self.ephemeral.push_back(s);
                        while self.ephemeral.len() * SHARD_VALUES > EPHEMERAL_VALUES {
                            if let Some(old) = self.ephemeral.pop_front() {
                                self.evicted += old.values.len() as u64;
                            }
                        }
                    })
                }
            }
        } else {
            // A value overlapping others joins (and merges) their shards.
            let (related, rest): (Vec<Shard>, Vec<Shard>) = std::mem::take(&mut self.lasting)
                .into_iter()
                .partition(|s| s.overlaps(v));
            self.lasting = rest;
            if related.is_empty() {
                match add_to_last(self.lasting.last_mut(), &value) {
                    Some(r) => r,
                    None => Shard::build(vec![value]).map(|s| self.lasting.push(s)),
                }
            } else {
                let mut values: Vec<SecretValue> =
                    related.iter().flat_map(|s| s.values.clone()).collect();
                values.push(value.clone());
                match Shard::build(values) {
                    Ok(s) => {
                        self.lasting.push(s);
                        Ok(())
                    }
                    Err(_) => {
                        // Too big together: keep the shards as they were and
                        // scan the new value on its own.
                        self.lasting.extend(related);
                        Shard::build(vec![value]).map(|s| self.lasting.push(s))
                    }
                }
            }
        };
        if result.is_err() {
            self.unscanned += 1;
        }
        result
    }
}

/// Add `value` to `shard` if it has room and still builds; `None` when a
/// new shard is needed.
fn add_to_last(shard: Option<&mut Shard>, value: &SecretValue) -> Option<Result<(), ScanError>> {
    let shard = shard?;
    if shard.values.len() >= SHARD_VALUES {
        return None;
    }
    let mut values = shard.values.clone();
    values.push(value.clone());
    match Shard::build(values) {
        Ok(s) => {
            *shard = s;
            Some(Ok(()))
        }
        Err(ScanError::TooManyPatterns { .. }) => None,
        Err(e) => Some(Err(e)),
    }
}

/// Redact with the global redactor.
pub fn redact(text: &str) -> String {
    Redactor::global().redact(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, value: &str, hosts: &[&str]) -> Arc<Secret> {
        Arc::new(Secret {
            name: name.into(),
            value: SecretValue::new(value.into()),
            bound_to: hosts
                .iter()
                .map(|h| HostPattern::parse(h).unwrap())
                .collect(),
        })
    }

    fn grant(secret: Arc<Secret>, placements: Vec<Placement>) -> SecretGrant {
        SecretGrant { secret, placements }
    }

    #[test]
    fn resolves_only_granted_bound_and_placed() {
        let mut grants = BTreeMap::new();
        grants.insert(
            "token".to_string(),
            grant(
                secret("scim_token", "s3cret-value-1", &["http://127.0.0.1:18080"]),
                vec![Placement::Bearer, Placement::Header("X-Api-Key".into())],
            ),
        );
        let g = GrantedSecrets::new("demo", grants).unwrap();
        let ok = Url::parse("http://127.0.0.1:18080/v2/Users").unwrap();
        assert_eq!(
            g.resolve("token", &ok, &Placement::Bearer)
                .unwrap()
                .expose(),
            "s3cret-value-1"
        );
        assert!(
            g.resolve("token", &ok, &Placement::Header("x-api-key".into()))
                .is_ok(),
            "header names compare case-insensitively"
        );
        let e = g.resolve("token", &ok, &Placement::Basic).unwrap_err();
        assert!(matches!(e, SecretError::NotPlaced { .. }), "{e}");
        assert!(
            e.to_string().contains("allowed: bearer, header:X-Api-Key"),
            "{e}"
        );
        let e = g
            .resolve("token", &ok, &Placement::Login("login".into()))
            .unwrap_err();
        assert!(e.to_string().contains("login exchange 'login'"), "{e}");

        let other = Url::parse("http://127.0.0.1:9999/").unwrap();
        let e = g.resolve("token", &other, &Placement::Bearer).unwrap_err();
        assert!(matches!(e, SecretError::NotBound { .. }));
        assert!(e.to_string().contains("http://127.0.0.1:9999"), "{e}");

        let e = g.resolve("password", &ok, &Placement::Bearer).unwrap_err();
        assert!(
            e.to_string().contains("not granted to connection 'demo'"),
            "{e}"
        );
        assert!(e.to_string().contains("granted: token"), "{e}");
    }

    #[test]
    fn derived_secrets_are_bound_placed_scanned_and_expire() {
        let g = GrantedSecrets::new("demo", BTreeMap::new()).unwrap();
        let spec = DerivedSpec {
            name: "session".into(),
            description: "session".into(),
            source: crate::model::CaptureSource::JsonPointer("/sessionId".into()),
            ttl_seconds: 60,
            placements: vec![Placement::Header("Authorization".into())],
        };
        let bound = vec![HostPattern::parse("https://api.example.com").unwrap()];
        g.capture(&spec, "sess-0123456789abcdef".into(), bound)
            .unwrap();
        assert_eq!(g.derived_names(), vec!["session".to_string()]);
        let url = Url::parse("https://api.example.com/x").unwrap();
        let h = Placement::Header("authorization".into());
        assert_eq!(
            g.resolve("session", &url, &h).unwrap().expose(),
            "sess-0123456789abcdef"
        );
        assert!(g.holds_secret(b"xx sess-0123456789abcdef yy"));
        let elsewhere = Url::parse("https://evil.example.net/x").unwrap();
        assert!(matches!(
            g.resolve("session", &elsewhere, &h),
            Err(SecretError::NotBound { .. })
        ));
        assert!(matches!(
            g.resolve("session", &url, &Placement::Bearer),
            Err(SecretError::NotPlaced { .. })
        ));
        g.forget("session");
        assert!(g.derived_names().is_empty());
        assert!(
            g.holds_secret(b"sess-0123456789abcdef"),
            "a retired value is still scrubbed"
        );
        let zero = DerivedSpec {
            ttl_seconds: 0,
            ..spec
        };
        g.capture(&zero, "sess-expired-000000".into(), vec![])
            .unwrap();
        assert!(matches!(
            g.resolve("session", &url, &h),
            Err(SecretError::Expired { .. })
        ));
    }

    #[test]
    fn a_connection_opened_again_with_the_same_grants_reuses_its_scanner() {
        let make = |value: &str| {
            let mut grants = BTreeMap::new();
            grants.insert(
                "token".to_string(),
                grant(
                    secret("tok", value, &["https://a.example"]),
                    vec![Placement::Bearer],
                ),
            );
            GrantedSecrets::new("cache-test", grants).unwrap()
        };
        let a = make("cache-test-value-1");
        let b = make("cache-test-value-1");
        assert!(Arc::ptr_eq(&a.scanner(), &b.scanner()));
        let c = make("cache-test-value-2");
        assert!(!Arc::ptr_eq(&a.scanner(), &c.scanner()));
        assert!(c.holds_secret(b"cache-test-value-2"));
        assert!(!c.holds_secret(b"cache-test-value-1"));
        // A capture changes the set: a new scanner, holding both.
        let spec = DerivedSpec {
            name: "session".into(),
            description: String::new(),
            source: crate::model::CaptureSource::JsonPointer("/s".into()),
            ttl_seconds: 60,
            placements: vec![Placement::Header("Authorization".into())],
        };
        b.capture(&spec, "cache-test-session-1".into(), vec![])
            .unwrap();
        assert!(!Arc::ptr_eq(&a.scanner(), &b.scanner()));
        assert!(b.holds_secret(b"cache-test-session-1") && b.holds_secret(b"cache-test-value-1"));
        assert!(!a.holds_secret(b"cache-test-session-1"));
    }

    #[test]
    fn values_never_show_in_debug() {
        let v = SecretValue::new("hunter2-very-secret".into());
        assert!(!format!("{v:?}").contains("hunter2"));
    }

    #[test]
    fn redactor_scrubs_raw_and_json_forms() {
        let r = Redactor::default();
        r.register("pa\"ss-word");
        r.register("abc"); // too short to scrub
        let line = r#"sent {"password":"pa\"ss-word"} and pa"ss-word and abc"#;
        let out = r.redact(line);
        assert!(!out.contains("ss-word"), "{out}");
        assert_eq!(out.matches(REDACTED).count(), 2, "{out}");
        assert!(out.contains("abc"));
    }

    #[test]
    fn longer_secrets_are_scrubbed_first() {
        let r = Redactor::default();
        r.register("token");
        r.register("token-extended");
        assert_eq!(r.redact("x token-extended y"), "x [REDACTED] y");
    }

    #[test]
    fn overlapping_values_in_different_shards_are_scrubbed_whole() {
        let r = Redactor::default();
        r.register("shortsecret");
        for i in 0..(2 * SHARD_VALUES) {
            r.register(&format!("filler-secret-{i:04}"));
        }
        r.register("xx-shortsecret-extended");
        assert_eq!(
            r.redact("a xx-shortsecret-extended b shortsecret c"),
            "a [REDACTED] b [REDACTED] c"
        );
    }

    /// The defect this guards against: one scanner over every value ever
    /// registered stopped accepting values past the scanner's pattern limit
    /// (about 430 values), silently, so later secrets reached the logs.
    #[test]
    fn any_number_of_lasting_values_is_scrubbed() {
        let r = Redactor::default();
        let n = super::super::secret_scan::MAX_PATTERNS / 10;
        for i in 0..n {
            r.register(&format!("config-secret-{i:06}"));
        }
        let last = format!("config-secret-{:06}", n - 1);
        let first = "config-secret-000000";
        let out = r.redact(&format!("{first} {last} {}", last.to_uppercase()));
        assert_eq!(out, "[REDACTED] [REDACTED] [REDACTED]");
        assert_eq!(r.unscanned(), 0);
        assert!(r.shards().0 >= n / SHARD_VALUES, "{:?}", r.shards());
    }

    #[test]
    fn derived_values_are_bounded_and_the_newest_always_scrubbed() {
        let r = Redactor::default();
        r.register("lasting-config-secret");
        let total = EPHEMERAL_VALUES * 3;
        for i in 0..total {
            r.register_ephemeral(&format!("session-id-{i:08}"));
            // The value just captured is scrubbed at once.
            let now = format!("session-id-{i:08}");
            assert_eq!(r.redact(&now), REDACTED, "value {i}");
        }
        let (_, ephemeral) = r.shards();
        assert!(ephemeral * SHARD_VALUES <= EPHEMERAL_VALUES, "{ephemeral}");
        assert_eq!(r.evicted() as usize, total - ephemeral_values(&r));
        let newest = format!("session-id-{:08}", total - EPHEMERAL_VALUES);
        assert_eq!(r.redact(&newest), REDACTED);
        assert_eq!(r.redact("session-id-00000000"), "session-id-00000000");
        assert_eq!(r.redact("lasting-config-secret"), REDACTED, "lasting kept");
    }

    fn ephemeral_values(r: &Redactor) -> usize {
        r.inner
            .read()
            .unwrap()
            .ephemeral
            .iter()
            .map(|s| s.values.len())
            .sum()
    }

    #[test]
    fn a_value_that_cannot_be_scanned_is_counted() {
        let r = Redactor::default();
        r.register(&"k".repeat(super::super::secret_scan::MAX_SCAN_SECRET_LEN + 1));
        assert_eq!(r.unscanned(), 1);
        r.register("still-works-secret");
        assert_eq!(r.redact("still-works-secret"), REDACTED);
    }
}
