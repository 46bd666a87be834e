//! Facts about certificates, read from PEM (rustls-pki-types) and DER (x509-parser).

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("no PEM certificate found{0}")]
    NoCertificate(String),
    #[error("invalid PEM{0}: {1}")]
    Pem(String, String),
    #[error("cannot parse certificate{0}: {1}")]
    Parse(String, String),
    #[error("no private key found{0}")]
    NoKey(String),
}

/// What certkeep needs to know about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// Subject distinguished name, RFC 4514 style ("" when empty, as Pebble issues).
    pub subject: String,
    /// DNS names (and IP addresses) from subjectAltName, in certificate order.
    pub sans: Vec<String>,
    /// The IP address SANs alone: an address is covered by these, never by
    /// a DNS name that reads like one.
    pub ip_sans: Vec<std::net::IpAddr>,
    pub issuer: String,
    /// Serial number, lowercase hex without separators or leading zero bytes.
    pub serial: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// "ecdsa-p256", "ecdsa-p384", "rsa2048", "ed25519", ...
    pub key_type: String,
    /// "ecdsa-with-SHA256", "sha256WithRSAEncryption", ...
    pub signature_algorithm: String,
    /// SHA-256 of the DER, lowercase hex.
    pub fingerprint: String,
    pub is_ca: bool,
    /// Subject equals issuer (a root or a self-signed leaf).
    pub self_issued: bool,
    /// Raw DER of the public key info, to compare with a private key.
    pub spki_der: Vec<u8>,
}

impl CertFacts {
    /// Whole seconds from `now` to not-after (negative when expired).
    pub fn seconds_left(&self, now: OffsetDateTime) -> i64 {
        (self.not_after - now).whole_seconds()
    }

    /// Whole days left, rounded down (an expired certificate has a negative count).
    pub fn days_left(&self, now: OffsetDateTime) -> i64 {
        self.seconds_left(now).div_euclid(86_400)
    }

    pub fn lifetime_seconds(&self) -> i64 {
        (self.not_after - self.not_before).whole_seconds()
    }

    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now > self.not_after
    }
}

fn ctx(what: &str) -> String {
    if what.is_empty() {
        String::new()
    } else {
        format!(" in {what}")
    }
}

/// Every certificate in a PEM text, in order. `what` names the source in errors.
pub fn parse_pem_chain(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    let certs = certs.map_err(|e| CertError::Pem(ctx(what), e.to_string()))?;
    if certs.is_empty() {
        return Err(CertError::NoCertificate(ctx(what)));
    }
    Ok(certs)
}

/// The first certificate in a PEM text.
pub fn parse_pem_leaf(pem: &[u8], what: &str) -> Result<Vec<u8>, CertError> {
    match CertificateDer::pem_slice_iter(pem).next() {
        Some(Ok(c)) => Ok(c.to_vec()),
        Some(Err(e)) => Err(CertError::Pem(ctx(what), e.to_string())),
        None => Err(CertError::NoCertificate(ctx(what))),
    }
}

/// The private key in a PEM text (PKCS#8, SEC1 or PKCS#1).
pub fn parse_pem_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, CertError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => CertError::NoKey(ctx(what)),
        other => CertError::Pem(ctx(what), other.to_string()),
    })
}

/// Facts from one DER certificate.
pub fn facts(der: &[u8], what: &str) -> Result<CertFacts, CertError> {
    let (_, x) =
        X509Certificate::from_der(der).map_err(|e| CertError::Parse(ctx(what), e.to_string()))?;
    let names: &[GeneralName<'_>] = match x.subject_alternative_name() {
        Ok(Some(ext)) => &ext.value.general_names,
        Ok(None) => &[],
        Err(e) => return Err(CertError::Parse(ctx(what), e.to_string())),
    };
    let sans = names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            GeneralName::IPAddress(b) => ip_of(b).map(|ip| ip.to_string()),
            _ => None,
        })
        .collect();
    let ip_sans = names
        .iter()
        .filter_map(|n| match n {
            GeneralName::IPAddress(b) => ip_of(b),
            _ => None,
        })
        .collect();
    let not_before = to_offset(x.validity().not_before.timestamp())?;
    let not_after = to_offset(x.validity().not_after.timestamp())?;
    Ok(CertFacts {
        subject: x.subject().to_string(),
        sans,
        ip_sans,
        issuer: x.issuer().to_string(),
        serial: serial_hex(x.raw_serial()),
        not_before,
        not_after,
        key_type: key_type(&x),
        signature_algorithm: signature_name(&x),
        fingerprint: hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)),
        is_ca: x.is_ca(),
        self_issued: x.subject().as_raw() == x.issuer().as_raw(),
        spki_der: x.public_key().raw.to_vec(),
    })
}

fn to_offset(ts: i64) -> Result<OffsetDateTime, CertError> {
    OffsetDateTime::from_unix_timestamp(ts)
        .map_err(|e| CertError::Parse(String::new(), format!("validity out of range: {e}")))
}

/// Serial as lowercase hex, without the DER sign byte.
pub fn serial_hex(raw: &[u8]) -> String {
    let trimmed = match raw {
        [0, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    hex::encode(trimmed)
}

fn ip_of(b: &[u8]) -> Option<std::net::IpAddr> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        return Some(std::net::Ipv4Addr::from(a).into());
    }
    <[u8; 16]>::try_from(b)
        .ok()
        .map(|a| std::net::Ipv6Addr::from(a).into())
}

fn key_type(x: &X509Certificate<'_>) -> String {
    let spki = x.public_key();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("rsa{}", rsa.key_size()),
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            match curve {
                Some(o) if o == oid_registry::OID_EC_P256 => "ecdsa-p256".into(),
                Some(o) if o == oid_registry::OID_NIST_EC_P384 => "ecdsa-p384".into(),
                Some(o) if o == oid_registry::OID_NIST_EC_P521 => "ecdsa-p521".into(),
                Some(o) => match o.to_id_string().as_str() {
                    "1.2.840.10045.3.1.1" => "ecdsa-p192".into(),
                    "1.3.132.0.33" => "ecdsa-p224".into(),
                    "1.3.132.0.10" => "ecdsa-secp256k1".into(),
                    other => format!("ecdsa-{other}"),
                },
                None => "ecdsa".into(),
            }
        }
        _ if spki.algorithm.algorithm == oid_registry::OID_SIG_ED25519 => "ed25519".into(),
        _ => format!("unknown({})", spki.algorithm.algorithm),
    }
}

/// Built once: constructing the registry costs far more than parsing a certificate.
static OIDS: std::sync::LazyLock<oid_registry::OidRegistry<'static>> =
    std::sync::LazyLock::new(|| {
        oid_registry::OidRegistry::default()
            .with_crypto()
            .with_x509()
    });

fn signature_name(x: &X509Certificate<'_>) -> String {
    let oid = &x.signature_algorithm.algorithm;
    let id = oid.to_id_string();
    // Names openssl prints for OIDs the registry lacks.
    let extra = match id.as_str() {
        "1.2.840.10045.4.1" => Some("ecdsa-with-SHA1"),
        "1.2.840.10045.4.3.1" => Some("ecdsa-with-SHA224"),
        "1.2.840.10040.4.3" => Some("dsa_with_SHA1"),
        "2.16.840.1.101.3.4.3.2" => Some("dsa_with_SHA256"),
        "1.3.101.113" => Some("ED448"),
        _ => None,
    };
    match (OIDS.get(oid), extra) {
        (_, Some(name)) => name.to_string(),
        (Some(e), None) => e.sn().to_string(),
        (None, None) => id,
    }
}

/// The raw DER of the authority key identifier, for ARI certificate ids.
pub fn authority_key_id(der: &[u8]) -> Option<Vec<u8>> {
    let (_, x) = X509Certificate::from_der(der).ok()?;
    let aki = x
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        });
    aki
}

/// Whether a certificate covers `host`: an IP address (any spelling, e.g.
/// "0:0::1" for "::1") only by an equal IP address SAN of the same family,
/// as RFC 6125 and the TLS verifier have it, never by a DNS name or wildcard that reads
/// like one; a DNS name exactly or by a one-label wildcard.
pub fn host_matches(sans: &[String], ip_sans: &[std::net::IpAddr], host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip_sans.contains(&ip),
        Err(_) => name_matches(sans, host),
    }
}

/// Whether a certificate's DNS name list covers the DNS name `host` (exact
/// or one-label wildcard); for a host that may be an IP address use
/// [`host_matches`].
pub fn name_matches(sans: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    sans.iter().any(|san| {
        let san = san.to_ascii_lowercase();
        if let Some(suffix) = san.strip_prefix("*.") {
            match host.split_once('.') {
                Some((first, rest)) => !first.is_empty() && rest == suffix,
                None => false,
            }
        } else {
            san == host
        }
    })
}

/// A span of seconds as "6d 4h" (or "4h 10m" under a day, "42s" under a minute).
pub fn span(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{secs}s")
    }
}

/// Time to expiry for people: "6d 4h left", or "expired 6d 4h ago" when
/// `seconds_left` is negative; never a negative count.
pub fn time_left(seconds_left: i64) -> String {
    if seconds_left < 0 {
        format!("expired {} ago", span(seconds_left.unsigned_abs()))
    } else {
        format!("{} left", span(seconds_left.unsigned_abs()))
    }
}

/// The SubjectPublicKeyInfo DER of a private key, to check a cert/key pair.
pub fn key_spki_der(key_pem: &str) -> Result<Vec<u8>, CertError> {
    let kp = rcgen::KeyPair::from_pem(key_pem)
        .map_err(|e| CertError::Parse(" in private key".into(), e.to_string()))?;
    Ok(rcgen::PublicKeyData::subject_public_key_info(&kp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let ck = rcgen::generate_simple_self_signed(names).unwrap();
        (ck.cert.pem(), ck.signing_key.serialize_pem())
    }

    #[test]
    fn time_left_never_reads_negative() {
        assert_eq!(time_left(6 * 86_400 + 4 * 3600 + 59), "6d 4h left");
        assert_eq!(
            time_left(-(6 * 86_400 + 4 * 3600 + 59)),
            "expired 6d 4h ago"
        );
        assert_eq!(time_left(-(3 * 3600 + 120)), "expired 3h 2m ago");
        assert_eq!(time_left(90), "1m left");
        assert_eq!(time_left(0), "0s left");
        assert_eq!(time_left(-5), "expired 5s ago");
    }

    #[test]
    fn facts_from_self_signed() {
        let (pem, key) = self_signed(&["a.test", "b.test"]);
        let chain = parse_pem_chain(pem.as_bytes(), "test").unwrap();
        assert_eq!(chain.len(), 1);
        let f = facts(&chain[0], "test").unwrap();
        assert_eq!(f.sans, vec!["a.test", "b.test"]);
        assert_eq!(f.key_type, "ecdsa-p256");
        assert_eq!(f.fingerprint.len(), 64);
        assert!(f.self_issued);
        assert!(!f.serial.is_empty());
        assert_eq!(f.serial, f.serial.to_lowercase());
        assert_eq!(key_spki_der(&key).unwrap(), f.spki_der);
        assert!(f.lifetime_seconds() > 0);
    }

    #[test]
    fn empty_and_garbage_pem_are_errors() {
        assert!(matches!(
            parse_pem_chain(b"", "x.pem"),
            Err(CertError::NoCertificate(_))
        ));
        let e = parse_pem_chain(
            b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
            "x.pem",
        )
        .unwrap_err();
        assert!(e.to_string().contains("x.pem"), "{e}");
        assert!(facts(b"\x30\x03\x02\x01\x01", "y").is_err());
        assert!(matches!(parse_pem_key(b"", "k"), Err(CertError::NoKey(_))));
    }

    #[test]
    fn serial_strips_sign_byte_only() {
        assert_eq!(serial_hex(&[0x00, 0x8f, 0x01]), "8f01");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[0x12, 0x00]), "1200");
    }

    #[test]
    fn hostname_matching() {
        let sans = vec!["example.com".to_string(), "*.example.org".to_string()];
        assert!(name_matches(&sans, "example.com"));
        assert!(name_matches(&sans, "EXAMPLE.com."));
        assert!(name_matches(&sans, "www.example.org"));
        assert!(!name_matches(&sans, "example.org"));
        assert!(!name_matches(&sans, "a.b.example.org"));
        assert!(!name_matches(&sans, "www.example.com"));
    }

    #[test]
    fn ip_hosts_match_ip_sans_only() {
        let (pem, _) = self_signed(&["127.0.0.1", "::1", "a.test"]);
        let f = facts(&parse_pem_chain(pem.as_bytes(), "").unwrap()[0], "").unwrap();
        assert_eq!(f.sans, vec!["127.0.0.1", "::1", "a.test"]);
        assert_eq!(
            f.ip_sans,
            vec![
                "127.0.0.1".parse::<std::net::IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        for host in ["127.0.0.1", "::1", "0:0:0:0:0:0:0:1", "[::1]", "a.test"] {
            assert!(host_matches(&f.sans, &f.ip_sans, host), "{host}");
        }
        for host in ["127.0.0.2", "::2", "b.test"] {
            assert!(!host_matches(&f.sans, &f.ip_sans, host), "{host}");
        }
        // A DNS name or a wildcard that reads like an address covers no address.
        let dns_only = vec!["127.0.0.1".to_string(), "*.0.0.1".to_string()];
        assert!(!host_matches(&dns_only, &[], "127.0.0.1"));
        // An IPv4-mapped IPv6 SAN is another address (as for the TLS verifier).
        let mapped: std::net::IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(!host_matches(&[], &[mapped], "127.0.0.1"));
        // An address SAN covers no DNS name spelled the same.
        assert!(!host_matches(
            &[],
            &["127.0.0.1".parse().unwrap()],
            "a.test"
        ));
    }

    #[test]
    fn days_left_rounds_down_and_goes_negative() {
        let (pem, _) = self_signed(&["a.test"]);
        let chain = parse_pem_chain(pem.as_bytes(), "").unwrap();
        let f = facts(&chain[0], "").unwrap();
        let now = f.not_after - time::Duration::hours(36);
        assert_eq!(f.days_left(now), 1);
        let after = f.not_after + time::Duration::hours(1);
        assert_eq!(f.days_left(after), -1);
        assert!(f.is_expired(after));
    }
}
