//! End to end: the `provisio` binary runs the real Zendesk connector (built
//! from plugins/zendesk) in the sandbox against the in-memory Zendesk
//! emulator (`tests/emulators/zendesk.rs`): test-connection (ok, a bad token
//! answered with Zendesk's 200 anonymous user, a non-admin), every user,
//! group and membership operation, conflicts, rate limiting and 5xx, and a
//! `provisio sync` of a small directory. The emulator's state is read
//! directly, and every byte of output is searched for the token.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "emulators/zendesk.rs"]
mod zendesk;

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

const TOKEN_ENV: &str = "PROVISIO_TEST_ZENDESK_TOKEN";
const ADMIN: &str = "admin@acme.test";
const AGENT: &str = "agent.smith@acme.test";

struct Env {
    emu: zendesk::Emulator,
    _dir: tempfile::TempDir,
    config: PathBuf,
    directory: PathBuf,
    transcript: String,
}

fn setup(token: &str) -> Env {
    let emu = zendesk::start(ADMIN, token);
    let dir = tempfile::tempdir().unwrap();
    let (plugin, sha) = common::pinned("provisio_plugin_zendesk");
    let config = dir.path().join("provisio.toml");
    let directory = dir.path().join("directory.json");
    std::fs::write(
        &directory,
        r#"{"users": [], "groups": [], "assignments": []}"#,
    )
    .unwrap();
    std::fs::write(
        &config,
        format!(
            r#"
[runtime]
state_dir = "state"

[plugins.zendesk]
path = "{plugin}"
sha256 = "{sha}"

[secrets.zd_token]
env = "{TOKEN_ENV}"
hosts = ["{origin}"]

[sources.corp]
path = "directory.json"

[connections.zd]
plugin = "zendesk"
source = "corp"
settings = {{ subdomain = "acme", admin_email = "{ADMIN}", base_url = "{origin}" }}
secrets = {{ api_token = "zd_token" }}
allowed_hosts = ["{origin}"]
deletion_threshold = 50
concurrency = 4

[connections.zd_agent]
plugin = "zendesk"
settings = {{ subdomain = "acme", admin_email = "{AGENT}", base_url = "{origin}" }}
secrets = {{ api_token = "zd_token" }}
allowed_hosts = ["{origin}"]
"#,
            plugin = plugin.display(),
            origin = emu.url,
        ),
    )
    .unwrap();
    Env {
        emu,
        _dir: dir,
        config,
        directory,
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
        let token = self.emu.token.clone();
        let ran = self.run(&token, args);
        common::expect_ok(args, ran)
    }

    fn fails(&mut self, args: &[&str]) -> String {
        let token = self.emu.token.clone();
        let ran = self.run(&token, args);
        common::expect_failure(args, ran)
    }
}

fn attr<'a>(obj: &'a Value, name: &str) -> &'a Value {
    &obj["attributes"][name]
}

fn id(obj: &Value) -> String {
    obj["id"].as_str().unwrap().to_string()
}

fn token() -> String {
    format!("zd-{}-tok-Qm7xR2", std::process::id())
}

#[test]
fn test_connection_ok_bad_token_and_non_admin() {
    let token = token();
    let mut env = setup(&token);

    let out = env.ok(&["test-connection", "zd"]);
    let text = out.as_str().unwrap();
    assert!(
        text.contains("OK") && text.contains(ADMIN) && text.contains("admin"),
        "{text}"
    );

    // Zendesk answers a wrong token with 200 and the anonymous user.
    let before = env.emu.log().len();
    let (ok, _, stderr) = env.run("wrong-token-value-123", &["test-connection", "zd"]);
    assert!(!ok && stderr.contains("[unauthorized]"), "{stderr}");
    assert!(stderr.contains("Anonymous user"), "{stderr}");
    assert!(
        env.emu.log()[before..]
            .iter()
            .any(|l| l.starts_with("GET /api/v2/users/me")),
        "the check is GET /users/me"
    );
    // Elsewhere a wrong token is a 401.
    let (ok, _, stderr) = env.run("wrong-token-value-123", &["user", "list", "zd"]);
    assert!(!ok && stderr.contains("[unauthorized]"), "{stderr}");
    assert!(stderr.contains("Couldn't authenticate you"), "{stderr}");

    // An agent's token signs in, but cannot provision.
    env.emu.add_user("Agent Smith", AGENT, "agent");
    let stderr = env.fails(&["test-connection", "zd_agent"]);
    assert!(stderr.contains("[forbidden]"), "{stderr}");
    assert!(
        stderr.contains("role 'agent'") && stderr.contains("admin"),
        "{stderr}"
    );

    assert!(!env.transcript.contains(&token), "the token leaked");
}

#[test]
fn every_operation_against_the_emulator() {
    let token = token();
    let mut env = setup(&token);

    // Users: create, get, find, update, disable, enable.
    let ada = env.ok(&[
        "user", "create", "zd", "--json",
        r#"{"name":"Ada Lovelace","email":"Ada@Example.com","role":"agent","external_id":"src-ada","phone":"+1 555 0100","active":true,"user_fields.department":"R&D"}"#,
    ]);
    let ada_id = id(&ada);
    let stored = env.emu.user(&ada_id).unwrap();
    assert_eq!(stored["name"], "Ada Lovelace");
    assert_eq!(stored["email"], "ada@example.com");
    assert_eq!(stored["role"], "agent");
    assert_eq!(stored["external_id"], "src-ada");
    assert_eq!(stored["phone"], "+1 555 0100");
    assert_eq!(stored["suspended"], false);
    assert_eq!(stored["user_fields"]["department"], "R&D");

    let got = env.ok(&["user", "get", "zd", &ada_id]);
    assert_eq!(attr(&got, "email"), "ada@example.com");
    assert_eq!(attr(&got, "name"), "Ada Lovelace");
    assert_eq!(attr(&got, "active"), true);
    assert_eq!(attr(&got, "user_fields.department"), "R&D");

    let found = env.ok(&["user", "find", "zd", "email", "ADA@example.com"]);
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(id(&found[0]), ada_id);
    let found = env.ok(&["user", "find", "zd", "external_id", "src-ada"]);
    assert_eq!(id(&found[0]), ada_id);
    let found = env.ok(&["user", "find", "zd", "email", "nobody@example.com"]);
    assert_eq!(found.as_array().unwrap().len(), 0);
    let log = env.emu.log();
    assert!(
        log.iter()
            .any(|l| l.starts_with("GET /api/v2/users/search.json?query=email%3A")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("GET /api/v2/users/search.json?external_id=src-ada")),
        "{log:?}"
    );

    env.ok(&[
        "user",
        "update",
        "zd",
        &ada_id,
        "--json",
        r#"{"name":"Ada King","phone":null}"#,
    ]);
    let stored = env.emu.user(&ada_id).unwrap();
    assert_eq!(stored["name"], "Ada King");
    assert_eq!(stored["phone"], Value::Null);
    assert_eq!(stored["email"], "ada@example.com", "untouched fields stay");
    assert_eq!(stored["role"], "agent");
    assert!(
        env.emu
            .log()
            .iter()
            .any(|l| l == &format!("PUT /api/v2/users/{ada_id}.json"))
    );

    env.ok(&["user", "disable", "zd", &ada_id]);
    assert_eq!(env.emu.user(&ada_id).unwrap()["suspended"], true);
    assert_eq!(
        attr(&env.ok(&["user", "get", "zd", &ada_id]), "active"),
        false
    );
    env.ok(&["user", "enable", "zd", &ada_id]);
    assert_eq!(env.emu.user(&ada_id).unwrap()["suspended"], false);

    // A duplicate email is a conflict naming the existing user, never a second user.
    let err = env.fails(&[
        "user",
        "create",
        "zd",
        "--json",
        r#"{"name":"Other Ada","email":"ADA@example.com"}"#,
    ]);
    assert!(err.contains("[conflict]"), "{err}");
    assert!(
        err.contains("DuplicateValue") && err.contains(&ada_id),
        "{err}"
    );
    assert_eq!(env.emu.users().len(), 2, "admin and Ada only");

    // Groups and memberships (agents only).
    let grace = id(&env.ok(&[
        "user",
        "create",
        "zd",
        "--json",
        r#"{"name":"Grace Hopper","email":"grace@example.com","role":"admin"}"#,
    ]));
    let alan = id(&env.ok(&[
        "user",
        "create",
        "zd",
        "--json",
        r#"{"name":"Alan Turing","email":"alan@example.com"}"#,
    ]));
    assert_eq!(env.emu.user(&alan).unwrap()["role"], "end-user");
    let group = id(&env.ok(&[
        "group",
        "create",
        "zd",
        "--json",
        r#"{"name":"Support","description":"Tier 1"}"#,
    ]));
    let g = env.emu.group(&group).unwrap();
    assert_eq!(g["name"], "Support");
    assert_eq!(g["description"], "Tier 1");

    env.ok(&["group", "add-members", "zd", &group, &ada_id, &grace]);
    let num = |s: &str| s.parse::<u64>().unwrap();
    assert_eq!(env.emu.members(&group), vec![num(&ada_id), num(&grace)]);
    // Adding again is harmless (the connector skips existing memberships).
    env.ok(&["group", "add-members", "zd", &group, &ada_id]);
    assert_eq!(env.emu.members(&group).len(), 2);
    // An end-user is refused with a clear message, and nothing is added.
    let err = env.fails(&["group", "add-members", "zd", &group, &alan, &ada_id]);
    assert!(err.contains("[invalid-input]"), "{err}");
    assert!(err.contains("Zendesk groups hold agents only"), "{err}");
    assert!(err.contains("alan@example.com"), "{err}");
    assert_eq!(env.emu.members(&group).len(), 2);

    let got = env.ok(&["group", "get", "zd", &group]);
    assert_eq!(attr(&got, "name"), "Support");
    assert_eq!(attr(&got, "members").as_array().unwrap().len(), 2, "{got}");

    env.ok(&["group", "remove-members", "zd", &group, &grace, &alan]);
    assert_eq!(env.emu.members(&group), vec![num(&ada_id)]);
    assert!(
        env.emu
            .log()
            .iter()
            .any(|l| l.starts_with("DELETE /api/v2/group_memberships/"))
    );

    let found = env.ok(&["group", "find", "zd", "name", "support"]);
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(id(&found[0]), group);
    env.ok(&[
        "group",
        "update",
        "zd",
        &group,
        "--json",
        r#"{"name":"Support Tier 1"}"#,
    ]);
    assert_eq!(env.emu.group(&group).unwrap()["name"], "Support Tier 1");
    let err = env.fails(&[
        "group",
        "create",
        "zd",
        "--json",
        r#"{"name":"Support Tier 1"}"#,
    ]);
    assert!(err.contains("[conflict]") && err.contains(&group), "{err}");
    let groups = env.ok(&["group", "list", "zd"]);
    assert_eq!(groups.as_array().unwrap().len(), 1, "{groups}");

    // Listing pages through everything with cursors.
    let users = env.ok(&["user", "list", "zd", "--page-size", "2"]);
    assert_eq!(users.as_array().unwrap().len(), 4, "{users}");
    assert!(
        env.emu.log().iter().any(|l| l.contains("page%5Bafter%5D=")),
        "the second page is asked for with page[after]"
    );

    // Delete: users are soft-deleted (still readable, active false); groups go.
    env.ok(&["user", "delete", "zd", &alan]);
    let stored = env.emu.user(&alan).unwrap();
    assert_eq!(stored["active"], false);
    let got = env.ok(&["user", "get", "zd", &alan]);
    assert_eq!(attr(&got, "deleted"), true);
    assert_eq!(attr(&got, "active"), false);
    env.ok(&["group", "delete", "zd", &group]);
    assert_eq!(env.emu.group(&group).unwrap()["deleted"], true);
    let err = env.fails(&["group", "get", "zd", &group]);
    assert!(err.contains("[not-found]"), "{err}");
    let err = env.fails(&["user", "get", "zd", "987654"]);
    assert!(
        err.contains("[not-found]") && err.contains("RecordNotFound"),
        "{err}"
    );

    // A 429 burst (plain-text body): rate-limited, with the Retry-After.
    env.emu.burst_429(1, 7);
    let err = env.fails(&["user", "get", "zd", &ada_id]);
    assert!(err.contains("[rate-limited]"), "{err}");
    assert!(err.contains("retry after 7000 ms"), "{err}");
    assert!(err.contains("Rate limit exceeded"), "{err}");
    // A 503 is transient.
    env.emu.fail_5xx(1);
    let err = env.fails(&["user", "get", "zd", &ada_id]);
    assert!(err.contains("[transient]"), "{err}");
    env.ok(&["user", "get", "zd", &ada_id]);

    // The token never appears in any output, at trace level.
    assert!(
        env.transcript.contains("egress"),
        "audit records were captured"
    );
    assert!(
        !env.transcript.contains(&token),
        "the token leaked into output"
    );
}

#[test]
fn inspect_shows_the_manifest() {
    let plugin = common::plugin("provisio_plugin_zendesk");
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
        "zendesk ",
        "contract:  provisio:connector@0.2.0",
        "https://{subdomain}.zendesk.com",
        "{base_url}",
        "subdomain (required",
        "admin_email (required",
        "api_token (required",
        "email",
        "[matching 1]",
        "SingleAppRoleAssignment",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_provisio"))
        .args(["plugin", "inspect", "--json"])
        .arg(&plugin)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["manifest"]["name"], "zendesk");
    assert_eq!(v["contract"], "provisio:connector@0.2.0");
}

// ------------------------------------------------------------------ sync

fn upn(n: u32) -> String {
    format!("user{n:02}@example.com")
}

/// The source directory: 21 possible users, "Support" (u01–u06) and
/// "Billing" (u05–u10) assigned with the Agent role, u11–u18 assigned
/// directly as User (end-users), u19 as Admin, u20 unassigned.
struct Dir {
    users: BTreeMap<u32, Value>,
    groups: BTreeMap<&'static str, (&'static str, BTreeSet<u32>)>,
    assignments: Vec<(String, &'static str)>,
}

impl Dir {
    fn initial() -> Dir {
        let users = (1..=20).map(|n| (n, Dir::user(n))).collect();
        let mut groups = BTreeMap::new();
        groups.insert("g1", ("Support", (1..=6).collect()));
        groups.insert("g2", ("Billing", (5..=10).collect()));
        let mut assignments = vec![("g1".to_string(), "Agent"), ("g2".to_string(), "Agent")];
        for n in 11..=18 {
            assignments.push((format!("u{n:02}"), "User"));
        }
        assignments.push(("u19".into(), "Admin"));
        Dir {
            users,
            groups,
            assignments,
        }
    }

    fn user(n: u32) -> Value {
        json!({"id": format!("u{n:02}"), "userPrincipalName": upn(n), "mail": upn(n),
               "displayName": format!("User {n:02}"), "givenName": "User", "surname": format!("N{n:02}"),
               "phone": format!("+1 555 01{n:02}"), "accountEnabled": true})
    }

    fn write(&self, path: &PathBuf) {
        let users: Vec<&Value> = self.users.values().collect();
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|(id, (name, m))| {
                json!({"id": id, "displayName": name,
                       "members": m.iter().map(|n| format!("u{n:02}")).collect::<Vec<_>>()})
            })
            .collect();
        let assignments: Vec<Value> = self
            .assignments
            .iter()
            .map(|(p, r)| json!({"principal": p, "connection": "zd", "role": r}))
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
}

/// (name, role, external_id, active, suspended) by email.
type Users = BTreeMap<String, (String, String, String, bool, bool)>;

/// The emulator's whole content, admin excluded: users and live groups with member emails.
fn contents(emu: &zendesk::Emulator) -> (Users, BTreeMap<String, BTreeSet<String>>) {
    let mut users = Users::new();
    let mut by_id = BTreeMap::new();
    for u in emu.users() {
        let email = u["email"].as_str().unwrap().to_string();
        by_id.insert(u["id"].as_u64().unwrap(), email.clone());
        if u["id"].as_u64() == Some(emu.admin_id) {
            continue;
        }
        let row = (
            u["name"].as_str().unwrap().to_string(),
            u["role"].as_str().unwrap().to_string(),
            u["external_id"].as_str().unwrap_or("").to_string(),
            u["active"].as_bool().unwrap(),
            u["suspended"].as_bool().unwrap(),
        );
        assert!(
            users.insert(email.clone(), row).is_none(),
            "duplicate {email}"
        );
    }
    let mut groups = BTreeMap::new();
    for g in emu.groups().into_iter().filter(|g| g["deleted"] != true) {
        let members = emu
            .members(&g["id"].to_string())
            .into_iter()
            .map(|m| by_id[&m].clone())
            .collect();
        let name = g["name"].as_str().unwrap().to_string();
        assert!(groups.insert(name, members).is_none(), "duplicate group");
    }
    (users, groups)
}

fn sync(env: &mut Env) -> Value {
    let (ok, stdout, stderr) = env.run(&env.emu.token.clone(), &["sync", "zd", "--json"]);
    assert!(ok, "sync failed:\n{stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    if summary["failures"] != 0 {
        let (_, logs, _) = env.run(
            &env.emu.token.clone(),
            &[
                "logs",
                "--connection",
                "zd",
                "--status",
                "failure",
                "--limit",
                "5",
            ],
        );
        panic!("failures in {summary}\n{logs}");
    }
    summary
}

#[test]
fn sync_a_small_directory() {
    let token = token();
    let mut env = setup(&token);
    let mut dir = Dir::initial();
    dir.write(&env.directory);

    let role = |n: u32| match n {
        1..=10 | 21 => "agent",
        19 => "admin",
        _ => "end-user",
    };
    let row = |n: u32, name: &str, active: bool, suspended: bool| {
        (
            upn(n),
            (
                name.to_string(),
                role(n).to_string(),
                format!("u{n:02}"),
                active,
                suspended,
            ),
        )
    };
    let emails = |ns: &[u32]| ns.iter().map(|n| upn(*n)).collect::<BTreeSet<_>>();

    // 1. Initial cycle: 19 users in scope (u20 is not assigned), two agent groups.
    let s = sync(&mut env);
    assert_eq!(s["cycle_type"], "initial", "{s}");
    let mut expected: Users = (1..=19)
        .map(|n| row(n, &format!("User {n:02}"), true, false))
        .collect();
    let mut groups = BTreeMap::new();
    groups.insert("Support".to_string(), emails(&[1, 2, 3, 4, 5, 6]));
    groups.insert("Billing".to_string(), emails(&[5, 6, 7, 8, 9, 10]));
    assert_eq!(contents(&env.emu), (expected.clone(), groups.clone()));
    let first = env
        .emu
        .users()
        .into_iter()
        .find(|u| u["email"] == upn(1))
        .unwrap();
    assert_eq!(first["phone"], "+1 555 0101");

    // 2. Nothing changed: no target call at all.
    let s = sync(&mut env);
    assert_eq!(s["target_calls"], 0, "{s}");

    // 3. A rename, a disabled account, a hard delete, a membership change
    //    and a new agent.
    dir.users.get_mut(&1).unwrap()["displayName"] = json!("Ada Renamed");
    dir.users.get_mut(&2).unwrap()["accountEnabled"] = json!(false);
    dir.users.remove(&12);
    dir.assignments.retain(|(p, _)| p != "u12");
    dir.groups.get_mut("g1").unwrap().1.remove(&6);
    dir.users.insert(21, Dir::user(21));
    dir.groups.get_mut("g2").unwrap().1.insert(21);
    dir.write(&env.directory);
    let s = sync(&mut env);
    assert!(s["target_calls"].as_u64().unwrap() < 20, "{s}");
    expected.insert(upn(1), row(1, "Ada Renamed", true, false).1);
    expected.insert(upn(2), row(2, "User 02", true, true).1); // suspended
    expected.insert(upn(12), row(12, "User 12", false, false).1); // soft-deleted
    expected.insert(upn(21), row(21, "User 21", true, false).1);
    groups.insert("Support".to_string(), emails(&[1, 3, 4, 5]));
    groups.insert("Billing".to_string(), emails(&[5, 6, 7, 8, 9, 10, 21]));
    assert_eq!(contents(&env.emu), (expected, groups));

    let s = sync(&mut env);
    assert_eq!(s["target_calls"], 0, "{s}");
    assert!(
        !env.transcript.contains(&token),
        "the token leaked into output"
    );
}
