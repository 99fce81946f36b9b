//! Egress policy: which addresses, paths and headers a guest request may use.
//!
//! Pure decisions, no I/O. The allowlist ([`super::http::Allowlist`]) decides
//! *which origins* a connection may talk to; this module decides what is still
//! refused inside a granted origin, so that a granted name cannot be turned
//! into a way into the operator's own network or past a path-prefix grant:
//!
//! - **Addresses** ([`classify`]): every address a host name resolves to is
//!   classified as public or as one of the non-global ranges (loopback,
//!   private, link-local, CGNAT, multicast, unspecified, broadcast,
//!   documentation, benchmarking and reserved ranges). IPv6 addresses that
//!   embed an IPv4 address (IPv4-mapped, IPv4-translated, IPv4-compatible,
//!   NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are classified by the embedded
//!   address, so `::ffff:127.0.0.1` is loopback. The resolver hook
//!   ([`super::resolve`]) applies it to every resolved address and hands the
//!   HTTP client only the addresses that passed, so the address connected is
//!   the address checked. [`check_literal`] applies it to URLs whose host is an
//!   IP literal (these never reach a resolver): a non-public literal is allowed
//!   only when a granted pattern names exactly that address.
//! - **Paths** ([`check_path`]): under a path-prefix grant
//!   (`https://api.example.com/v2`), a path may not contain an encoded `/`,
//!   `\` or `.` (`%2f`, `%5c`, `%2e`, any case, also double-encoded such as
//!   `%252e`), a raw backslash, or a `.`/`..` segment, in the URL as the guest
//!   wrote it or as parsed. A server that decodes before routing would
//!   otherwise see `/v2/..%2fadmin` as `/admin`. [`prefix_guard`] says when a
//!   URL is under such a grant.
//! - **Headers** ([`check_header`]): framing headers (the host owns them),
//!   hop-by-hop headers, and forwarding headers (`Forwarded`,
//!   `X-Forwarded-*`, `X-Real-IP`, `X-Original-URL`, …, which claim a client
//!   address or an original URL to proxies and servers) may not be set by a
//!   guest. Names are compared case-insensitively with `_` read as `-`
//!   (CGI-style servers treat `X_Forwarded_For` as `X-Forwarded-For`).
//!
//! Every refusal is an [`EgressError`] that names what was refused, why, and
//! how an operator allows it where that is possible. Guest strings in the
//! messages are cut to a short excerpt.

use super::http::HostPattern;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// The kind of range an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrClass {
    /// A globally reachable address: always allowed.
    Public,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10/8`, `172.16/12`, `192.168/16`, `fc00::/7` (unique local), `fec0::/10`
    /// (deprecated site-local).
    Private,
    /// `169.254/16`, `fe80::/10`.
    LinkLocal,
    /// Carrier-grade NAT, `100.64/10`.
    Cgnat,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// `0.0.0.0`, `::`.
    Unspecified,
    /// `255.255.255.255`.
    Broadcast,
    /// Documentation ranges (`192.0.2/24`, `198.51.100/24`, `203.0.113/24`,
    /// `2001:db8::/32`, `3fff::/20`).
    Documentation,
    /// Benchmarking, `198.18/15`.
    Benchmarking,
    /// Other non-global ranges: `0/8`, `192.0.0/24`, `192.88.99/24`, `240/4`,
    /// `2001::/23`, `100::/64`, `64:ff9b:1::/48`, and IPv6 outside `2000::/3`.
    Reserved,
}

impl AddrClass {
    /// Whether addresses of this class may be connected without an opt-in.
    pub fn is_public(self) -> bool {
        self == AddrClass::Public
    }
}

/// How an IPv6 address embeds the IPv4 address it was classified by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Embedding {
    /// The embedded IPv4 address.
    pub v4: Ipv4Addr,
    /// The embedding, e.g. `IPv4-mapped`.
    pub kind: &'static str,
    /// The IPv6 range of the embedding, e.g. `::ffff:0:0/96`.
    pub range: &'static str,
}

/// The result of [`classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    /// The class.
    pub class: AddrClass,
    /// What the range is, e.g. `loopback`, `private (RFC 1918)`.
    pub label: &'static str,
    /// The range in CIDR notation, e.g. `127.0.0.0/8`; empty for public.
    pub range: &'static str,
    /// Set when an IPv6 address was classified by an embedded IPv4 address.
    pub embedded: Option<Embedding>,
}

impl Classification {
    /// Whether the address is public.
    pub fn is_public(&self) -> bool {
        self.class.is_public()
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_public() {
            write!(f, "public")?;
        } else {
            write!(f, "{} ({})", self.label, self.range)?;
        }
        if let Some(e) = &self.embedded {
            write!(f, ", by the {} it embeds ({}, {})", e.v4, e.kind, e.range)?;
        }
        Ok(())
    }
}

const PUBLIC: Classification = Classification {
    class: AddrClass::Public,
    label: "public",
    range: "",
    embedded: None,
};

/// Non-global IPv4 ranges, most specific first.
const V4_RANGES: &[([u8; 4], u8, AddrClass, &str, &str)] = &[
    (
        [0, 0, 0, 0],
        32,
        AddrClass::Unspecified,
        "unspecified",
        "0.0.0.0/32",
    ),
    (
        [0, 0, 0, 0],
        8,
        AddrClass::Reserved,
        "'this network' (RFC 791)",
        "0.0.0.0/8",
    ),
    (
        [127, 0, 0, 0],
        8,
        AddrClass::Loopback,
        "loopback",
        "127.0.0.0/8",
    ),
    (
        [10, 0, 0, 0],
        8,
        AddrClass::Private,
        "private (RFC 1918)",
        "10.0.0.0/8",
    ),
    (
        [172, 16, 0, 0],
        12,
        AddrClass::Private,
        "private (RFC 1918)",
        "172.16.0.0/12",
    ),
    (
        [192, 168, 0, 0],
        16,
        AddrClass::Private,
        "private (RFC 1918)",
        "192.168.0.0/16",
    ),
    (
        [169, 254, 0, 0],
        16,
        AddrClass::LinkLocal,
        "link-local",
        "169.254.0.0/16",
    ),
    (
        [100, 64, 0, 0],
        10,
        AddrClass::Cgnat,
        "carrier-grade NAT (RFC 6598)",
        "100.64.0.0/10",
    ),
    (
        [192, 0, 0, 0],
        24,
        AddrClass::Reserved,
        "IETF protocol assignments (RFC 6890)",
        "192.0.0.0/24",
    ),
    (
        [192, 0, 2, 0],
        24,
        AddrClass::Documentation,
        "documentation (RFC 5737)",
        "192.0.2.0/24",
    ),
    (
        [198, 51, 100, 0],
        24,
        AddrClass::Documentation,
        "documentation (RFC 5737)",
        "198.51.100.0/24",
    ),
    (
        [203, 0, 113, 0],
        24,
        AddrClass::Documentation,
        "documentation (RFC 5737)",
        "203.0.113.0/24",
    ),
    (
        [192, 88, 99, 0],
        24,
        AddrClass::Reserved,
        "6to4 relay anycast (RFC 7526)",
        "192.88.99.0/24",
    ),
    (
        [198, 18, 0, 0],
        15,
        AddrClass::Benchmarking,
        "benchmarking (RFC 2544)",
        "198.18.0.0/15",
    ),
    (
        [224, 0, 0, 0],
        4,
        AddrClass::Multicast,
        "multicast",
        "224.0.0.0/4",
    ),
    (
        [255, 255, 255, 255],
        32,
        AddrClass::Broadcast,
        "limited broadcast",
        "255.255.255.255/32",
    ),
    (
        [240, 0, 0, 0],
        4,
        AddrClass::Reserved,
        "reserved (RFC 1112)",
        "240.0.0.0/4",
    ),
];

/// Non-global IPv6 ranges (after the embedded-IPv4 forms), most specific first.
const V6_RANGES: &[(u128, u8, AddrClass, &str, &str)] = &[
    (0, 128, AddrClass::Unspecified, "unspecified", "::/128"),
    (1, 128, AddrClass::Loopback, "loopback", "::1/128"),
    (
        0x0064_ff9b_0001_u128 << 80,
        48,
        AddrClass::Reserved,
        "local-use NAT64 (RFC 8215)",
        "64:ff9b:1::/48",
    ),
    (
        0x0100_u128 << 112,
        64,
        AddrClass::Reserved,
        "discard-only (RFC 6666)",
        "100::/64",
    ),
    (
        0x2001_0db8_u128 << 96,
        32,
        AddrClass::Documentation,
        "documentation (RFC 3849)",
        "2001:db8::/32",
    ),
    (
        0x2001_u128 << 112,
        32,
        AddrClass::Reserved,
        "Teredo (RFC 4380)",
        "2001::/32",
    ),
    (
        0x2001_u128 << 112,
        23,
        AddrClass::Reserved,
        "IETF protocol assignments (RFC 2928)",
        "2001::/23",
    ),
    (
        0x3fff_u128 << 112,
        20,
        AddrClass::Documentation,
        "documentation (RFC 9637)",
        "3fff::/20",
    ),
    (
        0xfc00_u128 << 112,
        7,
        AddrClass::Private,
        "unique local (RFC 4193)",
        "fc00::/7",
    ),
    (
        0xfe80_u128 << 112,
        10,
        AddrClass::LinkLocal,
        "link-local",
        "fe80::/10",
    ),
    (
        0xfec0_u128 << 112,
        10,
        AddrClass::Private,
        "site-local (deprecated, RFC 3879)",
        "fec0::/10",
    ),
    (
        0xff00_u128 << 112,
        8,
        AddrClass::Multicast,
        "multicast",
        "ff00::/8",
    ),
];

fn v4_in(addr: Ipv4Addr, net: [u8; 4], len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    (u32::from(addr) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn v6_in(addr: u128, net: u128, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    (addr & mask) == (net & mask)
}

/// Classify an IPv4 address.
pub fn classify_v4(addr: Ipv4Addr) -> Classification {
    for &(net, len, class, label, range) in V4_RANGES {
        if v4_in(addr, net, len) {
            return Classification {
                class,
                label,
                range,
                embedded: None,
            };
        }
    }
    PUBLIC
}

/// The IPv4 address an IPv6 address embeds, if it is one of the embedding
/// forms (`::` and `::1` are not: they are IPv6's own unspecified and loopback).
pub fn embedded_v4(addr: Ipv6Addr) -> Option<Embedding> {
    let s = addr.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let embedding = |kind, range| {
        Some(Embedding {
            v4: low,
            kind,
            range,
        })
    };
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => embedding("IPv4-mapped", "::ffff:0:0/96"),
        [0, 0, 0, 0, 0xffff, 0, _, _] => embedding("IPv4-translated", "::ffff:0:0:0/96"),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => embedding("NAT64", "64:ff9b::/96"),
        [0, 0, 0, 0, 0, 0, 0, 0] | [0, 0, 0, 0, 0, 0, 0, 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] => embedding("IPv4-compatible", "::/96"),
        [0x2002, hi, lo, ..] => Some(Embedding {
            v4: Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8),
            kind: "6to4",
            range: "2002::/16",
        }),
        _ => None,
    }
}

/// Classify an IPv6 address (embedded IPv4 forms by the embedded address).
pub fn classify_v6(addr: Ipv6Addr) -> Classification {
    if let Some(e) = embedded_v4(addr) {
        return Classification {
            embedded: Some(e),
            ..classify_v4(e.v4)
        };
    }
    let bits = u128::from(addr);
    for &(net, len, class, label, range) in V6_RANGES {
        if v6_in(bits, net, len) {
            return Classification {
                class,
                label,
                range,
                embedded: None,
            };
        }
    }
    if !v6_in(bits, 0x2000_u128 << 112, 3) {
        return Classification {
            class: AddrClass::Reserved,
            label: "outside global unicast (RFC 4291)",
            range: "not in 2000::/3",
            embedded: None,
        };
    }
    PUBLIC
}

/// Classify an address: public, or the non-global range it is in.
pub fn classify(addr: IpAddr) -> Classification {
    match addr {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => classify_v6(a),
    }
}

/// Why the egress policy refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// A host name resolved only to non-public addresses.
    #[error(
        "host '{host}' resolves to {addr}, which is {classification}, not a public address{}",
        more_addresses(*.more)
    )]
    NonPublicHost {
        /// The host name (as the URL has it).
        host: String,
        /// The first refused address.
        addr: IpAddr,
        /// Its classification.
        classification: Box<Classification>,
        /// How many more non-public addresses the name resolved to.
        more: usize,
    },
    /// A URL's host is a non-public IP literal no granted pattern names.
    #[error(
        "address {addr} is {classification}, not a public address, and no entry of the \
         connection's allowed_hosts names it literally; grant it as '{suggestion}' if the \
         connection should reach it"
    )]
    NonPublicLiteral {
        /// The address.
        addr: IpAddr,
        /// Its classification.
        classification: Box<Classification>,
        /// The origin to grant.
        suggestion: String,
    },
    /// A path under a path-prefix grant has a form a server may read as
    /// another path.
    #[error(
        "path '{path}' has {what} in segment '{segment}'; under the path-prefix grant \
         {grant} a path may not contain encoded '/', '\\' or '.' (%2f, %5c, %2e, also \
         double-encoded), a backslash, or a '.' or '..' segment; send the path in its plain form"
    )]
    Path {
        /// The path (excerpt).
        path: String,
        /// The offending segment (excerpt).
        segment: String,
        /// What was found, e.g. "an encoded '/' (%2f)".
        what: &'static str,
        /// The grant the path is under.
        grant: String,
    },
    /// A header a guest may not set.
    #[error("header '{name}' is {why}; a connector may not set it")]
    Header {
        /// The header name (excerpt).
        name: String,
        /// Why.
        why: &'static str,
    },
}

fn more_addresses(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => " (and 1 more non-public address)".to_string(),
        n => format!(" (and {n} more non-public addresses)"),
    }
}

// ---------------------------------------------------------------------------
// Addresses in URLs
// ---------------------------------------------------------------------------

/// The IP address of a URL whose host is an IP literal.
pub fn literal_addr(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        Host::Ipv4(a) => Some(IpAddr::V4(a)),
        Host::Ipv6(a) => Some(IpAddr::V6(a)),
        Host::Domain(_) => None,
    }
}

/// Check a URL whose host is an IP literal (those are connected without a
/// resolver): a public address passes; a non-public one only when one of
/// `granted` names that exact address as its host. The `url` crate has
/// already turned alternative forms (`0x7f.1`, `2130706433`, `127.1`) into
/// the canonical address, and `::ffff:127.0.0.1` is an IPv6 address that no
/// `127.0.0.1` grant names. URLs with a host name pass here; the resolver
/// checks them.
pub fn check_literal(url: &Url, granted: &[HostPattern]) -> Result<(), EgressError> {
    let Some(addr) = literal_addr(url) else {
        return Ok(());
    };
    let classification = classify(addr);
    if classification.is_public() {
        return Ok(());
    }
    let named = granted
        .iter()
        .any(|p| p.names_address(addr) && p.matches(url));
    if named {
        return Ok(());
    }
    Err(EgressError::NonPublicLiteral {
        addr,
        classification: Box::new(classification),
        suggestion: url.origin().ascii_serialization(),
    })
}

// ---------------------------------------------------------------------------
// Paths under path-prefix grants
// ---------------------------------------------------------------------------

/// How many times a segment is percent-decoded at most while looking for a
/// hidden `.`, `/` or `\`; a segment still changing after that is refused.
pub const MAX_DECODE_ROUNDS: usize = 8;

const MAX_EXCERPT: usize = 120;

/// At most [`MAX_EXCERPT`] characters of an untrusted string, for messages.
pub fn excerpt(s: &str) -> String {
    if s.chars().count() <= MAX_EXCERPT {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MAX_EXCERPT).collect();
        out.push('…');
        out
    }
}

/// The path-prefixed pattern `url` is under, if the path rule applies to it:
/// when, on the declared side or on the granted side, every pattern that
/// matches `url` has a path prefix (an origin-wide pattern on both sides
/// means no path confusion can widen the grant).
pub fn prefix_guard<'a>(
    declared: &'a [HostPattern],
    granted: &'a [HostPattern],
    url: &Url,
) -> Option<&'a HostPattern> {
    let side = |ps: &'a [HostPattern]| -> Option<&'a HostPattern> {
        let mut matching = ps.iter().filter(|p| p.matches(url)).peekable();
        matching.peek()?;
        let mut prefixed = None;
        for p in matching {
            if p.path_prefix().is_empty() {
                return None;
            }
            prefixed.get_or_insert(p);
        }
        prefixed
    };
    side(granted).or_else(|| side(declared))
}

/// The path part of a URL or reference as written: after the scheme and
/// authority, before `?` or `#`. Backslashes count as separators, as the URL
/// parser reads them.
fn raw_path(raw: &str) -> &str {
    let end = raw.find(['?', '#']).unwrap_or(raw.len());
    let s = &raw[..end];
    let after_scheme = match s.find("://") {
        Some(i) if !s[..i].contains(['/', '\\']) => Some(&s[i + 3..]),
        _ => None,
    };
    let authority_follows = after_scheme.or_else(|| {
        s.strip_prefix("//")
            .or_else(|| s.strip_prefix("\\\\"))
            .or_else(|| s.strip_prefix("/\\"))
            .or_else(|| s.strip_prefix("\\/"))
    });
    match authority_follows {
        Some(rest) => rest.find(['/', '\\']).map_or("", |i| &rest[i..]),
        None => s,
    }
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// What is wrong with one segment, if anything. The segment is decoded
/// repeatedly (a server or a proxy in front of it may decode more than once)
/// and every form is checked.
fn segment_problem(segment: &str) -> Option<&'static str> {
    if segment.contains('\\') {
        return Some("a backslash");
    }
    let mut forms = vec![segment.as_bytes().to_vec()];
    loop {
        let last = forms.last()?;
        let next = percent_decode(last);
        if &next == last {
            break;
        }
        if forms.len() > MAX_DECODE_ROUNDS {
            return Some("more levels of percent-encoding than are ever needed");
        }
        forms.push(next);
    }
    for (round, form) in forms.iter().enumerate() {
        if form == b"." || form == b".." {
            return Some(if round == 0 {
                "a '.' or '..' segment"
            } else {
                "a percent-encoded '.' or '..' segment"
            });
        }
    }
    for (round, form) in forms.iter().enumerate() {
        for (needle, once, twice) in [
            (&b"%2f"[..], "an encoded '/' (%2f)", "a double-encoded '/'"),
            (
                &b"%5c"[..],
                "an encoded '\\' (%5c)",
                "a double-encoded '\\'",
            ),
            (&b"%2e"[..], "an encoded '.' (%2e)", "a double-encoded '.'"),
        ] {
            if contains_ci(form, needle) {
                return Some(if round == 0 { once } else { twice });
            }
        }
    }
    None
}

/// The path rule for a URL under a path-prefix grant `grant`: checks the
/// path as written in `raw` (the guest's URL or the `Location` of a
/// redirect) and as parsed in `url`.
pub fn check_path(raw: &str, url: &Url, grant: &HostPattern) -> Result<(), EgressError> {
    for path in [raw_path(raw), url.path()] {
        if path.contains('\\') {
            return Err(EgressError::Path {
                path: excerpt(path),
                segment: excerpt(path),
                what: "a backslash",
                grant: grant.to_string(),
            });
        }
        for segment in path.split('/') {
            if let Some(what) = segment_problem(segment) {
                return Err(EgressError::Path {
                    path: excerpt(path),
                    segment: excerpt(segment),
                    what,
                    grant: grant.to_string(),
                });
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------

/// Headers the host sets itself: framing and routing of the request.
pub const HOST_OWNED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
];

/// Hop-by-hop headers (meant for the next proxy, not the origin).
pub const HOP_BY_HOP_HEADERS: &[&str] = &["keep-alive", "proxy-connection"];

/// Forwarding headers: they tell proxies and servers a client address, an
/// original host or an original URL.
pub const FORWARDING_HEADERS: &[&str] = &[
    "forwarded",
    "via",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-original-host",
    "x-host",
];

/// Name prefixes refused as a family: `X-Forwarded-*` (forwarding) and
/// `Proxy-*` (hop-by-hop: `Proxy-Authorization`, `Proxy-Connection`, …).
pub const FORBIDDEN_HEADER_PREFIXES: &[(&str, &str)] = &[
    (
        "x-forwarded-",
        "a forwarding header (it claims a client address, host or scheme to proxies and servers)",
    ),
    (
        "x-original-",
        "a forwarding header (it claims an original request to proxies and servers)",
    ),
    ("proxy-", "a hop-by-hop header meant for a proxy"),
];

/// Check a header name a guest wants to set.
pub fn check_header(name: &str) -> Result<(), EgressError> {
    let normal = name.trim().to_ascii_lowercase().replace('_', "-");
    let refuse = |why| {
        Err(EgressError::Header {
            name: excerpt(name),
            why,
        })
    };
    if HOST_OWNED_HEADERS.contains(&normal.as_str()) {
        return refuse("set by the host (it frames and routes the request)");
    }
    if HOP_BY_HOP_HEADERS.contains(&normal.as_str()) {
        return refuse("a hop-by-hop header meant for a proxy");
    }
    if FORWARDING_HEADERS.contains(&normal.as_str()) {
        return refuse(
            "a forwarding header (it claims a client address or an original URL to proxies and servers)",
        );
    }
    for &(prefix, why) in FORBIDDEN_HEADER_PREFIXES {
        if normal.starts_with(prefix) || normal == prefix.trim_end_matches('-') {
            return refuse(why);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Classification {
        classify(s.parse().unwrap())
    }

    #[test]
    fn ipv4_ranges() {
        use AddrClass::*;
        for (addr, class, range) in [
            ("0.0.0.0", Unspecified, "0.0.0.0/32"),
            ("0.1.2.3", Reserved, "0.0.0.0/8"),
            ("127.0.0.1", Loopback, "127.0.0.0/8"),
            ("127.255.255.254", Loopback, "127.0.0.0/8"),
            ("10.0.0.1", Private, "10.0.0.0/8"),
            ("10.255.255.255", Private, "10.0.0.0/8"),
            ("172.16.0.1", Private, "172.16.0.0/12"),
            ("172.31.255.255", Private, "172.16.0.0/12"),
            ("192.168.1.1", Private, "192.168.0.0/16"),
            ("169.254.169.254", LinkLocal, "169.254.0.0/16"),
            ("100.64.0.1", Cgnat, "100.64.0.0/10"),
            ("100.127.255.255", Cgnat, "100.64.0.0/10"),
            ("224.0.0.1", Multicast, "224.0.0.0/4"),
            ("239.255.255.255", Multicast, "224.0.0.0/4"),
            ("255.255.255.255", Broadcast, "255.255.255.255/32"),
            ("240.0.0.1", Reserved, "240.0.0.0/4"),
            ("192.0.0.8", Reserved, "192.0.0.0/24"),
            ("192.0.2.10", Documentation, "192.0.2.0/24"),
            ("198.51.100.7", Documentation, "198.51.100.0/24"),
            ("203.0.113.9", Documentation, "203.0.113.0/24"),
            ("198.18.0.1", Benchmarking, "198.18.0.0/15"),
            ("198.19.255.255", Benchmarking, "198.18.0.0/15"),
            ("192.88.99.1", Reserved, "192.88.99.0/24"),
        ] {
            let c = v4(addr);
            assert_eq!((c.class, c.range), (class, range), "{addr}");
            assert!(!c.is_public(), "{addr}");
        }
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "192.167.255.255",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "11.0.0.0",
            "126.255.255.255",
            "128.0.0.0",
        ] {
            assert!(v4(addr).is_public(), "{addr} is public: {}", v4(addr));
        }
    }

    #[test]
    fn ipv6_ranges() {
        use AddrClass::*;
        for (addr, class, range) in [
            ("::", Unspecified, "::/128"),
            ("::1", Loopback, "::1/128"),
            ("fc00::1", Private, "fc00::/7"),
            ("fd12:3456::1", Private, "fc00::/7"),
            ("fe80::1", LinkLocal, "fe80::/10"),
            ("febf::1", LinkLocal, "fe80::/10"),
            ("fec0::1", Private, "fec0::/10"),
            ("ff02::1", Multicast, "ff00::/8"),
            ("2001:db8::1", Documentation, "2001:db8::/32"),
            ("3fff::1", Documentation, "3fff::/20"),
            ("2001::1", Reserved, "2001::/32"),
            ("2001:10::1", Reserved, "2001::/23"),
            ("100::1", Reserved, "100::/64"),
            ("64:ff9b:1::1", Reserved, "64:ff9b:1::/48"),
            ("4000::1", Reserved, "not in 2000::/3"),
            ("1::1", Reserved, "not in 2000::/3"),
        ] {
            let c = v4(addr);
            assert_eq!((c.class, c.range), (class, range), "{addr}");
            assert!(c.embedded.is_none(), "{addr}");
        }
        for addr in [
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "2001:4860::1",
            "3ffe::1",
        ] {
            assert!(v4(addr).is_public(), "{addr} is public: {}", v4(addr));
        }
    }

    #[test]
    fn ipv6_embedding_ipv4_is_classified_by_the_ipv4_address() {
        use AddrClass::*;
        for (addr, class, kind, embedded) in [
            ("::ffff:127.0.0.1", Loopback, "IPv4-mapped", "127.0.0.1"),
            ("::ffff:7f00:1", Loopback, "IPv4-mapped", "127.0.0.1"),
            ("::ffff:10.1.2.3", Private, "IPv4-mapped", "10.1.2.3"),
            (
                "::ffff:169.254.169.254",
                LinkLocal,
                "IPv4-mapped",
                "169.254.169.254",
            ),
            (
                "::ffff:0:127.0.0.1",
                Loopback,
                "IPv4-translated",
                "127.0.0.1",
            ),
            ("::127.0.0.1", Loopback, "IPv4-compatible", "127.0.0.1"),
            ("::10.0.0.1", Private, "IPv4-compatible", "10.0.0.1"),
            ("::0.0.0.2", Reserved, "IPv4-compatible", "0.0.0.2"),
            ("64:ff9b::127.0.0.1", Loopback, "NAT64", "127.0.0.1"),
            ("64:ff9b::c0a8:101", Private, "NAT64", "192.168.1.1"),
            ("2002:7f00:1::1", Loopback, "6to4", "127.0.0.1"),
            ("2002:a9fe:a9fe::", LinkLocal, "6to4", "169.254.169.254"),
            ("::ffff:0.0.0.0", Unspecified, "IPv4-mapped", "0.0.0.0"),
            ("::ffff:100.64.0.1", Cgnat, "IPv4-mapped", "100.64.0.1"),
        ] {
            let c = v4(addr);
            let e = c
                .embedded
                .unwrap_or_else(|| panic!("{addr} embeds nothing"));
            assert_eq!(
                (c.class, e.kind, e.v4.to_string()),
                (class, kind, embedded.to_string()),
                "{addr}"
            );
        }
        for addr in ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"] {
            let c = v4(addr);
            assert!(c.is_public() && c.embedded.is_some(), "{addr}: {c}");
        }
        let c = v4("::ffff:127.0.0.1");
        assert_eq!(
            c.to_string(),
            "loopback (127.0.0.0/8), by the 127.0.0.1 it embeds (IPv4-mapped, ::ffff:0:0/96)"
        );
    }

    fn pat(s: &str) -> HostPattern {
        HostPattern::parse(s).unwrap()
    }
    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn ip_literals_need_a_grant_naming_the_address() {
        let granted = [pat("http://127.0.0.1:8080"), pat("https://api.example.com")];
        check_literal(&url("http://127.0.0.1:8080/x"), &granted).unwrap();
        // The url crate's alternative IPv4 forms are the same address.
        check_literal(&url("http://2130706433:8080/x"), &granted).unwrap();
        check_literal(&url("http://0x7f.1:8080/x"), &granted).unwrap();
        // Public literals and host names are not this check's business.
        check_literal(&url("http://8.8.8.8/"), &granted).unwrap();
        check_literal(&url("https://api.example.com/"), &granted).unwrap();
        for bad in [
            "http://[::ffff:127.0.0.1]:8080/",
            "http://[::1]:8080/",
            "http://127.0.0.2:8080/",
            "http://0x7f000002:8080/",
            "http://127.0.0.1:9090/",
            "http://169.254.169.254/latest/meta-data",
            "http://[64:ff9b::7f00:1]:8080/",
        ] {
            let e = check_literal(&url(bad), &granted).unwrap_err();
            let m = e.to_string();
            assert!(
                matches!(e, EgressError::NonPublicLiteral { .. })
                    && m.contains("not a public address")
                    && m.contains("grant it as"),
                "{bad}: {m}"
            );
        }
        let m = check_literal(&url("http://[::ffff:7f00:1]:8080/"), &granted)
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("::ffff:127.0.0.1") && m.contains("loopback (127.0.0.0/8)"),
            "{m}"
        );
        // A grant naming the mapped form literally allows it.
        check_literal(
            &url("http://[::ffff:127.0.0.1]:8080/"),
            &[pat("http://[::ffff:127.0.0.1]:8080")],
        )
        .unwrap();
    }

    fn path_err(u: &str) -> String {
        let g = pat("https://api.example.com/v2");
        match check_path(u, &url(u), &g) {
            Err(e @ EgressError::Path { .. }) => e.to_string(),
            other => panic!("{u}: expected a path refusal, got {other:?}"),
        }
    }

    #[test]
    fn path_rule_refuses_every_encoding_of_separators_and_dots() {
        let base = "https://api.example.com";
        for (path, needle) in [
            ("/v2/..%2fadmin", "encoded '/' (%2f)"),
            ("/v2/..%2Fadmin", "encoded '/' (%2f)"),
            ("/v2/%2e%2e/admin", "'.' or '..' segment"),
            ("/v2/%2E%2E/v2/users", "'.' or '..' segment"),
            ("/v2/.%2e/admin", "'.' or '..' segment"),
            ("/v2/%2e/users", "'.' or '..' segment"),
            ("/v2/users%2e", "encoded '.' (%2e)"),
            ("/v2/..%5cadmin", "encoded '\\' (%5c)"),
            ("/v2/..%5Cadmin", "encoded '\\' (%5c)"),
            ("/v2\\..\\admin", "backslash"),
            ("/v2/users\\x", "backslash"),
            ("/v2/../admin", "'.' or '..' segment"),
            ("/v2/x/../users", "'.' or '..' segment"),
            ("/v2/./users", "'.' or '..' segment"),
            (
                "/v2/%252e%252e/admin",
                "percent-encoded '.' or '..' segment",
            ),
            ("/v2/a%252eb", "double-encoded '.'"),
            ("/v2/..%252fadmin", "double-encoded '/'"),
            ("/v2/..%255cadmin", "double-encoded '\\'"),
            (
                "/v2/%25252e%25252e/admin",
                "percent-encoded '.' or '..' segment",
            ),
        ] {
            let m = path_err(&format!("{base}{path}"));
            assert!(
                m.contains(needle) && m.contains("https://api.example.com/v2"),
                "{path}: {m}"
            );
        }
        let deep = format!("{base}/v2/%{}41", "25".repeat(MAX_DECODE_ROUNDS + 2));
        assert!(path_err(&deep).contains("levels of percent-encoding"));
    }

    #[test]
    fn path_rule_passes_plain_paths() {
        let g = pat("https://api.example.com/v2");
        for ok in [
            "https://api.example.com/v2",
            "https://api.example.com/v2/",
            "https://api.example.com/v2/users",
            "https://api.example.com/v2/Users/john.doe?filter=userName%20eq%20%22a%2fb%22",
            "https://api.example.com/v2/users/a%20b/x.json",
            "https://api.example.com/v2/users/..x",
            "https://api.example.com/v2/users/%25",
            "https://api.example.com/v2/users?q=..%2f\\",
        ] {
            check_path(ok, &url(ok), &g).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        // A relative redirect target is checked as written too.
        let u = url("https://api.example.com/v2/users");
        check_path("/v2/users", &u, &g).unwrap();
        assert!(check_path("../v2/users", &u, &g).is_err());
        assert!(check_path("//api.example.com/v2/%2e%2e/users", &u, &g).is_err());
    }

    #[test]
    fn raw_paths_are_cut_at_authority_query_and_fragment() {
        assert_eq!(raw_path("https://h:1/a/b?c#d"), "/a/b");
        assert_eq!(raw_path("https://h:1"), "");
        assert_eq!(raw_path("https://h\\a\\b"), "\\a\\b");
        assert_eq!(raw_path("//h/a"), "/a");
        assert_eq!(raw_path("/a/b?x=/.."), "/a/b");
        assert_eq!(raw_path("a/../b"), "a/../b");
    }

    #[test]
    fn prefix_guard_applies_when_one_side_only_grants_a_prefix() {
        let u = url("https://api.example.com/v2/users");
        let origin = [pat("https://api.example.com")];
        let prefix = [pat("https://api.example.com/v2")];
        let both = [
            pat("https://api.example.com/v2"),
            pat("https://api.example.com"),
        ];
        assert!(prefix_guard(&origin, &origin, &u).is_none());
        assert!(prefix_guard(&origin, &both, &u).is_none());
        assert_eq!(
            prefix_guard(&origin, &prefix, &u).map(ToString::to_string),
            Some("https://api.example.com/v2".to_string())
        );
        assert!(prefix_guard(&prefix, &origin, &u).is_some());
        assert!(prefix_guard(&[], &[], &u).is_none());
    }

    #[test]
    fn header_rule() {
        for bad in [
            "Host",
            "content-length",
            "Transfer-Encoding",
            "Connection",
            "Upgrade",
            "TE",
            "Trailer",
            "Proxy-Authorization",
            "Proxy-Connection",
            "proxy-anything",
            "Keep-Alive",
            "Forwarded",
            "X-Forwarded-For",
            "x-forwarded-host",
            "X-Forwarded-Proto",
            "X-Forwarded-Prefix",
            "X_Forwarded_For",
            "x-forwarded",
            "X-Real-IP",
            "X-Client-IP",
            "True-Client-IP",
            "X-Cluster-Client-IP",
            "CF-Connecting-IP",
            "Fastly-Client-IP",
            "X-Original-URL",
            "X-Original-Forwarded-For",
            "X-Rewrite-URL",
            "X-Host",
            "Via",
            " via ",
        ] {
            let e = check_header(bad).unwrap_err();
            assert!(
                e.to_string().contains(&format!("header '{bad}'"))
                    && e.to_string().contains("may not set it"),
                "{bad}: {e}"
            );
        }
        for ok in [
            "Authorization",
            "Accept",
            "Content-Type",
            "X-Api-Key",
            "X-Request-Id",
            "If-Match",
            "X-Forwarder",
            "Viaduct",
        ] {
            check_header(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn excerpts_are_short() {
        let long = "a".repeat(10_000);
        assert!(excerpt(&long).chars().count() <= MAX_EXCERPT + 1);
        assert_eq!(excerpt("short"), "short");
    }
}
