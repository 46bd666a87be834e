//! Pure decisions of cluster mode (the clock is a parameter):
//! - whether every live node acknowledged a challenge,
//! - which nodes lag behind or failed a deploy,
//! - what a node must copy from etcd into its local store,
//! - whether the node holding a lineage's lock must order.

use std::collections::{BTreeMap, BTreeSet};

use time::{Duration, OffsetDateTime};

use super::model::{Ack, DeployReport, VersionRecord};
use crate::config::RenewBefore;
use crate::renew::plan::{self, AriState, Decision, Reason};

/// Where a challenge stands for the ordering node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckStatus {
    /// Every live node answered with a successful self-check: ask the CA.
    Ready,
    /// Still waiting for these nodes.
    Waiting { missing: Vec<String> },
    /// Do not ask the CA: these nodes failed their self-check, or did not
    /// answer in time, or no node is live at all (both lists empty).
    Failed {
        failed: Vec<(String, String)>,
        missing: Vec<String>,
    },
}

impl AckStatus {
    /// One line naming the nodes, for errors and alerts.
    pub fn describe(&self) -> String {
        match self {
            AckStatus::Ready => "every live node answered".into(),
            AckStatus::Waiting { missing } => format!("waiting for {}", missing.join(", ")),
            AckStatus::Failed { failed, missing } if failed.is_empty() && missing.is_empty() => {
                "no live node (no heartbeat in etcd)".into()
            }
            AckStatus::Failed { failed, missing } => {
                let mut parts: Vec<String> = failed
                    .iter()
                    .map(|(n, why)| format!("node {n} failed its self-check: {why}"))
                    .collect();
                if !missing.is_empty() {
                    parts.push(format!("no answer in time from {}", missing.join(", ")));
                }
                parts.join("; ")
            }
        }
    }
}

/// Whether every live node acknowledged a challenge published at `published`.
/// Answers from nodes that are not live are ignored; a failed self-check of a
/// live node fails at once (no need to wait for the others).
pub fn challenge_status(
    live: &BTreeSet<String>,
    acks: &BTreeMap<String, Ack>,
    published: OffsetDateTime,
    now: OffsetDateTime,
    timeout: Duration,
) -> AckStatus {
    if live.is_empty() {
        return AckStatus::Failed {
            failed: vec![],
            missing: vec![],
        };
    }
    let failed: Vec<(String, String)> = live
        .iter()
        .filter_map(|n| match acks.get(n) {
            Some(a) if !a.ok => Some((
                n.clone(),
                a.detail.clone().unwrap_or_else(|| "no detail".into()),
            )),
            _ => None,
        })
        .collect();
    let missing: Vec<String> = live
        .iter()
        .filter(|n| !acks.contains_key(*n))
        .cloned()
        .collect();
    if !failed.is_empty() {
        return AckStatus::Failed { failed, missing };
    }
    if missing.is_empty() {
        return AckStatus::Ready;
    }
    if now - published >= timeout {
        AckStatus::Failed {
            failed: vec![],
            missing,
        }
    } else {
        AckStatus::Waiting { missing }
    }
}

/// Where one node stands with a lineage's current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeDeploy {
    /// Serves the current serial.
    Current,
    /// Not yet, but the version is younger than the bound.
    Pending,
    /// Still not serving it `bound` after it was written.
    Lagging { serving: Option<String> },
    /// Its deploy of the current version failed.
    Failed { error: String },
}

impl NodeDeploy {
    pub fn is_problem(&self) -> bool {
        matches!(self, NodeDeploy::Lagging { .. } | NodeDeploy::Failed { .. })
    }
}

/// The state of every live node for a lineage's current version.
pub fn deploy_states(
    current: &VersionRecord,
    reports: &BTreeMap<String, DeployReport>,
    live: &BTreeSet<String>,
    now: OffsetDateTime,
    bound: Duration,
) -> BTreeMap<String, NodeDeploy> {
    live.iter()
        .map(|node| {
            let r = reports.get(node);
            let state = match r {
                Some(r) if r.serving_serial == current.serial => NodeDeploy::Current,
                Some(r) if !r.ok && r.attempted_version == current.version => NodeDeploy::Failed {
                    error: r.error.clone().unwrap_or_else(|| "no detail".into()),
                },
                _ if now - current.written_at >= bound => NodeDeploy::Lagging {
                    serving: r.map(|r| r.serving_serial.clone()),
                },
                _ => NodeDeploy::Pending,
            };
            (node.clone(), state)
        })
        .collect()
}

/// What to do with one shared lineage on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncAction {
    /// The local store already serves the shared serial.
    UpToDate,
    /// Write the shared version into the local store and deploy it.
    Install { local_serial: Option<String> },
    /// This node's config has no such certificate: left alone, reported.
    NotConfigured,
    /// The names in etcd differ from this node's config: not deployed, reported.
    DomainsDiffer {
        configured: Vec<String>,
        shared: Vec<String>,
    },
}

/// One shared lineage as seen by a node.
#[derive(Debug, Clone)]
pub struct SyncFacts<'a> {
    pub shared_serial: &'a str,
    pub shared_domains: &'a [String],
    /// Serial of the local `live/` certificate, if any.
    pub local_serial: Option<&'a str>,
    /// Domains of the node's `[[certificate]]` with this name, if any.
    pub configured: Option<&'a [String]>,
}

fn domain_set(d: &[String]) -> BTreeSet<String> {
    d.iter().map(|s| s.to_ascii_lowercase()).collect()
}

/// What a node must do to serve the shared version of a lineage.
pub fn sync_action(f: &SyncFacts<'_>) -> SyncAction {
    let Some(configured) = f.configured else {
        return SyncAction::NotConfigured;
    };
    if domain_set(configured) != domain_set(f.shared_domains) {
        return SyncAction::DomainsDiffer {
            configured: configured.to_vec(),
            shared: f.shared_domains.to_vec(),
        };
    }
    match f.local_serial {
        Some(s) if s.eq_ignore_ascii_case(f.shared_serial) => SyncAction::UpToDate,
        other => SyncAction::Install {
            local_serial: other.map(str::to_string),
        },
    }
}

/// What the node holding a lineage's lock does after reading it again.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderDecision {
    /// Order a new version; the write must find `expected_version` current.
    Order {
        reason: Reason,
        expected_version: Option<u64>,
    },
    /// Another node wrote a new version since the plan: nothing to do.
    AlreadyRenewed { version: u64, by: String },
    /// Not due (any more).
    NotDue { at: OffsetDateTime },
}

/// `planned` is the version the plan looked at (None: no version in etcd);
/// `reread` is what the lock holder read under the lock.
pub fn order_decision(
    planned: Option<u64>,
    reread: Option<&VersionRecord>,
    wanted_domains: &[String],
    renew_before: Option<RenewBefore>,
    ari: Option<&AriState>,
    now: OffsetDateTime,
) -> OrderDecision {
    let Some(cur) = reread else {
        return OrderDecision::Order {
            reason: Reason::NoCertificate,
            expected_version: None,
        };
    };
    if planned != Some(cur.version) {
        return OrderDecision::AlreadyRenewed {
            version: cur.version,
            by: cur.ordered_by.clone(),
        };
    }
    match plan_shared(cur, wanted_domains, renew_before, ari, now) {
        Decision::Due(reason) => OrderDecision::Order {
            reason,
            expected_version: Some(cur.version),
        },
        Decision::NotDue { at, .. } => OrderDecision::NotDue { at },
    }
}

/// The single-host planner applied to a shared version.
pub fn plan_shared(
    cur: &VersionRecord,
    wanted_domains: &[String],
    renew_before: Option<RenewBefore>,
    ari: Option<&AriState>,
    now: OffsetDateTime,
) -> Decision {
    plan::decide(
        &plan::Facts {
            not_before: cur.not_before,
            not_after: cur.not_after,
            serial: &cur.serial,
            cert_domains: &cur.domains,
            wanted_domains,
            renew_before,
            ari,
            // Revocations are recorded in a host's own store state.
            revoked: false,
        },
        now,
    )
}

/// Whether etcd, unreachable since `since`, has been out of reach long
/// enough to alert (`since` None: it answers).
pub fn unreachable_alert(
    since: Option<OffsetDateTime>,
    now: OffsetDateTime,
    bound: Duration,
) -> bool {
    since.is_some_and(|s| now - s >= bound)
}

/// Whether `node` is the one that reports an unreachable etcd for the
/// cluster: the first by name of the nodes last seen live (with itself).
/// The shared alert state is out of reach then, so the others only log it.
pub fn reports_unreachable(node: &str, last_live: &BTreeSet<String>) -> bool {
    last_live.iter().all(|n| n.as_str() >= node)
}

/// The pause before the next attempt to reach etcd: 1 s after a session
/// that joined the cluster (or before the first attempt), else twice the
/// last pause, at most 30 s.
pub fn retry_pause(last: Option<std::time::Duration>, joined: bool) -> std::time::Duration {
    const FIRST: std::time::Duration = std::time::Duration::from_secs(1);
    const MAX: std::time::Duration = std::time::Duration::from_secs(30);
    match last {
        Some(p) if !joined => (p * 2).min(MAX),
        _ => FIRST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }
    fn ack(ok: bool, detail: Option<&str>) -> Ack {
        Ack {
            ok,
            detail: detail.map(str::to_string),
            at: T0,
        }
    }
    fn acks(v: &[(&str, Ack)]) -> BTreeMap<String, Ack> {
        v.iter().map(|(n, a)| (n.to_string(), a.clone())).collect()
    }

    #[test]
    fn ready_only_when_every_live_node_acknowledged_success() {
        let live = set(&["a", "b", "c"]);
        let all = acks(&[
            ("a", ack(true, None)),
            ("b", ack(true, None)),
            ("c", ack(true, None)),
        ]);
        let s = challenge_status(&live, &all, T0, T0, Duration::seconds(60));
        assert_eq!(s, AckStatus::Ready);
        let two = acks(&[("a", ack(true, None)), ("c", ack(true, None))]);
        assert_eq!(
            challenge_status(
                &live,
                &two,
                T0,
                T0 + Duration::seconds(59),
                Duration::seconds(60)
            ),
            AckStatus::Waiting {
                missing: vec!["b".into()]
            }
        );
    }

    #[test]
    fn missing_answer_fails_at_the_timeout_naming_the_node() {
        let live = set(&["a", "b", "c"]);
        let two = acks(&[("a", ack(true, None)), ("c", ack(true, None))]);
        let s = challenge_status(
            &live,
            &two,
            T0,
            T0 + Duration::seconds(60),
            Duration::seconds(60),
        );
        assert_eq!(
            s,
            AckStatus::Failed {
                failed: vec![],
                missing: vec!["b".into()]
            }
        );
        assert_eq!(s.describe(), "no answer in time from b");
    }

    #[test]
    fn a_failed_self_check_fails_at_once() {
        let live = set(&["a", "b", "c"]);
        let a = acks(&[("b", ack(false, Some("404 from nginx")))]);
        let s = challenge_status(&live, &a, T0, T0, Duration::seconds(60));
        assert_eq!(
            s,
            AckStatus::Failed {
                failed: vec![("b".into(), "404 from nginx".into())],
                missing: vec!["a".into(), "c".into()]
            }
        );
        let d = s.describe();
        assert!(
            d.contains("node b failed its self-check: 404 from nginx"),
            "{d}"
        );
        assert!(d.contains("no answer in time from a, c"), "{d}");
    }

    #[test]
    fn answers_of_dead_nodes_are_ignored_and_no_live_node_fails() {
        let live = set(&["a"]);
        let a = acks(&[("a", ack(true, None)), ("gone", ack(false, Some("x")))]);
        assert_eq!(
            challenge_status(&live, &a, T0, T0, Duration::seconds(60)),
            AckStatus::Ready
        );
        let s = challenge_status(&set(&[]), &a, T0, T0, Duration::seconds(60));
        assert_eq!(
            s,
            AckStatus::Failed {
                failed: vec![],
                missing: vec![]
            }
        );
        assert!(s.describe().contains("no live node"));
    }

    fn version(v: u64, serial: &str, written: OffsetDateTime) -> VersionRecord {
        VersionRecord {
            version: v,
            serial: serial.into(),
            not_before: datetime!(2026-02-01 0:00 UTC),
            not_after: datetime!(2026-05-02 0:00 UTC),
            domains: vec!["a.test".into(), "www.a.test".into()],
            cert: String::new(),
            chain: String::new(),
            sealed_key: String::new(),
            profile: None,
            ordered_by: "a".into(),
            written_at: written,
        }
    }
    fn report(
        serving_version: u64,
        serial: &str,
        attempted: u64,
        ok: bool,
        error: Option<&str>,
    ) -> DeployReport {
        DeployReport {
            serving_version,
            serving_serial: serial.into(),
            attempted_version: attempted,
            ok,
            error: error.map(str::to_string),
            at: T0,
        }
    }

    #[test]
    fn deploy_states_name_current_pending_lagging_and_failed_nodes() {
        let cur = version(3, "cc", T0);
        let reports: BTreeMap<String, DeployReport> = [
            ("a", report(3, "cc", 3, true, None)),
            ("b", report(2, "bb", 3, false, Some("nginx -t failed"))),
            ("c", report(2, "bb", 2, true, None)),
            ("gone", report(1, "aa", 1, true, None)),
        ]
        .into_iter()
        .map(|(n, r)| (n.to_string(), r))
        .collect();
        let live = set(&["a", "b", "c", "d"]);
        let bound = Duration::minutes(10);

        let early = deploy_states(&cur, &reports, &live, T0 + Duration::minutes(9), bound);
        assert_eq!(early["a"], NodeDeploy::Current);
        assert_eq!(
            early["b"],
            NodeDeploy::Failed {
                error: "nginx -t failed".into()
            }
        );
        assert_eq!(early["c"], NodeDeploy::Pending);
        assert_eq!(early["d"], NodeDeploy::Pending);
        assert!(!early.contains_key("gone"), "only live nodes are judged");

        let late = deploy_states(&cur, &reports, &live, T0 + Duration::minutes(10), bound);
        assert_eq!(late["a"], NodeDeploy::Current);
        assert!(matches!(late["b"], NodeDeploy::Failed { .. }));
        assert_eq!(
            late["c"],
            NodeDeploy::Lagging {
                serving: Some("bb".into())
            }
        );
        assert_eq!(late["d"], NodeDeploy::Lagging { serving: None });
        let problems: Vec<&String> = late
            .iter()
            .filter(|(_, s)| s.is_problem())
            .map(|(n, _)| n)
            .collect();
        assert_eq!(problems, ["b", "c", "d"]);
    }

    #[test]
    fn an_old_failed_deploy_is_lag_not_failure_of_the_current_version() {
        let cur = version(4, "dd", T0);
        let reports: BTreeMap<String, DeployReport> =
            [("b".to_string(), report(2, "bb", 3, false, Some("old")))]
                .into_iter()
                .collect();
        let s = deploy_states(&cur, &reports, &set(&["b"]), T0, Duration::minutes(10));
        assert_eq!(s["b"], NodeDeploy::Pending);
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sync_installs_missing_or_different_and_skips_current() {
        let shared = strs(&["a.test", "www.a.test"]);
        let conf = strs(&["www.a.test", "A.test"]);
        let f = |local| SyncFacts {
            shared_serial: "0abc",
            shared_domains: &shared,
            local_serial: local,
            configured: Some(&conf),
        };
        assert_eq!(sync_action(&f(Some("0ABC"))), SyncAction::UpToDate);
        assert_eq!(
            sync_action(&f(Some("0abd"))),
            SyncAction::Install {
                local_serial: Some("0abd".into())
            }
        );
        assert_eq!(
            sync_action(&f(None)),
            SyncAction::Install { local_serial: None }
        );
    }

    #[test]
    fn sync_refuses_unconfigured_or_different_names() {
        let shared = strs(&["a.test"]);
        let other = strs(&["a.test", "b.test"]);
        assert_eq!(
            sync_action(&SyncFacts {
                shared_serial: "01",
                shared_domains: &shared,
                local_serial: None,
                configured: None,
            }),
            SyncAction::NotConfigured
        );
        assert_eq!(
            sync_action(&SyncFacts {
                shared_serial: "01",
                shared_domains: &shared,
                local_serial: Some("00"),
                configured: Some(&other),
            }),
            SyncAction::DomainsDiffer {
                configured: other.clone(),
                shared: shared.clone()
            }
        );
    }

    #[test]
    fn order_when_due_and_unchanged_under_the_lock() {
        let cur = version(3, "cc", T0);
        let wanted = strs(&["a.test", "www.a.test"]);
        // Lifetime 90 days, default threshold 1/3: due from 2026-04-02.
        let d = order_decision(
            Some(3),
            Some(&cur),
            &wanted,
            None,
            None,
            datetime!(2026-04-03 0:00 UTC),
        );
        assert!(
            matches!(
                d,
                OrderDecision::Order {
                    reason: Reason::Threshold { .. },
                    expected_version: Some(3)
                }
            ),
            "{d:?}"
        );
        let d = order_decision(
            Some(3),
            Some(&cur),
            &wanted,
            None,
            None,
            datetime!(2026-03-03 0:00 UTC),
        );
        assert_eq!(
            d,
            OrderDecision::NotDue {
                at: datetime!(2026-04-02 0:00 UTC)
            }
        );
    }

    #[test]
    fn no_order_when_another_node_renewed_meanwhile() {
        let newer = version(4, "dd", T0);
        let d = order_decision(
            Some(3),
            Some(&newer),
            &strs(&["a.test", "www.a.test"]),
            None,
            None,
            datetime!(2026-04-03 0:00 UTC),
        );
        assert_eq!(
            d,
            OrderDecision::AlreadyRenewed {
                version: 4,
                by: "a".into()
            }
        );
        // A lineage created by another node after a plan that saw none.
        let d = order_decision(None, Some(&newer), &strs(&["a.test"]), None, None, T0);
        assert!(matches!(
            d,
            OrderDecision::AlreadyRenewed { version: 4, .. }
        ));
    }

    #[test]
    fn order_first_version_and_changed_domains_and_ari() {
        let d = order_decision(None, None, &strs(&["a.test"]), None, None, T0);
        assert_eq!(
            d,
            OrderDecision::Order {
                reason: Reason::NoCertificate,
                expected_version: None
            }
        );
        let cur = version(3, "cc", T0);
        let d = order_decision(Some(3), Some(&cur), &strs(&["a.test"]), None, None, T0);
        assert!(matches!(
            d,
            OrderDecision::Order {
                reason: Reason::DomainsChanged { .. },
                expected_version: Some(3)
            }
        ));
        let ari = AriState {
            serial: "cc".into(),
            window_start: datetime!(2026-03-01 0:00 UTC),
            window_end: datetime!(2026-03-03 0:00 UTC),
            renew_at: datetime!(2026-03-02 0:00 UTC),
            next_fetch: datetime!(2026-03-02 0:00 UTC),
            explanation_url: None,
        };
        let wanted = strs(&["a.test", "www.a.test"]);
        assert!(matches!(
            order_decision(
                Some(3),
                Some(&cur),
                &wanted,
                None,
                Some(&ari),
                datetime!(2026-03-02 1:00 UTC)
            ),
            OrderDecision::Order {
                reason: Reason::AriWindow { .. },
                ..
            }
        ));
        assert_eq!(
            order_decision(
                Some(3),
                Some(&cur),
                &wanted,
                None,
                Some(&ari),
                datetime!(2026-03-01 1:00 UTC)
            ),
            OrderDecision::NotDue {
                at: datetime!(2026-03-02 0:00 UTC)
            }
        );
    }

    #[test]
    fn etcd_unreachable_alerts_only_after_the_bound() {
        let bound = Duration::minutes(5);
        assert!(!unreachable_alert(None, T0, bound));
        assert!(!unreachable_alert(
            Some(T0),
            T0 + Duration::minutes(5) - Duration::seconds(1),
            bound
        ));
        assert!(unreachable_alert(
            Some(T0),
            T0 + Duration::minutes(5),
            bound
        ));
    }

    #[test]
    fn the_first_live_node_by_name_reports_an_unreachable_etcd() {
        let live = set(&["a", "b", "c"]);
        assert!(reports_unreachable("a", &live));
        assert!(!reports_unreachable("b", &live));
        assert!(!reports_unreachable("c", &live));
        // Never saw the cluster, or only itself: it reports.
        assert!(reports_unreachable("b", &set(&[])));
        assert!(reports_unreachable("b", &set(&["b", "c"])));
    }

    #[test]
    fn reconnect_back_off_doubles_and_resets_after_a_session_that_joined() {
        use std::time::Duration as D;
        let mut last = None;
        let mut seen = Vec::new();
        for _ in 0..7 {
            let p = retry_pause(last, false);
            seen.push(p.as_secs());
            last = Some(p);
        }
        assert_eq!(seen, [1, 2, 4, 8, 16, 30, 30]);
        // etcd came back, the node joined, then lost it again: 1 s, not 30 s.
        assert_eq!(retry_pause(last, true), D::from_secs(1));
        assert_eq!(retry_pause(Some(D::from_secs(1)), false), D::from_secs(2));
    }
}
