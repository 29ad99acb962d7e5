//! The monitoring listener: the status page (`/`, `/status.json`), `/metrics`, `/healthz` and
//! `/readyz`, all on `[http] listen`: plain HTTP, or HTTPS only when `[http] tls_cert` and
//! `tls_key` are set ([`server_config`], [`TlsListener`]).
//!
//! - `/healthz`: 200 while the process serves HTTP (liveness).
//! - `/readyz`: 200 only when the last Graph poll cycle and the last AD bind or operation both
//!   succeeded within the readiness window (3 × `poll_interval`, at least 60 s), the state store
//!   is healthy and the service is not quarantined; otherwise 503 with the reasons, one per line.
//! - `/metrics`: Prometheus text. The queue gauges and `entra_writeback_ready` are refreshed at
//!   each scrape, so they are right even while the worker is not running (AD down at start).
//! - `/`: a server-rendered HTML status page (no external assets, refreshes itself), and
//!   `/status.json`: the same snapshot as JSON, for scripts. Both name groups and DNs, so they
//!   follow [`StatusAccess`]: open on loopback, bearer token (`[http] status_token`) when one is
//!   set, not served on another address without one.

mod access;
mod page;
mod snapshot;
mod tls;

pub use access::{Refusal, StatusAccess};
pub use snapshot::{About, DeadEntry, Snapshot};
pub use tls::{ListenerTlsError, TlsListener, server_config};

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::model::{Event, Events};
use crate::observe::Observers;
use crate::queue::Store;

/// What the handlers need: the observers, the queue, and the instance facts for the page.
#[derive(Clone)]
pub struct Context {
    /// Metrics, status history, progress and readiness.
    pub observers: Observers,
    /// Where the queue gauges read at each scrape are reported.
    pub events: Events,
    /// `/readyz` freshness window.
    pub ready_window: Duration,
    /// The service's open store (queue depth, dead letters).
    pub store: Store,
    /// Instance facts shown on the status page.
    pub about: About,
    /// Who may read `/` and `/status.json`.
    pub status_access: StatusAccess,
}

impl Context {
    /// Sets the gauges that describe the present (queue, readiness) from their sources.
    fn refresh_gauges(&self) {
        match self.store.stats() {
            Ok(s) => self.events.emit(Event::Queue(s)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read queue stats");
                self.events.emit(Event::Storage { failed: true });
            }
        }
        let ready = self.observers.readiness.readiness(self.ready_window);
        self.observers.metrics.set_ready(ready.is_ok());
    }

    async fn snapshot(&self) -> Result<Snapshot, StatusCode> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            Snapshot::collect(&me.store, &me.observers, me.ready_window, &me.about)
        })
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// Answers that must never be cached: they describe the present.
fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn metrics_handler(State(cx): State<Context>) -> Response {
    let refresh = cx.clone();
    let _ = tokio::task::spawn_blocking(move || refresh.refresh_gauges()).await;
    no_store(
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            cx.observers.metrics.render(),
        )
            .into_response(),
    )
}

async fn healthz() -> Response {
    no_store("ok\n".into_response())
}

async fn readyz(State(cx): State<Context>) -> Response {
    no_store(match cx.observers.readiness.readiness(cx.ready_window) {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", why.join("; ")),
        )
            .into_response(),
    })
}

/// The refusal answer for a status request, or `None` when it may be served.
fn refused(cx: &Context, headers: &HeaderMap) -> Option<Response> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    match cx.status_access.check(auth) {
        Ok(()) => None,
        Err(Refusal::Unauthorized) => Some(no_store(
            (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    r#"Bearer realm="entra-writeback status""#,
                )],
                "401 Unauthorized: send Authorization: Bearer <http.status_token>\n",
            )
                .into_response(),
        )),
        Err(Refusal::Off) => Some(no_store(
            (
                StatusCode::NOT_FOUND,
                "404 Not Found: the status page is served on a non-loopback listener only with \
                 http.status_token set\n",
            )
                .into_response(),
        )),
    }
}

async fn status_page(State(cx): State<Context>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&cx, &headers) {
        return r;
    }
    match cx.snapshot().await {
        Ok(snap) => no_store(
            (
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                page::render(&snap),
            )
                .into_response(),
        ),
        Err(code) => code.into_response(),
    }
}

async fn status_json(State(cx): State<Context>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&cx, &headers) {
        return r;
    }
    match cx.snapshot().await {
        Ok(snap) => no_store(axum::Json(snap).into_response()),
        Err(code) => code.into_response(),
    }
}

/// The router (exposed for tests).
pub fn router(cx: Context) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/status.json", get(status_json))
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(cx)
}

/// Binds `addr` (so a busy port fails start-up) and returns the bound address and the server
/// future, which ends when `stop` is set. With `tls`, only HTTPS is served.
pub async fn bind(
    addr: SocketAddr,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    cx: Context,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, impl Future<Output = ()> + Send + 'static)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router(cx);
    let bound = match tls {
        Some(cfg) => Err(TlsListener::new(listener, cfg)?),
        None => Ok(listener),
    };
    let server = async move {
        let stopped = async move { stop.cancelled().await };
        let served = match bound {
            Ok(plain) => {
                axum::serve(plain, app)
                    .with_graceful_shutdown(stopped)
                    .await
            }
            Err(tls) => axum::serve(tls, app).with_graceful_shutdown(stopped).await,
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "the monitoring listener failed");
        }
    };
    Ok((local, server))
}
