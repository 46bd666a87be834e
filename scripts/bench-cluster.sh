#!/usr/bin/env bash
# Cluster-mode benchmark (not a test), loopback only, on one 3-member etcd.
# Two parts (PARTS="nodes scale" by default):
#
# nodes: the real 3-node bed, as in scripts/demo-cluster.sh: Pebble, three
#   nginx nodes behind a round-robin nginx on the port Pebble validates
#   against, one `certkeep run` per node. The nodes order one lineage, then
#   renew it R times (it falls due DUE s after each issuance). Reports, per
#   renewal: the time from the new version in etcd (seen by an etcdctl
#   watch) to all three nginx serving it (each checked over TLS with
#   openssl s_client, verified against Pebble's root); etcd's requests and
#   bytes per renewal (its /metrics, summed over the members, minus the
#   idle rate measured before); each daemon's RSS.
#
# scale: N agents sharing M lineages. Each agent is a real `certkeep run`
#   daemon in cluster mode with its own empty store, deploying by hook only
#   (`[nginx] reload = false`, no nginx, no CA: nothing is due). The
#   lineages are made locally (openssl: one bench CA, an ECDSA P-256 leaf
#   per lineage; kept between runs in $B-seed-M) and uploaded with
#   `certkeep cluster init`. Reports the upload, the convergence time
#   (agents started -> every agent reported every lineage, counted with
#   count-only reads), etcd's load over that window and over an idle
#   window, each agent's RSS, lease losses and session restarts.
#
#   scripts/bench-cluster.sh                          both parts, N=10 M=100 R=3
#   N=50 M=1000 PARTS=scale scripts/bench-cluster.sh  the full simulation
#   CK=target/debug/certkeep ...                      use a built binary (else: release build)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10}; M=${M:-100}; IDLE=${IDLE:-20}; R=${R:-3}; DUE=${DUE:-45}
PARTS=${PARTS:-nodes scale}
B=${B:-/tmp/certkeep-bench-cluster}
SEED=${SEED:-$B-seed-$M}
ETCD_CLIENT=23990; ETCD_PEER=24000; NODE_HTTP=25201; NODE_TLS=25601
PREFIX=/certkeep/bench
NODES=(a b c)
if [ -z "${CK:-}" ]; then cargo build --release --locked --quiet; CK=$PWD/target/release/certkeep; fi
export TB=$B/testbed ACME_PORT=14300 MGMT_PORT=15300 DNS_PORT=8353 HTTP_PORT=5402
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop_agents() {
  for f in "$B"/run/agent-*.pid "$B"/run/node-*.pid "$B"/run/watch.pid; do
    [ -f "$f" ] && pid_alive "$f" && kill "$(cat "$f")" 2>/dev/null || true
  done
  for f in "$B"/run/agent-*.pid "$B"/run/node-*.pid; do
    [ -f "$f" ] || continue
    for _ in $(seq 50); do pid_alive "$f" || break; sleep 0.2; done
    pid_alive "$f" && kill -9 "$(cat "$f")" 2>/dev/null || true
  done
  return 0
}
stop_all() {
  stop_agents
  for n in "${NODES[@]}"; do
    pid_alive "$B/node-$n/nginx/nginx.pid" &&
      nginx -s quit -c "$B/node-$n/nginx/nginx.conf" -p "$B/node-$n/nginx" 2>/dev/null || true
  done
  for f in "$B"/run/etcd-*.pid; do [ -f "$f" ] && pid_alive "$f" && kill "$(cat "$f")" 2>/dev/null || true; done
  for f in "$B"/run/etcd-*.pid; do
    [ -f "$f" ] || continue
    for _ in $(seq 50); do pid_alive "$f" || break; sleep 0.2; done
    pid_alive "$f" && kill -9 "$(cat "$f")" 2>/dev/null || true
  done
  [ -d "$TB" ] && scripts/testbed.sh down
  return 0
}
stop_all 2>/dev/null || true
rm -rf "$B"; mkdir -p "$B/run"; chmod 755 "$B"
trap stop_all EXIT
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

echo "# certkeep cluster benchmark (PARTS=\"$PARTS\"), 3-member etcd, loopback"
echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(load), $(etcd --version | head -1)"
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo), kernel $(uname -r)"
echo "# N=$N M=$M IDLE=$IDLE R=$R DUE=$DUE $0 (certkeep: $CK, $(file -b "$CK" | grep -o 'not stripped\|stripped' | head -1); $(git describe --always --dirty 2>/dev/null))"

cluster=""; endpoints=()
for i in 0 1 2; do
  cluster+="${cluster:+,}m$i=http://127.0.0.1:$((ETCD_PEER+i))"
  endpoints+=("http://127.0.0.1:$((ETCD_CLIENT+i))")
done
for i in 0 1 2; do
  mkdir -p -m 700 "$B/etcd/m$i"
  etcd --name "m$i" --data-dir "$B/etcd/m$i" \
    --listen-client-urls "${endpoints[$i]}" --advertise-client-urls "${endpoints[$i]}" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PEER+i))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PEER+i))" \
    --initial-cluster "$cluster" --initial-cluster-state new \
    --initial-cluster-token "certkeep-bench-$$" >"$B/run/etcd-m$i.log" 2>&1 &
  echo $! > "$B/run/etcd-m$i.pid"
done
ENDPOINTS=$(IFS=,; echo "${endpoints[*]}")
ctl() { ETCDCTL_API=3 etcdctl --endpoints="$ENDPOINTS" --command-timeout=30s "$@"; }
for _ in $(seq 150); do ctl endpoint health >/dev/null 2>&1 && break; sleep 0.2; done

# etcd's counters summed over the three members: puts and ranges applied
# (each write is applied by all three members, so puts count it three
# times), finished unary gRPC calls, stream messages received (keep-alives,
# watch requests), client bytes in and out.
metrics() {
  for e in "${endpoints[@]}"; do curl -s "$e/metrics"; done | awk '
    /^etcd_debugging_mvcc_put_total / { put += $2 }
    /^etcd_debugging_mvcc_range_total / { range += $2 }
    /^etcd_network_client_grpc_received_bytes_total / { rx += $2 }
    /^etcd_network_client_grpc_sent_bytes_total / { tx += $2 }
    /^grpc_server_handled_total/ { req += $2 }
    /^grpc_server_msg_received_total/ && /grpc_type="bidi_stream"/ { msg += $2 }
    END { printf "%d %d %d %d %d %d\n", put, range, req, msg, rx, tx }'
}
delta() {
  read -r p0 r0 q0 s0 x0 t0 <<<"$1"; read -r p1 r1 q1 s1 x1 t1 <<<"$2"
  echo "puts $((p1-p0)) (writes x3), ranges $((r1-r0)), unary gRPC calls $((q1-q0)), stream messages in $((s1-s0)), bytes received $((x1-x0)), bytes sent $((t1-t0))"
}
# Unary calls per gRPC method, summed over the members.
methods() {
  for e in "${endpoints[@]}"; do curl -s "$e/metrics"; done | awk '
    /^grpc_server_handled_total/ { match($0, /grpc_method="[^"]*"/); m = substr($0, RSTART + 13, RLENGTH - 14); n[m] += $2 }
    END { for (m in n) print m, n[m] }' | sort
}
method_delta() { join -a2 -e 0 -o 0,1.2,2.2 <(echo "$1") <(echo "$2") | awk '$3 - $2 > 0 { printf "%s %d, ", $1, $3 - $2 }' | sed 's/, $//'; }
rss_of() { awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { printf "%d/%d", r / 1024, h / 1024 }' "/proc/$1/status" 2>/dev/null; }
endpoints_toml=$(printf '"%s", ' "${endpoints[@]}" | sed 's/, $//')
head -c 32 /dev/urandom > "$B/cluster.key"; chmod 600 "$B/cluster.key"

# ---------------------------------------------------------------------------
if [[ " $PARTS " == *" nodes "* ]]; then
echo
echo "## nodes: 3 nginx nodes, Pebble, one lineage renewed $R times (due $DUE s after each issuance)"
eval "$(scripts/testbed.sh up)"
upstreams=""
for i in 0 1 2; do upstreams+="server 127.0.0.1:$((NODE_HTTP+i)); "; done
cat > "$NGINX_SITES/balancer.conf" <<NGX
upstream bench_nodes { $upstreams}
server {
  listen 127.0.0.1:$HTTP_PORT;
  server_name .test;
  location / { proxy_pass http://bench_nodes; proxy_set_header Host \$http_host; proxy_next_upstream off; }
}
NGX
nginx -t -q -c "$NGINX_CONF" -p "$NGINX_PREFIX" && nginx -s reload -c "$NGINX_CONF" -p "$NGINX_PREFIX"
# Pebble's certificates live 5 years; this fraction makes each due DUE s after its notBefore.
due=$(awk -v d="$DUE" 'BEGIN { printf "%.15f", 1 - d / 157766400 }')
for i in 0 1 2; do
  n=${NODES[$i]}; d=$B/node-$n
  mkdir -p "$d"/{webroot,store,nginx/logs,nginx/sites}
  chmod 755 "$d" "$d/webroot"
  cat > "$d/nginx/nginx.conf" <<NGX
pid $d/nginx/nginx.pid;
error_log $d/nginx/logs/error.log notice;
worker_processes 1;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $d/nginx/body; proxy_temp_path $d/nginx/proxy;
  fastcgi_temp_path $d/nginx/fcgi; uwsgi_temp_path $d/nginx/uwsgi; scgi_temp_path $d/nginx/scgi;
  server {
    listen 127.0.0.1:$((NODE_HTTP+i)) default_server;
    location /.well-known/acme-challenge/ { root $d/webroot; default_type text/plain; }
    location / { return 301 https://\$host\$request_uri; }
  }
  include $d/nginx/sites/*.conf;
}
NGX
  nginx -c "$d/nginx/nginx.conf" -p "$d/nginx"
  cat > "$d/certkeep.toml" <<TOML
store = "$d/store"
[acme]
directory = "$ACME_DIRECTORY"
ca_bundle = "$ACME_CA_BUNDLE"
[http01]
self_check_port = $((NODE_HTTP+i))
self_check_connect = "127.0.0.1"
[nginx]
test_command = ["nginx", "-t", "-q", "-c", "$d/nginx/nginx.conf", "-p", "$d/nginx"]
reload_command = ["nginx", "-s", "reload", "-c", "$d/nginx/nginx.conf", "-p", "$d/nginx"]
[renewal]
ari = false                    # renewals timed by renew_before (Pebble's ARI window is days)
[daemon]
renew_schedule = "*/2 * * * * *"
[[certificate]]
name = "bench.test"
domains = ["bench.test", "www.bench.test"]
webroot = "$d/webroot"
confirm = false
renew_before = $due
[cluster]
endpoints = [$endpoints_toml]
prefix = "$PREFIX/nodes"
node = "$n"
encryption_key_file = "$B/cluster.key"
TOML
done
$CK --config "$B/node-a/certkeep.toml" cluster init >/dev/null
KEY=$PREFIX/nodes/v1/lineage/bench.test/current
# The watcher: each new version of the lineage, timestamped on arrival.
# (etcdctl's own pid is kept: when it stops, the loop ends with it.)
{ ETCDCTL_API=3 etcdctl --endpoints="$ENDPOINTS" watch "$KEY" & echo $! > "$B/run/watch.pid"; wait; } |
  while IFS= read -r line; do
    case $line in '{'*) echo "$(now) $(echo "$line" | sed -n 's/.*"serial":"\([0-9a-f]*\)".*/\1/p')" ;; esac
  done >> "$B/run/versions" &
touch "$B/run/versions"
for n in "${NODES[@]}"; do
  $CK --config "$B/node-$n/certkeep.toml" run --log-format plain >"$B/run/node-$n.log" 2>&1 &
  echo $! > "$B/run/node-$n.pid"
done
for _ in $(seq 600); do [ -s "$B/run/versions" ] && break; sleep 0.1; done
for _ in $(seq 300); do
  [ "$(ctl get --prefix --print-value-only "$PREFIX/nodes/v1/deploy/" | grep -c '"ok":true')" = 3 ] && break; sleep 0.2
done
for i in 0 1 2; do
  n=${NODES[$i]}; d=$B/node-$n
  cat > "$d/nginx/sites/bench.conf" <<NGX
server {
  listen 127.0.0.1:$((NODE_TLS+i)) ssl;
  server_name bench.test www.bench.test;
  ssl_certificate     $d/store/live/bench.test/fullchain.pem;
  ssl_certificate_key $d/store/live/bench.test/privkey.pem;
  location / { return 200 "node $n\n"; }
}
NGX
  nginx -t -q -c "$d/nginx/nginx.conf" -p "$d/nginx" && nginx -s reload -c "$d/nginx/nginx.conf" -p "$d/nginx"
done
# The serial node i's nginx serves, over TLS, verified against Pebble's root.
served() {
  openssl s_client -connect "127.0.0.1:$((NODE_TLS+$1))" -servername bench.test -CAfile "$ISSUER_ROOT" \
    -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null |
    cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/^0*//'
}
sleep 1
first=$(tail -1 "$B/run/versions" | cut -d' ' -f2 | sed 's/^0*//')
echo "first issuance: serial $first; nodes serve: $(served 0) $(served 1) $(served 2); load average $(load)"
m0=$(metrics); q0=$(methods); sleep 10; m1=$(metrics); q1=$(methods)
echo "etcd over 10 s idle with 3 nodes: $(delta "$m0" "$m1")"
read -r _ _ a0 b0 _ c0 <<<"$m0"; read -r _ _ a1 b1 _ c1 <<<"$m1"
idle_q=$((a1 - a0)); idle_s=$((b1 - b0)); idle_t=$((c1 - c0))
seen=$(wc -l < "$B/run/versions")
summary=""
for r in $(seq 1 "$R"); do
  mstart=$(metrics); qstart=$(methods); tstart=$(now)
  for _ in $(seq $(( (DUE + 120) * 10 ))); do [ "$(wc -l < "$B/run/versions")" -gt "$seen" ] && break; sleep 0.1; done
  seen=$(wc -l < "$B/run/versions")
  read -r t_etcd serial <<<"$(tail -1 "$B/run/versions")"
  want=$(echo "$serial" | sed 's/^0*//')
  done_at=""; polls=0
  while [ "$polls" -lt 600 ]; do
    polls=$((polls + 1))
    a=$(served 0); b=$(served 1); c=$(served 2)
    if [ "$a" = "$want" ] && [ "$b" = "$want" ] && [ "$c" = "$want" ]; then done_at=$(now); break; fi
  done
  sleep 2  # the deploy reports land
  mend=$(metrics); qend=$(methods); tend=$(now)
  echo "renewal $r: serial $want; all 3 nginx serve it $(secs "$t_etcd" "${done_at:-$t_etcd}") s after it appeared in etcd (${polls} TLS poll rounds); load average $(load)"
  echo "  etcd over this renewal's window ($(secs "$tstart" "$tend") s): $(delta "$mstart" "$mend")"
  read -r _ _ a0 b0 _ c0 <<<"$mstart"; read -r _ _ a1 b1 _ c1 <<<"$mend"
  w=$(secs "$tstart" "$tend")
  net=$(awk -v a=$((a1 - a0)) -v b=$((b1 - b0)) -v c=$((c1 - c0)) -v w="$w" -v ia="$idle_q" -v ib="$idle_s" -v ic="$idle_t" \
    'BEGIN { printf "%d %d %d", a - ia * w / 10, b - ib * w / 10, c - ic * w / 10 }')
  echo "  this renewal net of the idle rate: $(echo "$net" | awk '{ printf "%d unary calls, %d stream messages, %d bytes sent", $1, $2, $3 }')"
  [ -n "$done_at" ] && summary+="$(secs "$t_etcd" "$done_at") $net"$'\n'

  echo "  unary calls by method: $(method_delta "$qstart" "$qend")"
  [ -n "$done_at" ] || echo "  NOT CONVERGED"
done
echo "etcd idle rate for comparison: $idle_q unary calls, $idle_s stream messages, $idle_t bytes sent per 10 s"
printf '%s' "$summary" | sort -n | awk '{ t[NR] = $1; q += $2; s += $3; b += $4 } END { if (NR) printf "SUMMARY nodes: %d renewals; new version in etcd -> 3 nginx serving it: median %.2f s, max %.2f s; per renewal (net of idle): %.0f unary calls, %.0f stream messages, %.0f bytes sent by etcd\n", NR, t[int((NR + 1) / 2)], t[NR], q / NR, s / NR, b / NR }'
echo "orders at Pebble: $(grep -c 'Added order' "$TB/run/pebble.log" || true) (1 first issuance + $R renewals expected)"
echo "daemon RSS/peak (MiB): $(for n in "${NODES[@]}"; do printf '%s %s  ' "$n" "$(rss_of "$(cat "$B/run/node-$n.pid")")"; done)"
echo "daemon log lines at ERROR: $(cat "$B"/run/node-*.log | grep -c ' ERROR ' || true); lease losses: $(cat "$B"/run/node-*.log | grep -c 'lease expired\|considered lost\|lease was lost' || true)"
stop_agents
fi

# ---------------------------------------------------------------------------
if [[ " $PARTS " == *" scale "* ]]; then
echo
echo "## scale: $N agents x $M lineages, deploy by hook, no nginx"
# The lineages: a bench CA and one leaf per lineage, in certbot's layout
# (kept in $SEED between runs: making 1000 takes about a minute and a half).
if [ ! -f "$SEED/done" ]; then
  rm -rf "$SEED"; mkdir -p "$SEED/store"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=certkeep bench CA" \
    -keyout "$SEED/ca.key" -out "$SEED/ca.pem" 2>/dev/null
  t=$(now)
  for j in $(seq -w 0 $((M-1))); do
    n=l$j; a=$SEED/store/archive/$n; l=$SEED/store/live/$n
    mkdir -p "$a" "$l"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/" -keyout "$a/privkey1.pem" -out "$a/csr" 2>/dev/null
    printf 'subjectAltName=DNS:%s.bench.test\n' "$n" > "$a/ext"
    openssl x509 -req -in "$a/csr" -CA "$SEED/ca.pem" -CAkey "$SEED/ca.key" -CAcreateserial -days 90 -extfile "$a/ext" -out "$a/cert1.pem" 2>/dev/null
    rm -f "$a/csr" "$a/ext"
    cp "$SEED/ca.pem" "$a/chain1.pem"; cat "$a/cert1.pem" "$a/chain1.pem" > "$a/fullchain1.pem"; chmod 600 "$a/privkey1.pem"
    for k in cert chain fullchain privkey; do ln -s "../../archive/$n/${k}1.pem" "$l/$k.pem"; done
  done
  touch "$SEED/done"
  echo "made $M lineages with openssl in $(secs "$t" "$(now)") s"
fi
seed=$B/seed; mkdir -p "$seed/webroot"; cp -a "$SEED/store" "$seed/store"
config() { # $1 node name, $2 store, $3 webroot
  cat <<TOML
store = "$2"
[acme]
directory = "https://127.0.0.1:9/dir"
[nginx]
reload = false
test_command = ["true"]
[daemon]
renew_schedule = "0 0 1 1 *"
[cluster]
endpoints = [$endpoints_toml]
prefix = "$PREFIX/scale"
node = "$1"
encryption_key_file = "$B/cluster.key"
lease_ttl = "15s"
request_timeout = "10s"
TOML
  for j in $(seq -w 0 $((M-1))); do
    printf '[[certificate]]\nname = "l%s"\ndomains = ["l%s.bench.test"]\nwebroot = "%s"\nconfirm = false\n' "$j" "$j" "$3"
  done
}
config seed "$seed/store" "$seed/webroot" > "$seed/certkeep.toml"
m0=$(metrics); t=$(now)
$CK --config "$seed/certkeep.toml" cluster init >/dev/null
echo "cluster init uploaded $M lineages in $(secs "$t" "$(now)") s; etcd: $(delta "$m0" "$(metrics)")"
echo "etcd values under the prefix: $(ctl get --prefix "$PREFIX/scale" --print-value-only | wc -c) bytes"

for k in $(seq 1 "$N"); do
  d=$B/agent-$k; mkdir -p "$d/store" "$d/webroot"
  config "agent$k" "$d/store" "$d/webroot" > "$d/certkeep.toml"
done
echo "load average before starting the agents: $(load)"
m0=$(metrics); q0=$(methods); t=$(now)
for k in $(seq 1 "$N"); do
  $CK --config "$B/agent-$k/certkeep.toml" run -v --log-format plain >"$B/run/agent-$k.log" 2>&1 &
  echo $! > "$B/run/agent-$k.pid"
done
# Reads of one key with the range's total count (etcdctl 3.4 has no
# --count-only): the bench's own reads stay small beside the agents'.
count() { ctl get --prefix "$1" --limit 1 -w json 2>/dev/null | grep -o '"count":[0-9]*' | cut -d: -f2 || echo 0; }
want=$((N * M)); got=0; deadline=$(( $(date +%s) + ${BOUND:-900} )); maxload=0
while [ "$(date +%s)" -lt "$deadline" ]; do
  got=$(count "$PREFIX/scale/v1/deploy/")
  maxload=$(awk -v a="$maxload" -v b="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN { print (b > a ? b : a) }')
  [ "${got:-0}" -ge "$want" ] && break
  sleep 0.5
done
t1=$(now); m1=$(metrics); q1=$(methods)
okcount=$(ctl get --prefix "$PREFIX/scale/v1/deploy/" --print-value-only | grep -c '"ok":true' || true)
echo "convergence: $got of $want (agent, lineage) deploy reports ($okcount ok) after $(secs "$t" "$t1") s from starting $N agents with empty stores; peak load average $maxload"
echo "etcd during convergence: $(delta "$m0" "$m1")"
echo "  unary calls by method: $(method_delta "$q0" "$q1")"
rss=$(for k in $(seq 1 "$N"); do awk '/^VmRSS/ { print $2 }' "/proc/$(cat "$B/run/agent-$k.pid")/status" 2>/dev/null; done | sort -n)
echo "agent RSS (KiB): min $(echo "$rss" | head -1), median $(echo "$rss" | sed -n "$(( (N + 1) / 2 ))p"), max $(echo "$rss" | tail -1)"
echo "etcd RSS (KiB): $(for i in 0 1 2; do awk '/^VmRSS/ { printf "%s ", $2 }' "/proc/$(cat "$B/run/etcd-m$i.pid")/status"; done)"
echo "agent store size: $(du -sk "$B/agent-1/store" | cut -f1) KiB each"
sleep 2
m0=$(metrics); q0=$(methods); sleep "$IDLE"; m1=$(metrics); q1=$(methods)
echo "etcd over ${IDLE} s idle with $N agents: $(delta "$m0" "$m1")"
echo "  unary calls by method: $(method_delta "$q0" "$q1")"
echo "load average: $(load)"
logs() { cat "$B"/run/agent-*.log; }
echo "agent log lines at ERROR: $(logs | grep -c ' ERROR ' || true); lease losses: $(logs | grep -c 'lease expired\|considered lost\|lease was lost' || true); session restarts: $(logs | grep -c 'retrying in' || true); reads of every lineage: $(logs | grep -c 'syncing every lineage' || true) (one per agent start)"
stop_agents
fi
