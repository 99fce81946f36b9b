//! Egress: private address ranges, pinning, path encodings, forwarding headers.
//!
//! The misbehave plugin's `egress-*` behaviours send exactly the URL or header
//! a test names; each test gives its connection the grant it needs (a host
//! name, a path prefix, a private opt-in), checks the refusal and that the
//! target saw nothing, and then that a well-behaved connection still works.

use super::*;
use common::Fixture;
use provisio::runtime::ConnectionSpec;

fn pats(list: &[String]) -> Vec<HostPattern> {
    list.iter()
        .map(|p| HostPattern::parse(p).unwrap())
        .collect()
}

/// A connection with `behaviour`, declared hosts `url` (and `other_url`),
/// granted `allowed`, opted in to non-public addresses for `private`.
fn conn_with(
    w: &World,
    behaviour: &str,
    url: &str,
    other_url: Option<&str>,
    allowed: &[String],
    private: &[String],
) -> Connection {
    let mut settings = BTreeMap::from([
        ("behaviour".to_string(), behaviour.to_string()),
        ("url".to_string(), url.to_string()),
    ]);
    if let Some(o) = other_url {
        settings.insert("other_url".to_string(), o.to_string());
    }
    let spec = ConnectionSpec {
        name: "conn-egress".into(),
        settings,
        allowed_hosts: pats(allowed),
        private_hosts: pats(private),
        secrets: BTreeMap::new(),
        secret_placements: BTreeMap::new(),
        limits: test_limits(),
    };
    w.runtime.connect(w.plugin.clone(), spec).unwrap()
}

fn saw(f: &Fixture, path: &str) -> bool {
    f.requests().iter().any(|r| r.path == path)
}

#[tokio::test]
async fn a_granted_host_name_resolving_to_loopback_is_refused() {
    let w = world().await;
    let origin = format!("http://localhost:{}", w.a.port);
    let c = conn_with(
        &w,
        "egress-get:/ping",
        &origin,
        None,
        std::slice::from_ref(&origin),
        &[],
    );
    let m = denied(c.test_connection().await);
    assert!(
        m.contains("host 'localhost' resolves to")
            && m.contains("loopback (")
            && m.contains("not a public address")
            && m.contains(&format!("{{ origin = \"{origin}\", private = true }}")),
        "{m}"
    );
    assert!(!saw(&w.a, "/ping"), "the loopback target was contacted");
    w.assert_healthy("host name resolving to loopback").await;
}

#[tokio::test]
async fn a_private_opt_in_allows_its_origin_and_only_that_origin() {
    let w = world().await;
    let a = format!("http://localhost:{}", w.a.port);
    let b = format!("http://localhost:{}", w.b.port);
    let both = [a.clone(), b.clone()];
    let c = conn_with(
        &w,
        "egress-get:/ping",
        &a,
        Some(&b),
        &both,
        std::slice::from_ref(&a),
    );
    assert_eq!(c.test_connection().await.as_deref(), Ok("status 200"));
    assert!(saw(&w.a, "/ping"));
    // Same host name, another origin without the opt-in: refused, although
    // the connection already holds a connection to localhost for A.
    let c = conn_with(
        &w,
        &format!("egress-url:{b}/ping"),
        &a,
        Some(&b),
        &both,
        std::slice::from_ref(&a),
    );
    let m = denied(c.test_connection().await);
    assert!(m.contains("host 'localhost' resolves to"), "{m}");
    assert!(!saw(&w.b, "/ping"), "B was contacted without an opt-in");
    w.assert_healthy("private opt-in").await;
}

#[tokio::test]
async fn a_redirect_to_a_host_resolving_to_loopback_is_refused() {
    let w = world().await;
    let target = format!("http://localhost:{}", w.b.port);
    let redirector = fixture(Some(format!("{target}/ping"))).await;
    let c = conn_with(
        &w,
        "egress-get:/redirect",
        &redirector.url,
        Some(&target),
        &[redirector.url.clone(), target.clone()],
        &[],
    );
    let m = denied(c.test_connection().await);
    assert!(
        m.contains("host 'localhost' resolves to") && m.contains(&target),
        "{m}"
    );
    assert!(saw(&redirector, "/redirect"), "the first hop was sent");
    assert!(!saw(&w.b, "/ping"), "the redirect target was contacted");
    w.assert_healthy("redirect to loopback").await;
}

#[tokio::test]
async fn alternative_ip_literal_forms_are_refused() {
    let w = world().await;
    let port = w.a.port;
    let granted = std::slice::from_ref(&w.a.url);
    for url in [
        format!("http://[::ffff:127.0.0.1]:{port}/ping"),
        format!("http://[::ffff:7f00:1]:{port}/ping"),
        format!("http://[::127.0.0.1]:{port}/ping"),
        format!("http://[64:ff9b::7f00:1]:{port}/ping"),
        format!("http://[::1]:{port}/ping"),
        format!("http://2130706434:{port}/ping"),
        format!("http://0x7f.0.0.2:{port}/ping"),
        format!("http://0177.0.0.2:{port}/ping"),
    ] {
        // Declared as written (the plugin may claim anything), granted only
        // as 127.0.0.1: the grant does not name these addresses.
        let c = conn_with(&w, &format!("egress-url:{url}"), &url, None, granted, &[]);
        let m = denied(c.test_connection().await);
        assert!(
            m.contains("is not granted to this connection") || m.contains("not a public address"),
            "{url}: {m}"
        );
    }
    assert!(!saw(&w.a, "/ping"), "a literal form reached the target");
    // Forms the url crate parses to the granted address itself are that address.
    for url in [
        format!("http://2130706433:{port}/ping"),
        format!("http://0x7f.1:{port}/ping"),
        format!("http://127.1:{port}/ping"),
    ] {
        let c = conn_with(
            &w,
            &format!("egress-url:{url}"),
            &w.a.url,
            None,
            granted,
            &[],
        );
        assert_eq!(
            c.test_connection().await.as_deref(),
            Ok("status 200"),
            "{url}"
        );
    }
    w.assert_healthy("IP literal forms").await;
}

#[tokio::test]
async fn encoded_separators_and_dot_segments_are_refused_under_a_path_prefix_grant() {
    let w = world().await;
    let prefix = format!("{}/v2", w.a.url);
    // The grant has the prefix, the declared host is the whole origin.
    let granted = std::slice::from_ref(&prefix);
    for path in [
        "/v2/..%2fadmin",
        "/v2/..%2Fadmin",
        "/v2/%2e%2e%2fadmin",
        "/v2/..%5cadmin",
        "/v2/%2e%2e/v2/users",
        "/v2/%2E/users",
        "/v2/x/../users",
        "/v2/./users",
        "/v2/x\\y",
        "/v2/%252e%252e/admin",
        "/v2/..%252fadmin",
        "/v2/..%25252fadmin",
        "/v2/users%2e",
    ] {
        let c = conn_with(
            &w,
            &format!("egress-get:{path}"),
            &w.a.url,
            None,
            granted,
            &[],
        );
        let m = denied(c.test_connection().await);
        assert!(
            m.contains("under the path-prefix grant") && m.contains(&prefix),
            "{path}: {m}"
        );
    }
    assert!(
        w.a.requests().is_empty(),
        "a refused path reached the target: {:?}",
        w.a.requests()
    );
    // Paths that leave the prefix after parsing are outside the grant.
    let c = conn_with(
        &w,
        "egress-get:/v2/%2e%2e/admin",
        &w.a.url,
        None,
        granted,
        &[],
    );
    assert!(denied(c.test_connection().await).contains("not granted"));
    // The plain path passes.
    let c = conn_with(&w, "egress-get:/v2/users", &w.a.url, None, granted, &[]);
    assert_eq!(c.test_connection().await.as_deref(), Ok("status 404"));
    assert!(saw(&w.a, "/v2/users"));
    // A prefix on the declared side is guarded the same way.
    let c = conn_with(
        &w,
        "egress-get:/..%2fadmin",
        &prefix,
        None,
        std::slice::from_ref(&w.a.url),
        &[],
    );
    assert!(denied(c.test_connection().await).contains("under the path-prefix grant"));
    // Origin-wide on both sides: nothing to confuse, the path is sent as is.
    let c = conn_with(
        &w,
        "egress-get:/v2/..%2fadmin",
        &w.a.url,
        None,
        std::slice::from_ref(&w.a.url),
        &[],
    );
    assert_eq!(c.test_connection().await.as_deref(), Ok("status 404"));
    w.assert_healthy("path encodings").await;
}

#[tokio::test]
async fn forwarding_and_hop_by_hop_headers_are_refused() {
    let w = world().await;
    let granted = std::slice::from_ref(&w.a.url);
    let refused = [
        "Forwarded",
        "X-Forwarded-For",
        "X-Forwarded-Host",
        "X-Forwarded-Proto",
        "x-forwarded-prefix",
        "X_Forwarded_For",
        "X-Real-IP",
        "X-Client-IP",
        "True-Client-IP",
        "X-Original-URL",
        "X-Rewrite-URL",
        "X-Host",
        "Via",
        "Proxy-Connection",
        "Proxy-Authorization",
        "Keep-Alive",
        "Connection",
        "Host",
        "Transfer-Encoding",
    ];
    for name in refused {
        let c = conn_with(
            &w,
            &format!("egress-header:{name}"),
            &w.a.url,
            None,
            granted,
            &[],
        );
        match c.test_connection().await {
            Err(CallError::Connector(ConnectorError::Other(m))) => assert!(
                m.contains(&format!("header '{name}' is "))
                    && m.contains("a connector may not set it"),
                "{name}: {m}"
            ),
            other => panic!("{name}: expected an invalid-request refusal, got {other:?}"),
        }
    }
    assert!(
        !saw(&w.a, "/ping"),
        "a request with a refused header was sent"
    );
    let c = conn_with(
        &w,
        "egress-header:X-Request-Id",
        &w.a.url,
        None,
        granted,
        &[],
    );
    assert_eq!(c.test_connection().await.as_deref(), Ok("status 200"));
    let sent = w.a.requests();
    assert!(
        sent.iter()
            .any(|r| r.headers.iter().any(|(k, _)| k == "x-request-id")),
        "{sent:?}"
    );
    w.assert_healthy("forwarding headers").await;
}
