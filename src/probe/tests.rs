use std::path::Path;

use super::config::ProtocolName;
use super::*;

fn config(text: &str) -> Settings {
    Settings::parse(text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
}

const CERTS: &str = r#"
[[certificate]]
name = "web"
domains = ["www.example.com", "example.com"]
webroot = "/var/www/certbot"
endpoint = "127.0.0.1:8443"

[[certificate]]
name = "api"
domains = ["api.example.com"]
webroot = "/var/www/certbot"
"#;

#[test]
fn targets_from_endpoints_and_managed_certificates() {
    let c = config(&format!(
        r#"
[probe.policy.modern]
protocols = ["tls1.3"]

[[endpoint]]
url = "https://shop.example.com:444/health"
connect = "10.0.0.5"
policy = "modern"

[[endpoint]]
url = "api.example.com"
certificate = "api"
{CERTS}"#
    ));
    let t = targets_from_config(&c);
    assert_eq!(t.len(), 3, "{t:#?}");
    assert_eq!(
        (t[0].host.as_str(), t[0].port, t[0].path.as_str()),
        ("shop.example.com", 444, "/health")
    );
    assert_eq!(t[0].connect_address().unwrap(), ("10.0.0.5".into(), 444));
    assert_eq!(t[0].policy, "modern");
    assert_eq!(t[1].certificate.as_deref(), Some("api"));
    // "api" is named by an endpoint, so only "web" is added, on its endpoint.
    assert_eq!(t[2].certificate.as_deref(), Some("web"));
    assert_eq!(t[2].host, "www.example.com");
    assert_eq!(t[2].target, "https://www.example.com:8443");
    assert_eq!(t[2].connect_address().unwrap(), ("127.0.0.1".into(), 8443));

    let off = config(&format!("[probe]\nmanaged_certificates = false\n{CERTS}"));
    assert!(targets_from_config(&off).is_empty());
    let plain = config(CERTS);
    let t = targets_from_config(&plain);
    assert_eq!(t[1].target, "https://api.example.com:443");
    assert_eq!(t[1].connect, None);
}

#[test]
fn bad_endpoints_are_rejected_at_load_with_their_position() {
    for (body, needle) in [
        ("[[endpoint]]\nurl = \"http://a.test\"\n", "https://host"),
        (
            "[[endpoint]]\nurl = \"a.test\"\npolicy = \"nope\"\n",
            "[probe.policy.nope]",
        ),
        (
            "[[endpoint]]\nurl = \"a.test\"\ncertificate = \"nope\"\n",
            "not a [[certificate]]",
        ),
        (
            "[[endpoint]]\nurl = \"a.test\"\nconnect = \"x:y\"\n",
            "connect",
        ),
    ] {
        let e = Settings::parse(body, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t.toml:2:") || e.starts_with("t.toml:3:"),
            "{e}"
        );
        assert!(e.contains(needle), "{body}: {e}");
    }
    assert!(Settings::parse("[[endpoint]]\nurl = \"a.test\"\ntypo = 1\n", Path::new("t")).is_err());
    assert!(Settings::parse("[probe.policy.x]\nprotocols = [\"ssl3\"]\n", Path::new("t")).is_err());
    assert!(Settings::parse(
        "[probe.policy.x]\nhsts_missing = \"loud\"\n",
        Path::new("t")
    )
    .is_err());
}

#[test]
fn options_merge_policies_over_the_default() {
    let c = config(
        r#"
[probe]
concurrency = 0
handshake_timeout = "2s"

[probe.policy.default]
hsts_missing = "warning"
warning_before = "21d"

[probe.policy.modern]
protocols = ["tls1.3"]
"#,
    );
    let o = ProbeOptions::from_config(&c.probe, &c.store, &[]).unwrap();
    assert_eq!(o.concurrency, 1);
    assert_eq!(o.timeouts.handshake, std::time::Duration::from_secs(2));
    assert_eq!(o.timeouts.connect, Timeouts::default().connect);
    let modern = o.policy("modern");
    assert_eq!(modern.protocols, [ProtocolName::Tls13].into());
    assert_eq!(modern.hsts_missing, config::Severity::Warning);
    assert_eq!(
        modern.warning_before,
        crate::config::TimeLeft::duration(std::time::Duration::from_secs(21 * 86_400)).unwrap()
    );
    assert_eq!(o.policy("default").protocols.len(), 2);
    let mut o = o;
    o.http_port = Some(0);
    assert_eq!(o.policy("modern").http_port, 0);
}

#[test]
fn missing_ca_file_is_named() {
    let e = ProbeOptions::new(&["/nonexistent/ca.pem".into()]).unwrap_err();
    assert!(e.message.contains("/nonexistent/ca.pem"), "{e}");
}

#[test]
fn unparsable_certificates_are_said_in_words() {
    let tls = tls::Tls::new(&[]).unwrap();
    let garbage = rustls::pki_types::CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
    let now = OffsetDateTime::now_utc();
    let e = cert_info(&tls, std::slice::from_ref(&garbage), "a.test", now).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Garbage);
    assert_eq!(
        e.message,
        "the server certificate is not a valid X.509 certificate (it cannot be parsed)"
    );
    let ck = rcgen::generate_simple_self_signed(vec!["a.test".to_string()]).unwrap();
    let e = cert_info(&tls, &[ck.cert.der().clone(), garbage], "a.test", now).unwrap_err();
    assert_eq!(
        e.message,
        "certificate 2 of the served chain is not a valid X.509 certificate (it cannot be parsed)"
    );
    // A self-signed leaf parses and is graded, in words.
    let c = cert_info(&tls, &[ck.cert.der().clone()], "a.test", now).unwrap();
    assert!(!c.chain_valid);
    assert_eq!(c.chain_error.as_deref(), Some("self-signed certificate"));
    assert_eq!(c.expires_first, "leaf");
}
