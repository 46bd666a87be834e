//! Renewal against a real Pebble (with ARI) and nginx on loopback.

use crate::common;

use common::{assert_exit, text, Bed, PebbleOptions};

fn serial_of(bed: &Bed, name: &str) -> String {
    let out = bed.certkeep(&["certificates", "--json"]);
    assert_exit(&out, 0);
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.iter()
        .find(|c| c["name"] == name)
        .map(|c| c["serial"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("{name} not listed"))
}

fn live_version(bed: &Bed, name: &str) -> String {
    std::fs::read_link(bed.store.join(format!("live/{name}/cert.pem")))
        .unwrap()
        .display()
        .to_string()
}

/// Certificates `names` issued, each served by its own nginx TLS site; the
/// config (with `head` after the bed's base) confirms each on its site.
/// Returns the `[[certificate]]` blocks.
fn issued_and_served(bed: &Bed, names: &[&str], head: &str) -> String {
    common::lineage::issue_and_serve(bed, names, &format!("{}{head}", bed.base_config()), "")
}

/// The serial nginx serves for certificate `name` (its configured endpoint).
fn served_serial(bed: &Bed, name: &str) -> String {
    common::lineage::served_serial(bed, name).unwrap()
}

#[test]
fn nothing_due_creates_no_order() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    bed.write_config(&bed.cert_block("calm", &["calm.test"], "confirm = false"));
    assert_exit(&bed.certkeep(&["issue", "calm"]), 0);
    let orders = bed.pebble.orders_created();
    let out = bed.certkeep(&["renew"]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("not due: calm (renewal from"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("by ARI"),
        "Pebble offers ARI: {}",
        text(&out)
    );
    assert_eq!(bed.pebble.orders_created(), orders, "an order was created");
    assert!(live_version(&bed, "calm").ends_with("cert1.pem"));
}

#[test]
fn forced_renewal_of_three_deploys_with_one_reload() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    issued_and_served(&bed, &["a", "b", "c"], "");
    let before: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| served_serial(&bed, n))
        .collect();
    let reloads = bed.nginx.reload_count();
    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 0);
    assert_eq!(
        bed.nginx.reload_count(),
        reloads + 1,
        "exactly one reload: {}",
        text(&out)
    );
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        assert!(live_version(&bed, n).ends_with(&format!("archive/{n}/cert2.pem")));
        let stored = serial_of(&bed, n);
        assert_ne!(stored, before[i]);
        assert_eq!(served_serial(&bed, n), stored, "nginx serves the new {n}");
    }
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 renewed, 0 not due, 0 failed"),
        "{}",
        text(&out)
    );
}

#[test]
fn revoked_certificate_is_renewed_by_ari_alone_and_retry_after_is_kept() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    issued_and_served(&bed, &["keep", "revoked"], "");
    // First run records the windows (nothing due).
    let out = bed.certkeep(&["renew"]);
    assert_exit(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 renewed, 2 not due"),
        "{}",
        text(&out)
    );
    let ari_path = bed.store.join("state/ari.json");
    let ari_before: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ari_path).unwrap()).unwrap();

    assert_exit(&bed.certkeep(&["revoke", "revoked", "--reason", "1"]), 0);
    // The stored window for "revoked" is still fresh (Retry-After): drop it,
    // as if Retry-After had passed, so the CA is asked again.
    let mut ari = ari_before.clone();
    ari.as_object_mut().unwrap().remove("revoked");
    std::fs::write(&ari_path, serde_json::to_vec(&ari).unwrap()).unwrap();
    // And forget that certkeep revoked it, so the CA's window alone decides.
    std::fs::remove_file(bed.store.join("state/lineages.json")).unwrap();

    let keep_serial = serial_of(&bed, "keep");
    let out = bed.certkeep(&["renew", "-v"]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("renewed: revoked (version 2"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("the CA's renewal window (ARI) opened"),
        "renewed because of the ARI window: {}",
        text(&out)
    );
    assert!(stdout.contains("not due: keep"), "{}", text(&out));
    assert_eq!(serial_of(&bed, "keep"), keep_serial);
    assert!(live_version(&bed, "keep").ends_with("cert1.pem"));
    assert_eq!(served_serial(&bed, "revoked"), serial_of(&bed, "revoked"));

    // Retry-After: the window of "keep" was not asked for again.
    let ari_after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ari_path).unwrap()).unwrap();
    assert_eq!(ari_after["keep"], ari_before["keep"]);
    assert!(
        ari_after.get("revoked").is_none(),
        "the renewed lineage's old window is dropped"
    );
}

#[test]
fn dry_run_changes_nothing_and_does_not_reload() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let body = format!(
        "[hooks]\ndeploy_hook = [\"/bin/sh\", \"-c\", \"touch {}/deployed\"]\n",
        bed.dir.path().display()
    );
    issued_and_served(&bed, &["dry"], &body);
    bed.certkeep(&["renew"]); // records ARI state, so the store is complete
    let before = common::lineage::hash_tree(&bed.store);
    let reloads = bed.nginx.reload_count();
    let orders = bed.pebble.orders_created();
    let out = bed.certkeep(&["renew", "--dry-run"]);
    assert_exit(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("would renew: dry"),
        "{}",
        text(&out)
    );
    assert_eq!(
        bed.pebble.orders_created(),
        orders + 1,
        "the real challenge flow ran"
    );
    assert_eq!(
        common::lineage::hash_tree(&bed.store),
        before,
        "the store changed"
    );
    assert_eq!(bed.nginx.reload_count(), reloads);
    assert!(
        !bed.dir.path().join("deployed").exists(),
        "deploy hook ran in a dry run"
    );
    let left: Vec<_> = std::fs::read_dir(bed.webroot.join(".well-known/acme-challenge"))
        .unwrap()
        .collect();
    assert!(left.is_empty());
    // --run-deploy-hooks runs them.
    assert_exit(
        &bed.certkeep(&["renew", "--dry-run", "--run-deploy-hooks"]),
        0,
    );
    assert!(bed.dir.path().join("deployed").exists());
}

#[test]
fn broken_nginx_config_rolls_back_without_reload() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    issued_and_served(&bed, &["safe"], "");
    let served = served_serial(&bed, "safe");
    bed.nginx
        .add_site("broken", "server { this is not nginx syntax }\n");
    let reloads = bed.nginx.reload_count();
    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nginx configuration test failed"),
        "{}",
        text(&out)
    );
    assert!(
        err.contains("unknown directive") || err.contains("broken.conf"),
        "nginx's own output is shown: {err}"
    );
    assert!(
        live_version(&bed, "safe").ends_with("cert1.pem"),
        "live links back on version 1"
    );
    assert!(bed.store.join("archive/safe/cert2.pem").exists());
    assert_eq!(bed.nginx.reload_count(), reloads, "nginx was reloaded");
    assert_eq!(served_serial(&bed, "safe"), served);
    // Once nginx is fixed, the next renewal goes through (the rolled-back
    // certificate was already replaced at the CA) and continues at version 3.
    std::fs::remove_file(bed.nginx.sites.join("broken.conf")).unwrap();
    let out = bed.certkeep(&["renew", "--force", "-v"]);
    assert_exit(&out, 0);
    assert!(live_version(&bed, "safe").ends_with("cert3.pem"));
    assert_eq!(served_serial(&bed, "safe"), serial_of(&bed, "safe"));
}

#[test]
fn hooks_get_certbot_environment_and_failed_domains() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let d = bed.dir.path().display().to_string();
    let hooks = format!(
        "[hooks]\npre_hook = [\"/bin/sh\", \"-c\", \"echo pre >> {d}/pre.log\"]\n\
         deploy_hook = [\"/bin/sh\", \"-c\", \"echo \\\"$RENEWED_LINEAGE|$RENEWED_DOMAINS\\\" >> {d}/deploy.log\"]\n\
         post_hook = [\"/bin/sh\", \"-c\", \"echo \\\"$RENEWED_DOMAINS|$FAILED_DOMAINS\\\" >> {d}/post.log\"]\n"
    );
    let body = issued_and_served(&bed, &["good"], &hooks);
    // A second certificate whose webroot nginx does not serve: its self-check fails.
    let elsewhere = bed.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let bad = format!(
        "\n[[certificate]]\nname = \"bad\"\ndomains = [\"bad.test\", \"www.bad.test\"]\nwebroot = \"{}\"\nconfirm = false\n",
        elsewhere.display()
    );
    bed.write_config(&format!("{hooks}{body}{bad}"));
    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("FAILED: bad: self-check failed for bad.test"),
        "{}",
        text(&out)
    );
    let read = |f: &str| std::fs::read_to_string(bed.dir.path().join(f)).unwrap_or_default();
    assert_eq!(read("pre.log"), "pre\n", "pre hook once");
    assert_eq!(
        read("deploy.log"),
        format!("{}|good.test\n", bed.store.join("live/good").display())
    );
    assert_eq!(read("post.log"), "good.test|bad.test www.bad.test\n");
}

#[test]
fn concurrent_runs_wait_and_renew_once() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    bed.write_config(&bed.cert_block("race", &["race.test"], "confirm = false"));
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("--config")
            .arg(&bed.config)
            .args(["renew", "-v"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_exit(&a, 0);
    assert_exit(&b, 0);
    let both = format!("{}{}", text(&a), text(&b));
    assert_eq!(both.matches("renewed: race").count(), 1, "{both}");
    assert_eq!(both.matches("not due: race").count(), 1, "{both}");
    assert!(
        both.contains("waiting"),
        "the second run said it waits: {both}"
    );
    assert_eq!(bed.pebble.orders_created(), 1);
}

#[test]
fn renews_with_half_of_nonces_rejected() {
    let Some(bed) = Bed::start(PebbleOptions {
        nonce_reject: 50,
        authz_reuse: 0,
        ..Default::default()
    }) else {
        return;
    };
    issued_and_served(&bed, &["n1", "n2"], "");
    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 0);
    for n in ["n1", "n2"] {
        assert_eq!(served_serial(&bed, n), serial_of(&bed, n));
    }
}

/// `[renewal] ari = false`: the CA's renewal window is not asked for, so a
/// revoked certificate whose window has opened (Pebble opens it at the
/// revocation) is not renewed by it; the lifetime rule decides (not due).
#[test]
fn ari_off_leaves_the_cas_window_out() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let head = bed
        .base_config()
        .replace("[renewal]\n", "[renewal]\nari = false\n");
    assert!(head.contains("ari = false"), "{head}");
    common::lineage::issue_and_serve(&bed, &["revoked"], &head, "");
    assert_exit(&bed.certkeep(&["revoke", "revoked", "--reason", "1"]), 0);
    // Forget that certkeep revoked it, so only the CA's window could say due.
    std::fs::remove_file(bed.store.join("state/lineages.json")).unwrap();
    let serial = serial_of(&bed, "revoked");
    let orders = bed.pebble.orders_created();
    let out = bed.certkeep(&["renew", "-v"]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0 renewed, 1 not due"), "{}", text(&out));
    assert!(stdout.contains("not due: revoked"), "{}", text(&out));
    assert_eq!(bed.pebble.orders_created(), orders);
    assert_eq!(serial_of(&bed, "revoked"), serial);
    let ari = std::fs::read_to_string(bed.store.join("state/ari.json")).unwrap_or_default();
    assert!(!ari.contains("revoked"), "no window was asked for: {ari}");
}
