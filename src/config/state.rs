//! `[state]`: where the durable queue (the sled database) lives, how long its journal is kept
//! and how much memory its page cache may use.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration;

/// `[state]`: the sled database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Directory of the database; locked against a second instance.
    pub path: PathBuf,
    /// How long applied changes stay in the journal for `replay`.
    #[serde(default = "default_journal_age", deserialize_with = "duration")]
    pub journal_retention: Duration,
    /// At most this many journal entries are kept.
    #[serde(default = "default_journal_max")]
    pub journal_max_entries: usize,
    /// Bytes of sled's page cache (default [`DEFAULT_CACHE_CAPACITY`]). What the database holds
    /// beyond it is read from disk when needed, so memory stays flat as the tenant grows.
    #[serde(default = "default_cache_capacity")]
    pub cache_capacity: u64,
}

/// Default of `state.cache_capacity`: 4 MiB (see BENCHMARKS.md, "The sled cache").
pub const DEFAULT_CACHE_CAPACITY: u64 = 4 * 1024 * 1024;

/// Smallest and largest `state.cache_capacity` accepted.
pub const CACHE_CAPACITY_RANGE: (u64, u64) = (1024 * 1024, 64 << 30);

impl StateConfig {
    /// `cache_capacity` within [`CACHE_CAPACITY_RANGE`].
    pub(super) fn check(&self) -> Result<(), (&'static str, String)> {
        let (min, max) = CACHE_CAPACITY_RANGE;
        if !(min..=max).contains(&self.cache_capacity) {
            return Err((
                "state.cache_capacity",
                format!(
                    "{} is out of range: must be {min} to {max} bytes",
                    self.cache_capacity
                ),
            ));
        }
        Ok(())
    }
}

fn default_journal_age() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
fn default_journal_max() -> usize {
    1_000_000
}
fn default_cache_capacity() -> u64 {
    DEFAULT_CACHE_CAPACITY
}
