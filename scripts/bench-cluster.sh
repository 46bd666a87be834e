#!/usr/bin/env bash
# Cluster-mode scale benchmark (not a test), loopback only: N agents sharing
# M lineages on one 3-member etcd. Each agent is a real `certkeep run`
# daemon in cluster mode with its own empty store, deploying by hook only
# (`[nginx] reload = false`, no nginx, no CA needed: nothing is due). The
# lineages are made locally (openssl: one bench CA, an ECDSA P-256 leaf per
# lineage) and uploaded with `certkeep cluster init`.
#
# Reports: the upload time; the convergence time (agents started -> every
# agent reported every lineage deployed, read from etcd with etcdctl);
# etcd's load over that window from its /metrics (puts, gRPC requests and
# bytes, summed over the members); each agent's RSS after convergence; and
# etcd's steady load per agent over an idle window (heartbeats, keep-alives).
#
#   scripts/bench-cluster.sh                 N=10 M=100
#   N=50 M=1000 scripts/bench-cluster.sh     the full simulation
#   CK=target/release/certkeep ...           use a built binary (else: release build)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10}; M=${M:-100}; IDLE=${IDLE:-20}
B=${B:-/tmp/certkeep-bench-cluster}
ETCD_CLIENT=23990; ETCD_PEER=24000
PREFIX=/certkeep/bench
if [ -z "${CK:-}" ]; then cargo build --release --quiet; CK=$PWD/target/release/certkeep; fi
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop_all() {
  for f in "$B"/run/*.pid; do [ -f "$f" ] && pid_alive "$f" && kill "$(cat "$f")" 2>/dev/null || true; done
  for f in "$B"/run/*.pid; do
    [ -f "$f" ] || continue
    for _ in $(seq 50); do pid_alive "$f" || break; sleep 0.2; done
    pid_alive "$f" && kill -9 "$(cat "$f")" 2>/dev/null || true
  done
  return 0
}
stop_all 2>/dev/null || true
rm -rf "$B"; mkdir -p "$B/run"
trap stop_all EXIT
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

echo "# certkeep cluster benchmark: $N agents x $M lineages, 3-member etcd, loopback"
echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(etcd --version | head -1)"
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo), kernel $(uname -r)"
echo "# N=$N M=$M IDLE=$IDLE $0 (certkeep: $CK)"

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

# etcd's counters summed over the three members.
metrics() {
  for e in "${endpoints[@]}"; do curl -s "$e/metrics"; done | awk '
    /^etcd_debugging_mvcc_put_total / { put += $2 }
    /^etcd_debugging_mvcc_range_total / { range += $2 }
    /^etcd_network_client_grpc_received_bytes_total / { rx += $2 }
    /^etcd_network_client_grpc_sent_bytes_total / { tx += $2 }
    /^grpc_server_handled_total/ { req += $2 }
    END { printf "%d %d %d %d %d\n", put, range, req, rx, tx }'
}
delta() {
  read -r p0 r0 q0 x0 t0 <<<"$1"; read -r p1 r1 q1 x1 t1 <<<"$2"
  echo "puts $((p1-p0)), ranges $((r1-r0)), finished gRPC calls $((q1-q0)), bytes received $((x1-x0)), bytes sent $((t1-t0))"
}

# The lineages: a bench CA and one leaf per lineage, in certbot's layout.
seed=$B/seed; mkdir -p "$seed/store" "$seed/webroot"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=certkeep bench CA" \
  -keyout "$B/ca.key" -out "$B/ca.pem" 2>/dev/null
t=$(now)
for j in $(seq -w 0 $((M-1))); do
  n=l$j; a=$seed/store/archive/$n; l=$seed/store/live/$n
  mkdir -p "$a" "$l"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/" -keyout "$a/privkey1.pem" -out "$a/csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s.bench.test\n' "$n" > "$a/ext"
  openssl x509 -req -in "$a/csr" -CA "$B/ca.pem" -CAkey "$B/ca.key" -CAcreateserial -days 90 -extfile "$a/ext" -out "$a/cert1.pem" 2>/dev/null
  rm -f "$a/csr" "$a/ext"
  cp "$B/ca.pem" "$a/chain1.pem"; cat "$a/cert1.pem" "$a/chain1.pem" > "$a/fullchain1.pem"; chmod 600 "$a/privkey1.pem"
  for k in cert chain fullchain privkey; do ln -s "../../archive/$n/${k}1.pem" "$l/$k.pem"; done
done
echo "made $M lineages with openssl in $(secs "$t" "$(now)") s"

head -c 32 /dev/urandom > "$B/cluster.key"; chmod 600 "$B/cluster.key"
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
endpoints = [$(printf '"%s", ' "${endpoints[@]}" | sed 's/, $//')]
prefix = "$PREFIX"
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
echo "etcd values under the prefix: $(ctl get --prefix "$PREFIX" --print-value-only | wc -c) bytes"

for k in $(seq 1 "$N"); do
  d=$B/agent-$k; mkdir -p "$d/store" "$d/webroot"
  config "agent$k" "$d/store" "$d/webroot" > "$d/certkeep.toml"
done
m0=$(metrics); t=$(now)
for k in $(seq 1 "$N"); do
  $CK --config "$B/agent-$k/certkeep.toml" run --log-format plain >"$B/run/agent-$k.log" 2>&1 &
  echo $! > "$B/run/agent-$k.pid"
done
want=$((N * M)); got=0; deadline=$(( $(date +%s) + ${BOUND:-900} ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  got=$(ctl get --prefix "$PREFIX/v1/lineage/" --print-value-only | grep -c '"ok":true' || true)
  [ "$got" -ge "$want" ] && break
  sleep 0.5
done
t1=$(now); m1=$(metrics)
echo "convergence: $got of $want (agent, lineage) deploy reports ok after $(secs "$t" "$t1") s from starting $N agents with empty stores"
echo "etcd during convergence: $(delta "$m0" "$m1")"
rss=$(for k in $(seq 1 "$N"); do awk '/^VmRSS/ { print $2 }' "/proc/$(cat "$B/run/agent-$k.pid")/status" 2>/dev/null; done | sort -n)
echo "agent RSS (KiB): min $(echo "$rss" | head -1), median $(echo "$rss" | sed -n "$(( (N + 1) / 2 ))p"), max $(echo "$rss" | tail -1)"
echo "etcd RSS (KiB): $(for i in 0 1 2; do awk '/^VmRSS/ { printf "%s ", $2 }' "/proc/$(cat "$B/run/etcd-m$i.pid")/status"; done)"
echo "agent store size: $(du -sk "$B/agent-1/store" | cut -f1) KiB each"
m0=$(metrics); sleep "$IDLE"; m1=$(metrics)
echo "etcd over ${IDLE} s idle with $N agents: $(delta "$m0" "$m1")"
errors=$(cat "$B"/run/agent-*.log | grep -c ' ERROR ' || true)
echo "agent log lines at ERROR: $errors"
