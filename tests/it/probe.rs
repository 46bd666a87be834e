//! `certkeep probe` against real nginx sites on loopback, with certificates
//! from a private test CA (passed with --ca-file).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::tlsgen::TestCa;
use common::{assert_exit, certkeep, open_tempdir, text, Nginx};

const NO_CONFIG: &str = "/nonexistent/certkeep.toml";
const HSTS_YEAR: &str =
    "add_header Strict-Transport-Security \"max-age=31536000; includeSubDomains\" always;";
const ALL_PROTOCOLS: &str =
    "ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3; ssl_ciphers DEFAULT:@SECLEVEL=0;";

pub struct Bed {
    pub dir: tempfile::TempDir,
    pub nginx: Nginx,
    pub ca: TestCa,
    pub webroot: PathBuf,
}

impl Bed {
    fn start(acme_location: bool) -> Option<Bed> {
        if !common::have("nginx") {
            return None;
        }
        let dir = open_tempdir();
        let webroot = dir.path().join("webroot");
        std::fs::create_dir_all(webroot.join(".well-known/acme-challenge")).unwrap();
        let nginx = Nginx::start_with(&dir.path().join("nginx"), &webroot, acme_location);
        let ca = TestCa::new(dir.path());
        Some(Bed {
            dir,
            nginx,
            ca,
            webroot,
        })
    }

    /// A site for `name` serving a fresh 90-day leaf for `cert_names`.
    fn site(&self, name: &str, cert_names: &[&str], days: (i64, i64), extra: &str) -> u16 {
        let (crt, key) = self
            .ca
            .write_leaf(self.dir.path(), name, cert_names, days, false);
        self.nginx.tls_site(name, name, &crt, &key, extra)
    }

    fn reload_and_wait(&self, ports: &[u16]) {
        self.nginx.reload();
        for p in ports {
            common::wait_for("the TLS site", Duration::from_secs(10), || {
                std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok()
            });
        }
    }

    /// `certkeep probe --json` with the CA, the bed's HTTP port and 127.0.0.1.
    fn probe(&self, targets: &[String]) -> (i32, Vec<Value>) {
        let port = self.nginx.http_port.to_string();
        let ca = self.ca.path.display().to_string();
        let mut args = vec![
            "probe",
            "--json",
            "--ca-file",
            &ca,
            "--http-port",
            &port,
            "--connect",
            "127.0.0.1",
        ];
        args.extend(targets.iter().map(String::as_str));
        let out = certkeep(Path::new(NO_CONFIG), &args);
        let code = out.status.code().unwrap_or(-1);
        let v: Vec<Value> = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("JSON: {e}\n{}", text(&out)));
        (code, common::in_target_order(v, targets))
    }
}

fn check<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {r:#}"))
}

fn protocols(r: &Value) -> [bool; 4] {
    let p = &r["protocols"];
    ["tls1.0", "tls1.1", "tls1.2", "tls1.3"]
        .map(|k| p[k].as_bool().unwrap_or_else(|| panic!("{k}: {r:#}")))
}

#[test]
fn protocols_and_hsts_per_site() {
    let Some(bed) = Bed::start(true) else { return };
    let all = bed.site(
        "all.test",
        &["all.test"],
        (-1, 89),
        &format!("{ALL_PROTOCOLS} {HSTS_YEAR}"),
    );
    let modern = bed.site(
        "modern.test",
        &["modern.test"],
        (-1, 89),
        "ssl_protocols TLSv1.2 TLSv1.3; add_header Strict-Transport-Security \"max-age=300\" always;",
    );
    let only13 = bed.site(
        "only13.test",
        &["only13.test"],
        (-1, 89),
        "ssl_protocols TLSv1.3;",
    );
    let good = bed.site(
        "good.test",
        &["good.test"],
        (-1, 89),
        &format!("ssl_protocols TLSv1.2 TLSv1.3; {HSTS_YEAR}"),
    );
    bed.reload_and_wait(&[all, modern, only13, good]);
    let (code, r) = bed.probe(&[
        format!("https://all.test:{all}"),
        format!("modern.test:{modern}"),
        format!("https://only13.test:{only13}/"),
        format!("https://good.test:{good}"),
    ]);
    assert_eq!(code, 2, "{r:#?}");
    assert_eq!(r.len(), 4);

    assert_eq!(protocols(&r[0]), [true, true, true, true]);
    assert_eq!(r[0]["verdict"], "warning", "{:#}", r[0]);
    assert_eq!(check(&r[0], "protocols")["verdict"], "warning");
    assert_eq!(r[0]["hsts"]["max_age"], 31_536_000);
    assert_eq!(r[0]["hsts"]["include_subdomains"], true);
    assert_eq!(r[0]["hsts"]["preload"], false);

    assert_eq!(protocols(&r[1]), [false, false, true, true]);
    assert_eq!(r[1]["hsts"]["max_age"], 300);
    assert_eq!(check(&r[1], "hsts")["verdict"], "warning");
    assert_eq!(r[1]["verdict"], "warning");

    assert_eq!(protocols(&r[2]), [false, false, false, true]);
    assert_eq!(r[2]["hsts"]["present"], false);
    assert_eq!(check(&r[2], "hsts")["verdict"], "critical");
    assert_eq!(r[2]["verdict"], "critical");

    assert_eq!(protocols(&r[3]), [false, false, true, true]);
    assert_eq!(r[3]["verdict"], "ok", "{:#}", r[3]);
    let c = &r[3]["certificate"];
    assert_eq!(c["chain_valid"], true);
    assert_eq!(c["hostname_valid"], true);
    assert_eq!(c["sans"][0], "good.test");
    assert_eq!(c["key_type"], "ecdsa-p256");
    assert!(
        (87..=89).contains(&c["days_left"].as_i64().unwrap()),
        "{c:#}"
    );
    assert!(c["not_after"].as_str().unwrap().ends_with('Z'));
    assert_eq!(check(&r[3], "http-redirect")["verdict"], "ok");
    assert_eq!(check(&r[3], "acme-path")["verdict"], "ok");

    // Alone, the good site exits 0; the table is the default output.
    let ca = bed.ca.path.display().to_string();
    let hp = bed.nginx.http_port.to_string();
    let out = certkeep(
        Path::new(NO_CONFIG),
        &[
            "probe",
            "--ca-file",
            &ca,
            "--http-port",
            &hp,
            "--connect",
            "127.0.0.1",
            "-d",
            &format!("good.test:{good}"),
        ],
    );
    assert_exit(&out, 0);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.starts_with("VERDICT"), "{s}");
    assert!(
        s.contains("ok ") && s.contains("1.2 1.3") && s.contains("365d"),
        "{s}"
    );
    assert!(!s.contains('\x1b'), "no colour without a terminal: {s}");
    assert!(s.contains("hostname"), "details list every check: {s}");
}

#[test]
fn expired_wrong_host_and_untrusted_certificates() {
    let Some(bed) = Bed::start(true) else { return };
    let expired = bed.site("expired.test", &["expired.test"], (-100, -10), HSTS_YEAR);
    let wrong = bed.site("wrong.test", &["other.test"], (-1, 89), HSTS_YEAR);
    let fine = bed.site("fine.test", &["fine.test"], (-1, 89), HSTS_YEAR);
    let short = bed.site("short.test", &["short.test"], (-5, 1), HSTS_YEAR);
    bed.reload_and_wait(&[expired, wrong, fine, short]);
    let (code, r) = bed.probe(&[
        format!("expired.test:{expired}"),
        format!("wrong.test:{wrong}"),
        format!("short.test:{short}"),
    ]);
    assert_eq!(code, 2);
    assert_eq!(check(&r[0], "expiry")["verdict"], "critical");
    assert!(check(&r[0], "expiry")["reason"]
        .as_str()
        .unwrap()
        .contains("ago"));
    assert!(r[0]["certificate"]["days_left"].as_i64().unwrap() < 0);
    assert_eq!(
        r[0]["certificate"]["chain_valid"], false,
        "an expired chain does not verify"
    );
    assert_eq!(r[1]["certificate"]["hostname_valid"], false);
    assert_eq!(r[1]["certificate"]["chain_valid"], true);
    assert_eq!(check(&r[1], "hostname")["verdict"], "critical");
    // A 6-day certificate with 1 day left: under 1/6 of its lifetime.
    assert_eq!(check(&r[2], "expiry")["verdict"], "critical", "{:#}", r[2]);

    // Without the private CA the chain is untrusted, but still captured.
    let out = certkeep(
        Path::new(NO_CONFIG),
        &[
            "probe",
            "--json",
            "--http-port",
            "0",
            "--connect",
            "127.0.0.1",
            &format!("fine.test:{fine}"),
        ],
    );
    assert_exit(&out, 2);
    let r: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r[0]["certificate"]["chain_valid"], false);
    assert_eq!(r[0]["certificate"]["sans"][0], "fine.test");
    assert!(
        check(&r[0], "chain")["reason"]
            .as_str()
            .unwrap()
            .contains("which is not a trusted root"),
        "{:#}",
        r[0]
    );
}

/// The probe trusts the system's trust store: a private CA made a system
/// root (here through SSL_CERT_FILE, which rustls-native-certs reads
/// instead of /etc/ssl/certs) makes its chain valid without --ca-file, and
/// a store without it (only another CA) leaves the chain untrusted.
#[test]
fn system_trust_store_decides_without_ca_file() {
    let Some(bed) = Bed::start(true) else { return };
    let fine = bed.site("fine.test", &["fine.test"], (-1, 89), HSTS_YEAR);
    bed.reload_and_wait(&[fine]);
    let other_dir = open_tempdir();
    let other = TestCa::new(other_dir.path());
    let probe_with = |bundle: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .args(["--config", NO_CONFIG, "probe", "--json", "--http-port", "0"])
            .args(["--connect", "127.0.0.1", &format!("fine.test:{fine}")])
            .env("SSL_CERT_FILE", bundle)
            .env_remove("SSL_CERT_DIR")
            .env_remove("RUST_LOG")
            .output()
            .expect("run certkeep");
        let r: Vec<Value> = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("JSON: {e}\n{}", text(&out)));
        (out, r)
    };
    let (out, r) = probe_with(&bed.ca.path);
    assert_eq!(r[0]["certificate"]["chain_valid"], true, "{}", text(&out));
    assert_eq!(check(&r[0], "chain")["verdict"], "ok", "{:#}", r[0]);

    // The other CA has the same name as the bed's, so the leaf's signature
    // is checked against the wrong key and fails.
    let (out, r) = probe_with(&other.path);
    assert_exit(&out, 2);
    assert_eq!(r[0]["certificate"]["chain_valid"], false, "{:#}", r[0]);
    assert_eq!(
        r[0]["certificate"]["chain_problem"]["kind"], "bad_signature",
        "{:#}",
        r[0]
    );
    assert_ne!(check(&r[0], "chain")["verdict"], "ok", "{:#}", r[0]);
}

#[test]
fn acme_location_missing_is_reported() {
    let Some(bed) = Bed::start(false) else { return };
    let p = bed.site("noacme.test", &["noacme.test"], (-1, 89), HSTS_YEAR);
    bed.reload_and_wait(&[p]);
    let (code, r) = bed.probe(&[format!("noacme.test:{p}")]);
    assert_eq!(code, 1, "{r:#?}");
    let acme = check(&r[0], "acme-path");
    assert_eq!(acme["verdict"], "warning");
    assert!(
        acme["reason"].as_str().unwrap().contains("redirected (301"),
        "{acme}"
    );
    assert_eq!(check(&r[0], "http-redirect")["verdict"], "ok");
    assert_eq!(r[0]["http"]["acme_status"], 301);
}

#[test]
fn renewed_but_not_deployed() {
    let Some(bed) = Bed::start(true) else { return };
    let store_dir = bed.dir.path().join("store");
    let store = certkeep::store::Store::new(&store_dir);
    store.ensure_layout().unwrap();
    let version = |n: &str| {
        let leaf = bed.ca.leaf(&["web.test"], -1, 89);
        let v = store
            .write_version(
                n,
                &certkeep::store::NewVersion {
                    cert: leaf.cert.clone(),
                    chain: bed.ca.pem.clone(),
                    fullchain: format!("{}{}", leaf.cert, bed.ca.pem),
                    privkey: leaf.key,
                },
            )
            .unwrap();
        store.activate(n, v).unwrap();
        v
    };
    assert_eq!(version("web"), 1);
    let live = store.live_dir("web");
    let port = bed.nginx.tls_site(
        "web",
        "web.test",
        &live.join("fullchain.pem"),
        &live.join("privkey.pem"),
        &format!("ssl_protocols TLSv1.2 TLSv1.3; {HSTS_YEAR}"),
    );
    bed.reload_and_wait(&[port]);
    let config = bed.dir.path().join("certkeep.toml");
    std::fs::write(
        &config,
        format!(
            "store = \"{}\"\n\n[probe]\nca_file = \"{}\"\n\n[probe.policy.default]\nhttp_port = {}\n\n[[certificate]]\nname = \"web\"\ndomains = [\"web.test\"]\nwebroot = \"{}\"\nendpoint = \"127.0.0.1:{port}\"\n",
            store_dir.display(),
            bed.ca.path.display(),
            bed.nginx.http_port,
            bed.webroot.display()
        ),
    )
    .unwrap();
    let probe = || {
        let out = certkeep(&config, &["probe", "--json"]);
        let r: Vec<Value> =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        (out.status.code().unwrap(), r)
    };
    let (code, r) = probe();
    assert_eq!(code, 0, "{r:#?}");
    assert_eq!(r[0]["target"], format!("https://web.test:{port}"));
    assert_eq!(check(&r[0], "served")["verdict"], "ok");
    // The root the server sends needlessly is not what expires first.
    assert_eq!(r[0]["certificate"]["chain"][1]["is_root"], true);
    assert_eq!(
        r[0]["certificate"]["earliest_expiry"],
        r[0]["certificate"]["not_after"]
    );

    // Version 2 just went live and nginx has not reloaded yet: a deploy in
    // progress, not reported within the 5-minute grace.
    assert_eq!(version("web"), 2);
    let (code, r) = probe();
    assert_eq!(code, 0, "{r:#?}");
    let served = check(&r[0], "served");
    assert_eq!(served["verdict"], "ok");
    assert!(
        served["reason"]
            .as_str()
            .unwrap()
            .contains("under the 5-minute deploy grace"),
        "{served}"
    );
    // The same, live for 6 minutes: renewed but not deployed.
    let link = live.join("cert.pem");
    let touched = std::process::Command::new("touch")
        .args(["-h", "-d", "6 minutes ago"])
        .arg(&link)
        .status()
        .unwrap();
    assert!(touched.success(), "touch -h {}", link.display());
    let (code, r) = probe();
    assert_eq!(code, 1, "{r:#?}");
    let served = check(&r[0], "served");
    assert_eq!(served["verdict"], "warning");
    assert!(
        served["reason"]
            .as_str()
            .unwrap()
            .contains("renewed but not deployed"),
        "{served}"
    );
    assert_eq!(r[0]["stored"]["version"], 2);

    bed.nginx.reload();
    common::wait_for("nginx to serve version 2", Duration::from_secs(15), || {
        probe().0 == 0
    });
}

#[test]
fn config_file_is_optional_only_with_targets() {
    let out = certkeep(Path::new(NO_CONFIG), &["probe"]);
    assert_exit(&out, 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(NO_CONFIG),
        "{}",
        text(&out)
    );
    let out = certkeep(Path::new(NO_CONFIG), &["probe", "http://a.test"]);
    assert_exit(&out, 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("https://host"),
        "{}",
        text(&out)
    );
    let out = certkeep(
        Path::new(NO_CONFIG),
        &["probe", "--policy", "strict", "a.test"],
    );
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("[probe.policy.strict]"));
}
