#!/usr/bin/env bash
# One issuance (one name) against the same local Pebble (no validation sleep),
# certkeep vs `certbot certonly --webroot` vs `lego --http.webroot`, run
# alternately, RUNS times each (default 5), each with a fresh name so no
# authorization is reused. Prints median wall time, median peak RSS and the
# ratios. Accounts are registered in a warm-up run that is not counted.
# CK=path/to/certkeep uses a built binary (default: a release build).
# Keep the output: scripts/bench-issue.sh | tee docs/bench/issue-$(date +%F).txt
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-header.sh
. scripts/bench-header.sh
RUNS=${RUNS:-5}
bench_header "RUNS=$RUNS scripts/bench-issue.sh"
echo "# peers:    $(certbot --version 2>&1), $(lego --version 2>&1 | head -1)"
export TB=${TB:-/tmp/certkeep-bench-issue}
scripts/testbed.sh down >/dev/null 2>&1 || true
rm -rf "$TB"
eval "$(scripts/testbed.sh up)"
trap 'scripts/testbed.sh down >/dev/null 2>&1 || true' EXIT
if [ -z "${CK:-}" ]; then cargo build --release --locked --quiet; CK=$PWD/target/release/certkeep; fi
echo "# certkeep: $CK"
W=$TB/work; mkdir -p "$W"
export REQUESTS_CA_BUNDLE=$ACME_CA_BUNDLE LEGO_CA_CERTIFICATES=$ACME_CA_BUNDLE

cfg() { # config with certificates ck-<i>.test for i in 0..RUNS
  cat <<TOML
store = "$W/certkeep"
[acme]
directory = "$ACME_DIRECTORY"
ca_bundle = "$ACME_CA_BUNDLE"
[http01]
self_check_port = $HTTP_PORT
self_check_connect = "127.0.0.1"
TOML
  for i in $(seq 0 "$RUNS"); do printf '[[certificate]]\nname = "ck-%s"\ndomains = ["ck-%s.test"]\nwebroot = "%s"\n' "$i" "$i" "$WEBROOT"; done
}
cfg > "$W/certkeep.toml"

run_certkeep() { $CK --config "$W/certkeep.toml" issue "ck-$1" >/dev/null; }
run_certbot() {
  certbot certonly --webroot -w "$WEBROOT" -d "cb-$1.test" --server "$ACME_DIRECTORY" \
    --config-dir "$W/certbot" --work-dir "$W/certbot-work" --logs-dir "$W/certbot-logs" \
    --agree-tos --register-unsafely-without-email --non-interactive -q
}
run_lego() {
  lego --accept-tos --email bench@example.com --server "$ACME_DIRECTORY" --path "$W/lego" \
    --http --http.webroot "$WEBROOT" -d "lg-$1.test" run >/dev/null 2>&1
}
measure() { # tool i -> "seconds kilobytes"
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$W/rss" bash -c "$(declare -f "run_$1"); CK=$CK W=$W WEBROOT=$WEBROOT ACME_DIRECTORY=$ACME_DIRECTORY; run_$1 $2"
  end=$(date +%s.%N)
  echo "$(echo "$end - $start" | bc -l) $(cat "$W/rss")"
}
for t in certkeep certbot lego; do measure "$t" 0 >/dev/null; done   # warm-up: accounts
declare -A T R
for i in $(seq 1 "$RUNS"); do
  for t in certkeep certbot lego; do
    read -r s k < <(measure "$t" "$i")
    T[$t]+="$s "; R[$t]+="$k "
  done
done
printf '\nraw, in run order (wall s / peak RSS kB):\n'
for t in certkeep certbot lego; do printf '  %-9s %s\n  %-9s %s\n' "$t" "${T[$t]}" "" "${R[$t]}"; done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
printf '\nOne issuance, one name, median of %s (machine: %s cores, %s)\n' "$RUNS" "$(nproc)" "$(uname -m)"
printf '%-10s %12s %14s %16s %16s\n' tool "wall (s)" "peak RSS (MB)" "time vs certkeep" "RSS vs certkeep"
ck_t=$(echo "${T[certkeep]}" | median); ck_r=$(echo "${R[certkeep]}" | median)
for t in certkeep certbot lego; do
  mt=$(echo "${T[$t]}" | median); mr=$(echo "${R[$t]}" | median)
  printf '%-10s %12.3f %14.1f %15.1fx %15.1fx\n' "$t" "$mt" "$(echo "$mr/1024" | bc -l)" "$(echo "$mt/$ck_t" | bc -l)" "$(echo "$mr/$ck_r" | bc -l)"
done
