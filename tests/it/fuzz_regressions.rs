//! Replays every input in fuzz/regressions/<target>/ (inputs that once made
//! a fuzz target panic, kept after the fix) through the same entry points as
//! the cargo-fuzz targets, plus the seeds in fuzz/seeds/<target>/.

#[path = "../../fuzz/entries.rs"]
mod entries;

use std::path::Path;

#[test]
fn fuzz_regressions_and_seeds_do_not_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    // Every cargo-fuzz target has an entry here, so none goes unreplayed.
    let mut targets: Vec<String> = std::fs::read_dir(root.join("fuzz_targets"))
        .expect("read fuzz/fuzz_targets")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    targets.sort();
    let mut known: Vec<String> = entries::TARGETS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    known.sort();
    assert_eq!(
        targets, known,
        "fuzz/fuzz_targets vs fuzz/entries.rs TARGETS"
    );
    let mut replayed = 0;
    for (name, entry) in entries::TARGETS {
        let before = replayed;
        for dir in ["regressions", "seeds"] {
            let Ok(rd) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            for e in rd.flatten() {
                let data = std::fs::read(e.path()).expect("read input");
                let r = std::panic::catch_unwind(|| entry(&data));
                assert!(r.is_ok(), "{name}: {} panics", e.path().display());
                replayed += 1;
            }
        }
        assert!(replayed > before, "{name}: no seed or regression input");
    }
    assert!(replayed > 0, "no inputs under {}", root.display());
}
