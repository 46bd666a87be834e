//! Whether a lineage is due for renewal, and why (pure).
//!
//! Order of precedence:
//! 1. `--force`, `--dry-run`, a missing certificate, domains that changed
//!    in the config, or a certificate revoked with `certkeep revoke`: due.
//! 2. ARI (RFC 9773) when the CA offers it and a window is known for the
//!    current certificate: due once the time chosen inside the window has
//!    come (a window that had already started when fetched means now).
//! 3. Otherwise: due when `renew_before` of the lifetime is left (default 1/3,
//!    1/2 for lifetimes under 10 days). For a short-lived certificate (under
//!    10 days) a fixed `renew_before` is capped at half the lifetime: a
//!    "30d" written for 90-day certificates would make a 6-day certificate
//!    due from the moment it is issued, an order at every check.
//!
//! A window that ends after the certificate expires is not followed (the
//! lifetime rule decides): it cannot be meant for that certificate.
//!
//! Whatever ARI says, a certificate with under 1/10 of its lifetime left (or
//! already expired) is due: a CA that never opens a window must not let it lapse.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::config::RenewBefore;

/// What is known about a lineage when planning.
#[derive(Debug, Clone)]
pub(crate) struct Facts<'a> {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// Serial (lowercase hex) of the current certificate.
    pub serial: &'a str,
    /// Names in the current certificate.
    pub cert_domains: &'a [String],
    /// Names the config asks for.
    pub wanted_domains: &'a [String],
    pub renew_before: Option<RenewBefore>,
    /// The last ARI answer, if any.
    pub ari: Option<&'a AriState>,
    /// Whether `certkeep revoke` revoked this very certificate.
    pub revoked: bool,
}

/// A stored ARI answer for one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AriState {
    /// Serial of the certificate this window is for.
    pub serial: String,
    #[serde(with = "time::serde::rfc3339")]
    pub window_start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub window_end: OffsetDateTime,
    /// The moment picked inside the window at fetch time.
    #[serde(with = "time::serde::rfc3339")]
    pub renew_at: OffsetDateTime,
    /// Do not ask the CA again before this.
    #[serde(with = "time::serde::rfc3339")]
    pub next_fetch: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation_url: Option<String>,
}

impl AriState {
    /// Builds the state from a fresh answer: `r` in [0, 1) picks the moment.
    pub fn from_window(
        serial: &str,
        start: OffsetDateTime,
        end: OffsetDateTime,
        now: OffsetDateTime,
        retry_after: std::time::Duration,
        r: f64,
        explanation_url: Option<String>,
    ) -> AriState {
        AriState {
            serial: serial.to_string(),
            window_start: start,
            window_end: end,
            renew_at: choose_in_window(start, end, now, r),
            next_fetch: now + clamp_retry_after(retry_after),
            explanation_url,
        }
    }
}

/// Retry-After is honoured, within sane bounds (1 minute to 1 day).
fn clamp_retry_after(d: std::time::Duration) -> Duration {
    let secs = d.as_secs().clamp(60, 86_400);
    Duration::seconds(secs as i64)
}

/// A uniformly random moment inside the window; its start (already past, so
/// due at once) when it had opened before `now`.
pub(crate) fn choose_in_window(
    start: OffsetDateTime,
    end: OffsetDateTime,
    now: OffsetDateTime,
    r: f64,
) -> OffsetDateTime {
    if start <= now || end <= start {
        return start;
    }
    let span = (end - start).whole_seconds().max(0) as f64;
    start + Duration::seconds((span * r.clamp(0.0, 0.999_999)) as i64)
}

/// Whether an ARI window can be followed for a certificate expiring at
/// `not_after`. A window that ends after the certificate expires cannot be
/// meant for it: Pebble answers one day either side of its ideal point
/// whatever the lifetime, a window that opened before a short-lived
/// certificate was even issued, which would have it renewed at every check.
/// The lifetime rule decides instead.
pub(crate) fn usable_window(a: &AriState, not_after: OffsetDateTime) -> bool {
    a.window_start <= a.window_end && a.window_end <= not_after
}

/// Whether to ask the CA for a fresh ARI window now.
pub(crate) fn should_fetch_ari(ari: Option<&AriState>, serial: &str, now: OffsetDateTime) -> bool {
    match ari {
        None => true,
        Some(a) => a.serial != serial || now >= a.next_fetch,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    Forced,
    DryRun,
    NoCertificate,
    DomainsChanged {
        added: Vec<String>,
        removed: Vec<String>,
    },
    AriWindow {
        window_start: OffsetDateTime,
    },
    Threshold {
        left: Duration,
        threshold: Duration,
    },
    NearExpiry {
        left: Duration,
    },
    /// `certkeep revoke` revoked the current certificate.
    Revoked,
    /// A stored version nginx was not confirmed to serve: deployed again,
    /// without a new order.
    NotServed {
        version: u32,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Forced => write!(f, "--force"),
            Reason::DryRun => write!(f, "dry run"),
            Reason::NoCertificate => write!(f, "no certificate yet"),
            Reason::DomainsChanged { added, removed } => {
                write!(f, "domains changed in the config")?;
                if !added.is_empty() {
                    write!(f, " (added {})", added.join(", "))?;
                }
                if !removed.is_empty() {
                    write!(f, " (removed {})", removed.join(", "))?;
                }
                Ok(())
            }
            Reason::AriWindow { window_start } => {
                write!(
                    f,
                    "the CA's renewal window (ARI) opened {}",
                    date(*window_start)
                )
            }
            Reason::Threshold { left, threshold } => write!(
                f,
                "{}, renewing at {} left",
                crate::cert::time_left(left.whole_seconds()),
                human(*threshold)
            ),
            Reason::NearExpiry { left } if left.is_negative() => {
                write!(f, "{}", crate::cert::time_left(left.whole_seconds()))
            }
            Reason::NearExpiry { left } => {
                write!(f, "only {}", crate::cert::time_left(left.whole_seconds()))
            }
            Reason::Revoked => write!(f, "the current certificate was revoked"),
            Reason::NotServed { version } => write!(
                f,
                "version {version} is stored but was not confirmed served; deploying it again (no new order)"
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Due(Reason),
    NotDue {
        /// When it will be due, as far as is known now.
        at: OffsetDateTime,
        /// "ARI" or "threshold".
        basis: &'static str,
    },
}

impl Decision {
    pub fn is_due(&self) -> bool {
        matches!(self, Decision::Due(_))
    }
}

/// A certificate living less than this is short-lived (Let's Encrypt's
/// `shortlived` profile issues about 6 days): renewed at half its lifetime,
/// fixed thresholds capped, and the daemon looks at it every few hours.
pub(crate) const SHORT_LIVED: Duration = Duration::days(10);

/// Whether a certificate of this lifetime is short-lived.
pub(crate) fn is_short_lived(lifetime: Duration) -> bool {
    lifetime < SHORT_LIVED
}

/// The default share of the lifetime left at which to renew.
pub(crate) fn default_fraction(lifetime: Duration) -> f64 {
    if is_short_lived(lifetime) {
        0.5
    } else {
        1.0 / 3.0
    }
}

/// How long before expiry the threshold rule renews.
pub(crate) fn threshold(lifetime: Duration, renew_before: Option<RenewBefore>) -> Duration {
    let default =
        Duration::seconds((lifetime.whole_seconds() as f64 * default_fraction(lifetime)) as i64);
    match renew_before {
        // A fixed time is capped at the default (half the lifetime) for a
        // short-lived certificate: "30d" would otherwise order at every check.
        Some(b) if !b.is_fraction() && is_short_lived(lifetime) => {
            Duration::seconds(b.seconds_of(lifetime.whole_seconds())).min(default)
        }
        Some(b) => Duration::seconds(b.seconds_of(lifetime.whole_seconds())),
        None => default,
    }
}

pub(crate) fn decide(f: &Facts<'_>, now: OffsetDateTime) -> Decision {
    let wanted: BTreeSet<String> = f
        .wanted_domains
        .iter()
        .map(|d| d.to_ascii_lowercase())
        .collect();
    let have: BTreeSet<String> = f
        .cert_domains
        .iter()
        .map(|d| d.to_ascii_lowercase())
        .collect();
    if wanted != have {
        return Decision::Due(Reason::DomainsChanged {
            added: wanted.difference(&have).cloned().collect(),
            removed: have.difference(&wanted).cloned().collect(),
        });
    }
    if f.revoked {
        return Decision::Due(Reason::Revoked);
    }
    let lifetime = f.not_after - f.not_before;
    let left = f.not_after - now;
    if left <= lifetime / 10 || left <= Duration::ZERO {
        return Decision::Due(Reason::NearExpiry { left });
    }
    if let Some(a) = f
        .ari
        .filter(|a| a.serial == f.serial && usable_window(a, f.not_after))
    {
        return if now >= a.renew_at {
            Decision::Due(Reason::AriWindow {
                window_start: a.window_start,
            })
        } else {
            Decision::NotDue {
                at: a.renew_at,
                basis: "ARI",
            }
        };
    }
    let t = threshold(lifetime, f.renew_before);
    if left <= t {
        Decision::Due(Reason::Threshold { left, threshold: t })
    } else {
        Decision::NotDue {
            at: f.not_after - t,
            basis: "threshold",
        }
    }
}

/// Whether a stored version that was not confirmed served is still worth
/// deploying instead of ordering anew: it names the domains the config asks
/// for and has more than 1/10 of its lifetime left (the rule that makes a
/// live certificate due whatever else says).
pub(crate) fn redeployable(
    cert_domains: &[String],
    wanted_domains: &[String],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> bool {
    let set =
        |v: &[String]| -> BTreeSet<String> { v.iter().map(|d| d.to_ascii_lowercase()).collect() };
    let left = not_after - now;
    set(cert_domains) == set(wanted_domains)
        && left > (not_after - not_before) / 10
        && left > Duration::ZERO
}

pub(crate) fn date(t: OffsetDateTime) -> String {
    crate::dates::rfc3339(t)
}

/// "12d 3h", "5h 10m", "45s".
pub(crate) fn human(d: Duration) -> String {
    let s = d.whole_seconds();
    let sign = if s < 0 { "-" } else { "" };
    let s = s.unsigned_abs();
    let (days, hours, mins) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    if days > 0 {
        format!("{sign}{days}d {hours}h")
    } else if hours > 0 {
        format!("{sign}{hours}h {mins}m")
    } else if mins > 0 {
        format!("{sign}{mins}m")
    } else {
        format!("{sign}{s}s")
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
