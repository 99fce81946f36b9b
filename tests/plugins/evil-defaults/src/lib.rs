//! `evil-defaults`: a connector whose manifest ships a default user mapping
//! of `Replace` nested eight deep, each level multiplying the text by ten
//! (the review's attack: evaluating it for two users took 45 s and 5.9 GB).
//! The host must refuse the plugin when it loads, before any sync or dry run
//! can evaluate the mapping. Every export but `describe` is unsupported.

/// Raw bindings generated from `wit/connector.wit` (world `plugin`).
#[allow(
    unsafe_code,
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used
)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "plugin",
    });

    use super::EvilDefaults;
    export!(EvilDefaults with_types_in self);
}

use bindings::exports::provisio::connector::connector::Guest;
use bindings::provisio::connector::types::{
    ApplyOn, Attribute, Capability, ConnectorError, Manifest, Mapping, ObjectKind, Page,
    TargetObject,
};

/// The target attribute of the oversized default mapping.
pub const EVIL_TARGET: &str = "nickName";

/// `Replace` nested `levels` deep around `[displayName]`, each level
/// replacing every "a" by ten of them.
fn nested_replace(levels: usize) -> String {
    let mut e = "[displayName]".to_string();
    for _ in 0..levels {
        e = format!(r#"Replace({e}, "a", , , "aaaaaaaaaa", , )"#);
    }
    e
}

/// The connector component exported to the host.
pub struct EvilDefaults;

fn unsupported<T>() -> Result<T, ConnectorError> {
    Err(ConnectorError::Unsupported(
        "evil-defaults only has a manifest".into(),
    ))
}

impl Guest for EvilDefaults {
    fn describe() -> Manifest {
        Manifest {
            name: "evil-defaults".into(),
            version: "0.1.0".into(),
            description: "Test connector with an oversized default mapping".into(),
            vendor: "provisio tests".into(),
            capabilities: vec![Capability::Users],
            settings: Vec::new(),
            secrets: Vec::new(),
            hosts: Vec::new(),
            user_mappings: vec![
                Mapping {
                    target: "userName".into(),
                    source: "[userPrincipalName]".into(),
                    matching_precedence: Some(1),
                    apply: ApplyOn::Always,
                },
                Mapping {
                    target: EVIL_TARGET.into(),
                    source: nested_replace(8),
                    matching_precedence: None,
                    apply: ApplyOn::Always,
                },
            ],
            group_mappings: Vec::new(),
        }
    }

    fn test_connection() -> Result<String, ConnectorError> {
        unsupported()
    }

    fn find(_kind: ObjectKind, _attribute: Attribute) -> Result<Vec<TargetObject>, ConnectorError> {
        unsupported()
    }

    fn get(_kind: ObjectKind, _id: String) -> Result<TargetObject, ConnectorError> {
        unsupported()
    }

    fn create(
        _kind: ObjectKind,
        _attributes: Vec<Attribute>,
    ) -> Result<TargetObject, ConnectorError> {
        unsupported()
    }

    fn update(
        _kind: ObjectKind,
        _id: String,
        _changes: Vec<Attribute>,
    ) -> Result<(), ConnectorError> {
        unsupported()
    }

    fn disable(_kind: ObjectKind, _id: String) -> Result<(), ConnectorError> {
        unsupported()
    }

    fn enable(_kind: ObjectKind, _id: String) -> Result<(), ConnectorError> {
        unsupported()
    }

    fn delete(_kind: ObjectKind, _id: String) -> Result<(), ConnectorError> {
        unsupported()
    }

    fn list(
        _kind: ObjectKind,
        _cursor: Option<String>,
        _page_size: u32,
    ) -> Result<Page, ConnectorError> {
        unsupported()
    }

    fn add_members(_group_id: String, _member_ids: Vec<String>) -> Result<(), ConnectorError> {
        unsupported()
    }

    fn remove_members(_group_id: String, _member_ids: Vec<String>) -> Result<(), ConnectorError> {
        unsupported()
    }
}
