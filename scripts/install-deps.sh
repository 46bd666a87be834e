#!/usr/bin/env bash
# Installs, from Debian's packages, the real servers and peers that the tests,
# the demo and the benchmarks use:
#   nginx, pebble + pebble-challtestsrv (>= 2.5: it serves ARI renewalInfo),
#   sslscan (a peer for protocol verdicts), certbot and lego (benchmark peers),
#   openssl and curl (independent checks), python3 (its email package parses
#   alert mails as an independent MIME parser), python3-aiosmtpd (a strict
#   third-party SMTP server the alert mails are delivered to), systemd (systemd-analyze verify),
#   hyperfine, time and valgrind (benchmarks; valgrind's callgrind counts
#   instructions for scripts/bench-callgrind.sh), etcd-server and etcd-client (etcdctl) for
#   cluster mode's tests, protobuf-compiler and libprotobuf-dev (the etcd
#   client crate's build runs protoc on etcd's .proto files, which import
#   Google's well-known protos), prometheus (promtool: checks /metrics and
#   the shipped alert rules), prometheus-alertmanager (the Alertmanager
#   channel's peer), prometheus-blackbox-exporter (the fleet peer of
#   scripts/bench-probe.sh), chromium (headless, for the status page), lintian and
#   man-db (the Debian package's checks, scripts/test-package.sh).
# Debian 12's pebble is 2.4 (no ARI); Debian 13's 2.6 is fetched through the
# same Debian mirror this machine already uses. Idempotent; needs root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(nginx-light sslscan certbot lego curl openssl python3 python3-aiosmtpd systemd hyperfine time valgrind bc ca-certificates
  etcd-server etcd-client protobuf-compiler libprotobuf-dev prometheus prometheus-alertmanager prometheus-blackbox-exporter chromium
  lintian man-db)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! dpkg-query -W -f='${Version}' pebble 2>/dev/null | grep -qE '^2\.([5-9]|[1-9][0-9])'; then
  uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
  d=$(mktemp -d); mkdir -p "$d/lists/partial"
  echo "deb $uri trixie main" > "$d/src.list"
  o=(-o Dir::State::Lists="$d/lists" -o Dir::Etc::SourceList="$d/src.list" -o Dir::Etc::SourceParts=/dev/null)
  apt-get "${o[@]}" update -qq
  (cd "$d" && apt-get "${o[@]}" download pebble >/dev/null 2>&1)
  dpkg -i "$d"/pebble_*.deb >/dev/null
  rm -rf "$d"
fi
dpkg-query -W -f='${Package} ${Version}\n' pebble nginx-light sslscan certbot lego hyperfine etcd-server protobuf-compiler prometheus prometheus-alertmanager prometheus-blackbox-exporter chromium
