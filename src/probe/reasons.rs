//! Plain words for what the verifier and the parsers report (pure).
//!
//! rustls and webpki describe a failed chain with Rust enums whose debug text
//! (`UnsupportedSignatureAlgorithmContext { signature_algorithm_id: [...] }`,
//! `Other(OtherError(CaUsedAsEndEntity))`) means nothing to the person reading
//! an alert. [`classify`] turns such an error, together with the facts of the
//! served chain, into a [`ChainProblem`]; [`ChainProblem::words`] says it in a
//! short sentence. The raw error is only logged at debug level.

use serde::Serialize;

use super::facts::ChainCert;

/// Why a captured chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChainProblem {
    /// The server sent no certificate.
    NoCertificate,
    /// A certificate is outside its validity dates; otherwise the chain verifies
    /// (the expiry check words the dates).
    Dates,
    /// The leaf is self-signed and not a trusted root.
    SelfSigned,
    /// The chain ends at an issuer that is not trusted and not sent.
    UnknownIssuer {
        issuer: String,
        only_leaf: bool,
    },
    /// A CA certificate is served as the server certificate.
    CaAsLeaf,
    /// A certificate in the issuer position is not a CA certificate.
    LeafAsCa,
    /// A certificate is signed with a hash clients reject (SHA-1, MD5).
    WeakSignature {
        which: String,
        hash: String,
    },
    /// A certificate in the chain signs with an RSA key clients reject.
    WeakKey {
        which: String,
        bits: u32,
    },
    /// A signature algorithm the verifier does not support.
    UnsupportedAlgorithm {
        which: String,
        algorithm: String,
    },
    /// A signature does not match the issuer's key.
    BadSignature,
    Revoked,
    /// The certificate is not for TLS servers (extended key usage).
    WrongPurpose,
    /// A certificate is malformed.
    BadEncoding,
    /// A critical extension the verifier does not understand.
    CriticalExtension,
    /// A CA's name or path length constraint is broken.
    Constraint,
    /// The chain is too long or too complex to build.
    TooComplex,
    /// The name is not a valid TLS name.
    BadName,
    /// Anything else, by the verifier's code name.
    Other {
        code: String,
    },
}

impl ChainProblem {
    /// One short sentence, without advice (the chain check adds it).
    pub fn words(&self) -> String {
        match self {
            ChainProblem::NoCertificate => "the server sent no certificate".into(),
            ChainProblem::Dates => {
                "clients reject it while a certificate is outside its validity dates (see the expiry check); otherwise it verifies to a trusted root".into()
            }
            ChainProblem::SelfSigned => "self-signed certificate".into(),
            ChainProblem::UnknownIssuer { issuer, only_leaf: true } => format!(
                "the intermediate certificate is missing: the server sends only its certificate, issued by \"{issuer}\", which is not a trusted root"
            ),
            ChainProblem::UnknownIssuer { issuer, only_leaf: false } => {
                format!("the chain ends at \"{issuer}\", which is not a trusted root")
            }
            ChainProblem::CaAsLeaf => "a CA certificate is used as the server certificate".into(),
            ChainProblem::LeafAsCa => {
                "a certificate that is not a CA certificate is used to issue another one in the chain".into()
            }
            ChainProblem::WeakSignature { which, hash } => {
                format!("{which} is signed with {hash}, which browsers reject")
            }
            ChainProblem::WeakKey { which, bits } => {
                format!("{which} signs with a {bits}-bit RSA key, which clients reject")
            }
            ChainProblem::UnsupportedAlgorithm { which, algorithm } => {
                format!("{which} is signed with {algorithm}, which clients do not support")
            }
            ChainProblem::BadSignature => {
                "a signature in the chain does not match its issuer's key (a wrong or altered certificate)".into()
            }
            ChainProblem::Revoked => "a certificate in the chain is revoked".into(),
            ChainProblem::WrongPurpose => {
                "the certificate is not for TLS servers (its extended key usage lacks serverAuth)".into()
            }
            ChainProblem::BadEncoding => "a certificate in the chain is malformed".into(),
            ChainProblem::CriticalExtension => {
                "a certificate has a critical extension clients do not understand".into()
            }
            ChainProblem::Constraint => {
                "the chain breaks a CA's name or path length constraint".into()
            }
            ChainProblem::TooComplex => "the chain is too long or too complex to verify".into(),
            ChainProblem::BadName => "the host is not a valid TLS name".into(),
            ChainProblem::Other { code } => format!("the chain does not verify ({code})"),
        }
    }

    /// What to do about it, when there is a usual fix.
    pub fn advice(&self) -> Option<&'static str> {
        match self {
            ChainProblem::UnknownIssuer {
                only_leaf: true, ..
            } => Some("serve fullchain.pem, or pass --ca-file for a private CA"),
            ChainProblem::UnknownIssuer { .. } | ChainProblem::SelfSigned => {
                Some("serve a certificate from a trusted CA, or pass --ca-file for a private CA")
            }
            ChainProblem::CaAsLeaf | ChainProblem::WrongPurpose => {
                Some("serve the server certificate issued for this name")
            }
            ChainProblem::WeakSignature { .. }
            | ChainProblem::WeakKey { .. }
            | ChainProblem::UnsupportedAlgorithm { .. } => {
                Some("reissue it from a CA using SHA-256 and a key of at least 2048 bits")
            }
            ChainProblem::LeafAsCa | ChainProblem::BadSignature => {
                Some("serve fullchain.pem as the CA issued it")
            }
            _ => None,
        }
    }
}

/// "the certificate" (the leaf) or `the intermediate "CN=..."`.
pub fn which(chain: &[ChainCert], i: usize) -> String {
    match (i, chain.get(i)) {
        (0, _) => "the certificate".into(),
        (_, Some(c)) if c.is_root => format!("the root \"{}\"", c.subject),
        (_, Some(c)) => format!("the intermediate \"{}\"", c.subject),
        _ => "a certificate of the chain".into(),
    }
}

/// "SHA-1" or "MD5" when a signature algorithm name uses a hash browsers reject.
pub fn weak_hash(algorithm: &str) -> Option<&'static str> {
    let a = algorithm.to_ascii_lowercase();
    if a.contains("md5") {
        Some("MD5")
    } else if a.contains("md2") {
        Some("MD2")
    } else if a.contains("sha1") || a.contains("sha-1") {
        Some("SHA-1")
    } else {
        None
    }
}

/// Bits of an `rsaNNNN` key type.
pub fn rsa_bits(key_type: &str) -> Option<u32> {
    key_type.strip_prefix("rsa").and_then(|b| b.parse().ok())
}

/// The problem behind a verification error, with the served chain's facts
/// (leaf first) to say which certificate it concerns.
pub fn classify(e: &rustls::Error, chain: &[ChainCert]) -> ChainProblem {
    use rustls::CertificateError as C;
    let leaf_is_ca = chain.first().is_some_and(|c| c.is_ca);
    let self_signed = chain.len() == 1 && chain.first().is_some_and(|c| c.self_issued);
    let weak_sig = || {
        chain
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.is_root)
            .find_map(|(i, c)| {
                weak_hash(&c.signature_algorithm).map(|h| ChainProblem::WeakSignature {
                    which: which(chain, i),
                    hash: h.to_string(),
                })
            })
    };
    // A key that signs something in the chain: every certificate but the leaf.
    let weak_key = || {
        chain
            .iter()
            .enumerate()
            .skip(1)
            .find_map(|(i, c)| match rsa_bits(&c.key_type) {
                Some(bits) if bits < 2048 => Some(ChainProblem::WeakKey {
                    which: which(chain, i),
                    bits,
                }),
                _ => None,
            })
    };
    let unsupported = || {
        weak_sig().or_else(weak_key).unwrap_or_else(|| {
            chain
                .iter()
                .enumerate()
                .find(|(_, c)| !c.is_root && !known_algorithm(&c.signature_algorithm))
                .map(|(i, c)| ChainProblem::UnsupportedAlgorithm {
                    which: which(chain, i),
                    algorithm: c.signature_algorithm.clone(),
                })
                .unwrap_or(ChainProblem::BadSignature)
        })
    };
    let rustls::Error::InvalidCertificate(ce) = e else {
        return ChainProblem::Other {
            code: code_name(&e.to_string()),
        };
    };
    #[allow(deprecated)]
    match ce {
        C::BadEncoding => ChainProblem::BadEncoding,
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            ChainProblem::Dates
        }
        C::Revoked => ChainProblem::Revoked,
        C::UnhandledCriticalExtension => ChainProblem::CriticalExtension,
        C::UnknownIssuer if self_signed => ChainProblem::SelfSigned,
        C::UnknownIssuer => ChainProblem::UnknownIssuer {
            issuer: chain.last().map(|c| c.issuer.clone()).unwrap_or_default(),
            only_leaf: chain.len() == 1,
        },
        C::BadSignature
        | C::UnsupportedSignatureAlgorithm
        | C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => unsupported(),
        C::NotValidForName | C::NotValidForNameContext { .. } => ChainProblem::BadName,
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => ChainProblem::WrongPurpose,
        C::Other(o) => {
            let code = code_name(&o.to_string());
            match code.as_str() {
                "CaUsedAsEndEntity" => ChainProblem::CaAsLeaf,
                "EndEntityUsedAsCa" if leaf_is_ca => ChainProblem::CaAsLeaf,
                "EndEntityUsedAsCa" => ChainProblem::LeafAsCa,
                "NameConstraintViolation" | "PathLenConstraintViolated" => ChainProblem::Constraint,
                "MaximumPathDepthExceeded"
                | "MaximumPathBuildCallsExceeded"
                | "MaximumSignatureChecksExceeded" => ChainProblem::TooComplex,
                "UnsupportedCriticalExtension" => ChainProblem::CriticalExtension,
                "SignatureAlgorithmMismatch" => unsupported(),
                _ if leaf_is_ca => ChainProblem::CaAsLeaf,
                _ => ChainProblem::Other {
                    code: spaced(&code),
                },
            }
        }
        other => ChainProblem::Other {
            code: spaced(&code_name(&format!("{other:?}"))),
        },
    }
}

fn known_algorithm(a: &str) -> bool {
    let a = a.to_ascii_lowercase();
    [
        "sha256",
        "sha384",
        "sha512",
        "ed25519",
        "ed448",
        "rsassa-pss",
        "rsassapss",
    ]
    .iter()
    .any(|k| a.contains(k))
}

/// The leading identifier of a debug or display text: `CaUsedAsEndEntity`
/// from `CaUsedAsEndEntity` or `Other(OtherError(CaUsedAsEndEntity))`.
fn code_name(text: &str) -> String {
    const WRAPPERS: [&str; 4] = ["Other", "OtherError", "InvalidCertificate", "Error"];
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .find(|t| {
            t.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) && !WRAPPERS.contains(t)
        })
        .unwrap_or_default()
        .to_string()
}

/// `UnsupportedCertVersion` -> `unsupported cert version`.
pub fn spaced(code: &str) -> String {
    let mut out = String::new();
    for (i, ch) in code.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(ch.to_ascii_lowercase());
    }
    if out.is_empty() {
        "unknown reason".into()
    } else {
        out
    }
}

/// A TLS alert by its RFC 8446 name: `protocol_version (70)`.
pub fn alert_name(code: u8) -> String {
    let name = match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        22 => "record_overflow",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return format!("{code}"),
    };
    format!("{name} ({code})")
}

/// No debug formatting: what every reason shown to a person must satisfy.
pub fn is_plain(text: &str) -> bool {
    !["{", "}", "[", "]", "Context", "(UNIX)", "Some(", "Other("]
        .iter()
        .any(|s| text.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use time::macros::datetime;

    fn cert(subject: &str, issuer: &str, sig: &str, key: &str) -> ChainCert {
        ChainCert {
            subject: subject.into(),
            issuer: issuer.into(),
            serial: "01".into(),
            not_before: datetime!(2026-01-01 00:00 UTC),
            not_after: datetime!(2027-01-01 00:00 UTC),
            signature_algorithm: sig.into(),
            key_type: key.into(),
            is_ca: false,
            self_issued: subject == issuer,
            is_root: false,
        }
    }

    fn inv(e: rustls::CertificateError) -> rustls::Error {
        rustls::Error::InvalidCertificate(e)
    }

    #[derive(Debug)]
    struct Code(&'static str);
    impl std::fmt::Display for Code {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Code {}

    fn other(code: &'static str) -> rustls::Error {
        inv(rustls::CertificateError::Other(rustls::OtherError(
            Arc::new(Code(code)),
        )))
    }

    #[test]
    fn every_error_in_plain_words() {
        use rustls::CertificateError as C;
        let leaf = cert("CN=a.test", "CN=Int", "ecdsa-with-SHA256", "ecdsa-p256");
        let mut int = cert("CN=Int", "CN=Root", "sha1WithRSAEncryption", "rsa2048");
        int.is_ca = true;
        let chain = vec![leaf.clone(), int.clone()];
        let cases: Vec<(rustls::Error, Vec<ChainCert>, &str)> = vec![
            (
                inv(C::UnknownIssuer),
                vec![cert("CN=s", "CN=s", "ecdsa-with-SHA256", "ecdsa-p256")],
                "self-signed certificate",
            ),
            (
                inv(C::UnknownIssuer),
                vec![leaf.clone()],
                "the intermediate certificate is missing: the server sends only its certificate, issued by \"CN=Int\", which is not a trusted root",
            ),
            (
                inv(C::UnsupportedSignatureAlgorithmContext {
                    signature_algorithm_id: vec![1, 2, 3],
                    supported_algorithms: vec![],
                }),
                chain.clone(),
                "the intermediate \"CN=Int\" is signed with SHA-1, which browsers reject",
            ),
            (
                other("CaUsedAsEndEntity"),
                chain.clone(),
                "a CA certificate is used as the server certificate",
            ),
            (
                inv(C::ExpiredContext {
                    time: rustls::pki_types::UnixTime::since_unix_epoch(
                        std::time::Duration::from_secs(1_795_667_375),
                    ),
                    not_after: rustls::pki_types::UnixTime::since_unix_epoch(
                        std::time::Duration::from_secs(1),
                    ),
                }),
                chain.clone(),
                "clients reject it while a certificate is outside its validity dates (see the expiry check); otherwise it verifies to a trusted root",
            ),
            (
                other("UnsupportedCertVersion"),
                vec![leaf.clone()],
                "the chain does not verify (unsupported cert version)",
            ),
        ];
        for (e, chain, want) in cases {
            let p = classify(&e, &chain);
            assert_eq!(p.words(), want, "{e:?}");
            assert!(is_plain(&p.words()), "{}", p.words());
        }
        // A 1024-bit RSA intermediate cannot verify the leaf's signature.
        let mut weak = int.clone();
        weak.signature_algorithm = "sha256WithRSAEncryption".into();
        weak.key_type = "rsa1024".into();
        let p = classify(&inv(C::BadSignature), &[leaf.clone(), weak]);
        assert_eq!(
            p.words(),
            "the intermediate \"CN=Int\" signs with a 1024-bit RSA key, which clients reject"
        );
        assert_eq!(
            classify(&other("Whatever(Something { x: [1] })"), &[leaf]).words(),
            "the chain does not verify (whatever)"
        );
    }

    #[test]
    fn code_names_and_plainness() {
        assert_eq!(code_name("CaUsedAsEndEntity"), "CaUsedAsEndEntity");
        assert_eq!(
            code_name("Other(OtherError(CaUsedAsEndEntity))"),
            "CaUsedAsEndEntity"
        );
        assert_eq!(
            spaced("PathLenConstraintViolated"),
            "path len constraint violated"
        );
        assert!(!is_plain("verification time 1795667375 (UNIX)"));
        assert!(!is_plain("names [\"a\"]"));
        assert!(is_plain("self-signed certificate"));
        assert_eq!(alert_name(70), "protocol_version (70)");
        assert_eq!(alert_name(200), "200");
    }
}
