//! `certkeep profiles`: the ACME profiles the configured CA offers, and
//! whether each certificate's profile is among them.

use super::{report, EXIT_FAILURE, EXIT_OK};
use crate::acme::profile::{self, ProfileMode};
use crate::config::Settings;

/// Prints the CA's profiles. Exit 1 when the directory cannot be fetched or
/// a certificate requires a profile the CA does not offer.
pub(super) async fn run(config: &Settings, json: bool) -> u8 {
    let directory = config.acme.directory.as_str();
    let info = match crate::acme::directory_info(
        &config.acme,
        directory,
        config.renewal.retry_budget.get(),
    )
    .await
    {
        Ok(i) => i,
        Err(e) => {
            report("cannot read the CA's profiles", &e);
            return EXIT_FAILURE;
        }
    };
    let mut missing_required = 0;
    let mut uses = Vec::new();
    for c in &config.certificates {
        let Some(w) = c.wanted_profile(&config.acme) else {
            continue;
        };
        let offered = info.profiles.iter().any(|o| o.name == w.name);
        if !offered && w.mode == ProfileMode::Required {
            missing_required += 1;
        }
        uses.push((c.name().to_string(), w, offered));
    }
    if json {
        let v = serde_json::json!({
            "directory": directory,
            "profiles": info.profiles.iter().map(|o| serde_json::json!({
                "name": o.name,
                "description": o.description,
            })).collect::<Vec<_>>(),
            "certificates": uses.iter().map(|(n, w, offered)| serde_json::json!({
                "name": n,
                "profile": w.name,
                "mode": w.mode.to_string(),
                "offered": offered,
            })).collect::<Vec<_>>(),
        });
        match serde_json::to_string_pretty(&v) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                report("cannot encode JSON", &e);
                return EXIT_FAILURE;
            }
        }
    } else {
        if info.profiles.is_empty() {
            println!("{directory} offers no profiles: every order gets the CA's default.");
        } else {
            println!("{directory} offers:");
            let width = info
                .profiles
                .iter()
                .map(|o| o.name.len())
                .max()
                .unwrap_or(0);
            for o in &info.profiles {
                println!("  {:<width$}  {}", o.name, o.description);
            }
        }
        for (n, w, offered) in &uses {
            let state = match (offered, w.mode) {
                (true, _) => "offered".to_string(),
                (false, ProfileMode::Preferred) => {
                    "NOT OFFERED: orders fall back to the CA's default".to_string()
                }
                (false, ProfileMode::Required) => format!(
                    "NOT OFFERED: orders fail (the CA {})",
                    profile::describe_offers(&info.profiles)
                ),
            };
            println!("{n}: profile {} ({}): {state}", w.name, w.mode);
        }
    }
    if missing_required > 0 {
        EXIT_FAILURE
    } else {
        EXIT_OK
    }
}
