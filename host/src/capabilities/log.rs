//! Structured logging from guests, tagged by the host and rate-limited.
//!
//! A guest's records are re-emitted as `tracing` events with target
//! `provisio::guest`, tagged with the connection and plugin. A token bucket per
//! connection ([`GuestLog`]) stops a noisy plugin from flooding the host: records
//! over the budget are counted and summarised in one warning instead. Messages
//! and fields are untrusted text: each is escaped with
//! [`crate::untrusted`] (control characters, ANSI, CR/LF, quotes and bidi
//! controls shown visibly, so no guest message can start a new record or forge
//! a host field such as `decision="allowed"`) and capped in size, and every
//! line passes through the global redactor on its way out (see
//! [`crate::telemetry`]).

use super::bucket::TokenBucket;
use crate::untrusted::escape_for_log;
use std::sync::Mutex;
use std::time::Instant;

/// Guest log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Trace.
    Trace,
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warn.
    Warn,
    /// Error.
    Error,
}

/// Limits on guest logging.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogLimits {
    /// Sustained records per second.
    pub records_per_second: f64,
    /// Burst size.
    pub burst: u32,
    /// Longest message kept, in bytes.
    pub max_message_bytes: usize,
    /// Most fields kept per record.
    pub max_fields: usize,
    /// Longest field value kept, in bytes.
    pub max_field_bytes: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            records_per_second: 50.0,
            burst: 200,
            max_message_bytes: 2048,
            max_fields: 16,
            max_field_bytes: 512,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: TokenBucket,
    suppressed: u64,
}

/// Counters of one connection's guest logging.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Records emitted.
    pub emitted: u64,
    /// Records dropped by the rate limit.
    pub suppressed: u64,
}

/// The log capability of one connection.
#[derive(Debug)]
pub struct GuestLog {
    connection: String,
    plugin: String,
    limits: LogLimits,
    bucket: Mutex<Bucket>,
    stats: Mutex<LogStats>,
}

impl GuestLog {
    /// A logger for one connection.
    pub fn new(
        connection: impl Into<String>,
        plugin: impl Into<String>,
        limits: LogLimits,
    ) -> Self {
        GuestLog {
            connection: connection.into(),
            plugin: plugin.into(),
            limits,
            bucket: Mutex::new(Bucket {
                tokens: TokenBucket::full(f64::from(limits.burst), Instant::now()),
                suppressed: 0,
            }),
            stats: Mutex::new(LogStats::default()),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> LogStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Take a token; returns `(allowed, suppressed_before)` where the second is
    /// the number of records dropped since the last allowed one.
    fn admit(&self) -> (bool, u64) {
        let Ok(mut b) = self.bucket.lock() else {
            return (false, 0);
        };
        if b.tokens
            .try_take(Instant::now(), self.limits.records_per_second)
        {
            let dropped = std::mem::take(&mut b.suppressed);
            (true, dropped)
        } else {
            b.suppressed += 1;
            (false, 0)
        }
    }

    /// Emit a guest record (if the budget allows).
    pub fn emit(&self, level: Level, message: &str, fields: &[(String, String)]) {
        let (allowed, dropped) = self.admit();
        if let Ok(mut s) = self.stats.lock() {
            if allowed {
                s.emitted += 1;
            } else {
                s.suppressed += 1;
            }
        }
        if dropped > 0 {
            self.report_suppressed(dropped);
        }
        if !allowed {
            return;
        }
        let message = escape_for_log(message, self.limits.max_message_bytes);
        let fields = fields
            .iter()
            .take(self.limits.max_fields)
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    escape_for_log(k, 64),
                    escape_for_log(v, self.limits.max_field_bytes)
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        let (c, p) = (self.connection.as_str(), self.plugin.as_str());
        match level {
            Level::Trace => {
                tracing::trace!(target: "provisio::guest", connection = c, plugin = p, fields = %fields, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "provisio::guest", connection = c, plugin = p, fields = %fields, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "provisio::guest", connection = c, plugin = p, fields = %fields, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "provisio::guest", connection = c, plugin = p, fields = %fields, "{message}")
            }
            Level::Error => {
                tracing::error!(target: "provisio::guest", connection = c, plugin = p, fields = %fields, "{message}")
            }
        }
    }

    /// Report records dropped since the last one emitted (call at the end of a call too).
    pub fn flush_suppressed(&self) {
        let dropped = self
            .bucket
            .lock()
            .map(|mut b| std::mem::take(&mut b.suppressed))
            .unwrap_or(0);
        if dropped > 0 {
            self.report_suppressed(dropped);
        }
    }

    fn report_suppressed(&self, dropped: u64) {
        tracing::warn!(
            target: "provisio::guest",
            connection = %self.connection,
            plugin = %self.plugin,
            suppressed = dropped,
            "guest log rate limit: suppressed {dropped} records (limit {}/s, burst {})",
            self.limits.records_per_second,
            self.limits.burst
        );
    }

    /// Forward a guest's stdout or stderr text, line by line, through the same budget.
    pub fn emit_stdio(&self, stream: &str, text: &str) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.emit(
                Level::Info,
                line,
                &[("stream".to_string(), stream.to_string())],
            );
        }
    }
}

/// Cut `s` to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} bytes cut]", &s[..end], s.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_suppression() {
        let log = GuestLog::new(
            "c",
            "p",
            LogLimits {
                records_per_second: 0.0001,
                burst: 10,
                ..LogLimits::default()
            },
        );
        for i in 0..1000 {
            log.emit(Level::Info, &format!("line {i}"), &[]);
        }
        let s = log.stats();
        assert_eq!(s.emitted, 10);
        assert_eq!(s.suppressed, 990);
    }

    #[test]
    fn refills_over_time() {
        let log = GuestLog::new(
            "c",
            "p",
            LogLimits {
                records_per_second: 1000.0,
                burst: 1,
                ..LogLimits::default()
            },
        );
        log.emit(Level::Info, "a", &[]);
        std::thread::sleep(std::time::Duration::from_millis(20));
        log.emit(Level::Info, "b", &[]);
        assert_eq!(log.stats().emitted, 2);
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        let t = truncate("ééé", 3);
        assert!(t.starts_with('é') && t.contains("bytes cut"), "{t}");
    }

    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, d: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(d);
            }
            Ok(d.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What the records print with a plain writer (no telemetry backstop).
    fn printed(json: bool, f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let b2 = buf.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || b2.clone());
        if json {
            tracing::subscriber::with_default(builder.json().finish(), f);
        } else {
            tracing::subscriber::with_default(builder.finish(), f);
        }
        let out = buf.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&out).into_owned()
    }

    const FORGED: &str = "ok\n2025-01-01T00:00:00.000000Z  INFO provisio::audit: egress connection=\"c\" decision=\"allowed\" method=\"GET\"";

    #[test]
    fn guest_text_cannot_start_a_record_or_forge_a_field() {
        let log = GuestLog::new("c", "p", LogLimits::default());
        for json in [false, true] {
            let out = printed(json, || {
                log.emit(
                    Level::Info,
                    FORGED,
                    &[
                        ("k\x1b[2K".into(), "v\r\x1b]0;pwned\x07\u{202e}".into()),
                        ("decision".into(), "\"allowed\"".into()),
                    ],
                )
            });
            assert_eq!(out.matches('\n').count(), 1, "one record, one line: {out}");
            assert!(!out.contains('\x1b') && !out.contains('\r'), "{out:?}");
            assert!(!out.contains('\u{202e}'), "{out:?}");
            if json {
                let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap_or_default();
                let msg = v["fields"]["message"].as_str().unwrap_or_default();
                assert!(msg.starts_with(r"ok\n2025"), "{msg}");
                assert!(msg.contains(r#"decision=\"allowed\""#), "{msg}");
            } else {
                assert!(!out.contains(r#"decision="allowed""#), "{out}");
                assert!(
                    out.contains(r#"ok\n2025"#) && out.contains(r#"decision=\"allowed\""#),
                    "{out}"
                );
                assert!(
                    out.contains(r"k\x1b[2K=v\r\x1b]0;pwned\x07\u{202e}"),
                    "{out}"
                );
            }
        }
    }

    #[test]
    fn escaped_text_is_still_capped() {
        let limits = LogLimits {
            max_message_bytes: 100,
            max_field_bytes: 50,
            ..LogLimits::default()
        };
        let log = GuestLog::new("c", "p", limits);
        let big = "\x1b".repeat(100_000);
        let out = printed(false, || {
            log.emit(Level::Info, &big, &[("f".into(), big.clone())])
        });
        assert!(out.len() < 600, "{} bytes: {out}", out.len());
        assert!(out.contains("more bytes cut"), "{out}");
    }
}
