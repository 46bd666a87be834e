#!/usr/bin/env bash
# Sourced by the benchmark scripts: prints the header every kept output under
# docs/bench/ starts with (date, commit, machine, load at the start, command).
# The load average matters: on a shared machine, other work inflates wall
# times, which is why the scripts alternate certkeep and its peer and report
# ratios.
bench_header() {
  local commit dirty
  commit=$(git -C "$(dirname "${BASH_SOURCE[0]}")/.." rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  dirty=$(git -C "$(dirname "${BASH_SOURCE[0]}")/.." status --porcelain --untracked-files=no 2>/dev/null | head -1)
  echo "# date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# commit:   $commit${dirty:+ (with uncommitted changes)}"
  echo "# command:  $*"
  echo "# cpu:      $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) cores"
  echo "# memory:   $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); kernel $(uname -r) $(uname -m)"
  echo "# load:     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at the start"
}
