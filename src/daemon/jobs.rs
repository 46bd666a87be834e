//! The daemon's jobs: a renewal check and a probe round. Each updates the
//! metrics; errors are logged, never fatal to the daemon.

use time::OffsetDateTime;

use super::metrics::{CertificateMetric, Shared};
use crate::config::Config;
use crate::renew::run::{self, Options};
use crate::store::Store;

/// Reads the live certificates of configured lineages into the metrics.
pub fn refresh_certificates(config: &Config, metrics: &Shared) {
    let store = Store::new(&config.store);
    let Ok(mut m) = metrics.lock() else { return };
    let mut fresh = std::collections::BTreeMap::new();
    for c in &config.certificates {
        match store.current(c.name()) {
            Ok(Some(cur)) => {
                let last = m.certificates.get(c.name()).and_then(|x| x.last_renewal_ok);
                fresh.insert(
                    c.name().to_string(),
                    CertificateMetric {
                        not_after: cur.leaf.not_after.unix_timestamp(),
                        not_before: cur.leaf.not_before.unix_timestamp(),
                        last_renewal_ok: last,
                    },
                );
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(certificate = c.name(), "cannot read the lineage: {e}"),
        }
    }
    m.certificates = fresh;
}

fn record_run(metrics: &Shared, job: &'static str, ok: bool) {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if let Ok(mut m) = metrics.lock() {
        m.last_run.insert(job, (now, ok));
        if ok {
            m.last_success.insert(job, now);
        }
    }
}

/// One renewal check, as `certkeep renew` would do it.
pub async fn renew(config: &Config, metrics: &Shared) {
    let ok = match run::run(config, &Options::default()).await {
        Ok(o) => {
            for r in &o.renewed {
                tracing::info!(certificate = %r.name, serial = %r.serial, "renewed ({})", r.reason);
            }
            for f in &o.failed {
                tracing::error!(certificate = %f.name, "renewal failed: {}", f.error);
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
            let (problems, ok) = crate::renew::alerts::observations(
                &o,
                time::OffsetDateTime::now_utc(),
                config.renewal.ca_unreachable_after.0,
            );
            if let Err(e) = crate::alert::report(config, problems, &ok).await {
                tracing::error!("alerts: {e}");
            }
            if let Ok(mut m) = metrics.lock() {
                for r in &o.renewed {
                    m.certificates
                        .entry(r.name.clone())
                        .or_default()
                        .last_renewal_ok = Some(true);
                }
                for f in &o.failed {
                    m.certificates
                        .entry(f.name.clone())
                        .or_default()
                        .last_renewal_ok = Some(false);
                }
            }
            o.ok()
        }
        Err(e) => {
            tracing::error!("renewal check failed: {e}");
            false
        }
    };
    refresh_certificates(config, metrics);
    record_run(metrics, "renew", ok);
}

/// One probe round over the configured endpoints, with alerts and metrics.
pub async fn probe(config: &Config, metrics: &Shared) {
    let targets = match crate::probe::targets_from_config(config) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("probe: {e}");
            record_run(metrics, "probe", false);
            return;
        }
    };
    if targets.is_empty() {
        record_run(metrics, "probe", true);
        return;
    }
    let opts = match crate::probe::ProbeOptions::from_config(config, &[]) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("probe: {e}");
            record_run(metrics, "probe", false);
            return;
        }
    };
    let reports = crate::probe::probe_all(targets, &opts).await;
    for r in &reports {
        tracing::info!(target = %r.target, verdict = r.verdict.as_str(), "probed");
    }
    let (problems, ok) = crate::probe::alerts::observations(&reports, &config.alert);
    if let Err(e) = crate::alert::report(config, problems, &ok).await {
        tracing::error!("alerts: {e}");
    }
    if let Ok(mut m) = metrics.lock() {
        for (name, series) in super::probe_metrics::series(&reports) {
            m.series.insert(name, series);
        }
    }
    let ok = reports
        .iter()
        .all(|r| r.verdict != crate::probe::grade::Verdict::Error);
    record_run(metrics, "probe", ok);
}
