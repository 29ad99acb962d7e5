//! A resync over a converged directory, against real Samba AD: the bulk pass's paged listing
//! carries each group's members (extended DNs, `member;range=0-99`), so a group already
//! converged costs no read of its own and no write. Only a group drifted in AD (its listed
//! members differ from the mirror's) and a group larger than the listing reads are read
//! again, ranged; the drift is repaired and nothing else is touched (same objectGUID and
//! uSNChanged on every other group). The same holds over several LDAP connections
//! (`ad.connections`) with a listing of many pages: each paged search stays on the connection
//! that holds its cookie.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use common::outcome::{dead_letters, expect_exit, members_of};
use common::relay::LdapRelay;
use common::samba::{self, SambaDc, unique_suffix};
use common::service::{INSECURE_LDAP, Options, Service};
use common::sim::{GraphSim, oid, user};
use common::summary;
use entra_writeback::directory::listed_members::LISTED_MEMBERS;
use ldap3::Mod;

const TAG: u32 = 0x2100;
/// Small groups: more than the worker's bulk threshold (64), so the pass lists once.
const SMALL: u32 = 70;
const DRIFTED: u32 = 1_000;
const LARGE: u32 = 1_001;

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

/// How the service reaches the DC in one variant of the test.
enum Reach {
    /// StartTLS, the defaults (one connection, pages of 1,000).
    Defaults,
    /// Through a relay that counts TCP connections, with `connections` and `page` set.
    Relay { connections: usize, page: u64 },
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resync_over_converged_ad_reads_members_only_of_drifted_and_large_groups() {
    resync_reads_only_what_the_listing_cannot_vouch_for(Reach::Defaults).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_over_three_connections_with_a_listing_of_many_pages() {
    let reach = Reach::Relay {
        connections: 3,
        page: 20,
    };
    resync_reads_only_what_the_listing_cannot_vouch_for(reach).await;
}

async fn resync_reads_only_what_the_listing_cannot_vouch_for(reach: Reach) {
    // The variants' group ids differ in their last 12 characters, which the
    // `sAMAccountName`s (unique domain-wide) are made of.
    let offset = match reach {
        Reach::Defaults => 0,
        Reach::Relay { .. } => 0x1_0000,
    };
    let gid = |i: u32| oid(TAG, offset + i);
    let uid = |i: usize| oid(TAG + 1, offset + i as u32);
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
    let (svc, relay, page) = match reach {
        Reach::Defaults => (Service::new(&sim, dc, &ou), None, 1000),
        Reach::Relay { connections, page } => {
            let relay = LdapRelay::start(&dc.url);
            let options = Options {
                ad_url: relay.url.clone(),
                ad_tls: INSECURE_LDAP.into(),
                ad_extra: format!("connections = {connections}\nsearch_page_size = {page}"),
                ..Options::new(dc, &sim)
            };
            (
                Service::with(dc, &ou, options),
                Some((relay, connections)),
                page,
            )
        }
    };

    expect_exit(&svc.run(&["run", "--once"]), 0);
    if let Some((relay, connections)) = &relay {
        // The start-up probe shares the first connection.
        let opened = relay.take_connections();
        assert!(opened >= *connections, "{opened} connections opened");
    }
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

    // Reads: the pass's listing, a page per `page` groups, which the closing sweep shares
    // (it finds no candidate in it), and the members of the two groups the listing could
    // not vouch for; not one read per group (74 before the listing carried members, and
    // 2 × pages + 2 while the sweep listed the owned groups again).
    let groups = u64::from(SMALL) + 2;
    let searches = summary::work_op(&log, "search");
    let pages = groups.div_ceil(page);
    assert_eq!(
        searches,
        pages + 2,
        "searches for {groups} groups: {work:?}"
    );
}
