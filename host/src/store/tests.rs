//! Store-wide tests: files, migrations, concurrency, the crash-safety
//! protocol and reset.

use super::*;
use crate::model::ObjectKind;
use serde_json::json;
use std::sync::Arc;
use std::time::SystemTime;

const C: &str = "c1";

fn user_link(source: &str, target: &str) -> Link {
    let mut l = Link::new(C, ObjectKind::User, source, target);
    l.fingerprint = format!("fp-{source}");
    l.exported
        .insert("userName".into(), json!(format!("{source}@x")));
    l
}

// ---- files and migrations ------------------------------------------------

#[test]
fn open_creates_parent_dirs_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/state.db");
    {
        let s = Store::open(&path).unwrap();
        assert_eq!(s.location(), path.display().to_string());
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        s.upsert_link(&user_link("u1", "t1")).unwrap();
        s.set_watermark(C, "w1").unwrap();
        s.set_members_added(C, "g1", &["u1"]).unwrap();
    }
    assert!(path.is_file());
    let s = Store::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(
        s.link(C, ObjectKind::User, "u1")
            .unwrap()
            .unwrap()
            .target_id,
        "t1"
    );
    assert_eq!(s.watermark(C).unwrap().as_deref(), Some("w1"));
    assert!(s.members(C, "g1").unwrap().contains("u1"));
}

#[test]
fn pragmas_are_set() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path().join("s.db")).unwrap();
    let conn = s.lock();
    let get = |p: &str| -> String {
        conn.query_row(&format!("PRAGMA {p}"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| format!("{v:?}"))
        .unwrap()
    };
    assert!(
        get("journal_mode").contains("wal"),
        "{}",
        get("journal_mode")
    );
    assert_eq!(get("synchronous"), "Integer(2)"); // FULL
    assert_eq!(get("foreign_keys"), "Integer(1)");
}

#[test]
fn migration_records_each_version_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(Store::open(&path).unwrap());
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM schema_version ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(Store::open(&path).unwrap());
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, 'later')",
            [SCHEMA_VERSION + 1],
        )
        .unwrap();
    }
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found, known, .. }
            if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("was written by a newer Provisio"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
}

#[test]
fn not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot open state file"), "{err}");
}

#[test]
fn parent_that_is_a_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let err = Store::open(blocker.join("s.db")).unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
}

#[test]
fn corrupt_json_names_operation_and_table() {
    let s = Store::open_in_memory().unwrap();
    s.upsert_link(&user_link("u1", "t1")).unwrap();
    s.lock()
        .execute("UPDATE links SET exported = 'not json'", [])
        .unwrap();
    let err = s.link(C, ObjectKind::User, "u1").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("link on table links failed"), "{text}");
    assert!(text.contains("invalid JSON"), "{text}");
}

// ---- concurrency -----------------------------------------------------------

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
}

#[test]
fn two_threads_share_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Store::open(dir.path().join("s.db")).unwrap());
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for i in 0..100 {
                    let src = format!("t{t}-u{i}");
                    let id = s
                        .begin_intent(C, ObjectKind::User, &src, IntentAction::Create, &json!({}))
                        .unwrap();
                    s.complete_create(id, &user_link(&src, &format!("x{i}")))
                        .unwrap();
                    s.escrow_failure(
                        C,
                        ObjectKind::User,
                        "shared",
                        "E",
                        "e",
                        SystemTime::now(),
                        crate::store::ESCROW_MAX_BACKOFF,
                    )
                    .unwrap();
                    s.set_members_added(C, "g", &[&src]).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(s.links(C, ObjectKind::User).unwrap().len(), 200);
    assert!(s.pending_intents(C).unwrap().is_empty());
    assert_eq!(s.escrow_all(C).unwrap()[0].attempts, 200);
    assert_eq!(s.members(C, "g").unwrap().len(), 200);
}

#[test]
fn two_stores_on_one_file_from_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(Store::open(&path).unwrap());
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let s = Store::open(&path).unwrap();
                for _ in 0..50 {
                    s.escrow_failure(
                        C,
                        ObjectKind::User,
                        "u",
                        "E",
                        "e",
                        SystemTime::now(),
                        crate::store::ESCROW_MAX_BACKOFF,
                    )
                    .unwrap();
                    s.upsert_link(&user_link(&format!("s{t}"), "x")).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = Store::open(&path).unwrap();
    // Read-modify-write of the attempt counter lost no update across
    // connections.
    assert_eq!(s.escrow_all(C).unwrap()[0].attempts, 100);
    assert_eq!(s.links(C, ObjectKind::User).unwrap().len(), 2);
}

// ---- the intent protocol -----------------------------------------------------

#[test]
fn begin_complete_create() {
    let s = Store::open_in_memory().unwrap();
    let payload = json!({"userName": "u1@x"});
    let id = s
        .begin_intent(C, ObjectKind::User, "u1", IntentAction::Create, &payload)
        .unwrap();
    let pending = s.pending_intents(C).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, id);
    assert_eq!(pending[0].action, IntentAction::Create);
    assert_eq!(pending[0].payload, payload);
    assert_eq!(s.intent(id).unwrap().as_ref(), Some(&pending[0]));
    assert!(s.pending_intents("other").unwrap().is_empty());

    s.complete_create(id, &user_link("u1", "t1")).unwrap();
    assert!(s.pending_intents(C).unwrap().is_empty());
    assert_eq!(s.intent(id).unwrap(), None);
    assert_eq!(
        s.link(C, ObjectKind::User, "u1")
            .unwrap()
            .unwrap()
            .target_id,
        "t1"
    );
    // Completing twice is an error and changes nothing.
    let err = s.complete_create(id, &user_link("u1", "t2")).unwrap_err();
    assert!(matches!(err, StoreError::NoIntent { .. }), "{err:?}");
    assert_eq!(
        s.link(C, ObjectKind::User, "u1")
            .unwrap()
            .unwrap()
            .target_id,
        "t1"
    );
}

#[test]
fn one_pending_intent_per_object() {
    let s = Store::open_in_memory().unwrap();
    let id = s
        .begin_intent(C, ObjectKind::User, "u1", IntentAction::Create, &json!({}))
        .unwrap();
    let err = s
        .begin_intent(C, ObjectKind::User, "u1", IntentAction::Create, &json!({}))
        .unwrap_err();
    assert!(matches!(err, StoreError::IntentPending { existing, .. } if existing == id.0));
    assert!(err.to_string().contains("resolve it first"), "{err}");
    // Other objects, kinds and connections are independent.
    s.begin_intent(C, ObjectKind::Group, "u1", IntentAction::Create, &json!({}))
        .unwrap();
    s.begin_intent(
        "c2",
        ObjectKind::User,
        "u1",
        IntentAction::Create,
        &json!({}),
    )
    .unwrap();
    s.abandon_intent(id).unwrap();
    assert!(matches!(
        s.abandon_intent(id).unwrap_err(),
        StoreError::NoIntent { .. }
    ));
    let again = s
        .begin_intent(C, ObjectKind::User, "u1", IntentAction::Create, &json!({}))
        .unwrap();
    assert!(again.0 > id.0, "ids are never reused");
    assert_eq!(s.link(C, ObjectKind::User, "u1").unwrap(), None);
}

#[test]
fn completion_must_match_intent() {
    let s = Store::open_in_memory().unwrap();
    let id = s
        .begin_intent(C, ObjectKind::User, "u1", IntentAction::Create, &json!({}))
        .unwrap();
    let err = s.complete_create(id, &user_link("u2", "t")).unwrap_err();
    assert!(err.to_string().contains("not user 'u2'"), "{err}");
    let err = s.complete_delete(id).unwrap_err();
    assert!(err.to_string().contains("is a 'create' intent"), "{err}");
    let err = s.complete_members(id, "u1", &["a"], &[]).unwrap_err();
    assert!(err.to_string().contains("is a 'create' intent"), "{err}");
    // Nothing was written and the intent is still there.
    assert_eq!(s.link(C, ObjectKind::User, "u2").unwrap(), None);
    assert_eq!(s.pending_intents(C).unwrap().len(), 1);
}

#[test]
fn update_state_delete_and_members_complete() {
    let s = Store::open_in_memory().unwrap();
    s.upsert_link(&user_link("u1", "t1")).unwrap();
    s.set_members_added(C, "g1", &["u1", "u2"]).unwrap();

    let id = s
        .begin_intent(
            C,
            ObjectKind::User,
            "u1",
            IntentAction::Update,
            &json!({"title": "x"}),
        )
        .unwrap();
    let mut updated = user_link("u1", "t1");
    updated.fingerprint = "new".into();
    updated.exported.insert("title".into(), json!("x"));
    s.complete_update(id, &updated).unwrap();
    let l = s.link(C, ObjectKind::User, "u1").unwrap().unwrap();
    assert_eq!(l.fingerprint, "new");
    assert_eq!(l.exported["title"], json!("x"));

    let id = s
        .begin_intent(C, ObjectKind::User, "u1", IntentAction::Disable, &json!({}))
        .unwrap();
    s.complete_state(id, LinkState::Disabled).unwrap();
    let l = s.link(C, ObjectKind::User, "u1").unwrap().unwrap();
    assert_eq!(l.state, LinkState::Disabled);
    assert_eq!(l.fingerprint, "new", "state change keeps the rest");

    // A state change for an object without a link fails and keeps the intent.
    let id = s
        .begin_intent(
            C,
            ObjectKind::User,
            "ghost",
            IntentAction::Enable,
            &json!({}),
        )
        .unwrap();
    let err = s.complete_state(id, LinkState::Active).unwrap_err();
    assert!(matches!(err, StoreError::NoLink { .. }), "{err:?}");
    assert!(s.intent(id).unwrap().is_some());
    s.abandon_intent(id).unwrap();

    let id = s
        .begin_intent(
            C,
            ObjectKind::Group,
            "g1",
            IntentAction::Members,
            &json!({}),
        )
        .unwrap();
    s.complete_members(id, "g1", &["u3"], &["u2"]).unwrap();
    let m: Vec<_> = s.members(C, "g1").unwrap().into_iter().collect();
    assert_eq!(m, ["u1", "u3"]);

    let id = s
        .begin_intent(C, ObjectKind::User, "u1", IntentAction::Delete, &json!({}))
        .unwrap();
    s.complete_delete(id).unwrap();
    let l = s.link(C, ObjectKind::User, "u1").unwrap().unwrap();
    assert_eq!(l.state, LinkState::Deleted, "kept as a tombstone");
    let m: Vec<_> = s.members(C, "g1").unwrap().into_iter().collect();
    assert_eq!(m, ["u3"], "a deleted user is no member any more");
    assert!(s.pending_intents(C).unwrap().is_empty());
}

#[test]
fn completion_is_atomic() {
    let s = Store::open_in_memory().unwrap();
    let id = s
        .begin_intent(C, ObjectKind::User, "u1", IntentAction::Create, &json!({}))
        .unwrap();
    // Make the last statement of the completion (deleting the intent) fail,
    // after the link has been written inside the transaction.
    s.lock()
        .execute_batch(
            "CREATE TRIGGER fail_intent_delete BEFORE DELETE ON intents
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
    let err = s.complete_create(id, &user_link("u1", "t1")).unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(
        err.to_string().contains("complete_create on table intents"),
        "{err}"
    );
    // Neither half happened.
    assert_eq!(s.link(C, ObjectKind::User, "u1").unwrap(), None);
    assert_eq!(s.pending_intents(C).unwrap().len(), 1);

    s.lock()
        .execute_batch("DROP TRIGGER fail_intent_delete")
        .unwrap();
    s.complete_create(id, &user_link("u1", "t1")).unwrap();
    assert!(s.link(C, ObjectKind::User, "u1").unwrap().is_some());
    assert!(s.pending_intents(C).unwrap().is_empty());
}

#[test]
fn members_completion_is_atomic() {
    let s = Store::open_in_memory().unwrap();
    s.set_members_added(C, "g1", &["old"]).unwrap();
    let id = s
        .begin_intent(
            C,
            ObjectKind::Group,
            "g1",
            IntentAction::Members,
            &json!({}),
        )
        .unwrap();
    s.lock()
        .execute_batch(
            "CREATE TRIGGER fail_intent_delete BEFORE DELETE ON intents
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
    s.complete_members(id, "g1", &["new"], &["old"])
        .unwrap_err();
    let m: Vec<_> = s.members(C, "g1").unwrap().into_iter().collect();
    assert_eq!(m, ["old"]);
    assert_eq!(s.pending_intents(C).unwrap().len(), 1);
}

/// The crash scenario with a clean close: begin, "crash" (drop the store)
/// before the connector's answer is recorded, reopen.
#[test]
fn crash_between_begin_and_complete_leaves_intent_and_no_link() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let payload = json!({"userName": "u1@x"});
    let id = {
        let s = Store::open(&path).unwrap();
        s.begin_intent(C, ObjectKind::User, "u1", IntentAction::Create, &payload)
            .unwrap()
    };
    let s = Store::open(&path).unwrap();
    let pending = s.pending_intents(C).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, id);
    assert_eq!(pending[0].payload, payload);
    assert_eq!(s.link(C, ObjectKind::User, "u1").unwrap(), None);
    // The engine re-matches, finds the object the connector did create, and
    // records it instead of creating a duplicate.
    s.complete_create(id, &user_link("u1", "found-t1")).unwrap();
    drop(s);
    let s = Store::open(&path).unwrap();
    assert!(s.pending_intents(C).unwrap().is_empty());
    assert_eq!(
        s.link(C, ObjectKind::User, "u1")
            .unwrap()
            .unwrap()
            .target_id,
        "found-t1"
    );
}

/// Without a clean close: the first connection is leaked, never closed or
/// checkpointed, while a second one opens the file.
#[test]
fn crash_without_close_leaves_intent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let s = Store::open(&path).unwrap();
    s.upsert_link(&user_link("u0", "t0")).unwrap();
    let id = s
        .begin_intent(C, ObjectKind::User, "u1", IntentAction::Create, &json!({}))
        .unwrap();
    std::mem::forget(s);
    let s = Store::open(&path).unwrap();
    assert_eq!(s.pending_intents(C).unwrap()[0].id, id);
    assert_eq!(s.link(C, ObjectKind::User, "u1").unwrap(), None);
    assert!(s.link(C, ObjectKind::User, "u0").unwrap().is_some());
}

const CRASH_ENV: &str = "PROVISIO_STORE_CRASH_CHILD";

/// Not a test on its own: when run by [`real_process_crash`] with
/// `PROVISIO_STORE_CRASH_CHILD=<mode>:<path>`, it does the mode's work on the
/// store and aborts the process (no destructors, no close).
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CRASH_ENV) else {
        return;
    };
    let (mode, path) = spec.split_once(':').unwrap();
    let s = Store::open(path).unwrap();
    match mode {
        // Crash while the connector call is in flight.
        "after-begin" => {
            s.begin_intent(C, ObjectKind::User, "u1", IntentAction::Create, &json!({}))
                .unwrap();
        }
        // Crash in the middle of complete_create: link written, intent
        // deleted, transaction not committed.
        "mid-complete" => {
            let id = s
                .begin_intent(C, ObjectKind::User, "u2", IntentAction::Create, &json!({}))
                .unwrap();
            let mut conn = s.lock();
            let tx = write_tx(&mut conn, "test", "links").unwrap();
            links::write_link(&tx, "test", &user_link("u2", "t2")).unwrap();
            tx.execute("DELETE FROM intents WHERE id = ?1", [id.0])
                .unwrap();
            std::process::abort();
        }
        other => panic!("unknown crash mode {other}"),
    }
    std::process::abort();
}

#[test]
fn real_process_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    for mode in ["after-begin", "mid-complete"] {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store::tests::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_ENV, format!("{mode}:{}", path.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "{mode}: the child should have aborted");
    }
    let s = Store::open(&path).unwrap();
    let pending: Vec<String> = s
        .pending_intents(C)
        .unwrap()
        .into_iter()
        .map(|i| i.source_id)
        .collect();
    assert_eq!(pending, ["u1", "u2"]);
    assert_eq!(s.link(C, ObjectKind::User, "u1").unwrap(), None);
    assert_eq!(
        s.link(C, ObjectKind::User, "u2").unwrap(),
        None,
        "an uncommitted completion leaves no link"
    );
}

// ---- reset -----------------------------------------------------------------------

fn fill(s: &Store, connection: &str) {
    let mut l = user_link("u1", "t1");
    l.connection = connection.into();
    s.upsert_link(&l).unwrap();
    s.set_members_added(connection, "g1", &["u1"]).unwrap();
    s.set_watermark(connection, "w").unwrap();
    s.escrow_failure(
        connection,
        ObjectKind::User,
        "u1",
        "E",
        "e",
        SystemTime::now(),
        crate::store::ESCROW_MAX_BACKOFF,
    )
    .unwrap();
    s.stage(
        connection,
        "cy",
        ObjectKind::User,
        "u1",
        "t1",
        StagedAction::Delete,
        "r",
    )
    .unwrap();
    s.begin_intent(
        connection,
        ObjectKind::User,
        "u9",
        IntentAction::Create,
        &json!({}),
    )
    .unwrap();
}

#[test]
fn restart_clears_watermark_and_escrow_but_keeps_links() {
    let s = Store::open_in_memory().unwrap();
    fill(&s, C);
    fill(&s, "c2");
    s.reset(C, ResetScope::restart()).unwrap();
    assert_eq!(s.watermark(C).unwrap(), None);
    assert!(s.escrow_all(C).unwrap().is_empty());
    assert_eq!(s.links(C, ObjectKind::User).unwrap().len(), 1);
    assert_eq!(s.members(C, "g1").unwrap().len(), 1);
    assert_eq!(s.staged_pending(C).unwrap().len(), 1);
    assert_eq!(s.pending_intents(C).unwrap().len(), 1);
    // The other connection is untouched.
    assert!(s.watermark("c2").unwrap().is_some());
    assert_eq!(s.escrow_all("c2").unwrap().len(), 1);
}

#[test]
fn full_reset_keeps_only_intents() {
    let s = Store::open_in_memory().unwrap();
    fill(&s, C);
    fill(&s, "c2");
    s.reset(C, ResetScope::all()).unwrap();
    assert_eq!(s.watermark(C).unwrap(), None);
    assert!(s.escrow_all(C).unwrap().is_empty());
    assert!(s.links(C, ObjectKind::User).unwrap().is_empty());
    assert!(s.members(C, "g1").unwrap().is_empty());
    assert!(s.staged_pending(C).unwrap().is_empty());
    assert_eq!(s.pending_intents(C).unwrap().len(), 1);
    assert_eq!(s.links("c2", ObjectKind::User).unwrap().len(), 1);
    s.reset(C, ResetScope::default()).unwrap();
}

#[test]
fn a_read_only_state_file_names_its_directory_and_the_cause() {
    let source = rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
        Some("attempt to write a readonly database".into()),
    );
    let e = super::unwritable(
        StoreError::Migration {
            path: "/srv/provisio/state/provisio.db".into(),
            version: 0,
            source,
        },
        "/srv/provisio/state/provisio.db",
    );
    let m = e.to_string();
    assert!(matches!(e, StoreError::Unwritable { .. }), "{m}");
    assert!(
        m.contains("cannot be written") && m.contains("/srv/provisio/state is writable"),
        "{m}"
    );
    assert!(!m.contains("schema version 0"), "{m}");
}

#[test]
fn quick_check_finds_a_damaged_file_and_nothing_in_a_sound_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let s = Store::open(&path).unwrap();
        for i in 0..2000 {
            s.upsert_link(&Link {
                connection: "c".into(),
                kind: ObjectKind::User,
                source_id: format!("u{i}"),
                target_id: format!("t{i}"),
                fingerprint: "f".repeat(64),
                exported: Default::default(),
                state: LinkState::Active,
                updated_at: String::new(),
            })
            .unwrap();
        }
        assert_eq!(s.quick_check().unwrap(), Vec::<String>::new());
    }
    // Overwrite pages in the middle of the file (after the header page).
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8 * 4096, "{}", bytes.len());
    for b in &mut bytes[3 * 4096..6 * 4096] {
        *b = 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    match Store::open(&path) {
        Ok(s) => {
            let problems = s.quick_check().unwrap_or_else(|e| vec![e.to_string()]);
            assert!(!problems.is_empty(), "the damage was found");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
