//! Quarantine: after a run of consecutive failures (Graph rounds or AD applies), the service
//! slows to a long cadence instead of hammering a broken dependency, reports it (metric
//! `entra_writeback_quarantined`, `/readyz`), and leaves quarantine by itself on the first
//! success — like Entra provisioning's quarantine, minus the four-week disable.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::health::Health;

/// Counts consecutive failures and decides the cadence.
pub struct Quarantine {
    after: u32,
    slow: Duration,
    consecutive: AtomicU32,
    health: Health,
}

impl Quarantine {
    /// Quarantine after `after` consecutive failures (0 = never); `slow` is the cadence then.
    pub fn new(after: u32, slow: Duration, health: Health) -> Quarantine {
        Quarantine {
            after,
            slow,
            consecutive: AtomicU32::new(0),
            health,
        }
    }

    /// Records a failure; returns whether the service is (now) quarantined.
    pub fn failure(&self) -> bool {
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        let quarantined = self.after > 0 && n >= self.after;
        if quarantined && !self.health.quarantined() {
            tracing::error!(
                consecutive_failures = n,
                cadence_s = self.slow.as_secs(),
                "entering quarantine"
            );
        }
        self.health.set_quarantined(quarantined);
        quarantined
    }

    /// Records a success: leaves quarantine.
    pub fn success(&self) {
        self.consecutive.store(0, Ordering::Relaxed);
        if self.health.quarantined() {
            tracing::info!("leaving quarantine");
        }
        self.health.set_quarantined(false);
    }

    /// The wait before the next attempt: `normal`, or the slow cadence while quarantined.
    pub fn cadence(&self, normal: Duration) -> Duration {
        if self.health.quarantined() {
            self.slow.max(normal)
        } else {
            normal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enters_after_n_failures_and_leaves_on_success() {
        let q = Quarantine::new(3, Duration::from_secs(300), Health::default());
        assert!(!q.failure());
        assert!(!q.failure());
        assert!(q.failure());
        assert_eq!(q.cadence(Duration::from_secs(15)), Duration::from_secs(300));
        q.success();
        assert_eq!(q.cadence(Duration::from_secs(15)), Duration::from_secs(15));
        assert!(!q.failure());
    }
}
