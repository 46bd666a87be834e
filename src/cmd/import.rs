//! `certkeep import certbot`: take over certbot's lineages in place.

use std::fmt::Write as _;
use std::path::Path;

use super::{report, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::certbot::{self, AccountPlan, ImportError, Options, Plan};
use crate::cli::ImportSource;

pub(super) fn run(config: &Path, source: &ImportSource) -> u8 {
    let ImportSource::Certbot {
        from,
        write,
        dry_run,
        force,
        certs,
    } = source;
    let opts = Options {
        from: from.clone(),
        config: config.to_path_buf(),
        force: *force,
        only: certs.clone(),
    };
    let plan = match certbot::plan(&opts) {
        Ok(p) => p,
        Err(e) => {
            report("cannot import from certbot", &e);
            return match e {
                ImportError::Config(_)
                | ImportError::Toml { .. }
                | ImportError::UnknownCert(..) => EXIT_USAGE,
                _ => EXIT_FAILURE,
            };
        }
    };
    if plan.blocked() {
        eprint!("{}", describe(&plan));
        eprintln!(
            "error: {} lineage{} cannot be imported; nothing was written",
            plan.refused.len(),
            if plan.refused.len() == 1 { "" } else { "s" }
        );
        return EXIT_FAILURE;
    }
    if plan.entries.is_empty() {
        // Nothing to take over: certbot keeps renewing whatever it has, so
        // it must not be told to stop, and no config is written.
        eprint!("{}", describe(&plan));
        eprintln!(
            "error: nothing to import: {} has no lineage in renewal/*.conf; nothing was written \
             (is --from certbot's configuration directory?)",
            plan.from.display()
        );
        return EXIT_FAILURE;
    }
    if !*write || *dry_run {
        // The plan for people, the configuration for a pipe.
        eprint!("{}", describe(&plan));
        eprintln!(
            "{}nothing was written; run again with --write to write the account file and {}",
            if *dry_run { "dry run: " } else { "" },
            plan.config_path.display()
        );
        print!("{}", plan.config_text);
        return EXIT_OK;
    }
    if let Err(e) = certbot::apply(&plan) {
        report("import failed", &e);
        return EXIT_FAILURE;
    }
    print!("{}", describe(&plan));
    println!("wrote {}", plan.config_path.display());
    print!("{}", next_steps(&plan));
    EXIT_OK
}

fn describe(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "certbot directory {} (certbot {}), CA {}",
        plan.from.display(),
        plan.certbot_version.as_deref().unwrap_or("version unknown"),
        plan.directory
    );
    if !plan.entries.is_empty() {
        let _ = writeln!(
            s,
            "import into {} with store = {:?}:",
            plan.config_path.display(),
            plan.from.display().to_string()
        );
    }
    for e in &plan.entries {
        let webroot = match (&e.webroot, e.webroot_map.len()) {
            (Some(w), 0) => format!("webroot {}", w.display()),
            (Some(w), n) => format!("webroot {} (+{n} per-name)", w.display()),
            (None, n) => format!("{n} per-name webroots"),
        };
        let _ = writeln!(
            s,
            "  {}: {} ({}, {webroot}); live version {}, next {}{}",
            e.name,
            e.domains.join(", "),
            e.key_type,
            e.version,
            e.next_version,
            if e.replaces {
                "; replaces the existing entry"
            } else {
                ""
            }
        );
    }
    match &plan.account {
        AccountPlan::Convert {
            source, dest, uri, ..
        } => {
            let _ = writeln!(
                s,
                "account {uri}: certbot's key in {} -> {} (0600)",
                source.display(),
                dest.display()
            );
        }
        AccountPlan::AlreadyThere { dest, uri } => {
            let _ = writeln!(s, "account {uri}: already in {}", dest.display());
        }
        AccountPlan::New { why } => {
            let _ = writeln!(s, "account: {why}");
        }
    }
    for w in &plan.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    if !plan.refused.is_empty() {
        let _ = writeln!(s, "cannot import:");
        for r in &plan.refused {
            let _ = writeln!(s, "  {}: {}\n    what to do: {}", r.name, r.reason, r.todo);
        }
    }
    s
}

fn next_steps(plan: &Plan) -> String {
    let mut s = String::from(
        "\nNext, stop certbot from renewing these lineages as well:\n  systemctl disable --now certbot.timer\n",
    );
    if Path::new("/etc/cron.d/certbot").exists() {
        s.push_str("  and comment out the line in /etc/cron.d/certbot\n");
    } else {
        s.push_str(
            "  (with cron instead of systemd: comment out the line in /etc/cron.d/certbot)\n",
        );
    }
    let _ = writeln!(
        s,
        "Then check with: certkeep --config {} certificates",
        plan.config_path.display()
    );
    s
}
