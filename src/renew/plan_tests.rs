use super::*;
use std::time::Duration as StdDuration;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

fn domains(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

struct Case {
    lifetime: Duration,
    cert: Vec<String>,
    wanted: Vec<String>,
    renew_before: Option<RenewBefore>,
    ari: Option<AriState>,
    revoked: bool,
}

impl Case {
    fn new(lifetime_days: i64) -> Case {
        let d = domains(&["a.example", "b.example"]);
        Case {
            lifetime: Duration::days(lifetime_days),
            cert: d.clone(),
            wanted: d,
            renew_before: None,
            ari: None,
            revoked: false,
        }
    }
    fn decide_at(&self, now: OffsetDateTime) -> Decision {
        decide(
            &Facts {
                not_before: T0,
                not_after: T0 + self.lifetime,
                serial: "01ab",
                cert_domains: &self.cert,
                wanted_domains: &self.wanted,
                renew_before: self.renew_before,
                ari: self.ari.as_ref(),
                revoked: self.revoked,
            },
            now,
        )
    }
    /// The moment the threshold rule flips to due.
    fn due_from(&self) -> OffsetDateTime {
        match self.decide_at(T0) {
            Decision::NotDue { at, .. } => at,
            d => panic!("due at issuance: {d:?}"),
        }
    }
}

#[test]
fn default_thresholds_by_lifetime() {
    // (lifetime days, expected renewal point after issuance)
    let cases = [
        (6, Duration::days(3)),   // 1/2 of 6 days left
        (45, Duration::days(30)), // 1/3 of 45 days left
        (90, Duration::days(60)), // 1/3 of 90 days left
        (5 * 365, Duration::seconds(5 * 365 * 86_400 * 2 / 3)),
    ];
    for (days, at) in cases {
        let c = Case::new(days);
        assert_eq!(c.due_from(), T0 + at, "lifetime {days}d");
        assert!(
            !c.decide_at(T0 + at - Duration::seconds(1)).is_due(),
            "{days}d just before"
        );
        assert!(
            matches!(
                c.decide_at(T0 + at),
                Decision::Due(Reason::Threshold { .. })
            ),
            "{days}d at the point"
        );
        assert!(matches!(
            c.decide_at(T0 + c.lifetime + Duration::hours(1)),
            Decision::Due(Reason::NearExpiry { .. })
        ));
    }
}

#[test]
fn ten_day_boundary() {
    assert_eq!(
        default_fraction(Duration::days(10) - Duration::seconds(1)),
        0.5
    );
    assert_eq!(default_fraction(Duration::days(10)), 1.0 / 3.0);
}

#[test]
fn configured_renew_before() {
    let mut c = Case::new(90);
    c.renew_before =
        Some(crate::config::TimeLeft::duration(StdDuration::from_secs(30 * 86_400)).unwrap());
    assert_eq!(c.due_from(), T0 + Duration::days(60));
    c.renew_before = Some(crate::config::TimeLeft::fraction(0.5).unwrap());
    assert_eq!(c.due_from(), T0 + Duration::days(45));
    // A renew_before longer than the lifetime: due at once.
    c.renew_before =
        Some(crate::config::TimeLeft::duration(StdDuration::from_secs(100 * 86_400)).unwrap());
    assert!(c.decide_at(T0).is_due());
}

#[test]
fn changed_domains_are_due_with_the_difference() {
    let mut c = Case::new(90);
    c.wanted = domains(&["a.example", "c.example"]);
    match c.decide_at(T0) {
        Decision::Due(Reason::DomainsChanged { added, removed }) => {
            assert_eq!(added, vec!["c.example"]);
            assert_eq!(removed, vec!["b.example"]);
        }
        d => panic!("{d:?}"),
    }
    // Order and case do not matter.
    c.wanted = domains(&["B.example", "a.example"]);
    assert!(!c.decide_at(T0).is_due());
}

fn ari(start: OffsetDateTime, end: OffsetDateTime, fetched: OffsetDateTime, r: f64) -> AriState {
    AriState::from_window(
        "01ab",
        start,
        end,
        fetched,
        StdDuration::from_secs(6 * 3600),
        r,
        None,
    )
}

#[test]
fn ari_future_window_overrides_threshold() {
    let mut c = Case::new(90);
    let start = T0 + Duration::days(70);
    let end = T0 + Duration::days(72);
    c.ari = Some(ari(start, end, T0, 0.5));
    let renew_at = c.ari.as_ref().unwrap().renew_at;
    assert_eq!(renew_at, T0 + Duration::days(71));
    // Past the 1/3 threshold (day 60) but before the ARI moment: not due.
    assert_eq!(
        c.decide_at(T0 + Duration::days(65)),
        Decision::NotDue {
            at: renew_at,
            basis: "ARI"
        }
    );
    assert!(matches!(
        c.decide_at(renew_at),
        Decision::Due(Reason::AriWindow { .. })
    ));
}

#[test]
fn ari_window_in_the_past_means_now() {
    let mut c = Case::new(90);
    let now = T0 + Duration::days(5);
    c.ari = Some(ari(
        T0 - Duration::days(2),
        T0 - Duration::days(1),
        now,
        0.9,
    ));
    assert_eq!(c.ari.as_ref().unwrap().renew_at, T0 - Duration::days(2));
    assert!(matches!(
        c.decide_at(now),
        Decision::Due(Reason::AriWindow { .. })
    ));
    // A window that opened before the fetch, still open: also now, even
    // when planned with a clock read a moment before the fetch.
    c.ari = Some(ari(
        now - Duration::hours(1),
        now + Duration::days(3),
        now,
        0.9,
    ));
    assert!(c.decide_at(now - Duration::seconds(1)).is_due());
}

#[test]
fn ari_random_point_spans_the_window() {
    let start = T0 + Duration::days(10);
    let end = start + Duration::days(2);
    assert_eq!(choose_in_window(start, end, T0, 0.0), start);
    let late = choose_in_window(start, end, T0, 0.999_999);
    assert!(late < end && late > start + Duration::days(1));
    // Degenerate window: its start.
    assert_eq!(choose_in_window(start, start, T0, 0.7), start);
}

#[test]
fn ari_for_another_certificate_is_ignored() {
    let mut c = Case::new(90);
    let mut a = ari(T0 - Duration::days(2), T0 - Duration::days(1), T0, 0.1);
    a.serial = "ffff".into();
    c.ari = Some(a);
    // Falls back to the threshold rule.
    assert!(!c.decide_at(T0 + Duration::days(1)).is_due());
}

#[test]
fn near_expiry_wins_over_a_late_ari_window() {
    let mut c = Case::new(90);
    // Inside the lifetime, but past the 1/10 mark (day 81).
    c.ari = Some(ari(
        T0 + Duration::days(88),
        T0 + Duration::days(89),
        T0,
        0.5,
    ));
    assert!(!c.decide_at(T0 + Duration::days(80)).is_due());
    assert!(matches!(
        c.decide_at(T0 + Duration::days(82)),
        Decision::Due(Reason::NearExpiry { .. })
    ));
}

#[test]
fn retry_after_governs_fetching() {
    let a = ari(T0 + Duration::days(60), T0 + Duration::days(62), T0, 0.5);
    assert_eq!(a.next_fetch, T0 + Duration::hours(6));
    assert!(!should_fetch_ari(Some(&a), "01ab", T0 + Duration::hours(5)));
    assert!(should_fetch_ari(Some(&a), "01ab", T0 + Duration::hours(6)));
    assert!(should_fetch_ari(Some(&a), "other", T0));
    assert!(should_fetch_ari(None, "01ab", T0));
    // Retry-After is clamped to [1 minute, 1 day].
    let zero = AriState::from_window("s", T0, T0, T0, StdDuration::ZERO, 0.0, None);
    assert_eq!(zero.next_fetch, T0 + Duration::minutes(1));
    let huge = AriState::from_window(
        "s",
        T0,
        T0,
        T0,
        StdDuration::from_secs(90 * 86_400),
        0.0,
        None,
    );
    assert_eq!(huge.next_fetch, T0 + Duration::days(1));
}

#[test]
fn ari_state_round_trips_as_json() {
    let a = ari(T0, T0 + Duration::days(1), T0, 0.3);
    let back: AriState = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
    assert_eq!(a, back);
}

#[test]
fn human_durations() {
    assert_eq!(human(Duration::days(3) + Duration::hours(2)), "3d 2h");
    assert_eq!(human(Duration::minutes(90)), "1h 30m");
    assert_eq!(human(Duration::seconds(42)), "42s");
    assert_eq!(human(Duration::seconds(-3600)), "-1h 0m");
    let expired = Reason::NearExpiry {
        left: -(Duration::days(6) + Duration::hours(4)),
    };
    assert_eq!(expired.to_string(), "expired 6d 4h ago");
    let soon = Reason::NearExpiry {
        left: Duration::days(2) + Duration::hours(1),
    };
    assert_eq!(soon.to_string(), "only 2d 1h left");
}

#[test]
fn reasons_read_well() {
    let r = Reason::DomainsChanged {
        added: vec!["c.example".into()],
        removed: vec![],
    };
    assert_eq!(
        r.to_string(),
        "domains changed in the config (added c.example)"
    );
    assert_eq!(Reason::Forced.to_string(), "--force");
}

#[test]
fn a_revoked_certificate_is_due_whatever_the_ari_window() {
    let mut c = Case::new(90);
    // A window far in the future, fetched just now.
    c.ari = Some(ari(
        T0 + Duration::days(60),
        T0 + Duration::days(62),
        T0 + Duration::days(1),
        0.5,
    ));
    assert!(!c.decide_at(T0 + Duration::days(1)).is_due());
    c.revoked = true;
    assert_eq!(
        c.decide_at(T0 + Duration::days(1)),
        Decision::Due(Reason::Revoked)
    );
}

#[test]
fn only_a_usable_stored_version_is_deployed_again() {
    let d = domains(&["a.example"]);
    let (nb, na) = (T0, T0 + Duration::days(90));
    assert!(redeployable(&d, &d, nb, na, T0 + Duration::days(1)));
    assert!(
        !redeployable(&d, &domains(&["a.example", "b.example"]), nb, na, T0),
        "the config asks for other names"
    );
    assert!(
        !redeployable(&d, &d, nb, na, T0 + Duration::days(82)),
        "under 1/10 of its lifetime left"
    );
    assert!(
        !redeployable(&d, &d, nb, na, T0 + Duration::days(91)),
        "expired"
    );
}

#[test]
fn a_fixed_renew_before_is_capped_at_half_a_short_lifetime() {
    let days = |d: u64| crate::config::TimeLeft::duration(StdDuration::from_secs(d * 86_400)).ok();
    let mut c = Case::new(6);
    // "30d", written for 90-day certificates: without the cap a 6-day
    // certificate would be due from the moment it is issued.
    c.renew_before = days(30);
    assert!(!c.decide_at(T0).is_due());
    assert_eq!(c.due_from(), T0 + Duration::days(3));
    // Under half the lifetime it is kept: "1d" renews at day 5.
    c.renew_before = days(1);
    assert_eq!(c.due_from(), T0 + Duration::days(5));
    // Fractions are kept as written.
    c.renew_before = Some(crate::config::TimeLeft::fraction(0.75).unwrap());
    assert_eq!(c.due_from(), T0 + Duration::seconds(6 * 86_400 / 4));
    // From 10 days up a fixed time is as written, however long.
    let mut c = Case::new(10);
    c.renew_before = days(30);
    assert!(c.decide_at(T0).is_due());
}

/// One 6-day certificate after another for 30 days, over an injected clock:
/// the daemon's checks (a daily `renew_schedule`, capped at 4 hours for
/// short-lived certificates), the renewal plan, the probe's default expiry
/// levels and the default alert thresholds. Each certificate is renewed at
/// the first check from day 3 on, once; the served certificate never
/// reaches a probe warning or an alert threshold.
#[test]
fn six_day_certificates_over_a_month_of_checks() {
    use crate::daemon::schedule::{cap_for_short_lived, Cron};
    use crate::probe::grade::Policy;
    let chrono_at = |t: OffsetDateTime| {
        chrono::DateTime::<chrono::Utc>::from_timestamp(t.unix_timestamp(), 0).unwrap()
    };
    let time_at = |t: chrono::DateTime<chrono::Utc>| {
        OffsetDateTime::from_unix_timestamp(t.timestamp()).unwrap()
    };
    let daily: Cron = "0 3 * * *".parse().unwrap();
    let policy = Policy::default();
    let alerts = crate::alert::config::AlertConfig::default();
    let d = domains(&["a.example"]);
    let lifetime = Duration::days(6);
    let (mut not_before, mut serial) = (T0, 1u32);
    let mut renewed_at = Vec::new();
    let mut now = T0;
    let end = T0 + Duration::days(30);
    while now < end {
        let serial_hex = format!("{serial:02x}");
        let facts = Facts {
            not_before,
            not_after: not_before + lifetime,
            serial: &serial_hex,
            cert_domains: &d,
            wanted_domains: &d,
            renew_before: None,
            ari: None,
            revoked: false,
        };
        if decide(&facts, now).is_due() {
            renewed_at.push(now - not_before);
            not_before = now;
            serial += 1;
        }
        // What a probe between now and the next check sees at worst: the
        // served certificate just before the next check.
        let next = time_at(cap_for_short_lived(
            daily.next_after(chrono_at(now)).unwrap(),
            chrono_at(now),
            Some(chrono::Duration::days(6)),
        ));
        assert!(
            next - now <= Duration::hours(4),
            "checks 4 hours apart at most"
        );
        let life = lifetime.whole_seconds();
        let left = (not_before + lifetime - next).whole_seconds();
        assert!(
            left > policy.warning_before.seconds_of(life),
            "a probe would warn at {left}s left"
        );
        assert_eq!(
            alerts.expiry_threshold(left / 86_400, 6),
            None,
            "{left}s left"
        );
        now = next;
    }
    // Checks fall at 03:00 (the schedule), then 07:00, 11:00, 15:00, 19:00,
    // 23:00 (the cap): the first certificate, due at day 3 00:00, is renewed
    // at the 03:00 check; each later one, issued at a check, is due exactly
    // 3 days on, at a check too. 9 renewals in 30 days.
    assert_eq!(renewed_at.len(), 9, "{renewed_at:?}");
    assert!(
        renewed_at
            .iter()
            .all(|d| *d >= Duration::days(3) && *d < Duration::days(3) + Duration::hours(4)),
        "{renewed_at:?}"
    );
}

/// Pebble's answer for a 1-minute certificate: one day either side of the
/// ideal point, so the window opened a day before the certificate was
/// issued and ends a day after it expires. Followed, it would renew at
/// every check; the lifetime rule decides instead. A window inside the
/// lifetime, and one wholly in the past (a revocation), are followed.
#[test]
fn an_ari_window_ending_after_expiry_is_not_followed() {
    let mut c = Case::new(0);
    c.lifetime = Duration::seconds(59);
    let ideal = T0 + Duration::seconds(39);
    c.ari = Some(ari(
        ideal - Duration::days(1),
        ideal + Duration::days(1),
        T0,
        0.3,
    ));
    assert_eq!(
        c.decide_at(T0 + Duration::seconds(1)),
        Decision::NotDue {
            at: T0 + Duration::seconds(30),
            basis: "threshold"
        }
    );
    assert!(matches!(
        c.decide_at(T0 + Duration::seconds(30)),
        Decision::Due(Reason::Threshold { .. })
    ));
    // Inside the lifetime: followed.
    let mut c = Case::new(6);
    c.ari = Some(ari(T0 + Duration::days(4), T0 + Duration::days(5), T0, 0.0));
    assert_eq!(
        c.decide_at(T0 + Duration::days(3)),
        Decision::NotDue {
            at: T0 + Duration::days(4),
            basis: "ARI"
        }
    );
    // Wholly in the past: now.
    c.ari = Some(ari(T0 - Duration::days(2), T0 - Duration::days(1), T0, 0.0));
    assert!(matches!(
        c.decide_at(T0 + Duration::hours(1)),
        Decision::Due(Reason::AriWindow { .. })
    ));
}
