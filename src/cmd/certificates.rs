//! `certkeep certificates`: list lineages (text or the stable JSON interface).

use serde::Serialize;
use time::OffsetDateTime;

use super::{report, EXIT_FAILURE, EXIT_OK};
use crate::config::Config;
use crate::store::Store;

/// One lineage as printed by `certificates --json`. Field names are a stable interface.
#[derive(Debug, Serialize)]
pub struct Listing {
    pub name: String,
    pub domains: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    pub days_left: i64,
    pub issuer: String,
    pub key_type: String,
    pub serial: String,
    pub fingerprint_sha256: String,
    pub version: u32,
    pub cert_path: String,
    pub chain_path: String,
    pub fullchain_path: String,
    pub privkey_path: String,
    /// Whether the config has a [[certificate]] with this name.
    pub configured: bool,
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

pub fn list(store: &Store, config: &Config) -> Result<Vec<Listing>, crate::store::StoreError> {
    let now = OffsetDateTime::now_utc();
    let mut out = Vec::new();
    for name in store.lineage_names()? {
        let Some(cur) = store.current(&name)? else {
            continue;
        };
        let l = &cur.lineage;
        let p = |k: &str| l.path(k).display().to_string();
        out.push(Listing {
            domains: cur.leaf.sans.clone(),
            not_before: rfc3339(cur.leaf.not_before),
            not_after: rfc3339(cur.leaf.not_after),
            days_left: cur.leaf.days_left(now),
            issuer: cur.leaf.issuer.clone(),
            key_type: cur.leaf.key_type.clone(),
            serial: cur.leaf.serial.clone(),
            fingerprint_sha256: cur.leaf.fingerprint.clone(),
            version: l.version,
            cert_path: p("cert"),
            chain_path: p("chain"),
            fullchain_path: p("fullchain"),
            privkey_path: p("privkey"),
            configured: config.certificate(&name).is_some(),
            name,
        });
    }
    Ok(out)
}

pub fn run(config: &Config, json: bool) -> u8 {
    let store = Store::new(&config.store);
    let listing = match list(&store, config) {
        Ok(l) => l,
        Err(e) => {
            report("cannot list the store", &e);
            return EXIT_FAILURE;
        }
    };
    if json {
        match serde_json::to_string_pretty(&listing) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                report("cannot encode JSON", &e);
                return EXIT_FAILURE;
            }
        }
        return EXIT_OK;
    }
    if listing.is_empty() {
        println!("No certificates in {}.", store.root().display());
        return EXIT_OK;
    }
    for l in &listing {
        let days = if l.days_left < 0 {
            format!("EXPIRED {} days ago", -l.days_left)
        } else {
            format!("{} days left", l.days_left)
        };
        println!(
            "{} (version {}{})",
            l.name,
            l.version,
            if l.configured { "" } else { ", not in config" }
        );
        println!("  domains:   {}", l.domains.join(", "));
        println!("  expires:   {} ({days})", l.not_after);
        println!("  issuer:    {}", l.issuer);
        println!("  key type:  {}", l.key_type);
        println!("  serial:    {}", l.serial);
        println!("  fullchain: {}", l.fullchain_path);
        println!("  privkey:   {}", l.privkey_path);
    }
    EXIT_OK
}
