//! `GraphClient::group_state` against the simulator: live, soft-deleted and purged groups, the
//! requests it makes (404s are never retried), id validation, and retries that end in an error
//! rather than "purged".

use std::path::Path;

use entra_writeback::config::Config;
use entra_writeback::graph::{CloudGroupState, GraphClient, GraphError};
use entra_writeback::metrics;
use serde_json::{Value, json};

use super::{Sim, TENANT};

/// A client for the simulator at `base`, with short retry waits (3 attempts).
fn client(base: &str) -> GraphClient {
    let text = format!(
        "[graph]\ntenant_id = \"{TENANT}\"\nclient_id = \"app\"\nclient_secret = \"s3cret\"\n\
         authority_url = \"{base}\"\ngraph_url = \"{base}\"\n\
         [ad]\nurl = \"ldaps://dc.example.com\"\nbind_dn = \"CN=a\"\nbind_password = \"p\"\n\
         target_ou = \"OU=x,DC=y\"\n[state]\npath = \"/tmp/entra-writeback-lookup-test\"\n\
         [sync]\nmin_backoff = \"100ms\"\nmax_backoff = \"200ms\"\nmax_attempts = 3\n"
    );
    let cfg = Config::parse(&text, Path::new("t.toml"), |_| None).unwrap();
    GraphClient::new(&cfg.graph, &cfg.sync).unwrap()
}

/// The Graph requests logged since the last call, as "STATUS PATH?QUERY"; clears the log.
async fn graph_requests(sim: &Sim) -> Vec<String> {
    let log = sim
        .admin(reqwest::Method::GET, "/admin/requests", Value::Null)
        .await;
    sim.admin(reqwest::Method::DELETE, "/admin/requests", Value::Null)
        .await;
    log.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"].as_str().unwrap().starts_with("/v1.0/"))
        .map(|r| {
            format!(
                "{} {}?{}",
                r["status"],
                r["path"].as_str().unwrap(),
                r["query"].as_str().unwrap()
            )
        })
        .collect()
}

fn lookups(result: &str) -> u64 {
    metrics::get()
        .graph_lookups
        .with_label_values(&[result])
        .get()
}

#[tokio::test]
async fn group_state_tells_live_soft_deleted_and_purged_apart() {
    let sim = Sim::start().await;
    let del = reqwest::Method::DELETE;
    sim.admin(del.clone(), "/admin/groups/g2", Value::Null)
        .await;
    sim.admin(del.clone(), "/admin/groups/g1?hard=true", Value::Null)
        .await;
    let graph = client(&sim.base);
    let before: Vec<u64> = ["live", "soft_deleted", "purged", "error"]
        .map(lookups)
        .to_vec();
    graph_requests(&sim).await;

    assert_eq!(
        graph.group_state("big").await.unwrap(),
        CloudGroupState::Live
    );
    assert_eq!(
        graph_requests(&sim).await,
        ["200 /v1.0/groups/big?$select=id"]
    );

    assert_eq!(
        graph.group_state("g2").await.unwrap(),
        CloudGroupState::SoftDeleted
    );
    assert_eq!(
        graph_requests(&sim).await,
        [
            "404 /v1.0/groups/g2?$select=id",
            "200 /v1.0/directory/deletedItems/g2?$select=id"
        ]
    );

    for id in ["g1", "never-existed"] {
        assert_eq!(
            graph.group_state(id).await.unwrap(),
            CloudGroupState::Purged
        );
        assert_eq!(
            graph_requests(&sim).await,
            [
                format!("404 /v1.0/groups/{id}?$select=id"),
                format!("404 /v1.0/directory/deletedItems/{id}?$select=id"),
                format!("404 /v1.0/groups/{id}?$select=id"),
            ],
            "404s are answers, never retried; the group is checked again before 'purged'"
        );
    }

    // An id that is not a Graph object id is refused before any request is built.
    for bad in ["../users", "g1/members", "g1?$x", ""] {
        let e = graph.group_state(bad).await.unwrap_err();
        assert!(matches!(e, GraphError::InvalidId(_)), "{bad:?}: {e}");
    }
    assert!(graph_requests(&sim).await.is_empty());

    // Throttling is retried with the client's usual policy; when it outlasts the attempts the
    // answer is an error, never "purged".
    let fault = |count: u32| {
        json!({"throttle": {"count": count, "status": 503, "retry_after": "0.1",
                            "path": "/v1.0/directory/"}})
    };
    sim.admin(reqwest::Method::POST, "/admin/faults", fault(1))
        .await;
    assert_eq!(
        graph.group_state("g2").await.unwrap(),
        CloudGroupState::SoftDeleted
    );
    assert_eq!(graph_requests(&sim).await.len(), 3, "one retry");
    sim.admin(reqwest::Method::POST, "/admin/faults", fault(10))
        .await;
    let e = graph.group_state("g2").await.unwrap_err();
    assert!(matches!(e, GraphError::Server { status: 503, .. }), "{e}");
    let statuses: Vec<String> = graph_requests(&sim).await;
    assert_eq!(
        statuses,
        [
            "404 /v1.0/groups/g2?$select=id",
            "503 /v1.0/directory/deletedItems/g2?$select=id",
            "503 /v1.0/directory/deletedItems/g2?$select=id",
            "503 /v1.0/directory/deletedItems/g2?$select=id",
        ]
    );

    let after: Vec<u64> = ["live", "soft_deleted", "purged", "error"]
        .map(lookups)
        .to_vec();
    let counted: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(counted, [1, 2, 2, 5], "live, soft_deleted, purged, error");
    let purged = format!(
        "entra_writeback_graph_lookups_total{{result=\"purged\"}} {}\n",
        after[2]
    );
    assert!(
        metrics::get().render().contains(&purged),
        "exported as {purged}"
    );
}
