//! Issue 10, part 3: a malformed source record never deprovisions anything.
//!
//! Through the `provisio` binary and the real SCIM connector against
//! scim2-server: sync a small directory, then re-sync with (a) a group whose
//! `members` is a string, (b) a user with `accountEnabled: "yes"` and (c) a
//! user record without `id`. Nothing may be disabled, deleted or removed from a
//! group in the target; the summary and the provisioning logs name each issue
//! with its file and line, and the deprovisioning it would have caused as held.
//! Then the source is fixed (with two real changes) and the next cycle
//! converges.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/scim_server.rs"]
mod scim_server;

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

const TOKEN_ENV: &str = "PROVISIO_MALFORMED_TOKEN";
const CONN: &str = "app";

struct World {
    server: scim_server::ScimServer,
    _dir: tempfile::TempDir,
    config: PathBuf,
    directory: PathBuf,
}

impl World {
    fn new() -> World {
        let token = format!("malformed-token-{}-x9", std::process::id());
        let server = scim_server::start(&token);
        let dir = tempfile::tempdir().unwrap();
        let (plugin, sha) = common::pinned("provisio_plugin_scim");
        let config = dir.path().join("provisio.toml");
        let directory = dir.path().join("directory.json");
        std::fs::write(
            &config,
            format!(
                r#"
[runtime]
state_dir = "state"

[plugins.scim]
path = "{plugin}"
sha256 = "{sha}"

[secrets.tok]
env = "{TOKEN_ENV}"
hosts = ["{origin}"]

[sources.corp]
path = "directory.json"

[connections.{CONN}]
plugin = "scim"
source = "corp"
settings = {{ base_url = "{base}" }}
secrets = {{ token = "tok" }}
allowed_hosts = ["{origin}"]
concurrency = 2
limits = {{ requests_per_second = 1000 }}

[[connections.{CONN}.mappings.users]]
target = "nickName"
source = "jobTitel"
"#,
                plugin = plugin.display(),
                origin = server.origin(),
                base = server.base_url(),
            ),
        )
        .unwrap();
        World {
            server,
            _dir: dir,
            config,
            directory,
        }
    }

    fn provisio(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_provisio"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env(TOKEN_ENV, &self.server.token)
            .env("PROVISIO_LOG", "info")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn sync(&self) -> (Value, String) {
        let (ok, stdout, stderr) = self.provisio(&["sync", CONN, "--json"]);
        assert!(ok, "sync failed:\n{stderr}");
        let summary: Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        assert_eq!(summary["failures"], 0, "failures in {summary}\n{stderr}");
        (summary, stderr)
    }

    fn get(&self, path: &str) -> Value {
        let o = Command::new("curl")
            .args(["-sf", "-H"])
            .arg(format!("Authorization: Bearer {}", self.server.token))
            .arg(format!("{}/{path}", self.server.base_url()))
            .output()
            .unwrap();
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// userName -> active, and group name -> member userNames.
    fn target(&self) -> (BTreeMap<String, bool>, BTreeMap<String, BTreeSet<String>>) {
        let users = self.get("Users?startIndex=1&count=200");
        let mut by_id = BTreeMap::new();
        let mut out = BTreeMap::new();
        for u in users["Resources"].as_array().cloned().unwrap_or_default() {
            let name = u["userName"].as_str().unwrap().to_string();
            by_id.insert(u["id"].as_str().unwrap().to_string(), name.clone());
            out.insert(name, u["active"].as_bool().unwrap_or(true));
        }
        let groups = self.get("Groups?startIndex=1&count=200");
        let mut gout = BTreeMap::new();
        for g in groups["Resources"].as_array().cloned().unwrap_or_default() {
            let full = self.get(&format!("Groups/{}", g["id"].as_str().unwrap()));
            let members = full["members"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .map(|x| by_id[x["value"].as_str().unwrap()].clone())
                        .collect()
                })
                .unwrap_or_default();
            gout.insert(g["displayName"].as_str().unwrap().to_string(), members);
        }
        (out, gout)
    }
}

fn user(id: &str) -> Value {
    json!({"id": id, "userPrincipalName": format!("{id}@example.com"), "displayName": format!("User {id}"), "jobTitle": "Engineer", "accountEnabled": true})
}

fn good_directory() -> Value {
    let users: Vec<Value> = ["u1", "u2", "u3", "u4", "u5", "u6"]
        .into_iter()
        .map(user)
        .collect();
    json!({
        "users": users,
        "groups": [
            {"id": "g1", "displayName": "One", "members": ["u1", "u2", "u3"]},
            {"id": "g2", "displayName": "Two", "members": ["u4", "u5", "u6"]}
        ],
        "assignments": [
            {"principal": "g1", "connection": CONN},
            {"principal": "g2", "connection": CONN}
        ]
    })
}

fn names(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|i| format!("{i}@example.com")).collect()
}

#[test]
fn a_malformed_source_record_never_deprovisions_anything() {
    let world = World::new();
    std::fs::write(
        &world.directory,
        serde_json::to_string_pretty(&good_directory()).unwrap(),
    )
    .unwrap();
    let (s, stderr) = world.sync();
    assert_eq!(s["counts"]["user create success"], 6, "{s}");
    // The typo in the mapping is warned about when the cycle starts.
    assert!(
        stderr.lines().any(|l| l.contains("WARN")
            && l.contains("connection 'app'")
            && l.contains("'nickName'")
            && l.contains("[jobTitel]")
            && l.contains("did you mean [jobTitle]?")),
        "{stderr}"
    );
    let all_active: BTreeMap<String, bool> = ["u1", "u2", "u3", "u4", "u5", "u6"]
        .iter()
        .map(|i| (format!("{i}@example.com"), true))
        .collect();
    let groups: BTreeMap<String, BTreeSet<String>> = [
        ("One".to_string(), names(&["u1", "u2", "u3"])),
        ("Two".to_string(), names(&["u4", "u5", "u6"])),
    ]
    .into_iter()
    .collect();
    assert_eq!(world.target(), (all_active.clone(), groups.clone()));

    // The same directory, with three malformed records, written by hand so
    // that the lines are known.
    let broken = r#"{
  "users": [
    {"id": "u1", "userPrincipalName": "u1@example.com", "displayName": "User u1", "accountEnabled": "yes"},
    {"userPrincipalName": "u2@example.com", "displayName": "User u2", "accountEnabled": true},
    {"id": "u3", "userPrincipalName": "u3@example.com", "displayName": "User u3", "accountEnabled": true},
    {"id": "u4", "userPrincipalName": "u4@example.com", "displayName": "User u4", "accountEnabled": true},
    {"id": "u5", "userPrincipalName": "u5@example.com", "displayName": "User u5", "accountEnabled": true},
    {"id": "u6", "userPrincipalName": "u6@example.com", "displayName": "User u6", "accountEnabled": true}
  ],
  "groups": [
    {"id": "g1", "displayName": "One", "members": ["u1", "u2", "u3"]},
    {"id": "g2", "displayName": "Two", "members": "u4,u5,u6"}
  ],
  "assignments": [
    {"principal": "g1", "connection": "app"},
    {"principal": "g2", "connection": "app"}
  ]
}"#;
    std::fs::write(&world.directory, broken).unwrap();
    let (s, stderr) = world.sync();
    assert_eq!(
        world.target(),
        (all_active.clone(), groups.clone()),
        "nothing may be disabled, deleted or removed from a group: {s}\n{stderr}"
    );
    let issues: Vec<String> = s["issues"]
        .as_array()
        .unwrap_or_else(|| panic!("no issues in {s}"))
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    // The three malformed records, plus what they cause: members and an
    // assignment that refer to the skipped records.
    assert!(issues.len() >= 3, "{issues:?}");
    for (record, line, what) in [
        ("users[1]", 3, "accountEnabled"),
        ("users[2]", 4, "missing 'id'"),
        ("groups[2]", 12, "members"),
    ] {
        assert!(
            issues.iter().any(|i| i.contains("directory.json")
                && i.contains(record)
                && i.contains(&format!("line {line}"))
                && i.contains(what)),
            "{record} line {line} ({what}) not in {issues:?}"
        );
    }
    assert!(s["held"].as_u64().unwrap_or(0) > 0, "{s}");
    let held = s["held_reason"].as_str().unwrap_or_default();
    assert!(
        held.starts_with("held: the source had 3 malformed records: ")
            && held.contains("directory.json:3")
            && held.contains("directory.json:4")
            && held.contains("directory.json:12"),
        "{held}"
    );
    let (ok, logs, err) = world.provisio(&["logs", "--connection", CONN, "--format", "json"]);
    assert!(ok, "{err}");
    assert!(
        logs.contains("held: the source had 3 malformed records"),
        "{logs}"
    );
    for line in ["line 3", "line 4", "line 12"] {
        assert!(logs.contains(line), "{line} not in the logs: {logs}");
    }

    // Fixed, with two real changes: u3 leaves g1 (and so the scope: it is
    // disabled) and u6 is disabled in the source.
    let mut fixed = good_directory();
    fixed["groups"][0]["members"] = json!(["u1", "u2"]);
    fixed["users"][5]["accountEnabled"] = json!(false);
    std::fs::write(
        &world.directory,
        serde_json::to_string_pretty(&fixed).unwrap(),
    )
    .unwrap();
    let (s, _) = world.sync();
    assert_eq!(s["held"], 0, "{s}");
    assert_eq!(s["source_issues"], 0, "{s}");
    let mut users = all_active;
    users.insert("u3@example.com".into(), false);
    users.insert("u6@example.com".into(), false);
    let groups: BTreeMap<String, BTreeSet<String>> = [
        ("One".to_string(), names(&["u1", "u2"])),
        ("Two".to_string(), names(&["u4", "u5"])),
    ]
    .into_iter()
    .collect();
    assert_eq!(world.target(), (users, groups));
}
