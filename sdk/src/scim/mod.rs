//! SCIM 2.0 helpers (RFC 7643 / RFC 7644).
//!
//! - [`AttrPath`]: the flat attribute paths the host uses
//!   (`name.givenName`, `emails[type eq "work"].value`,
//!   `urn:…:enterprise:2.0:User:department`), parsed.
//! - [`Filter`]: a filter builder with RFC 7644 string escaping
//!   (`userName eq "a\"b"`), and [`Filter::for_attribute`] for a lookup by one
//!   flat attribute.
//! - [`PatchOp`]: PATCH request bodies (`add` / `replace` / `remove`, member
//!   batches), and [`patch_succeeded`] (200 with a body or 204 without).
//! - [`ListResponse`]: list responses with `startIndex`/`count` paging.
//! - [`resource_from_attributes`], [`attributes_from_resource`],
//!   [`object_from_resource`], [`patch_from_changes`]: conversion between the
//!   host's flat attributes and SCIM JSON resources.
//! - [`endpoint::Endpoint`]: a service provider's URLs and the requests a
//!   SCIM connector sends (find, get, create, patch, list, update with the
//!   `noTarget` fallback), shared by the vendor connectors.
//! - [`SchemaType`], [`AttrPath::schema_type`], [`coerce`]: the RFC 7643
//!   type of a core or enterprise attribute, so that values (and value
//!   filters such as `roles[primary eq "True"]`) are sent with their type.

pub mod endpoint;
mod filter;
mod list;
mod patch;
mod path;
mod resource;
mod schema;

pub use endpoint::Endpoint;
pub use filter::{CompareOp, Filter, quote};
pub use list::{ListResponse, cursor_to_start_index};
pub use patch::{PatchOp, PatchOperation, PatchOperationKind, member_path, patch_succeeded};
pub use path::{AttrPath, ValueFilter};
pub use resource::{
    apply_attributes, attributes_from_resource, has_value_filter, merged_patch,
    object_from_resource, patch_from_changes, resource_from_attributes, value_to_json,
};
pub use schema::{SchemaType, coerce, sub_attribute_type};

use crate::ObjectKind;

/// The core User schema URN.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema URN.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The enterprise User extension schema URN.
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The PatchOp message schema URN.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The ListResponse message schema URN.
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The Error message schema URN.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// The media type of SCIM requests and responses.
pub const CONTENT_TYPE: &str = "application/scim+json";

/// The core schema URN of an object kind.
pub fn core_schema(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::User => USER_SCHEMA,
        ObjectKind::Group => GROUP_SCHEMA,
    }
}
