//! The records stored in etcd (JSON). Field names are part of the cluster's
//! on-disk format (`meta.format`); add fields with defaults, never rename.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::seal::{SealError, SealKey};

/// The format written by this version (`meta.format`).
pub const FORMAT: u32 = 1;

/// `meta`: written once by `cluster init`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub format: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// Fingerprint of the encryption key ([`SealKey::key_id`]).
    pub key_id: String,
    /// The node that ran `cluster init`.
    pub created_by: String,
}

/// The name a lineage's private key is sealed under (with the version).
pub fn lineage_seal_name(lineage: &str) -> String {
    format!("lineage/{lineage}")
}

/// The name an account is sealed under (version 0).
pub fn account_seal_name(ca_host: &str) -> String {
    format!("account/{ca_host}")
}

/// `lineage/<name>/current` and `/previous`: one version of a lineage.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Cluster-wide version number, 1 for the first; +1 per new version.
    pub version: u64,
    /// Serial of the leaf, lowercase hex.
    pub serial: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Names in the certificate.
    pub domains: Vec<String>,
    /// Leaf certificate (PEM).
    pub cert: String,
    /// Issuer chain (PEM); fullchain is cert followed by chain.
    pub chain: String,
    /// The private key, sealed under [`lineage_seal_name`] and `version`.
    pub sealed_key: String,
    /// ACME profile asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The node that ordered (or uploaded) this version.
    pub ordered_by: String,
    /// When this version was written to etcd.
    #[serde(with = "time::serde::rfc3339")]
    pub written_at: OffsetDateTime,
}

impl std::fmt::Debug for VersionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionRecord")
            .field("version", &self.version)
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .field("domains", &self.domains)
            .field("ordered_by", &self.ordered_by)
            .finish_non_exhaustive()
    }
}

impl VersionRecord {
    /// The private key PEM, opened with the cluster key.
    pub fn open_key(&self, lineage: &str, key: &SealKey) -> Result<String, SealError> {
        let plain = key.open(&lineage_seal_name(lineage), self.version, &self.sealed_key)?;
        String::from_utf8(plain).map_err(|_| SealError::Format {
            what: format!(
                "the private key of lineage {lineage} version {}",
                self.version
            ),
        })
    }

    pub fn fullchain(&self) -> String {
        let mut s = self.cert.clone();
        if !s.ends_with('\n') && !s.is_empty() {
            s.push('\n');
        }
        s.push_str(&self.chain);
        s
    }
}

/// `account/<ca-host>`: the ACME account credentials (instant-acme's JSON), sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// The directory URL the account belongs to.
    pub directory: String,
    /// The credentials JSON, sealed under [`account_seal_name`], version 0.
    pub sealed_credentials: String,
}

/// `deploy/<node>/<name>`: what a node serves and how its last deploy went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployReport {
    /// The cluster version and serial the node's `live/` points at now.
    pub serving_version: u64,
    pub serving_serial: String,
    /// The version the last deploy tried to install.
    pub attempted_version: u64,
    /// Whether that deploy worked (written, reloaded, confirmed).
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// `node/<node>`: the heartbeat, bound to the node's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub certkeep_version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
}

/// `challenge/<token>`: an HTTP-01 challenge every node must answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub key_authorization: String,
    pub lineage: String,
    pub domain: String,
    /// The node that ordered.
    pub node: String,
    #[serde(with = "time::serde::rfc3339")]
    pub published: OffsetDateTime,
}

/// `challenge/<token>/ack/<node>`: a node's answer to a challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The token file is in place and the self-check through the node's
    /// nginx returned the key authorization.
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn record(key: &SealKey) -> VersionRecord {
        VersionRecord {
            version: 4,
            serial: "0a1b".into(),
            not_before: datetime!(2026-01-01 0:00 UTC),
            not_after: datetime!(2026-04-01 0:00 UTC),
            domains: vec!["a.test".into()],
            cert: "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n".into(),
            chain: "-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n".into(),
            sealed_key: key
                .seal(
                    &lineage_seal_name("web"),
                    4,
                    b"-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n",
                )
                .unwrap(),
            profile: None,
            ordered_by: "n1".into(),
            written_at: datetime!(2026-01-01 0:05 UTC),
        }
    }

    #[test]
    fn version_record_json_round_trip_and_key_opens_only_for_its_lineage() {
        let key = SealKey::from_bytes(&[3; 32]);
        let r = record(&key);
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("PRIVATE KEY"), "{json}");
        assert!(
            json.contains("\"not_after\":\"2026-04-01T00:00:00Z\""),
            "{json}"
        );
        assert!(!json.contains("profile"), "{json}");
        let back: VersionRecord = serde_json::from_str(&json).unwrap();
        assert!(back == r);
        assert!(back
            .open_key("web", &key)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(back.open_key("api", &key).is_err());
        assert!(!format!("{back:?}").contains("ck1:"));
        assert_eq!(back.fullchain(), format!("{}{}", r.cert, r.chain));
    }

    #[test]
    fn reports_and_acks_parse_from_written_json() {
        let d: DeployReport = serde_json::from_str(
            r#"{"serving_version":2,"serving_serial":"ff","attempted_version":3,"ok":false,"error":"nginx -t failed","at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(d.attempted_version, 3);
        assert_eq!(d.error.as_deref(), Some("nginx -t failed"));
        let a: Ack = serde_json::from_str(r#"{"ok":true,"at":"2026-01-01T00:00:00Z"}"#).unwrap();
        assert!(a.ok && a.detail.is_none());
        let m = Meta {
            format: FORMAT,
            created: datetime!(2026-01-01 0:00 UTC),
            key_id: "ck1-00".into(),
            created_by: "n1".into(),
        };
        let back: Meta = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }
}
