//! Waiting that gives way to a stop request.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Sleeps `d` unless `stop` is cancelled first; true if it was (or already is).
pub async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => stop.is_cancelled(),
        _ = stop.cancelled() => true,
    }
}
