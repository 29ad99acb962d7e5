//! End-to-end test of the Graph simulator over HTTP: token, paged initial round with a sliced
//! large group, an admin change, the incremental round, faults and the 410 resync path;
//! deletedItems (`graph_sim/deleted_items.rs`) and `GraphClient::group_state` against the
//! simulator (`graph_sim/lookup.rs`); the beta delta and source-of-authority conversion
//! (`graph_sim/beta_and_soa.rs`).

use std::collections::BTreeSet;

use graph_sim::{SimConfig, Simulator, serve};
use serde_json::{Value, json};

#[path = "graph_sim/beta_and_soa.rs"]
mod beta_and_soa;
#[path = "graph_sim/deleted_items.rs"]
mod deleted_items;
#[path = "graph_sim/lookup.rs"]
mod lookup;

const TENANT: &str = "contoso.onmicrosoft.com";

struct Sim {
    base: String,
    http: reqwest::Client,
    token: String,
}

impl Sim {
    async fn start() -> Sim {
        let members: Vec<Value> = (0..1200)
            .map(|i| json!({"@odata.type": "#microsoft.graph.user", "id": format!("u{i:04}")}))
            .collect();
        let tenant = json!({"tenant_id": TENANT,
            "clients": [{"client_id": "app", "client_secret": "s3cret"}],
            "users": [{"id": "u0000", "displayName": "Ann", "onPremisesSamAccountName": "ann"}],
            "groups": [
                {"id": "big", "displayName": "Big", "securityEnabled": true, "members": members},
                {"id": "g1", "displayName": "One", "description": "first"},
                {"id": "g2", "displayName": "Two", "onPremisesSyncEnabled": null,
                 "members": [{"@odata.type": "#microsoft.graph.group", "id": "g1"}]}]});
        let config = SimConfig {
            page_size: 2,
            ..SimConfig::default()
        };
        let sim = Simulator::from_tenant_json(&tenant.to_string(), config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(serve(listener, sim));
        let http = reqwest::Client::new();
        let mut s = Sim {
            base,
            http,
            token: String::new(),
        };
        s.token = s.get_token().await;
        s
    }

    async fn token_request(&self, tenant: &str, secret: &str) -> reqwest::Response {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", "app"),
            ("client_secret", secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ];
        let url = format!("{}/{tenant}/oauth2/v2.0/token", self.base);
        self.http.post(url).form(&form).send().await.unwrap()
    }

    async fn get_token(&self) -> String {
        let resp = self.token_request(TENANT, "s3cret").await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3599);
        body["access_token"].as_str().unwrap().to_string()
    }

    async fn get(&self, url: &str, minimal: bool) -> reqwest::Response {
        let mut req = self.http.get(url).bearer_auth(&self.token);
        if minimal {
            req = req.header("Prefer", "return=minimal");
        }
        req.send().await.unwrap()
    }

    /// Follows a round to its deltaLink: (items, deltaLink, pages).
    async fn round(&self, url: &str, minimal: bool) -> (Vec<Value>, String, usize) {
        let (mut items, mut url, mut pages) = (Vec::new(), url.to_string(), 0);
        loop {
            let resp = self.get(&url, minimal && pages == 0).await;
            assert_eq!(resp.status(), 200, "{url}");
            let page: Value = resp.json().await.unwrap();
            pages += 1;
            items.extend(page["value"].as_array().unwrap().iter().cloned());
            let next = page.get("@odata.nextLink").and_then(Value::as_str);
            let delta = page.get("@odata.deltaLink").and_then(Value::as_str);
            match (next, delta) {
                (Some(n), None) => url = n.to_string(),
                (None, Some(d)) => return (items, d.to_string(), pages),
                other => panic!("page must carry exactly one link: {other:?}"),
            }
            assert!(url.starts_with(&self.base), "links are absolute");
        }
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().await.unwrap()
    }
}

#[tokio::test]
async fn delta_rounds_end_to_end() {
    let sim = Sim::start().await;

    // Token endpoint errors.
    let resp = sim
        .token_request("fabrikam.onmicrosoft.com", "s3cret")
        .await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("AADSTS90002"));
    let resp = sim.token_request(TENANT, "wrong").await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );

    // Graph requires a bearer token.
    let initial = format!(
        "{}/v1.0/groups/delta?$select=displayName,description,members",
        sim.base
    );
    let resp = sim.http.get(&initial).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "InvalidAuthenticationToken"
    );

    // Initial round: 3 slices of "big" + g1 + g2 over pages of 2 items.
    let (items, delta_link, pages) = sim.round(&initial, false).await;
    assert_eq!(pages, 3);
    let big: Vec<&Value> = items.iter().filter(|i| i["id"] == "big").collect();
    assert_eq!(big.len(), 3, "1,200 members in slices of 500");
    assert!(
        big.iter()
            .all(|i| i["displayName"] == "Big" && i.get("securityEnabled").is_none())
    );
    let members: BTreeSet<&str> = big
        .iter()
        .flat_map(|i| i["members@delta"].as_array().unwrap())
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(members.len(), 1200);
    let positions: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, i)| i["id"] == "big")
        .map(|(p, _)| p)
        .collect();
    assert!(
        positions.windows(2).all(|w| w[1] > w[0] + 1),
        "other items between slices: {positions:?}"
    );
    let g1 = items.iter().find(|i| i["id"] == "g1").unwrap();
    assert_eq!(
        *g1,
        json!({"id": "g1", "displayName": "One", "description": "first"})
    );

    // No change: empty incremental round.
    let (items, delta_link, _) = sim.round(&delta_link, false).await;
    assert!(items.is_empty());

    // An admin change shows up exactly.
    sim.admin(
        reqwest::Method::POST,
        "/admin/groups/big/members",
        json!({"add": [{"@odata.type": "#microsoft.graph.user", "id": "u9999"}],
               "remove": [{"@odata.type": "#microsoft.graph.user", "id": "u0005"}]}),
    )
    .await;
    sim.admin(
        reqwest::Method::PUT,
        "/admin/groups/g1",
        json!({"description": null}),
    )
    .await;
    let (items, _, _) = sim.round(&delta_link, true).await;
    assert_eq!(
        items,
        vec![
            json!({"id": "big", "members@delta": [
            {"@odata.type": "#microsoft.graph.user", "id": "u0005", "@removed": {"reason": "deleted"}},
            {"@odata.type": "#microsoft.graph.user", "id": "u9999"}]}),
            json!({"id": "g1", "description": null}),
        ]
    );
    let (items, delta_link, _) = sim.round(&delta_link, false).await;
    assert_eq!(
        items[1],
        json!({"id": "g1", "displayName": "One", "description": null}),
        "default mode repeats old values"
    );

    // Bulk: soft delete g2, hard delete g1.
    sim.admin(
        reqwest::Method::POST,
        "/admin/bulk",
        json!([
        {"op": "delete_group", "id": "g2"}, {"op": "delete_group", "id": "g1", "hard": true}]),
    )
    .await;
    let (items, delta_link, _) = sim.round(&delta_link, false).await;
    assert_eq!(
        items,
        vec![
            json!({"id": "g1", "@removed": {"reason": "deleted"}}),
            json!({"id": "g2", "@removed": {"reason": "changed"}})
        ]
    );
    let state = sim
        .admin(reqwest::Method::GET, "/admin/state", Value::Null)
        .await;
    assert_eq!(state["deleted_groups"], json!(["g2"]));

    // Throttling with a fractional Retry-After.
    sim.admin(
        reqwest::Method::POST,
        "/admin/faults",
        json!({"throttle": {"count": 1, "retry_after": "1.5"}}),
    )
    .await;
    let resp = sim.get(&delta_link, false).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1.5");
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "TooManyRequests"
    );

    // Bad tokens.
    let bad = sim
        .get(
            &format!("{}/v1.0/groups/delta?$deltatoken=garbage", sim.base),
            false,
        )
        .await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["error"]["code"],
        "badRequest"
    );
    let bad = sim
        .get(
            &format!("{}/v1.0/groups/delta?$skiptoken=nope", sim.base),
            false,
        )
        .await;
    assert_eq!(
        bad.json::<Value>().await.unwrap()["error"]["code"],
        "syncStateNotFound"
    );

    // Expired delta tokens: 410 + Location to a fresh initial round.
    sim.admin(
        reqwest::Method::POST,
        "/admin/faults",
        json!({"expire_delta_tokens": {"status": 410, "code": "syncStateNotFound"}}),
    )
    .await;
    let resp = sim.get(&delta_link, false).await;
    assert_eq!(resp.status(), 410);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        location,
        format!(
            "{}/v1.0/groups/delta?$select=displayName,description,members&$deltatoken=",
            sim.base
        )
    );
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "syncStateNotFound"
    );
    let (items, fresh_link, _) = sim.round(&location, false).await;
    assert_eq!(items.iter().filter(|i| i["id"] == "big").count(), 3);
    assert!(
        items.iter().all(|i| i["id"] == "big"),
        "deleted groups are not in an initial round"
    );
    let (items, _, _) = sim.round(&fresh_link, false).await;
    assert!(
        items.is_empty(),
        "links issued after the fault keep working"
    );

    // The request log saw the Prefer header and the 410.
    let log = sim
        .admin(reqwest::Method::GET, "/admin/requests", Value::Null)
        .await;
    let log = log.as_array().unwrap();
    assert!(log.iter().any(|r| r["prefer"] == "return=minimal"));
    assert!(
        log.iter()
            .any(|r| r["status"] == 410 && r["path"] == "/v1.0/groups/delta")
    );
    assert!(
        log.iter()
            .all(|r| !r["path"].as_str().unwrap().starts_with("/admin"))
    );
}

#[tokio::test]
async fn faults_end_to_end() {
    let sim = Sim::start().await;
    let post = |body: Value| sim.admin(reqwest::Method::POST, "/admin/faults", body);

    // Token endpoint failures.
    post(json!({"token_errors": 1})).await;
    assert_eq!(sim.token_request(TENANT, "s3cret").await.status(), 500);
    assert_eq!(sim.token_request(TENANT, "s3cret").await.status(), 200);

    // Malformed pages rotate; re-GETting the link afterwards returns the real page.
    let initial = format!("{}/v1.0/groups/delta", sim.base);
    post(json!({"malformed_pages": 3})).await;
    let text = sim.get(&initial, false).await.text().await.unwrap();
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "invalid JSON"
    );
    let page: Value = sim.get(&initial, false).await.json().await.unwrap();
    assert!(page["value"].is_object(), "value not an array");
    let page: Value = sim.get(&initial, false).await.json().await.unwrap();
    assert!(page.get("@odata.nextLink").is_none() && page.get("@odata.deltaLink").is_none());
    let (items, link, _) = sim.round(&initial, false).await;
    assert_eq!(items.len(), 5);

    // Duplicated changes: every item twice, the copy on a later page.
    post(json!({"duplicate_changes": true})).await;
    sim.admin(
        reqwest::Method::PUT,
        "/admin/users/u0000",
        json!({"displayName": "Anne"}),
    )
    .await;
    sim.admin(
        reqwest::Method::PUT,
        "/admin/groups/g3",
        json!({"displayName": "Three"}),
    )
    .await;
    let (items, _, pages) = sim.round(&link, false).await;
    assert_eq!(items, vec![json!({"id": "g3", "displayName": "Three"}); 2]);
    assert_eq!(pages, 2);

    // Clearing faults; an expired access token is refused.
    sim.admin(reqwest::Method::DELETE, "/admin/faults", Value::Null)
        .await;
    sim.admin(
        reqwest::Method::POST,
        "/admin/clock",
        json!({"advance": "1h"}),
    )
    .await;
    let resp = sim.get(&initial, false).await;
    assert_eq!(resp.status(), 401);
}

/// The request log names the token each request presented (by serial, never the token), and
/// `revoke_tokens` refuses every token issued so far, unexpired, with 401 `invalid_token`;
/// tokens issued afterwards work.
#[tokio::test]
async fn token_serials_and_revoked_tokens() {
    let mut sim = Sim::start().await;
    let url = format!("{}/v1.0/groups/delta", sim.base);
    assert_eq!(sim.get(&url, false).await.status(), 200);
    sim.admin(
        reqwest::Method::POST,
        "/admin/faults",
        json!({"revoke_tokens": true}),
    )
    .await;
    let refused = sim.get(&url, false).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.headers()["www-authenticate"],
        "Bearer realm=\"\", error=\"invalid_token\""
    );
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"]["code"],
        "InvalidAuthenticationToken"
    );
    sim.token = sim.get_token().await;
    assert_eq!(
        sim.get(&url, false).await.status(),
        200,
        "a new token works"
    );
    let log = sim
        .admin(reqwest::Method::GET, "/admin/requests", Value::Null)
        .await;
    let seen: Vec<(&str, u64, u64)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let path = r["path"].as_str().unwrap();
            let kind = if path.starts_with("/v1.0/") {
                "graph"
            } else {
                "token"
            };
            (
                kind,
                r["status"].as_u64().unwrap(),
                r["token"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("token", 200, 1),
            ("graph", 200, 1),
            ("graph", 401, 1),
            ("token", 200, 2),
            ("graph", 200, 2)
        ]
    );
    assert!(
        !log.to_string().contains(&sim.token),
        "the log never holds a token"
    );
}

/// A bulk seeding far larger than axum's default 2 MiB body limit is applied whole (the
/// benchmarks seed 10,000-group tenants in one request).
#[tokio::test]
async fn a_bulk_of_several_mib_is_applied_whole() {
    let sim = Sim::start().await;
    let padding = "x".repeat(1_000);
    let ops: Vec<Value> = (0..4_000)
        .map(|i| {
            json!({"op": "put_group", "id": format!("bulk-{i}"),
                        "properties": {"displayName": format!("Bulk {i}"), "description": padding}})
        })
        .collect();
    assert!(serde_json::to_vec(&ops).unwrap().len() > 4 << 20);
    sim.admin(reqwest::Method::POST, "/admin/bulk", Value::Array(ops))
        .await;
    let initial = format!("{}/v1.0/groups/delta?$select=displayName", sim.base);
    let (items, _, _) = sim.round(&initial, false).await;
    let bulk = items
        .iter()
        .filter(|g| g["id"].as_str().is_some_and(|id| id.starts_with("bulk-")))
        .count();
    assert_eq!(bulk, 4_000);
}
