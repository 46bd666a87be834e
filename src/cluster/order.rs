//! Ordering through the cluster: the node that finds a shared lineage due
//! takes its lock (bound to its lease), reads it again, orders with the
//! shared ACME account, publishes each challenge in etcd and waits until
//! every live node acknowledged it, then writes the new version by
//! compare-and-swap on the `mod_revision` it read under the lock.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use instant_acme::CertificateIdentifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use super::decide::{self, AckStatus, OrderDecision};
use super::etcd::{Etcd, Expect, Lease};
use super::keys::{Keys, Parsed};
use super::model::{
    account_seal_name, lineage_seal_name, AccountRecord, Ack, Challenge, VersionRecord,
};
use super::seal::SealKey;
use super::status::{ca_host, ClusterError};
use crate::acme::order::ChallengeHook;
use crate::acme::AcmeClient;
use crate::config::{CertificateConfig, Settings};
use crate::issue::Issuer;
use crate::renew::ari;
use crate::renew::plan::{self, AriState, Decision};
use crate::store::Store;

/// What the check did for one lineage.
#[derive(Debug, Clone, PartialEq)]
pub enum Ordered {
    NotDue,
    /// Another node holds the lock (it is ordering).
    Busy,
    /// Another node renewed it meanwhile.
    AlreadyRenewed {
        version: u64,
        by: String,
    },
    /// This node ordered and wrote this version.
    Written {
        version: u64,
        serial: String,
    },
    /// Ordered, but another writer won the compare-and-swap: not written.
    LostRace,
    Failed(String),
}

/// Publishes challenges under the node's lease and waits for every live
/// node's acknowledgement.
struct SharedChallenges<'a> {
    etcd: &'a Etcd,
    keys: &'a Keys,
    lease: i64,
    node: &'a str,
    lineage: &'a str,
    timeout: Duration,
    published: Mutex<Vec<String>>,
}

impl SharedChallenges<'_> {
    async fn wait_acks(&self, domain: &str, token: &str, key_auth: &str) -> Result<(), String> {
        let published = OffsetDateTime::now_utc();
        let rec = Challenge {
            key_authorization: key_auth.to_string(),
            lineage: self.lineage.to_string(),
            domain: domain.to_string(),
            node: self.node.to_string(),
            published,
        };
        if let Ok(mut p) = self.published.lock() {
            p.push(token.to_string());
        }
        let err = |e: &dyn std::fmt::Display| format!("cannot publish the challenge in etcd: {e}");
        self.etcd
            .put(
                &self.keys.challenge(token),
                &serde_json::to_vec(&rec).unwrap_or_default(),
                Some(self.lease),
            )
            .await
            .map_err(|e| err(&e))?;
        let timeout = time::Duration::try_from(self.timeout).unwrap_or(time::Duration::MAX);
        loop {
            let live: BTreeSet<String> = self
                .etcd
                .get_prefix(&self.keys.nodes())
                .await
                .map_err(|e| err(&e))?
                .iter()
                .filter_map(|kv| match self.keys.parse(&kv.key) {
                    Some(Parsed::Node(n)) => Some(n),
                    _ => None,
                })
                .collect();
            let acks: BTreeMap<String, Ack> = self
                .etcd
                .get_prefix(&self.keys.acks(token))
                .await
                .map_err(|e| err(&e))?
                .iter()
                .filter_map(|kv| match self.keys.parse(&kv.key) {
                    Some(Parsed::Ack { token: t, node }) if t == token => {
                        serde_json::from_slice(&kv.value).ok().map(|a| (node, a))
                    }
                    _ => None,
                })
                .collect();
            match decide::challenge_status(
                &live,
                &acks,
                published,
                OffsetDateTime::now_utc(),
                timeout,
            ) {
                AckStatus::Ready => return Ok(()),
                s @ AckStatus::Failed { .. } => {
                    return Err(format!(
                    "not every cluster node can answer the challenge, so the CA was not asked: {}",
                    s.describe()
                ))
                }
                AckStatus::Waiting { .. } => {
                    if crate::shutdown::global()
                        .sleep(Duration::from_millis(200))
                        .await
                        .is_err()
                    {
                        return Err("stopped: certkeep is shutting down".into());
                    }
                }
            }
        }
    }

    /// Removes every published challenge and its acknowledgements.
    async fn cleanup(&self) {
        let tokens = self.published.lock().map(|p| p.clone()).unwrap_or_default();
        for t in tokens {
            if let Err(e) = self.etcd.delete(&self.keys.challenge(&t)).await {
                tracing::warn!(
                    "cluster: cannot delete challenge {t} (it expires with the lease): {e}"
                );
            }
            let _ = self.etcd.delete_prefix(&self.keys.acks(&t)).await;
        }
    }
}

impl ChallengeHook for SharedChallenges<'_> {
    fn ready<'a>(
        &'a self,
        domain: &'a str,
        token: &'a str,
        key_authorization: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(self.wait_acks(domain, token, key_authorization))
    }
}

/// The shared ACME account in the local store (so the usual connect loads
/// it), or a new one registered here and shared.
async fn account(
    config: &Settings,
    etcd: &Etcd,
    keys: &Keys,
    key: &SealKey,
    store: &Store,
) -> Result<AcmeClient, String> {
    let directory = config.acme.directory.as_str();
    let host = ca_host(directory);
    let path = crate::acme::account_path(store, directory);
    let shared = etcd
        .get(&keys.account(&host))
        .await
        .map_err(|e| e.to_string())?;
    if let Some(kv) = &shared {
        let rec: AccountRecord = serde_json::from_slice(&kv.value)
            .map_err(|e| format!("{} is not a valid record: {e}", kv.key))?;
        let creds = key
            .open(&account_seal_name(&host), 0, &rec.sealed_credentials)
            .map_err(|e| e.to_string())?;
        if std::fs::read(&path).ok().as_deref() != Some(creds.as_slice()) {
            if let Some(dir) = path.parent() {
                crate::store::atomic::ensure_dir(dir, 0o700)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            crate::store::atomic::write_file(&path, &creds, 0o600)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    let client = AcmeClient::connect(
        &config.acme,
        directory,
        store,
        true,
        config.renewal.retry_budget.get(),
    )
    .await
    .map_err(|e| crate::net::error_chain(&e))?;
    if shared.is_none() {
        let creds =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let rec = AccountRecord {
            directory: directory.to_string(),
            sealed_credentials: key
                .seal(&account_seal_name(&host), 0, &creds)
                .map_err(|e| e.to_string())?,
        };
        let k = keys.account(&host);
        let _ = etcd
            .put_if(
                &k,
                Expect::Absent,
                &[(&k, &serde_json::to_vec(&rec).unwrap_or_default())],
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(client)
}

/// Reads `lineage/<name>/current` with its revision.
async fn read_current(
    etcd: &Etcd,
    keys: &Keys,
    name: &str,
) -> Result<Option<(VersionRecord, i64)>, ClusterError> {
    let Some(kv) = etcd.get(&keys.current(name)).await? else {
        return Ok(None);
    };
    let rec = serde_json::from_slice(&kv.value).map_err(|e| ClusterError::Record {
        key: kv.key.clone(),
        detail: e.to_string(),
    })?;
    Ok(Some((rec, kv.mod_revision)))
}

/// Plans every configured lineage from the shared versions and orders what
/// is due, one lineage at a time, under each lineage's lock.
pub async fn check(
    config: &Settings,
    etcd: &Etcd,
    keys: &Keys,
    key: &SealKey,
    node: &str,
    lease: &Lease,
    known: &BTreeMap<String, VersionRecord>,
) -> Vec<(String, Ordered)> {
    let mut out = Vec::new();
    // The shared ARI windows: one range read per check; a look-up at the
    // CA (one connection, tried once) only for a window that is missing,
    // for another serial, or past its Retry-After.
    let mut windows = Windows::read(config, etcd, keys).await;
    for c in &config.certificates {
        let planned = known.get(c.name());
        let window = match planned {
            Some(rec) => windows.window(config, etcd, keys, key, c.name(), rec).await,
            None => None,
        };
        let r = match one(
            config,
            etcd,
            keys,
            key,
            node,
            lease,
            c,
            planned,
            window.as_ref(),
        )
        .await
        {
            Ok(r) => r,
            Err(e) => Ordered::Failed(e),
        };
        out.push((c.name().to_string(), r));
    }
    out
}

/// The DER of a version's leaf certificate.
fn leaf_der(rec: &VersionRecord) -> Option<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(rec.cert.as_bytes()).ok()
}

/// The CA's renewal windows (ARI) shared in `ari/<name>`, for one check.
struct Windows {
    /// Each lineage's window and the key's revision.
    shared: BTreeMap<String, (AriState, i64)>,
    /// The connection to the CA: None not tried yet, Some(None) failed.
    ca: Option<Option<AcmeClient>>,
    enabled: bool,
}

impl Windows {
    async fn read(config: &Settings, etcd: &Etcd, keys: &Keys) -> Windows {
        let mut shared = BTreeMap::new();
        if config.renewal.ari {
            match etcd.get_prefix(&keys.aris()).await {
                Ok(kvs) => {
                    for kv in kvs {
                        if let (Some(Parsed::Ari(name)), Ok(w)) =
                            (keys.parse(&kv.key), serde_json::from_slice(&kv.value))
                        {
                            shared.insert(name, (w, kv.mod_revision));
                        }
                    }
                }
                Err(e) => tracing::warn!("cluster: cannot read the renewal windows: {e}"),
            }
        }
        Windows {
            shared,
            ca: None,
            enabled: config.renewal.ari,
        }
    }

    /// The window for `rec`: the shared one, or a fresh one from the CA,
    /// shared by a write conditional on the key's revision (a node that
    /// loses the race keeps its own answer for this check). None when ARI
    /// is off or the CA has none: the lifetime threshold decides then, as
    /// on a single host.
    async fn window(
        &mut self,
        config: &Settings,
        etcd: &Etcd,
        keys: &Keys,
        key: &SealKey,
        name: &str,
        rec: &VersionRecord,
    ) -> Option<AriState> {
        if !self.enabled {
            return None;
        }
        let now = OffsetDateTime::now_utc();
        let stored = self.shared.get(name).cloned();
        if !plan::should_fetch_ari(stored.as_ref().map(|(w, _)| w), &rec.serial, now) {
            return stored.map(|(w, _)| w);
        }
        let der = leaf_der(rec)?;
        if self.ca.is_none() {
            let store = Store::new(&config.store);
            self.ca = Some(match account(config, etcd, keys, key, &store).await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!("cluster: cannot reach the CA for renewal windows, using the lifetime threshold: {e}");
                    None
                }
            });
        }
        let Some(Some(client)) = self.ca.as_ref() else {
            return stored.map(|(w, _)| w);
        };
        if !client.supports_ari {
            return None;
        }
        let q = ari::Query {
            name: name.to_string(),
            serial: rec.serial.clone(),
            leaf_der: der.to_vec(),
        };
        match ari::fetch(client, vec![q], 1).await.pop() {
            Some((_, Ok(state))) => {
                let k = keys.ari(name);
                let expect = match &stored {
                    Some((_, rev)) => Expect::Revision(*rev),
                    None => Expect::Absent,
                };
                let json = serde_json::to_vec(&state).unwrap_or_default();
                if let Err(e) = etcd.put_if(&k, expect, &[(&k, &json)]).await {
                    tracing::warn!(
                        lineage = name,
                        "cluster: cannot share the renewal window: {e}"
                    );
                }
                Some(state)
            }
            Some((_, Err(e))) => {
                tracing::warn!(
                    lineage = name,
                    "ARI look-up failed, using the lifetime threshold: {e}"
                );
                stored.map(|(w, _)| w)
            }
            None => stored.map(|(w, _)| w),
        }
    }
}

/// Plans one lineage from `planned`, the shared version the node's watch
/// keeps (no read), and `window`, its ARI window; a due lineage is read
/// again under its lock.
#[allow(clippy::too_many_arguments)]
async fn one(
    config: &Settings,
    etcd: &Etcd,
    keys: &Keys,
    key: &SealKey,
    node: &str,
    lease: &Lease,
    c: &CertificateConfig,
    planned: Option<&VersionRecord>,
    window: Option<&AriState>,
) -> Result<Ordered, String> {
    let name = c.name();
    let wanted = c.domain_names();
    let renew_before = c.renew_before.or(config.renewal.renew_before);
    let now = OffsetDateTime::now_utc();
    if let Some(rec) = planned {
        if let Decision::NotDue { .. } =
            decide::plan_shared(rec, &wanted, renew_before, window, now)
        {
            return Ok(Ordered::NotDue);
        }
    }
    let cc = config.cluster.as_ref().ok_or("no [cluster] section")?;
    let lock = match etcd
        .lock(&keys.lock_lineage(name), lease, cc.request_timeout.get())
        .await
    {
        Ok(l) => l,
        Err(super::etcd::EtcdError::Timeout { .. }) => return Ok(Ordered::Busy),
        Err(e) => return Err(e.to_string()),
    };
    let result = locked(
        config,
        etcd,
        keys,
        key,
        node,
        lease,
        c,
        planned.map(|r| r.version),
        window,
    )
    .await;
    if let Err(e) = etcd.unlock(&lock).await {
        tracing::warn!(
            lineage = name,
            "cluster: cannot unlock (it goes with the lease): {e}"
        );
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn locked(
    config: &Settings,
    etcd: &Etcd,
    keys: &Keys,
    key: &SealKey,
    node: &str,
    lease: &Lease,
    c: &CertificateConfig,
    planned: Option<u64>,
    window: Option<&AriState>,
) -> Result<Ordered, String> {
    let name = c.name();
    let reread = read_current(etcd, keys, name)
        .await
        .map_err(|e| e.to_string())?;
    let decision = decide::order_decision(
        planned,
        reread.as_ref().map(|(r, _)| r),
        &c.domain_names(),
        c.renew_before.or(config.renewal.renew_before),
        window,
        OffsetDateTime::now_utc(),
    );
    let reason = match decision {
        OrderDecision::NotDue { .. } => return Ok(Ordered::NotDue),
        OrderDecision::AlreadyRenewed { version, by } => {
            return Ok(Ordered::AlreadyRenewed { version, by })
        }
        OrderDecision::Order { reason, .. } => reason,
    };
    let cc = config.cluster.as_ref().ok_or("no [cluster] section")?;
    tracing::info!(lineage = name, %reason, "cluster: ordering for the cluster");
    let store = Store::new(&config.store);
    let client = account(config, etcd, keys, key, &store).await?;
    let hook = SharedChallenges {
        etcd,
        keys,
        lease: lease.id(),
        node,
        lineage: name,
        timeout: cc.challenge_timeout.get(),
        published: Mutex::new(Vec::new()),
    };
    let issuer = Issuer {
        acme: &config.acme,
        client: &client,
        store: &store,
    };
    // ARI: the order names the certificate it replaces, whichever node
    // ordered that one (the account is shared).
    let replaces = reread
        .as_ref()
        .and_then(|(r, _)| leaf_der(r))
        .and_then(|der| {
            CertificateIdentifier::try_from(&der)
                .ok()
                .map(|id| id.into_owned())
        });
    let got = issuer.obtain_with(c, replaces, false, Some(&hook)).await;
    hook.cleanup().await;
    let got = got.map_err(|e| crate::net::error_chain(&e))?;
    let version = reread.as_ref().map(|(r, _)| r.version + 1).unwrap_or(1);
    let rec = VersionRecord {
        version,
        serial: got.leaf.serial.clone(),
        not_before: got.leaf.not_before,
        not_after: got.leaf.not_after,
        domains: got.leaf.sans.clone(),
        cert: got.version.cert.clone(),
        chain: got.version.chain.clone(),
        sealed_key: key
            .seal(
                &lineage_seal_name(name),
                version,
                got.version.privkey.as_bytes(),
            )
            .map_err(|e| e.to_string())?,
        // The profile the order asked for (the CA's default: None), as
        // single-host issuance records it; every node keeps it in its
        // store's state when it installs this version.
        profile: got.profile.clone(),
        ordered_by: node.to_string(),
        written_at: OffsetDateTime::now_utc(),
    };
    let current = keys.current(name);
    let previous = keys.previous(name);
    let new = serde_json::to_vec(&rec).unwrap_or_default();
    let written = match &reread {
        Some((old, rev)) => {
            let old = serde_json::to_vec(old).unwrap_or_default();
            etcd.put_if(
                &current,
                Expect::Revision(*rev),
                &[(&current, &new), (&previous, &old)],
            )
            .await
        }
        None => {
            etcd.put_if(&current, Expect::Absent, &[(&current, &new)])
                .await
        }
    }
    .map_err(|e| e.to_string())?;
    if written {
        tracing::info!(lineage = name, version, serial = %rec.serial, "cluster: wrote the new version");
        Ok(Ordered::Written {
            version,
            serial: rec.serial,
        })
    } else {
        tracing::warn!(
            lineage = name,
            "cluster: another writer changed the lineage meanwhile; this order is not written"
        );
        Ok(Ordered::LostRace)
    }
}
