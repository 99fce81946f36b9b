//! A fault-injecting reverse proxy in front of a real target: every n-th
//! request answers 429 (with Retry-After), every m-th 503, and every k-th POST
//! is forwarded but its response lost (502), like a create that timed out after
//! it happened; every j-th POST gets its 2xx body garbled (truncated JSON or
//! an HTML page); from request r on, every request gets 401 (a revoked token)
//! until restored; or a percentage of all requests, drawn at random, gets
//! one of those faults in turn (mixed faults). Records when each request
//! arrived and what it got.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Which faults to inject (0 = off).
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    pub every_nth_429: u64,
    pub retry_after_secs: u64,
    pub every_nth_503: u64,
    pub every_nth_post_lost: u64,
    /// Answer 400 (a permanent SCIM error) to any request whose body contains this.
    pub reject_body_containing: Option<&'static str>,
    /// Hold every request this long before forwarding it (a slow target).
    pub delay_ms: u64,
    /// Forward every n-th POST, but replace a 2xx answer's body by half of it
    /// (truncated JSON) or, every other time, an HTML page: the create
    /// happened, its answer cannot be read.
    pub every_nth_post_garbled: u64,
    /// Answer 401 (a revoked token) to every request after this many, until
    /// [`Proxy::restored`] is set (0 = never).
    pub revoke_after: u64,
    /// Answer this percentage of all requests (chosen by a seeded
    /// pseudo-random draw per request, so a run is repeatable) with one of
    /// five faults in turn: the response lost after forwarding (502), 429
    /// with `Retry-After: 1`, 503 without forwarding, the forwarded answer's
    /// body truncated, or replaced by an HTML page (status kept).
    pub mixed_percent: u64,
    /// The seed of [`Faults::mixed_percent`]'s draw.
    pub seed: u64,
}

/// Which mixed fault request `i` gets, if any (splitmix64 of seed and i).
fn mixed_fault(f: &Faults, i: u64) -> Option<u64> {
    if f.mixed_percent == 0 {
        return None;
    }
    let mut z = f.seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % 100 < f.mixed_percent).then_some((z / 100) % 5)
}

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub status: u16,
}

pub struct Proxy {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Set to end a revocation ([`Faults::revoke_after`]): the token works again.
    pub restored: Arc<std::sync::atomic::AtomicBool>,
}

pub async fn start(upstream: String, faults: Faults) -> Proxy {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use axum::response::IntoResponse;
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let n = Arc::new(AtomicU64::new(0));
    let posts = Arc::new(AtomicU64::new(0));
    let garbled = Arc::new(AtomicU64::new(0));
    let client = reqwest::Client::new();
    let s2 = seen.clone();
    let restored = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r2 = restored.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (seen, n, posts, client, upstream, restored, garbled) = (
                s2.clone(),
                n.clone(),
                posts.clone(),
                client.clone(),
                upstream.clone(),
                r2.clone(),
                garbled.clone(),
            );
            async move {
                let i = n.fetch_add(1, Ordering::SeqCst) + 1;
                if faults.delay_ms > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(faults.delay_ms)).await;
                }
                let record = |status: u16| {
                    seen.lock().unwrap().push(Seen {
                        at: Instant::now(),
                        method: method.to_string(),
                        path: uri.path().to_string(),
                        status,
                    });
                };
                if faults.revoke_after > 0
                    && i > faults.revoke_after
                    && !restored.load(Ordering::SeqCst)
                {
                    record(401);
                    return (
                        StatusCode::UNAUTHORIZED,
                        [("content-type", "application/scim+json")],
                        r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"401","detail":"token revoked"}"#,
                    )
                        .into_response();
                }
                let mixed = mixed_fault(&faults, i);
                if mixed == Some(1) {
                    record(429);
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "1"), ("content-type", "text/plain")],
                        "slow down",
                    )
                        .into_response();
                }
                if mixed == Some(2) {
                    record(503);
                    return (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response();
                }
                if faults.every_nth_429 > 0 && i % faults.every_nth_429 == 0 {
                    record(429);
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        [
                            ("retry-after", faults.retry_after_secs.to_string()),
                            ("content-type", "text/plain".into()),
                        ],
                        "slow down",
                    )
                        .into_response();
                }
                if let Some(needle) = faults.reject_body_containing
                && String::from_utf8_lossy(&body).contains(needle)
            {
                record(400);
                return (
                    StatusCode::BAD_REQUEST,
                    [("content-type", "application/scim+json")],
                    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidValue","detail":"rejected by the test"}"#,
                )
                    .into_response();
            }
            if faults.every_nth_503 > 0 && i % faults.every_nth_503 == 0 {
                    record(503);
                    return (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response();
                }
                let mut req = client.request(
                    reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(),
                    format!(
                        "{upstream}{}",
                        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
                    ),
                );
                for (k, v) in headers.iter() {
                    if k == "authorization" || k == "content-type" || k == "accept" {
                        req = req.header(k.as_str(), v.as_bytes());
                    }
                }
                let resp = req.body(body).send().await.unwrap();
                let status = resp.status().as_u16();
                let ctype = resp
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap_or("").to_string());
                let bytes = resp.bytes().await.unwrap();
                if mixed == Some(0) {
                    record(502);
                    return (StatusCode::BAD_GATEWAY, "upstream response lost").into_response();
                }
                if let Some(k @ (3 | 4)) = mixed {
                    record(status);
                    let (ctype, body) = if k == 3 {
                        ("application/scim+json", bytes.slice(..bytes.len() / 2))
                    } else {
                        (
                            "text/html",
                            Bytes::from_static(b"<html><body><h1>Service Unavailable</h1></body></html>"),
                        )
                    };
                    return (
                        StatusCode::from_u16(status).unwrap(),
                        [("content-type", ctype)],
                        body,
                    )
                        .into_response();
                }
                if method == Method::POST
                    && faults.every_nth_post_lost > 0
                    && (posts.fetch_add(1, Ordering::SeqCst) + 1) % faults.every_nth_post_lost == 0
                {
                    record(502);
                    return (StatusCode::BAD_GATEWAY, "upstream response lost").into_response();
                }
                if method == Method::POST
                    && faults.every_nth_post_garbled > 0
                    && (200..300).contains(&status)
                {
                    let g = garbled.fetch_add(1, Ordering::SeqCst) + 1;
                    if g % faults.every_nth_post_garbled == 0 {
                        record(status);
                        let (ctype, body) = if (g / faults.every_nth_post_garbled) % 2 == 1 {
                            ("application/scim+json", bytes.slice(..bytes.len() / 2))
                        } else {
                            (
                                "text/html",
                                Bytes::from_static(
                                    b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                                ),
                            )
                        };
                        return (
                            StatusCode::from_u16(status).unwrap(),
                            [("content-type", ctype)],
                            body,
                        )
                            .into_response();
                    }
                }
                record(status);
                let mut r = (StatusCode::from_u16(status).unwrap(), bytes).into_response();
                if let Some(c) = ctype {
                    r.headers_mut().insert("content-type", c.parse().unwrap());
                }
                r
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Proxy {
        url: format!("http://127.0.0.1:{port}"),
        seen,
        restored,
    }
}
