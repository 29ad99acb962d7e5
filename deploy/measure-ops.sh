#!/usr/bin/env bash
# The operations figures of docs/operations.md, on a lab: a Samba AD DC on a loopback IP,
# graph-sim with N security groups of 5 members (500 users with foreign-domain SIDs), and a
# built entra-writeback. Prints, for `run --once`: the initial sync, a no-op round, a run
# after the state was lost (AD already converged) — wall, user and system CPU, max RSS — then
# the restart catch-up of `run` (10 groups renamed while it was down: time to /readyz 200 and
# to the renames in AD) and its idle RSS.
#
# Usage: deploy/measure-ops.sh [N_GROUPS]       (default 1000)
# Env: BIN (default $CARGO_TARGET_DIR/release/entra-writeback); SIM_BIN (graph-sim, release
#      if built, else debug); IP of the DC it starts afresh and stops (default 127.0.0.9);
#      HTTP_PORT (default 19477); KEEP=1 keeps the logs and the state (their directory is
#      printed); INITIAL_ONLY=1 stops after the initial sync (to compare builds).
# Needs: deploy/test-deps.sh's packages, curl, bc, /usr/bin/time (Debian `time`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000}
target=${CARGO_TARGET_DIR:-$root/target}
bin=${BIN:-$target/release/entra-writeback}
sim_bin=${SIM_BIN:-$target/release/graph-sim}
[[ -x $sim_bin ]] || sim_bin=$target/debug/graph-sim
ip=${IP:-127.0.0.9}
port=${HTTP_PORT:-19477}
for f in "$bin" "$sim_bin" /usr/bin/time; do [[ -x $f ]] || { echo "missing $f" >&2; exit 1; }; done
out=$(mktemp -d)
# A fresh DC for every run: the figures include creating the foreign security principals.
bash "$root/deploy/samba-ad.sh" stop --ip "$ip" >/dev/null 2>&1 || true
eval "$(bash "$root/deploy/samba-ad.sh" start --ip "$ip" 2>/dev/null)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    bash "$root/deploy/samba-ad.sh" stop --ip "$ip" >/dev/null 2>&1 || true
    if [[ -n ${KEEP:-} ]]; then echo "logs kept in $out" >&2; else rm -rf "$out"; fi
}
trap cleanup EXIT
ldap() { LDAPTLS_CACERT="$EW_AD_CA_FILE" "$@" -x -ZZ -H "$EW_AD_URL" -D "$EW_AD_BIND_DN" -w "$EW_AD_BIND_PASSWORD"; }
ou="OU=Measure $n $(date +%s),$EW_AD_BASE_DN"
printf 'dn: %s\nobjectClass: organizationalUnit\n\n' "$ou" | ldap ldapadd >/dev/null

python3 - "$out" "$n" <<'PY'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
uid = lambda i: "a0000000-0000-4000-8000-%012d" % i
gid = lambda i: "b0000000-0000-4000-8000-%012d" % i
users = [{"id": uid(i), "displayName": f"U{i}",
          "onPremisesSecurityIdentifier": f"S-1-5-21-4000-77-88-{1000 + i}"} for i in range(500)]
member = lambda i: {"@odata.type": "#microsoft.graph.user", "id": uid(i)}
groups = [{"id": gid(g), "displayName": f"Group {g}", "groupTypes": [], "securityEnabled": True,
           "mailEnabled": False, "members": [member((g * 7 + k) % 500) for k in range(5)]}
          for g in range(n)]
json.dump({"tenant_id": "contoso.onmicrosoft.com",
           "clients": [{"client_id": "m", "client_secret": "s"}],
           "users": users, "groups": groups}, open(f"{out}/tenant.json", "w"))
PY
"$sim_bin" --tenant "$out/tenant.json" --addr-file "$out/sim.addr" --page-size 500 >"$out/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s $out/sim.addr ]] && break; sleep 0.1; done
sim=$(cat "$out/sim.addr")
cat >"$out/ew.toml" <<TOML
[graph]
tenant_id = "contoso.onmicrosoft.com"
client_id = "m"
authority_url = "$sim"
graph_url = "$sim"
poll_interval = "2s"
[ad]
url = "$EW_AD_URL"
starttls = true
ca_file = "$EW_AD_CA_FILE"
bind_dn = "$EW_AD_BIND_DN"
target_ou = "$ou"
[state]
path = "$out/state"
[http]
listen = "127.0.0.1:$port"
[log]
format = "json"
TOML
export ENTRA_WRITEBACK_GRAPH_CLIENT_SECRET=s ENTRA_WRITEBACK_AD_BIND_PASSWORD="$EW_AD_BIND_PASSWORD"
export ENTRA_WRITEBACK_PROGRESS=off
once() {
    local label=$1 t ops
    /usr/bin/time -f "%e %U %S %M" -o "$out/$label.time" "$bin" --config "$out/ew.toml" run --once \
        >"$out/$label.log" 2>&1 || echo "$label: exit $?" >&2
    read -r wall user sys rss < <(tail -1 "$out/$label.time")
    ops=$(grep -o '"ldap_operations":[0-9]*' "$out/$label.log" | tail -1 | cut -d: -f2)
    printf '%-18s wall %7.2f s  cpu %6.2f s  max RSS %4d MB  LDAP ops %s\n' "$label" "$wall" \
        "$(bc <<<"$user + $sys")" "$((rss / 1024))" "${ops:-?}"
}
count() { ldap ldapsearch -LLL -b "$ou" "${1:-(adminDescription=Group_*)}" dn 2>/dev/null | grep -c '^dn:' || true; }
echo "N=$n groups x 5 members; $bin"
once initial
[[ -z ${INITIAL_ONLY:-} ]] || exit 0
once no-op
mv "$out/state" "$out/state.kept"
once state-lost
echo "groups in AD after the state-lost run: $(count) (expected $n)"
rm -rf "$out/state" && mv "$out/state.kept" "$out/state"
echo "state size: $(du -sh "$out/state" | cut -f1)"

for g in $(seq 0 9); do
    curl -fsS -X PUT "$sim/admin/groups/b0000000-0000-4000-8000-$(printf %012d "$g")" \
        -H 'content-type: application/json' -d "{\"displayName\":\"Renamed $g\"}" >/dev/null
done
start=$(date +%s.%N)
"$bin" --config "$out/ew.toml" run >"$out/restart.log" 2>&1 &
svc=$!
pids+=("$svc")
ready="" converged=""
for _ in $(seq 1200); do
    if [[ -z $ready ]] && curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; then
        ready=$(date +%s.%N)
    fi
    if [[ $(count "(displayName=Renamed *)") -ge 10 ]]; then converged=$(date +%s.%N); break; fi
    sleep 0.1
done
[[ -n $ready ]] || ready=$converged
echo "restart: /readyz 200 after $(bc <<<"$ready - $start") s; 10 renames in AD after $(bc <<<"${converged:-0} - $start") s"
sleep 3
echo "idle run: VmRSS $(awk '/VmRSS/{print int($2/1024)}' "/proc/$svc/status") MB"
kill -TERM "$svc"
wait "$svc" || true
