//! Checks on a store as nginx would see it: every live link resolves, the key
//! matches the certificate, the chain files agree; plus helpers to serve
//! lineages from nginx TLS sites.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certkeep::store::atomic::TMP_PREFIX;
use certkeep::store::Store;

use super::{assert_exit, Bed};

/// Why lineage `name` in `store` is not usable, or Ok when it is.
pub fn check(store: &Path, name: &str) -> Result<(), String> {
    let live = store.join("live").join(name);
    let read = |kind: &str| -> Result<Vec<u8>, String> {
        let p = live.join(format!("{kind}.pem"));
        std::fs::read(&p).map_err(|e| format!("{name}: cannot read {}: {e}", p.display()))
    };
    let cert = read("cert")?;
    let chain = read("chain")?;
    let fullchain = read("fullchain")?;
    let privkey = read("privkey")?;
    let leaf =
        certkeep::cert::parse_pem_leaf(&cert, "cert.pem").map_err(|e| format!("{name}: {e}"))?;
    let facts = certkeep::cert::facts(&leaf, "cert.pem").map_err(|e| format!("{name}: {e}"))?;
    let key = std::str::from_utf8(&privkey).map_err(|e| format!("{name}: privkey.pem: {e}"))?;
    let spki = certkeep::cert::key_spki_der(key).map_err(|e| format!("{name}: {e}"))?;
    if spki != facts.spki_der {
        return Err(format!(
            "{name}: privkey.pem does not match cert.pem (serial {})",
            facts.serial
        ));
    }
    let full = certkeep::cert::parse_pem_chain(&fullchain, "fullchain.pem")
        .map_err(|e| format!("{name}: {e}"))?;
    if full[0].as_ref() != leaf.as_slice() {
        return Err(format!(
            "{name}: fullchain.pem does not start with cert.pem"
        ));
    }
    let mut joined = cert.clone();
    joined.extend_from_slice(&chain);
    if joined != fullchain {
        return Err(format!("{name}: cert.pem + chain.pem != fullchain.pem"));
    }
    let cert_link =
        std::fs::read_link(live.join("cert.pem")).map_err(|e| format!("{name}: {e}"))?;
    let version = |link: PathBuf| {
        link.file_name()
            .and_then(|f| f.to_str())
            .map(|f| f.trim_start_matches(char::is_alphabetic).to_string())
    };
    for kind in ["chain", "fullchain", "privkey"] {
        let l = std::fs::read_link(live.join(format!("{kind}.pem")))
            .map_err(|e| format!("{name}: {e}"))?;
        if version(l.clone()) != version(cert_link.clone()) {
            return Err(format!(
                "{name}: {kind}.pem -> {} but cert.pem -> {}",
                l.display(),
                cert_link.display()
            ));
        }
    }
    openssl_agrees(&live, name)
}

/// The same files as openssl reads them (an oracle independent of certkeep's
/// parsers): fullchain.pem's first certificate and privkey.pem carry the same
/// public key.
fn openssl_agrees(live: &Path, name: &str) -> Result<(), String> {
    let run = |args: &[&str]| -> Result<Vec<u8>, String> {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .map_err(|e| format!("{name}: cannot run openssl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{name}: openssl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(out.stdout)
    };
    let full = live.join("fullchain.pem");
    let key = live.join("privkey.pem");
    let from_cert = run(&["x509", "-in", &full.to_string_lossy(), "-noout", "-pubkey"])?;
    let from_key = run(&["pkey", "-in", &key.to_string_lossy(), "-pubout"])?;
    if from_cert.is_empty() || from_cert != from_key {
        return Err(format!(
            "{name}: openssl: the public key of fullchain.pem's first certificate is not privkey.pem's"
        ));
    }
    Ok(())
}

/// Every entry under `root` (recursively) whose name starts with the temp prefix.
pub fn temp_entries(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                out.push(p.clone());
            }
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(&p, out);
            }
        }
    }
    walk(root, &mut out);
    out
}

/// (live version, highest archive version, files of the highest version present).
pub fn versions(store: &Path, name: &str) -> (u32, u32, usize) {
    let s = Store::new(store);
    let live = s
        .lineage(name)
        .ok()
        .flatten()
        .map(|l| l.version)
        .unwrap_or(0);
    let max = s.max_archive_version(name).unwrap_or(0);
    let present = certkeep::store::KINDS
        .iter()
        .filter(|k| s.archive_dir(name).join(format!("{k}{max}.pem")).exists())
        .count();
    (live, max, present)
}

/// SHA-256 of every file (and target of every link) under `root`.
pub fn hash_tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", std::fs::read_link(&p).unwrap().display()),
                );
            } else if meta.is_dir() {
                out.insert(rel, "dir".into());
                walk(root, &p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
                out.insert(rel, hex::encode(d));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// Issues `names` (domain `<name>.test`) and serves each from its own nginx TLS
/// site on the live files. `head` is the config up to the certificates (e.g.
/// `bed.base_config()`). Returns the `[[certificate]]` blocks with `endpoint`
/// set to the site and `extra` added; the config is left with them.
pub fn issue_and_serve(bed: &Bed, names: &[&str], head: &str, extra: &str) -> String {
    let write = |body: &str| std::fs::write(&bed.config, format!("{head}{body}")).expect("config");
    let mut body = String::new();
    for n in names {
        body.push_str(&bed.cert_block(n, &[&format!("{n}.test")], "confirm = false"));
    }
    write(&body);
    assert_exit(&bed.certkeep(&["issue", "--all"]), 0);
    let mut body = String::new();
    for n in names {
        let live = bed.store.join(format!("live/{n}"));
        let port = bed.nginx.tls_site(
            n,
            &format!("{n}.test"),
            &live.join("fullchain.pem"),
            &live.join("privkey.pem"),
            "",
        );
        body.push_str(&bed.cert_block(
            n,
            &[&format!("{n}.test")],
            &format!("endpoint = \"127.0.0.1:{port}\"\n{extra}"),
        ));
    }
    bed.nginx.reload();
    write(&body);
    for n in names {
        super::wait_for("the TLS site after reload", Duration::from_secs(10), || {
            served_serial(bed, n).is_ok()
        });
    }
    body
}

/// The serial nginx serves for certificate `name` (its configured endpoint).
pub fn served_serial(bed: &Bed, name: &str) -> Result<String, String> {
    let cfg = certkeep::config::Settings::load(&bed.config).map_err(|e| e.to_string())?;
    let c = cfg
        .certificate(name)
        .ok_or_else(|| format!("{name} not configured"))?;
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(certkeep::nginx::served_serial(
        &c.confirm_endpoint(),
        &c.confirm_sni(),
        Duration::from_secs(5),
    ))
    .map_err(|e| e.to_string())
}

/// The serial of the live certificate of `name`.
pub fn live_serial(store: &Path, name: &str) -> String {
    Store::new(store)
        .current(name)
        .expect("read lineage")
        .expect("lineage exists")
        .leaf
        .serial
}
