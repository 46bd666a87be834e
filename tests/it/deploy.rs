//! Deployed on disk but not served: a failed reload or an unconfirmed serial
//! rolls live/ back, stays a failure (exit 1, alert) on every later plain
//! `renew`, and is deployed again without a new order once nginx is fixed.
//! Also: `revoke` then `renew`, and `key_type` changed under `reuse_key`.
//! Real Pebble and nginx; what nginx serves is read with `openssl s_client`.

use std::process::{Command, Stdio};

use crate::common;
use common::http_receiver::Receiver;
use common::{assert_exit, text, Bed, PebbleOptions};

/// The serial `127.0.0.1:port` serves for `sni`, by `openssl s_client`
/// (lowercase hex, no leading zeros).
fn openssl_served(port: u16, sni: &str) -> String {
    let s_client = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            sni,
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("openssl s_client");
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl x509");
    use std::io::Write;
    x509.stdin
        .take()
        .unwrap()
        .write_all(&s_client.stdout)
        .unwrap();
    let out = x509.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    normal(&String::from_utf8_lossy(&out.stdout))
}

/// The serial of a PEM file, by `openssl x509`.
fn openssl_file_serial(path: &std::path::Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(path)
        .output()
        .expect("openssl x509");
    assert!(out.status.success(), "{}", text(&out));
    normal(&String::from_utf8_lossy(&out.stdout))
}

fn normal(s: &str) -> String {
    s.trim()
        .trim_start_matches("serial=")
        .trim_start_matches('0')
        .to_ascii_lowercase()
}

/// The port of `endpoint = "127.0.0.1:PORT"` in the block of `name`.
fn port_of(body: &str, name: &str) -> u16 {
    let block = body
        .split("[[certificate]]")
        .find(|b| b.contains(&format!("name = \"{name}\"")))
        .expect("block");
    let at = block.find("127.0.0.1:").expect("endpoint") + "127.0.0.1:".len();
    block[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

fn live_version(bed: &Bed, name: &str) -> String {
    std::fs::read_link(bed.store.join(format!("live/{name}/cert.pem")))
        .unwrap()
        .display()
        .to_string()
}

/// The bed's base config with another reload command.
fn with_reload(bed: &Bed, reload: &str) -> String {
    let real = format!("reload_command = {:?}", bed.nginx.reload_command());
    let base = bed.base_config();
    assert!(base.contains(&real));
    base.replace(&real, &format!("reload_command = {reload}"))
}

fn webhook(receiver: &Receiver) -> String {
    format!(
        "\n[alert]\nresolve_after_checks = 1\n\n[[alert.channel]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"{}\"\n",
        receiver.url("/hook")
    )
}

fn wait_messages(
    rt: &tokio::runtime::Runtime,
    receiver: &Receiver,
    n: usize,
) -> Vec<serde_json::Value> {
    rt.block_on(async {
        for _ in 0..100 {
            if receiver.requests().len() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    receiver.requests().iter().map(|r| r.json()).collect()
}

#[test]
fn failed_reload_rolls_back_stays_a_failure_and_is_deployed_later_without_an_order() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(Receiver::start(vec![]));
    let hook = webhook(&receiver);
    let body = common::lineage::issue_and_serve(&bed, &["shop"], &bed.base_config(), "");
    let port = port_of(&body, "shop");
    let v1 = openssl_file_serial(&bed.store.join("archive/shop/cert1.pem"));
    assert_eq!(openssl_served(port, "shop.test"), v1);

    // The reload command fails: nginx keeps serving version 1.
    let broken = with_reload(
        &bed,
        r#"["/bin/sh", "-c", "echo reload refused >&2; exit 1"]"#,
    );
    std::fs::write(&bed.config, format!("{broken}{hook}{body}")).unwrap();
    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nginx reload failed"), "{}", text(&out));
    assert!(err.contains("reload refused"), "{}", text(&out));
    assert!(
        err.contains("moved back to version 1"),
        "the rollback is reported: {}",
        text(&out)
    );
    let v2 = openssl_file_serial(&bed.store.join("archive/shop/cert2.pem"));
    assert_ne!(v1, v2);
    assert!(
        live_version(&bed, "shop").ends_with("cert1.pem"),
        "live/ rolled back"
    );
    assert_eq!(
        openssl_file_serial(&bed.store.join("live/shop/cert.pem")),
        openssl_served(port, "shop.test"),
        "live/ is what nginx serves"
    );
    let orders = bed.pebble.orders_created();
    let firing = wait_messages(&rt, &receiver, 1);
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(
        firing[0]["alerts"][0]["labels"]["key"],
        "renew:shop:renewal"
    );
    let alert = firing[0]["alerts"][0].to_string();
    assert!(
        alert.contains("expires"),
        "the expiry of the certificate left in place: {alert}"
    );

    // A later plain run, reload still broken: still a failure, no new order.
    let out = bed.certkeep(&["renew", "--json"]);
    assert_exit(&out, 1);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["failed"][0]["name"], "shop", "{}", text(&out));
    assert_eq!(json["failed"][0]["pending_version"], 2, "{}", text(&out));
    assert!(
        json["failed"][0]["expires"].as_str().is_some(),
        "{}",
        text(&out)
    );
    assert_eq!(json["renewed"], serde_json::json!([]), "{}", text(&out));
    assert_eq!(
        bed.pebble.orders_created(),
        orders,
        "a new order was created"
    );
    assert!(live_version(&bed, "shop").ends_with("cert1.pem"));
    assert_eq!(openssl_served(port, "shop.test"), v1);
    assert_eq!(
        receiver.requests().len(),
        1,
        "still firing, not repeated yet"
    );

    // Fixed: the next plain run deploys version 2, without an order.
    bed.write_config(&format!("{hook}{body}"));
    let out = bed.certkeep(&["renew"]);
    assert_exit(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("renewed: shop (version 2"),
        "{}",
        text(&out)
    );
    assert_eq!(
        bed.pebble.orders_created(),
        orders,
        "a new order was created"
    );
    assert!(live_version(&bed, "shop").ends_with("cert2.pem"));
    assert_eq!(openssl_served(port, "shop.test"), v2);
    let all = wait_messages(&rt, &receiver, 2);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1]["status"], "resolved");

    // And it is done: the run after that has nothing to do.
    let out = bed.certkeep(&["renew"]);
    assert_exit(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not due: shop"),
        "{}",
        text(&out)
    );
    assert_eq!(bed.pebble.orders_created(), orders);
}

#[test]
fn unconfirmed_serial_rolls_back_to_the_served_certificate() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let body = common::lineage::issue_and_serve(&bed, &["real", "decoy"], &bed.base_config(), "");
    let (real_port, decoy_port) = (port_of(&body, "real"), port_of(&body, "decoy"));
    let v1 = openssl_file_serial(&bed.store.join("archive/real/cert1.pem"));
    assert_eq!(openssl_served(real_port, "real.test"), v1);
    // Confirmation looks at the wrong site: the new serial is never seen there.
    let wrong = bed.cert_block(
        "real",
        &["real.test"],
        &format!("endpoint = \"127.0.0.1:{decoy_port}\"\nendpoint_sni = \"decoy.test\""),
    );
    bed.write_config(&wrong);
    let reloads = bed.nginx.reload_count();
    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expected the new serial"), "{}", text(&out));
    assert!(err.contains("moved back to version 1"), "{}", text(&out));
    assert!(live_version(&bed, "real").ends_with("cert1.pem"));
    // `nginx -s reload` only signals the master: give it a moment (bounded)
    // to log the second reload and roll its workers over.
    common::wait_for(
        "the reload back onto version 1",
        std::time::Duration::from_secs(10),
        || bed.nginx.reload_count() >= reloads + 2,
    );
    assert_eq!(
        bed.nginx.reload_count(),
        reloads + 2,
        "the reload, then the reload back onto version 1: {}",
        text(&out)
    );
    // nginx serves version 1 again, which is what live/ points at.
    common::wait_for(
        "nginx to serve version 1 again",
        std::time::Duration::from_secs(10),
        || openssl_served(real_port, "real.test") == v1,
    );
    assert_eq!(
        openssl_file_serial(&bed.store.join("live/real/cert.pem")),
        v1
    );

    // The endpoint fixed: the stored version 2 is deployed, no new order.
    let orders = bed.pebble.orders_created();
    let right = bed.cert_block(
        "real",
        &["real.test"],
        &format!("endpoint = \"127.0.0.1:{real_port}\""),
    );
    bed.write_config(&right);
    let out = bed.certkeep(&["renew"]);
    assert_exit(&out, 0);
    assert_eq!(bed.pebble.orders_created(), orders);
    assert!(live_version(&bed, "real").ends_with("cert2.pem"));
    assert_eq!(
        openssl_served(real_port, "real.test"),
        openssl_file_serial(&bed.store.join("archive/real/cert2.pem"))
    );
}

#[test]
fn revoked_certificate_is_replaced_by_the_next_renew_whatever_window_is_cached() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let body = common::lineage::issue_and_serve(&bed, &["gone"], &bed.base_config(), "");
    let port = port_of(&body, "gone");
    // A first run caches the CA's window (not due, not asked again before
    // Retry-After).
    let out = bed.certkeep(&["renew"]);
    assert_exit(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not due: gone"),
        "{}",
        text(&out)
    );
    let ari = std::fs::read(bed.store.join("state/ari.json")).unwrap();
    let revoked = openssl_file_serial(&bed.store.join("live/gone/cert.pem"));
    assert_exit(&bed.certkeep(&["revoke", "gone", "--reason", "4"]), 0);
    assert_eq!(
        std::fs::read(bed.store.join("state/ari.json")).unwrap(),
        ari,
        "the cached window is still the one from before the revocation"
    );
    let out = bed.certkeep(&["renew"]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("renewed: gone (version 2"),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("revoked"), "{}", text(&out));
    let served = openssl_served(port, "gone.test");
    assert_ne!(served, revoked);
    assert_eq!(
        served,
        openssl_file_serial(&bed.store.join("live/gone/cert.pem"))
    );
    // The replacement is not renewed again.
    let out = bed.certkeep(&["renew"]);
    assert_exit(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not due: gone"),
        "{}",
        text(&out)
    );
}

/// `openssl pkey -text` of a private key file.
fn pkey_text(path: &std::path::Path) -> String {
    let out = Command::new("openssl")
        .args(["pkey", "-noout", "-text", "-in"])
        .arg(path)
        .output()
        .expect("openssl pkey");
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn changed_key_type_makes_a_new_key_even_with_reuse_key() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let block = |kt: &str| {
        bed.cert_block(
            "kt",
            &["kt.test"],
            &format!("confirm = false\nreuse_key = true\nkey_type = \"{kt}\""),
        )
    };
    bed.write_config(&block("ecdsa-p256"));
    assert_exit(&bed.certkeep(&["issue", "kt"]), 0);
    let first = pkey_text(&bed.store.join("archive/kt/privkey1.pem"));
    assert!(first.contains("prime256v1"), "{first}");
    // Same type: the key is reused.
    assert_exit(&bed.certkeep(&["renew", "--force"]), 0);
    assert_eq!(pkey_text(&bed.store.join("archive/kt/privkey2.pem")), first);
    // Another type: a new key of that type, said so.
    bed.write_config(&block("rsa2048"));
    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("key_type is now rsa2048"),
        "{}",
        text(&out)
    );
    let third = pkey_text(&bed.store.join("live/kt/privkey.pem"));
    assert!(third.contains("Private-Key: (2048 bit"), "{third}");
    assert!(third.contains("modulus"), "an RSA key: {third}");
    let cert = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(bed.store.join("live/kt/cert.pem"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&cert.stdout).contains("rsaEncryption"),
        "{}",
        text(&cert)
    );
}
