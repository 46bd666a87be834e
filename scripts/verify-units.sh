#!/usr/bin/env bash
# Checks the systemd units with `systemd-analyze verify` (works without
# systemd as PID 1). The units name /usr/local/bin/certkeep; the check runs on
# copies that point at the freshly built binary.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-$PWD/target/debug/certkeep}
[ -x "$bin" ] || cargo build --quiet
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
for f in systemd/*.service systemd/*.timer; do sed "s#/usr/local/bin/certkeep#$bin#" "$f" > "$d/$(basename "$f")"; done
systemd-analyze verify "$d"/*.service "$d"/*.timer
echo "systemd units: ok ($(ls systemd | wc -l) files)"
