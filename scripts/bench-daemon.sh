#!/usr/bin/env bash
# The daemon with N endpoints configured (default 1000), all on one loopback
# nginx (one wildcard certificate from a throwaway CA): samples its RSS and
# CPU time while idle and across probe rounds (every 20 s), for ~50 s.
# Also prints the binary's size. Not a test.
# CK=path/to/certkeep uses a built binary (default: a release build).
# Keep the output: scripts/bench-daemon.sh | tee docs/bench/daemon-$(date +%F)-n1000.txt
set -euo pipefail
N=${1:-1000}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-header.sh
. "$root/scripts/bench-header.sh"
bench_header "scripts/bench-daemon.sh $N"
if [ -n "${CK:-}" ]; then ck=$CK; else
  (cd "$root" && cargo build --release --locked --quiet)
  ck=${CARGO_TARGET_DIR:-$root/target}/release/certkeep
fi
echo "# certkeep: $ck"
work=$(mktemp -d /tmp/certkeep-bench-daemon.XXXXXX); chmod 755 "$work"
p=$work/nginx; mkdir -p "$p"/{logs,run}
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; nginx -c "$p/nginx.conf" -p "$p" -s stop 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=bench CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=bench" -keyout "$work/leaf.key" -out "$work/leaf.csr" 2>/dev/null
printf 'subjectAltName=DNS:*.bench.test\n' > "$work/ext"
openssl x509 -req -in "$work/leaf.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 30 \
  -extfile "$work/ext" -out "$work/leaf.pem" 2>/dev/null
tls=$(port); metrics=$(port)
cat > "$p/nginx.conf" <<CONF
pid $p/run/nginx.pid;
error_log $p/logs/error.log warn;
worker_processes 2;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $p/run/body; proxy_temp_path $p/run/proxy;
  fastcgi_temp_path $p/run/fcgi; uwsgi_temp_path $p/run/uwsgi; scgi_temp_path $p/run/scgi;
  server {
    listen 127.0.0.1:$tls ssl; server_name *.bench.test;
    ssl_certificate $work/leaf.pem; ssl_certificate_key $work/leaf.key; ssl_protocols TLSv1.2 TLSv1.3;
    add_header Strict-Transport-Security "max-age=31536000" always;
    location / { return 200 "ok\n"; }
  }
}
CONF
nginx -c "$p/nginx.conf" -p "$p"
{
  printf 'store = "%s/store"\n[daemon]\nrenew_at_start = false\nrenew_schedule = "0 0 1 1 *"\nprobe_schedule = "*/20 * * * * *"\nmetrics_listen = "127.0.0.1:%s"\n' "$work" "$metrics"
  printf '[probe]\nca_file = "%s/ca.pem"\n[probe.policy.default]\nhttp_port = 0\n' "$work"
  for i in $(seq 1 "$N"); do printf '[[endpoint]]\nurl = "https://h%s.bench.test:%s"\nconnect = "127.0.0.1:%s"\n' "$i" "$tls" "$tls"; done
} > "$work/certkeep.toml"
"$ck" --config "$work/certkeep.toml" run --log-format plain -v 2> "$work/daemon.log" &
pid=$!
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
cpu() { awk '{print $14+$15}' "/proc/$pid/stat"; }   # clock ticks
hz=$(getconf CLK_TCK)
sleep 2
start_rss=$(rss); c0=$(cpu)
peak=0; samples=()
for _ in $(seq 1 96); do r=$(rss); samples+=("$r"); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.5; done
c1=$(cpu)
rounds=$(grep -c "probed" "$work/daemon.log" || true)
rounds=$(( rounds / N ))
# Idle after rounds: the lowest sample of the last 10 s (no round runs then
# for long: rounds take about a second).
end_rss=$(printf '%s\n' "${samples[@]: -20}" | sort -n | head -1)
echo "daemon with $N endpoints, probe every 20 s, sampled 48 s ($(nproc) cores)"
echo "  RSS before the first probe:  $((start_rss/1024)) MiB ($start_rss kB)"
echo "  RSS after $rounds probe rounds, idle: $((end_rss/1024)) MiB ($end_rss kB)"
echo "  peak RSS during rounds:      $((peak/1024)) MiB ($peak kB)"
echo "  CPU time over 48 s:          $(echo "scale=2; ($c1-$c0)/$hz" | bc) s for $rounds rounds of $N endpoints"
echo "  RSS samples (kB, every 0.5 s): ${samples[*]}"
echo "  binary:                      $(stat -c %s "$ck") bytes ($(( $(stat -c %s "$ck") / 1024 / 1024 )) MiB)"
