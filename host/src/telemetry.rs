//! Logging setup. Every line the host writes passes through the global
//! [`Redactor`](crate::capabilities::secrets::Redactor), so a secret value can
//! never reach the log, whatever code path tried to print it.

use crate::capabilities::secrets::redact;
use std::io::Write;
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

/// A `MakeWriter` that redacts secrets from each record before writing it.
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
}
