//! OAuth2 client-credentials tokens for Graph, cached and renewed before they expire.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use super::client::GraphError;
use crate::config::{GraphConfig, Secret};

/// How the app proves its identity to the token endpoint.
#[derive(Clone)]
pub enum Credential {
    /// A client secret.
    Secret(Secret),
}

/// A cached bearer token.
struct Cached {
    token: Secret,
    renew_at: Instant,
}

/// Issues bearer tokens for Graph: one request per token lifetime, renewed early.
pub struct TokenSource {
    token_url: String,
    client_id: String,
    scope: String,
    credential: Credential,
    cache: Mutex<Option<Cached>>,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenErrorReply {
    error: Option<String>,
    error_description: Option<String>,
}

impl TokenSource {
    /// Builds the source from `[graph]`; the scope follows `graph_url` (national clouds).
    pub fn new(cfg: &GraphConfig) -> Result<TokenSource, GraphError> {
        let credential = match (&cfg.client_secret, &cfg.client_certificate) {
            (Some(s), _) => Credential::Secret(s.clone()),
            (None, Some(path)) => {
                return Err(GraphError::Auth {
                    error: "unsupported_credential".into(),
                    description: format!(
                        "certificate credentials ({}) are not supported yet; use client_secret",
                        path.display()
                    ),
                });
            }
            (None, None) => {
                return Err(GraphError::Auth {
                    error: "missing_credential".into(),
                    description: "no client secret".into(),
                });
            }
        };
        Ok(TokenSource {
            token_url: format!(
                "{}/{}/oauth2/v2.0/token",
                cfg.authority_url.trim_end_matches('/'),
                urlencode_path(&cfg.tenant_id)
            ),
            client_id: cfg.client_id.clone(),
            scope: format!("{}/.default", cfg.graph_url.trim_end_matches('/')),
            credential,
            cache: Mutex::new(None),
        })
    }

    /// The token endpoint (for messages).
    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// A valid token: the cached one, or a fresh one when it is near expiry.
    pub async fn token(&self, http: &reqwest::Client) -> Result<Secret, GraphError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref().filter(|c| Instant::now() < c.renew_at) {
            return Ok(c.token.clone());
        }
        let fresh = self.request(http).await?;
        let token = fresh.0.clone();
        *cache = Some(Cached {
            token: fresh.0,
            renew_at: fresh.1,
        });
        Ok(token)
    }

    /// Drops the cached token (after a 401 from Graph).
    pub async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }

    async fn request(&self, http: &reqwest::Client) -> Result<(Secret, Instant), GraphError> {
        let started = Instant::now();
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "client_credentials"),
            ("client_id", &self.client_id),
            ("scope", &self.scope),
        ];
        match &self.credential {
            Credential::Secret(s) => form.push(("client_secret", s.expose())),
        }
        let resp = http.post(&self.token_url).form(&form).send().await;
        let resp = crate::metrics::observe_graph("token", resp)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(GraphError::network)?;
        if status.is_success() {
            let reply: TokenReply =
                serde_json::from_slice(&body).map_err(|e| GraphError::Auth {
                    error: "bad_token_reply".into(),
                    description: format!("token endpoint reply is not a token: {e}"),
                })?;
            let lifetime = Duration::from_secs(reply.expires_in.unwrap_or(3599));
            // Renew at 90 % of the lifetime, and at least a minute early where possible.
            let early = (lifetime / 10)
                .max(Duration::from_secs(60))
                .min(lifetime / 2);
            return Ok((Secret::new(reply.access_token), started + lifetime - early));
        }
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(GraphError::Server {
                status: status.as_u16(),
                retry_after: None,
            });
        }
        let parsed: Option<TokenErrorReply> = serde_json::from_slice(&body).ok();
        let (error, description) = parsed
            .map(|p| {
                (
                    p.error.unwrap_or_default(),
                    p.error_description.unwrap_or_default(),
                )
            })
            .unwrap_or_else(|| (format!("http_{}", status.as_u16()), String::new()));
        // Keep the first line of the AADSTS description: it carries the reason, not secrets.
        let description = description.lines().next().unwrap_or("").to_string();
        Err(GraphError::Auth { error, description })
    }
}

fn urlencode_path(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._~".contains(c) {
                c.to_string()
            } else {
                format!("%{:02X}", c as u32)
            }
        })
        .collect()
}
