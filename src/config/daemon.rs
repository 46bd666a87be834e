//! `[daemon]`: schedules and the metrics endpoint of `certkeep run`.

use std::num::NonZeroUsize;

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
    /// Connections the metrics listener serves at once; more wait (in the
    /// kernel's accept queue) until one closes.
    #[serde(default = "default_http_max_connections")]
    pub http_max_connections: NonZeroUsize,
    /// How long a client of the metrics listener may take to send a request's
    /// headers (also the idle time allowed between requests).
    #[serde(
        default = "default_http_header_timeout",
        deserialize_with = "nonzero_duration"
    )]
    pub http_header_timeout: HumanDuration,
    /// How long one connection to the metrics listener may stay open at most.
    #[serde(
        default = "default_http_connection_timeout",
        deserialize_with = "nonzero_duration"
    )]
    pub http_connection_timeout: HumanDuration,
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
            http_max_connections: default_http_max_connections(),
            http_header_timeout: default_http_header_timeout(),
            http_connection_timeout: default_http_connection_timeout(),
        }
    }
}

fn nonzero_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<HumanDuration, D::Error> {
    let v = HumanDuration::deserialize(d)?;
    if v.get().is_zero() {
        return Err(serde::de::Error::custom(
            "must be longer than zero (for example \"10s\")",
        ));
    }
    Ok(v)
}

fn default_http_max_connections() -> NonZeroUsize {
    NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN)
}
fn default_http_header_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_http_connection_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
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
        assert_eq!(d.http_max_connections.get(), 64);
        assert_eq!(d.http_header_timeout.get().as_secs(), 10);
        assert_eq!(d.http_connection_timeout.get().as_secs(), 60);
    }

    #[test]
    fn listener_limits_parse_and_zero_is_refused() {
        let d: super::DaemonConfig = toml::from_str(
            "http_max_connections = 3\nhttp_header_timeout = \"2s\"\nhttp_connection_timeout = \"5m\"\n",
        )
        .unwrap();
        assert_eq!(d.http_max_connections.get(), 3);
        assert_eq!(d.http_header_timeout.get().as_secs(), 2);
        assert_eq!(d.http_connection_timeout.get().as_secs(), 300);
        let e = toml::from_str::<super::DaemonConfig>("http_header_timeout = \"0s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than zero"), "{e}");
        assert!(toml::from_str::<super::DaemonConfig>("http_max_connections = 0\n").is_err());
    }
}
