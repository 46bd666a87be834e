use super::*;
use std::os::unix::fs::PermissionsExt;

fn version(tag: &str) -> NewVersion {
    NewVersion {
        cert: format!("cert {tag}\n"),
        chain: format!("chain {tag}\n"),
        fullchain: format!("fullchain {tag}\n"),
        privkey: format!("key {tag}\n"),
    }
}

fn read_live(s: &Store, name: &str, kind: &str) -> String {
    fs::read_to_string(s.live_dir(name).join(format!("{kind}.pem"))).unwrap()
}

#[test]
fn versions_are_numbered_and_links_move_together() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::new(d.path());
    assert_eq!(s.lineage("a").unwrap(), None);
    let v1 = s.write_version("a", &version("one")).unwrap();
    assert_eq!(v1, 1);
    // Written but not active: live does not exist yet.
    assert!(s.lineage("a").unwrap().is_none());
    s.activate("a", v1).unwrap();
    assert_eq!(s.lineage("a").unwrap().unwrap().version, 1);
    let v2 = s.write_version("a", &version("two")).unwrap();
    assert_eq!(v2, 2);
    assert_eq!(read_live(&s, "a", "cert"), "cert one\n");
    s.activate("a", v2).unwrap();
    for (kind, text) in [
        ("cert", "cert two\n"),
        ("chain", "chain two\n"),
        ("fullchain", "fullchain two\n"),
        ("privkey", "key two\n"),
    ] {
        assert_eq!(read_live(&s, "a", kind), text);
    }
    // Roll back to 1.
    s.activate("a", 1).unwrap();
    assert_eq!(read_live(&s, "a", "privkey"), "key one\n");
    assert_eq!(s.lineage("a").unwrap().unwrap().version, 1);
    // Next version continues after the highest in archive.
    assert_eq!(s.write_version("a", &version("three")).unwrap(), 3);
    assert_eq!(s.lineage_names().unwrap(), vec!["a"]);
    // Only the four links and the README in live/a.
    let mut entries: Vec<String> = fs::read_dir(s.live_dir("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        vec![
            "README",
            "cert.pem",
            "chain.pem",
            "fullchain.pem",
            "privkey.pem"
        ]
    );
}

#[test]
fn permissions_follow_certbot() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::new(d.path().join("store"));
    let v = s.write_version("a", &version("x")).unwrap();
    s.activate("a", v).unwrap();
    let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(s.archive_dir("a").join("privkey1.pem")), 0o600);
    assert_eq!(mode(s.archive_dir("a").join("cert1.pem")), 0o644);
    for top in ["archive", "live", "accounts", "state"] {
        assert_eq!(mode(s.root().join(top)), 0o700, "{top}");
    }
}

#[test]
fn activating_an_incomplete_version_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::new(d.path());
    let v = s.write_version("a", &version("x")).unwrap();
    s.activate("a", v).unwrap();
    fs::write(s.archive_dir("a").join("cert2.pem"), "partial").unwrap();
    let e = s.activate("a", 2).unwrap_err();
    assert!(e.to_string().contains("incomplete"), "{e}");
    assert_eq!(s.lineage("a").unwrap().unwrap().version, 1);
}

#[test]
fn recover_removes_temps_and_incomplete_versions_only() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::new(d.path());
    s.write_version("a", &version("1")).unwrap();
    s.activate("a", 1).unwrap();
    s.write_version("a", &version("2")).unwrap(); // complete, not active: kept
    let arch = s.archive_dir("a");
    fs::write(arch.join("cert3.pem"), "x").unwrap(); // incomplete: removed
    fs::write(arch.join(format!("{}privkey-9", atomic::TMP_PREFIX)), "x").unwrap();
    fs::create_dir(
        s.root()
            .join("live")
            .join(format!("{}a", atomic::TMP_PREFIX)),
    )
    .unwrap();
    let removed = s.recover().unwrap();
    assert_eq!(removed.len(), 3, "{removed:?}");
    assert!(arch.join("cert2.pem").exists());
    assert!(!arch.join("cert3.pem").exists());
    assert_eq!(s.lineage("a").unwrap().unwrap().version, 1);
    assert_eq!(s.recover().unwrap().len(), 0);
}

#[test]
fn damaged_live_link_is_named() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::new(d.path());
    fs::create_dir_all(s.live_dir("a")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", s.live_dir("a").join("cert.pem")).unwrap();
    let e = s.lineage("a").unwrap_err().to_string();
    assert!(e.contains("\"a\"") && e.contains("cert<N>.pem"), "{e}");
}

#[test]
fn version_parsing() {
    assert_eq!(version_of("cert12.pem", "cert"), Some(12));
    assert_eq!(version_of("fullchain3.pem", "chain"), None);
    assert_eq!(version_of("fullchain3.pem", "fullchain"), Some(3));
    assert_eq!(version_of("cert.pem", "cert"), None);
    assert_eq!(version_of("cert1a.pem", "cert"), None);
    assert_eq!(version_of("cert-1.pem", "cert"), None);
}

#[test]
fn current_reads_certificate_facts() {
    let d = tempfile::tempdir().unwrap();
    let s = Store::new(d.path());
    let ck = rcgen::generate_simple_self_signed(vec!["a.test".to_string()]).unwrap();
    let pem = ck.cert.pem();
    let v = NewVersion {
        cert: pem.clone(),
        chain: String::new(),
        fullchain: pem,
        privkey: ck.signing_key.serialize_pem(),
    };
    let n = s.write_version("a", &v).unwrap();
    s.activate("a", n).unwrap();
    let cur = s.current("a").unwrap().unwrap();
    assert_eq!(cur.leaf.sans, vec!["a.test"]);
    assert_eq!(crate::cert::facts(&cur.leaf_der, "").unwrap(), cur.leaf);
}

/// A consistent version: a leaf signed by a CA, chain = the CA.
fn real_version(name: &str) -> NewVersion {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![format!("{name}.test")])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    NewVersion {
        cert: leaf.pem(),
        chain: ca.pem(),
        fullchain: format!("{}{}", leaf.pem(), ca.pem()),
        privkey: key.serialize_pem(),
    }
}

fn healthy_store(names: &[&str]) -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::new(d.path().join("store"));
    for n in names {
        let v = s.write_version(n, &real_version(n)).unwrap();
        s.activate(n, v).unwrap();
    }
    (d, s)
}

fn checks(s: &Store, name: &str) -> Vec<&'static str> {
    let i = s.inspect(name).expect("lineage exists");
    i.damage.iter().map(|d| d.check).collect()
}

#[test]
fn healthy_lineage_has_no_damage() {
    let (_d, s) = healthy_store(&["a"]);
    let i = s.inspect("a").unwrap();
    assert!(i.is_healthy(), "{}", i.summary());
    assert_eq!(i.current.unwrap().leaf.sans, vec!["a.test"]);
    assert!(s.current_checked("a").unwrap().is_some());
    assert!(s.inspect("missing").is_none());
    assert!(s.current_checked("missing").unwrap().is_none());
}

/// Applies `damage` to lineage "b" of three and expects `want` among the
/// failed checks, with "a" and "c" healthy and the store still usable.
fn assert_damage(damage: impl FnOnce(&Store), want: &str) {
    let (_d, s) = healthy_store(&["a", "b", "c"]);
    damage(&s);
    assert_eq!(s.lineage_names().unwrap(), vec!["a", "b", "c"]);
    let got = checks(&s, "b");
    assert!(got.contains(&want), "want {want}, got {got:?}");
    for ok in ["a", "c"] {
        assert!(s.inspect(ok).unwrap().is_healthy(), "{ok}");
        assert!(s.current_checked(ok).unwrap().is_some(), "{ok}");
    }
    let e = s.current_checked("b").unwrap_err().to_string();
    assert!(e.contains(want) && e.contains("certkeep issue b"), "{e}");
    // Clean-up of the store does not stop at the damaged lineage.
    s.recover().unwrap();
}

fn relink(s: &Store, name: &str, kind: &str, target: &str) {
    let link = s.live_dir(name).join(format!("{kind}.pem"));
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(target, &link).unwrap();
}

#[test]
fn damage_empty_live_directory() {
    assert_damage(
        |s| {
            fs::remove_dir_all(s.live_dir("b")).unwrap();
            fs::create_dir(s.live_dir("b")).unwrap();
        },
        "link-missing",
    );
}

#[test]
fn damage_live_entry_is_a_file() {
    assert_damage(
        |s| {
            fs::remove_dir_all(s.live_dir("b")).unwrap();
            fs::write(s.live_dir("b"), "x").unwrap();
        },
        "live-not-directory",
    );
}

#[test]
fn damage_live_entry_is_a_dangling_link() {
    assert_damage(
        |s| {
            fs::remove_dir_all(s.live_dir("b")).unwrap();
            std::os::unix::fs::symlink("/nonexistent/b", s.live_dir("b")).unwrap();
        },
        "live-not-directory",
    );
}

#[test]
fn damage_cert_is_a_regular_file() {
    assert_damage(
        |s| {
            let link = s.live_dir("b").join("cert.pem");
            let text = fs::read(&link).unwrap();
            fs::remove_file(&link).unwrap();
            fs::write(&link, text).unwrap();
        },
        "not-a-link",
    );
}

#[test]
fn damage_archive_file_of_current_version_missing() {
    assert_damage(
        |s| fs::remove_file(s.archive_dir("b").join("chain1.pem")).unwrap(),
        "file-missing",
    );
}

#[test]
fn damage_link_outside_archive() {
    assert_damage(
        |s| relink(s, "b", "cert", "../../archive/a/cert1.pem"),
        "link-outside-archive",
    );
}

#[test]
fn damage_version_does_not_parse() {
    assert_damage(
        |s| {
            fs::copy(
                s.archive_dir("b").join("cert1.pem"),
                s.archive_dir("b").join("certX.pem"),
            )
            .unwrap();
            relink(s, "b", "cert", "../../archive/b/certX.pem");
        },
        "bad-version",
    );
}

#[test]
fn damage_links_at_different_versions() {
    assert_damage(
        |s| {
            s.write_version("b", &real_version("b")).unwrap();
            relink(s, "b", "chain", "../../archive/b/chain2.pem");
        },
        "versions-differ",
    );
}

#[test]
fn damage_key_does_not_match() {
    assert_damage(
        |s| {
            let other = real_version("b");
            fs::write(s.archive_dir("b").join("privkey1.pem"), other.privkey).unwrap();
        },
        "key-mismatch",
    );
}

#[test]
fn damage_fullchain_is_not_cert_and_chain() {
    assert_damage(
        |s| {
            let cert = fs::read(s.archive_dir("b").join("cert1.pem")).unwrap();
            fs::write(s.archive_dir("b").join("fullchain1.pem"), cert).unwrap();
        },
        "chain-mismatch",
    );
}

#[test]
fn damage_unparsable_certificate() {
    assert_damage(
        |s| fs::write(s.archive_dir("b").join("cert1.pem"), "not a PEM\n").unwrap(),
        "cert-unparsable",
    );
}

#[test]
fn damage_stray_file() {
    assert_damage(
        |s| fs::write(s.live_dir("b").join("notes.txt"), "mine").unwrap(),
        "stray-file",
    );
}

#[test]
fn new_version_sets_a_damaged_live_directory_aside() {
    let (_d, s) = healthy_store(&["b"]);
    let link = s.live_dir("b").join("cert.pem");
    fs::remove_file(&link).unwrap();
    fs::write(&link, "the user's own file").unwrap();
    let v = s.write_version("b", &real_version("b")).unwrap();
    s.verify_version("b", v).unwrap();
    s.activate("b", v).unwrap();
    assert!(s.inspect("b").unwrap().is_healthy());
    // The user's file is kept beside, hidden from the lineage list.
    let aside: Vec<PathBuf> = fs::read_dir(s.root().join("live"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".b.damaged-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        fs::read_to_string(aside[0].join("cert.pem")).unwrap(),
        "the user's own file"
    );
    assert_eq!(s.lineage_names().unwrap(), vec!["b"]);
}

#[test]
fn inconsistent_version_is_not_activated() {
    let (_d, s) = healthy_store(&["b"]);
    let mut bad = real_version("b");
    bad.privkey = real_version("x").privkey;
    let v = s.write_version("b", &bad).unwrap();
    let e = s.verify_version("b", v).unwrap_err().to_string();
    assert!(e.contains("key-mismatch") && e.contains("version 2"), "{e}");
}
