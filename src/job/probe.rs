//! A probe round: probe the targets, report their alerts, update metrics.

use crate::alert::AlertError;
use crate::config::Config;
use crate::daemon::metrics::Shared;
use crate::probe::{self, ProbeError, ProbeOptions, ProbeReport, Target};

/// What a probe round did.
#[derive(Debug)]
pub(crate) struct ProbeRound {
    pub reports: Vec<ProbeReport>,
    /// Why the alerts could not be recorded, if they could not.
    pub alerts: Option<AlertError>,
}

/// Probes `targets`; reports alerts when `alert`; updates `metrics` when
/// given. A round that ran is a successful round: a failing endpoint is a
/// problem of that target (its own alert and metrics), not of the job.
pub(crate) async fn probe_round(
    config: &Config,
    targets: Vec<Target>,
    opts: &ProbeOptions,
    alert: bool,
    metrics: Option<&Shared>,
) -> ProbeRound {
    let reports = if targets.is_empty() {
        Vec::new()
    } else {
        probe::probe_all(targets, opts).await
    };
    let alerts = if alert {
        let (problems, ok) = probe::alerts::observations(&reports, &config.alert);
        crate::alert::report(&config.alerting(), problems, &ok)
            .await
            .err()
    } else {
        None
    };
    if let Some(metrics) = metrics {
        if let Ok(mut m) = metrics.lock() {
            for (name, series) in crate::daemon::probe_metrics::series(&reports) {
                m.series.insert(name, series);
            }
        }
        super::record_run(metrics, "probe", true);
    }
    ProbeRound { reports, alerts }
}

/// A probe round over the configured endpoints and managed certificates,
/// with alerts: the daemon's probe job. The targets were resolved when the
/// config was loaded; Err (recorded as a failed run) when the options cannot
/// be built (a CA file that went away since).
pub(crate) async fn probe_configured(
    config: &Config,
    metrics: Option<&Shared>,
) -> Result<ProbeRound, ProbeError> {
    let built =
        ProbeOptions::from_config(config, &[]).map(|o| (probe::targets_from_config(config), o));
    match built {
        Ok((targets, opts)) => Ok(probe_round(config, targets, &opts, true, metrics).await),
        Err(e) => {
            if let Some(metrics) = metrics {
                super::record_run(metrics, "probe", false);
            }
            Err(e)
        }
    }
}
