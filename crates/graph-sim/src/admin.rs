//! The admin API (no authentication): lets tests and demos change the tenant between rounds,
//! inspect it, read the request log, arm faults and move the clock.
//!
//! | endpoint | body | effect |
//! |---|---|---|
//! | `PUT /admin/groups/{id}` | property object, optional `"members": [..]` | merge (create if missing); `null` clears; `members` replaces the list; any property passes through (e.g. `onPremisesSyncEnabled` + `onPremisesSecurityIdentifier` for a group synced from AD) |
//! | `POST /admin/groups/{id}/members` | `{"add": [member..], "remove": [member..]}` | add, then remove, direct members |
//! | `DELETE /admin/groups/{id}[?hard=true]` | | soft delete (the group moves to `/v1.0/directory/deletedItems`, stamped `deletedDateTime` = now); `hard=true` deletes permanently (also purges a soft-deleted group: gone from deletedItems too) |
//! | `POST /admin/groups/{id}/restore` | | restore a soft-deleted group (live again, out of deletedItems) |
//! | `POST /admin/groups/{id}/source-of-authority` | `{"isCloudManaged": true}` | convert a group synced from AD to cloud-managed (`false`: roll back); see [`super::sync_behavior`] |
//! | `PUT /admin/users/{id}`, `DELETE /admin/users/{id}[?hard=true]`, `POST /admin/users/{id}/restore` | | same for users |
//! | `POST /admin/bulk` | `[op, ..]` (see [`AdminOp`]) | applies all operations atomically, in order |
//! | `GET /admin/state` | | tenant-file shape + `version`, `deleted_groups`, `deleted_users` |
//! | `GET`, `DELETE /admin/requests` | | request log (see `RequestRecord`) / clear it |
//! | `GET`, `POST`, `DELETE /admin/faults` | see [`super::faults`] | show / arm / disarm faults |
//! | `POST /admin/clock` | `{"advance": "1h"}` (humantime) | move the simulator clock (token expiry) forward |
//!
//! A member is `{"@odata.type": "#microsoft.graph.user", "id": ".."}` (types user, group,
//! device, orgContact, servicePrincipal; the `#microsoft.graph.` prefix is optional).
//! Mutations answer `200 {"version": N}` (the tenant version after the change); errors answer
//! 400 (bad input), 404 (no such object), or 409 (object soft-deleted) with `{"error": ".."}`
//! (bulk errors add `"index"` of the failing operation; nothing is applied).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::server::{AppState, json_response};
use super::tenant::{Kind, MemberKey, Tenant};
use super::{SimError, faults};

/// One tenant mutation; `POST /admin/bulk` takes a JSON array of these, tagged by `op`:
/// ```json
/// [{"op": "put_group", "id": "g1", "properties": {"displayName": "Eng", "members": []}},
///  {"op": "members", "id": "g1", "add": [{"@odata.type": "user", "id": "u1"}], "remove": []},
///  {"op": "delete_group", "id": "g2", "hard": false},
///  {"op": "restore_group", "id": "g3"},
///  {"op": "put_user", "id": "u1", "properties": {"displayName": "Ann"}},
///  {"op": "delete_user", "id": "u2", "hard": true},
///  {"op": "restore_user", "id": "u3"}]
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminOp {
    /// Merge properties into a group (creating it); `members` in `properties` replaces the list.
    PutGroup {
        /// Group id.
        id: String,
        /// Properties to merge.
        #[serde(default)]
        properties: Map<String, Value>,
    },
    /// Add then remove direct members of a group.
    Members {
        /// Group id.
        id: String,
        /// Members to add.
        #[serde(default)]
        add: Vec<Value>,
        /// Members to remove.
        #[serde(default)]
        remove: Vec<Value>,
    },
    /// Soft-delete (or with `hard`, permanently delete) a group.
    DeleteGroup {
        /// Group id.
        id: String,
        /// Permanent delete / purge.
        #[serde(default)]
        hard: bool,
    },
    /// Restore a soft-deleted group.
    RestoreGroup {
        /// Group id.
        id: String,
    },
    /// Merge properties into a user (creating it).
    PutUser {
        /// User id.
        id: String,
        /// Properties to merge.
        #[serde(default)]
        properties: Map<String, Value>,
    },
    /// Soft-delete (or with `hard`, permanently delete) a user.
    DeleteUser {
        /// User id.
        id: String,
        /// Permanent delete / purge.
        #[serde(default)]
        hard: bool,
    },
    /// Restore a soft-deleted user.
    RestoreUser {
        /// User id.
        id: String,
    },
    /// Convert a group synced from AD to cloud-managed, or roll it back.
    SourceOfAuthority {
        /// Group id.
        id: String,
        /// `onPremisesSyncBehavior.isCloudManaged`.
        cloud_managed: bool,
    },
}

fn apply_one(t: &mut Tenant, op: AdminOp) -> Result<(), SimError> {
    let v = t.bump();
    match op {
        AdminOp::PutGroup { id, properties } => t.put(Kind::Group, &id, properties, v),
        AdminOp::PutUser { id, properties } => t.put(Kind::User, &id, properties, v),
        AdminOp::Members { id, add, remove } => {
            let parse = |l: &[Value]| {
                l.iter()
                    .map(MemberKey::parse)
                    .collect::<Result<Vec<_>, _>>()
            };
            let (add, remove) = (parse(&add)?, parse(&remove)?);
            t.change_members(&id, &add, &remove, v)
        }
        AdminOp::DeleteGroup { id, hard } => t.delete(Kind::Group, &id, hard, v),
        AdminOp::DeleteUser { id, hard } => t.delete(Kind::User, &id, hard, v),
        AdminOp::RestoreGroup { id } => t.restore(Kind::Group, &id, v),
        AdminOp::RestoreUser { id } => t.restore(Kind::User, &id, v),
        AdminOp::SourceOfAuthority { id, cloud_managed } => {
            t.set_cloud_managed(&id, cloud_managed, v)
        }
    }
}

/// Applies `ops` in order, all or nothing; returns the tenant version afterwards, or the index
/// of the failing operation and why.
pub(crate) fn apply_indexed(t: &mut Tenant, ops: Vec<AdminOp>) -> Result<u64, (usize, SimError)> {
    if ops.len() == 1 {
        // A single operation validates before it mutates, so no copy is needed.
        let op = ops.into_iter().next().expect("one op");
        apply_one(t, op).map_err(|e| (0, e))?;
        return Ok(t.version);
    }
    let mut work = t.clone();
    for (i, op) in ops.into_iter().enumerate() {
        apply_one(&mut work, op).map_err(|e| (i, e))?;
    }
    *t = work;
    Ok(t.version)
}

/// [`apply_indexed`] with the index folded into the error message.
pub(crate) fn apply_ops(t: &mut Tenant, ops: Vec<AdminOp>) -> Result<u64, SimError> {
    apply_indexed(t, ops).map_err(|(i, e)| {
        let m = |s: String| format!("operation {i}: {s}");
        match e {
            SimError::BadRequest(s) => SimError::BadRequest(m(s)),
            SimError::NotFound(s) => SimError::NotFound(m(s)),
            SimError::Conflict(s) => SimError::Conflict(m(s)),
            SimError::TenantFile(s) => SimError::TenantFile(m(s)),
        }
    })
}

fn error_response(e: &SimError, index: Option<usize>) -> Response {
    let status = match e {
        SimError::NotFound(_) => 404,
        SimError::Conflict(_) => 409,
        SimError::BadRequest(_) | SimError::TenantFile(_) => 400,
    };
    let mut body = json!({"error": e.to_string()});
    if let Some(i) = index {
        body["index"] = json!(i);
    }
    json_response(status, &body)
}

fn bad_json(e: impl std::fmt::Display) -> Response {
    json_response(400, &json!({"error": format!("invalid JSON body: {e}")}))
}

fn run(app: &AppState, ops: Vec<AdminOp>) -> Response {
    let mut inner = app.sim.lock();
    match apply_indexed(&mut inner.tenant, ops) {
        Ok(version) => json_response(200, &json!({"version": version})),
        Err((i, e)) => error_response(&e, Some(i)),
    }
}

fn hard(q: Option<&str>) -> bool {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .any(|(k, v)| k == "hard" && (v == "true" || v == "1"))
}

fn put_object(app: &AppState, kind: Kind, id: String, body: Bytes) -> Response {
    let properties: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad_json(e),
    };
    let op = match kind {
        Kind::Group => AdminOp::PutGroup { id, properties },
        Kind::User => AdminOp::PutUser { id, properties },
    };
    run(app, vec![op])
}

async fn put_group(State(app): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    put_object(&app, Kind::Group, id, body)
}

async fn put_user(State(app): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    put_object(&app, Kind::User, id, body)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersBody {
    #[serde(default)]
    add: Vec<Value>,
    #[serde(default)]
    remove: Vec<Value>,
}

async fn members(State(app): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    match serde_json::from_slice::<MembersBody>(&body) {
        Ok(MembersBody { add, remove }) => run(&app, vec![AdminOp::Members { id, add, remove }]),
        Err(e) => bad_json(e),
    }
}

async fn delete_group(
    State(app): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    run(
        &app,
        vec![AdminOp::DeleteGroup {
            id,
            hard: hard(q.as_deref()),
        }],
    )
}

async fn delete_user(
    State(app): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    run(
        &app,
        vec![AdminOp::DeleteUser {
            id,
            hard: hard(q.as_deref()),
        }],
    )
}

async fn restore_group(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    run(&app, vec![AdminOp::RestoreGroup { id }])
}

async fn restore_user(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    run(&app, vec![AdminOp::RestoreUser { id }])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SourceOfAuthorityBody {
    is_cloud_managed: bool,
}

async fn source_of_authority(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    match serde_json::from_slice::<SourceOfAuthorityBody>(&body) {
        Ok(b) => run(
            &app,
            vec![AdminOp::SourceOfAuthority {
                id,
                cloud_managed: b.is_cloud_managed,
            }],
        ),
        Err(e) => bad_json(e),
    }
}

async fn bulk(State(app): State<AppState>, body: Bytes) -> Response {
    match serde_json::from_slice::<Vec<AdminOp>>(&body) {
        Ok(ops) if ops.is_empty() => {
            let v = app.sim.lock().tenant.version;
            json_response(200, &json!({"version": v}))
        }
        Ok(ops) => run(&app, ops),
        Err(e) => bad_json(e),
    }
}

async fn state(State(app): State<AppState>) -> Response {
    json_response(200, &app.sim.state())
}

async fn requests(State(app): State<AppState>) -> Response {
    let inner = app.sim.lock();
    json_response(
        200,
        &serde_json::to_value(&inner.log.records).unwrap_or(Value::Null),
    )
}

async fn clear_requests(State(app): State<AppState>) -> Response {
    app.sim.lock().log.records.clear();
    json_response(200, &json!({"cleared": true}))
}

async fn get_faults(State(app): State<AppState>) -> Response {
    json_response(200, &app.sim.lock().faults.to_json())
}

async fn arm_faults(State(app): State<AppState>, body: Bytes) -> Response {
    let spec: faults::FaultSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return bad_json(e),
    };
    let mut inner = app.sim.lock();
    let revoke = spec.revoke_tokens();
    match inner.faults.arm(spec) {
        Ok(()) => {
            if revoke {
                inner.tokens.revoke_all();
            }
            json_response(200, &inner.faults.to_json())
        }
        Err(e) => error_response(&e, None),
    }
}

async fn clear_faults(State(app): State<AppState>) -> Response {
    let mut inner = app.sim.lock();
    inner.faults.clear();
    json_response(200, &inner.faults.to_json())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    advance: String,
}

async fn clock(State(app): State<AppState>, body: Bytes) -> Response {
    let by = serde_json::from_slice::<ClockBody>(&body)
        .map_err(|e| e.to_string())
        .and_then(|b| humantime::parse_duration(&b.advance).map_err(|e| e.to_string()));
    match by {
        Ok(by) => {
            app.sim.advance_clock(by);
            let offset = app.sim.lock().clock_offset;
            json_response(200, &json!({"offset_ms": offset.as_millis() as u64}))
        }
        Err(e) => json_response(400, &json!({"error": e})),
    }
}

/// The `/admin` routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/groups/{id}", put(put_group).delete(delete_group))
        .route("/admin/groups/{id}/members", post(members))
        .route("/admin/groups/{id}/restore", post(restore_group))
        .route(
            "/admin/groups/{id}/source-of-authority",
            post(source_of_authority),
        )
        .route("/admin/users/{id}", put(put_user).delete(delete_user))
        .route("/admin/users/{id}/restore", post(restore_user))
        .route("/admin/bulk", post(bulk))
        .route("/admin/state", get(state))
        .route("/admin/requests", get(requests).delete(clear_requests))
        .route(
            "/admin/faults",
            get(get_faults).post(arm_faults).delete(clear_faults),
        )
        .route("/admin/clock", post(clock))
        // A bulk seeding of a large tenant (10,000 groups with their members) is tens of MiB
        // of JSON, far beyond axum's default limit of 2 MiB for a request body.
        .layer(DefaultBodyLimit::max(ADMIN_BODY_LIMIT))
}

/// The largest admin request body graph-sim accepts: room for the benchmarks' tenants.
const ADMIN_BODY_LIMIT: usize = 512 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_is_atomic_and_reports_the_failing_index() {
        let mut t = Tenant::from_json(r#"{"tenant_id": "t"}"#).unwrap();
        let ops: Vec<AdminOp> = serde_json::from_value(json!([
            {"op": "put_group", "id": "g1", "properties": {"displayName": "Eng"}},
            {"op": "members", "id": "g1", "add": [{"@odata.type": "user", "id": "u1"}]},
            {"op": "restore_group", "id": "g1"}]))
        .unwrap();
        let (i, e) = apply_indexed(&mut t, ops.clone()).unwrap_err();
        assert_eq!(i, 2);
        assert!(matches!(e, SimError::NotFound(_)));
        assert!(t.groups.is_empty(), "nothing applied");
        apply_indexed(&mut t, ops[..2].to_vec()).unwrap();
        assert_eq!(t.groups["g1"].current_members().count(), 1);
        assert!(serde_json::from_value::<AdminOp>(json!({"op": "explode", "id": "x"})).is_err());
    }
}
