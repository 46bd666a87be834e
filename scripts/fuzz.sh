#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time each:
#
#     scripts/fuzz.sh [seconds-per-target]     # default 60
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). libFuzzer needs nightly
# compiler flags; RUSTC_BOOTSTRAP=1 enables them on the stable toolchain.
# The sanitizer is off (`-s none`: the code under test is safe Rust, and the
# build is much faster); debug assertions are on (`-a`), so integer overflow
# panics. Seeds come from fuzz/seeds/<target>, the corpus grows in
# fuzz/corpus/<target>, crashes land in fuzz/artifacts/<target>. Copy a crash
# into fuzz/regressions/<target>/ once fixed: tests/it/fuzz_regressions.rs
# replays those on every `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none -a
status=0
for t in $(cargo fuzz list); do
    mkdir -p "fuzz/corpus/$t"
    dirs=("fuzz/corpus/$t")
    [ -d "fuzz/seeds/$t" ] && dirs+=("fuzz/seeds/$t")
    [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
    log="$(mktemp)"
    if cargo fuzz run -s none -a "$t" "${dirs[@]}" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1; then
        result=ok
    else
        result=CRASH
        status=1
        tail -40 "$log"
    fi
    done_line="$(grep -E '^Done [0-9]+ runs' "$log" | tail -1 || true)"
    cov="$(grep -E '#[0-9]+.*(DONE|pulse|NEW).*cov:' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+' || true)"
    echo "fuzz $t: $result; ${done_line:-no summary}; $cov"
    rm -f "$log"
done
exit "$status"
