//! The composition root's bridge from the directory layer's [`CloudOracle`] to Graph: the
//! worker asks, right before any destructive action, where a group stands in the cloud.

use crate::directory::CloudOracle;
use crate::directory::retire::{ManagedFuture, OracleFuture};
use crate::graph::{CloudGroupState, GraphClient};
use crate::queue::safety::CloudNow;

/// [`CloudOracle`] over Graph: `GET /groups/{id}`, then `GET /directory/deletedItems/{id}`,
/// with the client's retry policy and rate ceiling ([`GraphClient::group_state`]); for a live
/// group, its properties too, so the scope is judged on what it is now.
pub struct GraphOracle(pub GraphClient);

impl CloudOracle for GraphOracle {
    fn group_state<'a>(&'a self, group_id: &'a str) -> OracleFuture<'a> {
        Box::pin(async move {
            Ok(match self.0.group_state(group_id).await? {
                CloudGroupState::Live => {
                    let props = self.0.group_props(group_id).await?;
                    let in_scope = props.eligible() && self.0.scope().admits(group_id, &props);
                    CloudNow::Live { in_scope }
                }
                CloudGroupState::SoftDeleted => CloudNow::SoftDeleted,
                CloudGroupState::Purged => CloudNow::Purged,
            })
        })
    }

    fn cloud_managed<'a>(&'a self, group_id: &'a str) -> ManagedFuture<'a> {
        Box::pin(self.0.cloud_managed(group_id))
    }
}
