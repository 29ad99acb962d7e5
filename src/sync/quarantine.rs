//! Quarantine: after a run of consecutive failures (Graph rounds or AD applies), the service
//! slows to a long cadence instead of hammering a broken dependency, reports it
//! ([`Event::Quarantine`], which observers turn into the metric `entra_writeback_quarantined`
//! and `/readyz`), and leaves quarantine by itself on the first success — like Entra
//! provisioning's quarantine, minus the four-week disable.
//!
//! # Guarantees
//! - Quarantine is entered after exactly `after` consecutive failures (never if `after` is 0)
//!   and left on the next success.
//! - [`Event::Quarantine`] is emitted once per change of state, never repeated.
//!
//! Imports: [`crate::model`] (events) only.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use crate::model::{Event, Events};

/// Counts consecutive failures and decides the cadence.
pub struct Quarantine {
    after: u32,
    slow: Duration,
    consecutive: AtomicU32,
    active: AtomicBool,
    events: Events,
}

impl Quarantine {
    /// Quarantine after `after` consecutive failures (0 = never); `slow` is the cadence then.
    /// Entering and leaving are reported through `events`.
    pub fn new(after: u32, slow: Duration, events: Events) -> Quarantine {
        Quarantine {
            after,
            slow,
            consecutive: AtomicU32::new(0),
            active: AtomicBool::new(false),
            events,
        }
    }

    /// Whether the service is quarantined now.
    pub fn quarantined(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Sets the state, reporting a change.
    fn set(&self, active: bool) {
        if self.active.swap(active, Ordering::Relaxed) != active {
            self.events.emit(Event::Quarantine { active });
        }
    }

    /// Records a failure; returns whether the service is (now) quarantined.
    pub fn failure(&self) -> bool {
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        let quarantined = self.after > 0 && n >= self.after;
        if quarantined && !self.quarantined() {
            tracing::error!(
                consecutive_failures = n,
                cadence_s = self.slow.as_secs(),
                "entering quarantine"
            );
        }
        self.set(quarantined);
        quarantined
    }

    /// Records a success: leaves quarantine.
    pub fn success(&self) {
        self.consecutive.store(0, Ordering::Relaxed);
        if self.quarantined() {
            tracing::info!("leaving quarantine");
        }
        self.set(false);
    }

    /// The wait before the next attempt: `normal`, or the slow cadence while quarantined.
    pub fn cadence(&self, normal: Duration) -> Duration {
        if self.quarantined() {
            self.slow.max(normal)
        } else {
            normal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::Recorded;

    #[test]
    fn enters_after_n_failures_and_leaves_on_success() {
        let (seen, events) = Recorded::new();
        let q = Quarantine::new(3, Duration::from_secs(300), events);
        assert!(!q.failure());
        assert!(!q.failure());
        assert!(!q.quarantined());
        assert!(q.failure());
        assert!(q.quarantined());
        assert!(q.failure(), "still quarantined");
        assert_eq!(q.cadence(Duration::from_secs(15)), Duration::from_secs(300));
        q.success();
        assert!(!q.quarantined());
        assert_eq!(q.cadence(Duration::from_secs(15)), Duration::from_secs(15));
        q.success();
        assert!(!q.failure());
        // One event per change of state, none for the repeats.
        assert_eq!(
            seen.events(),
            vec![
                Event::Quarantine { active: true },
                Event::Quarantine { active: false }
            ]
        );
    }

    #[test]
    fn never_with_zero() {
        let (seen, events) = Recorded::new();
        let q = Quarantine::new(0, Duration::from_secs(300), events);
        for _ in 0..10 {
            assert!(!q.failure());
        }
        assert!(seen.events().is_empty());
    }
}
