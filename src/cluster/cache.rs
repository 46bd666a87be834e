//! What a node knows of the shared state, kept across its etcd sessions
//! (pure). With it a node reads the lineages once, then follows the watch
//! from the revision it has applied: a reconnect resumes the watch instead
//! of reading every lineage again, renewal checks plan from memory instead
//! of one read per lineage, and a deploy report is written only when it
//! says something new.

use std::collections::{BTreeMap, HashMap};

use super::etcd::{Change, Kv};
use super::keys::{Keys, Parsed};
use super::model::{DeployReport, VersionRecord};

/// What a deploy report says, without its date: two reports that say the
/// same need one write.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Said {
    serving_version: u64,
    serving_serial: String,
    attempted_version: u64,
    ok: bool,
    error: Option<String>,
}

impl From<&DeployReport> for Said {
    fn from(r: &DeployReport) -> Said {
        Said {
            serving_version: r.serving_version,
            serving_serial: r.serving_serial.to_ascii_lowercase(),
            attempted_version: r.attempted_version,
            ok: r.ok,
            error: r.error.clone(),
        }
    }
}

/// A shared version from the watch or a read, or why it could not be used.
pub type Incoming = (String, Result<VersionRecord, String>);

#[derive(Debug, Default)]
pub struct Cache {
    /// The etcd revision through which lineage changes are applied; 0 while
    /// nothing is known (read every lineage).
    revision: i64,
    /// Every lineage's `current` version, as of `revision`.
    shared: BTreeMap<String, VersionRecord>,
    /// What this node's report says, per lineage, as last read or written.
    reported: HashMap<String, Said>,
    /// Whether `reported` was read from etcd (once per process).
    reports_loaded: bool,
    /// The last sync left a lineage not deployed here: retry it (kept
    /// across sessions, since a resumed session does not sync everything).
    pub sync_failed: bool,
}

fn parse_record(kv: &Kv) -> Result<VersionRecord, String> {
    serde_json::from_slice(&kv.value).map_err(|e| format!("{} is not a valid record: {e}", kv.key))
}

impl Cache {
    /// The revision a lineage watch starts from: the one after the last
    /// applied, or None when every lineage must be read first.
    pub fn resume_from(&self) -> Option<i64> {
        (self.revision > 0).then_some(self.revision + 1)
    }

    /// etcd compacted the history the watch needed: read everything again.
    pub fn forget_revision(&mut self) {
        self.revision = 0;
    }

    /// The revision applied so far, to [`Cache::rewind`] to when applying
    /// what came after it failed (the watch then replays it).
    pub fn mark(&self) -> i64 {
        self.revision
    }

    pub fn rewind(&mut self, mark: i64) {
        self.revision = mark;
    }

    /// A full read of `lineage/` at `revision`: replaces what is known and
    /// returns every `current` version in it.
    pub fn load(&mut self, keys: &Keys, kvs: &[Kv], revision: i64) -> Vec<Incoming> {
        self.shared.clear();
        self.revision = revision;
        let mut out = Vec::new();
        for kv in kvs {
            if let Some(Parsed::Current(name)) = keys.parse(&kv.key) {
                let rec = parse_record(kv);
                if let Ok(r) = &rec {
                    self.shared.insert(name.clone(), r.clone());
                }
                out.push((name, rec));
            }
        }
        out
    }

    /// Applies a batch of watched changes; returns the lineages whose
    /// `current` version changed (the last write of each), in key order.
    /// Other keys (`previous`, `ari`) only move the revision on.
    pub fn apply(&mut self, keys: &Keys, changes: &[Change]) -> Vec<Incoming> {
        let mut changed: BTreeMap<String, Result<VersionRecord, String>> = BTreeMap::new();
        for c in changes {
            let (key, revision) = match c {
                Change::Put(kv) => (&kv.key, kv.mod_revision),
                Change::Delete { key, mod_revision } => (key, *mod_revision),
            };
            self.revision = self.revision.max(revision);
            let Some(Parsed::Current(name)) = keys.parse(key) else {
                continue;
            };
            match c {
                Change::Put(kv) => {
                    let rec = parse_record(kv);
                    match &rec {
                        Ok(r) => {
                            self.shared.insert(name.clone(), r.clone());
                        }
                        Err(_) => {
                            self.shared.remove(&name);
                        }
                    }
                    changed.insert(name, rec);
                }
                Change::Delete { .. } => {
                    // The cluster dropped the lineage (e.g. `cluster init
                    // --force`): the local copy stays; a later version is
                    // reported afresh.
                    self.shared.remove(&name);
                    self.reported.remove(&name);
                    changed.remove(&name);
                }
            }
        }
        changed.into_iter().collect()
    }

    /// Every shared version known now, to sync again (a failed deploy
    /// retried) without reading etcd.
    pub fn all(&self) -> Vec<Incoming> {
        self.shared
            .iter()
            .map(|(n, r)| (n.clone(), Ok(r.clone())))
            .collect()
    }

    /// The shared versions known now (renewal checks plan from these).
    pub fn shared(&self) -> &BTreeMap<String, VersionRecord> {
        &self.shared
    }

    pub fn reports_loaded(&self) -> bool {
        self.reports_loaded
    }

    /// This node's reports as read from `deploy/<node>/`.
    pub fn load_reports(&mut self, keys: &Keys, node: &str, kvs: &[Kv]) {
        self.reported.clear();
        for kv in kvs {
            if let Some(Parsed::Deploy { lineage, node: n }) = keys.parse(&kv.key) {
                if n != node {
                    continue;
                }
                if let Ok(r) = serde_json::from_slice::<DeployReport>(&kv.value) {
                    self.reported.insert(lineage, Said::from(&r));
                }
            }
        }
        self.reports_loaded = true;
    }

    /// Whether `report` says something this node's report in etcd does not.
    pub fn report_needed(&self, lineage: &str, report: &DeployReport) -> bool {
        self.reported.get(lineage) != Some(&Said::from(report))
    }

    /// `report` was written.
    pub fn reported(&mut self, lineage: &str, report: &DeployReport) {
        self.reported
            .insert(lineage.to_string(), Said::from(report));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn rec(version: u64, serial: &str) -> VersionRecord {
        VersionRecord {
            version,
            serial: serial.into(),
            not_before: datetime!(2026-01-01 0:00 UTC),
            not_after: datetime!(2026-04-01 0:00 UTC),
            domains: vec!["a.test".into()],
            cert: String::new(),
            chain: String::new(),
            sealed_key: String::new(),
            profile: None,
            ordered_by: "n1".into(),
            written_at: datetime!(2026-01-01 0:00 UTC),
        }
    }

    fn put(key: String, v: &VersionRecord, rev: i64) -> Change {
        Change::Put(Kv {
            key,
            value: serde_json::to_vec(v).unwrap(),
            mod_revision: rev,
            lease: 0,
        })
    }

    fn report(version: u64, serial: &str, ok: bool, at: time::OffsetDateTime) -> DeployReport {
        DeployReport {
            serving_version: version,
            serving_serial: serial.into(),
            attempted_version: version,
            ok,
            error: (!ok).then(|| "nginx -t failed".to_string()),
            at,
        }
    }

    #[test]
    fn a_full_read_then_the_watch_from_the_next_revision() {
        let k = Keys::new("/p");
        let mut c = Cache::default();
        assert_eq!(c.resume_from(), None, "nothing known: read first");
        let kvs = [
            Kv {
                key: k.current("a"),
                value: serde_json::to_vec(&rec(1, "0a")).unwrap(),
                mod_revision: 5,
                lease: 0,
            },
            Kv {
                key: k.previous("a"),
                value: b"{}".to_vec(),
                mod_revision: 5,
                lease: 0,
            },
            Kv {
                key: k.current("b"),
                value: b"not json".to_vec(),
                mod_revision: 6,
                lease: 0,
            },
        ];
        let got = c.load(&k, &kvs, 40);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "a");
        assert_eq!(got[0].1.as_ref().unwrap().serial, "0a");
        assert_eq!(got[1].0, "b");
        assert!(got[1]
            .1
            .as_ref()
            .unwrap_err()
            .contains("/p/v1/lineage/b/current"));
        assert_eq!(c.resume_from(), Some(41));
        assert_eq!(c.shared().keys().collect::<Vec<_>>(), ["a"]);

        // Two writes of a, an ARI write, a write of c: a and c changed, the
        // last write of a wins, the revision follows the newest event.
        let changes = [
            put(k.current("a"), &rec(2, "0b"), 42),
            put(k.ari("a"), &rec(0, ""), 43),
            put(k.current("a"), &rec(3, "0c"), 44),
            put(k.current("c"), &rec(1, "1c"), 45),
        ];
        let got = c.apply(&k, &changes);
        let names: Vec<_> = got
            .iter()
            .map(|(n, r)| (n.as_str(), r.as_ref().unwrap().version))
            .collect();
        assert_eq!(names, [("a", 3), ("c", 1)]);
        assert_eq!(c.resume_from(), Some(46));
        assert_eq!(c.shared()["a"].serial, "0c");

        // Only an ARI write: nothing to sync, the revision still moves.
        assert!(c.apply(&k, &[put(k.ari("c"), &rec(0, ""), 50)]).is_empty());
        assert_eq!(c.resume_from(), Some(51));

        // A sync that failed: the watch resumes before the batch.
        let mark = c.mark();
        c.apply(&k, &[put(k.current("a"), &rec(4, "0d"), 60)]);
        assert_eq!(c.resume_from(), Some(61));
        c.rewind(mark);
        assert_eq!(c.resume_from(), Some(51));

        c.forget_revision();
        assert_eq!(c.resume_from(), None);
    }

    #[test]
    fn reports_are_written_only_when_they_say_something_new() {
        let k = Keys::new("/p");
        let mut c = Cache::default();
        let monday = datetime!(2026-01-05 0:00 UTC);
        let tuesday = datetime!(2026-01-06 0:00 UTC);
        assert!(!c.reports_loaded());
        let mine = Kv {
            key: k.deploy("a", "n1"),
            value: serde_json::to_vec(&report(2, "0B", true, monday)).unwrap(),
            mod_revision: 3,
            lease: 0,
        };
        let other = Kv {
            key: k.deploy("b", "n2"),
            value: serde_json::to_vec(&report(1, "01", true, monday)).unwrap(),
            mod_revision: 3,
            lease: 0,
        };
        c.load_reports(&k, "n1", &[mine, other]);
        assert!(c.reports_loaded());
        // The same statement a day later (serial case aside): no write.
        assert!(!c.report_needed("a", &report(2, "0b", true, tuesday)));
        // A new version, a failure, a lineage never reported, another
        // node's lineage: each needs a write.
        assert!(c.report_needed("a", &report(3, "0c", true, tuesday)));
        assert!(c.report_needed("a", &report(2, "0b", false, tuesday)));
        assert!(c.report_needed("z", &report(1, "01", true, tuesday)));
        assert!(c.report_needed("b", &report(1, "01", true, tuesday)));
        c.reported("z", &report(1, "01", true, tuesday));
        assert!(!c.report_needed("z", &report(1, "01", true, monday)));
    }

    #[test]
    fn a_deleted_lineage_is_forgotten_and_reported_again_when_it_returns() {
        let k = Keys::new("/p");
        let mut c = Cache::default();
        let now = datetime!(2026-01-05 0:00 UTC);
        c.load(&k, &[], 10);
        c.apply(&k, &[put(k.current("a"), &rec(1, "0a"), 11)]);
        c.reported("a", &report(1, "0a", true, now));
        let got = c.apply(
            &k,
            &[Change::Delete {
                key: k.current("a"),
                mod_revision: 12,
            }],
        );
        assert!(got.is_empty(), "a deletion deploys nothing");
        assert!(c.shared().is_empty());
        assert!(c.report_needed("a", &report(1, "0a", true, now)));
        // Deleted then written again in one batch: the new version counts.
        let got = c.apply(
            &k,
            &[
                Change::Delete {
                    key: k.current("b"),
                    mod_revision: 13,
                },
                put(k.current("b"), &rec(1, "0b"), 14),
            ],
        );
        assert_eq!(got.len(), 1);
        assert_eq!(c.resume_from(), Some(15));
    }
}
