//! The in-memory entry counts of the trees that status, metrics and journal trimming report,
//! and [`Store::stats`], which reads them.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{QueueError, Store, Trees, dec};
use crate::model::*;

/// Entry counts of the trees that status, metrics and journal trimming report, kept in memory.
///
/// sled's `Tree::len()` is a full scan, so nothing that runs per poll, scrape, page render or
/// worker pass may call it. The counts are taken once when the database is opened (one pass per
/// tree; a crash loses nothing, since they are never persisted) and then adjusted by every write
/// that changes those trees, from what its transaction really inserted or removed.
#[derive(Debug, Default)]
pub(in crate::queue) struct Counts {
    /// Entries of `dead`.
    pub(in crate::queue) dead: AtomicU64,
    /// Entries of `held_deletes`.
    pub(in crate::queue) held: AtomicU64,
    /// Entries of `journal`.
    pub(in crate::queue) journal: AtomicU64,
    /// Entries of `groups` (the mirror).
    pub(in crate::queue) groups: AtomicU64,
}

impl Counts {
    /// Recounts from the trees (at open and after a reopen in place).
    pub(super) fn recount(&self, t: &Trees) {
        self.dead.store(t.dead.len() as u64, Ordering::Relaxed);
        self.held
            .store(t.held_deletes.len() as u64, Ordering::Relaxed);
        self.journal
            .store(t.journal.len() as u64, Ordering::Relaxed);
        self.groups.store(t.groups.len() as u64, Ordering::Relaxed);
    }

    /// Applies a committed change of `delta` entries to `count`.
    pub(in crate::queue) fn adjust(count: &AtomicU64, delta: i64) {
        let _ = count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
            Some(c.saturating_add_signed(delta))
        });
    }
}

impl Store {
    /// Changes waiting to be applied (a counter: no read of the queue).
    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Counts and ages for status output and metrics.
    pub fn stats(&self) -> Result<QueueStats, QueueError> {
        let now = now_ms();
        let oldest = match self.t()?.pending.first()? {
            Some((k, v)) => Some(dec::<Change>(&k, &v)?.seen_ms),
            None => None,
        };
        let cursor = self.cursor(Resource::Groups)?;
        Ok(QueueStats {
            depth: self.depth.load(Ordering::Relaxed),
            oldest_age_secs: oldest.map(|t| now.saturating_sub(t) as f64 / 1000.0),
            dead_letters: self.counts.dead.load(Ordering::Relaxed),
            held_deletes: self.counts.held.load(Ordering::Relaxed),
            frozen_groups: self.frozen_count()?,
            cursor_age_secs: cursor
                .as_ref()
                .map(|c| now.saturating_sub(c.stored_ms) as f64 / 1000.0),
            full_round_in_progress: cursor.as_ref().is_none_or(|c| c.full_epoch.is_some()),
            journal_entries: self.counts.journal.load(Ordering::Relaxed),
            mirrored_groups: self.counts.groups.load(Ordering::Relaxed),
        })
    }
}
