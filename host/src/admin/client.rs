//! The CLI's client of a running service's admin API (`provisio status`,
//! `pause`, `resume`, `start`): the address comes from `[service] listen`,
//! the token from the secret `[service] token_secret` names.

use crate::capabilities::secrets::SecretValue;
use crate::config::Config;
use serde_json::Value;

/// Why a call to the admin API did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The configuration has no `[service] listen`.
    #[error("{0}: no [service] listen address: the admin API is off; set listen and token_secret")]
    NotConfigured(String),
    /// Nothing answers at the address (service not running).
    #[error("no service answers at {addr} ({reason}); start it with `provisio run`")]
    Unreachable {
        /// The address tried.
        addr: String,
        /// The transport error.
        reason: String,
    },
    /// The API answered with an error.
    #[error("the service answered {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The API's error message.
        message: String,
    },
    /// The token could not be read.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
}

/// A client of one service.
pub struct Client {
    base: String,
    token: SecretValue,
    http: reqwest::Client,
}

impl Client {
    /// A client for the service the configuration describes.
    pub fn from_config(config: &Config) -> Result<Client, ClientError> {
        let (Some(addr), Some(secret)) = (config.service.listen, &config.service.token_secret)
        else {
            return Err(ClientError::NotConfigured(
                config.path.display().to_string(),
            ));
        };
        // A service listening on every address is reached on loopback.
        let host = match addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            std::net::IpAddr::V4(ip) => ip.to_string(),
        };
        let token = config.secret_value(secret, "the admin API client ([service] token_secret)")?;
        Ok(Client {
            base: format!("http://{host}:{}", addr.port()),
            token,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .map_err(|e| ClientError::Unreachable {
                    addr: String::new(),
                    reason: e.to_string(),
                })?,
        })
    }

    /// The service's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let resp = req
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| ClientError::Unreachable {
                addr: self.base.clone(),
                reason: crate::capabilities::secrets::redact(&e.without_url().to_string()),
            })?;
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            Err(ClientError::Api {
                status: status.as_u16(),
                message: body
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("no error message")
                    .to_string(),
            })
        }
    }

    /// `GET path` (e.g. `/v1/connections`).
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// `POST path` with an optional JSON body.
    pub async fn post(&self, path: &str, body: Option<Value>) -> Result<Value, ClientError> {
        let mut req = self.http.post(format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        self.send(req).await
    }
}
