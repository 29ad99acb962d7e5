//! `[sync]`: worker and queue tuning: retries and their backoff, concurrency, quarantine and
//! the periodic reconcile.

use std::time::Duration;

use serde::Deserialize;

use super::duration;

/// `[sync]`: worker behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Attempts of a change on transient errors before `run --once` gives up on it.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry delay.
    #[serde(default = "default_min_backoff", deserialize_with = "duration")]
    pub min_backoff: Duration,
    /// Longest retry delay.
    #[serde(default = "default_max_backoff", deserialize_with = "duration")]
    pub max_backoff: Duration,
    /// Groups applied concurrently (one group is never applied twice at once).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Consecutive failed rounds or applies before quarantine (0 = never).
    #[serde(default = "default_quarantine_after")]
    pub quarantine_after: u32,
    /// The slow cadence while quarantined.
    #[serde(default = "default_quarantine_interval", deserialize_with = "duration")]
    pub quarantine_interval: Duration,
    /// How often every managed group is compared with the desired state and hand edits in AD
    /// are reverted (`0s` disables).
    #[serde(default = "default_reconcile", deserialize_with = "duration")]
    pub reconcile_interval: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            max_attempts: default_attempts(),
            min_backoff: default_min_backoff(),
            max_backoff: default_max_backoff(),
            concurrency: default_concurrency(),
            reconcile_interval: default_reconcile(),
            quarantine_after: default_quarantine_after(),
            quarantine_interval: default_quarantine_interval(),
        }
    }
}

fn default_attempts() -> u32 {
    6
}
fn default_quarantine_after() -> u32 {
    10
}
fn default_quarantine_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_reconcile() -> Duration {
    Duration::from_secs(3600)
}
fn default_concurrency() -> usize {
    4
}
fn default_min_backoff() -> Duration {
    Duration::from_millis(500)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(60)
}
