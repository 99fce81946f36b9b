//! The request budget: `requests_per_second` holds for every request a
//! connector makes, redirect hops included, and a paused budget answers the
//! guest with a host-made 429 instead of sending.

use super::*;
use common::Seen;

/// The most requests `seen` holds in any window of one second.
fn busiest_second(seen: &[Seen]) -> usize {
    let mut most = 0;
    for (i, first) in seen.iter().enumerate() {
        let in_window = seen[i..]
            .iter()
            .take_while(|s| s.at.duration_since(first.at) < Duration::from_secs(1))
            .count();
        most = most.max(in_window);
    }
    most
}

fn budget_limits(rate: f64) -> Limits {
    Limits {
        requests_per_second: rate,
        wall_time: Duration::from_secs(20),
        ..test_limits()
    }
}

#[tokio::test]
async fn back_to_back_requests_are_paced_at_the_budget() {
    let w = world().await;
    let r = w
        .conn("rate-burst", budget_limits(5.0))
        .test_connection()
        .await;
    assert_eq!(r.as_deref(), Ok(vec!["200"; 15].join(",").as_str()));
    let seen: Vec<Seen> =
        w.a.requests()
            .into_iter()
            .filter(|s| s.path == "/ping")
            .collect();
    assert_eq!(seen.len(), 15);
    let most = busiest_second(&seen);
    // One more than the budget allows for the jitter of arrival times on a
    // loaded machine; without the limiter all 15 arrive within milliseconds.
    assert!(
        most <= 6,
        "{most} requests in one second at a budget of 5/s (15 requests took {:?})",
        seen[14].at.duration_since(seen[0].at)
    );
    w.assert_healthy("rate-burst").await;
}

#[tokio::test]
async fn every_redirect_hop_spends_the_budget() {
    let w = world().await;
    let r = w
        .conn("redirect-chain", budget_limits(5.0))
        .test_connection()
        .await;
    assert_eq!(r.as_deref(), Ok("200,200,200"));
    let seen: Vec<Seen> =
        w.a.requests()
            .into_iter()
            .filter(|s| s.path.starts_with("/chain/"))
            .collect();
    assert_eq!(seen.len(), 15, "three chains of five hops");
    let most = busiest_second(&seen);
    assert!(
        most <= 6,
        "{most} hops in one second at a budget of 5/s (+1 for jitter)"
    );
    w.assert_healthy("redirect-chain").await;
}

#[tokio::test]
async fn a_paused_budget_answers_429_without_sending() {
    let w = world().await;
    let conn = w.conn("rate-burst", budget_limits(5.0));
    // The target asked for a 60 s pause (as a 429 with Retry-After would).
    conn.limiter().throttle(Some(Duration::from_secs(60)));
    let started = std::time::Instant::now();
    let r = conn.test_connection().await;
    assert_eq!(
        r.as_deref(),
        Ok(vec!["429"; 15].join(",").as_str()),
        "every request is answered by the host"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the call did not sit out the pause"
    );
    assert!(
        w.a.requests().iter().all(|s| s.path != "/ping"),
        "nothing was sent while the budget was paused"
    );
    w.assert_healthy("paused budget").await;
}

#[tokio::test]
async fn requests_held_back_by_a_paused_budget_cost_budgeted_audit_records() {
    let w = world().await;
    // 5000 host-answered requests are host work the CPU budget counts.
    let limits = Limits {
        cpu_time: Duration::from_secs(30),
        wall_time: Duration::from_secs(60),
        ..budget_limits(5.0)
    };
    let conn = w.conn("throttled-flood", limits);
    conn.limiter().throttle(Some(Duration::from_secs(600)));
    let started = std::time::Instant::now();
    assert_eq!(conn.test_connection().await.as_deref(), Ok("held 5000"));
    let elapsed = started.elapsed().as_secs_f64();
    let stats = provisio::capabilities::audit::stats("conn-throttled-flood");
    let limits = provisio::capabilities::audit::AuditLimits::default();
    assert_eq!(
        stats.written + stats.dropped,
        5000,
        "every hold was audited: {stats:?}"
    );
    let bound = f64::from(limits.burst) + limits.records_per_second * elapsed + 1.0;
    assert!(
        (stats.written as f64) <= bound,
        "{} throttled records in {elapsed:.2} s (bound {bound})",
        stats.written
    );
    assert!(
        w.a.requests().iter().all(|s| s.path != "/ping"),
        "nothing was sent"
    );
    w.assert_healthy("throttled flood").await;
}
