//! Probe results as Prometheus series (pure), in the style of
//! blackbox_exporter's `probe_ssl_*` and `probe_tls_version_info`.

use super::metrics::Series;
use crate::probe::grade::Verdict;
use crate::probe::ProbeReport;

fn verdict_value(v: Verdict) -> f64 {
    match v {
        Verdict::Ok => 0.0,
        Verdict::Warning => 1.0,
        Verdict::Critical => 2.0,
        Verdict::Error => 3.0,
    }
}

type Labels = Vec<(String, String)>;

/// `target` (as configured) and `address` (the IP probed; empty when the
/// probe did not get that far).
fn target(r: &ProbeReport) -> Labels {
    vec![
        ("target".to_string(), r.target.clone()),
        ("address".to_string(), r.address.clone().unwrap_or_default()),
    ]
}

fn with(mut l: Labels, more: &[(&str, &str)]) -> Labels {
    for (k, v) in more {
        l.push((k.to_string(), v.to_string()));
    }
    l
}

/// Every probe series for `reports`, by metric name. Times are Unix
/// seconds, durations seconds.
#[cfg(test)]
pub(crate) fn series(reports: &[ProbeReport]) -> Vec<(String, Series)> {
    let mut s = ProbeSeries::default();
    for r in reports {
        s.add(r);
    }
    s.finish()
}

/// The samples of a round, taken one report at a time as it completes.
#[derive(Debug, Default)]
pub(crate) struct ProbeSeries {
    success: Vec<(Labels, f64)>,
    verdict: Vec<(Labels, f64)>,
    checks: Vec<(Labels, f64)>,
    not_after: Vec<(Labels, f64)>,
    not_before: Vec<(Labels, f64)>,
    earliest: Vec<(Labels, f64)>,
    versions: Vec<(Labels, f64)>,
    hsts: Vec<(Labels, f64)>,
    duration: Vec<(Labels, f64)>,
    served: Vec<(Labels, f64)>,
}

impl ProbeSeries {
    /// Adds one report's samples.
    pub(crate) fn add(&mut self, r: &ProbeReport) {
        let ProbeSeries {
            success,
            verdict,
            checks,
            not_after,
            not_before,
            earliest,
            versions,
            hsts,
            duration,
            served,
        } = self;
        let t = target(r);
        success.push((
            t.clone(),
            if r.verdict == Verdict::Error {
                0.0
            } else {
                1.0
            },
        ));
        verdict.push((t.clone(), verdict_value(r.verdict)));
        duration.push((t.clone(), r.duration_ms as f64 / 1000.0));
        for c in &r.checks {
            checks.push((
                with(t.clone(), &[("check", c.name)]),
                verdict_value(c.verdict),
            ));
        }
        if let Some(c) = &r.certificate {
            let which = with(t.clone(), &[("serial", &c.serial), ("issuer", &c.issuer)]);
            not_after.push((which.clone(), c.not_after.unix_timestamp() as f64));
            not_before.push((which, c.not_before.unix_timestamp() as f64));
            earliest.push((
                with(t.clone(), &[("certificate", &c.expires_first)]),
                c.earliest_expiry.unix_timestamp() as f64,
            ));
        }
        if let Some(st) = &r.stored {
            if st.error.is_none() && st.version.is_some() {
                served.push((
                    with(t.clone(), &[("name", &st.certificate)]),
                    if st.matches { 1.0 } else { 0.0 },
                ));
            }
        }
        for (name, o) in crate::probe::config::ProtocolName::ALL
            .iter()
            .zip(&r.protocols.0)
        {
            if let Some(acc) = o.accepted() {
                versions.push((
                    with(t.clone(), &[("version", name.as_str())]),
                    if acc { 1.0 } else { 0.0 },
                ));
            }
        }
        if let Some(h) = &r.hsts {
            hsts.push((
                t.clone(),
                h.max_age.filter(|_| h.present).unwrap_or(0) as f64,
            ));
        }
    }

    /// Every series, by metric name.
    pub(crate) fn finish(self) -> Vec<(String, Series)> {
        let ProbeSeries {
            success,
            verdict,
            checks,
            not_after,
            not_before,
            earliest,
            versions,
            hsts,
            duration,
            served,
        } = self;
        let s = |help: &str, samples| Series {
            help: help.to_string(),
            samples,
        };
        vec![
        (
            "certkeep_probe_success".into(),
            s("1 if the endpoint could be probed (the round reached it), 0 if not.", success),
        ),
        (
            "certkeep_probe_duration_seconds".into(),
            s("How long the probe of the endpoint took.", duration),
        ),
        (
            "certkeep_probe_verdict".into(),
            s(
                "Overall verdict: 0 ok, 1 warning, 2 critical, 3 error.",
                verdict,
            ),
        ),
        (
            "certkeep_probe_check_verdict".into(),
            s(
                "Verdict per check: 0 ok, 1 warning, 2 critical, 3 error.",
                checks,
            ),
        ),
        (
            "certkeep_probe_ssl_leaf_not_after_timestamp_seconds".into(),
            s("Expiry (notAfter) of the served leaf certificate, Unix time.", not_after),
        ),
        (
            "certkeep_probe_ssl_leaf_not_before_timestamp_seconds".into(),
            s("Start of validity (notBefore) of the served leaf certificate, Unix time.", not_before),
        ),
        (
            "certkeep_probe_ssl_earliest_cert_expiry_timestamp_seconds".into(),
            s(
                "Earliest expiry among the served leaf and intermediates, Unix time (blackbox_exporter's probe_ssl_earliest_cert_expiry); label certificate: leaf or intermediate.",
                earliest,
            ),
        ),
        (
            "certkeep_probe_served_certificate_current".into(),
            s(
                "1 if the endpoint serves the newest stored version of lineage name, 0 if an older serial (renewed but not deployed).",
                served,
            ),
        ),
        (
            "certkeep_probe_tls_version_accepted".into(),
            s("1 if the endpoint accepts this TLS version (tls1.0 .. tls1.3), 0 if it refuses it.", versions),
        ),
        (
            "certkeep_probe_http_hsts_max_age_seconds".into(),
            s("HSTS max-age served (0 when absent).", hsts),
        ),
    ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{ProbeReport, Protocols};

    #[test]
    fn earliest_expiry_follows_the_first_certificate_to_expire() {
        let r = ProbeReport {
            target: "https://a.example".into(),
            host: "a.example".into(),
            port: 443,
            address: None,
            policy: "default".into(),
            verdict: Verdict::Critical,
            checks: Vec::new(),
            protocols: Protocols::default(),
            protocol_details: Default::default(),
            hsts: None,
            http: None,
            certificate: Some(crate::probe::facts::example_intermediate_first()),
            stored: None,
            error: None,
            duration_ms: 5,
        };
        let all = series(&[r]);
        let get = |name: &str| &all.iter().find(|(n, _)| n == name).unwrap().1.samples;
        let earliest = get("certkeep_probe_ssl_earliest_cert_expiry_timestamp_seconds");
        assert_eq!(earliest.len(), 1);
        assert!(earliest[0]
            .0
            .contains(&("certificate".to_string(), "intermediate".to_string())));
        // The earliest expiry is the intermediate's, the leaf's own stays.
        assert_eq!(earliest[0].1, 1_768_089_600.0);
        let leaf = &get("certkeep_probe_ssl_leaf_not_after_timestamp_seconds")[0];
        assert!(leaf.0.iter().any(|(k, _)| k == "serial"), "{leaf:?}");
        assert!(
            leaf.0.contains(&("address".to_string(), String::new())),
            "{leaf:?}"
        );
        assert_eq!(
            get("certkeep_probe_ssl_leaf_not_after_timestamp_seconds")[0].1,
            1_772_323_200.0
        );
    }
}
