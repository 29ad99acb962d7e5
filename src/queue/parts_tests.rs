//! Unit tests of a page committed in parts ([`super::mirror::parts`]): the mirror it leaves
//! is the one the page leaves when committed whole, and a crash between two parts leaves the
//! cursor where it was and nothing that a second commit of the page does not converge from.
//! Also the other side of a large group's memory bound: its members read back in pieces.

use super::commit_tests::{POLICY, open};
use super::fold::GroupPage;
use super::mirror::PageOutcome;
use super::tests::{delta, group, members};
use super::*;
use crate::graph::page::{GroupDelta, NextStep};
use crate::model::Resource;

/// A page: a small group, a group of `n` members (`m0` … with every seventh an `@removed`
/// entry), another small group.
fn page(n: usize) -> Vec<GroupDelta> {
    let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    let big: Vec<(&str, bool)> = names
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i % 7 == 3))
        .collect();
    vec![
        group("a", "A", &[("u1", false), ("u2", false)]),
        group("big", "Big", &big),
        group("c", "C", &[("u1", false)]),
    ]
}

/// Commits `items` after the stored cursor in parts of `part_members`, writing `write_parts`.
fn commit(
    store: &Store,
    items: &[GroupDelta],
    next: &NextStep,
    part_members: usize,
    write_parts: usize,
) -> PageOutcome {
    let before = store.cursor(Resource::Groups).unwrap();
    let page = GroupPage {
        items,
        next,
        policy: POLICY,
        admits: &|_, p| p.eligible(),
        now: crate::model::now_ms(),
        max_members: 250_000,
    };
    store
        .commit_group_page_in_parts(&page, before.as_ref(), part_members, write_parts)
        .unwrap()
}

/// What the mirror holds of the page's groups: records' names and statuses, members, counts.
fn mirror(store: &Store) -> Vec<(String, String, Vec<String>, u64)> {
    ["a", "big", "c"]
        .iter()
        .map(|g| {
            let r = store.group(g).unwrap().expect("group stored");
            let mut m = members(store, g);
            m.sort();
            let name = format!("{:?} {:?}", r.props.display_name, r.status);
            (
                g.to_string(),
                name,
                m,
                store.member_count(g).unwrap().stored,
            )
        })
        .collect()
}

fn next_link() -> NextStep {
    NextStep::Next("https://graph.example/v1.0/groups/delta?$skiptoken=1".into())
}

#[test]
fn a_page_committed_in_parts_leaves_the_mirror_a_whole_commit_leaves() {
    let items = page(5_000);
    let (_w, whole) = open();
    let (_p, parted) = open();
    let one = commit(&whole, &items, &next_link(), usize::MAX, usize::MAX);
    let many = commit(&parted, &items, &next_link(), 700, usize::MAX);
    assert_eq!(mirror(&parted), mirror(&whole));
    let listed = 5_000 - (0..5_000).filter(|i| i % 7 == 3).count();
    assert_eq!(mirror(&parted)[1].2.len(), listed);
    assert_eq!(mirror(&parted)[1].3, listed as u64, "the count is exact");
    assert_eq!(
        parted.cursor(Resource::Groups).unwrap().map(|c| c.link),
        whole.cursor(Resource::Groups).unwrap().map(|c| c.link)
    );
    assert!(one.full_round && many.full_round && !many.round_done);
    assert!(many.enqueued.values().sum::<usize>() >= one.enqueued.values().sum::<usize>());
    // The round's end, on both: the same mirror, nothing unlisted dropped.
    commit(&whole, &[], &delta(1), usize::MAX, usize::MAX);
    commit(&parted, &[], &delta(1), 700, usize::MAX);
    assert_eq!(mirror(&parted), mirror(&whole));
    assert_eq!(mirror(&parted)[1].2.len(), listed);
}

#[test]
fn a_crash_between_parts_keeps_the_cursor_and_the_page_again_converges() {
    let items = page(5_000);
    let (_w, whole) = open();
    commit(&whole, &items, &next_link(), usize::MAX, usize::MAX);
    commit(&whole, &[], &delta(1), usize::MAX, usize::MAX);

    // Crash after two of the page's parts, in the first page of a full round.
    let (_c, crashed) = open();
    commit(&crashed, &items, &next_link(), 1_000, 2);
    assert_eq!(crashed.cursor(Resource::Groups).unwrap(), None);
    assert!(
        !members(&crashed, "big").is_empty(),
        "the parts written stay"
    );
    // The restart asks for the page again (a new full round: no cursor was stored).
    commit(&crashed, &items, &next_link(), 1_000, usize::MAX);
    commit(&crashed, &[], &delta(1), 1_000, usize::MAX);
    assert_eq!(mirror(&crashed), mirror(&whole));

    // Crash mid-page in an incremental round: the stored deltaLink stays as it was.
    let stored = crashed
        .cursor(Resource::Groups)
        .unwrap()
        .expect("deltaLink");
    let more: Vec<(String, bool)> = (0..3_000)
        .map(|i| (format!("n{i}"), false))
        .chain([("m0".to_string(), true)])
        .collect();
    let more: Vec<(&str, bool)> = more.iter().map(|(m, r)| (m.as_str(), *r)).collect();
    let change = vec![group("big", "Big", &more)];
    commit(&crashed, &change, &delta(2), 1_000, 1);
    assert_eq!(crashed.cursor(Resource::Groups).unwrap(), Some(stored));
    commit(&crashed, &change, &delta(2), 1_000, usize::MAX);
    commit(&whole, &change, &delta(2), usize::MAX, usize::MAX);
    assert_eq!(mirror(&crashed), mirror(&whole));
    assert_eq!(
        crashed.cursor(Resource::Groups).unwrap().map(|c| c.link),
        whole.cursor(Resource::Groups).unwrap().map(|c| c.link)
    );
}

#[test]
fn a_large_group_read_in_pieces_is_every_member_once_and_no_other_group() {
    let (_d, store) = open();
    commit(&store, &page(2_345), &next_link(), usize::MAX, usize::MAX);
    let whole = store.members("big").unwrap();
    for limit in [1, 7, 1_000, 5_000] {
        let (mut read, mut after) = (Vec::new(), None);
        loop {
            let piece = store.members_page("big", after.as_ref(), limit).unwrap();
            assert!(piece.len() <= limit);
            read.extend(piece.iter().cloned());
            if piece.len() < limit {
                break;
            }
            after = piece.last().cloned();
        }
        assert_eq!(read, whole, "pieces of {limit}");
    }
    let a = store.members_page("a", None, 10).unwrap();
    assert_eq!(a, store.members("a").unwrap());
    assert_eq!(a.len(), 2, "the next group's members are not read");
    assert!(store.members_page("nobody", None, 10).unwrap().is_empty());
}
