//! Replays every input in fuzz/regressions/<target>/ (inputs that once made
//! a fuzz target panic, kept after the fix) through the same entry points as
//! the cargo-fuzz targets, plus the seeds in fuzz/seeds/<target>/.

#[path = "../../fuzz/entries.rs"]
mod entries;

use std::path::Path;

#[test]
fn fuzz_regressions_and_seeds_do_not_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for (name, entry) in entries::TARGETS {
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
    }
    assert!(replayed > 0, "no inputs under {}", root.display());
}
