//! Groups whose source of authority moved from AD to the cloud (issue 12), against a real
//! Samba AD DC: the cloud group keeps its original's `onPremisesSecurityIdentifier`, and the
//! service manages that original **in place** (same objectGUID, DN, sAMAccountName and
//! groupType) under `ad.adopt_ous`, never creating a second group in `target_ou`. Outside
//! `adopt_ous`, or with no original, it reports and writes nothing. A rollback releases it.

mod common;

use std::collections::BTreeSet;

use common::outcome::{dead_letters, usn_snapshot};
use common::samba::{self, SambaDc, attr_first, entry_guid, entry_sid, unique_suffix};
use common::service::{Options, Service};
use common::sim::{GraphSim, oid};
use common::synced_user;
use ldap3::SearchEntry;
use serde_json::{Value, json};

/// A global security group, as AD admins create them (not what the service would write).
const GLOBAL_SECURITY: &str = "-2147483646";

/// A service writing to `target_ou`, adopting originals under `adopt_ous`.
fn service(sim: &GraphSim, dc: &SambaDc, target_ou: &str, adopt_ous: &[&str]) -> Service {
    let list: Vec<String> = adopt_ous.iter().map(|ou| format!("\"{ou}\"")).collect();
    Service::with(
        dc,
        target_ou,
        Options {
            ad_extra: format!("adopt_ous = [{}]", list.join(", ")),
            tail: "[sync]\nmin_backoff = \"100ms\"\nmax_backoff = \"1s\"\nmax_attempts = 2\n"
                .into(),
            ..Options::new(dc, sim)
        },
    )
}

/// An AD group as an admin made it: returns its DN and SID.
async fn original(dc: &SambaDc, ou: &str, name: &str, member_dn: &str) -> (String, String) {
    let dn = format!("CN={name},{ou}");
    dc.add_group(
        &dn,
        vec![
            ("sAMAccountName", name),
            ("groupType", GLOBAL_SECURITY),
            ("member", member_dn),
        ],
    )
    .await;
    let entry = read(dc, ou, &dn)
        .await
        .expect("the original was just added");
    (dn, entry_sid(&entry).expect("a group has a SID"))
}

/// The group at `dn` (under `ou`), with every attribute and its members.
async fn read(dc: &SambaDc, ou: &str, dn: &str) -> Option<SearchEntry> {
    dc.groups_in(ou)
        .await
        .into_iter()
        .find(|g| g.dn.eq_ignore_ascii_case(dn))
}

/// The cloud side of a group synced from AD: its original's SID, still synced.
fn synced_group(id: &str, name: &str, sid: &str, members: &[&str]) -> Value {
    let members: Vec<Value> = members
        .iter()
        .map(|m| json!({"@odata.type": "#microsoft.graph.user", "id": m}))
        .collect();
    json!({"id": id, "displayName": name, "securityEnabled": true, "groupTypes": [],
           "onPremisesSyncEnabled": true, "onPremisesSecurityIdentifier": sid,
           "members": members})
}

/// What must not change when a group is managed in place.
fn identity(e: &SearchEntry) -> (String, Option<String>, Option<String>, Option<String>) {
    (
        e.dn.to_lowercase(),
        entry_guid(e),
        attr_first(e, "sAMAccountName").map(str::to_string),
        attr_first(e, "groupType").map(str::to_string),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_converted_group_is_managed_in_place_and_released_on_rollback() {
    let dc = samba::shared();
    let home = dc.fresh_ou("soa-home").await;
    let target = dc.fresh_ou("soa-target").await;
    let tag = unique_suffix();
    let (ann_dn, ann_sid) = dc.create_user(&home, &format!("ann-{tag}")).await;
    let (_, bob_sid) = dc.create_user(&home, &format!("bob-{tag}")).await;
    let name = format!("Finance-{tag}");
    let (dn, sid) = original(dc, &home, &name, &ann_dn).await;
    let before = read(dc, &home, &dn).await.unwrap();

    let gid = oid(0x50a, 1);
    let sim = GraphSim::start(
        vec![synced_user("ann", &ann_sid), synced_user("bob", &bob_sid)],
        vec![synced_group(&gid, &name, &sid, &["ann"])],
        &[],
    );
    let svc = service(&sim, dc, &target, &[&home]);

    // Still synced from AD: never written back.
    let quiet = usn_snapshot(dc, &home).await;
    svc.once_ok();
    assert_eq!(
        usn_snapshot(dc, &home).await,
        quiet,
        "a synced group is left alone"
    );

    // Converted, then changed in the cloud: the original follows, in place.
    sim.source_of_authority(&gid, true).await;
    sim.members(
        &gid,
        vec![json!({"@odata.type": "#microsoft.graph.user", "id": "bob"})],
        vec![],
    )
    .await;
    sim.put_group(&gid, json!({"description": "managed in the cloud now"}))
        .await;
    // `plan` shows the adoption on the original and writes nothing.
    let out = svc.run(&["plan"]);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{plan}");
    assert!(plan.contains(&format!("~ modify {dn}")), "{plan}");
    assert!(
        plan.contains(&format!("Group_{gid}")),
        "the anchor is stamped: {plan}"
    );
    assert!(!plan.contains("+ create"), "never a new group: {plan}");
    assert_eq!(usn_snapshot(dc, &home).await, quiet, "plan wrote nothing");
    let log = svc.once_ok();
    assert!(
        log.contains("adopting the original AD group in place"),
        "{log}"
    );
    let after = read(dc, &home, &dn)
        .await
        .expect("the original is still there");
    assert_eq!(
        identity(&after),
        identity(&before),
        "same object, DN, name and type"
    );
    assert_eq!(entry_sid(&after).as_deref(), Some(sid.as_str()), "same SID");
    assert_eq!(
        attr_first(&after, "adminDescription"),
        Some(format!("Group_{gid}").as_str())
    );
    assert_eq!(
        attr_first(&after, "description"),
        Some("managed in the cloud now")
    );
    let want: BTreeSet<String> = [ann_sid.clone(), bob_sid.clone()].into();
    assert_eq!(
        dc.member_sids(&dn).await,
        want,
        "members converged on the original"
    );
    assert!(
        dc.groups_in(&target).await.is_empty(),
        "nothing created in target_ou"
    );

    // A second round finds it by its anchor and writes nothing.
    let converged = usn_snapshot(dc, &home).await;
    svc.once_ok();
    assert_eq!(
        usn_snapshot(dc, &home).await,
        converged,
        "converged: no write"
    );

    // Rollback: AD is the source again. The object is released, not deleted.
    sim.source_of_authority(&gid, false).await;
    let log = svc.once_ok();
    assert!(log.contains("released the adopted original"), "{log}");
    let released = read(dc, &home, &dn).await.expect("never deleted");
    assert_eq!(identity(&released), identity(&before));
    assert_eq!(
        attr_first(&released, "adminDescription"),
        None,
        "anchor removed"
    );
    assert_eq!(dc.member_sids(&dn).await, want, "members left as they were");
    assert!(dc.groups_in(&target).await.is_empty());

    // Converted again, adopted again; then writeback is turned off: `decommission --yes`
    // deletes what the service created, but hands the original back.
    sim.source_of_authority(&gid, true).await;
    svc.once_ok();
    let again = read(dc, &home, &dn).await.unwrap();
    assert_eq!(
        attr_first(&again, "adminDescription"),
        Some(format!("Group_{gid}").as_str())
    );
    let out = svc.run(&["decommission", "--yes"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("released 1 adopted original"), "{stdout}");
    let kept = read(dc, &home, &dn)
        .await
        .expect("decommission never deletes an original");
    assert_eq!(identity(&kept), identity(&before));
    assert_eq!(attr_first(&kept, "adminDescription"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_original_outside_adopt_ous_or_missing_is_reported_and_nothing_is_written() {
    let dc = samba::shared();
    let home = dc.fresh_ou("soa-elsewhere").await;
    let adopt = dc.fresh_ou("soa-adopt").await;
    let target = dc.fresh_ou("soa-target2").await;
    let tag = unique_suffix();
    let (ann_dn, ann_sid) = dc.create_user(&home, &format!("cat-{tag}")).await;
    let name = format!("Legal-{tag}");
    let (dn, sid) = original(dc, &home, &name, &ann_dn).await;
    // A SID of this domain that no object holds (the original was deleted).
    let domain = sid.rsplit_once('-').unwrap().0;
    let gone_sid = format!("{domain}-999999");

    let (outside, missing) = (oid(0x50b, 1), oid(0x50b, 2));
    let sim = GraphSim::start(
        vec![synced_user("cat", &ann_sid)],
        vec![
            synced_group(&outside, &name, &sid, &["cat"]),
            synced_group(&missing, &format!("Gone-{tag}"), &gone_sid, &["cat"]),
        ],
        &[],
    );
    let svc = service(&sim, dc, &target, &[&adopt]);
    svc.once_ok();
    let snapshot = async || {
        let mut all = usn_snapshot(dc, &home).await;
        all.extend(usn_snapshot(dc, &adopt).await);
        all.extend(usn_snapshot(dc, &target).await);
        all
    };
    let untouched = snapshot().await;

    sim.source_of_authority(&outside, true).await;
    sim.source_of_authority(&missing, true).await;
    let out = svc.run(&["run", "--once"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "conflicts are dead letters: exit 1"
    );
    let dead = dead_letters(&svc);
    let why = |id: &str| {
        dead.get(id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not reported: {dead:?}"))
    };
    assert!(
        why(&outside).contains("outside ad.adopt_ous"),
        "{}",
        why(&outside)
    );
    assert!(why(&outside).contains(&name), "names the original's DN");
    assert!(
        why(&missing).contains("no AD object holds that SID"),
        "{}",
        why(&missing)
    );
    assert!(why(&missing).contains("no group was created"));

    assert_eq!(snapshot().await, untouched, "nothing was written");
    assert!(
        dc.groups_in(&target).await.is_empty(),
        "no duplicate in target_ou"
    );
    assert!(read(dc, &home, &dn).await.is_some());

    // The default (no adopt_ous) reports too, naming the key to set.
    let default = service(&sim, dc, &target, &[]);
    let out = default.run(&["run", "--once"]);
    assert_eq!(out.status.code(), Some(1));
    let why = dead_letters(&default).remove(&outside).expect("reported");
    assert!(why.contains("ad.adopt_ous is empty"), "{why}");
    assert!(dc.groups_in(&target).await.is_empty());
}
