//! A matrix of real nginx sites on loopback, each serving one kind of
//! certificate (weak or odd keys, SHA-1 signatures, broken chains, dates),
//! made here with rcgen and the openssl command. For each: the verdict, the
//! facts compared with what `openssl x509` says about the same file, and
//! reasons in plain words.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::Value;
use time::OffsetDateTime;

use common::{certkeep, open_tempdir, text, Nginx};

const NO_CONFIG: &str = "/nonexistent/certkeep.toml";
const HSTS_YEAR: &str =
    "add_header Strict-Transport-Security \"max-age=31536000; includeSubDomains\" always;";
const MODERN: &str = "ssl_protocols TLSv1.2 TLSv1.3;";

/// An rcgen issuer with its key as PEM (for `openssl x509 -req -CAkey`).
struct Issuer {
    issuer: rcgen::Issuer<'static, KeyPair>,
    cert: PathBuf,
    key: PathBuf,
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    d
}

fn ca_params(cn: &str, from_days: i64, to_days: i64) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    p.not_before = now + time::Duration::days(from_days);
    p.not_after = now + time::Duration::days(to_days);
    p
}

fn save(dir: &Path, name: &str, cert: &str, key: &str) -> (PathBuf, PathBuf) {
    let c = dir.join(format!("{name}.crt"));
    let k = dir.join(format!("{name}.key"));
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key).unwrap();
    (c, k)
}

impl Issuer {
    fn root(dir: &Path, cn: &str) -> Issuer {
        let key = KeyPair::generate().unwrap();
        let key_pem = key.serialize_pem();
        let params = ca_params(cn, -30, 3650);
        let pem = params.self_signed(&key).unwrap().pem();
        let issuer = rcgen::Issuer::new(params, key);
        let (cert, key) = save(dir, "root", &pem, &key_pem);
        Issuer { issuer, cert, key }
    }

    fn intermediate(&self, dir: &Path, name: &str, cn: &str, to_days: i64) -> Issuer {
        let key = KeyPair::generate().unwrap();
        let key_pem = key.serialize_pem();
        let params = ca_params(cn, -30, to_days);
        let pem = params.signed_by(&key, &self.issuer).unwrap().pem();
        let issuer = rcgen::Issuer::new(params, key);
        let (cert, key) = save(dir, name, &pem, &key_pem);
        Issuer { issuer, cert, key }
    }

    /// An rcgen leaf for `host`, valid between the two offsets from now in
    /// hours; `ca` makes it a CA certificate.
    fn leaf(&self, host: &str, key: KeyPair, hours: (i64, i64), ca: bool) -> (String, String) {
        let mut p = CertificateParams::new(vec![host.to_string()]).unwrap();
        p.distinguished_name = dn(host);
        let now = OffsetDateTime::now_utc();
        p.not_before = now + time::Duration::hours(hours.0);
        p.not_after = now + time::Duration::hours(hours.1);
        if ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::DigitalSignature,
            ];
        } else {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        }
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A leaf made by the openssl command: `newkey` like `rsa:1024`, `digest` like `sha1`.
    /// `newkey` like `rsa:1024`, or `ec:P-224` for a named curve.
    fn openssl_leaf(&self, dir: &Path, host: &str, newkey: &str, digest: &str) -> (String, String) {
        let key = dir.join(format!("{host}.key"));
        let csr = dir.join(format!("{host}.csr"));
        let crt = dir.join(format!("{host}.crt"));
        let ext = dir.join(format!("{host}.ext"));
        std::fs::write(
            &ext,
            format!("subjectAltName=DNS:{host}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
        )
        .unwrap();
        let curve;
        let keyargs: Vec<&str> = match newkey.strip_prefix("ec:") {
            Some(c) => {
                curve = format!("ec_paramgen_curve:{c}");
                vec!["-newkey", "ec", "-pkeyopt", &curve]
            }
            None => vec!["-newkey", newkey],
        };
        let mut args = vec!["req", "-new"];
        args.extend(keyargs);
        openssl(
            &[
                &args[..],
                &[
                    "-nodes",
                    "-keyout",
                    p(&key),
                    "-subj",
                    &format!("/CN={host}"),
                    "-out",
                    p(&csr),
                ],
            ]
            .concat(),
        );
        self.openssl_sign(&csr, &ext, &crt, digest);
        (
            std::fs::read_to_string(&crt).unwrap(),
            std::fs::read_to_string(&key).unwrap(),
        )
    }

    fn openssl_sign(&self, csr: &Path, ext: &Path, out: &Path, digest: &str) {
        openssl(&[
            "x509",
            "-req",
            "-in",
            p(csr),
            "-CA",
            p(&self.cert),
            "-CAkey",
            p(&self.key),
            "-CAcreateserial",
            "-days",
            "90",
            &format!("-{digest}"),
            "-extfile",
            p(ext),
            "-out",
            p(out),
        ]);
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What `openssl x509` says about the first certificate of a PEM file.
struct OpensslFacts {
    serial: String,
    not_after: OffsetDateTime,
    fingerprint: String,
    signature: String,
    text: String,
}

fn month(m: &str) -> time::Month {
    let names = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let i = names.iter().position(|n| *n == m).expect("month name") as u8;
    time::Month::try_from(i + 1).unwrap()
}

/// `Nov 26 05:28:20 2026 GMT` (openssl's format).
fn openssl_date(s: &str) -> OffsetDateTime {
    let parts: Vec<&str> = s.split_whitespace().collect();
    assert_eq!(parts.len(), 5, "{s}");
    let hms: Vec<u8> = parts[2].split(':').map(|x| x.parse().unwrap()).collect();
    let date = time::Date::from_calendar_date(
        parts[3].parse().unwrap(),
        month(parts[0]),
        parts[1].parse().unwrap(),
    )
    .unwrap();
    date.with_hms(hms[0], hms[1], hms[2]).unwrap().assume_utc()
}

fn openssl_facts(pem_file: &Path) -> OpensslFacts {
    let out = openssl(&[
        "x509",
        "-noout",
        "-enddate",
        "-serial",
        "-fingerprint",
        "-sha256",
        "-in",
        p(pem_file),
    ]);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            .to_string()
    };
    let text = openssl(&["x509", "-noout", "-text", "-in", p(pem_file)]);
    let signature = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Signature Algorithm: "))
        .unwrap()
        .to_string();
    OpensslFacts {
        serial: field("serial=").to_ascii_lowercase(),
        not_after: openssl_date(&field("notAfter=")),
        fingerprint: field("sha256 Fingerprint=")
            .replace(':', "")
            .to_ascii_lowercase(),
        signature,
        text,
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn check<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {r:#}"))
}

/// Every text a person reads from a report.
fn reasons(r: &Value) -> Vec<String> {
    let mut v: Vec<String> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["reason"].as_str().unwrap().to_string())
        .collect();
    if let Some(e) = r["certificate"]["chain_error"].as_str() {
        v.push(e.to_string());
    }
    if let Some(e) = r["error"]["message"].as_str() {
        v.push(e.to_string());
    }
    v
}

#[track_caller]
fn assert_plain(r: &Value) {
    for s in reasons(r) {
        for bad in ["{", "[", "Context", "(UNIX)", "Other(", "Some("] {
            assert!(!s.contains(bad), "debug formatting {bad:?} in {s:?}");
        }
    }
}

struct Site {
    host: &'static str,
    /// The file the server sends (leaf first).
    chain: PathBuf,
    port: u16,
}

fn site(
    nginx: &Nginx,
    dir: &Path,
    host: &'static str,
    leaf: (String, String),
    extra_chain: &[&Path],
    weak: bool,
) -> Site {
    let mut pem = leaf.0;
    for c in extra_chain {
        pem.push_str(&std::fs::read_to_string(c).unwrap());
    }
    let (chain, key) = save(dir, &format!("site-{host}"), &pem, &leaf.1);
    let ciphers = if weak {
        "ssl_ciphers DEFAULT:@SECLEVEL=0;"
    } else {
        ""
    };
    let port = nginx.tls_site(
        host,
        host,
        &chain,
        &key,
        &format!("{MODERN} {ciphers} {HSTS_YEAR}"),
    );
    Site { host, chain, port }
}

#[test]
fn certificate_matrix() {
    require!("nginx", "openssl");
    let dir = open_tempdir();
    let d = dir.path();
    let webroot = d.join("webroot");
    std::fs::create_dir_all(webroot.join(".well-known/acme-challenge")).unwrap();
    let nginx = Nginx::start_weak_crypto(&d.join("nginx"), &webroot);
    let root = Issuer::root(d, "Matrix Root");
    let int = root.intermediate(d, "int", "Matrix Intermediate", 3000);
    let short = root.intermediate(d, "short", "Matrix Short Intermediate", 10);
    // An intermediate signed with SHA-1 (openssl), issuing a SHA-256 leaf.
    let sha1_int = {
        let key = d.join("sha1int.key");
        let csr = d.join("sha1int.csr");
        let ext = d.join("sha1int.ext");
        let crt = d.join("sha1int.crt");
        std::fs::write(
            &ext,
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
        )
        .unwrap();
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            p(&key),
            "-subj",
            "/CN=Matrix SHA-1 Intermediate",
            "-out",
            p(&csr),
        ]);
        root.openssl_sign(&csr, &ext, &crt, "sha1");
        // rcgen signs leaves with the same name and key (paths are built by name).
        let issuer = rcgen::Issuer::new(
            ca_params("Matrix SHA-1 Intermediate", -30, 90),
            KeyPair::from_pem(&std::fs::read_to_string(&key).unwrap()).unwrap(),
        );
        Issuer {
            issuer,
            cert: crt,
            key,
        }
    };
    let ec = |alg| KeyPair::generate_for(alg).unwrap();
    let p256 = &rcgen::PKCS_ECDSA_P256_SHA256;
    let p384 = &rcgen::PKCS_ECDSA_P384_SHA384;

    let sites = [
        site(
            &nginx,
            d,
            "rsa1024.test",
            int.openssl_leaf(d, "rsa1024.test", "rsa:1024", "sha256"),
            &[&int.cert],
            true,
        ),
        site(
            &nginx,
            d,
            "rsa2048.test",
            int.openssl_leaf(d, "rsa2048.test", "rsa:2048", "sha256"),
            &[&int.cert],
            false,
        ),
        site(
            &nginx,
            d,
            "p224.test",
            int.openssl_leaf(d, "p224.test", "ec:P-224", "sha256"),
            &[&int.cert],
            true,
        ),
        site(
            &nginx,
            d,
            "p256.test",
            int.leaf("p256.test", ec(p256), (-24, 89 * 24), false),
            &[&int.cert],
            false,
        ),
        site(
            &nginx,
            d,
            "p384.test",
            int.leaf("p384.test", ec(p384), (-24, 89 * 24), false),
            &[&int.cert],
            false,
        ),
        site(
            &nginx,
            d,
            "sha1leaf.test",
            int.openssl_leaf(d, "sha1leaf.test", "rsa:2048", "sha1"),
            &[&int.cert],
            true,
        ),
        site(
            &nginx,
            d,
            "sha1int.test",
            sha1_int.leaf("sha1int.test", ec(p256), (-24, 89 * 24), false),
            &[&sha1_int.cert],
            true,
        ),
        {
            let ck =
                rcgen::generate_simple_self_signed(vec!["selfsigned.test".to_string()]).unwrap();
            site(
                &nginx,
                d,
                "selfsigned.test",
                (ck.cert.pem(), ck.signing_key.serialize_pem()),
                &[],
                false,
            )
        },
        site(
            &nginx,
            d,
            "expired.test",
            int.leaf("expired.test", ec(p256), (-118 * 24, -27 * 24 - 12), false),
            &[&int.cert],
            false,
        ),
        site(
            &nginx,
            d,
            "future.test",
            int.leaf("future.test", ec(p256), (10 * 24, 100 * 24), false),
            &[&int.cert],
            false,
        ),
        site(
            &nginx,
            d,
            "nointermediate.test",
            int.leaf("nointermediate.test", ec(p256), (-24, 89 * 24), false),
            &[],
            false,
        ),
        site(
            &nginx,
            d,
            "shortint.test",
            short.leaf("shortint.test", ec(p256), (-24, 89 * 24), false),
            &[&short.cert],
            false,
        ),
        site(
            &nginx,
            d,
            "caleaf.test",
            int.leaf("caleaf.test", ec(p256), (-24, 89 * 24), true),
            &[&int.cert],
            false,
        ),
        site(
            &nginx,
            d,
            "p521first.test",
            int.leaf("p521first.test", ec(p256), (-24, 89 * 24), false),
            &[&int.cert],
            false,
        ),
    ];
    // TLS 1.2 only, preferring a key exchange on P-521 (which the probe
    // lists but cannot compute) over P-256: the probe tries again without it.
    let conf = nginx.sites.join("p521first.test.conf");
    let site_conf = std::fs::read_to_string(&conf).unwrap().replace(
        MODERN,
        "ssl_protocols TLSv1.2; ssl_ecdh_curve secp521r1:prime256v1; ssl_prefer_server_ciphers on;",
    );
    std::fs::write(&conf, site_conf).unwrap();
    nginx.reload();
    for s in &sites {
        common::wait_for(s.host, Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", s.port)).is_ok()
        });
    }

    let hp = nginx.http_port.to_string();
    let targets: Vec<String> = sites
        .iter()
        .map(|s| format!("{}:{}", s.host, s.port))
        .collect();
    let before = OffsetDateTime::now_utc();
    let mut args = vec![
        "probe",
        "--json",
        "--ca-file",
        p(&root.cert),
        "--http-port",
        &hp,
        "--connect",
        "127.0.0.1",
    ];
    args.extend(targets.iter().map(String::as_str));
    let out = certkeep(Path::new(NO_CONFIG), &args);
    let after = OffsetDateTime::now_utc();
    let reports: Vec<Value> =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("JSON: {e}\n{}", text(&out)));
    assert_eq!(reports.len(), sites.len());
    let reports = common::in_target_order(reports, &targets);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    let by_host = |h: &str| {
        let i = sites.iter().position(|s| s.host == h).unwrap();
        (&reports[i], &sites[i])
    };
    // Facts against openssl, for every site: the leaf, and days left from
    // the not-after openssl reads in the first certificate to expire.
    for (r, s) in reports.iter().zip(&sites) {
        assert_plain(r);
        assert_ne!(r["verdict"], "error", "{}: {r:#}", s.host);
        let c = &r["certificate"];
        let o = openssl_facts(&s.chain);
        assert_eq!(c["serial"], o.serial.trim_start_matches("00"), "{}", s.host);
        assert_eq!(c["fingerprint_sha256"], o.fingerprint, "{}", s.host);
        assert_eq!(c["not_after"], rfc3339(o.not_after), "{}", s.host);
        assert_eq!(c["signature_algorithm"], o.signature, "{}", s.host);
        assert_eq!(c["sans"][0], s.host, "{}", s.host);
        let first = if s.host == "shortint.test" {
            openssl_facts(&short.cert).not_after
        } else {
            o.not_after
        };
        assert_eq!(c["earliest_expiry"], rfc3339(first), "{}", s.host);
        let days = |now: OffsetDateTime| (first - now).whole_seconds().div_euclid(86_400);
        let got = c["days_left"].as_i64().unwrap();
        assert!(
            got == days(before) || got == days(after),
            "{}: days_left {got}, openssl says {}",
            s.host,
            days(before)
        );
        // The leaf key as openssl words it.
        let key = c["key_type"].as_str().unwrap();
        match key {
            "rsa1024" => assert!(o.text.contains("Public-Key: (1024 bit)"), "{}", o.text),
            "rsa2048" => assert!(o.text.contains("Public-Key: (2048 bit)"), "{}", o.text),
            "ecdsa-p256" => assert!(o.text.contains("NIST CURVE: P-256"), "{}", o.text),
            "ecdsa-p384" => assert!(o.text.contains("NIST CURVE: P-384"), "{}", o.text),
            "ecdsa-p224" => assert!(o.text.contains("NIST CURVE: P-224"), "{}", o.text),
            other => panic!("{}: unexpected key type {other}", s.host),
        }
    }

    let expect = |host: &str, verdict: &str, name: &str, check_verdict: &str, reason: &str| {
        let (r, _) = by_host(host);
        assert_eq!(r["verdict"], verdict, "{host}: {r:#}");
        let c = check(r, name);
        assert_eq!(c["verdict"], check_verdict, "{host}: {c}");
        assert!(
            c["reason"].as_str().unwrap().contains(reason),
            "{host}: {name}: {:?} lacks {reason:?}",
            c["reason"]
        );
        r
    };

    // Weak and strong keys: a finding, not a probe error.
    let r = expect(
        "rsa1024.test",
        "critical",
        "key",
        "critical",
        "1024-bit RSA key, below the minimum of 2048 bits; reissue with a larger key",
    );
    assert_eq!(r["certificate"]["key_type"], "rsa1024");
    assert_eq!(r["certificate"]["chain_valid"], true);
    // A curve under 256 bits: the handshake completes (TLS 1.2; no TLS 1.3
    // signature scheme exists for it) and the key is the finding.
    let r = expect(
        "p224.test",
        "critical",
        "key",
        "critical",
        "ecdsa-p224 is an elliptic curve under 256 bits, which clients reject",
    );
    assert_eq!(r["certificate"]["chain_valid"], true);
    assert_eq!(r["protocols"]["tls1.2"], true, "{r:#}");
    for host in ["rsa2048.test", "p256.test", "p384.test"] {
        let r = expect(host, "ok", "chain", "ok", "verifies to a trusted root");
        assert_eq!(check(r, "key")["verdict"], "ok");
    }
    assert_eq!(
        by_host("p384.test").0["certificate"]["key_type"],
        "ecdsa-p384"
    );

    let r = expect(
        "sha1leaf.test",
        "critical",
        "signature",
        "critical",
        "the certificate is signed with SHA-1 (ecdsa-with-SHA1), which browsers reject",
    );
    assert_eq!(
        check(r, "chain")["reason"],
        "clients reject it for the SHA-1 signature (see the signature check)"
    );
    assert_eq!(r["certificate"]["chain_problem"]["kind"], "weak_signature");
    let r = expect(
        "sha1int.test",
        "critical",
        "signature",
        "critical",
        "the intermediate \"CN=Matrix SHA-1 Intermediate\" is signed with SHA-1 (ecdsa-with-SHA1)",
    );
    assert_eq!(
        r["certificate"]["chain"][1]["signature_algorithm"],
        "ecdsa-with-SHA1"
    );

    expect(
        "selfsigned.test",
        "critical",
        "chain",
        "critical",
        "self-signed certificate; serve a certificate from a trusted CA",
    );
    let r = expect(
        "expired.test",
        "critical",
        "expiry",
        "critical",
        "expired 28 days ago",
    );
    assert_eq!(r["certificate"]["days_left"], -28);
    assert_eq!(r["certificate"]["chain_problem"]["kind"], "dates");
    expect(
        "future.test",
        "critical",
        "expiry",
        "critical",
        "not valid yet: valid from",
    );
    expect("nointermediate.test", "critical", "chain", "critical", "the intermediate certificate is missing: the server sends only its certificate, issued by \"CN=Matrix Intermediate\", which is not a trusted root; serve fullchain.pem");
    let r = expect(
        "shortint.test",
        "critical",
        "expiry",
        "critical",
        "the intermediate \"CN=Matrix Short Intermediate\" expires in",
    );
    assert_eq!(r["certificate"]["expires_first"], "intermediate");
    assert!(r["certificate"]["leaf_days_left"].as_i64().unwrap() >= 87);
    assert!(r["certificate"]["days_left"].as_i64().unwrap() <= 10);
    let r = expect(
        "p521first.test",
        "warning",
        "protocols",
        "warning",
        "accepts TLS 1.2; TLS 1.3 not accepted",
    );
    assert_eq!(r["certificate"]["chain_valid"], true);
    expect(
        "caleaf.test",
        "critical",
        "chain",
        "critical",
        "a CA certificate is used as the server certificate",
    );

    // The table's NOTE: expiry before chain for the expired site.
    let out = certkeep(
        Path::new(NO_CONFIG),
        &[
            "probe",
            "--ca-file",
            p(&root.cert),
            "--http-port",
            &hp,
            "--connect",
            "127.0.0.1",
            &format!("expired.test:{}", by_host("expired.test").1.port),
        ],
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let line = table.lines().nth(1).unwrap_or_default();
    assert!(
        line.contains(" EXP ") && line.contains("expiry: expired 28 days ago"),
        "{table}"
    );
}

/// hstspreload's rules on real nginx sites: one header and a same-host
/// redirect are eligible; two headers, a redirect to another host first, or
/// to www first are not, and the report says which rule failed.
#[test]
fn hsts_preload_rules() {
    require!("nginx");
    let dir = open_tempdir();
    let d = dir.path();
    let webroot = d.join("webroot");
    std::fs::create_dir_all(webroot.join(".well-known/acme-challenge")).unwrap();
    let nginx = Nginx::start(&d.join("nginx"), &webroot);
    let root = Issuer::root(d, "Preload Root");
    let preload = "add_header Strict-Transport-Security \"max-age=63072000; includeSubDomains; preload\" always;";
    let mut ports = Vec::new();
    for (host, header) in [
        ("good.test", preload.to_string()),
        ("twice.test", format!("{preload} {preload}")),
        ("cross.test", preload.to_string()),
        ("wwwfirst.test", preload.to_string()),
    ] {
        let leaf = root.leaf(host, KeyPair::generate().unwrap(), (-24, 89 * 24), false);
        let s = site(&nginx, d, host, leaf, &[], false);
        // `site` adds the one-year header; this case's header replaces it.
        let conf = nginx.sites.join(format!("{host}.conf"));
        let text = std::fs::read_to_string(&conf)
            .unwrap()
            .replace(HSTS_YEAR, &header);
        std::fs::write(&conf, text).unwrap();
        ports.push(s.port);
    }
    // Plain HTTP for two hosts redirects elsewhere first.
    let hp = nginx.http_port;
    nginx.add_site(
        "plain-redirects",
        &format!(
            "server {{ listen 127.0.0.1:{hp}; server_name cross.test; return 301 https://other.test$request_uri; }}\n\
             server {{ listen 127.0.0.1:{hp}; server_name wwwfirst.test; return 301 https://www.wwwfirst.test$request_uri; }}\n"
        ),
    );
    nginx.reload();
    for p in &ports {
        common::wait_for("the TLS site", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok()
        });
    }
    let hps = hp.to_string();
    let targets: Vec<String> = ["good.test", "twice.test", "cross.test", "wwwfirst.test"]
        .iter()
        .zip(&ports)
        .map(|(h, p)| format!("{h}:{p}"))
        .collect();
    let mut args = vec![
        "probe",
        "--json",
        "--ca-file",
        p(&root.cert),
        "--http-port",
        &hps,
        "--connect",
        "127.0.0.1",
    ];
    args.extend(targets.iter().map(String::as_str));
    let out = certkeep(Path::new(NO_CONFIG), &args);
    let r: Vec<Value> =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("JSON: {e}\n{}", text(&out)));
    let r = common::in_target_order(r, &targets);
    let hsts = |i: usize| &r[i]["hsts"];
    assert_eq!(hsts(0)["preload_eligible"], true, "{:#}", r[0]);
    assert_eq!(hsts(0)["headers"], 1);
    assert_eq!(hsts(1)["headers"], 2, "{:#}", r[1]);
    assert_eq!(hsts(1)["preload_eligible"], false);
    assert_eq!(
        hsts(1)["preload_issues"],
        serde_json::json!([
            "2 Strict-Transport-Security headers where exactly one is allowed (response.multiple_headers)"
        ])
    );
    assert_eq!(hsts(2)["preload_eligible"], false, "{:#}", r[2]);
    assert_eq!(
        hsts(2)["preload_issues"],
        serde_json::json!([
            "http://cross.test redirects to https://other.test/; the first redirect must go to https://cross.test on the same host (redirects.http.first_redirect.insecure)"
        ])
    );
    assert_eq!(hsts(3)["preload_eligible"], false);
    assert!(
        hsts(3)["preload_issues"][0]
            .as_str()
            .unwrap()
            .ends_with("(redirects.http.www_first)"),
        "{:#}",
        r[3]
    );
    for x in &r {
        assert_plain(x);
    }
}

/// `-v` says per target what was found; `-vv` adds each version tried, the
/// plain-HTTP answers and every check, with timings.
#[test]
fn verbose_probe_says_what_was_tried() {
    require!("nginx");
    let dir = open_tempdir();
    let d = dir.path();
    let webroot = d.join("webroot");
    std::fs::create_dir_all(webroot.join(".well-known/acme-challenge")).unwrap();
    let nginx = Nginx::start(&d.join("nginx"), &webroot);
    let root = Issuer::root(d, "Verbose Root");
    let leaf = root.leaf(
        "verbose.test",
        KeyPair::generate().unwrap(),
        (-24, 89 * 24),
        false,
    );
    let s = site(&nginx, d, "verbose.test", leaf, &[], false);
    nginx.reload();
    common::wait_for("the TLS site", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", s.port)).is_ok()
    });
    let hp = nginx.http_port.to_string();
    let target = format!("verbose.test:{}", s.port);
    let run = |v: &str| {
        let out = certkeep(
            Path::new(NO_CONFIG),
            &[
                v,
                "--log-format",
                "plain",
                "probe",
                "--ca-file",
                p(&root.cert),
                "--http-port",
                &hp,
                "--connect",
                "127.0.0.1",
                &target,
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let info = run("-v");
    assert!(
        info.contains("probed: every check passed") && info.contains("verdict=ok"),
        "{info}"
    );
    assert!(info.contains("address=127.0.0.1:"), "{info}");
    assert!(
        !info.contains("TLS 1.3: accepted"),
        "-v stays short: {info}"
    );
    let debug = run("-vv");
    for want in [
        "TLS 1.3: accepted target=verbose.test:",
        "TLS 1.2: accepted",
        "TLS 1.1: not accepted: the server sent TLS alert protocol_version (70) target=verbose.test:",
        "TLS 1.0: not accepted",
        "plain HTTP: GET / answers 301 to https://verbose.test/",
        "the chain verifies to a trusted root target=verbose.test",
        "ms=",
    ] {
        assert!(debug.contains(want), "-vv lacks {want:?}:\n{debug}");
    }
}
