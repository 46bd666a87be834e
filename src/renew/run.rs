//! `certkeep renew`: plan, obtain, store, one validated nginx reload, hooks.

use std::time::Duration;

use instant_acme::CertificateIdentifier;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use super::ari::{self, AriStore};
use super::plan::{self, Decision, Facts, Reason};
use crate::acme::AcmeClient;
use crate::config::{CertificateConfig, Config};
use crate::hooks;
use crate::issue::Issuer;
use crate::net::error_chain;
use crate::nginx;
use crate::store::{lock, Current, Store};

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dry_run: bool,
    pub force: bool,
    /// Limit to these certificate names (all when empty).
    pub certs: Vec<String>,
    pub run_deploy_hooks: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no [[certificate]] named {0:?} in the config")]
    UnknownCertificate(String),
    #[error("cannot use the store: {0}")]
    Store(String),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Renewed {
    pub name: String,
    /// Archive version now live (None in a dry run).
    pub version: Option<u32>,
    pub serial: String,
    pub not_after: String,
    pub reason: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct NotDue {
    pub name: String,
    pub due_at: String,
    pub basis: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Failed {
    pub name: String,
    pub domains: Vec<String>,
    pub error: String,
    /// When the live certificate (still in place) expires.
    pub expires: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Outcome {
    pub dry_run: bool,
    pub renewed: Vec<Renewed>,
    pub not_due: Vec<NotDue>,
    pub failed: Vec<Failed>,
    /// nginx test/reload/confirm and hook problems.
    pub problems: Vec<String>,
    /// Whether the CA answered this run (None: not contacted).
    pub ca_reachable: Option<bool>,
    /// Since when the CA has been unreachable, across runs (RFC 3339).
    pub ca_unreachable_since: Option<String>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.problems.is_empty()
    }
}

/// A renewal stored in this run (for rollback and hooks).
struct Stored<'a> {
    cert: &'a CertificateConfig,
    previous: Option<u32>,
    serial: String,
}

pub async fn run(config: &Config, opts: &Options) -> Result<Outcome, RunError> {
    let selected = select(config, &opts.certs)?;
    let store = Store::new(&config.store);
    let mut out = Outcome {
        dry_run: opts.dry_run,
        ..Outcome::default()
    };
    // A dry run writes nothing, so it neither locks nor cleans the store.
    let _lock = if opts.dry_run {
        None
    } else {
        store
            .ensure_layout()
            .map_err(|e| RunError::Store(e.to_string()))?;
        let l = lock::acquire(&store.state_dir(), config.renewal.lock_wait.0)
            .await
            .map_err(|e| RunError::Store(e.to_string()))?;
        for p in store
            .recover()
            .map_err(|e| RunError::Store(e.to_string()))?
        {
            tracing::info!(path = %p.display(), "removed a leftover of an interrupted run");
        }
        Some(l)
    };
    let mut ari_state = if opts.dry_run {
        AriStore::default()
    } else {
        AriStore::load(&store)
    };
    let now = OffsetDateTime::now_utc();

    // Current certificates.
    let mut current: Vec<(&CertificateConfig, Option<Current>)> = Vec::new();
    for c in selected {
        // A damaged lineage is a failure of its own, never of the run.
        match store.current_checked(c.name()) {
            Ok(cur) => current.push((c, cur)),
            Err(e) => out.failed.push(Failed {
                name: c.name().into(),
                domains: c.domain_names(),
                error: e.to_string(),
                expires: None,
            }),
        }
    }

    // ARI windows, fetched only where the stored one is missing or stale.
    let mut client: Option<AcmeClient> = None;
    // Why the CA could not be reached earlier in this run, if it could not:
    // one retry budget per run, not one per phase.
    let mut unreachable: Option<String> = None;
    let directory = if opts.dry_run {
        &config.acme.staging_directory.0
    } else {
        &config.acme.directory.0
    };
    if !opts.dry_run && !opts.force {
        let queries: Vec<ari::Query> = current
            .iter()
            .filter_map(|(c, cur)| cur.as_ref().map(|cur| (c, cur)))
            .filter(|(_, cur)| {
                plan::should_fetch_ari(
                    ari_state.windows.get(&cur.lineage.name),
                    &cur.leaf.serial,
                    now,
                )
            })
            .map(|(c, cur)| ari::Query {
                name: c.name().to_string(),
                serial: cur.leaf.serial.clone(),
                leaf_der: cur.leaf_der.clone(),
            })
            .collect();
        if !queries.is_empty() {
            match connect(config, directory, &store, true).await {
                Ok(cl) => {
                    if cl.supports_ari {
                        for (name, r) in
                            ari::fetch(&cl, queries, config.renewal.ari_concurrency).await
                        {
                            match r {
                                Ok(state) => ari_state.set(&name, state),
                                Err(e) => {
                                    tracing::warn!(certificate = %name, "ARI look-up failed, using the lifetime threshold: {e}")
                                }
                            }
                        }
                    }
                    client = Some(cl);
                    out.ca_reachable = Some(true);
                }
                Err(e) => {
                    tracing::warn!("cannot reach the CA for renewal windows: {e}");
                    out.ca_reachable = Some(false);
                    unreachable = Some(e);
                }
            }
        }
    }

    // Decide.
    let mut due: Vec<(&CertificateConfig, Option<&Current>, Reason)> = Vec::new();
    for (c, cur) in &current {
        let decision = match cur {
            _ if opts.dry_run => Decision::Due(Reason::DryRun),
            _ if opts.force => Decision::Due(Reason::Forced),
            None => Decision::Due(Reason::NoCertificate),
            Some(cur) => {
                let wanted = c.domain_names();
                plan::decide(
                    &Facts {
                        not_before: cur.leaf.not_before,
                        not_after: cur.leaf.not_after,
                        serial: &cur.leaf.serial,
                        cert_domains: &cur.leaf.sans,
                        wanted_domains: &wanted,
                        renew_before: c.renew_before.or(config.renewal.renew_before),
                        ari: ari_state.windows.get(c.name()),
                    },
                    now,
                )
            }
        };
        match decision {
            Decision::Due(reason) => due.push((c, cur.as_ref(), reason)),
            Decision::NotDue { at, basis } => out.not_due.push(NotDue {
                name: c.name().into(),
                due_at: plan::date(at),
                basis: basis.into(),
            }),
        }
    }
    if due.is_empty() {
        save_ari(&mut ari_state, &mut out);
        track_ca(&store, opts.dry_run, now, &mut out);
        return Ok(out);
    }

    // The CA is contacted (and an account registered) only once a
    // certificate's self-check passed: a broken webroot is reported at once,
    // not after a retry budget spent on an unreachable CA.
    let mut client: Option<AcmeClient> = client.filter(|_| !opts.dry_run);
    let hook_timeout = config
        .hooks
        .timeout
        .map(|t| t.0)
        .unwrap_or(hooks::DEFAULT_TIMEOUT);

    // Pre hook: once, before the first renewal.
    if let Some(cmd) = &config.hooks.pre_hook {
        if let Err(e) = hooks::run("pre-hook", cmd, &[], hook_timeout).await {
            out.problems.push(format!("pre_hook: {e}"));
            for (c, cur, _) in &due {
                out.failed.push(failed(
                    c,
                    *cur,
                    format!("not attempted: the pre_hook failed: {e}"),
                ));
            }
            let p = run_post_hooks(config, &due, &out, hook_timeout, &[]).await;
            out.problems.extend(p);
            return Ok(out);
        }
    }

    let mut stored: Vec<Stored<'_>> = Vec::new();
    for (c, cur, reason) in &due {
        if let Some(cmd) = &c.pre_hook {
            if let Err(e) = hooks::run("pre-hook", cmd, &[], hook_timeout).await {
                out.failed.push(failed(
                    c,
                    *cur,
                    format!("not attempted: its pre_hook failed: {e}"),
                ));
                continue;
            }
        }
        let replaces = match cur {
            Some(cur) if !opts.dry_run => {
                CertificateIdentifier::try_from(&CertificateDer::from(cur.leaf_der.as_slice()))
                    .ok()
                    .map(|id| id.into_owned())
            }
            _ => None,
        };
        tracing::info!(certificate = c.name(), %reason, "renewing");
        if let Err(e) = crate::issue::preflight(config, c).await {
            out.failed.push(failed(c, *cur, error_chain(&e)));
            continue;
        }
        if client.is_none() && unreachable.is_none() {
            match connect(config, directory, &store, !opts.dry_run).await {
                Ok(cl) => client = Some(cl),
                Err(e) => unreachable = Some(e),
            }
            out.ca_reachable = Some(client.is_some());
        }
        let Some(client) = client.as_ref() else {
            let e = unreachable.clone().unwrap_or_default();
            out.failed.push(failed(c, *cur, e));
            continue;
        };
        let issuer = Issuer {
            config,
            client,
            store: &store,
        };
        let got = match issuer.obtain(c, replaces, !opts.dry_run).await {
            Ok(g) => g,
            Err(e) => {
                out.failed.push(failed(c, *cur, error_chain(&e)));
                continue;
            }
        };
        let serial = got.leaf.serial.clone();
        let not_after = plan::date(got.leaf.not_after);
        if opts.dry_run {
            out.renewed.push(Renewed {
                name: c.name().into(),
                version: None,
                serial,
                not_after,
                reason: reason.to_string(),
            });
            continue;
        }
        let stored_version = store
            .write_version(c.name(), &got.version)
            .and_then(|v| store.verify_version(c.name(), v).map(|()| v))
            .and_then(|v| store.activate(c.name(), v).map(|()| v));
        match stored_version {
            Ok(v) => {
                ari_state.remove(c.name());
                stored.push(Stored {
                    cert: c,
                    previous: cur.map(|cur| cur.lineage.version),
                    serial: serial.clone(),
                });
                out.renewed.push(Renewed {
                    name: c.name().into(),
                    version: Some(v),
                    serial,
                    not_after,
                    reason: reason.to_string(),
                });
            }
            Err(e) => out.failed.push(failed(
                c,
                *cur,
                format!("the new certificate could not be stored (the live one is untouched): {e}"),
            )),
        }
    }

    // One validated reload for everything stored in this run.
    let mut deployed: Vec<&Stored<'_>> = Vec::new();
    if !stored.is_empty() && config.nginx.reload {
        match deploy(config, &store, &stored).await {
            Ok(problems) => {
                for s in &stored {
                    if !problems.iter().any(|(n, _)| n == s.cert.name()) {
                        deployed.push(s);
                    }
                }
                out.problems.extend(problems.into_iter().map(|(_, p)| p));
            }
            Err(e) => {
                // Rolled back: these renewals did not happen.
                for s in &stored {
                    out.renewed.retain(|r| r.name != s.cert.name());
                    out.failed.push(Failed {
                        name: s.cert.name().into(),
                        domains: s.cert.domain_names(),
                        error: e.clone(),
                        expires: None,
                    });
                }
            }
        }
    } else {
        deployed.extend(stored.iter());
    }

    // Deploy hooks: once per deployed certificate.
    let mut renewed_lineages = Vec::new();
    if !opts.dry_run || opts.run_deploy_hooks {
        let targets: Vec<&CertificateConfig> = if opts.dry_run {
            due.iter()
                .filter(|(c, _, _)| out.renewed.iter().any(|r| r.name == c.name()))
                .map(|(c, _, _)| *c)
                .collect()
        } else {
            deployed.iter().map(|s| s.cert).collect()
        };
        for c in targets {
            let lineage = store.live_dir(c.name()).display().to_string();
            renewed_lineages.push(lineage.clone());
            let env = vec![
                ("RENEWED_LINEAGE".to_string(), lineage),
                ("RENEWED_DOMAINS".to_string(), c.domain_names().join(" ")),
            ];
            for cmd in config.hooks.deploy_hook.iter().chain(c.deploy_hook.iter()) {
                if let Err(e) = hooks::run("deploy-hook", cmd, &env, hook_timeout).await {
                    out.problems.push(format!("{}: deploy_hook: {e}", c.name()));
                }
            }
        }
    }
    let p = run_post_hooks(config, &due, &out, hook_timeout, &renewed_lineages).await;
    out.problems.extend(p);
    save_ari(&mut ari_state, &mut out);
    track_ca(&store, opts.dry_run, now, &mut out);
    Ok(out)
}

/// Keeps `<store>/state/ca.json`: since when the CA has been unreachable.
fn track_ca(store: &Store, dry_run: bool, now: OffsetDateTime, out: &mut Outcome) {
    #[derive(serde::Serialize, serde::Deserialize, Default, PartialEq)]
    struct CaState {
        unreachable_since: Option<String>,
    }
    let path = store.state_dir().join("ca.json");
    let old: CaState = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let new = match out.ca_reachable {
        None => return,
        Some(true) => CaState::default(),
        Some(false) => CaState {
            unreachable_since: old
                .unreachable_since
                .clone()
                .or_else(|| Some(plan::date(now))),
        },
    };
    out.ca_unreachable_since = new.unreachable_since.clone();
    if dry_run || new == old {
        return;
    }
    let json = serde_json::to_vec(&new).unwrap_or_default();
    if let Err(e) = crate::store::atomic::write_file(&path, &json, 0o600) {
        out.problems
            .push(format!("cannot write {}: {e}", path.display()));
    }
}

fn select<'a>(
    config: &'a Config,
    names: &[String],
) -> Result<Vec<&'a CertificateConfig>, RunError> {
    if names.is_empty() {
        return Ok(config.certificates.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            config
                .certificate(n)
                .ok_or_else(|| RunError::UnknownCertificate(n.clone()))
        })
        .collect()
}

async fn connect(
    config: &Config,
    directory: &str,
    store: &Store,
    persist: bool,
) -> Result<AcmeClient, String> {
    AcmeClient::connect(
        &config.acme,
        directory,
        store,
        persist,
        config.renewal.retry_budget.0,
    )
    .await
    .map_err(|e| error_chain(&e))
}

fn failed(c: &CertificateConfig, cur: Option<&Current>, error: String) -> Failed {
    Failed {
        name: c.name().into(),
        domains: c.domain_names(),
        error,
        expires: cur.map(|cur| plan::date(cur.leaf.not_after)),
    }
}

fn save_ari(ari: &mut AriStore, out: &mut Outcome) {
    if let Err(e) = ari.save() {
        out.problems.push(format!("cannot save the ARI state: {e}"));
    }
}

/// nginx -t, reload, confirm. Err (after rolling back) when the test fails;
/// Ok with per-certificate problems otherwise.
async fn deploy(
    config: &Config,
    store: &Store,
    stored: &[Stored<'_>],
) -> Result<Vec<(String, String)>, String> {
    if let Err(e) = nginx::test(&config.nginx).await {
        let mut msg = e.to_string();
        for s in stored {
            match s.previous {
                Some(prev) => match store.activate(s.cert.name(), prev) {
                    Ok(()) => {
                        tracing::warn!(certificate = s.cert.name(), "rolled back to version {prev}")
                    }
                    Err(re) => msg.push_str(&format!(
                        "; rolling {} back to version {prev} failed: {re}",
                        s.cert.name()
                    )),
                },
                None => msg.push_str(&format!(
                    "; {} had no previous version to roll back to",
                    s.cert.name()
                )),
            }
        }
        return Err(format!(
            "{msg}; live certificates were moved back to their previous versions"
        ));
    }
    if let Err(e) = nginx::reload(&config.nginx).await {
        return Ok(stored
            .iter()
            .map(|s| (s.cert.name().to_string(), format!("{}: {e}", s.cert.name())))
            .collect());
    }
    let timeout: Duration = config.nginx.confirm_timeout.0;
    let mut problems = Vec::new();
    for s in stored.iter().filter(|s| s.cert.confirm) {
        let name = s.cert.name();
        match nginx::confirm(
            &s.cert.confirm_endpoint(),
            &s.cert.confirm_sni(),
            &s.serial,
            timeout,
        )
        .await
        {
            Ok(()) => tracing::info!(certificate = name, "nginx serves the new certificate"),
            Err(e) => problems.push((name.to_string(), format!("{name}: {e}"))),
        }
    }
    Ok(problems)
}

async fn run_post_hooks(
    config: &Config,
    due: &[(&CertificateConfig, Option<&Current>, Reason)],
    out: &Outcome,
    timeout: Duration,
    renewed_lineages: &[String],
) -> Vec<String> {
    let renewed: Vec<String> = out
        .renewed
        .iter()
        .filter_map(|r| config.certificate(&r.name))
        .flat_map(|c| c.domain_names())
        .collect();
    let failed: Vec<String> = out.failed.iter().flat_map(|f| f.domains.clone()).collect();
    let env = vec![
        ("RENEWED_DOMAINS".to_string(), renewed.join(" ")),
        ("FAILED_DOMAINS".to_string(), failed.join(" ")),
        ("RENEWED_LINEAGES".to_string(), renewed_lineages.join(" ")),
    ];
    let mut cmds: Vec<&crate::config::Command> = due
        .iter()
        .filter_map(|(c, _, _)| c.post_hook.as_ref())
        .collect();
    cmds.extend(config.hooks.post_hook.iter());
    let mut problems = Vec::new();
    for cmd in cmds {
        if let Err(e) = hooks::run("post-hook", cmd, &env, timeout).await {
            problems.push(format!("post_hook: {e}"));
        }
    }
    problems
}
