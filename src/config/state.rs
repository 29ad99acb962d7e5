//! `[state]`: where the durable queue (the sled database) lives and how long its journal is
//! kept.

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
}

fn default_journal_age() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
fn default_journal_max() -> usize {
    1_000_000
}
