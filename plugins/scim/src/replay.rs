//! Replay checks against a live SCIM server, in two ignored tests around
//! `scripts/replay.py` (see there). Phase 1 writes the requests this crate
//! builds; the script sends them and records the responses; phase 2 feeds the
//! responses through this crate's response handlers and checks the outcome.

#![cfg(test)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use provisio_sdk::http::{RequestBuilder, Response};
use provisio_sdk::prelude::*;
use provisio_sdk::scim::{ENTERPRISE_USER_SCHEMA, PatchOp, patch_from_changes};
use serde_json::json;

use crate::requests::{self, Settings};

fn dir() -> PathBuf {
    PathBuf::from(std::env::var("SCIM_REPLAY_DIR").expect("set SCIM_REPLAY_DIR"))
}

fn ent(a: &str) -> String {
    format!("{ENTERPRISE_USER_SCHEMA}:{a}")
}

struct Step {
    name: &'static str,
    request: RequestBuilder,
    /// Which handler interprets the response.
    handler: &'static str,
    /// The expected outcome: `ok` or a `ConnectorError` kind.
    expect: &'static str,
}

fn alice() -> Vec<Attribute> {
    vec![
        Attribute::new("userName", "alice@contoso.com"),
        Attribute::new("active", "True"),
        Attribute::new("displayName", "Alice Anders"),
        Attribute::new("title", "Engineer"),
        Attribute::new(r#"emails[type eq "work"].value"#, "alice@contoso.com"),
        Attribute::new("preferredLanguage", "en-US"),
        Attribute::new("name.givenName", "Alice"),
        Attribute::new("name.familyName", "Anders"),
        Attribute::new(r#"phoneNumbers[type eq "work"].value"#, "+1 555 0100"),
        Attribute::new("externalId", "src-alice"),
        Attribute::new(ent("department"), "R&D"),
        Attribute::new(ent("employeeNumber"), "E-1"),
        Attribute::new(ent("manager"), "{BOB}"),
    ]
}

fn steps() -> Vec<Step> {
    let s = Settings::from_lookup(|name| match name {
        "base_url" => std::env::var("SCIM_BASE_URL").ok(),
        _ => None,
    })
    .unwrap();
    let user = ObjectKind::User;
    let group = ObjectKind::Group;
    let step = |name, request, handler, expect| Step {
        name,
        request,
        handler,
        expect,
    };
    let bob = vec![
        Attribute::new("userName", "bob \"the boss\"+x@contoso.com"),
        Attribute::new("active", "True"),
        Attribute::new("displayName", "Bob"),
    ];
    let changes = vec![
        Attribute::new("displayName", "Alice B. Anders"),
        Attribute::new("name.givenName", "Ali"),
        Attribute::new(r#"emails[type eq "work"].value"#, "ali@contoso.com"),
        Attribute::new(ent("department"), Value::Null),
        Attribute::new(ent("manager"), "{BOB}"),
        Attribute::new("title", Value::Null),
    ];
    let patch: PatchOp = patch_from_changes(&changes).unwrap();
    let add_email = patch_from_changes(&[Attribute::new(
        r#"emails[type eq "work"].value"#,
        "bob@contoso.com",
    )])
    .unwrap();
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        step(
            "test-connection",
            requests::test_connection(&s, "replay"),
            "test_connection",
            "ok",
        ),
        step(
            "create bob",
            requests::create(&s, user, &bob).unwrap(),
            "object:BOB",
            "ok",
        ),
        step(
            "create alice",
            requests::create(&s, user, &alice()).unwrap(),
            "object:ALICE",
            "ok",
        ),
        step(
            "create alice again",
            requests::create(&s, user, &alice()).unwrap(),
            "object",
            "conflict",
        ),
        step(
            "find bob by userName",
            requests::find(&s, user, &bob[0]).unwrap(),
            "find:1",
            "ok",
        ),
        step(
            "find by work email",
            requests::find(
                &s,
                user,
                &Attribute::new(r#"emails[type eq "work"].value"#, "alice@contoso.com"),
            )
            .unwrap(),
            "find:1",
            "ok",
        ),
        step(
            "find by externalId",
            requests::find(&s, user, &Attribute::new("externalId", "src-alice")).unwrap(),
            "find:1",
            "ok",
        ),
        step(
            "find by employeeNumber",
            requests::find(&s, user, &Attribute::new(ent("employeeNumber"), "E-1")).unwrap(),
            "find:1",
            "ok",
        ),
        step(
            "find by manager",
            requests::find(&s, user, &Attribute::new(ent("manager"), "{BOB}")).unwrap(),
            "find:1",
            "ok",
        ),
        step(
            "find nobody",
            requests::find(&s, user, &Attribute::new("userName", "nobody")).unwrap(),
            "find:0",
            "ok",
        ),
        step(
            "get alice",
            requests::get(&s, user, "{ALICE}").unwrap(),
            "object",
            "ok",
        ),
        step(
            "update alice",
            requests::patch(&s, user, "{ALICE}", &patch).unwrap(),
            "no_content",
            "ok",
        ),
        step(
            "get alice after update",
            requests::get(&s, user, "{ALICE}").unwrap(),
            "object",
            "ok",
        ),
        step(
            "add missing work email to bob",
            requests::patch(&s, user, "{BOB}", &add_email).unwrap(),
            "no_target",
            "invalid-input",
        ),
        step(
            "disable alice",
            requests::set_active(&s, "{ALICE}", false).unwrap(),
            "no_content",
            "ok",
        ),
        step(
            "enable alice",
            requests::set_active(&s, "{ALICE}", true).unwrap(),
            "no_content",
            "ok",
        ),
        step(
            "create group",
            requests::create(
                &s,
                group,
                &[
                    Attribute::new("displayName", "Sales"),
                    Attribute::new("externalId", "src-sales"),
                    Attribute::new("members", Value::TextList(ids(&["{ALICE}"]))),
                ],
            )
            .unwrap(),
            "object:SALES",
            "ok",
        ),
        step(
            "find group",
            requests::find(&s, group, &Attribute::new("displayName", "Sales")).unwrap(),
            "find:1",
            "ok",
        ),
        step(
            "add members",
            requests::add_members(&s, "{SALES}", &ids(&["{ALICE}", "{BOB}"])).unwrap(),
            "no_content",
            "ok",
        ),
        step(
            "get group",
            requests::get(&s, group, "{SALES}").unwrap(),
            "members:2",
            "ok",
        ),
        step(
            "remove members",
            requests::remove_members(&s, "{SALES}", &ids(&["{ALICE}", "not-a-member"])).unwrap(),
            "no_content",
            "ok",
        ),
        step(
            "get group after removal",
            requests::get(&s, group, "{SALES}").unwrap(),
            "members:1",
            "ok",
        ),
        step(
            "list users page 1",
            requests::list(&s, user, 1, 1),
            "page",
            "ok",
        ),
        step(
            "list users page 2",
            requests::list(&s, user, 2, 1),
            "page",
            "ok",
        ),
        step(
            "list groups",
            requests::list(&s, group, 1, 10),
            "page",
            "ok",
        ),
        step(
            "delete bob",
            requests::delete(&s, user, "{BOB}").unwrap(),
            "no_content",
            "ok",
        ),
        step(
            "delete bob again",
            requests::delete(&s, user, "{BOB}").unwrap(),
            "no_content",
            "not-found",
        ),
        step(
            "get deleted bob",
            requests::get(&s, user, "{BOB}").unwrap(),
            "object",
            "not-found",
        ),
        step(
            "delete group",
            requests::delete(&s, group, "{SALES}").unwrap(),
            "no_content",
            "ok",
        ),
        step(
            "delete alice",
            requests::delete(&s, user, "{ALICE}").unwrap(),
            "no_content",
            "ok",
        ),
    ]
}

#[test]
#[ignore = "phase 1 of scripts/replay.py"]
fn replay_write_requests() {
    let mut out = String::new();
    for step in steps() {
        let auth = step.request.auth_ref().is_some();
        let headers: Vec<_> = ["Accept", "Content-Type"]
            .iter()
            .filter_map(|h| {
                step.request
                    .header_value(h)
                    .and_then(|t| t.as_literal())
                    .map(|v| json!([h, v]))
            })
            .collect();
        let line = json!({
            "name": step.name,
            "method": step.request.method().as_str(),
            "url": step.request.url(),
            "headers": headers,
            "bearer_secret": auth,
            "body": step.request.body_text(),
            "handler": step.handler,
            "expect": step.expect,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    std::fs::write(dir().join("requests.jsonl"), out).unwrap();
}

#[test]
#[ignore = "phase 2 of scripts/replay.py"]
fn replay_check_responses() {
    let text = std::fs::read_to_string(dir().join("responses.jsonl")).unwrap();
    let mut failures = Vec::new();
    for line in text.lines() {
        let rec: serde_json::Value = serde_json::from_str(line).unwrap();
        let name = rec["name"].as_str().unwrap().to_string();
        let handler = rec["handler"].as_str().unwrap();
        let expect = rec["expect"].as_str().unwrap();
        let headers = rec["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_string(),
                    h[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let response = Response::new(
            u16::try_from(rec["status"].as_u64().unwrap()).unwrap(),
            headers,
            rec["body"].as_str().unwrap().as_bytes().to_vec(),
        );
        let s = Settings::from_lookup(|n| (n == "base_url").then(|| "http://x/v2".to_string()))
            .unwrap();
        let outcome: Result<String, ConnectorError> = match handler.split(':').next().unwrap() {
            "test_connection" => requests::test_connection_result(&s, response),
            "object" => requests::object(response).map(|o| format!("{} attrs", o.attributes.len())),
            "find" => requests::list_response(response)
                .and_then(|l| requests::objects(&l))
                .and_then(|objs| {
                    let want: usize = handler.split(':').nth(1).unwrap().parse().unwrap();
                    if objs.len() == want {
                        Ok(format!("{} found", objs.len()))
                    } else {
                        Err(ConnectorError::Other(format!(
                            "found {} want {want}",
                            objs.len()
                        )))
                    }
                }),
            "members" => requests::object(response).and_then(|o| {
                let want: usize = handler.split(':').nth(1).unwrap().parse().unwrap();
                match o.attribute("members") {
                    Some(Value::TextList(m)) if m.len() == want => Ok(format!("members {m:?}")),
                    other => Err(ConnectorError::Other(format!(
                        "members {other:?}, want {want}"
                    ))),
                }
            }),
            "page" => requests::page(response, 1, 1).map(|p| {
                format!(
                    "{} objects, next {:?}, total {:?}",
                    p.objects.len(),
                    p.next_cursor,
                    p.total
                )
            }),
            "no_content" => requests::no_content(response).map(|()| "ok".to_string()),
            "no_target" => {
                let no_target = requests::is_no_target(&response);
                requests::no_content(response)
                    .map(|()| "ok".to_string())
                    .map_err(|e| {
                        if no_target {
                            e
                        } else {
                            ConnectorError::Other(format!("not noTarget: {e:?}"))
                        }
                    })
            }
            other => panic!("unknown handler {other}"),
        };
        let kind = match &outcome {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        println!("{name:32} {kind:14} {outcome:?}");
        if kind != expect {
            failures.push(format!("{name}: expected {expect}, got {outcome:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
