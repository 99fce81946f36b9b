//! Secrets: placements, login exchanges, derived secrets, scrubbing of every encoding.

#[allow(unused_imports)]
use super::*;
