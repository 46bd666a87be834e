//! A private test CA (rcgen) and leaf certificates with chosen names and validity.

use std::path::{Path, PathBuf};

use std::os::unix::fs::PermissionsExt;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

pub struct TestCa {
    pub path: PathBuf,
    pub pem: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// PEM texts of a leaf certificate and its key.
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl TestCa {
    /// A new CA; its certificate is written to `dir/ca.pem`.
    pub fn new(dir: &Path) -> TestCa {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "certkeep test CA");
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer =
            CertifiedIssuer::self_signed(p, KeyPair::generate().expect("ca key")).expect("ca cert");
        let pem = issuer.pem();
        let path = dir.join("ca.pem");
        std::fs::write(&path, &pem).expect("write ca.pem");
        TestCa { path, pem, issuer }
    }

    /// A leaf for `names`, valid from `from_days` to `to_days` relative to now.
    pub fn leaf(&self, names: &[&str], from_days: i64, to_days: i64) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut p = CertificateParams::new(names).expect("leaf params");
        let now = OffsetDateTime::now_utc();
        p.not_before = now + Duration::days(from_days);
        p.not_after = now + Duration::days(to_days);
        let key = KeyPair::generate().expect("leaf key");
        let cert = p.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// Writes `dir/<name>.crt` (leaf, plus the CA when `with_root`) and `dir/<name>.key`.
    pub fn write_leaf(
        &self,
        dir: &Path,
        name: &str,
        names: &[&str],
        days: (i64, i64),
        with_root: bool,
    ) -> (PathBuf, PathBuf) {
        let leaf = self.leaf(names, days.0, days.1);
        let crt = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        let chain = if with_root {
            format!("{}{}", leaf.cert, self.pem)
        } else {
            leaf.cert
        };
        std::fs::write(&crt, chain).expect("write crt");
        std::fs::write(&key, leaf.key).expect("write key");
        (crt, key)
    }

    /// Writes `dir/<file>.crt` and `dir/<file>.key` (0600) for a leaf with
    /// common name `cn`, the given SANs (none for a pure client certificate)
    /// and optionally one extended key usage (e.g. client authentication).
    pub fn write_named_leaf(
        &self,
        dir: &Path,
        file: &str,
        cn: &str,
        sans: &[&str],
        eku: Option<ExtendedKeyUsagePurpose>,
    ) -> (PathBuf, PathBuf) {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut p = CertificateParams::new(sans).expect("leaf params");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = eku.into_iter().collect();
        let key = KeyPair::generate().expect("leaf key");
        let cert = p.signed_by(&key, &self.issuer).expect("sign leaf");
        let crt = dir.join(format!("{file}.crt"));
        let keyf = dir.join(format!("{file}.key"));
        std::fs::write(&crt, cert.pem()).expect("write crt");
        std::fs::write(&keyf, key.serialize_pem()).expect("write key");
        std::fs::set_permissions(&keyf, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
        (crt, keyf)
    }

    /// A rustls server configuration presenting a new leaf for `names`
    /// (DNS names or IP addresses), valid from yesterday for 30 days and
    /// signed by this CA (the CA itself is not sent).
    pub fn server_config(&self, names: &[&str]) -> rustls::ServerConfig {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut p = CertificateParams::new(names).expect("leaf params");
        let now = OffsetDateTime::now_utc();
        p.not_before = now - Duration::days(1);
        p.not_after = now + Duration::days(30);
        let key = KeyPair::generate().expect("leaf key");
        let cert = p.signed_by(&key, &self.issuer).expect("sign leaf");
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server config")
    }
}
