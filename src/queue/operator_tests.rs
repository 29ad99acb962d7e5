//! Unit tests of the journal, hold, materialization and membership-index operations the
//! worker and the operator commands rely on (found untested by cargo-mutants), on a real sled
//! database in a temp directory.

use super::store::AT_CLOSE;
use super::tests::{commit, delta, group};
use super::*;
use crate::graph::page::{NextStep, UserDelta};
use crate::model::*;
use crate::model::{MemberKind, MemberRef, Patch, UserPatch};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

/// Acks every pending change; returns, per group, the sequence number it was journaled under.
fn ack_all(store: &Store) -> Vec<(String, u64)> {
    let batch = store.pending_batch(1000).unwrap();
    let mut out = Vec::new();
    for (seq, change) in batch {
        store.ack(&[seq]).unwrap();
        out.push((change.group_id, seq));
    }
    out
}

/// Group ids of the pending reconciles.
fn pending_reconciles(store: &Store) -> Vec<String> {
    store
        .pending_batch(1000)
        .unwrap()
        .into_iter()
        .filter(|(_, c)| c.kind == ChangeKind::Reconcile)
        .map(|(_, c)| c.group_id)
        .collect()
}

fn user_ref(id: &str) -> MemberRef {
    MemberRef {
        kind: MemberKind::User,
        id: id.into(),
    }
}

#[test]
fn replay_journal_selects_by_position_time_and_group() {
    let (_d, store) = open();
    commit(&store, &[group("g1", "One", &[])], delta(1));
    let first = ack_all(&store);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let between = now_ms();
    std::thread::sleep(std::time::Duration::from_millis(5));
    commit(&store, &[group("g2", "Two", &[])], delta(2));
    let second = ack_all(&store);
    let g2_seq = second.iter().find(|(g, _)| g == "g2").unwrap().1;
    assert!(first.iter().all(|(_, s)| *s < g2_seq));

    // Applied since `between`: g2 only. Nothing was applied in the future.
    assert_eq!(
        store.replay_journal(Some(between), None, None).unwrap(),
        ["g2"]
    );
    assert_eq!(pending_reconciles(&store), ["g2"]);
    ack_all(&store);
    let future = store
        .replay_journal(Some(now_ms() + 60_000), None, None)
        .unwrap();
    assert!(future.is_empty(), "{future:?}");

    // Everything the journal holds, sweeps ("*") excluded.
    assert_eq!(
        store.replay_journal(None, None, None).unwrap(),
        ["g1", "g2"]
    );
    assert_eq!(pending_reconciles(&store), ["g1", "g2"]);
    ack_all(&store);
    // From g2's entry on: g2 (and the reconciles just journaled), never g1's older entry.
    let from = store.replay_journal(None, Some(g2_seq), None).unwrap();
    assert!(from.contains(&"g2".to_string()), "{from:?}");
    ack_all(&store);
    let after_all = store.replay_journal(None, Some(u64::MAX), None).unwrap();
    assert!(after_all.is_empty(), "{after_all:?}");
    // One group, even one the journal never saw (an operator's explicit request).
    ack_all(&store);
    assert_eq!(
        store.replay_journal(None, None, Some("g1")).unwrap(),
        ["g1"]
    );
    assert_eq!(pending_reconciles(&store), ["g1"]);
    ack_all(&store);
    assert_eq!(
        store.replay_journal(None, None, Some("g9")).unwrap(),
        ["g9"]
    );
}

#[test]
fn replay_from_a_position_skips_older_entries() {
    let (_d, store) = open();
    commit(&store, &[group("g1", "One", &[])], delta(1));
    ack_all(&store);
    commit(&store, &[group("g2", "Two", &[])], delta(2));
    let acked = ack_all(&store);
    let first_g2 = acked.iter().find(|(g, _)| g == "g2").unwrap().1;
    let last = acked.iter().map(|(_, s)| *s).max().unwrap();
    assert_eq!(
        store.replay_journal(None, Some(first_g2), None).unwrap(),
        ["g2"]
    );
    assert_eq!(
        store.replay_journal(None, Some(last + 1), None).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn trim_journal_drops_the_oldest_beyond_the_count_and_everything_past_the_age() {
    let (_d, store) = open();
    let groups: Vec<_> = (1..=5).map(|i| group(&format!("g{i}"), "G", &[])).collect();
    commit(&store, &groups, delta(1));
    let acked = ack_all(&store);
    let journaled = store.stats().unwrap().journal_entries;
    assert_eq!(journaled, acked.len() as u64);
    assert!(journaled >= 5, "{journaled}");
    // The groups of the three newest entries (sequence order), sweeps excluded.
    let mut newest = acked.clone();
    newest.sort_by_key(|(_, s)| *s);
    let mut newest: Vec<String> = newest[newest.len() - 3..]
        .iter()
        .map(|(g, _)| g.clone())
        .filter(|g| g != ALL_GROUPS)
        .collect();
    newest.sort();
    newest.dedup();

    // Count: the oldest go first, exactly down to the limit.
    let removed = store.trim_journal(u64::MAX / 2, 3).unwrap();
    assert_eq!(removed as u64, journaled - 3);
    assert_eq!(store.stats().unwrap().journal_entries, 3);
    assert_eq!(store.trim_journal(u64::MAX / 2, 3).unwrap(), 0);
    assert_eq!(store.replay_journal(None, None, None).unwrap(), newest);
    ack_all(&store);

    // Age: entries applied before now - max_age go, recent ones stay.
    let before = store.stats().unwrap().journal_entries;
    assert_eq!(store.trim_journal(60_000, usize::MAX).unwrap(), 0);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(store.trim_journal(5, usize::MAX).unwrap() as u64, before);
    assert_eq!(store.stats().unwrap().journal_entries, 0);
}

#[test]
fn held_deletes_are_known_per_group() {
    let (_d, store) = open();
    store
        .hold_deletes(&[("g1".into(), DeleteReason::HardDeleted)])
        .unwrap();
    assert!(store.is_held("g1").unwrap());
    assert!(!store.is_held("g2").unwrap());
    assert_eq!(store.stats().unwrap().held_deletes, 1);
}

#[test]
fn materializing_records_the_sid_and_queues_the_parents_atomically() {
    let (_d, store) = open();
    assert_eq!(store.materialized_sid("child").unwrap(), None);
    let parent = Change {
        group_id: "parent".into(),
        kind: ChangeKind::Upsert {
            members: vec![user_ref("child")],
        },
        seen_ms: now_ms(),
    };
    store
        .materialize(
            "child",
            "S-1-5-21-1-2-3-1105",
            std::slice::from_ref(&parent),
        )
        .unwrap();
    assert_eq!(
        store.materialized_sid("child").unwrap().as_deref(),
        Some("S-1-5-21-1-2-3-1105")
    );
    let pending: Vec<Change> = store
        .pending_batch(10)
        .unwrap()
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    assert_eq!(pending, [parent]);
    assert_eq!(store.stats().unwrap().depth, 1);
    store.dematerialize("child").unwrap();
    assert_eq!(store.materialized_sid("child").unwrap(), None);
}

#[test]
fn the_membership_index_follows_additions_and_removals() {
    let (_d, store) = open();
    commit(
        &store,
        &[
            group("g1", "One", &[("u1", false), ("u2", false)]),
            group("g2", "Two", &[("u1", false)]),
        ],
        delta(1),
    );
    assert_eq!(store.groups_containing("u1").unwrap(), ["g1", "g2"]);
    assert_eq!(store.groups_containing("u2").unwrap(), ["g1"]);
    assert!(store.groups_containing("u3").unwrap().is_empty());
    assert!(store.is_member("g1", &user_ref("u2")).unwrap());
    assert!(!store.is_member("g2", &user_ref("u2")).unwrap());

    let before = store.cursor(Resource::Groups).unwrap();
    store
        .commit_group_page(
            &[group("g1", "One", &[("u1", true)])],
            &delta(2),
            before.as_ref(),
            super::mirror::DeletePolicy {
                threshold: 10,
                soft_destructive: false,
            },
            &|_, p| p.eligible(),
        )
        .unwrap();
    assert_eq!(store.groups_containing("u1").unwrap(), ["g2"]);
    assert!(!store.is_member("g1", &user_ref("u1")).unwrap());
    assert!(store.is_member("g1", &user_ref("u2")).unwrap());
}

#[test]
fn users_are_stored_with_their_on_premises_identity() {
    let (_d, store) = open();
    let user = UserDelta {
        id: "u1".into(),
        removed: None,
        patch: UserPatch {
            sid: Patch::Value("S-1-5-21-1-2-3-1001".into()),
            sam_account_name: Patch::Value("alice".into()),
            ..Default::default()
        },
    };
    store
        .commit_user_page(
            &[user],
            &NextStep::Delta("https://graph.example/v1.0/users/delta?$deltatoken=1".into()),
            None,
        )
        .unwrap();
    let got = store.user("u1").unwrap().expect("stored");
    assert_eq!(got.sid.as_deref(), Some("S-1-5-21-1-2-3-1001"));
    assert_eq!(got.sam_account_name.as_deref(), Some("alice"));
    assert_eq!(store.user("u2").unwrap(), None);
}

/// Copies a directory tree (a sled database's files).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The in-memory counts against a full recount of the trees.
fn assert_counts_exact(store: &Store, when: &str) {
    let s = store.stats().unwrap();
    let t = store.t().unwrap();
    let truth = (
        t.dead.len() as u64,
        t.held_deletes.len() as u64,
        t.journal.len() as u64,
        t.groups.len() as u64,
        t.pending.len() as u64,
    );
    let counted = (
        s.dead_letters,
        s.held_deletes,
        s.journal_entries,
        s.mirrored_groups,
        s.depth,
    );
    assert_eq!(
        counted, truth,
        "{when}: (dead, held, journal, groups, depth) counted vs recounted"
    );
}

/// Replays the journal, applies the replay, then opens a crash image of the store: the counts
/// stay exact throughout.
fn replay_then_crash(store: &Store, dir: &std::path::Path) {
    let replayed = store.replay_journal(None, None, None).unwrap();
    assert!(!replayed.is_empty());
    assert_counts_exact(store, "journal replayed");
    let requeued: Vec<u64> = store
        .pending_batch(1000)
        .unwrap()
        .iter()
        .map(|(s, _)| *s)
        .collect();
    store.ack(&requeued).unwrap();
    assert_counts_exact(store, "the replay applied");

    // A crash: the files as a killed process leaves them (a copy taken while the store is
    // open, with a page committed after the last flush that may or may not be in the copy),
    // opened by a new process.
    store.t().unwrap().db.flush().unwrap();
    commit(store, &[group("g11", "G", &[])], delta(6));
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(dir, crashed.path());
    let after_crash = Store::open(crashed.path()).unwrap();
    assert_counts_exact(&after_crash, "reopened after a crash");
    assert_eq!(
        after_crash.stats().unwrap().journal_entries,
        store.stats().unwrap().journal_entries
    );
    drop(after_crash);
}

#[test]
fn counts_stay_exact_across_every_operation_and_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_counts_exact(&store, "empty");
    let groups: Vec<_> = (1..=9).map(|i| group(&format!("g{i}"), "G", &[])).collect();
    commit(&store, &groups, delta(1));
    assert_counts_exact(&store, "a full round committed");
    let batch = store.pending_batch(1000).unwrap();
    let seqs: Vec<u64> = batch.iter().map(|(s, _)| *s).collect();
    store.ack(&seqs[..3]).unwrap();
    store.ack(&seqs[..3]).unwrap(); // twice: nothing more moves
    assert_counts_exact(&store, "acked");
    store.dead_letter(&seqs[3..5], "boom", "test").unwrap();
    store.dead_letter(&seqs[3..5], "boom", "test").unwrap();
    assert_counts_exact(&store, "dead-lettered");
    assert_eq!(store.replay_dead().unwrap(), 2);
    assert_counts_exact(&store, "dead letters replayed");
    let held = [
        ("g1".to_string(), DeleteReason::HardDeleted),
        ("g2".to_string(), DeleteReason::HardDeleted),
    ];
    store.hold_deletes(&held).unwrap();
    store.hold_deletes(&held[..1]).unwrap(); // held again: still two
    assert_counts_exact(&store, "deletes held");
    assert_eq!(store.approve_deletes(Some(&["g1".into()])).unwrap(), ["g1"]);
    assert_counts_exact(&store, "one delete approved");
    // Hard deletes in an incremental round: mirror records go.
    commit(
        &store,
        &[
            super::tests::removed("g5", crate::model::Removed::Deleted),
            super::tests::removed("g6", crate::model::Removed::Deleted),
        ],
        delta(2),
    );
    assert_counts_exact(&store, "groups removed from the mirror");
    // More hard deletes than the threshold (2): held by the page commit; then one comes back,
    // which cancels its hold in the same commit.
    let gone = |id: &str| super::tests::removed(id, crate::model::Removed::Deleted);
    commit(&store, &[gone("g7"), gone("g8"), gone("g9")], delta(3));
    assert_eq!(store.held_deletes().unwrap().len(), 4, "g2 + g7..g9");
    assert_counts_exact(&store, "deletes held by a page");
    commit(&store, &[group("g8", "G", &[])], delta(4));
    assert!(!store.is_held("g8").unwrap());
    assert_counts_exact(&store, "a held delete cancelled by a listing");
    let all: Vec<u64> = store
        .pending_batch(1000)
        .unwrap()
        .iter()
        .map(|(s, _)| *s)
        .collect();
    store.ack(&all).unwrap();
    let journaled = store.stats().unwrap().journal_entries;
    assert!(journaled > 2, "{journaled}");
    assert_eq!(
        store.trim_journal(u64::MAX / 2, 2).unwrap() as u64,
        journaled - 2
    );
    assert_counts_exact(&store, "journal trimmed");
    replay_then_crash(&store, dir.path());

    // A reopen in place (the disk-full recovery path) and a restart recount from the trees.
    store.recover().unwrap();
    assert_counts_exact(&store, "recovered in place");
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_counts_exact(&store, "reopened");
    commit(&store, &[group("g10", "G", &[])], delta(5));
    assert_counts_exact(&store, "a commit after the reopen");
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), crashed.path());
    let after_crash = Store::open(crashed.path()).unwrap();
    assert_counts_exact(&after_crash, "a crash after a clean reopen");
}

#[test]
fn a_clean_close_leaves_the_counts_for_the_next_open_and_a_crash_never_reuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    commit(
        &store,
        &[group("g1", "G", &[]), group("g2", "G", &[])],
        delta(1),
    );
    drop(store.clone()); // a clone going is not a close
    assert!(store.t().unwrap().meta.get(AT_CLOSE).unwrap().is_none());
    drop(store);

    // Mark the snapshot (groups 2 -> 999), so that the open shows which way it counted.
    let db = (0..200)
        .find_map(|_| {
            // sled lets go of its lock once its background flusher stops (up to a second).
            let opened = sled::open(dir.path()).ok();
            if opened.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            opened
        })
        .expect("the closed store opens");
    let meta = db.open_tree("meta").unwrap();
    let mut saved = meta
        .get(AT_CLOSE)
        .unwrap()
        .expect("a clean close saves the counts")
        .to_vec();
    assert_eq!(saved[33..41], 2u64.to_be_bytes(), "groups in the snapshot");
    saved[33..41].copy_from_slice(&999u64.to_be_bytes());
    meta.insert(AT_CLOSE, saved).unwrap();
    db.flush().unwrap();
    drop((meta, db));

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.stats().unwrap().mirrored_groups,
        999,
        "read from the snapshot"
    );
    assert!(
        store.t().unwrap().meta.get(AT_CLOSE).unwrap().is_none(),
        "consumed at open"
    );
    // A crash image of the open store holds no snapshot: its open counts the trees.
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), crashed.path());
    let after_crash = Store::open(crashed.path()).unwrap();
    assert_eq!(after_crash.stats().unwrap().mirrored_groups, 2);
    assert_counts_exact(&after_crash, "a crash after a reopen from the snapshot");
}

#[test]
fn a_batch_is_split_per_group_in_first_seen_order_with_each_group_in_sequence() {
    let c = |g: &str| Change {
        group_id: g.into(),
        kind: ChangeKind::Reconcile,
        seen_ms: 0,
    };
    let batch = vec![
        (1, c("b")),
        (2, c("a")),
        (3, c("b")),
        (5, c("c")),
        (7, c("a")),
    ];
    let split: Vec<(String, Vec<u64>)> = group_batch(batch)
        .into_iter()
        .map(|(g, cs)| (g, cs.into_iter().map(|(s, _)| s).collect()))
        .collect();
    assert_eq!(
        split,
        [
            ("b".to_string(), vec![1, 3]),
            ("a".to_string(), vec![2, 7]),
            ("c".to_string(), vec![5]),
        ]
    );
    assert!(group_batch(vec![]).is_empty());
}
