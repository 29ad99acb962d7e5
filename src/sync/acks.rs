//! Group commit of acks: the worker's slots finish groups concurrently, and each ack is one
//! sled transaction (about half a millisecond, whatever its size: `benches/queue.rs` measures
//! 2,100 acks/s one per transaction, 28,000/s a hundred per transaction). Acks that arrive
//! while one is being committed wait for it and then go together in the next transaction.
//!
//! # Guarantees
//! - [`AckCommit::ack`] returns only once its own changes are out of `pending` (or with the
//!   error that kept them there), so the caller's group is never released while its changes
//!   still look pending; nothing is acked before AD confirmed it, since only callers that
//!   applied their work call it.
//! - A failed joint transaction is retried per caller, so each caller sees its own outcome
//!   and error.
//!
//! Imports: [`crate::queue`] only.

use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::queue::{QueueError, Store};

/// Acks waiting for the next transaction: each caller's sequence numbers and where to say
/// whether the joint transaction committed.
type Waiting = Vec<(Vec<u64>, oneshot::Sender<bool>)>;

/// Commits the acks of concurrent callers together (see the module doc).
pub struct AckCommit {
    store: Store,
    waiting: Mutex<Waiting>,
    /// Held by the caller committing a transaction; the others queue meanwhile.
    turn: tokio::sync::Mutex<()>,
}

impl AckCommit {
    /// Group commit over `store`.
    pub fn new(store: Store) -> AckCommit {
        AckCommit {
            store,
            waiting: Mutex::default(),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// Acks `seqs` (AD has them), in one transaction with whatever other callers queued
    /// meanwhile; returns once they are acked.
    pub async fn ack(&self, seqs: &[u64]) -> Result<(), QueueError> {
        let (done, committed) = oneshot::channel();
        self.queued().push((seqs.to_vec(), done));
        {
            let _turn = self.turn.lock().await;
            let batch = std::mem::take(&mut *self.queued());
            if !batch.is_empty() {
                let all: Vec<u64> = batch.iter().flat_map(|(s, _)| s.iter().copied()).collect();
                let ok = self.store.ack(&all).is_ok();
                for (_, done) in batch {
                    let _ = done.send(ok);
                }
            }
        }
        match committed.await {
            Ok(true) => Ok(()),
            // The joint transaction failed: try this caller's own, for its own error.
            _ => self.store.ack(seqs),
        }
    }

    fn queued(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().expect("ack queue lock not poisoned")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Change, ChangeKind};

    fn queued(store: &Store, n: usize) -> Vec<u64> {
        let changes: Vec<Change> = (0..n)
            .map(|i| Change {
                group_id: format!("g{i}"),
                kind: ChangeKind::Reconcile,
                seen_ms: 0,
            })
            .collect();
        store.enqueue(&changes).expect("enqueued")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_acks_all_land_and_the_counts_stay_exact() {
        let store = Store::open_temporary().unwrap();
        let seqs = queued(&store, 200);
        let commit = Arc::new(AckCommit::new(store.clone()));
        let mut tasks = tokio::task::JoinSet::new();
        for chunk in seqs.chunks(2) {
            let (commit, chunk) = (commit.clone(), chunk.to_vec());
            tasks.spawn(async move {
                commit.ack(&chunk).await.unwrap();
                chunk
            });
        }
        while let Some(done) = tasks.join_next().await {
            // Once a caller returns, its own changes are no longer pending.
            let pending: Vec<u64> = store
                .pending_batch(usize::MAX)
                .unwrap()
                .iter()
                .map(|(s, _)| *s)
                .collect();
            for s in done.unwrap() {
                assert!(!pending.contains(&s), "{s} still pending after its ack");
            }
        }
        let stats = store.stats().unwrap();
        assert_eq!((stats.depth, stats.journal_entries), (0, 200));
    }

    #[tokio::test]
    async fn an_ack_of_changes_already_gone_is_harmless() {
        let store = Store::open_temporary().unwrap();
        let seqs = queued(&store, 3);
        let commit = AckCommit::new(store.clone());
        commit.ack(&seqs).await.unwrap();
        commit.ack(&seqs).await.unwrap();
        let stats = store.stats().unwrap();
        assert_eq!((stats.depth, stats.journal_entries), (0, 3));
    }
}
