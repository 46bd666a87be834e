//! `certkeep renew`: prints the run's summary and maps it to an exit code.

use super::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::config::Settings;
use crate::renew::plan::date;
use crate::renew::run::{Options, Outcome, RunError};

pub(super) async fn run(config: &Settings, opts: &Options, json: bool) -> u8 {
    if config.cluster.is_some() && !opts.dry_run {
        eprintln!("error: certkeep renew does not run in cluster mode ([cluster] is set): every node must run the daemon (`certkeep run`), which deploys the cluster's versions; see docs/cluster.md");
        return super::EXIT_USAGE;
    }
    let check = crate::job::renewal_check(config, opts, None).await;
    opts.progress.finish();
    if let Some(e) = &check.alerts {
        eprintln!("error: alerts: {e}");
    }
    let outcome = match check.outcome {
        Ok(o) => o,
        Err(e @ (RunError::UnknownCertificate(_) | RunError::NoDryRunDirectory(_))) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
        Err(e) => {
            eprintln!("error: could not run the renewal check: {e}");
            return EXIT_FAILURE;
        }
    };
    if json {
        match serde_json::to_string_pretty(&outcome) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: cannot encode the summary: {e}"),
        }
    } else {
        print_summary(&outcome);
    }
    if outcome.ok() {
        EXIT_OK
    } else {
        EXIT_FAILURE
    }
}

fn print_summary(o: &Outcome) {
    let verb = if o.dry_run { "would renew" } else { "renewed" };
    for r in &o.renewed {
        let version = r
            .version
            .map(|v| format!("version {v}, "))
            .unwrap_or_default();
        println!(
            "{verb}: {} ({version}serial {}, expires {}; {})",
            r.name,
            r.serial,
            date(r.not_after),
            r.reason
        );
    }
    for n in &o.not_due {
        println!(
            "not due: {} (renewal from {}, by {})",
            n.name,
            date(n.due_at),
            n.basis
        );
    }
    for f in &o.failed {
        let expires = f
            .expires
            .map(|e| {
                format!(
                    "; the current certificate stays in place and expires {}",
                    date(e)
                )
            })
            .unwrap_or_default();
        eprintln!("FAILED: {}: {}{expires}", f.name, f.failure);
    }
    for p in &o.problems {
        eprintln!("PROBLEM: {p}");
    }
    println!(
        "{}{} {verb}, {} not due, {} failed{}",
        if o.dry_run { "dry run: " } else { "" },
        o.renewed.len(),
        o.not_due.len(),
        o.failed.len(),
        if o.problems.is_empty() {
            String::new()
        } else {
            format!(", {} problem(s)", o.problems.len())
        }
    );
}
