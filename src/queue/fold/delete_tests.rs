//! Unit tests of the groups fold's delete logic: staging, cancelling (restores, re-listings),
//! scope exits and entries, and the threshold that holds deletes for approval.

use super::tests::*;
use super::*;
use crate::model::{ChangeKind, Removed};
use crate::queue::records::GroupStatus;

#[test]
fn a_soft_delete_of_a_wanted_group_is_staged_mid_round_and_queued_at_its_end() {
    let live = record("g1", GroupStatus::Live, 0);
    let soft = record("g1", GroupStatus::SoftDeleted, 0);
    let mut v = view(None, &[("g1", live)]);
    v.members.insert("g1".into(), vec![user("u1")]);
    let page = [removed("g1", Removed::Changed)];

    let mid = fold(&v, &page, &next());
    assert_eq!(mid.groups, puts(&[("g1", soft.clone())]));
    assert_eq!(mid.edges, [], "members are kept while soft-deleted");
    assert_eq!(mid.changes, NONE);
    assert_eq!(
        mid.deletes,
        DeletePlan {
            staged: reasons(&[("g1", DeleteReason::SoftDeleted)]),
            ..Default::default()
        }
    );

    let end = fold(&ending(v, &[]), &page, &delta());
    assert_eq!(end.groups, puts(&[("g1", soft)]));
    assert_eq!(end.changes, [delete("g1", DeleteReason::SoftDeleted)]);
    assert_eq!(end.deletes, DeletePlan::default());
    assert_eq!(end.outcome.enqueued.get("delete"), Some(&1));
}

#[test]
fn a_soft_delete_of_a_group_not_wanted_stages_nothing() {
    let mut out = record("g1", GroupStatus::Live, 0);
    out.admitted = false;
    let v = view(None, &[("g1", out.clone())]);
    let plan = fold(&v, &[removed("g1", Removed::Changed)], &next());
    out.status = GroupStatus::SoftDeleted;
    assert_eq!(plan.groups, puts(&[("g1", out)]));
    assert_eq!(
        plan.deletes,
        DeletePlan::default(),
        "its exit was staged before"
    );
}

#[test]
fn a_hard_delete_removes_the_record_and_its_members_and_stages_the_delete() {
    let mut v = view(None, &[("g1", record("g1", GroupStatus::Live, 0))]);
    v.members.insert("g1".into(), vec![user("u1"), user("u2")]);
    let plan = fold(&v, &[removed("g1", Removed::Deleted)], &next());
    assert_eq!(plan.groups, [("g1".into(), GroupWrite::Remove)].into());
    assert_eq!(
        plan.edges,
        [
            (edge("g1", "u1"), EdgeWrite::Remove),
            (edge("g1", "u2"), EdgeWrite::Remove),
        ]
    );
    assert_eq!(plan.changes, NONE);
    assert_eq!(
        plan.deletes.staged,
        reasons(&[("g1", DeleteReason::HardDeleted)])
    );
}

#[test]
fn a_restore_cancels_the_staged_or_held_delete_and_comes_back_whole() {
    // Soft-deleted on an earlier page (staged), or in an earlier round (maybe held).
    let mut v = ending(
        view(None, &[("g1", record("g1", GroupStatus::SoftDeleted, 0))]),
        &[("g1", DeleteReason::SoftDeleted)],
    );
    v.members
        .insert("g1".into(), vec![user("u1"), user("stale")]);
    let plan = fold(&v, &[listed("g1", &[("u1", false)])], &delta());
    assert_eq!(
        plan.groups,
        puts(&[("g1", record("g1", GroupStatus::Live, 0))])
    );
    assert_eq!(
        plan.edges,
        [
            (edge("g1", "stale"), EdgeWrite::Remove),
            (edge("g1", "u1"), EdgeWrite::Insert { stamp: 0 }),
        ],
        "the listing brings the whole member list"
    );
    assert_eq!(
        plan.changes,
        [upsert("g1", &["u1"]), change("g1", ChangeKind::Reconcile)],
        "no delete, and its frozen AD copy is reconciled"
    );
    assert_eq!(
        plan.deletes,
        DeletePlan {
            cancelled: ids(&["g1"]),
            unstaged: ids(&["g1"]),
            ..Default::default()
        }
    );
}

#[test]
fn a_delete_and_a_listing_of_one_group_on_one_page_cancel_out() {
    let mut v = ending(
        view(None, &[("g1", record("g1", GroupStatus::Live, 0))]),
        &[],
    );
    v.members.insert("g1".into(), vec![user("u1")]);
    let plan = fold(
        &v,
        &[removed("g1", Removed::Deleted), listed("g1", &[])],
        &delta(),
    );
    assert_eq!(
        plan.groups,
        puts(&[("g1", record("g1", GroupStatus::Live, 0))])
    );
    assert_eq!(plan.edges, [(edge("g1", "u1"), EdgeWrite::Remove)]);
    assert_eq!(
        plan.changes,
        [upsert("g1", &[]), change("g1", ChangeKind::Reconcile)]
    );
    assert_eq!(
        plan.deletes,
        DeletePlan {
            cancelled: ids(&["g1"]),
            ..Default::default()
        }
    );
}

#[test]
fn a_group_leaving_scope_is_staged_and_one_coming_back_is_reconciled() {
    let admits_none = |_: &str, _: &GroupProps| false;
    let v = view(None, &[("g1", record("g1", GroupStatus::Live, 0))]);
    let plan = fold_with(&v, &[listed("g1", &[])], &next(), POLICY, &admits_none);
    let mut out = record("g1", GroupStatus::Live, 0);
    out.admitted = false;
    assert_eq!(plan.groups, puts(&[("g1", out.clone())]));
    assert_eq!(plan.changes, NONE, "not wanted: nothing to write");
    assert_eq!(
        plan.deletes,
        DeletePlan {
            staged: reasons(&[("g1", DeleteReason::LeftScope)]),
            ..Default::default()
        }
    );

    let v = view(None, &[("g1", out)]);
    let plan = fold(&v, &[listed("g1", &[("u1", false)])], &next());
    assert_eq!(
        plan.changes,
        [change("g1", ChangeKind::Reconcile)],
        "its AD copy is frozen: converge it whole"
    );
    assert_eq!(plan.deletes.cancelled, ids(&["g1"]));

    let v = view(
        Some(3),
        &[("g1", {
            let mut r = record("g1", GroupStatus::Live, 0);
            r.admitted = false;
            r
        })],
    );
    let plan = fold(&v, &[listed("g1", &[("u1", false)])], &next());
    assert_eq!(
        plan.changes,
        [upsert("g1", &["u1"])],
        "a full round reconciles it at its end anyway"
    );
}

#[test]
fn more_deletes_than_the_threshold_are_held_and_fewer_are_queued() {
    let stored = [("g3", record("g3", GroupStatus::Live, 0))];
    let staged = [
        ("g1", DeleteReason::HardDeleted),
        ("g2", DeleteReason::HardDeleted),
    ];
    let three = fold(
        &ending(view(None, &stored), &staged),
        &[removed("g3", Removed::Deleted)],
        &delta(),
    );
    assert_eq!(three.changes, NONE);
    assert_eq!(
        three.deletes,
        DeletePlan {
            unstaged: ids(&["g1", "g2"]),
            held: reasons(&[
                ("g1", DeleteReason::HardDeleted),
                ("g2", DeleteReason::HardDeleted),
                ("g3", DeleteReason::HardDeleted),
            ]),
            ..Default::default()
        }
    );
    assert_eq!(three.outcome.held_deletes, 3);

    let two = fold(&ending(view(None, &[]), &staged), &[], &delta());
    assert_eq!(
        two.changes,
        [
            delete("g1", DeleteReason::HardDeleted),
            delete("g2", DeleteReason::HardDeleted)
        ]
    );
    assert_eq!(two.deletes.held, BTreeMap::new());
    assert_eq!(two.outcome.held_deletes, 0);
}

#[test]
fn soft_deletes_count_against_the_threshold_only_under_a_destructive_policy() {
    let staged = [
        ("h1", DeleteReason::HardDeleted),
        ("h2", DeleteReason::HardDeleted),
        ("h3", DeleteReason::HardDeleted),
        ("s1", DeleteReason::SoftDeleted),
        ("x1", DeleteReason::LeftScope),
    ];
    let v = ending(view(None, &[]), &staged);
    let freeze = fold(&v, &[], &delta());
    assert_eq!(
        freeze.changes,
        [
            delete("s1", DeleteReason::SoftDeleted),
            delete("x1", DeleteReason::LeftScope)
        ],
        "freezing is not destructive: queued"
    );
    assert_eq!(freeze.deletes.held, reasons(&staged[..3]));

    let destructive = DeletePolicy {
        threshold: 2,
        soft_destructive: true,
    };
    let soft = ending(view(None, &[]), &staged[3..]);
    let plan = fold_with(&soft, &[], &delta(), destructive, &eligible);
    assert_eq!(plan.deletes.held, BTreeMap::new(), "two: not more than 2");
    let plan = fold_with(&v, &[], &delta(), destructive, &eligible);
    assert_eq!(
        plan.deletes.held,
        reasons(&staged),
        "five under one threshold"
    );
    assert_eq!(plan.changes, NONE);
}
