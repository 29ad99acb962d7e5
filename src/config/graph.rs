//! `[graph]` and `[graph.scope]`: the Entra tenant, the app registration and its credential,
//! the Graph endpoints and pacing, and which cloud groups are written back.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Secret, duration};

/// `[graph]`: the Entra tenant and app registration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    /// Tenant id or primary domain.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret (or env `ENTRA_WRITEBACK_GRAPH_CLIENT_SECRET`).
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// PEM file holding the app certificate and its private key.
    #[serde(default)]
    pub client_certificate: Option<PathBuf>,
    /// Login endpoint; national clouds and graph-sim override it.
    #[serde(default = "default_authority")]
    pub authority_url: String,
    /// Graph endpoint.
    #[serde(default = "default_graph_url")]
    pub graph_url: String,
    /// How often a delta round starts.
    #[serde(default = "default_poll", deserialize_with = "duration")]
    pub poll_interval: Duration,
    /// Timeout of one HTTP request to Graph or the login endpoint.
    #[serde(default = "default_request_timeout", deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// How the certificate credential signs its client assertion: `RS256` (default) or `PS256`.
    #[serde(default)]
    pub client_assertion_algorithm: AssertionAlgorithm,
    /// Ceiling on Graph requests per second, shared by every request of the process: never more
    /// than this many in any one second (a sliding window; fractions allowed). Default 100: below Graph's limit for directory
    /// reads in the smallest tenants (3,500 resource units per 10 s per app and tenant; a delta
    /// page costs about 1), and far above what sequential rounds need, so it only ever binds
    /// when something goes wrong.
    #[serde(default = "default_max_rps")]
    pub max_requests_per_second: f64,
    /// Send `Prefer: return=minimal` on incremental rounds: Graph then returns only the
    /// properties that changed (absent = unchanged, `null` = cleared). Off by default.
    #[serde(default)]
    pub prefer_return_minimal: bool,
    /// Most members the mirror keeps for one group (default 250,000, Azure AD Connect's
    /// ceiling). A group listing more is refused: not written to AD (an AD copy is left as it
    /// is, never shrunk), its changes dead-lettered with class `member_limit`.
    #[serde(default = "default_max_members")]
    pub max_members_per_group: usize,
    /// Most objects one delta page may carry (default 10,000; Graph sends at most a few
    /// hundred). A larger page is rejected before it is parsed; the cursor stays.
    #[serde(default = "default_max_page_items")]
    pub max_page_items: usize,
    /// Largest Graph response body read, in bytes (default 64 MiB). A larger one is refused
    /// while it is read (Content-Length or a streaming cap); the cursor stays.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// Most pages one delta round may take before it is stopped with an error (default
    /// 200,000): a guard against an endless nextLink chain. The cursor stays where the last
    /// committed page left it.
    #[serde(default = "default_max_pages")]
    pub max_pages_per_round: usize,
    /// Whether Connect v2's per-group `writebackConfiguration` decides which groups are
    /// written back and as what AD type. `honour` reads groups delta from Graph's beta endpoint.
    #[serde(default)]
    pub writeback_configuration: WritebackConfigurationMode,
    /// Which cloud groups are written back (`[graph.scope]`).
    #[serde(default)]
    pub scope: ScopeConfig,
}

/// `graph.writeback_configuration`: what the per-group settings of Connect's group writeback
/// v2 (`writebackConfiguration { isEnabled, onPremisesGroupType }`, Graph beta) do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WritebackConfigurationMode {
    /// Not read: the scope and the contract's type mapping decide (Cloud Sync's behaviour).
    #[default]
    Ignore,
    /// Read from the beta groups delta and obeyed: `isEnabled = false` keeps a group out, an
    /// unset `isEnabled` keeps Connect's defaults (Microsoft 365 groups in, security groups
    /// out), and `onPremisesGroupType` sets the AD `groupType`.
    #[serde(alias = "honor")]
    Honour,
}

/// Default of `graph.max_members_per_group`: Azure AD Connect's ceiling.
pub const DEFAULT_MAX_MEMBERS_PER_GROUP: usize = 250_000;
/// Default of `graph.max_page_items`.
pub const DEFAULT_MAX_PAGE_ITEMS: usize = 10_000;
/// Default of `graph.max_response_bytes` (64 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 << 20;
/// Default of `graph.max_pages_per_round`.
pub const DEFAULT_MAX_PAGES_PER_ROUND: usize = 200_000;

fn default_max_members() -> usize {
    DEFAULT_MAX_MEMBERS_PER_GROUP
}
fn default_max_page_items() -> usize {
    DEFAULT_MAX_PAGE_ITEMS
}
fn default_max_response_bytes() -> u64 {
    DEFAULT_MAX_RESPONSE_BYTES
}
fn default_max_pages() -> usize {
    DEFAULT_MAX_PAGES_PER_ROUND
}

/// Signature algorithm of the client-assertion JWT (certificate credentials).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum AssertionAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[default]
    RS256,
    /// RSASSA-PSS with SHA-256 (what Microsoft's current documentation shows).
    PS256,
}

/// A kind of group, as the scope's `group_types` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupTypeFilter {
    /// Security-enabled groups that are not Microsoft 365 groups.
    Security,
    /// Microsoft 365 groups (`groupTypes` contains `Unified`), security-enabled or not.
    Microsoft365,
}

/// `[graph.scope]`: which cloud groups are written back. Groups synced from AD
/// (`onPremisesSyncEnabled = true`) are never in scope, whatever this says (that would loop).
/// A group that stops matching is treated like a soft delete (`ad.soft_delete`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeConfig {
    /// Kinds of groups written back; default `["security", "microsoft365"]`.
    #[serde(default = "default_group_types")]
    pub group_types: Vec<GroupTypeFilter>,
    /// Whether dynamic-membership groups (`groupTypes` contains `DynamicMembership`) are included.
    #[serde(default = "default_true")]
    pub dynamic_groups: bool,
    /// Allow-list of group object ids; empty = every group.
    #[serde(default)]
    pub group_ids: Vec<String>,
    /// Regular expression the `displayName` must match (unanchored; use `^…$` to anchor).
    #[serde(default)]
    pub display_name_pattern: Option<String>,
    /// Regular expression excluding groups whose `displayName` matches it.
    #[serde(default)]
    pub display_name_exclude: Option<String>,
}

impl Default for ScopeConfig {
    fn default() -> Self {
        ScopeConfig {
            group_types: default_group_types(),
            dynamic_groups: true,
            group_ids: Vec::new(),
            display_name_pattern: None,
            display_name_exclude: None,
        }
    }
}

fn default_group_types() -> Vec<GroupTypeFilter> {
    vec![GroupTypeFilter::Security, GroupTypeFilter::Microsoft365]
}
fn default_true() -> bool {
    true
}
fn default_max_rps() -> f64 {
    100.0
}
fn default_authority() -> String {
    "https://login.microsoftonline.com".into()
}
fn default_graph_url() -> String {
    "https://graph.microsoft.com".into()
}
fn default_poll() -> Duration {
    Duration::from_secs(15)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(60)
}
