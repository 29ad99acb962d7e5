#!/usr/bin/env bash
# samba-ad.sh — a real Samba Active Directory DC on a loopback IP, LDAP only,
# for entra-writeback's integration tests, benchmarks and demos.
#
#   samba-ad.sh start  [--ip 127.0.0.2] [--dir DIR] [--no-schema-patch | --exchange-schema]
#                      [--keep-data]
#                      (--keep-data: restart a stopped instance on its existing data)
#   samba-ad.sh stop   [--ip IP] [--dir DIR]
#   samba-ad.sh stop   --all      (every instance under ${TMPDIR:-/tmp}, whatever its IP)
#   samba-ad.sh env    [--ip IP] [--dir DIR]
#   samba-ad.sh status [--ip IP] [--dir DIR]
#
# `start` prints shell-sourceable EW_AD_* lines on stdout (everything else goes
# to stderr), so `eval "$(deploy/samba-ad.sh start)"` works. It is idempotent:
# a running, answering instance for the same directory is reused.
#
# How it works (see shared/reference/samba-ad-lab.md for the measurements):
# - Missing Debian packages are installed with apt-get (needs root).
# - `samba-tool domain provision` (≈5–10 s) runs once per Samba version; the
#   result is a relocatable template cached in
#   ${ENTRA_WRITEBACK_CACHE:-$HOME/.cache/entra-writeback}/samba-template-<version>.
#   That template also carries the msDS-ExternalDirectoryObjectId schema patch
#   (deploy/samba-schema-patch.py); --no-schema-patch uses a separate,
#   unpatched template (samba-template-<version>-unpatched); --exchange-schema
#   one that also has Exchange's mailNickname (samba-template-<version>-exchange;
#   Samba's stock schema has mail and proxyAddresses, not mailNickname).
# - An instance is `cp -a` of a template plus a runtime smb.conf that runs only
#   the LDAP server, on one loopback IP, with our own CA-signed EC certificate
#   (Samba's self-signed one has no subjectAltName, which rustls rejects).
# - Every instance of a template shares the domain SID and GUIDs.
# - Instance dir: ${TMPDIR:-/tmp}/entra-writeback-samba-<ip> unless --dir.
# - Samba stops by itself after ${SAMBA_MAX_RUNTIME:-7200} s (a CI safety net).
# - The instance marker records `started_by=$EW_CI_RUN` (empty outside CI): .ci/run stops
#   the DCs its run started and no other. (Samba overwrites its own environment when it
#   renames itself to "samba: root process", so the process cannot tell.)
# - Seeding: OU=Cloud Groups, OU=Writeback Lab (where tests make their OUs) and the
#   service account svc-writeback, which gets the group writeback delegation of
#   deploy/ad/samba-delegate.sh on both OUs and no other right (no admin group).
# - A `start` that fails after samba was launched (not answering, seeding the OUs or
#   the service account, INT/TERM) stops that samba before it exits.
#
# Concurrency: template creation (and apt-get) is serialised with flock on
# <cache>/samba-setup.lock, each instance with flock on <dir>.lock.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR

readonly REALM=EXAMPLE.TEST
readonly DOMAIN=EXAMPLE
readonly HOST_NAME=dc1
readonly DNS_NAME=dc1.example.test
readonly BASE_DN='DC=example,DC=test'
readonly ADMIN_DN="CN=Administrator,CN=Users,${BASE_DN}"
readonly ADMIN_PASSWORD='Passw0rd!Test'
readonly TARGET_OU="OU=Cloud Groups,${BASE_DN}"
readonly SVC_SAM=svc-writeback
readonly SVC_DN="CN=${SVC_SAM},CN=Users,${BASE_DN}"
readonly SVC_PASSWORD='Svc-Passw0rd!'
# Where tests make their OUs: the service account's delegation (deploy/ad/samba-delegate.sh) is
# set here once and every OU below inherits it, as on TARGET_OU.
readonly LAB_OU="OU=Writeback Lab,${BASE_DN}"

# The Debian packages this script relies on. samba-ad-provision is only a
# Recommends of samba-ad-dc but provisioning fails without it.
readonly PACKAGES=(samba samba-ad-dc samba-ad-provision samba-dsdb-modules
    python3-samba ldb-tools ldap-utils openssl iproute2)
# Samba's LDAP ports are hard-coded.
readonly LDAP_PORTS=(389 636 3268 3269)
# Written into every instance dir; `start` only ever deletes a dir carrying it.
readonly INSTANCE_MARKER=.entra-writeback-samba
readonly TEMPLATE_MARKER=.template-complete
readonly READY_TIMEOUT=60
readonly LOCK_TIMEOUT=900

log() { printf 'samba-ad: %s\n' "$*" >&2; }
die() {
    printf 'samba-ad: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat >&2 <<'EOF'
usage: samba-ad.sh start  [--ip 127.0.0.2] [--dir DIR] [--no-schema-patch | --exchange-schema]
       samba-ad.sh stop   [--ip IP] [--dir DIR]
       samba-ad.sh stop   --all
       samba-ad.sh env    [--ip IP] [--dir DIR]
       samba-ad.sh status [--ip IP] [--dir DIR]
EOF
    exit 2
}

now_ms() { date +%s%3N; }

# --- options ----------------------------------------------------------------

COMMAND=
IP=
DIR=
SCHEMA_PATCH=true
EXCHANGE_SCHEMA=false
KEEP_DATA=false
ALL=false

parse_args() {
    [[ $# -ge 1 ]] || usage
    COMMAND=$1
    shift
    case $COMMAND in
    start | stop | env | status) ;;
    -h | --help | help) usage ;;
    *) die "unknown command '$COMMAND' (start|stop|env|status)" ;;
    esac
    while [[ $# -gt 0 ]]; do
        case $1 in
        --ip)
            [[ $# -ge 2 ]] || die "--ip needs a value"
            IP=$2
            shift 2
            ;;
        --ip=*)
            IP=${1#--ip=}
            shift
            ;;
        --dir)
            [[ $# -ge 2 ]] || die "--dir needs a value"
            DIR=$2
            shift 2
            ;;
        --dir=*)
            DIR=${1#--dir=}
            shift
            ;;
        --no-schema-patch)
            [[ $COMMAND == start ]] || die "--no-schema-patch only applies to start"
            SCHEMA_PATCH=false
            shift
            ;;
        --exchange-schema)
            [[ $COMMAND == start ]] || die "--exchange-schema only applies to start"
            EXCHANGE_SCHEMA=true
            shift
            ;;
        --keep-data)
            [[ $COMMAND == start ]] || die "--keep-data only applies to start"
            KEEP_DATA=true
            shift
            ;;
        --all)
            [[ $COMMAND == stop ]] || die "--all only applies to stop"
            ALL=true
            shift
            ;;
        -h | --help) usage ;;
        *) die "unknown option '$1'" ;;
        esac
    done

    if [[ $EXCHANGE_SCHEMA == true && $SCHEMA_PATCH == false ]]; then
        die "--exchange-schema builds on the schema patch; it cannot go with --no-schema-patch"
    fi
    if [[ $ALL == true && ( -n $IP || -n $DIR ) ]]; then
        die "stop --all takes neither --ip nor --dir"
    fi
    if [[ -n $IP ]]; then
        [[ $IP =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] ||
            die "--ip must be an IPv4 loopback address (127.x.y.z), got '$IP'"
    fi
    if [[ -z $DIR ]]; then
        # With only --dir given to stop/env/status, the IP comes from the dir.
        DIR="${TMPDIR:-/tmp}/entra-writeback-samba-${IP:-127.0.0.2}"
    fi
    # Absolute, and free of characters that would need quoting in the EW_AD_*
    # lines or in smb.conf.
    if [[ $DIR != /* ]]; then
        DIR="$PWD/$DIR"
    fi
    DIR=${DIR%/}
    [[ $DIR =~ ^/[A-Za-z0-9_./+-]+$ ]] ||
        die "--dir '$DIR' must contain only letters, digits and _ . / + -"
    [[ $DIR != / ]] || die "--dir must not be /"
}

# --- instance metadata ---------------------------------------------------------

# The marker file holds key=value lines: ip, schema_patched, exchange_schema,
# template, started_at, max_runtime.
marker_get() {
    local key=$1 file="$DIR/$INSTANCE_MARKER"
    [[ -f $file ]] || return 0
    sed -n "s/^${key}=//p" "$file" | head -n 1
}

# Fill IP from the instance when only --dir was given.
resolve_ip() {
    if [[ -z $IP ]]; then
        IP=$(marker_get ip)
        [[ -n $IP ]] || IP=127.0.0.2
    fi
}

# True if the process exists and is not a zombie (a dead samba whose parent
# has not reaped it yet still answers kill -0).
pid_alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

instance_pid() {
    local pid
    [[ -f $DIR/samba.pid ]] || return 1
    pid=$(<"$DIR/samba.pid")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" || return 1
    # Guard against pid reuse: it must still be a samba process.
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == samba ]] || return 1
    printf '%s\n' "$pid"
}

answering() {
    timeout 10 ldapsearch -x -LLL -H "ldap://$1" -o nettimeout=3 \
        -s base -b '' defaultNamingContext >/dev/null 2>&1
}

print_env() {
    local pid=$1
    printf 'EW_AD_URL=ldap://%s\n' "$IP"
    printf 'EW_AD_LDAPS_URL=ldaps://%s\n' "$IP"
    printf 'EW_AD_BIND_DN=%s\n' "$ADMIN_DN"
    printf 'EW_AD_BIND_PASSWORD=%s\n' "$ADMIN_PASSWORD"
    printf 'EW_AD_BASE_DN=%s\n' "$BASE_DN"
    printf 'EW_AD_CA_FILE=%s\n' "$DIR/tls/ca.pem"
    printf 'EW_AD_DIR=%s\n' "$DIR"
    printf 'EW_AD_PID=%s\n' "$pid"
    printf 'EW_AD_SVC_BIND_DN=%s\n' "$SVC_DN"
    printf 'EW_AD_SVC_BIND_PASSWORD=%s\n' "$SVC_PASSWORD"
    # Single-quoted: the value holds a space, and `eval "$(samba-ad.sh start)"` must work.
    printf "EW_AD_LAB_OU='%s'\n" "$LAB_OU"
    printf 'EW_AD_SCHEMA_PATCHED=%s\n' "$(marker_get schema_patched)"
    printf 'EW_AD_EXCHANGE_SCHEMA=%s\n' "$(exchange_flag)"
}

# The running instance's exchange_schema (instances from before the flag: false).
exchange_flag() {
    local v
    v=$(marker_get exchange_schema)
    printf '%s\n' "${v:-false}"
}

lock_or_wait() {
    # lock_or_wait FD DESCRIPTION: take an exclusive flock on an open fd.
    local fd=$1 what=$2
    if ! flock -n "$fd"; then
        log "waiting for $what"
        flock -w "$LOCK_TIMEOUT" "$fd" || die "timed out after ${LOCK_TIMEOUT}s waiting for $what"
    fi
}

# --- packages and template -----------------------------------------------------

ensure_packages() {
    local missing=() pkg installed
    command -v dpkg-query >/dev/null || die "dpkg-query not found: this script supports Debian only"
    # One dpkg-query for all (unknown packages only print to stderr).
    installed=" $(dpkg-query -W -f='${Package}:${db:Status-Status} ' "${PACKAGES[@]}" 2>/dev/null || true)"
    for pkg in "${PACKAGES[@]}"; do
        [[ $installed == *" $pkg:installed "* ]] || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $(id -u) -eq 0 ]] || die "missing packages (${missing[*]}); run as root or install them"
    log "installing ${missing[*]} (apt-get)"
    local t0
    t0=$(now_ms)
    apt-get -o DPkg::Lock::Timeout=600 update >&2 || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        -o DPkg::Lock::Timeout=600 "${PACKAGES[@]}" >&2 ||
        die "apt-get install failed"
    log "packages installed in $(($(now_ms) - t0)) ms"
}

samba_version() {
    local v
    v=$(samba -V | awk '{print $2; exit}')
    [[ -n $v ]] || die "cannot determine the Samba version from 'samba -V'"
    printf '%s\n' "${v//[^A-Za-z0-9._+-]/_}"
}

# Replace every occurrence of a literal string in a file.
replace_in_file() {
    local file=$1 from=$2 to=$3 content
    content=$(<"$file")
    printf '%s\n' "${content//"$from"/"$to"}" >"$file"
}

provision_template() {
    local tpl=$1 t0
    rm -rf "$tpl" "$tpl.provision.log"
    log "provisioning Samba AD template $tpl (one-off, ~10 s)"
    t0=$(now_ms)
    if ! samba-tool domain provision --realm="$REALM" --domain="$DOMAIN" \
        --server-role=dc --dns-backend=NONE --use-rfc2307 \
        --host-name="$HOST_NAME" --adminpass="$ADMIN_PASSWORD" \
        --targetdir="$tpl" >"$tpl.provision.log" 2>&1; then
        tail -n 30 "$tpl.provision.log" >&2 || true
        rm -rf "$tpl"
        die "samba-tool domain provision failed (log: $tpl.provision.log)"
    fi
    touch "$tpl/$TEMPLATE_MARKER"
    log "provisioned in $(($(now_ms) - t0)) ms"
}

# Prints the path of a complete template of the wanted flavour, creating it
# (under the setup lock) if needed.
# Builds template TO as a copy of template FROM with samba-schema-patch.py applied (extra
# arguments passed to it); LABEL names it in the log. Called under the setup lock.
derive_template() {
    local from=$1 to=$2 label=$3 t0
    shift 3
    log "building the $label template $to"
    t0=$(now_ms)
    rm -rf "$to"
    cp -a "$from" "$to"
    rm -f "$to/$TEMPLATE_MARKER"
    # The provisioned smb.conf has absolute paths; the patch opens sam.ldb through it, so
    # point it at the copy.
    replace_in_file "$to/etc/smb.conf" "$from/" "$to/"
    if ! /usr/bin/python3 "$SCRIPT_DIR/samba-schema-patch.py" "$@" "$to/etc/smb.conf"; then
        rm -rf "$to"
        die "$label schema patch failed"
    fi
    touch "$to/$TEMPLATE_MARKER"
    log "$label template ready in $(($(now_ms) - t0)) ms"
}

ensure_template() {
    local cache version base patched exchange t0
    cache=${ENTRA_WRITEBACK_CACHE:-${HOME:?HOME is not set}/.cache/entra-writeback}
    mkdir -p "$cache"

    exec 8>"$cache/samba-setup.lock"
    lock_or_wait 8 "the setup lock ($cache/samba-setup.lock)"

    ensure_packages
    version=$(samba_version)
    base="$cache/samba-template-$version-unpatched"
    patched="$cache/samba-template-$version"
    exchange="$cache/samba-template-$version-exchange"
    [[ -f $base/$TEMPLATE_MARKER ]] || provision_template "$base"

    if [[ $SCHEMA_PATCH == true && ! -f $patched/$TEMPLATE_MARKER ]]; then
        derive_template "$base" "$patched" "schema-patched"
    fi
    if [[ $EXCHANGE_SCHEMA == true && ! -f $exchange/$TEMPLATE_MARKER ]]; then
        derive_template "$patched" "$exchange" "Exchange-schema" --exchange
    fi
    exec 8>&-

    if [[ $EXCHANGE_SCHEMA == true ]]; then
        printf '%s\n' "$exchange"
    elif [[ $SCHEMA_PATCH == true ]]; then
        printf '%s\n' "$patched"
    else
        printf '%s\n' "$base"
    fi
}

# --- instance ------------------------------------------------------------------

check_ports_free() {
    local busy
    # A listener on the same IP, or on a wildcard address, blocks the port.
    busy=$(ss -Hltnp 2>/dev/null | awk -v ip="$IP" -v ports="${LDAP_PORTS[*]}" '
        BEGIN { n = split(ports, p, " "); for (i = 1; i <= n; i++) want[p[i]] = 1 }
        {
            host = $4; sub(/:[^:]*$/, "", host)
            port = $4; sub(/.*:/, "", port)
            if (want[port] && (host == ip || host == "0.0.0.0" || host == "*" || host == "[::]")) print
        }' || true)
    if [[ -n $busy ]]; then
        printf '%s\n' "$busy" >&2
        die "another process already listens on $IP (ports ${LDAP_PORTS[*]}); stop it or use another --ip"
    fi
}

make_tls() {
    local tls=$DIR/tls
    mkdir -p "$tls"
    (
        umask 077
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout "$tls/ca-key.pem" -out "$tls/ca.pem" -days 3650 \
            -subj "/CN=entra-writeback test CA $IP" \
            -addext 'basicConstraints=critical,CA:TRUE' \
            -addext 'keyUsage=critical,keyCertSign,cRLSign' 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout "$tls/key.pem" -out "$tls/server.csr" \
            -subj "/CN=$DNS_NAME" 2>/dev/null
        cat >"$tls/server.ext" <<EOF
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:$DNS_NAME,DNS:localhost,IP:$IP
EOF
        openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca-key.pem" \
            -CAcreateserial -days 825 -sha256 -extfile "$tls/server.ext" \
            -out "$tls/cert.pem" 2>/dev/null
    ) || die "openssl failed to create the test CA and server certificate"
    # Samba refuses a key readable by others; clients only need ca.pem.
    chmod 600 "$tls/key.pem" "$tls/ca-key.pem"
    chmod 644 "$tls/ca.pem" "$tls/cert.pem"
}

write_smb_conf() {
    mkdir -p "$DIR/run" "$DIR/log" "$DIR/cache"
    cat >"$DIR/etc/smb.conf" <<EOF
# Runtime configuration written by deploy/samba-ad.sh: LDAP server only.
[global]
	netbios name = ${HOST_NAME^^}
	workgroup = $DOMAIN
	realm = $REALM
	server role = active directory domain controller
	server services = ldap
	interfaces = $IP/8
	bind interfaces only = yes
	private dir = $DIR/private
	state directory = $DIR/state
	cache directory = $DIR/cache
	lock directory = $DIR
	pid directory = $DIR/run
	binddns dir = $DIR/bind-dns
	log file = $DIR/log/log.%m
	idmap_ldb:use rfc2307 = yes
	ldap server require strong auth = no
	ldb:nosync = true
	tls enabled = yes
	tls keyfile = $DIR/tls/key.pem
	tls certfile = $DIR/tls/cert.pem
	tls cafile = $DIR/tls/ca.pem
EOF
}

# LDIF add that tolerates "already exists" (68).
ldap_add_idempotent() {
    local what=$1 url=$2 rc=0 out
    out=$(LDAPTLS_CACERT="$DIR/tls/ca.pem" ldapadd -x -H "$url" -D "$ADMIN_DN" -w "$ADMIN_PASSWORD" 2>&1) || rc=$?
    case $rc in
    0) log "created $what" ;;
    68) ;;
    *)
        printf '%s\n' "$out" >&2
        die "could not create $what (ldapadd exit $rc)"
        ;;
    esac
}

seed_directory() {
    # Every bind that carries a password goes over TLS (ldaps, verified with our CA).
    ldap_add_idempotent "$TARGET_OU" "ldaps://$IP" <<EOF
dn: $TARGET_OU
objectClass: organizationalUnit
ou: Cloud Groups
description: Groups written back from Microsoft Entra ID
EOF

    # AD only accepts unicodePwd over an encrypted connection anyway.
    local pwd_b64
    pwd_b64=$(printf '"%s"' "$SVC_PASSWORD" | iconv -f UTF-8 -t UTF-16LE | base64 -w0)
    ldap_add_idempotent "$SVC_DN" "ldaps://$IP" <<EOF
dn: $SVC_DN
objectClass: user
sAMAccountName: $SVC_SAM
userPrincipalName: $SVC_SAM@${REALM,,}
description: entra-writeback service account (tests)
unicodePwd:: $pwd_b64
userAccountControl: 66048
EOF

    ldap_add_idempotent "$LAB_OU" "ldaps://$IP" <<EOF
dn: $LAB_OU
objectClass: organizationalUnit
ou: Writeback Lab
description: Test OUs; svc-writeback holds the group writeback delegation here
EOF

    # The service account gets what deploy/ad/ grants and nothing more: no admin rights.
    # samba-tool works on the instance's database directly (no password involved).
    bash "$SCRIPT_DIR/ad/samba-delegate.sh" --url "$DIR/private/sam.ldb" \
        --conf "$DIR/etc/smb.conf" "$SVC_DN" "$TARGET_OU" "$LAB_OU" ||
        die "could not delegate $TARGET_OU and $LAB_OU to $SVC_DN"

    LDAPTLS_CACERT="$DIR/tls/ca.pem" timeout 10 ldapsearch -x -LLL -H "ldaps://$IP" \
        -D "$SVC_DN" -w "$SVC_PASSWORD" -s base -b "$BASE_DN" dn >/dev/null 2>&1 ||
        die "the service account $SVC_DN cannot bind"
    printf 'delegated=true\n' >>"$DIR/$INSTANCE_MARKER"
}

# Whether this instance was seeded by this version of the script (OUs, account, delegation).
seeded() { [[ $(marker_get delegated) == true ]]; }

stop_pid() {
    local pid=$1 i
    log "stopping samba (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    log "samba (pid $pid) ignored TERM for 10 s; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    die "samba (pid $pid) did not exit"
}

# EXIT trap of `start` while the samba it started is not ready yet: stop that samba, keep the
# exit status.
STARTED_PID=
stop_started() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $STARTED_PID ]]; then
        log "start failed; stopping the samba it started (pid $STARTED_PID)"
        (stop_pid "$STARTED_PID") || true
        rm -f "$DIR/samba.pid"
    fi
    exit "$status"
}

cmd_start() {
    [[ -n $IP ]] || IP=127.0.0.2
    local t0 pid template patched_flag
    t0=$(now_ms)
    mkdir -p "$(dirname "$DIR")"
    exec 9>"$DIR.lock"
    lock_or_wait 9 "the instance lock ($DIR.lock)"

    if pid=$(instance_pid); then
        [[ $(marker_get ip) == "$IP" ]] ||
            die "the instance in $DIR (pid $pid) runs on $(marker_get ip), not $IP; stop it first"
        if answering "$IP"; then
            [[ $(marker_get schema_patched) == "$SCHEMA_PATCH" && $(exchange_flag) == "$EXCHANGE_SCHEMA" ]] ||
                die "the running instance in $DIR has schema_patched=$(marker_get schema_patched) exchange_schema=$(exchange_flag); stop it first or use another --ip/--dir"
            local started max remaining
            started=$(marker_get started_at)
            max=$(marker_get max_runtime)
            remaining=$((${started:-0} + ${max:-0} - $(date +%s)))
            if ((remaining < 900)); then
                log "warning: the reused instance stops itself in ${remaining}s (--maximum-runtime)"
            fi
            log "reusing running Samba AD DC (pid $pid) at ldap://$IP"
            seeded || seed_directory
            print_env "$pid"
            return 0
        fi
        log "instance in $DIR (pid $pid) is not answering on $IP; restarting it"
        stop_pid "$pid"
    fi

    # Installs missing packages too (under the setup lock), so it comes first.
    template=$(ensure_template)
    check_ports_free

    local kept=false
    if [[ ${KEEP_DATA:-false} == true && -f $DIR/$INSTANCE_MARKER && -f $DIR/tls/ca.pem ]]; then
        kept=true # restart a stopped instance on its own data (an outage, not a new DC)
    elif [[ -e $DIR ]]; then
        if [[ -f $DIR/$INSTANCE_MARKER ]]; then
            rm -rf "$DIR"
        elif [[ -d $DIR && -z $(ls -A "$DIR") ]]; then
            rmdir "$DIR"
        else
            die "$DIR exists and is not a samba-ad.sh instance; refusing to overwrite it"
        fi
    fi
    [[ $kept == true ]] || cp -a "$template" "$DIR"
    rm -f "$DIR/$TEMPLATE_MARKER"
    patched_flag=$SCHEMA_PATCH
    local max_runtime=${SAMBA_MAX_RUNTIME:-7200}
    [[ $max_runtime =~ ^[0-9]+$ ]] || die "SAMBA_MAX_RUNTIME must be a number of seconds"
    cat >"$DIR/$INSTANCE_MARKER" <<EOF
ip=$IP
schema_patched=$patched_flag
exchange_schema=$EXCHANGE_SCHEMA
template=$template
started_at=$(date +%s)
max_runtime=$max_runtime
started_by=${EW_CI_RUN:-}
EOF
    write_smb_conf
    [[ $kept == true ]] || make_tls

    # Detached in its own session; fds 8/9 (our locks) must not leak into it,
    # or the instance lock would be held for the daemon's lifetime.
    setsid samba -i -M single -s "$DIR/etc/smb.conf" --debug-stdout -d1 \
        --maximum-runtime="$max_runtime" \
        </dev/null >"$DIR/samba.log" 2>&1 8>&- 9>&- &
    pid=$!
    printf '%s\n' "$pid" >"$DIR/samba.pid"
    log "started samba (pid $pid), waiting for ldap://$IP"
    # From here until the instance is ready, any failure (a die, a failing command under
    # set -e, or INT/TERM) stops the samba we just started instead of leaving it running.
    STARTED_PID=$pid
    trap stop_started EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    local deadline=$((SECONDS + READY_TIMEOUT))
    until answering "$IP"; do
        if ! pid_alive "$pid"; then
            tail -n 30 "$DIR/samba.log" >&2 || true
            die "samba exited during startup (log: $DIR/samba.log)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$DIR/samba.log" >&2 || true
            die "samba did not answer on ldap://$IP within ${READY_TIMEOUT}s (log: $DIR/samba.log)"
        fi
        sleep 0.1
    done
    seed_directory
    trap - EXIT INT TERM
    STARTED_PID=
    log "Samba AD DC ready at ldap://$IP in $(($(now_ms) - t0)) ms (dir $DIR)"
    print_env "$pid"
}

cmd_stop() {
    local pid
    [[ -e $DIR ]] || {
        log "no instance in $DIR"
        return 0
    }
    exec 9>"$DIR.lock"
    lock_or_wait 9 "the instance lock ($DIR.lock)"
    if pid=$(instance_pid); then
        stop_pid "$pid"
        log "stopped"
    else
        log "not running ($DIR)"
    fi
    rm -f "$DIR/samba.pid"
}

# stop --all: every instance directory under ${TMPDIR:-/tmp} (each carries the marker and
# names its IP), then any samba process still writing to one of those instances' samba.log
# (e.g. one whose pid file is gone). Samba rewrites its command line ("samba: root process"),
# so its stdout, which `start` points at <dir>/samba.log, is what identifies it.
cmd_stop_all() {
    local root=${TMPDIR:-/tmp} d pid out failed=0
    root=${root%/}
    for d in "$root"/entra-writeback-samba-*; do
        [[ -d $d && -f $d/$INSTANCE_MARKER ]] || continue
        DIR=$d
        IP=$(marker_get ip)
        log "stopping the instance in $d (${IP:-unknown ip})"
        (cmd_stop) || failed=1
    done
    for pid in $(pgrep -x samba 2>/dev/null || true); do
        out=$(readlink "/proc/$pid/fd/1" 2>/dev/null || true)
        [[ $out == "$root"/entra-writeback-samba-*/samba.log ]] || continue
        log "samba (pid $pid) has no pid file; stopping it"
        (stop_pid "$pid") || failed=1
    done
    return "$failed"
}

cmd_env() {
    local pid
    resolve_ip
    pid=$(instance_pid) || die "no running instance in $DIR"
    answering "$IP" || die "the instance in $DIR (pid $pid) does not answer on ldap://$IP"
    print_env "$pid"
}

cmd_status() {
    local pid
    resolve_ip
    if pid=$(instance_pid) && answering "$IP"; then
        log "running: pid $pid, ldap://$IP, dir $DIR"
        return 0
    fi
    log "not running or not answering: ldap://$IP, dir $DIR"
    return 1
}

main() {
    parse_args "$@"
    case $COMMAND in
    start) cmd_start ;;
    stop) if [[ $ALL == true ]]; then cmd_stop_all; else cmd_stop; fi ;;
    env) cmd_env ;;
    status) cmd_status ;;
    esac
}

main "$@"
