//! The end-to-end pipeline against a real Samba AD DC and graph-sim: initial round, incremental
//! rounds, scope rules, idempotence and a large group split across pages.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::samba::{self, SambaDc, attr_first, entry_sid, unique_suffix};
use common::service::Service;
use common::sim::{GraphSim, group, oid, user};
use serde_json::{Value, json};

/// What a written-back group looks like in AD, keyed by its anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AdGroup {
    cn: String,
    display_name: Option<String>,
    description: Option<String>,
    group_type: Option<String>,
    sam: Option<String>,
    members: BTreeSet<String>,
    usn: Option<String>,
    sid: Option<String>,
}

async fn ad_state(dc: &SambaDc, ou: &str) -> BTreeMap<String, AdGroup> {
    let mut out = BTreeMap::new();
    for e in dc.groups_in(ou).await {
        let anchor = attr_first(&e, "adminDescription")
            .unwrap_or("(none)")
            .to_string();
        if dc.schema_patched {
            assert_eq!(
                attr_first(&e, "msDS-ExternalDirectoryObjectId"),
                Some(anchor.as_str()),
                "{}",
                e.dn
            );
        }
        let g = AdGroup {
            cn: attr_first(&e, "cn").unwrap_or_default().to_string(),
            display_name: attr_first(&e, "displayName").map(str::to_string),
            description: attr_first(&e, "description").map(str::to_string),
            group_type: attr_first(&e, "groupType").map(str::to_string),
            sam: attr_first(&e, "sAMAccountName").map(str::to_string),
            members: dc.member_sids(&e.dn).await,
            usn: attr_first(&e, "uSNChanged").map(str::to_string),
            sid: entry_sid(&e),
        };
        assert!(out.insert(anchor, g).is_none(), "duplicate anchor");
    }
    out
}

fn anchor(id: &str) -> String {
    format!("Group_{id}")
}

fn sids(all: &[String], idx: &[usize]) -> BTreeSet<String> {
    idx.iter().map(|i| all[*i].clone()).collect()
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
    // and cloud-only / device members left out.
    svc.once_ok();
    let s1 = ad_state(dc, &ou).await;
    assert_eq!(
        s1.keys().cloned().collect::<BTreeSet<_>>(),
        [anchor(&a), anchor(&b), anchor(&e)].into_iter().collect()
    );
    let ga = &s1[&anchor(&a)];
    assert_eq!(ga.cn, format!("Alpha_{}", &a[a.len() - 12..]));
    assert_eq!(ga.display_name.as_deref(), Some("Alpha"));
    assert_eq!(ga.description.as_deref(), Some("first"));
    assert_eq!(ga.group_type.as_deref(), Some("-2147483640"));
    assert!(ga.sam.as_ref().is_some_and(|s| s.len() <= 20));
    assert_eq!(ga.members, sids(&u_sids, &[0, 1]));
    let gb = &s1[&anchor(&b)];
    assert_eq!(
        gb.group_type.as_deref(),
        Some("8"),
        "M365 without security → universal distribution"
    );
    let mut want_b = sids(&u_sids, &[2]);
    want_b.insert(ga.sid.clone().expect("group SID"));
    assert_eq!(gb.members, want_b, "nested written-back group is a member");
    assert_eq!(s1[&anchor(&e)].members, sids(&u_sids, &[3]));

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
    let s2 = ad_state(dc, &ou).await;
    assert_eq!(
        s2.keys().cloned().collect::<BTreeSet<_>>(),
        [anchor(&a), anchor(&b), anchor(&f)].into_iter().collect()
    );
    let ga2 = &s2[&anchor(&a)];
    assert_eq!(ga2.cn, format!("Alpha Renamed_{}", &a[a.len() - 12..]));
    assert_eq!(ga2.display_name.as_deref(), Some("Alpha Renamed"));
    assert_eq!(ga2.sam, ga.sam, "sAMAccountName is kept on rename");
    assert_eq!(ga2.sid, ga.sid, "renamed in place, not re-created");
    assert_eq!(ga2.members, sids(&u_sids, &[0, 4]));
    assert_eq!(
        s2[&anchor(&b)].description.as_deref(),
        Some("team, updated")
    );
    assert_eq!(s2[&anchor(&b)].members, want_b);
    assert_eq!(s2[&anchor(&f)].members, sids(&u_sids, &[0]));

    // The same state again changes nothing: an empty round, then a full re-enumeration that
    // re-applies every group (resync) — no AD object is modified.
    svc.once_ok();
    let out = svc.run(&["resync"]);
    assert!(out.status.success());
    let log = svc.once_ok();
    assert!(log.contains("\"kind\":\"full\""), "resync ran a full round");
    let s3 = ad_state(dc, &ou).await;
    assert_eq!(s3, s2, "re-applying the same state modified AD");
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
    let state = ad_state(dc, &ou).await;
    let g = &state[&anchor(&big)];
    assert_eq!(g.members.len(), N);
    assert_eq!(g.members, u_sids.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(state.len(), 5);
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
    let state = ad_state(dc, &ou).await;
    assert_eq!(
        state[&anchor(&g)].members,
        sids.iter().cloned().collect::<BTreeSet<_>>()
    );
}
