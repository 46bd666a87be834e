//! `certkeep revoke`: revoke a lineage's current certificate at the CA.

use instant_acme::{RevocationReason, RevocationRequest};
use rustls_pki_types::CertificateDer;

use super::{report, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::config::Settings;
use crate::renew::state::LineageStates;
use crate::store::Store;

fn reason(code: u8) -> Option<RevocationReason> {
    Some(match code {
        0 => RevocationReason::Unspecified,
        1 => RevocationReason::KeyCompromise,
        3 => RevocationReason::AffiliationChanged,
        4 => RevocationReason::Superseded,
        5 => RevocationReason::CessationOfOperation,
        9 => RevocationReason::PrivilegeWithdrawn,
        _ => return None,
    })
}

pub(super) async fn run(config: &Settings, name: &str, code: u8) -> u8 {
    let Some(reason) = reason(code) else {
        eprintln!("error: reason {code} is not accepted; see `certkeep revoke --help`");
        return EXIT_USAGE;
    };
    let store = Store::new(&config.store);
    let cur = match store.current(name) {
        Ok(Some(c)) => c,
        Ok(None) => {
            eprintln!("error: no lineage {name:?} in {}", store.root().display());
            return EXIT_USAGE;
        }
        Err(e) => {
            report("cannot read the lineage", &e);
            return EXIT_FAILURE;
        }
    };
    let client = match super::account(config, &store).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let der = CertificateDer::from(cur.leaf_der.as_slice());
    match client
        .account
        .revoke(&RevocationRequest {
            certificate: &der,
            reason: Some(reason),
        })
        .await
    {
        Ok(()) => {
            println!("{name}: revoked serial {}", cur.leaf.serial);
            // Remembered so the next `certkeep renew` replaces it whatever
            // renewal window it has cached.
            match remember(config, &store, name, &cur.leaf.serial).await {
                Ok(()) => {
                    println!("{name}: the next `certkeep renew` replaces it");
                    EXIT_OK
                }
                Err(e) => {
                    eprintln!("error: {name}: cannot record the revocation, so `certkeep renew` may not replace it before its renewal window: {e}; run `certkeep renew --force --cert {name}`");
                    EXIT_FAILURE
                }
            }
        }
        Err(e) => {
            report(&format!("{name}: revocation failed"), &e);
            EXIT_FAILURE
        }
    }
}

async fn remember(
    config: &Settings,
    store: &Store,
    name: &str,
    serial: &str,
) -> Result<(), crate::renew::run::RunError> {
    let _lock =
        crate::store::lock::acquire(&store.state_dir(), config.renewal.lock_wait.get()).await?;
    let mut states = LineageStates::load(store)?;
    states.revoked(name, serial);
    states.save()?;
    Ok(())
}
