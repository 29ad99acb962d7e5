//! Unit tests of the member limit (`graph.max_members_per_group`) in the groups fold: members
//! past the limit are refused (never stored), the group is marked refused, nothing is removed
//! because of the limit, and a full enumeration that finds the group within the limit clears
//! the mark.

use super::tests::*;
use super::*;
use crate::queue::records::{GroupStatus, MemberCount};

fn fold_max(v: &MirrorView, items: &[GroupDelta], next: &NextStep, max: usize) -> GroupPagePlan {
    let page = GroupPage {
        items,
        next,
        policy: POLICY,
        admits: &eligible,
        now: NOW,
        max_members: max,
    };
    fold_group_page(v, &page)
}

fn count(stored: u64, refused: Option<u64>) -> Option<MemberCount> {
    Some(MemberCount { stored, refused })
}

fn inserted(plan: &GroupPagePlan, group: &str) -> Vec<String> {
    plan.edges
        .iter()
        .filter(|(e, w)| e.group == group && matches!(w, EdgeWrite::Insert { .. }))
        .map(|(e, _)| e.member.id.clone())
        .collect()
}

#[test]
fn members_past_the_limit_are_refused_and_other_groups_proceed() {
    let v = view(Some(7), &[]);
    let big: Vec<(String, bool)> = (0..5).map(|i| (format!("u{i}"), false)).collect();
    let big: Vec<(&str, bool)> = big.iter().map(|(m, r)| (m.as_str(), *r)).collect();
    let items = [
        listed("big", &big),
        listed("small", &[("u0", false), ("u9", false)]),
    ];
    let plan = fold_max(&v, &items, &next(), 3);
    assert_eq!(inserted(&plan, "big"), ["u0", "u1", "u2"]);
    assert_eq!(inserted(&plan, "small"), ["u0", "u9"]);
    assert_eq!(plan.member_counts["big"], count(3, Some(3)));
    assert_eq!(plan.member_counts["small"], count(2, None));
    assert_eq!(plan.outcome.refused_members, 2);
    assert_eq!(plan.outcome.refused_groups, ids(&["big"]));
    // The upsert is still queued (the applier refuses the group, visibly); it names only the
    // stored members.
    assert!(plan.changes.contains(&upsert("big", &["u0", "u1", "u2"])));
    assert!(plan.changes.contains(&upsert("small", &["u0", "u9"])));
    assert!(plan.deletes.staged.is_empty(), "the limit never deletes");
}

#[test]
fn at_the_limit_relisted_members_stay_removals_count_and_nothing_is_dropped() {
    let mut v = view(None, &[("g1", record("g1", GroupStatus::Live, 1))]);
    v.member_counts.insert(
        "g1".into(),
        MemberCount {
            stored: 3,
            refused: None,
        },
    );
    v.stored_edges.insert(edge("g1", "u1"));
    v.stored_edges.insert(edge("g1", "u2"));
    // Relisting a stored member is no growth; a new one is refused; a removal frees a slot
    // that the next new member takes.
    let items = [listed(
        "g1",
        &[
            ("u1", false),
            ("new1", false),
            ("u2", true),
            ("new2", false),
        ],
    )];
    let plan = fold_max(&v, &items, &next(), 3);
    assert_eq!(
        plan.edges,
        vec![
            (edge("g1", "u1"), EdgeWrite::Insert { stamp: 0 }),
            (edge("g1", "u2"), EdgeWrite::Remove),
            (edge("g1", "new2"), EdgeWrite::Insert { stamp: 0 }),
        ]
    );
    assert_eq!(plan.member_counts["g1"], count(3, Some(3)));
    assert_eq!(plan.outcome.refused_members, 1);
    assert!(
        plan.edges
            .iter()
            .all(|(e, w)| *w != EdgeWrite::Remove || e.member.id == "u2"),
        "only the cloud's own removal removes"
    );
}

#[test]
fn the_refusal_stays_in_incremental_rounds_and_a_fitting_full_listing_clears_it() {
    let rec = record("g1", GroupStatus::Live, 1);
    let mut v = view(None, &[("g1", rec.clone())]);
    v.member_counts.insert(
        "g1".into(),
        MemberCount {
            stored: 2,
            refused: Some(3),
        },
    );
    let plan = fold_max(&v, &[listed("g1", &[("u5", false)])], &next(), 3);
    assert_eq!(plan.member_counts["g1"], count(3, Some(3)), "still refused");
    // A full enumeration (epoch 9) lists it again, within a raised limit: cleared.
    let mut v = view(Some(9), &[("g1", rec)]);
    v.member_counts.insert(
        "g1".into(),
        MemberCount {
            stored: 3,
            refused: Some(3),
        },
    );
    let plan = fold_max(&v, &[listed("g1", &[("u6", false)])], &next(), 10);
    assert_eq!(plan.member_counts["g1"], count(4, None));
    assert_eq!(plan.outcome.refused_members, 0);
}

#[test]
fn a_group_leaving_the_mirror_forgets_its_count() {
    let mut v = view(None, &[("g1", record("g1", GroupStatus::Live, 1))]);
    v.members.insert("g1".into(), vec![user("u1")]);
    v.member_counts.insert(
        "g1".into(),
        MemberCount {
            stored: 1,
            refused: Some(1),
        },
    );
    let plan = fold_max(
        &v,
        &[removed("g1", crate::model::Removed::Deleted)],
        &next(),
        1,
    );
    assert_eq!(plan.member_counts["g1"], None);
}

#[test]
fn the_default_limit_is_connects_ceiling() {
    assert_eq!(crate::config::DEFAULT_MAX_MEMBERS_PER_GROUP, 250_000);
}
