//! The integration tests: one binary (cargo builds and links the crate once),
//! one module per area. `common` starts the real servers they talk to.

#[macro_use]
mod common;
mod alerts;
mod alerts_alertmanager;
mod alerts_email;
mod alerts_peers;
mod claims;
mod claims_ops;
mod cluster;
mod cluster_bed;
mod cluster_e2e;
mod cluster_scale;
mod commands;
mod config;
mod crash;
mod daemon;
mod daemon_http;
mod daemon_jobs;
mod deploy;
mod faults;
mod fuzz_regressions;
mod harness;
mod import;
mod ip_certs;
mod issue;
mod probe;
mod probe_alerts;
mod probe_hostile;
mod probe_matrix;
mod probe_sslscan;
mod probe_stream;
mod profiles;
mod prometheus_rules;
mod renew;
mod renew_alerts;
mod secrets;
mod short_lived;
mod staging;
mod stalls;
mod store;
mod units;
