//! Graph `/v1.0` resources: `groups/delta`, `users/delta`, single objects (live only: a
//! soft-deleted or purged object answers 404 `Request_ResourceNotFound`) and `getByIds`.
//! The deleted-items container is in `deleted`.
//! Authentication and throttling happen before these handlers (see `server`).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::Inner;
use super::cursor::{self, DeltaToken};
use super::delta_rounds::{self, Round, RoundSpec, Selection};
use super::faults::Malformed;
use super::server::{AppState, graph_error, json_response};
use super::tenant::{Kind, Life};

pub(crate) fn query_params(q: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Percent-encodes a query value, keeping the characters Graph leaves readable.
pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b',' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn prefers_minimal(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("return=minimal"))
}

/// The API versions served: `v1.0`, and `beta` for what only beta has.
pub(crate) const V1: &str = "v1.0";
/// See [`V1`].
pub(crate) const BETA: &str = "beta";

/// Group properties only the beta endpoint knows (v1.0 answers 400 when they are selected).
const BETA_ONLY: [&str; 1] = ["writebackConfiguration"];

/// v1.0's answer to a `$select` naming a beta-only property, as Graph gives it.
fn beta_only_selected(api: &str, sel: &Selection) -> Option<Response> {
    let name = BETA_ONLY
        .iter()
        .find(|p| api == V1 && sel.0.as_ref().is_some_and(|f| f.iter().any(|x| x == *p)))?;
    Some(graph_error(
        400,
        "BadRequest",
        &format!("Could not find a property named '{name}' on type 'microsoft.graph.group'."),
    ))
}

pub(crate) async fn groups_delta(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    delta_request(&app, (Kind::Group, V1), &headers, q.as_deref())
}

/// `GET /beta/groups/delta`: the same rounds, with beta-only properties selectable.
pub(crate) async fn groups_delta_beta(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    delta_request(&app, (Kind::Group, BETA), &headers, q.as_deref())
}

pub(crate) async fn users_delta(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    delta_request(&app, (Kind::User, V1), &headers, q.as_deref())
}

fn delta_request(
    app: &AppState,
    (kind, api): (Kind, &'static str),
    headers: &HeaderMap,
    q: Option<&str>,
) -> Response {
    let params = query_params(q);
    for opt in ["$filter", "$expand", "$orderby", "$search"] {
        if params.contains_key(opt) {
            let msg = format!("The query option {opt} is not supported by graph-sim delta.");
            return graph_error(400, "Request_UnsupportedQuery", &msg);
        }
    }
    let mut guard = app.sim.lock();
    let inner = &mut *guard;
    let state_not_found = || {
        graph_error(
            400,
            "syncStateNotFound",
            "The sync state is not found or has expired.",
        )
    };
    if let Some(skip) = params.get("$skiptoken") {
        let found = cursor::parse_skiptoken(inner.nonce, skip).filter(|(rid, page)| {
            inner
                .rounds
                .get(*rid)
                .is_some_and(|r| r.kind == kind && r.api == api && *page < r.pages.len())
        });
        let endless = params.contains_key("$endless");
        return match found {
            Some((rid, page)) => page_response(app, inner, (rid, page, endless), false),
            None => state_not_found(),
        };
    }
    let mut spec = RoundSpec {
        kind,
        sel: Selection::parse(params.get("$select").map(String::as_str)),
        since: None,
        minimal: false,
    };
    if let Some(refusal) = beta_only_selected(api, &spec.sel) {
        return refusal;
    }
    let mut latest = false;
    match params.get("$deltatoken").map(String::as_str) {
        Some("latest") => latest = true,
        Some(t) if !t.is_empty() => {
            let Some(tok) = DeltaToken::decode(t) else {
                return graph_error(400, "badRequest", "The delta token is malformed.");
            };
            if cursor::check_token(&tok, inner.nonce, kind, &inner.tenant).is_err() {
                return state_not_found();
            }
            if let Some(exp) = inner.faults.expired(tok.epoch) {
                let mut resp = graph_error(
                    exp.status,
                    &exp.code,
                    "The delta token has expired; a full resync is required.",
                );
                if exp.status == 410 {
                    let location = initial_url(&app.base, (kind, api), &tok.sel);
                    if let Ok(v) = HeaderValue::from_str(&location) {
                        resp.headers_mut().insert(header::LOCATION, v);
                    }
                }
                return resp;
            }
            spec.sel = tok.sel;
            spec.since = Some(tok.version);
            spec.minimal = prefers_minimal(headers);
        }
        _ => {}
    }
    let cfg = &inner.config;
    let pages = if latest {
        vec![Vec::new()]
    } else {
        let mut items = delta_rounds::compute_items(&inner.tenant, &spec, cfg.member_slice);
        if inner.faults.reorder_changes {
            delta_rounds::reverse(&mut items);
        }
        delta_rounds::paginate(
            items,
            cfg.page_size,
            cfg.member_slice,
            cfg.empty_pages,
            inner.faults.duplicate_changes,
        )
    };
    let round = Round {
        kind,
        api,
        sel: spec.sel,
        version: inner.tenant.version,
        pages,
    };
    let rid = inner.rounds.insert(round);
    page_response(app, inner, (rid, 0, false), spec.minimal)
}

/// `<base>/<api>/<collection>/delta?[$select=…&]$deltatoken=` (the 410 `Location`).
fn initial_url(base: &str, (kind, api): (Kind, &str), sel: &Selection) -> String {
    let select = sel
        .joined()
        .map(|s| format!("$select={}&", enc(&s)))
        .unwrap_or_default();
    format!(
        "{base}/{api}/{}/delta?{select}$deltatoken=",
        kind.collection()
    )
}

fn context(base: &str, (kind, api): (Kind, &str), sel: &Selection) -> String {
    match sel.joined() {
        Some(s) => format!("{base}/{api}/$metadata#{}({s})", kind.collection()),
        None => format!("{base}/{api}/$metadata#{}", kind.collection()),
    }
}

/// Answers page `page` of round `rid` (`endless`: a page of an endless nextLink chain, served
/// with an empty `value`; see the `endless_next_links` fault).
fn page_response(
    app: &AppState,
    inner: &mut Inner,
    (rid, page, endless): (u64, usize, bool),
    minimal: bool,
) -> Response {
    let Some(round) = inner.rounds.get(rid) else {
        return graph_error(
            400,
            "syncStateNotFound",
            "The sync state is not found or has expired.",
        );
    };
    let coll = round.kind.collection();
    let base = &format!("{}/{}", app.base, round.api);
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(context(&app.base, (round.kind, round.api), &round.sel)),
    );
    let items = if endless {
        Vec::new()
    } else {
        round.pages[page].clone()
    };
    body.insert("value".into(), Value::Array(items));
    let last = page + 1 >= round.pages.len();
    let endless_next = if last {
        inner.faults.take_endless(coll)
    } else {
        None
    };
    if let Some(n) = endless_next {
        let skip = cursor::skiptoken(inner.nonce, rid, page);
        body.insert(
            "@odata.nextLink".into(),
            Value::String(format!(
                "{base}/{coll}/delta?$skiptoken={skip}&$endless={n}"
            )),
        );
    } else if page + 1 < round.pages.len() {
        let skip = cursor::skiptoken(inner.nonce, rid, page + 1);
        body.insert(
            "@odata.nextLink".into(),
            Value::String(format!("{base}/{coll}/delta?$skiptoken={skip}")),
        );
    } else {
        let tok = DeltaToken {
            nonce: inner.nonce,
            kind: round.kind,
            version: round.version,
            epoch: inner.faults.epoch,
            sel: round.sel.clone(),
        };
        body.insert(
            "@odata.deltaLink".into(),
            Value::String(format!("{base}/{coll}/delta?$deltatoken={}", tok.encode())),
        );
    }
    let mut resp = match inner.faults.take_malformed() {
        None => json_response(200, &Value::Object(body)),
        Some(Malformed::InvalidJson) => {
            let text = Value::Object(body).to_string();
            let cut = text.len() / 2;
            let truncated = text.get(..cut).unwrap_or("{").to_string();
            ([(header::CONTENT_TYPE, "application/json")], truncated).into_response()
        }
        Some(Malformed::ValueNotArray) => {
            body.insert("value".into(), json!({"unexpected": "object"}));
            json_response(200, &Value::Object(body))
        }
        Some(Malformed::NoLink) => {
            body.remove("@odata.nextLink");
            body.remove("@odata.deltaLink");
            json_response(200, &Value::Object(body))
        }
    };
    if minimal {
        resp.headers_mut().insert(
            "preference-applied",
            HeaderValue::from_static("return=minimal"),
        );
    }
    resp
}

/// An active object with its selected properties, optionally typed (for getByIds).
fn object_json(inner: &Inner, kind: Kind, id: &str, sel: &Selection, typed: bool) -> Option<Value> {
    let obj = inner
        .tenant
        .objects(kind)
        .get(id)
        .filter(|o| o.life_now() == Life::Active)?;
    let mut m = Map::new();
    if typed {
        m.insert(
            "@odata.type".into(),
            Value::String(kind.odata_type().into()),
        );
    }
    m.insert("id".into(), Value::String(id.into()));
    m.extend(
        obj.props_json()
            .into_iter()
            .filter(|(k, _)| sel.has_prop(k)),
    );
    Some(Value::Object(m))
}

fn get_object(app: &AppState, (kind, api): (Kind, &str), id: &str, q: Option<&str>) -> Response {
    let params = query_params(q);
    let sel = Selection::parse(params.get("$select").map(String::as_str));
    if let Some(refusal) = beta_only_selected(api, &sel) {
        return refusal;
    }
    let inner = app.sim.lock();
    match object_json(&inner, kind, id, &sel, false) {
        Some(mut v) => {
            v.as_object_mut().map(|m| {
                m.insert(
                    "@odata.context".into(),
                    Value::String(format!("{}/$entity", context(&app.base, (kind, api), &sel))),
                )
            });
            json_response(200, &v)
        }
        None => not_found(id),
    }
}

/// Graph's 404 for an object id that is not there (in the collection asked about).
pub(crate) fn not_found(id: &str) -> Response {
    graph_error(
        404,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

pub(crate) async fn get_group(
    State(app): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    get_object(&app, (Kind::Group, V1), &id, q.as_deref())
}

/// `GET /beta/groups/{id}`: beta-only properties selectable.
pub(crate) async fn get_group_beta(
    State(app): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    get_object(&app, (Kind::Group, BETA), &id, q.as_deref())
}

pub(crate) async fn get_user(
    State(app): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    get_object(&app, (Kind::User, V1), &id, q.as_deref())
}

/// `POST /v1.0/directoryObjects/getByIds` `{"ids": [...], "types": ["user", "group"]}`.
pub(crate) async fn get_by_ids(State(app): State<AppState>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return graph_error(400, "BadRequest", "The request body is not valid JSON.");
    };
    let Some(ids) = req.get("ids").and_then(Value::as_array) else {
        return graph_error(400, "BadRequest", "The 'ids' parameter is required.");
    };
    let kinds: Vec<Kind> = match req.get("types").and_then(Value::as_array) {
        Some(types) => [Kind::User, Kind::Group]
            .into_iter()
            .filter(|k| {
                types.iter().filter_map(Value::as_str).any(|t| {
                    let short = t
                        .trim_start_matches('#')
                        .trim_start_matches("microsoft.graph.");
                    k.odata_type()
                        .ends_with(&format!(".{}", short.to_ascii_lowercase()))
                })
            })
            .collect(),
        None => vec![Kind::User, Kind::Group],
    };
    let inner = app.sim.lock();
    let all = Selection(None);
    let value: Vec<Value> = ids
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|id| {
            kinds
                .iter()
                .find_map(|k| object_json(&inner, *k, id, &all, true))
        })
        .collect();
    json_response(
        200,
        &json!({"@odata.context": format!("{}/v1.0/$metadata#directoryObjects", app.base), "value": value}),
    )
}
