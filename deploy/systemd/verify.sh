#!/usr/bin/env bash
# Checks deploy/systemd/entra-writeback.service offline, as CI does (no systemd as PID 1
# needed): `systemd-analyze verify` must pass without a single warning (it exits 0 on an
# unknown or misplaced key, so any output fails), once as shipped and once with the
# LoadCredential= lines uncommented; and `systemd-analyze security --offline` must rate its
# exposure at most 2.0 ("OK"). Needs Debian's `systemd` package (systemd-analyze).
#
# Usage: deploy/systemd/verify.sh [UNIT]   (default: the shipped unit)
set -euo pipefail
unit=${1:-$(dirname "$0")/entra-writeback.service}
command -v systemd-analyze >/dev/null || {
    echo "systemd-analyze missing: apt-get install systemd" >&2
    exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# verify checks that ExecStart's program exists and is executable: point it at a stand-in.
mkdir "$tmp/bin"
printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/entra-writeback"
chmod +x "$tmp/bin/entra-writeback"
grep -q '^ExecStart=/usr/local/bin/entra-writeback ' "$unit" || {
    echo "$unit: ExecStart does not run /usr/local/bin/entra-writeback" >&2
    exit 1
}

failed=0
check() {
    local name=$1 file=$2 out
    if ! out=$(systemd-analyze verify --man=no "$file" 2>&1) || [[ -n $out ]]; then
        echo "systemd-analyze verify ($name) failed:" >&2
        printf '%s\n' "${out:-(exit status only)}" >&2
        failed=1
    fi
    if ! out=$(systemd-analyze security --offline=yes --threshold=20 "$file" 2>&1); then
        echo "systemd-analyze security ($name): exposure above 2.0 or unit refused:" >&2
        grep 'exposure level' <<<"$out" >&2 || printf '%s\n' "$out" >&2
        failed=1
    fi
}

mkdir "$tmp/shipped" "$tmp/credentials"
sed "s#/usr/local/bin/entra-writeback#$tmp/bin/entra-writeback#" "$unit" \
    >"$tmp/shipped/entra-writeback.service"
sed 's/^#LoadCredential=/LoadCredential=/' "$tmp/shipped/entra-writeback.service" \
    >"$tmp/credentials/entra-writeback.service"
grep -q '^LoadCredential=' "$tmp/credentials/entra-writeback.service" || {
    echo "$unit: no commented LoadCredential= lines to check" >&2
    failed=1
}
check "as shipped" "$tmp/shipped/entra-writeback.service"
check "with LoadCredential=" "$tmp/credentials/entra-writeback.service"
if [[ $failed -eq 0 ]]; then
    exposure=$(systemd-analyze security --offline=yes "$tmp/shipped/entra-writeback.service" 2>&1 |
        sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    echo "systemd unit: verify clean (as shipped and with LoadCredential=), exposure $exposure"
fi
exit "$failed"
