//! The two jobs certkeep runs: a renewal check and a probe round. Each runs
//! the same way in every mode (`certkeep renew` from a timer, `certkeep probe
//! --alert`, the daemon): the same steps, the same alerts and, when the
//! caller keeps them, the same metrics. Callers differ only in how they print
//! what a job returns.

mod probe;
mod renewal;

pub(crate) use probe::{probe_configured, probe_round};
pub(crate) use renewal::renewal_check;

use time::OffsetDateTime;

use crate::config::Settings;
use crate::daemon::metrics::{CertificateMetric, Shared};
use crate::store::Store;

/// Reads the live certificates of configured lineages into the metrics.
pub(crate) fn refresh_certificates(config: &Settings, metrics: &Shared) {
    let store = Store::new(&config.store);
    let Ok(mut m) = metrics.lock() else { return };
    let mut fresh = std::collections::BTreeMap::new();
    for c in &config.certificates {
        match store.current(c.name()) {
            Ok(Some(cur)) => {
                let prev = m.certificates.get(c.name()).cloned().unwrap_or_default();
                // A plan from the last check holds for the serial it saw; a
                // new certificate (or none planned yet) gets the threshold rule.
                let renewal_due_at = match prev.renewal_due_at {
                    Some(t) if prev.serial == cur.leaf.serial => Some(t),
                    _ => {
                        let lifetime = cur.leaf.not_after - cur.leaf.not_before;
                        let before = crate::renew::plan::threshold(
                            lifetime,
                            c.renew_before.or(config.renewal.renew_before),
                        );
                        Some((cur.leaf.not_after - before).unix_timestamp())
                    }
                };
                fresh.insert(
                    c.name().to_string(),
                    CertificateMetric {
                        not_after: cur.leaf.not_after.unix_timestamp(),
                        not_before: cur.leaf.not_before.unix_timestamp(),
                        serial: cur.leaf.serial.clone(),
                        issuer: cur.leaf.issuer.clone(),
                        version: cur.lineage.version,
                        renewal_due_at,
                        ..prev
                    },
                );
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(certificate = c.name(), "cannot read the lineage: {e}"),
        }
    }
    m.certificates = fresh;
}

/// Records that `job` ran now, and whether it succeeded.
pub(crate) fn record_run(metrics: &Shared, job: &'static str, ok: bool) {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if let Ok(mut m) = metrics.lock() {
        m.last_run.insert(job, (now, ok));
        if ok {
            m.last_success.insert(job, now);
        }
    }
}
