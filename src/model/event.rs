//! What happened, as the domain reports it: one [`Event`] per fact, sent through the
//! [`Events`] handle each domain object receives at construction.
//!
//! Metrics, the status page, readiness and initial-sync progress are [`Observer`]s of these
//! events; they import nothing of the domain, and the domain never calls them (nor any global).
//! `plan`, benchmarks and unit tests pass [`Events::none`], or a [`Recorded`] to assert on.
//!
//! Label values are bounded (`&'static str` kinds and classes); only
//! [`Event::GroupFinished`] (and [`Event::SecondWriter`]) carry an object id (and an error text), for the status page's
//! history, and observers must not turn those into metric labels.
//!
//! Imports nothing of the crate but [`super`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{QueueStats, Resource};

/// The running totals of one delta round (also its final report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundTally {
    /// Pages committed.
    pub pages: usize,
    /// Items read.
    pub items: usize,
    /// Changes queued.
    pub enqueued: usize,
    /// Whether it is a full enumeration.
    pub full: bool,
    /// Deletes held by the threshold.
    pub held_deletes: usize,
    /// Resyncs forced by Graph during the round.
    pub resyncs: usize,
}

/// How a group's net change ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupOutcome {
    /// AD confirmed it.
    Applied,
    /// It kept failing transiently; the changes stay queued.
    Retrying {
        /// Bounded error class.
        class: &'static str,
        /// The error (the service's own message: never a secret).
        error: String,
    },
    /// It failed permanently; the changes became dead letters.
    DeadLettered {
        /// Bounded error class.
        class: &'static str,
        /// The error.
        error: String,
    },
}

/// A change in the number of groups the service owns in AD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagedGroups {
    /// Counted afresh.
    Counted(u64),
    /// One created.
    Created,
    /// One deleted.
    Deleted,
}

/// One fact the domain reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A Graph HTTP request ended: `status_class` is `2xx`..`5xx`, or `error` (transport).
    GraphRequest {
        /// `token`, `users_delta`, `groups_delta`, `group_get`, `deleted_item_get`,
        /// `sync_behavior_get`.
        endpoint: &'static str,
        /// The answer's class.
        status_class: &'static str,
    },
    /// Graph answered 429/503/504.
    GraphThrottled {
        /// Which endpoint.
        endpoint: &'static str,
    },
    /// The client waited because Graph sent `Retry-After`.
    GraphRetryAfter {
        /// How long.
        waited: Duration,
    },
    /// A failed attempt will be retried.
    Retry {
        /// `graph` or `ad`.
        stage: &'static str,
    },
    /// A point lookup of one group's cloud state ended.
    GroupLookup {
        /// `live`, `soft_deleted`, `purged` or `error`.
        result: &'static str,
    },
    /// A delta page was committed (and flushed).
    PageCommitted {
        /// Which stream.
        resource: Resource,
        /// The round so far.
        round: RoundTally,
    },
    /// A delta round ended.
    RoundFinished {
        /// Which stream.
        resource: Resource,
        /// How long it took.
        duration: Duration,
        /// Its report, or why it failed.
        outcome: Result<RoundTally, String>,
    },
    /// A poll cycle (users, then groups) completed.
    CycleSucceeded,
    /// Changes were queued.
    ChangesEnqueued {
        /// `upsert`, `reconcile`, `delete`, `sweep`.
        kind: &'static str,
        /// How many.
        count: u64,
    },
    /// Members were not written to AD.
    MembersSkipped {
        /// `cloud_only`, `unresolved`, `unsupported_type`, `not_in_scope`.
        reason: &'static str,
        /// How many.
        count: u64,
    },
    /// An LDAP operation ended.
    AdOperation {
        /// `bind`, `search`, `add`, `modify`, `modrdn`, `delete`.
        op: &'static str,
        /// Whether it succeeded.
        ok: bool,
        /// How long it took.
        duration: Duration,
    },
    /// AD answered (a bind or an operation succeeded), or could not be reached.
    AdReachable {
        /// Which.
        up: bool,
    },
    /// An ownership or naming conflict kept a group (for `proxy_address`, one of its addresses)
    /// from being written.
    Conflict {
        /// `name`, `sam_account_name`, `anchor_mismatch`, `duplicate_anchor`, `adopt` (a
        /// source-converted group whose original cannot be adopted), `proxy_address` (an address
        /// held by an object we do not own: the group is written without it).
        kind: &'static str,
    },
    /// The count of groups owned in AD changed.
    ManagedGroups(ManagedGroups),
    /// Reconciliation corrected drift.
    ReconcileCorrection {
        /// `attribute`, `member_add`, `member_remove`, `orphan`.
        kind: &'static str,
        /// How many.
        count: u64,
    },
    /// A destructive action was cancelled when re-checked at execution.
    DeleteCancelled {
        /// `wanted`, `live_in_cloud`, `disagreement`.
        reason: &'static str,
    },
    /// The worker finished one group's coalesced change.
    GroupFinished {
        /// Cloud object id (`*` for a sweep).
        group_id: String,
        /// `upsert`, `reconcile`, `delete`, `sweep`.
        work: &'static str,
        /// When Graph showed each change covered (Unix ms): the start of replication lag.
        seen_ms: Vec<u64>,
        /// Time spent applying, retries included.
        duration: Duration,
        /// How it ended.
        outcome: GroupOutcome,
    },
    /// A group's change failed transiently and will be retried at once.
    ChangeRetried,
    /// Another tool reverted, within the detection window, a write the service had already
    /// repeated once: the group is frozen (not written) until `approve-writes`.
    SecondWriter {
        /// Cloud object id (for the log and status page; never a metric label).
        group_id: String,
        /// `attribute` or `member`.
        kind: &'static str,
    },
    /// Groups waiting out their own backoff.
    ParkedGroups {
        /// How many.
        count: usize,
    },
    /// Quarantine entered or left.
    Quarantine {
        /// Whether it is in force now.
        active: bool,
    },
    /// The state store failed, or works again.
    Storage {
        /// Whether it is failing now.
        failed: bool,
    },
    /// The queue's counts, read afresh.
    Queue(QueueStats),
}

/// A receiver of events.
pub trait Observer: Send + Sync {
    /// Takes note of `event`. Must be quick and must not block on I/O.
    fn observe(&self, event: &Event);
}

/// The handle domain code reports through. Cheap to clone.
#[derive(Clone)]
pub struct Events(Arc<dyn Observer>);

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Events")
    }
}

struct Nobody;

impl Observer for Nobody {
    fn observe(&self, _: &Event) {}
}

/// Every observer of a list, in order.
struct Fanout(Vec<Arc<dyn Observer>>);

impl Observer for Fanout {
    fn observe(&self, event: &Event) {
        for o in &self.0 {
            o.observe(event);
        }
    }
}

impl Events {
    /// Events that go nowhere (for `plan`, benchmarks, tests).
    pub fn none() -> Events {
        Events(Arc::new(Nobody))
    }

    /// Events delivered to each of `observers`, in order.
    pub fn to(observers: Vec<Arc<dyn Observer>>) -> Events {
        Events(Arc::new(Fanout(observers)))
    }

    /// Reports `event`.
    pub fn emit(&self, event: Event) {
        self.0.observe(&event);
    }
}

/// An observer that keeps every event, for tests to assert on.
#[derive(Default)]
pub struct Recorded(Mutex<Vec<Event>>);

impl Recorded {
    /// A fresh recorder and the handle that feeds it.
    pub fn new() -> (Arc<Recorded>, Events) {
        let r = Arc::new(Recorded::default());
        let events = Events::to(vec![r.clone() as Arc<dyn Observer>]);
        (r, events)
    }

    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Observer for Recorded {
    fn observe(&self, event: &Event) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_observer_sees_each_event_in_order() {
        let (a, _) = Recorded::new();
        let (b, _) = Recorded::new();
        let events = Events::to(vec![a.clone(), b.clone()]);
        events.emit(Event::CycleSucceeded);
        events.emit(Event::Retry { stage: "ad" });
        let want = vec![Event::CycleSucceeded, Event::Retry { stage: "ad" }];
        assert_eq!(a.events(), want);
        assert_eq!(b.events(), want);
        Events::none().emit(Event::CycleSucceeded);
    }
}
