//! HTTP surface: the token endpoint, the Graph `/v1.0` routes, the request log and serving.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Serialize;
use serde_json::{Value, json};

use super::token_endpoint::{self, TokenRefusal};
use super::{Simulator, admin, deleted, resources};

/// Router state: the simulator plus the absolute base URL all links are built from.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) sim: Simulator,
    pub(crate) base: Arc<str>,
}

/// One served request, as listed by `GET /admin/requests`.
#[derive(Clone, Debug, Serialize)]
pub struct RequestRecord {
    /// 1-based sequence number.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw (still percent-encoded) query string; empty when there is none.
    pub query: String,
    /// Response status.
    pub status: u16,
    /// Milliseconds since the simulator started (wall clock).
    pub at_ms: f64,
    /// The `Prefer` header, if sent.
    pub prefer: Option<String>,
    /// Token requests only: the form fields that are not secrets (`grant_type`, `client_id`,
    /// `scope`, `client_assertion_type`, `client_assertion`), so tests can check the scope of
    /// a national cloud or the claims of an assertion. `client_secret` is never recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form: Option<Value>,
    /// The serial number (1, 2, ... in issue order) of the access token this request presented
    /// (`/v1.0/*`, whether accepted or refused), or of the token it was issued (token requests);
    /// absent when there is none. Tests match token use to token issue with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<u64>,
}

/// Response extension carrying [`RequestRecord::form`] from the token handler to the log.
#[derive(Clone)]
struct LoggedForm(Value);

/// Response extension carrying [`RequestRecord::token`] to the log.
#[derive(Clone, Copy)]
struct LoggedToken(u64);

/// Every non-admin request served, in order.
#[derive(Debug, Default)]
pub struct RequestLog {
    /// Recorded requests.
    pub records: Vec<RequestRecord>,
    next_seq: u64,
}

/// The base URL links are built from: `http://IP:PORT`, an unspecified bind address being
/// replaced by the loopback address of the same family.
pub fn base_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Serves the simulator on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, sim: Simulator) -> std::io::Result<()> {
    serve_with_shutdown(listener, sim, std::future::pending()).await
}

/// Serves the simulator on `listener` until `shutdown` completes, then drains connections.
pub async fn serve_with_shutdown<F>(
    listener: tokio::net::TcpListener,
    sim: Simulator,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let base = base_url(listener.local_addr()?);
    axum::serve(listener, router(sim, base))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The full router for a simulator reachable at `base` (e.g. `http://127.0.0.1:8080`).
pub fn router(sim: Simulator, base: String) -> Router {
    let state = AppState {
        sim,
        base: base.trim_end_matches('/').into(),
    };
    let v1 = Router::new()
        .route("/v1.0/groups/delta", get(resources::groups_delta))
        .route("/beta/groups/delta", get(resources::groups_delta_beta))
        .route("/beta/groups/{id}", get(resources::get_group_beta))
        .route(
            "/v1.0/groups/{id}/onPremisesSyncBehavior",
            get(super::sync_behavior::get_sync_behavior),
        )
        .route("/v1.0/users/delta", get(resources::users_delta))
        .route("/v1.0/groups/{id}", get(resources::get_group))
        .route("/v1.0/users/{id}", get(resources::get_user))
        .route(
            "/v1.0/directoryObjects/getByIds",
            post(resources::get_by_ids),
        )
        .route(
            "/v1.0/directory/deletedItems/{id}",
            get(deleted::get_deleted_item),
        )
        .route("/v1.0/{*rest}", any(v1_not_found))
        .route("/beta/{*rest}", any(v1_not_found))
        .route_layer(from_fn_with_state(state.clone(), v1_guard));
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .merge(admin::routes())
        .merge(v1)
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
        .layer(from_fn_with_state(state.clone(), log_requests))
        .with_state(state)
}

/// A Graph-style error response.
pub(crate) fn graph_error(status: u16, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message, "innerError": {
        "request-id": format!("{:016x}", super::random_u64()), "client-request-id": null}}});
    json_response(status, &body)
}

pub(crate) fn json_response(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

async fn log_requests(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/admin/") {
        return next.run(req).await;
    }
    let method = req.method().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let prefer = header_str(req.headers(), "prefer").map(str::to_string);
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let form = resp.extensions().get::<LoggedForm>().map(|f| f.0.clone());
    let token = resp.extensions().get::<LoggedToken>().map(|t| t.0);
    tracing::debug!(%method, %path, %query, status, "graph-sim request");
    let mut inner = app.sim.lock();
    let at_ms = inner.started.elapsed().as_secs_f64() * 1000.0;
    let log = &mut inner.log;
    log.next_seq += 1;
    let seq = log.next_seq;
    log.records.push(RequestRecord {
        seq,
        method,
        path,
        query,
        status,
        at_ms,
        prefer,
        form,
        token,
    });
    resp
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Delay fault, then throttling fault, then the bearer token.
async fn v1_guard(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let delay = app.sim.lock().faults.delay_for(req.uri().path());
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let (serial, refusal) = {
        let mut inner = app.sim.lock();
        if let Some((status, retry_after)) = inner.faults.take_throttle(req.uri().path()) {
            (None, Some(throttled(status, retry_after)))
        } else {
            let now = inner.now();
            let authz = header_str(req.headers(), "authorization");
            let (serial, checked) = inner.tokens.check(authz, now);
            (serial, checked.err().map(unauthorized))
        }
    };
    let mut resp = match refusal {
        Some(resp) => resp,
        None => next.run(req).await,
    };
    if let Some(serial) = serial {
        resp.extensions_mut().insert(LoggedToken(serial));
    }
    resp
}

/// The answer to a throttled request: 429, 503 or 504, with `Retry-After` if armed so.
fn throttled(status: u16, retry_after: Option<String>) -> Response {
    let (code, msg) = match status {
        429 => (
            "TooManyRequests",
            "Too many requests; the application is being throttled.",
        ),
        503 => (
            "serviceNotAvailable",
            "The service is temporarily unavailable.",
        ),
        _ => ("gatewayTimeout", "The gateway timed out."),
    };
    let mut resp = graph_error(status, code, msg);
    if let Some(v) = retry_after.and_then(|r| HeaderValue::from_str(&r).ok()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Graph's 401 for a refused bearer token; a token that was presented but refused also gets
/// `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3.1).
fn unauthorized(why: TokenRefusal) -> Response {
    let msg = match why {
        TokenRefusal::Missing => "Access token is empty.",
        TokenRefusal::Unknown => "Invalid access token.",
        TokenRefusal::Expired => "Lifetime validation failed, the token is expired.",
        TokenRefusal::Revoked => "Access token validation failure: the token has been revoked.",
    };
    let mut resp = graph_error(401, "InvalidAuthenticationToken", msg);
    let challenge = match why {
        TokenRefusal::Missing => "Bearer realm=\"\"",
        _ => "Bearer realm=\"\", error=\"invalid_token\"",
    };
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    resp
}

async fn v1_not_found(req: Request) -> Response {
    let msg = format!(
        "Resource not found for the segment '{}' (not simulated).",
        req.uri().path()
    );
    graph_error(400, "BadRequest", &msg)
}

async fn token(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let logged = LoggedForm(Value::Object(
        [
            "grant_type",
            "client_id",
            "scope",
            "client_assertion_type",
            "client_assertion",
        ]
        .into_iter()
        .filter_map(|k| Some((k.to_string(), Value::String(form.get(k)?.clone()))))
        .collect(),
    ));
    let mut resp = token_response(&app, &tenant, &headers, &form);
    resp.extensions_mut().insert(logged);
    resp
}

fn token_response(
    app: &AppState,
    tenant: &str,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Response {
    let basic = header_str(headers, "authorization")
        .and_then(|h| {
            h.strip_prefix("Basic ")
                .or_else(|| h.strip_prefix("basic "))
        })
        .and_then(|b| token_endpoint::b64_decode(b.trim()))
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| {
            let (id, secret) = s.split_once(':')?;
            let dec = |x: &str| -> String {
                url::form_urlencoded::parse(format!("x={x}").as_bytes())
                    .map(|(_, v)| v.into_owned())
                    .next()
                    .unwrap_or_default()
            };
            Some((dec(id), dec(secret)))
        });
    let mut inner = app.sim.lock();
    if inner.faults.take_token_error() {
        let body = json!({"error": "temporarily_unavailable",
            "error_description": "AADSTS90033: A transient error has occurred. Please try again.",
            "error_codes": [90033]});
        return json_response(500, &body);
    }
    let token_url = format!("{}/{tenant}/oauth2/v2.0/token", app.base);
    let now = inner.now();
    let req = token_endpoint::TokenRequest {
        tenant_in_path: tenant,
        form,
        basic,
        token_url: &token_url,
        now,
    };
    match token_endpoint::authenticate(&inner.tenant, &req) {
        Ok(client) => {
            let lifetime = inner.config.token_lifetime;
            let tenant_id = inner.tenant.tenant_id.clone();
            let access_token = inner.tokens.issue(now, lifetime, &tenant_id, &client);
            let secs = lifetime.as_secs();
            let mut resp = json_response(
                200,
                &json!({"token_type": "Bearer", "expires_in": secs,
                "ext_expires_in": secs, "access_token": access_token}),
            );
            resp.extensions_mut()
                .insert(LoggedToken(inner.tokens.serial()));
            resp
        }
        Err(e) => json_response(e.status, &e.body),
    }
}
