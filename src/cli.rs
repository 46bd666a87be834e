//! Command-line interface (clap). Every command and flag is documented here;
//! `certkeep --help` and `certkeep <command> --help` print it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::DEFAULT_CONFIG_PATH;

const EXIT_CODES: &str = "\
Exit codes:
  0  success (or nothing to do)
  1  a certificate could not be obtained, renewed or deployed
  2  usage or configuration error";

/// The RFC 5280 revocation reasons a certificate's holder can give (code,
/// name). The others are refused: 2 cACompromise and 10 aACompromise concern
/// an authority, 6 certificateHold is not allowed for TLS server
/// certificates, 8 removeFromCRL exists only in delta CRLs, 7 is unused.
pub const REVOCATION_REASONS: [(u8, &str); 6] = [
    (0, "unspecified"),
    (1, "keyCompromise"),
    (3, "affiliationChanged"),
    (4, "superseded"),
    (5, "cessationOfOperation"),
    (9, "privilegeWithdrawn"),
];

const REASON_HELP: &str = "RFC 5280 revocation reason, by code or name: 0 unspecified, \
1 keyCompromise, 3 affiliationChanged, 4 superseded, 5 cessationOfOperation, 9 privilegeWithdrawn";

/// `--reason 4` or `--reason superseded` (any case) -> 4.
pub fn parse_reason(s: &str) -> Result<u8, String> {
    REVOCATION_REASONS
        .iter()
        .find(|(code, name)| s == code.to_string() || s.eq_ignore_ascii_case(name))
        .map(|(code, _)| *code)
        .ok_or_else(|| {
            let known: Vec<String> = REVOCATION_REASONS
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            format!(
                "{s:?} is not a reason a certificate's holder can give; use one of: {}",
                known.join(", ")
            )
        })
}

#[derive(Debug, Parser)]
#[command(
    name = "certkeep",
    version,
    about = "Obtain, renew, deploy and watch TLS certificates (ACME HTTP-01 through an nginx webroot)",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Configuration file
    #[arg(long, short = 'c', global = true, env = "CERTKEEP_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,

    /// Log format on stderr
    #[arg(long, global = true, value_enum, env = "CERTKEEP_LOG_FORMAT", default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,

    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable on a terminal, plain lines otherwise (journald)
    Auto,
    Human,
    Plain,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration file without touching anything
    CheckConfig,
    /// Obtain a certificate now for configured names (new version even if one exists)
    Issue {
        /// Certificate names from the config
        names: Vec<String>,
        /// Every configured certificate
        #[arg(long, conflicts_with = "names")]
        all: bool,
    },
    /// Renew what is due (ARI window, or 1/3 of the lifetime left), then one
    /// validated nginx reload
    #[command(after_help = EXIT_CODES)]
    Renew {
        /// Run the real challenge flow against the staging directory with keys
        /// in memory; change nothing on disk, do not reload nginx
        #[arg(long)]
        dry_run: bool,
        /// Renew even if not due
        #[arg(long)]
        force: bool,
        /// Only this certificate (repeatable)
        #[arg(long = "cert", value_name = "NAME")]
        certs: Vec<String>,
        /// With --dry-run: run the deploy hooks too
        #[arg(long, requires = "dry_run")]
        run_deploy_hooks: bool,
        /// Print the summary as JSON
        #[arg(long)]
        json: bool,
    },
    /// Revoke the current certificate of a lineage at the CA
    Revoke {
        /// Certificate name
        name: String,
        #[arg(long, default_value = "0", value_parser = parse_reason, help = REASON_HELP)]
        reason: u8,
    },
    /// Run as a daemon: renewal checks and probes on their schedules
    /// ([daemon] in the config); SIGHUP reloads the config, SIGTERM stops
    Run,
    /// Print the next run times of the daemon's schedules
    Schedule {
        /// How many upcoming times per schedule
        #[arg(long, default_value_t = 3)]
        count: usize,
    },
    /// List every lineage in the store
    Certificates {
        /// JSON array instead of text (stable interface, see README)
        #[arg(long)]
        json: bool,
    },
    /// List the ACME profiles the configured CA offers, with their
    /// descriptions, and whether each certificate's profile is offered.
    /// Exit 1 when the CA cannot be reached or a required profile is not
    /// offered.
    Profiles {
        /// JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Take over certificates from another ACME client
    #[command(subcommand)]
    Import(ImportSource),
    /// Alert channels: send a test message, show open alerts and the delivery queue
    Alert {
        #[command(subcommand)]
        command: AlertCommand,
    },
    /// Check live endpoints: expiry, chain, hostname, key, protocol versions,
    /// HSTS, plain-HTTP redirect and ACME path, served vs stored certificate
    #[command(after_help = PROBE_EXIT_CODES)]
    Probe(ProbeArgs),
    /// Cluster mode (docs/cluster.md): upload the local store to etcd, show the fleet
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Upload the local store's lineages and ACME account to the empty etcd
    /// prefix of [cluster]. Exit 0 uploaded, 1 refused (the prefix holds data,
    /// a lineage is damaged, etcd unreachable), 2 usage or config error.
    Init {
        /// Replace whatever the prefix holds
        #[arg(long)]
        force: bool,
    },
    /// Nodes and their heartbeats; per lineage the current version and the
    /// serial each node serves, laggards and failed deploys marked. Exit 0 no
    /// problem, 1 a problem (or etcd unreachable), 2 usage or config error.
    Status {
        /// JSON instead of text
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportSource {
    /// Import certbot's lineages, account and renewal settings, adopting
    /// its directory in place (store = the certbot directory) so nginx
    /// configuration needs no change. certbot's files are never modified.
    ///
    /// Without --write the resulting configuration is printed to stdout and
    /// nothing is written. Exit codes: 0 imported (or printed), 1 some
    /// lineage cannot be imported (nothing written), 2 usage or config error.
    Certbot {
        /// certbot's configuration directory
        #[arg(long, default_value = "/etc/letsencrypt")]
        from: PathBuf,
        /// Write the account file and the config file (--config); without it, print
        #[arg(long)]
        write: bool,
        /// Show what would be done and write nothing, even with --write
        #[arg(long)]
        dry_run: bool,
        /// Replace [[certificate]] entries that already have the same name
        #[arg(long)]
        force: bool,
        /// Import only this lineage (repeatable); all by default
        #[arg(long = "cert", value_name = "NAME")]
        certs: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Send a test message to every channel (or one) and print each result.
    /// Exit 0 when every message was delivered, 1 when any failed, 2 on a
    /// configuration error or an unknown channel.
    Test {
        /// Only this channel (its `name` in [[alert.channel]])
        #[arg(long)]
        channel: Option<String>,
    },
    /// Show open alerts and notifications waiting for delivery (read-only)
    Status {
        /// JSON instead of text
        #[arg(long)]
        json: bool,
    },
}

const PROBE_EXIT_CODES: &str = "\
Exit codes (Nagios style):
  0  every endpoint ok
  1  at least one warning (and no critical)
  2  at least one critical; also usage or configuration errors
  3  only probe errors (unreachable, timeout, not TLS), no warning or critical";

/// `certkeep probe` options. Without targets, the configured ones are probed.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// Ad-hoc targets: https://host[:port][/path], host:port or [::1]:port
    /// (port 443 by default); the config file is optional with targets
    pub targets: Vec<String>,
    /// Connect to this address instead of resolving the names (ad-hoc targets)
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub connect: Option<String>,
    /// Extra trust anchors (PEM file) for private CAs; repeatable
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_files: Vec<PathBuf>,
    /// Policy for ad-hoc targets (a [probe.policy.NAME] of the config)
    #[arg(long, default_value = "default")]
    pub policy: String,
    /// Port for the plain-HTTP checks (redirect, ACME path); 0 skips them
    #[arg(long, value_name = "PORT")]
    pub http_port: Option<u16>,
    /// Endpoints probed at once [default: 64, or [probe] concurrency]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub concurrency: Option<u64>,
    /// Time limit for the TCP connect (e.g. "3s")
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub connect_timeout: Option<std::time::Duration>,
    /// Time limit for a TLS handshake or a legacy ClientHello reply
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub handshake_timeout: Option<std::time::Duration>,
    /// Time limit for the first byte of an HTTP response (and again for the rest)
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub read_timeout: Option<std::time::Duration>,
    /// Time limit for everything about one endpoint
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Raise and resolve alerts for what was found ([alert] channels); for
    /// certkeep-probe.timer
    #[arg(long)]
    pub alert: bool,
    /// Print every check and fact under each endpoint (-v is log verbosity)
    #[arg(long, short = 'd')]
    pub details: bool,
    /// JSON array, one object per endpoint (stable interface, see the README)
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_help_lists_exactly_the_accepted_reasons() {
        let listed: Vec<String> = REVOCATION_REASONS
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        let help_list = REASON_HELP.split_once(": ").unwrap().1;
        assert_eq!(help_list, listed.join(", "));
        assert_eq!(parse_reason("4"), Ok(4));
        assert_eq!(parse_reason("KEYCOMPROMISE"), Ok(1));
        for refused in ["2", "6", "7", "8", "10", "certificateHold", "x"] {
            assert!(parse_reason(refused).is_err(), "{refused}");
        }
    }
}
