#!/usr/bin/env bash
# How long the poller takes to read one full groups round, with AD out of the picture.
#
# Starts graph-sim with a tenant of ROUND_GROUPS groups (default 10,000) of 10 members over
# 1,000 users, then, REPEATS times (default 5), for each binary given in turn (alternating, so
# both see the same machine), runs `run --once` on a fresh state directory with AD
# unreachable: the users and groups rounds are read and committed, then the run stops at AD.
# Prints the groups round's wall time from the service's `delta round complete` log line, then
# median, min and max per binary.
#
# Usage: benches/round-read.sh BINARY...   (e.g. target/release/entra-writeback /tmp/ew-main)
# GRAPH_SIM_BIN names graph-sim (default target/release/graph-sim).
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,13p' "$0"; exit 2; }
ROUND_GROUPS=${ROUND_GROUPS:-10000}
REPEATS=${REPEATS:-5}
SIM=${GRAPH_SIM_BIN:-target/release/graph-sim}
work=$(mktemp -d)
sim_pid=
cleanup() { [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

python3 - "$work/tenant.json" "$ROUND_GROUPS" <<'PY'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
users = [{"id": "%08x-aaaa-4000-8000-%012x" % (i, i), "displayName": "U%d" % i,
          "userPrincipalName": "u%d@contoso.test" % i,
          "onPremisesSecurityIdentifier": "S-1-5-21-1-2-3-%d" % (2000 + i)} for i in range(1000)]
groups = [{"id": "%08x-bbbb-4000-8000-%012x" % (g, g), "displayName": "Group %d" % g,
           "securityEnabled": True, "mailEnabled": False, "groupTypes": [],
           "members": [{"@odata.type": "#microsoft.graph.user",
                        "id": users[(g * 7 + k) % 1000]["id"]} for k in range(10)]}
          for g in range(n)]
json.dump({"tenant_id": "contoso.onmicrosoft.com",
           "clients": [{"client_id": "11111111-2222-3333-4444-555555555555",
                        "client_secret": "round-read-secret"}],
           "users": users, "groups": groups}, open(path, "w"))
PY

"$SIM" --tenant "$work/tenant.json" --addr-file "$work/addr" > "$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.2; done
url=$(cat "$work/addr")

declare -A times
for i in $(seq 1 "$REPEATS"); do
  for bin in "$@"; do
    rm -rf "$work/state"
    cat > "$work/cfg.toml" <<CFG
[graph]
tenant_id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
authority_url = "$url"
graph_url = "$url"
[ad]
url = "ldap://127.0.0.1:1"
allow_insecure_ldap = true
bind_dn = "CN=reader,DC=example,DC=test"
target_ou = "OU=Groups,DC=example,DC=test"
[state]
path = "$work/state"
[sync]
max_attempts = 1
CFG
    ENTRA_WRITEBACK_GRAPH_CLIENT_SECRET=round-read-secret ENTRA_WRITEBACK_AD_BIND_PASSWORD=unused \
      ENTRA_WRITEBACK_LOG=info "$bin" --config "$work/cfg.toml" run --once > "$work/out.log" 2>&1 || true
    ms=$(grep '"delta round complete"' "$work/out.log" | grep '"resource":"groups"' \
      | grep -o '"ms":[0-9]*' | tail -1 | cut -d: -f2)
    [ -n "$ms" ] || { echo "$bin: no groups round in its log:"; tail -5 "$work/out.log"; exit 1; }
    echo "$bin, run $i: groups round of $ROUND_GROUPS groups in $ms ms"
    times[$bin]="${times[$bin]:-} $ms"
  done
done
for bin in "$@"; do
  echo "${times[$bin]}" | tr ' ' '\n' | grep . | sort -n | awk -v b="$bin" \
    '{v[NR]=$1} END {printf "%s: median %d ms (min %d, max %d) over %d runs\n", b, v[int((NR+1)/2)], v[1], v[NR], NR}'
done
