use super::*;
use std::io::Write;

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(bytes).unwrap();
    path
}

fn read_json(text: &str) -> SourceRead {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "directory.json", text.as_bytes());
    JsonFileSource::new(path).read().unwrap()
}

fn read_csv(text: &[u8]) -> SourceRead {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "users.csv", text);
    CsvUsersSource::new(path).read().unwrap()
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

const GOOD: &str = r#"{
  "users": [
    {"id": "u1", "userPrincipalName": "ada@example.com", "accountEnabled": true,
     "givenName": "Ada", "employeeId": 1001, "proxyAddresses": ["smtp:a@x", "smtp:b@x"],
     "manager": "u2", "extra": null},
    {"id": "u2", "userPrincipalName": "bob@example.com", "accountEnabled": false},
    {"id": "u3", "deleted": "soft"},
    {"id": "u4", "deleted": "HARD"}
  ],
  "groups": [
    {"id": "g1", "displayName": "Engineering", "members": ["u1", "g2", "u1"], "description": "eng"},
    {"id": "g2", "displayName": "Backend", "members": ["u2"], "deleted": "soft"}
  ],
  "assignments": [
    {"principal": "u1", "connection": "demo", "role": "Admin"},
    {"principal": "g1", "connection": "demo"}
  ]
}"#;

#[test]
fn reads_a_good_json_directory() {
    let read = read_json(GOOD);
    assert!(read.issues.is_empty(), "{:?}", read.issues);
    let d = &read.directory;
    assert_eq!(d.users.len(), 4);
    let u1 = d.user("u1").unwrap();
    assert_eq!(u1.attributes["id"], text("u1"));
    assert_eq!(u1.attributes["objectId"], text("u1"));
    assert_eq!(u1.attributes["accountEnabled"], Value::Boolean(true));
    assert_eq!(u1.attributes["employeeId"], Value::Integer(1001));
    assert_eq!(u1.attributes["manager"], text("u2"));
    assert_eq!(
        u1.attributes["proxyAddresses"],
        Value::TextList(vec!["smtp:a@x".into(), "smtp:b@x".into()])
    );
    assert!(!u1.attributes.contains_key("extra"), "nulls are left out");
    assert_eq!(u1.attributes["IsSoftDeleted"], Value::Boolean(false));
    assert_eq!(u1.deleted, Deletion::None);
    // accountEnabled = false is not a deletion.
    let u2 = d.user("u2").unwrap();
    assert_eq!(u2.attributes["IsSoftDeleted"], Value::Boolean(false));
    let u3 = d.user("u3").unwrap();
    assert_eq!(u3.deleted, Deletion::Soft);
    assert_eq!(u3.attributes["IsSoftDeleted"], Value::Boolean(true));
    assert!(!u3.attributes.contains_key("deleted"));
    assert_eq!(d.user("u4").unwrap().deleted, Deletion::Hard);

    let g1 = d.group("g1").unwrap();
    assert_eq!(g1.members, vec!["u1".to_string(), "g2".to_string()]);
    assert_eq!(g1.attributes["objectId"], text("g1"));
    assert_eq!(g1.attributes["description"], text("eng"));
    assert!(!g1.attributes.contains_key("members"));
    assert!(!g1.attributes.contains_key("IsSoftDeleted"));
    assert_eq!(d.group("g2").unwrap().deleted, Deletion::Soft);

    assert_eq!(d.assignments.len(), 2);
    assert_eq!(d.assignments[0].role, "Admin");
    assert_eq!(d.assignments[1].role, DEFAULT_ROLE);
    assert_eq!(d.assignments_for("demo").count(), 2);
    assert_eq!(d.assignments_for("other").count(), 0);
    assert!(d.user("nobody").is_none() && d.group("u1").is_none());
}

#[test]
fn records_carry_line_numbers_and_display_their_location() {
    let read = read_json(GOOD);
    let d = &read.directory;
    assert_eq!(d.user("u1").unwrap().location.line, Some(3));
    assert_eq!(d.user("u2").unwrap().location.line, Some(6));
    assert_eq!(d.user("u4").unwrap().location.record, 4);
    assert_eq!(d.group("g2").unwrap().location.line, Some(12));
    assert_eq!(d.assignments[1].location.line, Some(16));
    let loc = &d.user("u2").unwrap().location;
    let shown = loc.to_string();
    assert!(
        shown.ends_with("directory.json: users[2] (id \"u2\"), line 6"),
        "{shown}"
    );
    let shown = d.assignments[1].location.to_string();
    assert!(
        shown.ends_with("assignments[2] (principal \"g1\"), line 16"),
        "{shown}"
    );
}

#[test]
fn each_kind_of_bad_json_record_is_an_issue_and_skipped() {
    let read = read_json(
        r#"{"users": [
  {"id": "ok"},
  {"userPrincipalName": "no-id@example.com"},
  {"id": "ok"},
  {"id": "b1", "accountEnabled": "yes"},
  {"id": "b2", "deleted": "maybe"},
  {"id": 7},
  "not an object",
  {"id": "b3", "address": {"city": "Oslo"}},
  {"id": "b4", "objectId": "other"},
  {"id": "b5", "IsSoftDeleted": true},
  {"id": "  "},
  {"id": "b6", "manager": 12},
  {"id": "b7", "deleted": true}
],
"groups": [
  {"id": "g1", "members": ["ok", "ghost", "b1"]},
  {"id": "ok"},
  {"id": "g2", "members": "ok"},
  {"id": "g3", "members": [1]}
],
"assignments": [
  {"principal": "ok", "connection": "demo"},
  {"connection": "demo"},
  {"principal": "ghost", "connection": "demo"},
  {"principal": "ok"},
  {"principal": "ok", "connection": "demo", "rol": "Admin"},
  {"principal": "ok", "connection": "demo", "role": ""},
  {"principal": "b1", "connection": "demo"}
]}"#,
    );
    let d = &read.directory;
    assert_eq!(d.users.keys().collect::<Vec<_>>(), vec!["ok"]);
    assert_eq!(d.groups.keys().collect::<Vec<_>>(), vec!["g1"]);
    assert_eq!(d.group("g1").unwrap().members, vec!["ok".to_string()]);
    assert_eq!(d.assignments.len(), 1);

    let msgs: Vec<String> = read.issues.iter().map(|i| i.to_string()).collect();
    let find = |needle: &str| {
        msgs.iter()
            .find(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("no issue with {needle:?} in {msgs:#?}"))
            .clone()
    };
    assert!(find("missing 'id'").contains("users[2], line 3"));
    assert!(find("duplicate id \"ok\"").contains("users[3] (id \"ok\"), line 4"));
    assert!(find("'accountEnabled' must be true or false").contains("(id \"b1\"), line 5"));
    assert!(find("unknown deletion state \"maybe\"").contains("line 6"));
    assert!(find("'id' must be a string").contains("line 7"));
    assert!(find("must be a JSON object, found a string").contains("line 8"));
    assert!(find("name.givenName").contains("(id \"b3\")"));
    assert!(find("'objectId' is derived").contains("b4"));
    assert!(find("'IsSoftDeleted' is derived").contains("b5"));
    find("'id' is empty");
    find("'manager' must be the manager's user id");
    find("'deleted' must be \"soft\" or \"hard\", found a boolean");
    // Group problems.
    assert!(
        msgs.iter()
            .any(|m| m.contains("duplicate id \"ok\"")
                && m.contains("groups[2] (id \"ok\"), line 18")),
        "{msgs:#?}"
    );
    find("'members' must be a list");
    find("'members' item 1 must be a user or group id");
    let ghost = find("member \"ghost\" is not a user or group");
    assert!(ghost.contains("groups[1] (id \"g1\"), line 17"), "{ghost}");
    assert!(ghost.contains("reference dropped"), "{ghost}");
    find("member \"b1\" refers to a record that was skipped");
    // Assignment problems.
    find("missing 'principal'");
    assert!(find("principal \"ghost\" is not a user or group").contains("assignments[3]"));
    find("missing 'connection'");
    find("unknown field \"rol\"");
    find("'role' is empty");
    find("principal \"b1\" refers to a record that was skipped");

    let skipped = read.skipped_ids();
    assert!(skipped.contains("b1") && skipped.contains("b7") && skipped.contains("g2"));
    assert!(
        !skipped.contains("g1"),
        "g1 was kept, only a member dropped"
    );
    assert!(
        skipped.contains("ok"),
        "the duplicate and the bad assignments name 'ok'"
    );
}

#[test]
fn whole_file_failures_are_errors_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[u8], &str, usize); 6] = [
        (
            b"{\n  \"users\": [\n    {\"id\": \"u1\",}\n  ]\n}",
            "key must be a string",
            3,
        ),
        (b"not json at all", "expected", 1),
        (b"", "EOF", 1),
        (b"[1, 2]", "directory file", 1),
        (b"{\"user\": []}", "unknown field `user`", 1),
        (b"{\"users\": {}}", "expected a sequence", 1),
    ];
    for (bytes, needle, line) in cases {
        let path = write(&dir, "bad.json", bytes);
        let err = JsonFileSource::new(&path).read().unwrap_err();
        let shown = err.to_string();
        match err {
            SourceError::Syntax {
                line: l, column, ..
            } => {
                assert_eq!(l, line, "{shown}");
                assert!(column >= 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(shown.contains(needle), "{shown} should contain {needle}");
        assert!(shown.contains("bad.json"), "{shown}");
    }
    // Non-UTF-8 bytes: the position of the first bad byte.
    let path = write(
        &dir,
        "latin1.json",
        b"{\"users\": [\n{\"id\": \"J\xf6rg\"}]}",
    );
    match JsonFileSource::new(&path).read().unwrap_err() {
        SourceError::Syntax {
            line,
            column,
            message,
            ..
        } => {
            assert_eq!((line, column), (2, 10));
            assert!(message.contains("UTF-8"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // Binary garbage.
    let path = write(&dir, "garbage.json", &[0, 159, 146, 150, 255, 10, 1]);
    assert!(matches!(
        JsonFileSource::new(&path).read(),
        Err(SourceError::Syntax { .. })
    ));
    // Missing file.
    let err = JsonFileSource::new(dir.path().join("missing.json"))
        .read()
        .unwrap_err();
    assert!(matches!(err, SourceError::Read { .. }));
    assert!(err.to_string().contains("missing.json"), "{err}");
}

#[test]
fn json_tolerates_a_byte_order_mark_and_empty_documents() {
    let read = read_json("\u{feff}{\"users\": [{\"id\": \"u1\"}]}");
    assert!(read.directory.user("u1").is_some());
    assert_eq!(read.directory.user("u1").unwrap().location.line, Some(1));
    let read = read_json("{}");
    assert!(read.directory.users.is_empty() && read.issues.is_empty());
}

#[test]
fn reads_csv_users_with_quoting_booleans_and_line_numbers() {
    let read = read_csv(
        b"\xef\xbb\xbfID, userPrincipalName ,displayName,AccountEnabled,deleted,department\n\
u1,ada@example.com,\"Lovelace, Ada\",TRUE,,Engineering\n\
u2,bob@example.com,\"Bob \"\"the builder\"\"\",no,soft,\n\
u3,cy@example.com,\"Multi\nline\",1,hard,Sales\n\
u4,dee@example.com,Dee,,,\n",
    );
    assert!(read.issues.is_empty(), "{:?}", read.issues);
    let d = &read.directory;
    let u1 = d.user("u1").unwrap();
    assert_eq!(u1.attributes["displayName"], text("Lovelace, Ada"));
    assert_eq!(u1.attributes["userPrincipalName"], text("ada@example.com"));
    assert_eq!(u1.attributes["accountEnabled"], Value::Boolean(true));
    assert_eq!(u1.attributes["id"], text("u1"));
    assert_eq!(u1.attributes["objectId"], text("u1"));
    assert_eq!(u1.location.line, Some(2));
    assert_eq!(u1.location.record, 1);
    let u2 = d.user("u2").unwrap();
    assert_eq!(u2.attributes["displayName"], text("Bob \"the builder\""));
    assert_eq!(u2.attributes["accountEnabled"], Value::Boolean(false));
    assert_eq!(u2.deleted, Deletion::Soft);
    assert!(!u2.attributes.contains_key("department"), "empty = absent");
    let u3 = d.user("u3").unwrap();
    assert_eq!(u3.attributes["displayName"], text("Multi\nline"));
    assert_eq!(u3.deleted, Deletion::Hard);
    assert_eq!(u3.location.line, Some(4));
    let u4 = d.user("u4").unwrap();
    assert_eq!(u4.location.line, Some(6), "after the two-line record");
    assert!(!u4.attributes.contains_key("accountEnabled"));
    let shown = u4.location.to_string();
    assert!(
        shown.ends_with("users.csv: record 4 (id \"u4\"), line 6"),
        "{shown}"
    );
}

#[test]
fn bad_csv_records_are_issues_and_skipped() {
    let read = read_csv(
        b"id,accountEnabled,deleted,displayName\n\
u1,true,,One\n\
u2,maybe,,Two\n\
,true,,No id\n\
u3,true,gone,Three\n\
u4,true\n\
u5,true,,Five,extra\n\
u6,true,,J\xf6rg\n\
u1,false,,Again\n\
u7,false,,\"unterminated\n",
    );
    let d = &read.directory;
    assert_eq!(d.users.keys().collect::<Vec<_>>(), vec!["u1", "u7"]);
    assert_eq!(d.user("u1").unwrap().attributes["displayName"], text("One"));
    let msgs: Vec<String> = read.issues.iter().map(|i| i.to_string()).collect();
    let find = |needle: &str| {
        msgs.iter()
            .find(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("no issue with {needle:?} in {msgs:#?}"))
            .clone()
    };
    assert!(find("found \"maybe\"").contains("record 2 (id \"u2\"), line 3"));
    assert!(find("missing 'id'").contains("record 3, line 4"));
    assert!(find("unknown deletion state \"gone\"").contains("line 5"));
    assert!(find("has 2 fields but the header has 4").contains("(id \"u4\"), line 6"));
    assert!(find("has 5 fields").contains("line 7"));
    assert!(find("\"displayName\" is not UTF-8").contains("(id \"u6\"), line 8"));
    assert!(find("duplicate id \"u1\"").contains("line 9"));
    assert_eq!(read.issues.len(), 7, "{msgs:#?}");
}

#[test]
fn csv_whole_file_failures_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[u8], &str); 5] = [
        (b"", "no header row"),
        (b"userPrincipalName,displayName\na@x,A\n", "no 'id' column"),
        (b"id,mail,Mail,mail\n", "appears twice"),
        (b"id,,mail\n", "column 2 has no name"),
        (b"id,\xff\xfe\n", "not UTF-8"),
    ];
    for (bytes, needle) in cases {
        let path = write(&dir, "users.csv", bytes);
        let err = CsvUsersSource::new(&path).read().unwrap_err();
        assert!(
            err.to_string().contains(needle),
            "{err} should contain {needle}"
        );
    }
    // Binary garbage with a usable-looking header still never panics.
    let path = write(&dir, "garbage.csv", b"id\n\x00\x9f\x92\n\xff,\xfe,\"\n");
    let read = CsvUsersSource::new(&path).read().unwrap();
    assert!(read.directory.users.len() <= 1);
    assert!(!read.issues.is_empty());
}

#[test]
fn directory_source_merges_csv_users_into_the_json_directory() {
    let dir = tempfile::tempdir().unwrap();
    let json = write(
        &dir,
        "directory.json",
        br#"{"users": [{"id": "u1"}],
 "groups": [{"id": "g1", "members": ["u1", "c1", "c9"]}],
 "assignments": [{"principal": "c1", "connection": "demo"}, {"principal": "c9", "connection": "demo"}]}"#,
    );
    let csv = write(&dir, "users.csv", b"id,mail\nc1,c1@x\nu1,dup@x\ng1,dup@x\n");
    let source = DirectorySource {
        json: Some(json.clone()),
        users_csv: Some(csv),
    };
    assert!(
        source.describe().contains("directory.json") && source.describe().contains("users.csv")
    );
    let read = source.read().unwrap();
    let d = &read.directory;
    assert_eq!(d.users.keys().collect::<Vec<_>>(), vec!["c1", "u1"]);
    assert_eq!(d.group("g1").unwrap().members, vec!["u1", "c1"]);
    assert_eq!(d.assignments.len(), 1);
    assert_eq!(d.assignments[0].principal, "c1");
    let msgs: Vec<String> = read.issues.iter().map(|i| i.to_string()).collect();
    assert_eq!(msgs.len(), 4, "{msgs:#?}");
    assert!(
        msgs[0].contains("users.csv: record 2 (id \"u1\"), line 3"),
        "{msgs:#?}"
    );
    assert!(msgs[0].contains("already used by") && msgs[0].contains("directory.json: users[1]"));
    assert!(msgs[1].contains("record 3 (id \"g1\")"), "{msgs:#?}");
    assert!(msgs[2].contains("member \"c9\""), "{msgs:#?}");
    assert!(msgs[3].contains("principal \"c9\""), "{msgs:#?}");

    // Either file alone works; neither is an error.
    let only_json = DirectorySource {
        json: Some(json),
        users_csv: None,
    };
    assert_eq!(only_json.read().unwrap().directory.users.len(), 1);
    let none = DirectorySource {
        json: None,
        users_csv: None,
    };
    assert!(matches!(none.read(), Err(SourceError::NothingConfigured)));
}

#[test]
fn line_index_positions() {
    let idx = LineIndex::new(b"ab\ncd\n\nx");
    assert_eq!(idx.position(0), (1, 1));
    assert_eq!(idx.position(2), (1, 3));
    assert_eq!(idx.position(3), (2, 1));
    assert_eq!(idx.position(6), (3, 1));
    assert_eq!(idx.position(7), (4, 1));
}

#[test]
fn type_errors_are_issues_not_coerced() {
    let read = read_json(
        r#"{"users": [
  {"id": "u1", "jobTitle": 123},
  {"id": "u2", "accountEnabled": "yes"},
  {"id": "u3", "proxyAddresses": "smtp:a@x"},
  {"id": "u4", "displayName": true},
  {"id": "ok", "jobTitle": "Engineer", "employeeId": 7, "accountEnabled": null}
],
"groups": [
  {"id": "g1", "description": ["a"]},
  {"id": "g2", "securityEnabled": "true"}
]}"#,
    );
    let d = &read.directory;
    assert_eq!(d.users.keys().collect::<Vec<_>>(), vec!["ok"]);
    assert!(d.groups.is_empty());
    let shown: Vec<String> = read.issues.iter().map(|i| i.to_string()).collect();
    for (id, line, message) in [
        ("u1", 2, "'jobTitle' must be a string, found a number"),
        (
            "u2",
            3,
            "'accountEnabled' must be true or false, found a string",
        ),
        (
            "u3",
            4,
            "'proxyAddresses' must be a list of strings, found a string",
        ),
        ("u4", 5, "'displayName' must be a string, found a boolean"),
        ("g1", 9, "'description' must be a string, found an array"),
        (
            "g2",
            10,
            "'securityEnabled' must be true or false, found a string",
        ),
    ] {
        assert!(
            shown
                .iter()
                .any(|s| s.contains(&format!("(id \"{id}\"), line {line}"))
                    && s.contains(message)
                    && s.contains("record skipped")),
            "{id}: {message} not in {shown:#?}"
        );
    }
}

#[test]
fn a_skipped_user_with_an_id_holds_only_that_user() {
    let read = read_json(
        r#"{"users": [
  {"id": "u1", "accountEnabled": "yes"},
  {"id": "u2"}
],
"groups": [{"id": "g1", "members": ["u1", "u2"]}],
"assignments": [{"principal": "u1", "connection": "demo"}]}"#,
    );
    let h = read.holds();
    assert!(h.holds_user("u1") && !h.holds_user("u2"), "{h:?}");
    assert!(!h.all_users && !h.all_groups && !h.holds_group("g1"));
    assert!(h.holds_removal("g1", "u1", false));
    assert!(!h.holds_removal("g1", "u2", false));
    // The assignment skipped because of u1 is no second cause.
    assert_eq!(h.causes.len(), 1, "{h:?}");
    let reason = h.reason();
    assert!(
        reason.starts_with("held: the source had 1 malformed record: ")
            && reason.contains("directory.json:2 (users[1])"),
        "{reason}"
    );
}

#[test]
fn a_skipped_group_holds_the_group_its_members_and_every_user() {
    let read = read_json(
        r#"{"users": [{"id": "u1"}, {"id": "u2"}],
"groups": [
  {"id": "g1", "members": ["u1"]},
  {"id": "g2", "members": "u1,u2"}
]}"#,
    );
    let h = read.holds();
    assert!(h.holds_group("g2") && h.groups.contains("g2"), "{h:?}");
    assert!(h.all_users, "users may be in scope through g2: {h:?}");
    assert!(h.holds_user("u1") && h.holds_user("u2"));
    assert!(h.holds_removal("g2", "u1", true), "g2's members stay");
    assert!(h.holds_removal("g1", "u2", false), "an inactive user stays");
    assert!(
        !h.holds_removal("g1", "u2", true),
        "an active user left g1's own member list"
    );
    assert!(
        h.reason().contains("directory.json:4 (groups[2])"),
        "{}",
        h.reason()
    );
}

#[test]
fn records_without_an_id_or_a_bad_assignment_hold_their_whole_kind() {
    let read = read_json(r#"{"users": [{"id": "u1"}, {"userPrincipalName": "x@example.com"}]}"#);
    let h = read.holds();
    assert!(h.all_users && !h.all_groups, "{h:?}");
    assert!(h.holds_user("anyone") && h.holds_removal("g", "anyone", false));

    let read = read_json(r#"{"groups": [{"displayName": "no id"}]}"#);
    let h = read.holds();
    assert!(h.all_users && h.all_groups, "{h:?}");

    let read = read_json(r#"{"users": [{"id": "u1"}], "assignments": [{"principal": "u1"}]}"#);
    let h = read.holds();
    assert!(h.all_users && h.all_groups, "{h:?}");

    let read = read_csv(b"id,accountEnabled\nu1,true\n,true\nu3,maybe\n");
    let h = read.holds();
    assert!(h.all_users && h.users.contains("u3"), "{h:?}");
    assert_eq!(h.causes.len(), 2);
    assert!(
        h.reason().contains("users.csv:3 (record 2)"),
        "{}",
        h.reason()
    );

    assert!(read_json(GOOD).holds().is_empty());
}
