//! Operator actions on the queue: journal retention, replay (of dead letters and of journaled
//! groups) and the deletes held by the delete threshold.

use super::records::*;
use crate::model::*;
use sled::Transactional;

use std::sync::atomic::Ordering;

use super::store::{Counts, QueueError, Store, dec, enc, seq_key, tx_enqueue};

/// Journal entries removed per batch by [`Store::trim_journal`].
const TRIM_BATCH: usize = 10_000;

impl Store {
    /// Re-queues every dead letter (after its cause is fixed); returns how many.
    pub fn replay_dead(&self) -> Result<usize, QueueError> {
        let letters = self.list_dead(usize::MAX)?;
        let seqs = letters
            .iter()
            .map(|_| self.next_seq())
            .collect::<Result<Vec<_>, _>>()?;
        let t = self.t()?;
        // One transaction: each letter is either still dead or queued again, never both.
        let replayed = (&t.pending, &t.dead).transaction(|(pending, dead)| {
            let mut replayed = 0i64;
            for (seq, (old, letter)) in seqs.iter().zip(&letters) {
                tx_enqueue(pending, *seq, &letter.change)?;
                replayed += i64::from(dead.remove(&seq_key(*old))?.is_some());
            }
            Ok(replayed)
        })?;
        Counts::adjust(&self.counts.dead, -replayed);
        self.note_enqueued(letters.len());
        t.db.flush()?;
        Ok(letters.len())
    }

    /// Re-queues a reconcile of every group the journal touched since `since_ms` / from `from_seq`
    /// / for `group`; returns the group ids. Reconciling re-applies the current desired state,
    /// which is what re-applying the history converges to (apply is idempotent).
    pub fn replay_journal(
        &self,
        since_ms: Option<u64>,
        from_seq: Option<u64>,
        group: Option<&str>,
    ) -> Result<Vec<String>, QueueError> {
        let mut ids = std::collections::BTreeSet::new();
        let start = seq_key(from_seq.unwrap_or(0));
        for r in self.t()?.journal.range(start..) {
            let (k, v) = r?;
            let entry: JournalEntry = dec(&k, &v)?;
            if since_ms.is_some_and(|s| entry.applied_ms < s) || entry.change.group_id == ALL_GROUPS
            {
                continue;
            }
            if group.is_some_and(|g| g != entry.change.group_id) {
                continue;
            }
            ids.insert(entry.change.group_id);
        }
        if let Some(g) = group {
            ids.insert(g.to_string());
        }
        let now = now_ms();
        let changes: Vec<Change> = ids
            .iter()
            .map(|id| Change {
                group_id: id.clone(),
                kind: ChangeKind::Reconcile,
                seen_ms: now,
            })
            .collect();
        self.enqueue(&changes)?;
        self.t()?.db.flush()?;
        Ok(ids.into_iter().collect())
    }

    /// Drops journal entries older than `max_age_ms` or beyond `max_entries`, oldest first.
    ///
    /// Keys are sequence numbers and entries are journaled in about that order, so what goes is
    /// a range at the start of the tree: it is walked from its first key to the first entry
    /// that stays (entries beyond `max_entries` are dropped unread), and removed in batches of
    /// 10,000. Work is proportional to what is dropped; the entry count comes from
    /// [`Counts`], never from scanning the tree. An entry applied recently but queued long ago
    /// (a retried change) ends the walk early; the entries after it go at a later trim.
    pub fn trim_journal(&self, max_age_ms: u64, max_entries: usize) -> Result<usize, QueueError> {
        let cutoff = now_ms().saturating_sub(max_age_ms);
        let held = self.counts.journal.load(Ordering::Relaxed);
        let excess = usize::try_from(held)
            .unwrap_or(usize::MAX)
            .saturating_sub(max_entries);
        let t = self.t()?;
        let mut removed = 0;
        loop {
            let (mut batch, mut n, mut reached) = (sled::Batch::default(), 0, false);
            for r in t.journal.iter() {
                let (k, v) = r?;
                let old = removed + n < excess
                    || dec::<JournalEntry>(&k, &v)
                        .map(|e| e.applied_ms < cutoff)
                        .unwrap_or(true);
                if !old {
                    reached = true;
                    break;
                }
                batch.remove(k);
                n += 1;
                if n == TRIM_BATCH {
                    break;
                }
            }
            if n == 0 {
                break;
            }
            // Only this task removes journal entries, so each walked key is really removed.
            t.journal.apply_batch(batch)?;
            Counts::adjust(&self.counts.journal, -(n as i64));
            removed += n;
            if reached || n < TRIM_BATCH {
                break;
            }
        }
        Ok(removed)
    }

    /// Deletes held back by the threshold: (group id, reason).
    pub fn held_deletes(&self) -> Result<Vec<(String, DeleteReason)>, QueueError> {
        self.t()?
            .held_deletes
            .iter()
            .map(|r| {
                let (k, v) = r?;
                Ok((String::from_utf8_lossy(&k).into_owned(), dec(&k, &v)?))
            })
            .collect()
    }

    /// Holds deletes for approval (the worker's sweep uses this too).
    pub fn hold_deletes(&self, deletes: &[(String, DeleteReason)]) -> Result<(), QueueError> {
        let t = self.t()?;
        let added = t.held_deletes.transaction(|held| {
            let mut added = 0i64;
            for (id, reason) in deletes {
                added += i64::from(held.insert(id.as_bytes(), enc(reason))?.is_none());
            }
            Ok::<_, sled::transaction::ConflictableTransactionError<QueueError>>(added)
        })?;
        Counts::adjust(&self.counts.held, added);
        t.db.flush()?;
        Ok(())
    }

    /// Whether a destructive action for this group is held for approval.
    pub fn is_held(&self, id: &str) -> Result<bool, QueueError> {
        Ok(self.t()?.held_deletes.contains_key(id.as_bytes())?)
    }

    /// The SID of a group's AD object as last confirmed by an apply, if any. A group whose AD
    /// object is not (yet) recorded here has parents that may not reference it yet.
    pub fn materialized_sid(&self, id: &str) -> Result<Option<String>, QueueError> {
        let t = self.t()?;
        Ok(t.materialized
            .get(id.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Records that the group's AD object exists with `sid` and queues an upsert of every
    /// parent listing it, in one transaction, so that parents converge whichever attempt or
    /// process created the object (a crash before this runs repeats it on the next apply).
    pub fn materialize(&self, id: &str, sid: &str, parents: &[Change]) -> Result<(), QueueError> {
        let seqs = parents
            .iter()
            .map(|_| self.next_seq())
            .collect::<Result<Vec<_>, _>>()?;
        let t = self.t()?;
        (&t.pending, &t.materialized).transaction(|(pending, materialized)| {
            for (seq, c) in seqs.iter().zip(parents) {
                tx_enqueue(pending, *seq, c)?;
            }
            materialized.insert(id.as_bytes(), sid.as_bytes())?;
            Ok(())
        })?;
        self.note_enqueued(parents.len());
        Ok(())
    }

    /// Forgets a group's AD object (it was deleted).
    pub fn dematerialize(&self, id: &str) -> Result<(), QueueError> {
        self.t()?.materialized.remove(id.as_bytes())?;
        Ok(())
    }
}
