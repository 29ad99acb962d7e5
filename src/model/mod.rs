//! The shared vocabulary: the words every layer uses (cloud object patches, member
//! references, group properties, user identities, changes, delete reasons, DN and SID
//! helpers, the clock) and nothing else.
//!
//! # Guarantees
//! - Imports nothing else of the crate, so every layer can use it and no cycle can pass
//!   through it.
//! - Pure: no I/O apart from reading the clock in [`now_ms`].

mod change;
mod cloud;
pub mod dn;
pub mod event;
mod group;
pub mod sid;

pub use change::*;
pub use cloud::*;
pub use event::{Event, Events};
pub use group::*;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, the store's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Which delta stream a cursor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// `groups/delta`
    Groups,
    /// `users/delta`
    Users,
}

impl Resource {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Groups => "groups",
            Resource::Users => "users",
        }
    }
}
