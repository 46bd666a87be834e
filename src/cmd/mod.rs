//! Command implementations. Each returns the process exit code.

mod alert;
pub mod certificates;
mod cluster;
mod import;
mod issue;
mod probe;
mod profiles;
mod renew;
mod revoke;

use crate::cli::{Cli, Command};
use crate::config::Settings;

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
            Ok(c) => {
                crate::shutdown::cancel_on_signals();
                issue::run(&cli, &c, names, all).await
            }
            Err(code) => code,
        },
        Command::Renew {
            dry_run,
            force,
            ref certs,
            run_deploy_hooks,
            json,
        } => match load(&cli) {
            Ok(c) => {
                let items = if certs.is_empty() {
                    c.certificates.len()
                } else {
                    certs.len()
                };
                let progress = crate::progress::Progress::start(
                    &crate::progress::Setting::current(&cli, json, items),
                    "renewing",
                );
                progress.set_message("checking which certificates are due");
                let opts = crate::renew::run::Options {
                    dry_run,
                    force,
                    certs: certs.clone(),
                    run_deploy_hooks,
                    progress,
                };
                crate::shutdown::cancel_on_signals();
                renew::run(&c, &opts, json).await
            }
            Err(code) => code,
        },
        Command::Revoke { ref name, reason } => match load(&cli) {
            Ok(c) => revoke::run(&c, name, reason).await,
            Err(code) => code,
        },
        Command::Run => match load(&cli) {
            Ok(c) => crate::daemon::run(cli.config.clone(), c).await,
            Err(code) => code,
        },
        Command::Schedule { count } => match load(&cli) {
            Ok(c) => {
                let up = crate::daemon::upcoming(&c, count);
                let fmt = |v: &[chrono::DateTime<chrono::Utc>]| {
                    v.iter()
                        .map(|t| t.to_rfc3339())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let cap = match up.short_lived {
                    Some(l) => format!(
                        ", at most {} apart while a certificate is short-lived (the shortest lives {})",
                        humantime::format_duration(
                            crate::daemon::schedule::SHORT_LIVED_MAX_GAP
                                .to_std()
                                .unwrap_or_default()
                        ),
                        crate::renew::plan::human(time::Duration::seconds(l.num_seconds()))
                    ),
                    None => String::new(),
                };
                println!(
                    "renewal check ({}{cap}, plus up to {} random delay): {}",
                    c.daemon.renew_schedule,
                    humantime::format_duration(c.daemon.renew_jitter.get()),
                    fmt(&up.renew)
                );
                println!("probe ({}): {}", c.daemon.probe_schedule, fmt(&up.probe));
                EXIT_OK
            }
            Err(code) => code,
        },
        Command::Certificates { json } => match load(&cli) {
            Ok(c) => certificates::run(&c, json),
            Err(code) => code,
        },
        Command::Profiles { json } => match load(&cli) {
            Ok(c) => profiles::run(&c, json).await,
            Err(code) => code,
        },
        Command::Import(ref source) => import::run(&cli.config, source),
        Command::Alert { ref command } => match load(&cli) {
            Ok(c) => alert::run(&c, command).await,
            Err(code) => code,
        },
        Command::Probe(ref args) => probe::run(&cli, args).await,
        Command::Cluster { ref command } => match load(&cli) {
            Ok(c) => cluster::run(&c, command).await,
            Err(code) => code,
        },
    }
}

/// Loads the config (printing its warnings) or prints the error and returns
/// the exit code.
pub(crate) fn load(cli: &Cli) -> Result<Settings, u8> {
    let c = Settings::load(&cli.config).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_USAGE
    })?;
    for w in &c.warnings {
        eprintln!("warning: {w}");
    }
    Ok(c)
}

/// The stored ACME account at the configured directory (registered on first
/// use), or the printed error's exit code.
pub(crate) async fn account(
    config: &Settings,
    store: &crate::store::Store,
) -> Result<crate::acme::AcmeClient, u8> {
    crate::acme::AcmeClient::connect(
        &config.acme,
        config.acme.directory.as_str(),
        store,
        true,
        config.renewal.retry_budget.get(),
    )
    .await
    .map_err(|e| {
        report("cannot reach the ACME account", &e);
        EXIT_FAILURE
    })
}

/// Prints an error with its causes on one line.
pub(crate) fn report(context: &str, e: &dyn std::error::Error) {
    eprintln!("error: {context}: {}", crate::net::error_chain(e));
}
