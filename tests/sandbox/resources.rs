//! Resource isolation: memory across instances, pool slots, CPU including host calls, caps on guest strings.

use super::*;
use provisio::runtime::PluginError;

use provisio::metrics::peak_rss_kib;

/// A component with `n` core instances, each of a module with a 64 MiB
/// memory whose start function touches every page of it.
fn many_memories(n: usize) -> Vec<u8> {
    let instances = "(core instance (instantiate $m))".repeat(n);
    wat::parse_str(format!(
        r#"(component
             (core module $m
               (memory 1024)
               (func $touch (local $p i32)
                 (loop $l
                   (i32.store8 (local.get $p) (i32.const 1))
                   (local.set $p (i32.add (local.get $p) (i32.const 4096)))
                   (br_if $l (i32.lt_u (local.get $p) (i32.const 67108864)))))
               (start $touch))
             {instances})"#
    ))
    .unwrap()
}

fn load_err(w: &World, name: &str, bytes: &[u8]) -> PluginError {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.wasm"));
    std::fs::write(&path, bytes).unwrap();
    let rt = &w.runtime;
    futures::executor::block_on(rt.load_plugin(name, &path, None))
        .err()
        .unwrap_or_else(|| panic!("{name} loaded"))
}

#[tokio::test]
async fn many_memories_are_refused_at_load() {
    let w = world().await;
    let before = peak_rss_kib();
    // The review's attack: 60 core instances of 64 MiB each (4 GB RSS).
    let e = load_err(&w, "sixty", &many_memories(60));
    let after = peak_rss_kib();
    println!("many-memories (60 x 64 MiB): peak RSS {before} KiB before load, {after} KiB after");
    assert!(matches!(e, PluginError::Shape { .. }), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains("sixty") && m.contains("60 core instances") && m.contains("limit of 16"),
        "{m}"
    );
    // Fewer instances, but more memories than any connector has.
    println!("refusal: {m}");
    let m = load_err(&w, "three", &many_memories(3)).to_string();
    assert!(
        m.contains("3 linear memories") && m.contains("limit of 2"),
        "{m}"
    );
    assert!(
        after.saturating_sub(before) < 64 * 1024,
        "refusing the plugin must not touch its memory: {before} -> {after} KiB"
    );
    w.assert_healthy("many-memories").await;
}

#[tokio::test]
async fn nested_component_bomb_is_refused_before_compiling() {
    let w = world().await;
    // Each level instantiates the one below twice: 2^20 core instances once flattened.
    let mut c = "(core module $m) (core instance (instantiate $m))".to_string();
    for _ in 0..20 {
        c = format!("(component $c {c}) (instance (instantiate $c)) (instance (instantiate $c))");
    }
    let bytes = wat::parse_str(format!("(component {c})")).unwrap();
    let started = std::time::Instant::now();
    let e = load_err(&w, "bomb", &bytes);
    println!("nesting bomb refused in {:?}", started.elapsed());
    assert!(matches!(e, PluginError::Shape { .. }), "{e:?}");
    assert!(e.to_string().contains("limit of 16"), "{e}");
    w.assert_healthy("nesting bomb").await;
}

#[tokio::test]
async fn cpu_budget_counts_host_calls() {
    let w = world().await;
    // 3 s of wall time almost all inside kv.set / log.emit: with host time
    // free, it would finish; charged, it is stopped at the 1 s CPU limit.
    let limits = Limits {
        wall_time: Duration::from_secs(10),
        ..test_limits()
    };
    let r = w.conn("host-call-loop", limits).test_connection().await;
    assert!(matches!(r, Err(CallError::CpuLimit { .. })), "{r:?}");
    w.assert_healthy("host-call-loop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_connection_cannot_take_all_pool_slots() {
    let w = world().await;
    // Each call holds 1 MiB and its instance for 5 s (the fixture's /slow).
    let limits = Limits {
        wall_time: Duration::from_secs(10),
        http_timeout: Duration::from_secs(8),
        ..test_limits()
    };
    let hostile = w.conn("hold-memory", limits);
    // More concurrent calls than the whole runtime pool holds (256).
    let flood = futures::future::join_all((0..400).map(|_| hostile.test_connection()));
    let victim = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut results = Vec::new();
        for _ in 0..5 {
            results.push(w.run("ok").await);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        results
    };
    let (flood, victim) = tokio::join!(flood, victim);
    for r in &victim {
        assert_eq!(
            r.as_ref().map_err(|e| e.code()),
            Ok(&"ok 200".to_string()),
            "the well-behaved connection failed while the hostile one flooded: {}",
            r.as_ref().err().map(|e| e.to_string()).unwrap_or_default()
        );
    }
    let ok = flood.iter().filter(|r| r.is_ok()).count();
    let busy = flood
        .iter()
        .filter(|r| matches!(r, Err(CallError::Busy { .. })))
        .count();
    println!("hold-memory flood: {ok} of 400 calls ran, {busy} found no slot");
    assert_eq!(ok + busy, 400, "only completed or busy calls");
    assert!(busy > 0 && ok <= 8 * 3, "{ok} ran, {busy} busy");
    let m = flood
        .iter()
        .find_map(|r| match r {
            Err(e @ CallError::Busy { .. }) => Some(e.to_string()),
            _ => None,
        })
        .unwrap();
    assert!(
        m.contains("already runs 8 calls at once") && m.contains("max_concurrent_calls"),
        "{m}"
    );
    w.assert_healthy("hold-memory flood").await;
}

#[tokio::test]
async fn guest_messages_are_capped_with_a_marker() {
    let w = world().await;
    let r = w.run("huge-error").await;
    let Err(CallError::Connector(ConnectorError::Other(m))) = &r else {
        panic!("{r:?}")
    };
    assert!(
        m.len() < 4200 && m.contains("bytes cut]"),
        "{} bytes",
        m.len()
    );
    let m = w.run("huge-message").await.unwrap();
    assert!(
        m.len() < 4200 && m.ends_with("bytes cut]"),
        "{} bytes",
        m.len()
    );
    w.assert_healthy("huge-error").await;
}

fn bad_output<T>(r: Result<T, CallError>) -> String {
    match r {
        Err(e @ CallError::BadOutput { .. }) => e.to_string(),
        // Never print the result itself: it may be megabytes.
        Ok(_) => panic!("expected a bad-output error, got a result"),
        Err(e) => panic!("expected a bad-output error, got {}", e.code()),
    }
}

#[tokio::test]
async fn bad_ids_objects_and_pages_are_refused() {
    let w = world().await;
    let get = |b: &str| {
        let c = w.conn(b, test_limits());
        async move { c.get(ObjectKind::User, "u-1").await }
    };
    let m = bad_output(get("huge-id").await);
    assert!(
        m.contains("the object's id is 10485760 bytes, more than the limit of 1024 bytes")
            && m.contains("discarded"),
        "{m}"
    );
    let m = bad_output(get("control-id").await);
    assert!(m.contains("U+001B") && !m.contains('\u{1b}'), "{m}");
    let m = bad_output(get("many-attributes").await);
    assert!(m.contains("5000 attributes"), "{m}");
    let m = bad_output(get("huge-value").await);
    assert!(m.contains("value is 2097152 bytes"), "{m}");
    let list = |b: &str| {
        let c = w.conn(b, test_limits());
        async move { c.list(ObjectKind::User, None, 100).await }
    };
    let m = bad_output(list("huge-page").await);
    assert!(m.contains("the page is 10000 objects"), "{m}");
    let m = bad_output(list("control-cursor").await);
    assert!(m.contains("cursor") && m.contains("U+000D"), "{m}");
    assert_eq!(list("small-page").await.unwrap().objects.len(), 10);
    w.assert_healthy("bad outputs").await;
}
