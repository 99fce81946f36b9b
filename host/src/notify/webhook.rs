//! The webhook channel: one JSON POST per notification.
//!
//! The body is [`super::payload`]. With a secret, the request carries
//! `X-Provisio-Signature: sha256=<hex HMAC-SHA256 of the exact body>` (auth
//! `hmac`, the default: the secret never travels) or `Authorization: Bearer
//! <secret>` (auth `bearer`). Redirects are not followed; any answer but 2xx
//! is a failure. The config allows only https, or http on loopback.

use super::NotifyError;
use crate::capabilities::secrets::SecretValue;
use crate::config::{WebhookAuth, WebhookConfig};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

/// The header carrying the HMAC signature.
pub const SIGNATURE_HEADER: &str = "X-Provisio-Signature";

/// `sha256=<hex>` for `body` keyed with `secret`: what a receiver recomputes.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A configured webhook.
pub struct Webhook {
    url: url::Url,
    auth: Option<(WebhookAuth, SecretValue)>,
    client: reqwest::Client,
}

impl Webhook {
    /// Set up the channel.
    pub fn new(c: &WebhookConfig, secret: Option<SecretValue>) -> Result<Webhook, NotifyError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| NotifyError::Channel {
                channel: "webhook",
                message: format!("cannot set up the HTTP client: {e}"),
            })?;
        Ok(Webhook {
            url: c.url.clone(),
            auth: secret.map(|s| (c.auth, s)),
            client,
        })
    }

    /// Where it posts, without query (which may hold a token): for messages.
    fn target(&self) -> String {
        format!(
            "{}{}",
            self.url.origin().ascii_serialization(),
            self.url.path()
        )
    }

    /// POST the payload.
    pub async fn send(&self, payload: &serde_json::Value) -> Result<(), String> {
        // `json_safe`: the same data, with no raw character a terminal (or a
        // receiver that logs the body) would act on. The signature is over
        // exactly these bytes.
        let body = serde_json::to_string(payload)
            .map(|j| crate::untrusted::json_safe(&j).into_bytes())
            .map_err(|e| format!("cannot encode: {e}"))?;
        let mut req = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::USER_AGENT, "provisio-notifications");
        match &self.auth {
            Some((WebhookAuth::Hmac, s)) => {
                req = req.header(SIGNATURE_HEADER, signature(s.expose(), &body));
            }
            Some((WebhookAuth::Bearer, s)) => {
                req = req.bearer_auth(s.expose());
            }
            None => {}
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST {}: {}", self.target(), e.without_url()))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("POST {} answered {status}", self.target()))
        }
    }
}
