#!/usr/bin/env bash
# The one-command demo: a real Samba AD DC on 127.0.0.2, graph-sim with a small tenant, and
# entra-writeback replicating it; then shows the groups that appeared in AD.
#
# Usage: deploy/demo.sh [--no-wait]
#   --no-wait   exit after showing the groups (used by the test suite); otherwise the demo keeps
#               running until Ctrl-C so you can change the tenant and watch AD follow.
# Env: DEMO_DIR (default ./.demo), DEMO_HTTP_PORT (default 9464).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${DEMO_DIR:-$root/.demo}
http_port=${DEMO_HTTP_PORT:-9464}
wait_forever=1
[ "${1:-}" = "--no-wait" ] && wait_forever=0
mkdir -p "$work"
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

say "installing missing Debian packages (Samba, LDAP tools, Prometheus)"
bash "$root/deploy/test-deps.sh"
say "building entra-writeback and graph-sim"
(cd "$root" && cargo build --quiet --workspace --bins)
bin="${CARGO_TARGET_DIR:-$root/target}/debug"

say "starting Samba AD DC on 127.0.0.2"
eval "$(bash "$root/deploy/samba-ad.sh" start --ip 127.0.0.2)"
# Every bind goes over StartTLS, verified against the lab's CA (-ZZ: fail rather than go plain).
ldap() { LDAPTLS_CACERT="$EW_AD_CA_FILE" "$@" -x -ZZ -H "$EW_AD_URL" -D "$EW_AD_BIND_DN" -w "$EW_AD_BIND_PASSWORD"; }

users_ou="OU=Demo Users,$EW_AD_BASE_DN"
target_ou="OU=Cloud Groups,$EW_AD_BASE_DN"
{
    printf 'dn: %s\nobjectClass: organizationalUnit\n\n' "$users_ou"
    for u in alice bob carol dave; do
        printf 'dn: CN=%s,%s\nobjectClass: user\nsAMAccountName: demo-%s\n\n' "$u" "$users_ou" "$u"
    done
} | ldap ldapadd -c >/dev/null 2>&1 || true

say "reading the demo users' SIDs"
ldap ldapsearch -LLL -b "$users_ou" "(objectClass=user)" cn objectSid > "$work/users.ldif"

python3 - "$work" <<'PY'
import base64, json, struct, sys
work = sys.argv[1]
sids, cn = {}, None
for line in open(f"{work}/users.ldif"):
    line = line.rstrip("\n")
    if line.startswith("cn: "):
        cn = line[4:]
    elif line.startswith("objectSid:: "):
        b = base64.b64decode(line[12:])
        auth = int.from_bytes(b[2:8], "big")
        subs = struct.unpack("<%dI" % b[1], b[8:8 + 4 * b[1]])
        sids[cn] = "S-%d-%d-" % (b[0], auth) + "-".join(map(str, subs))
def uid(n): return "d0000000-0000-4000-8000-%012d" % n
users = [{"id": uid(i), "displayName": name.title(), "userPrincipalName": f"{name}@contoso.com",
          "onPremisesSecurityIdentifier": sids[name], "onPremisesSyncEnabled": True}
         for i, name in enumerate(["alice", "bob", "carol", "dave"], 1)]
users.append({"id": uid(99), "displayName": "Cloud-only Casey", "userPrincipalName": "casey@contoso.com"})
m = lambda i: {"@odata.type": "#microsoft.graph.user", "id": uid(i)}
groups = [
  {"id": "6a0e5b1c-0000-4000-8000-00000000e001", "displayName": "Engineering", "description": "All engineers",
   "groupTypes": [], "securityEnabled": True, "mailEnabled": False, "members": [m(1), m(2), m(99)]},
  {"id": "6a0e5b1c-0000-4000-8000-00000000e002", "displayName": "Marketing Team", "groupTypes": ["Unified"],
   "securityEnabled": False, "mailEnabled": True, "mailNickname": "marketing",
   "members": [m(3), {"@odata.type": "#microsoft.graph.group", "id": "6a0e5b1c-0000-4000-8000-00000000e001"}]},
  {"id": "6a0e5b1c-0000-4000-8000-00000000e003", "displayName": "File Share Readers", "groupTypes": [],
   "securityEnabled": True, "mailEnabled": False, "members": [m(1), m(3), m(4)]},
  {"id": "6a0e5b1c-0000-4000-8000-00000000e004", "displayName": "Synced From AD (skipped)", "groupTypes": [],
   "securityEnabled": True, "onPremisesSyncEnabled": True, "members": [m(1)]},
]
json.dump({"tenant_id": "contoso.onmicrosoft.com",
           "clients": [{"client_id": "demo-app", "client_secret": "demo-secret"}],
           "users": users, "groups": groups}, open(f"{work}/tenant.json", "w"), indent=1)
PY

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

say "starting graph-sim"
rm -f "$work/sim.addr"
"$bin/graph-sim" --tenant "$work/tenant.json" --addr-file "$work/sim.addr" > "$work/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/sim.addr" ] && break; sleep 0.1; done
sim=$(cat "$work/sim.addr")

cat > "$work/entra-writeback.toml" <<TOML
[graph]
tenant_id = "contoso.onmicrosoft.com"
client_id = "demo-app"
client_secret = "demo-secret"
authority_url = "$sim"
graph_url = "$sim"
poll_interval = "2s"

[ad]
url = "$EW_AD_URL"
starttls = true
ca_file = "$EW_AD_CA_FILE"
bind_dn = "$EW_AD_BIND_DN"
target_ou = "$target_ou"

[state]
path = "$work/state"

[http]
listen = "127.0.0.1:$http_port"

[log]
format = "human"
TOML

say "starting entra-writeback (logs: $work/service.log)"
ENTRA_WRITEBACK_AD_BIND_PASSWORD="$EW_AD_BIND_PASSWORD" \
    "$bin/entra-writeback" --config "$work/entra-writeback.toml" run > "$work/service.log" 2>&1 &
pids+=($!)

show() {
    ldap ldapsearch -LLL -b "$target_ou" "(objectClass=group)" cn sAMAccountName groupType description member \
        | grep -E '^(dn|cn|sAMAccountName|groupType|description|member):' || true
}
n=0
for _ in $(seq 60); do
    n=$(ldap ldapsearch -LLL -b "$target_ou" "(adminDescription=Group_*)" dn 2>/dev/null | grep -c '^dn:' || true)
    [ "$n" -ge 3 ] && break
    sleep 0.5
done
say "groups written back to AD under $target_ou:"
show
curl -fsS "http://127.0.0.1:$http_port/metrics" | grep -E '^entra_writeback_(changes_applied_total|managed_groups|queue_depth) ' >&2 || true
if [ "$n" -lt 3 ]; then
    echo "demo: the groups did not appear in AD; see $work/service.log" >&2
    tail -n 20 "$work/service.log" >&2
    exit 1
fi
[ "$wait_forever" = 1 ] || exit 0

cat >&2 <<TXT

Try it: change the cloud tenant and watch AD follow within seconds.
  curl -X PUT $sim/admin/groups/6a0e5b1c-0000-4000-8000-00000000e003 -H 'content-type: application/json' \\
       -d '{"displayName":"File Share Writers"}'
  curl -X POST $sim/admin/groups/6a0e5b1c-0000-4000-8000-00000000e001/members -H 'content-type: application/json' \\
       -d '{"add":[{"@odata.type":"#microsoft.graph.user","id":"d0000000-0000-4000-8000-000000000004"}]}'
  LDAPTLS_CACERT=$EW_AD_CA_FILE ldapsearch -x -ZZ -H $EW_AD_URL -D '$EW_AD_BIND_DN' -w '$EW_AD_BIND_PASSWORD' -b '$target_ou' cn member
  Status page: http://127.0.0.1:$http_port/   Metrics: http://127.0.0.1:$http_port/metrics   Ready: http://127.0.0.1:$http_port/readyz
Ctrl-C stops the demo (Samba keeps running; stop it with deploy/samba-ad.sh stop).
TXT
wait
