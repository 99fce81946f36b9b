//! The email channel: one plain-text message per notification over SMTP
//! (`lettre`, tokio, rustls with the webpki roots).
//!
//! TLS: `starttls` (default, port 587; the upgrade is required, never
//! skipped), `tls` (TLS from the first byte, port 465) or `none` (plain SMTP,
//! which the config allows only toward a loopback relay). With `username` and
//! `password_secret`, the client authenticates (PLAIN or LOGIN). Every send
//! opens a new connection; a connection or command waits at most 15 s.

use super::{Event, NotifyError};
use crate::capabilities::secrets::SecretValue;
use crate::config::{EmailConfig, SmtpTls};
use crate::untrusted::{escape_capped, json_safe};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// A configured SMTP relay and its recipients.
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    relay: String,
    from: Mailbox,
    to: Vec<Mailbox>,
}

fn channel_err(message: String) -> NotifyError {
    NotifyError::Channel {
        channel: "email",
        message,
    }
}

impl Email {
    /// Set up the channel.
    pub fn new(c: &EmailConfig, password: Option<SecretValue>) -> Result<Email, NotifyError> {
        let host = c.smtp_host.as_str();
        let builder = match c.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| channel_err(format!("cannot set up STARTTLS toward {host}: {e}")))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| channel_err(format!("cannot set up TLS toward {host}: {e}")))?,
        };
        let mut builder = builder
            .port(c.smtp_port)
            .timeout(Some(Duration::from_secs(15)))
            .hello_name(ClientId::Domain("provisio".to_string()));
        if let (Some(user), Some(password)) = (&c.username, password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        let parse = |s: &str, field: &str| {
            s.parse::<Mailbox>()
                .map_err(|e| channel_err(format!("{field}: '{s}' is not an email address: {e}")))
        };
        Ok(Email {
            transport: builder.build(),
            relay: format!("{host}:{}", c.smtp_port),
            from: parse(&c.from, "from")?,
            to: c
                .to
                .iter()
                .map(|t| parse(t, "to"))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Send the notification: subject `[provisio] <summary>`, body the
    /// payload's fields one per line, then the JSON payload itself.
    pub async fn send(&self, event: &Event, payload: &serde_json::Value) -> Result<(), String> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(format!(
                "[provisio] {}",
                escape_capped(&crate::capabilities::secrets::redact(&event.summary()), 200)
            ))
            .header(ContentType::TEXT_PLAIN);
        for t in &self.to {
            b = b.to(t.clone());
        }
        let message = b
            .body(render(payload))
            .map_err(|e| format!("cannot build the message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| format!("SMTP {}: {e}", self.relay))
    }
}

/// The plain-text body: the summary, each field on its own line, the JSON.
///
/// The text may hold a connector's words (a failure reason): each value is
/// escaped ([`crate::untrusted::escape_capped`]) so that no control
/// character, newline or bidi control reaches a mail reader or the terminal
/// it runs in, and the JSON goes through [`crate::untrusted::json_safe`].
pub fn render(payload: &serde_json::Value) -> String {
    let mut out = String::new();
    if let Some(s) = payload.get("summary").and_then(|s| s.as_str()) {
        out.push_str(&escape_capped(s, MAX_FIELD));
        out.push_str("\n\n");
    }
    if let Some(m) = payload.as_object() {
        for (k, v) in m {
            if k == "summary" || k == "suppressed" {
                continue;
            }
            let v = match v {
                serde_json::Value::String(s) => escape_capped(s, MAX_FIELD),
                other => escape_capped(&other.to_string(), MAX_FIELD),
            };
            out.push_str(&format!("{}: {v}\n", escape_capped(k, 64)));
        }
        if let Some(s) = m.get("suppressed") {
            out.push_str(&format!(
                "\n{} notification(s) were held back by the rate limit since {}.\n",
                s.get("count").and_then(|c| c.as_u64()).unwrap_or(0),
                s.get("since").and_then(|c| c.as_str()).unwrap_or("?")
            ));
        }
    }
    out.push_str("\n-- \nAs JSON:\n");
    out.push_str(&json_safe(&payload.to_string()));
    out.push('\n');
    out
}

/// Cap, in bytes, of one rendered field of the body.
const MAX_FIELD: usize = 4096;
