#!/usr/bin/env bash
# What aws-lc's CPU jitter entropy source costs a process, the reason
# .cargo/config.toml builds aws-lc without it (AWS_LC_SYS_NO_JITTER_ENTROPY=1).
# Builds one tiny program against the aws-lc-rs version in Cargo.lock twice,
# with and without the jitter source, release profile, in its own target dir
# (a throwaway crate outside the workspace, from the local crate cache). The
# program makes one random draw (the first draw seeds aws-lc's generator, as
# every certkeep command that opens a TLS connection or makes a key does),
# or none with `none`. Runs the variants alternately RUNS times (default 41)
# under `perf stat -e task-clock` (CPU time of the process) and prints the
# medians. Not a test: a benchmark; run it by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-header.sh
. scripts/bench-header.sh
RUNS=${RUNS:-41}
W=${W:-/tmp/certkeep-bench-jitter}
bench_header "RUNS=$RUNS scripts/bench-jitter.sh"
ver=$(awk '/^name = "aws-lc-rs"/ {getline; gsub(/"/, "", $3); print $3; exit}' Cargo.lock)
echo "# aws-lc-rs $ver (aws-lc-sys $(awk '/^name = "aws-lc-sys"/ {getline; gsub(/"/, "", $3); print $3; exit}' Cargo.lock)), release profile"
mkdir -p "$W/src"
cat > "$W/Cargo.toml" <<TOML
[package]
name = "rng-start"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
aws-lc-rs = "=$ver"
[profile.release]
codegen-units = 4
[workspace]
TOML
cat > "$W/src/main.rs" <<'RS'
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
fn main() {
    if std::env::args().nth(1).as_deref() == Some("none") {
        return;
    }
    let mut buf = [0u8; 32];
    if SystemRandom::new().fill(&mut buf).is_err() {
        eprintln!("random draw failed");
        std::process::exit(1);
    }
    println!("{:02x}", buf[0]);
}
RS
for v in 0 1; do
  (cd "$W" && AWS_LC_SYS_NO_JITTER_ENTROPY=$v CARGO_TARGET_DIR="$W/target-$v" cargo build --release --offline --quiet)
done
jit=$W/target-0/release/rng-start; nojit=$W/target-1/release/rng-start
# The jitter library's symbols are in the first binary only.
echo "# jitter symbols: with $(nm "$jit" 2>/dev/null | grep -c " jent_" || true), without $(nm "$nojit" 2>/dev/null | grep -c " jent_" || true)"
cpu_ms() { perf stat -x, -e task-clock "$@" 2>&1 >/dev/null | awk -F, '/task-clock/ {print $1}'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A T
for _ in $(seq 1 "$RUNS"); do
  T[jit_draw]+="$(cpu_ms "$jit") "
  T[nojit_draw]+="$(cpu_ms "$nojit") "
  T[jit_none]+="$(cpu_ms "$jit" none) "
  T[nojit_none]+="$(cpu_ms "$nojit" none) "
done
echo
echo "raw CPU ms per run (task-clock), in run order:"
for k in jit_draw nojit_draw jit_none nojit_none; do echo "  $k: ${T[$k]}"; done
echo
printf 'CPU time of the whole process, median of %s alternating runs:\n' "$RUNS"
printf '  %-40s %8s ms\n' "with jitter entropy, one random draw" "$(echo "${T[jit_draw]}" | median)"
printf '  %-40s %8s ms\n' "without (certkeep's build), one draw" "$(echo "${T[nojit_draw]}" | median)"
printf '  %-40s %8s ms\n' "with jitter entropy, no draw" "$(echo "${T[jit_none]}" | median)"
printf '  %-40s %8s ms\n' "without, no draw" "$(echo "${T[nojit_none]}" | median)"
d=$(echo "$(echo "${T[jit_draw]}" | median) - $(echo "${T[nojit_draw]}" | median)" | bc -l)
printf 'first random draw with jitter entropy costs %.1f ms more CPU\n' "$d"
