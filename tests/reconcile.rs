//! End to end: drift reconciliation (`provisio reconcile`) with the real SCIM
//! connector (plugins/scim) against the independent scim2-server. The
//! target is changed behind Provisio's back straight over HTTP; the tests
//! check what `--dry-run` reports, what `reconcile` repairs (read back from
//! the server), the provisioning log's `drift` steps, and the orphan
//! policies. A re-matched group (after `restart --forget-links`) keeps one
//! copy of each member.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/scim_server.rs"]
mod scim_server;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

const TOKEN_ENV: &str = "PROVISIO_TEST_RECONCILE_TOKEN";

struct Env {
    server: scim_server::ScimServer,
    dir: tempfile::TempDir,
    config: PathBuf,
    transcript: String,
}

fn setup(extra: &str) -> Env {
    let token = format!("reconcile-{}-tok-9f2a", std::process::id());
    let server = scim_server::start(&token);
    let dir = tempfile::tempdir().unwrap();
    let config = common::scim_connection_config(dir.path(), &server.origin(), TOKEN_ENV, extra);
    let users: Vec<Value> = ["ada", "grace", "linus", "ken", "barbara"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({"id": format!("u{}", i + 1), "userPrincipalName": format!("{n}@example.com"),
                   "displayName": n, "givenName": n, "surname": "X", "jobTitle": "Engineer",
                   "accountEnabled": true})
        })
        .collect();
    let directory = json!({
        "users": users,
        "groups": [{"id": "g1", "displayName": "Eng", "members": ["u1", "u2", "u3"]}],
        "assignments": [
            {"principal": "g1", "connection": "t", "role": "User"},
            {"principal": "u4", "connection": "t", "role": "User"},
            {"principal": "u5", "connection": "t", "role": "User"},
        ],
    });
    std::fs::write(
        dir.path().join("directory.json"),
        serde_json::to_string_pretty(&directory).unwrap(),
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
    fn run(&mut self, args: &[&str]) -> (bool, String, String) {
        let token = self.server.token.clone();
        common::provisio(
            &self.config,
            &[(TOKEN_ENV, &token), ("PROVISIO_LOG", "debug")],
            args,
            &mut self.transcript,
        )
    }

    fn ok(&mut self, args: &[&str]) -> Value {
        let ran = self.run(args);
        common::expect_ok(args, ran)
    }

    /// A request straight to scim2-server, bypassing Provisio.
    fn direct(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-w", "\n%{http_code}", "-X", method, "-H"])
            .arg(format!("Authorization: Bearer {}", self.server.token))
            .args(["-H", "Content-Type: application/scim+json"]);
        if let Some(b) = body {
            cmd.arg("--data").arg(b.to_string());
        }
        let out = cmd
            .arg(format!("{}{path}", self.server.base_url()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (
            code.parse().unwrap(),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    fn patch(&self, path: &str, ops: Value) {
        let (code, body) = self.direct(
            "PATCH",
            path,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": ops,
            })),
        );
        assert!(code < 300, "PATCH {path}: {code} {body}");
    }

    fn resources(&self, what: &str) -> Vec<Value> {
        let (code, body) = self.direct("GET", &format!("/{what}?count=1000"), None);
        assert_eq!(code, 200, "{body}");
        body["Resources"].as_array().cloned().unwrap_or_default()
    }

    fn user_by_name(&self, name: &str) -> Option<Value> {
        self.resources("Users")
            .into_iter()
            .find(|u| u["userName"] == format!("{name}@example.com") || u["userName"] == name)
    }

    fn user_id(&self, name: &str) -> String {
        self.user_by_name(name).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The only group's display name and its members' userNames (with
    /// repeats counted: a duplicate member shows as a second entry).
    fn group(&self) -> (String, Vec<String>) {
        let groups = self.resources("Groups");
        assert_eq!(groups.len(), 1, "one group: {groups:?}");
        let g = &groups[0];
        let users = self.resources("Users");
        let mut names: Vec<String> = g["members"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                users
                    .iter()
                    .find(|u| u["id"] == m["value"])
                    .map(|u| u["userName"].as_str().unwrap().to_string())
                    .unwrap_or_else(|| format!("?{}", m["value"]))
            })
            .collect();
        names.sort();
        (g["displayName"].as_str().unwrap().to_string(), names)
    }

    fn group_id(&self) -> String {
        self.resources("Groups")[0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn set_members(&self, names: &[&str]) {
        let members: Vec<Value> = names
            .iter()
            .map(|n| json!({"value": self.user_id(n)}))
            .collect();
        self.patch(
            &format!("/Groups/{}", self.group_id()),
            json!([{"op": "replace", "path": "members", "value": members}]),
        );
    }

    fn logs(&mut self) -> Vec<Value> {
        let out = self.ok(&[
            "logs",
            "--connection",
            "t",
            "--format",
            "json",
            "--limit",
            "1000",
        ]);
        out.as_array().cloned().unwrap_or_default()
    }
}

fn emails(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|n| format!("{n}@example.com")).collect();
    v.sort();
    v
}

fn findings(summary: &Value) -> BTreeSet<(String, String)> {
    summary["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["finding"].as_str().unwrap().to_string(),
                d["source_id"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

/// Drift made in the target: a group renamed, a title changed, a user
/// disabled, a user deleted, a member removed, a member added, a user that
/// is nobody's (orphan) created and put in the group.
fn drift(env: &Env) {
    let gid = env.group_id();
    env.patch(
        &format!("/Groups/{gid}"),
        json!([{"op": "replace", "path": "displayName", "value": "Hacked"}]),
    );
    env.patch(
        &format!("/Users/{}", env.user_id("ada")),
        json!([{"op": "replace", "path": "title", "value": "CEO"}]),
    );
    env.patch(
        &format!("/Users/{}", env.user_id("grace")),
        json!([{"op": "replace", "path": "active", "value": false}]),
    );
    let (code, _) = env.direct(
        "DELETE",
        &format!("/Users/{}", env.user_id("barbara")),
        None,
    );
    assert_eq!(code, 204);
    let (code, body) = env.direct(
        "POST",
        "/Users",
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "mallory@example.com", "active": true}),
        ),
    );
    assert_eq!(code, 201, "{body}");
    // linus removed, ken (a user of the connection) and mallory added.
    env.set_members(&["ada", "grace", "ken", "mallory"]);
}

#[test]
fn reconcile_reports_then_repairs_drift_and_reports_orphans() {
    let mut env = setup("");
    let s = env.ok(&["sync", "t", "--json"]);
    assert_eq!(s["failures"], 0, "{s}\n{}", env.transcript);
    assert_eq!(
        env.group(),
        ("Eng".into(), emails(&["ada", "grace", "linus"]))
    );

    // In step: nothing found (the orphan-free target after a sync).
    let clean = env.ok(&["reconcile", "t", "--dry-run", "--json"]);
    assert_eq!(clean["details"], json!([]), "{clean}");

    drift(&env);
    let ada_before = env.user_by_name("ada").unwrap();

    // Dry run: every finding listed, nothing changed.
    let preview = env.ok(&["reconcile", "t", "--dry-run", "--json"]);
    let expected: BTreeSet<(String, String)> = [
        ("changed", "u1"),
        ("changed", "g1"),
        ("lifecycle", "u2"),
        ("deleted", "u5"),
        ("members", "g1"),
        ("orphan", "-"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(findings(&preview), expected, "{preview}");
    let members = preview["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["finding"] == "members")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        members.contains("removed in the target (u3)")
            && members.contains("added in the target (u4)")
            && members.contains("no user of this connection"),
        "{members}"
    );
    let text = env.ok(&["reconcile", "t", "--dry-run"]);
    let text = text.as_str().unwrap();
    assert!(
        text.contains("dry run") && text.contains("would:") && text.contains("mallory"),
        "{text}"
    );
    assert_eq!(env.user_by_name("ada").unwrap(), ada_before);
    assert!(env.user_by_name("barbara").is_none());
    assert_eq!(env.group().0, "Hacked");

    // Reconcile: everything repaired; the orphan reported and left alone.
    let r = env.ok(&["reconcile", "t", "--json"]);
    assert_eq!(r["cycle"]["failures"], 0, "{r}\n{}", env.transcript);
    assert_eq!(r["cycle"]["cycle_type"], "reconcile", "{r}");
    assert_eq!(r["orphans_reported"], 1, "{r}");
    assert_eq!(r["orphans_deleted"], 0, "{r}");
    let ada = env.user_by_name("ada").unwrap();
    assert_eq!(ada["title"], "Engineer", "{ada}");
    assert_eq!(env.user_by_name("grace").unwrap()["active"], true);
    let barbara = env.user_by_name("barbara").expect("re-created");
    assert_eq!(barbara["active"], true);
    let (name, members) = env.group();
    assert_eq!(name, "Eng");
    assert_eq!(
        members,
        emails(&["ada", "grace", "linus", "mallory"]),
        "ken removed, linus back, mallory (not ours) reported and kept"
    );
    assert!(env.user_by_name("mallory").is_some());

    // Every repair is a log record with a drift step.
    let logs = env.logs();
    let cycle = r["cycle"]["cycle_id"].as_str().unwrap();
    let of = |sid: Option<&str>, action: &str| -> Vec<&Value> {
        logs.iter()
            .filter(|l| {
                l["cycle_id"] == cycle
                    && l["action"] == action
                    && sid.is_none_or(|s| l["source_id"] == s)
            })
            .collect()
    };
    let has_drift_step = |l: &Value, needle: &str| {
        l["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["step"] == "drift" && s["detail"].as_str().unwrap().contains(needle))
    };
    let update = of(Some("u1"), "update");
    assert!(
        update.len() == 1 && has_drift_step(update[0], "title is \"CEO\" in the target"),
        "{update:?}"
    );
    assert_eq!(update[0]["modified"][0]["old"], "CEO", "{update:?}");
    let enable = of(Some("u2"), "enable");
    assert!(
        enable.len() == 1 && has_drift_step(enable[0], "disabled in the target"),
        "{logs:?}"
    );
    let create = of(Some("u5"), "create");
    assert!(
        create.len() == 1 && has_drift_step(create[0], "deleted in the target"),
        "{logs:?}"
    );
    assert!(
        of(Some("g1"), "update")
            .iter()
            .any(|l| has_drift_step(l, "member(s) removed in the target")),
        "{logs:?}"
    );
    let orphan = of(None, "drift");
    assert!(
        orphan.len() >= 2
            && orphan
                .iter()
                .any(|l| has_drift_step(l, "'mallory@example.com'"))
            && orphan
                .iter()
                .any(|l| l["source_id"] == "g1" && has_drift_step(l, "left in the group")),
        "{orphan:?}"
    );

    // What is left is the orphan only.
    let again = env.ok(&["reconcile", "t", "--dry-run", "--json"]);
    let left: BTreeSet<String> = findings(&again).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        left,
        BTreeSet::from(["orphan".to_string(), "members".to_string()]),
        "{again}"
    );

    // orphans = "delete": the orphan goes, and with it from the group.
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        format!("{config}\n[connections.t.reconcile]\norphans = \"delete\"\n"),
    )
    .unwrap();
    let r = env.ok(&["reconcile", "t", "--json"]);
    assert_eq!(r["orphans_deleted"], 1, "{r}\n{}", env.transcript);
    assert!(env.user_by_name("mallory").is_none());
    assert_eq!(env.group().1, emails(&["ada", "grace", "linus"]));
    let clean = env.ok(&["reconcile", "t", "--dry-run", "--json"]);
    assert_eq!(clean["details"], json!([]), "{clean}");
    assert!(
        !env.transcript.contains(&env.server.token),
        "the token leaked into the output"
    );
    drop(env.dir);
}

#[test]
fn deleted_in_target_report_only_reports() {
    let mut env = setup("[connections.t.reconcile]\ndeleted_in_target = \"report\"\n");
    env.ok(&["sync", "t", "--json"]);
    let (code, _) = env.direct(
        "DELETE",
        &format!("/Users/{}", env.user_id("barbara")),
        None,
    );
    assert_eq!(code, 204);
    let r = env.ok(&["reconcile", "t", "--json"]);
    assert_eq!(
        findings(&r),
        BTreeSet::from([("deleted".into(), "u5".into())])
    );
    assert!(env.user_by_name("barbara").is_none(), "not re-created");
    let logs = env.logs();
    assert!(
        logs.iter()
            .any(|l| l["action"] == "drift" && l["source_id"] == "u5" && l["status"] == "warning"),
        "{logs:?}"
    );
}

#[test]
fn orphan_deletes_above_the_threshold_are_refused_as_a_whole() {
    let mut env =
        setup("deletion_threshold = 1\n[connections.t.reconcile]\norphans = \"delete\"\n");
    env.ok(&["sync", "t", "--json"]);
    for n in ["eve", "trent"] {
        let (code, body) = env.direct(
            "POST",
            "/Users",
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": n})),
        );
        assert_eq!(code, 201, "{body}");
    }
    let r = env.ok(&["reconcile", "t", "--json"]);
    assert_eq!(r["orphans_deleted"], 0, "{r}");
    assert_eq!(r["orphans_reported"], 2, "{r}");
    assert!(
        r["held_reason"]
            .as_str()
            .unwrap()
            .contains("deletion_threshold of 1"),
        "{r}"
    );
    assert!(env.user_by_name("eve").is_some() && env.user_by_name("trent").is_some());
}

#[test]
fn a_group_matched_again_after_forget_links_keeps_one_copy_of_each_member() {
    let mut env = setup("");
    env.ok(&["sync", "t", "--json"]);
    let before = env.group();
    env.ok(&["restart", "t", "--forget-links"]);
    let s = env.ok(&["sync", "t", "--json"]);
    assert_eq!(s["failures"], 0, "{s}\n{}", env.transcript);
    assert_eq!(env.resources("Groups").len(), 1, "no second group");
    assert_eq!(env.group(), before, "no duplicate or lost member");
    // The target's members were read, not re-added blindly.
    let logs = env.logs();
    assert!(
        logs.iter().any(|l| l["source_id"] == "g1"
            && l["action"] == "match"
            && l["steps"].as_array().unwrap().iter().any(|st| st["detail"]
                .as_str()
                .unwrap()
                .contains("the matched group has 3 member(s) in the target"))),
        "{logs:?}"
    );
}

#[test]
fn the_service_reconciles_when_the_interval_is_due() {
    let mut env = setup("[connections.t.reconcile]\ninterval_seconds = 3600\n");
    // The first `run` reconciles (none ran yet): the target is empty, the
    // cycle creates everything.
    env.ok(&["run", "--once"]);
    env.patch(
        &format!("/Users/{}", env.user_id("ada")),
        json!([{"op": "replace", "path": "title", "value": "CEO"}]),
    );
    // Within the interval an ordinary cycle runs: the drift stays.
    env.ok(&["run", "--once"]);
    assert_eq!(env.user_by_name("ada").unwrap()["title"], "CEO");
    // With the interval shortened, the service reconciles again on its own
    // and repairs it.
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        config.replace("interval_seconds = 3600", "interval_seconds = 1"),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.ok(&["run", "--once"]);
    assert_eq!(
        env.user_by_name("ada").unwrap()["title"],
        "Engineer",
        "{}",
        env.transcript
    );
    let logs = env.logs();
    assert!(
        logs.iter().any(|l| l["source_id"] == "u1"
            && l["action"] == "update"
            && l["steps"]
                .as_array()
                .unwrap()
                .iter()
                .any(|st| st["step"] == "drift")),
        "{logs:?}"
    );
}
