//! entra-writeback: Microsoft Entra ID groups written back into on-premises Active Directory,
//! near-real-time.
//!
//! The layers, each importing only those before it (see `ARCHITECTURE.md`; checked by
//! `tests/architecture.rs`):
//! - [`model`]: the shared vocabulary (cloud patches, member references, group properties,
//!   changes, DN and SID helpers) and the [`model::Event`]s the domain reports.
//! - [`config`]: the TOML contract.
//! - [`graph`]: OAuth2 tokens, the Graph client and its retry policy, the delta stream's state
//!   machine and the page parser.
//! - [`queue`]: the durable sled store: pending changes, the desired-state mirror, the journal,
//!   dead letters, cursors.
//! - [`directory`]: LDAP connection, cloud group → AD entry mapping, planning and applying.
//! - [`sync`]: the poller (Graph pages into the queue), the worker (queue into AD), quarantine.
//!
//! Beside them: [`observe`] (metrics, status history, progress, readiness: consumers of the
//! events, importing only `model`), [`http`] (the monitoring listener) and [`cli`] (the
//! commands; the composition root). The Graph simulator the tests run against is its own
//! crate, `graph-sim` (`crates/graph-sim`).
#![warn(clippy::too_many_lines)]

pub mod cli;
pub mod config;
pub mod directory;
pub mod graph;
pub mod http;
pub mod model;
pub mod observe;
pub mod queue;
pub mod sync;
