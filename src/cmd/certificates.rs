//! `certkeep certificates`: list lineages (text or the stable JSON interface).

use serde::Serialize;
use time::OffsetDateTime;

use super::{report, EXIT_FAILURE, EXIT_OK};
use crate::config::Settings;
use crate::store::check::Damage;
use crate::store::Store;

/// One lineage as printed by `certificates --json`. Field names are a stable
/// interface. A damaged lineage has `status` "damaged", its `problems` and the
/// `repair` command; fields read from its certificate are null when cert.pem
/// could not be read.
#[derive(Debug, Serialize)]
pub struct Listing {
    pub name: String,
    /// "ok" or "damaged".
    pub status: &'static str,
    pub problems: Vec<Damage>,
    /// The command that repairs a damaged lineage (null when healthy).
    pub repair: Option<String>,
    pub domains: Vec<String>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    pub days_left: Option<i64>,
    pub issuer: Option<String>,
    pub key_type: Option<String>,
    pub serial: Option<String>,
    pub fingerprint_sha256: Option<String>,
    pub version: Option<u32>,
    /// The ACME profile the current version was ordered with; null for the
    /// CA's default profile or a version certkeep did not order.
    pub profile: Option<String>,
    pub cert_path: String,
    pub chain_path: String,
    pub fullchain_path: String,
    pub privkey_path: String,
    /// Whether the config has a [[certificate]] with this name.
    pub configured: bool,
}

use crate::dates::rfc3339;

/// Every lineage in the store, healthy or not; Err only when the store
/// itself cannot be read.
pub fn list(store: &Store, config: &Settings) -> Result<Vec<Listing>, crate::store::StoreError> {
    let now = OffsetDateTime::now_utc();
    // Profiles are informational: an unreadable state file hides them (and
    // says so) rather than the listing.
    let states = match crate::renew::state::LineageStates::load(store) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("profiles not shown: {e}");
            crate::renew::state::LineageStates::in_memory()
        }
    };
    let mut out = Vec::new();
    for name in store.lineage_names()? {
        let Some(inspection) = store.inspect(&name) else {
            continue;
        };
        let live = store.live_dir(&name);
        let p = |k: &str| live.join(format!("{k}.pem")).display().to_string();
        let leaf = inspection.current.as_ref().map(|c| &c.leaf);
        let healthy = inspection.is_healthy();
        out.push(Listing {
            status: if healthy { "ok" } else { "damaged" },
            repair: (!healthy).then(|| {
                if config.certificate(&name).is_some() {
                    inspection.repair()
                } else {
                    format!(
                        "{name} is not in the config: add a [[certificate]] named {name:?} and run \
                         `{}`, or move {} and {} away",
                        inspection.repair(),
                        live.display(),
                        store.archive_dir(&name).display()
                    )
                }
            }),
            domains: leaf.map(|l| l.sans.clone()).unwrap_or_default(),
            not_before: leaf.map(|l| rfc3339(l.not_before)),
            not_after: leaf.map(|l| rfc3339(l.not_after)),
            days_left: leaf.map(|l| l.days_left(now)),
            issuer: leaf.map(|l| l.issuer.clone()),
            key_type: leaf.map(|l| l.key_type.clone()),
            serial: leaf.map(|l| l.serial.clone()),
            fingerprint_sha256: leaf.map(|l| l.fingerprint.clone()),
            version: inspection
                .current
                .as_ref()
                .map(|c| c.lineage.version)
                .filter(|v| *v > 0),
            profile: inspection.current.as_ref().and_then(|c| {
                states
                    .get(&name)
                    .profile(c.lineage.version)
                    .map(str::to_string)
            }),
            cert_path: p("cert"),
            chain_path: p("chain"),
            fullchain_path: p("fullchain"),
            privkey_path: p("privkey"),
            configured: config.certificate(&name).is_some(),
            problems: inspection.damage,
            name,
        });
    }
    Ok(out)
}

/// Lists the store. Exit 1 when the store does not exist or any lineage is
/// damaged (every lineage is still listed).
pub fn run(config: &Settings, json: bool) -> u8 {
    let store = Store::new(&config.store);
    if let Err(e) = std::fs::metadata(store.root()) {
        if e.kind() == std::io::ErrorKind::NotFound {
            eprintln!(
                "error: the store {} does not exist: nothing was issued with this config yet \
                 (run `certkeep issue --all`), or `store` in the config points at the wrong directory",
                store.root().display()
            );
        } else {
            eprintln!(
                "error: cannot read the store {}: {e}",
                store.root().display()
            );
        }
        return EXIT_FAILURE;
    }
    let listing = match list(&store, config) {
        Ok(l) => l,
        Err(e) => {
            report("cannot list the store", &e);
            return EXIT_FAILURE;
        }
    };
    let damaged = listing.iter().filter(|l| l.status != "ok").count();
    let code = if damaged > 0 { EXIT_FAILURE } else { EXIT_OK };
    if json {
        match serde_json::to_string_pretty(&listing) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                report("cannot encode JSON", &e);
                return EXIT_FAILURE;
            }
        }
        return code;
    }
    if listing.is_empty() {
        println!("No certificates in {}.", store.root().display());
        return EXIT_OK;
    }
    let now = OffsetDateTime::now_utc();
    for l in &listing {
        let version = l
            .version
            .map(|v| format!("version {v}"))
            .unwrap_or_else(|| "version unknown".into());
        println!(
            "{} ({version}{}{})",
            l.name,
            if l.configured { "" } else { ", not in config" },
            if l.status == "ok" { "" } else { ", DAMAGED" }
        );
        for d in &l.problems {
            println!("  problem:   {}: {}", d.check, d.detail);
        }
        if let Some(r) = &l.repair {
            println!("  repair:    {r}");
        }
        if !l.domains.is_empty() {
            println!("  domains:   {}", l.domains.join(", "));
        }
        if let Some(na) = &l.not_after {
            let left =
                time::OffsetDateTime::parse(na, &time::format_description::well_known::Rfc3339)
                    .map(|t| crate::cert::time_left((t - now).whole_seconds()))
                    .unwrap_or_default();
            println!("  expires:   {na} ({left})");
        }
        for (label, v) in [
            ("issuer", &l.issuer),
            ("key type", &l.key_type),
            ("serial", &l.serial),
            ("profile", &l.profile),
        ] {
            if let Some(v) = v {
                println!("  {:<10} {v}", format!("{label}:"));
            }
        }
        println!("  fullchain: {}", l.fullchain_path);
        println!("  privkey:   {}", l.privkey_path);
    }
    if damaged > 0 {
        eprintln!(
            "error: {damaged} of {} lineage(s) damaged; see the problems and repair commands above",
            listing.len()
        );
    }
    code
}
