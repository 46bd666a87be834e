//! `certkeep issue`: obtain certificates now.

use super::{report, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::cli::Cli;
use crate::config::{CertificateConfig, Settings};
use crate::issue::Issuer;
use crate::progress::{Progress, Setting};
use crate::store::{lock, Store};

pub(super) async fn run(cli: &Cli, config: &Settings, names: &[String], all: bool) -> u8 {
    let selected: Vec<&CertificateConfig> = if all {
        config.certificates.iter().collect()
    } else {
        let mut v = Vec::new();
        for n in names {
            match config.certificate(n) {
                Some(c) => v.push(c),
                None => {
                    eprintln!(
                        "error: no [[certificate]] named {n:?} in the config; known: {}",
                        known(config)
                    );
                    return EXIT_USAGE;
                }
            }
        }
        v
    };
    if selected.is_empty() {
        eprintln!(
            "error: name a certificate or pass --all (configured: {})",
            known(config)
        );
        return EXIT_USAGE;
    }
    let store = Store::new(&config.store);
    if let Err(e) = store.ensure_layout() {
        report("cannot prepare the store", &e);
        return EXIT_FAILURE;
    }
    let _lock = match lock::acquire(&store.state_dir(), config.renewal.lock_wait.get()).await {
        Ok(l) => l,
        Err(e) => {
            report("cannot lock the store", &e);
            return EXIT_FAILURE;
        }
    };
    if let Err(e) = store.recover() {
        report("cannot clean up the store", &e);
        return EXIT_FAILURE;
    }
    // Self-checks first: a broken webroot is reported before the CA is
    // contacted or an account registered.
    let mut failed = 0;
    let mut checked = Vec::new();
    for c in selected {
        match crate::issue::preflight(config.self_check().as_ref(), c).await {
            Ok(()) => checked.push(c),
            Err(e) => {
                failed += 1;
                report(&format!("{}: not issued", c.name()), &e);
            }
        }
    }
    if checked.is_empty() {
        return EXIT_FAILURE;
    }
    let client = match super::account(config, &store).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let issuer = Issuer {
        acme: &config.acme,
        client: &client,
        store: &store,
    };
    let progress = Progress::start(&Setting::current(cli, false, checked.len()), "issuing");
    for c in checked {
        let _done = progress.item();
        progress.set_message(c.name());
        let started = std::time::Instant::now();
        let issued = issuer.issue(c).await;
        progress.suspend(|| match issued {
            Ok((version, leaf)) => println!(
                "{}: issued version {version}, serial {}, expires {} ({:.1}s)",
                c.name(),
                leaf.serial,
                crate::dates::rfc3339(leaf.not_after),
                started.elapsed().as_secs_f64()
            ),
            Err(e) => {
                failed += 1;
                report(&format!("{}: not issued", c.name()), &e);
            }
        });
    }
    progress.finish();
    if failed > 0 {
        EXIT_FAILURE
    } else {
        EXIT_OK
    }
}

fn known(config: &Settings) -> String {
    let names: Vec<&str> = config.certificates.iter().map(|c| c.name()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
