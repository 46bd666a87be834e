//! A probe round: probe the targets, report their alerts, update metrics.

use crate::alert::AlertError;
use crate::config::Settings;
use crate::daemon::metrics::Shared;
use crate::daemon::probe_metrics::ProbeSeries;
use crate::probe::report::Tally;
use crate::probe::{self, ProbeError, ProbeOptions, ProbeReport, Target};

/// What a probe round did. It keeps no report: each went to the caller,
/// the alert observations and the metrics as it completed.
#[derive(Debug)]
pub(crate) struct ProbeRound {
    /// How many endpoints got each verdict.
    pub tally: Tally,
    /// Why the alerts could not be recorded, if they could not.
    pub alerts: Option<AlertError>,
}

/// Probes `targets`, handing each report to `each` as it completes (in
/// completion order); reports alerts when `alert`; updates `metrics` when
/// given. Only the alert observations (problems and keys found fine) and
/// the metric samples are kept until the end of the round: the alert state
/// is loaded, updated and saved once, and the metrics change all at once,
/// so a scrape during a round sees the whole previous round. A round that
/// ran is a successful round: a failing endpoint is a problem of that
/// target (its own alert and metrics), not of the job.
pub(crate) async fn probe_round<F>(
    config: &Settings,
    targets: Vec<Target>,
    opts: &ProbeOptions,
    alert: bool,
    metrics: Option<&Shared>,
    mut each: F,
) -> ProbeRound
where
    F: FnMut(&ProbeReport),
{
    let mut tally = Tally::default();
    let mut problems = Vec::new();
    let mut ok = Vec::new();
    let mut series = metrics.map(|_| ProbeSeries::default());
    probe::probe_each(targets, opts, |_, r| {
        tally.add(r.verdict);
        if alert {
            probe::alerts::observe(&r, &config.alert, &mut problems, &mut ok);
        }
        if let Some(s) = &mut series {
            s.add(&r);
        }
        each(&r);
    })
    .await;
    let alerts = if alert {
        crate::alert::report(&config.alerting(), problems, &ok)
            .await
            .err()
    } else {
        None
    };
    if let (Some(metrics), Some(series)) = (metrics, series) {
        if let Ok(mut m) = metrics.lock() {
            for (name, series) in series.finish() {
                m.series.insert(name, series);
            }
        }
        super::record_run(metrics, "probe", true);
    }
    ProbeRound { tally, alerts }
}

/// A probe round over the configured endpoints and managed certificates,
/// with alerts: the daemon's probe job. The targets were resolved when the
/// config was loaded; Err (recorded as a failed run) when the options cannot
/// be built (a CA file that went away since).
pub(crate) async fn probe_configured(
    config: &Settings,
    metrics: Option<&Shared>,
) -> Result<ProbeRound, ProbeError> {
    let built = ProbeOptions::from_config(&config.probe, &config.store, &[])
        .map(|o| (probe::targets_from_config(config), o));
    match built {
        Ok((targets, opts)) => Ok(probe_round(config, targets, &opts, true, metrics, |_| {}).await),
        Err(e) => {
            if let Some(metrics) = metrics {
                super::record_run(metrics, "probe", false);
            }
            Err(e)
        }
    }
}
