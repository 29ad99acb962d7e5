//! Group source of authority (SOA): `GET /v1.0/groups/{id}/onPremisesSyncBehavior` and the
//! admin operation that converts a group synced from AD to cloud-managed, or rolls it back.
//!
//! As documented (entra-docs `concept-group-source-of-authority-how-it-works`): converting
//! sets `isCloudManaged = true`; the sync client stops syncing the group, so
//! `onPremisesSyncEnabled` is no longer true (the simulator sets `false`), and the group keeps
//! its `onPremisesSecurityIdentifier`. Rolling back sets `isCloudManaged = false`, and AD takes
//! the group over at the sync client's next cycle, which the simulator models at once
//! (`onPremisesSyncEnabled = true`). `onPremisesSyncBehavior` is a relationship, not a delta
//! property: only the `onPremisesSyncEnabled` change shows in groups delta.

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::SimError;
use super::resources::not_found;
use super::server::{AppState, json_response};
use super::tenant::{Kind, Life, Prop, Tenant};

impl Tenant {
    /// Converts group `id` to cloud-managed (`true`) or back (`false`) at version `v`. Only a
    /// group that came from AD (it has `onPremisesSecurityIdentifier`) can be converted.
    pub fn set_cloud_managed(&mut self, id: &str, managed: bool, v: u64) -> Result<(), SimError> {
        let obj = self.active_mut(Kind::Group, id)?;
        let has_sid = obj
            .props
            .get("onPremisesSecurityIdentifier")
            .is_some_and(|p| p.value.is_string());
        if !has_sid {
            return Err(SimError::BadRequest(format!(
                "group {id} did not come from AD (no onPremisesSecurityIdentifier); its source of authority is already the cloud"
            )));
        }
        obj.cloud_managed = managed;
        let synced = Value::Bool(!managed);
        if obj
            .props
            .get("onPremisesSyncEnabled")
            .is_none_or(|p| p.value != synced)
        {
            let prop = Prop {
                value: synced,
                version: v,
            };
            obj.props.insert("onPremisesSyncEnabled".into(), prop);
        }
        Ok(())
    }
}

/// `GET /v1.0/groups/{id}/onPremisesSyncBehavior`: `{"isCloudManaged": bool}` for a live
/// group, 404 otherwise.
pub(crate) async fn get_sync_behavior(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let inner = app.sim.lock();
    match inner.tenant.objects(Kind::Group).get(&id) {
        Some(g) if g.life_now() == Life::Active => json_response(
            200,
            &json!({
                "@odata.context": format!("{}/v1.0/$metadata#groups('{id}')/onPremisesSyncBehavior/$entity", app.base),
                "id": id,
                "isCloudManaged": g.cloud_managed,
            }),
        ),
        _ => not_found(&id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn synced_group(t: &mut Tenant, sid: Option<&str>) {
        let mut props = Map::new();
        props.insert("displayName".into(), json!("Finance"));
        props.insert("onPremisesSyncEnabled".into(), json!(true));
        if let Some(s) = sid {
            props.insert("onPremisesSecurityIdentifier".into(), json!(s));
        }
        let v = t.bump();
        t.put(Kind::Group, "g1", props, v).unwrap();
    }

    #[test]
    fn conversion_stops_sync_and_rollback_resumes_it() {
        let mut t = Tenant::from_json(r#"{"tenant_id": "t", "clients": []}"#).unwrap();
        synced_group(&mut t, Some("S-1-5-21-1-2-3-1104"));
        let v = t.bump();
        t.set_cloud_managed("g1", true, v).unwrap();
        let g = &t.objects(Kind::Group)["g1"];
        assert!(g.cloud_managed);
        let synced = &g.props["onPremisesSyncEnabled"];
        assert_eq!(
            (synced.value.clone(), synced.version),
            (json!(false), v),
            "a delta change"
        );
        assert_eq!(
            g.props["onPremisesSecurityIdentifier"].value,
            json!("S-1-5-21-1-2-3-1104")
        );
        let v2 = t.bump();
        t.set_cloud_managed("g1", false, v2).unwrap();
        let g = &t.objects(Kind::Group)["g1"];
        assert!(!g.cloud_managed);
        assert_eq!(g.props["onPremisesSyncEnabled"].value, json!(true));
    }

    #[test]
    fn only_groups_from_ad_can_be_converted() {
        let mut t = Tenant::from_json(r#"{"tenant_id": "t", "clients": []}"#).unwrap();
        synced_group(&mut t, None);
        let v = t.bump();
        assert!(matches!(
            t.set_cloud_managed("g1", true, v),
            Err(SimError::BadRequest(_))
        ));
        assert!(matches!(
            t.set_cloud_managed("nope", true, v),
            Err(SimError::NotFound(_))
        ));
    }
}
