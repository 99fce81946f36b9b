//! A tiny local SMTP sink for tests: speaks enough SMTP (EHLO/HELO, AUTH
//! PLAIN/LOGIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT) over plain TCP on a free
//! loopback port and keeps every message it receives.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One message as received.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    /// `MAIL FROM` address.
    pub from: String,
    /// `RCPT TO` addresses.
    pub to: Vec<String>,
    /// The message (headers and body) as sent in DATA, dot-unstuffed.
    pub data: String,
    /// The (user, password) the client authenticated with, if it did.
    pub auth: Option<(String, String)>,
}

/// The running sink.
pub struct SmtpSink {
    pub port: u16,
    pub mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default()
}

fn between(s: &str, open: char, close: char) -> String {
    s.split_once(open)
        .and_then(|(_, r)| r.split_once(close))
        .map(|(a, _)| a.to_string())
        .unwrap_or_default()
}

/// Start the sink on the current tokio runtime.
pub async fn start() -> SmtpSink {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let store = mails.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let _ = session(sock, store).await;
            });
        }
    });
    SmtpSink { port, mails }
}

async fn session(sock: tokio::net::TcpStream, store: Arc<Mutex<Vec<Mail>>>) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut lines = BufReader::new(r).lines();
    w.write_all(b"220 sink ESMTP ready\r\n").await?;
    let mut mail = Mail::default();
    let mut auth = None;
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 ok\r\n"
        } else if upper.starts_with("AUTH PLAIN") {
            let mut arg = line[10..].trim().to_string();
            if arg.is_empty() {
                w.write_all(b"334 \r\n").await?;
                arg = lines.next_line().await?.unwrap_or_default();
            }
            let parts: Vec<String> = b64(&arg).split('\0').map(str::to_string).collect();
            if parts.len() == 3 {
                auth = Some((parts[1].clone(), parts[2].clone()));
            }
            b"235 2.7.0 authenticated\r\n"
        } else if upper.starts_with("AUTH LOGIN") {
            w.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
            let user = b64(&lines.next_line().await?.unwrap_or_default());
            w.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
            let pass = b64(&lines.next_line().await?.unwrap_or_default());
            auth = Some((user, pass));
            b"235 2.7.0 authenticated\r\n"
        } else if upper.starts_with("MAIL FROM") {
            mail = Mail {
                from: between(&line, '<', '>'),
                auth: auth.clone(),
                ..Mail::default()
            };
            b"250 ok\r\n"
        } else if upper.starts_with("RCPT TO") {
            mail.to.push(between(&line, '<', '>'));
            b"250 ok\r\n"
        } else if upper.starts_with("DATA") {
            w.write_all(b"354 end with .\r\n").await?;
            let mut data = String::new();
            while let Some(l) = lines.next_line().await? {
                if l == "." {
                    break;
                }
                data.push_str(
                    l.strip_prefix('.')
                        .filter(|_| l.starts_with(".."))
                        .unwrap_or(&l),
                );
                data.push('\n');
            }
            mail.data = data;
            store.lock().unwrap().push(std::mem::take(&mut mail));
            b"250 queued\r\n"
        } else if upper.starts_with("RSET") {
            mail = Mail::default();
            b"250 ok\r\n"
        } else if upper.starts_with("QUIT") {
            w.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 not implemented\r\n"
        };
        w.write_all(reply).await?;
    }
    Ok(())
}
