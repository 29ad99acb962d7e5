//! Unit tests of what a page commit reports and queues beyond the guarantees in `tests.rs`
//! (found untested by cargo-mutants): round and full-round flags, unsupported member counts,
//! reconciles for groups new in an incremental round, and parents re-queued when a synced
//! group's identity changes.

use super::mirror::{DeletePolicy, PageOutcome};
use super::testing::drain;
use super::tests::{delta, group};
use super::*;
use crate::graph::page::{GroupDelta, MemberDelta, NextStep, UserDelta};
use crate::model::*;
use crate::model::{MemberKind, MemberRef, Patch};

/// The delete policy of these tests (a threshold of 10, soft deletes not destructive).
pub(super) const POLICY: DeletePolicy = DeletePolicy {
    threshold: 10,
    soft_destructive: false,
};

/// A fresh store in a temporary directory (kept alive by the returned guard).
pub(super) fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn commit(store: &Store, items: &[GroupDelta], link: NextStep) -> PageOutcome {
    let before = store.cursor(Resource::Groups).unwrap();
    store
        .commit_group_page(items, &link, before.as_ref(), POLICY, &|_, p| p.eligible())
        .unwrap()
}

fn next(n: u32) -> NextStep {
    NextStep::Next(format!(
        "https://graph.example/v1.0/groups/delta?$skiptoken={n}"
    ))
}

/// (group, kind) of every pending change, kinds as `upsert`/`reconcile`/….
fn pending(store: &Store) -> Vec<(String, &'static str)> {
    store
        .pending_batch(1000)
        .unwrap()
        .into_iter()
        .map(|(_, c)| {
            let kind = match c.kind {
                ChangeKind::Upsert { .. } => "upsert",
                ChangeKind::Reconcile => "reconcile",
                ChangeKind::Delete { .. } => "delete",
                ChangeKind::Sweep => "sweep",
            };
            (c.group_id, kind)
        })
        .collect()
}

#[test]
fn outcomes_say_whether_the_round_ended_and_whether_it_was_full() {
    let (_d, store) = open();
    let o = commit(&store, &[group("g1", "One", &[])], next(1));
    assert!(!o.round_done && o.full_round);
    let o = commit(&store, &[], delta(1));
    assert!(o.round_done && o.full_round);
    let o = commit(&store, &[], delta(2));
    assert!(o.round_done && !o.full_round);

    let user_page = |link: &str, first: bool| {
        let before = store.cursor(Resource::Users).unwrap();
        assert_eq!(before.is_none(), first);
        let u = UserDelta {
            id: "u1".into(),
            removed: None,
            patch: Default::default(),
        };
        let next = if link.contains("skiptoken") {
            NextStep::Next(link.into())
        } else {
            NextStep::Delta(link.into())
        };
        store
            .commit_user_page(&[u], &next, before.as_ref())
            .unwrap()
    };
    let o = user_page("https://graph.example/v1.0/users/delta?$skiptoken=1", true);
    assert!(!o.round_done && o.full_round);
    assert_eq!(
        o.enqueued.get("upsert"),
        None,
        "a user no group lists queues nothing"
    );
    let o = user_page(
        "https://graph.example/v1.0/users/delta?$deltatoken=1",
        false,
    );
    assert!(o.round_done && o.full_round);
    let o = user_page(
        "https://graph.example/v1.0/users/delta?$deltatoken=2",
        false,
    );
    assert!(o.round_done && !o.full_round);
}

#[test]
fn a_user_whose_identity_changes_requeues_the_groups_listing_it() {
    let (_d, store) = open();
    commit(&store, &[group("g1", "One", &[("u1", false)])], delta(1));
    drain(&store);
    let u = UserDelta {
        id: "u1".into(),
        removed: None,
        patch: crate::model::UserPatch {
            sid: Patch::Value("S-1-5-21-1-2-3-1001".into()),
            ..Default::default()
        },
    };
    let o = store
        .commit_user_page(
            &[u],
            &NextStep::Delta("https://graph.example/v1.0/users/delta?$deltatoken=1".into()),
            None,
        )
        .unwrap();
    assert_eq!(o.enqueued.get("upsert"), Some(&1));
    assert_eq!(pending(&store), [("g1".to_string(), "upsert")]);
}

#[test]
fn members_of_unsupported_types_are_counted() {
    let (_d, store) = open();
    let mut g = group("g1", "One", &[("u1", false)]);
    for id in ["dev1", "sp1"] {
        g.members.push(MemberDelta {
            member: MemberRef {
                kind: MemberKind::Other,
                id: id.into(),
            },
            removed: false,
        });
    }
    assert_eq!(commit(&store, &[g], delta(1)).unsupported_members, 2);
    let plain = commit(&store, &[group("g2", "Two", &[("u1", false)])], delta(2));
    assert_eq!(plain.unsupported_members, 0);
}

#[test]
fn only_groups_new_in_an_incremental_round_get_a_reconcile_at_its_end() {
    let (_d, store) = open();
    commit(&store, &[group("old", "Old", &[])], delta(1)); // the full round
    drain(&store);
    // Incremental: a change to a known group is an upsert only; a group new to the mirror is
    // also reconciled once the round is complete (AD may hold a copy from before).
    commit(
        &store,
        &[group("old", "Old renamed", &[]), group("new", "New", &[])],
        delta(2),
    );
    let p = pending(&store);
    assert!(p.contains(&("new".into(), "reconcile")), "{p:?}");
    assert!(!p.contains(&("old".into(), "reconcile")), "{p:?}");
    assert!(p.contains(&("old".into(), "upsert")), "{p:?}");
}

#[test]
fn an_incremental_rounds_closing_reconciles_supersede_its_upserts_and_a_late_change_goes_first() {
    let (_d, store) = open();
    commit(&store, &[group("old", "Old", &[])], delta(1)); // the full round
    drain(&store);
    // A large incremental round: new groups first, then a change to a known group on the
    // round's last page. Each new group is one apply (its reconcile), and the known group's
    // change is the oldest pending one, not left between the round's upserts and reconciles.
    let created: Vec<_> = (1..=3)
        .map(|i| group(&format!("n{i}"), "New", &[("u1", false)]))
        .collect();
    commit(&store, &created, next(2));
    let mid = pending(&store);
    assert_eq!(
        mid.iter().filter(|(_, k)| *k == "upsert").count(),
        3,
        "{mid:?}"
    );
    let o = commit(&store, &[group("old", "Old renamed", &[])], delta(3));
    assert_eq!(o.superseded, 3, "{o:?}");
    let want: Vec<(String, &str)> = [
        ("old", "upsert"),
        ("n1", "reconcile"),
        ("n2", "reconcile"),
        ("n3", "reconcile"),
    ]
    .map(|(g, k)| (g.to_string(), k))
    .into();
    assert_eq!(pending(&store), want);
    assert_eq!(store.stats().unwrap().depth, 4);
}

#[test]
fn a_synced_group_getting_its_sid_requeues_its_parents_and_nothing_else_does() {
    let (_d, store) = open();
    let mut child = group("child", "Child", &[]);
    child.patch.on_premises_sync_enabled = Patch::Value(true);
    let mut parent = group("parent", "Parent", &[]);
    parent.members.push(MemberDelta {
        member: MemberRef {
            kind: MemberKind::Group,
            id: "child".into(),
        },
        removed: false,
    });
    commit(&store, &[child, parent], delta(1));
    drain(&store);

    // A property change that leaves the identity alone: the parent is not touched.
    let mut renamed = group("child", "Child renamed", &[]);
    renamed.patch.on_premises_sync_enabled = Patch::Value(true);
    commit(&store, &[renamed], delta(2));
    let p = pending(&store);
    assert!(!p.iter().any(|(g, _)| g == "parent"), "{p:?}");
    drain(&store);

    // Its SID arrives: the parent can now reference the original AD object.
    let mut with_sid = group("child", "Child renamed", &[]);
    with_sid.patch.on_premises_sync_enabled = Patch::Value(true);
    with_sid.patch.on_premises_security_identifier = Patch::Value("S-1-5-21-9-9-9-2001".into());
    commit(&store, &[with_sid], delta(3));
    let p = pending(&store);
    assert!(p.iter().any(|(g, _)| g == "parent"), "{p:?}");
}

#[test]
fn outcomes_count_what_was_queued_and_held() {
    let (_d, store) = open();
    let groups: Vec<_> = (1..=15)
        .map(|i| group(&format!("g{i}"), "G", &[]))
        .collect();
    // A full round in one page: the closing reconciles supersede the page's upserts, and the
    // outcome counts what was queued.
    let o = commit(&store, &groups, delta(1));
    assert_eq!(o.enqueued.get("upsert"), None, "{:?}", o.enqueued);
    assert_eq!(o.enqueued.get("reconcile"), Some(&15), "{:?}", o.enqueued);
    assert_eq!(o.enqueued.get("sweep"), Some(&1), "{:?}", o.enqueued);
    assert_eq!(store.stats().unwrap().depth, 16);
    drain(&store);
    // 12 hard deletes in one round, threshold 10: all held, and counted as such.
    let gone: Vec<_> = (1..=12)
        .map(|i| super::tests::removed(&format!("g{i}"), crate::model::Removed::Deleted))
        .collect();
    let o = commit(&store, &gone, delta(2));
    assert_eq!(o.held_deletes, 12);
    assert_eq!(o.enqueued.get("delete"), None, "{:?}", o.enqueued);
    // Two below the threshold: queued, not held.
    let gone: Vec<_> = (13..=14)
        .map(|i| super::tests::removed(&format!("g{i}"), crate::model::Removed::Deleted))
        .collect();
    let o = commit(&store, &gone, delta(3));
    assert_eq!((o.held_deletes, o.enqueued.get("delete")), (0, Some(&2)));
}

#[test]
fn an_upsert_names_the_changed_members_it_can_write_and_not_the_unsupported_ones() {
    let (_d, store) = open();
    let mut g = group("g1", "One", &[("u1", false)]);
    g.members.push(MemberDelta {
        member: MemberRef {
            kind: MemberKind::Other,
            id: "device1".into(),
        },
        removed: false,
    });
    // An incremental round's page (the first, full round ends in a reconcile that supersedes
    // upserts; so does this round's end for the group it creates, hence a page mid-round).
    commit(&store, &[], delta(1));
    commit(&store, &[g], next(2));
    let upserts: Vec<Vec<MemberRef>> = store
        .pending_batch(10)
        .unwrap()
        .into_iter()
        .filter_map(|(_, c)| match c.kind {
            ChangeKind::Upsert { members } => Some(members),
            _ => None,
        })
        .collect();
    assert_eq!(
        upserts,
        [vec![MemberRef {
            kind: MemberKind::User,
            id: "u1".into()
        }]]
    );
}

#[test]
fn a_group_deleted_and_listed_again_within_one_page_is_not_deleted() {
    let (_d, store) = open();
    commit(
        &store,
        &[group("g1", "One", &[]), group("g2", "Two", &[])],
        delta(1),
    );
    drain(&store);
    // Graph promises no order within a round: a delete of g1 and then g1 live again (restored
    // quickly), with g2 really deleted, all on one page.
    let o = commit(
        &store,
        &[
            super::tests::removed("g1", crate::model::Removed::Deleted),
            super::tests::removed("g2", crate::model::Removed::Deleted),
            group("g1", "One", &[]),
        ],
        delta(2),
    );
    let deletes: Vec<String> = pending(&store)
        .into_iter()
        .filter(|(_, k)| *k == "delete")
        .map(|(g, _)| g)
        .collect();
    assert_eq!(deletes, ["g2"], "{:?}", o.enqueued);
}

#[test]
fn an_idle_round_writes_nothing_and_a_change_stores_the_newest_link() {
    let (_d, store) = open();
    commit(&store, &[group("g1", "One", &[])], delta(1));
    let stored = |s: &Store| s.cursor(Resource::Groups).unwrap().unwrap().link;
    assert!(stored(&store).ends_with("deltatoken=1"));
    // Incremental rounds that bring nothing: the stored deltaLink stays (still valid: nothing
    // changed since it), so an idle poll writes nothing.
    commit(&store, &[], delta(2));
    commit(&store, &[], delta(3));
    assert!(stored(&store).ends_with("deltatoken=1"));
    // Users too.
    let users = |link: &str| {
        let before = store.cursor(Resource::Users).unwrap();
        let next = NextStep::Delta(link.into());
        store.commit_user_page(&[], &next, before.as_ref()).unwrap();
        store.cursor(Resource::Users).unwrap().unwrap().link
    };
    assert_eq!(
        users("https://graph.example/v1.0/users/delta?$deltatoken=1"),
        "https://graph.example/v1.0/users/delta?$deltatoken=1",
        "first cursor stored"
    );
    assert!(users("https://graph.example/v1.0/users/delta?$deltatoken=2").ends_with("=1"));
    // A round with an item stores its link.
    commit(&store, &[group("g1", "Renamed", &[])], delta(4));
    assert!(stored(&store).ends_with("deltatoken=4"));
    // A multi-page round's pages are always stored, its empty last page too.
    commit(&store, &[], next(5));
    assert!(stored(&store).ends_with("skiptoken=5"));
    commit(&store, &[], delta(6));
    assert!(stored(&store).ends_with("deltatoken=6"));
}

#[test]
fn the_last_sweep_marks_a_full_convergence_until_everything_before_it_is_applied() {
    let (dir, store) = open();
    assert_eq!(store.last_sweep().unwrap(), None);
    // The full round's end queues reconciles and the sweep: the sweep's seq is the mark, and
    // the convergence is under way while anything up to it is pending, even once the sweep
    // itself is applied (the worker's newest lane may take it first).
    commit(
        &store,
        &[group("a", "A", &[]), group("b", "B", &[])],
        delta(1),
    );
    let sweep = store
        .last_sweep()
        .unwrap()
        .expect("the full round queued a sweep");
    let queued = store.pending_batch(10).unwrap();
    assert_eq!(queued.last().map(|(s, _)| *s), Some(sweep), "{queued:?}");
    store.ack(&[sweep]).unwrap();
    assert!(store.pending_through(sweep).unwrap());
    // Kept across a restart.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.last_sweep().unwrap(), Some(sweep));
    drain(&store);
    assert!(!store.pending_through(sweep).unwrap());
    // A periodic reconciliation moves the mark to its own sweep.
    store.enqueue_reconcile_all().unwrap().unwrap();
    let periodic = store.last_sweep().unwrap().unwrap();
    assert!(periodic > sweep);
    assert_eq!(store.last_sweep().unwrap(), Some(periodic));
    assert!(store.pending_through(periodic).unwrap());
}
