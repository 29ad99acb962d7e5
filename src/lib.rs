//! entra-writeback: Microsoft Entra ID groups written back into on-premises Active Directory,
//! near-real-time.
//!
//! The data flows through the modules in this order:
//! - [`graph`]: OAuth2 tokens, the Graph client and its retry policy, the delta-round state
//!   machine and the page model. Each page is committed to
//! - [`queue`]: the durable sled store: pending changes, the desired-state mirror, the journal,
//!   dead letters, cursors. The
//! - [`worker`] takes changes in order and applies them through
//! - [`directory`]: LDAP connection, cloud group → AD entry mapping, planning and applying.
//!
//! Beside them: [`config`] (the TOML contract), [`cli`] (commands), [`http`] and [`metrics`]
//! (monitoring), [`status`] and [`progress`] (the status page's history, initial-sync
//! progress) and [`health`] (readiness). The Graph simulator the tests run against is its own
//! crate, `graph-sim` (`crates/graph-sim`).

pub mod cli;
pub mod config;
pub mod directory;
pub mod graph;
pub mod health;
pub mod http;
pub mod metrics;
pub mod model;
pub mod progress;
pub mod queue;
pub mod status;
pub mod sync;
