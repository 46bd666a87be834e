//! certkeep: ACME certificates through an nginx webroot, deployed with a
//! validated reload, and watched from outside.
//!
//! The binary (`src/main.rs`) is thin; everything lives in these modules so
//! that tests, benchmarks and fuzz targets can use it.

#![deny(unreachable_pub)]

pub mod acme;
pub mod alert;
pub mod cert;
pub mod certbot;
pub mod cli;
pub mod cluster;
pub mod cmd;
pub mod config;
pub(crate) mod daemon;
pub(crate) mod dates;
pub(crate) mod hooks;
pub(crate) mod issue;
pub(crate) mod job;
pub mod logging;
pub mod net;
pub mod nginx;
pub mod probe;
pub(crate) mod progress;
pub(crate) mod renew;
pub(crate) mod shutdown;
pub mod store;
pub mod webroot;
