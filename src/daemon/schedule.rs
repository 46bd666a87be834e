//! Schedules as cron expressions (pure). Accepts the standard 5-field crontab
//! form (`min hour dom month dow`) as well as the `cron` crate's 6 or 7 fields
//! (seconds first, optional year).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

/// A parsed cron schedule, with the text it came from.
#[derive(Clone)]
pub struct Cron {
    text: String,
    schedule: cron::Schedule,
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cron({:?})", self.text)
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Cron {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl FromStr for Cron {
    type Err = String;

    fn from_str(s: &str) -> Result<Cron, String> {
        let text = s.split_whitespace().collect::<Vec<_>>().join(" ");
        let fields = text.split(' ').filter(|f| !f.is_empty()).count();
        let full = match fields {
            5 => format!("0 {text}"),
            6 | 7 => text.clone(),
            n => {
                return Err(format!(
                    "{s:?} has {n} fields; write a crontab line (\"*/15 * * * *\": minute hour day month weekday) or 6-7 fields with seconds first"
                ))
            }
        };
        let schedule = cron::Schedule::from_str(&full)
            .map_err(|e| format!("{s:?} is not a valid cron expression: {e}"))?;
        if schedule.upcoming(Utc).next().is_none() {
            return Err(format!("{s:?} never fires"));
        }
        Ok(Cron { text, schedule })
    }
}

impl<'de> Deserialize<'de> for Cron {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Cron {
    /// The first firing strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.after(&after).next()
    }

    /// The next `n` firings after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        self.schedule.after(&after).take(n).collect()
    }
}

/// A certificate whose lifetime is under this is short-lived (Let's
/// Encrypt's `shortlived` profile issues about 6 days); the renewal plan
/// uses the same bound.
pub(crate) const SHORT_LIVED: chrono::Duration =
    chrono::Duration::seconds(crate::renew::plan::SHORT_LIVED.whole_seconds());

/// The longest gap between renewal checks while any live certificate is
/// short-lived, whatever `renew_schedule` says: a 6-day certificate is
/// renewed with 3 days left, so a daily (or weekly) schedule could miss
/// most of its window and an ARI window of a few hours altogether.
pub(crate) const SHORT_LIVED_MAX_GAP: chrono::Duration = chrono::Duration::hours(4);

/// The next renewal check: `scheduled`, or earlier (at most
/// [`SHORT_LIVED_MAX_GAP`] after `after`) when the shortest lifetime among
/// the live certificates is under [`SHORT_LIVED`].
pub(crate) fn cap_for_short_lived(
    scheduled: DateTime<Utc>,
    after: DateTime<Utc>,
    shortest_lifetime: Option<chrono::Duration>,
) -> DateTime<Utc> {
    match shortest_lifetime {
        Some(l) if l < SHORT_LIVED => scheduled.min(after + SHORT_LIVED_MAX_GAP),
        _ => scheduled,
    }
}

/// The next `n` renewal checks after `after` as the daemon runs them
/// (before its random delay): `schedule`, capped for short-lived
/// certificates. What `certkeep schedule` prints.
pub(crate) fn effective_renewals(
    schedule: &Cron,
    after: DateTime<Utc>,
    n: usize,
    shortest_lifetime: Option<chrono::Duration>,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::with_capacity(n);
    let mut t = after;
    for _ in 0..n {
        let scheduled = schedule
            .next_after(t)
            .unwrap_or(t + chrono::Duration::hours(12));
        t = cap_for_short_lived(scheduled, t, shortest_lifetime);
        out.push(t);
    }
    out
}

/// `next` delayed by `jitter * r`, `r` in [0, 1).
pub(crate) fn with_jitter(
    next: DateTime<Utc>,
    jitter: std::time::Duration,
    r: f64,
) -> DateTime<Utc> {
    let ms = (jitter.as_millis() as f64 * r.clamp(0.0, 0.999_999)) as i64;
    next + chrono::Duration::milliseconds(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, m, s).unwrap()
    }

    #[test]
    fn five_fields_are_crontab_minutes() {
        let c: Cron = "*/15 * * * *".parse().unwrap();
        assert_eq!(c.next_after(at(10, 7, 30)), Some(at(10, 15, 0)));
        assert_eq!(
            c.upcoming(at(10, 59, 59), 2),
            vec![at(11, 0, 0), at(11, 15, 0)]
        );
        let twice: Cron = "0 0,12 * * *".parse().unwrap();
        assert_eq!(twice.next_after(at(1, 0, 0)), Some(at(12, 0, 0)));
    }

    #[test]
    fn six_and_seven_fields_have_seconds() {
        let c: Cron = "*/5 * * * * *".parse().unwrap();
        assert_eq!(c.next_after(at(10, 0, 1)), Some(at(10, 0, 5)));
        let y: Cron = "0 30 9 * * * 2026".parse().unwrap();
        assert_eq!(y.next_after(at(0, 0, 0)), Some(at(9, 30, 0)));
    }

    #[test]
    fn bad_expressions_say_what_to_write() {
        let e = "* * *".parse::<Cron>().unwrap_err();
        assert!(e.contains("3 fields") && e.contains("*/15 * * * *"), "{e}");
        let e = "61 * * * *".parse::<Cron>().unwrap_err();
        assert!(e.contains("not a valid cron"), "{e}");
        let e = "0 0 0 1 1 * 2000".parse::<Cron>().unwrap_err();
        assert!(e.contains("never fires"), "{e}");
    }

    #[test]
    fn whitespace_is_normalised() {
        let c: Cron = "  */15   *  * * * ".parse().unwrap();
        assert_eq!(c.to_string(), "*/15 * * * *");
    }

    #[test]
    fn short_lived_certificates_are_looked_at_every_four_hours_at_least() {
        let now = at(6, 0, 0);
        let daily = now + chrono::Duration::hours(18);
        let six_days = chrono::Duration::days(6);
        assert_eq!(
            cap_for_short_lived(daily, now, Some(six_days)),
            at(10, 0, 0)
        );
        // A schedule already more frequent is kept.
        let soon = now + chrono::Duration::hours(1);
        assert_eq!(cap_for_short_lived(soon, now, Some(six_days)), soon);
        // 90-day certificates, or none at all: the schedule as written.
        assert_eq!(
            cap_for_short_lived(daily, now, Some(chrono::Duration::days(90))),
            daily
        );
        assert_eq!(cap_for_short_lived(daily, now, None), daily);
        // Over a 6-day lifetime the checks come at most 4 hours apart:
        // 36 of them, each a chance to renew in the 3-day window.
        let mut t = now;
        let mut checks = 0;
        while t < now + six_days {
            let next = cap_for_short_lived(t + chrono::Duration::days(7), t, Some(six_days));
            assert!(next - t <= chrono::Duration::hours(4));
            t = next;
            checks += 1;
        }
        assert_eq!(checks, 36);
    }

    #[test]
    fn the_effective_renewal_times_include_the_short_lived_cap() {
        let daily: Cron = "0 3 * * *".parse().unwrap();
        let now = at(6, 0, 0);
        let next_day = |h: u32| Utc.with_ymd_and_hms(2026, 3, 2, h, 0, 0).unwrap();
        // No short-lived certificate: the schedule as written.
        assert_eq!(
            effective_renewals(&daily, now, 2, Some(chrono::Duration::days(90))),
            vec![
                next_day(3),
                Utc.with_ymd_and_hms(2026, 3, 3, 3, 0, 0).unwrap()
            ]
        );
        // A 6-day certificate: every 4 hours, and the 03:00 check still
        // comes when it falls inside a gap.
        assert_eq!(
            effective_renewals(&daily, now, 6, Some(chrono::Duration::days(6))),
            vec![
                at(10, 0, 0),
                at(14, 0, 0),
                at(18, 0, 0),
                at(22, 0, 0),
                next_day(2),
                next_day(3)
            ]
        );
    }

    #[test]
    fn jitter_stays_inside_its_bound() {
        let t = at(12, 0, 0);
        let j = std::time::Duration::from_secs(3600);
        assert_eq!(with_jitter(t, j, 0.0), t);
        let late = with_jitter(t, j, 0.9999999);
        assert!(late < t + chrono::Duration::hours(1) && late > t + chrono::Duration::minutes(59));
        assert_eq!(with_jitter(t, std::time::Duration::ZERO, 0.5), t);
    }
}
