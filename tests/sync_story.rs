//! The sync engine's end-to-end story, through the `provisio` binary and the
//! real SCIM connector, against scim2-server: initial sync of 1,000 users and
//! 20 groups; a no-change cycle with zero target calls; edits, new hires, a
//! role change, an unassignment, a disabled account, a hard delete and
//! membership changes; a deletion-guard breach held until allowed; a crash
//! injected between a target write and its record, then a resumed cycle with no
//! duplicate. After each step the server's whole contents, read directly over
//! HTTP, must equal the expected state exactly.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/scim_server.rs"]
mod scim_server;

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

const TOKEN_ENV: &str = "PROVISIO_STORY_TOKEN";
const CONN: &str = "app";

/// The source directory, as the test edits it.
struct Dir {
    users: BTreeMap<String, Value>,
    groups: BTreeMap<String, (String, BTreeSet<String>)>,
    assignments: Vec<(String, String)>, // (principal, role)
}

impl Dir {
    fn initial() -> Dir {
        let mut users = BTreeMap::new();
        for i in 1..=1000 {
            let id = format!("u{i:04}");
            users.insert(
                id.clone(),
                json!({
                    "id": id, "userPrincipalName": format!("user{i:04}@example.com"),
                    "displayName": format!("User {i:04}"), "givenName": "User", "surname": format!("N{i:04}"),
                    "mail": format!("user{i:04}@example.com"), "jobTitle": "Engineer",
                    "department": format!("Dept {}", i % 5), "accountEnabled": true
                }),
            );
        }
        let mut groups = BTreeMap::new();
        for g in 1..=20 {
            let members = (1..=1000)
                .filter(|i| i % 20 == g % 20)
                .map(|i| format!("u{i:04}"))
                .collect();
            groups.insert(format!("g{g:02}"), (format!("Group {g:02}"), members));
        }
        let mut assignments: Vec<(String, String)> = (1..=18)
            .map(|g| (format!("g{g:02}"), "User".to_string()))
            .collect();
        assignments.push(("g19".into(), "Default Access".into()));
        // Direct assignments of ten users of the unassigned group g20.
        for i in (20..=200).step_by(20) {
            assignments.push((format!("u{i:04}"), "User".into()));
        }
        Dir {
            users,
            groups,
            assignments,
        }
    }

    fn write(&self, path: &PathBuf) {
        let users: Vec<&Value> = self.users.values().collect();
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|(id, (name, m))| json!({"id": id, "displayName": name, "members": m}))
            .collect();
        let assignments: Vec<Value> = self
            .assignments
            .iter()
            .map(|(p, r)| json!({"principal": p, "connection": CONN, "role": r}))
            .collect();
        std::fs::write(
            path,
            serde_json::to_string_pretty(
                &json!({"users": users, "groups": groups, "assignments": assignments}),
            )
            .unwrap(),
        )
        .unwrap();
    }

    /// Expected target users: userName -> active, for every user ever provisioned and not hard-deleted.
    fn in_scope_users(&self) -> BTreeSet<String> {
        let assigned_groups: BTreeSet<&String> = self
            .assignments
            .iter()
            .filter(|(_, r)| r != "Default Access")
            .map(|(p, _)| p)
            .collect();
        self.users
            .keys()
            .filter(|u| {
                assigned_groups.contains(u)
                    || self
                        .groups
                        .iter()
                        .any(|(g, (_, m))| assigned_groups.contains(g) && m.contains(*u))
            })
            .cloned()
            .collect()
    }
}

struct Story {
    server: scim_server::ScimServer,
    _dir: tempfile::TempDir,
    config: PathBuf,
    directory: PathBuf,
}

impl Story {
    fn new(threshold: usize) -> Story {
        let token = format!("story-token-{}-x9", std::process::id());
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
deletion_threshold = {threshold}
concurrency = 4
limits = {{ requests_per_second = 1000 }}
"#,
                plugin = plugin.display(),
                origin = server.origin(),
                base = server.base_url(),
            ),
        )
        .unwrap();
        Story {
            server,
            _dir: dir,
            config,
            directory,
        }
    }

    fn provisio(&self, args: &[&str], extra_env: &[(&str, &str)]) -> (bool, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_provisio"));
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env(TOKEN_ENV, &self.server.token)
            .env("PROVISIO_LOG", "info");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn sync(&self) -> Value {
        let (ok, stdout, stderr) = self.provisio(&["sync", CONN, "--json"], &[]);
        assert!(ok, "sync failed:\n{stderr}");
        let summary: Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        assert_eq!(
            summary["failures"],
            0,
            "failures in {summary}\n{}",
            self.provisio(
                &[
                    "logs",
                    "--connection",
                    CONN,
                    "--status",
                    "failure",
                    "--limit",
                    "5"
                ],
                &[]
            )
            .1
        );
        summary
    }

    fn get_all(&self, resource: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut start = 1;
        loop {
            let url = format!(
                "{}/{resource}?startIndex={start}&count=200",
                self.server.base_url()
            );
            let o = Command::new("curl")
                .args(["-sf", "-H"])
                .arg(format!("Authorization: Bearer {}", self.server.token))
                .arg(&url)
                .output()
                .unwrap();
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            let page = v["Resources"].as_array().cloned().unwrap_or_default();
            if page.is_empty() {
                break;
            }
            start += page.len();
            out.extend(page);
        }
        out
    }

    /// Assert the server holds exactly these users (userName -> active) and groups (name -> member userNames).
    fn assert_target(
        &self,
        users: &BTreeMap<String, bool>,
        groups: &BTreeMap<String, BTreeSet<String>>,
        dir: &Dir,
    ) {
        let all = self.get_all("Users");
        let mut actual: BTreeMap<String, bool> = BTreeMap::new();
        let mut by_id: BTreeMap<String, String> = BTreeMap::new();
        for u in &all {
            let name = u["userName"].as_str().unwrap().to_string();
            assert!(
                actual
                    .insert(name.clone(), u["active"].as_bool().unwrap_or(true))
                    .is_none(),
                "duplicate user {name}"
            );
            by_id.insert(u["id"].as_str().unwrap().to_string(), name.clone());
            // Attributes follow the mappings.
            let sid = format!("u{}", &name[4..8]);
            if let Some(src) = dir.users.get(&sid) {
                assert_eq!(u["title"], src["jobTitle"], "title of {name}");
                assert_eq!(
                    u["displayName"], src["displayName"],
                    "displayName of {name}"
                );
                assert_eq!(
                    u["externalId"].as_str(),
                    Some(sid.as_str()),
                    "externalId of {name}"
                );
            }
        }
        let expected_users: BTreeMap<String, bool> = users.clone();
        if actual != expected_users {
            let missing: Vec<_> = expected_users
                .iter()
                .filter(|(k, v)| actual.get(*k) != Some(v))
                .take(10)
                .collect();
            let extra: Vec<_> = actual
                .iter()
                .filter(|(k, v)| expected_users.get(*k) != Some(v))
                .take(10)
                .collect();
            panic!(
                "target users differ: expected-but-not {missing:?}; actual-but-not {extra:?} ({} vs {})",
                expected_users.len(),
                actual.len()
            );
        }
        let mut actual_groups = BTreeMap::new();
        for g in self.get_all("Groups") {
            let id = g["id"].as_str().unwrap();
            let full = Command::new("curl")
                .args(["-sf", "-H"])
                .arg(format!("Authorization: Bearer {}", self.server.token))
                .arg(format!("{}/Groups/{id}", self.server.base_url()))
                .output()
                .unwrap();
            let full: Value = serde_json::from_slice(&full.stdout).unwrap();
            let members: BTreeSet<String> = full["members"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .map(|x| {
                            by_id
                                .get(x["value"].as_str().unwrap())
                                .cloned()
                                .unwrap_or_default()
                        })
                        .collect()
                })
                .unwrap_or_default();
            assert!(
                actual_groups
                    .insert(g["displayName"].as_str().unwrap().to_string(), members)
                    .is_none(),
                "duplicate group"
            );
        }
        assert_eq!(&actual_groups, groups, "target groups differ");
    }
}

fn upn(id: &str) -> String {
    format!("user{}@example.com", &id[1..])
}

/// Expected target state from the directory, given users disabled in the target.
fn expected(
    dir: &Dir,
    provisioned: &BTreeSet<String>,
    disabled_in_source: &BTreeSet<String>,
) -> (BTreeMap<String, bool>, BTreeMap<String, BTreeSet<String>>) {
    let in_scope = dir.in_scope_users();
    let mut users = BTreeMap::new();
    for id in provisioned {
        if !dir.users.contains_key(id) {
            continue; // hard-deleted
        }
        let active = in_scope.contains(id) && !disabled_in_source.contains(id);
        users.insert(upn(id), active);
    }
    let assigned: BTreeSet<&String> = dir
        .assignments
        .iter()
        .filter(|(_, r)| r != "Default Access")
        .map(|(p, _)| p)
        .collect();
    let mut groups = BTreeMap::new();
    for (gid, (name, members)) in &dir.groups {
        if assigned.contains(gid) {
            let m = members
                .iter()
                .filter(|u| {
                    in_scope.contains(*u)
                        && !disabled_in_source.contains(*u)
                        && dir.users.contains_key(*u)
                })
                .map(|u| upn(u))
                .collect();
            groups.insert(name.clone(), m);
        }
    }
    (users, groups)
}

#[test]
fn sync_story_against_scim2_server() {
    let story = Story::new(60);
    let mut dir = Dir::initial();
    dir.write(&story.directory);

    // Dry run first: a plan, and nothing sent.
    let (ok, plan, err) = story.provisio(&["sync", CONN, "--dry-run", "--json"], &[]);
    assert!(ok, "{err}");
    let plan: Value = serde_json::from_str(&plan).unwrap();
    assert_eq!(plan["counts"]["user create"], 910, "{}", plan["counts"]);
    assert_eq!(plan["counts"]["group create"], 18);
    assert!(
        story.get_all("Users").is_empty(),
        "a dry run must not touch the target"
    );

    // 1. Initial cycle.
    let s = story.sync();
    eprintln!(
        "initial cycle: {} s, {} target calls",
        s["duration_seconds"], s["target_calls"]
    );
    assert_eq!(s["cycle_type"], "initial");
    let mut provisioned: BTreeSet<String> = dir.in_scope_users();
    assert_eq!(provisioned.len(), 910);
    let disabled = BTreeSet::new();
    let (u, g) = expected(&dir, &provisioned, &disabled);
    story.assert_target(&u, &g, &dir);

    // 2. Nothing changed: zero target calls, counted by the engine and by the egress audit.
    let (ok, out, stderr) = story.provisio(&["sync", CONN, "--json"], &[]);
    assert!(ok, "{stderr}");
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["cycle_type"], "incremental");
    assert_eq!(s["target_calls"], 0, "{s}");
    assert_eq!(
        stderr.matches("egress").count(),
        0,
        "no HTTP request may leave the sandbox:\n{stderr}"
    );

    // 3. Edits, new hires, a role change, an unassignment, a disabled account,
    //    a hard delete and membership changes.
    let mut disabled: BTreeSet<String> = BTreeSet::new();
    for id in ["u0001", "u0021", "u0041"] {
        dir.users.get_mut(id).unwrap()["jobTitle"] = json!("Staff Engineer");
    }
    for i in 1001..=1003 {
        let id = format!("u{i:04}");
        dir.users.insert(id.clone(), json!({"id": id, "userPrincipalName": upn(&id), "displayName": format!("User {i:04}"), "jobTitle": "New Hire", "accountEnabled": true}));
        dir.groups.get_mut("g01").unwrap().1.insert(id.clone());
        provisioned.insert(id);
    }
    // Role change: u0020 (only directly assigned) moves to the excluded role.
    for a in dir.assignments.iter_mut().filter(|(p, _)| p == "u0020") {
        a.1 = "Default Access".into();
    }
    // Unassignment: u0040 loses its direct assignment.
    dir.assignments.retain(|(p, _)| p != "u0040");
    // A disabled account and a hard delete.
    dir.users.get_mut("u0002").unwrap()["accountEnabled"] = json!(false);
    disabled.insert("u0002".to_string());
    dir.users.remove("u0003");
    for (_, m) in dir.groups.values_mut() {
        m.remove("u0003");
    }
    // Membership changes: u0005 also joins g02; u0006 leaves g06.
    dir.groups.get_mut("g02").unwrap().1.insert("u0005".into());
    dir.groups.get_mut("g06").unwrap().1.remove("u0006");
    dir.write(&story.directory);
    let s = story.sync();
    assert!(
        s["target_calls"].as_u64().unwrap() < 40,
        "only the changed objects are sent: {s}"
    );
    let (u, g) = expected(&dir, &provisioned, &disabled);
    assert_eq!(u.get(&upn("u0020")), Some(&false));
    assert_eq!(u.get(&upn("u0040")), Some(&false));
    assert_eq!(u.get(&upn("u0002")), Some(&false));
    assert!(!u.contains_key(&upn("u0003")));
    story.assert_target(&u, &g, &dir);

    // 4. The deletion guard: unassigning g17 would disable 50 users, above the
    //    threshold of 60? No: 50 is below; unassign g17 and g16 (100 users).
    dir.assignments.retain(|(p, _)| p != "g17" && p != "g16");
    dir.write(&story.directory);
    let s = story.sync();
    assert!(s["staged"].as_u64().unwrap() >= 100, "{s}");
    // Nothing was disabled yet.
    let (before_dir, before_groups) = {
        let mut d2 = Dir::initial();
        d2.users = dir.users.clone();
        d2.groups = dir.groups.clone();
        d2.assignments = dir.assignments.clone();
        d2.assignments.push(("g16".into(), "User".into()));
        d2.assignments.push(("g17".into(), "User".into()));
        let (u, g) = expected(&d2, &provisioned, &disabled);
        (u, g)
    };
    let all = story.get_all("Users");
    let active_now = all.iter().filter(|u| u["active"] == true).count();
    assert_eq!(
        active_now,
        before_dir.values().filter(|a| **a).count(),
        "staged disables were not carried out"
    );
    let _ = before_groups;
    let (ok, list, _) = story.provisio(&["staged", "list", CONN], &[]);
    assert!(ok && list.contains("disable"), "{list}");
    let (ok, out, _) = story.provisio(&["staged", "allow", CONN], &[]);
    assert!(ok && out.contains("allowed"), "{out}");
    story.sync();
    let (u, g) = expected(&dir, &provisioned, &disabled);
    story.assert_target(&u, &g, &dir);

    // 5. A crash between a target write and its record, then a resumed cycle.
    for i in 1004..=1008 {
        let id = format!("u{i:04}");
        dir.users.insert(id.clone(), json!({"id": id, "userPrincipalName": upn(&id), "displayName": format!("User {i:04}"), "jobTitle": "New Hire", "accountEnabled": true}));
        dir.groups.get_mut("g01").unwrap().1.insert(id.clone());
        provisioned.insert(id);
    }
    dir.write(&story.directory);
    let (ok, _, stderr) = story.provisio(&["sync", CONN], &[("PROVISIO_CRASH_AFTER_WRITES", "2")]);
    assert!(
        !ok && stderr.contains("aborting after a connector write"),
        "the crash hook must fire:\n{stderr}"
    );
    let s = story.sync();
    assert_eq!(s["failures"], 0);
    let (u, g) = expected(&dir, &provisioned, &disabled);
    story.assert_target(&u, &g, &dir); // exactly once each: assert_target refuses duplicates

    // The provisioning log has one record per object with steps.
    let (ok, logs, _) = story.provisio(
        &[
            "logs",
            "--connection",
            CONN,
            "--user",
            "u1004",
            "--format",
            "json",
        ],
        &[],
    );
    assert!(ok);
    let logs: Value = serde_json::from_str(&logs).unwrap();
    let rec = logs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "create" && r["status"] == "success")
        .expect("a create record for u1004");
    let steps: Vec<&str> = rec["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert!(
        steps.contains(&"matching") && steps.contains(&"export"),
        "{steps:?}"
    );
    let (ok, csv, _) = story.provisio(
        &[
            "logs",
            "--connection",
            CONN,
            "--format",
            "csv",
            "--limit",
            "5",
        ],
        &[],
    );
    assert!(ok && csv.starts_with("time,"), "{csv}");

    // Provision on demand: a title change for one user, sent now, step by step.
    dir.users.get_mut("u0061").unwrap()["jobTitle"] = json!("On Demand");
    dir.write(&story.directory);
    let (ok, out, err) = story.provisio(&["provision", CONN, "--user", "u0061"], &[]);
    assert!(ok, "{err}");
    for needle in [
        "user update",
        "scoping",
        "matching",
        "export",
        "modified title",
        "\"On Demand\"",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    let one = story
        .get_all("Users")
        .into_iter()
        .find(|u| u["userName"] == upn("u0061"))
        .unwrap();
    assert_eq!(one["title"], "On Demand");
    let (ok, out, _) = story.provisio(&["provision", CONN, "--user", "nobody"], &[]);
    assert!(!ok, "{out}");

    // The mapping tester evaluates the connector's default mappings.
    let (ok, out, err) = story.provisio(&["mapping", "test", CONN, "--user", "u0061"], &[]);
    assert!(ok, "{err}");
    assert!(
        out.contains("userName") && out.contains(&upn("u0061")) && out.contains("On Demand"),
        "{out}"
    );

    // The dry-run text names the plan; after all this, nothing is left to do.
    let (ok, out, _) = story.provisio(&["sync", CONN, "--dry-run"], &[]);
    assert!(ok && out.contains("dry run: nothing was sent"), "{out}");
    let s = story.sync();
    assert_eq!(s["target_calls"], 0, "{s}");
}
