#!/usr/bin/env bash
# Instructions (valgrind's callgrind) of one certkeep `renew` with nothing due,
# over 1 and 1000 lineages (SIZES), on the store scripts/bench-renew.sh builds
# (clones of one real lineage from the local Pebble, ARI windows cached by a
# warm-up run, so no network). A count of instructions does not depend on the
# machine's load as wall time does. Runs bench-renew.sh with CALLGRIND=1 and
# one timed run per size (RUNS). Needs valgrind (scripts/install-deps.sh).
# Not run in CI. Keep the output:
#   scripts/bench-callgrind.sh | tee docs/bench/callgrind-renew-$(date +%F).txt
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is missing: run scripts/install-deps.sh as root" >&2; exit 1; }
exec env CALLGRIND=1 SIZES="${SIZES:-1 1000}" RUNS="${RUNS:-1}" scripts/bench-renew.sh
