//! The lineage store, in certbot's layout:
//!
//! ```text
//! <root>/archive/<name>/{cert,chain,fullchain,privkey}<N>.pem
//! <root>/live/<name>/{cert,chain,fullchain,privkey}.pem -> ../../archive/<name>/...<N>.pem
//! <root>/accounts/...   <root>/state/...
//! ```
//!
//! A new version is written and fsynced completely in archive/ before the
//! live links move, and the links move together: a fresh `live/<name>` is
//! built beside the old one and the two are exchanged in one rename
//! (`RENAME_EXCHANGE`), so a crash leaves the old set or the new set.

pub mod atomic;
pub mod check;
pub mod lock;

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::cert::{self, CertFacts};
use atomic::TMP_PREFIX;

/// The four files of a version, in the order certbot lists them.
pub const KINDS: [&str; 4] = ["cert", "chain", "fullchain", "privkey"];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("lineage {name:?} is damaged: {detail} (under {path})")]
    Damaged {
        name: String,
        path: PathBuf,
        detail: String,
    },
    #[error("lineage {name:?} is damaged: {problems}; repair it with `{repair}`")]
    Unhealthy {
        name: String,
        problems: String,
        repair: String,
    },
    #[error("{path}: {source}")]
    Cert {
        path: PathBuf,
        source: cert::CertError,
    },
}

pub(crate) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

/// PEM texts of one version.
#[derive(Clone)]
pub struct NewVersion {
    pub cert: String,
    pub chain: String,
    pub fullchain: String,
    pub privkey: String,
}

impl std::fmt::Debug for NewVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewVersion")
            .field("cert", &self.cert.len())
            .field("privkey", &"<redacted>")
            .finish()
    }
}

/// Where one lineage's live files are and which version they point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    pub name: String,
    pub version: u32,
    pub live_dir: PathBuf,
}

impl Lineage {
    pub fn path(&self, kind: &str) -> PathBuf {
        self.live_dir.join(format!("{kind}.pem"))
    }
}

/// A lineage with the facts of its current leaf certificate.
#[derive(Debug, Clone)]
pub struct Current {
    pub lineage: Lineage,
    pub leaf: CertFacts,
    /// DER of the leaf (cert.pem).
    pub leaf_der: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn live_dir(&self, name: &str) -> PathBuf {
        self.root.join("live").join(name)
    }

    pub fn archive_dir(&self, name: &str) -> PathBuf {
        self.root.join("archive").join(name)
    }

    pub fn accounts_dir(&self) -> PathBuf {
        self.root.join("accounts")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    /// Creates the top-level directories (0700) if they are missing.
    pub fn ensure_layout(&self) -> Result<(), StoreError> {
        atomic::ensure_dir(&self.root, 0o755).map_err(io_err("create", &self.root))?;
        for d in ["archive", "live", "accounts", "state"] {
            let p = self.root.join(d);
            atomic::ensure_dir(&p, 0o700).map_err(io_err("create", &p))?;
        }
        Ok(())
    }

    /// Names of all lineages under live/, sorted: every entry but hidden
    /// ones and certbot's README, so that a file or dangling link where a
    /// lineage directory should be is listed (and reported damaged).
    pub fn lineage_names(&self) -> Result<Vec<String>, StoreError> {
        let live = self.root.join("live");
        let entries = match fs::read_dir(&live) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read", &live)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("read", &live))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "README" {
                continue;
            }
            names.push(name);
        }
        names.sort();
        Ok(names)
    }

    /// The live version of `name`, or None when there is no lineage.
    pub fn lineage(&self, name: &str) -> Result<Option<Lineage>, StoreError> {
        let live_dir = self.live_dir(name);
        let cert_link = live_dir.join("cert.pem");
        let target = match fs::read_link(&cert_link) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !live_dir.exists() => return Ok(None),
            Err(e) => return Err(io_err("read link", &cert_link)(e)),
        };
        let version = target
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| version_of(f, "cert"))
            .ok_or_else(|| StoreError::Damaged {
                name: name.into(),
                path: live_dir.clone(),
                detail: format!(
                    "cert.pem points at {}, not at archive/{name}/cert<N>.pem",
                    target.display()
                ),
            })?;
        Ok(Some(Lineage {
            name: name.into(),
            version,
            live_dir,
        }))
    }

    /// When the live version of `name` was put in place: the modification
    /// time of the `live/<name>/cert.pem` link itself (not of its target).
    /// Every switch of the live set (certkeep's exchange of `live/<name>`,
    /// certbot's relinking) creates that link anew.
    pub fn live_since(&self, name: &str) -> Result<std::time::SystemTime, StoreError> {
        let link = self.live_dir(name).join("cert.pem");
        fs::symlink_metadata(&link)
            .and_then(|m| m.modified())
            .map_err(io_err("read the time of", &link))
    }

    /// The live version of `name` with its leaf's facts (from cert.pem only:
    /// planning a run over many lineages reads nothing else).
    pub fn current(&self, name: &str) -> Result<Option<Current>, StoreError> {
        let Some(lineage) = self.lineage(name)? else {
            return Ok(None);
        };
        let path = lineage.path("cert");
        let pem = fs::read(&path).map_err(io_err("read", &path))?;
        let leaf_der = cert::parse_pem_leaf(&pem, "").map_err(|source| StoreError::Cert {
            path: path.clone(),
            source,
        })?;
        let leaf = cert::facts(&leaf_der, "").map_err(|source| StoreError::Cert {
            path: path.clone(),
            source,
        })?;
        Ok(Some(Current {
            lineage,
            leaf,
            leaf_der,
        }))
    }

    /// Highest version number present in archive/<name> (0 when none).
    pub fn max_archive_version(&self, name: &str) -> Result<u32, StoreError> {
        let dir = self.archive_dir(name);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err("read", &dir)(e)),
        };
        let mut max = 0;
        for entry in entries {
            let entry = entry.map_err(io_err("read", &dir))?;
            let f = entry.file_name().to_string_lossy().into_owned();
            if let Some(v) = KINDS.iter().find_map(|k| version_of(&f, k)) {
                max = max.max(v);
            }
        }
        Ok(max)
    }

    /// Writes a complete new version to archive/ (fsynced) and returns its
    /// number. The live links do not move; call [`Store::activate`].
    pub fn write_version(&self, name: &str, v: &NewVersion) -> Result<u32, StoreError> {
        self.ensure_layout()?;
        let dir = self.archive_dir(name);
        atomic::ensure_dir(&dir, 0o755).map_err(io_err("create", &dir))?;
        let version = self.max_archive_version(name)? + 1;
        let files = [
            ("cert", v.cert.as_str(), 0o644),
            ("chain", v.chain.as_str(), 0o644),
            ("fullchain", v.fullchain.as_str(), 0o644),
            ("privkey", v.privkey.as_str(), 0o600),
        ];
        let mut temps = Vec::new();
        for (kind, text, mode) in files {
            match atomic::write_temp(&dir, kind, text.as_bytes(), mode) {
                Ok(t) => temps.push((kind, t)),
                Err(e) => {
                    for (_, t) in &temps {
                        let _ = fs::remove_file(t);
                    }
                    return Err(io_err("write", &dir)(e));
                }
            }
        }
        for (kind, tmp) in &temps {
            let dest = dir.join(format!("{kind}{version}.pem"));
            fs::rename(tmp, &dest).map_err(io_err("rename into", &dest))?;
        }
        atomic::sync_dir(&dir).map_err(io_err("sync", &dir))?;
        Ok(version)
    }

    /// Points live/<name> at `version` of archive/<name>, all four links at once.
    pub fn activate(&self, name: &str, version: u32) -> Result<(), StoreError> {
        self.ensure_layout()?;
        let archive = self.archive_dir(name);
        for kind in KINDS {
            let f = archive.join(format!("{kind}{version}.pem"));
            if !f.is_file() {
                return Err(StoreError::Damaged {
                    name: name.into(),
                    path: archive.clone(),
                    detail: format!(
                        "version {version} is incomplete: {} is missing",
                        f.display()
                    ),
                });
            }
        }
        let live_root = self.root.join("live");
        let live = self.live_dir(name);
        let fresh = live_root.join(format!("{TMP_PREFIX}{name}"));
        if fresh.exists() {
            fs::remove_dir_all(&fresh).map_err(io_err("remove", &fresh))?;
        }
        fs::create_dir(&fresh).map_err(io_err("create", &fresh))?;
        for kind in KINDS {
            let target = format!("../../archive/{name}/{kind}{version}.pem");
            let link = fresh.join(format!("{kind}.pem"));
            symlink(&target, &link).map_err(io_err("create link", &link))?;
        }
        let readme = fresh.join("README");
        fs::write(&readme, LIVE_README).map_err(io_err("write", &readme))?;
        atomic::sync_dir(&fresh).map_err(io_err("sync", &fresh))?;

        self.set_aside_if_damaged(name)?;
        if fs::symlink_metadata(&live).is_err() {
            fs::rename(&fresh, &live).map_err(io_err("rename into", &live))?;
        } else if atomic::exchange(&fresh, &live).map_err(io_err("swap", &live))? {
            // `fresh` now holds the previous links.
            fs::remove_dir_all(&fresh).map_err(io_err("remove", &fresh))?;
        } else {
            // No RENAME_EXCHANGE here: move link by link, key last so the
            // certificate never pairs with a key that is not its own for longer
            // than one rename.
            for kind in ["cert", "chain", "fullchain", "privkey"] {
                let from = fresh.join(format!("{kind}.pem"));
                let to = live.join(format!("{kind}.pem"));
                fs::rename(&from, &to).map_err(io_err("rename into", &to))?;
            }
            let _ = fs::remove_dir_all(&fresh);
        }
        atomic::sync_dir(&live_root).map_err(io_err("sync", &live_root))?;
        Ok(())
    }

    /// Moves `live/<name>` aside (to `live/.<name>.damaged-<unix time>`,
    /// kept, not deleted) when it is not a certkeep lineage directory: a file,
    /// a link, or a directory holding anything but links and the README. A
    /// user's own files there are never deleted by a new version.
    fn set_aside_if_damaged(&self, name: &str) -> Result<(), StoreError> {
        let live = self.live_dir(name);
        let Ok(meta) = fs::symlink_metadata(&live) else {
            return Ok(());
        };
        let ours = meta.is_dir()
            && fs::read_dir(&live)
                .map_err(io_err("read", &live))?
                .flatten()
                .all(|e| {
                    e.file_name() == "README"
                        || e.file_type().map(|t| t.is_symlink()).unwrap_or(false)
                });
        if ours {
            return Ok(());
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let aside = self
            .root
            .join("live")
            .join(format!(".{name}.damaged-{stamp}"));
        fs::rename(&live, &aside).map_err(io_err("move aside", &live))?;
        tracing::warn!(
            lineage = name,
            kept = %aside.display(),
            "the damaged live directory was moved aside"
        );
        Ok(())
    }

    /// Removes what an interrupted run left behind: temporary files and
    /// directories, and archive versions newer than live that are incomplete.
    pub fn recover(&self) -> Result<Vec<PathBuf>, StoreError> {
        let mut removed = Vec::new();
        for top in ["live", "archive", "accounts", "state"] {
            let dir = self.root.join(top);
            remove_temps(&dir, &mut removed)?;
        }
        for name in self.lineage_names()? {
            // One lineage that cannot be cleaned is that lineage's problem
            // (reported by its own checks), never the whole store's.
            if let Err(e) = self.recover_lineage(&name, &mut removed) {
                tracing::warn!(lineage = %name, "cannot clean up the lineage: {e}");
            }
        }
        Ok(removed)
    }
}

impl Store {
    fn recover_lineage(&self, name: &str, removed: &mut Vec<PathBuf>) -> Result<(), StoreError> {
        let dir = self.archive_dir(name);
        remove_temps(&dir, removed)?;
        // A damaged lineage is reported elsewhere; its archive is left as it
        // is, since which version is live is not known.
        let live_version = match self.lineage(name) {
            Ok(l) => l.map(|l| l.version).unwrap_or(0),
            Err(e) => {
                tracing::debug!(lineage = %name, "not cleaning a damaged lineage: {e}");
                return Ok(());
            }
        };
        let max = self.max_archive_version(name)?;
        for v in (live_version + 1)..=max {
            let files: Vec<PathBuf> = KINDS
                .iter()
                .map(|k| dir.join(format!("{k}{v}.pem")))
                .collect();
            let present = files.iter().filter(|f| f.exists()).count();
            if present > 0 && present < KINDS.len() {
                for f in files.into_iter().filter(|f| f.exists()) {
                    fs::remove_file(&f).map_err(io_err("remove", &f))?;
                    removed.push(f);
                }
            }
        }
        Ok(())
    }
}

fn remove_temps(dir: &Path, removed: &mut Vec<PathBuf>) -> Result<(), StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("read", dir))?;
        if !entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            continue;
        }
        let p = entry.path();
        let r = if p.is_dir() && !p.is_symlink() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        r.map_err(io_err("remove", &p))?;
        removed.push(p);
    }
    Ok(())
}

/// `"cert12.pem"` with kind `"cert"` -> 12.
pub fn version_of(file: &str, kind: &str) -> Option<u32> {
    let digits = file.strip_prefix(kind)?.strip_suffix(".pem")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

const LIVE_README: &str = "This directory contains your keys and certificates.

`privkey.pem`  : the private key for your certificate.
`fullchain.pem`: the certificate file used in most server software.
`chain.pem`    : used for OCSP stapling in Nginx >=1.3.7.
`cert.pem`     : will break many server configurations, and should not be used
                 without reading further documentation.

These files are links into ../../archive and are managed by certkeep
(certbot-compatible layout). Point nginx at the files here, never at archive/.
";

#[cfg(test)]
mod tests;
