//! Issuance end to end against a real Pebble and nginx on loopback.

use crate::common;

use std::os::unix::fs::PermissionsExt;

use common::{assert_exit, text, Bed, PebbleOptions};

fn listing(bed: &Bed) -> Vec<serde_json::Value> {
    let out = bed.certkeep(&["certificates", "--json"]);
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).expect("certificates --json is JSON")
}

#[test]
fn issues_single_and_san_certificates_that_verify() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    bed.write_config(&format!(
        "{}{}",
        bed.cert_block("one", &["one.test"], ""),
        bed.cert_block(
            "multi",
            &["multi.test", "www.multi.test", "api.multi.test"],
            "key_type = \"ecdsa-p384\""
        )
    ));
    let out = bed.certkeep(&["issue", "--all"]);
    assert_exit(&out, 0);
    let l = listing(&bed);
    assert_eq!(l.len(), 2, "{l:?}");
    let multi = l
        .iter()
        .find(|c| c["name"] == "multi")
        .expect("multi listed");
    assert_eq!(
        multi["domains"],
        serde_json::json!(["multi.test", "www.multi.test", "api.multi.test"])
    );
    assert_eq!(multi["key_type"], "ecdsa-p384");
    assert!(multi["days_left"].as_i64().unwrap() > 300);
    for c in &l {
        for key in [
            "name",
            "domains",
            "not_after",
            "days_left",
            "issuer",
            "key_type",
            "serial",
            "fullchain_path",
            "privkey_path",
        ] {
            assert!(!c[key].is_null(), "{key} missing in {c}");
        }
        let serial = c["serial"].as_str().unwrap();
        assert!(serial
            .chars()
            .all(|ch| ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase()));
        time::OffsetDateTime::parse(
            c["not_after"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("not_after is RFC 3339");
        // The chain verifies against Pebble's issuing root.
        let v = std::process::Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&bed.pebble.issuer_root)
            .arg("-untrusted")
            .arg(
                bed.store
                    .join(format!("live/{}/chain.pem", c["name"].as_str().unwrap())),
            )
            .arg(
                bed.store
                    .join(format!("live/{}/cert.pem", c["name"].as_str().unwrap())),
            )
            .output()
            .expect("openssl");
        assert!(
            v.status.success(),
            "chain does not verify: {}",
            String::from_utf8_lossy(&v.stdout)
        );
    }
    // Challenge files are gone afterwards.
    let left: Vec<_> = std::fs::read_dir(bed.webroot.join(".well-known/acme-challenge"))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "challenge files left: {left:?}");
}

#[test]
fn rsa_key_and_layout_permissions() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    bed.write_config(&bed.cert_block("rsa", &["rsa.test"], "key_type = \"rsa2048\""));
    assert_exit(&bed.certkeep(&["issue", "rsa"]), 0);
    let l = listing(&bed);
    assert_eq!(l[0]["key_type"], "rsa2048");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&bed.store.join("archive/rsa/privkey1.pem")), 0o600);
    assert_eq!(mode(&bed.store.join("archive/rsa/fullchain1.pem")), 0o644);
    for d in ["archive", "live", "accounts"] {
        assert_eq!(mode(&bed.store.join(d)), 0o700, "{d}");
    }
    for kind in ["cert", "chain", "fullchain", "privkey"] {
        let link = bed.store.join(format!("live/rsa/{kind}.pem"));
        let target = std::fs::read_link(&link).unwrap();
        assert_eq!(
            target,
            std::path::PathBuf::from(format!("../../archive/rsa/{kind}1.pem"))
        );
    }
    let account = walk(&bed.store.join("accounts"))
        .into_iter()
        .find(|p| p.ends_with("account.json"))
        .expect("account stored");
    assert_eq!(mode(&account), 0o600);
}

#[test]
fn account_is_reused_and_second_issue_makes_version_two() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    bed.write_config(&bed.cert_block("web", &["web.test"], ""));
    assert_exit(&bed.certkeep(&["issue", "web"]), 0);
    let accounts_before = walk(&bed.store.join("accounts"));
    let account_json = std::fs::read(
        accounts_before
            .iter()
            .find(|p| p.ends_with("account.json"))
            .unwrap(),
    )
    .unwrap();
    let out = bed.certkeep(&["issue", "web", "-vv"]);
    assert_exit(&out, 0);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("registered a new ACME account"),
        "{}",
        text(&out)
    );
    let accounts_after = walk(&bed.store.join("accounts"));
    assert_eq!(accounts_before, accounts_after);
    assert_eq!(
        std::fs::read(
            accounts_after
                .iter()
                .find(|p| p.ends_with("account.json"))
                .unwrap()
        )
        .unwrap(),
        account_json
    );
    let l = listing(&bed);
    assert_eq!(l[0]["version"], 2);
    assert!(bed.store.join("archive/web/cert1.pem").exists());
}

#[test]
fn survives_half_of_nonces_rejected() {
    let Some(bed) = Bed::start(PebbleOptions {
        nonce_reject: 50,
        authz_reuse: 0,
        ..Default::default()
    }) else {
        return;
    };
    bed.write_config(&bed.cert_block("flaky", &["flaky.test", "www.flaky.test"], ""));
    let out = bed.certkeep(&["issue", "flaky"]);
    assert_exit(&out, 0);
    assert_eq!(listing(&bed).len(), 1);
}

#[test]
fn missing_nginx_location_fails_self_check_without_an_order() {
    let Some(mut bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    // Replace nginx with one that lacks the challenge location.
    let prefix = bed.dir.path().join("nginx-bare");
    bed.nginx = common::Nginx::start_with(&prefix, &bed.webroot, false);
    bed.write_config(&bed.cert_block("bare", &["bare.test"], ""));
    let out = bed.certkeep(&["issue", "bare"]);
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("self-check failed for bare.test"),
        "{}",
        text(&out)
    );
    assert!(
        err.contains("/.well-known/acme-challenge/certkeep-selfcheck-"),
        "{err}"
    );
    assert!(err.contains("301") || err.contains("redirect"), "{err}");
    assert!(
        err.contains("location /.well-known/acme-challenge/"),
        "{err}"
    );
    assert_eq!(bed.pebble.orders_created(), 0, "an order was created");
    assert!(!bed.store.join("live/bare").exists());
}

#[test]
fn malformed_config_reports_line_and_column() {
    let d = common::open_tempdir();
    let cfg = d.path().join("bad.toml");
    std::fs::write(&cfg, "store = \"/tmp/x\"\n\n[[certificate]]\nname = \"a\"\ndomains = [\"ok.test\", \"bad domain\"]\nwebroot = \"/var/www\"\n").unwrap();
    let out = common::certkeep(&cfg, &["check-config"]);
    assert_exit(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:5:"), "{err}");
    assert!(err.contains("not a valid DNS name"), "{err}");

    std::fs::write(
        &cfg,
        "[[certificate]]\nname = \"a\"\ndomain = [\"x.test\"]\n",
    )
    .unwrap();
    let out = common::certkeep(&cfg, &["check-config"]);
    assert_exit(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:3:1"), "{err}");
    assert!(err.contains("unknown field `domain`"), "{err}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
