#!/usr/bin/env bash
# Builds the Debian package target/debian/certkeep_<version>_<arch>.deb:
# installs cargo-deb when missing, generates the man pages and shell
# completions (xtask) and the units with ExecStart=/usr/bin/certkeep into
# target/package/, then runs `cargo deb` (a release build). The package's
# contents are listed in Cargo.toml, [package.metadata.deb];
# docs/packaging.md describes them. CERTKEEP_DEB_PROFILE=dev packages the
# debug build instead of a release build (the CI test does, to reuse the
# build it has already made). Install with, as root:
#   apt install ./target/debian/certkeep_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deb --version 2>/dev/null | grep -q "^cargo-deb 3\.8\."; then
    cargo install cargo-deb --version 3.8.0 --locked
fi
out=target/package
rm -rf "$out"
mkdir -p "$out/systemd"
cargo run --locked --quiet -p xtask -- man "$out/man"
cargo run --locked --quiet -p xtask -- completions "$out/completions"
# The units in systemd/ name /usr/local/bin/certkeep (an install from
# source); the package's binary is /usr/bin/certkeep.
for f in systemd/*.service systemd/*.timer; do
    sed 's#/usr/local/bin/certkeep#/usr/bin/certkeep#g' "$f" >"$out/systemd/$(basename "$f")"
done
if grep -q /usr/local "$out"/systemd/*; then
    echo "error: a unit in $out/systemd still names /usr/local" >&2
    exit 1
fi
profile=${CERTKEEP_DEB_PROFILE:-release}
cargo deb --package certkeep --profile "$profile" --strip -- --locked
ls -1 target/debian/certkeep_*.deb
