//! `[http]`: the monitoring listener's address and the bearer token guarding the status page.

use std::net::SocketAddr;

use serde::Deserialize;

use super::Secret;

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

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}
