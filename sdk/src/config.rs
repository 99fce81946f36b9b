//! The connection's settings (non-secret configuration).
//!
//! Settings are declared in the manifest ([`crate::SettingSpec`]); the host
//! answers with the operator's value or the declared default.

use crate::ConnectorError;
use crate::bindings::provisio::connector::config as wit;

/// The value of a setting, or the manifest default, or `None`.
pub fn get(name: &str) -> Option<String> {
    wit::get(name)
}

/// The value of a setting, or `default` when it is unset or blank.
pub fn get_or(name: &str, default: &str) -> String {
    non_blank(get(name)).unwrap_or_else(|| default.to_string())
}

/// The value of a required setting. An unset or blank setting gives
/// `InvalidInput` naming the setting.
pub fn require(name: &str) -> Result<String, ConnectorError> {
    require_value(name, get(name))
}

/// The name of the connection this call runs for.
pub fn connection_name() -> String {
    wit::connection_name()
}

/// The pure part of [`require`]: check a looked-up value.
pub fn require_value(name: &str, value: Option<String>) -> Result<String, ConnectorError> {
    non_blank(value).ok_or_else(|| {
        ConnectorError::InvalidInput(format!(
            "the setting `{name}` is required but not set in the connection's configuration"
        ))
    })
}

fn non_blank(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_names_the_setting() {
        let err = require_value("base_url", None);
        assert!(
            matches!(err, Err(ConnectorError::InvalidInput(ref m)) if m.contains("`base_url`")),
            "{err:?}"
        );
        assert!(require_value("x", Some("  ".into())).is_err());
        assert_eq!(
            require_value("x", Some("v".into())).ok().as_deref(),
            Some("v")
        );
    }
}
