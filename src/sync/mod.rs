//! Keeping AD in step with the cloud: the worker that applies queued changes to AD, and the
//! quarantine that slows everything down after repeated failures.
//!
//! # May import
//! Every domain layer below it ([`crate::model`], [`crate::config`], [`crate::graph`],
//! [`crate::queue`], [`crate::directory`]); never an observability module (it reports through
//! [`crate::model::Events`]).

pub mod quarantine;
pub mod worker;

pub use quarantine::Quarantine;
pub use worker::Worker;

/// Sleeps `d` unless `stop` is cancelled first; true if it was (or already is).
pub async fn sleep_or_stop(d: std::time::Duration, stop: &tokio_util::sync::CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => stop.is_cancelled(),
        _ = stop.cancelled() => true,
    }
}
