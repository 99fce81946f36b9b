//! Logging setup. Every line the host writes passes through the global
//! [`Redactor`](crate::capabilities::secrets::Redactor), so a secret value can
//! never reach the log, whatever code path tried to print it.
//!
//! Guest strings are escaped where they enter a record (see
//! [`crate::untrusted`], used by the guest log capability and the audit
//! records). As a last line of defence the same writer then passes each
//! formatted record through [`crate::untrusted::sanitize_record`]: a record
//! is one line (text) or one JSON object per line (JSON), and no escape
//! sequence other than the host's own colours reaches a terminal, whatever a
//! code path forgot to escape.

use crate::capabilities::secrets::redact;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// Set by [`init`] when the host colours its text logs (stderr is a terminal):
/// the record sanitizer then keeps colour (SGR) sequences.
static HOST_COLOURS: AtomicBool = AtomicBool::new(false);

/// A `MakeWriter` that redacts secrets from each record, and keeps it one
/// line with no terminal control sequences, before writing it.
#[derive(Debug, Clone)]
pub struct Redacting<M>(pub M);

/// Buffers one record, redacts and writes it on drop.
pub struct RedactingWriter<W: Write> {
    buf: Vec<u8>,
    inner: W,
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let text = redact(&String::from_utf8_lossy(&self.buf));
        let text = crate::untrusted::sanitize_record(&text, HOST_COLOURS.load(Ordering::Relaxed));
        let _ = self.inner.write_all(text.as_bytes());
        let _ = self.inner.flush();
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            buf: Vec::with_capacity(256),
            inner: self.0.make_writer(),
        }
    }
}

/// Compiler internals that log gigabytes at trace level while compiling a
/// plugin; kept at `warn` unless the filter names them explicitly.
const NOISY_TARGETS: &[&str] = &[
    "cranelift",
    "wasmtime",
    "regalloc2",
    "wasmparser",
    "wit_parser",
];

/// Build the log filter from a directive string such as `debug` or
/// `provisio=trace,info`.
pub fn filter(directives: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"));
    for target in NOISY_TARGETS {
        if !directives.contains(target)
            && let Ok(d) = format!("{target}=warn").parse()
        {
            filter = filter.add_directive(d);
        }
    }
    filter
}

/// Install the global subscriber writing to stderr. The filter comes from
/// `PROVISIO_LOG` (or `RUST_LOG`), default `info`.
pub fn init(format: LogFormat) {
    let directives = std::env::var("PROVISIO_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_string());
    let filter = filter(&directives);
    let ansi = format == LogFormat::Text && std::io::IsTerminal::is_terminal(&std::io::stderr());
    HOST_COLOURS.store(ansi, Ordering::Relaxed);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(Redacting(std::io::stderr));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::secrets::SecretValue;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, d: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(d);
            Ok(d.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn records_are_redacted() {
        let _s = SecretValue::new("telemetry-test-secret-42".into());
        let buf = Buf::default();
        let b2 = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(Redacting(move || b2.clone()))
            .finish();
        tracing::subscriber::with_default(sub, || {
            tracing::info!(
                token = "telemetry-test-secret-42",
                "got telemetry-test-secret-42"
            );
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(out.contains("[REDACTED]"), "{out}");
        assert!(!out.contains("telemetry-test-secret-42"), "{out}");
    }

    fn capture(json: bool, f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let b2 = buf.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(Redacting(move || b2.clone()));
        if json {
            tracing::subscriber::with_default(builder.json().finish(), f);
        } else {
            tracing::subscriber::with_default(builder.finish(), f);
        }
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_record_is_one_line_whatever_it_holds() {
        // A code path that forgot to escape: the writer still keeps one line.
        let forged = "x\n2025-01-01T00:00:00Z  INFO provisio::audit: egress decision=\"allowed\"";
        for json in [false, true] {
            let out = capture(json, || {
                tracing::info!(field = %forged, "msg {forged} \x1b]0;title\x07 \u{202e}");
            });
            assert_eq!(out.matches('\n').count(), 1, "{out}");
            assert!(
                !out.contains('\x1b') && !out.contains('\u{202e}'),
                "{out:?}"
            );
            if json {
                let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
                assert!(
                    v["fields"]["message"]
                        .as_str()
                        .unwrap()
                        .contains('\u{202e}')
                );
            } else {
                assert!(out.contains(r"\x1b]0;title\x07"), "{out}");
            }
        }
    }
}
