#!/usr/bin/env bash
# A local ACME test bed on loopback, for the demo and the benchmarks:
# Pebble (ACME CA), pebble-challtestsrv (DNS answering 127.0.0.1 for every
# name) and nginx serving an HTTP-01 webroot plus any sites in $TB/nginx/sites.
#
#   scripts/testbed.sh up     start (idempotent); prints the environment to eval
#   scripts/testbed.sh down   stop what `up` started
#
# Settings (environment): TB (default /tmp/certkeep-testbed), ACME_PORT,
# MGMT_PORT, DNS_PORT, HTTP_PORT, PEBBLE_WFE_NONCEREJECT (default 0).
set -euo pipefail
TB=${TB:-/tmp/certkeep-testbed}
ACME_PORT=${ACME_PORT:-14100}; MGMT_PORT=${MGMT_PORT:-15100}; DNS_PORT=${DNS_PORT:-8153}
HTTP_PORT=${HTTP_PORT:-5102}
NGX=(-c "$TB/nginx/nginx.conf" -p "$TB/nginx")
alive() { [ -f "$TB/run/$1.pid" ] && kill -0 "$(cat "$TB/run/$1.pid")" 2>/dev/null; }

down() {
  alive nginx && nginx -s quit "${NGX[@]}" 2>/dev/null || true
  for p in pebble dns; do
    alive "$p" && kill "$(cat "$TB/run/$p.pid")" 2>/dev/null || true
    rm -f "$TB/run/$p.pid"
  done
  return 0
}

up() {
  mkdir -p "$TB"/{webroot,nginx/sites,nginx/logs,run}
  chmod 755 "$TB" "$TB/webroot"
  if [ ! -f "$TB/pebble.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
      -subj "/CN=certkeep test bed pebble API CA" -keyout "$TB/pebble-ca.key" -out "$TB/pebble-ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
      -keyout "$TB/pebble.key" -out "$TB/pebble.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$TB/san.ext"
    openssl x509 -req -in "$TB/pebble.csr" -CA "$TB/pebble-ca.pem" -CAkey "$TB/pebble-ca.key" \
      -CAcreateserial -days 30 -extfile "$TB/san.ext" -out "$TB/pebble.pem" 2>/dev/null
  fi
  cat > "$TB/pebble.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:$ACME_PORT", "managementListenAddress": "127.0.0.1:$MGMT_PORT",
  "certificate": "$TB/pebble.pem", "privateKey": "$TB/pebble.key",
  "httpPort": $HTTP_PORT, "tlsPort": 0, "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
  alive dns || {
    pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 "127.0.0.1:$DNS_PORT" \
      -http01 "" -https01 "" -tlsalpn01 "" -doh "" -management "127.0.0.1:$((DNS_PORT+1))" >"$TB/run/dns.log" 2>&1 &
    echo $! > "$TB/run/dns.pid"; }
  alive pebble || {
    PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=${PEBBLE_WFE_NONCEREJECT:-0} \
      pebble -config "$TB/pebble.json" -dnsserver "127.0.0.1:$DNS_PORT" >"$TB/run/pebble.log" 2>&1 &
    echo $! > "$TB/run/pebble.pid"; }
  cat > "$TB/nginx/nginx.conf" <<NGX
pid $TB/run/nginx.pid;
error_log $TB/nginx/logs/error.log notice;
worker_processes 1;
events { worker_connections 4096; }
http {
  access_log off;
  server_names_hash_bucket_size 128;
  client_body_temp_path $TB/run/body; proxy_temp_path $TB/run/proxy;
  fastcgi_temp_path $TB/run/fcgi; uwsgi_temp_path $TB/run/uwsgi; scgi_temp_path $TB/run/scgi;
  server {
    listen 127.0.0.1:$HTTP_PORT default_server;
    location /.well-known/acme-challenge/ { root $TB/webroot; default_type text/plain; }
    location / { return 301 https://\$host\$request_uri; }
  }
  include $TB/nginx/sites/*.conf;
}
NGX
  if alive nginx; then nginx -t -q "${NGX[@]}" && nginx -s reload "${NGX[@]}"; else nginx "${NGX[@]}"; fi
  for _ in $(seq 100); do curl -sf --cacert "$TB/pebble-ca.pem" "https://127.0.0.1:$ACME_PORT/dir" >/dev/null && break; sleep 0.1; done
  curl -sf --cacert "$TB/pebble-ca.pem" "https://127.0.0.1:$MGMT_PORT/roots/0" > "$TB/issuer-root.pem"
  cat <<ENV
export TB=$TB
export ACME_DIRECTORY=https://127.0.0.1:$ACME_PORT/dir
export ACME_CA_BUNDLE=$TB/pebble-ca.pem
export ISSUER_ROOT=$TB/issuer-root.pem
export WEBROOT=$TB/webroot
export NGINX_CONF=$TB/nginx/nginx.conf NGINX_PREFIX=$TB/nginx NGINX_SITES=$TB/nginx/sites
export HTTP_PORT=$HTTP_PORT
ENV
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
