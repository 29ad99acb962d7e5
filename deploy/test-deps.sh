#!/usr/bin/env bash
# Installs the Debian packages the test suite and the demo need, when missing (needs root):
# Samba AD DC + LDAP clients (real directory), prometheus (promtool and a real server),
# chromium (the status page test), bsdutils (`script`, the progress-on-a-terminal test).
# Tests never install anything themselves: they check these are present and fail otherwise.
# Idempotent and quiet when everything is there.
set -euo pipefail

PACKAGES=(samba samba-ad-dc samba-ad-provision samba-dsdb-modules python3-samba ldb-tools ldap-utils
          openssl iproute2 prometheus chromium bsdutils)
PACKAGES+=("$@")

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "test-deps: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
fi
echo "test-deps: installing ${missing[*]}" >&2
exec 9>/tmp/entra-writeback-apt.lock
flock 9
apt-get -o DPkg::Lock::Timeout=600 update >&2
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}" >&2
