//! Helpers for unit tests of the queue and of the layers above it.

use super::Store;

/// Acks every pending change at once (up to 1,000), as a worker that applied them all would.
pub(crate) fn drain(store: &Store) {
    let seqs: Vec<u64> = store
        .pending_batch(1000)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    store.ack(&seqs).unwrap();
}
