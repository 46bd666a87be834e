#!/usr/bin/env bash
# `renew` with nothing due over N lineages (default: 1 200 1000), certkeep vs
# `certbot renew`, alternating, RUNS times each (default 5); prints medians and
# the ratio. Both stores are built from one real issuance against the local
# Pebble, cloned N times under new names (certbot: renewal/*.conf, live/,
# archive/; certkeep: live/, archive/ and a [[certificate]] per lineage).
# certkeep's ARI windows are fetched once in a warm-up run (as on any host
# after the first run) and then honoured until the CA's Retry-After.
#
# CK=path/to/certkeep uses a built binary (default: a release build).
# CALLGRIND=1 also counts, with valgrind's callgrind, the instructions of one
# certkeep `renew` with nothing due at each size (see scripts/bench-callgrind.sh).
# Keep the output: scripts/bench-renew.sh | tee docs/bench/renew-$(date +%F).txt
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-header.sh
. scripts/bench-header.sh
RUNS=${RUNS:-5}
SIZES=${SIZES:-1 200 1000}
CALLGRIND=${CALLGRIND:-0}
bench_header "RUNS=$RUNS SIZES='$SIZES' CALLGRIND=$CALLGRIND scripts/bench-renew.sh"
echo "# peer:     $(certbot --version 2>&1)"
export TB=${TB:-/tmp/certkeep-bench-renew}
scripts/testbed.sh down >/dev/null 2>&1 || true
rm -rf "$TB"
eval "$(scripts/testbed.sh up)"
trap 'scripts/testbed.sh down >/dev/null 2>&1 || true' EXIT
if [ -z "${CK:-}" ]; then cargo build --release --locked --quiet; CK=$PWD/target/release/certkeep; fi
echo "# certkeep: $CK"
export REQUESTS_CA_BUNDLE=$ACME_CA_BUNDLE
B=$TB/bench; mkdir -p "$B"

# One real lineage each.
certbot certonly --webroot -w "$WEBROOT" -d base.test --cert-name base --server "$ACME_DIRECTORY" \
  --config-dir "$B/certbot" --work-dir "$B/certbot-work" --logs-dir "$B/certbot-logs" \
  --agree-tos --register-unsafely-without-email --non-interactive -q
head_cfg() { cat <<TOML
store = "$1"
[acme]
directory = "$ACME_DIRECTORY"
ca_bundle = "$ACME_CA_BUNDLE"
[http01]
self_check_port = $HTTP_PORT
self_check_connect = "127.0.0.1"
[renewal]
ari_concurrency = 32
TOML
}
{ head_cfg "$B/certkeep"; printf '[[certificate]]\nname = "base"\ndomains = ["base.test"]\nwebroot = "%s"\nconfirm = false\n' "$WEBROOT"; } > "$B/base.toml"
$CK --config "$B/base.toml" issue base >/dev/null

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
timeit() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc -l; }

raw=""; cg=""
printf '\nrenew with nothing due, median of %s runs (machine: %s cores)\n' "$RUNS" "$(nproc)"
printf '%10s %14s %14s %10s\n' lineages "certkeep (s)" "certbot (s)" ratio
for n in $SIZES; do
  cb=$B/cb-$n; ck=$B/ck-$n
  rm -rf "$cb" "$ck"; mkdir -p "$cb"/{renewal,live,archive} "$ck"/{live,archive}
  cp -r "$B/certbot/accounts" "$cb/"
  { head_cfg "$ck"; } > "$ck.toml"
  for i in $(seq 1 "$n"); do
    name=l$i
    cp -r "$B/certbot/archive/base" "$cb/archive/$name"
    mkdir "$cb/live/$name"
    for f in cert chain fullchain privkey; do ln -s "../../archive/$name/${f}1.pem" "$cb/live/$name/$f.pem"; done
    sed -e "s#/base#/$name#g" -e "s#$B/certbot#$cb#g" "$B/certbot/renewal/base.conf" > "$cb/renewal/$name.conf"
    cp -r "$B/certkeep/archive/base" "$ck/archive/$name"
    mkdir "$ck/live/$name"
    for f in cert chain fullchain privkey; do ln -s "../../archive/$name/${f}1.pem" "$ck/live/$name/$f.pem"; done
    printf '[[certificate]]\nname = "%s"\ndomains = ["base.test"]\nwebroot = "%s"\nconfirm = false\n' "$name" "$WEBROOT" >> "$ck.toml"
  done
  $CK --config "$ck.toml" renew >/dev/null   # warm-up: ARI windows
  tk=""; tc=""
  for _ in $(seq 1 "$RUNS"); do
    tk+="$(timeit "$CK" --config "$ck.toml" renew) "
    tc+="$(timeit certbot renew --no-random-sleep-on-renew --config-dir "$cb" --work-dir "$B/certbot-work" --logs-dir "$B/certbot-logs" -q) "
  done
  mk=$(echo "$tk" | median); mc=$(echo "$tc" | median)
  raw+="  $n lineages: certkeep $tk"$'\n'"  $n lineages: certbot  $tc"$'\n'
  printf '%10s %14.4f %14.3f %9.0fx\n' "$n" "$mk" "$mc" "$(echo "$mc/$mk" | bc -l)"
  if [ "$CALLGRIND" = 1 ]; then
    # Nothing is due and the ARI windows are cached: no network, so the count
    # is the planning work alone (start-up, config, reading the store).
    valgrind --tool=callgrind --callgrind-out-file="$B/callgrind-$n.out" "$CK" --config "$ck.toml" renew >/dev/null 2>"$B/callgrind-$n.log" ||
      { cat "$B/callgrind-$n.log" >&2; exit 1; }
    ir=$(awk '/^summary:|^totals:/ {print $2; exit}' "$B/callgrind-$n.out")
    cg+="$(printf '%10s %16s' "$n" "$ir")"$'\n'
  fi
done
printf '\nraw wall times (s), in run order:\n%s' "$raw"
if [ "$CALLGRIND" = 1 ]; then
  printf '\ncallgrind, one certkeep renew with nothing due (%s)\n%10s %16s\n%s' "$(valgrind --version)" lineages instructions "$cg"
fi
