//! `certkeep cluster init` (upload the local store to an empty prefix) and
//! `certkeep cluster status` (the fleet as etcd sees it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::decide::{self, NodeDeploy};
use super::etcd::{Etcd, EtcdError, Expect};
use super::keys::{Keys, Parsed};
use super::model::{
    account_seal_name, lineage_seal_name, AccountRecord, DeployReport, Heartbeat, Meta,
    VersionRecord, FORMAT,
};
use super::seal::{SealError, SealKey};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the etcd prefix {root} already holds {what}; `certkeep cluster init` only fills an empty prefix (pass --force to replace what is there)")]
    NotEmpty { root: String, what: String },
    #[error("another `cluster init` wrote {key} meanwhile; nothing of this run is marked as the cluster's (run `cluster status`)")]
    Raced { key: String },
    #[error("{key} in etcd is not a valid record: {detail}")]
    Record { key: String, detail: String },
    #[error("the etcd prefix {root} holds no cluster yet (no meta); run `certkeep cluster init` on the node that has the certificates")]
    NotInitialised { root: String },
}

/// The CA's host (and port) of a directory URL, as the account key names it.
pub fn ca_host(directory: &str) -> String {
    match reqwest::Url::parse(directory) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => "unknown".into(),
        },
        Err(_) => "unknown".into(),
    }
}

fn read(path: PathBuf) -> Result<String, ClusterError> {
    std::fs::read_to_string(&path).map_err(|source| ClusterError::Read { path, source })
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing these plain records cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn parse<T: serde::de::DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, ClusterError> {
    serde_json::from_slice(value).map_err(|e| ClusterError::Record {
        key: key.to_string(),
        detail: e.to_string(),
    })
}

/// What `cluster init` uploaded.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    pub root: String,
    pub key_id: String,
    /// (lineage, serial) as version 1.
    pub lineages: Vec<(String, String)>,
    /// The CA host whose account was uploaded.
    pub account: Option<String>,
    /// Keys removed first (with --force).
    pub replaced: i64,
}

/// One lineage of the local store as a cluster version record.
pub fn version_from_store(
    store: &Store,
    name: &str,
    version: u64,
    key: &SealKey,
    node: &str,
    now: OffsetDateTime,
) -> Result<Option<VersionRecord>, ClusterError> {
    let Some(current) = store.current_checked(name)? else {
        return Ok(None);
    };
    let live = store.live_dir(name);
    let privkey = read(live.join("privkey.pem"))?;
    let sealed_key = key.seal(&lineage_seal_name(name), version, privkey.as_bytes())?;
    // The profile the local version was ordered with, when recorded: an
    // unreadable state file only loses that label.
    let profile = crate::renew::state::LineageStates::load(store)
        .ok()
        .and_then(|s| {
            s.get(name)
                .profile(current.lineage.version)
                .map(str::to_string)
        });
    Ok(Some(VersionRecord {
        version,
        serial: current.leaf.serial.clone(),
        not_before: current.leaf.not_before,
        not_after: current.leaf.not_after,
        domains: current.leaf.sans.clone(),
        cert: read(live.join("cert.pem"))?,
        chain: read(live.join("chain.pem"))?,
        sealed_key,
        profile,
        ordered_by: node.to_string(),
        written_at: now,
    }))
}

/// Where `cluster init` takes the lineages and account from.
#[derive(Debug, Clone, Copy)]
pub struct InitSource<'a> {
    pub store: &'a Store,
    /// The ACME directory whose account is uploaded.
    pub directory: &'a str,
    pub key: &'a SealKey,
    /// This node (recorded as who uploaded each version).
    pub node: &'a str,
}

/// Uploads every lineage of the local store (as version 1) and the ACME
/// account of `directory` to an empty prefix, then writes `meta`. Every
/// lineage is checked before anything is written.
pub async fn init(
    etcd: &Etcd,
    keys: &Keys,
    source: &InitSource<'_>,
    force: bool,
    now: OffsetDateTime,
) -> Result<InitReport, ClusterError> {
    let InitSource {
        store,
        directory,
        key,
        node,
    } = *source;
    let root = keys.root().to_string();
    let existing = etcd.get_prefix(&root).await?;
    if !existing.is_empty() && !force {
        let what = match existing.iter().find(|kv| kv.key == keys.meta()) {
            Some(_) => "a cluster (meta exists)".to_string(),
            None => format!("{} keys", existing.len()),
        };
        return Err(ClusterError::NotEmpty { root, what });
    }
    let mut records = Vec::new();
    for name in store.lineage_names()? {
        if let Some(r) = version_from_store(store, &name, 1, key, node, now)? {
            records.push((name, r));
        }
    }
    let account_file = crate::acme::account_path(store, directory);
    let account = if account_file.is_file() {
        let host = ca_host(directory);
        let creds = read(account_file)?;
        let sealed = key.seal(&account_seal_name(&host), 0, creds.as_bytes())?;
        Some((
            host,
            AccountRecord {
                directory: directory.to_string(),
                sealed_credentials: sealed,
            },
        ))
    } else {
        None
    };
    let replaced = if force {
        etcd.delete_prefix(&root).await?
    } else {
        0
    };
    if let Some((host, rec)) = &account {
        let k = keys.account(host);
        if !etcd.put_if(&k, Expect::Absent, &[(&k, &json(rec))]).await? {
            return Err(ClusterError::Raced { key: k });
        }
    }
    for (name, rec) in &records {
        let k = keys.current(name);
        if !etcd.put_if(&k, Expect::Absent, &[(&k, &json(rec))]).await? {
            return Err(ClusterError::Raced { key: k });
        }
    }
    let meta = Meta {
        format: FORMAT,
        created: now,
        key_id: key.key_id().to_string(),
        created_by: node.to_string(),
    };
    let mk = keys.meta();
    if !etcd
        .put_if(&mk, Expect::Absent, &[(&mk, &json(&meta))])
        .await?
    {
        return Err(ClusterError::Raced { key: mk });
    }
    Ok(InitReport {
        root,
        key_id: meta.key_id,
        lineages: records.into_iter().map(|(n, r)| (n, r.serial)).collect(),
        account: account.map(|(h, _)| h),
        replaced,
    })
}

/// `cluster status --json`. Field names are a stable interface.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub prefix: String,
    pub format: u32,
    pub created: String,
    pub created_by: String,
    pub key_id: String,
    /// Whether this node's encryption key is the cluster's (null: unreadable).
    pub local_key_matches: Option<bool>,
    pub nodes: Vec<NodeStatus>,
    pub lineages: Vec<LineageStatus>,
    /// One line per problem (a lagging or failed node, a wrong key).
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub name: String,
    /// A heartbeat exists (it is bound to the node's lease).
    pub live: bool,
    pub certkeep_version: Option<String>,
    pub started: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LineageStatus {
    pub name: String,
    pub version: u64,
    pub serial: String,
    pub domains: Vec<String>,
    pub not_after: String,
    pub ordered_by: String,
    pub written_at: String,
    pub previous_version: Option<u64>,
    pub nodes: Vec<NodeDeployStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeDeployStatus {
    pub node: String,
    /// "current", "pending", "lagging", "failed", or "down" (no heartbeat).
    pub state: &'static str,
    pub serving_version: Option<u64>,
    pub serving_serial: Option<String>,
    pub error: Option<String>,
    pub reported_at: Option<String>,
}

use crate::dates::rfc3339;

/// Reads the whole prefix once and judges every node's deploy.
pub async fn status(
    etcd: &Etcd,
    keys: &Keys,
    local_key: Option<&SealKey>,
    lag_bound: Duration,
    now: OffsetDateTime,
) -> Result<Status, ClusterError> {
    let all = etcd.get_prefix(keys.root()).await?;
    let mut meta: Option<Meta> = None;
    let mut beats: BTreeMap<String, Heartbeat> = BTreeMap::new();
    let mut current: BTreeMap<String, VersionRecord> = BTreeMap::new();
    let mut previous: BTreeMap<String, u64> = BTreeMap::new();
    let mut reports: BTreeMap<String, BTreeMap<String, DeployReport>> = BTreeMap::new();
    for kv in &all {
        match keys.parse(&kv.key) {
            Some(Parsed::Meta) => meta = Some(parse(&kv.key, &kv.value)?),
            Some(Parsed::Node(n)) => {
                beats.insert(n, parse(&kv.key, &kv.value)?);
            }
            Some(Parsed::Current(l)) => {
                current.insert(l, parse(&kv.key, &kv.value)?);
            }
            Some(Parsed::Previous(l)) => {
                let r: VersionRecord = parse(&kv.key, &kv.value)?;
                previous.insert(l, r.version);
            }
            Some(Parsed::Deploy { lineage, node }) => {
                reports
                    .entry(lineage)
                    .or_default()
                    .insert(node, parse(&kv.key, &kv.value)?);
            }
            _ => {}
        }
    }
    let Some(meta) = meta else {
        return Err(ClusterError::NotInitialised {
            root: keys.root().to_string(),
        });
    };
    let live: BTreeSet<String> = beats.keys().cloned().collect();
    let mut problems = Vec::new();
    let local_key_matches = local_key.map(|k| k.key_id() == meta.key_id);
    if local_key_matches == Some(false) {
        problems.push(format!(
            "this node's encryption key ({}) is not the cluster's ({}): copy the cluster's key file to this node",
            local_key.map(SealKey::key_id).unwrap_or_default(),
            meta.key_id
        ));
    }
    let mut known_nodes: BTreeSet<String> = live.clone();
    let empty = BTreeMap::new();
    let mut lineages = Vec::new();
    for (name, cur) in &current {
        let reps = reports.get(name).unwrap_or(&empty);
        known_nodes.extend(reps.keys().cloned());
        let states = decide::deploy_states(cur, reps, &live, now, lag_bound);
        let mut nodes = Vec::new();
        let all_nodes: BTreeSet<&String> = live.iter().chain(reps.keys()).collect();
        for node in all_nodes {
            let r = reps.get(node);
            let state = match states.get(node) {
                Some(NodeDeploy::Current) => "current",
                Some(NodeDeploy::Pending) => "pending",
                Some(NodeDeploy::Lagging { .. }) => "lagging",
                Some(NodeDeploy::Failed { .. }) => "failed",
                None => "down",
            };
            match states.get(node) {
                Some(NodeDeploy::Failed { error }) => problems.push(format!(
                    "lineage {name}: node {node} failed to deploy version {}: {error}",
                    cur.version
                )),
                Some(NodeDeploy::Lagging { serving }) => problems.push(format!(
                    "lineage {name}: node {node} still serves {} {} after version {} (serial {}) was written",
                    serving.as_deref().map(|s| format!("serial {s}")).unwrap_or_else(|| "nothing reported".into()),
                    crate::renew::plan::human(now - cur.written_at),
                    cur.version,
                    cur.serial
                )),
                _ => {}
            }
            nodes.push(NodeDeployStatus {
                node: node.clone(),
                state,
                serving_version: r.map(|r| r.serving_version),
                serving_serial: r.map(|r| r.serving_serial.clone()),
                error: r.and_then(|r| (!r.ok).then(|| r.error.clone()).flatten()),
                reported_at: r.map(|r| rfc3339(r.at)),
            });
        }
        lineages.push(LineageStatus {
            name: name.clone(),
            version: cur.version,
            serial: cur.serial.clone(),
            domains: cur.domains.clone(),
            not_after: rfc3339(cur.not_after),
            ordered_by: cur.ordered_by.clone(),
            written_at: rfc3339(cur.written_at),
            previous_version: previous.get(name).copied(),
            nodes,
        });
    }
    let nodes = known_nodes
        .into_iter()
        .map(|n| {
            let b = beats.get(&n);
            NodeStatus {
                live: b.is_some(),
                certkeep_version: b.map(|b| b.certkeep_version.clone()),
                started: b.map(|b| rfc3339(b.started)),
                name: n,
            }
        })
        .collect();
    Ok(Status {
        prefix: keys.root().to_string(),
        format: meta.format,
        created: rfc3339(meta.created),
        created_by: meta.created_by,
        key_id: meta.key_id,
        local_key_matches,
        nodes,
        lineages,
        problems,
    })
}

impl Status {
    /// The text form of `cluster status`.
    pub fn render(&self) -> String {
        let mut out = format!(
            "cluster {} (format {}, key {}, created {} by {})\n",
            self.prefix, self.format, self.key_id, self.created, self.created_by
        );
        out.push_str("nodes:\n");
        if self.nodes.is_empty() {
            out.push_str("  none (no daemon has a heartbeat)\n");
        }
        for n in &self.nodes {
            out.push_str(&format!(
                "  {:<20} {}{}\n",
                n.name,
                if n.live { "live" } else { "down" },
                match (&n.certkeep_version, &n.started) {
                    (Some(v), Some(s)) => format!(" (certkeep {v}, started {s})"),
                    _ => String::new(),
                }
            ));
        }
        out.push_str("lineages:\n");
        for l in &self.lineages {
            out.push_str(&format!(
                "  {} version {} serial {} (expires {}, ordered by {})\n",
                l.name, l.version, l.serial, l.not_after, l.ordered_by
            ));
            for n in &l.nodes {
                let mark = if matches!(n.state, "lagging" | "failed") {
                    "!"
                } else {
                    " "
                };
                out.push_str(&format!(
                    "   {mark} {:<20} {:<8} serves {}{}\n",
                    n.node,
                    n.state,
                    n.serving_serial.as_deref().unwrap_or("nothing reported"),
                    n.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ));
            }
        }
        if self.problems.is_empty() {
            out.push_str("no problems\n");
        } else {
            out.push_str("problems:\n");
            for p in &self.problems {
                out.push_str(&format!("  {p}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_host_keeps_the_port() {
        assert_eq!(
            ca_host("https://acme-v02.api.letsencrypt.org/directory"),
            "acme-v02.api.letsencrypt.org"
        );
        assert_eq!(ca_host("https://127.0.0.1:14000/dir"), "127.0.0.1:14000");
        assert_eq!(ca_host("not a url"), "unknown");
    }
}
