#!/usr/bin/env bash
# Benchmark: `certkeep probe` against N SNI names on one loopback nginx, side
# by side with Debian's prometheus-blackbox-exporter probing the same names
# through its /probe endpoint (one scrape at a time, and PARALLEL scrapes at
# once as a Prometheus server scraping many targets does), and with sslscan
# on a sample of the same names. Not a test: prints the machine, the load
# average before and after, and tables (markdown) with ratios (peer / certkeep)
# to keep under docs/bench/ and quote in docs/performance.md.
#
#   scripts/bench-probe.sh [N...]        default: 1 100 1000
#   CONCURRENCY=64 PARALLEL=64 SAMPLE=10 BB_SEQ_MAX=N scripts/bench-probe.sh 10000
#   CERTKEEP=path/to/certkeep scripts/bench-probe.sh 10000   (no build; e.g. an older binary)
#
# Needs nginx, sslscan, openssl (to make the benchmark's own certificate),
# prometheus-blackbox-exporter, python3 and GNU time (/usr/bin/time, Debian
# package `time`). Builds certkeep --release. Every address is 127.0.0.1;
# nginx and the exporter run from a temp dir and are stopped on exit.
set -euo pipefail

SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1 100 1000)
SAMPLE=${SAMPLE:-10}
CONCURRENCY=${CONCURRENCY:-64}
PARALLEL=${PARALLEL:-$CONCURRENCY}
BB_SEQ_MAX=${BB_SEQ_MAX:-100000}

for bin in nginx sslscan openssl /usr/bin/time prometheus-blackbox-exporter python3 bc; do
    command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || {
        echo "missing $bin (apt-get install nginx sslscan openssl time prometheus-blackbox-exporter python3 bc)" >&2
        exit 2
    }
done

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
if [ -n "${CERTKEEP:-}" ]; then
    certkeep=$CERTKEEP # a binary built already (say which build in the kept output)
else
    (cd "$root" && cargo build --release --locked --quiet)
    certkeep=$target/release/certkeep
fi

work=$(mktemp -d /tmp/certkeep-bench.XXXXXX)
chmod 755 "$work"
prefix=$work/nginx
mkdir -p "$prefix"/{logs,run,sites}
bb_pid=
cleanup() {
    [ -z "$bb_pid" ] || kill "$bb_pid" 2>/dev/null || true
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

run_probe() { # n, http_port -> "wall_ms rss_kb not_ok cpu_ms"
    local n=$1 hp=$2 args=()
    for i in $(seq 1 "$n"); do args+=("h$i.bench.test:$tls_port"); done
    /usr/bin/time -v -o "$work/time.txt" "$certkeep" --config /nonexistent/certkeep.toml probe \
        --json --ca-file "$work/ca.pem" --connect 127.0.0.1 --http-port "$hp" \
        --concurrency "$CONCURRENCY" "${args[@]}" >"$work/out.json" || true
    local wall rss cpu
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
    cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%d", s * 1000}' "$work/time.txt")
    # wall is m:ss.cc
    local msec
    msec=$(echo "$wall" | awk -F: '{ if (NF==3) print ($1*3600+$2*60+$3)*1000; else print ($1*60+$2)*1000 }')
    local bad
    bad=$(python3 -c "import json,sys; r=json.load(open('$work/out.json')); assert len(r)==$n, len(r); print(sum(1 for x in r if x['verdict']!='ok'))")
    echo "${msec%.*} $rss $bad $cpu"
}

# blackbox_exporter: an HTTPS GET per probe (one TLS handshake, the chain
# checked against the bench CA, expiry, TLS version), the name given by the
# `hostname` parameter (Host header and SNI) as Prometheus relabelling does.
cat >"$work/blackbox.yml" <<BB
modules:
  https_bench:
    prober: http
    timeout: 10s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
      tls_config:
        ca_file: $work/ca.pem
BB
cat >"$work/scrape.py" <<'PY'
# Scrapes blackbox_exporter's /probe for names h1..hN, `parallel` at a time,
# each worker on its own keep-alive connection (as Prometheus keeps one per
# target); prints "wall_ms failed".
import http.client, sys, threading, time
port, tls_port, n, parallel = (int(a) for a in sys.argv[1:5])
lock = threading.Lock()
nxt = [1]
failed = [0]
def worker():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while True:
        with lock:
            i = nxt[0]
            if i > n:
                return
            nxt[0] += 1
        url = (f"/probe?module=https_bench&target=https://127.0.0.1:{tls_port}/"
               f"&hostname=h{i}.bench.test")
        c.request("GET", url, headers={"X-Prometheus-Scrape-Timeout-Seconds": "10"})
        body = c.getresponse().read().decode()
        ok = any(l.strip() == "probe_success 1" for l in body.splitlines())
        if not ok:
            with lock:
                failed[0] += 1
t0 = time.monotonic()
ts = [threading.Thread(target=worker) for _ in range(min(parallel, n))]
for t in ts: t.start()
for t in ts: t.join()
print(int((time.monotonic() - t0) * 1000), failed[0])
PY
run_blackbox() { # n, parallel -> "wall_ms rss_kb failed cpu_ms" (a fresh exporter each run)
    local n=$1 par=$2 port
    port=$(free_port)
    prometheus-blackbox-exporter --config.file="$work/blackbox.yml" \
        --web.listen-address="127.0.0.1:$port" --log.level=error >"$work/bb.log" 2>&1 &
    bb_pid=$!
    for _ in $(seq 1 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
        sleep 0.05
    done
    local res
    res=$(python3 "$work/scrape.py" "$port" "$tls_port" "$n" "$par")
    local rss cpu tck
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$bb_pid/status")
    tck=$(getconf CLK_TCK)
    cpu=$(awk -v t="$tck" '{printf "%d", ($14 + $15) * 1000 / t}' "/proc/$bb_pid/stat")
    kill "$bb_pid"; wait "$bb_pid" 2>/dev/null || true; bb_pid=
    read -r wall failed <<<"$res"
    echo "$wall $rss $failed $cpu"
}

ratio() { echo "scale=2; $1 / $2" | bc 2>/dev/null || echo "-"; }

echo "# scripts/bench-probe.sh ${SIZES[*]}: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo), kernel $(uname -r)"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine: other builds and tests run beside this)"
echo "# certkeep $("$certkeep" --version | awk '{print $2}') ($certkeep), concurrency $CONCURRENCY; $(prometheus-blackbox-exporter --version 2>&1 | head -1 | awk '{print "blackbox_exporter", $3}'), $PARALLEL scrapes at once in the parallel runs; $(sslscan --version 2>&1 | grep -o '[0-9]\+\.[0-9]\+\.[0-9]\+' | head -1 | sed 's/^/sslscan /'), sample $sample names"
echo
echo "| N | certkeep full probe: wall | per host | peak RSS | CPU | not ok | certkeep without port-80 check: wall | per host | sslscan protocols only, per host | sslscan full scan, per host | ratio sslscan protocols / certkeep full, per host |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
declare -A CK_MS CK_RSS CK_CPU
for n in "${SIZES[@]}"; do
    read -r full_ms full_rss full_bad full_cpu < <(run_probe "$n" "$http_port")
    read -r tls_ms tls_rss _ tls_cpu < <(run_probe "$n" 0)
    CK_MS[$n]=$tls_ms CK_RSS[$n]=$tls_rss CK_CPU[$n]=$tls_cpu
    per=$(echo "scale=2; $full_ms / $n" | bc)
    per_tls=$(echo "scale=2; $tls_ms / $n" | bc)
    r=$(ratio "$per_proto" "$per")
    echo "| $n | ${full_ms} ms | ${per} ms | $((full_rss / 1024)) MiB | ${full_cpu} ms | $full_bad | ${tls_ms} ms | ${per_tls} ms | ${per_proto} ms | ${per_full} ms | ${r}x |"
done

echo
echo "blackbox_exporter /probe (HTTPS GET, one TLS handshake per name) against certkeep's probe without the port-80 check (four TLS versions, chain, HSTS; the row above). The exporter's RSS is its VmHWM, its CPU its own (the scraping client's is not counted). Ratios are blackbox / certkeep."
echo
echo "| N | mode | blackbox wall | per host | peak RSS | CPU | failed | certkeep wall | certkeep peak RSS | certkeep CPU | wall ratio | RSS ratio | CPU ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for n in "${SIZES[@]}"; do
    for mode in sequential parallel; do
        if [ "$mode" = sequential ]; then
            par=1
            [ "$n" -le "$BB_SEQ_MAX" ] || continue
        else
            par=$PARALLEL
        fi
        read -r bw brss bfail bcpu < <(run_blackbox "$n" "$par")
        echo "| $n | $mode ($par at once) | ${bw} ms | $(echo "scale=2; $bw / $n" | bc) ms | $((brss / 1024)) MiB | ${bcpu} ms | $bfail | ${CK_MS[$n]} ms | $((CK_RSS[$n] / 1024)) MiB | ${CK_CPU[$n]} ms | $(ratio "$bw" "${CK_MS[$n]}")x | $(ratio "$brss" "${CK_RSS[$n]}")x | $(ratio "$bcpu" "$((CK_CPU[$n] > 0 ? CK_CPU[$n] : 1))")x |"
    done
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
echo
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
