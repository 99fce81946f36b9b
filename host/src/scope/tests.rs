use super::*;
use crate::source::{JsonFileSource, Source};

fn directory(json: &str) -> Directory {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("directory.json");
    std::fs::write(&path, json).unwrap();
    let read = JsonFileSource::new(path).read().unwrap();
    assert!(read.issues.is_empty(), "{:?}", read.issues);
    read.directory
}

fn clause(attribute: &str, operator: &str, value: Option<&str>) -> Clause {
    Clause {
        attribute: attribute.to_string(),
        operator: operator.parse().unwrap(),
        value: value.map(str::to_string),
    }
}

fn filter(clauses: Vec<Clause>) -> ScopingFilter {
    ScopingFilter { clauses }
}

fn all_users_with(filters: Vec<ScopingFilter>) -> ScopeConfig {
    ScopeConfig {
        assigned_only: false,
        user_filters: filters,
        ..ScopeConfig::default()
    }
}

/// Ids of the users in scope.
fn in_scope(dir: &Directory, cfg: &ScopeConfig) -> Vec<String> {
    let scope = evaluate(dir, "demo", cfg);
    assert!(scope.config_error.is_none(), "{:?}", scope.config_error);
    scope.users_in_scope().map(str::to_string).collect()
}

const PEOPLE: &str = r#"{"users": [
  {"id": "ada", "department": "Engineering", "mail": "Ada@Example.COM", "accountEnabled": true,
   "level": 7, "uac": 512, "score": 2.5, "tags": ["Blue", "green"], "country": "NO", "note": ""},
  {"id": "bob", "department": "sales", "mail": "bob@other.org", "accountEnabled": false,
   "level": "3", "uac": 514, "score": "10", "isContractor": "TRUE", "tags": []},
  {"id": "cy", "department": "Sales Engineering", "active": "false", "level": 12, "uac": "2"}
]}"#;

fn check(op: &str, attribute: &str, value: Option<&str>, expected: &[&str]) {
    let dir = directory(PEOPLE);
    let cfg = all_users_with(vec![filter(vec![clause(attribute, op, value)])]);
    assert!(cfg.validate().is_ok(), "{op}: {:?}", cfg.validate());
    assert_eq!(
        in_scope(&dir, &cfg),
        expected.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "{attribute} {op} {value:?}"
    );
}

#[test]
fn equals_and_not_equals_are_case_insensitive() {
    check("EQUALS", "department", Some("SALES"), &["bob"]);
    check("EQUALS", "mail", Some("ada@example.com"), &["ada"]);
    check("EQUALS", "Department", Some("engineering"), &["ada"]);
    check("EQUALS", "level", Some("7"), &["ada"]);
    check("EQUALS", "level", Some("7.0"), &["ada"]);
    check("EQUALS", "accountEnabled", Some("True"), &["ada"]);
    check("EQUALS", "tags", Some("GREEN"), &["ada"]);
    // Null attributes never equal, so they pass NOT EQUALS.
    check("NOT EQUALS", "department", Some("sales"), &["ada", "cy"]);
    check("NOT EQUALS", "mail", Some("bob@other.org"), &["ada", "cy"]);
}

#[test]
fn ends_with_and_includes() {
    check("ENDS_WITH", "mail", Some("@example.com"), &["ada"]);
    check(
        "ends with",
        "department",
        Some("ENGINEERING"),
        &["ada", "cy"],
    );
    check("INCLUDES", "department", Some("ale"), &["bob", "cy"]);
    check("INCLUDES", "tags", Some("lu"), &["ada"]);
    check("INCLUDES", "nothing", Some("a"), &[]);
}

#[test]
fn regex_match_is_partial_and_case_sensitive() {
    check("REGEX MATCH", "department", Some("^Sales"), &["cy"]);
    check(
        "REGEX MATCH",
        "department",
        Some("(?i)^sales"),
        &["bob", "cy"],
    );
    check("REGEX_MATCH", "mail", Some("example"), &[]);
    check(
        "NOT REGEX MATCH",
        "department",
        Some("^Sales"),
        &["ada", "bob"],
    );
    check("not_regex_match", "mail", Some("@"), &["cy"]);
}

#[test]
fn greater_than_is_numeric() {
    check("GREATER_THAN", "level", Some("3"), &["ada", "cy"]);
    check(
        "GREATER_THAN_OR_EQUALS",
        "level",
        Some("3"),
        &["ada", "bob", "cy"],
    );
    check("GREATER_THAN", "level", Some("12"), &[]);
    check("GREATER_THAN_OR_EQUALS", "level", Some("12"), &["cy"]);
    // Numeric, not text order: "10" > 9 although "10" < "9" as text.
    check("GREATER_THAN", "score", Some("9"), &["bob"]);
    check("GREATER_THAN", "score", Some("2.4"), &["ada", "bob"]);
    check("GREATER_THAN", "department", Some("0"), &[]);
}

#[test]
fn bitwise_and_operators() {
    // 512 = 0b10_0000_0000, 514 = 512 | 2, "2" = 2; 2 is ACCOUNTDISABLE.
    check("&", "uac", Some("2"), &["bob", "cy"]);
    check("!&", "uac", Some("2"), &["ada"]);
    check("&", "uac", Some("512"), &["ada", "bob"]);
    check("!&", "uac", Some("512"), &["cy"]);
    // Non-integer attributes satisfy neither.
    check("&", "department", Some("1"), &[]);
    check("!&", "department", Some("1"), &[]);
    check("!&", "score", Some("2"), &[]);
}

#[test]
fn boolean_and_null_operators() {
    check("IS TRUE", "accountEnabled", None, &["ada"]);
    check("IS FALSE", "accountEnabled", None, &["bob"]);
    check("IS FALSE", "active", None, &["cy"]);
    check("is_true", "isContractor", None, &["bob"]);
    check("IS FALSE", "isContractor", None, &[]);
    check("IS TRUE", "department", None, &[]);
    check("IS NULL", "mail", None, &["cy"]);
    check("IS NULL", "note", None, &["ada", "bob", "cy"]);
    check("IS NULL", "tags", None, &["bob", "cy"]);
    check("IS NOT NULL", "mail", None, &["ada", "bob"]);
    check("IS NOT NULL", "level", None, &["ada", "bob", "cy"]);
}

#[test]
fn clauses_are_anded_and_filters_ored() {
    let dir = directory(PEOPLE);
    let sales = clause("department", "INCLUDES", Some("sales"));
    let enabled = clause("accountEnabled", "IS FALSE", None);
    let high = clause("level", "GREATER_THAN", Some("10"));
    // AND: sales and disabled.
    let cfg = all_users_with(vec![filter(vec![sales.clone(), enabled])]);
    assert_eq!(in_scope(&dir, &cfg), vec!["bob"]);
    let cfg = all_users_with(vec![filter(vec![sales, high.clone()])]);
    assert_eq!(in_scope(&dir, &cfg), vec!["cy"]);
    // OR: ada's engineering filter or the high-level filter.
    let cfg = all_users_with(vec![
        filter(vec![clause("department", "EQUALS", Some("engineering"))]),
        filter(vec![high]),
    ]);
    assert_eq!(in_scope(&dir, &cfg), vec!["ada", "cy"]);
    let scope = evaluate(&dir, "demo", &cfg);
    assert!(
        scope.users["cy"]
            .reason
            .ends_with("passed user_filters (filter 2)"),
        "{}",
        scope.users["cy"].reason
    );
    let bob = &scope.users["bob"];
    assert!(!bob.in_scope);
    assert!(
        bob.reason.starts_with("filtered out by user_filters: filter 1 failed on department EQUALS \"engineering\"; filter 2 failed on level GREATER_THAN \"10\""),
        "{}",
        bob.reason
    );
    // No filters: everyone.
    assert_eq!(
        in_scope(&dir, &all_users_with(vec![])),
        vec!["ada", "bob", "cy"]
    );
}

const ORG: &str = r#"{
 "users": [
  {"id": "u1", "department": "Eng"}, {"id": "u2"}, {"id": "u3"}, {"id": "u4"},
  {"id": "u5", "deleted": "soft"}, {"id": "u6", "deleted": "hard"}, {"id": "u7"}
 ],
 "groups": [
  {"id": "g-eng", "displayName": "Engineering", "members": ["u2", "g-back"]},
  {"id": "g-back", "displayName": "Backend", "members": ["u3", "g-cycle"]},
  {"id": "g-cycle", "members": ["u4", "g-eng", "u2"]},
  {"id": "g-all", "displayName": "Everyone", "members": ["u7"]},
  {"id": "g-none", "displayName": "Unassigned", "members": ["u1"]}
 ],
 "assignments": [
  {"principal": "u1", "connection": "demo", "role": "Admin"},
  {"principal": "u1", "connection": "demo"},
  {"principal": "u1", "connection": "other", "role": "Owner"},
  {"principal": "g-eng", "connection": "demo", "role": "Dev"},
  {"principal": "u2", "connection": "demo", "role": "default access"},
  {"principal": "g-all", "connection": "demo", "role": "Default Access"},
  {"principal": "u5", "connection": "demo"},
  {"principal": "u6", "connection": "demo"},
  {"principal": "g-back", "connection": "other"}
 ]
}"#;

#[test]
fn direct_assignments_roles_and_excluded_roles() {
    let dir = directory(ORG);
    let scope = evaluate(&dir, "demo", &ScopeConfig::default());
    assert!(scope.config_error.is_none());
    assert_eq!(scope.users.len(), 7, "every user has a decision");
    assert_eq!(scope.groups.len(), 5, "every group has a decision");

    let u1 = &scope.users["u1"];
    assert!(u1.in_scope && u1.assigned_directly);
    assert_eq!(
        u1.app_roles,
        vec!["Admin", "User"],
        "other connections don't count"
    );
    assert_eq!(u1.reason, "assigned directly with roles Admin, User");
    assert!(u1.via_groups.is_empty());

    // u2 is directly assigned only with the excluded role (any case), but also
    // a member of the assigned g-eng.
    let u2 = &scope.users["u2"];
    assert!(u2.in_scope && !u2.assigned_directly);
    assert_eq!(u2.app_roles, vec!["Dev"]);
    assert_eq!(u2.via_groups, vec!["g-eng"]);
    assert_eq!(u2.reason, "assigned through group Engineering");

    // u7 is only reached through a Default Access assignment.
    let u7 = &scope.users["u7"];
    assert!(!u7.in_scope);
    assert!(u7.app_roles.is_empty());
    assert_eq!(u7.reason, "only assigned with excluded role Default Access");
    let g_all = &scope.groups["g-all"];
    assert!(!g_all.in_scope);
    assert_eq!(
        g_all.reason,
        "only assigned with excluded role Default Access"
    );

    // Not nested by default.
    assert_eq!(scope.users["u3"].reason, "not assigned");
    assert!(!scope.users["u4"].in_scope);

    // Groups: only direct assignment counts.
    let g_eng = &scope.groups["g-eng"];
    assert!(g_eng.in_scope && g_eng.assigned_directly);
    assert_eq!(g_eng.app_roles, vec!["Dev"]);
    assert_eq!(g_eng.reason, "assigned directly with role Dev");
    assert!(
        !scope.groups["g-back"].in_scope,
        "assigned to another connection only"
    );
    assert_eq!(scope.groups["g-none"].reason, "not assigned");

    // Deleted users are evaluated as if present.
    let u5 = &scope.users["u5"];
    assert!(u5.in_scope);
    assert_eq!(u5.deleted, Deletion::Soft);
    assert_eq!(
        u5.reason,
        "soft-deleted in source; assigned directly with role User"
    );
    let u6 = &scope.users["u6"];
    assert_eq!(u6.deleted, Deletion::Hard);
    assert!(
        u6.reason.starts_with("hard-deleted in source; "),
        "{}",
        u6.reason
    );

    // Nothing excluded: Default Access counts like any role.
    let cfg = ScopeConfig {
        excluded_roles: vec![],
        ..ScopeConfig::default()
    };
    let scope = evaluate(&dir, "demo", &cfg);
    assert_eq!(scope.users["u7"].app_roles, vec!["Default Access"]);
    let u2 = &scope.users["u2"];
    assert_eq!(
        u2.reason,
        "assigned directly with role default access and through group Engineering"
    );
    assert_eq!(u2.app_roles, vec!["Dev", "default access"]);
    assert!(scope.groups["g-all"].in_scope);

    // Another connection sees other assignments.
    let scope = evaluate(&dir, "other", &ScopeConfig::default());
    assert_eq!(scope.users["u1"].app_roles, vec!["Owner"]);
    assert!(!scope.users["u2"].in_scope);
    assert!(scope.users["u3"].in_scope, "member of g-back");
    assert!(!scope.users["u4"].in_scope, "nested in g-back, nesting off");
    // Unknown connection: nobody.
    let scope = evaluate(&dir, "nope", &ScopeConfig::default());
    assert_eq!(scope.users_in_scope().count(), 0);
    assert_eq!(scope.groups_in_scope().count(), 0);
}

#[test]
fn nested_groups_expand_through_a_cycle() {
    let dir = directory(ORG);
    let cfg = ScopeConfig {
        nested_groups: true,
        ..ScopeConfig::default()
    };
    let scope = evaluate(&dir, "demo", &cfg);
    // g-eng -> g-back -> g-cycle -> g-eng (cycle).
    let u3 = &scope.users["u3"];
    assert!(u3.in_scope);
    assert_eq!(u3.via_groups, vec!["g-eng"]);
    assert_eq!(u3.app_roles, vec!["Dev"]);
    assert_eq!(
        u3.reason,
        "assigned through group Engineering (via nested group Backend)"
    );
    let u4 = &scope.users["u4"];
    assert!(u4.in_scope);
    assert_eq!(
        u4.reason,
        "assigned through group Engineering (via nested group g-cycle)"
    );
    // u2: a direct member of g-eng, reached first directly.
    assert_eq!(
        scope.users["u2"].reason,
        "assigned through group Engineering"
    );
    // Nested groups themselves are not in scope: only direct assignment.
    assert!(!scope.groups["g-back"].in_scope);
    assert!(!scope.users["u7"].in_scope);

    // Through "other": g-back is assigned; nesting reaches u4 and, through the
    // cycle, g-eng's u2.
    let scope = evaluate(&dir, "other", &cfg);
    assert!(scope.users["u4"].in_scope);
    assert!(scope.users["u2"].in_scope);
    assert_eq!(scope.users["u2"].via_groups, vec!["g-back"]);
    assert!(!scope.users["u7"].in_scope);
}

#[test]
fn nested_excluded_roles_are_reported() {
    let dir = directory(
        r#"{"users": [{"id": "u1"}],
 "groups": [{"id": "outer", "members": ["inner"]}, {"id": "inner", "members": ["u1"]}],
 "assignments": [{"principal": "outer", "connection": "demo", "role": "Default Access"}]}"#,
    );
    let flat = evaluate(&dir, "demo", &ScopeConfig::default());
    assert_eq!(flat.users["u1"].reason, "not assigned");
    let cfg = ScopeConfig {
        nested_groups: true,
        ..ScopeConfig::default()
    };
    let nested = evaluate(&dir, "demo", &cfg);
    assert_eq!(
        nested.users["u1"].reason,
        "only assigned with excluded role Default Access"
    );
}

#[test]
fn all_users_mode_and_filters_after_assignment() {
    let dir = directory(ORG);
    let cfg = ScopeConfig {
        assigned_only: false,
        ..ScopeConfig::default()
    };
    let scope = evaluate(&dir, "demo", &cfg);
    assert_eq!(scope.users_in_scope().count(), 7);
    assert_eq!(scope.groups_in_scope().count(), 5);
    assert_eq!(
        scope.users["u3"].reason,
        "all users are in scope (assigned_only = false)"
    );
    assert_eq!(scope.users["u1"].app_roles, vec!["Admin", "User"]);
    assert_eq!(scope.users["u2"].via_groups, vec!["g-eng"]);
    assert_eq!(
        scope.groups["g-none"].reason,
        "all groups are in scope (assigned_only = false)"
    );

    // Filters apply on top of assignment: u1 is assigned and in Eng; u2 is
    // assigned but fails; u3 passes nothing.
    let cfg = ScopeConfig {
        user_filters: vec![filter(vec![clause("department", "EQUALS", Some("eng"))])],
        group_filters: vec![filter(vec![clause(
            "displayName",
            "EQUALS",
            Some("Everyone"),
        )])],
        ..ScopeConfig::default()
    };
    let scope = evaluate(&dir, "demo", &cfg);
    assert_eq!(scope.users_in_scope().collect::<Vec<_>>(), vec!["u1"]);
    assert_eq!(
        scope.users["u1"].reason,
        "assigned directly with roles Admin, User; passed user_filters"
    );
    assert!(
        scope.users["u2"]
            .reason
            .starts_with("filtered out by user_filters"),
        "{}",
        scope.users["u2"].reason
    );
    assert_eq!(scope.users["u3"].reason, "not assigned");
    // g-eng is assigned but filtered out; g-all passes the filter but is
    // only assigned with an excluded role.
    assert!(
        scope.groups["g-eng"]
            .reason
            .starts_with("filtered out by group_filters"),
        "{}",
        scope.groups["g-eng"].reason
    );
    assert!(!scope.groups["g-all"].in_scope);
    // Derived attributes can be filtered on.
    let cfg = all_users_with(vec![filter(vec![clause("IsSoftDeleted", "IS TRUE", None)])]);
    assert_eq!(in_scope(&dir, &cfg), vec!["u5", "u6"]);
    let cfg = all_users_with(vec![filter(vec![clause("objectId", "EQUALS", Some("U7"))])]);
    assert_eq!(in_scope(&dir, &cfg), vec!["u7"]);
}

#[test]
fn operators_parse_from_entra_names_in_any_form() {
    for op in Operator::ALL {
        assert_eq!(Operator::parse(op.name()), Some(op));
        assert_eq!(Operator::parse(&op.name().to_lowercase()), Some(op));
        assert_eq!(Operator::parse(&op.name().replace(' ', "_")), Some(op));
        assert_eq!(Operator::parse(&op.name().replace('_', " ")), Some(op));
    }
    assert_eq!(
        Operator::parse("  is   not null "),
        Some(Operator::IsNotNull)
    );
    assert_eq!(Operator::parse("Greater_Than"), Some(Operator::GreaterThan));
    assert_eq!(Operator::parse("LIKE"), None);
    let err = "LIKE".parse::<Operator>().unwrap_err();
    assert!(err.contains("REGEX MATCH"), "{err}");
}

#[test]
fn config_deserialises_with_defaults_and_rejects_unknown_fields() {
    let cfg: ScopeConfig = toml::from_str("").unwrap();
    assert_eq!(cfg, ScopeConfig::default());
    assert!(cfg.assigned_only);
    assert_eq!(cfg.excluded_roles, vec!["Default Access"]);
    assert!(!cfg.nested_groups);

    let cfg: ScopeConfig = toml::from_str(
        r#"
assigned_only = false
nested_groups = true
excluded_roles = []
[[user_filters]]
clauses = [
  { attribute = "department", operator = "equals", value = "Sales" },
  { attribute = "level", operator = "GREATER THAN", value = 3 },
  { attribute = "accountEnabled", operator = "IS_TRUE" },
]
[[group_filters]]
clauses = [{ attribute = "displayName", operator = "REGEX MATCH", value = "^Eng" }]
"#,
    )
    .unwrap();
    assert!(!cfg.assigned_only && cfg.nested_groups && cfg.excluded_roles.is_empty());
    assert_eq!(cfg.user_filters[0].clauses[1].value.as_deref(), Some("3"));
    assert_eq!(cfg.user_filters[0].clauses[2].operator, Operator::IsTrue);
    assert!(cfg.validate().is_ok());

    let err = toml::from_str::<ScopeConfig>("assigned = true").unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    let err = toml::from_str::<ScopeConfig>(
        "[[user_filters]]\nclauses = [{ attribute = \"a\", operator = \"LIKE\", value = \"x\" }]",
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown operator"), "{err}");
    let err = toml::from_str::<ScopeConfig>(
        "[[user_filters]]\nclauses = [{ attribute = \"a\", operator = \"EQUALS\", valeu = \"x\" }]",
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    // JSON works too.
    let cfg: ScopeConfig = serde_json::from_str(
        r#"{"user_filters": [{"clauses": [{"attribute": "a", "operator": "&", "value": 2}]}]}"#,
    )
    .unwrap();
    assert_eq!(cfg.user_filters[0].clauses[0].operator, Operator::BitAnd);
}

#[test]
fn validation_reports_every_problem_with_its_place() {
    let cfg = ScopeConfig {
        user_filters: vec![
            filter(vec![
                clause("a", "REGEX MATCH", Some("(unclosed")),
                clause("b", "GREATER_THAN", Some("ten")),
            ]),
            filter(vec![
                clause("c", "IS NULL", Some("x")),
                clause("d", "EQUALS", None),
                clause("e", "&", Some("1.5")),
                clause(" ", "IS TRUE", None),
            ]),
        ],
        group_filters: vec![filter(vec![]), filter(vec![clause("f", "!&", Some("x"))])],
        ..ScopeConfig::default()
    };
    let err = cfg.validate().unwrap_err();
    for needle in [
        "user_filters[1].clauses[1] (a REGEX MATCH \"(unclosed\"): invalid regular expression",
        "user_filters[1].clauses[2] (b GREATER_THAN \"ten\"): GREATER_THAN needs a numeric value",
        "user_filters[2].clauses[1] (c IS NULL \"x\"): IS NULL takes no value",
        "user_filters[2].clauses[2] (d EQUALS): EQUALS needs a 'value'",
        "user_filters[2].clauses[3] (e & \"1.5\"): & needs an integer value",
        "user_filters[2].clauses[4]",
        "group_filters[1]: a filter needs at least one clause",
        "group_filters[2].clauses[1] (f !& \"x\"): !& needs an integer value",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }

    // Evaluating an invalid configuration never panics and provisions nobody;
    // the error is reported for reconcile to refuse.
    let dir = directory(ORG);
    let scope = evaluate(&dir, "demo", &cfg);
    assert!(scope.config_error.is_some());
    assert_eq!(scope.users.len(), 7);
    assert_eq!(scope.users_in_scope().count(), 0);
    assert!(
        scope.users["u1"]
            .reason
            .starts_with("scope configuration is invalid: "),
        "{}",
        scope.users["u1"].reason
    );
    assert_eq!(scope.users["u5"].deleted, Deletion::Soft);
}
