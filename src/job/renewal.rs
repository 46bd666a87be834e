//! A renewal check: one renewal run, its alerts, and its metrics.

use crate::alert::{AlertError, Problem, Severity};
use crate::config::Settings;
use crate::daemon::metrics::Shared;
use crate::renew::alerts;
use crate::renew::run::{self, Options, Outcome, RunError};

/// Key of the "could not run its renewal check" alert. A check that runs
/// (whatever it finds) resolves it.
pub(crate) const CHECK_KEY: &str = "agent:renewal-check:run";

/// What a renewal check did.
#[derive(Debug)]
pub(crate) struct RenewalCheck {
    /// The run's outcome, or why it could not run at all.
    pub outcome: Result<Outcome, RunError>,
    /// Why the alerts could not be recorded, if they could not (undelivered
    /// alerts stay queued and are not an error here).
    pub alerts: Option<AlertError>,
}

impl RenewalCheck {
    /// True when the run ran and everything in it went well.
    pub(crate) fn ok(&self) -> bool {
        self.outcome.as_ref().is_ok_and(Outcome::ok)
    }
}

/// The alert raised when a renewal check cannot run at all (the store cannot
/// be used, the lock cannot be taken): nothing was checked, so nothing can be
/// trusted to renew.
pub(super) fn cannot_run(e: &RunError) -> Problem {
    Problem::new(
        CHECK_KEY,
        Severity::Critical,
        "certkeep could not run its renewal check",
    )
    .detail("problem", e.to_string())
}

/// Runs one renewal check and reports its alerts; updates `metrics` when
/// given. A dry run raises and resolves nothing; neither does a check asked
/// for a certificate the config does not have (a usage error).
pub(crate) async fn renewal_check(
    config: &Settings,
    opts: &Options,
    metrics: Option<&Shared>,
) -> RenewalCheck {
    let outcome = run::run(config, opts).await;
    let observed = match &outcome {
        Err(RunError::UnknownCertificate(_)) => None,
        Err(e) => Some((vec![cannot_run(e)], Vec::new())),
        Ok(o) if o.dry_run => None,
        Ok(o) => {
            let (problems, mut ok) = alerts::observations(
                o,
                time::OffsetDateTime::now_utc(),
                config.renewal.ca_unreachable_after.get(),
            );
            ok.push(CHECK_KEY.to_string());
            Some((problems, ok))
        }
    };
    let alerts = match observed {
        Some((problems, ok)) => crate::alert::report(&config.alerting(), problems, &ok)
            .await
            .err(),
        None => None,
    };
    let check = RenewalCheck { outcome, alerts };
    if let Some(metrics) = metrics {
        if let (Ok(o), Ok(mut m)) = (&check.outcome, metrics.lock()) {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            for r in &o.renewed {
                let c = m.certificates.entry(r.name.clone()).or_default();
                c.last_renewal_ok = Some(true);
                c.last_success_at = Some(now);
                // Planned anew for the new certificate.
                c.renewal_due_at = None;
            }
            for f in &o.failed {
                let c = m.certificates.entry(f.name.clone()).or_default();
                c.last_renewal_ok = Some(false);
                c.last_failure_at = Some(now);
                // Still due: the next check tries again.
                c.renewal_due_at = Some(now);
            }
            for n in &o.not_due {
                if let Some(c) = m.certificates.get_mut(&n.name) {
                    c.renewal_due_at = Some(n.due_at.unix_timestamp());
                }
            }
        }
        super::refresh_certificates(config, metrics);
        super::record_run(metrics, "renew", check.ok());
    }
    check
}
