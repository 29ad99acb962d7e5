//! The worker in process (see [`super::lab`]): coalescing, per-group order, retries, dead
//! letters, parking and systemic failure.

use std::collections::BTreeSet;
use std::time::Duration;

use super::WorkerError;
use super::lab::*;
use crate::directory::fake::{Fault, FaultRule};
use crate::directory::mapping;
use crate::graph::page::{NextStep, UserDelta};
use crate::model::event::GroupOutcome;
use crate::model::{Event, Removed};
use crate::model::{Patch, Resource, UserPatch};
use crate::queue::safety::CloudNow;
use crate::queue::tests::group;

#[tokio::test]
async fn a_groups_pending_changes_are_coalesced_into_one_apply() {
    let lab = Lab::new(&["ann", "bob", "cat"], 3).await;
    // The first (full) round queues the group's closing reconcile, which supersedes its
    // upsert (and the orphan sweep that ends every full round): one apply for the group.
    lab.round(&[group(G1, "Alpha", &[("ann", false)])]);
    assert_eq!(lab.depth(), 2);
    let r = lab.drain().await.unwrap();
    assert_eq!((r.applied, r.groups, r.dead), (2, 2, 0));
    assert_eq!(lab.fake.count_ok("add", "CN=Alpha"), 1);
    assert_eq!(
        lab.finished(),
        vec![(G1.to_string(), 1, GroupOutcome::Applied)]
    );
    // Two more rounds each add a member: two upserts, one apply, one member write.
    lab.round(&[group(G1, "Alpha", &[("bob", false)])]);
    lab.round(&[group(G1, "Alpha", &[("cat", false)])]);
    assert_eq!(lab.depth(), 2);
    lab.fake.clear_log();
    let r = lab.drain().await.unwrap();
    assert_eq!((r.applied, r.groups), (2, 1));
    let dn = lab.dn_of(G1).unwrap();
    assert_eq!(lab.fake.count_ok("modify", &dn), 1, "{:?}", lab.fake.ops());
    assert_eq!(lab.member_sids(G1), lab.sids(&["ann", "bob", "cat"]));
    assert_eq!(lab.finished().len(), 2);
    assert_eq!(
        lab.finished()[1],
        (G1.to_string(), 2, GroupOutcome::Applied)
    );
    // The queue's counts are reported after the pass: nothing left.
    let last_queue = lab.seen.events().into_iter().rev().find_map(|e| match e {
        Event::Queue(s) => Some(s),
        _ => None,
    });
    assert_eq!(last_queue.map(|s| s.depth), Some(0));
}

#[tokio::test]
async fn a_groups_changes_apply_in_queue_order() {
    let lab = Lab::new(&["ann", "bob"], 3).await;
    lab.round(&[
        group(G1, "Alpha", &[("ann", false)]),
        group(G2, "Beta", &[("ann", false)]),
    ]);
    lab.drain().await.unwrap();
    assert!(lab.dn_of(G1).is_some() && lab.dn_of(G2).is_some());
    // G1: soft-deleted, then restored (still live in Graph): the later restore wins, the
    // group stays. G2: a member added, then the group hard-deleted: the later delete wins.
    lab.cloud
        .0
        .lock()
        .unwrap()
        .insert(G1.into(), CloudNow::Live { in_scope: true });
    lab.round(&[
        removed(G1, Removed::Changed),
        group(G2, "Beta", &[("bob", false)]),
    ]);
    lab.round(&[
        group(G1, "Alpha", &[("ann", false), ("bob", false)]),
        removed(G2, Removed::Deleted),
    ]);
    let r = lab.drain().await.unwrap();
    assert_eq!((r.dead, r.groups), (0, 2));
    assert_eq!(lab.depth(), 0);
    assert!(lab.dn_of(G2).is_none(), "the delete came last");
    assert_eq!(
        lab.member_sids(G1),
        lab.sids(&["ann", "bob"]),
        "the restore came last"
    );
    assert_eq!(lab.fake.count_ok("delete", "CN=Alpha"), 0);
    assert_eq!(
        lab.count(&Event::ManagedGroups(
            crate::model::event::ManagedGroups::Deleted
        )),
        1
    );
}

#[tokio::test]
async fn transient_failures_are_retried_then_the_change_is_acked() {
    let lab = Lab::new(&["ann"], 4).await;
    lab.round(&[group(G1, "Alpha", &[("ann", false)])]);
    lab.fake
        .inject(FaultRule::next(2, Fault::Busy).on_op("add"));
    let r = lab.drain().await.unwrap();
    assert_eq!((r.applied, r.dead, r.parked), (2, 0, 0));
    assert_eq!(lab.depth(), 0);
    let adds: Vec<bool> = lab
        .fake
        .ops()
        .iter()
        .filter(|o| o.op == "add")
        .map(|o| o.ok)
        .collect();
    assert_eq!(adds, vec![false, false, true]);
    assert_eq!(lab.count(&Event::Retry { stage: "ad" }), 2);
    assert_eq!(lab.count(&Event::ChangeRetried), 2);
    assert_eq!(
        lab.finished(),
        vec![(G1.to_string(), 1, GroupOutcome::Applied)]
    );
    assert_eq!(lab.member_sids(G1), lab.sids(&["ann"]));
}

#[tokio::test]
async fn a_permanent_failure_dead_letters_the_groups_changes_with_class_and_text() {
    let lab = Lab::new(&["ann"], 4).await;
    lab.round(&[
        group(G1, "Alpha", &[("ann", false)]),
        group(G2, "Beta", &[("ann", false)]),
    ]);
    lab.fake.inject(
        FaultRule::always(Fault::Refused)
            .on_op("add")
            .on_dn("CN=Alpha"),
    );
    let r = lab.drain().await.unwrap();
    assert_eq!((r.applied, r.dead, r.groups), (2, 1, 3));
    assert_eq!(lab.depth(), 0);
    let dead = lab.store.list_dead(10).unwrap();
    assert_eq!(dead.len(), 1);
    for (_, d) in &dead {
        assert_eq!(d.change.group_id, G1);
        assert_eq!(d.class, "ldap_result");
        assert!(
            d.error.contains("LDAP add on `CN=Alpha") && d.error.contains("result 50"),
            "{}",
            d.error
        );
    }
    // Not retried: one refused add.
    assert_eq!(
        lab.fake
            .ops()
            .iter()
            .filter(|o| o.op == "add" && !o.ok)
            .count(),
        1
    );
    assert_eq!(lab.count(&Event::Retry { stage: "ad" }), 0);
    let finished = lab.finished();
    assert!(
        finished.contains(&(
            G1.to_string(),
            1,
            GroupOutcome::DeadLettered {
                class: "ldap_result",
                error: dead[0].1.error.clone()
            }
        )),
        "{finished:?}"
    );
    assert!(finished.contains(&(G2.to_string(), 1, GroupOutcome::Applied)));
    assert!(lab.dn_of(G2).is_some() && lab.dn_of(G1).is_none());
}

#[tokio::test]
async fn a_name_held_by_an_object_we_do_not_own_is_a_conflict_and_left_alone() {
    let lab = Lab::new(&["ann"], 3).await;
    let cn = mapping::cn(Some("Alpha"), G1);
    let theirs = format!("CN={cn},{OU}");
    lab.fake.seed(
        &theirs,
        &[
            ("objectClass", &["top", "group"]),
            ("sAMAccountName", &["theirs"]),
        ],
    );
    lab.round(&[group(G1, "Alpha", &[("ann", false)])]);
    let r = lab.drain().await.unwrap();
    assert_eq!(r.dead, 1);
    let dead = lab.store.list_dead(10).unwrap();
    assert!(dead.iter().all(|(_, d)| d.class == "conflict"), "{dead:?}");
    assert_eq!(lab.count(&Event::Conflict { kind: "name" }), 1);
    // The one write attempted is the add AD refused (68): nothing was written.
    let writes: Vec<_> = lab
        .fake
        .ops()
        .into_iter()
        .filter(|o| o.op != "search")
        .collect();
    assert!(
        writes.iter().all(|o| o.op == "add" && !o.ok) && writes.len() == 1,
        "nothing written: {writes:?}"
    );
    assert_eq!(lab.fake.attr(&theirs, "adminDescription"), Some(vec![]));
    assert_eq!(lab.fake.member_sids(&theirs), Some(BTreeSet::new()));
}

#[tokio::test]
async fn a_member_without_an_ad_object_is_skipped_and_the_others_are_written() {
    let lab = Lab::new(&["ann", "bob"], 3).await;
    // A user Graph gives a SID that AD does not know (deleted on-premises, say).
    let ghost = UserDelta {
        id: "ghost".into(),
        removed: None,
        patch: UserPatch {
            sid: Patch::Value("S-1-5-21-9-9-9-4242".into()),
            ..Default::default()
        },
    };
    let link = NextStep::Delta("https://graph.example/v1.0/users/delta?$deltatoken=2".into());
    let before = lab.store.cursor(Resource::Users).unwrap();
    lab.store
        .commit_user_page(&[ghost], &link, before.as_ref())
        .unwrap();
    lab.round(&[group(
        G1,
        "Alpha",
        &[("ann", false), ("ghost", false), ("bob", false)],
    )]);
    let r = lab.drain().await.unwrap();
    assert_eq!((r.applied, r.dead), (2, 0));
    assert_eq!(lab.member_sids(G1), lab.sids(&["ann", "bob"]));
    assert!(
        lab.count(&Event::MembersSkipped {
            reason: "unresolved",
            count: 1
        }) >= 1
    );
}

#[tokio::test]
async fn a_group_that_keeps_failing_is_parked_while_the_others_proceed() {
    let lab = Lab::new(&["ann"], 3).await;
    lab.round(&[
        group(G1, "Alpha", &[("ann", false)]),
        group(G2, "Beta", &[("ann", false)]),
    ]);
    lab.fake
        .inject(FaultRule::always(Fault::Busy).on_dn("CN=Alpha"));
    let r = lab.drain().await.unwrap();
    assert_eq!((r.applied, r.dead, r.parked), (2, 0, 1));
    assert_eq!(lab.depth(), 1, "the parked group's change stays queued");
    assert!(lab.dn_of(G2).is_some() && lab.dn_of(G1).is_none());
    let failed = |lab: &Lab| {
        let ops = lab.fake.ops();
        ops.iter()
            .filter(|o| !o.ok && o.dn.contains("CN=Alpha"))
            .count()
    };
    assert_eq!(failed(&lab), 3, "max_attempts tries");
    assert!(lab.finished().iter().any(|(g, n, o)| g == G1
        && *n == 1
        && matches!(
            o,
            GroupOutcome::Retrying {
                class: "ldap_result",
                ..
            }
        )));
    assert!(lab.count(&Event::ParkedGroups { count: 1 }) >= 1);
    // While parked it is not tried again, even when the worker is woken.
    let r = lab.drain().await.unwrap();
    assert_eq!((r.groups, r.parked), (0, 1));
    assert_eq!(failed(&lab), 3);
    // Once its backoff (at least 1 s) has passed and AD answers, it is applied.
    lab.fake.clear_faults();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = lab.drain().await.unwrap();
    assert_eq!((r.applied, r.parked), (1, 0));
    assert_eq!(lab.depth(), 0);
    assert!(lab.dn_of(G1).is_some());
    let parked: Vec<usize> = lab
        .seen
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::ParkedGroups { count } => Some(count),
            _ => None,
        })
        .collect();
    assert_eq!(parked.last(), Some(&0), "{parked:?}");
}

#[tokio::test]
async fn unreachable_ad_stops_the_pass_and_keeps_every_change_queued() {
    let lab = Lab::new(&["ann"], 2).await;
    lab.round(&[
        group(G1, "Alpha", &[("ann", false)]),
        group(G2, "Beta", &[("ann", false)]),
    ]);
    lab.fake.inject(FaultRule::always(Fault::Down));
    let e = lab.drain().await.unwrap_err();
    assert!(
        matches!(e, WorkerError::Exhausted { attempts: 2, .. }) && e.is_transient(),
        "{e}"
    );
    assert_eq!(lab.depth(), 3);
    assert!(lab.store.list_dead(10).unwrap().is_empty());
    assert!(lab.finished().iter().all(|(_, _, o)| matches!(
        o,
        GroupOutcome::Retrying {
            class: "connect",
            ..
        }
    )));
    // Not parked: systemic trouble pauses the worker, it does not single out groups.
    lab.fake.clear_faults();
    let r = lab.drain().await.unwrap();
    assert_eq!((r.applied, r.parked), (3, 0));
}
