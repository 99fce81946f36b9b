//! Resolve, check, connect: the DNS hook of the host's HTTP clients.
//!
//! reqwest asks a [`CheckedResolver`] for the addresses of every host name it
//! connects to. The resolver looks the name up with tokio, classifies every
//! address with [`super::egress::classify`], and hands reqwest only the
//! addresses that passed. reqwest connects to exactly those, so the address
//! connected is the address checked: there is no second lookup a DNS server
//! could answer differently (rebinding between check and connect).
//!
//! Two kinds of resolvers exist per connection (see
//! [`super::http::HttpClient::for_allowlist`]):
//!
//! - the strict one ([`CheckedResolver::public_only`]) passes public
//!   addresses only; every request of the connection uses it, except
//! - requests to an origin the operator opted in with
//!   `{ origin = "...", private = true }`, which use a separate client whose
//!   resolver ([`CheckedResolver::allowing_private`]) also passes non-public
//!   addresses for the host names of those origins. The two clients have
//!   separate connection pools, so a connection to a private address is never
//!   reused for an origin that was not opted in.
//!
//! URLs whose host is an IP literal never reach a resolver (hyper connects to
//! the literal); [`super::egress::check_literal`] checks them before sending.
//!
//! A refusal is returned to reqwest as a boxed [`EgressError`] (no public
//! address) or [`ResolveError`] (the lookup failed); the HTTP layer finds it
//! in the error's source chain and turns it into a clear message.

use super::egress::{EgressError, classify};
use super::http::HostPattern;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;

/// A host name could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve host '{host}': {message}")]
pub struct ResolveError {
    /// The host name.
    pub host: String,
    /// The resolver's message.
    pub message: String,
}

/// A reqwest DNS resolver that only hands out checked addresses.
#[derive(Debug, Clone)]
pub struct CheckedResolver {
    /// Host patterns whose names may resolve to non-public addresses.
    private: Vec<HostPattern>,
    /// Tests: answers handed out one lookup at a time instead of DNS's.
    #[cfg(test)]
    script: Option<std::sync::Arc<std::sync::Mutex<tests::Script>>>,
}

impl CheckedResolver {
    /// Public addresses only.
    pub fn public_only() -> Self {
        CheckedResolver {
            private: Vec::new(),
            #[cfg(test)]
            script: None,
        }
    }

    /// Public addresses, and any address for names matched by `private`.
    pub fn allowing_private(private: Vec<HostPattern>) -> Self {
        CheckedResolver {
            private,
            #[cfg(test)]
            script: None,
        }
    }

    /// Whether `host` may resolve to non-public addresses.
    fn private_allowed(&self, host: &str) -> bool {
        self.private.iter().any(|p| p.host_matches(host))
    }
}

/// Keep the addresses `host` may connect to; refuse when none is left.
pub fn filter_addrs(
    host: &str,
    addrs: Vec<SocketAddr>,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, EgressError> {
    if allow_private {
        return Ok(addrs);
    }
    let (public, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = addrs
        .into_iter()
        .partition(|a| classify(a.ip()).is_public());
    match (public.is_empty(), refused.first()) {
        (true, Some(first)) => Err(EgressError::NonPublicHost {
            host: super::egress::excerpt(host),
            addr: first.ip(),
            classification: Box::new(classify(first.ip())),
            more: refused.len() - 1,
        }),
        _ => Ok(public),
    }
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        let allow_private = self.private_allowed(&host);
        #[cfg(test)]
        let script = self.script.clone();
        Box::pin(async move {
            #[cfg(test)]
            let scripted = script.and_then(|s| s.lock().ok().map(|mut s| s.next()));
            #[cfg(not(test))]
            let scripted: Option<Vec<SocketAddr>> = None;
            let found: Vec<SocketAddr> = match scripted {
                Some(answer) => answer,
                None => tokio::net::lookup_host((host.as_str(), 0))
                    .await
                    .map_err(|e| ResolveError {
                        host: super::egress::excerpt(&host),
                        message: e.to_string(),
                    })?
                    .collect(),
            };
            if found.is_empty() {
                return Err(ResolveError {
                    host: super::egress::excerpt(&host),
                    message: "no addresses".to_string(),
                }
                .into());
            }
            let passed = filter_addrs(&host, found, allow_private)?;
            let addrs: Addrs = Box::new(passed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A DNS server's answers, one per lookup; the last one repeats.
    #[derive(Debug, Default)]
    pub(super) struct Script {
        answers: Vec<Vec<SocketAddr>>,
        pub(super) lookups: usize,
    }

    impl Script {
        pub(super) fn next(&mut self) -> Vec<SocketAddr> {
            let i = self.lookups.min(self.answers.len().saturating_sub(1));
            self.lookups += 1;
            self.answers.get(i).cloned().unwrap_or_default()
        }
    }

    /// A rebinding DNS server: the first answer is a public address (it
    /// passes the check), every later one is the loopback listener's. A
    /// resolver that checked one answer and connected with another lookup's
    /// would reach the listener; so would one that skipped the check.
    #[tokio::test]
    async fn a_rebinding_dns_answer_never_reaches_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let reached = Arc::new(Mutex::new(0usize));
        let seen = reached.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                *seen.lock().unwrap() += 1;
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = s.shutdown().await;
            }
        });
        let script = Arc::new(Mutex::new(Script {
            // A public address (example.com's): this machine has no route
            // to it, so connecting fails or times out; it never reaches the
            // listener.
            answers: vec![
                vec![sa("93.184.215.14")],
                vec![SocketAddr::new("127.0.0.1".parse().unwrap(), port)],
            ],
            lookups: 0,
        }));
        let resolver = CheckedResolver {
            script: Some(script.clone()),
            ..CheckedResolver::public_only()
        };
        let client = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(Arc::new(resolver))
            .connect_timeout(std::time::Duration::from_millis(300))
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let url = format!("http://rebind.test:{port}/");
        for _ in 0..3 {
            let r = client.get(&url).send().await;
            assert!(r.is_err(), "no request may succeed: {r:?}");
        }
        assert!(
            script.lock().unwrap().lookups >= 2,
            "rebinding answers were asked for"
        );
        assert_eq!(
            *reached.lock().unwrap(),
            0,
            "the loopback listener was reached"
        );
        // The same listener is reachable when the name is opted in: the
        // test can see a connection when one happens.
        let lax = CheckedResolver {
            script: Some(script.clone()),
            ..CheckedResolver::allowing_private(vec![
                HostPattern::parse(&format!("http://rebind.test:{port}")).unwrap(),
            ])
        };
        let client = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(Arc::new(lax))
            .build()
            .unwrap();
        let r = client.get(&url).send().await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(*reached.lock().unwrap(), 1);
    }

    fn sa(s: &str) -> SocketAddr {
        SocketAddr::new(s.parse().unwrap(), 0)
    }

    #[test]
    fn only_public_addresses_pass() {
        let mixed = vec![sa("127.0.0.1"), sa("93.184.215.14"), sa("::1")];
        assert_eq!(
            filter_addrs("x.example", mixed.clone(), false).unwrap(),
            vec![sa("93.184.215.14")]
        );
        assert_eq!(
            filter_addrs("x.example", mixed.clone(), true).unwrap(),
            mixed
        );
        let e = filter_addrs("localhost", vec![sa("127.0.0.1"), sa("::1")], false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "host 'localhost' resolves to 127.0.0.1, which is loopback (127.0.0.0/8), \
             not a public address (and 1 more non-public address)"
        );
        let e = filter_addrs("meta", vec![sa("::ffff:169.254.169.254")], false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("link-local (169.254.0.0/16)"), "{e}");
    }

    #[tokio::test]
    async fn resolver_refuses_localhost_unless_opted_in() {
        let strict = CheckedResolver::public_only();
        let err = match strict.resolve("localhost".parse().unwrap()).await {
            Err(e) => e,
            Ok(a) => panic!("localhost passed: {:?}", a.collect::<Vec<_>>()),
        };
        let egress = err.downcast_ref::<EgressError>().expect("an EgressError");
        assert!(egress.to_string().contains("loopback"), "{egress}");

        let lax = CheckedResolver::allowing_private(vec![
            HostPattern::parse("http://localhost:8080").unwrap(),
        ]);
        let addrs: Vec<_> = match lax.resolve("localhost".parse().unwrap()).await {
            Ok(a) => a.collect(),
            Err(e) => panic!("{e}"),
        };
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        // The opt-in is for the names of its origins only.
        assert!(!lax.private_allowed("other.internal"));
        assert!(lax.private_allowed("LOCALHOST"));
    }
}
