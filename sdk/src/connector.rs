//! The [`Connector`] trait and the [`export_connector!`](crate::export_connector) macro.
//!
//! A connector implements [`Connector`] on one type and exports it with
//! `provisio_sdk::export_connector!(MyType);`. Every function is called for one
//! unit of work in a fresh instance; keep no state in statics between calls
//! (use [`crate::kv`] for a cache that outlives a call).

use std::marker::PhantomData;

use crate::bindings::exports::provisio::connector::connector::Guest;
use crate::{Attribute, ConnectorError, Manifest, ObjectKind, Page, TargetObject};

/// What a connector does. Only [`describe`](Connector::describe) is required;
/// every other operation answers [`ConnectorError::Unsupported`] unless
/// implemented. The functions mirror the WIT `connector` interface.
pub trait Connector {
    /// Describe the connector: name, capabilities, settings, secret names,
    /// host patterns and default mappings. Must not make requests.
    fn describe() -> Manifest;

    /// Check that the settings and credentials work and return a short
    /// description of what was checked.
    fn test_connection() -> Result<String, ConnectorError> {
        Err(ConnectorError::unsupported("test-connection"))
    }

    /// Find the objects whose attribute equals the given value. Return every
    /// match (an empty list when there is none).
    fn find(kind: ObjectKind, attribute: Attribute) -> Result<Vec<TargetObject>, ConnectorError> {
        let _ = (kind, attribute);
        Err(ConnectorError::unsupported("find"))
    }

    /// Read one object by its target id.
    fn get(kind: ObjectKind, id: String) -> Result<TargetObject, ConnectorError> {
        let _ = (kind, id);
        Err(ConnectorError::unsupported("get"))
    }

    /// Create an object (groups without members) and return it with its id.
    fn create(
        kind: ObjectKind,
        attributes: Vec<Attribute>,
    ) -> Result<TargetObject, ConnectorError> {
        let _ = (kind, attributes);
        Err(ConnectorError::unsupported("create"))
    }

    /// Update only the given attributes; a `null` value clears one.
    fn update(kind: ObjectKind, id: String, changes: Vec<Attribute>) -> Result<(), ConnectorError> {
        let _ = (kind, id, changes);
        Err(ConnectorError::unsupported("update"))
    }

    /// Disable (soft-delete) an object.
    fn disable(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        let _ = (kind, id);
        Err(ConnectorError::unsupported("disable"))
    }

    /// Enable a disabled object.
    fn enable(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        let _ = (kind, id);
        Err(ConnectorError::unsupported("enable"))
    }

    /// Delete an object.
    fn delete(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        let _ = (kind, id);
        Err(ConnectorError::unsupported("delete"))
    }

    /// List objects page by page. `cursor` is `None` for the first page and
    /// otherwise the `next_cursor` of the previous page.
    fn list(
        kind: ObjectKind,
        cursor: Option<String>,
        page_size: u32,
    ) -> Result<Page, ConnectorError> {
        let _ = (kind, cursor, page_size);
        Err(ConnectorError::unsupported("list"))
    }

    /// Add members (by target id) to a group, in one batch.
    fn add_members(group_id: String, member_ids: Vec<String>) -> Result<(), ConnectorError> {
        let _ = (group_id, member_ids);
        Err(ConnectorError::unsupported("add-members"))
    }

    /// Remove members (by target id) from a group, in one batch.
    fn remove_members(group_id: String, member_ids: Vec<String>) -> Result<(), ConnectorError> {
        let _ = (group_id, member_ids);
        Err(ConnectorError::unsupported("remove-members"))
    }
}

/// Adapts a [`Connector`] to the generated `Guest` trait. Used by
/// [`export_connector!`](crate::export_connector); you never name it yourself.
pub struct Export<T>(PhantomData<T>);

impl<T: Connector> Guest for Export<T> {
    fn describe() -> Manifest {
        T::describe()
    }

    fn test_connection() -> Result<String, ConnectorError> {
        T::test_connection()
    }

    fn find(kind: ObjectKind, attribute: Attribute) -> Result<Vec<TargetObject>, ConnectorError> {
        T::find(kind, attribute)
    }

    fn get(kind: ObjectKind, id: String) -> Result<TargetObject, ConnectorError> {
        T::get(kind, id)
    }

    fn create(
        kind: ObjectKind,
        attributes: Vec<Attribute>,
    ) -> Result<TargetObject, ConnectorError> {
        T::create(kind, attributes)
    }

    fn update(kind: ObjectKind, id: String, changes: Vec<Attribute>) -> Result<(), ConnectorError> {
        T::update(kind, id, changes)
    }

    fn disable(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        T::disable(kind, id)
    }

    fn enable(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        T::enable(kind, id)
    }

    fn delete(kind: ObjectKind, id: String) -> Result<(), ConnectorError> {
        T::delete(kind, id)
    }

    fn list(
        kind: ObjectKind,
        cursor: Option<String>,
        page_size: u32,
    ) -> Result<Page, ConnectorError> {
        T::list(kind, cursor, page_size)
    }

    fn add_members(group_id: String, member_ids: Vec<String>) -> Result<(), ConnectorError> {
        T::add_members(group_id, member_ids)
    }

    fn remove_members(group_id: String, member_ids: Vec<String>) -> Result<(), ConnectorError> {
        T::remove_members(group_id, member_ids)
    }
}

/// Export a [`Connector`] implementation as the component's
/// `provisio:connector/connector@0.2.0` interface. Use it once per crate, at
/// the top level:
///
/// ```no_run
/// use provisio_sdk::prelude::*;
///
/// struct MyConnector;
///
/// impl Connector for MyConnector {
///     fn describe() -> Manifest {
///         Manifest {
///             name: "mine".into(),
///             version: "0.1.0".into(),
///             description: "An example".into(),
///             vendor: "Me".into(),
///             capabilities: vec![],
///             settings: vec![],
///             secrets: vec![],
///             hosts: vec![],
///             user_mappings: vec![],
///             group_mappings: vec![],
///             logins: vec![],
///         }
///     }
/// }
///
/// provisio_sdk::export_connector!(MyConnector);
/// ```
#[macro_export]
macro_rules! export_connector {
    ($connector:ty) => {
        #[doc(hidden)]
        type __ProvisioConnectorExport = $crate::Export<$connector>;
        $crate::bindings::__export_plugin!(
            __ProvisioConnectorExport with_types_in $crate::bindings
        );
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Capability, Manifest};

    struct Minimal;

    impl Connector for Minimal {
        fn describe() -> Manifest {
            Manifest {
                name: "minimal".into(),
                version: "0".into(),
                description: String::new(),
                vendor: String::new(),
                capabilities: vec![Capability::Users],
                settings: vec![],
                secrets: vec![],
                hosts: vec![],
                user_mappings: vec![],
                group_mappings: vec![],
                logins: vec![],
            }
        }
    }

    #[test]
    fn defaults_are_unsupported() {
        assert_eq!(<Export<Minimal> as Guest>::describe().name, "minimal");
        let err = <Export<Minimal> as Guest>::delete(ObjectKind::User, "1".into());
        assert!(matches!(err, Err(ConnectorError::Unsupported(_))));
        let err = <Export<Minimal> as Guest>::add_members("g".into(), vec![]);
        assert!(matches!(err, Err(ConnectorError::Unsupported(_))));
    }
}
