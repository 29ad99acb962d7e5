//! The end-to-end pipeline against a real Samba AD DC and graph-sim: initial round, incremental
//! rounds, scope rules, idempotence and a large group split across pages.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::compare::{self, Expect, anchor};
use common::samba::{self, SambaDc, attr_first, entry_sid, unique_suffix};
use common::service::Service;
use common::sim::{GraphSim, group, oid, user};
use serde_json::{Value, json};

/// uSNChanged and objectSid of every group under `ou`, by anchor: whether AD objects were
/// modified or re-created (the content is compared by [`compare`]).
async fn usn_and_sid(dc: &SambaDc, ou: &str) -> BTreeMap<String, (String, String)> {
    dc.groups_in(ou)
        .await
        .iter()
        .map(|e| {
            let anchor = attr_first(e, "adminDescription").unwrap().to_string();
            let usn = attr_first(e, "uSNChanged").unwrap().to_string();
            (anchor, (usn, entry_sid(e).expect("group SID")))
        })
        .collect()
}

/// Cloud user id → SID of its AD user, for `n` users made by `uid`.
fn sid_map(sids: &[String], uid: impl Fn(usize) -> String) -> BTreeMap<String, String> {
    sids.iter()
        .enumerate()
        .map(|(i, s)| (uid(i), s.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn rounds_converge_ad_exactly_and_reapplying_changes_nothing() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("pipeline").await;
    let users_ou = dc.fresh_ou("pipeline-users").await;
    let tag = 0x100;
    let u_sids = dc
        .create_users(&users_ou, &format!("pl{}-", unique_suffix()), 5)
        .await;
    let uid = |i: usize| oid(tag, 100 + i as u32);
    let mut users: Vec<Value> = (0..5)
        .map(|i| common::synced_user(&uid(i), &u_sids[i]))
        .collect();
    let cloud_only = oid(tag, 999);
    users.push(json!({"id": cloud_only, "displayName": "Cloud Only", "userPrincipalName": "co@contoso.com"}));

    let (a, b, c, d, e, f) = (
        oid(tag, 1),
        oid(tag, 2),
        oid(tag, 3),
        oid(tag, 4),
        oid(tag, 5),
        oid(tag, 6),
    );
    let groups = vec![
        json!({"id": a, "displayName": "Alpha", "description": "first", "groupTypes": [], "securityEnabled": true,
               "mailEnabled": false, "members": [user(&uid(0)), user(&uid(1)), user(&cloud_only),
               {"@odata.type": "#microsoft.graph.device", "id": oid(tag, 500)}]}),
        json!({"id": b, "displayName": "Bravo M365", "description": "team", "groupTypes": ["Unified"],
               "securityEnabled": false, "mailEnabled": true, "members": [user(&uid(2)), group(&a)]}),
        json!({"id": c, "displayName": "Synced From AD", "groupTypes": [], "securityEnabled": true,
               "onPremisesSyncEnabled": true, "members": [user(&uid(0))]}),
        json!({"id": d, "displayName": "Plain Distribution", "groupTypes": [], "securityEnabled": false,
               "mailEnabled": true, "members": [user(&uid(0))]}),
        json!({"id": e, "displayName": "Echo", "groupTypes": [], "securityEnabled": true, "members": [user(&uid(3))]}),
    ];
    let sim = GraphSim::start(users, groups, &["--page-size", "2"]);
    let svc = Service::new(&sim, dc, &ou);

    // Initial round: every in-scope group, right members; synced and distribution-only groups
    // and cloud-only / device members left out; the M365 group without security is universal
    // distribution, and the written-back group nested in it is a member.
    let sid_of = sid_map(&u_sids, uid);
    svc.once_ok();
    let s1 = compare::assert_ad_equals_tenant(
        &sim,
        dc,
        &ou,
        &Expect::members(&sid_of),
        3,
        "initial round",
    )
    .await;
    assert_eq!(
        s1.keys().cloned().collect::<BTreeSet<_>>(),
        [anchor(&a), anchor(&b), anchor(&e)].into_iter().collect()
    );
    let ga = &s1[&anchor(&a)];
    assert_eq!(ga.cn, format!("Alpha_{}", &a[a.len() - 12..]));
    assert_eq!(ga.group_type, compare::UNIVERSAL_SECURITY);
    assert_eq!(s1[&anchor(&b)].group_type, compare::UNIVERSAL_DISTRIBUTION);
    assert!(
        s1[&anchor(&b)].members.contains(&anchor(&a)),
        "nested group"
    );
    let ids1 = usn_and_sid(dc, &ou).await;

    // Later round: rename, description change, member add and remove, a new group, a hard delete.
    sim.put_group(&a, json!({"displayName": "Alpha Renamed"}))
        .await;
    sim.put_group(&b, json!({"description": "team, updated"}))
        .await;
    sim.members(&a, vec![user(&uid(4))], vec![user(&uid(1))])
        .await;
    sim.put_group(&f, json!({"displayName": "Foxtrot", "groupTypes": [], "securityEnabled": true, "mailEnabled": false,
        "members": [user(&uid(0))]}))
        .await;
    sim.delete_group(&e, true).await;
    svc.once_ok();
    // sAMAccountName is set at creation and kept on rename.
    let expect = Expect::members(&sid_of).created_as([(a.clone(), "Alpha".to_string())]);
    let s2 = compare::assert_ad_equals_tenant(&sim, dc, &ou, &expect, 3, "later round").await;
    assert_eq!(
        s2.keys().cloned().collect::<BTreeSet<_>>(),
        [anchor(&a), anchor(&b), anchor(&f)].into_iter().collect()
    );
    assert_eq!(
        s2[&anchor(&a)].sam,
        ga.sam,
        "sAMAccountName is kept on rename"
    );
    let ids2 = usn_and_sid(dc, &ou).await;
    assert_eq!(
        ids2[&anchor(&a)].1,
        ids1[&anchor(&a)].1,
        "renamed in place, not re-created"
    );

    // The same state again changes nothing: an empty round, then a full re-enumeration that
    // re-applies every group (resync) — no AD object is modified.
    svc.once_ok();
    let out = svc.run(&["resync"]);
    assert!(out.status.success());
    let log = svc.once_ok();
    assert!(log.contains("\"kind\":\"full\""), "resync ran a full round");
    compare::assert_same(&s2, &compare::actual_state(dc, &ou).await, "after resync");
    assert_eq!(
        usn_and_sid(dc, &ou).await,
        ids2,
        "re-applying the same state modified AD"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_of_3000_members_split_across_pages_gets_all_of_them() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("large").await;
    let users_ou = dc.fresh_ou("large-users").await;
    const N: usize = 3000;
    let u_sids = dc
        .create_users(&users_ou, &format!("lg{}-", unique_suffix()), N)
        .await;
    let tag = 0x200;
    let users: Vec<Value> = (0..N)
        .map(|i| common::synced_user(&oid(tag, 10_000 + i as u32), &u_sids[i]))
        .collect();
    let big = oid(tag, 1);
    let members: Vec<Value> = (0..N).map(|i| user(&oid(tag, 10_000 + i as u32))).collect();
    let mut groups = vec![
        json!({"id": big, "displayName": "Everyone Big", "groupTypes": [], "securityEnabled": true,
        "members": members}),
    ];
    for i in 0..4 {
        groups.push(json!({"id": oid(tag, 2 + i), "displayName": format!("Small {i}"), "securityEnabled": true,
            "groupTypes": [], "members": [user(&oid(tag, 10_000 + i))]}));
    }
    let sim = GraphSim::start(
        users,
        groups,
        &["--page-size", "2", "--member-slice", "700"],
    );
    let svc = Service::new(&sim, dc, &ou);
    svc.once_ok();

    // The group really was split: it appeared in several group items on several pages.
    let pages = sim
        .requests()
        .await
        .iter()
        .filter(|r| r["path"] == "/v1.0/groups/delta")
        .count();
    assert!(
        pages >= 3,
        "expected a multi-page groups round, got {pages} page(s)"
    );
    let sid_of = sid_map(&u_sids, |i| oid(tag, 10_000 + i as u32));
    let state = compare::assert_ad_equals_tenant(
        &sim,
        dc,
        &ou,
        &Expect::members(&sid_of),
        5,
        "large group",
    )
    .await;
    assert_eq!(state[&anchor(&big)].members.len(), N);
}

#[tokio::test(flavor = "multi_thread")]
async fn members_without_a_sid_are_found_by_sam_account_name() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("by-sam").await;
    let users_ou = dc.fresh_ou("by-sam-users").await;
    let prefix = format!("bs{}-", unique_suffix());
    let sids = dc.create_users(&users_ou, &prefix, 2).await;
    let tag = 0x1500;
    // Graph gives no SID for these users, only the on-premises sAMAccountName and domain.
    let users: Vec<Value> = (0..2)
        .map(|i| {
            json!({"id": oid(tag, 100 + i), "onPremisesSamAccountName": format!("{prefix}{i}"),
                        "onPremisesDomainName": "example.test"})
        })
        .collect();
    let g = oid(tag, 1);
    let groups = vec![
        json!({"id": g, "displayName": "By Sam", "securityEnabled": true,
        "members": [user(&oid(tag, 100)), user(&oid(tag, 101))]}),
    ];
    let sim = GraphSim::start(users, groups, &[]);
    Service::new(&sim, dc, &ou).once_ok();
    // The users Graph lists by sAMAccountName are the AD users of that name.
    let sid_of = sid_map(&sids, |i| oid(tag, 100 + i as u32));
    let state = compare::assert_ad_equals_tenant(
        &sim,
        dc,
        &ou,
        &Expect::members(&sid_of),
        1,
        "by sAMAccountName",
    )
    .await;
    assert_eq!(state[&anchor(&g)].members.len(), 2);
}
