//! `[alert]` and `[[alert.channel]]`: defined with the other config sections
//! in [`crate::config::alert`], re-exported here for the alert code.

pub use crate::config::alert::*;
