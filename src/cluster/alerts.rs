//! Shared alert state: in cluster mode the alerts about the fleet (a node
//! whose deploy failed or that lags behind, a renewal that failed) live in
//! one alert state in etcd (`PREFIX/v1/alerts`, the same format as
//! `state/alerts.json`), read, updated and delivered by one node at a time
//! under the etcd lock `lock/alerts`. Every node observes; the state machine
//! turns a problem several nodes see into one notification, and its
//! resolution into one "resolved".
//!
//! The observations are pure functions of what etcd holds
//! ([`deploy_observations`], [`renewal_observations`]); [`evaluate`] is the
//! IO around them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use super::decide::{self, NodeDeploy};
use super::etcd::{Etcd, EtcdError, Expect, Lease};
use super::keys::{Keys, Parsed};
use super::model::{DeployReport, VersionRecord};
use super::order::Ordered;
use crate::alert::{AlertState, Problem, Severity};
use crate::config::Settings;

/// Key of "node `node` does not serve the current version of `lineage`"
/// (its deploy failed, or it lags behind).
pub fn deploy_key(lineage: &str, node: &str) -> String {
    format!("cluster:{lineage}@{node}:deploy")
}

/// How often a node looks at the fleet (and retries a failed deploy): a
/// quarter of `deploy_lag_alert_after`, between 1 s and 60 s.
pub fn fleet_every(deploy_lag_alert_after: Duration) -> Duration {
    (deploy_lag_alert_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Problems and checked-OK keys of every node's deploy of every lineage.
/// The nodes judged are the live ones and every node that reported a
/// deploy of the lineage (a node whose daemon is down still serves what it
/// had: it lags once a new version is older than `bound`).
pub fn deploy_observations(
    current: &BTreeMap<String, VersionRecord>,
    reports: &BTreeMap<String, BTreeMap<String, DeployReport>>,
    live: &BTreeSet<String>,
    now: OffsetDateTime,
    bound: time::Duration,
) -> (Vec<Problem>, Vec<String>) {
    let empty = BTreeMap::new();
    let mut problems = Vec::new();
    let mut ok = Vec::new();
    for (name, cur) in current {
        let reps = reports.get(name).unwrap_or(&empty);
        let nodes: BTreeSet<String> = live.iter().chain(reps.keys()).cloned().collect();
        for (node, state) in decide::deploy_states(cur, reps, &nodes, now, bound) {
            let key = deploy_key(name, &node);
            let base = |summary: String| {
                Problem::new(key.clone(), Severity::Warning, summary)
                    .detail("node", node.clone())
                    .detail("certificate", name.clone())
                    .detail("version", cur.version.to_string())
                    .detail("serial", cur.serial.clone())
                    .detail(
                        "daemon",
                        if live.contains(&node) {
                            "running (heartbeat in etcd)"
                        } else {
                            "not running (no heartbeat in etcd)"
                        },
                    )
            };
            match state {
                NodeDeploy::Current => ok.push(key),
                NodeDeploy::Pending => {}
                NodeDeploy::Failed { error } => problems.push(
                    base(format!(
                        "node {node} failed to deploy {name} version {}",
                        cur.version
                    ))
                    .detail("problem", error),
                ),
                NodeDeploy::Lagging { serving } => problems.push(
                    base(format!(
                        "node {node} still serves an older certificate of {name}"
                    ))
                    .detail(
                        "serving",
                        serving.unwrap_or_else(|| "nothing reported".into()),
                    )
                    .detail(
                        "problem",
                        format!(
                            "version {} was written {} ago and node {node} has not deployed it",
                            cur.version,
                            crate::renew::plan::human(now - cur.written_at)
                        ),
                    ),
                ),
            }
        }
    }
    (problems, ok)
}

/// What this node's renewal check tells the shared state: a failed order is
/// the lineage's renewal problem (the key single-host mode uses, so an
/// alert reads the same); a lineage renewed, written or not due is
/// checked-OK; a lineage whose lock another node holds is not checked here.
pub fn renewal_observations(
    results: &[(String, Ordered)],
    node: &str,
) -> (Vec<Problem>, Vec<String>) {
    let mut problems = Vec::new();
    let mut ok = Vec::new();
    for (name, r) in results {
        let key = crate::renew::alerts::key(name);
        match r {
            Ordered::Failed(e) => problems.push(
                Problem::new(key, Severity::Critical, format!("renewal of {name} failed"))
                    .detail("certificate", name.clone())
                    .detail("node", node.to_string())
                    .detail("problem", e.clone()),
            ),
            Ordered::Busy => {}
            Ordered::NotDue
            | Ordered::AlreadyRenewed { .. }
            | Ordered::Written { .. }
            | Ordered::LostRace => ok.push(key),
        }
    }
    (problems, ok)
}

/// Observations waiting to reach the shared state (kept by the node until
/// an evaluation took them).
#[derive(Debug, Default)]
pub struct Pending {
    problems: BTreeMap<String, Problem>,
    ok: BTreeSet<String>,
}

impl Pending {
    /// Adds observations; a later one of a key replaces an earlier one.
    pub fn add(&mut self, problems: Vec<Problem>, ok: Vec<String>) {
        for p in problems {
            self.ok.remove(&p.key);
            self.problems.insert(p.key.clone(), p);
        }
        for k in ok {
            self.problems.remove(&k);
            self.ok.insert(k);
        }
    }

    fn take(&mut self) -> (Vec<Problem>, Vec<String>) {
        let p = std::mem::take(&mut self.problems).into_values().collect();
        let o = std::mem::take(&mut self.ok).into_iter().collect();
        (p, o)
    }

    pub fn is_empty(&self) -> bool {
        self.problems.is_empty() && self.ok.is_empty()
    }

    /// Adds `newer`'s observations over these.
    pub fn absorb(&mut self, newer: Pending) {
        self.add(
            newer.problems.into_values().collect(),
            newer.ok.into_iter().collect(),
        );
    }
}

/// What an evaluation did.
#[derive(Debug)]
pub enum Evaluated {
    /// The state was read, updated, delivered and written back; the nodes
    /// live at that moment.
    Done { live: BTreeSet<String> },
    /// Another node holds `lock/alerts`: try again at the next round.
    Busy,
}

/// Whether `node` judges every node's deploys this round: the first by
/// name of the nodes live at the last round (all of them before any round
/// was seen). Judging reads every node's deploy report (50 000 of them,
/// about 12 MB, at 50 nodes x 1000 lineages), so one node does it, not
/// each; when it dies its heartbeat goes and the next one takes over.
pub fn judges_fleet(node: &str, last_live: &BTreeSet<String>) -> bool {
    decide::reports_unreachable(node, last_live)
}

/// Reads the fleet (when `fleet` holds the current versions: this node
/// judges it, see [`judges_fleet`]), adds this node's `pending`
/// observations, and delivers what the shared state decides, all under
/// `lock/alerts`. A node with nothing to add and no fleet to judge only
/// reads which nodes are live, without the lock. Returns the observations
/// not taken (all of them when busy or on an error; none when they reached
/// the shared state). Nothing is read or sent (and `Done` is returned with
/// no live nodes) when no channel is set.
pub async fn evaluate(
    config: &Settings,
    etcd: &Etcd,
    keys: &Keys,
    lease: &Lease,
    mut pending: Pending,
    fleet: Option<BTreeMap<String, VersionRecord>>,
) -> (Pending, Result<Evaluated, String>) {
    let Some(cc) = &config.cluster else {
        return (pending, Ok(Evaluated::Busy));
    };
    if config.alert.channels.is_empty() {
        return (
            Pending::default(),
            Ok(Evaluated::Done {
                live: BTreeSet::new(),
            }),
        );
    }
    if fleet.is_none() && pending.is_empty() {
        return (
            pending,
            live_nodes(etcd, keys)
                .await
                .map(|live| Evaluated::Done { live }),
        );
    }
    let lock = match etcd
        .lock(&keys.lock_alerts(), lease, cc.request_timeout.get())
        .await
    {
        Ok(l) => l,
        Err(EtcdError::Timeout { .. }) => return (pending, Ok(Evaluated::Busy)),
        Err(e) => return (pending, Err(e.to_string())),
    };
    let (problems, ok) = pending.take();
    let r = locked(config, etcd, keys, problems.clone(), ok.clone(), fleet).await;
    if r.is_err() {
        pending.add(problems, ok);
    }
    if let Err(e) = etcd.unlock(&lock).await {
        tracing::warn!("cluster: cannot unlock the alert state (it goes with the lease): {e}");
    }
    (pending, r.map(|live| Evaluated::Done { live }))
}

/// The nodes with a heartbeat.
async fn live_nodes(etcd: &Etcd, keys: &Keys) -> Result<BTreeSet<String>, String> {
    Ok(etcd
        .get_prefix(&keys.nodes())
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .filter_map(|kv| match keys.parse(&kv.key) {
            Some(Parsed::Node(n)) => Some(n),
            _ => None,
        })
        .collect())
}

async fn locked(
    config: &Settings,
    etcd: &Etcd,
    keys: &Keys,
    mut problems: Vec<Problem>,
    mut ok: Vec<String>,
    fleet: Option<BTreeMap<String, VersionRecord>>,
) -> Result<BTreeSet<String>, String> {
    let bound = config
        .cluster
        .as_ref()
        .map(|c| {
            time::Duration::try_from(c.deploy_lag_alert_after.get()).unwrap_or(time::Duration::MAX)
        })
        .unwrap_or(time::Duration::MAX);
    let live = live_nodes(etcd, keys).await?;
    if let Some(current) = fleet {
        // The current versions come from the node's watch; the reports
        // are read (they live under deploy/, outside the watched prefix).
        let mut reports: BTreeMap<String, BTreeMap<String, DeployReport>> = BTreeMap::new();
        for kv in etcd
            .get_prefix(&keys.deploys())
            .await
            .map_err(|e| e.to_string())?
        {
            if let Some(Parsed::Deploy { lineage, node }) = keys.parse(&kv.key) {
                if let Ok(r) = serde_json::from_slice(&kv.value) {
                    reports.entry(lineage).or_default().insert(node, r);
                }
            }
        }
        let (p, o) =
            deploy_observations(&current, &reports, &live, OffsetDateTime::now_utc(), bound);
        problems.extend(p);
        ok.extend(o);
    }

    let key = keys.alerts();
    let stored = etcd.get(&key).await.map_err(|e| e.to_string())?;
    let mut state = match &stored {
        None => AlertState::default(),
        Some(kv) => parse_state(&kv.key, &kv.value)?,
    };
    let now = SystemTime::now();
    crate::alert::observe_state(&mut state, &config.alert, now, problems, &ok);
    let report = crate::alert::flush_state(&mut state, &config.alert, now)
        .await
        .map_err(|e| e.to_string())?;
    if !report.ok() {
        tracing::error!("some alerts could not be delivered yet; they stay queued in the shared state and are retried");
    }
    let json = serde_json::to_vec(&state).map_err(|e| e.to_string())?;
    let expect = match &stored {
        None => Expect::Absent,
        Some(kv) => Expect::Revision(kv.mod_revision),
    };
    let written = etcd
        .put_if(&key, expect, &[(&key, &json)])
        .await
        .map_err(|e| e.to_string())?;
    if !written {
        tracing::warn!("cluster: {key} changed while this node held lock/alerts (its lease expired?); this round's alert state is not written");
    }
    Ok(live)
}

/// The shared state from etcd. A newer format is refused (upgrade first);
/// a damaged one is replaced by an empty state, logged, so alerts flow.
fn parse_state(key: &str, value: &[u8]) -> Result<AlertState, String> {
    #[derive(serde::Deserialize)]
    struct Version {
        version: u32,
    }
    if let Ok(v) = serde_json::from_slice::<Version>(value) {
        if v.version > crate::alert::state::STATE_VERSION {
            return Err(format!(
                "the shared alert state {key} has format version {}, newer than this certkeep understands ({}); upgrade certkeep on this node",
                v.version,
                crate::alert::state::STATE_VERSION
            ));
        }
    }
    match serde_json::from_slice::<AlertState>(value) {
        Ok(mut s) => {
            s.migrate_legacy_keys();
            Ok(s)
        }
        Err(e) => {
            tracing::error!("the shared alert state {key} is not valid ({e}); starting with an empty one, so open alerts may be announced again");
            Ok(AlertState::default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    fn version(v: u64, serial: &str) -> VersionRecord {
        VersionRecord {
            version: v,
            serial: serial.into(),
            not_before: T0,
            not_after: T0 + time::Duration::days(90),
            domains: vec!["site.test".into()],
            cert: String::new(),
            chain: String::new(),
            sealed_key: String::new(),
            profile: None,
            ordered_by: "a".into(),
            written_at: T0,
        }
    }

    fn report(version: u64, serial: &str, attempted: u64, error: Option<&str>) -> DeployReport {
        DeployReport {
            serving_version: version,
            serving_serial: serial.into(),
            attempted_version: attempted,
            ok: error.is_none(),
            error: error.map(str::to_string),
            at: T0,
        }
    }

    fn set(n: &[&str]) -> BTreeSet<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_node_judges_the_fleet_the_first_live_by_name() {
        let live: BTreeSet<String> = ["b", "c", "d"].iter().map(|s| s.to_string()).collect();
        assert!(judges_fleet("b", &live));
        assert!(!judges_fleet("c", &live));
        assert!(!judges_fleet("d", &live));
        // A node not (yet) among those seen, before them by name: it.
        assert!(judges_fleet("a", &live));
        // Before any round every node judges.
        assert!(judges_fleet("z", &BTreeSet::new()));
    }

    #[test]
    fn a_failed_deploy_names_the_node_and_the_others_are_ok() {
        let current = BTreeMap::from([("site".to_string(), version(2, "bb"))]);
        let reports = BTreeMap::from([(
            "site".to_string(),
            BTreeMap::from([
                ("a".to_string(), report(2, "bb", 2, None)),
                ("b".to_string(), report(2, "bb", 2, None)),
                ("c".to_string(), report(1, "aa", 2, Some("nginx -t failed"))),
            ]),
        )]);
        let (p, ok) = deploy_observations(
            &current,
            &reports,
            &set(&["a", "b", "c"]),
            T0 + time::Duration::seconds(1),
            time::Duration::minutes(10),
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "cluster:site@c:deploy");
        assert_eq!(p[0].details["node"], "c");
        assert_eq!(p[0].details["problem"], "nginx -t failed");
        assert!(p[0].summary.contains("node c failed"), "{}", p[0].summary);
        assert_eq!(ok, ["cluster:site@a:deploy", "cluster:site@b:deploy"]);
    }

    #[test]
    fn a_stopped_node_lags_only_after_the_bound() {
        let current = BTreeMap::from([("site".to_string(), version(2, "bb"))]);
        let reports = BTreeMap::from([(
            "site".to_string(),
            BTreeMap::from([
                ("a".to_string(), report(2, "bb", 2, None)),
                ("c".to_string(), report(1, "aa", 1, None)),
            ]),
        )]);
        // c has no heartbeat: its daemon is down.
        let live = set(&["a"]);
        let bound = time::Duration::seconds(30);
        let (p, ok) = deploy_observations(
            &current,
            &reports,
            &live,
            T0 + time::Duration::seconds(29),
            bound,
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(ok, ["cluster:site@a:deploy"]);
        let (p, _) = deploy_observations(
            &current,
            &reports,
            &live,
            T0 + time::Duration::seconds(30),
            bound,
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "cluster:site@c:deploy");
        assert_eq!(p[0].details["serving"], "aa");
        assert_eq!(p[0].details["daemon"], "not running (no heartbeat in etcd)");
    }

    #[test]
    fn renewal_results_map_to_the_single_host_key() {
        let results = vec![
            ("a".to_string(), Ordered::Failed("CA said no".into())),
            ("b".to_string(), Ordered::Busy),
            ("c".to_string(), Ordered::NotDue),
            (
                "d".to_string(),
                Ordered::Written {
                    version: 2,
                    serial: "01".into(),
                },
            ),
        ];
        let (p, ok) = renewal_observations(&results, "n1");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "renew:a:renewal");
        assert_eq!(p[0].severity, Severity::Critical);
        assert_eq!(p[0].details["node"], "n1");
        assert_eq!(ok, ["renew:c:renewal", "renew:d:renewal"]);
    }

    #[test]
    fn pending_keeps_the_latest_observation_per_key() {
        let mut p = Pending::default();
        p.add(vec![Problem::new("k", Severity::Warning, "bad")], vec![]);
        p.add(vec![], vec!["k".into()]);
        let (bad, ok) = p.take();
        assert!(bad.is_empty());
        assert_eq!(ok, ["k"]);
        // A failed evaluation gives them back; newer ones made meanwhile win.
        let mut back = Pending::default();
        back.add(vec![], vec!["k".into(), "j".into()]);
        p.add(vec![Problem::new("k", Severity::Warning, "bad")], vec![]);
        back.absorb(p);
        let (bad, ok) = back.take();
        assert_eq!(bad.len(), 1);
        assert_eq!(ok, ["j"]);
    }

    #[test]
    fn fleet_round_is_a_quarter_of_the_lag_bound_within_limits() {
        assert_eq!(
            fleet_every(Duration::from_secs(600)),
            Duration::from_secs(60)
        );
        assert_eq!(fleet_every(Duration::from_secs(8)), Duration::from_secs(2));
        assert_eq!(fleet_every(Duration::from_secs(1)), Duration::from_secs(1));
    }

    #[test]
    fn shared_state_newer_format_is_refused_and_garbage_replaced() {
        let e = parse_state("/p/v1/alerts", br#"{"version": 99}"#).unwrap_err();
        assert!(e.contains("upgrade certkeep"), "{e}");
        assert_eq!(
            parse_state("/p/v1/alerts", b"garbage").unwrap(),
            AlertState::default()
        );
    }
}
