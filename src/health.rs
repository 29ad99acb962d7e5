//! Liveness and readiness state shared by the poller, the worker and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::model::now_ms;

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
    /// The latest AD attempt failed (cleared by the next success).
    ad_failing: AtomicBool,
}

impl Health {
    /// A Graph poll cycle completed.
    pub fn graph_ok(&self) {
        self.inner.graph_ok_ms.store(now_ms(), Ordering::Relaxed);
    }
    /// An AD bind (or operation) succeeded.
    pub fn ad_ok(&self) {
        self.inner.ad_ok_ms.store(now_ms(), Ordering::Relaxed);
        self.inner.ad_failing.store(false, Ordering::Relaxed);
        crate::metrics::get().ad_up.set(1);
    }
    /// AD could not be reached or bound.
    pub fn ad_failed(&self) {
        self.inner.ad_failing.store(true, Ordering::Relaxed);
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
        crate::metrics::get().ready.set(why.is_empty() as i64);
        if why.is_empty() { Ok(()) } else { Err(why) }
    }
}

/// Keeps the AD half of readiness honest while the queue is idle: whenever AD has not answered
/// for `every`, reads the target OU (one base-scope search; reconnecting and re-binding if the
/// DC dropped the idle connection). Success and transport failures update [`Health`] through
/// the connection, so `/readyz` and `entra_writeback_ad_up` reflect whether AD is reachable now,
/// not merely whether there was work lately. Ends when `stop` is set.
pub async fn keep_ad_fresh(
    dir: crate::directory::Directory,
    health: Health,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let every = every.max(Duration::from_secs(1));
    loop {
        if crate::sync::sleep_or_stop(every, &mut stop).await {
            return;
        }
        let idle = health
            .last_ad_ok_ms()
            .is_none_or(|t| now_ms().saturating_sub(t) >= every.as_millis() as u64);
        if !idle {
            continue;
        }
        match dir.target_ou_exists().await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                target_ou = %dir.target_ou,
                "AD probe: the target OU is gone or no longer visible"
            ),
            Err(e) => tracing::warn!(error = %e, "AD probe failed"),
        }
    }
}
