//! Graph's deleted-items container (`/v1.0/directory/deletedItems`): soft-deleted users and
//! groups stay there, restorable, until they are restored or purged.
//!
//! A full delta enumeration never lists soft-deleted objects, so a client that finds an object
//! missing from a full round asks here whether it is merely soft-deleted or gone for good
//! (reference §11).
//!
//! - `GET /v1.0/directory/deletedItems/{id}`: 200 with the object (`@odata.type`, `id`,
//!   `deletedDateTime` in RFC 3339, every property it had; `$select` honoured) while it is
//!   soft-deleted; 404 `Request_ResourceNotFound` when it is live, purged or never existed.
//! - `GET /v1.0/directory/deletedItems/microsoft.graph.group` (and `microsoft.graph.user`):
//!   the soft-deleted objects of that type in id order, `{"value": [..]}`, paged with
//!   `@odata.nextLink` (no deltaLink: this is not a delta query). `$top` (1–999) sets the page
//!   size, default [`super::SimConfig::page_size`] (100, like Graph; `--page-size` lowers it).
//!   The skiptoken names the last id served, so objects deleted or restored between pages are
//!   neither repeated nor skipped, apart from those changing state themselves.

use std::time::SystemTime;

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde_json::{Map, Value};

use super::Inner;
use super::delta_rounds::Selection;
use super::resources::{enc, not_found, query_params};
use super::server::{AppState, graph_error, json_response};
use super::tenant::{Kind, Life};

/// Largest `$top` Graph accepts on directory collections.
const MAX_TOP: usize = 999;

/// `GET /v1.0/directory/deletedItems/{id}`: one soft-deleted object, or a typed list.
pub(crate) async fn get_deleted_item(
    State(app): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let params = query_params(q.as_deref());
    let sel = Selection::parse(params.get("$select").map(String::as_str));
    let inner = app.sim.lock();
    for kind in [Kind::Group, Kind::User] {
        if id == cast(kind) {
            return list(&app, &inner, kind, &sel, &params);
        }
    }
    let found = [Kind::Group, Kind::User]
        .into_iter()
        .find_map(|k| deleted_json(&inner, k, &id, &sel));
    match found {
        Some(mut v) => {
            v.insert(
                "@odata.context".into(),
                Value::String(format!(
                    "{}/v1.0/$metadata#directoryObjects/$entity",
                    app.base
                )),
            );
            json_response(200, &Value::Object(v))
        }
        None => not_found(&id),
    }
}

/// The type-cast segment listing one kind: `microsoft.graph.group` / `microsoft.graph.user`.
fn cast(kind: Kind) -> &'static str {
    kind.odata_type().trim_start_matches('#')
}

/// A soft-deleted object as deletedItems shows it; `None` unless it is soft-deleted now.
fn deleted_json(
    inner: &Inner,
    kind: Kind,
    id: &str,
    sel: &Selection,
) -> Option<Map<String, Value>> {
    let obj = inner
        .tenant
        .objects(kind)
        .get(id)
        .filter(|o| o.life_now() == Life::SoftDeleted)?;
    let mut m = Map::new();
    m.insert(
        "@odata.type".into(),
        Value::String(kind.odata_type().into()),
    );
    m.insert("id".into(), Value::String(id.into()));
    if sel.has_prop("deletedDateTime") {
        let at = obj.deleted_at.unwrap_or_else(SystemTime::now);
        let text = humantime::format_rfc3339_seconds(at).to_string();
        m.insert("deletedDateTime".into(), Value::String(text));
    }
    m.extend(
        obj.props_json()
            .into_iter()
            .filter(|(k, _)| sel.has_prop(k)),
    );
    Some(m)
}

/// Skiptoken of a deletedItems page: instance nonce, kind, hex of the last id served.
fn skiptoken(nonce: u32, kind: Kind, after: &str) -> String {
    let hex: String = after.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{nonce:08x}D{}{hex}", &kind.collection()[..1])
}

/// The id a skiptoken of this instance and kind continues after.
fn parse_skiptoken(nonce: u32, kind: Kind, token: &str) -> Option<String> {
    let hex = token.strip_prefix(&format!("{nonce:08x}D{}", &kind.collection()[..1]))?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

fn list(
    app: &AppState,
    inner: &Inner,
    kind: Kind,
    sel: &Selection,
    params: &std::collections::HashMap<String, String>,
) -> Response {
    for opt in ["$filter", "$orderby", "$search", "$count", "$expand"] {
        if params.contains_key(opt) {
            let msg = format!("The query option {opt} is not supported by graph-sim deletedItems.");
            return graph_error(400, "Request_UnsupportedQuery", &msg);
        }
    }
    let top = match params.get("$top") {
        None => inner.config.page_size.max(1),
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=MAX_TOP).contains(&n) => n,
            _ => {
                let msg = format!(
                    "Invalid page size specified: '{t}'. Must be between 1 and 999 inclusive."
                );
                return graph_error(400, "Request_UnsupportedQuery", &msg);
            }
        },
    };
    let after = match params.get("$skiptoken") {
        None => None,
        Some(t) => match parse_skiptoken(inner.nonce, kind, t) {
            Some(id) => Some(id),
            None => return graph_error(400, "Request_BadRequest", "The skip token is invalid."),
        },
    };
    let mut ids = inner
        .tenant
        .objects(kind)
        .iter()
        .filter(|(id, o)| {
            o.life_now() == Life::SoftDeleted && after.as_ref().is_none_or(|a| *id > a)
        })
        .map(|(id, _)| id.as_str());
    let page: Vec<&str> = ids.by_ref().take(top).collect();
    let more = ids.next().is_some();
    let value: Vec<Value> = page
        .iter()
        .filter_map(|id| deleted_json(inner, kind, id, sel).map(Value::Object))
        .collect();
    let coll = cast(kind);
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(format!(
            "{}/v1.0/$metadata#directoryObjects/{coll}",
            app.base
        )),
    );
    if let (true, Some(last)) = (more, page.last()) {
        let mut query = String::new();
        if params.contains_key("$top") {
            query.push_str(&format!("$top={top}&"));
        }
        if let Some(s) = sel.joined() {
            query.push_str(&format!("$select={}&", enc(&s)));
        }
        let skip = skiptoken(inner.nonce, kind, last);
        body.insert(
            "@odata.nextLink".into(),
            Value::String(format!(
                "{}/v1.0/directory/deletedItems/{coll}?{query}$skiptoken={skip}",
                app.base
            )),
        );
    }
    body.insert("value".into(), Value::Array(value));
    json_response(200, &Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skiptokens_round_trip_and_are_bound_to_instance_and_kind() {
        let t = skiptoken(7, Kind::Group, "ab-Ç1");
        assert_eq!(
            parse_skiptoken(7, Kind::Group, &t).as_deref(),
            Some("ab-Ç1")
        );
        assert_eq!(parse_skiptoken(8, Kind::Group, &t), None);
        assert_eq!(parse_skiptoken(7, Kind::User, &t), None);
        assert_eq!(parse_skiptoken(7, Kind::Group, "00000007Dg6"), None);
        assert_eq!(parse_skiptoken(7, Kind::Group, "00000007Dgzz"), None);
    }
}
