//! The in-memory entry counts of the trees that status, metrics and journal trimming report,
//! their snapshot at a clean close, and [`Store::stats`], which reads them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::{QueueError, Store, Trees, dec};
use crate::model::*;

/// `meta` key: the counts (and the pending depth) as the last process left them when it closed
/// the store cleanly; consumed (removed, flushed) by the next open. 41 bytes: a version byte,
/// then depth, dead, held, journal and groups as big-endian u64s.
pub(in crate::queue) const AT_CLOSE: &[u8] = b"counts/at-close";
const AT_CLOSE_VERSION: u8 = 1;

/// Entry counts of the trees that status, metrics and journal trimming report, kept in memory.
///
/// sled's `Tree::len()` is a full scan, so nothing that runs per poll, scrape, page render or
/// worker pass may call it. They are adjusted by every write that changes those trees, from
/// what its transaction really inserted or removed. At open they come from the snapshot the
/// last clean close left ([`SaveAtClose`]): a scan would cost time, and resident memory that
/// sled keeps (91 MiB at 100,000 groups: `benches/store_open.rs`, BENCHMARKS.md). Without
/// one (a first open, a crash, a kill) they are counted from the trees, one pass each.
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

    /// Sets the counts and `depth` at open: from the clean-close snapshot if the store holds
    /// one (which is consumed, durably, before anything else is written, so that a later
    /// crash can never find it), else by counting the trees.
    pub(super) fn at_open(&self, t: &Trees, depth: &AtomicU64) -> Result<(), QueueError> {
        let saved = t.meta.remove(AT_CLOSE)?;
        if saved.is_some() {
            t.db.flush()?;
        }
        match saved.as_deref().and_then(decode_at_close) {
            Some([pending, dead, held, journal, groups]) => {
                depth.store(pending, Ordering::Relaxed);
                self.dead.store(dead, Ordering::Relaxed);
                self.held.store(held, Ordering::Relaxed);
                self.journal.store(journal, Ordering::Relaxed);
                self.groups.store(groups, Ordering::Relaxed);
            }
            None => {
                depth.store(t.pending.len() as u64, Ordering::Relaxed);
                self.recount(t);
            }
        }
        Ok(())
    }

    /// The snapshot [`Counts::at_open`] reads back.
    fn encode_at_close(&self, depth: u64) -> Vec<u8> {
        let mut v = vec![AT_CLOSE_VERSION];
        for c in [
            depth,
            self.dead.load(Ordering::Relaxed),
            self.held.load(Ordering::Relaxed),
            self.journal.load(Ordering::Relaxed),
            self.groups.load(Ordering::Relaxed),
        ] {
            v.extend_from_slice(&c.to_be_bytes());
        }
        v
    }

    /// Applies a committed change of `delta` entries to `count`.
    pub(in crate::queue) fn adjust(count: &AtomicU64, delta: i64) {
        let _ = count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
            Some(c.saturating_add_signed(delta))
        });
    }
}

/// (depth, dead, held, journal, groups) from a snapshot; `None` if it is of another version
/// or damaged, which means counting the trees.
fn decode_at_close(v: &[u8]) -> Option<[u64; 5]> {
    let (&version, rest) = v.split_first()?;
    if version != AT_CLOSE_VERSION || rest.len() != 40 {
        return None;
    }
    let mut out = [0u64; 5];
    for (o, chunk) in out.iter_mut().zip(rest.chunks_exact(8)) {
        *o = u64::from_be_bytes(chunk.try_into().ok()?);
    }
    Some(out)
}

/// Saves the counts when the last clone of a [`Store`] goes: a clean close (the end of a
/// command, a `run` stopped by a signal). Held by every clone; its `Drop` writes the snapshot
/// and flushes. A process that dies without running it leaves no snapshot, and the next open
/// counts the trees.
pub(super) struct SaveAtClose {
    pub(super) inner: Arc<RwLock<Option<Arc<Trees>>>>,
    pub(super) depth: Arc<AtomicU64>,
    pub(super) counts: Arc<Counts>,
}

impl Drop for SaveAtClose {
    fn drop(&mut self) {
        let trees = self.inner.read().map(|t| t.clone()).unwrap_or(None);
        let Some(t) = trees else { return };
        let snapshot = self
            .counts
            .encode_at_close(self.depth.load(Ordering::Relaxed));
        let saved = t.meta.insert(AT_CLOSE, snapshot).and_then(|_| t.db.flush());
        if let Err(e) = saved {
            tracing::warn!(error = %e, "could not save the queue counts at close; the next start counts the trees");
        }
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
