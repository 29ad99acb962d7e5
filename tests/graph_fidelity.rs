//! Graph source fidelity (issue 3): every documented behaviour of Microsoft Graph delta query,
//! played by graph-sim against the real binaries and a real Samba AD DC. Each test asserts the
//! final AD state, or the exact requests the service made (graph-sim's request log).
//! Authentication is in `graph_auth.rs`, retries and the request rate in `graph_retry.rs`,
//! membership in `graph_members.rs`.

mod common;
#[path = "graph_fidelity/support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};

use common::samba::{self, unique_suffix};
use common::service::tail;
use common::sim::{GraphSim, group, oid, user};
use serde_json::{Value, json};
use support::*;

/// A delta token expires (410 + Location) while the tenant changes and someone edits AD by hand:
/// the full resync leaves AD exactly as the tenant says. Then each other resync signal.
#[tokio::test(flavor = "multi_thread")]
async fn expired_delta_token_resyncs_and_reconciles_ad_exactly() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("gf-resync").await;
    let users_ou = dc.fresh_ou("gf-resync-users").await;
    let s = dc
        .create_users(&users_ou, &format!("gr{}-", unique_suffix()), 6)
        .await;
    let u = |i: usize| oid(0x3003, 100 + i as u32);
    let users: Vec<Value> = (0..6).map(|i| common::synced_user(&u(i), &s[i])).collect();
    let (a, b, c, d, e) = (
        oid(0x3003, 1),
        oid(0x3003, 2),
        oid(0x3003, 3),
        oid(0x3003, 4),
        oid(0x3003, 5),
    );
    let sim = GraphSim::start(
        users,
        vec![
            sec(&a, "Alpha", vec![user(&u(0)), user(&u(1))]),
            json!({"id": b, "displayName": "Bravo", "description": "b", "groupTypes": ["Unified"],
                   "securityEnabled": true, "members": [user(&u(2)), user(&u(3))]}),
            sec(&c, "Charlie", vec![user(&u(4))]),
            sec(&d, "Delta", vec![group(&a), user(&u(5))]),
        ],
        &["--page-size", "2"],
    );
    let svc = service(&sim, dc, &ou, "", "", "");
    svc.once_ok();
    let before = ad(dc, &ou).await;
    assert_eq!(before.len(), 4);
    let sid_a = before[&anchor(&a)].3.clone();

    // The gap: tokens expire; the tenant changes (a hard delete among them); AD is edited by hand.
    sim.faults(json!({"expire_delta_tokens": {"status": 410}}))
        .await;
    sim.delete_group(&c, true).await;
    sim.members(&a, vec![user(&u(5))], vec![user(&u(0))]).await;
    sim.put_group(
        &b,
        json!({"displayName": "Bravo Renamed", "description": null}),
    )
    .await;
    sim.put_group(
        &e,
        json!({"displayName": "Echo", "securityEnabled": true, "groupTypes": [],
        "members": [user(&u(1))]}),
    )
    .await;
    sim.delete_user(&u(3), true).await; // cascades: leaves Bravo
    {
        let (dn_a, dn_b, dn_d) = (
            dc.group_by_anchor(&ou, &anchor(&a)).await.unwrap().dn,
            dc.group_by_anchor(&ou, &anchor(&b)).await.unwrap().dn,
            dc.group_by_anchor(&ou, &anchor(&d)).await.unwrap().dn,
        );
        let mut ldap = dc.connect().await;
        let stray = format!("<SID={}>", s[4]);
        let gone = format!("<SID={}>", s[2]);
        ldap.modify(
            &dn_a,
            vec![ldap3::Mod::Add("member", [stray.as_str()].into())],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
        ldap.modify(
            &dn_b,
            vec![ldap3::Mod::Delete("member", [gone.as_str()].into())],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
        ldap.modify(
            &dn_d,
            vec![ldap3::Mod::Replace("description", ["hand edit"].into())],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
        let _ = ldap.unbind().await;
    }
    sim.clear_requests().await;
    let log = svc.once_ok();
    assert!(log.contains("starting a full resync"), "{}", tail(&log));

    // Each stream was restarted from its initial URL right after the 410.
    let reqs = sim.requests().await;
    let reqs = graph_requests(&reqs);
    for path in ["/v1.0/users/delta", "/v1.0/groups/delta"] {
        let of: Vec<&&Value> = reqs.iter().filter(|r| r["path"] == path).collect();
        assert_eq!(of[0]["status"], 410, "{path}: {of:?}");
        let q = of[1]["query"].as_str().unwrap();
        assert!(
            q.starts_with("$select=") && !q.contains("token"),
            "{path} restarted with {q}"
        );
    }

    let after = ad(dc, &ou).await;
    let want: BTreeMap<String, BTreeSet<String>> = [
        (anchor(&a), sids(&[&s[1], &s[5]])),
        (anchor(&b), sids(&[&s[2]])),
        (
            anchor(&d),
            [sid_a.clone(), s[5].clone()].into_iter().collect(),
        ),
        (anchor(&e), sids(&[&s[1]])),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        members_of(&after),
        want,
        "AD differs from the tenant after the resync"
    );
    assert_eq!(after[&anchor(&b)].0, "Bravo Renamed");
    assert_eq!(
        after[&anchor(&b)].1,
        None,
        "description cleared in the cloud"
    );
    assert_eq!(
        after[&anchor(&d)].1,
        None,
        "hand-edited description reverted"
    );
    assert_eq!(
        after[&anchor(&a)].3,
        sid_a,
        "groups are kept, not re-created"
    );

    // The other signals: 400 syncStateNotFound, resyncRequired, an unknown sync-state code, and
    // a 410 with a code we have never seen. Each restarts the round and lands the change.
    for (i, (status, code)) in [
        (400, "syncStateNotFound"),
        (400, "resyncRequired"),
        (400, "syncStateInvalid"),
        (410, "somethingNew"),
    ]
    .into_iter()
    .enumerate()
    {
        sim.faults(json!({"expire_delta_tokens": {"status": status, "code": code}}))
            .await;
        sim.put_group(&a, json!({"displayName": format!("Alpha {i}")}))
            .await;
        sim.clear_requests().await;
        svc.once_ok();
        let reqs = sim.requests().await;
        let groups: Vec<&Value> = graph_requests(&reqs)
            .into_iter()
            .filter(|r| r["path"] == "/v1.0/groups/delta")
            .collect();
        assert_eq!(groups[0]["status"], status, "{code}");
        assert!(
            !groups[1]["query"].as_str().unwrap().contains("token"),
            "{code}: {groups:?}"
        );
        let now = ad(dc, &ou).await;
        assert_eq!(now[&anchor(&a)].0, format!("Alpha {i}"), "{code}");
        assert_eq!(members_of(&now), want, "{code}");
    }
}

/// Soft delete, restore and hard delete (purge) of security, Microsoft 365 security-enabled
/// and Microsoft 365 groups, under both soft-delete policies.
#[tokio::test(flavor = "multi_thread")]
async fn soft_delete_restore_and_hard_delete_for_every_group_type() {
    let dc = samba::shared();
    let freeze_ou = dc.fresh_ou("gf-freeze").await;
    let delete_ou = dc.fresh_ou("gf-softdel").await;
    let users_ou = dc.fresh_ou("gf-del-users").await;
    let s = dc
        .create_users(&users_ou, &format!("gd{}-", unique_suffix()), 2)
        .await;
    let (u0, u1) = (oid(0x3006, 100), oid(0x3006, 101));
    // One tenant per policy (sAMAccountNames are domain-wide, so the ids differ).
    let tenant = |n: u32| {
        let (gs, gms, gmu) = (oid(0x3006, n + 1), oid(0x3006, n + 2), oid(0x3006, n + 3));
        let sim = GraphSim::start(
            vec![
                common::synced_user(&u0, &s[0]),
                common::synced_user(&u1, &s[1]),
            ],
            vec![
                sec(&gs, "Sec", vec![user(&u0)]),
                json!({"id": gms, "displayName": "M365 Sec", "groupTypes": ["Unified"], "securityEnabled": true,
                       "mailEnabled": true, "members": [user(&u0)]}),
                json!({"id": gmu, "displayName": "M365", "groupTypes": ["Unified"], "securityEnabled": false,
                       "mailEnabled": true, "members": [user(&u0)]}),
            ],
            &[],
        );
        (sim, [gs, gms, gmu])
    };
    let (sim_f, ids_f) = tenant(0);
    let (sim_d, ids_d) = tenant(10);
    let freeze = service(&sim_f, dc, &freeze_ou, "", "", "");
    let delete = service(&sim_d, dc, &delete_ou, "", "soft_delete = \"delete\"", "");
    let both = [(&sim_f, &ids_f), (&sim_d, &ids_d)];
    let run = || {
        freeze.once_ok();
        delete.once_ok();
    };
    run();
    let f1 = ad(dc, &freeze_ou).await;
    assert_eq!(f1.len(), 3);
    assert_eq!(ad(dc, &delete_ou).await.len(), 3);

    for (sim, ids) in both {
        for g in ids {
            sim.delete_group(g, false).await;
        }
    }
    run();
    assert_eq!(ad(dc, &freeze_ou).await, f1, "soft delete freezes");
    assert!(ad(dc, &delete_ou).await.is_empty(), "soft_delete = delete");

    for (sim, ids) in both {
        for g in ids {
            sim.restore_group(g).await;
        }
        sim.members(&ids[0], vec![user(&u1)], vec![]).await;
    }
    run();
    for (ou, [gs, gms, gmu]) in [(&freeze_ou, &ids_f), (&delete_ou, &ids_d)] {
        let now = ad(dc, ou).await;
        assert_eq!(now.len(), 3, "restored in {ou}");
        assert_eq!(now[&anchor(gs)].2, sids(&[&s[0], &s[1]]));
        assert_eq!(now[&anchor(gms)].2, sids(&[&s[0]]));
        assert_eq!(now[&anchor(gmu)].2, sids(&[&s[0]]));
    }
    let f2 = ad(dc, &freeze_ou).await;
    let gs = &ids_f[0];
    assert_eq!(
        f2[&anchor(gs)].3,
        f1[&anchor(gs)].3,
        "the frozen group came back, not a new one"
    );

    // Hard deletes: purge after a soft delete (Sec), directly (M365 Sec), soft then purge in
    // two rounds (M365).
    for (sim, [gs, gms, gmu]) in both {
        sim.delete_group(gs, false).await;
        sim.delete_group(gs, true).await;
        sim.delete_group(gms, true).await;
        sim.delete_group(gmu, false).await;
    }
    run();
    let f3 = ad(dc, &freeze_ou).await;
    assert_eq!(
        f3.keys().collect::<Vec<_>>(),
        [&anchor(&ids_f[2])],
        "only the soft-deleted one is kept"
    );
    assert!(ad(dc, &delete_ou).await.is_empty());
    for (sim, ids) in both {
        sim.delete_group(&ids[2], true).await;
    }
    run();
    assert!(
        ad(dc, &freeze_ou).await.is_empty(),
        "purge deletes the frozen group"
    );
}

/// `[graph.scope]`: group types, dynamic groups, a displayName pattern and exclusion, an id
/// allow-list; leaving scope is a soft delete (here with `soft_delete = "delete"`), coming back
/// converges everything that changed meanwhile, and a scope change in the config re-evaluates
/// every group.
#[tokio::test(flavor = "multi_thread")]
async fn scope_filters_and_groups_leaving_and_entering_scope() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("gf-scope").await;
    let users_ou = dc.fresh_ou("gf-scope-users").await;
    let s = dc
        .create_users(&users_ou, &format!("gs{}-", unique_suffix()), 3)
        .await;
    let u = |i: usize| oid(0x3009, 100 + i as u32);
    let id = |n: u32| oid(0x3009, n);
    let sim = GraphSim::start(
        (0..3).map(|i| common::synced_user(&u(i), &s[i])).collect(),
        vec![
            sec(&id(1), "SG-A", vec![user(&u(0))]),
            json!({"id": id(2), "displayName": "SG-M365", "groupTypes": ["Unified"], "securityEnabled": true}),
            sec(&id(3), "Other", vec![user(&u(0))]),
            json!({"id": id(4), "displayName": "SG-Dyn", "groupTypes": ["DynamicMembership"], "securityEnabled": true}),
            sec(&id(5), "SG-Test lab", vec![]),
            sec(&id(6), "SG-B", vec![user(&u(1))]),
        ],
        &[],
    );
    let scope = "[graph.scope]\ngroup_types = [\"security\"]\ndynamic_groups = false\n\
                 display_name_pattern = \"^SG-\"\ndisplay_name_exclude = \"(?i)test\"\n";
    let svc = service(&sim, dc, &ou, "", "soft_delete = \"delete\"", scope);
    svc.once_ok();
    let names = |st: &AdState| st.values().map(|v| v.0.clone()).collect::<BTreeSet<_>>();
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(names(&ad(dc, &ou).await), set(&["SG-A", "SG-B"]));

    // SG-B leaves scope (renamed) and changes meanwhile; Other enters scope.
    sim.put_group(&id(6), json!({"displayName": "Legacy B"}))
        .await;
    sim.members(&id(6), vec![user(&u(2))], vec![]).await;
    sim.put_group(&id(3), json!({"displayName": "SG-Other"}))
        .await;
    svc.once_ok();
    assert_eq!(names(&ad(dc, &ou).await), set(&["SG-A", "SG-Other"]));

    // SG-B comes back with the members it gained while out of scope.
    sim.put_group(&id(6), json!({"displayName": "SG-B again"}))
        .await;
    svc.once_ok();
    let st = ad(dc, &ou).await;
    assert_eq!(names(&st), set(&["SG-A", "SG-Other", "SG-B again"]));
    assert_eq!(st[&anchor(&id(6))].2, sids(&[&s[1], &s[2]]));

    // The admin narrows the scope to an allow-list: every group is re-evaluated.
    let text = std::fs::read_to_string(&svc.config).unwrap();
    std::fs::write(
        &svc.config,
        text.replace(
            "[graph.scope]\n",
            &format!(
                "[graph.scope]\ngroup_ids = [\"{}\"]\n",
                id(1).to_uppercase()
            ),
        ),
    )
    .unwrap();
    let log = svc.once_ok();
    assert!(log.contains("graph.scope changed"), "{}", tail(&log));
    assert_eq!(names(&ad(dc, &ou).await), set(&["SG-A"]));
}
