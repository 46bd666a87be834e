//! Command implementations. Each returns the process exit code.

pub mod certificates;
mod issue;
mod probe;

use crate::cli::{Cli, Command};
use crate::config::Config;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

pub async fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::CheckConfig => match load(&cli) {
            Ok(c) => {
                println!(
                    "{}: ok ({} certificate{})",
                    cli.config.display(),
                    c.certificates.len(),
                    if c.certificates.len() == 1 { "" } else { "s" }
                );
                EXIT_OK
            }
            Err(code) => code,
        },
        Command::Issue { ref names, all } => match load(&cli) {
            Ok(c) => issue::run(&c, names, all).await,
            Err(code) => code,
        },
        Command::Certificates { json } => match load(&cli) {
            Ok(c) => certificates::run(&c, json),
            Err(code) => code,
        },
        Command::Probe(ref args) => probe::run(&cli, args).await,
    }
}

/// Loads the config or prints the error and returns the exit code.
pub(crate) fn load(cli: &Cli) -> Result<Config, u8> {
    Config::load(&cli.config).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_USAGE
    })
}

/// Prints an error with its causes on one line.
pub(crate) fn report(context: &str, e: &dyn std::error::Error) {
    eprintln!("error: {context}: {}", crate::acme::error_chain(e));
}
