//! `certkeep renew`: a renewal run in phases. [`run`] prepares the store,
//! plans (ARI windows, what is due, which stored versions still await their
//! deploy), obtains ([`super::obtain`]), deploys ([`super::deploy`]) and runs
//! the hooks ([`super::hooks`]); each phase returns typed results that end up
//! in the [`Outcome`].

use time::OffsetDateTime;

use super::ari::{self, AriStore};
use super::deploy;
use super::hooks as run_hooks;
use super::obtain::{self, failed, Ca, Order, Staged};
pub(crate) use super::outcome::{Failed, Failure, NotDue, Outcome, Renewed, RunProblem};
use super::plan::{self, Decision, Facts, Reason};
use super::state::LineageStates;
use crate::cert::{self, CertFacts};
use crate::config::{CertificateConfig, RenewalConfig, Settings};
use crate::store::lock::{self, LockError, StoreLock};
use crate::store::{Current, Store, StoreError};

#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    pub dry_run: bool,
    pub force: bool,
    /// Limit to these certificate names (all when empty).
    pub certs: Vec<String>,
    pub run_deploy_hooks: bool,
    /// A bar counting the certificates ordered (hidden but on a terminal).
    pub progress: crate::progress::Progress,
}

/// Why a run could not run at all.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error("no [[certificate]] named {0:?} in the config")]
    UnknownCertificate(String),
    #[error("cannot use the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot use the store: {0}")]
    Lock(#[from] LockError),
    /// `--dry-run` with a CA other than Let's Encrypt and no staging directory.
    #[error("{0}")]
    NoDryRunDirectory(String),
}

/// What the plan phase found for one lineage.
enum Work<'a> {
    Order(Order<'a>),
    /// A stored version not served yet: deploy it again, no order.
    Redeploy(Staged<'a>),
}

pub(crate) async fn run(config: &Settings, opts: &Options) -> Result<Outcome, RunError> {
    let selected = select(config, &opts.certs)?;
    let directory = if opts.dry_run {
        config
            .acme
            .dry_run_directory()
            .map_err(RunError::NoDryRunDirectory)?
            .as_str()
    } else {
        config.acme.directory.as_str()
    };
    let store = Store::new(&config.store);
    let now = OffsetDateTime::now_utc();
    let mut out = Outcome {
        dry_run: opts.dry_run,
        ..Outcome::default()
    };
    let _lock = prepare(&config.renewal, &store, opts.dry_run).await?;
    let (mut ari_state, mut states) = if opts.dry_run {
        (AriStore::default(), LineageStates::in_memory())
    } else {
        (AriStore::load(&store), LineageStates::load(&store)?)
    };
    let mut ca = Ca {
        config,
        store: &store,
        directory,
        persist: !opts.dry_run,
        client: None,
        error: None,
    };

    // Plan.
    let mut current: Vec<(&CertificateConfig, Option<Current>)> = Vec::new();
    for c in selected {
        // A damaged lineage is a failure of its own, never of the run.
        match store.current_checked(c.name()) {
            Ok(cur) => current.push((c, cur)),
            Err(e) => out.failed.push(failed(c, None, Failure::Lineage(e))),
        }
    }
    if !opts.dry_run && !opts.force {
        refresh_ari(&config.renewal, &mut ca, &current, &mut ari_state, now).await;
    }
    let work = plan_work(
        &config.renewal,
        opts,
        &store,
        &current,
        &ari_state,
        &mut states,
        now,
        &mut out,
    );
    if work.is_empty() {
        opts.progress.finish();
        finish(&store, opts.dry_run, now, ari_state, states, &ca, &mut out);
        return Ok(out);
    }
    let attempted: Vec<&CertificateConfig> = work
        .iter()
        .map(|w| match w {
            Work::Order(o) => o.cert,
            Work::Redeploy(s) => s.cert,
        })
        .collect();
    let (orders, mut staged): (Vec<Order<'_>>, Vec<Staged<'_>>) =
        work.into_iter()
            .fold((Vec::new(), Vec::new()), |(mut o, mut s), w| {
                match w {
                    Work::Order(x) => o.push(x),
                    Work::Redeploy(x) => s.push(x),
                }
                (o, s)
            });
    opts.progress.set_length(orders.len());
    let hook_timeout = config.hooks.time_limit();

    // Obtain. The CA is contacted (and an account registered) only once a
    // certificate's self-check passed: a broken webroot is reported at once,
    // not after a retry budget spent on an unreachable CA.
    let got = if orders.is_empty() {
        obtain::Obtained::default()
    } else {
        match obtain::pre_hook(&config.hooks, &orders, hook_timeout).await {
            Err(cancelled) => cancelled,
            Ok(()) => {
                obtain::obtain_all(
                    config,
                    &mut ca,
                    &store,
                    orders,
                    opts.dry_run,
                    hook_timeout,
                    &opts.progress,
                )
                .await
            }
        }
    };
    opts.progress.finish();
    out.failed.extend(got.failed);
    out.problems.extend(got.problems);
    out.renewed.extend(got.dry_run);
    for s in &got.staged {
        ari_state.remove(s.cert.name());
        states.ordered(s.cert.name(), s.version, s.profile.as_deref());
    }
    staged.extend(got.staged);

    // Deploy. Recorded as pending first: a run killed between moving the
    // links and the confirmation leaves a version the next run deploys again.
    for s in &staged {
        states.pending(s.cert.name(), s.version, now);
    }
    if let Err(error) = states.save() {
        out.problems.push(RunProblem::State {
            what: "lineage state (which versions await their deploy)",
            error,
        });
    }
    let deployed = deploy::deploy(&config.nginx, &store, &staged).await;
    for s in &deployed.served {
        states.served(s.cert.name(), s.version);
        out.renewed.push(Renewed {
            name: s.cert.name().into(),
            version: Some(s.version),
            serial: s.serial.clone(),
            not_after: s.not_after,
            reason: s.reason.clone(),
        });
    }
    for (s, failure) in deployed.failed {
        states.pending(s.cert.name(), s.version, now);
        // The certificate left in place: the previous one, unless the links
        // still point at the new version.
        let expires = if failure.rollback.left_new_version() {
            Some(s.not_after)
        } else {
            s.cur.map(|c| c.leaf.not_after)
        };
        out.failed.push(Failed {
            name: s.cert.name().into(),
            domains: s.cert.domain_names(),
            failure: Failure::Deploy(failure),
            expires,
            pending_version: Some(s.version),
        });
    }
    out.problems.extend(deployed.problems);

    // Hooks.
    let mut renewed_lineages = Vec::new();
    if !opts.dry_run || opts.run_deploy_hooks {
        let targets: Vec<&CertificateConfig> = if opts.dry_run {
            attempted
                .iter()
                .filter(|c| out.renewed.iter().any(|r| r.name == c.name()))
                .copied()
                .collect()
        } else {
            deployed.served.iter().map(|s| s.cert).collect()
        };
        renewed_lineages = run_hooks::deploy_hooks(
            &config.hooks,
            &store,
            &targets,
            hook_timeout,
            &mut out.problems,
        )
        .await;
    }
    let p = run_hooks::post_hooks(
        &config.hooks,
        &attempted,
        &out,
        hook_timeout,
        &renewed_lineages,
    )
    .await;
    out.problems.extend(p);
    finish(&store, opts.dry_run, now, ari_state, states, &ca, &mut out);
    Ok(out)
}

/// Takes the store lock and cleans up after an interrupted run. A dry run
/// writes nothing, so it neither locks nor cleans the store.
async fn prepare(
    renewal: &RenewalConfig,
    store: &Store,
    dry_run: bool,
) -> Result<Option<StoreLock>, RunError> {
    if dry_run {
        return Ok(None);
    }
    store.ensure_layout()?;
    let l = lock::acquire(&store.state_dir(), renewal.lock_wait.get()).await?;
    for p in store.recover()? {
        tracing::info!(path = %p.display(), "removed a leftover of an interrupted run");
    }
    Ok(Some(l))
}

/// Fetches ARI windows where the stored one is missing or stale, at most
/// `[renewal] ari_concurrency` at a time.
async fn refresh_ari(
    renewal: &RenewalConfig,
    ca: &mut Ca<'_>,
    current: &[(&CertificateConfig, Option<Current>)],
    ari_state: &mut AriStore,
    now: OffsetDateTime,
) {
    if !renewal.ari {
        return;
    }
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
    if queries.is_empty() {
        return;
    }
    let expires: std::collections::BTreeMap<String, OffsetDateTime> = current
        .iter()
        .filter_map(|(c, cur)| {
            cur.as_ref()
                .map(|cur| (c.name().to_string(), cur.leaf.not_after))
        })
        .collect();
    match ca.client().await {
        Ok(cl) if cl.supports_ari => {
            for (name, r) in ari::fetch(cl, queries, renewal.ari_concurrency).await {
                match r {
                    Ok(state) => {
                        if let Some(na) = expires.get(&name) {
                            if !plan::usable_window(&state, *na) {
                                tracing::warn!(
                                    certificate = %name,
                                    "the CA's renewal window (ARI) {} .. {} ends after the certificate expires ({}); renewing by the lifetime rule instead",
                                    plan::date(state.window_start),
                                    plan::date(state.window_end),
                                    plan::date(*na)
                                );
                            }
                        }
                        ari_state.set(&name, state)
                    }
                    Err(e) => {
                        tracing::warn!(certificate = %name, "ARI look-up failed, using the lifetime threshold: {e}")
                    }
                }
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(
            "cannot reach the CA for renewal windows: {}",
            crate::net::error_chain(e.as_ref())
        ),
    }
}

/// Decides, per lineage: order, deploy a stored version again, or not due;
/// `[renewal] renew_before` applies where a certificate sets none.
#[allow(clippy::too_many_arguments)]
fn plan_work<'a>(
    renewal: &RenewalConfig,
    opts: &Options,
    store: &Store,
    current: &'a [(&'a CertificateConfig, Option<Current>)],
    ari_state: &AriStore,
    states: &mut LineageStates,
    now: OffsetDateTime,
    out: &mut Outcome,
) -> Vec<Work<'a>> {
    let mut work = Vec::new();
    for (c, cur) in current {
        let cur = cur.as_ref();
        if !opts.dry_run && !opts.force {
            if let Some((version, facts)) = pending_version(store, states, c, cur, now) {
                work.push(Work::Redeploy(Staged {
                    cert: c,
                    cur,
                    version,
                    serial: facts.serial,
                    not_after: facts.not_after,
                    reason: Reason::NotServed { version },
                    profile: None,
                }));
                continue;
            }
        }
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
                        renew_before: c.renew_before.or(renewal.renew_before),
                        ari: ari_state.windows.get(c.name()).filter(|_| renewal.ari),
                        revoked: states.get(c.name()).is_revoked(&cur.leaf.serial),
                    },
                    now,
                )
            }
        };
        match decision {
            Decision::Due(reason) => work.push(Work::Order(Order {
                cert: c,
                cur,
                reason,
            })),
            Decision::NotDue { at, basis } => out.not_due.push(NotDue {
                name: c.name().into(),
                due_at: at,
                basis,
            }),
        }
    }
    work
}

/// The stored version of `c` that awaits its deploy and is still worth
/// deploying, with its certificate's facts. A pending version that is gone,
/// unreadable or no longer fits the config is forgotten (a new order follows).
fn pending_version(
    store: &Store,
    states: &mut LineageStates,
    c: &CertificateConfig,
    cur: Option<&Current>,
    now: OffsetDateTime,
) -> Option<(u32, CertFacts)> {
    let state = states.get(c.name());
    let Some(version) = state.redeploy(cur.map(|cur| cur.lineage.version)) else {
        if state.pending.is_some() {
            // The live links moved past it (`certkeep issue`).
            states.drop_pending(c.name());
        }
        return None;
    };
    let path = store
        .archive_dir(c.name())
        .join(format!("cert{version}.pem"));
    let facts = std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|pem| cert::parse_pem_leaf(&pem, "").map_err(|e| e.to_string()))
        .and_then(|der| cert::facts(&der, "").map_err(|e| e.to_string()));
    match facts {
        Ok(f) if plan::redeployable(&f.sans, &c.domain_names(), f.not_before, f.not_after, now) => {
            // Checked as a new version is, before its links move.
            match store.verify_version(c.name(), version) {
                Ok(()) => Some((version, f)),
                Err(e) => {
                    tracing::warn!(
                        certificate = c.name(),
                        "version {version} was never served and is damaged ({e}); ordering a new certificate"
                    );
                    states.drop_pending(c.name());
                    None
                }
            }
        }
        Ok(_) => {
            tracing::warn!(
                certificate = c.name(),
                "version {version} was never served and no longer fits (names changed or too close to expiry); ordering a new certificate"
            );
            states.drop_pending(c.name());
            None
        }
        Err(e) => {
            tracing::warn!(
                certificate = c.name(),
                "version {version} was never served and cannot be read ({}: {e}); ordering a new certificate",
                path.display()
            );
            states.drop_pending(c.name());
            None
        }
    }
}

/// Saves what the run learnt: ARI windows, lineage states, CA reachability.
fn finish(
    store: &Store,
    dry_run: bool,
    now: OffsetDateTime,
    mut ari_state: AriStore,
    mut states: LineageStates,
    ca: &Ca<'_>,
    out: &mut Outcome,
) {
    if let Err(error) = ari_state.save() {
        out.problems.push(RunProblem::State {
            what: "ARI state",
            error,
        });
    }
    if let Err(error) = states.save() {
        out.problems.push(RunProblem::State {
            what: "lineage state (which versions await their deploy)",
            error,
        });
    }
    out.ca_reachable = ca.reachable();
    track_ca(store, dry_run, now, out);
}

/// Keeps `<store>/state/ca.json`: since when the CA has been unreachable.
fn track_ca(store: &Store, dry_run: bool, now: OffsetDateTime, out: &mut Outcome) {
    #[derive(serde::Serialize, serde::Deserialize, Default, PartialEq)]
    struct CaState {
        #[serde(default, with = "time::serde::rfc3339::option")]
        unreachable_since: Option<OffsetDateTime>,
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
            unreachable_since: old.unreachable_since.or(Some(now)),
        },
    };
    out.ca_unreachable_since = new.unreachable_since;
    if dry_run || new == old {
        return;
    }
    let written = serde_json::to_vec(&new)
        .map_err(std::io::Error::other)
        .and_then(|json| crate::store::atomic::write_file(&path, &json, 0o600));
    if let Err(e) = written {
        out.problems.push(RunProblem::State {
            what: "CA state",
            error: crate::store::io_err("write", &path)(e),
        });
    }
}

fn select<'a>(
    config: &'a Settings,
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
