//! A Pebble ACME server and pebble-challtestsrv (DNS answering 127.0.0.1 for
//! every name) on free loopback ports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_for};

#[derive(Debug, Clone)]
pub struct PebbleOptions {
    /// Percentage of valid nonces Pebble rejects (PEBBLE_WFE_NONCEREJECT).
    pub nonce_reject: u8,
    /// Percentage of authorizations reused (PEBBLE_AUTHZREUSE).
    pub authz_reuse: u8,
    /// External account binding required, with this (key id, base64url HMAC key).
    pub eab: Option<(String, String)>,
}

impl Default for PebbleOptions {
    fn default() -> Self {
        Self {
            nonce_reject: 5,
            authz_reuse: 0,
            eab: None,
        }
    }
}

pub struct Pebble {
    pebble: Child,
    dns: Child,
    pub directory: String,
    pub mgmt: String,
    /// Trust anchor for Pebble's own HTTPS API.
    pub api_ca: PathBuf,
    /// Pebble's API certificate (DER) and its PKCS#8 key (DER), signed by
    /// `api_ca`: a proxy presenting them is trusted like Pebble.
    pub api_cert_der: Vec<u8>,
    pub api_key_der: Vec<u8>,
    /// Root of the certificates Pebble issues (`/roots/0`).
    pub issuer_root: PathBuf,
    pub log: PathBuf,
}

impl Pebble {
    pub fn start(dir: &Path, http_port: u16, opts: PebbleOptions) -> Pebble {
        Self::start_with_validity(dir, http_port, opts, None)
    }

    /// Like `start`, issuing certificates valid `validity_secs` seconds
    /// (Pebble's `certificateValidityPeriod`; its default is 5 years).
    pub fn start_with_validity(
        dir: &Path,
        http_port: u16,
        opts: PebbleOptions,
        validity_secs: Option<u64>,
    ) -> Pebble {
        std::fs::create_dir_all(dir).expect("pebble dir");
        // Pebble's API certificate, from a throwaway CA.
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "certkeep test pebble API CA");
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let leaf_params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params");
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).expect("leaf");
        let api_ca = dir.join("api-ca.pem");
        std::fs::write(&api_ca, ca.pem()).expect("write");
        std::fs::write(dir.join("api.pem"), leaf.pem()).expect("write");
        std::fs::write(dir.join("api.key"), leaf_key.serialize_pem()).expect("write");

        let acme_port = free_port();
        let mgmt_port = free_port();
        let dns_port = free_port();
        let dns_mgmt = free_port();
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{acme_port}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
            "certificate": dir.join("api.pem"),
            "privateKey": dir.join("api.key"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": opts.eab.is_some(),
            "externalAccountMACKeys": opts.eab.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone()))).collect::<serde_json::Map<_, _>>(),
        }});
        let mut config = config;
        if let Some(secs) = validity_secs {
            config["pebble"]["certificateValidityPeriod"] = serde_json::json!(secs);
        }
        std::fs::write(dir.join("pebble.json"), config.to_string()).expect("write");
        let log = dir.join("pebble.log");
        // Both run in `dir`, so a leftover process can be traced to its test
        // (scripts/test.sh looks for processes inside the test temp dirs).
        let dns = Command::new("pebble-challtestsrv")
            .current_dir(dir)
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", ""])
            .args(["-management", &format!("127.0.0.1:{dns_mgmt}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble-challtestsrv");
        let pebble = Command::new("pebble")
            .current_dir(dir)
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", opts.nonce_reject.to_string())
            .env("PEBBLE_AUTHZREUSE", opts.authz_reuse.to_string())
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble");
        let mut p = Pebble {
            pebble,
            dns,
            directory: format!("https://127.0.0.1:{acme_port}/dir"),
            mgmt: format!("https://127.0.0.1:{mgmt_port}"),
            api_ca,
            api_cert_der: leaf.der().to_vec(),
            api_key_der: leaf_key.serialize_der(),
            issuer_root: dir.join("issuer-root.pem"),
            log,
        };
        let client = p.client();
        let dir_url = p.directory.clone();
        wait_for("pebble directory", Duration::from_secs(20), || {
            client
                .get(&dir_url)
                .send()
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        });
        let root = p.get_mgmt("/roots/0");
        std::fs::write(&p.issuer_root, root).expect("write root");
        let _ = &mut p;
        p
    }

    /// Pids of Pebble and pebble-challtestsrv.
    pub fn pids(&self) -> Vec<u32> {
        vec![self.pebble.id(), self.dns.id()]
    }

    pub fn client(&self) -> reqwest::blocking::Client {
        let pem = std::fs::read(&self.api_ca).expect("read ca");
        reqwest::blocking::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).expect("ca"))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client")
    }

    /// GET on the management interface, as text.
    pub fn get_mgmt(&self, path: &str) -> String {
        self.client()
            .get(format!("{}{path}", self.mgmt))
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.text())
            .unwrap_or_else(|e| panic!("pebble management {path}: {e}"))
    }

    /// How many orders Pebble created (counted from its log).
    pub fn orders_created(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Added order"))
            .count()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.pebble.kill();
        let _ = self.dns.kill();
        let _ = self.pebble.wait();
        let _ = self.dns.wait();
    }
}
