#!/usr/bin/env bash
# The Debian package, end to end on this machine (as root, as CI runs):
# build it (scripts/package.sh), lintian (no errors, only the warnings
# docs/packaging.md justifies), `apt-get install ./certkeep_*.deb`, then
# check the binary, the man pages, the completions, the units
# (`systemd-analyze verify`, none enabled), `certkeep check-config` on the
# installed configuration and the maintainer script run twice; then remove
# and purge, checking that the configuration survives a remove, that purge
# keeps a file the operator added, and that a certificate store created
# meanwhile is untouched by both.
# It refuses to run where certkeep is already installed or a store exists
# at /var/lib/certkeep (this test owns that path while it runs).
# CERTKEEP_DEB_PROFILE defaults to dev here: the package is built from the
# debug build scripts/test.sh has already made, instead of a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (apt-get install); run it as root"
if dpkg-query -W -f='${Status}' certkeep 2>/dev/null | grep -q installed; then
    fail "certkeep is already installed here; this test installs and purges it"
fi
[ ! -e /var/lib/certkeep ] || fail "/var/lib/certkeep exists; this test creates and removes its own"
[ ! -e /etc/certkeep ] || fail "/etc/certkeep exists; this test creates and removes its own"

export CERTKEEP_DEB_PROFILE=${CERTKEEP_DEB_PROFILE:-dev}
scripts/package.sh >/dev/null
version=$(awk -F'"' '/^version *=/{print $2; exit}' Cargo.toml)
deb=$(ls target/debian/certkeep_"$version"-*_*.deb)
echo "built $deb ($((SECONDS - start)) s)"

# lintian: no error; the warnings kept are listed in docs/packaging.md.
lint=$(lintian "$deb" 2>&1 | grep -v '^running with root privileges' || true)
unexpected=$(printf '%s\n' "$lint" | grep -E '^[EW]: ' |
    grep -vE '^W: certkeep: (initial-upload-closes-no-bugs|non-standard-file-perm 0600 != 0644 \[etc/certkeep/certkeep\.toml\])' || true)
[ -z "$unexpected" ] || fail "lintian: $unexpected"
echo "lintian: no errors, only the justified warnings"

cleanup() {
    if dpkg-query -W -f='${Status}' certkeep 2>/dev/null | grep -q installed; then
        apt-get purge -y -qq certkeep >/dev/null 2>&1 || true
    fi
    rm -rf /var/lib/certkeep /etc/certkeep
}
trap cleanup EXIT
apt-get install -y -qq "./$deb" >/dev/null
echo "installed"

# Binary and its version.
out=$(certkeep --version)
[ "$out" = "certkeep $version" ] || fail "certkeep --version printed '$out', not 'certkeep $version'"
[ "$(command -v certkeep)" = /usr/bin/certkeep ] || fail "certkeep is $(command -v certkeep), not /usr/bin/certkeep"
# Man pages, found by man itself, and one per subcommand.
[ "$(man -w certkeep)" = /usr/share/man/man1/certkeep.1.gz ] || fail "man -w certkeep: $(man -w certkeep 2>&1)"
for page in certkeep-renew certkeep-issue certkeep-probe certkeep-import-certbot; do
    man -w "$page" >/dev/null || fail "man -w $page"
done
LANG=C MANWIDTH=200 man -P cat certkeep-renew | grep -q -- '--dry-run' || fail "certkeep-renew(1) lacks --dry-run"
# Completions where Debian's shells look for them; bash's is loaded and works.
for f in /usr/share/bash-completion/completions/certkeep /usr/share/zsh/vendor-completions/_certkeep \
    /usr/share/fish/vendor_completions.d/certkeep.fish; do
    [ -s "$f" ] || fail "missing completion file $f"
done
head -1 /usr/share/zsh/vendor-completions/_certkeep | grep -q '^#compdef certkeep' || fail "zsh completion lacks #compdef"
got=$(bash --norc --noprofile -c 'source /usr/share/bash-completion/completions/certkeep
    COMP_WORDS=(certkeep che); COMP_CWORD=1; COMP_LINE="certkeep che"; COMP_POINT=12
    _certkeep certkeep che certkeep; echo "${COMPREPLY[*]}"')
[ "$got" = check-config ] || fail "bash completion of 'certkeep che' gave '$got'"
# Units: installed, valid, none enabled.
units=(/usr/lib/systemd/system/certkeep.service /usr/lib/systemd/system/certkeep-renew.service
    /usr/lib/systemd/system/certkeep-renew.timer /usr/lib/systemd/system/certkeep-probe.service
    /usr/lib/systemd/system/certkeep-probe.timer)
systemd-analyze verify "${units[@]}" || fail "systemd-analyze verify on the installed units"
grep -q '^ExecStart=/usr/bin/certkeep ' /usr/lib/systemd/system/certkeep.service || fail "certkeep.service does not run /usr/bin/certkeep"
enabled=$(find /etc/systemd/system -name 'certkeep*' 2>/dev/null || true)
[ -z "$enabled" ] || fail "units enabled by the package: $enabled"
# Configuration: a conffile, root-only, valid as shipped.
[ "$(stat -c %a /etc/certkeep/certkeep.toml)" = 600 ] || fail "/etc/certkeep/certkeep.toml is not 0600"
grep -qx /etc/certkeep/certkeep.toml /var/lib/dpkg/info/certkeep.conffiles || fail "certkeep.toml is not a conffile"
certkeep check-config || fail "certkeep check-config on the installed /etc/certkeep/certkeep.toml"
# What postinst creates, and running it again changes nothing.
[ "$(stat -c %a /var/lib/certkeep)" = 755 ] || fail "/var/lib/certkeep is not 0755"
[ "$(stat -c %a /var/lib/certkeep/state)" = 700 ] || fail "/var/lib/certkeep/state is not 0700"
before=$(stat -c '%n %a %U' /var/lib/certkeep /var/lib/certkeep/state /etc/certkeep /etc/certkeep/certkeep.toml)
DPKG_MAINTSCRIPT_PACKAGE=certkeep DPKG_MAINTSCRIPT_NAME=postinst /var/lib/dpkg/info/certkeep.postinst configure "$version-1" || fail "postinst configure, second run"
DPKG_MAINTSCRIPT_PACKAGE=certkeep DPKG_MAINTSCRIPT_NAME=postinst /var/lib/dpkg/info/certkeep.postinst configure "$version-1" || fail "postinst configure, third run"
after=$(stat -c '%n %a %U' /var/lib/certkeep /var/lib/certkeep/state /etc/certkeep /etc/certkeep/certkeep.toml)
[ "$before" = "$after" ] || fail "postinst run again changed: $before -> $after"
echo "installed package: ok"

# A store with a lineage, an edited configuration and a file the operator
# added next to it.
mkdir -p /var/lib/certkeep/archive/example.org /var/lib/certkeep/live/example.org
echo "KEY MATERIAL" >/var/lib/certkeep/archive/example.org/privkey1.pem
chmod 600 /var/lib/certkeep/archive/example.org/privkey1.pem
ln -s ../../archive/example.org/privkey1.pem /var/lib/certkeep/live/example.org/privkey.pem
echo '# edited' >>/etc/certkeep/certkeep.toml
echo "secret" >/etc/certkeep/eab-hmac
store_before=$(find /var/lib/certkeep -printf '%p %m %y %s %l\n' | sort; sha256sum /var/lib/certkeep/archive/example.org/privkey1.pem)

apt-get remove -y -qq certkeep >/dev/null
[ ! -e /usr/bin/certkeep ] || fail "/usr/bin/certkeep left after remove"
[ ! -e /usr/lib/systemd/system/certkeep.service ] || fail "certkeep.service left after remove"
grep -qx '# edited' /etc/certkeep/certkeep.toml || fail "remove did not keep the edited configuration"
store_now=$(find /var/lib/certkeep -printf '%p %m %y %s %l\n' | sort; sha256sum /var/lib/certkeep/archive/example.org/privkey1.pem)
[ "$store_now" = "$store_before" ] || fail "remove changed the store: $store_now"
echo "remove: configuration and store kept"

apt-get purge -y -qq certkeep >/dev/null
[ ! -e /etc/certkeep/certkeep.toml ] || fail "purge left /etc/certkeep/certkeep.toml"
[ "$(cat /etc/certkeep/eab-hmac)" = secret ] || fail "purge removed a file the operator added"
store_now=$(find /var/lib/certkeep -printf '%p %m %y %s %l\n' | sort; sha256sum /var/lib/certkeep/archive/example.org/privkey1.pem)
[ "$store_now" = "$store_before" ] || fail "purge changed the store: $store_now"
if dpkg-query -W -f='${Status}' certkeep 2>/dev/null | grep -q installed; then fail "still installed after purge"; fi
echo "purge: configuration removed, operator's file and store kept"
echo "package test: ok ($((SECONDS - start)) s)"
