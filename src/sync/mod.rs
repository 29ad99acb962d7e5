//! Keeping AD in step with the cloud: the poller that reads Graph's delta rounds into the
//! store, the worker that applies queued changes to AD, and the quarantine that slows
//! everything down after repeated failures.
//!
//! # Guarantees
//! - The poller persists each page and its cursor before it requests the next ([`poll`]); the
//!   worker removes a change from the queue only once AD confirmed it ([`worker`]).
//! - Every long wait ends as soon as the service is asked to stop ([`sleep_or_stop`]).
//!
//! # May import
//! Every domain layer below it ([`crate::model`], [`crate::config`], [`crate::graph`],
//! [`crate::queue`], [`crate::directory`]); never an observability module (it reports through
//! [`crate::model::Events`]).

mod acks;
mod pause;
pub mod poll;
pub mod quarantine;
pub mod worker;

pub use pause::sleep_or_stop;
pub use poll::{PollError, Poller};
pub use quarantine::Quarantine;
pub use worker::Worker;
