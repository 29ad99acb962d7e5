#!/usr/bin/python3
"""Seed ready-made entries straight into a Samba AD DC's sam.ldb.

Benchmarks of a converged state (a restart at 100,000 groups, +-1 member on a 250,000-member
group) need an AD whose writes through the service take Samba hours on the lab machine,
which the figures do not measure. With `BENCH_PRESEED` (benches/restart.rs) or
`BENCH_PRESEED_MEMBERS` (benches/large_group.rs) they write the entries the service would
write (computed with the service's own mapping) through this script, then let the service
converge over them, finding every group already right and writing nothing.

Reads one JSON object per line from stdin: an ldb message, attribute name -> value or list
of values, with "dn". An `objectSid` is given in its string form (S-1-5-...) and stored as
the binary SID (a foreign security principal needs one). Adds them in transactions of 1,000
(`SEED_BATCH` in the environment changes it; Samba's full module stack, as over LDAP) while
the DC runs; ldb's locks serialise it against the server. Prints the number of entries added.

Usage: seed-entries.py <instance etc/smb.conf> < entries.jsonl
It must run with /usr/bin/python3: the `samba` module is a Debian package (python3-samba).
"""

import json
import os
import sys

import ldb
from samba.auth import system_session
from samba.dcerpc import security
from samba.ndr import ndr_pack
from samba.param import LoadParm
from samba.samdb import SamDB

# Entries per ldb transaction; SEED_BATCH overrides it (to measure what the size costs).
BATCH = int(os.environ.get("SEED_BATCH", "1000"))


def exists(db, dn):
    try:
        return len(db.search(base=dn, scope=ldb.SCOPE_BASE, attrs=[])) > 0
    except ldb.LdbError as e:
        if e.args[0] == ldb.ERR_NO_SUCH_OBJECT:
            return False
        raise


def add_all(db, batch):
    db.transaction_start()
    try:
        for entry in batch:
            # Samba creates a foreign security principal itself, once per SID (when it first
            # becomes a member), and refuses them from clients; the provision control allows
            # them. One that exists already is shared, as Samba shares it.
            if entry.get("objectClass") == "foreignSecurityPrincipal":
                if not exists(db, entry["dn"]):
                    db.add(entry, controls=["provision:0"])
            else:
                db.add(entry)
    except BaseException:
        db.transaction_cancel()
        raise
    db.transaction_commit()


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    lp = LoadParm()
    lp.load(argv[1])
    db = SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)
    added, batch = 0, []
    for line in sys.stdin:
        if not line.strip():
            continue
        entry = json.loads(line)
        if "objectSid" in entry:
            entry["objectSid"] = ndr_pack(security.dom_sid(entry["objectSid"]))
        batch.append(entry)
        if len(batch) == BATCH:
            add_all(db, batch)
            added += len(batch)
            batch = []
    if batch:
        add_all(db, batch)
        added += len(batch)
    print(added)


if __name__ == "__main__":
    main(sys.argv)
