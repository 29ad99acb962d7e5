//! The Graph HTTP client: bearer tokens, error classification, the retry policy and the shared
//! request-rate limiter.
//!
//! Retries: 429/503/504 honour `Retry-After` (fractional seconds allowed, e.g. `2.128`), and the
//! wait also holds back every other request of the process (the limiter is paused); other
//! transient failures back off exponentially with full jitter between `[sync] min_backoff` and
//! `max_backoff` (Microsoft's SDK retry handler uses 3 s initial, 180 s cap), at most
//! `[sync] max_attempts` tries. No wait is ever shorter than [`MIN_RETRY_WAIT`]: never a tight loop.
//!
//! Rate: a sliding window ([`RateLimiter`]) shared by every clone of the client keeps Graph
//! requests under `graph.max_requests_per_second`: never more than that many in any one second.

use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use serde_json::Value;

use super::auth::TokenSource;
use super::limiter::RateLimiter;
use super::scope::Scope;
use crate::config::{DEFAULT_MAX_RESPONSE_BYTES, GraphConfig, SyncConfig};
use crate::model::{Event, Events};

/// Why a Graph request failed.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The request did not get an HTTP answer (DNS, connect, TLS, timeout).
    #[error("cannot reach Microsoft Graph: {0}")]
    Network(String),
    /// Throttled or server-side trouble; retry later.
    #[error("Graph answered HTTP {status} (transient)")]
    Server {
        /// HTTP status.
        status: u16,
        /// The server's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The token was rejected by Graph.
    #[error("Graph rejected the access token (HTTP 401)")]
    Unauthorized,
    /// The login endpoint refused our credentials or tenant.
    #[error("authentication failed: {error}: {description}{hint}")]
    Auth {
        /// OAuth2 error code (`invalid_client`, ...).
        error: String,
        /// First line of the description.
        description: String,
        /// What to check, naming the config key (see [`super::auth::auth_hint`]); may be empty.
        hint: &'static str,
    },
    /// The delta token is no longer valid: start over with a full enumeration.
    #[error("Graph asks for a full resync ({code})")]
    ResyncRequired {
        /// The error code or status that said so.
        code: String,
    },
    /// The `[graph.scope]` configuration cannot be used (normally caught when the file is
    /// loaded).
    #[error(transparent)]
    Scope(#[from] super::scope::ScopeError),
    /// HTTP 404 (`Request_ResourceNotFound`): the object is not there. An answer, not a
    /// failure: never retried, and lookups tell it apart from every other error.
    #[error("Graph answered HTTP 404: {code}: {message}")]
    NotFound {
        /// `error.code`.
        code: String,
        /// `error.message`.
        message: String,
    },
    /// An object id that cannot be a Graph object id; no request was made with it.
    #[error("not a Graph object id: {0:?}")]
    InvalidId(String),
    /// The response body is larger than `graph.max_response_bytes`: refused while it was read
    /// (by its `Content-Length`, or once that many bytes had arrived), never held whole.
    #[error(
        "Graph response larger than graph.max_response_bytes ({limit} bytes{}); refused",
        .length.map(|l| format!(", Content-Length {l}")).unwrap_or_default()
    )]
    TooLarge {
        /// The configured limit.
        limit: u64,
        /// The `Content-Length` the server announced, if it did.
        length: Option<u64>,
    },
    /// Any other HTTP error.
    #[error("Graph answered HTTP {status}: {code}: {message}")]
    Http {
        /// HTTP status.
        status: u16,
        /// `error.code`.
        code: String,
        /// `error.message`.
        message: String,
    },
}

impl GraphError {
    /// Network-level failure.
    pub fn network(e: reqwest::Error) -> GraphError {
        // reqwest errors carry the URL; ours never contain secrets, but strip queries anyway.
        GraphError::Network(e.without_url().to_string())
    }

    /// Whether retrying the same request may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GraphError::Network(_) | GraphError::Server { .. } | GraphError::Unauthorized
        )
    }

    /// Bounded label for metrics.
    pub fn class(&self) -> &'static str {
        match self {
            GraphError::Network(_) => "network",
            GraphError::Server { .. } => "server",
            GraphError::Unauthorized => "unauthorized",
            GraphError::Auth { .. } => "auth",
            GraphError::ResyncRequired { .. } => "resync",
            GraphError::Http { .. } => "http",
            GraphError::NotFound { .. } => "not_found",
            GraphError::InvalidId(_) => "invalid_id",
            GraphError::Scope(_) => "config",
            GraphError::TooLarge { .. } => "too_large",
        }
    }
}

/// The shortest wait before a retry, whatever `Retry-After` or the backoff says.
pub const MIN_RETRY_WAIT: Duration = Duration::from_millis(100);

/// Parses `Retry-After`: delay seconds, possibly fractional (`2.128`).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// A response: (status, `Retry-After`, body).
type Answer = (u16, Option<Duration>, Vec<u8>);

/// Counts a response and reads it whole, up to [`DEFAULT_MAX_RESPONSE_BYTES`]:
/// (status, `Retry-After`, body).
pub(super) async fn read_response(
    endpoint: &'static str,
    resp: Result<reqwest::Response, reqwest::Error>,
    events: &Events,
) -> Result<Answer, GraphError> {
    read_response_bounded(endpoint, resp, events, DEFAULT_MAX_RESPONSE_BYTES).await
}

/// Counts a response and reads its body, refusing one larger than `limit` bytes
/// ([`GraphError::TooLarge`]) by its `Content-Length` before reading, or as soon as more than
/// `limit` bytes have arrived: memory stays bounded whatever the server sends.
pub(super) async fn read_response_bounded(
    endpoint: &'static str,
    resp: Result<reqwest::Response, reqwest::Error>,
    events: &Events,
    limit: u64,
) -> Result<Answer, GraphError> {
    let status_class = match &resp {
        Ok(r) => match r.status().as_u16() {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        },
        Err(_) => "error",
    };
    events.emit(Event::GraphRequest {
        endpoint,
        status_class,
    });
    let resp = resp.map_err(GraphError::network)?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = read_body(resp, limit).await?;
    Ok((status, retry_after, body))
}

/// Reads a body chunk by chunk, at most `limit` bytes.
async fn read_body(mut resp: reqwest::Response, limit: u64) -> Result<Vec<u8>, GraphError> {
    let length = resp.content_length();
    if length.is_some_and(|l| l > limit) {
        return Err(GraphError::TooLarge { limit, length });
    }
    let mut body = Vec::with_capacity(length.unwrap_or(0).min(1 << 20) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(GraphError::network)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(GraphError::TooLarge { limit, length });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Maps a non-success response to an error (the body is JSON `{"error":{"code",..}}` usually).
pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> GraphError {
    let err = serde_json::from_slice::<Value>(body).ok();
    let field = |k: &str| {
        err.as_ref()
            .and_then(|v| v.get("error"))
            .and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let code = field("code");
    let inner = err
        .as_ref()
        .and_then(|v| {
            v.pointer("/error/innerError/code")
                .or_else(|| v.pointer("/error/innererror/code"))
        })
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let sync_code = [&code, &inner].into_iter().find(|c| {
        let c = c.to_ascii_lowercase();
        c.starts_with("syncstate") || c == "resyncrequired"
    });
    match status {
        410 => GraphError::ResyncRequired {
            code: if code.is_empty() {
                "410 Gone".into()
            } else {
                code
            },
        },
        _ if sync_code.is_some() => GraphError::ResyncRequired {
            code: sync_code.cloned().unwrap_or_default(),
        },
        401 => GraphError::Unauthorized,
        429 | 500 | 502 | 503 | 504 => GraphError::Server {
            status,
            retry_after,
        },
        404 => GraphError::NotFound {
            code,
            message: field("message").chars().take(300).collect(),
        },
        _ => GraphError::Http {
            status,
            code,
            message: field("message").chars().take(300).collect(),
        },
    }
}

/// The limits against a hostile upstream, from `[graph]`: each bounds what one round may
/// make the service read or hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `graph.max_members_per_group`: most members the mirror keeps for one group.
    pub max_members_per_group: usize,
    /// `graph.max_page_items`: most objects on one delta page.
    pub max_page_items: usize,
    /// `graph.max_response_bytes`: largest response body read.
    pub max_response_bytes: u64,
    /// `graph.max_pages_per_round`: most pages one delta round may take.
    pub max_pages_per_round: usize,
}

impl Default for Limits {
    /// The defaults of `[graph]`.
    fn default() -> Limits {
        use crate::config::{
            DEFAULT_MAX_MEMBERS_PER_GROUP, DEFAULT_MAX_PAGE_ITEMS, DEFAULT_MAX_PAGES_PER_ROUND,
        };
        Limits {
            max_members_per_group: DEFAULT_MAX_MEMBERS_PER_GROUP,
            max_page_items: DEFAULT_MAX_PAGE_ITEMS,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_pages_per_round: DEFAULT_MAX_PAGES_PER_ROUND,
        }
    }
}

impl From<&GraphConfig> for Limits {
    fn from(cfg: &GraphConfig) -> Limits {
        Limits {
            max_members_per_group: cfg.max_members_per_group,
            max_page_items: cfg.max_page_items,
            max_response_bytes: cfg.max_response_bytes,
            max_pages_per_round: cfg.max_pages_per_round,
        }
    }
}

/// A Graph client for one tenant.
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    tokens: Arc<TokenSource>,
    graph_url: String,
    retry: SyncConfig,
    /// Shared by every clone: the process-wide request-rate ceiling.
    limiter: Arc<RateLimiter>,
    /// `[graph.scope]`, compiled; the poller applies it when it commits groups.
    scope: Arc<Scope>,
    /// `graph.prefer_return_minimal`.
    prefer_minimal: bool,
    /// The limits against a hostile upstream (`graph.max_*`).
    limits: Limits,
    /// Where requests, throttling and retries are reported.
    events: Events,
}

impl GraphClient {
    /// Builds the client from `[graph]`; retry timing from `[sync]`; reports to `events`.
    pub fn new(
        cfg: &GraphConfig,
        retry: &SyncConfig,
        events: Events,
    ) -> Result<GraphClient, GraphError> {
        // rustls speaks only TLS 1.2 and 1.3; the minimum is pinned so it stays visible here.
        let http = reqwest::Client::builder()
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .timeout(cfg.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("entra-writeback/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(GraphError::network)?;
        let scope =
            Scope::new(&cfg.scope)?.with_writeback_configuration(cfg.writeback_configuration);
        Ok(GraphClient {
            http,
            tokens: Arc::new(TokenSource::new(cfg)?),
            graph_url: cfg.graph_url.trim_end_matches('/').to_string(),
            retry: retry.clone(),
            limiter: Arc::new(RateLimiter::new(cfg.max_requests_per_second)),
            scope: Arc::new(scope),
            prefer_minimal: cfg.prefer_return_minimal,
            limits: Limits::from(cfg),
            events,
        })
    }

    /// The Graph endpoint (`graph_url`, no trailing slash), for modules building request URLs.
    pub(crate) fn graph_url(&self) -> &str {
        &self.graph_url
    }

    /// Where this client reports (the lookups share it).
    pub(crate) fn events(&self) -> &Events {
        &self.events
    }

    /// The configured scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The configured limits against a hostile upstream.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether incremental rounds ask for `Prefer: return=minimal`.
    pub fn prefer_minimal(&self) -> bool {
        self.prefer_minimal
    }

    /// The first URL of a full round for `resource` (`groups` / `users`), with its `$select`.
    pub fn initial_url(&self, resource: &str, select: &str) -> String {
        format!("{}/v1.0/{resource}/delta?$select={select}", self.graph_url)
    }

    /// Gets a token now (for `check`).
    pub async fn check_token(&self) -> Result<(), GraphError> {
        self.tokens
            .token(&self.http, &self.events)
            .await
            .map(|_| ())
    }

    /// One GET of a delta link, no retries (but through the rate limiter).
    pub async fn get_once(
        &self,
        endpoint: &'static str,
        url: &str,
        minimal: bool,
    ) -> Result<Vec<u8>, GraphError> {
        let token = self.tokens.token(&self.http, &self.events).await?;
        self.limiter.acquire().await;
        let mut req = self
            .http
            .get(url)
            .bearer_auth(token.expose())
            .header("Accept", "application/json");
        if minimal {
            req = req.header("Prefer", "return=minimal");
        }
        let resp = req.send().await;
        let limit = self.limits.max_response_bytes;
        let (status, retry_after, body) =
            read_response_bounded(endpoint, resp, &self.events, limit).await?;
        if (200..300).contains(&status) {
            return Ok(body.to_vec());
        }
        let err = classify(status, retry_after, &body);
        if matches!(
            err,
            GraphError::Server {
                status: 429 | 503 | 504,
                ..
            }
        ) {
            self.events.emit(Event::GraphThrottled { endpoint });
        }
        if matches!(err, GraphError::Unauthorized) {
            self.tokens.invalidate().await;
        }
        Err(err)
    }

    /// GET with retries on transient errors: `Retry-After` when given, else exponential backoff
    /// with jitter, at most `[sync] max_attempts` tries. `minimal` sends
    /// `Prefer: return=minimal`.
    pub async fn get(
        &self,
        endpoint: &'static str,
        url: &str,
        minimal: bool,
    ) -> Result<Vec<u8>, GraphError> {
        (|| self.get_once(endpoint, url, minimal))
            .retry(self.retry.backoff(MIN_RETRY_WAIT))
            .when(GraphError::is_transient)
            .adjust(|e, dur| match (e, dur) {
                (GraphError::Server { retry_after: Some(ra), .. }, Some(_)) => {
                    let ra = (*ra).max(MIN_RETRY_WAIT);
                    self.events.emit(Event::GraphRetryAfter { waited: ra });
                    self.limiter.pause_for(ra);
                    Some(ra)
                }
                (_, d) => d.map(|d| d.max(MIN_RETRY_WAIT)),
            })
            .notify(|e, d| {
                self.events.emit(Event::Retry { stage: "graph" });
                tracing::warn!(endpoint, error = %e, wait_ms = d.as_millis() as u64, "Graph request failed; retrying");
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_parsing() {
        assert_eq!(parse_retry_after("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn classification() {
        assert!(matches!(
            classify(410, None, b""),
            GraphError::ResyncRequired { .. }
        ));
        let b = br#"{"error":{"code":"syncStateNotFound","message":"x"}}"#;
        assert!(matches!(
            classify(400, None, b),
            GraphError::ResyncRequired { .. }
        ));
        let b = br#"{"error":{"code":"badRequest","innerError":{"code":"resyncRequired"}}}"#;
        assert!(matches!(
            classify(400, None, b),
            GraphError::ResyncRequired { .. }
        ));
        let b = br#"{"error":{"code":"syncStateInvalid"}}"#;
        assert!(matches!(
            classify(400, None, b),
            GraphError::ResyncRequired { .. }
        ));
        assert!(classify(429, Some(Duration::from_secs(1)), b"").is_transient());
        assert!(classify(503, None, b"").is_transient());
        let e = classify(
            403,
            None,
            br#"{"error":{"code":"Authorization_RequestDenied","message":"no"}}"#,
        );
        assert!(!e.is_transient());
        assert!(e.to_string().contains("Authorization_RequestDenied"));
    }
}
