//! Point lookups of one group's cloud state: live, soft-deleted (restorable) or purged.
//!
//! A full delta enumeration never lists soft-deleted groups (reference §11), so an owned group
//! missing from a full round, or a held delete being released, needs a direct answer before AD
//! is touched: a soft-deleted group's AD object is kept, only a purged one's may go.
//!
//! Requests go through [`GraphClient::get`]: the same token handling, retry/backoff policy and
//! process-wide rate limiter as delta rounds. A 404 is an answer (never retried); every other
//! failure is an error, never "purged": callers treat an error as "don't know, leave AD alone".

use super::client::{GraphClient, GraphError};
use crate::model::Event;

/// Where a group stands in the cloud right now, as Graph answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudGroupState {
    /// `GET /groups/{id}` finds it.
    Live,
    /// Not live, but in `directory/deletedItems`: restorable, so its AD object must stay.
    SoftDeleted,
    /// Neither live nor in deletedItems: permanently deleted (or never existed).
    Purged,
}

impl CloudGroupState {
    /// Label for `entra_writeback_graph_lookups_total{result}`.
    pub fn as_str(self) -> &'static str {
        match self {
            CloudGroupState::Live => "live",
            CloudGroupState::SoftDeleted => "soft_deleted",
            CloudGroupState::Purged => "purged",
        }
    }
}

/// Longest id accepted (a Graph object id is a 36-character GUID).
const MAX_ID_LEN: usize = 256;

/// Checks that `id` can be put into a URL path as is: non-empty, at most 256 characters, only
/// ASCII letters, digits and `-` (a Graph object id is a GUID). Anything else is refused rather
/// than encoded, so no id can ever reshape the request (`/`, `?`, `..`, `%`).
pub fn validate_object_id(id: &str) -> Result<&str, GraphError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(id)
    } else {
        Err(GraphError::InvalidId(id.chars().take(64).collect()))
    }
}

/// Whether a lookup step found the object: `Ok(true)` on 2xx, `Ok(false)` on 404, else the error.
fn found(result: Result<Vec<u8>, GraphError>) -> Result<bool, GraphError> {
    match result {
        Ok(_) => Ok(true),
        Err(GraphError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

impl GraphClient {
    /// `GET /v1.0/groups/{id}?$select=id` → 200 Live; 404 → `GET
    /// /v1.0/directory/deletedItems/{id}?$select=id` → 200 SoftDeleted; 404 → the group is
    /// looked up once more (a restore between the two requests must not read as a purge): 200
    /// Live, 404 Purged. Any other answer or failure (after the usual retries) is an error.
    pub async fn group_state(&self, id: &str) -> Result<CloudGroupState, GraphError> {
        let result = self.group_state_uncounted(id).await;
        let label = result.as_ref().map_or("error", |s| s.as_str());
        self.events().emit(Event::GroupLookup { result: label });
        match &result {
            Ok(state) => tracing::debug!(group = id, state = state.as_str(), "group looked up"),
            Err(e) => tracing::warn!(group = id, error = %e, "group lookup failed"),
        }
        result
    }

    async fn group_state_uncounted(&self, id: &str) -> Result<CloudGroupState, GraphError> {
        let id = validate_object_id(id)?;
        let base = self.graph_url();
        let group_url = format!("{base}/v1.0/groups/{id}?$select=id");
        if found(self.get("group_get", &group_url, false).await)? {
            return Ok(CloudGroupState::Live);
        }
        let deleted_url = format!("{base}/v1.0/directory/deletedItems/{id}?$select=id");
        if found(self.get("deleted_item_get", &deleted_url, false).await)? {
            return Ok(CloudGroupState::SoftDeleted);
        }
        if found(self.get("group_get", &group_url, false).await)? {
            return Ok(CloudGroupState::Live);
        }
        Ok(CloudGroupState::Purged)
    }
}

/// The scope-relevant properties `GET /groups/{id}` asks for (the delta `$select` without
/// `members`).
const GROUP_PROPS_SELECT: &str = "id,displayName,description,groupTypes,securityEnabled,mailEnabled,mailNickname,onPremisesSyncEnabled,onPremisesSecurityIdentifier";

impl GraphClient {
    /// A live group's current properties (`GET /groups/{id}`), so that a destructive action
    /// for a group that left scope can check it has not come back into scope meanwhile.
    pub async fn group_props(&self, id: &str) -> Result<crate::model::GroupProps, GraphError> {
        let id = validate_object_id(id)?;
        // Under `writeback_configuration = "honour"` the per-group setting is part of the
        // scope, and only beta has it.
        let (api, extra) = if self.delta_is_beta(crate::model::Resource::Groups) {
            ("beta", ",writebackConfiguration")
        } else {
            ("v1.0", "")
        };
        let url = format!(
            "{}/{api}/groups/{id}?$select={GROUP_PROPS_SELECT}{extra}",
            self.graph_url()
        );
        let body = self.get("group_get", &url, false).await?;
        let item = super::page::parse_group_object(&body).map_err(|e| GraphError::Http {
            status: 200,
            code: "malformed_group".into(),
            message: e.to_string(),
        })?;
        let mut props = crate::model::GroupProps::default();
        props.apply(&item.patch);
        Ok(props)
    }
}

impl GraphClient {
    /// Whether a group's source of authority is the cloud now: `GET
    /// /v1.0/groups/{id}/onPremisesSyncBehavior` → `isCloudManaged`. It is a relationship,
    /// not a delta property, so it is read once, when a converted group's original is adopted.
    /// Needs `Group-OnPremisesSyncBehavior.ReadWrite.All` (also for reading); a 403 names it.
    pub async fn cloud_managed(&self, id: &str) -> Result<bool, GraphError> {
        let id = validate_object_id(id)?;
        let url = format!(
            "{}/v1.0/groups/{id}/onPremisesSyncBehavior?$select=isCloudManaged",
            self.graph_url()
        );
        let body = match self.get("sync_behavior_get", &url, false).await {
            Err(GraphError::Http {
                status: 403, code, ..
            }) => {
                return Err(GraphError::Http {
                    status: 403,
                    code,
                    message: "reading onPremisesSyncBehavior needs the application permission \
                              Group-OnPremisesSyncBehavior.ReadWrite.All (admin consent)"
                        .into(),
                });
            }
            other => other?,
        };
        parse_cloud_managed(&body).ok_or_else(|| GraphError::Http {
            status: 200,
            code: "malformed_sync_behavior".into(),
            message: "onPremisesSyncBehavior without a boolean isCloudManaged".into(),
        })
    }
}

/// `isCloudManaged` of an `onPremisesSyncBehavior` body; absent or null reads as `false`
/// (never converted), anything else malformed as `None`.
fn parse_cloud_managed(body: &[u8]) -> Option<bool> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    match v.as_object()?.get("isCloudManaged") {
        None | Some(serde_json::Value::Null) => Some(false),
        Some(b) => b.as_bool(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::client::classify;

    #[test]
    fn cloud_managed_is_read_strictly() {
        assert_eq!(
            parse_cloud_managed(br#"{"isCloudManaged":true}"#),
            Some(true)
        );
        assert_eq!(
            parse_cloud_managed(br#"{"id":"g","isCloudManaged":false}"#),
            Some(false)
        );
        assert_eq!(
            parse_cloud_managed(br#"{"isCloudManaged":null}"#),
            Some(false)
        );
        assert_eq!(parse_cloud_managed(br#"{}"#), Some(false));
        assert_eq!(parse_cloud_managed(br#"{"isCloudManaged":"yes"}"#), None);
        assert_eq!(parse_cloud_managed(b"[1]"), None);
        assert_eq!(parse_cloud_managed(b"not json"), None);
    }

    #[test]
    fn object_ids_are_validated_not_encoded() {
        for ok in ["0f3c1e9a-5b7d-4c2e-9a1b-2c3d4e5f6a7b", "g1", "ABC-def-123"] {
            assert_eq!(validate_object_id(ok).unwrap(), ok);
        }
        let long = "a".repeat(MAX_ID_LEN + 1);
        for bad in [
            "",
            "g1/members",
            "../users",
            "g1?$select=x",
            "g%2F1",
            "g 1",
            "g1#",
            "é",
            "g_1",
            "g1\n",
            &long,
        ] {
            let e = validate_object_id(bad).unwrap_err();
            assert!(matches!(e, GraphError::InvalidId(_)), "{bad:?}");
            assert!(!e.is_transient());
            assert_eq!(e.class(), "invalid_id");
        }
    }

    #[test]
    fn not_found_is_an_answer_and_other_errors_stay_errors() {
        let body = br#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'g1' does not exist"}}"#;
        let e = classify(404, None, body);
        assert!(
            matches!(&e, GraphError::NotFound { code, .. } if code == "Request_ResourceNotFound"),
            "{e:?}"
        );
        assert!(!e.is_transient(), "a 404 is never retried");
        assert_eq!(e.class(), "not_found");
        assert!(!found(Err(e)).unwrap());
        assert!(found(Ok(Vec::new())).unwrap());
        assert!(matches!(
            classify(404, None, b""),
            GraphError::NotFound { .. }
        ));
        for status in [400, 403, 409, 429, 500, 503] {
            let e = found(Err(classify(status, None, b"{}"))).unwrap_err();
            assert!(!matches!(e, GraphError::NotFound { .. }), "{status}");
        }
        assert_eq!(CloudGroupState::SoftDeleted.as_str(), "soft_deleted");
    }
}
