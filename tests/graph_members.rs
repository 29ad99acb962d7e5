//! Group membership from Graph, played by graph-sim against the real binaries and a real Samba
//! AD DC: member adds and `@removed`, nested groups, duplicated and reordered items, sliced
//! large groups, minimal rounds, members not resolvable yet, and member types that are never
//! written to AD (counted in the metrics). Each test asserts the final AD state (read back with
//! a real LDAP client), the requests the service made, or its metrics.

mod common;
#[path = "graph_fidelity/support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};

use common::samba::{self, unique_suffix};
use common::sim::{GraphSim, group, oid, user};
use serde_json::{Value, json};
use support::*;

/// Member adds and `@removed`, nested groups, duplicated and reordered items, empty pages with a
/// nextLink, sliced large groups, and `Prefer: return=minimal` rounds (absent = unchanged,
/// null = cleared).
#[tokio::test(flavor = "multi_thread")]
async fn members_duplicates_reordering_empty_pages_and_minimal_rounds() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("gf-members").await;
    let users_ou = dc.fresh_ou("gf-members-users").await;
    let s = dc
        .create_users(&users_ou, &format!("gm{}-", unique_suffix()), 8)
        .await;
    let u = |i: usize| oid(0x3007, 100 + i as u32);
    let mut users: Vec<Value> = (0..8).map(|i| common::synced_user(&u(i), &s[i])).collect();
    let cloud_only = oid(0x3007, 999);
    users.push(json!({"id": cloud_only, "displayName": "Cloud Only"}));
    let (big, child, parent, lonely) = (
        oid(0x3007, 1),
        oid(0x3007, 2),
        oid(0x3007, 3),
        oid(0x3007, 4),
    );
    let mut big_members: Vec<Value> = (0..7).map(|i| user(&u(i))).collect();
    big_members.extend([
        json!({"@odata.type": "#microsoft.graph.device", "id": oid(0x3007, 500)}),
        json!({"@odata.type": "#microsoft.graph.orgContact", "id": oid(0x3007, 501)}),
        json!({"@odata.type": "#microsoft.graph.servicePrincipal", "id": oid(0x3007, 502)}),
        user(&cloud_only),
    ]);
    let sim = GraphSim::start(
        users,
        vec![
            json!({"id": big, "displayName": "Big", "description": "big one", "groupTypes": [],
                   "securityEnabled": true, "members": big_members}),
            sec(&child, "Child", vec![user(&u(7))]),
            json!({"id": parent, "displayName": "Parent", "groupTypes": ["Unified"], "securityEnabled": true,
                   "members": [group(&child), user(&u(0))]}),
            sec(&lonely, "Lonely", vec![]),
        ],
        &["--page-size", "2", "--member-slice", "3", "--empty-pages"],
    );
    sim.faults(json!({"duplicate_changes": true, "reorder_changes": true}))
        .await;
    let svc = service(&sim, dc, &ou, "prefer_return_minimal = true", "", "");
    svc.once_ok();
    let r1 = ad(dc, &ou).await;
    let child_sid = r1[&anchor(&child)].3.clone();
    let want1: BTreeMap<String, BTreeSet<String>> = [
        (anchor(&big), (0..7).map(|i| s[i].clone()).collect()),
        (anchor(&child), sids(&[&s[7]])),
        (
            anchor(&parent),
            [child_sid.clone(), s[0].clone()].into_iter().collect(),
        ),
        (anchor(&lonely), BTreeSet::new()),
    ]
    .into_iter()
    .collect();
    assert_eq!(members_of(&r1), want1);
    let log = sim.requests().await;
    let first = graph_requests(&log);
    assert!(
        first.iter().all(|r| r["prefer"].is_null()),
        "no Prefer on the initial round"
    );
    let group_pages = first
        .iter()
        .filter(|r| r["path"] == "/v1.0/groups/delta")
        .count();
    assert!(
        group_pages >= 10,
        "sliced, duplicated, with empty pages: {group_pages} pages"
    );

    sim.members(&big, vec![user(&u(7))], vec![user(&u(1)), user(&u(2))])
        .await;
    sim.put_group(&big, json!({"description": null})).await;
    sim.put_group(&child, json!({"displayName": "Child Two"}))
        .await;
    sim.members(&parent, vec![user(&u(3))], vec![group(&child)])
        .await;
    sim.clear_requests().await;
    svc.once_ok();
    let r2 = ad(dc, &ou).await;
    let mut want2 = want1.clone();
    want2.insert(
        anchor(&big),
        [0, 3, 4, 5, 6, 7].iter().map(|&i| s[i].clone()).collect(),
    );
    want2.insert(anchor(&parent), sids(&[&s[0], &s[3]]));
    assert_eq!(members_of(&r2), want2);
    assert_eq!(
        r2[&anchor(&big)].0,
        "Big",
        "absent in a minimal round = unchanged"
    );
    assert_eq!(r2[&anchor(&big)].1, None, "null = cleared");
    assert_eq!(r2[&anchor(&child)].0, "Child Two");
    assert_eq!(r2[&anchor(&child)].3, child_sid, "renamed in place");
    let log = sim.requests().await;
    let second = graph_requests(&log);
    assert!(!second.is_empty());
    assert!(
        second.iter().all(|r| r["prefer"] == "return=minimal"),
        "every incremental request asks for return=minimal: {second:?}"
    );
}

/// A member whose user users/delta has not reported yet (replication lag), or who has no
/// on-premises identity yet, is skipped (never removed) and written once it resolves.
#[tokio::test(flavor = "multi_thread")]
async fn unresolved_members_are_retried_and_never_written_as_removed() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("gf-lag").await;
    let users_ou = dc.fresh_ou("gf-lag-users").await;
    let s = dc
        .create_users(&users_ou, &format!("gl{}-", unique_suffix()), 4)
        .await;
    let u = |i: usize| oid(0x3008, 100 + i as u32);
    let (ghost, late) = (u(2), u(3));
    let g = oid(0x3008, 1);
    let sim = GraphSim::start(
        vec![
            common::synced_user(&u(0), &s[0]),
            common::synced_user(&u(1), &s[1]),
            json!({"id": late, "displayName": "Late", "userPrincipalName": "late@contoso.com"}),
        ],
        vec![sec(
            &g,
            "Lagging",
            vec![user(&u(0)), user(&ghost), user(&late)],
        )],
        &[],
    );
    let svc = service(&sim, dc, &ou, "", "", "");
    svc.once_ok();
    assert_eq!(ad(dc, &ou).await[&anchor(&g)].2, sids(&[&s[0]]));

    // Other changes and even a full resync never remove what is there while members are pending.
    sim.members(&g, vec![user(&u(1))], vec![]).await;
    svc.once_ok();
    assert!(svc.run(&["resync"]).status.success());
    svc.once_ok();
    assert_eq!(ad(dc, &ou).await[&anchor(&g)].2, sids(&[&s[0], &s[1]]));

    // users/delta catches up: the ghost appears with its SID, the cloud-only user gets synced.
    sim.put_user(&ghost, common::synced_user(&ghost, &s[2]))
        .await;
    sim.put_user(
        &late,
        json!({"onPremisesSecurityIdentifier": s[3], "onPremisesSyncEnabled": true}),
    )
    .await;
    svc.once_ok();
    assert_eq!(
        ad(dc, &ou).await[&anchor(&g)].2,
        sids(&[&s[0], &s[1], &s[2], &s[3]])
    );
}

/// Devices, contacts, service principals and cloud-only users are never written to AD, and
/// `members_skipped_total{reason}` counts them.
#[tokio::test(flavor = "multi_thread")]
async fn other_member_types_are_skipped_and_counted() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("gf-types").await;
    let users_ou = dc.fresh_ou("gf-types-users").await;
    let s = dc
        .create_users(&users_ou, &format!("gt{}-", unique_suffix()), 1)
        .await;
    let (u0, cloud_only, g) = (oid(0x300a, 100), oid(0x300a, 101), oid(0x300a, 1));
    let sim = GraphSim::start(
        vec![
            common::synced_user(&u0, &s[0]),
            json!({"id": cloud_only, "displayName": "Cloud"}),
        ],
        vec![sec(
            &g,
            "Mixed",
            vec![
                user(&u0),
                user(&cloud_only),
                json!({"@odata.type": "#microsoft.graph.device", "id": oid(0x300a, 500)}),
                json!({"@odata.type": "#microsoft.graph.orgContact", "id": oid(0x300a, 501)}),
                json!({"@odata.type": "#microsoft.graph.servicePrincipal", "id": oid(0x300a, 502)}),
            ],
        )],
        &[],
    );
    let svc = service(&sim, dc, &ou, "", "", "");
    let _child = svc.spawn();
    let skipped = |text: &str, reason: &str| {
        metric(
            text,
            "entra_writeback_members_skipped_total",
            &[("reason", reason)],
        )
    };
    wait_until(
        "the group in AD and the cloud-only user counted",
        &svc,
        || async {
            ad_name(dc, &ou, &g).await.is_some()
                && skipped(&scrape(&svc).await, "cloud_only").is_some_and(|n| n >= 1.0)
        },
    )
    .await;
    let text = scrape(&svc).await;
    assert_eq!(
        ad(dc, &ou).await[&anchor(&g)].2,
        sids(&[&s[0]]),
        "only the synced user is written"
    );
    // The device, the contact and the service principal are counted once, when their page is
    // committed (no later round lists them again: nothing changed).
    assert_eq!(
        skipped(&text, "unsupported_type"),
        Some(3.0),
        "devices, contacts, service principals:\n{text}"
    );
    let requests = |endpoint: &str| {
        metric(
            &text,
            "entra_writeback_graph_requests_total",
            &[("endpoint", endpoint), ("status_class", "2xx")],
        )
    };
    for endpoint in ["users_delta", "groups_delta"] {
        assert!(
            requests(endpoint).is_some_and(|n| n >= 1.0),
            "{endpoint} 2xx requests counted:\n{text}"
        );
    }
}
