#!/usr/bin/python3
"""Seed a benchmark's users straight into a Samba AD DC's sam.ldb.

Benchmarks at 100,000 groups need 50,000 users in AD before the service starts. One LDAP add
each costs Samba about 20 ms (the lab measured ~185/s at best, less as the database grows),
so a tenant that size spends a quarter of an hour on set-up that the figures do not measure.
This script opens sam.ldb locally (Samba's full module stack: RIDs, SIDs and every default
attribute as over LDAP) and adds the users in transactions of 1,000 while the DC runs; ldb's
tdb locks serialise it against the server.

Only users: groups go over LDAP by the service, or, for benchmarks of a converged state,
through benches/seed-entries.py as the service would have written them.

Usage: seed-users.py <instance etc/smb.conf> <OU DN> <sAMAccountName prefix> <count>
Prints one objectSid per line, in the order of the names <prefix>0 .. <prefix>count-1.

It must run with /usr/bin/python3: the `samba` module is a Debian package (python3-samba).
"""

import sys

import ldb
from samba.auth import system_session
from samba.dcerpc import security
from samba.ndr import ndr_unpack
from samba.param import LoadParm
from samba.samdb import SamDB

BATCH = 1000


def main(argv):
    if len(argv) != 5:
        sys.exit(__doc__)
    conf, ou, prefix, count = argv[1], argv[2], argv[3], int(argv[4])
    lp = LoadParm()
    lp.load(conf)
    db = SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)
    for start in range(0, count, BATCH):
        db.transaction_start()
        try:
            for i in range(start, min(count, start + BATCH)):
                sam = f"{prefix}{i}"
                db.add(
                    {
                        "dn": f"CN={ldb.binary_encode(sam)},{ou}",
                        "objectClass": "user",
                        "sAMAccountName": sam,
                    }
                )
        except BaseException:
            db.transaction_cancel()
            raise
        db.transaction_commit()
    sids = {}
    found = db.search(
        base=ou,
        scope=ldb.SCOPE_ONELEVEL,
        expression=f"(&(objectClass=user)(sAMAccountName={ldb.binary_encode(prefix)}*))",
        attrs=["sAMAccountName", "objectSid"],
    )
    for msg in found:
        sid = ndr_unpack(security.dom_sid, msg["objectSid"][0])
        sids[str(msg["sAMAccountName"][0])] = str(sid)
    missing = [i for i in range(count) if f"{prefix}{i}" not in sids]
    if missing:
        sys.exit(f"{len(missing)} seeded users cannot be read back (first: {prefix}{missing[0]})")
    out = sys.stdout
    for i in range(count):
        out.write(sids[f"{prefix}{i}"] + "\n")


if __name__ == "__main__":
    main(sys.argv)
