//! Writing the shared versions into the local store and deploying them:
//! the same atomic archive write and `live/` swap as a renewal, the same
//! validated reload (test, reload, confirm the served serial, roll back when
//! the test fails), the deploy hooks, then a deploy report in etcd.

use time::OffsetDateTime;

use super::cache::{Cache, Incoming};
use super::decide::{self, SyncAction, SyncFacts};
use super::etcd::Etcd;
use super::keys::Keys;
use super::model::{DeployReport, VersionRecord};
use super::seal::SealKey;
use super::status::ClusterError;
use crate::config::Settings;
use crate::store::{lock, NewVersion, Store};
use crate::{hooks, nginx};

/// What happened to one shared lineage on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    UpToDate,
    /// Written, deployed and reported.
    Deployed {
        version: u64,
        serial: String,
    },
    /// Written but the deploy failed (rolled back when nginx -t failed).
    DeployFailed {
        version: u64,
        error: String,
    },
    /// Not written: the key did not open, the record is inconsistent, the
    /// store refused; nothing changed on disk.
    NotInstalled {
        version: u64,
        error: String,
    },
    /// Left alone (not configured here, or other names): reported in logs.
    Skipped {
        reason: String,
    },
}

/// A version written into the local store.
struct Installed {
    name: String,
    record: VersionRecord,
    previous: Option<u32>,
}

/// Writes `rec` as a new local version of `name` and makes it live. The
/// key is opened first: a value that does not open changes nothing on disk.
fn install(
    store: &Store,
    name: &str,
    rec: &VersionRecord,
    key: &SealKey,
) -> Result<Option<u32>, String> {
    let privkey = rec.open_key(name, key).map_err(|e| e.to_string())?;
    let previous = store
        .lineage(name)
        .map_err(|e| e.to_string())?
        .map(|l| l.version);
    let v = NewVersion {
        cert: rec.cert.clone(),
        chain: rec.chain.clone(),
        fullchain: rec.fullchain(),
        privkey,
    };
    let version = store.write_version(name, &v).map_err(|e| e.to_string())?;
    store.verify_version(name, version).map_err(|e| {
        format!(
            "version {} of {name} from etcd is not usable: {e}",
            rec.version
        )
    })?;
    let mut states = crate::renew::state::LineageStates::load(store).map_err(|e| e.to_string())?;
    states.ordered(name, version, rec.profile.as_deref());
    states.save().map_err(|e| e.to_string())?;
    store.activate(name, version).map_err(|e| e.to_string())?;
    Ok(previous)
}

/// Runs `f`, which blocks on the file system, without holding up the
/// runtime's other tasks (the lease keep-alive above all): on the daemon's
/// multi-threaded runtime the worker hands its other tasks over first.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Brings the given lineages (shared versions read or watched) to their
/// shared version: one store lock, one nginx test and reload for all
/// installed lineages, then a report per lineage in etcd where it says
/// something new (`cache` knows what this node's reports say). Lineages
/// already current are reported too when etcd has no such report yet (so a
/// fresh node appears in `cluster status` at once).
pub async fn sync_records(
    config: &Settings,
    etcd: &Etcd,
    keys: &Keys,
    key: &SealKey,
    node: &str,
    incoming: Vec<Incoming>,
    cache: &mut Cache,
) -> Result<Vec<(String, Synced)>, ClusterError> {
    let store = Store::new(&config.store);
    let mut shared: Vec<(String, VersionRecord)> = Vec::new();
    let mut results: Vec<(String, Synced)> = Vec::new();
    for (name, rec) in incoming {
        match rec {
            Ok(r) => shared.push((name, r)),
            Err(e) => results.push((name, Synced::Skipped { reason: e })),
        }
    }
    if shared.is_empty() {
        return Ok(results);
    }
    let mut installed: Vec<Installed> = Vec::new();
    let mut current_reports: Vec<(String, VersionRecord)> = Vec::new();
    {
        let _lock = lock::acquire(&store.state_dir(), config.renewal.lock_wait.get())
            .await
            .map_err(|e| ClusterError::Record {
                key: store.state_dir().join("lock").display().to_string(),
                detail: e.to_string(),
            })?;
        blocking(|| {
            for (name, rec) in shared {
                let local = store.current(&name).ok().flatten().map(|c| c.leaf.serial);
                let configured = config.certificate(&name).map(|c| c.domain_names());
                let action = decide::sync_action(&SyncFacts {
                    shared_serial: &rec.serial,
                    shared_domains: &rec.domains,
                    local_serial: local.as_deref(),
                    configured: configured.as_deref(),
                });
                match action {
                    SyncAction::UpToDate => {
                        current_reports.push((name.clone(), rec));
                        results.push((name, Synced::UpToDate));
                    }
                    SyncAction::NotConfigured => results.push((
                        name,
                        Synced::Skipped {
                            reason: "no [[certificate]] with this name in this node's config"
                                .into(),
                        },
                    )),
                    SyncAction::DomainsDiffer { configured, shared } => results.push((
                        name,
                        Synced::Skipped {
                            reason: format!(
                                "this node's config names {} but etcd's version has {}",
                                configured.join(", "),
                                shared.join(", ")
                            ),
                        },
                    )),
                    SyncAction::Install { .. } => match install(&store, &name, &rec, key) {
                        Ok(previous) => installed.push(Installed {
                            name,
                            record: rec,
                            previous,
                        }),
                        Err(error) => {
                            tracing::error!(lineage = %name, version = rec.version, "cannot install the shared version: {error}");
                            results.push((
                                name,
                                Synced::NotInstalled {
                                    version: rec.version,
                                    error,
                                },
                            ))
                        }
                    },
                }
            }
        });
    }
    let now = OffsetDateTime::now_utc();
    for (name, rec) in &current_reports {
        let r = DeployReport {
            serving_version: rec.version,
            serving_serial: rec.serial.clone(),
            attempted_version: rec.version,
            ok: true,
            error: None,
            at: now,
        };
        put_report(etcd, keys, name, node, &r, cache).await?;
    }
    for (name, s) in &results {
        if let Synced::NotInstalled { version, error } = s {
            let serving = store
                .current(name)
                .ok()
                .flatten()
                .map(|c| c.leaf.serial)
                .unwrap_or_default();
            let r = DeployReport {
                serving_version: 0,
                serving_serial: serving,
                attempted_version: *version,
                ok: false,
                error: Some(error.clone()),
                at: now,
            };
            put_report(etcd, keys, name, node, &r, cache).await?;
        }
    }
    if installed.is_empty() {
        return Ok(results);
    }
    for (name, outcome) in deploy(config, &store, &installed).await {
        let Some(i) = installed.iter().find(|i| i.name == name) else {
            continue;
        };
        let rec = &i.record;
        let r = match &outcome {
            Ok(()) => DeployReport {
                serving_version: rec.version,
                serving_serial: rec.serial.clone(),
                attempted_version: rec.version,
                ok: true,
                error: None,
                at: now,
            },
            Err(e) => DeployReport {
                serving_version: 0,
                serving_serial: store
                    .current(&name)
                    .ok()
                    .flatten()
                    .map(|c| c.leaf.serial)
                    .unwrap_or_default(),
                attempted_version: rec.version,
                ok: false,
                error: Some(e.clone()),
                at: now,
            },
        };
        put_report(etcd, keys, &name, node, &r, cache).await?;
        results.push((
            name,
            match outcome {
                Ok(()) => Synced::Deployed {
                    version: rec.version,
                    serial: rec.serial.clone(),
                },
                Err(error) => Synced::DeployFailed {
                    version: rec.version,
                    error,
                },
            },
        ));
    }
    Ok(results)
}

/// Writes this node's report on `name` unless etcd already holds one that
/// says the same.
async fn put_report(
    etcd: &Etcd,
    keys: &Keys,
    name: &str,
    node: &str,
    r: &DeployReport,
    cache: &mut Cache,
) -> Result<(), ClusterError> {
    if !cache.report_needed(name, r) {
        return Ok(());
    }
    let value = serde_json::to_vec(r).unwrap_or_default();
    etcd.put(&keys.deploy(name, node), &value, None).await?;
    cache.reported(name, r);
    Ok(())
}

/// nginx -t (rolling every installed lineage back when it fails), reload,
/// confirm each served serial, deploy hooks. One result per lineage.
async fn deploy(
    config: &Settings,
    store: &Store,
    installed: &[Installed],
) -> Vec<(String, Result<(), String>)> {
    let all_err = |e: String| {
        installed
            .iter()
            .map(|i| (i.name.clone(), Err(e.clone())))
            .collect::<Vec<_>>()
    };
    if config.nginx.reload {
        if let Err(e) = nginx::test(&config.nginx).await {
            let mut msg = e.to_string();
            for i in installed {
                match i.previous {
                    Some(prev) => {
                        if let Err(re) = store.activate(&i.name, prev) {
                            msg.push_str(&format!(
                                "; rolling {} back to version {prev} failed: {re}",
                                i.name
                            ));
                        }
                    }
                    None => msg.push_str(&format!(
                        "; {} had no previous version to roll back to",
                        i.name
                    )),
                }
            }
            return all_err(format!(
                "{msg}; the local lineages were moved back to their previous versions"
            ));
        }
        if let Err(e) = nginx::reload(&config.nginx).await {
            return all_err(e.to_string());
        }
    }
    let hook_timeout = config.hooks.time_limit();
    let mut out = Vec::new();
    for i in installed {
        let Some(c) = config.certificate(&i.name) else {
            out.push((i.name.clone(), Ok(())));
            continue;
        };
        if config.nginx.reload && c.confirm {
            if let Err(e) = nginx::confirm(
                &c.confirm_endpoint(),
                &c.confirm_sni(),
                &i.record.serial,
                config.nginx.confirm_timeout.get(),
            )
            .await
            {
                out.push((i.name.clone(), Err(e.to_string())));
                continue;
            }
        }
        let lineage = store.live_dir(&i.name).display().to_string();
        let env = vec![
            ("RENEWED_LINEAGE".to_string(), lineage),
            ("RENEWED_DOMAINS".to_string(), c.domain_names().join(" ")),
        ];
        let mut result = Ok(());
        for cmd in config.hooks.deploy_hook.iter().chain(c.deploy_hook.iter()) {
            if let Err(e) = hooks::run("deploy-hook", cmd, &env, hook_timeout).await {
                result = Err(format!("deploy_hook: {e}"));
            }
        }
        out.push((i.name.clone(), result));
    }
    out
}
