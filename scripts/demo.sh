#!/usr/bin/env bash
# End-to-end demo on this machine, loopback only: installs what is missing,
# builds certkeep, starts a local ACME CA (Pebble + its DNS) and nginx, issues
# a certificate through the nginx webroot, serves it on an nginx TLS site,
# shows that nginx serves it, and lists the store.
#
#   scripts/demo.sh          run the demo (leaves the servers running)
#   scripts/demo.sh stop     stop the demo's servers
#
# Everything lives in $DEMO (default /tmp/certkeep-demo).
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=${DEMO:-/tmp/certkeep-demo}
ACME_PORT=${ACME_PORT:-14100}; MGMT_PORT=${MGMT_PORT:-15100}; DNS_PORT=${DNS_PORT:-8153}
HTTP_PORT=${HTTP_PORT:-5102}; TLS_PORT=${TLS_PORT:-8543}
NGX=(-c "$DEMO/nginx/nginx.conf" -p "$DEMO/nginx")

stop() {
  [ -f "$DEMO/run/nginx.pid" ] && nginx -s quit "${NGX[@]}" 2>/dev/null || true
  for p in pebble dns; do
    [ -f "$DEMO/run/$p.pid" ] && kill "$(cat "$DEMO/run/$p.pid")" 2>/dev/null || true
    rm -f "$DEMO/run/$p.pid"
  done
}
if [ "${1:-}" = stop ]; then stop; echo "demo stopped"; exit 0; fi

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
alive() { [ -f "$DEMO/run/$1.pid" ] && kill -0 "$(cat "$DEMO/run/$1.pid")" 2>/dev/null; }

step "Installing system packages (nginx, pebble >= 2.5, ...) if missing"
if [ "$(id -u)" = 0 ]; then scripts/install-deps.sh; else echo "(not root: assuming they are installed)"; fi

step "Building certkeep (release)"
cargo build --release --quiet
CK=$PWD/target/release/certkeep

step "Starting Pebble (ACME CA) on 127.0.0.1:$ACME_PORT and nginx on 127.0.0.1:$HTTP_PORT"
stop
rm -rf "$DEMO"
mkdir -p "$DEMO"/{webroot,nginx/sites,nginx/logs,run,store}
chmod 755 "$DEMO" "$DEMO/webroot"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=certkeep demo pebble API CA" -keyout "$DEMO/pebble-ca.key" -out "$DEMO/pebble-ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$DEMO/pebble.key" -out "$DEMO/pebble.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$DEMO/san.ext"
openssl x509 -req -in "$DEMO/pebble.csr" -CA "$DEMO/pebble-ca.pem" -CAkey "$DEMO/pebble-ca.key" \
  -CAcreateserial -days 30 -extfile "$DEMO/san.ext" -out "$DEMO/pebble.pem" 2>/dev/null
cat > "$DEMO/pebble.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:$ACME_PORT", "managementListenAddress": "127.0.0.1:$MGMT_PORT",
  "certificate": "$DEMO/pebble.pem", "privateKey": "$DEMO/pebble.key",
  "httpPort": $HTTP_PORT, "tlsPort": 0, "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 "127.0.0.1:$DNS_PORT" \
  -http01 "" -https01 "" -tlsalpn01 "" -doh "" -management "127.0.0.1:$((DNS_PORT+1))" >"$DEMO/run/dns.log" 2>&1 &
echo $! > "$DEMO/run/dns.pid"
PEBBLE_VA_NOSLEEP=1 pebble -config "$DEMO/pebble.json" -dnsserver "127.0.0.1:$DNS_PORT" >"$DEMO/run/pebble.log" 2>&1 &
echo $! > "$DEMO/run/pebble.pid"
cat > "$DEMO/nginx/nginx.conf" <<NGX
pid $DEMO/run/nginx.pid;
error_log $DEMO/nginx/logs/error.log;
events { worker_connections 256; }
http {
  access_log $DEMO/nginx/logs/access.log;
  client_body_temp_path $DEMO/run/body; proxy_temp_path $DEMO/run/proxy;
  fastcgi_temp_path $DEMO/run/fcgi; uwsgi_temp_path $DEMO/run/uwsgi; scgi_temp_path $DEMO/run/scgi;
  server {
    listen 127.0.0.1:$HTTP_PORT default_server;
    location /.well-known/acme-challenge/ { root $DEMO/webroot; default_type text/plain; }
    location / { return 301 https://\$host\$request_uri; }
  }
  include $DEMO/nginx/sites/*.conf;
}
NGX
nginx "${NGX[@]}"
for _ in $(seq 100); do curl -sf --cacert "$DEMO/pebble-ca.pem" "https://127.0.0.1:$ACME_PORT/dir" >/dev/null && break; sleep 0.1; done
curl -sf --cacert "$DEMO/pebble-ca.pem" "https://127.0.0.1:$MGMT_PORT/roots/0" > "$DEMO/issuer-root.pem"

step "Writing $DEMO/certkeep.toml"
cat > "$DEMO/certkeep.toml" <<TOML
# certkeep demo configuration (see config/certkeep.example.toml for every key)
store = "$DEMO/store"

[acme]
directory = "https://127.0.0.1:$ACME_PORT/dir"
staging_directory = "https://127.0.0.1:$ACME_PORT/dir"
ca_bundle = "$DEMO/pebble-ca.pem"     # Pebble's API is signed by a throwaway CA

[http01]
self_check_port = $HTTP_PORT           # production: 80
self_check_connect = "127.0.0.1"       # the demo names resolve nowhere else

[nginx]
test_command = ["nginx", "-t", "-q", "-c", "$DEMO/nginx/nginx.conf", "-p", "$DEMO/nginx"]
reload_command = ["nginx", "-s", "reload", "-c", "$DEMO/nginx/nginx.conf", "-p", "$DEMO/nginx"]

[[certificate]]
name = "demo.test"
domains = ["demo.test", "www.demo.test"]
webroot = "$DEMO/webroot"
endpoint = "127.0.0.1:$TLS_PORT"
TOML
$CK --config "$DEMO/certkeep.toml" check-config

step "certkeep issue demo.test"
$CK --config "$DEMO/certkeep.toml" issue demo.test

step "Serving the lineage on an nginx TLS site (127.0.0.1:$TLS_PORT)"
cat > "$DEMO/nginx/sites/demo.conf" <<NGX
server {
  listen 127.0.0.1:$TLS_PORT ssl;
  server_name demo.test www.demo.test;
  ssl_certificate     $DEMO/store/live/demo.test/fullchain.pem;
  ssl_certificate_key $DEMO/store/live/demo.test/privkey.pem;
  ssl_protocols TLSv1.2 TLSv1.3;
  add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;
  location / { return 200 "hello from demo.test\n"; }
}
NGX
nginx -t -q "${NGX[@]}" && nginx -s reload "${NGX[@]}"
sleep 0.5
served=$(openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername demo.test -CAfile "$DEMO/issuer-root.pem" </dev/null 2>/dev/null \
  | openssl x509 -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/^0*//')
stored=$($CK --config "$DEMO/certkeep.toml" certificates --json | sed -n 's/.*"serial": "\(.*\)".*/\1/p' | sed 's/^0*//')
echo "nginx serves serial $served; the store's live serial is $stored"
[ -n "$served" ] && [ "$served" = "$stored" ] || { echo "MISMATCH"; exit 1; }

step "certkeep certificates"
$CK --config "$DEMO/certkeep.toml" certificates

cat <<EOF

The demo's servers are still running. Try:
  $CK --config $DEMO/certkeep.toml certificates --json
  curl --cacert $DEMO/issuer-root.pem --resolve demo.test:$TLS_PORT:127.0.0.1 https://demo.test:$TLS_PORT/
Stop them with: scripts/demo.sh stop
EOF
