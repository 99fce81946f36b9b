//! The connector from `sdk/README.md`, kept compiling by `cargo test` /
//! `cargo clippy --all-targets`. A real connector is a `cdylib` crate of its
//! own (see `plugins/scim`); built natively like this, the host imports are
//! stubs and `main` does nothing.

use provisio_sdk::http::{self, Auth};
use provisio_sdk::prelude::*;
use provisio_sdk::{config, scim};

/// An example connector for a SCIM-speaking vendor.
struct Acme;

impl Connector for Acme {
    fn describe() -> Manifest {
        Manifest {
            name: "acme".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Acme users".into(),
            vendor: "Acme".into(),
            capabilities: vec![Capability::Users, Capability::Disable],
            settings: vec![SettingSpec::required("subdomain", "Your Acme subdomain")],
            secrets: vec![SecretSpec::required("api_token", "Acme API token")],
            hosts: vec!["https://{subdomain}.acme.example".into()],
            user_mappings: vec![
                Mapping::new("userName", "[userPrincipalName]").matching(1),
                Mapping::new("active", "Not([IsSoftDeleted])"),
            ],
            group_mappings: vec![],
            logins: vec![],
        }
    }

    fn find(kind: ObjectKind, attribute: Attribute) -> Result<Vec<TargetObject>, ConnectorError> {
        let base = format!(
            "https://{}.acme.example/scim/v2",
            config::require("subdomain")?
        );
        let collection = match kind {
            ObjectKind::User => "Users",
            ObjectKind::Group => "Groups",
        };
        let filter = scim::Filter::for_attribute(&attribute.name, &attribute.value)?;
        let response = http::get(format!("{base}/{collection}"))
            .query("filter", filter.to_string())
            .auth(Auth::bearer("api_token"))
            .send()?
            .error_for_status()?;
        let list = scim::ListResponse::from_slice(response.body())?;
        list.resources
            .iter()
            .map(scim::object_from_resource)
            .collect()
    }

    // test_connection, get, create, update, disable, enable, delete, list,
    // add_members and remove_members default to ConnectorError::Unsupported.
}

provisio_sdk::export_connector!(Acme);

fn main() {}
