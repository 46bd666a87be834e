//! `[daemon]`: schedules and the metrics endpoint of `certkeep run`.

use serde::Deserialize;

use super::types::HumanDuration;
use crate::daemon::schedule::Cron;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// When to check renewals (crontab line, or 6-7 fields with seconds).
    #[serde(default = "default_renew_schedule")]
    pub renew_schedule: Cron,
    /// Random delay added to each renewal check, so fleets do not hit the CA at once.
    #[serde(default = "default_renew_jitter")]
    pub renew_jitter: HumanDuration,
    /// When to probe endpoints.
    #[serde(default = "default_probe_schedule")]
    pub probe_schedule: Cron,
    /// Renew once right after start (a daemon that was down may have missed a check).
    #[serde(default = "yes")]
    pub renew_at_start: bool,
    /// Prometheus metrics on this address ("127.0.0.1:9797"); off when unset.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How long SIGTERM waits for a running job before aborting it.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: HumanDuration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            renew_schedule: default_renew_schedule(),
            renew_jitter: default_renew_jitter(),
            probe_schedule: default_probe_schedule(),
            renew_at_start: true,
            metrics_listen: None,
            shutdown_timeout: default_shutdown_timeout(),
        }
    }
}

fn yes() -> bool {
    true
}

// The literals below are valid cron expressions (checked by a unit test).
fn default_renew_schedule() -> Cron {
    "0 0,12 * * *"
        .parse()
        .unwrap_or_else(|e| unreachable!("{e}"))
}
fn default_probe_schedule() -> Cron {
    "*/15 * * * *"
        .parse()
        .unwrap_or_else(|e| unreachable!("{e}"))
}
fn default_renew_jitter() -> HumanDuration {
    HumanDuration::from_secs(3600)
}
fn default_shutdown_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}

#[cfg(test)]
mod tests {
    #[test]
    fn defaults_parse() {
        let d = super::DaemonConfig::default();
        assert_eq!(d.renew_schedule.to_string(), "0 0,12 * * *");
        assert_eq!(d.probe_schedule.to_string(), "*/15 * * * *");
        assert!(d.metrics_listen.is_none());
    }
}
