//! `[probe]`, `[probe.policy.NAME]` and `[[endpoint]]` configuration.
//!
//! Every key is optional. A policy lists only what it changes; the rest comes
//! from `[probe.policy.default]` (when written) and then the built-in default
//! (Mozilla "intermediate": TLS 1.2 + 1.3, HSTS of at least one year).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::types::{HumanDuration, TimeLeft};

/// `[probe]`: defaults for `certkeep probe` and the daemon's watch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Probe the first domain of every `[[certificate]]` (on its `endpoint`
    /// when set, else on port 443) and compare it with the store.
    #[serde(default = "yes")]
    pub managed_certificates: bool,
    /// Endpoints probed at the same time (0 counts as 1).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Extra trust anchors (PEM) for private CAs, added to the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Time limits for each phase of one probe.
    pub connect_timeout: Option<HumanDuration>,
    pub handshake_timeout: Option<HumanDuration>,
    pub read_timeout: Option<HumanDuration>,
    pub total_timeout: Option<HumanDuration>,
    /// Named policies; `default` applies to endpoints without `policy`.
    #[serde(default)]
    pub policy: BTreeMap<String, PolicyConfig>,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            managed_certificates: true,
            concurrency: default_concurrency(),
            ca_file: None,
            connect_timeout: None,
            handshake_timeout: None,
            read_timeout: None,
            total_timeout: None,
            policy: BTreeMap::new(),
        }
    }
}

fn yes() -> bool {
    true
}

pub const DEFAULT_CONCURRENCY: usize = 64;

fn default_concurrency() -> usize {
    DEFAULT_CONCURRENCY
}

/// One `[probe.policy.NAME]` table. Unset keys inherit.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Protocol versions the endpoint should accept, exactly
    /// (any of "tls1.0", "tls1.1", "tls1.2", "tls1.3").
    pub protocols: Option<Vec<ProtocolName>>,
    /// Warning when this much is left ("30d" or a fraction of the lifetime "1/3").
    pub warning_before: Option<TimeLeft>,
    /// Critical when this much is left ("7d" or "1/6").
    pub critical_before: Option<TimeLeft>,
    /// Smallest acceptable RSA key size in bits.
    pub min_rsa_bits: Option<u32>,
    /// "critical", "warning" or "ok": the verdict when HSTS is missing.
    pub hsts_missing: Option<Severity>,
    /// Warning when max-age is below this ("365d").
    pub hsts_min_age: Option<HumanDuration>,
    /// Warning when includeSubDomains is missing.
    pub hsts_include_subdomains: Option<bool>,
    /// Warning when the header does not meet the hstspreload.org rules.
    pub hsts_preload: Option<bool>,
    /// Check plain HTTP (redirect to HTTPS, ACME path) on this port; 0 turns it off.
    pub http_port: Option<u16>,
}

/// A verdict level a policy can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warning,
    Critical,
}

/// A protocol version as written in config and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub enum ProtocolName {
    #[serde(rename = "tls1.0")]
    Tls10,
    #[serde(rename = "tls1.1")]
    Tls11,
    #[serde(rename = "tls1.2")]
    Tls12,
    #[serde(rename = "tls1.3")]
    Tls13,
}

impl ProtocolName {
    pub const ALL: [ProtocolName; 4] = [Self::Tls10, Self::Tls11, Self::Tls12, Self::Tls13];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls10 => "tls1.0",
            Self::Tls11 => "tls1.1",
            Self::Tls12 => "tls1.2",
            Self::Tls13 => "tls1.3",
        }
    }

    /// Human name: "TLS 1.2".
    pub fn label(self) -> &'static str {
        match self {
            Self::Tls10 => "TLS 1.0",
            Self::Tls11 => "TLS 1.1",
            Self::Tls12 => "TLS 1.2",
            Self::Tls13 => "TLS 1.3",
        }
    }
}

/// One `[[endpoint]]` as written; its checked form is a
/// [`crate::probe::Target`] in [`super::Settings::probe_targets`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// `https://host[:port][/path]` or `host:port`.
    pub url: String,
    /// Address to connect to instead of resolving the host ("10.0.0.5:443").
    pub connect: Option<String>,
    /// Name of a `[probe.policy.NAME]`; `default` when unset.
    pub policy: Option<String>,
    /// Lineage whose newest version this endpoint should serve.
    pub certificate: Option<String>,
}
