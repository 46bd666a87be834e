#!/usr/bin/env bash
# Cluster mode on one machine, loopback only: installs what is missing,
# builds certkeep, starts a 3-member etcd, a local ACME CA (Pebble + its DNS),
# three nginx nodes (each with its own webroot, store and TLS port) behind a
# round-robin nginx on the port Pebble validates HTTP-01 against, runs
# `certkeep cluster init` and one `certkeep run` daemon per node, and shows
# that one order serves all three nodes (`certkeep cluster status`, the
# serial each node's nginx serves, Pebble's order count). Then it stops
# everything it started.
#
#   scripts/demo-cluster.sh          run the demo (stops its servers at the end)
#   scripts/demo-cluster.sh stop     stop the servers of an interrupted run
#   CK=target/debug/certkeep scripts/demo-cluster.sh   use a built binary
#
# Everything lives in $DEMO (default /tmp/certkeep-demo-cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=${DEMO:-/tmp/certkeep-demo-cluster}
export TB=$DEMO/testbed
# Ports (each the first of three): etcd clients ETCD_CLIENT (23790), peers
# ETCD_PEER (23800); node HTTP NODE_HTTP (5201), node TLS NODE_TLS (8601);
# the balancer is the test bed's HTTP port (see scripts/testbed.sh).
ETCD_CLIENT=${ETCD_CLIENT:-23790}; ETCD_PEER=${ETCD_PEER:-23800}
NODE_HTTP=${NODE_HTTP:-5201}; NODE_TLS=${NODE_TLS:-8601}
NODES=(a b c)
PREFIX=/certkeep/demo

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_all() {
  for n in "${NODES[@]}"; do
    pid_alive "$DEMO/run/certkeep-$n.pid" && kill "$(cat "$DEMO/run/certkeep-$n.pid")" 2>/dev/null || true
    pid_alive "$DEMO/node-$n/nginx/nginx.pid" &&
      nginx -s quit -c "$DEMO/node-$n/nginx/nginx.conf" -p "$DEMO/node-$n/nginx" 2>/dev/null || true
  done
  for i in 0 1 2; do
    pid_alive "$DEMO/run/etcd-m$i.pid" && kill "$(cat "$DEMO/run/etcd-m$i.pid")" 2>/dev/null || true
  done
  # Wait for them to go (a member whose peers left may take a while), then insist.
  for f in "$DEMO"/run/*.pid; do
    [ -f "$f" ] || continue
    for _ in $(seq 50); do pid_alive "$f" || break; sleep 0.2; done
    pid_alive "$f" && kill -9 "$(cat "$f")" 2>/dev/null || true
  done
  [ -d "$TB" ] && scripts/testbed.sh down
  return 0
}

if [ "${1:-}" = stop ]; then stop_all; echo "cluster demo stopped"; exit 0; fi

step "Installing system packages (nginx, pebble, etcd-server, etcd-client, ...) if missing"
if [ "$(id -u)" = 0 ]; then scripts/install-deps.sh; else echo "(not root: assuming they are installed)"; fi

# CK=path/to/certkeep skips the build.
if [ -z "${CK:-}" ]; then
  step "Building certkeep (release)"
  cargo build --release --quiet
  CK=$PWD/target/release/certkeep
fi

stop_all
rm -rf "$DEMO"
mkdir -p "$DEMO/run"
chmod 755 "$DEMO"
trap 'stop_all' EXIT

step "Starting a 3-member etcd on loopback (clients 127.0.0.1:$ETCD_CLIENT-$((ETCD_CLIENT+2)))"
cluster=""; endpoints=()
for i in 0 1 2; do
  cluster+="${cluster:+,}m$i=http://127.0.0.1:$((ETCD_PEER+i))"
  endpoints+=("http://127.0.0.1:$((ETCD_CLIENT+i))")
done
for i in 0 1 2; do
  mkdir -p -m 700 "$DEMO/etcd/m$i"
  etcd --name "m$i" --data-dir "$DEMO/etcd/m$i" \
    --listen-client-urls "${endpoints[$i]}" --advertise-client-urls "${endpoints[$i]}" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PEER+i))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PEER+i))" \
    --initial-cluster "$cluster" --initial-cluster-state new \
    --initial-cluster-token "certkeep-demo-$$" >"$DEMO/run/etcd-m$i.log" 2>&1 &
  echo $! > "$DEMO/run/etcd-m$i.pid"
done
ENDPOINTS=$(IFS=,; echo "${endpoints[*]}")
ctl() { ETCDCTL_API=3 etcdctl --endpoints="$ENDPOINTS" "$@"; }
for _ in $(seq 150); do ctl endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
ctl endpoint health

step "Starting Pebble (ACME CA) and its DNS; the test bed's nginx becomes the load balancer"
eval "$(scripts/testbed.sh up)"
upstreams=""
for i in 0 1 2; do upstreams+="server 127.0.0.1:$((NODE_HTTP+i)); "; done
# Every *.test name on the port Pebble validates against goes round robin
# to the three nodes: no stickiness, no retry on another node.
cat > "$NGINX_SITES/balancer.conf" <<NGX
upstream demo_nodes { $upstreams}
server {
  listen 127.0.0.1:$HTTP_PORT;
  server_name .test;
  location / { proxy_pass http://demo_nodes; proxy_set_header Host \$http_host; proxy_next_upstream off; }
}
NGX
nginx -t -q -c "$NGINX_CONF" -p "$NGINX_PREFIX" && nginx -s reload -c "$NGINX_CONF" -p "$NGINX_PREFIX"
echo "balancer: 127.0.0.1:$HTTP_PORT -> $upstreams"

step "Starting three nginx nodes (HTTP $NODE_HTTP-$((NODE_HTTP+2)), each its own webroot)"
head -c 32 /dev/urandom > "$DEMO/cluster.key"
chmod 600 "$DEMO/cluster.key"
for i in 0 1 2; do
  n=${NODES[$i]}; d=$DEMO/node-$n
  mkdir -p "$d"/{webroot,store,nginx/logs,nginx/sites}
  chmod 755 "$d" "$d/webroot"
  cat > "$d/nginx/nginx.conf" <<NGX
pid $d/nginx/nginx.pid;
error_log $d/nginx/logs/error.log notice;
worker_processes 1;
events { worker_connections 256; }
http {
  access_log $d/nginx/logs/access.log;
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
# node $n of the cluster demo
store = "$d/store"

[acme]
directory = "$ACME_DIRECTORY"
staging_directory = "$ACME_DIRECTORY"
ca_bundle = "$ACME_CA_BUNDLE"

[http01]
self_check_port = $((NODE_HTTP+i))     # the node's own nginx (production: 80)
self_check_connect = "127.0.0.1"

[nginx]
test_command = ["nginx", "-t", "-q", "-c", "$d/nginx/nginx.conf", "-p", "$d/nginx"]
reload_command = ["nginx", "-s", "reload", "-c", "$d/nginx/nginx.conf", "-p", "$d/nginx"]

[[certificate]]
name = "demo.test"
domains = ["demo.test", "www.demo.test"]
webroot = "$d/webroot"
confirm = false                        # the TLS site is added once the files exist

[cluster]
endpoints = [$(printf '"%s", ' "${endpoints[@]}" | sed 's/, $//')]
prefix = "$PREFIX"
node = "$n"
encryption_key_file = "$DEMO/cluster.key"
lease_ttl = "5s"
request_timeout = "2s"
TOML
done

step "certkeep cluster init (node a: an empty store, so only the cluster's meta record)"
$CK --config "$DEMO/node-a/certkeep.toml" cluster init

step "Starting one certkeep daemon per node"
for n in "${NODES[@]}"; do
  $CK --config "$DEMO/node-$n/certkeep.toml" run --log-format plain >"$DEMO/run/certkeep-$n.log" 2>&1 &
  echo $! > "$DEMO/run/certkeep-$n.pid"
done
echo "waiting until every node deployed the cluster's version ..."
for _ in $(seq 300); do
  ok=$(ctl get --prefix --print-value-only "$PREFIX/v1/deploy/" | grep -c '"ok":true' || true)
  [ "$ok" = 3 ] && break
  sleep 0.2
done

step "certkeep cluster status"
$CK --config "$DEMO/node-a/certkeep.toml" cluster status

step "Serving the lineage on each node's own nginx TLS site (127.0.0.1:$NODE_TLS-$((NODE_TLS+2)))"
for i in 0 1 2; do
  n=${NODES[$i]}; d=$DEMO/node-$n
  cat > "$d/nginx/sites/demo.conf" <<NGX
server {
  listen 127.0.0.1:$((NODE_TLS+i)) ssl;
  server_name demo.test www.demo.test;
  ssl_certificate     $d/store/live/demo.test/fullchain.pem;
  ssl_certificate_key $d/store/live/demo.test/privkey.pem;
  location / { return 200 "hello from node $n\n"; }
}
NGX
  nginx -t -q -c "$d/nginx/nginx.conf" -p "$d/nginx" && nginx -s reload -c "$d/nginx/nginx.conf" -p "$d/nginx"
done
sleep 1
serials=()
for i in 0 1 2; do
  s=$(openssl s_client -connect "127.0.0.1:$((NODE_TLS+i))" -servername demo.test -CAfile "$ISSUER_ROOT" </dev/null 2>/dev/null |
    openssl x509 -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/^0*//')
  echo "node ${NODES[$i]} serves serial $s"
  serials+=("$s")
done
orders=$(grep -c "Added order" "$TB/run/pebble.log" || true)
shared=$(ctl get --print-value-only "$PREFIX/v1/lineage/demo.test/current" | sed -n 's/.*"serial":"\([0-9a-f]*\)".*/\1/p' | sed 's/^0*//')
echo "the cluster's version in etcd has serial $shared; Pebble saw $orders order(s)"
if [ -z "$shared" ] || [ "${serials[0]}" != "$shared" ] || [ "${serials[1]}" != "$shared" ] || [ "${serials[2]}" != "$shared" ]; then
  echo "MISMATCH"; exit 1
fi
ctl get --print-value-only "$PREFIX/v1/lineage/demo.test/current" | grep -q "PRIVATE KEY" && { echo "a private key in clear in etcd"; exit 1; }
echo "one order, three nodes serving it; etcd holds the private key only sealed (ck1:...)"

step "Stopping everything the demo started"
stop_all
trap - EXIT
echo "done (files kept in $DEMO)"
