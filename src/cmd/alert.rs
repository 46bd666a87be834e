//! `certkeep alert test` and `certkeep alert status`.

use std::time::SystemTime;

use super::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::alert::message::rfc3339;
use crate::alert::{deliver, unix, AlertState, STATE_FILE};
use crate::cli::AlertCommand;
use crate::config::Settings;
use crate::store::Store;

pub(super) async fn run(config: &Settings, command: &AlertCommand) -> u8 {
    match command {
        AlertCommand::Test { channel } => test(config, channel.as_deref()).await,
        AlertCommand::Status { json } => status(config, *json),
    }
}

async fn test(config: &Settings, only: Option<&str>) -> u8 {
    let channels = &config.alert.channels;
    if channels.is_empty() {
        eprintln!(
            "error: no alert channels configured; add an [[alert.channel]] (see the README, section Alerts)"
        );
        return EXIT_USAGE;
    }
    let selected: Vec<_> = match only {
        Some(name) => match config.alert.channel(name) {
            Some(c) => vec![c],
            None => {
                let names: Vec<&str> = channels.iter().map(|c| c.name.as_str()).collect();
                eprintln!(
                    "error: no alert channel named {name:?}; configured: {}",
                    names.join(", ")
                );
                return EXIT_USAGE;
            }
        },
        None => channels.iter().collect(),
    };
    let now = unix(SystemTime::now());
    let mut failed = 0;
    for c in selected {
        match deliver::send_test(c, now).await {
            Ok(()) => println!("{} ({}): delivered", c.name, c.kind.as_str()),
            Err(e) => {
                failed += 1;
                println!("{} ({}): FAILED: {e}", c.name, c.kind.as_str());
            }
        }
    }
    if failed == 0 {
        EXIT_OK
    } else {
        EXIT_FAILURE
    }
}

fn status(config: &Settings, json: bool) -> u8 {
    let path = Store::new(&config.store).state_dir().join(STATE_FILE);
    let state = match std::fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice::<AlertState>(&bytes) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: alert state {} is corrupt: {e} (the next alerting run keeps it aside and starts afresh)", path.display());
                return EXIT_FAILURE;
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => AlertState::default(),
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return EXIT_FAILURE;
        }
    };
    if json {
        let open: Vec<_> = state
            .open()
            .map(|(key, r)| {
                serde_json::json!({
                    "key": key, "severity": r.severity, "summary": r.summary,
                    "since": rfc3339(r.since), "details": r.details,
                })
            })
            .collect();
        let queued: Vec<_> = state
            .queue
            .iter()
            .flat_map(|(ch, q)| {
                q.iter().map(move |d| {
                    serde_json::json!({
                        "channel": ch, "id": d.id, "attempts": d.attempts,
                        "next_attempt": rfc3339(d.next_at), "last_error": d.last_error,
                    })
                })
            })
            .collect();
        println!("{}", serde_json::json!({"open": open, "queued": queued}));
        return EXIT_OK;
    }
    let open: Vec<_> = state.open().collect();
    if open.is_empty() {
        println!("no open alerts");
    }
    for (key, r) in open {
        println!(
            "{:8} {}  (since {}, {key})",
            r.severity.as_str().to_uppercase(),
            r.summary,
            rfc3339(r.since)
        );
    }
    for (ch, q) in &state.queue {
        for d in q {
            println!(
                "queued for {ch}: {} (attempts {}, next {}{})",
                d.id,
                d.attempts,
                rfc3339(d.next_at),
                d.last_error
                    .as_deref()
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default()
            );
        }
    }
    EXIT_OK
}
