//! `step` driven by the payload fixtures (tests/fixtures/graph), no HTTP.

use super::*;
use crate::graph::client::{GraphError, classify};
use crate::graph::page::{parse_group_page, parse_user_page};

/// The initial URL the tests start full rounds from.
pub(crate) const INITIAL: &str = "https://graph.test/v1.0/groups/delta?$select=displayName";

/// The bytes of `tests/fixtures/graph/{name}.json`.
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/graph/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The input a committed groups fixture page gives (`enqueued` and `held` as the store said).
fn group_page(name: &str, enqueued: usize, held_deletes: usize) -> Input {
    let page = parse_group_page(&fixture(name)).unwrap();
    Input::Page {
        next: page.link,
        items: page.items.len(),
        enqueued,
        superseded: 0,
        held_deletes,
    }
}

/// The link a fixture page ends with.
fn link_of(name: &str) -> String {
    match parse_group_page(&fixture(name)).unwrap().link {
        NextStep::Next(l) | NextStep::Delta(l) => l,
    }
}

/// Graph's answer to an expired delta token, through the client's classification.
fn expired() -> Input {
    match classify(410, None, &fixture("sync-state-not-found")) {
        GraphError::ResyncRequired { code } => Input::ResyncRequired { code },
        other => panic!("not a resync: {other:?}"),
    }
}

fn fetch(url: &str, minimal: bool) -> Action {
    Action::Fetch {
        url: url.to_string(),
        minimal,
    }
}

fn synced(link: &str) -> Stream {
    Stream::Synced {
        delta_link: link.to_string(),
    }
}

fn tally(pages: usize, items: usize, enqueued: usize, full: bool, resyncs: usize) -> RoundTally {
    RoundTally {
        pages,
        items,
        enqueued,
        full,
        held_deletes: 0,
        resyncs,
    }
}

#[test]
fn initial_round_walks_the_next_links_to_the_delta_link_without_minimal() {
    let (round, action) = Round::start(Stream::Unsynced, INITIAL.into(), true);
    assert_eq!(action, fetch(INITIAL, false));
    assert_eq!(round.tally(), tally(0, 0, 0, true, 0));

    let (round, action) = step(round, group_page("initial-page1", 2, 0));
    let next = link_of("initial-page1");
    assert_eq!(
        round.stream(),
        &Stream::MidRound {
            next_link: next.clone(),
            full: true
        }
    );
    assert_eq!(action, fetch(&next, false));
    assert_eq!(round.tally(), tally(1, 2, 2, true, 0));

    let (round, action) = step(round, group_page("initial-page2", 1, 0));
    assert_eq!(action, Action::Done);
    assert_eq!(round.stream(), &synced(&link_of("initial-page2")));
    assert_eq!(round.tally(), tally(2, 3, 3, true, 0));
}

#[test]
fn incremental_round_asks_for_minimal_only_when_configured() {
    let delta = link_of("initial-page2");
    for prefer in [true, false] {
        let (round, action) = Round::start(synced(&delta), INITIAL.into(), prefer);
        assert_eq!(
            action,
            fetch(&delta, prefer),
            "prefer_return_minimal = {prefer}"
        );
        let (round, action) = step(round, group_page("minimal", 1, 0));
        assert_eq!(action, Action::Done);
        assert_eq!(round.stream(), &synced(&link_of("minimal")));
        assert_eq!(round.tally(), tally(1, 1, 1, false, 0));
    }
}

#[test]
fn an_incremental_round_over_several_pages_stays_incremental_and_minimal() {
    let delta = link_of("incremental-empty");
    let (round, _) = Round::start(synced(&delta), INITIAL.into(), true);
    let (round, action) = step(round, group_page("large-page1", 0, 0));
    let next = link_of("large-page1");
    assert_eq!(
        round.stream(),
        &Stream::MidRound {
            next_link: next.clone(),
            full: false
        }
    );
    assert_eq!(action, fetch(&next, true));
    let (round, action) = step(round, group_page("large-page2", 0, 0));
    assert_eq!(action, Action::Done);
    assert!(!round.tally().full);
    assert_eq!(round.tally().pages, 2);
}

#[test]
fn a_round_resumed_mid_way_continues_from_its_next_link() {
    let next = link_of("initial-page1");
    for full in [true, false] {
        let stream = Stream::MidRound {
            next_link: next.clone(),
            full,
        };
        let (round, action) = Round::start(stream, INITIAL.into(), true);
        // Minimal only when the interrupted round was incremental.
        assert_eq!(action, fetch(&next, !full));
        assert_eq!(round.tally().full, full);
        let (round, action) = step(round, group_page("initial-page2", 0, 0));
        assert_eq!(action, Action::Done);
        assert_eq!(round.tally(), tally(1, 1, 0, full, 0));
    }
}

#[test]
fn an_empty_incremental_page_repeating_the_delta_link_ends_the_round() {
    // Graph may hand back the very deltaLink it was asked: that is the end, not a runaway.
    let delta = link_of("incremental-empty");
    let (round, _) = Round::start(synced(&delta), INITIAL.into(), false);
    let (round, action) = step(round, group_page("incremental-empty", 0, 0));
    assert_eq!(action, Action::Done);
    assert_eq!(round.stream(), &synced(&delta));
    assert_eq!(round.tally(), tally(1, 0, 0, false, 0));
}

#[test]
fn held_deletes_and_user_pages_are_tallied() {
    let page = parse_user_page(&fixture("users-removed")).unwrap();
    let (round, _) = Round::start(Stream::Unsynced, INITIAL.into(), true);
    let input = Input::Page {
        next: page.link.clone(),
        items: page.items.len(),
        enqueued: 4,
        superseded: 0,
        held_deletes: 3,
    };
    let (round, action) = step(round, input);
    assert_eq!(action, Action::Done);
    let t = round.tally();
    assert_eq!((t.pages, t.items, t.enqueued, t.held_deletes), (1, 3, 4, 3));
}

#[test]
fn an_expired_token_drops_the_cursor_and_enumerates_in_full() {
    let delta = link_of("initial-page2");
    let (round, _) = Round::start(synced(&delta), INITIAL.into(), true);
    assert!(!round.tally().full);
    let (round, action) = step(round, expired());
    assert_eq!(
        action,
        Action::Resync {
            url: INITIAL.into(),
            code: "syncStateNotFound".into()
        }
    );
    assert_eq!(round.stream(), &Stream::Unsynced);
    assert_eq!(round.tally(), tally(0, 0, 0, true, 1));
    // The full enumeration that follows never asks for minimal, though configured.
    let (round, action) = step(round, group_page("initial-page1", 0, 0));
    assert_eq!(action, fetch(&link_of("initial-page1"), false));
    let (round, action) = step(round, group_page("initial-page2", 0, 0));
    assert_eq!(action, Action::Done);
    assert_eq!(round.tally(), tally(2, 3, 0, true, 1));
}

#[test]
fn a_resync_mid_round_restarts_from_the_initial_url() {
    let (round, _) = Round::start(Stream::Unsynced, INITIAL.into(), false);
    let (round, _) = step(round, group_page("initial-page1", 2, 0));
    let (round, action) = step(round, expired());
    assert!(matches!(&action, Action::Resync { url, .. } if url == INITIAL));
    // Pages already read stay counted; the round goes on from the start.
    assert_eq!(round.tally(), tally(1, 2, 2, true, 1));
    let (round, action) = step(round, group_page("initial-page1", 0, 0));
    assert_eq!(action, fetch(&link_of("initial-page1"), false));
    assert_eq!(round.tally().pages, 2);
}

#[test]
fn graph_may_force_two_resyncs_per_round_and_the_third_fails_it() {
    let (round, _) = Round::start(synced("https://graph.test/d"), INITIAL.into(), true);
    let (round, first) = step(round, expired());
    let (round, second) = step(round, expired());
    assert!(matches!(first, Action::Resync { .. }));
    assert!(matches!(second, Action::Resync { .. }));
    assert_eq!(round.tally().resyncs, MAX_RESYNCS_PER_ROUND);
    let (round, third) = step(round, expired());
    assert_eq!(
        third,
        Action::GiveUp {
            code: "syncStateNotFound".into()
        }
    );
    assert_eq!(round.tally().resyncs, 2);
}

#[test]
fn the_resync_limit_counts_per_round_not_per_stream() {
    let (round, _) = Round::start(synced("https://graph.test/d"), INITIAL.into(), true);
    let (round, _) = step(round, expired());
    let (round, _) = step(round, expired());
    let (round, _) = step(round, group_page("initial-page2", 0, 0));
    // The next round starts from the stored state with a fresh tally.
    let (next, _) = Round::start(round.stream().clone(), INITIAL.into(), true);
    let (_, action) = step(next, expired());
    assert!(matches!(action, Action::Resync { .. }));
}

#[test]
fn a_next_link_that_repeats_the_request_stops_the_round() {
    let next = link_of("initial-page1");
    let stream = Stream::MidRound {
        next_link: next.clone(),
        full: true,
    };
    let (round, action) = Round::start(stream, INITIAL.into(), false);
    assert_eq!(action, fetch(&next, false));
    // initial-page1 ends with the very nextLink it was requested with.
    let (round, action) = step(round, group_page("initial-page1", 0, 0));
    assert_eq!(action, Action::Stop(RunawayKind::RepeatedNextLink));
    assert_eq!(round.tally().pages, 1);
}

#[test]
fn a_next_link_seen_after_a_resync_is_not_a_repeat() {
    let next = link_of("initial-page1");
    let stream = Stream::MidRound {
        next_link: next.clone(),
        full: true,
    };
    let (round, _) = Round::start(stream, INITIAL.into(), false);
    let (round, _) = step(round, expired());
    // Requested: the initial URL, answered with `next`: a new link for this request.
    let (_, action) = step(round, group_page("initial-page1", 0, 0));
    assert_eq!(action, fetch(&next, false));
}

#[test]
fn the_page_budget_stops_a_round_that_never_reaches_its_delta_link() {
    let (mut round, _) = Round::start(Stream::Unsynced, INITIAL.into(), false);
    round.tally.pages = MAX_PAGES_PER_ROUND - 2;
    let (round, action) = step(round, group_page("large-page1", 0, 0));
    assert!(matches!(action, Action::Fetch { .. }), "{action:?}");
    let (round, action) = step(round, group_page("initial-page1", 0, 0));
    assert_eq!(
        action,
        Action::Stop(RunawayKind::PageBudget(MAX_PAGES_PER_ROUND))
    );
    assert_eq!(round.tally().pages, MAX_PAGES_PER_ROUND);

    // A deltaLink on the last page allowed still ends the round.
    let (mut round, _) = Round::start(Stream::Unsynced, INITIAL.into(), false);
    round.tally.pages = MAX_PAGES_PER_ROUND - 1;
    let (_, action) = step(round, group_page("initial-page2", 0, 0));
    assert_eq!(action, Action::Done);
}

#[test]
fn runaway_reasons_read_as_before() {
    assert_eq!(
        RunawayKind::RepeatedNextLink.to_string(),
        "nextLink repeated itself; stopping the round"
    );
    assert_eq!(
        RunawayKind::PageBudget(200_000).to_string(),
        "round exceeded 200000 pages without a deltaLink (graph.max_pages_per_round); \
         stopping the round, cursor kept"
    );
}

#[test]
fn streams_say_whether_they_are_full_and_where_they_go_on() {
    let mid = |full| Stream::MidRound {
        next_link: "https://g/n".into(),
        full,
    };
    assert!(Stream::Unsynced.is_full() && mid(true).is_full());
    assert!(!mid(false).is_full() && !synced("https://g/d").is_full());
    assert_eq!(Stream::Unsynced.link(), None);
    assert_eq!(mid(false).link(), Some("https://g/n"));
    assert_eq!(synced("https://g/d").link(), Some("https://g/d"));
    let n = NextStep::Next("https://g/n".into());
    assert_eq!(Stream::Unsynced.after(n.clone()), mid(true));
    assert_eq!(synced("https://g/d").after(n.clone()), mid(false));
    assert_eq!(mid(true).after(n), mid(true));
    assert_eq!(
        mid(true).after(NextStep::Delta("https://g/d".into())),
        synced("https://g/d")
    );
    assert_eq!(select(Resource::Groups), page::GROUP_SELECT);
    assert_eq!(select(Resource::Users), page::USER_SELECT);
    assert_eq!(endpoint(Resource::Groups), "groups_delta");
    assert_eq!(endpoint(Resource::Users), "users_delta");
}

/// A page ending with a nextLink of its own (`https://graph.test/next/{n}`).
fn endless(n: usize) -> Input {
    Input::Page {
        next: NextStep::Next(format!("https://graph.test/next/{n}")),
        items: 0,
        enqueued: 0,
        superseded: 0,
        held_deletes: 0,
    }
}

#[test]
fn a_configured_page_budget_stops_an_endless_chain_of_distinct_next_links() {
    let (mut round, action) = Round::start_with_budget(Stream::Unsynced, INITIAL.into(), false, 3);
    assert!(matches!(action, Action::Fetch { .. }));
    let mut actions = Vec::new();
    for n in 0..5 {
        let (r, a) = step(round, endless(n));
        round = r;
        actions.push(a.clone());
        if !matches!(a, Action::Fetch { .. }) {
            break;
        }
    }
    assert_eq!(actions.len(), 3, "{actions:?}");
    assert_eq!(actions[2], Action::Stop(RunawayKind::PageBudget(3)));
    assert_eq!(round.tally().pages, 3);
    // The stream is where the last committed page left it: the cursor the store holds.
    assert_eq!(round.stream().link(), Some("https://graph.test/next/2"));
    // A budget of 0 is read as 1: a round always takes its first page.
    let (round, _) = Round::start_with_budget(Stream::Unsynced, INITIAL.into(), false, 0);
    let (_, a) = step(round, endless(0));
    assert_eq!(a, Action::Stop(RunawayKind::PageBudget(1)));
}

#[test]
fn a_fetch_ahead_is_what_the_machine_asks_next_and_never_past_the_budget_or_a_repeated_link() {
    let (round, _) = Round::start_with_budget(Stream::Unsynced, INITIAL.into(), false, 2);
    let next = NextStep::Next("https://graph.test/next/0".into());
    assert_eq!(
        round.fetch_after(&next),
        Some(("https://graph.test/next/0".into(), false))
    );
    // The end of the round, and a page that names itself again: nothing to fetch.
    assert_eq!(
        round.fetch_after(&NextStep::Delta(
            "https://graph.test/delta?$deltatoken=1".into()
        )),
        None
    );
    assert_eq!(round.fetch_after(&NextStep::Next(INITIAL.into())), None);
    // The page that fills the budget: the machine stops, so nothing is fetched ahead.
    let (round, _) = step(round, endless(0));
    assert_eq!(
        round.fetch_after(&NextStep::Next("https://graph.test/next/1".into())),
        None
    );
}
