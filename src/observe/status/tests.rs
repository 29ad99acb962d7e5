//! The recorder's ring buffers, lag summary and event handling.

use super::*;

fn change(lag: Option<u64>) -> ChangeEntry {
    ChangeEntry {
        at_ms: 0,
        group_id: "g".into(),
        group_name: None,
        work: "upsert",
        changes: 1,
        outcome: if lag.is_some() {
            "applied"
        } else {
            "dead_letter"
        },
        lag_ms: lag,
        duration_ms: 1,
        error_class: None,
        error: None,
    }
}

#[test]
fn lag_summary_uses_nearest_rank_and_skips_failures() {
    let q: VecDeque<_> = [Some(300), None, Some(100), Some(200), Some(1000)]
        .into_iter()
        .map(change)
        .collect();
    let s = LagSummary::of(&q);
    assert_eq!(s.samples, 4);
    assert_eq!(s.last_ms, Some(1000));
    assert_eq!(s.p50_ms, Some(200));
    assert_eq!(s.p95_ms, Some(1000));
    assert_eq!(s.max_ms, Some(1000));
    assert_eq!(LagSummary::of(&VecDeque::new()).p50_ms, None);
}

#[test]
fn ring_buffers_keep_the_newest() {
    let mut q = VecDeque::new();
    for i in 0..(CHANGES_KEPT + 5) {
        push(&mut q, CHANGES_KEPT, i);
    }
    assert_eq!(q.len(), CHANGES_KEPT);
    assert_eq!(q.front(), Some(&5));
    assert_eq!(q.back(), Some(&(CHANGES_KEPT + 4)));
}

#[test]
fn the_recorder_keeps_rounds_changes_and_totals_from_events() {
    use crate::model::Resource;
    let r = Recorder::new();
    let tally = RoundTally {
        pages: 2,
        items: 7,
        enqueued: 3,
        full: true,
        ..Default::default()
    };
    r.observe(&Event::PageCommitted {
        resource: Resource::Groups,
        round: tally,
    });
    assert_eq!(r.recent().in_flight.len(), 1);
    r.observe(&Event::RoundFinished {
        resource: Resource::Groups,
        duration: Duration::from_millis(40),
        outcome: Err("Graph down".into()),
    });
    r.observe(&Event::ChangesEnqueued {
        kind: "upsert",
        count: 3,
    });
    r.observe(&Event::GroupFinished {
        group_id: "g1".into(),
        work: "upsert",
        seen_ms: vec![now_ms().saturating_sub(500)],
        duration: Duration::from_millis(5),
        outcome: GroupOutcome::Applied,
    });
    r.observe(&Event::Retry { stage: "ad" });
    r.observe(&Event::ManagedGroups(ManagedGroups::Counted(9)));
    r.observe(&Event::ManagedGroups(ManagedGroups::Created));
    let recent = r.recent();
    assert!(recent.in_flight.is_empty());
    let round = &recent.rounds[0];
    assert_eq!(
        (round.kind, round.result, round.pages, round.items),
        ("full", "error", 2, 7)
    );
    assert_eq!(round.error.as_deref(), Some("Graph down"));
    assert_eq!(recent.changes[0].outcome, "applied");
    assert!(recent.changes[0].lag_ms.is_some_and(|l| l >= 500));
    assert_eq!(
        recent.totals,
        Totals {
            applied: 1,
            dead_lettered: 0,
            enqueued: 3,
            retries: 1,
            failed_rounds: 1,
            conflicts: 0,
            managed_groups: 10,
        }
    );
}
