//! The benchmark cannot rot: run `bench` with tiny sizes and check that the
//! table it prints has every row. No figure is asserted (the machine is
//! shared); the bench itself stops with an error when a phase's result is
//! wrong (failures, missing users, requests in a no-change cycle).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

fn plugins() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("wasm32-wasip2/release")
}

#[test]
fn the_bench_prints_every_row() {
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "--users",
            "50",
            "--per-op",
            "20",
            "--cold-runs",
            "1",
            "--idle",
            "1,2",
        ])
        .arg("--plugins")
        .arg(plugins())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed:\n{stdout}\n{stderr}");
    for row in [
        "| instantiate (fresh store, no call) |",
        "| instantiate + call of a trivial export |",
        "| create-user through the wasm SCIM plugin |",
        "| create-user by a native Rust client (reqwest) |",
        "| sandbox overhead on create-user (wasm / native) |",
        "| initial sync of 50 users + 11 groups: wall time |",
        "| initial sync: users/s |",
        "| initial sync: target requests/s |",
        "| initial sync: peak RSS of the host |",
        "| no-change cycle over 50 users |",
        "| incremental cycle, 1% changed (1 users) |",
        "| cold start to first completed call, no precompiled cache |",
        "| cold start to first completed call, precompiled cache |",
        "| idle host RSS, 1 connection |",
        "| idle host RSS, 2 connections |",
    ] {
        assert!(stdout.contains(row), "no row {row:?} in:\n{stdout}");
    }
    // The no-change cycle made no request; the 1% cycle exactly one.
    assert!(
        stdout.contains("0 target requests"),
        "no-change cycle:\n{stdout}"
    );
    assert!(
        stdout.contains(", 1 target requests"),
        "1% cycle:\n{stdout}"
    );
}
