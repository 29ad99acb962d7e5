//! A resync over a converged directory, against real Samba AD: the bulk pass's paged listing
//! carries each group's members (extended DNs, `member;range=0-99`), so a group already
//! converged costs no read of its own and no write. Only a group drifted in AD (its listed
//! members differ from the mirror's) and a group larger than the listing reads are read
//! again, ranged; the drift is repaired and nothing else is touched (same objectGUID and
//! uSNChanged on every other group).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use common::outcome::{dead_letters, expect_exit, members_of};
use common::samba::{self, SambaDc, unique_suffix};
use common::service::Service;
use common::sim::{GraphSim, oid, user};
use common::summary;
use entra_writeback::directory::listed_members::LISTED_MEMBERS;
use ldap3::Mod;

const TAG: u32 = 0x2100;
/// Small groups: more than the worker's bulk threshold (64), so the pass lists once.
const SMALL: u32 = 70;
const DRIFTED: u32 = 1_000;
const LARGE: u32 = 1_001;

fn gid(i: u32) -> String {
    oid(TAG, i)
}

fn uid(i: usize) -> String {
    oid(TAG + 1, i as u32)
}

/// Every group under `ou`: (DN, objectGUID and uSNChanged).
async fn identities(dc: &SambaDc, ou: &str) -> BTreeMap<String, (Vec<u8>, String)> {
    dc.groups_in(ou)
        .await
        .into_iter()
        .map(|e| {
            let guid = e.bin_attrs["objectGUID"][0].clone();
            let usn = e.attrs["uSNChanged"][0].clone();
            (e.dn, (guid, usn))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resync_over_converged_ad_reads_members_only_of_drifted_and_large_groups() {
    let dc = samba::shared();
    let users_ou = dc.fresh_ou("listing-users").await;
    let n = LISTED_MEMBERS + 20;
    let sids = dc
        .create_users(&users_ou, &format!("bl{}-", unique_suffix()), n)
        .await;
    let cloud_users = (0..n)
        .map(|i| common::synced_user(&uid(i), &sids[i]))
        .collect();
    let pair = || vec![user(&uid(0)), user(&uid(1))];
    let mut groups: Vec<_> = (0..SMALL)
        .map(|g| common::security_group(&gid(g), &format!("Listed {g}"), pair()))
        .collect();
    groups.push(common::security_group(&gid(DRIFTED), "Drifted", pair()));
    let everyone = (0..n).map(|i| user(&uid(i))).collect();
    groups.push(common::security_group(&gid(LARGE), "Large", everyone));
    let sim = GraphSim::start(cloud_users, groups, &[]);
    let ou = dc.fresh_ou("listing").await;
    let svc = Service::new(&sim, dc, &ou);

    expect_exit(&svc.run(&["run", "--once"]), 0);
    let all: BTreeSet<String> = sids.iter().cloned().collect();
    assert_eq!(members_of(dc, &ou, &gid(LARGE)).await, all);
    let two: BTreeSet<String> = sids[..2].iter().cloned().collect();
    assert_eq!(members_of(dc, &ou, &gid(DRIFTED)).await, two);

    // An administrator removes a member of one group in AD.
    let drifted = dc
        .group_by_anchor(&ou, &format!("Group_{}", gid(DRIFTED)))
        .await
        .unwrap();
    let gone = HashSet::from([format!("<SID={}>", sids[1])]);
    let mut ldap = dc.connect().await;
    ldap.modify(&drifted.dn, vec![Mod::Delete("member".into(), gone)])
        .await
        .unwrap()
        .success()
        .unwrap();
    let before = identities(dc, &ou).await;

    let out = svc.run(&["resync"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = expect_exit(&svc.run(&["run", "--once"]), 0);
    assert!(dead_letters(&svc).is_empty(), "{:?}", dead_letters(&svc));
    let work = summary::work_ops(&log);

    // The drift is repaired with one modify; nothing else is written.
    assert_eq!(members_of(dc, &ou, &gid(DRIFTED)).await, two);
    assert_eq!(summary::work_writes(&log), 1, "{work:?}");
    assert_eq!(summary::work_op(&log, "modify"), 1, "{work:?}");
    let after = identities(dc, &ou).await;
    assert_eq!(after.len(), before.len());
    for (dn, (guid, usn)) in &before {
        let (guid_after, usn_after) = &after[dn];
        assert_eq!(guid, guid_after, "objectGUID of {dn}");
        if *dn != drifted.dn {
            assert_eq!(usn, usn_after, "{dn} was written");
        }
    }
    assert_eq!(members_of(dc, &ou, &gid(LARGE)).await, all);

    // Reads: the pass's listing and the sweep's (one page each at this size), and the
    // members of the two groups the listing could not vouch for; not one read per group
    // (74 before the listing carried members).
    let searches = summary::work_op(&log, "search");
    assert_eq!(
        searches,
        2 + 2,
        "searches for {} groups: {work:?}",
        SMALL + 2
    );
}
