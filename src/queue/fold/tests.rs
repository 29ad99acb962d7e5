//! Unit tests of the pure folds: a view and a page in, the exact plan out. No store.
//!
//! This file: the helpers, listings, members and the end of a full round; deletes, restores and
//! scope in [`super::delete_tests`], users in [`super::user_tests`].

use super::*;
use crate::graph::page::MemberDelta;
use crate::model::{ALL_GROUPS, ChangeKind, MemberKind, Patch};
use crate::queue::records::{GroupStatus, MemberCount};

pub(super) const NOW: u64 = 1_000;
/// No changes.
pub(super) const NONE: [Change; 0] = [];
pub(super) const POLICY: DeletePolicy = DeletePolicy {
    threshold: 2,
    soft_destructive: false,
};

pub(super) fn next() -> NextStep {
    NextStep::Next("https://graph.example/v1.0/groups/delta?$skiptoken=1".into())
}

pub(super) fn delta() -> NextStep {
    NextStep::Delta("https://graph.example/v1.0/groups/delta?$deltatoken=1".into())
}

pub(super) fn eligible(_: &str, p: &GroupProps) -> bool {
    p.eligible()
}

/// A live listing of `id` (named after its id, security-enabled) with member changes
/// `(user id, removed)`.
pub(super) fn listed(id: &str, members: &[(&str, bool)]) -> GroupDelta {
    crate::queue::tests::group(id, id, members)
}

pub(super) use crate::queue::tests::removed;

/// The record a listing of `id` leaves: security-enabled, named after its id.
pub(super) fn record(id: &str, status: GroupStatus, full_epoch: u64) -> GroupRecord {
    let mut props = GroupProps::default();
    props.apply(&listed(id, &[]).patch);
    GroupRecord {
        props,
        status,
        full_epoch,
        admitted: true,
    }
}

pub(super) fn user(id: &str) -> MemberRef {
    MemberRef {
        kind: MemberKind::User,
        id: id.into(),
    }
}

pub(super) fn edge(group: &str, member: &str) -> Edge {
    Edge {
        group: group.into(),
        member: user(member),
    }
}

pub(super) fn change(id: &str, kind: ChangeKind) -> Change {
    Change {
        group_id: id.into(),
        kind,
        seen_ms: NOW,
    }
}

pub(super) fn upsert(id: &str, members: &[&str]) -> Change {
    let members = members.iter().map(|m| user(m)).collect();
    change(id, ChangeKind::Upsert { members })
}

pub(super) fn delete(id: &str, reason: DeleteReason) -> Change {
    change(id, ChangeKind::Delete { reason })
}

/// A view holding these stored records, in the round `full_epoch`.
pub(super) fn view(full_epoch: Option<u64>, groups: &[(&str, GroupRecord)]) -> MirrorView {
    MirrorView {
        groups: groups
            .iter()
            .map(|(id, r)| (id.to_string(), Some(r.clone())))
            .collect(),
        round: RoundView {
            full_epoch,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// `view` for a page that ends its round, with these deletes staged by earlier pages.
pub(super) fn ending(mut v: MirrorView, staged: &[(&str, DeleteReason)]) -> MirrorView {
    v.round.end = Some(RoundEndView {
        staged: staged.iter().map(|(id, r)| (id.to_string(), *r)).collect(),
        full: None,
    });
    v
}

pub(super) fn fold(v: &MirrorView, items: &[GroupDelta], next: &NextStep) -> GroupPagePlan {
    fold_with(v, items, next, POLICY, &eligible)
}

pub(super) fn fold_with(
    v: &MirrorView,
    items: &[GroupDelta],
    next: &NextStep,
    policy: DeletePolicy,
    admits: &dyn Fn(&str, &GroupProps) -> bool,
) -> GroupPagePlan {
    let page = GroupPage {
        items,
        next,
        policy,
        admits,
        now: NOW,
        max_members: crate::config::DEFAULT_MAX_MEMBERS_PER_GROUP,
    };
    fold_group_page(v, &page)
}

pub(super) fn outcome(changes: &[Change], round_done: bool, full_round: bool) -> PageOutcome {
    let mut o = PageOutcome {
        round_done,
        full_round,
        ..Default::default()
    };
    o.count(changes);
    o
}

pub(super) fn puts(records: &[(&str, GroupRecord)]) -> BTreeMap<String, GroupWrite> {
    records
        .iter()
        .map(|(id, r)| (id.to_string(), GroupWrite::Put(r.clone())))
        .collect()
}

pub(super) fn ids(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

pub(super) fn reasons(r: &[(&str, DeleteReason)]) -> BTreeMap<String, DeleteReason> {
    r.iter().map(|(id, r)| (id.to_string(), *r)).collect()
}

#[test]
fn a_new_group_on_a_full_round_page_is_recorded_stamped_and_upserted() {
    let v = view(Some(7), &[]);
    let plan = fold(
        &v,
        &[listed("g1", &[("u1", false), ("u2", false)])],
        &next(),
    );
    let changes = vec![upsert("g1", &["u1", "u2"])];
    let expected = GroupPagePlan {
        groups: puts(&[("g1", record("g1", GroupStatus::Live, 7))]),
        edges: vec![
            (edge("g1", "u1"), EdgeWrite::Insert { stamp: 7 }),
            (edge("g1", "u2"), EdgeWrite::Insert { stamp: 7 }),
        ],
        deletes: DeletePlan {
            cancelled: ids(&["g1"]),
            ..Default::default()
        },
        restored: vec![],
        member_counts: [(
            "g1".to_string(),
            Some(MemberCount {
                stored: 2,
                refused: None,
            }),
        )]
        .into(),
        cursor: cursor_after(&next(), Some(7), NOW),
        full_round_done: None,
        outcome: outcome(&changes, false, true),
        changes,
    };
    assert_eq!(plan, expected);
    assert_eq!(plan.cursor.full_epoch, Some(7), "the round goes on");
}

#[test]
fn a_group_new_in_an_incremental_round_is_carried_and_reconciled_when_the_round_ends() {
    let mid = fold(&view(None, &[]), &[listed("g1", &[])], &next());
    assert_eq!(mid.restored, ["g1"]);
    assert_eq!(mid.changes, [upsert("g1", &[])]);

    let mut v = ending(view(None, &[]), &[]);
    v.round.restored = vec!["g0".into()];
    v.groups
        .insert("g0".into(), Some(record("g0", GroupStatus::Live, 0)));
    let end = fold(&v, &[listed("g1", &[("u1", false)])], &delta());
    assert_eq!(
        end.changes,
        [
            upsert("g1", &["u1"]),
            change("g0", ChangeKind::Reconcile),
            change("g1", ChangeKind::Reconcile)
        ]
    );
    assert_eq!(
        end.edges,
        [(edge("g1", "u1"), EdgeWrite::Insert { stamp: 0 })]
    );
    assert!(
        end.restored.is_empty(),
        "the round is over: nothing carried"
    );
    assert_eq!(end.full_round_done, None, "an incremental round");
    assert_eq!(end.outcome, outcome(&end.changes, true, false));
}

#[test]
fn member_changes_become_edges_and_the_upsert_names_them() {
    let mut v = view(None, &[("g1", record("g1", GroupStatus::Live, 0))]);
    v.members.insert("g1".into(), vec![user("u3")]);
    let plan = fold(&v, &[listed("g1", &[("u1", false), ("u2", true)])], &next());
    assert_eq!(
        plan.edges,
        [
            (edge("g1", "u1"), EdgeWrite::Insert { stamp: 0 }),
            (edge("g1", "u2"), EdgeWrite::Remove),
        ],
        "u3, not on the page, stays"
    );
    assert_eq!(plan.changes, [upsert("g1", &["u1", "u2"])]);
    assert!(
        plan.restored.is_empty(),
        "known to the mirror: no reconcile"
    );
}

#[test]
fn unsupported_members_are_counted_stored_and_left_out_of_the_upsert() {
    let mut g = listed("g1", &[("u1", false)]);
    let device = MemberRef {
        kind: MemberKind::Other,
        id: "dev1".into(),
    };
    g.members.push(MemberDelta {
        member: device.clone(),
        removed: false,
    });
    let plan = fold(&view(Some(1), &[]), &[g], &next());
    assert_eq!(plan.outcome.unsupported_members, 1);
    assert_eq!(plan.changes, [upsert("g1", &["u1"])]);
    let stored = Edge {
        group: "g1".into(),
        member: device,
    };
    assert_eq!(
        plan.edges.iter().find(|(e, _)| *e == stored),
        Some(&(stored.clone(), EdgeWrite::Insert { stamp: 1 }))
    );
}

#[test]
fn the_end_of_a_full_round_drops_what_it_did_not_list_and_reconciles_and_sweeps() {
    let keep = record("keep", GroupStatus::Live, 9);
    let soft = record("soft", GroupStatus::SoftDeleted, 4);
    let mut v = view(Some(9), &[("keep", keep.clone())]);
    v.round.end = Some(RoundEndView {
        staged: BTreeMap::new(),
        full: Some(FullMirrorView {
            groups: [
                ("gone".to_string(), record("gone", GroupStatus::Live, 4)),
                ("keep".to_string(), keep.clone()),
                ("soft".to_string(), soft),
            ]
            .into(),
            unlisted: [
                ("gone".to_string(), vec![user("x")]),
                ("keep".to_string(), vec![user("stale"), user("again")]),
                ("soft".to_string(), vec![user("y")]),
            ]
            .into(),
        }),
    });
    let plan = fold(&v, &[listed("keep", &[("again", false)])], &delta());
    assert_eq!(
        plan.groups,
        [
            ("gone".to_string(), GroupWrite::Remove),
            ("keep".to_string(), GroupWrite::Put(keep)),
        ]
        .into()
    );
    assert_eq!(
        plan.edges,
        [
            (edge("keep", "again"), EdgeWrite::Insert { stamp: 9 }),
            (edge("gone", "x"), EdgeWrite::Remove),
            (edge("keep", "stale"), EdgeWrite::Remove),
        ],
        "in write order; re-listed on this page: kept; a soft-deleted group keeps its members"
    );
    assert_eq!(
        plan.changes,
        [
            upsert("keep", &["again"]),
            change("keep", ChangeKind::Reconcile),
            change(ALL_GROUPS, ChangeKind::Sweep),
        ]
    );
    assert_eq!(plan.full_round_done, Some(9));
    assert_eq!(plan.cursor, cursor_after(&delta(), None, NOW));
    assert_eq!(plan.outcome, outcome(&plan.changes, true, true));
}

#[test]
fn a_synced_group_getting_its_sid_requeues_its_wanted_parents() {
    let synced = |sid: Option<&str>| {
        let mut r = record("child", GroupStatus::Live, 0);
        r.props.on_premises_sync_enabled = Some(true);
        r.props.on_premises_security_identifier = sid.map(str::to_string);
        r
    };
    let mut out = record("p2", GroupStatus::Live, 0);
    out.admitted = false;
    let mut v = view(
        None,
        &[
            ("child", synced(None)),
            ("p1", record("p1", GroupStatus::Live, 0)),
            ("p2", out),
        ],
    );
    v.parents.insert(
        "child".into(),
        vec!["child".into(), "p1".into(), "p2".into(), "p3".into()],
    );
    let mut item = listed("child", &[]);
    item.patch.on_premises_security_identifier = Patch::Value("S-1-5-21-1-2-3-500".into());
    let plan = fold(&v, &[item], &next());
    let child = MemberRef {
        kind: MemberKind::Group,
        id: "child".into(),
    };
    assert_eq!(
        plan.changes,
        [change(
            "p1",
            ChangeKind::Upsert {
                members: vec![child]
            }
        )],
        "only the wanted parent; the child itself is synced from AD, not written"
    );
    let mut now_synced = synced(Some("S-1-5-21-1-2-3-500"));
    now_synced.admitted = false; // not eligible: synced from AD
    assert_eq!(plan.groups, puts(&[("child", now_synced)]));

    let plan = fold(&v, &[listed("child", &[])], &next());
    assert_eq!(plan.changes, NONE, "same identity: parents untouched");
}
