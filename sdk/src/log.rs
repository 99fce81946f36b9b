//! Structured logging through the host, which tags every record with the
//! connection and rate-limits and caps records.
//!
//! ```no_run
//! provisio_sdk::log::info!("created user {}", "42");
//! provisio_sdk::log::emit(provisio_sdk::log::Level::Warn, "slow target", &[("ms", "5200")]);
//! ```
//!
//! Never log secrets: you cannot see them anyway, so this mostly means not
//! logging request bodies that carry personal data at `info` level.

use crate::bindings::provisio::connector::log as wit;
pub use crate::bindings::provisio::connector::log::Level;

/// Emit a record with structured fields.
pub fn emit(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    wit::emit(level, message, &fields);
}

/// Emit a record without fields.
pub fn write(level: Level, message: &str) {
    wit::emit(level, message, &[]);
}

#[doc(hidden)]
#[macro_export]
macro_rules! __provisio_log {
    ($level:ident, $($arg:tt)+) => {
        $crate::log::write($crate::log::Level::$level, &::std::format!($($arg)+))
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __provisio_log_trace {
    ($($arg:tt)+) => { $crate::__provisio_log!(Trace, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __provisio_log_debug {
    ($($arg:tt)+) => { $crate::__provisio_log!(Debug, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __provisio_log_info {
    ($($arg:tt)+) => { $crate::__provisio_log!(Info, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __provisio_log_warn {
    ($($arg:tt)+) => { $crate::__provisio_log!(Warn, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __provisio_log_error {
    ($($arg:tt)+) => { $crate::__provisio_log!(Error, $($arg)+) };
}

/// Log at `trace` level, `format!`-style.
pub use crate::__provisio_log_trace as trace;

/// Log at `debug` level, `format!`-style.
pub use crate::__provisio_log_debug as debug;

/// Log at `info` level, `format!`-style.
pub use crate::__provisio_log_info as info;

/// Log at `warn` level, `format!`-style.
pub use crate::__provisio_log_warn as warn;

/// Log at `error` level, `format!`-style.
pub use crate::__provisio_log_error as error;
