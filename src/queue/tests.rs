//! One test per guarantee in the module doc, on a real sled database in a temp directory.

use super::mirror::DeletePolicy;
use super::testing::drain;
use super::*;
use crate::graph::page::{GroupDelta, MemberDelta, NextStep};
use crate::model::*;
use crate::model::{GroupPatch, MemberKind, MemberRef, Patch, Removed};

const POLICY: DeletePolicy = DeletePolicy {
    threshold: 2,
    soft_destructive: false,
};

/// A security-enabled group item named `name` with user members (`true` = removed).
pub(crate) fn group(id: &str, name: &str, members: &[(&str, bool)]) -> GroupDelta {
    GroupDelta {
        id: id.into(),
        removed: None,
        patch: GroupPatch {
            display_name: Patch::Value(name.into()),
            security_enabled: Patch::Value(true),
            ..Default::default()
        },
        members: members
            .iter()
            .map(|(m, removed)| MemberDelta {
                member: MemberRef {
                    kind: MemberKind::User,
                    id: m.to_string(),
                },
                removed: *removed,
            })
            .collect(),
    }
}

pub(super) fn removed(id: &str, how: Removed) -> GroupDelta {
    GroupDelta {
        id: id.into(),
        removed: Some(how),
        patch: GroupPatch::default(),
        members: vec![],
    }
}

fn next(n: u32) -> NextStep {
    NextStep::Next(format!(
        "https://graph.example/v1.0/groups/delta?$skiptoken={n}"
    ))
}

pub(super) fn delta(n: u32) -> NextStep {
    NextStep::Delta(format!(
        "https://graph.example/v1.0/groups/delta?$deltatoken={n}"
    ))
}

pub(super) fn commit(store: &Store, items: &[GroupDelta], link: NextStep) {
    let before = store.cursor(Resource::Groups).unwrap();
    store
        .commit_group_page(items, &link, before.as_ref(), POLICY, &|_, p| p.eligible())
        .unwrap();
}

pub(super) fn members(store: &Store, g: &str) -> Vec<String> {
    store
        .members(g)
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect()
}

#[test]
fn a_page_and_its_cursor_survive_a_reopen_together() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        commit(&store, &[group("g1", "One", &[("u1", false)])], next(1));
        futures_flush(&store);
    }
    let store = Store::open(dir.path()).unwrap();
    let cursor = store.cursor(Resource::Groups).unwrap().unwrap();
    assert!(cursor.mid_round && cursor.link.ends_with("skiptoken=1"));
    assert!(
        cursor.full_epoch.is_some(),
        "the first round is a full enumeration"
    );
    assert_eq!(members(&store, "g1"), ["u1"]);
    assert_eq!(store.pending_batch(10).unwrap().len(), 1);
}

fn futures_flush(store: &Store) {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(store.flush())
        .unwrap();
}

#[test]
fn a_second_instance_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).err().expect("locked");
    assert!(matches!(err, QueueError::Locked { .. }), "{err}");
}

#[test]
fn changes_leave_pending_only_when_acked_and_then_reach_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    commit(&store, &[group("g1", "One", &[])], delta(1));
    let batch = store.pending_batch(100).unwrap();
    let seqs: Vec<u64> = batch.iter().map(|(s, _)| *s).collect();
    assert!(!seqs.is_empty());
    assert_eq!(store.stats().unwrap().depth, seqs.len() as u64);
    store.ack(&seqs[..1]).unwrap();
    assert_eq!(store.stats().unwrap().depth, seqs.len() as u64 - 1);
    assert_eq!(store.stats().unwrap().journal_entries, 1);
    store.ack(&seqs[..1]).unwrap(); // acking twice is harmless and keeps the count exact
    assert_eq!(store.stats().unwrap().depth, seqs.len() as u64 - 1);
    store.dead_letter(&seqs[1..2], "boom", "test").unwrap();
    assert_eq!(store.list_dead(10).unwrap()[0].1.error, "boom");
    assert_eq!(store.replay_dead().unwrap(), 1);
    assert_eq!(store.stats().unwrap().dead_letters, 0);
}

#[test]
fn pending_changes_keep_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    commit(&store, &[group("g1", "One", &[])], delta(1));
    commit(
        &store,
        &[group("g1", "Renamed", &[("u1", false)])],
        delta(2),
    );
    commit(&store, &[removed("g1", Removed::Deleted)], delta(3));
    let kinds: Vec<&'static str> = store
        .pending_batch(100)
        .unwrap()
        .iter()
        .filter(|(_, c)| c.group_id == "g1")
        .map(|(_, c)| c.kind.label())
        .collect();
    // The full round's reconcile (which supersedes its upsert), then upsert and delete: in
    // the order seen.
    assert_eq!(kinds, ["reconcile", "upsert", "delete"]);
    let seqs: Vec<u64> = store
        .pending_batch(100)
        .unwrap()
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn a_group_split_across_pages_is_merged_and_a_full_round_drops_what_it_did_not_list() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Round 1 (full): g1 on two pages, plus g2.
    commit(
        &store,
        &[group("g1", "Big", &[("u1", false), ("u2", false)])],
        next(1),
    );
    commit(
        &store,
        &[
            group("g2", "Other", &[]),
            group("g1", "Big", &[("u3", false)]),
        ],
        delta(1),
    );
    assert_eq!(members(&store, "g1"), ["u1", "u2", "u3"]);
    // A resync (cursor forgotten): the new full round lists g1 with u1 only, and not g2.
    store.reset_cursor(Resource::Groups).unwrap();
    commit(&store, &[group("g1", "Big", &[("u1", false)])], next(2));
    assert_eq!(
        members(&store, "g1"),
        ["u1", "u2", "u3"],
        "removals wait for the deltaLink"
    );
    commit(&store, &[], delta(2));
    assert_eq!(members(&store, "g1"), ["u1"]);
    assert!(store.group("g2").unwrap().is_none());
    let kinds: Vec<String> = store
        .pending_batch(1000)
        .unwrap()
        .iter()
        .map(|(_, c)| c.kind.label().to_string())
        .collect();
    assert!(kinds.contains(&"sweep".to_string()) && kinds.contains(&"reconcile".to_string()));
}

#[test]
fn member_removals_are_applied_even_in_an_initial_round() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    commit(
        &store,
        &[group("g1", "G", &[("u1", false), ("u2", true)])],
        delta(1),
    );
    assert_eq!(members(&store, "g1"), ["u1"]);
}

#[test]
fn more_deletes_than_the_threshold_are_held_until_approved() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    commit(
        &store,
        &[
            group("a", "A", &[]),
            group("b", "B", &[]),
            group("c", "C", &[]),
        ],
        delta(1),
    );
    let before = store.stats().unwrap().depth;
    commit(
        &store,
        &[
            removed("a", Removed::Deleted),
            removed("b", Removed::Deleted),
        ],
        next(2),
    );
    commit(&store, &[removed("c", Removed::Deleted)], delta(2));
    assert_eq!(store.stats().unwrap().held_deletes, 3);
    assert_eq!(
        store.stats().unwrap().depth,
        before,
        "nothing queued while held"
    );
    assert_eq!(
        store.approve_deletes(Some(&["b".to_string()])).unwrap(),
        ["b"]
    );
    assert_eq!(store.approve_deletes(None).unwrap().len(), 2);
    assert_eq!(store.stats().unwrap().held_deletes, 0);
    // Two deletes (≤ threshold) go straight through.
    commit(
        &store,
        &[group("d", "D", &[]), group("e", "E", &[])],
        delta(3),
    );
    commit(
        &store,
        &[
            removed("d", Removed::Deleted),
            removed("e", Removed::Deleted),
        ],
        delta(4),
    );
    assert_eq!(store.stats().unwrap().held_deletes, 0);
}

#[test]
fn soft_deletes_freeze_and_restores_come_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    commit(
        &store,
        &[group("g", "G", &[("u1", false), ("u2", false)])],
        delta(1),
    );
    commit(&store, &[removed("g", Removed::Changed)], delta(2));
    assert_eq!(
        store.group("g").unwrap().unwrap().status,
        GroupStatus::SoftDeleted
    );
    let reconciles = |store: &Store| {
        let batch = store.pending_batch(1000).unwrap();
        batch
            .iter()
            .filter(|(_, c)| c.group_id == "g" && c.kind == ChangeKind::Reconcile)
            .count()
    };
    let before = reconciles(&store);
    // Restored, listed over two pages of an incremental round: reconciled only at its end.
    commit(&store, &[group("g", "G", &[("u2", false)])], next(3));
    assert_eq!(
        reconciles(&store),
        before,
        "no reconcile while the listing is incomplete"
    );
    commit(&store, &[group("g", "G", &[("u3", false)])], delta(3));
    assert_eq!(
        reconciles(&store),
        before + 1,
        "the frozen AD copy is reconciled after the round"
    );
    let r = store.group("g").unwrap().unwrap();
    assert!(r.wanted());
    assert_eq!(
        members(&store, "g"),
        ["u2", "u3"],
        "a restored group comes back with its listed members"
    );
}

#[test]
fn recover_reopens_the_database_in_place_for_every_clone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let clone = store.clone();
    commit(&store, &[group("g", "G", &[])], delta(1));
    futures_flush(&store);
    store.recover().unwrap();
    assert!(clone.group("g").unwrap().is_some());
    commit(&clone, &[group("h", "H", &[])], delta(2));
    assert!(store.group("h").unwrap().is_some());
}

#[test]
fn a_foreign_directory_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "keep").unwrap();
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(matches!(err, QueueError::Corrupt { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        "keep"
    );
}

fn commit_with(store: &Store, items: &[GroupDelta], link: NextStep, policy: DeletePolicy) {
    let before = store.cursor(Resource::Groups).unwrap();
    store
        .commit_group_page(items, &link, before.as_ref(), policy, &|_, p| p.eligible())
        .unwrap();
}

#[test]
fn a_restore_cancels_the_held_delete_in_the_same_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let deleting = DeletePolicy {
        threshold: 1,
        soft_destructive: true,
    };
    commit_with(
        &store,
        &[group("a", "A", &[]), group("b", "B", &[])],
        delta(1),
        deleting,
    );
    commit_with(
        &store,
        &[
            removed("a", Removed::Changed),
            removed("b", Removed::Changed),
        ],
        delta(2),
        deleting,
    );
    assert_eq!(
        store.held_deletes().unwrap().len(),
        2,
        "two soft deletes > 1: held"
    );
    // `a` is restored: listed again, live and wanted.
    commit_with(&store, &[group("a", "A", &[])], delta(3), deleting);
    let held: Vec<String> = store
        .held_deletes()
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(held, ["b"], "the restore released a's hold; b stays held");
    assert!(!store.is_held("a").unwrap());
}

#[test]
fn soft_deletes_count_against_the_threshold_only_under_a_destructive_policy() {
    for (soft_destructive, held) in [(false, 0), (true, 3)] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let policy = DeletePolicy {
            threshold: 2,
            soft_destructive,
        };
        let ids = ["a", "b", "c"];
        let live: Vec<_> = ids.iter().map(|i| group(i, i, &[])).collect();
        commit_with(&store, &live, delta(1), policy);
        let gone: Vec<_> = ids.iter().map(|i| removed(i, Removed::Changed)).collect();
        commit_with(&store, &gone, delta(2), policy);
        assert_eq!(
            store.held_deletes().unwrap().len(),
            held,
            "{soft_destructive}"
        );
    }
}

#[test]
fn a_reconciliation_is_pending_until_its_sweep_is_acked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    commit(&store, &[group("a", "A", &[])], delta(1));
    let before = store.stats().unwrap().depth;
    assert_eq!(store.enqueue_reconcile_all().unwrap(), Some(1));
    let sweep = store.last_sweep().unwrap().expect("the sweep's mark");
    assert_eq!(store.stats().unwrap().depth, before + 2);
    assert!(store.is_pending(sweep).unwrap());
    assert_eq!(
        store.show(sweep).unwrap().unwrap()["record"]["kind"],
        "sweep"
    );
    store.ack(&[sweep]).unwrap();
    assert!(!store.is_pending(sweep).unwrap());
    // The sweep went first (the newest lane may take it): the reconciliation is still being
    // applied while any of its changes is pending.
    assert!(store.pending_through(sweep).unwrap());
    drain(&store);
    assert!(!store.pending_through(sweep).unwrap());
    commit(&store, &[group("a", "A2", &[])], delta(2));
    assert!(
        !store.pending_through(sweep).unwrap(),
        "a later change is not the batch's"
    );
}

#[test]
fn orphans_are_judged_only_after_a_complete_full_enumeration() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(
        !store.complete_picture().unwrap(),
        "a new store knows nothing yet"
    );
    assert_eq!(store.enqueue_reconcile_all().unwrap(), None);
    commit(&store, &[group("a", "A", &[])], next(1));
    assert!(!store.complete_picture().unwrap(), "mid full round");
    assert_eq!(store.enqueue_reconcile_all().unwrap(), None);
    commit(&store, &[group("b", "B", &[])], delta(1));
    assert!(store.complete_picture().unwrap());
    assert_eq!(store.enqueue_reconcile_all().unwrap(), Some(2));
    // A resync (410, `resync`) starts another full enumeration: no sweeps until it completes.
    store.reset_cursor(Resource::Groups).unwrap();
    assert!(!store.complete_picture().unwrap());
    assert!(store.full_round_in_progress().unwrap());
    commit(&store, &[group("a", "A", &[])], next(2));
    assert!(!store.complete_picture().unwrap());
    commit(&store, &[], delta(2));
    assert!(store.complete_picture().unwrap());
    assert!(!store.full_round_in_progress().unwrap());
}

#[test]
fn approving_and_replaying_move_changes_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .hold_deletes(&[
            ("a".into(), DeleteReason::HardDeleted),
            ("b".into(), DeleteReason::Orphaned),
        ])
        .unwrap();
    let depth = store.stats().unwrap().depth;
    assert_eq!(store.approve_deletes(Some(&["a".into()])).unwrap(), ["a"]);
    assert_eq!(store.stats().unwrap().depth, depth + 1);
    assert_eq!(store.held_deletes().unwrap().len(), 1, "b stays held");
    let (seq, _) = store.pending_batch(10).unwrap().pop().unwrap();
    store.dead_letter(&[seq], "boom", "test").unwrap();
    assert_eq!(store.replay_dead().unwrap(), 1);
    let s = store.stats().unwrap();
    assert_eq!((s.dead_letters, s.depth), (0, depth + 1));
}
