//! The next page of a round, fetched while the current one is committed and flushed.
//!
//! A round's pages come one after the other (each names the next), and each costs a Graph
//! request and a store commit with its flush. Fetching page N + 1 while page N is committed
//! overlaps the two, so a round is read in about the time of the slower of them.
//!
//! # Guarantees
//! - A fetch moves nothing: the cursor still moves only with a committed, flushed page. Only
//!   the request the state machine says it makes next is fetched
//!   ([`crate::graph::delta::Round::fetch_after`]), so a round's page budget and its
//!   repeated-link guard are never passed; the body is used only if the machine then asks for
//!   exactly that request (the same URL and the same `Prefer`), otherwise it is dropped.
//! - It is one attempt, never retried: a failed or refused fetch ahead is forgotten and the
//!   page is fetched again the usual way, with the client's retries and error handling.
//! - Dropping it (the round ended, failed or was stopped) aborts the request.
//!
//! Imports: [`crate::graph`] and [`crate::model`].

use tokio::task::JoinHandle;

use crate::graph::{GraphClient, GraphError, delta};
use crate::model::Resource;

/// A page being fetched ahead of its turn.
pub(super) struct Ahead {
    url: String,
    minimal: bool,
    task: JoinHandle<Result<Vec<u8>, GraphError>>,
}

impl Ahead {
    /// Starts fetching `url` (one attempt) on a task of its own.
    pub(super) fn start(
        client: &GraphClient,
        resource: Resource,
        url: &str,
        minimal: bool,
    ) -> Ahead {
        let (client, fetch) = (client.clone(), url.to_string());
        let task = tokio::spawn(async move {
            client
                .get_once(delta::endpoint(resource), &fetch, minimal)
                .await
        });
        Ahead {
            url: url.to_string(),
            minimal,
            task,
        }
    }

    /// The page's body, if this is the request asked for and the fetch succeeded.
    pub(super) async fn take(mut self, url: &str, minimal: bool) -> Option<Vec<u8>> {
        if self.url != url || self.minimal != minimal {
            return None;
        }
        match (&mut self.task).await {
            Ok(Ok(body)) => Some(body),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "page fetched ahead failed; fetching it again");
                None
            }
            Err(_) => None,
        }
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.task.abort();
    }
}
