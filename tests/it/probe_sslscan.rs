//! Protocol verdicts must agree with sslscan (OpenSSL-based) on the same sites.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::tlsgen::TestCa;
use common::{certkeep, open_tempdir, text, Nginx};

/// sslscan's `<protocol type="tls" version="1.2" enabled="1" />` lines.
fn sslscan_protocols(name: &str, port: u16) -> [bool; 4] {
    let out = Command::new("sslscan")
        .args([
            "--no-colour",
            "--xml=-",
            "--no-ciphersuites",
            "--no-compression",
            "--no-fallback",
            "--no-groups",
            "--no-heartbleed",
            "--no-renegotiation",
            "--no-check-certificate",
            &format!("--sni-name={name}"),
            &format!("127.0.0.1:{port}"),
        ])
        .output()
        .expect("run sslscan");
    assert!(
        out.status.success(),
        "sslscan {name}:{port} failed: {}",
        text(&out)
    );
    let xml = String::from_utf8_lossy(&out.stdout);
    ["1.0", "1.1", "1.2", "1.3"].map(|v| {
        let tag = format!("<protocol type=\"tls\" version=\"{v}\" enabled=\"");
        let at = xml
            .find(&tag)
            .unwrap_or_else(|| panic!("sslscan reported nothing for TLS {v}:\n{xml}"));
        match &xml[at + tag.len()..at + tag.len() + 1] {
            "1" => true,
            "0" => false,
            other => panic!("sslscan enabled={other:?} for TLS {v}"),
        }
    })
}

#[test]
fn protocol_verdicts_agree_with_sslscan() {
    require!("nginx", "sslscan");
    let dir = open_tempdir();
    let webroot = dir.path().join("webroot");
    std::fs::create_dir_all(&webroot).unwrap();
    let nginx = Nginx::start(&dir.path().join("nginx"), &webroot);
    let ca = TestCa::new(dir.path());
    // Site, nginx settings, and what it accepts: TLS 1.0, 1.1, 1.2, 1.3.
    let sites = [
        (
            "all.test",
            "ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3; ssl_ciphers DEFAULT:@SECLEVEL=0;",
            [true, true, true, true],
        ),
        (
            "legacy.test",
            "ssl_protocols TLSv1 TLSv1.1; ssl_ciphers DEFAULT:@SECLEVEL=0;",
            [true, true, false, false],
        ),
        (
            "tls10.test",
            "ssl_protocols TLSv1 TLSv1.2; ssl_ciphers DEFAULT:@SECLEVEL=0;",
            [true, false, true, false],
        ),
        (
            "modern.test",
            "ssl_protocols TLSv1.2 TLSv1.3;",
            [false, false, true, true],
        ),
        (
            "tls12.test",
            "ssl_protocols TLSv1.2;",
            [false, false, true, false],
        ),
        (
            "only13.test",
            "ssl_protocols TLSv1.3;",
            [false, false, false, true],
        ),
    ];
    let mut ports = Vec::new();
    for (name, extra, _) in sites {
        let (crt, key) = ca.write_leaf(dir.path(), name, &[name], (-1, 89), false);
        ports.push(nginx.tls_site(name, name, &crt, &key, extra));
    }
    nginx.reload();
    for p in &ports {
        common::wait_for("the TLS site", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok()
        });
    }
    let ca_path = ca.path.display().to_string();
    let mut args = vec![
        "probe",
        "--json",
        "--http-port",
        "0",
        "--connect",
        "127.0.0.1",
        "--ca-file",
        &ca_path,
    ];
    let targets: Vec<String> = sites
        .iter()
        .zip(&ports)
        .map(|((name, _, _), port)| format!("{name}:{port}"))
        .collect();
    args.extend(targets.iter().map(String::as_str));
    let out = certkeep(Path::new("/nonexistent/certkeep.toml"), &args);
    let reports: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(reports.len(), sites.len(), "{}", text(&out));
    let reports = common::in_target_order(reports, &targets);
    // One report per site, in order: zip would silently skip the rest.
    assert_eq!(reports.len(), sites.len(), "{}", text(&out));
    let mut compared = 0;
    for (((name, extra, expected), port), r) in sites.iter().zip(&ports).zip(&reports) {
        assert_eq!(
            (r["host"].as_str(), r["port"].as_u64()),
            (Some(*name), Some(u64::from(*port))),
            "the reports come in the order of the targets: {r:#}"
        );
        let ours = ["tls1.0", "tls1.1", "tls1.2", "tls1.3"].map(|k| {
            r["protocols"][k]
                .as_bool()
                .unwrap_or_else(|| panic!("{name} {k}: {r:#}"))
        });
        let theirs = sslscan_protocols(name, *port);
        assert_eq!(
            theirs, *expected,
            "{name} ({extra}): sslscan vs nginx's settings"
        );
        assert_eq!(ours, theirs, "{name} ({extra}): certkeep vs sslscan\n{r:#}");
        compared += 1;
    }
    assert_eq!(compared, sites.len());
}
