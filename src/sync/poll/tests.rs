//! The poller's commit path against a scratch store, no HTTP: the stored cursor and the state
//! machine agree after every page, and each page is reported as events.

use super::*;
use crate::graph::delta::tests::{INITIAL, fixture};
use crate::model::event::Recorded;

const POLICY: DeletePolicy = DeletePolicy {
    threshold: 10,
    soft_destructive: false,
};

fn cursor(link: &str, mid_round: bool, full_epoch: Option<u64>) -> Cursor {
    Cursor {
        link: link.into(),
        mid_round,
        full_epoch,
        stored_ms: 1,
    }
}

/// Commits each fixture as the poller does and checks, after each page, that the machine
/// stands where the stored cursor says. Returns the last round.
fn walk(store: &Store, resource: Resource, start: (Round, Action), pages: &[&str]) -> Round {
    let (mut round, mut action) = start;
    for name in pages {
        assert!(matches!(action, Action::Fetch { .. }), "{name}: {action:?}");
        let (input, _) =
            commit_page(store, POLICY, &Scope::default(), resource, &fixture(name)).unwrap();
        (round, action) = step(round, input);
        let stored = store.cursor(resource).unwrap();
        assert_eq!(&stream_of(stored.as_ref()), round.stream(), "after {name}");
    }
    assert_eq!(action, Action::Done);
    round
}

#[test]
fn stored_cursors_map_to_stream_states() {
    assert_eq!(stream_of(None), Stream::Unsynced);
    assert_eq!(
        stream_of(Some(&cursor("https://g/n", true, Some(7)))),
        Stream::MidRound {
            next_link: "https://g/n".into(),
            full: true
        }
    );
    assert_eq!(
        stream_of(Some(&cursor("https://g/n", true, None))),
        Stream::MidRound {
            next_link: "https://g/n".into(),
            full: false
        }
    );
    assert_eq!(
        stream_of(Some(&cursor("https://g/d", false, None))),
        Stream::Synced {
            delta_link: "https://g/d".into()
        }
    );
}

#[test]
fn the_machine_stands_where_the_store_recorded_each_page() {
    let store = Store::open_temporary().unwrap();
    let start = Round::start(stream_of(None), INITIAL.into(), true);
    let full = walk(
        &store,
        Resource::Groups,
        start,
        &["initial-page1", "initial-page2"],
    );
    assert!(full.tally().full);
    assert_eq!((full.tally().pages, full.tally().items), (2, 3));

    // The next round starts from the stored deltaLink and is incremental, over two pages.
    let stored = store.cursor(Resource::Groups).unwrap();
    let start = Round::start(stream_of(stored.as_ref()), INITIAL.into(), true);
    assert!(matches!(&start.1, Action::Fetch { minimal: true, .. }));
    let incremental = walk(
        &store,
        Resource::Groups,
        start,
        &["large-page1", "large-page2"],
    );
    assert!(!incremental.tally().full);

    // A resync: the store forgets the cursor, the machine starts over in full.
    let (round, action) = step(
        Round::start(incremental.stream().clone(), INITIAL.into(), true).0,
        Input::ResyncRequired {
            code: "syncStateNotFound".into(),
        },
    );
    assert!(matches!(action, Action::Resync { .. }));
    store.reset_cursor(Resource::Groups).unwrap();
    let action = match action {
        Action::Resync { url, .. } => Action::Fetch {
            url,
            minimal: false,
        },
        other => other,
    };
    let resynced = walk(
        &store,
        Resource::Groups,
        (round, action),
        &["initial-page1", "initial-page2"],
    );
    assert_eq!(resynced.tally().resyncs, 1);
}

#[test]
fn user_pages_are_committed_with_their_cursor() {
    let store = Store::open_temporary().unwrap();
    let start = Round::start(Stream::Unsynced, INITIAL.into(), false);
    let round = walk(&store, Resource::Users, start, &["users-removed"]);
    assert_eq!(round.tally().items, 3);
    assert!(
        store
            .user("693acd06-2877-4339-8ade-b704261fe7a0")
            .unwrap()
            .is_some()
    );
}

/// A new security group, in an incremental round, with a user and a device as members.
const NEW_GROUP: &[u8] = br##"{"@odata.deltaLink":"https://graph.test/v1.0/groups/delta?$deltatoken=2",
  "value":[{"id":"0f0e0d0c-0000-4000-8000-000000000001","displayName":"sg-New","securityEnabled":true,
    "mailEnabled":false,"groupTypes":[],"members@delta":[
      {"@odata.type":"#microsoft.graph.user","id":"693acd06-2877-4339-8ade-b704261fe7a0"},
      {"@odata.type":"#microsoft.graph.device","id":"d1"}]}]}"##;

#[test]
fn each_committed_page_reports_what_it_queued_and_skipped() {
    let store = Store::open_temporary().unwrap();
    let (recorded, events) = Recorded::new();
    let mut enqueued = Vec::new();
    for body in [
        fixture("initial-page1"),
        fixture("initial-page2"),
        NEW_GROUP.to_vec(),
    ] {
        let (input, outcome) =
            commit_page(&store, POLICY, &Scope::default(), Resource::Groups, &body).unwrap();
        report_page(&events, &outcome);
        match input {
            Input::Page { enqueued: n, .. } => enqueued.push(n),
            other => panic!("{other:?}"),
        }
    }
    // Nothing until the full round ends (its sweep), then the new group's reconcile alone: it
    // ends the round, so it supersedes the group's upsert.
    assert_eq!(enqueued, [0, 1, 1]);
    assert_eq!(
        recorded.events(),
        vec![
            Event::ChangesEnqueued {
                kind: "sweep",
                count: 1
            },
            Event::ChangesEnqueued {
                kind: "reconcile",
                count: 1
            },
            Event::MembersSkipped {
                reason: "unsupported_type",
                count: 1
            },
        ]
    );
}

#[test]
fn unsupported_members_are_reported_as_skipped() {
    let outcome = PageOutcome {
        unsupported_members: 3,
        ..Default::default()
    };
    let (recorded, events) = Recorded::new();
    report_page(&events, &outcome);
    assert_eq!(
        recorded.events(),
        vec![Event::MembersSkipped {
            reason: "unsupported_type",
            count: 3
        }]
    );
}

#[test]
fn a_malformed_page_is_rejected_and_moves_nothing() {
    let store = Store::open_temporary().unwrap();
    let err = commit_page(
        &store,
        POLICY,
        &Scope::default(),
        Resource::Groups,
        b"{\"value\":[]}",
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            PollError::Page {
                resource: "groups",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transient());
    assert_eq!(store.cursor(Resource::Groups).unwrap(), None);
}

#[test]
fn runaway_errors_read_as_before() {
    let repeated = PollError::Runaway {
        resource: Resource::Groups,
        why: RunawayKind::RepeatedNextLink,
    };
    assert_eq!(
        repeated.to_string(),
        "groups nextLink repeated itself; stopping the round"
    );
    let budget = PollError::Runaway {
        resource: Resource::Users,
        why: RunawayKind::PageBudget(200_000),
    };
    assert_eq!(
        budget.to_string(),
        "users round exceeded 200000 pages without a deltaLink (graph.max_pages_per_round); \
         stopping the round, cursor kept"
    );
    assert!(repeated.is_transient() && budget.is_transient());
    let gone = PollError::from(GraphError::ResyncRequired {
        code: "syncStateNotFound".into(),
    });
    assert!(!gone.is_transient());
}
