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
