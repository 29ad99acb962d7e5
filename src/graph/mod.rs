//! Microsoft Graph: authentication, the HTTP client with its retry policy, the delta-round state
//! machine and the page model.
//!
//! Data flows `auth` → `client` → `delta` (which commits each page to the [`crate::queue`]);
//! `lookup` asks Graph where one group stands (live, soft-deleted, purged) before AD is touched.

pub mod auth;
pub mod certificate;
pub mod client;
pub mod delta;
pub mod identity;
pub mod limiter;
pub mod lookup;
pub mod page;
pub mod scope;

pub use client::{GraphClient, GraphError};
pub use delta::{PollError, Poller, RoundReport};
pub use lookup::CloudGroupState;
