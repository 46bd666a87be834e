#!/usr/bin/env bash
# End-to-end demo on this machine, loopback only: installs what is missing,
# builds certkeep, starts a local ACME CA (Pebble + its DNS) and nginx, issues
# a certificate through the nginx webroot, serves it on an nginx TLS site,
# shows that nginx serves it, and lists the store.
#
#   scripts/demo.sh          run the demo (leaves the servers running)
#   scripts/demo.sh stop     stop the demo's servers
#   CK=target/debug/certkeep scripts/demo.sh --stop
#                            use a built binary, stop the servers at the end
#                            (how scripts/test.sh runs it in CI)
#
# Everything lives in $DEMO (default /tmp/certkeep-demo). Ports: TLS_PORT
# (default 8543) and the test bed's (see scripts/testbed.sh). Exits non-zero
# when a step fails or nginx does not serve the store's live serial.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=${DEMO:-/tmp/certkeep-demo}
TLS_PORT=${TLS_PORT:-8543}
export TB=$DEMO/testbed

if [ "${1:-}" = stop ]; then scripts/testbed.sh down; echo "demo stopped"; exit 0; fi
STOP_AT_END=0
if [ "${1:-}" = --stop ]; then
  STOP_AT_END=1
  trap 'scripts/testbed.sh down >/dev/null 2>&1 || true' EXIT
fi

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Installing system packages (nginx, pebble >= 2.5, ...) if missing"
if [ "$(id -u)" = 0 ]; then scripts/install-deps.sh; else echo "(not root: assuming they are installed)"; fi

# CK=path/to/certkeep skips the build.
if [ -z "${CK:-}" ]; then
  step "Building certkeep (release)"
  cargo build --release --quiet
  CK=$PWD/target/release/certkeep
fi

step "Starting Pebble (ACME CA), its DNS and nginx on loopback"
scripts/testbed.sh down
rm -rf "$DEMO"
mkdir -p "$DEMO/store"
eval "$(scripts/testbed.sh up)"
NGX=(-c "$NGINX_CONF" -p "$NGINX_PREFIX")

step "Writing $DEMO/certkeep.toml"
cat > "$DEMO/certkeep.toml" <<TOML
# certkeep demo configuration (see config/certkeep.example.toml for every key)
store = "$DEMO/store"

[acme]
directory = "$ACME_DIRECTORY"
staging_directory = "$ACME_DIRECTORY"
ca_bundle = "$ACME_CA_BUNDLE"     # Pebble's API is signed by a throwaway CA

[http01]
self_check_port = $HTTP_PORT           # production: 80
self_check_connect = "127.0.0.1"       # the demo names resolve nowhere else

[nginx]
test_command = ["nginx", "-t", "-q", "-c", "$NGINX_CONF", "-p", "$NGINX_PREFIX"]
reload_command = ["nginx", "-s", "reload", "-c", "$NGINX_CONF", "-p", "$NGINX_PREFIX"]

[probe]
ca_file = "$ISSUER_ROOT"              # the demo CA's root (Pebble's, new on every start)

[probe.policy.default]
http_port = $HTTP_PORT                # production: 80

[[certificate]]
name = "demo.test"
domains = ["demo.test", "www.demo.test"]
webroot = "$WEBROOT"
endpoint = "127.0.0.1:$TLS_PORT"
TOML
$CK --config "$DEMO/certkeep.toml" check-config

step "certkeep issue demo.test"
$CK --config "$DEMO/certkeep.toml" issue demo.test

step "Serving the lineage on an nginx TLS site (127.0.0.1:$TLS_PORT)"
cat > "$NGINX_SITES/demo.conf" <<NGX
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
# The serial nginx serves, read by openssl, against the store's live one.
served_serial() {
  openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername demo.test -CAfile "$ISSUER_ROOT" </dev/null 2>/dev/null \
    | openssl x509 -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/^0*//'
}
stored_serial() {
  $CK --config "$DEMO/certkeep.toml" certificates --json | sed -n 's/.*"serial": "\(.*\)".*/\1/p' | sed 's/^0*//'
}
served=$(served_serial); stored=$(stored_serial)
echo "nginx serves serial $served; the store's live serial is $stored"
[ -n "$served" ] && [ "$served" = "$stored" ] || { echo "MISMATCH"; exit 1; }
first=$served

step "certkeep renew (nothing due: the CA's ARI window is years away)"
$CK --config "$DEMO/certkeep.toml" renew

step "certkeep renew --dry-run (real challenge flow, nothing written)"
$CK --config "$DEMO/certkeep.toml" renew --dry-run

step "certkeep renew --force (new version, nginx -t, one reload, confirmed over TLS)"
$CK --config "$DEMO/certkeep.toml" renew --force
served=$(served_serial); stored=$(stored_serial)
echo "nginx now serves serial $served; the store's live serial is $stored (was $first)"
[ -n "$served" ] && [ "$served" = "$stored" ] && [ "$served" != "$first" ] || { echo "MISMATCH after renew --force"; exit 1; }

step "certkeep certificates"
$CK --config "$DEMO/certkeep.toml" certificates

step "certkeep probe: what clients see (protocols, chain, HSTS, port 80, served vs stored)"
$CK --config "$DEMO/certkeep.toml" probe -d

if [ "$STOP_AT_END" = 1 ]; then echo; echo "demo passed; stopping its servers"; exit 0; fi

cat <<EOF

The demo's servers are still running. Try:
  $CK --config $DEMO/certkeep.toml certificates --json
  curl --cacert $ISSUER_ROOT --resolve demo.test:$TLS_PORT:127.0.0.1 https://demo.test:$TLS_PORT/
Stop them with: scripts/demo.sh stop
EOF
