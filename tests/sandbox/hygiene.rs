//! Output hygiene: untrusted strings in terminals, logs, the store and audit records.

#[allow(unused_imports)]
use super::*;
