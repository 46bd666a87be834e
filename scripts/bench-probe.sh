#!/usr/bin/env bash
# Benchmark: `certkeep probe` against N SNI names on one loopback nginx, side
# by side with sslscan on a sample of the same names. Not a test: prints a
# table (markdown) to paste into docs/probe.md.
#
#   scripts/bench-probe.sh [N...]        default: 1 100 1000
#
# Needs nginx, sslscan, openssl (to make the benchmark's own certificate) and
# GNU time (/usr/bin/time, Debian package `time`). Builds certkeep --release.
# Every address is 127.0.0.1; nginx runs from a temp dir and is stopped on exit.
set -euo pipefail

SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1 100 1000)
SAMPLE=${SAMPLE:-10}
CONCURRENCY=${CONCURRENCY:-64}

for bin in nginx sslscan openssl /usr/bin/time; do
    command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || {
        echo "missing $bin (apt-get install nginx sslscan openssl time)" >&2
        exit 2
    }
done

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release --quiet)
certkeep=$target/release/certkeep

work=$(mktemp -d /tmp/certkeep-bench.XXXXXX)
chmod 755 "$work"
prefix=$work/nginx
mkdir -p "$prefix"/{logs,run,sites}
cleanup() {
    nginx -c "$prefix/nginx.conf" -p "$prefix" -s stop 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# One wildcard certificate from a private CA for every name.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=bench CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=bench" \
    -keyout "$work/leaf.key" -out "$work/leaf.csr" 2>/dev/null
printf 'subjectAltName=DNS:*.bench.test\n' >"$work/ext"
openssl x509 -req -in "$work/leaf.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -days 90 -extfile "$work/ext" -out "$work/leaf.pem" 2>/dev/null

max=0
for n in "${SIZES[@]}"; do [ "$n" -gt "$max" ] && max=$n; done
tls_port=$(free_port)
http_port=$(free_port)
for i in $(seq 1 "$max"); do
    cat >>"$prefix/sites/bench.conf" <<SITE
server {
  listen 127.0.0.1:$tls_port ssl;
  server_name h$i.bench.test;
  ssl_certificate $work/leaf.pem;
  ssl_certificate_key $work/leaf.key;
  ssl_protocols TLSv1.2 TLSv1.3;
  add_header Strict-Transport-Security "max-age=31536000" always;
  location / { return 200 "ok\n"; }
}
SITE
done
cat >"$prefix/nginx.conf" <<CONF
pid $prefix/run/nginx.pid;
error_log $prefix/logs/error.log warn;
worker_processes 2;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $prefix/run/body; proxy_temp_path $prefix/run/proxy;
  fastcgi_temp_path $prefix/run/fcgi; uwsgi_temp_path $prefix/run/uwsgi; scgi_temp_path $prefix/run/scgi;
  server_names_hash_max_size 8192;
  server {
    listen 127.0.0.1:$http_port default_server;
    location /.well-known/acme-challenge/ { root $work; }
    location / { return 301 https://\$host\$request_uri; }
  }
  include $prefix/sites/*.conf;
}
CONF
nginx -c "$prefix/nginx.conf" -p "$prefix"
for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$tls_port") 2>/dev/null && break
    sleep 0.05
done

# sslscan, protocol versions only (its fastest scan) and its default full scan,
# on a sample of names, one after another.
ms() { date +%s%N; }
sample=$(( SAMPLE < max ? SAMPLE : max ))
t0=$(ms)
for i in $(seq 1 "$sample"); do
    sslscan --no-colour --no-ciphersuites --no-compression --no-fallback --no-groups \
        --no-heartbleed --no-renegotiation --no-check-certificate \
        --sni-name="h$i.bench.test" "127.0.0.1:$tls_port" >/dev/null
done
sslscan_proto_ms=$(( ($(ms) - t0) / 1000000 ))
t0=$(ms)
for i in $(seq 1 "$sample"); do
    sslscan --no-colour --sni-name="h$i.bench.test" "127.0.0.1:$tls_port" >/dev/null
done
sslscan_full_ms=$(( ($(ms) - t0) / 1000000 ))
per_proto=$(echo "scale=1; $sslscan_proto_ms / $sample" | bc)
per_full=$(echo "scale=1; $sslscan_full_ms / $sample" | bc)

run_probe() { # n, http_port -> "wall_ms rss_kb exit"
    local n=$1 hp=$2 args=()
    for i in $(seq 1 "$n"); do args+=("h$i.bench.test:$tls_port"); done
    /usr/bin/time -v -o "$work/time.txt" "$certkeep" --config /nonexistent/certkeep.toml probe \
        --json --ca-file "$work/ca.pem" --connect 127.0.0.1 --http-port "$hp" \
        --concurrency "$CONCURRENCY" "${args[@]}" >"$work/out.json" || true
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
    # wall is m:ss.cc
    local msec
    msec=$(echo "$wall" | awk -F: '{ if (NF==3) print ($1*3600+$2*60+$3)*1000; else print ($1*60+$2)*1000 }')
    local bad
    bad=$(python3 -c "import json,sys; r=json.load(open('$work/out.json')); print(sum(1 for x in r if x['verdict']!='ok'))")
    echo "${msec%.*} $rss $bad"
}

echo "certkeep $("$certkeep" --version | awk '{print $2}'), $(sslscan --version 2>&1 | grep -o '[0-9]\+\.[0-9]\+\.[0-9]\+' | head -1 | sed 's/^/sslscan /'), $(nproc) cores, concurrency $CONCURRENCY, sslscan sample $sample names"
echo
echo "| N | certkeep full probe: wall | per host | peak RSS | not ok | certkeep without port-80 check: wall | per host | sslscan protocols only, per host | sslscan full scan, per host | ratio sslscan protocols / certkeep full, per host |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for n in "${SIZES[@]}"; do
    read -r full_ms full_rss full_bad < <(run_probe "$n" "$http_port")
    read -r tls_ms _ _ < <(run_probe "$n" 0)
    per=$(echo "scale=2; $full_ms / $n" | bc)
    per_tls=$(echo "scale=2; $tls_ms / $n" | bc)
    ratio=$(echo "scale=1; $per_proto / $per" | bc 2>/dev/null || echo "-")
    echo "| $n | ${full_ms} ms | ${per} ms | $((full_rss / 1024)) MiB | $full_bad | ${tls_ms} ms | ${per_tls} ms | ${per_proto} ms | ${per_full} ms | ${ratio}x |"
done

# One host, timed precisely (hyperfine, 50 runs each, alternating is not
# needed for a per-process measure): certkeep's full probe (protocols,
# certificate, HSTS) against sslscan's protocol-only scan of the same name.
if command -v hyperfine >/dev/null; then
    echo
    hyperfine -N --warmup 5 --runs 50 --export-json "$work/one.json" \
        "$certkeep --config /nonexistent/certkeep.toml probe --ca-file $work/ca.pem --connect 127.0.0.1 --http-port 0 h1.bench.test:$tls_port" \
        "sslscan --no-colour --no-ciphersuites --no-compression --no-fallback --no-groups --no-heartbleed --no-renegotiation --no-check-certificate --sni-name=h1.bench.test 127.0.0.1:$tls_port" \
        >/dev/null
    python3 - "$work/one.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
ck, ss = (x["median"] * 1000 for x in r)
print(f"one host, median of 50 (whole process): certkeep probe {ck:.1f} ms, sslscan protocols only {ss:.1f} ms, ratio {ss/ck:.1f}x")
PY
fi
