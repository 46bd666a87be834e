//! Small command-line behaviours: a store that does not exist, a closed
//! output pipe, revocation reasons in `--help` and the docs, ACME directory
//! redirects and plain http://, an import with nothing to import, expired
//! certificates' time left.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::http_receiver::{Receiver, Reply};
use crate::common::tlsgen::TestCa;
use crate::common::{self, assert_exit, text, Bed, PebbleOptions};

use certkeep::store::{NewVersion, Store};

fn minimal_config(dir: &Path, store: &Path) -> std::path::PathBuf {
    let config = dir.join("certkeep.toml");
    std::fs::write(&config, format!("store = \"{}\"\n", store.display())).unwrap();
    config
}

/// `names` lineages, each a leaf of `ca` valid from `days.0` to `days.1`
/// (relative to now), chain = the CA.
fn store_with(store: &Path, ca: &TestCa, names: &[String], days: (i64, i64)) {
    let s = Store::new(store);
    for n in names {
        let leaf = ca.leaf(&[&format!("{n}.test")], days.0, days.1);
        let v = s
            .write_version(
                n,
                &NewVersion {
                    cert: leaf.cert.clone(),
                    chain: ca.pem.clone(),
                    fullchain: format!("{}{}", leaf.cert, ca.pem),
                    privkey: leaf.key,
                },
            )
            .unwrap();
        s.activate(n, v).unwrap();
    }
}

#[test]
fn certificates_on_a_missing_store_says_it_does_not_exist() {
    let dir = common::open_tempdir();
    let store = dir.path().join("no-such-store");
    let config = minimal_config(dir.path(), &store);
    for args in [&["certificates"][..], &["certificates", "--json"][..]] {
        let out = common::certkeep(&config, args);
        assert_exit(&out, 1);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("the store {} does not exist", store.display())),
            "{}",
            text(&out)
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("No certificates"),
            "{}",
            text(&out)
        );
    }
    // An existing, empty store is not an error.
    std::fs::create_dir(&store).unwrap();
    let out = common::certkeep(&config, &["certificates"]);
    assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("No certificates"));
}

#[test]
fn closed_output_pipe_ends_quietly() {
    let dir = common::open_tempdir();
    let store = dir.path().join("store");
    let ca = TestCa::new(dir.path());
    // Far more output than a pipe buffers (64 KiB), so the writes after
    // the reader is gone really fail.
    let names: Vec<String> = (0..300).map(|i| format!("site{i:03}")).collect();
    store_with(&store, &ca, &names, (-1, 60));
    let config = minimal_config(dir.path(), &store);
    for args in [&["certificates"][..], &["certificates", "--json"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // The reader is dropped here, as `head -1` exits.
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!first.is_empty(), "{args:?}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
        assert!(
            out.status.signal() == Some(libc::SIGPIPE) || out.status.code() == Some(0),
            "{args:?}: {:?} {stderr}",
            out.status
        );
    }
}

#[test]
fn expired_certificate_reads_expired_ago() {
    let dir = common::open_tempdir();
    let store = dir.path().join("store");
    let ca = TestCa::new(dir.path());
    store_with(&store, &ca, &["old".to_string()], (-96, -6));
    let config = minimal_config(dir.path(), &store);
    let out = common::certkeep(&config, &["certificates"]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("(expired 5d 23h ago)") || stdout.contains("(expired 6d 0h ago)"),
        "{}",
        text(&out)
    );
    assert!(
        !stdout.contains("-6") && !stdout.contains("-5d"),
        "{}",
        text(&out)
    );
}

/// RFC 5280 section 5.3.1 reasons a holder can give, written out here.
const RFC5280_HOLDER_REASONS: [&str; 6] = [
    "0 unspecified",
    "1 keyCompromise",
    "3 affiliationChanged",
    "4 superseded",
    "5 cessationOfOperation",
    "9 privilegeWithdrawn",
];

#[test]
fn revoke_help_and_docs_agree_on_reasons() {
    let dir = common::open_tempdir();
    let config = minimal_config(dir.path(), &dir.path().join("store"));
    let help = common::certkeep(&config, &["revoke", "--help"]);
    assert_exit(&help, 0);
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/renewal.md")).unwrap();
    let section = docs
        .split("## `certkeep revoke`")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("docs/renewal.md has a revoke section")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let listed = RFC5280_HOLDER_REASONS.join(", ");
    assert!(help.contains(&listed), "--help: {help}");
    assert!(section.contains(&listed), "docs: {section}");
    for refused in [
        "2 cACompromise",
        "6 certificateHold",
        "8 removeFromCRL",
        "10 aACompromise",
    ] {
        assert!(!help.contains(refused), "{refused} in --help");
        assert!(
            section.contains(refused),
            "docs say why {refused} is refused"
        );
    }
    // Names work as well as codes; a refused code is a usage error.
    let out = common::certkeep(&config, &["revoke", "x", "--reason", "6"]);
    assert_exit(&out, 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("0 unspecified, 1 keyCompromise"),
        "{}",
        text(&out)
    );
}

#[test]
fn import_with_nothing_to_import_writes_nothing_and_keeps_certbot() {
    let dir = common::open_tempdir();
    let etc = dir.path().join("letsencrypt");
    std::fs::create_dir_all(etc.join("renewal")).unwrap();
    let config = dir.path().join("certkeep.toml");
    for extra in [&[][..], &["--write"][..]] {
        let mut args = vec!["import", "certbot", "--from", etc.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = common::certkeep(&config, &args);
        assert_exit(&out, 1);
        let all = text(&out);
        assert!(all.contains("nothing to import"), "{all}");
        assert!(
            !all.contains("disable"),
            "must not tell to stop certbot: {all}"
        );
        assert!(!config.exists(), "no config written");
    }
}

#[test]
fn directory_redirect_is_reported_not_followed_and_plain_http_warned() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let target = "https://127.0.0.1:9/moved/dir";
    let receiver = rt.block_on(Receiver::start(vec![
        Reply::status(301).header("Location", target)
    ]));
    let head = bed
        .base_config()
        .replace(&bed.pebble.directory, &receiver.url("/dir"));
    std::fs::write(
        &bed.config,
        format!(
            "{head}{}",
            bed.cert_block("r", &["r.test"], "confirm = false")
        ),
    )
    .unwrap();
    let out = bed.certkeep(&["issue", "r"]);
    assert_exit(&out, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "redirects (HTTP 301 Moved Permanently) to {target}"
        )),
        "{}",
        text(&out)
    );
    assert!(stderr.contains("is plain http://"), "{}", text(&out));
    assert_eq!(receiver.requests().len(), 1, "asked once, not retried");
    // The real (https) directory: no warning.
    bed.write_config(&bed.cert_block("r", &["r.test"], "confirm = false"));
    let out = bed.certkeep(&["issue", "r"]);
    assert_exit(&out, 0);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("plain http"),
        "{}",
        text(&out)
    );
}

#[test]
fn damaged_lineage_outside_the_config_gets_its_own_repair_advice() {
    let dir = common::open_tempdir();
    let store = dir.path().join("store");
    let ca = TestCa::new(dir.path());
    store_with(&store, &ca, &["kept".into(), "gone".into()], (-1, 60));
    let live = store.join("live/gone");
    std::fs::remove_dir_all(&live).unwrap();
    std::fs::create_dir(&live).unwrap();
    let config = minimal_config(dir.path(), &store);
    let out = common::certkeep(&config, &["certificates", "--json"]);
    assert_exit(&out, 1);
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.len(), 2, "{}", text(&out));
    let gone = v.iter().find(|l| l["name"] == "gone").unwrap();
    assert_eq!(gone["status"], "damaged");
    let repair = gone["repair"].as_str().unwrap();
    assert!(
        repair.contains("not in the config") && repair.contains("certkeep issue gone"),
        "{repair}"
    );
    let kept = v.iter().find(|l| l["name"] == "kept").unwrap();
    assert_eq!(kept["status"], "ok");
    assert!(kept["repair"].is_null());
}
