#!/usr/bin/python3
"""Add msDS-ExternalDirectoryObjectId (and, with --exchange, mailNickname) to a
provisioned, *stopped* Samba AD DC.

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
The script is idempotent: when the schema already has an attribute (newer
Samba, or a template patched before) and mailRecipient already allows it, it
does nothing for it.

--exchange also adds mailNickname, the one Exchange schema attribute the
service writes (Samba's stock schema has mail and proxyAddresses but no
mailNickname: it comes with Exchange's schema extension). Its definition is
Exchange's ms-Exch-Mail-Nickname (OID 1.2.840.113556.1.2.447, Unicode,
single-valued, 1..64 characters), the one OpenChange provisioned into Samba
(setup/AD/oc_provision_schema_attributes.ldif); Exchange puts it in
mailRecipient's mayContain, as step 3 does here.

Usage: samba-schema-patch.py [--exchange] <path to the instance's etc/smb.conf>

It must run with /usr/bin/python3: the `samba` module is a Debian package
(python3-samba) and is invisible to pyenv/venv interpreters.
"""

import sys

import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

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

# Exchange's definition (see the module doc), minus the DN and changetype lines.
MAIL_NICKNAME_LDIF = """\
objectClass: top
objectClass: attributeSchema
cn: ms-Exch-Mail-Nickname
attributeID: 1.2.840.113556.1.2.447
attributeSyntax: 2.5.5.12
isSingleValued: TRUE
rangeLower: 1
rangeUpper: 64
showInAdvancedViewOnly: TRUE
adminDisplayName: ms-Exch-Mail-Nickname
adminDescription: ms-Exch-Mail-Nickname
oMSyntax: 64
searchFlags: 5
lDAPDisplayName: mailNickname
schemaIDGUID:: s3mWv+YN0BGihQCqADBJ4g==
attributeSecurityGUID:: VAGN5Pi80RGHAgDAT7lgUA==
isMemberOfPartialAttributeSet: TRUE
"""

# (lDAPDisplayName, cn, definition)
EXTERNAL_ID = ("msDS-ExternalDirectoryObjectId", "ms-DS-External-Directory-Object-Id", ATTRIBUTE_LDIF)
MAIL_NICKNAME = ("mailNickname", "ms-Exch-Mail-Nickname", MAIL_NICKNAME_LDIF)


def log(msg):
    print("samba-schema-patch: " + msg, file=sys.stderr)


def open_samdb(smb_conf):
    lp = LoadParm()
    lp.load(smb_conf)
    # Without this the dsdb refuses every schema change
    # (53 "00002035 ... updates are not allowed").
    lp.set("dsdb:schema update allowed", "yes")
    return SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)


def find_attribute(samdb, attribute):
    return samdb.search(
        base=samdb.get_schema_basedn(),
        scope=ldb.SCOPE_ONELEVEL,
        expression="(&(objectClass=attributeSchema)(lDAPDisplayName=%s))" % attribute,
        attrs=["lDAPDisplayName"],
    )


def aux_class_allows(samdb, attribute):
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
    return entry.dn, attribute.lower() in values


def patch(smb_conf, attribute, cn, definition):
    samdb = open_samdb(smb_conf)
    if find_attribute(samdb, attribute):
        _, allowed = aux_class_allows(samdb, attribute)
        if allowed:
            log("schema already has %s; nothing to do" % attribute)
            return
    else:
        dn = "CN=%s,%s" % (cn, samdb.get_schema_basedn())
        samdb.add_ldif("dn: %s\n%s" % (dn, definition))
        samdb.set_schema_update_now()
        log("added attributeSchema %s" % dn)
        # The loaded schema of this handle is stale; a fresh handle sees the
        # new attribute as a valid mayContain value.
        del samdb
        samdb = open_samdb(smb_conf)

    class_dn, allowed = aux_class_allows(samdb, attribute)
    if not allowed:
        msg = ldb.Message()
        msg.dn = class_dn
        msg["mayContain"] = ldb.MessageElement(attribute, ldb.FLAG_MOD_ADD, "mayContain")
        samdb.modify(msg)
        samdb.set_schema_update_now()
        log("added %s to mayContain of %s" % (attribute, class_dn))

    # Verify from a fresh handle, as the DC will see it on start.
    del samdb
    samdb = open_samdb(smb_conf)
    _, allowed = aux_class_allows(samdb, attribute)
    if not find_attribute(samdb, attribute) or not allowed:
        raise SystemExit("samba-schema-patch: verification failed: %s still missing" % attribute)
    log("schema patched: %s is available on group and user" % attribute)


def main():
    args = sys.argv[1:]
    exchange = "--exchange" in args
    args = [a for a in args if a != "--exchange"]
    if len(args) != 1:
        raise SystemExit("usage: samba-schema-patch.py [--exchange] <smb.conf>")
    for attribute in [EXTERNAL_ID] + ([MAIL_NICKNAME] if exchange else []):
        patch(args[0], *attribute)


if __name__ == "__main__":
    main()
