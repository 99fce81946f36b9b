//! Behaviours of the secrets class (see the crate README).

#[allow(unused_imports)]
use crate::*;

/// Runs `behaviour` if it belongs to this class.
pub(crate) fn run(behaviour: &str) -> Option<Result<String, ConnectorError>> {
    // Filled in by the class's behaviours: `"name" => Some(name()),`.
    let _ = behaviour;
    None
}
