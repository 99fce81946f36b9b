//! End to end: the `provisio` binary runs the real Replicon connector (built
//! from plugins/replicon) in the sandbox against the in-memory Replicon
//! emulator (`tests/emulators/replicon.rs`): test-connection (ok, a bad
//! password, an unknown company key), every user operation, conflicts and
//! validation errors, rate limiting and 5xx, re-discovery when the tenant's
//! swimlane moves, `plugin inspect`, and `provisio sync` of a small directory
//! (create, update, disable, enable, delete) — also with faults switched on.
//! The emulator's state is read directly, and every byte of output is
//! searched for the password.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "emulators/replicon.rs"]
mod replicon;

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

const PASSWORD_ENV: &str = "PROVISIO_TEST_REPLICON_PASSWORD";
const COMPANY: &str = "Acme";
const TENANT: &str = "acmecorp";
const ADMIN: &str = "admin";

struct Env {
    emu: replicon::Emulator,
    _dir: tempfile::TempDir,
    config: PathBuf,
    directory: PathBuf,
    transcript: String,
}

fn password() -> String {
    format!("rp-{}-pw-Zx9#Lq", std::process::id())
}

fn setup(password: &str) -> Env {
    let emu = replicon::start(COMPANY, TENANT, ADMIN, password);
    let dir = tempfile::tempdir().unwrap();
    let (plugin, sha) = common::pinned("provisio_plugin_replicon");
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

[plugins.replicon]
path = "{plugin}"
sha256 = "{sha}"

[secrets.rp_password]
env = "{PASSWORD_ENV}"
hosts = ["{origin}"]

[sources.corp]
path = "directory.json"

[connections.rp]
plugin = "replicon"
source = "corp"
settings = {{ company_key = "{COMPANY}", login = "{ADMIN}", discovery_url = "{origin}" }}
secrets = {{ password = "rp_password" }}
allowed_hosts = ["{origin}"]
deletion_threshold = 50
concurrency = 4
[connections.rp.scope]
excluded_roles = ["Default Access"]

[connections.rp_unknown]
plugin = "replicon"
settings = {{ company_key = "Nosuchco", login = "{ADMIN}", discovery_url = "{origin}" }}
secrets = {{ password = "rp_password" }}
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
    fn run(&mut self, password: &str, args: &[&str]) -> (bool, String, String) {
        common::provisio(
            &self.config,
            &[(PASSWORD_ENV, password), ("PROVISIO_LOG", "trace")],
            args,
            &mut self.transcript,
        )
    }

    fn ok(&mut self, args: &[&str]) -> Value {
        let password = self.emu.password.clone();
        let ran = self.run(&password, args);
        common::expect_ok(args, ran)
    }

    fn fails(&mut self, args: &[&str]) -> String {
        let password = self.emu.password.clone();
        let ran = self.run(&password, args);
        common::expect_failure(args, ran)
    }
}

fn attr<'a>(obj: &'a Value, name: &str) -> &'a Value {
    &obj["attributes"][name]
}

fn id(obj: &Value) -> String {
    obj["id"].as_str().unwrap().to_string()
}

#[test]
fn test_connection_ok_bad_password_and_unknown_company() {
    let password = password();
    let mut env = setup(&password);

    let out = env.ok(&["test-connection", "rp"]);
    let text = out.as_str().unwrap();
    assert!(
        text.contains("Replicon tenant 'Acme'")
            && text.contains(&env.emu.root())
            // Guest text is printed escaped: the backslash shows doubled.
            && text.contains("Acme\\\\admin")
            && text.contains(&env.emu.uri(1)),
        "{text}"
    );
    let log = env.emu.log();
    assert_eq!(
        log.first().map(String::as_str),
        Some("POST /DiscoveryService1.svc/GetTenantEndpointDetails"),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.ends_with("/services/UserService1.svc/GetUser2")),
        "{log:?}"
    );

    // A wrong password: 401, named as the admin's credentials.
    let (ok, _, stderr) = env.run("not-the-password-42", &["test-connection", "rp"]);
    assert!(!ok && stderr.contains("[unauthorized]"), "{stderr}");
    assert!(
        stderr.contains("Acme\\\\admin") && stderr.contains("`password` secret"),
        "{stderr}"
    );
    assert!(stderr.contains("AuthenticationError1"), "{stderr}");

    // An unknown company key: discovery says so, and the error names it.
    let stderr = env.fails(&["test-connection", "rp_unknown"]);
    assert!(stderr.contains("[invalid-input]"), "{stderr}");
    assert!(
        stderr.contains("company key 'Nosuchco'") && stderr.contains("`company_key` setting"),
        "{stderr}"
    );

    assert!(!env.transcript.contains(&password), "the password leaked");
}

#[test]
fn every_operation_against_the_emulator() {
    let password = password();
    let mut env = setup(&password);

    // Create: the id is Replicon's user URI.
    let ada = env.ok(&[
        "user", "create", "rp", "--json",
        r#"{"loginName":"ada@example.com","firstName":"Ada","lastName":"Lovelace","emailAddress":"ada@example.com","employeeId":"E-1001","active":true}"#,
    ]);
    let ada_uri = id(&ada);
    assert_eq!(ada_uri, env.emu.uri(2));
    let stored = env.emu.user(&ada_uri).unwrap();
    assert_eq!(stored.login_name, "ada@example.com");
    assert_eq!(stored.first_name, "Ada");
    assert_eq!(stored.last_name, "Lovelace");
    assert_eq!(stored.email.as_deref(), Some("ada@example.com"));
    assert_eq!(stored.employee_id.as_deref(), Some("E-1001"));
    assert!(stored.login_enabled);
    let put = env.emu.bodies("ImportService1.svc/PutUser3");
    assert_eq!(
        put[0]["user"]["firstname"], "Ada",
        "PutUser3 spells it firstname"
    );
    assert_eq!(
        put[0]["user"]["securityConfiguration"]["isLoginEnabled"],
        true
    );

    let got = env.ok(&["user", "get", "rp", &ada_uri]);
    assert_eq!(attr(&got, "loginName"), "ada@example.com");
    assert_eq!(attr(&got, "displayText"), "Lovelace, Ada");
    assert_eq!(attr(&got, "employeeId"), "E-1001");
    assert_eq!(attr(&got, "active"), true);

    // Find by loginName (case-insensitive), emailAddress, employeeId.
    for (attribute, value) in [
        ("loginName", "ADA@example.com"),
        ("emailAddress", "ada@EXAMPLE.com"),
        ("employeeId", "E-1001"),
    ] {
        let found = env.ok(&["user", "find", "rp", attribute, value]);
        assert_eq!(found.as_array().unwrap().len(), 1, "{attribute}: {found}");
        assert_eq!(id(&found[0]), ada_uri);
        assert_eq!(attr(&found[0], "lastName"), "Lovelace");
    }
    let found = env.ok(&["user", "find", "rp", "loginName", "nobody@example.com"]);
    assert_eq!(found.as_array().unwrap().len(), 0);
    let filters: Vec<String> = env
        .emu
        .bodies("UserListService1.svc/GetData")
        .iter()
        .map(|b| b["filterExpression"]["leftExpression"]["filterDefinitionUri"].to_string())
        .collect();
    assert!(
        filters.iter().any(|f| f.contains("employee-id")),
        "{filters:?}"
    );
    let err = env.fails(&["user", "find", "rp", "title", "x"]);
    assert!(
        err.contains("[invalid-input]") && err.contains("loginName"),
        "{err}"
    );

    // Update sends only the changed fields; a null clears.
    env.ok(&[
        "user",
        "update",
        "rp",
        &ada_uri,
        "--json",
        r#"{"lastName":"King","emailAddress":null}"#,
    ]);
    let stored = env.emu.user(&ada_uri).unwrap();
    assert_eq!(stored.last_name, "King");
    assert_eq!(stored.email, None);
    assert_eq!(stored.first_name, "Ada", "untouched fields stay");
    let mods = env
        .emu
        .bodies("ImportService2.svc/CreateUserOrApplyModifications");
    assert_eq!(mods.len(), 1);
    assert_eq!(mods[0]["target"]["uri"], ada_uri);
    let keys: BTreeSet<&str> = mods[0]["modifications"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["lastName", "emailAddress"]));
    // A required field cannot be cleared: Replicon's displayText comes through.
    let err = env.fails(&[
        "user",
        "update",
        "rp",
        &ada_uri,
        "--json",
        r#"{"firstName":null}"#,
    ]);
    assert!(
        err.contains("[invalid-input]") && err.contains("First name is required."),
        "{err}"
    );

    // Disable / enable the login.
    env.ok(&["user", "disable", "rp", &ada_uri]);
    assert!(!env.emu.user(&ada_uri).unwrap().login_enabled);
    assert_eq!(
        attr(&env.ok(&["user", "get", "rp", &ada_uri]), "active"),
        false
    );
    assert_eq!(
        env.emu.bodies("SecurityService1.svc/DisableLogin"),
        vec![json!({ "userUri": ada_uri })]
    );
    env.ok(&["user", "enable", "rp", &ada_uri]);
    assert!(env.emu.user(&ada_uri).unwrap().login_enabled);

    // A duplicate loginName is a conflict naming the existing user.
    let err = env.fails(&[
        "user",
        "create",
        "rp",
        "--json",
        r#"{"loginName":"Ada@Example.com","firstName":"Other","lastName":"Ada"}"#,
    ]);
    assert!(err.contains("[conflict]"), "{err}");
    assert!(
        err.contains("already in use") && err.contains(&ada_uri),
        "{err}"
    );
    assert_eq!(env.emu.users().len(), 2, "admin and Ada only");
    // A validation error: the displayText, as invalid-input.
    let err = env.fails(&[
        "user",
        "create",
        "rp",
        "--json",
        r#"{"loginName":"grace@example.com","firstName":"Grace"}"#,
    ]);
    assert!(
        err.contains("[invalid-input]") && err.contains("Last name is required."),
        "{err}"
    );
    let err = env.fails(&[
        "user",
        "create",
        "rp",
        "--json",
        r#"{"loginName":"grace@example.com","firstName":"Grace","title":"RADM"}"#,
    ]);
    assert!(
        err.contains("[invalid-input]") && err.contains("`title`"),
        "{err}"
    );

    // List pages until a page has no rows (cursor = page number).
    for n in 0..3 {
        env.ok(&[
            "user",
            "create",
            "rp",
            "--json",
            &json!({"loginName": format!("u{n}@example.com"), "firstName": "U", "lastName": format!("N{n}")})
                .to_string(),
        ]);
    }
    let users = env.ok(&["user", "list", "rp", "--page-size", "2"]);
    let logins: BTreeSet<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| attr(u, "loginName").as_str().unwrap())
        .collect();
    assert_eq!(
        logins,
        BTreeSet::from([
            "admin",
            "ada@example.com",
            "u0@example.com",
            "u1@example.com",
            "u2@example.com"
        ])
    );
    let pages: Vec<u64> = env
        .emu
        .bodies("UserListService1.svc/GetData")
        .iter()
        .filter(|b| b["filterExpression"].is_null())
        .map(|b| b["page"].as_u64().unwrap())
        .collect();
    assert_eq!(
        pages,
        vec![1, 2, 3, 4],
        "5 users in pages of 2, then an empty page"
    );

    // Delete: gone; then not-found.
    env.ok(&["user", "delete", "rp", &ada_uri]);
    assert!(env.emu.user(&ada_uri).is_none());
    let err = env.fails(&["user", "get", "rp", &ada_uri]);
    assert!(
        err.contains("[not-found]") && err.contains("InvalidUserTargetParameterError1"),
        "{err}"
    );
    let err = env.fails(&["user", "get", "rp", "42"]);
    assert!(
        err.contains("[invalid-input]") && err.contains("not a Replicon user URI"),
        "{err}"
    );
    // Groups are not provisioned.
    let err = env.fails(&["group", "list", "rp"]);
    assert!(
        err.contains("unsupported") || err.contains("groups"),
        "{err}"
    );

    // A 429 burst: rate-limited with the Retry-After; a 500: transient.
    let u0 = env.emu.user_by_login("u0@example.com").unwrap();
    let u0_uri = env.emu.uri(u0.n);
    env.emu.burst_429(1, 7);
    let err = env.fails(&["user", "get", "rp", &u0_uri]);
    assert!(err.contains("[rate-limited]"), "{err}");
    assert!(err.contains("retry after 7000 ms"), "{err}");
    env.emu.fail_5xx(1);
    let err = env.fails(&["user", "get", "rp", &u0_uri]);
    assert!(
        err.contains("[transient]") && err.contains("InternalServerError"),
        "{err}"
    );
    env.ok(&["user", "get", "rp", &u0_uri]);

    // Every tenant request carried X-Replicon-Application.
    let apps = env.emu.applications();
    assert!(!apps.is_empty());
    assert!(
        apps.iter()
            .all(|a| a.starts_with("Provisio_UserProvisioning_")),
        "{apps:?}"
    );
    assert!(
        env.transcript.contains("egress"),
        "audit records were captured"
    );
    assert!(
        !env.transcript.contains(&password),
        "the password leaked into output"
    );
}

#[test]
fn a_moved_swimlane_is_discovered_again() {
    let password = password();
    let mut env = setup(&password);
    for n in 0..5 {
        env.emu
            .add_user(&format!("m{n}@example.com"), "M", &format!("N{n}"), None);
    }
    let old_root = env.emu.root();
    // After the first page the tenant moves; the old root answers 404.
    env.emu.move_swimlane_after(1);
    let users = env.ok(&["user", "list", "rp", "--page-size", "2"]);
    assert_eq!(users.as_array().unwrap().len(), 6, "{users}");
    assert_ne!(env.emu.root(), old_root);
    assert_eq!(env.emu.discoveries(), 2, "{:?}", env.emu.log());
    assert!(
        env.emu
            .log()
            .iter()
            .any(|l| l.starts_with(&format!("POST /sl1/{TENANT}/services/"))),
    );
    assert!(
        env.transcript.contains("discovering again"),
        "the guest said why it re-discovered"
    );
}

#[test]
fn inspect_shows_the_manifest() {
    let plugin = common::plugin("provisio_plugin_replicon");
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
        "replicon ",
        "contract:  provisio:connector@0.2.0",
        "{discovery_url}",
        "https://*.replicon.com",
        "company_key (required",
        "login (required",
        "discovery_url",
        "https://global.replicon.com",
        "password (required",
        "loginName",
        "[matching 1]",
        "[userPrincipalName]",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_provisio"))
        .args(["plugin", "inspect", "--json"])
        .arg(&plugin)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["manifest"]["name"], "replicon");
    assert_eq!(v["contract"], "provisio:connector@0.2.0");
}

// ------------------------------------------------------------------ sync

fn upn(n: u32) -> String {
    format!("user{n:02}@example.com")
}

/// The source directory: users u01–u12; group "Timesheets" (u01–u08)
/// assigned as User, u09 and u10 assigned directly, u11 assigned only with
/// the excluded role "Default Access", u12 not assigned.
struct Dir {
    users: BTreeMap<u32, Value>,
    members: BTreeSet<u32>,
    direct: Vec<(u32, &'static str)>,
}

impl Dir {
    fn initial() -> Dir {
        Dir {
            users: (1..=12).map(|n| (n, Dir::user(n))).collect(),
            members: (1..=8).collect(),
            direct: vec![(9, "User"), (10, "User"), (11, "Default Access")],
        }
    }

    fn user(n: u32) -> Value {
        json!({"id": format!("u{n:02}"), "userPrincipalName": upn(n), "mail": upn(n),
               "displayName": format!("User {n:02}"), "givenName": format!("Given{n:02}"),
               "surname": format!("Sur{n:02}"), "employeeId": format!("E{n:03}"),
               "accountEnabled": true})
    }

    fn write(&self, path: &PathBuf) {
        let users: Vec<&Value> = self.users.values().collect();
        let mut assignments = vec![json!({"principal": "g1", "connection": "rp", "role": "User"})];
        for (n, role) in &self.direct {
            assignments
                .push(json!({"principal": format!("u{n:02}"), "connection": "rp", "role": role}));
        }
        let members: Vec<String> = self.members.iter().map(|n| format!("u{n:02}")).collect();
        std::fs::write(
            path,
            serde_json::to_string_pretty(&json!({"users": users,
                "groups": [{"id": "g1", "displayName": "Timesheets", "members": members}],
                "assignments": assignments}))
            .unwrap(),
        )
        .unwrap();
    }
}

/// (first, last, email, employee id, login enabled) by login name.
type Users = BTreeMap<String, (String, String, String, String, bool)>;

/// The emulator's whole content, admin excluded.
fn contents(emu: &replicon::Emulator) -> Users {
    let mut out = Users::new();
    for u in emu.users().into_iter().filter(|u| u.n != 1) {
        let row = (
            u.first_name,
            u.last_name,
            u.email.unwrap_or_default(),
            u.employee_id.unwrap_or_default(),
            u.login_enabled,
        );
        assert!(
            out.insert(u.login_name.to_ascii_lowercase(), row).is_none(),
            "duplicate login"
        );
    }
    out
}

fn row(n: u32, last: &str, enabled: bool) -> (String, (String, String, String, String, bool)) {
    (
        upn(n),
        (
            format!("Given{n:02}"),
            last.to_string(),
            upn(n),
            format!("E{n:03}"),
            enabled,
        ),
    )
}

fn sync(env: &mut Env) -> Value {
    let (ok, stdout, stderr) = env.run(&env.emu.password.clone(), &["sync", "rp", "--json"]);
    assert!(ok, "sync failed:\n{stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    if summary["failures"] != 0 {
        let (_, logs, _) = env.run(
            &env.emu.password.clone(),
            &[
                "logs",
                "--connection",
                "rp",
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
    let password = password();
    let mut env = setup(&password);
    let mut dir = Dir::initial();
    dir.write(&env.directory);
    // u07 already has a Replicon account (another first name): it is matched
    // by loginName and updated, not duplicated.
    let existing = env.emu.add_user(&upn(7), "Old", "Sur07", None);

    // 1. Initial cycle: u01–u10 in scope; u11 (Default Access) and u12 are not.
    let s = sync(&mut env);
    assert_eq!(s["cycle_type"], "initial", "{s}");
    let mut expected: Users = (1..=10)
        .map(|n| row(n, &format!("Sur{n:02}"), true))
        .collect();
    assert_eq!(contents(&env.emu), expected);
    assert_eq!(
        env.emu.user_by_login(&upn(7)).unwrap().n,
        env.emu.user(&existing).unwrap().n
    );
    assert_eq!(env.emu.bodies("ImportService1.svc/PutUser3").len(), 9);

    // 2. Nothing changed: no target call at all.
    let s = sync(&mut env);
    assert_eq!(s["target_calls"], 0, "{s}");

    // 3. A surname change, a disabled account, a hard delete, an
    //    unassignment (u04 leaves the group) and a new hire.
    let mods_before = env
        .emu
        .bodies("ImportService2.svc/CreateUserOrApplyModifications")
        .len();
    dir.users.get_mut(&1).unwrap()["surname"] = json!("Byron");
    dir.users.get_mut(&2).unwrap()["accountEnabled"] = json!(false);
    dir.users.remove(&3);
    dir.members.remove(&3);
    dir.members.remove(&4);
    dir.users.insert(13, Dir::user(13));
    dir.members.insert(13);
    dir.write(&env.directory);
    let s = sync(&mut env);
    assert!(s["target_calls"].as_u64().unwrap() < 15, "{s}");
    expected.insert(upn(1), row(1, "Byron", true).1);
    expected.insert(upn(2), row(2, "Sur02", false).1); // login disabled
    expected.remove(&upn(3)); // deleted
    expected.insert(upn(4), row(4, "Sur04", false).1); // out of scope: disabled
    expected.insert(upn(13), row(13, "Sur13", true).1);
    assert_eq!(contents(&env.emu), expected);
    let mods = env
        .emu
        .bodies("ImportService2.svc/CreateUserOrApplyModifications");
    assert_eq!(mods.len(), mods_before + 1, "one update: u01's surname");
    assert_eq!(
        mods.last().unwrap()["modifications"],
        json!({"lastName": {"value": "Byron"}})
    );
    assert_eq!(env.emu.bodies("UserService1.svc/Delete").len(), 1);

    // 4. u02 is enabled again and u04 assigned again: EnableLogin, no create.
    dir.users.get_mut(&2).unwrap()["accountEnabled"] = json!(true);
    dir.members.insert(4);
    dir.write(&env.directory);
    let puts_before = env.emu.bodies("ImportService1.svc/PutUser3").len();
    let enables_before = env.emu.bodies("SecurityService1.svc/EnableLogin").len();
    sync(&mut env);
    expected.insert(upn(2), row(2, "Sur02", true).1);
    expected.insert(upn(4), row(4, "Sur04", true).1);
    assert_eq!(contents(&env.emu), expected);
    let enables = env.emu.bodies("SecurityService1.svc/EnableLogin");
    assert_eq!(enables.len(), enables_before + 2, "{enables:?}");
    assert_eq!(
        env.emu.bodies("ImportService1.svc/PutUser3").len(),
        puts_before
    );

    let s = sync(&mut env);
    assert_eq!(s["target_calls"], 0, "{s}");
    assert!(
        !env.transcript.contains(&password),
        "the password leaked into output"
    );
}

#[test]
fn sync_converges_through_429_500_lost_creates_and_slow_answers() {
    let password = password();
    let mut env = setup(&password);
    let dir = Dir::initial();
    dir.write(&env.directory);

    // At most three failed attempts in all, so no object can use up its
    // four; a lost create must be matched on retry, never duplicated.
    env.emu.burst_429(1, 1);
    env.emu.fail_5xx(1);
    env.emu.lose_put_responses(1);
    env.emu.slow(3, 300);
    let s = sync(&mut env);
    assert_eq!(s["cycle_type"], "initial", "{s}");
    let expected: Users = (1..=10)
        .map(|n| row(n, &format!("Sur{n:02}"), true))
        .collect();
    assert_eq!(contents(&env.emu), expected);
    let log = env.emu.log();
    assert!(
        env.emu
            .controls
            .burst_429
            .load(std::sync::atomic::Ordering::SeqCst)
            == 0
            && env
                .emu
                .controls
                .fail_5xx
                .load(std::sync::atomic::Ordering::SeqCst)
                == 0
            && env
                .emu
                .controls
                .lose_put
                .load(std::sync::atomic::Ordering::SeqCst)
                == 0,
        "every fault was served: {log:?}"
    );
    // The lost create was followed by a lookup, not a second PutUser3 of the
    // same login (PutUser3 would have answered "already in use").
    let puts = env.emu.bodies("ImportService1.svc/PutUser3");
    let logins: BTreeSet<String> = puts
        .iter()
        .map(|b| {
            b["user"]["target"]["loginName"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!((puts.len(), logins.len()), (10, 10), "{puts:?}");

    // The next cycle has nothing to do.
    let s = sync(&mut env);
    assert_eq!(s["target_calls"], 0, "{s}");
    assert!(!env.transcript.contains(&password), "the password leaked");
}
