//! The one view the status page renders and `/status.json` serves: the recorder's recent
//! history joined with the queue ([`Store::stats`], [`Store::list_dead`]), readiness and the
//! initial-sync progress, taken at one moment.

use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::model::{ALL_GROUPS, QueueStats, now_ms};
use crate::observe::progress::SyncSnapshot;
use crate::observe::status::{ChangeEntry, InFlight, LagSummary, QuietRounds, RoundEntry, Totals};
use crate::observe::{Observers, Readiness};
use crate::queue::Store;

/// Dead letters listed on the status page (the count is always exact).
pub const DEAD_SHOWN: usize = 50;

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
/// A group frozen because another writer kept reverting it (from the state store).
#[derive(Debug, Clone, Serialize)]
pub struct FrozenEntry {
    /// Cloud object id.
    pub group_id: String,
    /// Its display name from the mirror.
    pub group_name: Option<String>,
    /// Its DN when it was frozen.
    pub dn: String,
    /// What was reverted.
    pub detail: String,
    /// Since when (Unix ms).
    pub since_ms: u64,
}

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
    pub initial_sync: Option<SyncSnapshot>,
    /// The oldest dead letters (at most [`DEAD_SHOWN`]).
    pub dead_letters: Vec<DeadEntry>,
    /// Groups frozen because another writer kept reverting them (`approve-writes`).
    pub frozen: Vec<FrozenEntry>,
    /// Recent rounds that read something, failed or enumerated, newest first.
    pub rounds: Vec<RoundEntry>,
    /// Empty incremental rounds (not in `rounds`).
    pub quiet_rounds: QuietRounds,
    /// Recent group changes, newest first.
    pub changes: Vec<ChangeEntry>,
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

impl Snapshot {
    /// Takes a snapshot. Reads the store (blocking, but quick): call from a blocking thread.
    pub fn collect(
        store: &Store,
        observers: &Observers,
        ready_window: Duration,
        about: &About,
    ) -> Snapshot {
        let readiness: &Readiness = &observers.readiness;
        let ready = readiness.readiness(ready_window);
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
        let frozen = store
            .frozen_groups()
            .unwrap_or_default()
            .into_iter()
            .take(DEAD_SHOWN)
            .map(|(id, why)| FrozenEntry {
                group_name: name_of(&id),
                group_id: id,
                dn: why.dn,
                detail: why.detail,
                since_ms: why.since_ms,
            })
            .collect();
        let recent = observers.status.recent();
        let mut changes = recent.changes;
        for c in &mut changes {
            c.group_name = name_of(&c.group_id);
        }
        Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            now_ms: now_ms(),
            started_ms: recent.started_ms,
            about: about.clone(),
            ready: ready.is_ok(),
            not_ready: ready.err().unwrap_or_default(),
            ad_up: recent.ad_up,
            last_ad_ok_ms: readiness.last_ad_ok_ms(),
            quarantined: readiness.quarantined(),
            last_successful_round_ms: recent.last_successful_round_ms,
            queue,
            queue_error,
            lag: recent.lag,
            totals: recent.totals,
            in_flight: recent.in_flight,
            initial_sync: observers.progress.snapshot(),
            dead_letters,
            frozen,
            rounds: recent.rounds,
            quiet_rounds: recent.quiet_rounds,
            changes,
        }
    }
}
