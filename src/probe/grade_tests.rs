use std::time::Duration;

use time::macros::datetime;
use time::OffsetDateTime;

use super::*;
use crate::probe::facts::{CertInfo, ChainCert, Facts, Outcome, Protocols, Stored};
use crate::probe::http::{parse_hsts, PlainHttp};
use crate::probe::reasons::{is_plain, ChainProblem};
use crate::probe::{ErrorKind, ProbeError};

const NOW: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

fn cert(days_total: i64, days_left: i64) -> CertInfo {
    let not_after = NOW + time::Duration::days(days_left);
    let not_before = not_after - time::Duration::days(days_total);
    CertInfo {
        subject: String::new(),
        sans: vec!["a.test".into()],
        issuer: "CN=CA".into(),
        serial: "01".into(),
        not_before,
        not_after,
        days_left,
        expires_first: "leaf".into(),
        leaf_days_left: days_left,
        lifetime_days: days_total,
        chain_valid: true,
        chain_error: None,
        chain_problem: None,
        hostname_valid: true,
        key_type: "ecdsa-p256".into(),
        signature_algorithm: "ecdsa-with-SHA256".into(),
        fingerprint_sha256: "ab".into(),
        earliest_expiry: not_after,
        earliest_expiry_subject: String::new(),
        chain: vec![ChainCert {
            subject: String::new(),
            issuer: "CN=CA".into(),
            serial: "01".into(),
            not_before,
            not_after,
            signature_algorithm: "ecdsa-with-SHA256".into(),
            key_type: "ecdsa-p256".into(),
            is_ca: false,
            self_issued: false,
            is_root: false,
        }],
    }
}

fn no() -> Outcome {
    Outcome::NotAccepted(ProbeError::new(ErrorKind::Alert, "alert 70".into()))
}

/// A healthy endpoint: 90-day cert with 60 days left, TLS 1.2+1.3, HSTS 1 year,
/// redirect and ACME path fine.
fn good() -> Facts {
    Facts {
        error: None,
        certificate: Some(cert(90, 60)),
        protocols: Protocols([no(), no(), Outcome::Accepted, Outcome::Accepted]),
        hsts: Some(Ok(parse_hsts(Some("max-age=31536000")))),
        http: Some(PlainHttp {
            port: 80,
            status: Some(301),
            location: Some("https://a.test/".into()),
            redirects_to_https: true,
            acme_status: Some(404),
            acme_location: None,
            error: None,
        }),
        stored: None,
    }
}

fn run(f: &Facts, p: &Policy) -> (Verdict, Vec<Check>) {
    let c = grade(f, "a.test", p, NOW);
    (overall(f, &c), c)
}

fn verdict_of(checks: &[Check], name: &str) -> Verdict {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
        .verdict
}

#[test]
fn healthy_endpoint_is_ok() {
    let (v, c) = run(&good(), &Policy::default());
    assert_eq!(v, Verdict::Ok, "{c:?}");
    let names: Vec<_> = c.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "expiry",
            "chain",
            "hostname",
            "key",
            "signature",
            "protocols",
            "hsts",
            "http-redirect",
            "acme-path"
        ]
    );
}

/// Fixed levels written for 90-day certificates ("14d", "7d") against a
/// 6-day one: the default fractions apply instead (warning at 1.5 days left,
/// critical at 1), so a certificate at 3 days left, due for renewal, is not
/// critical and a fresh one does not warn. A fixed level under half the
/// lifetime is kept.
#[test]
fn fixed_levels_of_half_the_lifetime_or_more_fall_back_to_fractions() {
    let fixed = |warn: u64, crit: u64| {
        Policy::default().with(&PolicyConfig {
            warning_before: Some(
                crate::config::TimeLeft::duration(Duration::from_secs(warn * 86_400)).unwrap(),
            ),
            critical_before: Some(
                crate::config::TimeLeft::duration(Duration::from_secs(crit * 86_400)).unwrap(),
            ),
            ..PolicyConfig::default()
        })
    };
    let long_levels = fixed(14, 7);
    for (left, want) in [
        (6, Verdict::Ok),
        (5, Verdict::Ok),
        (3, Verdict::Ok),
        (2, Verdict::Ok),
        (1, Verdict::Critical),
    ] {
        let mut f = good();
        f.certificate = Some(cert(6, left));
        let (_, c) = run(&f, &long_levels);
        assert_eq!(
            verdict_of(&c, "expiry"),
            want,
            "6-day, {left} days left: {c:?}"
        );
    }
    // "2d" is a third of 6 days: kept (under half the lifetime), so it
    // warns at 2 days left where the default 1/4 would not; "1d" critical
    // likewise.
    let short_levels = fixed(2, 1);
    for (left, want) in [
        (3, Verdict::Ok),
        (2, Verdict::Warning),
        (1, Verdict::Critical),
    ] {
        let mut f = good();
        f.certificate = Some(cert(6, left));
        assert_eq!(
            verdict_of(&run(&f, &short_levels).1, "expiry"),
            want,
            "{left}"
        );
    }
    // A 90-day certificate keeps "14d" and "7d" as written.
    for (left, want) in [
        (15, Verdict::Ok),
        (14, Verdict::Warning),
        (7, Verdict::Critical),
    ] {
        let mut f = good();
        f.certificate = Some(cert(90, left));
        assert_eq!(
            verdict_of(&run(&f, &long_levels).1, "expiry"),
            want,
            "90-day {left}"
        );
    }
    assert_eq!(
        level_seconds(
            crate::config::TimeLeft::duration(Duration::from_secs(3 * 86_400)).unwrap(),
            crate::config::TimeLeft::one_in(4),
            6 * 86_400
        ),
        36 * 3_600,
        "exactly half the lifetime falls back"
    );
}

#[test]
fn expiry_thresholds_scale_with_lifetime() {
    let p = Policy::default();
    // (lifetime days, days left, expected)
    let cases = [
        (90, 60, Verdict::Ok),
        (90, 30, Verdict::Ok),
        (90, 23, Verdict::Ok),
        (90, 22, Verdict::Warning),
        (90, 16, Verdict::Warning),
        (90, 15, Verdict::Critical),
        (90, 0, Verdict::Critical),
        (90, -1, Verdict::Critical),
        (6, 5, Verdict::Ok),
        (6, 2, Verdict::Ok),
        (6, 1, Verdict::Critical),
        (365, 130, Verdict::Ok),
        (365, 92, Verdict::Ok),
        (365, 91, Verdict::Warning),
        (365, 60, Verdict::Critical),
    ];
    for (life, left, want) in cases {
        let mut f = good();
        f.certificate = Some(cert(life, left));
        let (_, c) = run(&f, &p);
        assert_eq!(verdict_of(&c, "expiry"), want, "{life}/{left}: {c:?}");
    }
}

/// A certificate at its default renewal point (1/3 left, 1/2 under 10
/// days), or up to 12 hours past it waiting for the next renewal check, is
/// not reported: the default warning (1/4) lies below the renewal point by
/// more than that for every lifetime from 6 days up.
#[test]
fn a_certificate_at_its_renewal_point_grades_ok() {
    let p = Policy::default();
    for days in [6, 7, 9, 10, 30, 45, 90, 365, 398] {
        let lifetime = time::Duration::days(days);
        let due = crate::renew::plan::threshold(lifetime, None);
        for left in [due, due - time::Duration::hours(12)] {
            let mut c = cert(days, 0);
            c.not_after = NOW + left;
            c.not_before = c.not_after - lifetime;
            c.earliest_expiry = c.not_after;
            c.chain[0].not_before = c.not_before;
            c.chain[0].not_after = c.not_after;
            let mut f = good();
            f.certificate = Some(c);
            let (_, checks) = run(&f, &p);
            assert_eq!(
                verdict_of(&checks, "expiry"),
                Verdict::Ok,
                "{days}-day certificate, {left} left: {checks:?}"
            );
        }
    }
    // The 90-day renewal point is exactly 30 days, a third.
    assert_eq!(
        crate::renew::plan::threshold(time::Duration::days(90), None),
        time::Duration::days(30)
    );
    // Exactly at the warning level (1/4: 22.5 days of 90) it warns.
    let mut c = cert(90, 0);
    c.not_after = NOW + time::Duration::hours(540);
    c.not_before = c.not_after - time::Duration::days(90);
    c.earliest_expiry = c.not_after;
    c.chain[0].not_before = c.not_before;
    c.chain[0].not_after = c.not_after;
    let mut f = good();
    f.certificate = Some(c);
    assert_eq!(verdict_of(&run(&f, &p).1, "expiry"), Verdict::Warning);
}

#[test]
fn fixed_thresholds_from_policy() {
    let p = Policy::default().with(&PolicyConfig {
        warning_before: Some(
            crate::config::TimeLeft::duration(Duration::from_secs(30 * 86_400)).unwrap(),
        ),
        critical_before: Some(
            crate::config::TimeLeft::duration(Duration::from_secs(7 * 86_400)).unwrap(),
        ),
        ..PolicyConfig::default()
    });
    for (left, want) in [
        (31, Verdict::Ok),
        (30, Verdict::Warning),
        (7, Verdict::Critical),
    ] {
        let mut f = good();
        f.certificate = Some(cert(365, left));
        assert_eq!(verdict_of(&run(&f, &p).1, "expiry"), want, "{left}");
    }
}

#[test]
fn expired_reason_says_ago() {
    let mut f = good();
    f.certificate = Some(cert(90, -3));
    let (v, c) = run(&f, &Policy::default());
    assert_eq!(v, Verdict::Critical);
    assert!(
        c[0].reason.contains("expired 3 days ago"),
        "{}",
        c[0].reason
    );
}

#[test]
fn intermediate_expiring_first_counts() {
    let mut f = good();
    let mut c = cert(90, 60);
    let mut int = c.chain[0].clone();
    int.subject = "CN=Intermediate".into();
    int.is_ca = true;
    int.not_after = NOW + time::Duration::days(10) + time::Duration::hours(5);
    c.chain.push(int);
    c.earliest_expiry = NOW + time::Duration::days(10) + time::Duration::hours(5);
    c.earliest_expiry_subject = "CN=Intermediate".into();
    c.expires_first = "intermediate".into();
    c.days_left = 10;
    f.certificate = Some(c);
    let (_, checks) = run(&f, &Policy::default());
    assert_eq!(verdict_of(&checks, "expiry"), Verdict::Critical);
    assert_eq!(
        checks[0].reason,
        "the intermediate \"CN=Intermediate\" expires in 10 days (2026-01-11T05:00:00Z), before the certificate itself (60 days left), under the critical threshold of 15 days; serve the CA's current intermediate (a fresh fullchain.pem) now"
    );
}

#[test]
fn chain_hostname_key_signature() {
    let p = Policy::default();
    let mut f = good();
    f.certificate.as_mut().unwrap().chain_valid = false;
    f.certificate.as_mut().unwrap().chain_problem = Some(ChainProblem::SelfSigned);
    let (v, c) = run(&f, &p);
    assert_eq!(
        (v, verdict_of(&c, "chain")),
        (Verdict::Critical, Verdict::Critical)
    );
    assert_eq!(
        c[1].reason,
        "self-signed certificate; serve a certificate from a trusted CA, or pass --ca-file for a private CA"
    );

    let mut f = good();
    f.certificate.as_mut().unwrap().hostname_valid = false;
    assert_eq!(verdict_of(&run(&f, &p).1, "hostname"), Verdict::Critical);

    for (k, want) in [
        ("rsa1024", Verdict::Critical),
        ("rsa2048", Verdict::Ok),
        ("rsa4096", Verdict::Ok),
        ("ecdsa-p384", Verdict::Ok),
        ("ed25519", Verdict::Ok),
        ("unknown(1.2.3)", Verdict::Warning),
        ("ecdsa-p224", Verdict::Critical),
        ("ecdsa-secp256k1", Verdict::Warning),
    ] {
        let mut f = good();
        f.certificate.as_mut().unwrap().key_type = k.into();
        assert_eq!(verdict_of(&run(&f, &p).1, "key"), want, "{k}");
    }
    let strict = p.with(&PolicyConfig {
        min_rsa_bits: Some(3072),
        ..PolicyConfig::default()
    });
    let mut f = good();
    f.certificate.as_mut().unwrap().key_type = "rsa2048".into();
    assert_eq!(verdict_of(&run(&f, &strict).1, "key"), Verdict::Critical);

    let mut f = good();
    f.certificate.as_mut().unwrap().chain[0].signature_algorithm = "sha1WithRSAEncryption".into();
    assert_eq!(verdict_of(&run(&f, &p).1, "signature"), Verdict::Critical);
    // A SHA-1 self-signed root sent needlessly does not matter.
    f.certificate.as_mut().unwrap().chain[0].is_root = true;
    assert_eq!(verdict_of(&run(&f, &p).1, "signature"), Verdict::Ok);
}

#[test]
fn no_certificate_is_critical() {
    let mut f = good();
    f.certificate = None;
    f.hsts = None;
    f.protocols = Protocols([Outcome::Accepted, no(), no(), no()]);
    let (v, c) = run(&f, &Policy::default());
    assert_eq!(v, Verdict::Critical);
    assert_eq!(verdict_of(&c, "certificate"), Verdict::Critical);
    assert_eq!(verdict_of(&c, "protocols"), Verdict::Critical);
    assert!(c.iter().all(|c| c.name != "hsts"));
}

#[test]
fn protocol_policy() {
    let a = || Outcome::Accepted;
    let err = || Outcome::Failed(ProbeError::new(ErrorKind::HandshakeTimeout, "slow".into()));
    let p = Policy::default();
    let cases = [
        ([no(), no(), a(), a()], Verdict::Ok),
        ([a(), a(), a(), a()], Verdict::Warning),
        ([a(), no(), a(), a()], Verdict::Warning),
        ([no(), no(), no(), a()], Verdict::Warning),
        ([no(), no(), a(), no()], Verdict::Warning),
        ([no(), no(), no(), no()], Verdict::Critical),
        ([a(), a(), no(), no()], Verdict::Critical),
        ([err(), no(), a(), a()], Verdict::Warning),
        ([no(), no(), err(), err()], Verdict::Warning),
        ([Outcome::Untested, no(), a(), a()], Verdict::Warning),
    ];
    for (outcomes, want) in cases {
        let mut f = good();
        f.protocols = Protocols(outcomes.clone());
        let (_, c) = run(&f, &p);
        assert_eq!(verdict_of(&c, "protocols"), want, "{outcomes:?}: {c:?}");
    }
    let modern = p.with(&PolicyConfig {
        protocols: Some(vec![ProtocolName::Tls13]),
        ..PolicyConfig::default()
    });
    let mut f = good();
    f.protocols = Protocols([no(), no(), no(), a()]);
    assert_eq!(verdict_of(&run(&f, &modern).1, "protocols"), Verdict::Ok);
    f.protocols = Protocols([a(), a(), a(), a()]);
    let (_, c) = run(&f, &modern);
    assert!(
        c.iter().any(|c| c
            .reason
            .contains("TLS 1.0 and TLS 1.1 and TLS 1.2 accepted")),
        "{c:?}"
    );
}

#[test]
fn hsts_policy() {
    let p = Policy::default();
    let cases: [(Option<&str>, Verdict); 7] = [
        (None, Verdict::Critical),
        (Some("max-age=31536000"), Verdict::Ok),
        (
            Some("max-age=63072000; includeSubDomains; preload"),
            Verdict::Ok,
        ),
        (Some("max-age=300"), Verdict::Warning),
        (Some("max-age=31535999"), Verdict::Warning),
        (Some("max-age=0"), Verdict::Critical),
        (Some("includeSubDomains"), Verdict::Critical),
    ];
    for (h, want) in cases {
        let mut f = good();
        f.hsts = Some(Ok(parse_hsts(h)));
        assert_eq!(verdict_of(&run(&f, &p).1, "hsts"), want, "{h:?}");
    }
    let lax = p.with(&PolicyConfig {
        hsts_missing: Some(Severity::Warning),
        ..PolicyConfig::default()
    });
    let mut f = good();
    f.hsts = Some(Ok(parse_hsts(None)));
    assert_eq!(verdict_of(&run(&f, &lax).1, "hsts"), Verdict::Warning);
    let off = p.with(&PolicyConfig {
        hsts_missing: Some(Severity::Ok),
        ..PolicyConfig::default()
    });
    assert_eq!(verdict_of(&run(&f, &off).1, "hsts"), Verdict::Ok);

    let strict = p.with(&PolicyConfig {
        hsts_include_subdomains: Some(true),
        hsts_preload: Some(true),
        hsts_min_age: Some(crate::config::HumanDuration::new(Duration::from_secs(
            2 * 31_536_000,
        ))),
        ..PolicyConfig::default()
    });
    for (h, want) in [
        ("max-age=63072000; includeSubDomains; preload", Verdict::Ok),
        ("max-age=63072000; includeSubDomains", Verdict::Warning),
        (
            "max-age=31536000; includeSubDomains; preload",
            Verdict::Warning,
        ),
        ("max-age=63072000; preload", Verdict::Warning),
    ] {
        let mut f = good();
        f.hsts = Some(Ok(parse_hsts(Some(h))));
        assert_eq!(verdict_of(&run(&f, &strict).1, "hsts"), want, "{h}");
    }
    // Two headers: the preload check names the failed rule, once.
    let mut f = good();
    let v = "max-age=63072000; includeSubDomains; preload";
    f.hsts = Some(Ok(crate::probe::http::hsts_from(&[v, v])));
    let c = run(&f, &strict).1;
    let hsts = c.iter().find(|c| c.name == "hsts").unwrap();
    assert_eq!(
        hsts.reason,
        "max-age=63072000; includeSubDomains; preload: not eligible for the preload list: 2 Strict-Transport-Security headers where exactly one is allowed (response.multiple_headers)"
    );
    let mut f = good();
    f.hsts = Some(Ok(parse_hsts(Some("max-age=300"))));
    assert_eq!(
        run(&f, &p)
            .1
            .iter()
            .find(|c| c.name == "hsts")
            .unwrap()
            .reason,
        "max-age=300: below the minimum of 31536000 seconds; raise max-age"
    );
    let mut f = good();
    f.hsts = Some(Err(ProbeError::new(ErrorKind::ReadTimeout, "slow".into())));
    assert_eq!(verdict_of(&run(&f, &p).1, "hsts"), Verdict::Warning);
}

#[test]
fn plain_http_checks() {
    let p = Policy::default();
    let base = good().http.unwrap();
    let cases = [
        (PlainHttp { ..base.clone() }, Verdict::Ok, Verdict::Ok),
        (
            PlainHttp {
                status: Some(200),
                location: None,
                redirects_to_https: false,
                ..base.clone()
            },
            Verdict::Warning,
            Verdict::Ok,
        ),
        (
            PlainHttp {
                acme_status: Some(301),
                acme_location: Some("https://a.test/.well-known/acme-challenge/x".into()),
                ..base.clone()
            },
            Verdict::Ok,
            Verdict::Warning,
        ),
        (
            PlainHttp {
                acme_status: Some(403),
                ..base.clone()
            },
            Verdict::Ok,
            Verdict::Warning,
        ),
        (
            PlainHttp {
                status: None,
                location: None,
                redirects_to_https: false,
                acme_status: None,
                error: Some("refused".into()),
                ..base.clone()
            },
            Verdict::Warning,
            Verdict::Warning,
        ),
    ];
    for (h, redirect, acme) in cases {
        let mut f = good();
        f.http = Some(h.clone());
        let (_, c) = run(&f, &p);
        assert_eq!(verdict_of(&c, "http-redirect"), redirect, "{h:?}");
        assert_eq!(verdict_of(&c, "acme-path"), acme, "{h:?}");
    }
    let mut f = good();
    f.http = None;
    assert!(run(&f, &p).1.iter().all(|c| !c.name.starts_with("http")));
}

#[test]
fn served_versus_stored() {
    let p = Policy::default();
    let stored = |matches, version: Option<u32>, error: Option<&str>| Stored {
        certificate: "web".into(),
        version,
        serial: version.map(|_| "02".into()),
        matches,
        error: error.map(String::from),
        live_since: Some(NOW - time::Duration::hours(1)),
    };
    let cases = [
        (stored(true, Some(2), None), Verdict::Ok),
        (stored(false, Some(2), None), Verdict::Warning),
        (stored(false, None, None), Verdict::Warning),
        (
            stored(false, None, Some("permission denied")),
            Verdict::Warning,
        ),
    ];
    for (s, want) in cases {
        let mut f = good();
        f.stored = Some(s.clone());
        let (_, c) = run(&f, &p);
        assert_eq!(verdict_of(&c, "served"), want, "{s:?}");
        if want != Verdict::Ok && s.version.is_some() {
            assert!(c
                .iter()
                .any(|c| c.reason.contains("renewed but not deployed")));
        }
    }
}

/// A deploy switches the live link before nginx reloads: a probe in that
/// gap sees the old certificate. Not reported while the switch is younger
/// than the grace; reported from the grace on, or when the time is unknown
/// or far in the future.
#[test]
fn a_fresh_switch_is_not_reported_until_the_grace_has_passed() {
    let grace = time::Duration::minutes(5);
    let at = |secs: i64| Some(NOW - time::Duration::seconds(secs));
    for (live_since, counts) in [
        (at(0), false),
        (at(1), false),
        (at(299), false),
        (at(300), true),
        (at(3_600), true),
        (None, true),
        (at(-60), false),
        (at(-300), true),
        (at(-86_400), true),
    ] {
        assert_eq!(
            undeployed_counts(live_since, NOW, grace),
            counts,
            "{live_since:?}"
        );
    }
    assert_eq!(DEPLOY_GRACE, grace, "the documented bound");
    let stored = |age: i64, matches: bool| Stored {
        certificate: "web".into(),
        version: Some(2),
        serial: Some("02".into()),
        matches,
        error: None,
        live_since: at(age),
    };
    for (s, want) in [
        (stored(10, false), Verdict::Ok),
        (stored(299, false), Verdict::Ok),
        (stored(300, false), Verdict::Warning),
        (stored(10, true), Verdict::Ok),
    ] {
        let mut f = good();
        f.stored = Some(s.clone());
        let (_, c) = run(&f, &Policy::default());
        assert_eq!(verdict_of(&c, "served"), want, "{s:?}");
        let reason = &c.iter().find(|c| c.name == "served").unwrap().reason;
        if !s.matches && want == Verdict::Ok {
            assert!(
                reason.contains("went live 10 s ago") || reason.contains("went live 299 s ago"),
                "{reason}"
            );
            assert!(reason.contains("5-minute deploy grace"), "{reason}");
        }
    }
}

#[test]
fn errors_dominate() {
    let f = Facts {
        error: Some(ProbeError::new(ErrorKind::Refused, "refused".into())),
        ..Facts::default()
    };
    let (v, c) = run(&f, &Policy::default());
    assert_eq!(v, Verdict::Error);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].verdict, Verdict::Error);
}

#[test]
fn thresholds() {
    assert_eq!(
        threshold_seconds(crate::config::TimeLeft::fraction(0.5).unwrap(), 100),
        50
    );
    assert_eq!(
        threshold_seconds(crate::config::TimeLeft::fraction(0.5).unwrap(), -5),
        0
    );
    assert_eq!(
        threshold_seconds(
            crate::config::TimeLeft::duration(Duration::from_secs(7)).unwrap(),
            100
        ),
        7
    );
    assert_eq!(
        threshold_seconds(
            crate::config::TimeLeft::duration(Duration::from_secs(u64::MAX)).unwrap(),
            1
        ),
        i64::MAX
    );
}

#[test]
fn policy_merging_keeps_unset_keys() {
    let base = Policy::default().with(&PolicyConfig {
        hsts_missing: Some(Severity::Warning),
        ..PolicyConfig::default()
    });
    let named = base.with(&PolicyConfig {
        http_port: Some(0),
        ..PolicyConfig::default()
    });
    assert_eq!(named.hsts_missing, Severity::Warning);
    assert_eq!(named.http_port, 0);
    assert_eq!(named.protocols, Policy::default().protocols);
}

#[test]
fn expired_days_agree_with_days_left() {
    // Expired 27 days and 12 hours ago: days_left rounds down to -28, and
    // the reason counts the same way.
    let mut c = cert(90, 0);
    c.not_after = NOW - time::Duration::days(27) - time::Duration::hours(12);
    c.earliest_expiry = c.not_after;
    c.chain[0].not_after = c.not_after;
    c.days_left = days_left(c.not_after, NOW);
    assert_eq!(c.days_left, -28);
    let mut f = good();
    f.certificate = Some(c);
    let (_, checks) = run(&f, &Policy::default());
    assert_eq!(
        checks[0].reason,
        "expired 28 days ago (2025-12-04T12:00:00Z); renew and reload now"
    );
    // Under two days, hours.
    let mut f = good();
    let mut c = cert(90, 0);
    c.not_after = NOW - time::Duration::hours(5);
    c.earliest_expiry = c.not_after;
    f.certificate = Some(c);
    assert!(run(&f, &Policy::default()).1[0]
        .reason
        .starts_with("expired 5 hours ago"));
}

#[test]
fn not_yet_valid_is_critical() {
    let mut f = good();
    let mut c = cert(90, 100);
    c.not_before = NOW + time::Duration::days(10);
    c.chain[0].not_before = c.not_before;
    f.certificate = Some(c);
    let (v, checks) = run(&f, &Policy::default());
    assert_eq!(v, Verdict::Critical);
    assert_eq!(
        checks[0].reason,
        "not valid yet: valid from 2026-01-11T00:00:00Z (in 10 days); check this host's clock, or serve a certificate valid now"
    );
}

#[test]
fn reasons_have_no_debug_formatting() {
    let mut f = good();
    let c = f.certificate.as_mut().unwrap();
    c.hostname_valid = false;
    c.sans = vec!["other.test".into(), "www.other.test".into()];
    c.chain_valid = false;
    c.chain_problem = Some(ChainProblem::UnknownIssuer {
        issuer: "CN=Int".into(),
        only_leaf: true,
    });
    c.key_type = "rsa1024".into();
    c.chain[0].signature_algorithm = "sha1WithRSAEncryption".into();
    let (_, checks) = run(&f, &Policy::default());
    for c in &checks {
        assert!(is_plain(&c.reason), "{}: {}", c.name, c.reason);
    }
    assert_eq!(
        verdict_of(&checks, "hostname"),
        Verdict::Critical,
        "{checks:?}"
    );
    let reason = |n: &str| checks.iter().find(|c| c.name == n).unwrap().reason.clone();
    assert_eq!(
        reason("hostname"),
        "the certificate is for other.test, www.other.test, not a.test; serve the certificate for this name"
    );
    assert_eq!(
        reason("signature"),
        "the certificate is signed with SHA-1 (sha1WithRSAEncryption), which browsers reject; reissue with SHA-256"
    );
}
