//! The worker: takes pending changes, coalesces each group's changes into one net piece of
//! work, applies independent groups concurrently (never one group twice at once), retries
//! transient failures with exponential backoff, dead-letters permanent ones, and acks
//! (journals) a change only after AD has confirmed it, group-committing the acks of slots that
//! finish together ([`super::acks`]).
//!
//! Continuous, with no batch barrier: `[sync] concurrency` slots, each taking the next waiting
//! group as soon as it is free, alternating between the oldest waiting groups and the newest
//! (so a change made now never waits behind a bulk of older ones, such as an initial sync). A
//! large group's member writes go in batches inside its own slot, so it holds nobody behind
//! it. When many groups wait, the applier lists the owned groups once for the whole pass
//! ([`Applier::begin_bulk`]).
//!
//! One stuck group never stalls the others: a group that keeps failing transiently (a busy or
//! slow object, a Graph lookup that fails) is *parked* with its own backoff and its changes stay
//! queued while every other group proceeds. Only systemic failure (AD unreachable, bind refused,
//! the target OU gone, the store failing) stops the pass, which the caller turns into a pause
//! and, if it lasts, quarantine.
//!
//! # Guarantees
//! - A change is acked only after AD confirmed it; a permanent failure dead-letters it with its
//!   error class and text; a transient one leaves it queued.
//! - A group is never applied by two tasks at once. The changes of it seen together are
//!   applied as one coalesced piece of work; each apply converges the group to what the mirror
//!   says *now* (and destructive work is re-checked against the mirror and the cloud), so the
//!   order in which a group's changes are taken never changes the result.
//! - Everything it does is reported through the [`Events`] handed in at construction
//!   ([`Event::GroupFinished`], [`Event::Retry`], [`Event::ParkedGroups`], [`Event::Queue`]).
//!
//! Imports: [`crate::config`], [`crate::directory`] (the applier over the [`Ldap`] seam),
//! [`crate::queue`], [`crate::model`], [`super::sleep_or_stop`], [`super::acks`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::Retryable;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::SyncConfig;
use crate::directory::apply::{self, Applier, ApplyError, Work};
use crate::directory::{Connection, Ldap};
use crate::model::event::GroupOutcome;
use crate::model::{Change, Event, Events};
use crate::queue::{QueueError, Store};
use crate::sync::acks::AckCommit;
use crate::sync::quarantine::Quarantine;
use lanes::Lanes;

/// Changes read from the queue per window.
const BATCH: usize = 1024;

/// Changes the newest lane takes per look.
const NEWEST: usize = 32;

/// Entries from the end of the queue the newest lane looks at.
const NEWEST_SCAN: usize = 256;

/// How soon a free slot looks for newly queued groups while other applies run.
const REFILL: Duration = Duration::from_millis(100);

/// How long the oldest lane works from one window before reading it again: the queue's head
/// moves under it (a round's closing reconciles supersede the upserts it holds, and a change
/// listed late in a large round becomes the oldest), and a read of one window costs about a
/// millisecond.
const WINDOW_MAX_AGE: Duration = Duration::from_secs(1);

/// Groups waiting in one window that make a bulk pass: the owned groups are listed once
/// instead of searched for one by one.
const BULK_GROUPS: usize = 64;

/// Why draining stopped early.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A group kept failing transiently (AD unreachable, say); its changes stay queued.
    #[error("giving up for now after {attempts} attempts on group {group}: {source}")]
    Exhausted {
        /// The group.
        group: String,
        /// Tries made.
        attempts: u32,
        /// The last error.
        #[source]
        source: ApplyError,
    },
    /// The queue itself failed.
    #[error(transparent)]
    Store(#[from] QueueError),
}

impl WorkerError {
    /// Whether waiting may help.
    pub fn is_transient(&self) -> bool {
        match self {
            WorkerError::Exhausted { .. } => true,
            WorkerError::Store(e) => e.is_transient(),
        }
    }
}

/// Totals of a drain.
#[derive(Debug, Default, Clone, Copy)]
pub struct DrainReport {
    /// Changes acked.
    pub applied: usize,
    /// Changes dead-lettered.
    pub dead: usize,
    /// Groups worked on.
    pub groups: usize,
    /// Groups parked (their changes stay queued) when the drain ended.
    pub parked: usize,
}

/// A group waiting out its own backoff.
#[derive(Debug, Clone, Copy)]
struct Parked {
    until: Instant,
    delay: Duration,
}

/// Applies queued changes to AD, over any [`Ldap`].
#[derive(Clone)]
pub struct Worker<L = Connection> {
    store: Store,
    /// Acks of the slots, committed together when they finish at once.
    acks: Arc<AckCommit>,
    applier: Applier<L>,
    retry: SyncConfig,
    events: Events,
    parked: Arc<Mutex<HashMap<String, Parked>>>,
}

enum GroupResult {
    Applied(usize),
    Dead(usize),
    /// This group keeps failing transiently; it waits, the others go on.
    Parked,
    /// Something every group needs is failing.
    Stuck(WorkerError),
}

/// Whether an error concerns every group (AD unreachable, bind refused, target OU gone, the
/// store failing) rather than the one being applied.
fn systemic(e: &ApplyError) -> bool {
    match e {
        ApplyError::Directory(d) => d.is_systemic(),
        ApplyError::Store(_) => true,
        ApplyError::Graph(_) | ApplyError::MemberLimit { .. } => false,
    }
}

impl<L: Ldap> Worker<L> {
    /// A worker over `store` applying through `applier`, reporting through `events`.
    pub fn new(store: Store, applier: Applier<L>, retry: SyncConfig, events: Events) -> Worker<L> {
        Worker {
            acks: Arc::new(AckCommit::new(store.clone())),
            store,
            applier,
            retry,
            events,
            parked: Arc::default(),
        }
    }

    /// Groups still parked now (expired entries stay, so the next failure backs off longer).
    fn parked_now(&self) -> HashSet<String> {
        let now = Instant::now();
        let parked = self.parked.lock().expect("not poisoned");
        self.events.emit(Event::ParkedGroups {
            count: parked.len(),
        });
        parked
            .iter()
            .filter(|(_, p)| p.until > now)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Parks a group with a backoff that doubles on every consecutive park.
    fn park(&self, gid: &str) -> Duration {
        let floor = self.retry.min_backoff.max(Duration::from_secs(1));
        let ceiling = self.retry.max_backoff.max(floor);
        let mut parked = self.parked.lock().expect("not poisoned");
        let delay = parked
            .get(gid)
            .map_or(floor, |p| (p.delay * 2).clamp(floor, ceiling));
        parked.insert(
            gid.to_string(),
            Parked {
                until: Instant::now() + delay,
                delay,
            },
        );
        delay
    }

    fn unpark(&self, gid: &str) {
        self.parked.lock().expect("not poisoned").remove(gid);
    }

    /// Applies pending changes until the queue is empty, `stop` is set, or a group stays stuck
    /// on transient errors after `max_attempts` (then the changes stay queued and the error is
    /// returned).
    ///
    /// Continuous: up to `[sync] concurrency` groups are in flight, and a free slot takes the
    /// next waiting group at once (no batch barrier), so a large group being written never
    /// holds other groups' changes behind it. A group is never applied twice at once: its
    /// later changes wait until its apply in flight has finished.
    pub async fn drain(&self, stop: &CancellationToken) -> Result<DrainReport, WorkerError> {
        let mut report = DrainReport::default();
        let slots = self.retry.concurrency.max(1);
        let mut tasks: JoinSet<(String, GroupResult)> = JoinSet::new();
        let mut in_flight: HashSet<String> = HashSet::new();
        let mut lanes = Lanes::default();
        let mut stuck = None;
        let mut emptied = false;
        loop {
            let dispatching = !stop.is_cancelled() && stuck.is_none();
            if dispatching && tasks.len() < slots {
                let stale = lanes
                    .window_read
                    .is_some_and(|t| t.elapsed() >= WINDOW_MAX_AGE);
                if lanes.oldest.is_empty() || stale {
                    lanes.oldest = self.next_window(&in_flight).await?;
                    lanes.window_read = Some(Instant::now());
                }
                self.look_at_newest(&mut lanes, &in_flight)?;
                emptied = lanes.is_empty() && in_flight.is_empty();
            }
            while dispatching && tasks.len() < slots {
                let Some((gid, changes)) = lanes.next() else {
                    break;
                };
                in_flight.insert(gid.clone());
                self.spawn_apply(&mut tasks, gid, changes);
            }
            let free = dispatching && tasks.len() < slots && !tasks.is_empty();
            let joined = tokio::select! {
                joined = tasks.join_next() => joined,
                // A slot is free while others are busy: look for newly queued groups soon,
                // so a long apply (a large group) holds nobody behind it.
                _ = tokio::time::sleep(REFILL), if free => continue,
            };
            let Some(joined) = joined else {
                break;
            };
            let (gid, result) = joined.expect("apply task panicked");
            in_flight.remove(&gid);
            report.groups += 1;
            match result {
                GroupResult::Applied(n) => report.applied += n,
                GroupResult::Dead(n) => report.dead += n,
                GroupResult::Parked => {}
                GroupResult::Stuck(e) => stuck = Some(e),
            }
        }
        if emptied {
            // Nothing waits any more: a bulk pass is over.
            self.applier.end_bulk().await;
        }
        report.parked = self.parked_now().len();
        self.publish_stats();
        match stuck {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// The next waiting groups, oldest first, skipping parked groups and groups in flight;
    /// enough of them turn a bulk pass on ([`Applier::begin_bulk`]).
    async fn next_window(
        &self,
        in_flight: &HashSet<String>,
    ) -> Result<VecDeque<(String, Vec<(u64, Change)>)>, WorkerError> {
        let mut skip = self.parked_now();
        skip.extend(in_flight.iter().cloned());
        let window = crate::queue::group_batch(self.store.pending_batch_excluding(BATCH, &skip)?);
        if window.len() >= BULK_GROUPS && !self.applier.in_bulk().await {
            tracing::info!(groups = window.len(), "many groups waiting: bulk pass");
            self.applier.begin_bulk().await;
        }
        if !window.is_empty() {
            self.publish_stats();
        }
        Ok(window.into())
    }

    /// Refreshes the newest lane (at most every [`REFILL`]): the newest waiting groups that
    /// are neither in flight nor parked.
    fn look_at_newest(
        &self,
        lanes: &mut Lanes,
        in_flight: &HashSet<String>,
    ) -> Result<(), WorkerError> {
        if lanes.looked.is_some_and(|t| t.elapsed() < REFILL) {
            return Ok(());
        }
        lanes.looked = Some(Instant::now());
        let mut skip = self.parked_now();
        skip.extend(in_flight.iter().cloned());
        let newest = self.store.newest_pending(NEWEST, NEWEST_SCAN, &skip)?;
        let mut newest = crate::queue::group_batch(newest);
        for (_, changes) in &mut newest {
            changes.reverse(); // oldest first, as everywhere
        }
        lanes.newest = newest.into();
        Ok(())
    }

    /// Starts applying one group's changes in its own task.
    fn spawn_apply(
        &self,
        tasks: &mut JoinSet<(String, GroupResult)>,
        gid: String,
        changes: Vec<(u64, Change)>,
    ) {
        let me = self.clone();
        let span = tracing::info_span!(
            "apply",
            group = apply::describe(&gid),
            changes = changes.len()
        );
        tasks.spawn(
            async move {
                let r = me.apply_group(&gid, changes).await;
                (gid, r)
            }
            .instrument(span),
        );
    }

    async fn apply_group(&self, gid: &str, changes: Vec<(u64, Change)>) -> GroupResult {
        let seqs: Vec<u64> = changes.iter().map(|(s, _)| *s).collect();
        let Some(work) = Work::coalesce(changes.iter().map(|(_, c)| &c.kind)) else {
            return GroupResult::Applied(0);
        };
        let started = Instant::now();
        let result = self.apply_with_retries(gid, &work).await;
        let finished = |outcome| {
            self.events.emit(Event::GroupFinished {
                group_id: gid.to_string(),
                work: work_label(&work),
                seen_ms: changes.iter().map(|(_, c)| c.seen_ms).collect(),
                duration: started.elapsed(),
                outcome,
            })
        };
        match result {
            Ok(()) => {
                if let Err(e) = self.acks.ack(&seqs).await {
                    return GroupResult::Stuck(e.into());
                }
                self.unpark(gid);
                finished(GroupOutcome::Applied);
                tracing::info!(work = work_label(&work), "applied");
                // Sequence numbers let tests count re-applications after a crash.
                tracing::debug!(seqs = ?seqs, "acked");
                GroupResult::Applied(seqs.len())
            }
            Err(e) if e.is_transient() => {
                finished(GroupOutcome::Retrying {
                    class: e.class(),
                    error: e.to_string(),
                });
                if systemic(&e) {
                    return GroupResult::Stuck(WorkerError::Exhausted {
                        group: gid.to_string(),
                        attempts: self.retry.max_attempts,
                        source: e,
                    });
                }
                let wait = self.park(gid);
                tracing::warn!(
                    error = %e,
                    park_ms = wait.as_millis() as u64,
                    "group parked after repeated transient failures; other groups proceed"
                );
                GroupResult::Parked
            }
            Err(e) => {
                tracing::error!(error = %e, class = e.class(), "change failed permanently; dead-lettered");
                if let Err(se) = self.store.dead_letter(&seqs, &e.to_string(), e.class()) {
                    return GroupResult::Stuck(se.into());
                }
                finished(GroupOutcome::DeadLettered {
                    class: e.class(),
                    error: e.to_string(),
                });
                GroupResult::Dead(seqs.len())
            }
        }
    }

    /// Applies `work`, retrying transient failures with exponential backoff (`[sync]`
    /// attempts and delays); every retry is reported.
    async fn apply_with_retries(&self, gid: &str, work: &Work) -> Result<(), ApplyError> {
        (|| self.applier.apply(gid, work))
            .retry(self.retry.backoff(Duration::ZERO))
            .when(ApplyError::is_transient)
            .notify(|e, d| {
                self.events.emit(Event::Retry { stage: "ad" });
                self.events.emit(Event::ChangeRetried);
                tracing::warn!(error = %e, wait_ms = d.as_millis() as u64, "applying failed; retrying");
            })
            .await
    }

    /// Reports the queue's counts ([`Event::Queue`]); a store that cannot be read is reported
    /// as failing ([`Event::Storage`]).
    pub fn publish_stats(&self) {
        match self.store.stats() {
            Ok(s) => self.events.emit(Event::Queue(s)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read queue stats");
                self.events.emit(Event::Storage { failed: true });
            }
        }
    }

    /// Runs until `stop`: drains whenever woken (or every second), backing off while stuck and
    /// slowing to the quarantine cadence after repeated failures.
    pub async fn run(
        &self,
        wake: Arc<Notify>,
        stop: CancellationToken,
        quarantine: Arc<Quarantine>,
    ) {
        let mut pause = Duration::ZERO;
        loop {
            if stop.is_cancelled() {
                return;
            }
            if !pause.is_zero() && super::sleep_or_stop(pause, &stop).await {
                return;
            }
            match self.drain(&stop).await {
                Ok(r) => {
                    pause = Duration::ZERO;
                    if r.applied > 0 {
                        quarantine.success();
                    }
                }
                Err(e) => {
                    quarantine.failure();
                    pause = quarantine.cadence((pause * 2).clamp(
                        self.retry.min_backoff.max(Duration::from_secs(1)),
                        self.retry.max_backoff,
                    ));
                    tracing::warn!(error = %e, pause_ms = pause.as_millis() as u64, "worker paused; changes stay queued");
                    continue;
                }
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.cancelled() => {}
            }
        }
    }
}

fn work_label(w: &Work) -> &'static str {
    match w {
        Work::Converge { full: true, .. } => "reconcile",
        Work::Converge { .. } => "upsert",
        Work::Delete(_) => "delete",
        Work::Sweep => "sweep",
    }
}

#[cfg(test)]
#[path = "worker_bulk_tests.rs"]
mod bulk_tests;
#[cfg(test)]
#[path = "worker_lab.rs"]
mod lab;
#[path = "worker_lanes.rs"]
mod lanes;
#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
