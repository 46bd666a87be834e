//! `[daemon]`: defined with the other config sections in
//! [`crate::config::daemon`], re-exported here for the daemon code.
