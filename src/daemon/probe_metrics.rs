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

fn target(r: &ProbeReport) -> Labels {
    vec![("target".to_string(), r.target.clone())]
}

/// Every probe series for `reports`, by metric name.
pub fn series(reports: &[ProbeReport]) -> Vec<(String, Series)> {
    let mut success = Vec::new();
    let mut verdict = Vec::new();
    let mut checks = Vec::new();
    let mut expiry = Vec::new();
    let mut earliest = Vec::new();
    let mut days = Vec::new();
    let mut versions = Vec::new();
    let mut hsts = Vec::new();
    let mut duration = Vec::new();
    for r in reports {
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
            let mut l = t.clone();
            l.push(("check".into(), c.name.to_string()));
            checks.push((l, verdict_value(c.verdict)));
        }
        if let Some(c) = &r.certificate {
            expiry.push((t.clone(), c.not_after.unix_timestamp() as f64));
            earliest.push((t.clone(), c.earliest_expiry.unix_timestamp() as f64));
            let mut l = t.clone();
            l.push(("certificate".into(), c.expires_first.clone()));
            days.push((l, c.days_left as f64));
        }
        for (name, o) in crate::probe::config::ProtocolName::ALL
            .iter()
            .zip(&r.protocols.0)
        {
            if let Some(acc) = o.accepted() {
                let mut l = t.clone();
                l.push(("version".into(), name.as_str().to_string()));
                versions.push((l, if acc { 1.0 } else { 0.0 }));
            }
        }
        if let Some(h) = &r.hsts {
            hsts.push((
                t.clone(),
                h.max_age.filter(|_| h.present).unwrap_or(0) as f64,
            ));
        }
    }
    let s = |help: &str, samples| Series {
        help: help.to_string(),
        samples,
    };
    vec![
        (
            "certkeep_probe_success".into(),
            s("1 if the endpoint could be probed.", success),
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
            s("Expiry of the served leaf (unix time).", expiry),
        ),
        (
            "certkeep_probe_ssl_earliest_cert_expiry".into(),
            s(
                "Earliest expiry among the served leaf and intermediates (unix time).",
                earliest,
            ),
        ),
        (
            "certkeep_probe_ssl_days_left".into(),
            s(
                "Whole days until the first certificate of the served chain expires; label certificate: leaf or intermediate.",
                days,
            ),
        ),
        (
            "certkeep_probe_tls_version_accepted".into(),
            s("1 if the endpoint accepts this TLS version.", versions),
        ),
        (
            "certkeep_probe_http_hsts_max_age_seconds".into(),
            s("HSTS max-age served (0 when absent).", hsts),
        ),
        (
            "certkeep_probe_duration_seconds".into(),
            s("How long the probe took.", duration),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{ProbeReport, Protocols};

    #[test]
    fn days_left_follow_the_first_certificate_to_expire() {
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
        let days = get("certkeep_probe_ssl_days_left");
        assert_eq!(days.len(), 1);
        assert_eq!(days[0].1, 10.0);
        assert!(days[0]
            .0
            .contains(&("certificate".to_string(), "intermediate".to_string())));
        // The earliest expiry is the intermediate's, the leaf's own stays.
        assert_eq!(
            get("certkeep_probe_ssl_earliest_cert_expiry")[0].1,
            1_768_089_600.0
        );
        assert_eq!(
            get("certkeep_probe_ssl_leaf_not_after_timestamp_seconds")[0].1,
            1_772_323_200.0
        );
    }
}
