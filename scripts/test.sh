#!/usr/bin/env bash
# The test command: installs the real servers the tests talk to (when run as
# root), then formatting, lints and every test. Under CI=true a missing server
# fails the tests instead of skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then scripts/install-deps.sh; fi

# Every server a test starts (nginx, Pebble, pebble-challtestsrv, certkeep
# daemons, Alertmanager, chromium) has its files, and so its command line or working directory, in a
# temp dir under TMPDIR. The tests get a TMPDIR of their own; after the run,
# any process still referring to it was left running by a test.
test_tmp=$(mktemp -d "${TMPDIR:-/tmp}/certkeep-tests.XXXXXX")
# nginx's workers run as nobody and must traverse it to the test webroots.
chmod 0755 "$test_tmp"
export TMPDIR=$test_tmp
leftovers() {
    local p cmd cwd
    for p in /proc/[0-9]*; do
        # A process may exit while this runs: its files vanish.
        cmd=$({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null) || continue
        cwd=$(readlink "$p/cwd" 2>/dev/null) || cwd=
        case "$cmd|$cwd" in
        *"$test_tmp"*) echo "  pid ${p#/proc/}: $cmd(cwd $cwd)" ;;
        esac
    done
}
count() { pgrep -c -f "$1" || true; }
servers() { echo "nginx masters $(count 'nginx: master'), pebble $(count '^pebble '), pebble-challtestsrv $(count '^pebble-challtestsrv'), certkeep $(count 'certkeep --config'), etcd $(count '^etcd '), alertmanager $(count '^prometheus-alertmanager '), chromium $(count '^chromium')"; }
echo "before the tests: $(servers)"
check_leftovers() {
    echo "after the tests: $(servers)"
    local left
    left=$(leftovers)
    if [ -n "$left" ]; then
        echo "FAIL: processes started by the tests are still running:"
        echo "$left"
        return 1
    fi
    rm -rf "$test_tmp"
    echo "no test servers left running"
}

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo build --locked --quiet
scripts/verify-units.sh "$PWD/target/debug/certkeep"
# `--all-targets` leaves out doctests: run them on their own.
cargo test --doc --locked
# The fuzz crate (its own workspace and lock file) must keep building; its
# seeds and regressions are replayed by tests/it/fuzz_regressions.rs.
(cd fuzz && CARGO_TARGET_DIR="$PWD/../target/fuzz-check" cargo check --locked --quiet)
# The tests run even when one fails, so the check for leftover servers
# runs after a failure too.
status=0
# Crash consistency: a few hundred SIGKILLed renewals (about 1-2 minutes).
cargo test --locked --test it crash:: -- --ignored || status=1
cargo test --all-targets --locked || status=1
check_leftovers || status=1
exit "$status"
