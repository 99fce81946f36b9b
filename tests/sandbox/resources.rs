//! Resource isolation: memory across instances, pool slots, CPU including host calls, caps on guest strings.

#[allow(unused_imports)]
use super::*;
