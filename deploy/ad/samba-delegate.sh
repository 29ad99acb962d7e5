#!/usr/bin/env bash
# samba-delegate.sh — grant the entra-writeback service account exactly what it needs on its
# OUs of a Samba AD domain, with `samba-tool dsacl set` (the Samba twin of
# deploy/ad/Grant-EntraWritebackPermissions.ps1 for Windows AD).
#
#   samba-delegate.sh [--url URL] [--conf SMB_CONF] [--print] ACCOUNT_DN OU_DN...
#
#   --url URL       the database samba-tool and ldbsearch open (-H): by default the local DC's
#                   sam.ldb (run it on the DC as root, no password involved); the lab passes the
#                   instance's private/sam.ldb.
#   --conf FILE     the DC's smb.conf (-s), when it is not the default one.
#   --print         print the ACEs (SDDL) and change nothing.
#
# What is granted, on each OU given (target_ou, target_ou_m365, soft_delete_ou, previous_ous):
#   (OA;CI;CCDC;<group>;;SID)          create and delete group objects in the OU (and OUs below)
#   (OA;CIIO;RPWP;<attr>;<group>;SID)  read and write one property, on group objects below, for
#       cn, name                       rename (modify DN)
#       displayName, description,      what the service writes (src/directory/plan.rs)
#       groupType, adminDescription,
#       msDS-ExternalDirectoryObjectId
#       member                         membership
#       mail, proxyAddresses,          the mail attributes of Microsoft 365 groups
#       mailNickname
# An attribute the schema lacks (msDS-ExternalDirectoryObjectId before the 2016 schema,
# mailNickname without Exchange's) is skipped with a note. Nothing is granted on users, on
# other object classes, on the OU's own properties or outside these OUs; reading the rest of
# the domain (users by SID, the schema, the rootDSE) is what Authenticated Users may do anyway.
# A move between two of the OUs needs create-child on the new OU and delete-child on the old
# one: both are in the list. Idempotent: an ACE already present is not added again.
#
# No password is read, printed or passed on a command line: the script talks to the database
# with the rights of whoever runs it (root on the DC).
set -euo pipefail

readonly GROUP_CLASS=bf967a9c-0de6-11d0-a285-00aa003049e2
readonly ATTRS=(cn name displayName description groupType adminDescription
    msDS-ExternalDirectoryObjectId member mail proxyAddresses mailNickname)

die() {
    printf 'samba-delegate: error: %s\n' "$*" >&2
    exit 1
}
note() { printf 'samba-delegate: %s\n' "$*" >&2; }

URL=
CONF=
PRINT=false
while [[ $# -gt 0 ]]; do
    case $1 in
    --url) URL=${2:?--url needs a value}; shift 2 ;;
    --conf) CONF=${2:?--conf needs a value}; shift 2 ;;
    --print) PRINT=true; shift ;;
    -h | --help) sed -n '2,34p' "$0" >&2; exit 2 ;;
    --*) die "unknown option $1" ;;
    *) break ;;
    esac
done
[[ $# -ge 2 ]] || die "usage: samba-delegate.sh [--url URL] [--conf SMB_CONF] [--print] ACCOUNT_DN OU_DN..."
ACCOUNT=$1
shift

db_args=()
[[ -z $URL ]] || db_args+=(-H "$URL")
tool_args=("${db_args[@]}")
[[ -z $CONF ]] || tool_args+=(-s "$CONF")

# ldbsearch VALUE of one attribute of one entry (ldb prints SIDs and GUIDs as strings).
ldb_value() {
    local base=$1 scope=$2 filter=$3 attr=$4
    ldbsearch "${db_args[@]}" -b "$base" --scope="$scope" "$filter" "$attr" 2>/dev/null |
        sed -n "s/^${attr}: //p" | head -n 1
}

SID=$(ldb_value "$ACCOUNT" base '(objectClass=*)' objectSid)
[[ $SID =~ ^S-1-5-21-[0-9-]+$ ]] || die "cannot read the objectSid of $ACCOUNT"
SCHEMA=$(ldb_value '' base '(objectClass=*)' schemaNamingContext)
[[ -n $SCHEMA ]] || die "cannot read the rootDSE's schemaNamingContext"

# Every schemaIDGUID in one search: "lDAPDisplayName guid" lines.
filter=
for attr in "${ATTRS[@]}"; do filter+="(lDAPDisplayName=${attr})"; done
guids=$(ldbsearch "${db_args[@]}" -b "$SCHEMA" --scope=one "(|${filter})" \
    lDAPDisplayName schemaIDGUID 2>/dev/null | awk '
    /^lDAPDisplayName: / { name = $2 } /^schemaIDGUID: / { guid = $2 }
    /^$/ { if (name != "" && guid != "") print name, guid; name = ""; guid = "" }
    END { if (name != "" && guid != "") print name, guid }')

sddl="(OA;CI;CCDC;${GROUP_CLASS};;${SID})"
for attr in "${ATTRS[@]}"; do
    guid=$(awk -v a="$attr" 'tolower($1) == tolower(a) { print $2 }' <<<"$guids")
    if [[ -z $guid ]]; then
        note "the schema has no ${attr}; not granted"
        continue
    fi
    sddl+="(OA;CIIO;RPWP;${guid};${GROUP_CLASS};${SID})"
done

if [[ $PRINT == true ]]; then
    printf '%s\n' "$sddl"
    exit 0
fi
for ou in "$@"; do
    [[ -n $(ldb_value "$ou" base '(objectClass=organizationalUnit)' distinguishedName) ]] ||
        die "$ou is not an existing OU"
    samba-tool dsacl set "${tool_args[@]}" --objectdn="$ou" --sddl="$sddl" >/dev/null ||
        die "samba-tool dsacl set on $ou failed"
    note "delegated group writeback on $ou to $ACCOUNT"
done
