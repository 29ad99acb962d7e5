//! Configuration: the TOML file fixed by the contract, plus secrets from the environment.
//!
//! Guarantees: an unknown key, a missing required key or a bad value is an error naming the key
//! (`graph.tenant_id`, `ad.url`, ...); secrets never appear in `Debug` output or error messages.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Environment variable that may hold the Graph client secret instead of the file.
pub const ENV_GRAPH_SECRET: &str = "ENTRA_WRITEBACK_GRAPH_CLIENT_SECRET";
/// Environment variable that may hold the AD bind password instead of the file.
pub const ENV_AD_PASSWORD: &str = "ENTRA_WRITEBACK_AD_BIND_PASSWORD";
/// Environment variable that may hold `[http] status_token` instead of the file.
pub const ENV_STATUS_TOKEN: &str = "ENTRA_WRITEBACK_HTTP_STATUS_TOKEN";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file we tried.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or a key is unknown, missing or has a bad value.
    #[error("config file {path}: key `{key}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted path of the offending key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    /// Configuration errors never heal by retrying.
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// A secret string: compared and used, never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Secret {
    /// The value is wiped from memory when the last copy goes.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where cloud groups come from.
    pub graph: GraphConfig,
    /// Where they are written to, and how they look there.
    pub ad: AdConfig,
    /// Where the durable queue lives.
    pub state: StateConfig,
    /// The monitoring listener.
    #[serde(default)]
    pub http: HttpConfig,
    /// Worker and queue tuning.
    #[serde(default)]
    pub sync: SyncConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Set by [`Config::load`] when the file holds a secret and others may read it.
    #[serde(skip)]
    pub exposed_secrets: Option<String>,
}

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
    /// Which cloud groups are written back (`[graph.scope]`).
    #[serde(default)]
    pub scope: ScopeConfig,
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

/// `[ad]`: the directory and the shape of what lands in it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdConfig {
    /// `ldap://host` or `ldaps://host`.
    pub url: String,
    /// DN of the service account.
    pub bind_dn: String,
    /// Its password (or env `ENTRA_WRITEBACK_AD_BIND_PASSWORD`).
    #[serde(default)]
    pub bind_password: Option<Secret>,
    /// CA bundle (PEM) that signs the DC's certificate; system roots otherwise.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Upgrade `ldap://` with StartTLS (`ldaps://` is TLS from the start and must not set it).
    #[serde(default)]
    pub starttls: bool,
    /// Accept a plain `ldap://` URL without StartTLS, i.e. send the bind password and every
    /// change in clear. Off by default: such a config is a startup error unless this is true.
    /// Only for a lab DC on a trusted network.
    #[serde(default)]
    pub allow_insecure_ldap: bool,
    /// Page size of the Simple Paged Results control (RFC 2696) on LDAP searches that can return
    /// many entries (1..=1000, default 500). Windows returns at most `MaxPageSize` (1,000 by
    /// default) entries per unpaged search or page, so larger pages are cut short there.
    #[serde(default = "default_search_page_size")]
    pub search_page_size: usize,
    /// The OU written-back groups are created in; the service owns only anchored objects here.
    pub target_ou: String,
    /// A round that would delete more groups than this holds the deletes for approval.
    #[serde(default = "default_delete_threshold")]
    pub delete_threshold: usize,
    /// What a soft delete (or a group leaving scope) does to the AD group.
    #[serde(default)]
    pub soft_delete: SoftDeleteAction,
    /// Member values per LDAP modify.
    #[serde(default = "default_member_batch")]
    pub member_batch_size: usize,
    /// Timeout of one LDAP operation.
    #[serde(default = "default_ldap_timeout", deserialize_with = "duration")]
    pub operation_timeout: Duration,
    /// OU for Microsoft 365 groups, when they should not go to `target_ou`.
    #[serde(default)]
    pub target_ou_m365: Option<String>,
    /// OU that `soft_delete = "move"` moves groups to (owned by the service too).
    #[serde(default)]
    pub soft_delete_ou: Option<String>,
    /// OUs the service used to write to (before a rule change): it still owns its anchored
    /// groups there and moves them to where the rules now place them.
    #[serde(default)]
    pub previous_ous: Vec<String>,
    /// CN template: `{displayName}`, `{idSuffix}`, `{id}`; must contain `{id}` or `{idSuffix}`.
    #[serde(default = "default_cn_template")]
    pub cn_template: String,
}

impl AdConfig {
    /// Every OU the service writes to, hence owns anchored groups in.
    pub fn owned_ous(&self) -> Vec<String> {
        let mut ous = vec![self.target_ou.clone()];
        ous.extend(self.target_ou_m365.iter().cloned());
        ous.extend(self.soft_delete_ou.iter().cloned());
        ous.extend(self.previous_ous.iter().cloned());
        ous.dedup();
        ous
    }
}

/// The CN template used when `ad.cn_template` is not set.
pub const DEFAULT_CN_TEMPLATE: &str = "{displayName}_{idSuffix}";

fn default_cn_template() -> String {
    DEFAULT_CN_TEMPLATE.to_string()
}

/// Whether a CN template keeps names unique: it must contain `{id}` or `{idSuffix}`.
pub fn valid_cn_template(template: &str) -> bool {
    template.contains("{id}") || template.contains("{idSuffix}")
}

/// What happens to an AD group whose cloud group was soft-deleted or left scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SoftDeleteAction {
    /// Leave it as it is (Microsoft's default).
    #[default]
    Freeze,
    /// Delete it.
    Delete,
    /// Turn it into a universal distribution group (no longer grants access).
    ConvertToDistribution,
    /// Move it to `ad.soft_delete_ou`.
    Move,
}

/// `[state]`: the sled database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Directory of the database; locked against a second instance.
    pub path: PathBuf,
    /// How long applied changes stay in the journal for `replay`.
    #[serde(default = "default_journal_age", deserialize_with = "duration")]
    pub journal_retention: Duration,
    /// At most this many journal entries are kept.
    #[serde(default = "default_journal_max")]
    pub journal_max_entries: usize,
}

/// `[http]`: metrics and health endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address of `/metrics`, `/healthz`, `/readyz`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Bearer token for `/` and `/status.json` (they name groups and DNs). Required for them
    /// on a non-loopback `listen` (without it they are not served); when set, required on
    /// loopback too. Env `ENTRA_WRITEBACK_HTTP_STATUS_TOKEN` wins over the file.
    #[serde(default)]
    pub status_token: Option<Secret>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
            status_token: None,
        }
    }
}

/// `[sync]`: worker behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Attempts of a change on transient errors before `run --once` gives up on it.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry delay.
    #[serde(default = "default_min_backoff", deserialize_with = "duration")]
    pub min_backoff: Duration,
    /// Longest retry delay.
    #[serde(default = "default_max_backoff", deserialize_with = "duration")]
    pub max_backoff: Duration,
    /// Groups applied concurrently (one group is never applied twice at once).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Consecutive failed rounds or applies before quarantine (0 = never).
    #[serde(default = "default_quarantine_after")]
    pub quarantine_after: u32,
    /// The slow cadence while quarantined.
    #[serde(default = "default_quarantine_interval", deserialize_with = "duration")]
    pub quarantine_interval: Duration,
    /// How often every managed group is compared with the desired state and hand edits in AD
    /// are reverted (`0s` disables).
    #[serde(default = "default_reconcile", deserialize_with = "duration")]
    pub reconcile_interval: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            max_attempts: default_attempts(),
            min_backoff: default_min_backoff(),
            max_backoff: default_max_backoff(),
            concurrency: default_concurrency(),
            reconcile_interval: default_reconcile(),
            quarantine_after: default_quarantine_after(),
            quarantine_interval: default_quarantine_interval(),
        }
    }
}

impl SyncConfig {
    /// The one retry schedule of the service (Graph requests, AD applies, connecting to AD):
    /// exponential from `min_backoff` to `max_backoff` with jitter, `max_attempts` tries in
    /// all. No wait is shorter than `floor`.
    pub fn backoff(&self, floor: Duration) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.min_backoff.max(floor))
            .with_max_delay(self.max_backoff.max(floor))
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
            .with_jitter()
    }
}

/// `[log]`: output format.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `auto` (human on a terminal, JSON otherwise), `human` or `json`.
    #[serde(default)]
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human on a terminal, JSON otherwise.
    #[default]
    Auto,
    /// Always human-readable.
    Human,
    /// Always JSON lines.
    Json,
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
fn default_ldap_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_delete_threshold() -> usize {
    100
}
fn default_member_batch() -> usize {
    1000
}
fn default_search_page_size() -> usize {
    500
}
fn default_journal_age() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
fn default_journal_max() -> usize {
    1_000_000
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}
fn default_attempts() -> u32 {
    6
}
fn default_quarantine_after() -> u32 {
    10
}
fn default_quarantine_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_reconcile() -> Duration {
    Duration::from_secs(3600)
}
fn default_concurrency() -> usize {
    4
}
fn default_min_backoff() -> Duration {
    Duration::from_millis(500)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(60)
}

/// Whether an http(s) URL's host is a loopback address: 127.0.0.0/8, `::1` (also as
/// `::ffff:127.x.y.z`) or the name `localhost`.
/// The permission bits of a file (`None` where unknown: not Unix, or unreadable metadata).
fn file_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .ok()
            .map(|m| m.permissions().mode() & 0o777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The secret keys given in the file itself (not through the environment).
fn secrets_set_in(text: &str) -> Vec<&'static str> {
    let Ok(doc) = text.parse::<toml::Table>() else {
        return Vec::new(); // `parse` has already accepted it; nothing to report otherwise
    };
    [
        ("graph", "client_secret", "graph.client_secret"),
        ("ad", "bind_password", "ad.bind_password"),
        ("http", "status_token", "http.status_token"),
    ]
    .into_iter()
    .filter(|(table, key, _)| doc.get(*table).and_then(|t| t.get(*key)).is_some())
    .map(|(_, _, name)| name)
    .collect()
}

/// The warning for a config file that holds secrets (`keys`, set in the file itself) and that
/// its group or others may read, or `None` when it is fine.
fn exposed_secrets(path: &Path, mode: Option<u32>, keys: &[&str]) -> Option<String> {
    let mode = mode?;
    (mode & 0o077 != 0 && !keys.is_empty()).then(|| {
        format!(
            "config file {} holds {} and is readable by its group or others (mode {mode:03o}): \
             chmod 600 it, or pass the secrets through the environment",
            path.display(),
            keys.join(", ")
        )
    })
}

fn is_loopback_host(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    }
}

/// Whether a parsed DN is made only of `DC=` components (a naming context, e.g. the domain
/// root `DC=corp,DC=example,DC=com`); `domainComponent`'s OID form counts too.
fn is_naming_context(rdns: &[(String, String)]) -> bool {
    !rdns.is_empty()
        && rdns.iter().all(|(attr, _)| {
            attr.eq_ignore_ascii_case("dc")
                || attr.eq_ignore_ascii_case("domainComponent")
                || attr == "0.9.2342.19200300.100.1.25"
        })
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("{e} (use e.g. \"15s\")")))
}

impl Config {
    /// Reads and validates the file, then takes secrets from the environment where set.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Self::parse(&text, path, |name| std::env::var(name).ok())?;
        cfg.exposed_secrets = exposed_secrets(path, file_mode(path), &secrets_set_in(&text));
        Ok(cfg)
    }

    /// Parses `text`; `env` looks up secret overrides (a function so tests need no process env).
    pub fn parse(
        text: &str,
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message,
        };
        let de = toml::Deserializer::parse(text)
            .map_err(|e| invalid("(syntax)".into(), e.to_string()))?;
        let mut cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            invalid(key, e.into_inner().message().trim().to_string())
        })?;
        if let Some(v) = env(ENV_GRAPH_SECRET).filter(|v| !v.is_empty()) {
            cfg.graph.client_secret = Some(Secret::new(v));
        }
        if let Some(v) = env(ENV_AD_PASSWORD).filter(|v| !v.is_empty()) {
            cfg.ad.bind_password = Some(Secret::new(v));
        }
        if let Some(v) = env(ENV_STATUS_TOKEN).filter(|v| !v.is_empty()) {
            cfg.http.status_token = Some(Secret::new(v));
        }
        cfg.validate().map_err(|(k, m)| invalid(k.into(), m))?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.graph.client_secret.is_none() && self.graph.client_certificate.is_none() {
            return Err((
                "graph.client_secret",
                format!("missing: set it, or graph.client_certificate, or env {ENV_GRAPH_SECRET}"),
            ));
        }
        for (key, value) in [
            ("graph.authority_url", &self.graph.authority_url),
            ("graph.graph_url", &self.graph.graph_url),
        ] {
            match url::Url::parse(value) {
                Ok(u) if u.scheme() == "https" => {}
                Ok(u) if u.scheme() == "http" => {
                    if !is_loopback_host(&u) {
                        return Err((
                            key,
                            format!(
                                "`{value}` is plain http:// to a host that is not loopback: tokens \
                                 and client credentials would cross the network in clear; use \
                                 https:// (http:// is accepted only for 127.0.0.0/8, ::1 and \
                                 localhost, e.g. graph-sim)"
                            ),
                        ));
                    }
                }
                _ => return Err((key, format!("`{value}` is not an http(s) URL"))),
            }
        }
        match url::Url::parse(&self.ad.url) {
            Ok(u) if matches!(u.scheme(), "ldap" | "ldaps") && u.host_str().is_some() => {
                if self.ad.starttls && u.scheme() == "ldaps" {
                    return Err((
                        "ad.starttls",
                        "StartTLS applies to ldap:// URLs only (ldaps:// is TLS already)".into(),
                    ));
                }
                if u.scheme() == "ldap" && !self.ad.starttls && !self.ad.allow_insecure_ldap {
                    return Err((
                        "ad.url",
                        "an ldap:// URL without StartTLS sends the bind password and every \
                         change in clear: use ldaps://, or set ad.starttls = true, or (lab only) \
                         ad.allow_insecure_ldap = true"
                            .into(),
                    ));
                }
            }
            _ => {
                return Err((
                    "ad.url",
                    format!("`{}` is not an ldap:// or ldaps:// URL", self.ad.url),
                ));
            }
        }
        if let Some(t) = &self.http.status_token
            && (t.expose().is_empty()
                || t.expose()
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err((
                "http.status_token",
                "must be non-empty, without spaces or control characters (it is sent as \
                 `Authorization: Bearer <token>`)"
                    .into(),
            ));
        }
        if self.ad.bind_password.is_none() {
            return Err((
                "ad.bind_password",
                format!("missing: set it or env {ENV_AD_PASSWORD}"),
            ));
        }
        let mut ous = vec![("ad.target_ou", Some(&self.ad.target_ou))];
        ous.push(("ad.target_ou_m365", self.ad.target_ou_m365.as_ref()));
        ous.push(("ad.soft_delete_ou", self.ad.soft_delete_ou.as_ref()));
        ous.extend(
            self.ad
                .previous_ous
                .iter()
                .map(|ou| ("ad.previous_ous", Some(ou))),
        );
        for (key, ou) in ous {
            let Some(ou) = ou else { continue };
            match crate::model::dn::parse_dn(ou) {
                None => return Err((key, format!("`{ou}` is not a distinguished name"))),
                Some(rdns) if is_naming_context(&rdns) => {
                    return Err((
                        key,
                        format!(
                            "`{ou}` is the naming context (the domain root) itself: the service \
                             owns what it writes below this DN, so name a dedicated OU, e.g. \
                             `OU=Cloud Groups,{ou}`"
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        if self.ad.soft_delete == SoftDeleteAction::Move && self.ad.soft_delete_ou.is_none() {
            return Err((
                "ad.soft_delete_ou",
                "required when ad.soft_delete = \"move\"".into(),
            ));
        }
        if !valid_cn_template(&self.ad.cn_template) {
            return Err((
                "ad.cn_template",
                "must contain {id} or {idSuffix} so names stay unique".into(),
            ));
        }
        if self.ad.member_batch_size == 0 || self.ad.member_batch_size > 5000 {
            return Err(("ad.member_batch_size", "must be between 1 and 5000".into()));
        }
        if !(1..=1000).contains(&self.ad.search_page_size) {
            return Err((
                "ad.search_page_size",
                "must be between 1 and 1000 (Windows' default MaxPageSize is 1000)".into(),
            ));
        }
        let rps = self.graph.max_requests_per_second;
        if !(rps.is_finite() && (0.1..=10_000.0).contains(&rps)) {
            return Err((
                "graph.max_requests_per_second",
                "must be between 0.1 and 10000".into(),
            ));
        }
        let scope = &self.graph.scope;
        if scope.group_types.is_empty() {
            return Err((
                "graph.scope.group_types",
                "must name at least one of \"security\", \"microsoft365\"".into(),
            ));
        }
        if scope.group_ids.iter().any(|id| id.trim().is_empty()) {
            return Err(("graph.scope.group_ids", "contains an empty id".into()));
        }
        for (key, pattern) in [
            (
                "graph.scope.display_name_pattern",
                &scope.display_name_pattern,
            ),
            (
                "graph.scope.display_name_exclude",
                &scope.display_name_exclude,
            ),
        ] {
            if let Some(p) = pattern
                && let Err(e) = regex::Regex::new(p)
            {
                return Err((key, format!("not a valid regular expression: {e}")));
            }
        }
        if self.graph.poll_interval.is_zero() {
            return Err(("graph.poll_interval", "must be more than zero".into()));
        }
        Ok(())
    }

    /// The config file named by `--config`, env `ENTRA_WRITEBACK_CONFIG`, or the default.
    pub fn default_path() -> PathBuf {
        PathBuf::from("./entra-writeback.toml")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[graph]
tenant_id = "contoso.onmicrosoft.com"
client_id = "c"
client_secret = "file-secret"
poll_interval = "5s"
[ad]
url = "ldap://127.0.0.2"
starttls = true
bind_dn = "CN=svc,DC=example,DC=test"
bind_password = "pw"
target_ou = "OU=Cloud Groups,DC=example,DC=test"
[state]
path = "/tmp/x"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("t.toml"), |_| None)
    }

    #[test]
    fn good_file_parses_with_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.graph.poll_interval, Duration::from_secs(5));
        assert_eq!(c.ad.delete_threshold, 100);
        assert_eq!(c.http.listen.port(), 9464);
        assert_eq!(c.graph.graph_url, "https://graph.microsoft.com");
    }

    #[test]
    fn unknown_key_is_named() {
        let text = GOOD.replace("[state]", "[state]\nbogus = 1");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("state.bogus"), "{err}");
    }

    #[test]
    fn missing_key_is_named() {
        let text = GOOD.replace("tenant_id = \"contoso.onmicrosoft.com\"\n", "");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("graph") && err.contains("tenant_id"), "{err}");
    }

    #[test]
    fn bad_value_is_named() {
        let text = GOOD.replace("\"5s\"", "\"soon\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("graph.poll_interval"), "{err}");
        let text = GOOD.replace("ldap://127.0.0.2", "http://x");
        assert!(parse(&text).unwrap_err().to_string().contains("ad.url"));
    }

    #[test]
    fn env_secret_wins_and_is_never_printed() {
        let c = Config::parse(GOOD, Path::new("t"), |k| {
            (k == ENV_AD_PASSWORD).then(|| "envpw".to_string())
        })
        .unwrap();
        assert_eq!(c.ad.bind_password.as_ref().unwrap().expose(), "envpw");
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("envpw") && !dbg.contains("file-secret"),
            "{dbg}"
        );
    }

    #[test]
    fn secrets_in_a_file_others_can_read_are_reported() {
        let p = Path::new("/etc/ew.toml");
        let keys = ["ad.bind_password"];
        let w = exposed_secrets(p, Some(0o644), &keys).expect("world-readable");
        assert!(w.contains("/etc/ew.toml") && w.contains("ad.bind_password") && w.contains("644"));
        assert!(
            exposed_secrets(p, Some(0o640), &keys).is_some(),
            "group-readable"
        );
        assert!(exposed_secrets(p, Some(0o600), &keys).is_none());
        assert!(exposed_secrets(p, Some(0o400), &keys).is_none());
        assert!(
            exposed_secrets(p, Some(0o644), &[]).is_none(),
            "no secret in the file"
        );
        assert!(exposed_secrets(p, None, &keys).is_none());
        assert_eq!(
            secrets_set_in(GOOD),
            ["graph.client_secret", "ad.bind_password"]
        );
        let no_secrets = GOOD
            .lines()
            .filter(|l| !l.starts_with("client_secret") && !l.starts_with("bind_password"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(secrets_set_in(&no_secrets).is_empty());
    }

    #[test]
    fn status_token_comes_from_the_file_or_the_env_and_is_checked() {
        assert!(parse(GOOD).unwrap().http.status_token.is_none());
        let text = format!("{GOOD}\n[http]\nstatus_token = \"from-file\"\n");
        let c = parse(&text).unwrap();
        assert_eq!(c.http.status_token.as_ref().unwrap().expose(), "from-file");
        let c = Config::parse(&text, Path::new("t"), |k| {
            (k == ENV_STATUS_TOKEN).then(|| "from-env".to_string())
        })
        .unwrap();
        assert_eq!(c.http.status_token.as_ref().unwrap().expose(), "from-env");
        assert!(!format!("{c:?}").contains("from-env"));
        let bad = format!("{GOOD}\n[http]\nstatus_token = \"two words\"\n");
        let err = parse(&bad).unwrap_err().to_string();
        assert!(err.contains("http.status_token"), "{err}");
    }

    #[test]
    fn graph_fidelity_keys_parse_and_are_validated() {
        let c = parse(GOOD).unwrap();
        assert_eq!(
            c.graph.client_assertion_algorithm,
            AssertionAlgorithm::RS256
        );
        assert_eq!(c.graph.max_requests_per_second, 100.0);
        assert!(!c.graph.prefer_return_minimal);
        assert_eq!(c.graph.scope.group_types.len(), 2);
        let text = GOOD.replace(
            "poll_interval = \"5s\"",
            "poll_interval = \"5s\"\nclient_assertion_algorithm = \"PS256\"\nmax_requests_per_second = 2.5\nprefer_return_minimal = true\n[graph.scope]\ngroup_types = [\"security\"]\ndynamic_groups = false\ngroup_ids = [\"a\"]\ndisplay_name_pattern = \"^SG-\"",
        );
        let c = parse(&text).unwrap();
        assert_eq!(
            c.graph.client_assertion_algorithm,
            AssertionAlgorithm::PS256
        );
        assert_eq!(c.graph.max_requests_per_second, 2.5);
        assert!(c.graph.prefer_return_minimal && !c.graph.scope.dynamic_groups);
        assert_eq!(c.graph.scope.group_types, [GroupTypeFilter::Security]);
        let bad = text.replace("\"^SG-\"", "\"(unclosed\"");
        let err = parse(&bad).unwrap_err().to_string();
        assert!(err.contains("graph.scope.display_name_pattern"), "{err}");
        let bad = text.replace("\"security\"]", "\"distribution\"]");
        let err = parse(&bad).unwrap_err().to_string();
        assert!(err.contains("graph.scope.group_types"), "{err}");
        let bad = text.replace("= 2.5", "= 0");
        let err = parse(&bad).unwrap_err().to_string();
        assert!(err.contains("graph.max_requests_per_second"), "{err}");
        let bad = text
            .replace("\"RS256\"", "x")
            .replace("\"PS256\"", "\"HS256\"");
        let err = parse(&bad).unwrap_err().to_string();
        assert!(err.contains("graph.client_assertion_algorithm"), "{err}");
    }

    /// The error text of `text`, which must be refused.
    fn refused(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    /// `GOOD` with its `[ad]` URL line replaced by `lines`.
    fn with_ad_url(lines: &str) -> String {
        GOOD.replace("url = \"ldap://127.0.0.2\"\nstarttls = true", lines)
    }

    #[test]
    fn plain_ldap_without_starttls_is_refused_naming_the_keys() {
        let err = refused(&with_ad_url("url = \"ldap://dc1.corp.example.com\""));
        for key in ["ad.url", "ad.starttls", "ad.allow_insecure_ldap"] {
            assert!(err.contains(key), "{key} not named: {err}");
        }
        let err = refused(&with_ad_url(
            "url = \"ldap://dc1.corp.example.com\"\nstarttls = false\nallow_insecure_ldap = false",
        ));
        assert!(err.contains("key `ad.url`"), "{err}");
    }

    #[test]
    fn tls_ldap_urls_and_explicit_insecure_opt_in_are_accepted() {
        let c = parse(GOOD).unwrap();
        assert!(c.ad.starttls && !c.ad.allow_insecure_ldap);
        let c = parse(&with_ad_url("url = \"ldaps://dc1.corp.example.com\"")).unwrap();
        assert!(!c.ad.starttls);
        parse(&with_ad_url(
            "url = \"ldaps://dc1.corp.example.com:636\"\nca_file = \"/etc/ca.pem\"",
        ))
        .unwrap();
        let c = parse(&with_ad_url(
            "url = \"ldap://127.0.0.2\"\nallow_insecure_ldap = true",
        ))
        .unwrap();
        assert!(c.ad.allow_insecure_ldap && !c.ad.starttls);
    }

    #[test]
    fn starttls_on_ldaps_is_refused() {
        let err = refused(&with_ad_url(
            "url = \"ldaps://dc1.corp.example.com\"\nstarttls = true",
        ));
        assert!(err.contains("key `ad.starttls`"), "{err}");
    }

    #[test]
    fn plain_http_graph_urls_are_accepted_only_on_loopback() {
        for key in ["graph_url", "authority_url"] {
            for url in [
                "http://graph.example.com",
                "http://10.0.0.1:8080",
                "http://[2001:db8::1]/",
                "http://localhost.example.com",
                "http://128.0.0.1",
            ] {
                let text = GOOD.replace(
                    "poll_interval = \"5s\"",
                    &format!("poll_interval = \"5s\"\n{key} = \"{url}\""),
                );
                let err = refused(&text);
                assert!(err.contains(&format!("key `graph.{key}`")), "{url}: {err}");
                assert!(err.contains("https://"), "{err}");
            }
            for url in [
                "http://127.0.0.1:8080",
                "http://127.3.4.5",
                "http://[::1]:9000/",
                "http://localhost:1234",
                "http://LOCALHOST",
                "https://graph.microsoft.us",
                "https://10.0.0.1",
            ] {
                let text = GOOD.replace(
                    "poll_interval = \"5s\"",
                    &format!("poll_interval = \"5s\"\n{key} = \"{url}\""),
                );
                parse(&text).unwrap_or_else(|e| panic!("{url} refused: {e}"));
            }
        }
    }

    #[test]
    fn owned_ous_must_not_be_the_naming_context() {
        for root in [
            "DC=example,DC=test",
            "dc=example, dc=test",
            " DC = corp , DC = example , DC = com ",
            "0.9.2342.19200300.100.1.25=example,DC=test",
        ] {
            let text = GOOD.replace("OU=Cloud Groups,DC=example,DC=test", root);
            let err = refused(&text);
            assert!(
                err.contains("key `ad.target_ou`") && err.contains("naming context"),
                "{root}: {err}"
            );
        }
        for (key, line) in [
            (
                "ad.target_ou_m365",
                "target_ou_m365 = \"DC=example,DC=test\"",
            ),
            (
                "ad.soft_delete_ou",
                "soft_delete = \"move\"\nsoft_delete_ou = \"dc=Example,dc=Test\"",
            ),
            (
                "ad.previous_ous",
                "previous_ous = [\"OU=Old,DC=example,DC=test\", \"DC=example,DC=test\"]",
            ),
        ] {
            let text = GOOD.replace(
                "bind_password = \"pw\"",
                &format!("bind_password = \"pw\"\n{line}"),
            );
            let err = refused(&text);
            assert!(err.contains(&format!("key `{key}`")), "{key}: {err}");
        }
        let text = GOOD.replace(
            "bind_password = \"pw\"",
            "bind_password = \"pw\"\nprevious_ous = [\"not a dn\"]",
        );
        assert!(refused(&text).contains("key `ad.previous_ous`"));
        // An OU (or container) below the root is fine, even one whose value spells "DC".
        for ou in ["OU=DC,DC=example,DC=test", "CN=Groups,DC=example,DC=test"] {
            parse(&GOOD.replace("OU=Cloud Groups,DC=example,DC=test", ou)).unwrap();
        }
        let text = GOOD.replace(
            "bind_password = \"pw\"",
            "bind_password = \"pw\"\nprevious_ous = [\"OU=Old,DC=example,DC=test\"]\ntarget_ou_m365 = \"OU=M365,DC=example,DC=test\"",
        );
        parse(&text).unwrap();
    }

    #[test]
    fn search_page_size_defaults_to_500_and_is_bounded() {
        assert_eq!(parse(GOOD).unwrap().ad.search_page_size, 500);
        let set = |n: &str| {
            GOOD.replace(
                "bind_password = \"pw\"",
                &format!("bind_password = \"pw\"\nsearch_page_size = {n}"),
            )
        };
        assert_eq!(parse(&set("1")).unwrap().ad.search_page_size, 1);
        assert_eq!(parse(&set("1000")).unwrap().ad.search_page_size, 1000);
        for bad in ["0", "1001", "-1", "\"500\""] {
            let err = refused(&set(bad));
            assert!(err.contains("ad.search_page_size"), "{bad}: {err}");
        }
    }

    #[test]
    fn missing_secret_names_env_var() {
        let text = GOOD.replace("bind_password = \"pw\"\n", "");
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("ad.bind_password") && err.contains(ENV_AD_PASSWORD),
            "{err}"
        );
    }
}
