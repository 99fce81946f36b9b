//! End to end: the `provisio` binary runs the real SCIM connector (built from
//! plugins/scim) in the sandbox against the independent scim2-server, doing
//! every user, group and membership operation. The server state is checked
//! directly over HTTP, and every byte of output is searched for the token.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/scim_server.rs"]
mod scim_server;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Env {
    server: scim_server::ScimServer,
    dir: tempfile::TempDir,
    config: PathBuf,
    transcript: String,
}

const TOKEN_ENV: &str = "PROVISIO_TEST_SCIM_TOKEN";

fn setup(token: &str, wrong_token: Option<&str>) -> Env {
    let server = scim_server::start(token);
    let dir = tempfile::tempdir().unwrap();
    let (plugin, sha) = common::pinned("provisio_plugin_scim");
    let config = dir.path().join("provisio.toml");
    let _ = wrong_token;
    std::fs::write(
        &config,
        format!(
            r#"
[runtime]
state_dir = "state"

[plugins.scim]
path = "{plugin}"
sha256 = "{sha}"

[secrets.scim_token]
env = "{TOKEN_ENV}"
hosts = ["{origin}"]

[connections.target]
plugin = "scim"
settings = {{ base_url = "{base}" }}
secrets = {{ token = "scim_token" }}
allowed_hosts = ["{origin}"]
"#,
            plugin = plugin.display(),
            origin = server.origin(),
            base = server.base_url(),
        ),
    )
    .unwrap();
    Env {
        server,
        dir,
        config,
        transcript: String::new(),
    }
}

impl Env {
    /// Run the CLI; returns (success, stdout, stderr) and records everything.
    fn run(&mut self, token: &str, args: &[&str]) -> (bool, String, String) {
        common::provisio(
            &self.config,
            &[(TOKEN_ENV, token), ("PROVISIO_LOG", "trace")],
            args,
            &mut self.transcript,
        )
    }

    fn ok(&mut self, args: &[&str]) -> Value {
        let token = self.server.token.clone();
        let ran = self.run(&token, args);
        common::expect_ok(args, ran)
    }

    fn fails(&mut self, args: &[&str]) -> String {
        let token = self.server.token.clone();
        let ran = self.run(&token, args);
        common::expect_failure(args, ran)
    }

    /// Read a resource straight from the SCIM server, bypassing Provisio.
    fn direct(&self, path: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.server.base_url());
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "-H"])
            .arg(format!("Authorization: Bearer {}", self.server.token))
            .arg(&url)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (
            code.parse().unwrap(),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }
}

fn attr<'a>(obj: &'a Value, name: &str) -> &'a Value {
    &obj["attributes"][name]
}

fn id(obj: &Value) -> String {
    obj["id"].as_str().unwrap().to_string()
}

#[test]
fn every_operation_against_scim2_server() {
    let token = format!("tok-{}", std::process::id()) + "-e2e-7b1d";
    let mut env = setup(&token, None);

    let out = env.ok(&["test-connection", "target"]);
    assert!(
        out.as_str().unwrap().contains("connection 'target' OK"),
        "{out}"
    );

    // Users: create, get, find, update, disable, enable.
    let ada = env.ok(&[
        "user", "create", "target", "--json",
        r#"{"userName":"ada@example.com","displayName":"Ada Lovelace","name.givenName":"Ada","name.familyName":"Lovelace","emails[type eq \"work\"].value":"ada@example.com","externalId":"src-ada","active":true}"#,
    ]);
    let ada_id = id(&ada);
    let (status, direct) = env.direct(&format!("/Users/{ada_id}"));
    assert_eq!(status, 200);
    assert_eq!(direct["userName"], "ada@example.com");
    assert_eq!(direct["name"]["givenName"], "Ada");
    assert_eq!(direct["externalId"], "src-ada");
    assert_eq!(direct["emails"][0]["value"], "ada@example.com");

    let got = env.ok(&["user", "get", "target", &ada_id]);
    assert_eq!(attr(&got, "userName"), "ada@example.com");
    assert_eq!(attr(&got, "displayName"), "Ada Lovelace");

    let found = env.ok(&["user", "find", "target", "userName", "ada@example.com"]);
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(id(&found[0]), ada_id);
    let found = env.ok(&["user", "find", "target", "externalId", "src-ada"]);
    assert_eq!(id(&found[0]), ada_id);
    let found = env.ok(&["user", "find", "target", "userName", "nobody@example.com"]);
    assert_eq!(found.as_array().unwrap().len(), 0);

    env.ok(&[
        "user",
        "update",
        "target",
        &ada_id,
        "--json",
        r#"{"displayName":"Ada King","title":"Countess"}"#,
    ]);
    let (_, direct) = env.direct(&format!("/Users/{ada_id}"));
    assert_eq!(direct["displayName"], "Ada King");
    assert_eq!(direct["title"], "Countess");
    assert_eq!(
        direct["userName"], "ada@example.com",
        "untouched attributes stay"
    );

    env.ok(&["user", "disable", "target", &ada_id]);
    assert_eq!(env.direct(&format!("/Users/{ada_id}")).1["active"], false);
    env.ok(&["user", "enable", "target", &ada_id]);
    assert_eq!(env.direct(&format!("/Users/{ada_id}")).1["active"], true);

    // A duplicate userName is a conflict, never a second user.
    let err = env.fails(&[
        "user",
        "create",
        "target",
        "--json",
        r#"{"userName":"ADA@example.com"}"#,
    ]);
    assert!(err.contains("[conflict]"), "{err}");

    // Groups and memberships.
    let grace = id(&env.ok(&[
        "user",
        "create",
        "target",
        "--json",
        r#"{"userName":"grace@example.com","displayName":"Grace Hopper"}"#,
    ]));
    let alan = id(&env.ok(&[
        "user",
        "create",
        "target",
        "--json",
        r#"{"userName":"alan@example.com","displayName":"Alan Turing"}"#,
    ]));
    let group = id(&env.ok(&[
        "group",
        "create",
        "target",
        "--json",
        r#"{"displayName":"Engineers","externalId":"src-eng"}"#,
    ]));
    let (_, g) = env.direct(&format!("/Groups/{group}"));
    assert_eq!(g["displayName"], "Engineers");
    assert!(
        g["members"].as_array().is_none_or(|m| m.is_empty()),
        "groups are created without members"
    );

    env.ok(&[
        "group",
        "add-members",
        "target",
        &group,
        &ada_id,
        &grace,
        &alan,
    ]);
    let members = |env: &Env| -> Vec<String> {
        let (_, g) = env.direct(&format!("/Groups/{group}"));
        let mut m: Vec<String> = g["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x["value"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        m.sort();
        m
    };
    let mut all = vec![ada_id.clone(), grace.clone(), alan.clone()];
    all.sort();
    assert_eq!(members(&env), all);
    let got = env.ok(&["group", "get", "target", &group]);
    assert_eq!(attr(&got, "members").as_array().unwrap().len(), 3, "{got}");

    env.ok(&["group", "remove-members", "target", &group, &grace, &alan]);
    assert_eq!(members(&env), vec![ada_id.clone()]);

    let found = env.ok(&["group", "find", "target", "displayName", "Engineers"]);
    assert_eq!(id(&found[0]), group);
    env.ok(&[
        "group",
        "update",
        "target",
        &group,
        "--json",
        r#"{"displayName":"Engineering"}"#,
    ]);
    assert_eq!(
        env.direct(&format!("/Groups/{group}")).1["displayName"],
        "Engineering"
    );

    // Listing pages through everything.
    let users = env.ok(&["user", "list", "target", "--page-size", "2"]);
    assert_eq!(users.as_array().unwrap().len(), 3, "{users}");

    // Delete.
    env.ok(&["user", "delete", "target", &alan]);
    assert_eq!(env.direct(&format!("/Users/{alan}")).0, 404);
    let err = env.fails(&["user", "get", "target", &alan]);
    assert!(err.contains("[not-found]"), "{err}");
    env.ok(&["group", "delete", "target", &group]);
    assert_eq!(env.direct(&format!("/Groups/{group}")).0, 404);

    // A wrong token is an authorization failure, clearly reported.
    let (ok, _, stderr) = env.run("wrong-token-value-123", &["test-connection", "target"]);
    assert!(!ok && stderr.contains("[unauthorized]"), "{stderr}");

    // The token never appears in any output, at trace level.
    assert!(
        env.transcript.contains("egress"),
        "audit records were captured"
    );
    assert!(
        !env.transcript.contains(&token),
        "the token leaked into output"
    );
    let _ = env.dir.path();
}

#[test]
fn inspect_shows_the_manifest() {
    let plugin = common::plugin("provisio_plugin_scim");
    let out = Command::new(env!("CARGO_BIN_EXE_provisio"))
        .args(["plugin", "inspect"])
        .arg(&plugin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "scim ",
        "contract:  provisio:connector@0.2.0",
        "{base_url}",
        "base_url (required",
        "token (required",
        "userName",
        "[matching 1]",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_provisio"))
        .args(["plugin", "inspect", "--json"])
        .arg(&plugin)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["manifest"]["name"], "scim");
    assert_eq!(v["contract"], "provisio:connector@0.2.0");
}

#[test]
fn config_errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("provisio.toml");
    std::fs::write(&config, "[connections.x]\nplugin = \"missing\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_provisio"))
        .arg("--config")
        .arg(&config)
        .args(["test-connection", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:2:10: connections.x.plugin: no plugin named 'missing'",
        config.display()
    );
    assert!(err.contains(&expected), "{err}");
    let _ = Path::new("");
}
