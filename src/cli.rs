//! Command-line interface (clap). Every command and flag is documented here;
//! `certkeep --help` and `certkeep <command> --help` print it.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::DEFAULT_CONFIG_PATH;

const EXIT_CODES: &str = "\
Exit codes:
  0  success (or nothing to do)
  1  a certificate could not be obtained, renewed or deployed
  2  usage or configuration error";

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
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
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
    /// List every lineage in the store
    Certificates {
        /// JSON array instead of text (stable interface, see README)
        #[arg(long)]
        json: bool,
    },
    /// Alert channels: send a test message, show open alerts and the delivery queue
    Alert {
        #[command(subcommand)]
        command: AlertCommand,
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
