//! What a probe round tells the alert subsystem (pure): each failing check of
//! an endpoint is a problem of its own (`probe:<host>:<port>:<check>`), each
//! passing one is checked-OK; an endpoint that cannot be probed at all is one
//! critical problem (`...:reachable`) and leaves its other checks as they were.

use super::grade::{Check, Verdict};
use super::ProbeReport;
use crate::alert::config::AlertConfig;
use crate::alert::{Problem, Severity};

pub fn key(r: &ProbeReport, check: &str) -> String {
    format!("probe:{}:{}:{check}", r.host, r.port)
}

/// A few words naming what a failed check is about.
fn headline(check: &Check, r: &ProbeReport) -> String {
    match (check.name, &r.certificate) {
        ("expiry", Some(c)) => {
            let which = if c.expires_first == "leaf" {
                "certificate"
            } else {
                "intermediate certificate"
            };
            if check.reason.contains("not valid yet") {
                "certificate not valid yet".into()
            } else if c.days_left < 0 {
                format!("{which} expired")
            } else if c.days_left == 1 {
                format!("{which} expires in 1 day")
            } else {
                format!("{which} expires in {} days", c.days_left)
            }
        }
        ("chain", _) => "certificate chain not trusted".into(),
        ("hostname", _) => format!("certificate does not cover {}", r.host),
        ("key", _) => "weak certificate key".into(),
        ("signature", _) => "weak certificate signature".into(),
        ("served", _) => "served certificate is not the newest stored".into(),
        ("certificate", _) => "no certificate could be checked".into(),
        ("protocols", _) => "TLS versions differ from the policy".into(),
        ("hsts", _) => "HSTS missing or weak".into(),
        ("http-redirect", _) => "plain HTTP does not redirect to HTTPS".into(),
        ("acme-path", _) => "ACME challenge path not served".into(),
        (other, _) => format!("{other} check failed"),
    }
}

pub fn observations(reports: &[ProbeReport], cfg: &AlertConfig) -> (Vec<Problem>, Vec<String>) {
    let mut problems = Vec::new();
    let mut ok = Vec::new();
    for r in reports {
        observe(r, cfg, &mut problems, &mut ok);
    }
    (problems, ok)
}

/// One report's observations, appended to `problems` and `ok` (a round
/// takes each report as it completes and keeps only these).
pub fn observe(
    r: &ProbeReport,
    cfg: &AlertConfig,
    problems: &mut Vec<Problem>,
    ok: &mut Vec<String>,
) {
    {
        if r.verdict == Verdict::Error {
            let why = r
                .error
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "the probe failed".into());
            problems.push(
                Problem::new(
                    key(r, "reachable"),
                    Severity::Critical,
                    format!("cannot probe {}", r.target),
                )
                .detail("endpoint", r.target.clone())
                .detail("problem", why),
            );
            return;
        }
        ok.push(key(r, "reachable"));
        for c in &r.checks {
            let severity = match c.verdict {
                Verdict::Ok => {
                    ok.push(key(r, c.name));
                    continue;
                }
                Verdict::Warning => Severity::Warning,
                Verdict::Critical => Severity::Critical,
                Verdict::Error => continue,
            };
            // A short headline; the reason goes once, under "Problem".
            let mut p = Problem::new(
                key(r, c.name),
                severity,
                format!("{}: {}", r.target, headline(c, r)),
            )
            .detail("endpoint", r.target.clone())
            .detail("check", c.name)
            .detail("problem", c.reason.clone());
            if let Some(cert) = &r.certificate {
                // Days left count the certificate that expires first.
                let first = if cert.expires_first == "leaf" {
                    "the server certificate".to_string()
                } else {
                    format!("intermediate \"{}\"", cert.earliest_expiry_subject)
                };
                p = p
                    .detail("days_left", cert.days_left.to_string())
                    .detail("not_after", crate::dates::rfc3339(cert.earliest_expiry))
                    .detail("expires_first", first)
                    .detail("issuer", cert.issuer.clone())
                    .detail("serial", cert.serial.clone());
                p.fingerprint = Some(cert.fingerprint_sha256.clone());
                if c.name == "expiry" {
                    p.threshold = cfg.expiry_threshold(cert.days_left, cert.lifetime_days);
                }
            }
            problems.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{ErrorKind, ProbeError};

    fn report(verdict: Verdict, checks: Vec<(&'static str, Verdict)>) -> ProbeReport {
        ProbeReport {
            target: "https://a.example:8443".into(),
            host: "a.example".into(),
            port: 8443,
            address: None,
            policy: "default".into(),
            verdict,
            checks: checks
                .into_iter()
                .map(|(name, verdict)| Check {
                    name,
                    verdict,
                    reason: format!("{name} says {}", verdict.as_str()),
                })
                .collect(),
            protocols: Default::default(),
            protocol_details: Default::default(),
            hsts: None,
            http: None,
            certificate: None,
            stored: None,
            error: (verdict == Verdict::Error)
                .then(|| ProbeError::new(ErrorKind::ConnectTimeout, "connect timed out".into())),
            duration_ms: 3,
        }
    }

    #[test]
    fn failing_checks_are_problems_and_passing_ones_resolve() {
        let r = report(
            Verdict::Critical,
            vec![
                ("expiry", Verdict::Ok),
                ("hsts", Verdict::Critical),
                ("protocols", Verdict::Warning),
            ],
        );
        let (problems, ok) = observations(&[r], &AlertConfig::default());
        assert_eq!(
            ok,
            vec![
                "probe:a.example:8443:reachable",
                "probe:a.example:8443:expiry"
            ]
        );
        let keys: Vec<(&str, Severity)> = problems
            .iter()
            .map(|p| (p.key.as_str(), p.severity))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("probe:a.example:8443:hsts", Severity::Critical),
                ("probe:a.example:8443:protocols", Severity::Warning)
            ]
        );
        assert_eq!(problems[0].details["endpoint"], "https://a.example:8443");
        assert_eq!(problems[0].details["problem"], "hsts says critical");
    }

    #[test]
    fn an_unreachable_endpoint_is_one_problem_and_touches_nothing_else() {
        let r = report(Verdict::Error, vec![("probe", Verdict::Error)]);
        let (problems, ok) = observations(&[r], &AlertConfig::default());
        assert!(ok.is_empty());
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "probe:a.example:8443:reachable");
        assert_eq!(problems[0].severity, Severity::Critical);
        assert_eq!(problems[0].details["problem"], "connect timed out");
    }

    #[test]
    fn days_left_and_thresholds_follow_the_first_certificate_to_expire() {
        let mut r = report(Verdict::Critical, vec![("expiry", Verdict::Critical)]);
        r.certificate = Some(crate::probe::facts::example_intermediate_first());
        let (problems, _) = observations(&[r], &AlertConfig::default());
        let p = &problems[0];
        assert_eq!(p.details["days_left"], "10");
        assert_eq!(p.details["expires_first"], "intermediate \"CN=Int\"");
        assert_eq!(p.details["not_after"], "2026-01-11T00:00:00Z");
        assert_eq!(
            p.summary,
            "https://a.example:8443: intermediate certificate expires in 10 days"
        );
        // The 14-day threshold is reached by the intermediate's 10 days, not
        // missed because of the leaf's 59.
        assert_eq!(p.threshold, Some(14));
        // The reason is said once, under "problem", not again in the summary.
        assert!(!p.summary.contains("expiry says"));
        assert_eq!(p.details["problem"], "expiry says critical");
    }
}
