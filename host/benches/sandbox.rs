//! Sandbox overhead: plugin size, cold compile vs precompiled load,
//! instantiate, and a trivial export call. Prints one table.
//!
//! Run: `scripts/build-plugins.sh && cargo bench -p provisio --bench sandbox`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use provisio::model::ObjectKind;
use provisio::runtime::{ConnectionSpec, Limits, Runtime};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn plugin(stem: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target
        .join("wasm32-wasip2/release")
        .join(format!("{stem}.wasm"))
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let median = v[v.len() / 2];
    let p99 = v[(v.len() * 99 / 100).min(v.len() - 1)];
    let mean = v.iter().sum::<Duration>() / v.len() as u32;
    (median, mean, p99)
}

fn row(name: &str, v: Vec<Duration>) {
    let n = v.len();
    let (median, mean, p99) = stats(v);
    println!(
        "| {name:<62} | {n:>6} | {:>12.1?} | {:>12.1?} | {:>12.1?} |",
        median, mean, p99
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let misbehave = plugin("provisio_test_misbehave");
    assert!(
        misbehave.exists(),
        "build the plugins first: scripts/build-plugins.sh"
    );
    let cache = tempfile::tempdir().unwrap();

    println!("\n## Plugin sizes\n");
    for stem in ["provisio_plugin_scim", "provisio_test_misbehave"] {
        if let Ok(m) = std::fs::metadata(plugin(stem)) {
            println!(
                "- {stem}.wasm: {} bytes ({:.0} KiB)",
                m.len(),
                m.len() as f64 / 1024.0
            );
        }
    }

    println!(
        "\n| measurement                                                    |      n |       median |         mean |          p99 |"
    );
    println!(
        "|----------------------------------------------------------------|--------|--------------|--------------|--------------|"
    );

    for stem in ["provisio_plugin_scim", "provisio_test_misbehave"] {
        let path = plugin(stem);
        if !path.exists() {
            continue;
        }
        // Cold: compile with Cranelift (no cache).
        let mut cold = Vec::new();
        for _ in 0..3 {
            let rt = Runtime::new(None).unwrap();
            let p = rt.load_plugin(stem, &path, None).await.unwrap();
            cold.push(p.timings.compile);
        }
        row(&format!("{stem}: compile (cold, no cache)"), cold);
        // Warm: deserialise the authenticated precompiled artifact.
        let rt = Runtime::new(Some(cache.path())).unwrap();
        rt.load_plugin(stem, &path, None).await.unwrap();
        let mut warm = Vec::new();
        let mut whole = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let p = rt.load_plugin(stem, &path, None).await.unwrap();
            whole.push(t.elapsed());
            assert!(p.timings.from_cache);
            warm.push(p.timings.compile);
        }
        row(&format!("{stem}: precompiled load (deserialise)"), warm);
        row(
            &format!("{stem}: whole load (read+sha+load+link+describe)"),
            whole,
        );
    }

    let rt = Runtime::new(Some(cache.path())).unwrap();
    let p = Arc::new(rt.load_plugin("misbehave", &misbehave, None).await.unwrap());
    let spec = ConnectionSpec {
        name: "bench".into(),
        settings: BTreeMap::from([
            ("behaviour".to_string(), "ok".to_string()),
            ("url".to_string(), "http://127.0.0.1:9".to_string()),
        ]),
        allowed_hosts: vec![],
        private_hosts: vec![],
        secrets: BTreeMap::new(),
        secret_placements: BTreeMap::new(),
        limits: Limits::default(),
    };
    // Each connection builds its own HTTP client(s) at connect (own pool,
    // resolve-check-connect resolver; a second client when an origin is
    // opted in to private addresses).
    let mut connects = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let c = rt.connect(p.clone(), spec.clone()).unwrap();
        connects.push(t.elapsed());
        drop(c);
    }
    row("connect (one HTTP client)", connects);
    let private = provisio::capabilities::http::HostPattern::parse("http://localhost:9").unwrap();
    let private_spec = ConnectionSpec {
        allowed_hosts: vec![private.clone()],
        private_hosts: vec![private],
        ..spec.clone()
    };
    let mut connects = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let c = rt.connect(p.clone(), private_spec.clone()).unwrap();
        connects.push(t.elapsed());
        drop(c);
    }
    row("connect (two HTTP clients: a private opt-in)", connects);
    let conn = rt.connect(p, spec).unwrap();
    for _ in 0..200 {
        conn.get(ObjectKind::User, "warm").await.unwrap();
    }
    let n = 2000;
    let mut inst = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        conn.instantiate().await.unwrap();
        inst.push(t.elapsed());
    }
    let mut calls = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        conn.get(ObjectKind::User, "u-1").await.unwrap();
        calls.push(t.elapsed());
    }
    let (inst_med, ..) = stats(inst.clone());
    let (call_med, ..) = stats(calls.clone());
    row("fresh store + instantiate (no call)", inst);
    row("fresh store + instantiate + get() (trivial)", calls);
    println!(
        "\nper-call overhead of a trivial export beyond instantiation (median): {:.1?}",
        call_med.saturating_sub(inst_med)
    );
}
