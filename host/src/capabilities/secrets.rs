//! Secrets: operator-defined values a connector may refer to by name but never read.
//!
//! The operator defines secrets in the config (`[secrets.<name>]`, from an
//! environment variable, a file, or inline for development) and binds each to
//! the hosts it may be sent to. A connection grants its plugin some of them
//! under the plugin's own names (`secrets = { token = "scim_token" }`).
//!
//! The guest refers to a secret inside an HTTP template segment; the
//! [`http`](super::http) capability asks [`GrantedSecrets::resolve`] for the value
//! at send time, which refuses an ungranted name or a host the secret is not
//! bound to. Every known value is registered with the process-wide
//! [`Redactor`], which scrubs it from every log line and error message.

use super::http::HostPattern;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};
use url::Url;

/// A secret's value. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wrap a value and register it with the global redactor.
    pub fn new(value: String) -> Self {
        Redactor::global().register(&value);
        SecretValue(value)
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
        /// The names that are granted.
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
}

/// The secrets one connection may use, keyed by the plugin's names for them.
#[derive(Debug, Clone, Default)]
pub struct GrantedSecrets {
    connection: String,
    by_plugin_name: BTreeMap<String, Arc<Secret>>,
}

impl GrantedSecrets {
    /// Build the grant for a connection.
    pub fn new(connection: impl Into<String>, grants: BTreeMap<String, Arc<Secret>>) -> Self {
        GrantedSecrets {
            connection: connection.into(),
            by_plugin_name: grants,
        }
    }

    /// The names the guest may use.
    pub fn names(&self) -> Vec<String> {
        self.by_plugin_name.keys().cloned().collect()
    }

    /// Resolve a guest reference for a request to `url`.
    pub fn resolve(&self, name: &str, url: &Url) -> Result<&SecretValue, SecretError> {
        let secret = self
            .by_plugin_name
            .get(name)
            .ok_or_else(|| SecretError::NotGranted {
                name: name.to_string(),
                connection: self.connection.clone(),
                granted: if self.by_plugin_name.is_empty() {
                    "none".to_string()
                } else {
                    self.names().join(", ")
                },
            })?;
        if !secret.may_send_to(url) {
            return Err(SecretError::NotBound {
                name: name.to_string(),
                origin: super::http::origin_of(url),
                bound: secret
                    .bound_to
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(&secret.value)
    }
}

/// Scrubs known secret values from text. One per process, fed by [`SecretValue::new`].
#[derive(Debug, Default)]
pub struct Redactor {
    values: RwLock<Vec<String>>,
}

/// What replaces a secret value in output.
pub const REDACTED: &str = "[REDACTED]";

/// Values shorter than this are not scrubbed (they would garble every line);
/// the config loader refuses such secrets.
pub const MIN_SECRET_LEN: usize = 4;

impl Redactor {
    /// The process-wide redactor.
    pub fn global() -> &'static Redactor {
        static GLOBAL: OnceLock<Redactor> = OnceLock::new();
        GLOBAL.get_or_init(Redactor::default)
    }

    /// Register a value (and the forms it takes inside JSON strings).
    pub fn register(&self, value: &str) {
        if value.len() < MIN_SECRET_LEN {
            return;
        }
        let mut forms = vec![value.to_string()];
        let json = serde_json::to_string(value).unwrap_or_default();
        let json_inner = json.trim_matches('"').to_string();
        if json_inner != value {
            forms.push(json_inner);
        }
        if let Ok(mut values) = self.values.write() {
            for f in forms {
                if !values.contains(&f) {
                    values.push(f);
                }
            }
            // Longest first, so a secret containing another is scrubbed whole.
            values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
    }

    /// Replace every known value in `text`.
    pub fn redact(&self, text: &str) -> String {
        let Ok(values) = self.values.read() else {
            return text.to_string();
        };
        redact_with(text, values.iter().map(String::as_str))
    }
}

/// Replace each of `values` (non-empty) in `text` with [`REDACTED`].
pub fn redact_with<'a>(text: &str, values: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = text.to_string();
    for v in values {
        if !v.is_empty() && out.contains(v) {
            out = out.replace(v, REDACTED);
        }
    }
    out
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

    #[test]
    fn resolves_only_granted_and_bound() {
        let mut grants = BTreeMap::new();
        grants.insert(
            "token".to_string(),
            secret("scim_token", "s3cret-value-1", &["http://127.0.0.1:18080"]),
        );
        let g = GrantedSecrets::new("demo", grants);
        let ok = Url::parse("http://127.0.0.1:18080/v2/Users").unwrap();
        assert_eq!(g.resolve("token", &ok).unwrap().expose(), "s3cret-value-1");

        let other = Url::parse("http://127.0.0.1:9999/").unwrap();
        let e = g.resolve("token", &other).unwrap_err();
        assert!(matches!(e, SecretError::NotBound { .. }));
        assert!(e.to_string().contains("http://127.0.0.1:9999"), "{e}");

        let e = g.resolve("password", &ok).unwrap_err();
        assert!(
            e.to_string().contains("not granted to connection 'demo'"),
            "{e}"
        );
        assert!(e.to_string().contains("granted: token"), "{e}");
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
}
