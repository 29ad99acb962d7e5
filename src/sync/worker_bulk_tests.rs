//! The cheapest correct write, counted on the in-memory directory (see [`super::lab`]): a new
//! group is one add carrying its members, a bulk pass lists the owned groups once instead of
//! searching for each, a full enumeration's closing reconcile supersedes the round's pending
//! upserts across worker windows, and small groups keep flowing while a large one is written.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use ldap3::Mod;

use super::lab::*;
use crate::directory::Ldap;
use crate::directory::fake::OpRecord;
use crate::directory::listed_members::LISTED_MEMBERS;
use crate::directory::mapping;
use crate::model::Event;
use crate::model::event::{GroupOutcome, ManagedGroups};
use crate::model::{Resource, sid};
use crate::queue::safety::CloudNow;
use crate::queue::tests::group;

fn gid(i: usize) -> String {
    format!("{i:08x}-cccc-4000-8000-{i:012x}")
}

fn users(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("u{i}")).collect()
}

/// One group per id, each with the one member `ann`.
fn groups_of_ann(ids: &[String]) -> Vec<crate::graph::page::GroupDelta> {
    ids.iter()
        .map(|id| group(id, &format!("G {id}"), &[("ann", false)]))
        .collect()
}

fn writes(ops: &[OpRecord]) -> Vec<&OpRecord> {
    ops.iter().filter(|o| o.op != "search").collect()
}

fn count(ops: &[OpRecord], op: &str) -> usize {
    ops.iter().filter(|o| o.op == op).count()
}

#[tokio::test]
async fn a_new_group_is_one_add_carrying_its_members_then_batched_modifies() {
    let names = users(5);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let lab = Lab::with(&refs, 3, |ad| ad.member_batch_size = 2).await;
    let all: Vec<(&str, bool)> = refs.iter().map(|u| (*u, false)).collect();
    lab.round(&[group(G1, "Five", &all), group(G2, "Two", &all[..2])]);
    lab.fake.clear_log();
    lab.drain().await.unwrap();
    let ops = lab.fake.ops();
    let (five, two) = (lab.dn_of(G1).unwrap(), lab.dn_of(G2).unwrap());
    let on = |dn: &str| -> Vec<&OpRecord> { ops.iter().filter(|o| o.dn == dn).collect() };
    // Five members, batches of two: the add carries two, then ⌈3 / 2⌉ = 2 modifies; no read
    // of the group's members in between.
    let five_ops: Vec<_> = on(&five).iter().map(|o| (o.op, o.ok)).collect();
    assert_eq!(
        five_ops,
        [("add", true), ("modify", true), ("modify", true)],
        "{ops:?}"
    );
    // Two members: the add alone.
    let two_ops: Vec<_> = on(&two).iter().map(|o| (o.op, o.ok)).collect();
    assert_eq!(two_ops, [("add", true)], "{ops:?}");
    assert_eq!(lab.member_sids(G1), lab.sids(&refs));
    assert_eq!(lab.member_sids(G2), lab.sids(&refs[..2]));
    assert_eq!(lab.depth(), 0);
}

#[tokio::test]
async fn a_bulk_pass_lists_the_owned_groups_once_and_a_resync_over_converged_ad_writes_nothing() {
    let lab = Lab::new(&["ann"], 3).await;
    let ids: Vec<String> = (0..150).map(gid).collect();
    let items = groups_of_ann(&ids);
    lab.round(&items);
    lab.fake.clear_log();
    lab.drain().await.unwrap();
    let ops = lab.fake.ops();
    assert_eq!(count(&ops, "add"), 150, "{:?}", writes(&ops));
    assert_eq!(writes(&ops).len(), 150, "one add per group, nothing else");
    // The listing (one paged search of the target OU) and the sweep's listing: not 150
    // searches by anchor.
    assert!(
        count(&ops, "search") <= 3,
        "{} searches",
        count(&ops, "search")
    );
    for id in ids.iter().take(3) {
        assert_eq!(lab.member_sids(id), lab.sids(&["ann"]));
    }

    // A resync over the converged directory: every group compared, nothing written.
    lab.store.reset_cursor(Resource::Groups).unwrap();
    lab.round(&items);
    lab.fake.clear_log();
    lab.drain().await.unwrap();
    let ops = lab.fake.ops();
    assert!(writes(&ops).is_empty(), "{:?}", writes(&ops));
    // The listing carries every group's members: no member read per group, and the sweep
    // that ends the round takes its candidates (none here) from the same listing. One search.
    assert_eq!(count(&ops, "search"), 1, "{ops:?}");

    // The pass is over: a one-member change is one read of the object at the SID the store
    // remembers (indexed; the anchor search scans every group) and one modify.
    lab.round(&[group(&ids[0], &format!("G {}", ids[0]), &[("ann", true)])]);
    lab.fake.clear_log();
    lab.drain().await.unwrap();
    let ops = lab.fake.ops();
    let group_sid = lab.store.materialized_sid(&ids[0]).unwrap().unwrap();
    assert_eq!(
        (count(&ops, "search"), count(&ops, "modify"), ops.len()),
        (1, 1, 2),
        "{ops:?}"
    );
    assert_eq!(ops[0].dn, sid::member_value(&group_sid), "{ops:?}");
    assert_eq!(lab.member_sids(&ids[0]), BTreeSet::new());
}

#[tokio::test]
async fn a_remembered_object_that_no_longer_carries_our_anchor_is_searched_for_never_written() {
    let lab = Lab::new(&["ann", "bob"], 3).await;
    lab.round(&[group(G1, "Kept", &[("ann", false)])]);
    lab.drain().await.unwrap();
    // A change after the create confirms the object: its SID is remembered from then on.
    lab.round(&[group(G1, "Kept", &[("bob", false)])]);
    lab.drain().await.unwrap();
    assert!(lab.store.materialized_sid(G1).unwrap().is_some());
    let dn = lab.dn_of(G1).unwrap();
    let guid = lab.fake.attr(&dn, "objectGUID");
    // Someone re-anchors the object to another cloud group: it is no longer ours for G1.
    lab.fake
        .modify(
            &dn,
            vec![Mod::Replace(
                "adminDescription".into(),
                HashSet::from([mapping::anchor(G2)]),
            )],
        )
        .await
        .unwrap();
    lab.round(&[group(G1, "Kept", &[("bob", true)])]);
    lab.fake.clear_log();
    let _ = lab.drain().await;
    let ops = lab.fake.ops();
    // The remembered object was read, refused, and the anchor searched for across the OU.
    assert!(ops[0].dn.starts_with("<SID="), "{ops:?}");
    assert!(
        ops.iter().any(|o| o.op == "search" && o.dn == OU),
        "{ops:?}"
    );
    // The re-anchored object keeps its identity and its members; none of it was modified.
    assert!(
        writes(&ops).iter().all(|o| !o.ok || o.dn != dn),
        "{:?}",
        writes(&ops)
    );
    assert_eq!(lab.fake.attr(&dn, "objectGUID"), guid);
    assert_eq!(
        lab.fake.member_sids(&dn).unwrap(),
        lab.sids(&["ann", "bob"])
    );
}

#[tokio::test]
async fn a_resync_reads_the_members_only_of_drifted_and_large_groups_and_repairs_the_drift() {
    let names = users(LISTED_MEMBERS + 20);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let lab = Lab::new(&refs, 3).await;
    let small: Vec<String> = (0..80).map(gid).collect(); // a bulk pass: over BULK_GROUPS
    let (drifted, large) = (gid(100), gid(101));
    let pair = [(refs[0], false), (refs[1], false)];
    let everyone: Vec<(&str, bool)> = refs.iter().map(|u| (*u, false)).collect();
    let mut items: Vec<_> = small
        .iter()
        .map(|id| group(id, &format!("G {id}"), &pair[..1]))
        .collect();
    items.push(group(&drifted, "Drifted", &pair));
    items.push(group(&large, "Large", &everyone));
    lab.round(&items);
    lab.drain().await.unwrap();
    assert_eq!(lab.member_sids(&large).len(), refs.len());

    // Someone removes a member in AD, behind the service's back.
    let (drifted_dn, large_dn) = (lab.dn_of(&drifted).unwrap(), lab.dn_of(&large).unwrap());
    let gone = sid::member_value(&lab.sids(&refs[1..2]).pop_first().unwrap());
    lab.fake
        .modify(
            &drifted_dn,
            vec![Mod::Delete("member".into(), HashSet::from([gone]))],
        )
        .await
        .unwrap();

    lab.store.reset_cursor(Resource::Groups).unwrap();
    lab.round(&items);
    lab.fake.clear_log();
    lab.drain().await.unwrap();
    let ops = lab.fake.ops();
    // Members were read (by a base search of the group) for the drifted group, whose listed
    // members differ from the mirror's, and for the large one, which the listing cut short.
    let group_dns: BTreeSet<String> = small
        .iter()
        .chain([&drifted, &large])
        .map(|id| lab.dn_of(id).unwrap())
        .collect();
    let read: BTreeSet<&str> = ops
        .iter()
        .filter(|o| o.op == "search" && group_dns.contains(&o.dn))
        .map(|o| o.dn.as_str())
        .collect();
    assert_eq!(
        read,
        BTreeSet::from([drifted_dn.as_str(), large_dn.as_str()]),
        "{ops:?}"
    );
    let written: Vec<_> = writes(&ops).iter().map(|o| (o.op, o.dn.clone())).collect();
    assert_eq!(
        written,
        [("modify", drifted_dn)],
        "only the drift is repaired"
    );
    assert_eq!(lab.member_sids(&drifted), lab.sids(&refs[..2]));
    assert_eq!(lab.member_sids(&large).len(), refs.len());
}

#[tokio::test]
async fn a_bulk_passs_sweep_takes_its_candidates_from_the_listing_and_reads_each_afresh() {
    let lab = Lab::new(&["ann"], 3).await;
    let ids: Vec<String> = (0..80).map(gid).collect();
    let items = groups_of_ann(&ids);
    lab.round(&items);
    lab.drain().await.unwrap();
    // Two owned groups the mirror does not know: Graph says one is purged, the other live.
    let (purged, live) = (gid(200), gid(201));
    for id in [&purged, &live] {
        let anchor = mapping::anchor(id);
        lab.fake.seed(
            &format!("CN=Orphan {id},{OU}"),
            &[
                ("objectClass", &["top", "group"]),
                ("sAMAccountName", &[&format!("orphan-{}", &id[..8])]),
                ("adminDescription", &[&anchor]),
            ],
        );
    }
    lab.cloud
        .0
        .lock()
        .unwrap()
        .insert(live.clone(), CloudNow::Live { in_scope: true });
    let purged_dn = lab.dn_of(&purged).unwrap();
    let live_guid = lab.fake.attr(&lab.dn_of(&live).unwrap(), "objectGUID");

    lab.store.reset_cursor(Resource::Groups).unwrap();
    lab.round(&items);
    lab.fake.clear_log();
    lab.drain().await.unwrap();
    let ops = lab.fake.ops();
    let written: Vec<_> = writes(&ops).iter().map(|o| (o.op, o.dn.clone())).collect();
    assert_eq!(
        written,
        [("delete", purged_dn)],
        "only the purged orphan goes"
    );
    assert!(lab.dn_of(&purged).is_none());
    let kept = lab.dn_of(&live).expect("the live one stays");
    assert!(live_guid.is_some());
    assert_eq!(
        lab.fake.attr(&kept, "objectGUID"),
        live_guid,
        "the same object"
    );
    // The listing, then each candidate read afresh before anything is decided: no second
    // listing of the owned groups.
    assert_eq!(count(&ops, "search"), 3, "{ops:?}");
    // The listing counted every owned group for the observers.
    let counted = Event::ManagedGroups(ManagedGroups::Counted(82));
    assert!(lab.count(&counted) >= 1, "{:?}", lab.seen.events());
}

#[tokio::test]
async fn the_closing_reconcile_supersedes_the_rounds_pending_upserts_across_windows() {
    let lab = Lab::new(&["ann"], 3).await;
    // 1,200 groups over two pages: more changes than one worker window (1,024) holds.
    let items: Vec<_> = (0..1200)
        .map(|i| group(&gid(i), &format!("G{i}"), &[("ann", false)]))
        .collect();
    lab.page(&items[..600], false);
    assert_eq!(lab.depth(), 600, "one upsert per group of the first page");
    lab.page(&items[600..], true);
    // The closing reconciles replaced every upsert of the round, the first page's (pending)
    // and the second page's own.
    assert_eq!(
        lab.depth(),
        1200 + 1,
        "one reconcile per group, and the sweep"
    );
    lab.fake.clear_log();
    let r = lab.drain().await.unwrap();
    assert_eq!(r.dead, 0);
    let finished = lab.finished();
    assert_eq!(finished.len(), 1200, "each group applied exactly once");
    let unique: BTreeSet<_> = finished.iter().map(|(g, ..)| g.clone()).collect();
    assert_eq!(unique.len(), 1200);
    assert!(
        finished
            .iter()
            .all(|(_, _, outcome)| *outcome == GroupOutcome::Applied)
    );
    let ops = lab.fake.ops();
    assert_eq!(count(&ops, "add"), 1200);
    assert_eq!(count(&ops, "modify"), 0);
    assert_eq!(lab.depth(), 0);
}

/// Polls `done` for up to ten seconds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_groups_flow_while_a_large_group_is_still_being_written() {
    let names = users(12);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let lab = Lab::with(&refs, 3, |ad| ad.member_batch_size = 2).await;
    let big: Vec<(&str, bool)> = refs[..10].iter().map(|u| (*u, false)).collect();
    lab.round(&[group(G1, "Big", &big)]);
    // The big group's member batches after its add are held: it stays "being written".
    let hold = lab.fake.hold("modify", "CN=Big");
    let worker = lab.worker.clone();
    let drain = tokio::spawn(async move {
        worker
            .drain(&tokio_util::sync::CancellationToken::new())
            .await
    });
    eventually("the big group's add", || lab.dn_of(G1).is_some()).await;
    // Now a small group's change arrives, after the big group's apply started.
    lab.round(&[group(G2, "Small", &[(refs[11], false)])]);
    eventually("the small group applied", || {
        lab.finished()
            .iter()
            .any(|(g, _, o)| g == G2 && *o == GroupOutcome::Applied)
    })
    .await;
    assert!(
        !lab.finished().iter().any(|(g, ..)| g == G1),
        "the big group is still being written"
    );
    assert_eq!(
        lab.member_sids(G1).len(),
        2,
        "only the add's inline batch so far"
    );
    hold.release();
    drain.await.unwrap().unwrap();
    assert_eq!(lab.member_sids(G1), lab.sids(&refs[..10]));
    assert_eq!(lab.member_sids(G2), lab.sids(&refs[11..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_now_does_not_wait_behind_a_bulk_of_new_groups() {
    let lab = Lab::new(&["ann", "bob"], 3).await;
    lab.round(&[group(G1, "Alpha", &[("ann", false)])]);
    lab.drain().await.unwrap();
    // 300 new groups arrive (their adds are slow), then a one-member change of Alpha.
    let bulk: Vec<_> = (0..300)
        .map(|i| group(&gid(i), &format!("Bulk {i}"), &[("ann", false)]))
        .collect();
    lab.round(&bulk);
    lab.round(&[group(G1, "Alpha", &[("bob", false)])]);
    let hold = lab.fake.hold("add", "CN=Bulk");
    let worker = lab.worker.clone();
    let drain = tokio::spawn(async move {
        worker
            .drain(&tokio_util::sync::CancellationToken::new())
            .await
    });
    eventually("Alpha's change applied", || {
        lab.member_sids(G1) == lab.sids(&["ann", "bob"])
    })
    .await;
    assert!(
        lab.finished().iter().filter(|(g, ..)| g != G1).count() == 0,
        "no bulk group finished before Alpha's change"
    );
    hold.release();
    let r = drain.await.unwrap().unwrap();
    assert_eq!(r.dead, 0);
    assert_eq!(lab.depth(), 0);
    assert!(lab.dn_of(&gid(299)).is_some());
}
