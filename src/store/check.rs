//! Consistency of one lineage: what `certificates` shows and what renewal
//! checks before it trusts (or deploys) a lineage.
//!
//! A lineage is healthy when `live/<name>` is a directory holding exactly the
//! four links (and certbot's README), each link points into
//! `archive/<name>/` at `<kind><N>.pem` with the same N, every target exists
//! and parses, the key belongs to the certificate and fullchain is cert
//! followed by chain. Anything else is a [`Damage`], named by a short stable
//! check name, with the detail naming the file.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::{version_of, Current, Lineage, Store, KINDS};
use crate::cert;

/// One thing wrong with a lineage.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Damage {
    /// Stable, short name of the failed check (e.g. `link-missing`).
    pub check: &'static str,
    /// What is wrong, naming the file.
    pub detail: String,
}

impl Damage {
    fn new(check: &'static str, detail: impl Into<String>) -> Self {
        Self {
            check,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.detail, self.check)
    }
}

/// The result of checking one lineage.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub name: String,
    /// The live certificate, when cert.pem could be read and parsed.
    pub current: Option<Current>,
    /// Everything found wrong; empty when the lineage is healthy.
    pub damage: Vec<Damage>,
}

impl Inspection {
    pub fn is_healthy(&self) -> bool {
        self.damage.is_empty()
    }

    /// The command that repairs this lineage.
    pub fn repair(&self) -> String {
        repair_command(&self.name)
    }

    /// All problems on one line.
    pub fn summary(&self) -> String {
        self.damage
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The command that replaces a damaged lineage with a fresh, consistent
/// version (the damaged live directory is kept aside, never deleted).
pub fn repair_command(name: &str) -> String {
    format!("certkeep issue {name}")
}

/// Names allowed in `live/<name>/` besides the four links.
const LIVE_EXTRAS: [&str; 1] = ["README"];

impl Store {
    /// Checks lineage `name`; None when `live/<name>` does not exist at all.
    pub fn inspect(&self, name: &str) -> Option<Inspection> {
        let live_dir = self.live_dir(name);
        let mut damage = Vec::new();
        let done = |damage, current| {
            Some(Inspection {
                name: name.to_string(),
                current,
                damage,
            })
        };
        // A link to a directory is accepted; anything else that is not a
        // directory is not a lineage.
        match fs::metadata(&live_dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                damage.push(Damage::new(
                    "live-not-directory",
                    format!("{} is not a directory", live_dir.display()),
                ));
                return done(damage, None);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if fs::symlink_metadata(&live_dir).is_err() {
                    return None;
                }
                damage.push(Damage::new(
                    "live-not-directory",
                    format!("{} is a dangling link", live_dir.display()),
                ));
                return done(damage, None);
            }
            Err(e) => {
                damage.push(Damage::new(
                    "unreadable",
                    format!("cannot read {}: {e}", live_dir.display()),
                ));
                return done(damage, None);
            }
        }
        match fs::read_dir(&live_dir) {
            Ok(entries) => {
                let mut stray: Vec<String> = entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|f| {
                        !LIVE_EXTRAS.contains(&f.as_str())
                            && !KINDS.iter().any(|k| *f == format!("{k}.pem"))
                    })
                    .collect();
                stray.sort();
                for f in stray {
                    damage.push(Damage::new(
                        "stray-file",
                        format!(
                            "{} does not belong in a lineage (move it elsewhere)",
                            live_dir.join(f).display()
                        ),
                    ));
                }
            }
            Err(e) => {
                damage.push(Damage::new(
                    "unreadable",
                    format!("cannot read {}: {e}", live_dir.display()),
                ));
                return done(damage, None);
            }
        }

        // The links: present, links, into archive/<name>, same version.
        let archive = self.archive_dir(name);
        let mut versions: Vec<(&str, u32)> = Vec::new();
        let mut linked: Vec<&str> = Vec::new();
        for kind in KINDS {
            let link = live_dir.join(format!("{kind}.pem"));
            let meta = match fs::symlink_metadata(&link) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    damage.push(Damage::new(
                        "link-missing",
                        format!("{} is missing", link.display()),
                    ));
                    continue;
                }
                Err(e) => {
                    damage.push(Damage::new(
                        "unreadable",
                        format!("cannot read {}: {e}", link.display()),
                    ));
                    continue;
                }
            };
            if !meta.file_type().is_symlink() {
                damage.push(Damage::new(
                    "not-a-link",
                    format!(
                        "{} is a {}, not a link into {}",
                        link.display(),
                        if meta.is_dir() {
                            "directory"
                        } else {
                            "regular file"
                        },
                        archive.display()
                    ),
                ));
                continue;
            }
            let target = match fs::read_link(&link) {
                Ok(t) => t,
                Err(e) => {
                    damage.push(Damage::new(
                        "unreadable",
                        format!("cannot read link {}: {e}", link.display()),
                    ));
                    continue;
                }
            };
            let resolved = normalize(&live_dir.join(&target));
            if resolved.parent() != Some(normalize(&archive).as_path()) {
                damage.push(Damage::new(
                    "link-outside-archive",
                    format!(
                        "{} points at {}, outside {}",
                        link.display(),
                        target.display(),
                        archive.display()
                    ),
                ));
                continue;
            }
            let file = resolved
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            match version_of(&file, kind) {
                Some(v) => versions.push((kind, v)),
                None => {
                    damage.push(Damage::new(
                        "bad-version",
                        format!("{} points at {file}, not at {kind}<N>.pem", link.display()),
                    ));
                    continue;
                }
            }
            linked.push(kind);
        }
        if let Some((_, first)) = versions.first() {
            if versions.iter().any(|(_, v)| v != first) {
                let list: Vec<String> = versions
                    .iter()
                    .map(|(k, v)| format!("{k}.pem -> {k}{v}.pem"))
                    .collect();
                damage.push(Damage::new(
                    "versions-differ",
                    format!("the links point at different versions: {}", list.join(", ")),
                ));
            }
        }

        // The files behind the links.
        let mut bytes: [Option<Vec<u8>>; 4] = Default::default();
        for (i, kind) in KINDS.iter().enumerate() {
            if !linked.contains(kind) {
                continue;
            }
            let link = live_dir.join(format!("{kind}.pem"));
            match fs::read(&link) {
                Ok(b) => bytes[i] = Some(b),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let target = fs::read_link(&link).unwrap_or_default();
                    damage.push(Damage::new(
                        "file-missing",
                        format!(
                            "{} points at {}, which does not exist",
                            link.display(),
                            normalize(&live_dir.join(target)).display()
                        ),
                    ));
                }
                Err(e) => damage.push(Damage::new(
                    "unreadable",
                    format!("cannot read {}: {e}", link.display()),
                )),
            }
        }
        let [cert_pem, chain_pem, full_pem, key_pem] = bytes;
        let mut current = None;
        if let Some(cert_pem) = &cert_pem {
            let path = live_dir.join("cert.pem");
            match cert::parse_pem_leaf(cert_pem, "").and_then(|der| {
                let facts = cert::facts(&der, "")?;
                Ok((der, facts))
            }) {
                Ok((leaf_der, leaf)) => {
                    let version = versions
                        .iter()
                        .find(|(k, _)| *k == "cert")
                        .map(|(_, v)| *v)
                        .unwrap_or(0);
                    current = Some(Current {
                        lineage: Lineage {
                            name: name.to_string(),
                            version,
                            live_dir: live_dir.clone(),
                        },
                        leaf,
                        leaf_der,
                    });
                }
                Err(e) => damage.push(Damage::new(
                    "cert-unparsable",
                    format!("{}: {e}", path.display()),
                )),
            }
        }
        let cur = current.as_ref().map(|c| (&c.leaf_der, &c.leaf));
        damage.extend(pair_damage(
            &live_dir,
            cur.map(|(der, facts)| (der.as_slice(), facts.spki_der.as_slice())),
            chain_pem.as_deref(),
            full_pem.as_deref(),
            key_pem.as_deref(),
        ));
        done(damage, current)
    }

    /// Checks the four archive files of `version` of `name` before they go
    /// live: present, parsable, key matching, fullchain = cert + chain.
    pub fn verify_version(&self, name: &str, version: u32) -> Result<(), super::StoreError> {
        let dir = self.archive_dir(name);
        let mut damage = Vec::new();
        let mut bytes: [Option<Vec<u8>>; 4] = Default::default();
        for (i, kind) in KINDS.iter().enumerate() {
            let p = dir.join(format!("{kind}{version}.pem"));
            match fs::read(&p) {
                Ok(b) => bytes[i] = Some(b),
                Err(e) => damage.push(Damage::new(
                    "file-missing",
                    format!("cannot read {}: {e}", p.display()),
                )),
            }
        }
        let [cert_pem, chain_pem, full_pem, key_pem] = bytes;
        let mut leaf = None;
        if let Some(c) = &cert_pem {
            match cert::parse_pem_leaf(c, "").and_then(|der| {
                let f = cert::facts(&der, "")?;
                Ok((der, f.spki_der))
            }) {
                Ok(l) => leaf = Some(l),
                Err(e) => damage.push(Damage::new(
                    "cert-unparsable",
                    format!("{}: {e}", dir.join(format!("cert{version}.pem")).display()),
                )),
            }
        }
        damage.extend(pair_damage(
            &dir,
            leaf.as_ref().map(|(d, s)| (d.as_slice(), s.as_slice())),
            chain_pem.as_deref(),
            full_pem.as_deref(),
            key_pem.as_deref(),
        ));
        if damage.is_empty() {
            return Ok(());
        }
        Err(super::StoreError::Damaged {
            name: name.to_string(),
            path: dir,
            detail: format!(
                "version {version} is not consistent: {}",
                damage
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        })
    }

    /// Like [`Store::current`], but a lineage that fails any check is an
    /// error naming every problem and the command that repairs it.
    pub fn current_checked(&self, name: &str) -> Result<Option<Current>, super::StoreError> {
        let Some(i) = self.inspect(name) else {
            return Ok(None);
        };
        if i.is_healthy() {
            if let Some(c) = i.current {
                return Ok(Some(c));
            }
        }
        Err(super::StoreError::Unhealthy {
            name: name.to_string(),
            problems: i.summary(),
            repair: i.repair(),
        })
    }
}

/// Key versus certificate, and chain/fullchain versus certificate. `leaf` is
/// (leaf DER, its SubjectPublicKeyInfo DER) when cert.pem parsed.
fn pair_damage(
    dir: &Path,
    leaf: Option<(&[u8], &[u8])>,
    chain: Option<&[u8]>,
    fullchain: Option<&[u8]>,
    privkey: Option<&[u8]>,
) -> Vec<Damage> {
    let mut damage = Vec::new();
    let key_spki = privkey.map(|k| {
        std::str::from_utf8(k)
            .map_err(|e| e.to_string())
            .and_then(|k| cert::key_spki_der(k).map_err(|e| e.to_string()))
    });
    match key_spki {
        Some(Err(e)) => damage.push(Damage::new(
            "key-unparsable",
            format!("the private key in {} does not parse: {e}", dir.display()),
        )),
        Some(Ok(spki)) => {
            if let Some((_, leaf_spki)) = leaf {
                if spki != leaf_spki {
                    damage.push(Damage::new(
                        "key-mismatch",
                        format!(
                            "the private key in {} is not the certificate's key",
                            dir.display()
                        ),
                    ));
                }
            }
        }
        None => {}
    }
    let chain_der = chain.map(|c| cert::parse_pem_chain(c, "").map_err(|e| e.to_string()));
    let full_der = fullchain.map(|c| cert::parse_pem_chain(c, "").map_err(|e| e.to_string()));
    for (what, parsed) in [("chain", &chain_der), ("fullchain", &full_der)] {
        if let Some(Err(e)) = parsed {
            damage.push(Damage::new(
                "chain-unparsable",
                format!("the {what} in {} does not parse: {e}", dir.display()),
            ));
        }
    }
    if let (Some((leaf_der, _)), Some(Ok(chain)), Some(Ok(full))) = (leaf, &chain_der, &full_der) {
        let expected: Vec<&[u8]> = std::iter::once(leaf_der)
            .chain(chain.iter().map(|c| c.as_ref()))
            .collect();
        let got: Vec<&[u8]> = full.iter().map(|c| c.as_ref()).collect();
        if got != expected {
            damage.push(Damage::new(
                "chain-mismatch",
                format!(
                    "the fullchain in {} is not the certificate followed by the chain",
                    dir.display()
                ),
            ));
        }
    }
    damage
}

/// `a/b/../c/./d` -> `a/c/d`, without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}
