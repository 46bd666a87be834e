//! The daemon's cluster task: a heartbeat bound to the node's lease, the
//! catch-up sync at start, and a watch on the lineages that deploys every
//! new shared version. When etcd is unreachable the node keeps what it has
//! on disk and retries; it catches up when etcd returns.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use time::OffsetDateTime;

use super::alerts::{Evaluated, Pending};
use super::cache::Cache;
use super::etcd::{Change, Etcd, Settings as EtcdSettings};
use super::keys::{Keys, Parsed};
use super::model::{Ack, Challenge, Heartbeat, Meta};
use super::order::{self, Ordered};
use super::seal::SealKey;
use super::status::ClusterError;
use super::sync::{self, Synced};
use crate::config::Settings;

/// Why a cluster session ended.
#[derive(Debug)]
enum End {
    /// Shutdown: the lease was revoked.
    Stopped,
    /// This node must not deploy (wrong key): the task stops.
    Fatal(String),
    /// etcd trouble: retry after a pause.
    Retry(String),
}

impl From<ClusterError> for End {
    fn from(e: ClusterError) -> End {
        End::Retry(crate::net::error_chain(&e))
    }
}

impl From<super::etcd::EtcdError> for End {
    fn from(e: super::etcd::EtcdError) -> End {
        End::Retry(e.to_string())
    }
}

/// Checks that the cluster exists and uses this node's key.
async fn check_meta(etcd: &Etcd, keys: &Keys, key: &SealKey) -> Result<(), End> {
    let Some(kv) = etcd.get(&keys.meta()).await? else {
        return Err(End::Retry(format!(
            "the etcd prefix {} holds no cluster yet; run `certkeep cluster init` on the node that has the certificates",
            keys.root()
        )));
    };
    let meta: Meta = serde_json::from_slice(&kv.value)
        .map_err(|e| End::Retry(format!("{} is not a valid record: {e}", kv.key)))?;
    if meta.key_id != key.key_id() {
        return Err(End::Fatal(format!(
            "this node's encryption key ({}) is not the cluster's ({}): copy the cluster's key file to this node; nothing will be deployed until then",
            key.key_id(),
            meta.key_id
        )));
    }
    Ok(())
}

/// Loads the key and, when etcd answers, checks it against the cluster's:
/// a node with another key does not start. Then runs the task.
pub async fn start(config: &Settings) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
    let Some(cc) = &config.cluster else {
        return Ok(None);
    };
    let node = cc.node_name()?;
    let key = SealKey::load(&cc.encryption_key_file).map_err(|e| e.to_string())?;
    let keys = Keys::new(&cc.prefix.0);
    let settings = EtcdSettings::from_config(cc);
    match Etcd::connect(&settings).await {
        Ok(etcd) => match check_meta(&etcd, &keys, &key).await {
            Err(End::Fatal(e)) => return Err(e),
            Err(End::Retry(e)) => tracing::warn!("cluster: {e}"),
            _ => {}
        },
        Err(e) => {
            tracing::warn!("cluster: {e}; serving what is on disk and retrying in the background")
        }
    }
    let config = config.clone();
    Ok(Some(tokio::spawn(async move {
        run(config, settings, keys, key, node).await
    })))
}

async fn run(config: Settings, settings: EtcdSettings, keys: Keys, key: SealKey, node: String) {
    let token = crate::shutdown::global();
    let mut pause: Option<Duration> = None;
    let started = OffsetDateTime::now_utc();
    let mut reach = Reach::new(&node);
    let mut cache = Cache::default();
    loop {
        let end = session(
            &config, &settings, &keys, &key, &node, started, &mut reach, &mut cache,
        )
        .await;
        match end {
            End::Stopped => return,
            End::Fatal(e) => {
                tracing::error!("cluster: {e}");
                return;
            }
            End::Retry(e) => {
                // A session that got as far as joining resets the back-off.
                let joined = reach.since.is_none();
                reach.failed(&config, &e).await;
                let wait = super::decide::retry_pause(pause, joined);
                pause = Some(wait);
                tracing::warn!("cluster: {e}; retrying in {wait:?}");
                if token.sleep(wait).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Key of the "etcd unreachable for too long" alert (local alert state:
/// the shared one is out of reach then).
pub const UNREACHABLE_KEY: &str = "cluster:etcd:reachable";

/// Since when etcd has been out of reach, and whether that was alerted.
/// Only the first live node by name (as last seen) alerts: the others log.
#[derive(Debug, Default)]
struct Reach {
    node: String,
    /// The nodes live at the last look at the fleet.
    peers: BTreeSet<String>,
    since: Option<OffsetDateTime>,
    alerted: bool,
    deferred: bool,
    /// Checks that found etcd answering since the alert, and since when:
    /// the alert resolves by the usual rules (`resolve_after_checks`,
    /// `resolve_after`), one check per fleet round.
    oks: u32,
    ok_since: Option<OffsetDateTime>,
}

impl Reach {
    fn new(node: &str) -> Reach {
        Reach {
            node: node.to_string(),
            ..Reach::default()
        }
    }

    async fn failed(&mut self, config: &Settings, error: &str) {
        let now = OffsetDateTime::now_utc();
        let since = *self.since.get_or_insert(now);
        self.oks = 0;
        self.ok_since = None;
        let Some(cc) = &config.cluster else { return };
        let bound = time::Duration::try_from(cc.unreachable_alert_after.get())
            .unwrap_or(time::Duration::MAX);
        if !super::decide::unreachable_alert(Some(since), now, bound) {
            return;
        }
        if !super::decide::reports_unreachable(&self.node, &self.peers) {
            if !self.deferred {
                self.deferred = true;
                let first = self.peers.iter().next().cloned().unwrap_or_default();
                tracing::error!(
                    "cluster: etcd has been unreachable since {}; node {first} alerts for the cluster, this node only logs it",
                    crate::renew::plan::date(since)
                );
            }
            return;
        }
        let p = crate::alert::Problem::new(
            UNREACHABLE_KEY,
            crate::alert::Severity::Critical,
            "etcd has been unreachable",
        )
        .detail("since", crate::renew::plan::date(since))
        .detail("node", self.node.clone())
        .detail("error", error.to_string())
        .detail(
            "problem",
            "this node serves what it has on disk, orders nothing and deploys nothing until etcd answers",
        );
        match crate::alert::report(&config.alerting(), vec![p], &[]).await {
            Ok(_) => self.alerted = true,
            Err(e) => tracing::error!("cluster: cannot record the etcd alert: {e}"),
        }
    }

    /// etcd answered: resolves the alert once enough checks found it so.
    async fn reached(&mut self, config: &Settings) {
        self.since = None;
        self.deferred = false;
        if !self.alerted {
            return;
        }
        let now = OffsetDateTime::now_utc();
        match crate::alert::report(&config.alerting(), vec![], &[UNREACHABLE_KEY.to_string()]).await
        {
            Ok(_) => {
                self.oks += 1;
                let first = *self.ok_since.get_or_insert(now);
                let policy = config.alert.policy();
                let waited = u64::try_from((now - first).whole_seconds()).unwrap_or(0);
                if self.oks >= policy.resolve_after_checks && waited >= policy.resolve_after {
                    self.alerted = false;
                    self.oks = 0;
                    self.ok_since = None;
                }
            }
            Err(e) => tracing::error!("cluster: cannot record the etcd alert: {e}"),
        }
    }
}

fn log_results(results: &[(String, Synced)]) {
    for (name, s) in results {
        match s {
            Synced::UpToDate => {}
            Synced::Deployed { version, serial } => {
                tracing::info!(lineage = %name, version, %serial, "cluster: deployed the shared version")
            }
            Synced::DeployFailed { version, error } => {
                tracing::error!(lineage = %name, version, "cluster: deploy failed: {error}")
            }
            Synced::NotInstalled { version, error } => {
                tracing::error!(lineage = %name, version, "cluster: not installed (nothing changed on disk): {error}")
            }
            Synced::Skipped { reason } => {
                tracing::warn!(lineage = %name, "cluster: not deployed here: {reason}")
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn session(
    config: &Settings,
    settings: &EtcdSettings,
    keys: &Keys,
    key: &SealKey,
    node: &str,
    started: OffsetDateTime,
    reach: &mut Reach,
    cache: &mut Cache,
) -> End {
    match session_inner(config, settings, keys, key, node, started, reach, cache).await {
        Ok(end) | Err(end) => end,
    }
}

#[allow(clippy::too_many_arguments)]
async fn session_inner(
    config: &Settings,
    settings: &EtcdSettings,
    keys: &Keys,
    key: &SealKey,
    node: &str,
    started: OffsetDateTime,
    reach: &mut Reach,
    cache: &mut Cache,
) -> Result<End, End> {
    let token = crate::shutdown::global();
    let Some(cc) = &config.cluster else {
        return Ok(End::Stopped);
    };
    let etcd = Etcd::connect(settings).await?;
    check_meta(&etcd, keys, key).await?;
    reach.reached(config).await;
    let lease = etcd.grant(cc.lease_ttl.get_ref().get()).await?;
    let beat = Heartbeat {
        certkeep_version: env!("CARGO_PKG_VERSION").to_string(),
        started,
    };
    etcd.put(
        &keys.node(node),
        &serde_json::to_vec(&beat).unwrap_or_default(),
        Some(lease.id()),
    )
    .await?;
    // Who alerts when etcd goes away (refreshed at every fleet round).
    let live: BTreeSet<String> = etcd
        .get_prefix(&keys.nodes())
        .await?
        .iter()
        .filter_map(|kv| match keys.parse(&kv.key) {
            Some(Parsed::Node(n)) => Some(n),
            _ => None,
        })
        .collect();
    reach.peers = live;
    if !cache.reports_loaded() {
        // Once per process: what this node's reports say, so that only
        // news is written.
        let mine = etcd.get_prefix(&keys.deploys_of(node)).await?;
        cache.load_reports(keys, node, &mine);
    }
    // The lineages: read once, then followed through the watch from the
    // revision after the read. A later session resumes the watch where
    // the last one stopped (etcd replays what it missed) and reads
    // everything again only when etcd has compacted that history.
    let mut watch = match cache.resume_from() {
        Some(from) => {
            tracing::info!(
                node,
                prefix = keys.root(),
                revision = from,
                "cluster: joined; following the lineages"
            );
            etcd.watch_prefix(&keys.lineages(), from).await?
        }
        None => {
            tracing::info!(
                node,
                prefix = keys.root(),
                "cluster: joined; syncing every lineage"
            );
            let (kvs, revision) = etcd.get_prefix_at(&keys.lineages()).await?;
            let watch = etcd.watch_prefix(&keys.lineages(), revision + 1).await?;
            let incoming = cache.load(keys, &kvs, revision);
            drop(kvs);
            match sync::sync_records(config, &etcd, keys, key, node, incoming, cache).await {
                Ok(r) => {
                    cache.sync_failed = any_failed(&r);
                    log_results(&r);
                }
                Err(e) => {
                    cache.forget_revision();
                    return Err(e.into());
                }
            }
            tracing::info!(
                revision,
                lineages = cache.shared().len(),
                "cluster: every lineage synced"
            );
            watch
        }
    };
    // Challenges are short-lived: watch from now, then read what exists.
    let mut challenge_watch = etcd.watch_prefix(&keys.challenges(), 0).await?;
    let mut files: HashMap<String, Option<crate::webroot::ChallengeFile>> = HashMap::new();
    for kv in etcd.get_prefix(&keys.challenges()).await? {
        if let Some(Parsed::Challenge(token)) = keys.parse(&kv.key) {
            answer(
                config,
                &etcd,
                keys,
                node,
                ack_lease(&kv, &lease),
                &token,
                &kv.value,
                &mut files,
            )
            .await?;
        }
    }
    let mut next_check = tokio::time::Instant::now();
    let mut ordering: Option<Checking<'_>> = None;
    let fleet_every = super::alerts::fleet_every(cc.deploy_lag_alert_after.get());
    let mut fleet_at = tokio::time::Instant::now() + fleet_every;
    let mut pending = Pending::default();
    let mut alerting: Option<Evaluating<'_>> = None;
    loop {
        tokio::select! {
            () = token.cancelled() => {
                drop(ordering);
                drop(alerting);
                let _ = lease.revoke().await;
                return Ok(End::Stopped);
            }
            () = lease.lost() => {
                return Err(End::Retry("the node's etcd lease was lost".into()));
            }
            changes = watch.next() => {
                let changes = match changes {
                    Ok(c) => c,
                    Err(e @ super::etcd::EtcdError::Compacted { .. }) => {
                        cache.forget_revision();
                        return Err(e.into());
                    }
                    Err(e) => return Err(e.into()),
                };
                // Only the lineages whose version changed, from the
                // watched values themselves: no read.
                let mark = cache.mark();
                let incoming = cache.apply(keys, &changes);
                if !incoming.is_empty() {
                    match sync::sync_records(config, &etcd, keys, key, node, incoming, cache).await {
                        Ok(r) => {
                            cache.sync_failed |= any_failed(&r);
                            log_results(&r);
                        }
                        Err(e) => {
                            cache.rewind(mark);
                            return Err(e.into());
                        }
                    }
                }
            }
            changes = challenge_watch.next() => {
                for change in changes? {
                    match change {
                        Change::Put(kv) => {
                            if let Some(Parsed::Challenge(t)) = keys.parse(&kv.key) {
                                let l = ack_lease(&kv, &lease);
                                answer(config, &etcd, keys, node, l, &t, &kv.value, &mut files).await?;
                            }
                        }
                        Change::Delete { key: k, .. } => {
                            if let Some(Parsed::Challenge(t)) = keys.parse(&k) {
                                // Dropping the file removes it from the webroot.
                                files.remove(&t);
                            }
                        }
                    }
                }
            }
            () = tokio::time::sleep_until(next_check), if ordering.is_none() => {
                // Planned from the versions the watch keeps current: a
                // lineage is read again only under its lock, when due.
                let known = cache.shared().clone();
                let (etcd, lease) = (&etcd, &lease);
                ordering = Some(Box::pin(async move {
                    order::check(config, etcd, keys, key, node, lease, &known).await
                }));
            }
            () = tokio::time::sleep_until(fleet_at), if alerting.is_none() => {
                fleet_at = tokio::time::Instant::now() + fleet_every;
                if cache.sync_failed && deploy_retry_ready(config).await {
                    // From the versions the watch keeps: no read.
                    let synced = sync::sync_records(config, &etcd, keys, key, node, cache.all(), cache).await?;
                    cache.sync_failed = any_failed(&synced);
                    log_results(&synced);
                }
                let mine = std::mem::take(&mut pending);
                let fleet = super::alerts::judges_fleet(node, &reach.peers).then(|| cache.shared().clone());
                alerting = Some(Box::pin(super::alerts::evaluate(config, &etcd, keys, &lease, mine, fleet)));
            }
            (back, r) = async { match alerting.as_mut() { Some(f) => f.await, None => std::future::pending().await } }, if alerting.is_some() => {
                alerting = None;
                let mut back = back;
                back.absorb(std::mem::take(&mut pending));
                pending = back;
                match r {
                    Ok(Evaluated::Done { live }) => {
                        // etcd answered this round: a check that it is reachable.
                        reach.reached(config).await;
                        if !live.is_empty() {
                            reach.peers = live;
                        }
                    }
                    Ok(Evaluated::Busy) => {}
                    Err(e) => tracing::warn!("cluster: cannot update the shared alert state: {e}"),
                }
            }
            results = async { match ordering.as_mut() { Some(f) => f.await, None => std::future::pending().await } }, if ordering.is_some() => {
                ordering = None;
                next_check = next_renewal_check(config);
                let (p, ok) = super::alerts::renewal_observations(&results, node);
                pending.add(p, ok);
                for (name, r) in results {
                    match r {
                        Ordered::Failed(e) => tracing::error!(lineage = %name, "cluster: renewal failed: {e}"),
                        Ordered::NotDue => {}
                        Ordered::Busy => {
                            // Another node holds the lock: it is ordering, or
                            // it died and its lease expires within lease_ttl.
                            // Look again then, not at the next scheduled check.
                            let again = tokio::time::Instant::now() + cc.lease_ttl.get_ref().get() + cc.request_timeout.get();
                            next_check = next_check.min(again);
                            tracing::info!(lineage = %name, "cluster: another node holds the lineage's lock; checking again in {:?}", again - tokio::time::Instant::now());
                        }
                        other => tracing::info!(lineage = %name, "cluster: {other:?}"),
                    }
                }
            }
        }
    }
}

/// A renewal check in progress (polled beside the watches).
type Checking<'a> = Pin<Box<dyn Future<Output = Vec<(String, Ordered)>> + Send + 'a>>;

/// An update of the shared alert state in progress.
type Evaluating<'a> =
    Pin<Box<dyn Future<Output = (Pending, Result<Evaluated, String>)> + Send + 'a>>;

/// Whether a sync left a lineage not deployed here (retried every fleet round).
fn any_failed(results: &[(String, Synced)]) -> bool {
    results
        .iter()
        .any(|(_, s)| matches!(s, Synced::DeployFailed { .. } | Synced::NotInstalled { .. }))
}

/// Whether retrying a failed deploy can work now: nginx accepts its
/// configuration as it is (so a broken one is not tried again with every
/// round, each time writing a version into the archive).
async fn deploy_retry_ready(config: &Settings) -> bool {
    if !config.nginx.reload {
        return true;
    }
    match crate::nginx::test(&config.nginx).await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!("cluster: not retrying the failed deploy yet: {e}");
            false
        }
    }
}

/// The lease an acknowledgement is bound to: the challenge's own (the
/// ordering node's), so the acknowledgements vanish with the challenge when
/// that node dies; this node's for a challenge without one.
fn ack_lease(challenge: &super::etcd::Kv, own: &super::etcd::Lease) -> i64 {
    if challenge.lease != 0 {
        challenge.lease
    } else {
        own.id()
    }
}

/// When the daemon's renewal schedule next fires.
fn next_renewal_check(config: &Settings) -> tokio::time::Instant {
    let now = chrono::Utc::now();
    let wait = config
        .daemon
        .renew_schedule
        .upcoming(now, 1)
        .first()
        .and_then(|t| (*t - now).to_std().ok())
        .unwrap_or(Duration::from_secs(3600));
    tokio::time::Instant::now() + wait
}

/// Answers a challenge published by the ordering node: the token file in
/// this node's webroot (unless this node ordered and wrote it already), the
/// self-check through this node's nginx, and the acknowledgement.
#[allow(clippy::too_many_arguments)]
async fn answer(
    config: &Settings,
    etcd: &Etcd,
    keys: &Keys,
    node: &str,
    lease: i64,
    token: &str,
    value: &[u8],
    files: &mut HashMap<String, Option<crate::webroot::ChallengeFile>>,
) -> Result<(), End> {
    let ch: Challenge = match serde_json::from_slice(value) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cluster: challenge {token} is not a valid record: {e}");
            return Ok(());
        }
    };
    let result = prepare(config, node, token, &ch, files).await;
    if let Err(e) = &result {
        tracing::warn!(lineage = %ch.lineage, domain = %ch.domain, "cluster: cannot answer the challenge: {e}");
    }
    let ack = Ack {
        ok: result.is_ok(),
        detail: result.err(),
        at: OffsetDateTime::now_utc(),
    };
    if let Err(e) = etcd
        .put(
            &keys.ack(token, node),
            &serde_json::to_vec(&ack).unwrap_or_default(),
            Some(lease),
        )
        .await
    {
        // The challenge's lease may be gone already (its order ended or its
        // node died): then there is nobody to acknowledge to. An etcd
        // outage shows up in the watches.
        tracing::warn!(lineage = %ch.lineage, "cluster: cannot acknowledge challenge {token}: {e}");
    }
    Ok(())
}

async fn prepare(
    config: &Settings,
    node: &str,
    token: &str,
    ch: &Challenge,
    files: &mut HashMap<String, Option<crate::webroot::ChallengeFile>>,
) -> Result<(), String> {
    let cert = config
        .certificate(&ch.lineage)
        .ok_or_else(|| format!("lineage {} is not configured on node {node}", ch.lineage))?;
    let webroot = cert
        .webroot_for(&ch.domain)
        .ok_or_else(|| format!("no webroot for {} on node {node}", ch.domain))?;
    if ch.node != node && !files.contains_key(token) {
        let f = crate::webroot::write_challenge(webroot, token, &ch.key_authorization)
            .map_err(|e| e.to_string())?;
        files.insert(token.to_string(), Some(f));
    }
    if let Some(how) = config.self_check() {
        crate::webroot::self_check(&ch.domain, webroot, &how)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
