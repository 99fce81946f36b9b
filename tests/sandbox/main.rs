//! Sandbox tests: a purpose-built misbehaving plugin (tests/plugins/misbehave)
//! tries every way out of its box. Each attempt must fail cleanly with a clear
//! error, and a well-behaved connection in the same host process must keep
//! working after each one.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

// One module per class of attack (issue 9); each adds its tests there.
mod budget;
mod egress;
mod hygiene;
mod resources;
mod secrets;

use common::{Fixture, capture_logs, fixture, plugin};
use provisio::capabilities::http::HostPattern;
use provisio::capabilities::secrets::{Secret, SecretValue};
use provisio::model::{ConnectorError, ObjectKind, Placement};
use provisio::runtime::{CallError, Connection, Limits, Plugin, Runtime};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub(crate) const TOKEN: &str = "sandbox-test-token-7f3a9c2e";
/// A second token, bound to origin A like the first.
pub(crate) const TOKEN2: &str = "second-Token-b83d1f60aa";
/// A password with a quote, a backslash and non-ASCII text (JSON escaping,
/// mojibake), sent only by the login exchange.
pub(crate) const PASSWORD: &str = "pa\"ss\\wörd-Ω-91c4";

pub(crate) struct World {
    pub(crate) runtime: Runtime,
    pub(crate) plugin: Arc<Plugin>,
    pub(crate) a: Fixture,
    pub(crate) b: Fixture,
    pub(crate) attacker: Fixture,
}

pub(crate) async fn world() -> World {
    let attacker = fixture(None).await;
    let a = fixture(Some(format!("{}/stolen", attacker.url))).await;
    let b = fixture(None).await;
    let runtime = Runtime::new(None).unwrap();
    let plugin = runtime
        .load_plugin("misbehave", &plugin("provisio_test_misbehave"), None)
        .await
        .unwrap();
    World {
        runtime,
        plugin: Arc::new(plugin),
        a,
        b,
        attacker,
    }
}

pub(crate) fn test_limits() -> Limits {
    Limits {
        memory_bytes: 32 * 1024 * 1024,
        cpu_time: Duration::from_secs(1),
        wall_time: Duration::from_secs(4),
        http_timeout: Duration::from_secs(2),
        max_response_bytes: 1024 * 1024,
        ..Limits::default()
    }
}

pub(crate) fn flood_limits() -> Limits {
    Limits {
        cpu_time: Limits::default().cpu_time,
        wall_time: Duration::from_secs(60),
        ..test_limits()
    }
}

impl World {
    /// A connection with `behaviour`; both fixture origins are granted, the
    /// token is bound to A only; the attacker's origin is never granted.
    pub(crate) fn conn(&self, behaviour: &str, limits: Limits) -> Connection {
        let bound_to_a = |name: &str, value: &str| {
            Arc::new(Secret {
                name: name.into(),
                value: SecretValue::new(value.into()),
                bound_to: vec![HostPattern::parse(&self.a.url).unwrap()],
            })
        };
        let settings = BTreeMap::from([
            ("behaviour".to_string(), behaviour.to_string()),
            ("url".to_string(), self.a.url.clone()),
            ("other_url".to_string(), self.b.url.clone()),
        ]);
        let spec = provisio::runtime::ConnectionSpec {
            name: format!("conn-{behaviour}"),
            settings,
            allowed_hosts: vec![
                HostPattern::parse(&self.a.url).unwrap(),
                HostPattern::parse(&self.b.url).unwrap(),
            ],
            private_hosts: vec![],
            secrets: BTreeMap::from([
                ("token".to_string(), bound_to_a("sandbox_token", TOKEN)),
                ("token2".to_string(), bound_to_a("sandbox_token2", TOKEN2)),
                (
                    "password".to_string(),
                    bound_to_a("sandbox_password", PASSWORD),
                ),
            ]),
            secret_placements: BTreeMap::from([(
                "password".to_string(),
                vec![Placement::Login("login".into())],
            )]),
            limits,
        };
        self.runtime.connect(self.plugin.clone(), spec).unwrap()
    }

    pub(crate) async fn run(&self, behaviour: &str) -> Result<String, CallError> {
        self.conn(behaviour, test_limits()).test_connection().await
    }

    pub(crate) async fn assert_healthy(&self, after: &str) {
        let r = self.run("ok").await;
        assert_eq!(
            r.as_deref(),
            Ok("ok 200"),
            "well-behaved call failed after '{after}'"
        );
    }
}

pub(crate) fn denied(r: Result<String, CallError>) -> String {
    match r {
        Err(CallError::Connector(ConnectorError::Denied(m))) => m,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn host_survives_every_misbehaviour() {
    let (logs, _guard) = capture_logs();
    let w = world().await;
    w.assert_healthy("start").await;

    let r = w.run("spin").await;
    assert!(matches!(r, Err(CallError::CpuLimit { .. })), "{r:?}");
    assert!(
        r.unwrap_err()
            .to_string()
            .contains("exceeded its CPU limit")
    );
    w.assert_healthy("spin").await;

    let r = w.run("memory-bomb").await;
    let Err(CallError::MemoryLimit { limit, .. }) = &r else {
        panic!("{r:?}")
    };
    assert_eq!(*limit, 32);
    w.assert_healthy("memory-bomb").await;

    let r = w.run("recursion").await;
    assert!(matches!(r, Err(CallError::StackOverflow { .. })), "{r:?}");
    w.assert_healthy("recursion").await;

    let r = w.run("panic").await;
    let Err(CallError::Panic { message, .. }) = &r else {
        panic!("{r:?}")
    };
    assert!(
        message.contains("deliberate panic from misbehave plugin"),
        "{message}"
    );
    w.assert_healthy("panic").await;

    let m = denied(w.run("ungranted-host").await);
    assert!(
        m.contains("https://evil.example.com")
            && m.contains("not among the hosts the plugin declared"),
        "{m}"
    );
    w.assert_healthy("ungranted-host").await;

    let m = denied(w.run("redirect").await);
    assert!(m.contains(&w.attacker.url), "{m}");
    assert!(
        w.attacker.requests().is_empty(),
        "the redirect target must never be contacted"
    );
    w.assert_healthy("redirect").await;

    let m = denied(w.run("ungranted-secret").await);
    assert!(
        m.contains("secret 'not-granted' is not granted to connection"),
        "{m}"
    );
    w.assert_healthy("ungranted-secret").await;

    let m = denied(w.run("secret-to-unbound-host").await);
    assert!(
        m.contains("may not be sent to") && m.contains(&w.b.url),
        "{m}"
    );
    assert!(
        w.b.requests().is_empty(),
        "nothing may reach B when the secret is refused"
    );
    w.assert_healthy("secret-to-unbound-host").await;

    // The flood's point is the log rate limit, not speed: a loaded machine
    // must not turn it into a CPU-limit hit, so it gets the default CPU limit.
    let r = w.conn("log-flood", flood_limits()).test_connection().await;
    assert_eq!(r.as_deref(), Ok("flooded"));
    w.assert_healthy("log-flood").await;

    let r = w.run("big-response").await;
    match r {
        Err(CallError::Connector(ConnectorError::Other(m))) => {
            assert!(m.contains("exceeds the cap of 1048576 bytes"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    w.assert_healthy("big-response").await;

    let r = w.run("no-such-behaviour").await;
    assert!(
        matches!(
            r,
            Err(CallError::Connector(ConnectorError::InvalidInput(_)))
        ),
        "{r:?}"
    );
    w.assert_healthy("unknown behaviour").await;

    // Every denial was audited.
    let text = logs.text();
    assert!(
        text.contains("decision=\"denied\""),
        "no denied audit record"
    );
    assert!(
        text.contains("decision=\"allowed\""),
        "no allowed audit record"
    );
}

#[tokio::test]
async fn echoed_secrets_never_reach_the_guest_or_the_logs() {
    let (logs, _guard) = capture_logs();
    let w = world().await;
    let seen_by_guest = w.run("echo-secret").await.unwrap();
    // The target received the real secret in both places...
    let req =
        w.a.requests()
            .into_iter()
            .find(|r| r.path == "/echo")
            .unwrap();
    let header = |n: &str| {
        req.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(header("authorization"), format!("Bearer {TOKEN}"));
    assert_eq!(header("x-token"), format!("tok={TOKEN}"));
    // ...but what came back to the guest has it scrubbed.
    assert!(
        !seen_by_guest.contains(TOKEN),
        "guest saw the secret: {seen_by_guest}"
    );
    assert!(seen_by_guest.contains("[REDACTED]"), "{seen_by_guest}");
    // And no log line anywhere holds it.
    w.run("ungranted-secret").await.unwrap_err();
    w.run("secret-to-unbound-host").await.unwrap_err();
    let text = logs.text();
    // Whether this thread's capture saw the host's records depends on which
    // test first hit each tracing callsite (it failed "logs were captured"
    // now and then in the full suite); the logs of a real process are
    // searched, for every encoding, by
    // secrets::the_built_binary_leaks_no_secret_to_any_output_or_state_file.
    assert!(!text.contains(TOKEN), "secret found in logs");
}

#[tokio::test]
async fn log_flood_is_rate_limited_and_summarised() {
    let (logs, _guard) = capture_logs();
    let w = world().await;
    let conn = w.conn("log-flood", flood_limits());
    let started = std::time::Instant::now();
    assert_eq!(conn.test_connection().await.as_deref(), Ok("flooded"));
    let elapsed = started.elapsed().as_secs_f64();
    let stats = conn.log_stats();
    let log = flood_limits().log;
    // The token bucket admits at most burst + rate × elapsed records.
    let bound = f64::from(log.burst) + log.records_per_second * elapsed + 1.0;
    assert!(
        (stats.emitted as f64) <= bound,
        "{stats:?} in {elapsed:.2} s (bound {bound})"
    );
    assert_eq!(stats.emitted + stats.suppressed, 100_000, "{stats:?}");
    assert!(stats.suppressed >= 90_000, "{stats:?}");
    let text = logs.text();
    let lines = text.lines().filter(|l| l.contains("flood line")).count();
    assert_eq!(
        lines as u64, stats.emitted,
        "only admitted records reach the log"
    );
    assert!(
        text.contains("guest log rate limit: suppressed"),
        "no suppression summary"
    );
    assert!(
        text.contains("connection=\"conn-log-flood\""),
        "records are tagged with the connection"
    );
}

#[tokio::test]
async fn guest_stdio_goes_to_the_log_tagged() {
    let (logs, _guard) = capture_logs();
    let w = world().await;
    assert_eq!(w.run("stdio").await.as_deref(), Ok("printed"));
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("hello from guest stdout"))
        .expect("stdout forwarded");
    assert!(
        line.contains("conn-stdio") && line.contains("stdout"),
        "{line}"
    );
    assert!(text.contains("hello from guest stderr"));
}

#[tokio::test]
async fn no_ambient_authority() {
    let w = world().await;
    let report = w.run("ambient").await.unwrap();
    for expected in ["env=0", "args=0", "fs=err", "dir=err", "net=err"] {
        assert!(report.contains(expected), "{expected} missing in {report}");
    }
}

#[tokio::test]
async fn kv_cache_round_trips() {
    let w = world().await;
    assert_eq!(w.run("kv").await.as_deref(), Ok("set=v1 after-delete=none"));
}

#[tokio::test]
async fn slow_targets_time_out() {
    let w = world().await;
    // The HTTP timeout (2 s) fires first: a transient error for the guest.
    match w.run("slow").await {
        Err(CallError::Connector(ConnectorError::Transient(m))) => {
            assert!(m.contains("timed out"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    // With a longer HTTP timeout, the wall clock (1 s) stops the whole call.
    let limits = Limits {
        http_timeout: Duration::from_secs(10),
        wall_time: Duration::from_secs(1),
        ..test_limits()
    };
    let r = w.conn("slow", limits).test_connection().await;
    assert!(matches!(r, Err(CallError::Timeout { .. })), "{r:?}");
    w.assert_healthy("timeouts").await;
}

#[tokio::test]
async fn cpu_limit_counts_guest_time_not_host_io() {
    // `slow` spends ~2.5 s waiting on HTTP with a CPU limit of 1 s: that
    // wait is host time and must not be charged to the guest.
    let w = world().await;
    let limits = Limits {
        cpu_time: Duration::from_secs(1),
        http_timeout: Duration::from_millis(2500),
        ..test_limits()
    };
    match w.conn("slow", limits).test_connection().await {
        Err(CallError::Connector(ConnectorError::Transient(_))) => {}
        other => panic!("expected the HTTP timeout, not a CPU limit: {other:?}"),
    }
}

#[tokio::test]
async fn trivial_export_works() {
    let w = world().await;
    let o = w
        .conn("ok", test_limits())
        .get(ObjectKind::User, "u-1")
        .await
        .unwrap();
    assert_eq!(o.id, "u-1");
    let e = w
        .conn("ok", test_limits())
        .create(ObjectKind::User, vec![])
        .await
        .unwrap_err();
    assert!(
        matches!(e, CallError::Connector(ConnectorError::Unsupported(_))),
        "{e:?}"
    );
}
