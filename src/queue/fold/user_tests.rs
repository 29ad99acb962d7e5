//! Unit tests of the users fold: record writes, SID changes and the groups they requeue.

use super::tests::*;
use super::*;
use crate::graph::page::UserDelta;
use crate::model::{Patch, Removed, UserPatch, UserRecord};
use crate::queue::records::GroupStatus;

fn users(records: &[(&str, Option<&str>)]) -> UserView {
    UserView {
        users: records
            .iter()
            .map(|(id, sid)| {
                let r = UserRecord {
                    sid: sid.map(str::to_string),
                    ..Default::default()
                };
                (id.to_string(), Some(r))
            })
            .collect(),
        full_epoch: None,
    }
}

fn user_item(id: &str, removed: Option<Removed>, sid: Patch<String>) -> UserDelta {
    UserDelta {
        id: id.into(),
        removed,
        patch: UserPatch {
            sid,
            ..Default::default()
        },
    }
}

#[test]
fn a_users_page_writes_the_records_and_names_the_sid_changes() {
    let v = users(&[("u1", None), ("u2", Some("S-2")), ("u3", Some("S-3"))]);
    let page = [
        user_item("u1", None, Patch::Value("S-1".into())),
        user_item("u2", Some(Removed::Deleted), Patch::Absent),
        user_item("u3", Some(Removed::Changed), Patch::Absent),
        user_item("u4", Some(Removed::Changed), Patch::Absent),
    ];
    let plan = fold_user_page(&v, &page, &delta(), NOW);
    let with_sid = |sid: &str| UserRecord {
        sid: Some(sid.into()),
        ..Default::default()
    };
    assert_eq!(
        plan.users,
        [
            ("u1".to_string(), UserWrite::Put(with_sid("S-1"))),
            ("u2".to_string(), UserWrite::Remove),
            ("u3".to_string(), UserWrite::Put(with_sid("S-3"))),
            ("u4".to_string(), UserWrite::Remove),
        ]
        .into(),
        "changed: kept as it was (or not there)"
    );
    assert_eq!(plan.sid_changed, ["u1", "u2"]);
    assert_eq!(plan.changes, NONE);
    assert_eq!(plan.cursor, cursor_after(&delta(), None, NOW));
    assert!(plan.outcome.round_done && !plan.outcome.full_round);
}

#[test]
fn a_sid_change_requeues_the_wanted_groups_listing_the_user() {
    let v = users(&[("u1", None)]);
    let page = [user_item("u1", None, Patch::Value("S-1".into()))];
    let mut plan = fold_user_page(&v, &page, &next(), NOW);
    let mut out = record("g2", GroupStatus::Live, 0);
    out.admitted = false;
    let groups = UserGroupsView {
        containing: [(
            "u1".to_string(),
            vec!["g1".into(), "g2".into(), "g3".into()],
        )]
        .into(),
        groups: [
            ("g1".to_string(), Some(record("g1", GroupStatus::Live, 0))),
            ("g2".to_string(), Some(out)),
            ("g3".to_string(), None),
        ]
        .into(),
    };
    requeue_groups(&mut plan, &groups, NOW);
    assert_eq!(plan.changes, [upsert("g1", &["u1"])]);
    assert_eq!(plan.outcome.enqueued, [("upsert", 1)].into());
    assert!(!plan.outcome.round_done);
}

#[test]
fn a_users_page_of_a_full_round_says_so_and_carries_its_epoch() {
    let mut v = users(&[]);
    v.full_epoch = Some(5);
    let page = [user_item("u1", None, Patch::Absent)];
    let plan = fold_user_page(&v, &page, &next(), NOW);
    assert_eq!(plan.cursor, cursor_after(&next(), Some(5), NOW));
    assert_eq!(plan.cursor.full_epoch, Some(5));
    assert!(plan.outcome.full_round && !plan.outcome.round_done);
    assert_eq!(
        plan.users,
        [("u1".to_string(), UserWrite::Put(UserRecord::default()))].into()
    );
    assert!(plan.sid_changed.is_empty(), "no SID before or after");
}
