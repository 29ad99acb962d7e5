//! The composition root's bridge from the directory layer's [`CloudOracle`] to Graph: the
//! worker asks, right before any destructive action, where a group stands in the cloud.

use crate::directory::CloudOracle;
use crate::directory::retire::OracleFuture;
use crate::graph::GraphClient;
use crate::graph::lookup::CloudGroupState;
use crate::queue::safety::CloudState;

/// [`CloudOracle`] over Graph: `GET /groups/{id}`, then `GET /directory/deletedItems/{id}`,
/// with the client's retry policy and rate ceiling.
pub struct GraphOracle(pub GraphClient);

impl CloudOracle for GraphOracle {
    fn group_state<'a>(&'a self, group_id: &'a str) -> OracleFuture<'a> {
        Box::pin(async move {
            Ok(match self.0.group_state(group_id).await? {
                CloudGroupState::Live => CloudState::Live,
                CloudGroupState::SoftDeleted => CloudState::SoftDeleted,
                CloudGroupState::Purged => CloudState::Purged,
            })
        })
    }
}
