//! Certificate private keys and CSRs (rcgen on aws-lc-rs).

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, RsaKeySize};

use crate::config::KeyType;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot generate a {0} key: {1}")]
    Generate(KeyType, String),
    #[error(
        "the existing private key cannot be reused ({0}); set reuse_key = false to make a new one"
    )]
    Reuse(String),
    #[error("cannot build the certificate request: {0}")]
    Csr(String),
}

/// A fresh private key of `kind`.
pub fn generate(kind: KeyType) -> Result<KeyPair, KeyError> {
    let err = |e: rcgen::Error| KeyError::Generate(kind, e.to_string());
    match kind {
        KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err),
        KeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(err),
        KeyType::Rsa2048 => rsa(RsaKeySize::_2048).map_err(err),
        KeyType::Rsa3072 => rsa(RsaKeySize::_3072).map_err(err),
        KeyType::Rsa4096 => rsa(RsaKeySize::_4096).map_err(err),
    }
}

fn rsa(size: RsaKeySize) -> Result<KeyPair, rcgen::Error> {
    KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size)
}

/// Loads a PEM private key for reuse.
pub fn load(pem: &str) -> Result<KeyPair, KeyError> {
    KeyPair::from_pem(pem).map_err(|e| KeyError::Reuse(e.to_string()))
}

/// A DER CSR for `domains`: DNS names become DNS SANs, IP addresses
/// (canonical text, as the config keeps them) IP address SANs. The first is
/// also the common name when it is a DNS name; an IP address is not put in
/// the common name (CAs take IP identifiers from the SANs only).
pub fn csr_der(domains: &[String], key: &KeyPair) -> Result<Vec<u8>, KeyError> {
    // rcgen makes an IP address SAN of every entry that parses as one.
    let mut params =
        CertificateParams::new(domains.to_vec()).map_err(|e| KeyError::Csr(e.to_string()))?;
    let mut dn = DistinguishedName::new();
    if let Some(first) = domains
        .first()
        .filter(|d| d.len() <= 64 && d.parse::<std::net::IpAddr>().is_err())
    {
        dn.push(DnType::CommonName, first.as_str());
    }
    params.distinguished_name = dn;
    let csr = params
        .serialize_request(key)
        .map_err(|e| KeyError::Csr(e.to_string()))?;
    Ok(csr.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_type_generates_and_signs_a_csr() {
        for kind in [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Rsa2048] {
            let k = generate(kind).unwrap();
            let der = csr_der(&["a.test".into(), "b.test".into()], &k).unwrap();
            assert!(der.len() > 100, "{kind}");
            let again = load(&k.serialize_pem()).unwrap();
            use rcgen::PublicKeyData;
            assert_eq!(again.subject_public_key_info(), k.subject_public_key_info());
        }
    }

    #[test]
    fn ip_addresses_become_ip_sans_and_stay_out_of_the_common_name() {
        use x509_parser::prelude::{FromDer, GeneralName, X509CertificationRequest};
        let k = generate(KeyType::EcdsaP256).unwrap();
        let der = csr_der(&["127.0.0.1".into(), "::1".into(), "a.test".into()], &k).unwrap();
        let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
        assert_eq!(
            csr.certification_request_info
                .subject
                .iter_common_name()
                .count(),
            0,
            "an IP address is not a common name"
        );
        let mut ips = Vec::new();
        let mut dns = Vec::new();
        for ext in csr.requested_extensions().unwrap() {
            if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = ext {
                for n in &san.general_names {
                    match n {
                        GeneralName::IPAddress(b) => ips.push(b.to_vec()),
                        GeneralName::DNSName(d) => dns.push(d.to_string()),
                        other => panic!("unexpected SAN {other:?}"),
                    }
                }
            }
        }
        let mut v6 = vec![0u8; 16];
        v6[15] = 1;
        assert_eq!(ips, vec![vec![127, 0, 0, 1], v6]);
        assert_eq!(dns, vec!["a.test"]);
        let named = csr_der(&["a.test".into(), "127.0.0.1".into()], &k).unwrap();
        let (_, csr) = X509CertificationRequest::from_der(&named).unwrap();
        let cn: Vec<_> = csr
            .certification_request_info
            .subject
            .iter_common_name()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(cn, vec!["a.test"]);
    }

    #[test]
    fn reuse_of_garbage_is_a_clear_error() {
        let e = load("not a key").unwrap_err();
        assert!(e.to_string().contains("reuse_key"), "{e}");
    }
}
