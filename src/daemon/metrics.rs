//! Prometheus metrics of the daemon: what the jobs record, and its
//! exposition through the `prometheus-client` crate (served by
//! [`super::http`]). Names follow blackbox_exporter's `probe_ssl_*` style.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// What the daemon knows, updated after each job.
#[derive(Debug, Default, Clone)]
pub(crate) struct Metrics {
    pub certificates: BTreeMap<String, CertificateMetric>,
    /// job ("renew", "probe") -> unix time of the last run and its success.
    pub last_run: BTreeMap<&'static str, (i64, bool)>,
    /// job -> unix time of the last successful run.
    pub last_success: BTreeMap<&'static str, i64>,
    /// Extra pre-rendered series (probe results), keyed by metric name.
    pub series: BTreeMap<String, Series>,
    /// Alert deliveries queued per configured channel (0 when none).
    pub alert_queue: BTreeMap<String, usize>,
    /// Open alerts, when the alert state was read.
    pub alerts_open: Option<usize>,
    /// Unix time of the daemon's next renewal check (None outside the
    /// daemon, and in cluster mode, where this node orders no renewals).
    pub next_renewal_check: Option<i64>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct CertificateMetric {
    pub not_after: i64,
    pub not_before: i64,
    /// Serial (hex, colon-separated) and issuer of the live certificate.
    pub serial: String,
    pub issuer: String,
    /// The lineage's live version in the store (1, 2, ...).
    pub version: u32,
    /// Unix time from which the lineage is due for renewal: as the last
    /// renewal check planned it (ARI or threshold), else by the threshold
    /// rule for the live certificate.
    pub renewal_due_at: Option<i64>,
    /// Result of the last renewal attempt in this daemon's life (None: none attempted).
    pub last_renewal_ok: Option<bool>,
    /// Unix time of the last renewal that succeeded / failed in this daemon's life.
    pub last_success_at: Option<i64>,
    pub last_failure_at: Option<i64>,
}

/// A metric family: help text and samples (labels, value).
#[derive(Debug, Default, Clone)]
pub(crate) struct Series {
    pub help: String,
    pub samples: Vec<(Vec<(String, String)>, f64)>,
}

pub(crate) type Shared = Arc<Mutex<Metrics>>;

type Samples = Vec<Sample>;

/// One gauge family to expose: name, help and samples.
type Family<'a> = (&'a str, &'a str, Cow<'a, [Sample]>);

type Sample = (Vec<(String, String)>, f64);

fn family<'a>(
    out: &mut Vec<Family<'a>>,
    name: &'a str,
    help: &'a str,
    samples: impl Into<Cow<'a, [Sample]>>,
) {
    out.push((name, help, samples.into()));
}

/// Every gauge family of `m`, in order (pure). Every time is an absolute
/// Unix time in seconds and every duration is in seconds: time left is
/// computed in PromQL (`certkeep_certificate_not_after_timestamp_seconds - time()`).
fn families(m: &Metrics) -> Vec<Family<'_>> {
    let mut out = Vec::new();
    let name = |n: &str| vec![("name".to_string(), n.to_string())];
    let which = |n: &str, c: &CertificateMetric| {
        vec![
            ("name".to_string(), n.to_string()),
            ("serial".to_string(), c.serial.clone()),
            ("issuer".to_string(), c.issuer.clone()),
        ]
    };
    let certs: Vec<_> = m
        .certificates
        .iter()
        .filter(|(_, c)| c.not_after != 0)
        .collect();
    family(
        &mut out,
        "certkeep_certificate_not_after_timestamp_seconds",
        "Expiry (notAfter) of the live certificate of each lineage, Unix time.",
        certs
            .iter()
            .map(|(n, c)| (which(n, c), c.not_after as f64))
            .collect::<Samples>(),
    );
    family(
        &mut out,
        "certkeep_certificate_not_before_timestamp_seconds",
        "Start of validity (notBefore) of the live certificate of each lineage, Unix time.",
        certs
            .iter()
            .map(|(n, c)| (which(n, c), c.not_before as f64))
            .collect::<Samples>(),
    );
    family(
        &mut out,
        "certkeep_certificate_lifetime_seconds",
        "Total lifetime (notAfter - notBefore) of the live certificate of each lineage.",
        certs
            .iter()
            .map(|(n, c)| (name(n), (c.not_after - c.not_before) as f64))
            .collect::<Samples>(),
    );
    let all: Vec<_> = m.certificates.iter().collect();
    family(
        &mut out,
        "certkeep_renewal_last_success",
        "1 if the last renewal attempt of the lineage succeeded, 0 if it failed (absent before the first attempt).",
        all.iter()
            .filter_map(|(n, c)| {
                c.last_renewal_ok
                    .map(|ok| (name(n), if ok { 1.0 } else { 0.0 }))
            })
            .collect::<Samples>(),
    );
    family(
        &mut out,
        "certkeep_renewal_last_success_timestamp_seconds",
        "When a renewal of the lineage last succeeded, Unix time.",
        all.iter()
            .filter_map(|(n, c)| c.last_success_at.map(|t| (name(n), t as f64)))
            .collect::<Samples>(),
    );
    family(
        &mut out,
        "certkeep_renewal_last_failure_timestamp_seconds",
        "When a renewal of the lineage last failed, Unix time.",
        all.iter()
            .filter_map(|(n, c)| c.last_failure_at.map(|t| (name(n), t as f64)))
            .collect::<Samples>(),
    );
    let job = |j: &str| vec![("job_name".to_string(), j.to_string())];
    family(
        &mut out,
        "certkeep_last_run_timestamp_seconds",
        "When each job (renew, probe) last ran, Unix time.",
        m.last_run
            .iter()
            .map(|(j, (t, _))| (job(j), *t as f64))
            .collect::<Samples>(),
    );
    family(
        &mut out,
        "certkeep_last_run_success",
        "1 if the last run of each job succeeded.",
        m.last_run
            .iter()
            .map(|(j, (_, ok))| (job(j), if *ok { 1.0 } else { 0.0 }))
            .collect::<Samples>(),
    );
    family(
        &mut out,
        "certkeep_last_success_timestamp_seconds",
        "When each job last succeeded, Unix time.",
        m.last_success
            .iter()
            .map(|(j, t)| (job(j), *t as f64))
            .collect::<Samples>(),
    );
    family(
        &mut out,
        "certkeep_alert_queue_depth",
        "Alert deliveries queued (not yet delivered) per channel.",
        m.alert_queue
            .iter()
            .map(|(c, n)| (vec![("channel".to_string(), c.clone())], *n as f64))
            .collect::<Samples>(),
    );
    family(
        &mut out,
        "certkeep_alerts_open",
        "Alerts open (notified and not resolved).",
        m.alerts_open
            .map(|n| vec![(Vec::new(), n as f64)])
            .unwrap_or_default(),
    );
    for (n, s) in &m.series {
        family(&mut out, n, &s.help, s.samples.as_slice());
    }
    out
}

/// The media type of [`Exposition::render`]'s output.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The daemon's metrics as a `prometheus-client` collector: read from the
/// shared state on each scrape, so the jobs only ever update [`Metrics`].
#[derive(Debug)]
pub(crate) struct Exposition {
    registry: Registry,
    shared: Shared,
}

#[derive(Debug)]
struct Collect(Shared);

impl Collector for Collect {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for (name, help, samples) in families(&m) {
            if samples.is_empty() {
                continue;
            }
            // Whole numbers (times, counts, verdicts) print as integers.
            let whole = samples
                .iter()
                .all(|(_, v)| v.fract() == 0.0 && v.abs() < 9.0e15);
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (labels, v) in samples.iter() {
                let sample = family.encode_family(labels)?;
                if whole {
                    ConstGauge::new(*v as i64).encode(sample)?;
                } else {
                    ConstGauge::new(*v).encode(sample)?;
                }
            }
        }
        Ok(())
    }
}

impl Exposition {
    pub(crate) fn new(shared: Shared) -> Exposition {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Collect(shared.clone())));
        Exposition { registry, shared }
    }

    /// The OpenMetrics text exposition of the current state.
    pub(crate) fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// A copy of the current state (for the status page).
    pub(crate) fn snapshot(&self) -> Metrics {
        self.shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(m: &Metrics) -> String {
        Exposition::new(Arc::new(Mutex::new(m.clone())))
            .render()
            .unwrap()
    }

    #[test]
    fn renders_certificates_runs_alerts_and_series() {
        let mut m = Metrics::default();
        m.certificates.insert(
            "web".into(),
            CertificateMetric {
                not_after: 1_000_000 + 10 * 86_400 + 5,
                not_before: 1_000_000 - 80 * 86_400,
                serial: "0a:1b".into(),
                issuer: "CN=Test \"CA\"".into(),
                last_renewal_ok: Some(false),
                last_success_at: Some(900_000),
                last_failure_at: Some(1_000_000),
                ..Default::default()
            },
        );
        m.last_run.insert("renew", (1_000_000, true));
        m.last_success.insert("renew", 1_000_000);
        m.alert_queue.insert("am".into(), 2);
        m.alerts_open = Some(3);
        m.series.insert(
            "certkeep_probe_success".into(),
            Series {
                help: "1 if the probe worked.".into(),
                samples: vec![(vec![("target".into(), "a\"b".into())], 1.0)],
            },
        );
        let text = render(&m);
        for want in [
            "certkeep_certificate_not_after_timestamp_seconds{name=\"web\",serial=\"0a:1b\",issuer=\"CN=Test \\\"CA\\\"\"} 1864005\n",
            "certkeep_certificate_not_before_timestamp_seconds{name=\"web\",serial=\"0a:1b\",issuer=\"CN=Test \\\"CA\\\"\"} -5912000\n",
            "certkeep_certificate_lifetime_seconds{name=\"web\"} 7776005\n",
            "certkeep_renewal_last_success{name=\"web\"} 0\n",
            "certkeep_renewal_last_success_timestamp_seconds{name=\"web\"} 900000\n",
            "certkeep_renewal_last_failure_timestamp_seconds{name=\"web\"} 1000000\n",
            "certkeep_last_run_success{job_name=\"renew\"} 1\n",
            "certkeep_alert_queue_depth{channel=\"am\"} 2\n",
            "certkeep_alerts_open 3\n",
            "certkeep_probe_success{target=\"a\\\"b\"} 1\n",
            "# TYPE certkeep_certificate_not_after_timestamp_seconds gauge\n",
            "# HELP certkeep_alerts_open Alerts open (notified and not resolved).\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        assert!(!text.contains("days"), "{text}");
        assert!(text.ends_with("\n# EOF\n"), "{text}");
    }

    #[test]
    fn fractions_stay_fractions() {
        let mut m = Metrics::default();
        m.series.insert(
            "certkeep_probe_duration_seconds".into(),
            Series {
                help: "How long.".into(),
                samples: vec![
                    (vec![("target".into(), "a".into())], 0.25),
                    (vec![("target".into(), "b".into())], 2.0),
                ],
            },
        );
        let text = render(&m);
        assert!(
            text.contains("certkeep_probe_duration_seconds{target=\"a\"} 0.25\n")
                && text.contains("certkeep_probe_duration_seconds{target=\"b\"} 2.0\n"),
            "{text}"
        );
    }

    #[test]
    fn empty_families_are_left_out() {
        assert_eq!(render(&Metrics::default()), "# EOF\n");
    }
}
