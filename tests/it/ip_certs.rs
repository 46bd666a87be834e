//! IP address certificates (RFC 8738) end to end: Pebble validates HTTP-01
//! on the address itself (127.0.0.1 and ::1 on its httpPort, served by
//! nginx), the certificate carries IP address SANs, nginx serves it, and the
//! probe reaches `https://127.0.0.1:PORT` and `https://[::1]:PORT` without
//! SNI, checking the address against the IP SANs.

use crate::common;

use std::path::Path;

use certkeep::config::Settings;
use common::{assert_exit, text, Bed, PebbleOptions};
use serde_json::Value;

/// Whether this machine has ::1 (nginx and Pebble then use it too).
fn have_ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// A plain-HTTP server block on [::1] at the bed's HTTP port, serving the
/// webroot's challenges: Pebble validates ::1 there.
fn serve_challenges_on_ipv6(bed: &Bed) {
    bed.nginx.add_site(
        "acme-v6",
        &format!(
            "server {{\n  listen [::1]:{port};\n  location /.well-known/acme-challenge/ {{ root {root}; default_type text/plain; }}\n}}\n",
            port = bed.nginx.http_port,
            root = bed.webroot.display()
        ),
    );
    bed.nginx.reload();
}

/// A TLS site for lineage `name` on 127.0.0.1:`port` (and [::1]:`port` when
/// `v6`), logging the SNI each request came with.
fn tls_site(bed: &Bed, name: &str, port: u16, v6: bool) -> std::path::PathBuf {
    let live = bed.store.join("live").join(name);
    let log = bed.nginx.prefix.join(format!("logs/{name}-sni.log"));
    let v6_listen = if v6 {
        format!("listen [::1]:{port} ssl;")
    } else {
        String::new()
    };
    bed.nginx.add_site(
        name,
        &format!(
            "log_format sni_{name} 'sni=[$ssl_server_name] host=[$host]';\nserver {{\n  listen 127.0.0.1:{port} ssl;\n  {v6_listen}\n  ssl_certificate {fc};\n  ssl_certificate_key {key};\n  access_log {log} sni_{name};\n  location / {{ return 200 \"ok\\n\"; }}\n}}\n",
            fc = live.join("fullchain.pem").display(),
            key = live.join("privkey.pem").display(),
            log = log.display(),
        ),
    );
    log
}

fn probe(bed: &Bed, targets: &[&str]) -> Vec<Value> {
    let port = bed.nginx.http_port.to_string();
    let ca = bed.pebble.issuer_root.display().to_string();
    let mut args = vec!["probe", "--json", "--ca-file", &ca, "--http-port", &port];
    args.extend(targets);
    let out = common::certkeep(Path::new("/nonexistent/certkeep.toml"), &args);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("JSON: {e}\n{}", text(&out)))
}

fn report<'a>(reports: &'a [Value], target: &str) -> &'a Value {
    reports
        .iter()
        .find(|r| r["target"] == target)
        .unwrap_or_else(|| panic!("no report for {target}: {reports:#?}"))
}

fn check<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {r:#}"))
}

fn listing(bed: &Bed) -> Vec<Value> {
    let out = bed.certkeep(&["certificates", "--json"]);
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).expect("certificates --json is JSON")
}

/// The subjectAltName as openssl prints it (an independent parser).
fn openssl_sans(cert: &Path) -> String {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(cert)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn certificate_for_127_0_0_1_and_ipv6_loopback_is_issued_served_and_probed() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let v6 = have_ipv6_loopback();
    if !v6 && std::env::var_os("CI").is_some() {
        panic!("::1 is not available on this machine");
    }
    let domains: &[&str] = if v6 {
        &["127.0.0.1", "::1"]
    } else {
        &["127.0.0.1"]
    };
    let tls_port = common::free_port();
    let endpoint = if v6 {
        format!("[::1]:{tls_port}")
    } else {
        format!("127.0.0.1:{tls_port}")
    };
    bed.write_config(&bed.cert_block("ip", domains, &format!("endpoint = \"{endpoint}\"")));

    if v6 {
        // nginx does not answer on [::1] yet: the self-check fetches the
        // challenge from the address itself (not from self_check_connect,
        // 127.0.0.1, where nginx does answer) and stops before any order.
        let out = bed.certkeep(&["issue", "ip"]);
        assert_exit(&out, 1);
        let want = format!(
            "self-check failed for ::1: fetched http://[::1]:{}/.well-known/acme-challenge/certkeep-selfcheck-",
            bed.nginx.http_port
        );
        assert!(text(&out).contains(&want), "{}", text(&out));
        assert!(
            text(&out).contains("a server block with `listen [::1]:80;`"),
            "{}",
            text(&out)
        );
        assert!(!bed.store.join("live/ip").exists());
        serve_challenges_on_ipv6(&bed);
    }

    let out = bed.certkeep(&["issue", "ip"]);
    assert_exit(&out, 0);
    let sans = openssl_sans(&bed.store.join("live/ip/cert.pem"));
    assert!(sans.contains("IP Address:127.0.0.1"), "{sans}");
    if v6 {
        assert!(sans.contains("IP Address:0:0:0:0:0:0:0:1"), "{sans}");
    }
    assert!(!sans.contains("DNS:"), "no DNS name SAN: {sans}");
    let l = listing(&bed);
    assert_eq!(l[0]["domains"], serde_json::json!(domains), "{l:?}");
    let human = bed.certkeep(&["certificates"]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains(&domains.join(", ")),
        "{}",
        text(&human)
    );

    // Served by nginx, probed by address.
    let sni_log = tls_site(&bed, "ip", tls_port, v6);
    bed.nginx.reload();
    let v4_target = format!("https://127.0.0.1:{tls_port}");
    let v6_target = format!("https://[::1]:{tls_port}");
    // A name the certificate does not carry: SNI is sent and the hostname
    // check fails (the control for both).
    let name_target = format!("localhost:{tls_port}");
    let mut targets = vec![v4_target.as_str(), name_target.as_str()];
    if v6 {
        targets.push(&v6_target);
    }
    let reports = probe(&bed, &targets);
    let mut ip_targets = vec![v4_target.as_str()];
    if v6 {
        ip_targets.push(&v6_target);
    }
    for t in &ip_targets {
        let r = report(&reports, t);
        assert_eq!(r["certificate"]["hostname_valid"], true, "{t}: {r:#}");
        assert_eq!(r["certificate"]["chain_valid"], true, "{t}: {r:#}");
        assert_eq!(check(r, "hostname")["verdict"], "ok", "{t}: {r:#}");
    }
    let r = report(&reports, &name_target);
    assert_eq!(r["certificate"]["hostname_valid"], false, "{r:#}");
    assert_eq!(check(r, "hostname")["verdict"], "critical", "{r:#}");

    // What nginx saw: no SNI from the address probes, "localhost" from the
    // name probe.
    let log = std::fs::read_to_string(&sni_log).unwrap_or_default();
    let hosts_without_sni: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("sni=[-]") || l.starts_with("sni=[]"))
        .collect();
    assert!(
        hosts_without_sni
            .iter()
            .any(|l| l.contains("host=[127.0.0.1]")),
        "{log}"
    );
    if v6 {
        assert!(
            hosts_without_sni.iter().any(|l| l.contains("host=[[::1]]")),
            "{log}"
        );
    }
    assert!(
        !log.contains("sni=[127.0.0.1]") && !log.contains("sni=[::1]"),
        "{log}"
    );
    assert!(log.contains("sni=[localhost]"), "{log}");

    // A renewal deploys and confirms at the IPv6 (or IPv4) endpoint.
    let old = l[0]["serial"].as_str().unwrap().to_string();
    let out = bed.certkeep(&["renew", "--force", "--cert", "ip"]);
    assert_exit(&out, 0);
    let l = listing(&bed);
    assert_eq!(l[0]["version"], 2, "{l:?}");
    assert_ne!(l[0]["serial"].as_str().unwrap(), old);
    assert_eq!(l[0]["domains"], serde_json::json!(domains));
}

#[test]
fn an_address_the_certificate_does_not_name_fails_the_hostname_check() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    if !have_ipv6_loopback() {
        if std::env::var_os("CI").is_some() {
            panic!("::1 is not available on this machine");
        }
        return;
    }
    bed.write_config(&bed.cert_block("v4", &["127.0.0.1"], "confirm = false"));
    assert_exit(&bed.certkeep(&["issue", "v4"]), 0);
    let port = common::free_port();
    tls_site(&bed, "v4", port, true);
    bed.nginx.reload();
    let v4 = format!("https://127.0.0.1:{port}");
    let v6 = format!("https://[::1]:{port}");
    let reports = probe(&bed, &[&v4, &v6]);
    assert_eq!(report(&reports, &v4)["certificate"]["hostname_valid"], true);
    let r = report(&reports, &v6);
    assert_eq!(r["certificate"]["hostname_valid"], false, "{r:#}");
    assert_eq!(r["certificate"]["chain_valid"], true, "{r:#}");
    let c = check(r, "hostname");
    assert_eq!(c["verdict"], "critical", "{r:#}");
    let detail = c["reason"].as_str().unwrap_or_default();
    assert!(detail.contains("127.0.0.1"), "the SANs are listed: {c:#}");
}

/// A certbot lineage for an address (certbot 5 orders them with
/// --ip-address; this tree is hand-made) is imported, not refused as if it
/// needed DNS-01, and renews over HTTP-01 from Pebble.
#[test]
fn certbot_lineage_with_an_ip_address_is_imported_and_renews() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let etc = bed.dir.path().join("certbot/etc");
    crate::import::fake_lineage(
        &etc,
        "ip",
        &["127.0.0.1", "ip.test"],
        &format!(
            "version = 5.0.0\n\n[renewalparams]\nauthenticator = webroot\nserver = {}\nwebroot_path = {},\nkey_type = ecdsa\n",
            bed.pebble.directory,
            bed.webroot.display()
        ),
    );
    // certbot's version 1, from a CA with a chain (the hand-made tree has none).
    let ca = common::tlsgen::TestCa::new(bed.dir.path());
    let leaf = ca.leaf(&["127.0.0.1", "ip.test"], -1, 60);
    let archive = etc.join("archive/ip");
    for (kind, body) in [
        ("cert", leaf.cert.clone()),
        ("chain", ca.pem.clone()),
        ("fullchain", format!("{}{}", leaf.cert, ca.pem)),
        ("privkey", leaf.key.clone()),
    ] {
        std::fs::write(archive.join(format!("{kind}1.pem")), body).unwrap();
    }
    std::fs::write(&bed.config, bed.base_config()).unwrap();
    let from = etc.display().to_string();
    let out = bed.certkeep(&["import", "certbot", "--from", &from, "--write"]);
    assert_exit(&out, 0);
    let config = Settings::load(&bed.config).unwrap();
    let c = config.certificate("ip").expect("imported");
    assert_eq!(c.domain_names(), ["127.0.0.1", "ip.test"]);
    assert_eq!(c.wanted_profile(&config.acme), None, "Pebble: no profile");

    // The served-certificate check would look at 127.0.0.1:443.
    let written = std::fs::read_to_string(&bed.config).unwrap();
    std::fs::write(
        &bed.config,
        written.replacen("name = \"ip\"\n", "name = \"ip\"\nconfirm = false\n", 1),
    )
    .unwrap();
    let out = bed.certkeep(&["renew", "--force", "--cert", "ip"]);
    assert_exit(&out, 0);
    let sans = openssl_sans(&etc.join("live/ip/cert.pem"));
    assert!(
        sans.contains("IP Address:127.0.0.1") && sans.contains("DNS:ip.test"),
        "{sans}"
    );
    assert!(etc.join("archive/ip/cert2.pem").exists());
}

/// From Let's Encrypt, an IP lineage without the shortlived profile (which
/// Let's Encrypt requires for addresses) is imported with it, and says so.
#[test]
fn lets_encrypt_ip_lineage_is_imported_with_the_shortlived_profile() {
    let d = common::open_tempdir();
    let etc = d.path().join("letsencrypt");
    let params = "[renewalparams]\nauthenticator = webroot\nserver = https://acme-v02.api.letsencrypt.org/directory\nwebroot_path = /var/www/certbot,\nkey_type = ecdsa\n";
    crate::import::fake_lineage(&etc, "none", &["192.0.2.10"], params);
    crate::import::fake_lineage(
        &etc,
        "req",
        &["2001:db8::10"],
        &format!("{params}required_profile = classic\n"),
    );
    crate::import::fake_lineage(
        &etc,
        "short",
        &["192.0.2.11"],
        &format!("{params}preferred_profile = shortlived\n"),
    );
    let cfg = d.path().join("certkeep.toml");
    let from = etc.display().to_string();
    let out = common::certkeep(&cfg, &["import", "certbot", "--from", &from, "--write"]);
    assert_exit(&out, 0);
    let all = text(&out);
    assert!(
        all.contains("none: its certificate names the IP address 192.0.2.10, which Let's Encrypt certifies only under the \"shortlived\" profile; certbot had no profile, certkeep orders \"shortlived\""),
        "{all}"
    );
    assert!(
        all.contains("req: its certificate names the IP address 2001:db8::10")
            && all.contains("certbot had profile \"classic\" (required)"),
        "{all}"
    );
    assert!(!all.contains("short: its certificate"), "{all}");
    let config = Settings::load(&cfg).unwrap();
    assert_eq!(
        common::wanted_profiles(&config, &["none", "req", "short"]),
        [
            "none: shortlived (preferred)",
            "req: shortlived (required)",
            "short: shortlived (preferred)",
        ]
    );
    assert_eq!(
        config.certificate("req").unwrap().domain_names(),
        ["2001:db8::10"]
    );
}
