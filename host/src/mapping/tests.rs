use super::expr::MapContext;
use super::*;
use chrono::{TimeZone, Utc};

fn t(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn default(target: &str, source: &str, precedence: Option<u32>, apply: ApplyOn) -> Mapping {
    Mapping {
        target: target.into(),
        source: source.into(),
        matching_precedence: precedence,
        apply,
    }
}

/// A connector's defaults, like the SCIM connector's.
fn defaults() -> Vec<Mapping> {
    vec![
        default("userName", "[userPrincipalName]", Some(1), ApplyOn::Always),
        default(
            "active",
            r#"Switch([IsSoftDeleted], , "False", "True", "True", "False")"#,
            None,
            ApplyOn::Always,
        ),
        default("displayName", "[displayName]", None, ApplyOn::Always),
        default("name.givenName", "[givenName]", None, ApplyOn::Always),
        default("externalId", "[mailNickname]", Some(2), ApplyOn::Always),
        default("userType", r#""Member""#, None, ApplyOn::CreateOnly),
    ]
}

fn over(target: &str) -> MappingOverride {
    MappingOverride {
        target: target.into(),
        ..MappingOverride::default()
    }
}

fn ctx() -> MapContext {
    MapContext::new()
        .at(Utc.with_ymd_and_hms(2024, 5, 31, 8, 30, 0).unwrap())
        .with_guid("0f8fad5b-d9cb-469f-a165-70867728950e")
        .with("userPrincipalName", t("john@contoso.com"))
        .with("IsSoftDeleted", Value::Boolean(false))
        .with("displayName", t("John Doe"))
        .with("givenName", t("John"))
        .with("mailNickname", t("john"))
}

fn get<'a>(obj: &'a MappedObject, name: &str) -> Option<&'a Value> {
    obj.attributes
        .iter()
        .find(|a| a.name == name)
        .map(|a| &a.value)
}

#[test]
fn defaults_compile_to_kinds() {
    let set = compile(&defaults(), &[]).unwrap();
    assert_eq!(set.mappings().len(), 6);
    assert_eq!(
        set.get("username").unwrap().source,
        MappingSource::Direct("userPrincipalName".into())
    );
    assert_eq!(
        set.get("userType").unwrap().source,
        MappingSource::Constant("Member".into())
    );
    assert_eq!(set.get("active").unwrap().source.kind(), "expression");
    assert_eq!(set.get("userType").unwrap().apply, ApplyOn::CreateOnly);
}

#[test]
fn overrides_replace_add_and_remove() {
    let overrides = vec![
        MappingOverride {
            expression: Some(r#"Join(" ", [givenName], [surname])"#.into()),
            ..over("displayName")
        },
        MappingOverride {
            remove: true,
            ..over("externalId")
        },
        MappingOverride {
            constant: Some("Contoso".into()),
            apply: Some(ApplyOn::CreateOnly),
            ..over("organization")
        },
        MappingOverride {
            source: Some("[mail]".into()),
            default: Some("nobody@contoso.com".into()),
            ..over("emails[type eq \"work\"].value")
        },
        // Only flags: the default's source is kept.
        MappingOverride {
            matching_precedence: Some(0),
            redact: Some(true),
            ..over("USERNAME")
        },
        MappingOverride {
            matching_precedence: Some(1),
            ..over("name.givenName")
        },
    ];
    let set = compile(&defaults(), &overrides).unwrap();
    assert!(set.get("externalId").is_none());
    let dn = set.get("displayName").unwrap();
    assert_eq!(dn.source.kind(), "expression");
    assert_eq!(dn.source.text(), r#"Join(" ", [givenName], [surname])"#);
    let org = set.get("organization").unwrap();
    assert_eq!(org.source, MappingSource::Constant("Contoso".into()));
    assert_eq!(org.apply, ApplyOn::CreateOnly);
    let mail = set.get("emails[type eq \"work\"].value").unwrap();
    assert_eq!(mail.source, MappingSource::Direct("mail".into()));
    assert_eq!(mail.default_if_null.as_deref(), Some("nobody@contoso.com"));
    let user = set.get("userName").unwrap();
    assert_eq!(
        user.source,
        MappingSource::Direct("userPrincipalName".into())
    );
    assert_eq!(user.matching_precedence, None);
    assert!(user.redact);
    let matching: Vec<&str> = set.matching().iter().map(|m| m.target.as_str()).collect();
    assert_eq!(matching, vec!["name.givenName"]);
}

#[test]
fn matching_is_ordered_by_precedence() {
    let overrides = vec![
        MappingOverride {
            matching_precedence: Some(3),
            ..over("userName")
        },
        MappingOverride {
            matching_precedence: Some(1),
            ..over("displayName")
        },
    ];
    let set = compile(&defaults(), &overrides).unwrap();
    let matching: Vec<(&str, Option<u32>)> = set
        .matching()
        .iter()
        .map(|m| (m.target.as_str(), m.matching_precedence))
        .collect();
    assert_eq!(
        matching,
        vec![
            ("displayName", Some(1)),
            ("externalId", Some(2)),
            ("userName", Some(3))
        ]
    );
}

#[test]
fn compile_errors_name_the_target() {
    // Syntax error with its column.
    let e = compile(
        &defaults(),
        &[MappingOverride {
            expression: Some(r#"Mid([givenName], 1 2)"#.into()),
            ..over("nickName")
        }],
    )
    .unwrap_err();
    assert_eq!(e.target(), "nickName");
    assert_eq!(e.column(), Some(20));
    assert_eq!(
        e.to_string(),
        "mapping for 'nickName': column 20: expected ',' or ')' after argument 2 of Mid"
    );
    assert_eq!(
        e.render(),
        "mapping for 'nickName':\nMid([givenName], 1 2)\n                   ^ column 20: expected ',' or ')' after argument 2 of Mid"
    );

    // A bad default is reported against its target too.
    let mut bad = defaults();
    bad.push(default("title", "Left([jobTitle]", None, ApplyOn::Always));
    let e = compile(&bad, &[]).unwrap_err();
    assert_eq!(e.target(), "title");
    assert!(e.column().is_some());

    // Duplicates.
    let mut dup = defaults();
    dup.push(default("USERNAME", "[mail]", None, ApplyOn::Always));
    let e = compile(&dup, &[]).unwrap_err();
    assert!(matches!(e, MappingError::Duplicate { .. }), "{e}");
    assert!(e.to_string().contains("mapped twice"), "{e}");
    let e = compile(&defaults(), &[over("displayName"), over("DisplayName")]).unwrap_err();
    assert!(e.to_string().contains("twice in the configuration"), "{e}");

    // Precedences must be unique.
    let e = compile(
        &defaults(),
        &[MappingOverride {
            matching_precedence: Some(1),
            ..over("displayName")
        }],
    )
    .unwrap_err();
    assert_eq!(
        e,
        MappingError::DuplicatePrecedence {
            target: "displayName".into(),
            precedence: 1,
            other: "userName".into()
        }
    );

    // Malformed overrides.
    let msg = |o: MappingOverride| compile(&defaults(), &[o]).unwrap_err().to_string();
    assert!(
        msg(MappingOverride {
            source: Some("a".into()),
            constant: Some("b".into()),
            ..over("displayName")
        })
        .contains("only one of")
    );
    assert!(msg(over("brandNew")).contains("give one of source, constant or expression"));
    assert!(
        msg(MappingOverride {
            remove: true,
            ..over("brandNew")
        })
        .contains("no default mapping")
    );
    assert!(
        msg(MappingOverride {
            remove: true,
            constant: Some("x".into()),
            ..over("displayName")
        })
        .contains("takes no other fields")
    );
    assert!(
        msg(MappingOverride {
            source: Some(" ".into()),
            ..over("displayName")
        })
        .contains("source is empty")
    );
    assert!(msg(over(" ")).contains("empty target"));
}

#[test]
fn compile_all_reports_every_error() {
    let errors = compile_all(
        &defaults(),
        &[
            MappingOverride {
                expression: Some("Join(".into()),
                ..over("a")
            },
            MappingOverride {
                expression: Some("Nope()".into()),
                ..over("b")
            },
        ],
    )
    .unwrap_err();
    let targets: Vec<&str> = errors.iter().map(MappingError::target).collect();
    assert_eq!(targets, vec!["a", "b"]);
}

#[test]
fn overrides_deserialize_from_toml_and_refuse_unknown_fields() {
    #[derive(Deserialize)]
    struct Doc {
        mappings: Vec<MappingOverride>,
    }
    let doc: Doc = toml::from_str(
        r#"
        [[mappings]]
        target = "displayName"
        expression = 'Join(" ", [givenName], [surname])'
        apply = "create-only"
        matching_precedence = 3
        redact = true
        default = "n/a"

        [[mappings]]
        target = "externalId"
        remove = true
        "#,
    )
    .unwrap();
    assert_eq!(doc.mappings.len(), 2);
    assert_eq!(doc.mappings[0].apply, Some(ApplyOn::CreateOnly));
    assert_eq!(doc.mappings[0].matching_precedence, Some(3));
    assert!(doc.mappings[1].remove);
    let err = toml::from_str::<Doc>("[[mappings]]\ntarget = \"x\"\nexpresion = \"[a]\"\n")
        .err()
        .unwrap();
    assert!(err.to_string().contains("expresion"), "{err}");
    let err = toml::from_str::<Doc>("[[mappings]]\ntarget = \"x\"\napply = \"sometimes\"\n")
        .err()
        .unwrap();
    assert!(err.to_string().contains("sometimes"), "{err}");
}

#[test]
fn apply_on_create_and_update() {
    let set = compile(&defaults(), &[]).unwrap();
    let created = set.apply(&ctx(), true).unwrap();
    let names: Vec<&str> = created.attributes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "userName",
            "active",
            "displayName",
            "name.givenName",
            "externalId",
            "userType"
        ]
    );
    assert_eq!(get(&created, "active"), Some(&t("True")));
    assert_eq!(get(&created, "userType"), Some(&t("Member")));
    // Create-only mappings are left out of updates.
    let updated = set.apply(&ctx(), false).unwrap();
    assert_eq!(get(&updated, "userType"), None);
    assert_eq!(updated.attributes.len(), 5);
}

#[test]
fn nulls_are_omitted_and_default_if_null_applies_on_create_only() {
    let set = compile(
        &defaults(),
        &[
            MappingOverride {
                default: Some("Unknown".into()),
                ..over("name.givenName")
            },
            MappingOverride {
                source: Some("title".into()),
                ..over("title")
            },
            MappingOverride {
                expression: Some(r#"Split([missing], ",")"#.into()),
                ..over("tags")
            },
        ],
    )
    .unwrap();
    let mut c = ctx();
    c.insert("givenName", Value::Null);
    let created = set.apply(&c, true).unwrap();
    assert_eq!(get(&created, "name.givenName"), Some(&t("Unknown")));
    assert_eq!(get(&created, "title"), None);
    assert_eq!(get(&created, "tags"), None);
    assert!(created.attributes.iter().all(|a| a.value != Value::Null));
    let updated = set.apply(&c, false).unwrap();
    assert_eq!(get(&updated, "name.givenName"), None);
    // An empty list is omitted like null.
    c.insert("title", Value::TextList(vec![]));
    assert_eq!(get(&set.apply(&c, true).unwrap(), "title"), None);
}

#[test]
fn ignore_flow_leaves_the_attribute_out() {
    let set = compile(
        &defaults(),
        &[MappingOverride {
            expression: Some("IgnoreFlowIfNullOrEmpty([manager])".into()),
            default: Some("should not be used".into()),
            ..over("manager")
        }],
    )
    .unwrap();
    let obj = set.apply(&ctx(), true).unwrap();
    assert_eq!(get(&obj, "manager"), None);
    let c = ctx().with("manager", t("boss"));
    assert_eq!(
        get(&set.apply(&c, true).unwrap(), "manager"),
        Some(&t("boss"))
    );
}

#[test]
fn redaction_is_reported() {
    let set = compile(
        &defaults(),
        &[
            MappingOverride {
                expression: Some("Redact([password])".into()),
                ..over("password")
            },
            MappingOverride {
                redact: Some(true),
                ..over("displayName")
            },
        ],
    )
    .unwrap();
    let c = ctx().with("password", t("s3cret"));
    let obj = set.apply(&c, true).unwrap();
    assert_eq!(get(&obj, "password"), Some(&t("s3cret")));
    let redacted: Vec<&str> = obj.redacted.iter().map(String::as_str).collect();
    assert_eq!(redacted, vec!["displayName", "password"]);
    // The table hides the values unless asked.
    let rows = explain(&set, &c, true);
    let table = ExplainTable::new(&rows).to_string();
    assert!(!table.contains("s3cret"), "{table}");
    assert!(!table.contains("John Doe\""), "{table}");
    assert!(table.contains("[REDACTED]"), "{table}");
    let shown = ExplainTable::new(&rows).reveal_redacted(true).to_string();
    assert!(shown.contains("\"s3cret\""), "{shown}");
}

#[test]
fn apply_reports_every_failing_mapping() {
    let set = compile(
        &defaults(),
        &[
            MappingOverride {
                expression: Some(r#"CDate([hireDate])"#.into()),
                ..over("hireDate")
            },
            MappingOverride {
                expression: Some("SingleAppRoleAssignment([appRoleAssignments])".into()),
                ..over("roles")
            },
        ],
    )
    .unwrap();
    let c = ctx().with("hireDate", t("next tuesday")).with(
        "appRoleAssignments",
        Value::TextList(vec!["A".into(), "B".into()]),
    );
    let errors = set.apply(&c, true).unwrap_err();
    let targets: Vec<&str> = errors.iter().map(MappingError::target).collect();
    assert_eq!(targets, vec!["hireDate", "roles"]);
    assert!(
        errors[0]
            .to_string()
            .starts_with("mapping for 'hireDate': CDate (column 1):")
    );
}

#[test]
fn explain_says_what_each_mapping_did() {
    let set = compile(
        &defaults(),
        &[
            MappingOverride {
                default: Some("Unknown".into()),
                ..over("name.familyName")
            }
            .with_source("surname"),
            MappingOverride {
                expression: Some("IgnoreFlowIfNullOrEmpty([manager])".into()),
                ..over("manager")
            },
            MappingOverride {
                expression: Some(r#"CDate([hireDate])"#.into()),
                ..over("hireDate")
            },
            MappingOverride {
                source: Some("title".into()),
                ..over("title")
            },
        ],
    )
    .unwrap();
    let c = ctx().with("hireDate", t("garbage"));
    let rows = explain(&set, &c, false);
    let row = |target: &str| rows.iter().find(|r| r.target == target).unwrap();
    assert_eq!(row("userName").kind, "direct");
    assert_eq!(row("userName").source, "userPrincipalName");
    assert_eq!(row("userName").matching_precedence, Some(1));
    assert_eq!(
        row("userName").outcome,
        Outcome::Value(t("john@contoso.com"))
    );
    assert_eq!(
        row("userType").outcome,
        Outcome::Skipped(SkipReason::CreateOnly)
    );
    assert_eq!(
        row("manager").outcome,
        Outcome::Skipped(SkipReason::IgnoreFlow)
    );
    assert_eq!(row("title").outcome, Outcome::Skipped(SkipReason::Null));
    // Default-if-null is for create only.
    assert_eq!(
        row("name.familyName").outcome,
        Outcome::Skipped(SkipReason::Null)
    );
    assert!(matches!(row("hireDate").outcome, Outcome::Failed(_)));

    let rows = explain(&set, &c, true);
    let table = ExplainTable::new(&rows).to_string();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), rows.len() + 1);
    assert!(lines[0].starts_with("TARGET"), "{table}");
    assert!(
        lines[0].contains("KIND") && lines[0].contains("SOURCE") && lines[0].contains("RESULT")
    );
    assert!(table.contains("userName (match 1)"), "{table}");
    assert!(
        table.contains("\"Unknown\" (default: source is null)"),
        "{table}"
    );
    assert!(
        table.contains("skipped: IgnoreFlowIfNullOrEmpty"),
        "{table}"
    );
    assert!(
        table.contains("error: CDate (column 1): 'garbage' is not a date"),
        "{table}"
    );
    // Columns line up: the RESULT column starts at the same place on each line.
    let at = lines[0].find("RESULT").unwrap();
    let userline = lines.iter().find(|l| l.starts_with("userName")).unwrap();
    assert_eq!(
        userline.chars().take(at).count(),
        lines[0].chars().take(at).count()
    );
    assert!(
        userline.chars().nth(at).is_some_and(|c| c == '"'),
        "{table}"
    );
}

#[test]
fn explain_table_shortens_long_sources() {
    let long = format!(r#"Join("", "{}")"#, "x".repeat(200));
    let set = compile(
        &[],
        &[MappingOverride {
            expression: Some(long),
            ..over("long")
        }],
    )
    .unwrap();
    let rows = explain(&set, &ctx(), true);
    let table = ExplainTable::new(&rows).to_string();
    assert!(table.contains('…'), "{table}");
    assert!(table.lines().all(|l| l.chars().count() < 320));
}

impl MappingOverride {
    fn with_source(mut self, source: &str) -> Self {
        self.source = Some(source.into());
        self
    }
}

// ---------------------------------------------------------------- bounds (issue 9 item 4)

/// The review's attack: `Replace` nested `n` deep, each level multiplying
/// the text by ten.
fn nested_replace(n: usize) -> String {
    let mut e = "[x]".to_string();
    for _ in 0..n {
        e = format!(r#"Replace({e}, "a", , , "aaaaaaaaaa", , )"#);
    }
    e
}

fn manifest_with(user: Vec<Mapping>, group: Vec<Mapping>) -> Manifest {
    Manifest {
        name: "m".into(),
        version: "0.1.0".into(),
        description: String::new(),
        vendor: String::new(),
        capabilities: vec![],
        settings: vec![],
        secrets: vec![],
        hosts: vec![],
        user_mappings: user,
        group_mappings: group,
        logins: Vec::new(),
    }
}

#[test]
fn check_defaults_refuses_the_nested_replace_attack() {
    let mut user = defaults();
    user.push(default(
        "nickName",
        &nested_replace(6),
        None,
        ApplyOn::Always,
    ));
    let err = check_defaults(&manifest_with(user, vec![])).unwrap_err();
    assert_eq!(err.target(), Some("nickName"));
    let msg = err.to_string();
    assert!(
        msg.starts_with("default user mapping for 'nickName': Replace (column "),
        "{msg}"
    );
    assert!(
        msg.contains("max_value_bytes") && msg.contains("65536"),
        "{msg}"
    );
    // Group mappings are checked too.
    let group = vec![default(
        "displayName",
        &nested_replace(4),
        None,
        ApplyOn::Always,
    )];
    let err = check_defaults(&manifest_with(defaults(), group)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("default group mapping for 'displayName'"),
        "{err}"
    );
    // The same attack as an operator override is refused by compile.
    let o = MappingOverride {
        expression: Some(nested_replace(6)),
        ..over("nickName")
    };
    assert!(matches!(
        check_override(&o),
        Err(MappingError::Limit { .. })
    ));
    let err = compile(&defaults(), &[o]).unwrap_err();
    assert!(
        matches!(&err, MappingError::Limit { target, .. } if target == "nickName"),
        "{err}"
    );
}

#[test]
fn check_defaults_accepts_ordinary_defaults() {
    let group = vec![default(
        "displayName",
        "[displayName]",
        Some(1),
        ApplyOn::Always,
    )];
    check_defaults(&manifest_with(defaults(), group)).unwrap();
    // Two levels of tenfold growth from 256 bytes stay under 64 KiB.
    let user = vec![default("x", &nested_replace(2), None, ApplyOn::Always)];
    check_defaults(&manifest_with(user, vec![])).unwrap();
}

#[test]
fn check_defaults_refuses_unparseable_and_too_many() {
    let user = vec![default("x", "Left([a]", None, ApplyOn::Always)];
    let err = check_defaults(&manifest_with(user, vec![])).unwrap_err();
    assert!(
        matches!(
            &err,
            DefaultsError::Mapping {
                error: MappingError::Parse { .. },
                ..
            }
        ),
        "{err}"
    );
    let user: Vec<Mapping> = (0..=MAX_DEFAULT_MAPPINGS)
        .map(|i| default(&format!("a{i}"), "[a]", None, ApplyOn::Always))
        .collect();
    let err = check_defaults(&manifest_with(user, vec![])).unwrap_err();
    assert_eq!(
        err,
        DefaultsError::TooMany {
            what: "default user mappings",
            count: MAX_DEFAULT_MAPPINGS + 1,
            limit: MAX_DEFAULT_MAPPINGS
        }
    );
    // Regular expressions are counted across the whole manifest.
    let one = r#"Replace([a], , "[0-9]+", , "", , )"#;
    let user: Vec<Mapping> = (0..=MAX_MANIFEST_REGEXES)
        .map(|i| default(&format!("a{i}"), one, None, ApplyOn::Always))
        .collect();
    let err = check_defaults(&manifest_with(user, vec![])).unwrap_err();
    assert!(err.to_string().contains("regular expressions"), "{err}");
}

#[test]
fn evaluation_limits_name_the_target() {
    // The run-time limits hold even where the static check cannot see the
    // growth (it comes from the data): the error names the target.
    let src = r#"Replace([x], "a", , , [rep], , )"#;
    let set = compile(&[default("nickName", src, None, ApplyOn::Always)], &[]).unwrap();
    let c = MapContext::new()
        .with("x", t(&"a".repeat(1000)))
        .with("rep", t(&"b".repeat(100)));
    let errs = set.apply(&c, true).unwrap_err();
    let msg = errs[0].to_string();
    assert!(
        msg.starts_with(
            "mapping for 'nickName': Replace (column 1): the value would be 100000 bytes"
        ),
        "{msg}"
    );
    assert!(msg.contains("max_value_bytes"), "{msg}");
}

#[test]
fn mappings_reading_attributes_no_record_has_are_found_with_a_suggestion() {
    let mut title = over("title");
    title.source = Some("jobTitel".into());
    let mut dept = over("department");
    dept.expression = Some(r#"Join(" ", [Department], [costCentreCode])"#.into());
    let set = compile(&defaults(), &[title, dept]).unwrap();
    let known: BTreeSet<String> = [
        "userPrincipalName",
        "IsSoftDeleted",
        "displayName",
        "givenName",
        "mailNickname",
        "jobTitle",
        "department",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let unknown = set.unknown_attributes(&known);
    let shown: Vec<String> = unknown.iter().map(|u| u.to_string()).collect();
    assert_eq!(
        shown,
        vec![
            "the mapping of 'title' reads source attribute [jobTitel], which no source record has; did you mean [jobTitle]?".to_string(),
            "the mapping of 'department' reads source attribute [costCentreCode], which no source record has".to_string(),
        ],
        "[Department] matches department case-insensitively; constants read nothing"
    );
}
