//! The obtain phase of a run: the pre hooks, then for each certificate to
//! order the self-check, key and order, and the new version written to
//! archive/ (the live links do not move here; see [`super::deploy`]).

use std::sync::Arc;

use instant_acme::CertificateIdentifier;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use super::outcome::{Failed, Failure, Renewed, RunProblem};
use super::plan::Reason;
use crate::acme::{AcmeClient, AcmeError};
use crate::config::{CertificateConfig, Hooks, Settings};
use crate::hooks;
use crate::issue::Issuer;
use crate::store::{Current, Store};

/// A certificate to order.
pub(super) struct Order<'a> {
    pub cert: &'a CertificateConfig,
    pub cur: Option<&'a Current>,
    pub reason: Reason,
}

/// A version in archive/ that is to become live and served.
pub(super) struct Staged<'a> {
    pub cert: &'a CertificateConfig,
    /// The live certificate before this run (None: a first certificate).
    pub cur: Option<&'a Current>,
    pub version: u32,
    pub serial: String,
    pub not_after: OffsetDateTime,
    pub reason: Reason,
    /// The ACME profile it was ordered with (None: the CA's default, or a
    /// version ordered by an earlier run).
    pub profile: Option<String>,
}

impl Staged<'_> {
    /// The version to move back to when the deploy fails.
    pub(super) fn previous(&self) -> Option<u32> {
        self.cur
            .map(|c| c.lineage.version)
            .filter(|v| *v != self.version)
    }
}

/// What the obtain phase produced.
#[derive(Default)]
pub(super) struct Obtained<'a> {
    pub staged: Vec<Staged<'a>>,
    /// Dry runs: obtained, kept in memory.
    pub dry_run: Vec<Renewed>,
    pub failed: Vec<Failed>,
    pub problems: Vec<RunProblem>,
}

pub(super) fn failed(c: &CertificateConfig, cur: Option<&Current>, failure: Failure) -> Failed {
    Failed {
        name: c.name().into(),
        domains: c.domain_names(),
        failure,
        expires: cur.map(|cur| cur.leaf.not_after),
        pending_version: None,
    }
}

/// The CA, connected on first use, once per run: one retry budget per run,
/// not one per phase.
pub(super) struct Ca<'a> {
    pub config: &'a Settings,
    pub store: &'a Store,
    pub directory: &'a str,
    pub persist: bool,
    pub client: Option<AcmeClient>,
    pub error: Option<Arc<AcmeError>>,
}

impl Ca<'_> {
    pub(super) async fn client(&mut self) -> Result<&AcmeClient, Arc<AcmeError>> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let client = match self.client.take() {
            Some(c) => c,
            None => AcmeClient::connect(
                &self.config.acme,
                self.directory,
                self.store,
                self.persist,
                self.config.renewal.retry_budget.get(),
            )
            .await
            .map_err(|e| {
                let e = Arc::new(e);
                self.error = Some(e.clone());
                e
            })?,
        };
        Ok(self.client.insert(client))
    }

    /// Whether the CA answered this run (None: not contacted).
    pub(super) fn reachable(&self) -> Option<bool> {
        match (&self.client, &self.error) {
            (Some(_), _) => Some(true),
            (None, Some(_)) => Some(false),
            (None, None) => None,
        }
    }
}

/// Runs the global pre hook of `[hooks]` (once, before the first order).
pub(super) async fn pre_hook<'a>(
    global: &Hooks,
    orders: &[Order<'a>],
    timeout: std::time::Duration,
) -> Result<(), Obtained<'a>> {
    let Some(cmd) = &global.pre_hook else {
        return Ok(());
    };
    if orders.is_empty() {
        return Ok(());
    }
    let Err(e) = hooks::run("pre-hook", cmd, &[], timeout).await else {
        return Ok(());
    };
    let e = Arc::new(e);
    Err(Obtained {
        failed: orders
            .iter()
            .map(|o| failed(o.cert, o.cur, Failure::RunPreHook(e.clone())))
            .collect(),
        problems: vec![RunProblem::PreHook(e)],
        ..Obtained::default()
    })
}

/// Orders each certificate and stores its new version (kept in memory in a
/// dry run): its pre hook, its self-check, then the CA (connected on first
/// use), key and order.
pub(super) async fn obtain_all<'a>(
    config: &Settings,
    ca: &mut Ca<'_>,
    store: &Store,
    orders: Vec<Order<'a>>,
    dry_run: bool,
    hook_timeout: std::time::Duration,
    progress: &crate::progress::Progress,
) -> Obtained<'a> {
    let mut got = Obtained::default();
    for Order {
        cert: c,
        cur,
        reason,
    } in orders
    {
        // Counted done however the iteration ends.
        let _done = progress.item();
        progress.set_message(c.name());
        if let Some(cmd) = &c.pre_hook {
            if let Err(e) = hooks::run("pre-hook", cmd, &[], hook_timeout).await {
                got.failed.push(failed(c, cur, Failure::PreHook(e)));
                continue;
            }
        }
        let replaces = match cur {
            Some(cur) if !dry_run => {
                CertificateIdentifier::try_from(&CertificateDer::from(cur.leaf_der.as_slice()))
                    .ok()
                    .map(|id| id.into_owned())
            }
            _ => None,
        };
        tracing::info!(certificate = c.name(), %reason, "renewing");
        if let Err(e) = crate::issue::preflight(config.self_check().as_ref(), c).await {
            got.failed.push(failed(c, cur, Failure::Obtain(e)));
            continue;
        }
        let client = match ca.client().await {
            Ok(client) => client,
            Err(e) => {
                got.failed.push(failed(c, cur, Failure::CaUnreachable(e)));
                continue;
            }
        };
        let issuer = Issuer {
            acme: &config.acme,
            client,
            store,
        };
        let new = match issuer.obtain(c, replaces, !dry_run).await {
            Ok(g) => g,
            Err(e) => {
                got.failed.push(failed(c, cur, Failure::Obtain(e)));
                continue;
            }
        };
        if dry_run {
            got.dry_run.push(Renewed {
                name: c.name().into(),
                version: None,
                serial: new.leaf.serial,
                not_after: new.leaf.not_after,
                reason,
            });
            continue;
        }
        let written = store
            .write_version(c.name(), &new.version)
            .and_then(|v| store.verify_version(c.name(), v).map(|()| v));
        match written {
            Ok(version) => got.staged.push(Staged {
                cert: c,
                cur,
                version,
                serial: new.leaf.serial,
                not_after: new.leaf.not_after,
                reason,
                profile: new.profile,
            }),
            Err(e) => got.failed.push(failed(c, cur, Failure::Store(e))),
        }
    }
    got
}
