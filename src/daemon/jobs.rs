//! The daemon's jobs: a renewal check and a probe round, run by
//! [`crate::job`] exactly as the commands run them; the daemon only logs what
//! they did. Errors are logged, never fatal to the daemon.

use super::metrics::Shared;
use crate::config::{AlertSettings, Settings};
use crate::renew::run::Options;

pub(crate) use crate::job::refresh_certificates;

/// One renewal check, as `certkeep renew` would do it.
pub(crate) async fn renew(config: &Settings, metrics: &Shared) {
    let check = crate::job::renewal_check(config, &Options::default(), Some(metrics)).await;
    match &check.outcome {
        Ok(o) => {
            for r in &o.renewed {
                tracing::info!(certificate = %r.name, serial = %r.serial, "renewed ({})", r.reason);
            }
            for f in &o.failed {
                tracing::error!(certificate = %f.name, "renewal failed: {}", f.failure);
            }
            for p in &o.problems {
                tracing::error!("renewal: {p}");
            }
            tracing::info!(
                renewed = o.renewed.len(),
                not_due = o.not_due.len(),
                failed = o.failed.len(),
                "renewal check done"
            );
        }
        Err(e) => tracing::error!("could not run the renewal check: {e}"),
    }
    if let Some(e) = &check.alerts {
        tracing::error!("alerts: {e}");
    }
}

/// One probe round over the configured endpoints, with alerts and metrics.
pub(crate) async fn probe(config: &Settings, metrics: &Shared) {
    match crate::job::probe_configured(config, Some(metrics)).await {
        // Each endpoint's result is logged by the probe itself (-v).
        Ok(round) => {
            if let Some(e) = &round.alerts {
                tracing::error!("alerts: {e}");
            }
        }
        Err(e) => tracing::error!("probe: {e}"),
    }
}

/// Alert upkeep between runs: refreshes open alerts on Alertmanager channels
/// and retries queued deliveries.
pub(crate) async fn alerts(config: &Settings) {
    match crate::alert::upkeep(&config.alerting()).await {
        Ok(Some(report)) if !report.ok() => {
            tracing::warn!("some alerts could not be delivered yet; they stay queued")
        }
        Ok(_) => {}
        Err(e) => tracing::error!("alerts: {e}"),
    }
}

/// Reads the alert state (without its lock: it is replaced atomically) into
/// the metrics: queued deliveries per configured channel and open alerts.
pub(crate) fn record_alerts(settings: &AlertSettings<'_>, metrics: &Shared) {
    let path = crate::store::Store::new(settings.store)
        .state_dir()
        .join(crate::alert::STATE_FILE);
    let state = match std::fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice::<crate::alert::AlertState>(&bytes) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "cannot read the alert state {} for metrics: {e}",
                    path.display()
                );
                return;
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => crate::alert::AlertState::default(),
        Err(e) => {
            tracing::warn!(
                "cannot read the alert state {} for metrics: {e}",
                path.display()
            );
            return;
        }
    };
    let Ok(mut m) = metrics.lock() else { return };
    m.alert_queue = settings
        .alert
        .channels
        .iter()
        .map(|c| {
            let depth = state.queue.get(&c.name).map_or(0, Vec::len);
            (c.name.clone(), depth)
        })
        .collect();
    m.alerts_open = Some(state.open().count());
}
