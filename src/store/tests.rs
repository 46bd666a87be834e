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
