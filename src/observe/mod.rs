//! Observability: the consumers of the domain's [`Event`](crate::model::Event)s — Prometheus metrics, the status
//! page's recent history, initial-sync progress, and readiness.
//!
//! # Guarantees
//! - Receives, never reaches in: nothing here imports a domain module (`graph`, `queue`,
//!   `directory`, `sync`), and no domain module imports this one. The domain reports through
//!   the [`Events`] handle it is given; `tests/architecture.rs` checks both directions.
//! - No globals: each process makes one [`Observers`] in the composition root (`cli`).
//!
//! # May import
//! [`crate::model`] only.

pub mod metrics;
pub mod progress;
pub mod readiness;
pub mod status;

use std::sync::Arc;

use crate::model::event::{Events, Observer};

pub use metrics::Metrics;
pub use progress::Progress;
pub use readiness::Readiness;
pub use status::Recorder;

/// Every consumer of one process's events.
#[derive(Clone)]
pub struct Observers {
    /// Prometheus metrics (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// The status page's history (`/`, `/status.json`).
    pub status: Arc<Recorder>,
    /// Initial-sync progress (bars or log lines).
    pub progress: Arc<Progress>,
    /// Readiness (`/readyz`).
    pub readiness: Readiness,
}

impl Observers {
    /// Fresh consumers; `progress` is shared with the log writer set up before.
    pub fn new(progress: Arc<Progress>) -> Observers {
        Observers {
            metrics: Arc::new(Metrics::new()),
            status: Arc::new(Recorder::new()),
            progress,
            readiness: Readiness::default(),
        }
    }

    /// The handle the domain reports through: every consumer, in a fixed order.
    pub fn events(&self) -> Events {
        Events::to(vec![
            self.metrics.clone() as Arc<dyn Observer>,
            self.status.clone(),
            self.progress.clone(),
            Arc::new(self.readiness.clone()),
        ])
    }
}
