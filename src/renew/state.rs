//! What certkeep remembers per lineage across runs, in
//! `<store>/state/lineages.json`: the version last confirmed served, a
//! version stored but not served (every later run deploys it again, without a
//! new order, and fails until it is served), and the serial `certkeep revoke`
//! revoked (the next run replaces it whatever the ARI window says), and the
//! ACME profile each stored version was ordered with (`certkeep
//! certificates` shows it).
//!
//! Unlike the ARI windows this is not a cache: a file that cannot be read
//! stops the run (with the path and what to do) rather than forgetting a
//! certificate nginx does not serve.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::store::{atomic, io_err, Store, StoreError};

/// How many versions' profiles are kept per lineage.
const KEEP_PROFILES: usize = 8;

/// File name under `<store>/state/`.
pub(crate) const FILE: &str = "lineages.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LineageState {
    /// The version last deployed and confirmed served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<u32>,
    /// A version stored in archive/ and not (yet) confirmed served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    /// Serial (lowercase hex) of a certificate revoked with `certkeep revoke`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_serial: Option<String>,
    /// The ACME profile each version was ordered with, by version; a
    /// version ordered with the CA's default profile is absent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profiles: BTreeMap<u32, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub version: u32,
    /// When it was first stored for deploy.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

impl LineageState {
    /// The stored version to deploy again instead of ordering, if any: the
    /// pending version, unless the live links already moved past it (a later
    /// `certkeep issue`).
    pub(crate) fn redeploy(&self, live: Option<u32>) -> Option<u32> {
        let p = self.pending.as_ref()?;
        (p.version >= live.unwrap_or(0)).then_some(p.version)
    }

    /// The profile `version` was ordered with (None: the CA's default, or
    /// ordered before profiles were recorded).
    pub(crate) fn profile(&self, version: u32) -> Option<&str> {
        self.profiles.get(&version).map(String::as_str)
    }

    /// Whether `serial` is the certificate `certkeep revoke` revoked.
    pub(crate) fn is_revoked(&self, serial: &str) -> bool {
        self.revoked_serial.as_deref() == Some(serial)
    }
}

/// The state of every lineage, as stored.
#[derive(Debug)]
pub(crate) struct LineageStates {
    path: PathBuf,
    lineages: BTreeMap<String, LineageState>,
    dirty: bool,
}

impl LineageStates {
    /// Loads the state; a missing file is an empty state.
    pub(crate) fn load(store: &Store) -> Result<LineageStates, StoreError> {
        let path = store.state_dir().join(FILE);
        let lineages = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Io {
                action: "parse (fix or remove it; a removed file forgets which versions await their deploy)",
                path: path.clone(),
                source: std::io::Error::other(e),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        Ok(LineageStates {
            path,
            lineages,
            dirty: false,
        })
    }

    /// An empty state that is never saved (dry runs).
    pub(crate) fn in_memory() -> LineageStates {
        LineageStates {
            path: PathBuf::new(),
            lineages: BTreeMap::new(),
            dirty: false,
        }
    }

    pub(crate) fn get(&self, name: &str) -> LineageState {
        self.lineages.get(name).cloned().unwrap_or_default()
    }

    fn update(&mut self, name: &str, f: impl FnOnce(&mut LineageState)) {
        let mut s = self.get(name);
        f(&mut s);
        if self.lineages.get(name).cloned().unwrap_or_default() != s {
            if s == LineageState::default() {
                self.lineages.remove(name);
            } else {
                self.lineages.insert(name.to_string(), s);
            }
            self.dirty = true;
        }
    }

    /// `version` was deployed and confirmed served: nothing is pending.
    pub(crate) fn served(&mut self, name: &str, version: u32) {
        self.update(name, |s| {
            s.served = Some(version);
            s.pending = None;
            s.revoked_serial = None;
        });
    }

    /// `version` is stored but not confirmed served; keeps the first time.
    pub(crate) fn pending(&mut self, name: &str, version: u32, now: OffsetDateTime) {
        self.update(name, |s| {
            let since = match &s.pending {
                Some(p) if p.version == version => p.since,
                _ => now,
            };
            s.pending = Some(Pending { version, since });
            s.revoked_serial = None;
        });
    }

    /// Forgets a pending version that will not be deployed (superseded,
    /// unusable, or gone from the archive).
    pub(crate) fn drop_pending(&mut self, name: &str) {
        self.update(name, |s| s.pending = None);
    }

    /// `version` of `name` was ordered with `profile` (None: the CA's
    /// default). Only the last few versions are remembered.
    pub(crate) fn ordered(&mut self, name: &str, version: u32, profile: Option<&str>) {
        self.update(name, |s| {
            match profile {
                Some(p) => {
                    s.profiles.insert(version, p.to_string());
                }
                None => {
                    s.profiles.remove(&version);
                }
            }
            while s.profiles.len() > KEEP_PROFILES {
                s.profiles.pop_first();
            }
        });
    }

    /// `serial`, the current certificate of `name`, was revoked.
    pub(crate) fn revoked(&mut self, name: &str, serial: &str) {
        self.update(name, |s| s.revoked_serial = Some(serial.to_string()));
    }

    /// Writes the state atomically (0600) if it changed.
    pub(crate) fn save(&mut self) -> Result<(), StoreError> {
        if !self.dirty || self.path.as_os_str().is_empty() {
            return Ok(());
        }
        let json = serde_json::to_vec_pretty(&self.lineages).map_err(|e| StoreError::Io {
            action: "encode",
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        if let Some(dir) = self.path.parent() {
            atomic::ensure_dir(dir, 0o700).map_err(io_err("create", dir))?;
        }
        atomic::write_file(&self.path, &json, 0o600).map_err(io_err("write", &self.path))?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn pending_versions_are_redeployed_until_served_and_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path());
        let t0 = datetime!(2026-05-01 12:00 UTC);
        let mut s = LineageStates::load(&store).unwrap();
        assert_eq!(s.get("a").redeploy(Some(1)), None);
        s.pending("a", 2, t0);
        s.pending("a", 2, t0 + time::Duration::hours(12));
        s.save().unwrap();
        let mut s = LineageStates::load(&store).unwrap();
        let a = s.get("a");
        assert_eq!(a.redeploy(Some(1)), Some(2), "rolled back to 1");
        assert_eq!(a.redeploy(Some(2)), Some(2), "no previous version");
        assert_eq!(a.redeploy(Some(3)), None, "live moved past it");
        assert_eq!(a.pending.unwrap().since, t0, "the first failure is kept");
        s.served("a", 2);
        s.save().unwrap();
        let s = LineageStates::load(&store).unwrap();
        assert_eq!(s.get("a").redeploy(Some(1)), None);
        assert_eq!(s.get("a").served, Some(2));
    }

    #[test]
    fn profiles_are_kept_per_version_and_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path());
        let mut s = LineageStates::load(&store).unwrap();
        s.ordered("a", 1, Some("classic"));
        s.ordered("a", 2, None);
        s.ordered("a", 3, Some("shortlived"));
        s.save().unwrap();
        let s = LineageStates::load(&store).unwrap();
        let a = s.get("a");
        assert_eq!(a.profile(1), Some("classic"));
        assert_eq!(a.profile(2), None);
        assert_eq!(a.profile(3), Some("shortlived"));
        let text = std::fs::read_to_string(d.path().join("state").join(FILE)).unwrap();
        assert!(text.contains("\"3\": \"shortlived\""), "{text}");
        let mut s = s;
        for v in 4..20 {
            s.ordered("a", v, Some("tlsserver"));
        }
        let a = s.get("a");
        assert_eq!(a.profiles.len(), KEEP_PROFILES);
        assert_eq!(a.profile(19), Some("tlsserver"));
        assert_eq!(a.profile(3), None);
    }

    #[test]
    fn revocation_is_remembered_for_that_serial_only() {
        let d = tempfile::tempdir().unwrap();
        let mut s = LineageStates::load(&Store::new(d.path())).unwrap();
        s.revoked("a", "0abc");
        assert!(s.get("a").is_revoked("0abc"));
        assert!(!s.get("a").is_revoked("0abd"));
        s.served("a", 3);
        assert!(!s.get("a").is_revoked("0abc"), "a new version replaces it");
    }

    #[test]
    fn an_unreadable_state_stops_the_run_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path());
        std::fs::create_dir_all(store.state_dir()).unwrap();
        std::fs::write(store.state_dir().join(FILE), "{not json").unwrap();
        let e = LineageStates::load(&store).unwrap_err().to_string();
        assert!(e.contains(FILE) && e.contains("fix or remove"), "{e}");
    }
}
