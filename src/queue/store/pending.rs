//! The lifecycle of a change: queued in `pending`, then acknowledged into the `journal` once AD
//! has it, or moved to `dead` when it failed for good; plus the queue listings and the release
//! of held deletes.

use std::sync::atomic::{AtomicU64, Ordering};

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::codec::scan;
use super::{Counts, LAST_SWEEP, QueueError, Store, abort, dec, enc, seq_key, seq_of};
use crate::model::*;
use crate::queue::records::*;

impl Store {
    /// Queues changes outside a Graph page (replay, parents of a new nested group).
    pub fn enqueue(&self, changes: &[Change]) -> Result<Vec<u64>, QueueError> {
        let mut batch = sled::Batch::default();
        let mut seqs = Vec::with_capacity(changes.len());
        for c in changes {
            let seq = self.next_seq()?;
            batch.insert(&seq_key(seq), enc(c));
            seqs.push(seq);
        }
        self.t()?.pending.apply_batch(batch)?;
        self.depth
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        Ok(seqs)
    }

    /// Queues a full reconcile of every wanted group plus a sweep for orphans (the periodic,
    /// level-triggered drift correction); returns how many groups, or `None` when the mirror
    /// is not a complete picture yet (a full enumeration is pending or in progress: its end
    /// queues the same work).
    /// The sweep's sequence number becomes [`Store::last_sweep`].
    pub fn enqueue_reconcile_all(&self) -> Result<Option<usize>, QueueError> {
        if !self.complete_picture()? {
            return Ok(None);
        }
        let now = now_ms();
        let mut changes: Vec<Change> = self
            .all_groups()?
            .into_iter()
            .filter(|(_, r)| r.wanted())
            .map(|(id, _)| Change {
                group_id: id,
                kind: ChangeKind::Reconcile,
                seen_ms: now,
            })
            .collect();
        let n = changes.len();
        changes.push(Change {
            group_id: ALL_GROUPS.into(),
            kind: ChangeKind::Sweep,
            seen_ms: now,
        });
        let seqs = self.enqueue(&changes)?;
        let sweep = *seqs.last().expect("the sweep was queued");
        // After the changes: a crash in between leaves the older mark, so at worst the next
        // reconciliation is queued while this one is still being applied.
        self.t()?.meta.insert(LAST_SWEEP, &sweep.to_be_bytes())?;
        Ok(Some(n))
    }

    /// The sequence number of the newest sweep queued (a full enumeration's end or a periodic
    /// reconciliation), if any. With [`Store::pending_through`] it says whether the last full
    /// convergence is still being applied, across restarts.
    pub fn last_sweep(&self) -> Result<Option<u64>, QueueError> {
        Ok(self.t()?.meta.get(LAST_SWEEP)?.and_then(|v| {
            let bytes: [u8; 8] = v.as_ref().try_into().ok()?;
            Some(u64::from_be_bytes(bytes))
        }))
    }

    /// Whether change `seq` is still waiting to be applied.
    pub fn is_pending(&self, seq: u64) -> Result<bool, QueueError> {
        Ok(self.t()?.pending.contains_key(seq_key(seq))?)
    }

    /// Whether any change queued at or before `seq` is still pending (one read: the oldest
    /// pending key). What "a batch is still being applied" means when a worker may take a
    /// batch's newest change before its oldest ones.
    pub fn pending_through(&self, seq: u64) -> Result<bool, QueueError> {
        Ok(self
            .t()?
            .pending
            .first()?
            .is_some_and(|(k, _)| seq_of(&k) <= seq))
    }

    /// The oldest pending changes, in order.
    pub fn pending_batch(&self, limit: usize) -> Result<Vec<(u64, Change)>, QueueError> {
        scan(&self.t()?.pending, limit)
    }

    /// The oldest pending changes of groups not in `skip` (parked groups wait; the others
    /// proceed), in order.
    pub fn pending_batch_excluding(
        &self,
        limit: usize,
        skip: &std::collections::HashSet<String>,
    ) -> Result<Vec<(u64, Change)>, QueueError> {
        if skip.is_empty() {
            return self.pending_batch(limit);
        }
        collect_skipping(self.t()?.pending.iter(), limit, skip)
    }

    /// Pending changes (for `queue list`).
    pub fn list_pending(&self, limit: usize) -> Result<Vec<(u64, Change)>, QueueError> {
        self.pending_batch(limit)
    }

    /// Dead letters (for `queue list --dead`).
    pub fn list_dead(&self, limit: usize) -> Result<Vec<(u64, DeadLetter)>, QueueError> {
        scan(&self.t()?.dead, limit)
    }

    /// One change by sequence number, wherever it is.
    pub fn show(&self, seq: u64) -> Result<Option<serde_json::Value>, QueueError> {
        let k = seq_key(seq);
        let t = self.t()?;
        for (place, tree) in [
            ("pending", &t.pending),
            ("dead", &t.dead),
            ("journal", &t.journal),
        ] {
            if let Some(v) = tree.get(k)? {
                let value: serde_json::Value = dec(&k, &v)?;
                return Ok(Some(
                    serde_json::json!({"seq": seq, "state": place, "record": value}),
                ));
            }
        }
        Ok(None)
    }

    /// AD has the changes: drop them from `pending` and journal them, in one transaction.
    pub fn ack(&self, seqs: &[u64]) -> Result<(), QueueError> {
        let now = now_ms();
        let t = self.t()?;
        self.move_pending(seqs, &t.journal, &self.counts.journal, |change| {
            enc(&JournalEntry {
                change,
                applied_ms: now,
            })
        })
    }

    /// The changes failed permanently: move them to `dead` with the reason.
    pub fn dead_letter(&self, seqs: &[u64], error: &str, class: &str) -> Result<(), QueueError> {
        let now = now_ms();
        let t = self.t()?;
        self.move_pending(seqs, &t.dead, &self.counts.dead, |change| {
            enc(&DeadLetter {
                change,
                error: error.to_string(),
                class: class.to_string(),
                at_ms: now,
            })
        })?;
        t.db.flush()?;
        Ok(())
    }

    /// Moves changes out of `pending` into `to` (as `record(change)`), in one transaction, and
    /// keeps the depth and `to_count` exact (only entries really moved count).
    fn move_pending(
        &self,
        seqs: &[u64],
        to: &sled::Tree,
        to_count: &AtomicU64,
        record: impl Fn(Change) -> Vec<u8>,
    ) -> Result<(), QueueError> {
        let t = self.t()?;
        let (removed, added) = (&t.pending, to).transaction(|(pending, to)| {
            let (mut removed, mut added) = (0i64, 0i64);
            for &seq in seqs {
                if let Some(v) = pending.remove(&seq_key(seq))? {
                    let change: Change = dec(&seq_key(seq), &v).map_err(abort)?;
                    removed += 1;
                    added += i64::from(to.insert(&seq_key(seq), record(change))?.is_none());
                }
            }
            Ok((removed, added))
        })?;
        Counts::adjust(&self.depth, -removed);
        Counts::adjust(to_count, added);
        Ok(())
    }

    /// Releases held deletes (all, or the given ids) into the queue; returns the released ids.
    pub fn approve_deletes(&self, ids: Option<&[String]>) -> Result<Vec<String>, QueueError> {
        let now = now_ms();
        let chosen: Vec<(String, DeleteReason)> = self
            .held_deletes()?
            .into_iter()
            .filter(|(id, _)| ids.is_none_or(|want| want.contains(id)))
            .collect();
        let changes: Vec<Change> = chosen
            .iter()
            .map(|(id, reason)| Change {
                group_id: id.clone(),
                kind: ChangeKind::Delete { reason: *reason },
                seen_ms: now,
            })
            .collect();
        let seqs = changes
            .iter()
            .map(|_| self.next_seq())
            .collect::<Result<Vec<_>, _>>()?;
        let t = self.t()?;
        // One transaction: a crash leaves each delete either held or queued, never both or none.
        let released = (&t.pending, &t.held_deletes).transaction(|(pending, held)| {
            let mut released = 0i64;
            for ((seq, c), (id, _)) in seqs.iter().zip(&changes).zip(&chosen) {
                tx_enqueue(pending, *seq, c)?;
                released += i64::from(held.remove(id.as_bytes())?.is_some());
            }
            Ok(released)
        })?;
        Counts::adjust(&self.counts.held, -released);
        self.note_enqueued(changes.len());
        t.db.flush()?;
        Ok(chosen.into_iter().map(|(id, _)| id).collect())
    }
}

/// Inserts a change into `pending` inside a transaction.
pub(in crate::queue) fn tx_enqueue(
    pending: &TransactionalTree,
    seq: u64,
    change: &Change,
) -> Result<(), ConflictableTransactionError<QueueError>> {
    pending.insert(&seq_key(seq), enc(change))?;
    Ok(())
}

/// Up to `limit` changes of `entries` (in their order) whose group is not in `skip`: the one
/// walk both ends of the queue share.
pub(super) fn collect_skipping(
    entries: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    limit: usize,
    skip: &std::collections::HashSet<String>,
) -> Result<Vec<(u64, Change)>, QueueError> {
    let mut out = Vec::new();
    for r in entries {
        let (k, v) = r?;
        let change: Change = dec(&k, &v)?;
        if skip.contains(&change.group_id) {
            continue;
        }
        out.push((seq_of(&k), change));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}
