//! The composition root's bridge from the directory layer's [`CloudOracle`] to Graph: the
//! worker asks, right before any destructive action, where a group stands in the cloud.

use crate::directory::CloudOracle;
use crate::directory::retire::OracleFuture;
use crate::graph::GraphClient;

/// [`CloudOracle`] over Graph: `GET /groups/{id}`, then `GET /directory/deletedItems/{id}`,
/// with the client's retry policy and rate ceiling ([`GraphClient::group_state`]).
pub struct GraphOracle(pub GraphClient);

impl CloudOracle for GraphOracle {
    fn group_state<'a>(&'a self, group_id: &'a str) -> OracleFuture<'a> {
        Box::pin(self.0.group_state(group_id))
    }
}
