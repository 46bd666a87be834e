//! `certkeep probe`: ad-hoc targets, or the configured endpoints and managed
//! certificates; table or JSON; Nagios-style exit code.

use std::io::{BufWriter, IsTerminal, Stdout, Write};

use super::EXIT_USAGE;
use crate::cli::{Cli, ProbeArgs};
use crate::config::Settings;
use crate::probe::report::{self, JsonArray};
use crate::probe::{self, ProbeOptions, ProbeReport, Target};
use crate::progress::{Progress, Setting};

pub(super) async fn run(cli: &Cli, args: &ProbeArgs) -> u8 {
    // With ad-hoc targets the config file is optional: a missing file (the
    // default /etc/certkeep/certkeep.toml on a workstation) means defaults.
    let config = if args.targets.is_empty() || cli.config.exists() {
        match super::load(cli) {
            Ok(c) => c,
            Err(code) => return code,
        }
    } else {
        match Settings::parse("", &cli.config) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        }
    };
    let mut opts = match ProbeOptions::from_config(&config.probe, &config.store, &args.ca_files) {
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

    let setting = Setting::current(cli, args.json, targets.len());
    let progress = Progress::start(&setting, "probing");
    let mut out = Output::new(args, &targets);
    let round = crate::job::probe_round(&config, targets, &opts, args.alert, None, |r| {
        progress.suspend(|| out.write(r));
        progress.inc();
    })
    .await;
    progress.finish();
    out.close();
    if let Some(e) = &round.alerts {
        eprintln!("error: alerts: {e}");
    }
    round.tally.exit_code()
}

/// Where reports go as they complete: stdout, as a streamed JSON array or
/// as table lines, flushed after each endpoint. A write error (stdout
/// closed or full) ends the output; the probing, alerts and exit code go on.
struct Output {
    json: Option<JsonArray<BufWriter<Stdout>>>,
    table: Option<BufWriter<Stdout>>,
    width: usize,
    details: bool,
    colour: bool,
    failed: Option<std::io::Error>,
}

impl Output {
    fn new(args: &ProbeArgs, targets: &[Target]) -> Self {
        let stdout = BufWriter::with_capacity(64 * 1024, std::io::stdout());
        let width = report::target_width(targets.iter().map(|t| t.target.as_str()));
        let mut o = Output {
            json: None,
            table: None,
            width,
            details: args.details,
            colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            failed: None,
        };
        if args.json {
            o.json = Some(JsonArray::new(stdout));
        } else {
            let mut w = stdout;
            let r = w.write_all(report::table_header(width).as_bytes());
            o.table = Some(w);
            o.check(r);
        }
        o
    }

    fn check(&mut self, r: std::io::Result<()>) {
        if let Err(e) = r {
            if self.failed.is_none() {
                self.failed = Some(e);
            }
        }
    }

    fn write(&mut self, r: &ProbeReport) {
        if self.failed.is_some() {
            return;
        }
        let res = if let Some(j) = &mut self.json {
            j.push(r).and_then(|()| j.flush())
        } else if let Some(t) = &mut self.table {
            let line = report::table_row(r, self.width, self.details, self.colour);
            t.write_all(line.as_bytes()).and_then(|()| t.flush())
        } else {
            Ok(())
        };
        self.check(res);
    }

    fn close(mut self) {
        let res = match (self.json.take(), self.table.take()) {
            (Some(j), _) if self.failed.is_none() => j.close(),
            (_, Some(mut t)) if self.failed.is_none() => t.flush(),
            _ => Ok(()),
        };
        self.check(res);
        if let Some(e) = self.failed {
            eprintln!("error: cannot write the probe results to stdout: {e}");
        }
    }
}
