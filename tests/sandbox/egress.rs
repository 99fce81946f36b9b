//! Egress: private address ranges, pinning, path encodings, forwarding headers.

#[allow(unused_imports)]
use super::*;
