//! The deploy phase of a run: move the live links of every staged version,
//! then one `nginx -t`, one reload, and a confirmation per certificate that
//! nginx serves the new serial.
//!
//! What "rolls back" means: live/ never stays on a version nginx was not
//! confirmed to serve. When the test, the reload or the confirmation fails,
//! the links move back to the version live before (and, when nginx had been
//! reloaded, nginx is reloaded once more so it serves that version again).
//! The new version stays in archive/ and is recorded as pending: every later
//! run deploys it again (test, reload, confirm) without a new order, and
//! fails until it is served.

use std::sync::Arc;

use super::obtain::Staged;
use super::outcome::{DeployFailure, DeployStep, Rollback, RunProblem};
use crate::config::NginxConfig;
use crate::nginx;
use crate::store::Store;

/// What the deploy phase did with each staged version.
pub(super) struct Deployed<'s, 'a> {
    pub served: Vec<&'s Staged<'a>>,
    pub failed: Vec<(&'s Staged<'a>, DeployFailure)>,
    pub problems: Vec<RunProblem>,
}

fn roll_back(store: &Store, s: &Staged<'_>) -> Rollback {
    let Some(prev) = s.previous() else {
        return Rollback::NoPrevious;
    };
    match store.activate(s.cert.name(), prev) {
        Ok(()) => {
            tracing::warn!(
                certificate = s.cert.name(),
                "rolled back to version {prev}; version {} stays pending",
                s.version
            );
            Rollback::To(prev)
        }
        Err(error) => Rollback::Failed { to: prev, error },
    }
}

/// Deploys `staged`: the only settings this phase reads are `[nginx]`
/// and each certificate's own.
pub(super) async fn deploy<'s, 'a>(
    settings: &NginxConfig,
    store: &Store,
    staged: &'s [Staged<'a>],
) -> Deployed<'s, 'a> {
    let mut out = Deployed {
        served: Vec::new(),
        failed: Vec::new(),
        problems: Vec::new(),
    };
    let mut active: Vec<&Staged<'_>> = Vec::new();
    for s in staged {
        let live = s.cur.map(|c| c.lineage.version);
        if live == Some(s.version) {
            active.push(s);
            continue;
        }
        match store.activate(s.cert.name(), s.version) {
            Ok(()) => active.push(s),
            Err(e) => out.failed.push((
                s,
                DeployFailure {
                    version: s.version,
                    step: DeployStep::Activate(e),
                    rollback: Rollback::Untouched,
                },
            )),
        }
    }
    if active.is_empty() || !settings.reload {
        out.served = active;
        return out;
    }
    let shared_failure = |step: fn(Arc<nginx::NginxError>) -> DeployStep,
                          e: nginx::NginxError,
                          active: Vec<&'s Staged<'a>>|
     -> Vec<(&'s Staged<'a>, DeployFailure)> {
        let e = Arc::new(e);
        active
            .into_iter()
            .map(|s| {
                (
                    s,
                    DeployFailure {
                        version: s.version,
                        step: step(e.clone()),
                        rollback: roll_back(store, s),
                    },
                )
            })
            .collect()
    };
    if let Err(e) = nginx::test(settings).await {
        out.failed
            .extend(shared_failure(DeployStep::Test, e, active));
        return out;
    }
    if let Err(e) = nginx::reload(settings).await {
        out.failed
            .extend(shared_failure(DeployStep::Reload, e, active));
        return out;
    }
    let timeout = settings.confirm_timeout.get();
    let mut rolled_back = Vec::new();
    for s in active {
        if !s.cert.confirm {
            out.served.push(s);
            continue;
        }
        let name = s.cert.name();
        match nginx::confirm(
            &s.cert.confirm_endpoint(),
            &s.cert.confirm_sni(),
            &s.serial,
            timeout,
        )
        .await
        {
            Ok(()) => {
                tracing::info!(certificate = name, "nginx serves the new certificate");
                out.served.push(s);
            }
            Err(e) => {
                let rollback = roll_back(store, s);
                if matches!(rollback, Rollback::To(_)) {
                    rolled_back.push(name.to_string());
                }
                out.failed.push((
                    s,
                    DeployFailure {
                        version: s.version,
                        step: DeployStep::Confirm(e),
                        rollback,
                    },
                ));
            }
        }
    }
    // nginx loaded the new files: load the previous ones again.
    if !rolled_back.is_empty() {
        if let Err(error) = nginx::reload(settings).await {
            out.problems.push(RunProblem::ReloadBack {
                names: rolled_back,
                error,
            });
        }
    }
    out
}
