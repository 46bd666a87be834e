//! Crash consistency: `certkeep renew --force` on three lineages, killed with
//! SIGKILL at random moments, must never leave a lineage nginx cannot load.
//!
//! Slow (a few hundred runs), so ignored by default; CI runs it with
//! `cargo test --test crash -- --ignored`. `CRASH_TRIALS` sets the number of
//! kills (default 300).

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use certkeep::store::Store;
use common::{assert_exit, lineage, Bed, PebbleOptions};
use rand::Rng;

const NAMES: [&str; 3] = ["k1", "k2", "k3"];

#[derive(Default, Debug)]
struct Tally {
    trials: usize,
    /// The run finished before the kill came.
    finished: usize,
    killed: usize,
    /// Killed with temporary files on disk (a file or the new live dir half made).
    left_temps: usize,
    /// Killed with an archive version that has some but not all of its files.
    left_incomplete_version: usize,
    /// Killed with a complete archive version that live does not point at yet.
    left_unactivated_version: usize,
    /// Killed after at least one live link set had moved.
    live_moved: usize,
    /// Leftovers removed by calling `Store::recover` from the test.
    recovered_by_test: usize,
    /// Kills by the furthest phase any lineage had reached, read from the
    /// store after the kill (see `Phase`).
    phases: [usize; 4],
}

/// The furthest phase a killed run had reached, as the store shows it
/// compared with the store before that run.
#[derive(Clone, Copy)]
enum Phase {
    /// No new file yet: planning, ordering, validation, or the run only
    /// cleaned up an earlier run's leftovers.
    NothingWritten,
    /// New temporary files, or a new archive version with some of its files.
    WritingArchive,
    /// A new complete archive version that live does not point at yet.
    ArchiveWritten,
    /// At least one lineage's live links moved: the switch, nginx test and
    /// reload, saving state.
    LiveSwitched,
}

const PHASE_NAMES: [&str; 4] = [
    "no new file (planning, ordering, validation, cleanup)",
    "writing the archive (temp files or a partial version)",
    "new archive version complete, links not switched",
    "live links switched (switch, nginx test and reload, state)",
];

#[test]
#[ignore = "slow: 300 SIGKILLed renewals; run with --ignored"]
fn sigkill_at_random_moments_never_breaks_a_lineage() {
    let Some(bed) = Bed::start(PebbleOptions {
        nonce_reject: 0,
        authz_reuse: 0,
        eab: None,
    }) else {
        return;
    };
    let trials: usize = std::env::var("CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    lineage::issue_and_serve(&bed, &NAMES, &bed.base_config(), "confirm = false");
    let store = Store::new(&bed.store);

    // How long one whole run takes: kills are spread over that.
    let mut longest = Duration::ZERO;
    for _ in 0..3 {
        let t = Instant::now();
        assert_exit(&bed.certkeep(&["renew", "--force"]), 0);
        longest = longest.max(t.elapsed());
    }
    for n in NAMES {
        lineage::check(&bed.store, n).unwrap();
    }
    let span_ms = longest.as_millis() as u64;
    eprintln!(
        "one run of renew --force on {} lineages: up to {span_ms} ms",
        NAMES.len()
    );

    let mut rng = rand::rng();
    let mut tally = Tally::default();
    let mut broken = Vec::new();
    let start = Instant::now();
    for trial in 0..trials {
        tally.trials += 1;
        let before: Vec<_> = NAMES
            .iter()
            .map(|n| lineage::versions(&bed.store, n))
            .collect();
        let temps_before = lineage::temp_entries(&bed.store);
        let delay = Duration::from_millis(rng.random_range(0..=span_ms));
        let mut child = Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("--config")
            .arg(&bed.config)
            .args(["renew", "--force"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn certkeep");
        std::thread::sleep(delay);
        let killed = match child.try_wait().expect("try_wait") {
            Some(_) => {
                tally.finished += 1;
                false
            }
            None => {
                child.kill().expect("SIGKILL certkeep");
                tally.killed += 1;
                true
            }
        };
        child.wait().expect("reap certkeep");

        let temps = lineage::temp_entries(&bed.store);
        let after: Vec<_> = NAMES
            .iter()
            .map(|n| lineage::versions(&bed.store, n))
            .collect();
        if !temps.is_empty() {
            tally.left_temps += 1;
        }
        if after
            .iter()
            .any(|&(live, max, present)| max > live && present < 4)
        {
            tally.left_incomplete_version += 1;
        }
        if after
            .iter()
            .any(|&(live, max, present)| max > live && present == 4)
        {
            tally.left_unactivated_version += 1;
        }
        let moved = before.iter().zip(&after).any(|(b, a)| a.0 != b.0);
        if moved {
            tally.live_moved += 1;
        }
        if killed {
            // Compared with the store before this run: leftovers of an
            // earlier killed run do not count as this run's progress.
            let phase = if moved {
                Phase::LiveSwitched
            } else if before
                .iter()
                .zip(&after)
                .any(|(b, a)| a.1 > b.1 && a.2 == 4)
            {
                Phase::ArchiveWritten
            } else if temps.iter().any(|t| !temps_before.contains(t))
                || before
                    .iter()
                    .zip(&after)
                    .any(|(b, a)| a.1 > b.1 || (a.1 == b.1 && a.2 > b.2))
            {
                Phase::WritingArchive
            } else {
                Phase::NothingWritten
            };
            tally.phases[phase as usize] += 1;
        }
        for n in NAMES {
            if let Err(e) = lineage::check(&bed.store, n) {
                broken.push(format!("trial {trial} (kill after {delay:?}): {e}"));
            }
        }
        // Every other trial the test cleans up itself; otherwise the next
        // run's own recovery (which may be killed too) does.
        if trial % 2 == 1 {
            let removed = store.recover().expect("recover");
            if !removed.is_empty() {
                tally.recovered_by_test += 1;
            }
            let left = lineage::temp_entries(&bed.store);
            assert!(left.is_empty(), "trial {trial}: recover() left {left:?}");
            for n in NAMES {
                if let Err(e) = lineage::check(&bed.store, n) {
                    broken.push(format!("trial {trial} after recover(): {e}"));
                }
            }
        }
    }
    let took = start.elapsed();

    // The next run must succeed and leave everything clean and served.
    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 0);
    assert!(lineage::temp_entries(&bed.store).is_empty());
    for n in NAMES {
        lineage::check(&bed.store, n).unwrap();
    }
    eprintln!(
        "crash test: {} trials in {:.1} s",
        tally.trials,
        took.as_secs_f64()
    );
    eprintln!("  killed mid-way:                        {}", tally.killed);
    eprintln!(
        "  finished before the kill:              {}",
        tally.finished
    );
    eprintln!("  kills by phase reached:");
    for (name, n) in PHASE_NAMES.iter().zip(tally.phases) {
        eprintln!("    {name}: {n}");
    }
    eprintln!(
        "  left temp files:                       {}",
        tally.left_temps
    );
    eprintln!(
        "  left an incomplete archive version:    {}",
        tally.left_incomplete_version
    );
    eprintln!(
        "  left a complete version not yet live:  {}",
        tally.left_unactivated_version
    );
    eprintln!(
        "  live links had moved:                  {}",
        tally.live_moved
    );
    eprintln!(
        "  leftovers removed by recover() from the test: {} (of {} calls)",
        tally.recovered_by_test,
        tally.trials / 2
    );
    eprintln!("  broken lineages:                       {}", broken.len());
    assert!(broken.is_empty(), "broken lineages:\n{}", broken.join("\n"));
    assert!(
        tally.killed >= trials * 3 / 4,
        "most runs should be killed mid-way: {tally:?}"
    );
}
