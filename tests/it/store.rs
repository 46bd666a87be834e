//! One damaged lineage among healthy ones: `certificates` lists all and marks
//! it, `renew --force` renews the others and fails (exit 1, alert) naming it,
//! and `certkeep issue <name>` repairs it (real Pebble, nginx, HTTP receiver).

use std::path::Path;
use std::process::Command;

use crate::common;
use crate::common::http_receiver::Receiver;

use common::{assert_exit, text, Bed, PebbleOptions};

/// The serial of `live/<name>/cert.pem`, read by openssl.
fn openssl_serial(store: &Path, name: &str) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(store.join(format!("live/{name}/cert.pem")))
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl on {name}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}

fn listing(bed: &Bed) -> (std::process::Output, Vec<serde_json::Value>) {
    let out = bed.certkeep(&["certificates", "--json"]);
    let v: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("JSON: {e}\n{}", text(&out)));
    (out, v)
}

/// (name of the damage, what it does to lineage "b", the check it trips).
type Damage = (&'static str, fn(&Path), &'static str);

fn damages() -> Vec<Damage> {
    vec![
        (
            "empty live directory",
            |s| {
                let live = s.join("live/b");
                std::fs::remove_dir_all(&live).unwrap();
                std::fs::create_dir(&live).unwrap();
            },
            "link-missing",
        ),
        (
            "cert.pem is a regular file",
            |s| {
                let link = s.join("live/b/cert.pem");
                let pem = std::fs::read(&link).unwrap();
                std::fs::remove_file(&link).unwrap();
                std::fs::write(&link, pem).unwrap();
            },
            "not-a-link",
        ),
        (
            "archive file of the current version missing",
            |s| {
                let target = std::fs::canonicalize(s.join("live/b/chain.pem")).unwrap();
                std::fs::remove_file(target).unwrap();
            },
            "file-missing",
        ),
        (
            "key of another certificate",
            |s| {
                let target = std::fs::canonicalize(s.join("live/b/privkey.pem")).unwrap();
                std::fs::copy(s.join("live/a/privkey.pem"), target).unwrap();
            },
            "key-mismatch",
        ),
    ]
}

#[test]
fn damaged_lineage_is_listed_skipped_and_repaired_while_others_renew() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(Receiver::start(vec![]));
    let alert = format!(
        "\n[alert]\nresolve_after_checks = 1\n\n[[alert.channel]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"{}\"\n",
        receiver.url("/hook")
    );
    // a and c are served by nginx; b is not (nginx refuses a config whose
    // certificate files are broken, which would stop every reload).
    let head = format!("{}{alert}", bed.base_config());
    let served = common::lineage::issue_and_serve(&bed, &["a", "c"], &head, "");
    let config = format!(
        "{head}{served}{}",
        bed.cert_block("b", &["b.test"], "confirm = false")
    );
    std::fs::write(&bed.config, &config).unwrap();
    assert_exit(&bed.certkeep(&["issue", "b"]), 0);
    let (out, all) = listing(&bed);
    assert_exit(&out, 0);
    assert!(all.iter().all(|l| l["status"] == "ok"), "{all:?}");

    for (what, damage, check) in damages() {
        damage(&bed.store);

        // Listed: all three, b marked with the check and the repair command.
        let (out, all) = listing(&bed);
        assert_exit(&out, 1);
        let names: Vec<&str> = all.iter().map(|l| l["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["a", "b", "c"], "{what}");
        for l in &all {
            let want = if l["name"] == "b" { "damaged" } else { "ok" };
            assert_eq!(l["status"], want, "{what}: {l}");
        }
        let b = &all[1];
        assert!(
            b["problems"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["check"] == check),
            "{what}: {b}"
        );
        assert_eq!(b["repair"], "certkeep issue b", "{what}");
        let plain = bed.certkeep(&["certificates"]);
        assert_exit(&plain, 1);
        let stdout = String::from_utf8_lossy(&plain.stdout);
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("b (version ") && l.ends_with(", DAMAGED)")),
            "{what}: {}",
            text(&plain)
        );
        assert!(
            stdout.contains("repair:    certkeep issue b"),
            "{}",
            text(&plain)
        );

        // Renewed: a and c get new serials; b is a failure naming itself.
        let before_a = openssl_serial(&bed.store, "a");
        let before_c = openssl_serial(&bed.store, "c");
        let sent = receiver.requests().len();
        let out = bed.certkeep(&["renew", "--force"]);
        assert_exit(&out, 1);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("FAILED: b: lineage \"b\" is damaged") && stderr.contains(check),
            "{what}: {}",
            text(&out)
        );
        assert!(stderr.contains("certkeep issue b"), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("2 renewed, 0 not due, 1 failed"),
            "{what}: {}",
            text(&out)
        );
        assert_ne!(openssl_serial(&bed.store, "a"), before_a, "{what}");
        assert_ne!(openssl_serial(&bed.store, "c"), before_c, "{what}");
        assert_eq!(
            common::lineage::served_serial(&bed, "a").unwrap(),
            openssl_serial(&bed.store, "a"),
            "{what}: nginx serves a's new certificate"
        );
        // The alert names b (the first round fires it; later rounds repeat
        // nothing new until it resolves).
        if sent == 0 {
            let fired = receiver.requests();
            assert_eq!(fired.len(), 1, "{what}");
            let msg = fired[0].json();
            assert_eq!(msg["status"], "firing");
            assert_eq!(
                msg["alerts"][0]["labels"]["key"], "renew:b:renewal",
                "{msg}"
            );
        }

        // Repaired by the command it names; the store is healthy again.
        let out = bed.certkeep(&["issue", "b"]);
        assert_exit(&out, 0);
        let (out, all) = listing(&bed);
        assert_exit(&out, 0);
        assert!(all.iter().all(|l| l["status"] == "ok"), "{what}: {all:?}");
        assert!(common::lineage::check(&bed.store, "b").is_ok(), "{what}");
        // A plain renew now resolves the alert (nothing due, nothing failed).
        assert_exit(&bed.certkeep(&["renew"]), 0);
    }
    // The regular file the user had put in place of cert.pem was kept aside.
    let aside = std::fs::read_dir(bed.store.join("live"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".b.damaged-"))
        .count();
    assert!(aside >= 1, "the damaged live directory was set aside");
}
