//! What the service did lately, for the status page (`/`) and `/status.json`: an
//! [`Observer`] of the domain's events.
//!
//! The [`Recorder`] keeps the last [`ROUNDS_KEPT`] rounds and [`CHANGES_KEPT`] applied changes
//! in memory, in ring buffers (a restart forgets them: the journal and the dead letters in the
//! store are the durable record), the rounds in flight, and counters since start. `http`
//! joins that with the queue and readiness into the one snapshot the page renders.
//!
//! Nothing here holds a secret: error texts are the service's own error messages, which never
//! carry credentials (see `config::Secret`).
//!
//! # May import
//! [`crate::model`] only.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::model::event::{Event, GroupOutcome, ManagedGroups, Observer, RoundTally};
use crate::model::now_ms;

/// Delta rounds remembered for the status page (empty incremental ones are only counted).
pub const ROUNDS_KEPT: usize = 50;
/// Applied (or failed) group changes remembered for the status page.
pub const CHANGES_KEPT: usize = 100;

/// One finished delta round.
#[derive(Debug, Clone, Serialize)]
pub struct RoundEntry {
    /// When it ended (Unix ms).
    pub finished_ms: u64,
    /// `users` or `groups`.
    pub resource: &'static str,
    /// `full` (an enumeration), `incremental`, or `unknown` (failed before the first page).
    pub kind: &'static str,
    /// `ok`, `resync` (Graph forced a full resync during it) or `error`.
    pub result: &'static str,
    /// Pages committed.
    pub pages: usize,
    /// Items read.
    pub items: usize,
    /// Changes queued.
    pub enqueued: usize,
    /// Deletes held back by the delete threshold.
    pub held_deletes: usize,
    /// Wall time.
    pub duration_ms: u64,
    /// Why it failed.
    pub error: Option<String>,
}

/// What happened to one group's net change (the worker coalesces a group's pending changes).
#[derive(Debug, Clone, Serialize)]
pub struct ChangeEntry {
    /// When the outcome was known (Unix ms).
    pub at_ms: u64,
    /// Cloud object id (`*` for a sweep over all groups).
    pub group_id: String,
    /// The group's display name from the mirror, filled in when a snapshot is taken.
    pub group_name: Option<String>,
    /// `upsert`, `reconcile`, `delete` or `sweep`.
    pub work: &'static str,
    /// Queued changes it covered.
    pub changes: usize,
    /// `applied`, `dead_letter`, or `retrying` (gave up for now; the changes stay queued).
    pub outcome: &'static str,
    /// Replication lag of its oldest change: seen in Graph → confirmed by AD.
    pub lag_ms: Option<u64>,
    /// Time spent applying, retries included.
    pub duration_ms: u64,
    /// Bounded error class, as in metrics.
    pub error_class: Option<&'static str>,
    /// The error.
    pub error: Option<String>,
}

/// A delta round still running.
#[derive(Debug, Clone, Serialize)]
pub struct InFlight {
    /// `users` or `groups`.
    pub resource: &'static str,
    /// Whether it is a full enumeration.
    pub full: bool,
    /// When its first page was committed (Unix ms).
    pub started_ms: u64,
    /// Pages committed so far.
    pub pages: usize,
    /// Items read so far.
    pub items: usize,
    /// Changes queued so far.
    pub enqueued: usize,
}

/// Incremental rounds that found nothing: counted, not listed (a poll every `poll_interval`
/// would otherwise push every interesting round out of the history within minutes).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QuietRounds {
    /// How many since start.
    pub count: u64,
    /// When the latest ended (Unix ms).
    pub last_ms: Option<u64>,
}

impl RoundEntry {
    /// An incremental round that succeeded and read nothing.
    pub fn is_quiet(&self) -> bool {
        self.kind == "incremental" && self.result == "ok" && self.items == 0
    }
}

/// The status page's memory of recent work: an [`Observer`].
pub struct Recorder {
    started_ms: u64,
    state: Mutex<History>,
}

#[derive(Default)]
struct History {
    /// Rounds that read something, failed, resynced or enumerated.
    rounds: VecDeque<RoundEntry>,
    quiet: QuietRounds,
    changes: VecDeque<ChangeEntry>,
    in_flight: BTreeMap<&'static str, InFlight>,
    totals: Totals,
    ad_up: bool,
    last_cycle_ms: Option<u64>,
}

fn push<T>(q: &mut VecDeque<T>, cap: usize, v: T) {
    if q.len() == cap {
        q.pop_front();
    }
    q.push_back(v);
}

impl History {
    fn page(&mut self, resource: &'static str, so_far: &RoundTally) {
        let e = self.in_flight.entry(resource).or_insert_with(|| InFlight {
            resource,
            full: so_far.full,
            started_ms: now_ms(),
            pages: 0,
            items: 0,
            enqueued: 0,
        });
        e.full = so_far.full;
        e.pages = so_far.pages;
        e.items = so_far.items;
        e.enqueued = so_far.enqueued;
    }

    fn round_finished(
        &mut self,
        resource: &'static str,
        duration: Duration,
        outcome: &Result<RoundTally, String>,
    ) {
        let flight = self.in_flight.remove(resource);
        let duration_ms = duration.as_millis() as u64;
        let entry = match outcome {
            Ok(rep) => RoundEntry {
                finished_ms: now_ms(),
                resource,
                kind: if rep.full { "full" } else { "incremental" },
                result: if rep.resyncs > 0 { "resync" } else { "ok" },
                pages: rep.pages,
                items: rep.items,
                enqueued: rep.enqueued,
                held_deletes: rep.held_deletes,
                duration_ms,
                error: None,
            },
            Err(e) => {
                self.totals.failed_rounds += 1;
                RoundEntry {
                    finished_ms: now_ms(),
                    resource,
                    kind: match &flight {
                        Some(f) if f.full => "full",
                        Some(_) => "incremental",
                        None => "unknown",
                    },
                    result: "error",
                    pages: flight.as_ref().map_or(0, |f| f.pages),
                    items: flight.as_ref().map_or(0, |f| f.items),
                    enqueued: flight.as_ref().map_or(0, |f| f.enqueued),
                    held_deletes: 0,
                    duration_ms,
                    error: Some(e.clone()),
                }
            }
        };
        if entry.is_quiet() {
            self.quiet.count += 1;
            self.quiet.last_ms = Some(entry.finished_ms);
        } else {
            push(&mut self.rounds, ROUNDS_KEPT, entry);
        }
    }

    fn group_finished(
        &mut self,
        group_id: &str,
        work: &'static str,
        seen_ms: &[u64],
        duration: Duration,
        outcome: &GroupOutcome,
    ) {
        let now = now_ms();
        let n = seen_ms.len();
        let (label, lag_ms, error_class, error) = match outcome {
            GroupOutcome::Applied => {
                self.totals.applied += n as u64;
                let oldest = seen_ms.iter().min();
                (
                    "applied",
                    oldest.map(|t| now.saturating_sub(*t)),
                    None,
                    None,
                )
            }
            GroupOutcome::Retrying { class, error } => {
                ("retrying", None, Some(*class), Some(error.clone()))
            }
            GroupOutcome::DeadLettered { class, error } => {
                self.totals.dead_lettered += n as u64;
                ("dead_letter", None, Some(*class), Some(error.clone()))
            }
        };
        let entry = ChangeEntry {
            at_ms: now,
            group_id: group_id.to_string(),
            group_name: None,
            work,
            changes: n,
            outcome: label,
            lag_ms,
            duration_ms: duration.as_millis() as u64,
            error_class,
            error,
        };
        push(&mut self.changes, CHANGES_KEPT, entry);
    }

    fn observe(&mut self, event: &Event) {
        match event {
            Event::PageCommitted { resource, round } => self.page(resource.as_str(), round),
            Event::RoundFinished {
                resource,
                duration,
                outcome,
            } => self.round_finished(resource.as_str(), *duration, outcome),
            Event::GroupFinished {
                group_id,
                work,
                seen_ms,
                duration,
                outcome,
            } => self.group_finished(group_id, work, seen_ms, *duration, outcome),
            Event::ChangesEnqueued { count, .. } => self.totals.enqueued += count,
            Event::Retry { .. } => self.totals.retries += 1,
            Event::Conflict { .. } => self.totals.conflicts += 1,
            Event::ManagedGroups(ManagedGroups::Counted(n)) => {
                self.totals.managed_groups = *n as i64
            }
            Event::ManagedGroups(ManagedGroups::Created) => self.totals.managed_groups += 1,
            Event::ManagedGroups(ManagedGroups::Deleted) => self.totals.managed_groups -= 1,
            Event::AdReachable { up } => self.ad_up = *up,
            Event::CycleSucceeded => self.last_cycle_ms = Some(now_ms()),
            _ => {}
        }
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty history; the process start is now.
    pub fn new() -> Recorder {
        Recorder {
            started_ms: now_ms(),
            state: Mutex::default(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut History) -> R) -> R {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// What the recorder knows, for the status snapshot (group names are filled in by `http`).
    pub fn recent(&self) -> Recent {
        self.with(|h| Recent {
            started_ms: self.started_ms,
            rounds: h.rounds.iter().rev().cloned().collect(),
            quiet_rounds: h.quiet,
            changes: h.changes.iter().rev().cloned().collect(),
            lag: LagSummary::of(&h.changes),
            in_flight: h.in_flight.values().cloned().collect(),
            totals: h.totals.clone(),
            ad_up: h.ad_up,
            last_successful_round_ms: h.last_cycle_ms,
        })
    }
}

impl Observer for Recorder {
    fn observe(&self, event: &Event) {
        self.with(|h| h.observe(event));
    }
}

/// The recorder's part of the status snapshot.
#[derive(Debug, Clone)]
pub struct Recent {
    /// When the process started (Unix ms).
    pub started_ms: u64,
    /// Recent rounds, newest first.
    pub rounds: Vec<RoundEntry>,
    /// Empty incremental rounds.
    pub quiet_rounds: QuietRounds,
    /// Recent group changes, newest first.
    pub changes: Vec<ChangeEntry>,
    /// Replication lag of those changes.
    pub lag: LagSummary,
    /// Rounds still running.
    pub in_flight: Vec<InFlight>,
    /// Counters since start.
    pub totals: Totals,
    /// Whether the last AD attempt succeeded.
    pub ad_up: bool,
    /// When the last poll cycle succeeded (Unix ms).
    pub last_successful_round_ms: Option<u64>,
}

/// Replication lag over the recently applied changes.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LagSummary {
    /// Changes the figures are taken from.
    pub samples: usize,
    /// The most recent one.
    pub last_ms: Option<u64>,
    /// Median.
    pub p50_ms: Option<u64>,
    /// 95th percentile.
    pub p95_ms: Option<u64>,
    /// Worst.
    pub max_ms: Option<u64>,
}

impl LagSummary {
    fn of(changes: &VecDeque<ChangeEntry>) -> LagSummary {
        let mut lags: Vec<u64> = changes.iter().filter_map(|c| c.lag_ms).collect();
        let last_ms = lags.last().copied();
        lags.sort_unstable();
        // Nearest-rank percentile.
        let pct = |p: f64| {
            (!lags.is_empty()).then(|| {
                let rank = ((p * lags.len() as f64).ceil() as usize).clamp(1, lags.len());
                lags[rank - 1]
            })
        };
        LagSummary {
            samples: lags.len(),
            last_ms,
            p50_ms: pct(0.5),
            p95_ms: pct(0.95),
            max_ms: lags.last().copied(),
        }
    }
}

/// Counters since the process started.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct Totals {
    /// Changes AD confirmed.
    pub applied: u64,
    /// Changes dead-lettered.
    pub dead_lettered: u64,
    /// Changes queued.
    pub enqueued: u64,
    /// Retries, all stages.
    pub retries: u64,
    /// Delta rounds that failed.
    pub failed_rounds: u64,
    /// Ownership and naming conflicts.
    pub conflicts: u64,
    /// Groups the service owns in AD (last count).
    pub managed_groups: i64,
}

#[cfg(test)]
mod tests;
