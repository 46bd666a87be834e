//! certkeep: ACME certificates through an nginx webroot, deployed with a
//! validated reload, and watched from outside.
//!
//! The binary (`src/main.rs`) is thin; everything lives in these modules so
//! that tests, benchmarks and fuzz targets can use it.

pub mod acme;
pub mod cert;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod issue;
pub mod logging;
pub mod probe;
pub mod store;
pub mod webroot;
