//! Plugin loading: digest pinning, contract versions, non-components, unknown
//! imports, and the authenticated precompiled-artifact cache.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use provisio::runtime::{PluginError, Runtime};

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[tokio::test]
async fn pinned_digest_mismatch_refuses_to_load() {
    let rt = Runtime::new(None).unwrap();
    let path = common::plugin("provisio_test_misbehave");
    let actual = provisio::runtime::plugin::sha256_hex(&std::fs::read(&path).unwrap());
    let ok = rt.load_plugin("m", &path, Some(&actual)).await.unwrap();
    assert_eq!(ok.sha256, actual);
    assert_eq!(ok.contract, "0.1.0");
    let wrong = "ab".repeat(32);
    let e = rt.load_plugin("m", &path, Some(&wrong)).await.unwrap_err();
    assert!(matches!(e, PluginError::DigestMismatch { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&actual) && msg.contains(&wrong) && msg.contains("refusing"),
        "{msg}"
    );
    let e = rt.load_plugin("m", &path, Some("xyz")).await.unwrap_err();
    assert!(matches!(e, PluginError::BadPin { .. }), "{e:?}");
}

#[tokio::test]
async fn incompatible_contract_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = wat::parse_str(
        r#"(component
             (instance $i)
             (export "provisio:connector/connector@0.2.0" (instance $i)))"#,
    )
    .unwrap();
    let p = write(dir.path(), "future.wasm", &bytes);
    let e = Runtime::new(None)
        .unwrap()
        .load_plugin("future", &p, None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, PluginError::IncompatibleContract { .. }),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("provisio:connector@0.2.0") && msg.contains("implements @0.1.0"),
        "{msg}"
    );
}

#[tokio::test]
async fn non_connectors_and_unknown_imports_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::new(None).unwrap();

    let core = wat::parse_str("(module)").unwrap();
    let e = rt
        .load_plugin("core", &write(dir.path(), "core.wasm", &core), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("core WebAssembly module"), "{e}");

    let e = rt
        .load_plugin("txt", &write(dir.path(), "x.wasm", b"hello"), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a WebAssembly file"), "{e}");

    let empty = wat::parse_str("(component)").unwrap();
    let e = rt
        .load_plugin("empty", &write(dir.path(), "e.wasm", &empty), None)
        .await
        .unwrap_err();
    assert!(matches!(e, PluginError::NotAConnector { .. }), "{e:?}");

    let sneaky = wat::parse_str(
        r#"(component
             (import "evil:net/raw-socket@1.0.0" (instance))
             (instance $i)
             (export "provisio:connector/connector@0.1.0" (instance $i)))"#,
    )
    .unwrap();
    let e = rt
        .load_plugin("sneaky", &write(dir.path(), "s.wasm", &sneaky), None)
        .await
        .unwrap_err();
    assert!(matches!(e, PluginError::UnknownImports { .. }), "{e:?}");
    assert!(e.to_string().contains("evil:net/raw-socket@1.0.0"), "{e}");

    let e = rt
        .load_plugin("missing", &dir.path().join("nope.wasm"), None)
        .await
        .unwrap_err();
    assert!(matches!(e, PluginError::Read { .. }), "{e:?}");
}

#[tokio::test]
async fn precompiled_cache_is_used_and_tampering_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let path = common::plugin("provisio_test_misbehave");

    let first = Runtime::new(Some(&cache))
        .unwrap()
        .load_plugin("m", &path, None)
        .await
        .unwrap();
    assert!(!first.timings.from_cache);
    let second = Runtime::new(Some(&cache))
        .unwrap()
        .load_plugin("m", &path, None)
        .await
        .unwrap();
    assert!(
        second.timings.from_cache,
        "second load must come from the cache"
    );
    assert_eq!(second.manifest, first.manifest);

    // Tamper with the artifact: the host must refuse it and recompile.
    let artifact = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .unwrap();
    let mut bytes = std::fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&artifact, &bytes).unwrap();
    let third = Runtime::new(Some(&cache))
        .unwrap()
        .load_plugin("m", &path, None)
        .await
        .unwrap();
    assert!(
        !third.timings.from_cache,
        "a tampered artifact must not be loaded"
    );
    assert_eq!(third.manifest, first.manifest);
    let fourth = Runtime::new(Some(&cache))
        .unwrap()
        .load_plugin("m", &path, None)
        .await
        .unwrap();
    assert!(
        fourth.timings.from_cache,
        "the recompiled artifact is cached again"
    );
}

// ------------------------------------------------ default-mapping bounds (issue 9 item 4)

/// The plugin whose default `nickName` mapping is `Replace` nested eight
/// deep (tests/plugins/evil-defaults) is refused when it loads, naming the
/// mapping, its target and the limit.
#[tokio::test]
async fn oversized_default_mapping_is_refused_at_load() {
    let rt = Runtime::new(None).unwrap();
    let path = common::plugin("provisio_test_evil_defaults");
    let e = rt.load_plugin("evil", &path, None).await.unwrap_err();
    let PluginError::DefaultMapping { target, .. } = &e else {
        panic!("expected a default-mapping refusal, got {e:?}");
    };
    assert_eq!(target.as_deref(), Some("nickName"));
    let msg = e.to_string();
    assert!(
        msg.contains("is refused: its default user mapping for 'nickName': Replace (column "),
        "{msg}"
    );
    assert!(
        msg.contains("max_value_bytes") && msg.contains("65536"),
        "{msg}"
    );
    // The well-behaved plugin beside it still loads in the same runtime.
    rt.load_plugin("m", &common::plugin("provisio_test_misbehave"), None)
        .await
        .unwrap();
}

/// `sync --dry-run` loads plugins the same way: the attack never reaches an
/// evaluation (the review saw 45 s and 5.9 GB for two users).
#[test]
fn dry_run_refuses_the_oversized_default_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let (plugin, sha) = common::pinned("provisio_test_evil_defaults");
    let config = dir.path().join("provisio.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[runtime]
state_dir = "state"

[plugins.evil]
path = "{plugin}"
sha256 = "{sha}"

[sources.corp]
path = "directory.json"

[connections.evil]
plugin = "evil"
source = "corp"
"#,
            plugin = plugin.display()
        ),
    )
    .unwrap();
    let a = "a".repeat(3000);
    std::fs::write(
        dir.path().join("directory.json"),
        format!(
            r#"{{"users": [
                {{"id": "u1", "userPrincipalName": "u1@x", "displayName": "{a}"}},
                {{"id": "u2", "userPrincipalName": "u2@x", "displayName": "{a}"}}],
              "groups": [],
              "assignments": [
                {{"principal": "u1", "connection": "evil"}},
                {{"principal": "u2", "connection": "evil"}}]}}"#
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_provisio"))
        .arg("--config")
        .arg(&config)
        .args(["sync", "evil", "--dry-run"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "dry run succeeded:\n{stderr}");
    assert!(
        stderr.contains("default user mapping for 'nickName'")
            && stderr.contains("max_value_bytes"),
        "{stderr}"
    );
}

/// The seed connectors' default mappings pass the same check (they load).
#[tokio::test]
async fn seed_connectors_default_mappings_pass_the_bounds_check() {
    let rt = Runtime::new(None).unwrap();
    for stem in [
        "provisio_plugin_scim",
        "provisio_plugin_zendesk",
        "provisio_plugin_rfpio",
        "provisio_plugin_zenya",
        "provisio_plugin_replicon",
        "provisio_plugin_clarizen",
    ] {
        let p = rt
            .load_plugin(stem, &common::plugin(stem), None)
            .await
            .unwrap_or_else(|e| panic!("{stem}: {e}"));
        provisio::mapping::check_defaults(&p.manifest).unwrap();
    }
}
