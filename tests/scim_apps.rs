//! End to end: the RFPIO and Zenya connectors (plugins/rfpio, plugins/zenya)
//! run by the `provisio` binary against the vendor emulator
//! (tests/emulators/scim_profiles.rs), quirks included, and against the
//! independent scim2-server; a `provisio sync` of a small directory for each,
//! asserting the emulator's final contents exactly. The emulator checks
//! RFC 7643 types (scim2-server coerces them), and the generic SCIM
//! connector (plugins/scim) syncs against its plain profile too.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/scim_server.rs"]
mod scim_server;

#[path = "emulators/scim_profiles.rs"]
mod scim_profiles;

use scim_profiles::Profile;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

const TOKEN_ENV: &str = "PROVISIO_TEST_APP_TOKEN";

struct Env {
    _dir: tempfile::TempDir,
    config: PathBuf,
    directory: PathBuf,
    token: String,
    transcript: String,
}

/// A config with one connection `target` of `plugin`, and a source `corp`.
fn env(plugin: &str, origin: &str, settings: &str, token: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (path, sha) = common::pinned(&format!("provisio_plugin_{plugin}"));
    let config = dir.path().join("provisio.toml");
    let directory = dir.path().join("directory.json");
    std::fs::write(
        &config,
        format!(
            r#"
[runtime]
state_dir = "state"

[plugins.{plugin}]
path = "{path}"
sha256 = "{sha}"

[secrets.tok]
env = "{TOKEN_ENV}"
hosts = ["{origin}"]

[sources.corp]
path = "directory.json"

[connections.target]
plugin = "{plugin}"
source = "corp"
settings = {{ {settings} }}
secrets = {{ token = "tok" }}
allowed_hosts = ["{origin}"]
deletion_threshold = 50
"#,
            path = path.display(),
        ),
    )
    .unwrap();
    Env {
        _dir: dir,
        config,
        directory,
        token: token.to_string(),
        transcript: String::new(),
    }
}

impl Env {
    fn run(&mut self, token: &str, args: &[&str]) -> (bool, String, String) {
        common::provisio(
            &self.config,
            &[(TOKEN_ENV, token), ("PROVISIO_LOG", "debug")],
            args,
            &mut self.transcript,
        )
    }

    fn ok(&mut self, args: &[&str]) -> Value {
        let token = self.token.clone();
        let ran = self.run(&token, args);
        common::expect_ok(args, ran)
    }

    fn fails(&mut self, args: &[&str]) -> String {
        let token = self.token.clone();
        let ran = self.run(&token, args);
        common::expect_failure(args, ran)
    }

    fn sync(&mut self) -> Value {
        let out = self.ok(&["sync", "target", "--json"]);
        assert_eq!(out["failures"], 0, "{out}\n{}", self.transcript);
        out
    }
}

fn id(obj: &Value) -> String {
    obj["id"].as_str().unwrap().to_string()
}

fn attr<'a>(obj: &'a Value, name: &str) -> &'a Value {
    &obj["attributes"][name]
}

fn by_id<'a>(items: &'a [Value], id: &str) -> &'a Value {
    items.iter().find(|u| u["id"] == id).unwrap()
}

fn emulator_env(profile: Profile, plugin: &str) -> (scim_profiles::Emulator, Env) {
    let token = format!("{plugin}-tok-{}-q7", std::process::id());
    let emu = scim_profiles::start(profile, &token);
    let settings = format!(r#"tenant_url = "{}/""#, emu.url);
    let env = env(plugin, &emu.origin, &settings, &token);
    (emu, env)
}

#[test]
fn rfpio_every_operation_and_quirk_against_the_emulator() {
    let (emu, mut env) = emulator_env(Profile::Rfpio, "rfpio");
    let out = env.ok(&["test-connection", "target"]);
    assert!(out.as_str().unwrap().contains("OK"), "{out}");
    let (ok, _, stderr) = env.run("wrong-token", &["test-connection", "target"]);
    assert!(!ok && stderr.contains("[unauthorized]"), "{stderr}");

    // 403: SCIM disabled for the company.
    emu.set_scim_disabled(true);
    let err = env.fails(&["test-connection", "target"]);
    assert!(err.contains("[forbidden]"), "{err}");
    assert!(err.contains("SCIM provisioning is disabled"), "{err}");
    assert!(err.contains("Auto User Provisioning"), "{err}");
    emu.set_scim_disabled(false);

    let ada = env.ok(&[
        "user", "create", "target", "--json",
        r#"{"userName":"ada@example.com","displayName":"Ada Lovelace","name.givenName":"Ada","name.familyName":"Lovelace","externalId":"src-ada","roles[primary eq \"True\"].value":"Admin","active":true}"#,
    ]);
    let ada_id = id(&ada);
    let stored = by_id(&emu.users(), &ada_id).clone();
    assert_eq!(stored["userName"], "ada@example.com");
    assert_eq!(
        stored["emails"][0]["value"], "ada@example.com",
        "the email is filled from userName"
    );
    assert_eq!(stored["name"]["givenName"], "Ada");
    assert_eq!(stored["roles"][0]["value"], "Admin");
    assert_eq!(
        stored["roles"][0]["primary"],
        json!(true),
        "`roles[primary eq \"True\"]` creates a boolean primary (RFC 7643)"
    );

    // userName must be an email and equal the email.
    let err = env.fails(&[
        "user",
        "create",
        "target",
        "--json",
        r#"{"userName":"ada"}"#,
    ]);
    assert!(err.contains("[invalid-input]"), "{err}");
    let err = env.fails(&[
        "user",
        "create",
        "target",
        "--json",
        r#"{"userName":"x@example.com","emails[type eq \"work\"].value":"y@example.com"}"#,
    ]);
    assert!(
        err.contains("[invalid-input]") && err.contains("equal"),
        "{err}"
    );
    let err = env.fails(&[
        "user",
        "create",
        "target",
        "--json",
        r#"{"userName":"ADA@example.com"}"#,
    ]);
    assert!(err.contains("[conflict]"), "{err}");

    let got = env.ok(&["user", "get", "target", &ada_id]);
    assert_eq!(attr(&got, "displayName"), "Ada Lovelace");
    let found = env.ok(&["user", "find", "target", "userName", "ada@example.com"]);
    assert_eq!(id(&found[0]), ada_id);
    let found = env.ok(&["user", "find", "target", "externalId", "src-ada"]);
    assert_eq!(id(&found[0]), ada_id);
    assert_eq!(
        env.ok(&["user", "find", "target", "userName", "nobody@example.com"]),
        json!([])
    );

    env.ok(&[
        "user",
        "update",
        "target",
        &ada_id,
        "--json",
        r#"{"displayName":"Ada King","userName":"ada@example.com"}"#,
    ]);
    assert_eq!(by_id(&emu.users(), &ada_id)["displayName"], "Ada King");

    // userName / email cannot change: refused, and nothing is sent.
    let patches = |emu: &scim_profiles::Emulator| {
        emu.requests()
            .iter()
            .filter(|r| r.starts_with("PATCH"))
            .count()
    };
    let before = patches(&emu);
    let err = env.fails(&[
        "user",
        "update",
        "target",
        &ada_id,
        "--json",
        r#"{"userName":"ada.king@example.com"}"#,
    ]);
    assert!(
        err.contains("[invalid-input]") && err.contains("immutable"),
        "{err}"
    );
    let err = env.fails(&[
        "user",
        "update",
        "target",
        &ada_id,
        "--json",
        r#"{"emails[type eq \"work\"].value":"ada.king@example.com"}"#,
    ]);
    assert!(err.contains("[invalid-input]"), "{err}");
    let err = env.fails(&[
        "user",
        "update",
        "target",
        &ada_id,
        "--json",
        r#"{"roles[primary eq \"True\"].value":"User"}"#,
    ]);
    assert!(err.contains("at creation"), "{err}");
    assert_eq!(patches(&emu), before, "a refused update must not be sent");
    assert_eq!(by_id(&emu.users(), &ada_id)["userName"], "ada@example.com");

    env.ok(&["user", "disable", "target", &ada_id]);
    assert_eq!(by_id(&emu.users(), &ada_id)["active"], false);
    env.ok(&["user", "enable", "target", &ada_id]);
    assert_eq!(by_id(&emu.users(), &ada_id)["active"], true);

    for n in ["b", "c"] {
        env.ok(&[
            "user",
            "create",
            "target",
            "--json",
            &format!(r#"{{"userName":"{n}@example.com"}}"#),
        ]);
    }
    let users = env.ok(&["user", "list", "target", "--page-size", "2"]);
    assert_eq!(users.as_array().unwrap().len(), 3, "{users}");

    // Groups are not supported.
    let err = env.fails(&[
        "group",
        "create",
        "target",
        "--json",
        r#"{"displayName":"G"}"#,
    ]);
    assert!(
        err.contains("[unsupported]") && err.contains("groups"),
        "{err}"
    );

    env.ok(&["user", "delete", "target", &ada_id]);
    let err = env.fails(&["user", "get", "target", &ada_id]);
    assert!(err.contains("[not-found]"), "{err}");
    assert_eq!(emu.users().len(), 2);
    assert!(!env.transcript.contains(&env.token), "the token leaked");
}

#[test]
fn zenya_every_operation_and_quirk_against_the_emulator() {
    let (emu, mut env) = emulator_env(Profile::Zenya, "zenya");
    let out = env.ok(&["test-connection", "target"]);
    assert!(out.as_str().unwrap().contains("OK"), "{out}");
    let (ok, _, stderr) = env.run("wrong-token", &["test-connection", "target"]);
    assert!(!ok && stderr.contains("[unauthorized]"), "{stderr}");
    assert!(
        emu.requests().iter().all(|r| r.contains(" /scim/users?")),
        "lowercase /users under the tenant URL: {:?}",
        emu.requests()
    );

    let ada = env.ok(&[
        "user", "create", "target", "--json",
        r#"{"userName":"ada","displayName":"Ada Lovelace","emails[type eq \"work\"].value":"ada@example.com","preferredLanguage":"nl-NL","phoneNumbers[type eq \"work\"].value":"+31 20 123","externalId":"src-ada","active":true}"#,
    ]);
    let ada_id = id(&ada);
    let stored = by_id(&emu.users(), &ada_id).clone();
    assert_eq!(stored["userName"], "ada");
    assert_eq!(stored["emails"][0]["value"], "ada@example.com");
    assert_eq!(stored["phoneNumbers"][0]["value"], "+31 20 123");
    assert_eq!(stored["preferredLanguage"], "nl-NL");

    let err = env.fails(&[
        "user",
        "create",
        "target",
        "--json",
        r#"{"userName":"ADA"}"#,
    ]);
    assert!(
        err.contains("[conflict]") && err.contains("login_code"),
        "{err}"
    );

    let found = env.ok(&["user", "find", "target", "userName", "ada"]);
    assert_eq!(id(&found[0]), ada_id);
    // Only the userName filter works: a find by externalId is refused, not sent.
    let before = emu.requests().len();
    let err = env.fails(&["user", "find", "target", "externalId", "src-ada"]);
    assert!(
        err.contains("[unsupported]") && err.contains("only by userName"),
        "{err}"
    );
    assert_eq!(emu.requests().len(), before, "nothing sent");
    assert!(!emu.requests().iter().any(|r| r.contains("externalId eq")));

    env.ok(&[
        "user", "update", "target", &ada_id, "--json",
        r#"{"displayName":"Ada King","phoneNumbers[type eq \"work\"].value":"+31 20 999","preferredLanguage":null}"#,
    ]);
    let stored = by_id(&emu.users(), &ada_id).clone();
    assert_eq!(stored["displayName"], "Ada King");
    assert_eq!(stored["phoneNumbers"][0]["value"], "+31 20 999");
    assert!(stored.get("preferredLanguage").is_none());
    env.ok(&["user", "disable", "target", &ada_id]);
    assert_eq!(by_id(&emu.users(), &ada_id)["active"], false);
    env.ok(&["user", "enable", "target", &ada_id]);
    assert_eq!(by_id(&emu.users(), &ada_id)["active"], true);
    let got = env.ok(&["user", "get", "target", &ada_id]);
    assert_eq!(attr(&got, "displayName"), "Ada King");

    // Groups and members.
    let grace = id(&env.ok(&[
        "user",
        "create",
        "target",
        "--json",
        r#"{"userName":"grace"}"#,
    ]));
    let alan = id(&env.ok(&[
        "user",
        "create",
        "target",
        "--json",
        r#"{"userName":"alan"}"#,
    ]));
    let group = id(&env.ok(&[
        "group",
        "create",
        "target",
        "--json",
        r#"{"displayName":"Engineers","externalId":"src-eng"}"#,
    ]));
    env.ok(&[
        "group",
        "add-members",
        "target",
        &group,
        &ada_id,
        &grace,
        &alan,
    ]);
    let members = |emu: &scim_profiles::Emulator| -> BTreeSet<String> {
        by_id(&emu.groups(), &group)["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|x| x["value"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        members(&emu),
        BTreeSet::from([ada_id.clone(), grace.clone(), alan.clone()])
    );
    env.ok(&["group", "remove-members", "target", &group, &grace, &alan]);
    assert_eq!(members(&emu), BTreeSet::from([ada_id.clone()]));
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
    assert_eq!(by_id(&emu.groups(), &group)["displayName"], "Engineering");
    let users = env.ok(&["user", "list", "target", "--page-size", "2"]);
    assert_eq!(users.as_array().unwrap().len(), 3, "{users}");

    env.ok(&["user", "delete", "target", &alan]);
    let err = env.fails(&["user", "get", "target", &alan]);
    assert!(
        err.contains("[not-found]") && err.contains("User not found"),
        "{err}"
    );
    env.ok(&["group", "delete", "target", &group]);
    assert!(emu.groups().is_empty());

    // 429 with Retry-After is reported as rate-limited.
    emu.set_rate_limited(true);
    let err = env.fails(&["user", "get", "target", &ada_id]);
    assert!(err.contains("rate-limited"), "{err}");
    emu.set_rate_limited(false);
    assert!(!env.transcript.contains(&env.token), "the token leaked");
}

/// A directory of 20 users; groups Sales (u01–u10) and Support (u08–u15).
fn directory(with_groups: bool) -> Value {
    let users: Vec<Value> = (1..=20)
        .map(|i| {
            json!({"id": format!("u{i:02}"), "userPrincipalName": format!("user{i:02}@example.com"),
                   "mail": format!("user{i:02}@example.com"), "displayName": format!("User {i:02}"),
                   "givenName": "User", "surname": format!("N{i:02}"), "jobTitle": "Engineer",
                   "department": "R&D", "preferredLanguage": "nl-NL", "accountEnabled": true})
        })
        .collect();
    let ids = |r: std::ops::RangeInclusive<u32>| -> Vec<String> {
        r.map(|i| format!("u{i:02}")).collect()
    };
    let groups = json!([
        {"id": "g1", "displayName": "Sales", "members": ids(1..=10)},
        {"id": "g2", "displayName": "Support", "members": ids(8..=15)},
    ]);
    // RFPIO has no groups: its users are assigned directly.
    let assignments: Vec<Value> = if with_groups {
        ["g1", "g2", "u16", "u17", "u18"]
            .iter()
            .map(|p| json!({"principal": p, "connection": "target", "role": "User"}))
            .collect()
    } else {
        (1..=18)
            .map(|i| json!({"principal": format!("u{i:02}"), "connection": "target", "role": "User"}))
            .collect()
    };
    json!({"users": users, "groups": groups, "assignments": assignments})
}

fn write(env: &Env, dir: &Value) {
    std::fs::write(&env.directory, serde_json::to_string_pretty(dir).unwrap()).unwrap();
}

/// Each group's display name and the userNames of its members.
fn group_member_names(emu: &scim_profiles::Emulator) -> BTreeMap<String, BTreeSet<String>> {
    let users = emu.users();
    emu.groups()
        .iter()
        .map(|g| {
            let members = g["members"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    by_id(&users, m["value"].as_str().unwrap())["userName"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            (g["displayName"].as_str().unwrap().to_string(), members)
        })
        .collect()
}

/// The userNames of the directory's users `range`.
fn user_names(range: std::ops::RangeInclusive<u32>) -> BTreeSet<String> {
    range.map(|i| format!("user{i:02}@example.com")).collect()
}

fn users_state(emu: &scim_profiles::Emulator) -> BTreeMap<String, (bool, String)> {
    emu.users()
        .iter()
        .map(|u| {
            (
                u["userName"].as_str().unwrap().to_string(),
                (
                    u["active"].as_bool().unwrap(),
                    u["displayName"].as_str().unwrap_or("").to_string(),
                ),
            )
        })
        .collect()
}

fn expected_users(range: std::ops::RangeInclusive<u32>) -> BTreeMap<String, (bool, String)> {
    range
        .map(|i| {
            (
                format!("user{i:02}@example.com"),
                (true, format!("User {i:02}")),
            )
        })
        .collect()
}

#[test]
fn rfpio_sync_of_a_small_directory() {
    let (emu, mut env) = emulator_env(Profile::Rfpio, "rfpio");
    let mut dir = directory(false);
    write(&env, &dir);
    env.sync();
    let mut expected = expected_users(1..=18);
    assert_eq!(users_state(&emu), expected);
    let u1 = emu
        .users()
        .into_iter()
        .find(|u| u["userName"] == "user01@example.com")
        .unwrap();
    assert_eq!(u1["externalId"], "u01");
    assert_eq!(u1["title"], "Engineer");
    assert_eq!(u1["emails"][0]["value"], "user01@example.com");
    assert_eq!(u1["roles"][0]["value"], "User", "role set at creation");

    // An edit, a disabled account and an unassignment.
    dir["users"][1]["displayName"] = json!("Renamed 02");
    dir["users"][2]["accountEnabled"] = json!(false);
    dir["assignments"]
        .as_array_mut()
        .unwrap()
        .retain(|a| a["principal"] != "u04");
    write(&env, &dir);
    env.sync();
    expected.insert("user02@example.com".into(), (true, "Renamed 02".into()));
    expected.insert("user03@example.com".into(), (false, "User 03".into()));
    expected.insert("user04@example.com".into(), (false, "User 04".into()));
    assert_eq!(users_state(&emu), expected);
    assert!(emu.requests().iter().all(|r| !r.contains("/Groups")));
}

#[test]
fn zenya_sync_of_a_small_directory() {
    let (emu, mut env) = emulator_env(Profile::Zenya, "zenya");
    let mut dir = directory(true);
    write(&env, &dir);
    env.sync();
    let mut expected = expected_users(1..=18);
    assert_eq!(users_state(&emu), expected);
    let names = group_member_names;
    let set = user_names;
    let mut groups = BTreeMap::from([
        ("Sales".to_string(), set(1..=10)),
        ("Support".to_string(), set(8..=15)),
    ]);
    assert_eq!(names(&emu), groups);
    let u1 = emu
        .users()
        .into_iter()
        .find(|u| u["userName"] == "user01@example.com")
        .unwrap();
    assert_eq!(u1["externalId"], "u01");
    assert_eq!(u1["preferredLanguage"], "nl-NL");
    assert_eq!(u1["emails"][0]["value"], "user01@example.com");
    assert!(
        emu.requests().iter().all(|r| !r.contains("externalId eq")),
        "no externalId filter is ever sent"
    );

    // An edit, a disabled account, a membership removal.
    dir["users"][1]["displayName"] = json!("Renamed 02");
    dir["users"][2]["accountEnabled"] = json!(false);
    dir["groups"][0]["members"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m != "u05");
    write(&env, &dir);
    env.sync();
    expected.insert("user02@example.com".into(), (true, "Renamed 02".into()));
    expected.insert("user03@example.com".into(), (false, "User 03".into()));
    // u05 was only in Sales: now out of scope, so disabled and out of the
    // group; u03 is disabled in the source and leaves its group too.
    expected.insert("user05@example.com".into(), (false, "User 05".into()));
    assert_eq!(users_state(&emu), expected);
    let mut sales = set(1..=10);
    sales.remove("user05@example.com");
    sales.remove("user03@example.com");
    groups.insert("Sales".into(), sales);
    assert_eq!(names(&emu), groups);
}

fn scim2_env(plugin: &str, extra: &str) -> (scim_server::ScimServer, Env) {
    let token = format!("{plugin}-s2-{}-k3", std::process::id());
    let server = scim_server::start(&token);
    let settings = format!(r#"tenant_url = "{}"{extra}"#, server.base_url());
    let env = env(plugin, &server.origin(), &settings, &token);
    (server, env)
}

#[test]
fn both_connectors_against_scim2_server() {
    // RFPIO: users only.
    let (_server, mut env) = scim2_env("rfpio", "");
    env.ok(&["test-connection", "target"]);
    let ada = id(&env.ok(&[
        "user", "create", "target", "--json",
        r#"{"userName":"ada@example.com","displayName":"Ada","name.givenName":"Ada","externalId":"src-ada"}"#,
    ]));
    assert_eq!(
        id(&env.ok(&["user", "find", "target", "userName", "ada@example.com"])[0]),
        ada
    );
    env.ok(&[
        "user",
        "update",
        "target",
        &ada,
        "--json",
        r#"{"displayName":"Ada King"}"#,
    ]);
    assert_eq!(
        attr(&env.ok(&["user", "get", "target", &ada]), "displayName"),
        "Ada King"
    );
    let err = env.fails(&[
        "user",
        "update",
        "target",
        &ada,
        "--json",
        r#"{"userName":"x@example.com"}"#,
    ]);
    assert!(err.contains("[invalid-input]"), "{err}");
    env.ok(&["user", "disable", "target", &ada]);
    assert_eq!(
        attr(&env.ok(&["user", "get", "target", &ada]), "active"),
        false
    );
    env.ok(&["user", "delete", "target", &ada]);
    assert!(
        env.fails(&["user", "get", "target", &ada])
            .contains("[not-found]")
    );

    // Zenya: scim2-server serves /Users and /Groups.
    let (_server, mut env) = scim2_env(
        "zenya",
        r#", users_path = "/Users", groups_path = "/Groups""#,
    );
    env.ok(&["test-connection", "target"]);
    let ada = id(&env.ok(&[
        "user", "create", "target", "--json",
        r#"{"userName":"ada","displayName":"Ada","emails[type eq \"work\"].value":"ada@example.com","externalId":"src-ada"}"#,
    ]));
    let err = env.fails(&[
        "user",
        "create",
        "target",
        "--json",
        r#"{"userName":"ada"}"#,
    ]);
    assert!(err.contains("[conflict]"), "{err}");
    env.ok(&[
        "user",
        "update",
        "target",
        &ada,
        "--json",
        r#"{"displayName":"Ada King","phoneNumbers[type eq \"work\"].value":"+31 20 1"}"#,
    ]);
    let got = env.ok(&["user", "get", "target", &ada]);
    assert_eq!(attr(&got, "displayName"), "Ada King");
    env.ok(&["user", "disable", "target", &ada]);
    let grace = id(&env.ok(&[
        "user",
        "create",
        "target",
        "--json",
        r#"{"userName":"grace"}"#,
    ]));
    let group = id(&env.ok(&[
        "group",
        "create",
        "target",
        "--json",
        r#"{"displayName":"Eng"}"#,
    ]));
    env.ok(&["group", "add-members", "target", &group, &ada, &grace]);
    let got = env.ok(&["group", "get", "target", &group]);
    assert_eq!(attr(&got, "members").as_array().unwrap().len(), 2, "{got}");
    env.ok(&["group", "remove-members", "target", &group, &grace]);
    let got = env.ok(&["group", "get", "target", &group]);
    assert_eq!(attr(&got, "members").as_array().unwrap().len(), 1, "{got}");
    assert_eq!(
        id(&env.ok(&["group", "find", "target", "displayName", "Eng"])[0]),
        group
    );
    env.ok(&["group", "delete", "target", &group]);
    env.ok(&["user", "delete", "target", &ada]);
}

#[test]
fn inspect_shows_each_manifest() {
    for (plugin, needles) in [
        (
            "rfpio",
            vec![
                "rfpio ",
                "{tenant_url}",
                "tenant_url (required",
                "token (required",
                "[matching 1]",
            ],
        ),
        (
            "zenya",
            vec![
                "zenya ",
                "{tenant_url}",
                "users_path",
                "/groups",
                "preferredLanguage",
                "[matching 1]",
            ],
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_provisio"))
            .args(["plugin", "inspect"])
            .arg(common::plugin(&format!("provisio_plugin_{plugin}")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        for needle in needles {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        let out = Command::new(env!("CARGO_BIN_EXE_provisio"))
            .args(["plugin", "inspect", "--json"])
            .arg(common::plugin(&format!("provisio_plugin_{plugin}")))
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let m = &v["manifest"];
        assert_eq!(m["name"], plugin);
        let caps: Vec<&str> = m["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let create_only: Vec<&str> = m["user_mappings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["apply"] == "create-only")
            .map(|x| x["target"].as_str().unwrap())
            .collect();
        if plugin == "rfpio" {
            assert_eq!(caps, ["users", "disable", "delete", "list"]);
            assert_eq!(
                create_only.len(),
                2,
                "role and business unit: {create_only:?}"
            );
        } else {
            assert!(caps.contains(&"groups") && caps.contains(&"memberships"));
            assert!(create_only.is_empty());
        }
    }
}

/// POST `body` to `path` under the emulator's base URL with its token; the
/// status and the body.
fn post_raw(emu: &scim_profiles::Emulator, path: &str, body: &str) -> (u16, String) {
    let o = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-X", "POST", "-H"])
        .arg(format!("Authorization: Bearer {}", emu.token))
        .args([
            "-H",
            "Content-Type: application/scim+json",
            "--data-binary",
            body,
        ])
        .arg(format!("{}{path}", emu.url))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let (body, code) = out.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

#[test]
fn scim_connector_sync_against_the_type_strict_emulator() {
    let token = format!("scim-strict-{}-w4", std::process::id());
    let emu = scim_profiles::start(Profile::Generic, &token);
    // The profile refuses what scim2-server silently coerces.
    for (body, wanted) in [
        (
            r#"{"userName":"a","active":"True"}"#,
            "Attribute 'active' expected value type 'boolean' but found type 'string'",
        ),
        (
            r#"{"userName":"b","roles":[{"primary":"True","value":"Admin"}]}"#,
            "Attribute 'primary' expected value type 'boolean' but found type 'string'",
        ),
        (
            r#"{"userName":"c","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":42}}"#,
            "Attribute 'employeeNumber' expected value type 'string' but found type 'integer'",
        ),
        (
            r#"{"userName":"d","emails":{"value":"d@x"}}"#,
            "Attribute 'emails' is multi-valued",
        ),
    ] {
        let (status, answer) = post_raw(&emu, "/Users", body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.contains(wanted), "{body}: {answer}");
    }
    assert!(emu.users().is_empty());

    let settings = format!(r#"base_url = "{}""#, emu.url);
    let mut env = env("scim", &emu.origin, &settings, &token);
    let mut dir = directory(true);
    // Directories export employeeId as a number; employeeNumber is a string.
    dir["users"][0]["employeeId"] = json!(1001);
    dir["users"][1]["manager"] = json!("u01");
    write(&env, &dir);
    env.sync();
    let mut expected = expected_users(1..=18);
    assert_eq!(users_state(&emu), expected, "{}", env.transcript);
    let users = emu.users();
    let user = |name: &str| {
        users
            .iter()
            .find(|u| u["userName"] == name)
            .unwrap()
            .clone()
    };
    let u1 = user("user01@example.com");
    assert_eq!(u1[ENTERPRISE]["employeeNumber"], json!("1001"));
    assert_eq!(
        u1["emails"],
        json!([{"type": "work", "value": "user01@example.com", "primary": true}])
    );
    let u2 = user("user02@example.com");
    assert_eq!(u2[ENTERPRISE]["manager"]["value"], u1["id"]);
    let members =
        |emu: &scim_profiles::Emulator, group: &str| group_member_names(emu).remove(group).unwrap();
    let set = user_names;
    assert_eq!(members(&emu, "Sales"), set(1..=10));
    assert_eq!(members(&emu, "Support"), set(8..=15));

    // A disable and a membership removal go through PATCH, typed too.
    dir["users"][2]["accountEnabled"] = json!(false);
    dir["groups"][1]["members"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m != "u09");
    write(&env, &dir);
    env.sync();
    expected.insert("user03@example.com".into(), (false, "User 03".into()));
    assert_eq!(users_state(&emu), expected);
    let mut support = set(8..=15);
    support.remove("user09@example.com");
    assert_eq!(members(&emu, "Support"), support);
    assert!(
        emu.requests()
            .iter()
            .any(|r| r.starts_with("PATCH /scim/v2/Users/")),
        "the disable was a PATCH"
    );
}

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The provisioning-log records of `source_id`, newest first, as JSON.
fn logs_of(env: &mut Env, source_id: &str) -> Vec<Value> {
    let out = env.ok(&["logs", "--user", source_id, "--format", "json"]);
    out.as_array().unwrap().clone()
}

#[test]
fn a_create_that_finds_the_object_already_there_is_logged_as_a_match() {
    let token = format!("scim-match-{}-r8", std::process::id());
    let emu = scim_profiles::start(Profile::Generic, &token);
    // Already in the target: user01 with another display name and the same
    // title; user02 with its userName in another case, behind a server whose
    // filter compares case-sensitively.
    for body in [
        r#"{"userName":"user01@example.com","displayName":"Old Name","title":"Engineer","active":true}"#,
        r#"{"userName":"User02@Example.COM","displayName":"User 02","title":"Engineer","active":true}"#,
    ] {
        let (status, answer) = post_raw(&emu, "/Users", body);
        assert_eq!(status, 201, "{answer}");
    }
    emu.set_case_sensitive_filter(true);
    let u1_id = emu.users()[0]["id"].as_str().unwrap().to_string();
    let u2_id = emu.users()[1]["id"].as_str().unwrap().to_string();

    let settings = format!(r#"base_url = "{}""#, emu.url);
    let mut env = env("scim", &emu.origin, &settings, &token);
    write(&env, &directory(true));
    let summary = env.sync();
    assert_eq!(summary["counts"]["user match success"], 2, "{summary}");
    assert_eq!(summary["counts"]["user create success"], 16, "{summary}");
    // Exactly the 18 assigned users: nothing created twice.
    assert_eq!(emu.users().len(), 18);
    let users = emu.users();
    assert_eq!(by_id(&users, &u1_id)["displayName"], "User 01");

    // user01: a match and an update of what differed, with the old value.
    let log = &logs_of(&mut env, "u01")[0];
    assert_eq!(log["action"], "match", "{log}");
    assert_eq!(log["target_id"], u1_id.as_str());
    let steps = log["steps"].to_string();
    assert!(
        steps.contains(&format!(
            "matched existing user {u1_id} by userName; updated "
        )),
        "{steps}"
    );
    assert!(!steps.contains("created user"), "{steps}");
    let modified = log["modified"].as_array().unwrap();
    let display = modified
        .iter()
        .find(|m| m["name"] == "displayName")
        .unwrap();
    assert_eq!(display["old"], "Old Name");
    assert_eq!(display["new"], "User 01");
    assert!(
        modified.iter().all(|m| m["name"] != "title"),
        "an unchanged title is not sent: {modified:?}"
    );

    // user02: the 409 led to a lookup ignoring case, and it says so.
    let log = &logs_of(&mut env, "u02")[0];
    assert_eq!(log["action"], "match", "{log}");
    assert_eq!(log["target_id"], u2_id.as_str());
    let steps = log["steps"].to_string();
    assert!(steps.contains("refused as a conflict"), "{steps}");
    assert!(
        steps.contains("no exact match for userName") && steps.contains("ignoring case"),
        "{steps}"
    );

    // Linked: the next cycle sends nothing.
    let again = env.sync();
    assert_eq!(again["target_calls"], 0, "{again}");
}
