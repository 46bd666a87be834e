#!/usr/bin/env bash
# The test command: installs the real servers the tests talk to (when run as
# root), then formatting, lints and every test. Under CI=true a missing server
# fails the tests instead of skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then scripts/install-deps.sh; fi
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo build --locked --quiet
scripts/verify-units.sh "$PWD/target/debug/certkeep"
# Crash consistency: a few hundred SIGKILLed renewals (about 1-2 minutes).
cargo test --locked --test it crash:: -- --ignored
cargo test --all-targets --locked
