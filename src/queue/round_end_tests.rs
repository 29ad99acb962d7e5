//! Unit tests of the full round's end reading only the edges it must
//! (`mirror::listed`): each listed edge is counted once however often Graph lists it, and
//! a resync still drops every member it did not list.

use super::tests::{commit, delta, group, members, removed};
use super::*;
use crate::graph::page::NextStep;
use crate::model::{Removed, Resource};

fn next(n: u32) -> NextStep {
    NextStep::Next(format!(
        "https://graph.example/v1.0/groups/delta?$skiptoken={n}"
    ))
}

/// The epoch of the full round in progress.
fn epoch(store: &Store) -> u64 {
    let cursor = store
        .cursor(Resource::Groups)
        .unwrap()
        .expect("mid-round cursor");
    cursor.full_epoch.expect("a full round in progress")
}

fn sorted(store: &Store, g: &str) -> Vec<String> {
    let mut m = members(store, g);
    m.sort();
    m
}

#[test]
fn a_full_round_counts_each_listed_edge_once() {
    let (_d, store) = super::commit_tests::open();
    commit(
        &store,
        &[group("g", "G", &[("m1", false), ("m2", false)])],
        next(1),
    );
    let e = epoch(&store);
    assert_eq!(store.listed_in_round("g", e).unwrap(), 2);
    // Graph lists m1 again on a later page (it may repeat an entity across pages).
    commit(
        &store,
        &[group("g", "G", &[("m1", false), ("m3", false)])],
        next(2),
    );
    assert_eq!(store.listed_in_round("g", e).unwrap(), 3);
    commit(&store, &[group("g", "G", &[("m2", true)])], next(3));
    assert_eq!(
        store.listed_in_round("g", e).unwrap(),
        2,
        "a removed edge leaves the count"
    );
    assert_eq!(epoch(&store), e);
    assert_eq!(
        store.listed_in_round("g", e + 1).unwrap(),
        0,
        "another round's count is 0"
    );
}

#[test]
fn a_resync_drops_the_members_it_did_not_list_even_when_some_were_listed_twice() {
    let (_d, store) = super::commit_tests::open();
    let five: Vec<(&str, bool)> = ["m1", "m2", "m3", "m4", "m5"]
        .iter()
        .map(|m| (*m, false))
        .collect();
    commit(
        &store,
        &[group("g", "G", &five), group("h", "H", &[("m1", false)])],
        delta(1),
    );
    assert_eq!(store.member_count("g").unwrap().stored, 5);

    store.reset_cursor(Resource::Groups).unwrap();
    let two = [("m1", false), ("m2", false)];
    commit(
        &store,
        &[group("g", "G", &two), group("h", "H", &[("m1", false)])],
        next(2),
    );
    // Listed twice: counted twice, 2 + 2 + 1 would equal the 5 stored and hide m4 and m5.
    commit(&store, &[group("g", "G", &two)], next(3));
    commit(&store, &[group("g", "G", &[("m3", false)])], delta(4));

    assert_eq!(sorted(&store, "g"), ["m1", "m2", "m3"]);
    assert_eq!(store.member_count("g").unwrap().stored, 3);
    assert_eq!(
        sorted(&store, "h"),
        ["m1"],
        "a group listed whole keeps its members"
    );
}

#[test]
fn a_resync_keeps_members_relisted_on_its_last_page_and_drops_an_unlisted_group_s_edges() {
    let (_d, store) = super::commit_tests::open();
    let g = [("m1", false), ("m2", false), ("m3", false)];
    commit(
        &store,
        &[group("g", "G", &g), group("h", "H", &[("m9", false)])],
        delta(1),
    );

    store.reset_cursor(Resource::Groups).unwrap();
    commit(&store, &[group("g", "G", &g[..2])], next(2));
    // The last page lists the stored m3 again: the count (2) plus the page's one is whole.
    commit(&store, &[group("g", "G", &g[2..])], delta(3));

    assert_eq!(sorted(&store, "g"), ["m1", "m2", "m3"]);
    assert!(
        members(&store, "h").is_empty(),
        "h was not listed: its edges go"
    );
    assert!(store.group("h").unwrap().is_none());
}

#[test]
fn a_group_restored_during_a_resync_keeps_only_what_the_resync_listed() {
    let (_d, store) = super::commit_tests::open();
    let three = [("m1", false), ("m2", false), ("m3", false)];
    commit(
        &store,
        &[group("early", "E", &three), group("last", "L", &three)],
        delta(1),
    );
    commit(
        &store,
        &[
            removed("early", Removed::Changed),
            removed("last", Removed::Changed),
        ],
        delta(2),
    );

    store.reset_cursor(Resource::Groups).unwrap();
    // Restored on an earlier page (Live when the round ends), and on the last page (still
    // soft-deleted as stored when the round's end is read).
    commit(&store, &[group("early", "E", &[("m1", false)])], next(3));
    commit(&store, &[group("last", "L", &[("m2", false)])], delta(4));

    assert_eq!(sorted(&store, "early"), ["m1"]);
    assert_eq!(sorted(&store, "last"), ["m2"]);
    assert_eq!(store.member_count("early").unwrap().stored, 1);
    assert_eq!(store.member_count("last").unwrap().stored, 1);
}
