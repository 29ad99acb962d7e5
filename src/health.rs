//! Liveness and readiness state shared by the poller, the worker and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::queue::now_ms;

/// When the last Graph round and the last AD bind succeeded, and whether storage is healthy.
#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    graph_ok_ms: AtomicU64,
    ad_ok_ms: AtomicU64,
    storage_failed: AtomicBool,
    quarantined: AtomicBool,
}

impl Health {
    /// A Graph poll cycle completed.
    pub fn graph_ok(&self) {
        self.inner.graph_ok_ms.store(now_ms(), Ordering::Relaxed);
    }
    /// An AD bind (or operation) succeeded.
    pub fn ad_ok(&self) {
        self.inner.ad_ok_ms.store(now_ms(), Ordering::Relaxed);
        crate::metrics::get().ad_up.set(1);
    }
    /// AD could not be reached or bound.
    pub fn ad_failed(&self) {
        crate::metrics::get().ad_up.set(0);
    }
    /// The state store failed (or recovered).
    pub fn set_storage_failed(&self, failed: bool) {
        self.inner.storage_failed.store(failed, Ordering::Relaxed);
    }
    /// Quarantine entered or left.
    pub fn set_quarantined(&self, q: bool) {
        self.inner.quarantined.store(q, Ordering::Relaxed);
        crate::metrics::get().quarantined.set(q as i64);
    }
    /// Whether the service is quarantined.
    pub fn quarantined(&self) -> bool {
        self.inner.quarantined.load(Ordering::Relaxed)
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
        }
        if self.inner.storage_failed.load(Ordering::Relaxed) {
            why.push("state store is failing (disk full or read-only?)");
        }
        if self.quarantined() {
            why.push("quarantined after repeated failures");
        }
        crate::metrics::get().ready.set(why.is_empty() as i64);
        if why.is_empty() { Ok(()) } else { Err(why) }
    }
}
