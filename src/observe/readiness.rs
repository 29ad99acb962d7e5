//! Readiness (`/readyz`): an [`Observer`] that remembers when Graph and AD last answered,
//! whether storage fails and whether the service is quarantined.
//!
//! # May import
//! [`crate::model`] only.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::model::event::{Event, Observer};
use crate::model::now_ms;

/// When the last Graph cycle and the last AD success happened, whether storage is healthy and
/// whether the service is quarantined. Cheap to clone: clones share one state.
#[derive(Clone, Default)]
pub struct Readiness {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    graph_ok_ms: AtomicU64,
    ad_ok_ms: AtomicU64,
    storage_failed: AtomicBool,
    quarantined: AtomicBool,
    /// The latest AD attempt failed (cleared by the next success).
    ad_failing: AtomicBool,
}

impl Readiness {
    /// A Graph poll cycle completed.
    fn graph_ok(&self) {
        self.inner.graph_ok_ms.store(now_ms(), Ordering::Relaxed);
    }
    /// An AD bind (or operation) succeeded.
    fn ad_ok(&self) {
        self.inner.ad_ok_ms.store(now_ms(), Ordering::Relaxed);
        self.inner.ad_failing.store(false, Ordering::Relaxed);
    }
    /// AD could not be reached or bound.
    fn ad_failed(&self) {
        self.inner.ad_failing.store(true, Ordering::Relaxed);
    }
    /// The state store failed (or recovered).
    fn set_storage_failed(&self, failed: bool) {
        self.inner.storage_failed.store(failed, Ordering::Relaxed);
    }
    /// Quarantine entered or left.
    fn set_quarantined(&self, q: bool) {
        self.inner.quarantined.store(q, Ordering::Relaxed);
    }
    /// Whether the service is quarantined.
    pub fn quarantined(&self) -> bool {
        self.inner.quarantined.load(Ordering::Relaxed)
    }
    /// When a Graph poll cycle last completed (Unix ms), if ever.
    pub fn last_graph_ok_ms(&self) -> Option<u64> {
        Some(self.inner.graph_ok_ms.load(Ordering::Relaxed)).filter(|t| *t != 0)
    }
    /// When AD last answered a bind or an operation (Unix ms), if ever.
    pub fn last_ad_ok_ms(&self) -> Option<u64> {
        Some(self.inner.ad_ok_ms.load(Ordering::Relaxed)).filter(|t| *t != 0)
    }

    /// Ready: the last Graph cycle and the last AD success are both within `window`, storage is
    /// healthy and the service is not quarantined. Returns the reasons it is not.
    pub fn readiness(&self, window: Duration) -> Result<(), Vec<&'static str>> {
        let now = now_ms();
        let fresh = |t: u64| t != 0 && now.saturating_sub(t) <= window.as_millis() as u64;
        let mut why = Vec::new();
        if !fresh(self.inner.graph_ok_ms.load(Ordering::Relaxed)) {
            why.push("no successful Graph round recently");
        }
        if !fresh(self.inner.ad_ok_ms.load(Ordering::Relaxed)) {
            why.push("no successful AD bind recently");
        } else if self.inner.ad_failing.load(Ordering::Relaxed) {
            why.push("AD is not answering (the last attempt failed)");
        }
        if self.inner.storage_failed.load(Ordering::Relaxed) {
            why.push("state store is failing (disk full or read-only?)");
        }
        if self.quarantined() {
            why.push("quarantined after repeated failures");
        }
        if why.is_empty() { Ok(()) } else { Err(why) }
    }
}

impl Observer for Readiness {
    fn observe(&self, event: &Event) {
        match event {
            Event::CycleSucceeded => self.graph_ok(),
            Event::AdReachable { up: true } => self.ad_ok(),
            Event::AdReachable { up: false } => self.ad_failed(),
            Event::Storage { failed } => self.set_storage_failed(*failed),
            Event::Quarantine { active } => self.set_quarantined(*active),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_drive_readiness() {
        let r = Readiness::default();
        let w = Duration::from_secs(60);
        assert_eq!(r.readiness(w).unwrap_err().len(), 2);
        r.observe(&Event::CycleSucceeded);
        r.observe(&Event::AdReachable { up: true });
        assert!(r.readiness(w).is_ok());
        r.observe(&Event::AdReachable { up: false });
        assert_eq!(
            r.readiness(w).unwrap_err(),
            vec!["AD is not answering (the last attempt failed)"]
        );
        r.observe(&Event::AdReachable { up: true });
        r.observe(&Event::Storage { failed: true });
        r.observe(&Event::Quarantine { active: true });
        assert_eq!(r.readiness(w).unwrap_err().len(), 2);
        assert!(r.quarantined());
        r.observe(&Event::Storage { failed: false });
        r.observe(&Event::Quarantine { active: false });
        assert!(r.readiness(w).is_ok());
    }
}
