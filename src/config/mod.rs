//! Configuration: the TOML file fixed by the contract, plus secrets from the environment.
//!
//! Guarantees: an unknown key, a missing required key or a bad value is an error naming the key
//! (`graph.tenant_id`, `ad.url`, ...); secrets never appear in `Debug` output or error messages.
//!
//! # May import
//! Only [`crate::model`] (the DN parser the OU checks use).
//!
//! # Layout
//! One file per table of the file ([`GraphConfig`] in `graph.rs`, [`AdConfig`] in `ad.rs`,
//! `state.rs`, `http.rs`, `sync.rs`, `log.rs`), [`Secret`] and the file-mode check in
//! `secret.rs`, and the checks that span keys in `validate.rs`. Everything is re-exported here,
//! so every item is named `crate::config::X`.

mod ad;
mod graph;
mod http;
mod log;
mod secret;
mod state;
mod sync;
#[cfg(test)]
mod tests;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub use ad::{
    AdConfig, AdoptedDelete, DEFAULT_CN_TEMPLATE, MailAttributes, SoftDeleteAction,
    valid_cn_template,
};
pub use graph::{
    AssertionAlgorithm, DEFAULT_MAX_MEMBERS_PER_GROUP, DEFAULT_MAX_PAGE_ITEMS,
    DEFAULT_MAX_PAGES_PER_ROUND, DEFAULT_MAX_RESPONSE_BYTES, GraphConfig, GroupTypeFilter,
    ScopeConfig, WritebackConfigurationMode,
};
pub use http::HttpConfig;
pub use log::{LogConfig, LogFormat};
pub use secret::{CREDENTIALS_DIRECTORY, CredentialError, SECRET_SOURCES, Secret};
use secret::{exposed_secrets, file_mode, lookup_secret, read_credentials, secrets_set_in};
pub use state::{CACHE_CAPACITY_RANGE, DEFAULT_CACHE_CAPACITY, StateConfig};
pub use sync::SyncConfig;

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
    /// A file in `$CREDENTIALS_DIRECTORY` exists but could not be read.
    #[error(transparent)]
    Credential(#[from] CredentialError),
}

impl ConfigError {
    /// Configuration errors never heal by retrying.
    pub fn is_transient(&self) -> bool {
        false
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

/// Deserializes a human duration (`"15s"`, `"5m"`), for every duration key.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("{e} (use e.g. \"15s\")")))
}

impl Config {
    /// Reads and validates the file, then takes each secret from its environment variable
    /// where set, else from its file in `$CREDENTIALS_DIRECTORY` (systemd's `LoadCredential=`;
    /// the file is named after the key, e.g. `ad.bind_password`), else from the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let creds_dir = std::env::var_os(CREDENTIALS_DIRECTORY).map(PathBuf::from);
        let creds = read_credentials(creds_dir.as_deref())?;
        let env = |name: &str| std::env::var(name).ok();
        let mut cfg = Self::parse(&text, path, |name| lookup_secret(name, &env, &creds))?;
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

    /// The config file named by `--config`, env `ENTRA_WRITEBACK_CONFIG`, or the default.
    pub fn default_path() -> PathBuf {
        PathBuf::from("./entra-writeback.toml")
    }
}
