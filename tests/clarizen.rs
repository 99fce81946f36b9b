//! End to end: the `provisio` binary runs the real Clarizen connector (built
//! from plugins/clarizen) in the sandbox against the in-memory Clarizen
//! emulator (`tests/emulators/clarizen.rs`): server discovery and session
//! login, test-connection (ok, a bad password, a discovery answer naming an
//! ungranted server), every user operation, error mapping (EntityNotFound as
//! HTTP 500, duplicate UserName, 429, the per-second quota, 5xx), session
//! expiry in the middle of a run, `provisio sync` of a small directory, and a
//! sync with faults switched on. The emulator's state is read directly, and
//! every byte of output, the logs and the store are searched for the password.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "emulators/clarizen.rs"]
mod clarizen;

use provisio::capabilities::http::HostPattern;
use provisio::capabilities::secrets::{Secret, SecretValue};
use provisio::model::{Attribute, ObjectKind, Value as AttrValue};
use provisio::runtime::{Limits, Runtime};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;

const PASSWORD_ENV: &str = "PROVISIO_TEST_CLARIZEN_PASSWORD";
const ADMIN: &str = "provisioning.admin@acme.test";

/// A password with a quote and a backslash: the login body must carry it
/// JSON-escaped (the `secret-json` segment).
fn password() -> String {
    format!("Clz-{}-p\"w\\Q9x", std::process::id())
}

struct Env {
    emu: clarizen::Emulator,
    dir: tempfile::TempDir,
    config: PathBuf,
    directory: PathBuf,
    transcript: String,
}

fn setup(requests_per_second: u32) -> Env {
    let emu = clarizen::start(ADMIN, &password());
    let dir = tempfile::tempdir().unwrap();
    let (plugin, sha) = common::pinned("provisio_plugin_clarizen");
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

[plugins.clarizen]
path = "{plugin}"
sha256 = "{sha}"

[secrets.clz_password]
env = "{PASSWORD_ENV}"
hosts = ["{origin}"]

[sources.corp]
path = "directory.json"

[connections.clz]
plugin = "clarizen"
source = "corp"
settings = {{ user_name = "{ADMIN}", api_url = "{api_url}" }}
secrets = {{ password = {{ secret = "clz_password", placements = ["login:discovery", "login:login"] }} }}
allowed_hosts = ["{origin}"]
deletion_threshold = 50
concurrency = 4
limits = {{ requests_per_second = {requests_per_second} }}
"#,
            plugin = plugin.display(),
            origin = emu.url,
            api_url = emu.api_url,
        ),
    )
    .unwrap();
    Env {
        emu,
        dir,
        config,
        directory,
        transcript: String::new(),
    }
}

impl Env {
    fn run_with(&mut self, password: &str, args: &[&str]) -> (bool, String, String) {
        common::provisio(
            &self.config,
            &[(PASSWORD_ENV, password), ("PROVISIO_LOG", "trace")],
            args,
            &mut self.transcript,
        )
    }

    fn ok(&mut self, args: &[&str]) -> Value {
        let ran = self.run_with(&password(), args);
        common::expect_ok(args, ran)
    }

    fn fails(&mut self, args: &[&str]) -> String {
        let ran = self.run_with(&password(), args);
        common::expect_failure(args, ran)
    }

    /// The password must appear nowhere: output, logs (trace level), the
    /// store's files. Neither may any session id the emulator issued.
    fn assert_password_never_leaked(&self) {
        let pw = password();
        let escaped = serde_json::to_string(&pw).unwrap();
        let escaped = escaped.trim_matches('"');
        let sessions = self.emu.session_ids();
        assert!(!sessions.is_empty(), "the connector logged in");
        assert!(
            !self.transcript.contains(&pw) && !self.transcript.contains(escaped),
            "the password leaked into output"
        );
        for s in &sessions {
            assert!(
                !self.transcript.contains(s),
                "a session id leaked into output"
            );
        }
        let files = files_under(&self.dir.path().join("state"));
        assert!(!files.is_empty());
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(&pw) && !text.contains(escaped),
                "the password leaked into {}",
                file.display()
            );
            for s in &sessions {
                assert!(
                    !text.contains(s),
                    "a session id leaked into {}",
                    file.display()
                );
            }
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn attr<'a>(obj: &'a Value, name: &str) -> &'a Value {
    &obj["attributes"][name]
}

fn id(obj: &Value) -> String {
    obj["id"].as_str().unwrap().to_string()
}

fn state_of(user: &serde_json::Map<String, Value>) -> String {
    user["State"]["id"].as_str().unwrap().to_string()
}

#[test]
fn test_connection_ok_bad_password_and_foreign_server() {
    let mut env = setup(25);

    let out = env.ok(&["test-connection", "clz"]);
    let text = out.as_str().unwrap();
    assert!(
        text.contains(&env.emu.api_url) && text.contains(ADMIN) && text.contains("4711"),
        "{text}"
    );
    assert_eq!(env.emu.auth_counts(), (1, 1), "one discovery, one login");
    let log = env.emu.log();
    assert_eq!(
        &log[..3],
        &[
            "POST /V2.0/services/authentication/getServerDefinition".to_string(),
            "POST /V2.0/services/authentication/login".to_string(),
            "POST /V2.0/services/data/entityQuery".to_string(),
        ],
        "discovery, login, then a cheap query"
    );

    // A wrong password: unauthorized, with Clarizen's message.
    let (ok, _, stderr) = env.run_with("not-the-password", &["test-connection", "clz"]);
    assert!(!ok && stderr.contains("[unauthorized]"), "{stderr}");
    assert!(
        stderr.contains("LoginFailure") && stderr.contains("Invalid user name or password"),
        "{stderr}"
    );
    // Elsewhere too (discovery refuses it before any data call).
    let (ok, _, stderr) = env.run_with("not-the-password", &["user", "list", "clz"]);
    assert!(!ok && stderr.contains("[unauthorized]"), "{stderr}");

    // Discovery naming a server outside the declared/granted hosts is refused
    // by the host: the password is never sent there.
    env.emu
        .set_server_location("https://evil.example.net/V2.0/services");
    let stderr = env.fails(&["test-connection", "clz"]);
    assert!(stderr.contains("[denied]"), "{stderr}");
    assert!(stderr.contains("evil.example.net"), "{stderr}");

    env.assert_password_never_leaked();
}

#[test]
fn every_operation_against_the_emulator() {
    let mut env = setup(25);
    // Each CLI command is a new process with a full request budget, so the
    // test's own pace can cross the organisation-wide 25/s window. The quota
    // answer is exercised on purpose below (burst_quota) and in the faults
    // test, which runs one process under the quota.
    env.emu
        .controls
        .no_quota
        .store(true, std::sync::atomic::Ordering::SeqCst);

    // Create (PUT), with the fields Clarizen knows and a custom field.
    let ada = env.ok(&[
        "user", "create", "clz", "--json",
        r#"{"UserName":"ada@example.com","Email":"ada@example.com","FirstName":"Ada","LastName":"Lovelace","JobTitle":"Engineer","OfficePhone":"+1 555 0100","MobilePhone":"+1 555 0199","ExternalID":"src-ada","C_CostCenter":"R&D","active":true}"#,
    ]);
    let ada_id = id(&ada);
    assert!(!ada_id.starts_with('/'), "ids are bare GUIDs: {ada_id}");
    let stored = env.emu.user(&ada_id).unwrap();
    assert_eq!(stored["UserName"], "ada@example.com");
    assert_eq!(stored["FirstName"], "Ada");
    assert_eq!(stored["LastName"], "Lovelace");
    assert_eq!(stored["JobTitle"], "Engineer");
    assert_eq!(stored["MobilePhone"], "+1 555 0199");
    assert_eq!(stored["C_CostCenter"], "R&D");
    assert_eq!(state_of(&stored), "/State/Active");
    assert!(
        env.emu
            .log()
            .contains(&"PUT /V2.0/services/data/objects/User".to_string()),
        "PUT creates"
    );

    // Get.
    let got = env.ok(&["user", "get", "clz", &ada_id]);
    assert_eq!(id(&got), ada_id);
    assert_eq!(attr(&got, "Email"), "ada@example.com");
    assert_eq!(attr(&got, "Name"), "Ada Lovelace");
    assert_eq!(attr(&got, "active"), true);
    let got = env.ok(&["user", "get", "clz", &format!("/User/{ada_id}")]);
    assert_eq!(id(&got), ada_id, "the /User/ form is accepted too");

    // Find by UserName, Email, ExternalID (entityQuery, Equal).
    let found = env.ok(&["user", "find", "clz", "UserName", "ADA@example.com"]);
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(id(&found[0]), ada_id);
    let found = env.ok(&["user", "find", "clz", "ExternalID", "src-ada"]);
    assert_eq!(id(&found[0]), ada_id);
    let found = env.ok(&["user", "find", "clz", "Email", "nobody@example.com"]);
    assert_eq!(found.as_array().unwrap().len(), 0);
    let q = env.emu.queries();
    let last = q.last().unwrap();
    assert_eq!(last["where"]["leftExpression"]["fieldName"], "Email");
    assert_eq!(last["where"]["operator"], "Equal");
    assert_eq!(
        last["where"]["rightExpression"]["value"],
        "nobody@example.com"
    );
    let err = env.fails(&["user", "find", "clz", "title", "x"]);
    assert!(
        err.contains("[invalid-input]") && err.contains("UserName"),
        "{err}"
    );

    // Update (POST) sends only the changed fields; null clears.
    let before = env.emu.log().len();
    env.ok(&[
        "user",
        "update",
        "clz",
        &ada_id,
        "--json",
        r#"{"FirstName":"Augusta Ada","MobilePhone":null}"#,
    ]);
    let stored = env.emu.user(&ada_id).unwrap();
    assert_eq!(stored["FirstName"], "Augusta Ada");
    assert_eq!(stored["MobilePhone"], Value::Null);
    assert_eq!(stored["JobTitle"], "Engineer", "untouched fields stay");
    assert!(
        env.emu.log()[before..]
            .contains(&format!("POST /V2.0/services/data/objects/User/{ada_id}")),
        "POST updates"
    );

    // Disable / enable through the lifecycle API.
    env.ok(&["user", "disable", "clz", &ada_id]);
    assert_eq!(state_of(&env.emu.user(&ada_id).unwrap()), "/State/Disabled");
    assert_eq!(
        attr(&env.ok(&["user", "get", "clz", &ada_id]), "active"),
        false
    );
    env.ok(&["user", "enable", "clz", &ada_id]);
    assert_eq!(state_of(&env.emu.user(&ada_id).unwrap()), "/State/Active");
    assert!(
        env.emu
            .log()
            .contains(&"POST /V2.0/services/data/lifecycle".to_string())
    );
    // A create asking for a disabled user is created, then disabled.
    let off = id(&env.ok(&[
        "user",
        "create",
        "clz",
        "--json",
        r#"{"UserName":"off@example.com","LastName":"Off","active":false}"#,
    ]));
    assert_eq!(state_of(&env.emu.user(&off).unwrap()), "/State/Disabled");

    // A duplicate UserName is a conflict naming the existing user.
    let err = env.fails(&[
        "user",
        "create",
        "clz",
        "--json",
        r#"{"UserName":"ADA@example.com","LastName":"Other"}"#,
    ]);
    assert!(err.contains("[conflict]"), "{err}");
    assert!(
        err.contains("DuplicateUniqueValue") && err.contains(&ada_id),
        "{err}"
    );
    assert_eq!(env.emu.users().len(), 3, "admin, Ada and Off only");
    // Clarizen's own validation is reported as invalid input.
    let err = env.fails(&[
        "user",
        "create",
        "clz",
        "--json",
        r#"{"UserName":"nolast@example.com"}"#,
    ]);
    assert!(
        err.contains("[invalid-input]") && err.contains("LastName is required"),
        "{err}"
    );
    // Unknown attributes are refused before any request.
    let before = env.emu.log().len();
    let err = env.fails(&[
        "user",
        "update",
        "clz",
        &ada_id,
        "--json",
        r#"{"title":"x"}"#,
    ]);
    assert!(
        err.contains("[invalid-input]") && err.contains("`title`"),
        "{err}"
    );
    assert_eq!(env.emu.log().len(), before, "nothing was sent");
    let err = env.fails(&["user", "get", "clz", "../../etc"]);
    assert!(err.contains("[invalid-input]"), "{err}");

    // Groups are not provisioned to Clarizen.
    let err = env.fails(&["group", "list", "clz"]);
    assert!(err.contains("[unsupported]"), "{err}");

    // List pages through everything with the paging `from`; a session that
    // expires half-way is renewed without failing the listing.
    for n in 1..=4 {
        env.emu
            .add_user(json!({"UserName": format!("seed{n}@example.com"), "LastName": "Seed"}));
    }
    let (_, logins_before) = env.emu.auth_counts();
    let timeouts_before = env.emu.session_timeouts();
    env.emu.controls.expire_every_nth.store(3, Ordering::SeqCst);
    let users = env.ok(&["user", "list", "clz", "--page-size", "2"]);
    env.emu.controls.expire_every_nth.store(0, Ordering::SeqCst);
    let names: BTreeSet<String> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| attr(u, "UserName").as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 7, "{users}");
    assert!(names.contains(ADMIN) && names.contains("seed4@example.com"));
    let froms: Vec<u64> = env
        .emu
        .queries()
        .iter()
        .filter(|q| q["paging"]["limit"] == 2)
        .map(|q| q["paging"]["from"].as_u64().unwrap())
        .collect();
    assert!(
        froms.contains(&2) && froms.contains(&6),
        "later pages ask from the returned offset: {froms:?}"
    );
    assert!(
        env.emu.session_timeouts() > timeouts_before,
        "a session expired during the listing"
    );
    assert!(
        env.emu.auth_counts().1 >= logins_before + 2,
        "and the connector logged in again"
    );

    // Delete; a missing user is Clarizen's EntityNotFound, sent with HTTP 500.
    env.ok(&["user", "delete", "clz", &off]);
    assert!(env.emu.user(&off).is_none());
    let err = env.fails(&["user", "get", "clz", &off]);
    assert!(
        err.contains("[not-found]") && err.contains("EntityNotFound") && err.contains("HTTP 500"),
        "{err}"
    );
    let err = env.fails(&["user", "disable", "clz", &off]);
    assert!(err.contains("[not-found]"), "{err}");

    // 429 with Retry-After, the API quota, a 503.
    env.emu.burst_429(1, 7);
    let err = env.fails(&["user", "get", "clz", &ada_id]);
    assert!(err.contains("[rate-limited]"), "{err}");
    assert!(err.contains("retry after 7000 ms"), "{err}");
    env.emu.burst_quota(1);
    let err = env.fails(&["user", "get", "clz", &ada_id]);
    assert!(
        err.contains("[rate-limited]") && err.contains("API calls quota exceeded"),
        "{err}"
    );
    assert!(err.contains("retry after 1000 ms"), "{err}");
    env.emu.burst_5xx(1);
    let err = env.fails(&["user", "get", "clz", &ada_id]);
    assert!(err.contains("[transient]"), "{err}");
    env.ok(&["user", "get", "clz", &ada_id]);

    assert!(
        env.transcript.contains("egress"),
        "audit records were captured"
    );
    env.assert_password_never_leaked();
}

/// In one process: the session is cached in kv and reused across calls; an
/// expired session is renewed transparently; neither the password nor any
/// session id ever reaches the logs (trace level).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_reuse_and_expiry_in_process() {
    let (logs, _guard) = common::capture_logs();
    let emu = clarizen::start(ADMIN, &password());
    let runtime = Runtime::new(None).unwrap();
    let plugin = runtime
        .load_plugin(
            "clarizen",
            &common::plugin("provisio_plugin_clarizen"),
            None,
        )
        .await
        .unwrap();
    let origin = HostPattern::parse(&emu.url).unwrap();
    let secret = Arc::new(Secret {
        name: "clz_password".into(),
        value: SecretValue::new(password()),
        bound_to: vec![origin.clone()],
    });
    let spec = provisio::runtime::ConnectionSpec {
        name: "clz".into(),
        settings: BTreeMap::from([
            ("user_name".to_string(), ADMIN.to_string()),
            ("api_url".to_string(), emu.api_url.clone()),
        ]),
        allowed_hosts: vec![origin],
        private_hosts: vec![],
        secrets: BTreeMap::from([("password".to_string(), secret)]),
        secret_placements: BTreeMap::from([(
            "password".to_string(),
            vec![
                provisio::model::Placement::Login("discovery".into()),
                provisio::model::Placement::Login("login".into()),
            ],
        )]),
        limits: Limits::default(),
    };
    let conn = runtime.connect(Arc::new(plugin), spec).unwrap();
    let by_user_name = || Attribute {
        name: "UserName".into(),
        value: AttrValue::Text(ADMIN.into()),
    };

    conn.test_connection().await.unwrap();
    assert_eq!(emu.auth_counts(), (1, 1));
    for _ in 0..3 {
        let found = conn.find(ObjectKind::User, by_user_name()).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, emu.admin_id);
    }
    assert_eq!(
        emu.auth_counts(),
        (1, 1),
        "server location and session are reused from kv"
    );

    emu.expire_sessions();
    let found = conn.find(ObjectKind::User, by_user_name()).await.unwrap();
    assert_eq!(found.len(), 1, "an expired session does not fail the call");
    assert_eq!(emu.session_timeouts(), 1);
    assert_eq!(emu.auth_counts(), (1, 2), "one new login, no new discovery");
    conn.find(ObjectKind::User, by_user_name()).await.unwrap();
    assert_eq!(emu.auth_counts(), (1, 2), "the new session is reused");

    let text = logs.text();
    assert!(
        text.contains("the Clarizen session expired; logging in again"),
        "{text}"
    );
    assert!(text.contains("egress"), "trace logs were captured");
    assert!(!text.contains(&password()), "the password leaked into logs");
    for session in emu.session_ids() {
        assert!(!text.contains(&session), "a session id leaked into logs");
    }
}

#[test]
fn inspect_shows_the_manifest() {
    let plugin = common::plugin("provisio_plugin_clarizen");
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
        "clarizen ",
        "contract:  provisio:connector@0.2.0",
        "{api_url}",
        "https://*.clarizen.com",
        "user_name (required",
        "api_url",
        "https://api.clarizen.com/V2.0/services",
        "password (required",
        "UserName",
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
    assert_eq!(v["manifest"]["name"], "clarizen");
    assert_eq!(v["contract"], "provisio:connector@0.2.0");
}

// ------------------------------------------------------------------ sync

fn upn(n: u32) -> String {
    format!("user{n:02}@example.com")
}

/// The source directory: users assigned directly with the role "User".
struct Dir {
    users: BTreeMap<u32, Value>,
    assigned: BTreeSet<u32>,
}

impl Dir {
    fn new(users: impl Iterator<Item = u32>, assigned: impl Iterator<Item = u32>) -> Dir {
        Dir {
            users: users.map(|n| (n, Dir::user(n))).collect(),
            assigned: assigned.collect(),
        }
    }

    fn user(n: u32) -> Value {
        json!({"id": format!("u{n:02}"), "userPrincipalName": upn(n), "mail": upn(n),
               "displayName": format!("User {n:02}"), "givenName": format!("Given{n:02}"),
               "surname": format!("Sur{n:02}"), "jobTitle": "Engineer",
               "telephoneNumber": format!("+1 555 01{n:02}"), "accountEnabled": true})
    }

    fn write(&self, path: &Path) {
        let users: Vec<&Value> = self.users.values().collect();
        let assignments: Vec<Value> = self
            .assigned
            .iter()
            .map(|n| json!({"principal": format!("u{n:02}"), "connection": "clz", "role": "User"}))
            .collect();
        std::fs::write(
            path,
            serde_json::to_string_pretty(
                &json!({"users": users, "groups": [], "assignments": assignments}),
            )
            .unwrap(),
        )
        .unwrap();
    }
}

/// (FirstName, LastName, Email, JobTitle, OfficePhone, ExternalID, State) by UserName.
type Users = BTreeMap<String, [String; 7]>;

fn row(n: u32, first: &str, title: &str, state: &str) -> (String, [String; 7]) {
    (
        upn(n),
        [
            first.to_string(),
            format!("Sur{n:02}"),
            upn(n),
            title.to_string(),
            format!("+1 555 01{n:02}"),
            format!("u{n:02}"),
            state.to_string(),
        ],
    )
}

const ACTIVE: &str = "/State/Active";
const DISABLED: &str = "/State/Disabled";

/// The emulator's whole content, admin excluded. Fails on a duplicate UserName.
fn contents(emu: &clarizen::Emulator) -> Users {
    let mut users = Users::new();
    for (guid, u) in emu.users() {
        if guid == emu.admin_id {
            continue;
        }
        let text = |k: &str| u.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let user_name = text("UserName");
        let row = [
            text("FirstName"),
            text("LastName"),
            text("Email"),
            text("JobTitle"),
            text("OfficePhone"),
            text("ExternalID"),
            state_of(&u),
        ];
        assert!(
            users.insert(user_name.to_lowercase(), row).is_none(),
            "duplicate UserName {user_name}"
        );
    }
    users
}

fn sync(env: &mut Env) -> Value {
    let (ok, stdout, stderr) = env.run_with(&password(), &["sync", "clz", "--json"]);
    assert!(ok, "sync failed:\n{stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    if summary["failures"] != 0 {
        let (_, logs, _) = env.run_with(
            &password(),
            &[
                "logs",
                "--connection",
                "clz",
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
    // 12 requests/s: never more than 24 in any second, under Clarizen's 25.
    let mut env = setup(12);
    let mut dir = Dir::new(1..=12, 1..=10);
    dir.write(&env.directory);

    // 1. Initial cycle: the ten assigned users are created.
    let s = sync(&mut env);
    assert_eq!(s["cycle_type"], "initial", "{s}");
    let mut expected: Users = (1..=10)
        .map(|n| row(n, &format!("Given{n:02}"), "Engineer", ACTIVE))
        .collect();
    assert_eq!(contents(&env.emu), expected);

    // 2. Nothing changed: no target call at all.
    let s = sync(&mut env);
    assert_eq!(s["target_calls"], 0, "{s}");

    // 3. A rename, a new title, a disabled account, a hard delete, an
    //    unassignment, a newly assigned user and a new hire; the session
    //    expires every few requests during the cycle.
    dir.users.get_mut(&1).unwrap()["givenName"] = json!("Ada");
    dir.users.get_mut(&2).unwrap()["jobTitle"] = json!("Manager");
    dir.users.get_mut(&3).unwrap()["accountEnabled"] = json!(false);
    dir.users.remove(&4);
    dir.assigned.remove(&4);
    dir.assigned.remove(&5);
    dir.assigned.insert(11);
    dir.users.insert(13, Dir::user(13));
    dir.assigned.insert(13);
    dir.write(&env.directory);
    let timeouts = env.emu.session_timeouts();
    env.emu.controls.expire_every_nth.store(4, Ordering::SeqCst);
    let s = sync(&mut env);
    env.emu.controls.expire_every_nth.store(0, Ordering::SeqCst);
    assert!(
        env.emu.session_timeouts() > timeouts,
        "sessions expired during the cycle"
    );
    assert!(s["target_calls"].as_u64().unwrap() < 20, "{s}");
    expected.insert(
        row(1, "Ada", "Engineer", ACTIVE).0,
        row(1, "Ada", "Engineer", ACTIVE).1,
    );
    expected.insert(upn(2), row(2, "Given02", "Manager", ACTIVE).1);
    expected.insert(upn(3), row(3, "Given03", "Engineer", DISABLED).1);
    expected.remove(&upn(4));
    expected.insert(upn(5), row(5, "Given05", "Engineer", DISABLED).1);
    expected.insert(upn(11), row(11, "Given11", "Engineer", ACTIVE).1);
    expected.insert(upn(13), row(13, "Given13", "Engineer", ACTIVE).1);
    assert_eq!(contents(&env.emu), expected);

    // 4. In step again: nothing to send.
    let s = sync(&mut env);
    assert_eq!(s["target_calls"], 0, "{s}");
    env.assert_password_never_leaked();
}

#[test]
fn sync_converges_through_faults_without_duplicates() {
    // Under the quota's 25/s (12/s, paced evenly): the
    // quota answers come from the every-n-th switch, so the number of faults
    // does not depend on the machine's load.
    let mut env = setup(12);
    let dir = Dir::new(1..=16, 1..=16);
    dir.write(&env.directory);
    let c = &env.emu.controls;
    c.retry_after.store(1, Ordering::SeqCst);
    // Sparse enough that no object draws a fault on all of its 4 attempts
    // (about 2 requests each); dense enough that each kind occurs.
    c.every_nth_429.store(29, Ordering::SeqCst);
    c.every_nth_quota.store(37, Ordering::SeqCst);
    c.every_nth_5xx.store(41, Ordering::SeqCst);
    c.expire_every_nth.store(11, Ordering::SeqCst);
    c.slow_ms.store(40, Ordering::SeqCst);

    let s = sync(&mut env);
    assert_eq!(s["cycle_type"], "initial", "{s}");
    let expected: Users = (1..=16)
        .map(|n| row(n, &format!("Given{n:02}"), "Engineer", ACTIVE))
        .collect();
    assert_eq!(contents(&env.emu), expected, "every user once, none twice");
    let log = env.emu.log();
    assert!(env.emu.quota_answers() > 0, "quota answers were given");
    assert!(env.emu.session_timeouts() > 0, "sessions expired");
    assert!(log.len() > 40, "{} requests", log.len());

    // Faults off: the target is in step, nothing more is sent.
    for c in [
        &env.emu.controls.every_nth_429,
        &env.emu.controls.every_nth_quota,
        &env.emu.controls.every_nth_5xx,
        &env.emu.controls.expire_every_nth,
    ] {
        c.store(0, Ordering::SeqCst);
    }
    let s = sync(&mut env);
    assert_eq!(s["target_calls"], 0, "{s}");
    assert_eq!(contents(&env.emu), expected);
    env.assert_password_never_leaked();
}

#[test]
fn a_sync_paced_at_the_quota_never_trips_the_per_second_quota() {
    // The connection's budget is Clarizen's own quota, 25 requests/s, and the
    // emulator enforces that quota over a fixed one-second window. 40 new
    // users make well over 25 requests; the host paces them evenly (a burst
    // of one), so no window ever holds 26. Without the host's limiter this
    // sync sends them as fast as the emulator answers and trips the quota.
    let mut env = setup(25);
    let dir = Dir::new(1..=40, 1..=40);
    dir.write(&env.directory);
    let started = std::time::Instant::now();
    let (ok, stdout, stderr) = env.run_with(&password(), &["sync", "clz", "--json"]);
    let took = started.elapsed();
    let requests = env.emu.log().len();
    assert!(ok, "sync failed:\n{stderr}");
    assert_eq!(
        env.emu.quota_answers(),
        0,
        "{requests} requests in {took:?} tripped the quota: {stdout}"
    );
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["failures"], 0, "{summary}");
    assert_eq!(contents(&env.emu).len(), 40);
    env.assert_password_never_leaked();
}
