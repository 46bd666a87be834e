//! Plain data collected by a probe: what the grader judges and the JSON shows.

use serde::{Serialize, Serializer};
use time::OffsetDateTime;

use super::http::{Hsts, PlainHttp};
use super::ProbeError;

pub(crate) fn rfc3339<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::dates::rfc3339(*t))
}

/// One certificate of the served chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainCert {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    #[serde(serialize_with = "rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub not_after: OffsetDateTime,
    pub signature_algorithm: String,
    pub key_type: String,
    /// A CA certificate (basicConstraints CA:TRUE).
    pub is_ca: bool,
    /// Subject equals issuer.
    pub self_issued: bool,
    /// A self-signed CA certificate the server sends needlessly (ignored for expiry).
    pub is_root: bool,
}

/// Facts about the served leaf and its chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub sans: Vec<String>,
    pub issuer: String,
    pub serial: String,
    #[serde(serialize_with = "rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub not_after: OffsetDateTime,
    /// Whole days (rounded down) until the certificate that expires first,
    /// leaf or intermediate (negative when expired): what the expiry check,
    /// the alert thresholds and the metrics use.
    pub days_left: i64,
    /// Which certificate `days_left` counts: "leaf" or "intermediate".
    pub expires_first: String,
    /// Whole days until the leaf's own not-after.
    pub leaf_days_left: i64,
    pub lifetime_days: i64,
    pub chain_valid: bool,
    /// Why the chain does not verify, in plain words.
    pub chain_error: Option<String>,
    /// The same, as a code for programs.
    pub chain_problem: Option<super::reasons::ChainProblem>,
    pub hostname_valid: bool,
    pub key_type: String,
    pub signature_algorithm: String,
    pub fingerprint_sha256: String,
    /// Earliest not-after among the leaf and the intermediates sent.
    #[serde(serialize_with = "rfc3339")]
    pub earliest_expiry: OffsetDateTime,
    /// Subject of the certificate that expires first.
    pub earliest_expiry_subject: String,
    /// Every certificate sent, leaf first.
    pub chain: Vec<ChainCert>,
}

/// Why a server did not accept a version: kind `Alert`, `Closed` or `Tls`
/// (it chose another version or is incompatible).
pub type Refusal = ProbeError;

/// What one protocol version probe found.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Accepted,
    NotAccepted(Refusal),
    Failed(ProbeError),
    /// Not tried (the probe ended first).
    Untested,
}

impl Outcome {
    pub fn accepted(&self) -> Option<bool> {
        match self {
            Outcome::Accepted => Some(true),
            Outcome::NotAccepted(_) => Some(false),
            Outcome::Failed(_) | Outcome::Untested => None,
        }
    }
}

/// Outcomes for TLS 1.0, 1.1, 1.2 and 1.3, in that order.
#[derive(Debug, Clone, PartialEq)]
pub struct Protocols(pub [Outcome; 4]);

impl Default for Protocols {
    fn default() -> Self {
        Self([
            Outcome::Untested,
            Outcome::Untested,
            Outcome::Untested,
            Outcome::Untested,
        ])
    }
}

impl Serialize for Protocols {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(4))?;
        for (p, o) in super::config::ProtocolName::ALL.iter().zip(&self.0) {
            m.serialize_entry(p.as_str(), &o.accepted())?;
        }
        m.end()
    }
}

/// The served leaf compared with the newest version in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stored {
    pub certificate: String,
    /// Newest stored version (None when the lineage is missing).
    pub version: Option<u32>,
    pub serial: Option<String>,
    pub matches: bool,
    /// Why the store could not be read.
    pub error: Option<String>,
    /// When the newest version went live (the live link's time); None when
    /// unknown.
    #[serde(skip)]
    pub live_since: Option<OffsetDateTime>,
}

/// Everything collected for one endpoint.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Facts {
    /// Nothing useful could be collected (unresolvable, unreachable, garbage...).
    pub error: Option<ProbeError>,
    pub certificate: Option<CertInfo>,
    pub protocols: Protocols,
    /// None when not fetched (no TLS 1.2/1.3 handshake); Err when the fetch failed.
    pub hsts: Option<Result<Hsts, ProbeError>>,
    pub http: Option<PlainHttp>,
    pub stored: Option<Stored>,
}

/// A certificate whose intermediate (10 days left) expires before the leaf
/// (59 days left), for tests of what follows the first expiry.
#[cfg(test)]
pub(crate) fn example_intermediate_first() -> CertInfo {
    use time::macros::datetime;
    let leaf_end = datetime!(2026-03-01 00:00 UTC);
    let int_end = datetime!(2026-01-11 00:00 UTC);
    let cc = |subject: &str, not_after| ChainCert {
        subject: subject.into(),
        issuer: "CN=Root".into(),
        serial: "01".into(),
        not_before: datetime!(2025-12-01 00:00 UTC),
        not_after,
        signature_algorithm: "ecdsa-with-SHA256".into(),
        key_type: "ecdsa-p256".into(),
        is_ca: false,
        self_issued: false,
        is_root: false,
    };
    CertInfo {
        subject: "CN=a.example".into(),
        sans: vec!["a.example".into()],
        issuer: "CN=Int".into(),
        serial: "0a".into(),
        not_before: datetime!(2025-12-01 00:00 UTC),
        not_after: leaf_end,
        days_left: 10,
        expires_first: "intermediate".into(),
        leaf_days_left: 59,
        lifetime_days: 90,
        chain_valid: true,
        chain_error: None,
        chain_problem: None,
        hostname_valid: true,
        key_type: "ecdsa-p256".into(),
        signature_algorithm: "ecdsa-with-SHA256".into(),
        fingerprint_sha256: "ff".into(),
        earliest_expiry: int_end,
        earliest_expiry_subject: "CN=Int".into(),
        chain: vec![cc("CN=a.example", leaf_end), cc("CN=Int", int_end)],
    }
}
