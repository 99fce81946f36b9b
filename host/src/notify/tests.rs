use super::*;
use std::time::{Duration, UNIX_EPOCH};

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn failed(conn: &str, reason: &str) -> Event {
    Event::CycleFailed {
        connection: conn.into(),
        cycle_id: Some("c1".into()),
        reason: reason.into(),
        counts: BTreeMap::from([("user create failure".to_string(), 2)]),
    }
}

fn quarantined(conn: &str) -> Event {
    Event::Quarantined {
        connection: conn.into(),
        reason: "2 of 2 objects failed".into(),
        failed_cycles: 1,
        next_attempt: t(6 * 3600),
    }
}

const POLICY: Policy = Policy {
    dedup_window: Duration::from_secs(3600),
    max_per_hour: 3,
};

fn send(store: &Store, ch: &str, e: &Event, now: SystemTime) -> Verdict {
    let v = POLICY.verdict(store, ch, e, now).unwrap();
    match v {
        Verdict::Send => POLICY
            .record(store, ch, e, NotificationStatus::Sent, now)
            .unwrap(),
        Verdict::Suppress => POLICY
            .record(store, ch, e, NotificationStatus::Suppressed, now)
            .unwrap(),
        Verdict::Duplicate => {}
    }
    v
}

#[test]
fn the_same_event_is_sent_once_per_window_and_channel() {
    let s = Store::open_in_memory().unwrap();
    let e = failed("a", "2 of 2 objects failed");
    assert_eq!(send(&s, "email", &e, t(0)), Verdict::Send);
    assert_eq!(send(&s, "email", &e, t(10)), Verdict::Duplicate);
    assert_eq!(send(&s, "email", &e, t(3599)), Verdict::Duplicate);
    // Another channel, reason, connection or kind is another notification.
    assert_eq!(send(&s, "webhook", &e, t(20)), Verdict::Send);
    assert_eq!(
        send(&s, "email", &failed("a", "source unreadable"), t(30)),
        Verdict::Send
    );
    assert_eq!(
        send(&s, "email", &failed("b", "2 of 2 objects failed"), t(40)),
        Verdict::Send
    );
    // After the window (counted from the last delivery) it is sent again.
    assert_eq!(send(&s, "webhook", &e, t(3621)), Verdict::Send);
}

#[test]
fn the_rate_limit_holds_back_and_the_next_delivery_summarises() {
    let s = Store::open_in_memory().unwrap();
    for i in 0..3 {
        let e = failed(&format!("c{i}"), "x failed");
        assert_eq!(send(&s, "webhook", &e, t(i)), Verdict::Send);
    }
    let over = failed("c9", "x failed");
    assert_eq!(send(&s, "webhook", &over, t(100)), Verdict::Suppress);
    // A held-back event is not held back twice (duplicate within the window).
    assert_eq!(send(&s, "webhook", &over, t(200)), Verdict::Duplicate);
    let other = failed("c8", "y failed");
    assert_eq!(send(&s, "webhook", &other, t(300)), Verdict::Suppress);
    // The email channel has its own budget.
    assert_eq!(send(&s, "email", &over, t(300)), Verdict::Send);
    let held = s.unreported_suppressed("webhook").unwrap();
    assert_eq!(
        held.iter()
            .map(|h| h.connection.as_str())
            .collect::<Vec<_>>(),
        ["c9", "c8"]
    );
    // An hour after the first deliveries, the budget is back.
    let next = failed("c7", "z failed");
    assert_eq!(
        POLICY.verdict(&s, "webhook", &next, t(3603)).unwrap(),
        Verdict::Send
    );
    let p = payload(&next, t(3603), &held);
    assert_eq!(p["suppressed"]["count"], 2);
    assert_eq!(p["suppressed"]["since"], format_time(t(100)));
    assert_eq!(p["suppressed"]["events"][0]["connection"], "c9");
    assert_eq!(p["suppressed"]["events"][1]["reason"], "y failed");
    s.mark_suppressed_reported("webhook", held[1].id).unwrap();
    assert!(s.unreported_suppressed("webhook").unwrap().is_empty());
}

#[test]
fn leaving_quarantine_lets_the_next_incident_notify() {
    let s = Store::open_in_memory().unwrap();
    let q = quarantined("a");
    assert_eq!(send(&s, "email", &q, t(0)), Verdict::Send);
    assert_eq!(send(&s, "email", &q, t(60)), Verdict::Duplicate);
    let left = Event::LeftQuarantine {
        connection: "a".into(),
    };
    POLICY.close_ended(&s, &left).unwrap();
    assert_eq!(send(&s, "email", &left, t(120)), Verdict::Send);
    // A new quarantine within the window notifies again, and closes the "left".
    POLICY.close_ended(&s, &q).unwrap();
    assert_eq!(send(&s, "email", &q, t(180)), Verdict::Send);
    assert!(
        !s.notification_seen("email", "a", "left_quarantine", &left.reason(), t(0))
            .unwrap(),
        "the earlier 'left' no longer de-duplicates"
    );
    assert!(
        s.notification_seen("email", "a", "quarantined", &q.reason(), t(0))
            .unwrap()
    );
    // Other connections are untouched.
    let qb = quarantined("b");
    assert_eq!(send(&s, "webhook", &qb, t(0)), Verdict::Send);
    POLICY
        .close_ended(
            &s,
            &Event::LeftQuarantine {
                connection: "a".into(),
            },
        )
        .unwrap();
    assert_eq!(send(&s, "webhook", &qb, t(300)), Verdict::Duplicate);
}

#[test]
fn history_survives_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let e = quarantined("a");
    {
        let s = Store::open(&path).unwrap();
        assert_eq!(send(&s, "webhook", &e, t(0)), Verdict::Send);
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(send(&s, "webhook", &e, t(5)), Verdict::Duplicate);
}

#[test]
fn old_history_is_pruned() {
    let s = Store::open_in_memory().unwrap();
    let e = failed("a", "r");
    assert_eq!(send(&s, "email", &e, t(0)), Verdict::Send);
    assert_eq!(s.notifications_sent_since("email", t(0)).unwrap(), 1);
    // Recording something two hours later forgets what no rule needs.
    send(&s, "email", &failed("b", "r"), t(7200));
    assert_eq!(s.notifications_sent_since("email", t(0)).unwrap(), 1);
}

#[test]
fn payload_carries_the_event() {
    let p = payload(&quarantined("svc"), t(0), &[]);
    assert_eq!(p["event"], "quarantined");
    assert_eq!(p["connection"], "svc");
    assert_eq!(p["reason"], "2 of 2 objects failed");
    assert_eq!(p["failed_cycles"], 1);
    assert_eq!(p["next_attempt"], format_time(t(6 * 3600)));
    assert_eq!(p["time"], format_time(t(0)));
    assert!(p.get("suppressed").is_none());
    assert!(
        p["summary"]
            .as_str()
            .unwrap()
            .starts_with("connection 'svc' in quarantine")
    );
    let staged = Event::StagedDeletions {
        connection: "svc".into(),
        cycle_id: "c".into(),
        count: 3,
        sample: vec!["disable user u1 (unassigned)".into()],
    };
    let p = payload(&staged, t(0), &[]);
    assert_eq!(p["count"], 3);
    assert_eq!(p["sample"][0], "disable user u1 (unassigned)");
    assert_eq!(p["reason"], "3 disables/deletes held for review");
    let body = email::render(&p);
    assert!(
        body.starts_with("connection 'svc': 3 disables/deletes held"),
        "{body}"
    );
    assert!(body.contains("\ncount: 3\n"), "{body}");
}

#[test]
fn a_connectors_words_reach_no_channel_raw() {
    let secret = crate::capabilities::secrets::SecretValue::new("notify-test-secret-9f3a".into());
    let reason = format!(
        "target said \u{1b}]0;owned\u{7}\r\nX-Injected: 1 \u{202e}gnp.exe {} done",
        secret.expose()
    );
    let p = payload(&failed("svc", &reason), t(0), &[]);
    let text = p.to_string();
    assert!(!text.contains("notify-test-secret"), "redacted: {text}");
    assert!(text.contains("[REDACTED]"), "{text}");
    let body = email::render(&p);
    for raw in ['\u{1b}', '\u{7}', '\r', '\u{202e}'] {
        assert!(!body.contains(raw), "{raw:?} in {body}");
    }
    assert!(!body.contains("\nX-Injected"), "no forged line: {body}");
    assert!(body.contains("reason: target said \\x1b]0;owned"), "{body}");
    // The JSON part decodes to the same (redacted) data.
    let json = body.split("As JSON:\n").nth(1).unwrap().trim_end();
    assert_eq!(serde_json::from_str::<serde_json::Value>(json).unwrap(), p);
}

#[test]
fn event_names_round_trip() {
    for k in EventKind::ALL {
        assert_eq!(EventKind::parse(k.as_str()), Some(*k));
    }
    assert_eq!(EventKind::parse("cycle-failed"), None);
}

#[test]
fn webhook_signature_is_rfc_4231_hmac_sha256() {
    assert_eq!(
        webhook::signature("Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}
