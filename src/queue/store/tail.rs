//! The newest end of the queue: what a worker slot takes between the oldest changes, so a
//! change made now is not stuck behind a bulk of older ones (an initial sync, ten thousand new
//! groups). Safe because every apply converges a group to what the mirror says *now*: taking a
//! group's newer change before its older ones changes nothing in the result.

use std::collections::HashSet;

use super::{QueueError, Store};
use crate::model::Change;

impl Store {
    /// Up to `limit` of the newest pending changes, newest first, of groups not in `skip`,
    /// looking at no more than `scan` entries from the end.
    pub fn newest_pending(
        &self,
        limit: usize,
        scan: usize,
        skip: &HashSet<String>,
    ) -> Result<Vec<(u64, Change)>, QueueError> {
        super::pending::collect_skipping(self.t()?.pending.iter().rev().take(scan), limit, skip)
    }
}
