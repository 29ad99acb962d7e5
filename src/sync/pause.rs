//! Waiting that gives way to a stop request.

use std::time::Duration;

/// Sleeps `d` unless `stop` fires first; returns true if stopped.
pub async fn sleep_or_stop(d: Duration, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.changed() => true,
    }
}
