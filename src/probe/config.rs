//! `[probe]`, `[probe.policy.NAME]` and `[[endpoint]]`: defined with the other
//! config sections in [`crate::config::probe`], re-exported here for the
//! probe code.

pub use crate::config::probe::*;
