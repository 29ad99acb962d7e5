//! Microsoft Graph, read-only: authentication, the HTTP client with its retry policy, the page
//! model, the delta stream's state machine, scopes, identities and point lookups.
//!
//! Data flows `auth` → `client` → `page` (raw JSON → typed pages); [`delta`] decides, without
//! I/O, which link a delta round requests next and when it ends (the loop that fetches and
//! commits is `crate::sync::poll`); `lookup` asks Graph where one group stands (live,
//! soft-deleted, purged) before AD is touched.
//!
//! # Guarantees
//! - Reads the cloud and nothing else: nothing here writes the store or AD.
//! - Pages are parsed strictly in structure and leniently in content ([`page`]); a page that is
//!   rejected is never handed on.
//!
//! # May import
//! [`crate::model`] and [`crate::config`]; never `queue`, `directory`, `sync`, `cli` or an
//! observability module (what it has to report goes through [`crate::model::Events`]).

pub mod auth;
pub mod client;
pub mod delta;
pub mod identity;
pub mod lookup;
pub mod page;
pub mod scope;

pub use client::{GraphClient, GraphError};
pub use lookup::CloudGroupState;
