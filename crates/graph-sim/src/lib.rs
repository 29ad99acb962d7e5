//! graph-sim: an in-process Microsoft Graph simulator for integration tests, demos and benchmarks
//! (the `graph-sim` binary of this crate serves it over HTTP, see `src/main.rs`).
//!
//! It serves the small slice of Graph and Entra ID that entra-writeback talks to, and it follows
//! the documented delta-query semantics (see `shared/reference/graph-delta.md`) so that a client
//! that is correct against the simulator is correct against the documented service.
//!
//! # What the simulator guarantees
//! - **Tokens:** `POST /{tenant}/oauth2/v2.0/token` implements the client-credentials grant with a
//!   client secret (form fields or HTTP Basic) or a JWT client assertion. For assertions the header
//!   thumbprint (`x5t` / `x5t#S256`), `iss` = `sub` = client id, `aud` = the token URL, `jti`,
//!   `exp` and a lifetime of at most 10 minutes are checked, and the RS256 / PS256 signature is
//!   verified when the client is registered with its `certificate_pem` (with thumbprints only,
//!   it is not). An unknown tenant answers `AADSTS90002`, an unknown app `AADSTS700016`, a bad
//!   secret `AADSTS7000215`, an unknown certificate or bad signature `AADSTS700027`; the request
//!   log records each token request's non-secret form fields and, for every request, the
//!   serial number of the access token issued or presented. Access tokens expire after
//!   [`SimConfig::token_lifetime`] on the simulator clock (see [`Simulator::advance_clock`]);
//!   an expired, revoked or unknown token gets 401 `InvalidAuthenticationToken`.
//! - **Delta rounds:** `GET /v1.0/{groups,users}/delta` returns, per round, a snapshot taken when
//!   the round starts. Every page carries exactly one of `@odata.nextLink` / `@odata.deltaLink`.
//!   An initial round lists every existing object (soft- and hard-deleted ones are left out); an
//!   incremental round lists every object whose *selected* properties or membership changed after
//!   the token was issued, with net per-member changes, `@removed` `changed` for a soft delete,
//!   `deleted` for a hard delete or purge, and a restored (or re-created) object in full.
//! - **Property modes:** default mode repeats every selected property that has been set (a
//!   property cleared to `null` is still "set" and is returned as `null`); `Prefer:
//!   return=minimal` on a deltaLink request returns only the properties changed since the token.
//!   A property absent from the tenant file was never set and is never returned.
//! - **Large groups:** a group item carrying more than [`SimConfig::member_slice`] members is split
//!   into several items with identical properties; the slices are spread out between other
//!   objects' items when there are any, and may land on different pages. A page holds at most
//!   `member_slice` members in all, so a large group's slice fills a page, as on Graph.
//! - **Hard deletes cascade:** hard-deleting a user or group removes it from every group it was a
//!   direct member of (so those groups report the member `@removed`); soft deletes keep
//!   memberships, as the reference documents.
//! - **Single objects:** `GET /v1.0/groups/{id}`, `GET /v1.0/users/{id}` (`$select` honoured)
//!   answer 200 for a live object and 404 `Request_ResourceNotFound` for a soft-deleted, purged
//!   or unknown one; `POST /v1.0/directoryObjects/getByIds` lists live objects only.
//! - **Deleted items:** `GET /v1.0/directory/deletedItems/{id}` answers 200 with the object
//!   (`@odata.type`, `deletedDateTime`, its properties) while it is soft-deleted and 404
//!   `Request_ResourceNotFound` when it is live, purged or unknown;
//!   `GET /v1.0/directory/deletedItems/microsoft.graph.group` (or `.user`) lists them, paged
//!   with `@odata.nextLink` by `$top` (default [`SimConfig::page_size`]). See [`deleted`].
//!   Soft-deleted objects stay there until restored or purged (no 30-day expiry).
//! - **Properties pass through:** any property set through the tenant file or the admin API is
//!   returned when selected, e.g. `onPremisesSecurityIdentifier` on a group synced from AD.
//! - **Tokens are instance-bound:** a deltaLink from another simulator process is rejected with
//!   400 `syncStateNotFound`; a malformed one with 400 `badRequest`.
//! - **Faults** (`/admin/faults`) inject throttling (429/503/504, with or without a possibly
//!   fractional `Retry-After`), expired delta tokens (410 + `Location`, or 400, with any error
//!   code), malformed pages, duplicated and reordered items, revoked access tokens,
//!   endless chains of distinct nextLinks and token-endpoint failures
//!   (throttling may be limited to a path prefix); `/admin/requests` records every non-admin
//!   request so tests can assert on retries, backoff and `Prefer` headers. Every `/v1.0/*`
//!   route, deletedItems included, passes the throttling fault, then the bearer-token check.
//!
//! The admin API (no authentication) is documented in [`admin`].

pub mod admin;
pub mod cursor;
pub mod deleted;
pub mod delta_rounds;
pub mod faults;
pub mod resources;
pub mod server;
pub mod sync_behavior;
pub mod tenant;
pub mod token_endpoint;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use admin::AdminOp;
pub use server::{base_url, router, serve, serve_with_shutdown};
pub use tenant::{Kind, MemberKey, Tenant};

/// Tunables for a simulator instance; the defaults mirror what Graph does.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Items (objects or group slices) per delta page; also the default page size of the
    /// deletedItems lists (when the request has no `$top`).
    pub page_size: usize,
    /// Members carried by one group item before the group is split into several items, and
    /// by one page in all.
    pub member_slice: usize,
    /// Lifetime of issued access tokens (`expires_in`).
    pub token_lifetime: Duration,
    /// Insert an empty page carrying only a nextLink between real pages (Graph does this).
    pub empty_pages: bool,
    /// How many paged rounds keep their skiptokens alive; the oldest are forgotten first.
    pub max_rounds: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            page_size: 100,
            member_slice: 500,
            token_lifetime: Duration::from_secs(3599),
            empty_pages: false,
            max_rounds: 64,
        }
    }
}

/// Why a simulator operation failed; the HTTP layer maps each variant to a status code.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The tenant file could not be parsed or is inconsistent.
    #[error("invalid tenant file: {0}")]
    TenantFile(String),
    /// The request is malformed (HTTP 400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The object does not exist in the required state (HTTP 404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The object exists but is in the wrong state, e.g. soft-deleted (HTTP 409).
    #[error("conflict: {0}")]
    Conflict(String),
}

/// Everything behind the simulator's lock.
pub(crate) struct Inner {
    pub(crate) config: SimConfig,
    pub(crate) tenant: Tenant,
    pub(crate) tokens: token_endpoint::AccessTokens,
    pub(crate) rounds: delta_rounds::Rounds,
    pub(crate) faults: faults::Faults,
    pub(crate) log: server::RequestLog,
    /// Added to the wall clock for token expiry, so tests can fast-forward time.
    pub(crate) clock_offset: Duration,
    /// Random per-process value baked into delta tokens and skiptokens.
    pub(crate) nonce: u32,
    pub(crate) started: Instant,
}

impl Inner {
    /// The simulator clock (wall clock plus any [`Simulator::advance_clock`] offset).
    pub(crate) fn now(&self) -> Instant {
        Instant::now() + self.clock_offset
    }
}

/// A shared handle on one simulated tenant; clones share the same state.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Mutex<Inner>>,
}

impl Simulator {
    /// Builds a simulator from a tenant file (the JSON shape is documented in [`tenant`]).
    pub fn from_tenant_json(json: &str, config: SimConfig) -> Result<Simulator, SimError> {
        let tenant = Tenant::from_json(json)?;
        let nonce = random_u64() as u32;
        let inner = Inner {
            rounds: delta_rounds::Rounds::new(config.max_rounds),
            config,
            tenant,
            tokens: token_endpoint::AccessTokens::default(),
            faults: faults::Faults::default(),
            log: server::RequestLog::default(),
            clock_offset: Duration::ZERO,
            nonce,
            started: Instant::now(),
        };
        Ok(Simulator {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    /// The configuration this simulator runs with.
    pub fn config(&self) -> SimConfig {
        self.lock().config.clone()
    }

    /// Moves the simulator clock forward, so token expiry can be tested without sleeping.
    pub fn advance_clock(&self, by: Duration) {
        self.lock().clock_offset += by;
    }

    /// Applies admin operations atomically (all or none) and returns the new tenant version.
    pub fn apply(&self, ops: Vec<AdminOp>) -> Result<u64, SimError> {
        let mut inner = self.lock();
        admin::apply_ops(&mut inner.tenant, ops)
    }

    /// The current tenant in tenant-file shape, plus `deleted_groups` / `deleted_users`.
    pub fn state(&self) -> serde_json::Value {
        self.lock().tenant.to_state_json()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A non-cryptographic random value (std's per-process hasher keys plus the time).
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}
