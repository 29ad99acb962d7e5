//! What the service did lately, for the status page (`/`) and `/status.json`.
//!
//! The poller and the worker report every committed page, every finished delta round and every
//! group they applied (or dead-lettered, or gave up on for now) through the free functions of
//! this module: one-line hooks, process-wide like [`crate::metrics`]. The last [`ROUNDS_KEPT`]
//! rounds and [`CHANGES_KEPT`] applied changes are kept in memory, in ring buffers: a restart
//! forgets them (the journal and the dead letters in the store are the durable record).
//!
//! [`Snapshot::collect`] joins that history with the queue ([`Store::stats`],
//! [`Store::list_dead`]), readiness ([`Health`]) and the counters into the one view that the
//! status page renders and `/status.json` serves.
//!
//! Nothing here holds a secret: error texts are the service's own error messages, which never
//! carry credentials (see `config::Secret`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Config;
use crate::directory::ApplyError;
use crate::health::Health;
use crate::metrics;
use crate::model::event::RoundTally;
use crate::model::{ALL_GROUPS, Change, QueueStats, now_ms};
use crate::queue::Store;

/// Delta rounds remembered for the status page (empty incremental ones are only counted).
pub const ROUNDS_KEPT: usize = 50;
/// Applied (or failed) group changes remembered for the status page.
pub const CHANGES_KEPT: usize = 100;
/// Dead letters listed on the status page (the count is always exact).
pub const DEAD_SHOWN: usize = 50;

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

#[derive(Default)]
struct Recorder {
    /// Rounds that read something, failed, resynced or enumerated.
    rounds: VecDeque<RoundEntry>,
    quiet: QuietRounds,
    changes: VecDeque<ChangeEntry>,
    in_flight: BTreeMap<&'static str, InFlight>,
}

fn recorder() -> &'static Mutex<Recorder> {
    static R: OnceLock<Mutex<Recorder>> = OnceLock::new();
    R.get_or_init(Default::default)
}

fn with<R>(f: impl FnOnce(&mut Recorder) -> R) -> R {
    let mut g = recorder().lock().unwrap_or_else(|p| p.into_inner());
    f(&mut g)
}

fn push<T>(q: &mut VecDeque<T>, cap: usize, v: T) {
    if q.len() == cap {
        q.pop_front();
    }
    q.push_back(v);
}

fn started_at() -> u64 {
    static T: OnceLock<u64> = OnceLock::new();
    *T.get_or_init(now_ms)
}

/// Hook: a delta page of `resource` was committed; `so_far` is the round's running total.
pub fn page(resource: &'static str, so_far: &RoundTally) {
    with(|r| {
        let e = r.in_flight.entry(resource).or_insert_with(|| InFlight {
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
    });
    crate::progress::page(resource, so_far);
}

/// Hook: a delta round of `resource` that took `duration` ended with `result` (its tally, or
/// its error as text).
pub fn round_finished(
    resource: &'static str,
    duration: Duration,
    result: &Result<RoundTally, String>,
) {
    let entry = with(|r| {
        let flight = r.in_flight.remove(resource);
        let entry = match result {
            Ok(rep) => RoundEntry {
                finished_ms: now_ms(),
                resource,
                kind: if rep.full { "full" } else { "incremental" },
                result: if rep.resyncs > 0 { "resync" } else { "ok" },
                pages: rep.pages,
                items: rep.items,
                enqueued: rep.enqueued,
                held_deletes: rep.held_deletes,
                duration_ms: duration.as_millis() as u64,
                error: None,
            },
            Err(e) => RoundEntry {
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
                duration_ms: duration.as_millis() as u64,
                error: Some(e.to_string()),
            },
        };
        if entry.is_quiet() {
            r.quiet.count += 1;
            r.quiet.last_ms = Some(entry.finished_ms);
        } else {
            push(&mut r.rounds, ROUNDS_KEPT, entry.clone());
        }
        entry
    });
    crate::progress::round_finished(&entry);
}

fn record_change(entry: ChangeEntry) {
    with(|r| push(&mut r.changes, CHANGES_KEPT, entry));
}

/// Hook: AD confirmed `changes` of group `group_id` (net work `work`), begun at `started`.
pub fn applied(group_id: &str, work: &'static str, changes: &[(u64, Change)], started: Instant) {
    let now = now_ms();
    let oldest = changes.iter().map(|(_, c)| c.seen_ms).min();
    record_change(ChangeEntry {
        at_ms: now,
        group_id: group_id.to_string(),
        group_name: None,
        work,
        changes: changes.len(),
        outcome: "applied",
        lag_ms: oldest.map(|t| now.saturating_sub(t)),
        duration_ms: started.elapsed().as_millis() as u64,
        error_class: None,
        error: None,
    });
    crate::progress::finished_changes(changes.len(), 0);
}

/// Hook: `n` changes of group `group_id` failed permanently and were dead-lettered.
pub fn dead_lettered(
    group_id: &str,
    work: &'static str,
    n: usize,
    error: &ApplyError,
    started: Instant,
) {
    failed(group_id, work, n, error, started, "dead_letter");
    crate::progress::finished_changes(0, n);
}

/// Hook: `n` changes of group `group_id` kept failing transiently; they stay queued.
pub fn gave_up_for_now(
    group_id: &str,
    work: &'static str,
    n: usize,
    error: &ApplyError,
    started: Instant,
) {
    failed(group_id, work, n, error, started, "retrying");
}

fn failed(
    group_id: &str,
    work: &'static str,
    n: usize,
    error: &ApplyError,
    started: Instant,
    outcome: &'static str,
) {
    record_change(ChangeEntry {
        at_ms: now_ms(),
        group_id: group_id.to_string(),
        group_name: None,
        work,
        changes: n,
        outcome,
        lag_ms: None,
        duration_ms: started.elapsed().as_millis() as u64,
        error_class: Some(error.class()),
        error: Some(error.to_string()),
    });
}

/// Static facts about this instance shown on the page (none of them secret).
#[derive(Debug, Clone, Serialize, Default)]
pub struct About {
    /// `[graph] tenant_id`.
    pub tenant_id: String,
    /// `[graph] graph_url`.
    pub graph_url: String,
    /// `[ad] url`.
    pub ad_url: String,
    /// `[ad] target_ou`.
    pub target_ou: String,
    /// `[graph] poll_interval`, seconds.
    pub poll_interval_secs: f64,
    /// `/readyz` freshness window, seconds.
    pub ready_window_secs: f64,
}

impl About {
    /// The facts of `cfg`, with the readiness window in use.
    pub fn new(cfg: &Config, ready_window: Duration) -> About {
        About {
            tenant_id: cfg.graph.tenant_id.clone(),
            graph_url: cfg.graph.graph_url.clone(),
            ad_url: cfg.ad.url.clone(),
            target_ou: cfg.ad.target_ou.clone(),
            poll_interval_secs: cfg.graph.poll_interval.as_secs_f64(),
            ready_window_secs: ready_window.as_secs_f64(),
        }
    }
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
#[derive(Debug, Clone, Serialize, Default)]
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

impl Totals {
    fn read() -> Totals {
        use prometheus::core::Collector;
        let m = metrics::get();
        // Sum every series of a counter family.
        let sum = |c: &dyn Collector| -> u64 {
            c.collect()
                .iter()
                .flat_map(|f| f.get_metric().iter())
                .map(|m| m.get_counter().get_value() as u64)
                .sum()
        };
        let failed_rounds = m
            .rounds
            .collect()
            .iter()
            .flat_map(|f| f.get_metric().iter())
            .filter(|s| {
                s.get_label()
                    .iter()
                    .any(|l| l.name() == "result" && l.value() == "error")
            })
            .map(|s| s.get_counter().get_value() as u64)
            .sum();
        Totals {
            applied: m.changes_applied.with_label_values(&["ok"]).get(),
            dead_lettered: m.dead_letters_total.get(),
            enqueued: sum(&m.changes_enqueued),
            retries: sum(&m.retries),
            failed_rounds,
            conflicts: sum(&m.conflicts),
            managed_groups: m.managed_groups.get(),
        }
    }
}

/// One dead letter, as the page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadEntry {
    /// Sequence number (`queue show SEQ`).
    pub seq: u64,
    /// Cloud object id.
    pub group_id: String,
    /// Display name from the mirror.
    pub group_name: Option<String>,
    /// The change's kind.
    pub kind: &'static str,
    /// Bounded error class.
    pub class: String,
    /// The error.
    pub error: String,
    /// When it was dead-lettered (Unix ms).
    pub at_ms: u64,
}

/// Everything the status page shows, at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Crate version.
    pub version: &'static str,
    /// When the snapshot was taken (Unix ms).
    pub now_ms: u64,
    /// When the process started (Unix ms).
    pub started_ms: u64,
    /// Instance facts.
    pub about: About,
    /// Whether `/readyz` answers 200.
    pub ready: bool,
    /// Why not, if not.
    pub not_ready: Vec<&'static str>,
    /// Whether the last AD bind / operation succeeded.
    pub ad_up: bool,
    /// When AD last answered (Unix ms).
    pub last_ad_ok_ms: Option<u64>,
    /// Whether the service is quarantined.
    pub quarantined: bool,
    /// When the last poll cycle (users and groups) succeeded (Unix ms).
    pub last_successful_round_ms: Option<u64>,
    /// Queue counts and ages; `None` if the store could not be read.
    pub queue: Option<QueueStats>,
    /// Why the store could not be read.
    pub queue_error: Option<String>,
    /// Replication lag of the recently applied changes.
    pub lag: LagSummary,
    /// Counters since start.
    pub totals: Totals,
    /// Rounds still running.
    pub in_flight: Vec<InFlight>,
    /// Initial sync progress, while one runs.
    pub initial_sync: Option<crate::progress::SyncSnapshot>,
    /// The oldest dead letters (at most [`DEAD_SHOWN`]).
    pub dead_letters: Vec<DeadEntry>,
    /// Recent rounds that read something, failed or enumerated, newest first.
    pub rounds: Vec<RoundEntry>,
    /// Empty incremental rounds (not in `rounds`).
    pub quiet_rounds: QuietRounds,
    /// Recent group changes, newest first.
    pub changes: Vec<ChangeEntry>,
}

impl Snapshot {
    /// Takes a snapshot. Reads the store (blocking, but quick): call from a blocking thread.
    pub fn collect(
        store: &Store,
        health: &Health,
        ready_window: Duration,
        about: &About,
    ) -> Snapshot {
        let readiness = health.readiness(ready_window);
        let (queue, queue_error) = match store.stats() {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let name_of = |id: &str| -> Option<String> {
            if id == ALL_GROUPS {
                return Some("(all groups)".into());
            }
            store.group(id).ok().flatten()?.props.display_name
        };
        let dead_letters = store
            .list_dead(DEAD_SHOWN)
            .unwrap_or_default()
            .into_iter()
            .map(|(seq, d)| DeadEntry {
                seq,
                group_name: name_of(&d.change.group_id),
                group_id: d.change.group_id,
                kind: d.change.kind.label(),
                class: d.class,
                error: d.error,
                at_ms: d.at_ms,
            })
            .collect();
        let (rounds, quiet_rounds, mut changes, lag, in_flight) = with(|r| {
            (
                r.rounds.iter().rev().cloned().collect::<Vec<_>>(),
                r.quiet,
                r.changes.iter().rev().cloned().collect::<Vec<_>>(),
                LagSummary::of(&r.changes),
                r.in_flight.values().cloned().collect::<Vec<_>>(),
            )
        });
        for c in &mut changes {
            c.group_name = name_of(&c.group_id);
        }
        let m = metrics::get();
        let last_round = m.last_round_ts.get();
        Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            now_ms: now_ms(),
            started_ms: started_at(),
            about: about.clone(),
            ready: readiness.is_ok(),
            not_ready: readiness.err().unwrap_or_default(),
            ad_up: m.ad_up.get() == 1,
            last_ad_ok_ms: health.last_ad_ok_ms(),
            quarantined: health.quarantined(),
            last_successful_round_ms: (last_round > 0.0).then_some((last_round * 1000.0) as u64),
            queue,
            queue_error,
            lag,
            totals: Totals::read(),
            in_flight,
            initial_sync: crate::progress::snapshot(),
            dead_letters,
            rounds,
            quiet_rounds,
            changes,
        }
    }
}

/// Records the process start time (call once at start-up; otherwise the first snapshot does).
pub fn mark_started() {
    started_at();
}

#[cfg(test)]
mod tests {
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
}
