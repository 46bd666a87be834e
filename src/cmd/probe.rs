//! `certkeep probe`: ad-hoc targets, or the configured endpoints and managed
//! certificates; table or JSON; Nagios-style exit code.

use std::io::IsTerminal;

use super::EXIT_USAGE;
use crate::cli::{Cli, ProbeArgs};
use crate::config::Config;
use crate::probe::{self, report, ProbeOptions, Target};

pub(super) async fn run(cli: &Cli, args: &ProbeArgs) -> u8 {
    // With ad-hoc targets the config file is optional: a missing file (the
    // default /etc/certkeep/certkeep.toml on a workstation) means defaults.
    let config = if args.targets.is_empty() || cli.config.exists() {
        match super::load(cli) {
            Ok(c) => c,
            Err(code) => return code,
        }
    } else {
        match Config::parse("", &cli.config) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        }
    };
    let mut opts = match ProbeOptions::from_config(&config, &args.ca_files) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    if let Some(n) = args.concurrency {
        opts.concurrency = usize::try_from(n).unwrap_or(usize::MAX);
    }
    let t = &mut opts.timeouts;
    t.connect = args.connect_timeout.unwrap_or(t.connect);
    t.handshake = args.handshake_timeout.unwrap_or(t.handshake);
    t.read = args.read_timeout.unwrap_or(t.read);
    t.total = args.timeout.unwrap_or(t.total);
    opts.http_port = args.http_port;

    let targets = if args.targets.is_empty() {
        let t = probe::targets_from_config(&config);
        if t.is_empty() {
            eprintln!(
                "error: nothing to probe: {} has no [[endpoint]] and no [[certificate]]; pass targets, e.g. certkeep probe https://example.com",
                cli.config.display()
            );
            return EXIT_USAGE;
        }
        t
    } else {
        if !opts.policies.contains_key(&args.policy) {
            eprintln!(
                "error: --policy {:?} is not defined; add [probe.policy.{}] to {}",
                args.policy,
                args.policy,
                cli.config.display()
            );
            return EXIT_USAGE;
        }
        let mut out = Vec::new();
        for s in &args.targets {
            let mut t = match Target::parse(s) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {e}");
                    return EXIT_USAGE;
                }
            };
            t.connect = args.connect.clone();
            if let Err(e) = t.connect_address() {
                eprintln!("error: --connect: {e}");
                return EXIT_USAGE;
            }
            t.policy = args.policy.clone();
            out.push(t);
        }
        out
    };

    let round = crate::job::probe_round(&config, targets, &opts, args.alert, None).await;
    if let Some(e) = &round.alerts {
        eprintln!("error: alerts: {e}");
    }
    let reports = round.reports;
    if args.json {
        println!("{}", report::json(&reports));
    } else {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        print!("{}", report::table(&reports, args.details, colour));
    }
    report::exit_code(&reports)
}
