#!/usr/bin/python3
"""Add msDS-ExternalDirectoryObjectId to a provisioned, *stopped* Samba AD DC.

Samba 4.17 provisions the Windows Server 2012 R2 schema, which lacks
msDS-ExternalDirectoryObjectId (it arrived with the 2016 schema). Microsoft's
group writeback anchors groups with it, so the test DC needs it. This script
applies the 2016 definition offline, straight into sam.ldb:

  1. add the attributeSchema object (definition copied from
     AD_DS_Attributes__Windows_Server_2016.ldf, which Samba ships);
  2. reload the schema (schemaUpdateNow) and re-open the database, because
     the new attribute is not usable as a mayContain value until then;
  3. add it to mayContain of the auxiliary class mailRecipient, which both
     `group` and `user` include.

Steps 1 and 3 cannot share a transaction (`mayContain ... invalid value`).
The script is idempotent: when the schema already has the attribute (newer
Samba, or a template patched before) and mailRecipient already allows it, it
does nothing.

Usage: samba-schema-patch.py <path to the instance's etc/smb.conf>

It must run with /usr/bin/python3: the `samba` module is a Debian package
(python3-samba) and is invisible to pyenv/venv interpreters.
"""

import sys

import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

ATTRIBUTE = "msDS-ExternalDirectoryObjectId"
ATTRIBUTE_CN = "ms-DS-External-Directory-Object-Id"
AUX_CLASS = "mailRecipient"

# Verbatim from AD_DS_Attributes__Windows_Server_2016.ldf, minus the DN and
# changetype lines (built below from the schema naming context).
ATTRIBUTE_LDIF = """\
objectClass: top
objectClass: attributeSchema
cn: ms-DS-External-Directory-Object-Id
attributeID: 1.2.840.113556.1.4.2310
attributeSyntax: 2.5.5.12
isSingleValued: TRUE
rangeUpper: 256
showInAdvancedViewOnly: FALSE
adminDisplayName: ms-DS-External-Directory-Object-Id
adminDescription: ms-DS-External-Directory-Object-Id
oMSyntax: 64
searchFlags: 9
lDAPDisplayName: msDS-ExternalDirectoryObjectId
schemaIDGUID:: kL8pva1m4UCIexDfBwQZpg==
attributeSecurityGUID:: hri1d0qU0RGuvQAA+ANnwQ==
systemOnly: FALSE
systemFlags: 16
isMemberOfPartialAttributeSet: TRUE
"""


def log(msg):
    print("samba-schema-patch: " + msg, file=sys.stderr)


def open_samdb(smb_conf):
    lp = LoadParm()
    lp.load(smb_conf)
    # Without this the dsdb refuses every schema change
    # (53 "00002035 ... updates are not allowed").
    lp.set("dsdb:schema update allowed", "yes")
    return SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)


def find_attribute(samdb):
    return samdb.search(
        base=samdb.get_schema_basedn(),
        scope=ldb.SCOPE_ONELEVEL,
        expression="(&(objectClass=attributeSchema)(lDAPDisplayName=%s))" % ATTRIBUTE,
        attrs=["lDAPDisplayName"],
    )


def aux_class_allows(samdb):
    res = samdb.search(
        base=samdb.get_schema_basedn(),
        scope=ldb.SCOPE_ONELEVEL,
        expression="(&(objectClass=classSchema)(lDAPDisplayName=%s))" % AUX_CLASS,
        attrs=["mayContain", "systemMayContain"],
    )
    if len(res) != 1:
        raise SystemExit("samba-schema-patch: class %s not found in the schema" % AUX_CLASS)
    entry = res[0]
    values = set()
    for attr in ("mayContain", "systemMayContain"):
        if attr in entry:
            values.update(str(v).lower() for v in entry[attr])
    return entry.dn, ATTRIBUTE.lower() in values


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: samba-schema-patch.py <smb.conf>")
    smb_conf = sys.argv[1]

    samdb = open_samdb(smb_conf)
    if find_attribute(samdb):
        _, allowed = aux_class_allows(samdb)
        if allowed:
            log("schema already has %s; nothing to do" % ATTRIBUTE)
            return
    else:
        dn = "CN=%s,%s" % (ATTRIBUTE_CN, samdb.get_schema_basedn())
        samdb.add_ldif("dn: %s\n%s" % (dn, ATTRIBUTE_LDIF))
        samdb.set_schema_update_now()
        log("added attributeSchema %s" % dn)
        # The loaded schema of this handle is stale; a fresh handle sees the
        # new attribute as a valid mayContain value.
        del samdb
        samdb = open_samdb(smb_conf)

    class_dn, allowed = aux_class_allows(samdb)
    if not allowed:
        msg = ldb.Message()
        msg.dn = class_dn
        msg["mayContain"] = ldb.MessageElement(ATTRIBUTE, ldb.FLAG_MOD_ADD, "mayContain")
        samdb.modify(msg)
        samdb.set_schema_update_now()
        log("added %s to mayContain of %s" % (ATTRIBUTE, class_dn))

    # Verify from a fresh handle, as the DC will see it on start.
    del samdb
    samdb = open_samdb(smb_conf)
    _, allowed = aux_class_allows(samdb)
    if not find_attribute(samdb) or not allowed:
        raise SystemExit("samba-schema-patch: verification failed: %s still missing" % ATTRIBUTE)
    log("schema patched: %s is available on group and user" % ATTRIBUTE)


if __name__ == "__main__":
    main()
