//! The beta groups delta (`writebackConfiguration`) and group source-of-authority conversion
//! (`onPremisesSyncBehavior`), over HTTP.

use serde_json::{Value, json};

use super::Sim;

#[tokio::test]
async fn beta_delta_serves_writeback_configuration_and_keeps_its_links_on_beta() {
    let sim = Sim::start().await;
    let setting = json!({"isEnabled": false, "onPremisesGroupType": "universalSecurityGroup"});
    sim.admin(
        reqwest::Method::PUT,
        "/admin/groups/g1",
        json!({"writebackConfiguration": setting}),
    )
    .await;
    let v1 = format!(
        "{}/v1.0/groups/delta?$select=displayName,writebackConfiguration",
        sim.base
    );
    let refused = sim.get(&v1, false).await;
    assert_eq!(refused.status(), 400, "v1.0 has no writebackConfiguration");
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("writebackConfiguration")
    );

    let beta = format!(
        "{}/beta/groups/delta?$select=displayName,writebackConfiguration",
        sim.base
    );
    let (items, delta_link, pages) = sim.round(&beta, false).await;
    assert!(pages > 1, "paged, so nextLinks were followed");
    assert!(
        delta_link.starts_with(&format!("{}/beta/groups/delta?", sim.base)),
        "{delta_link}"
    );
    let g1 = items.iter().find(|i| i["id"] == "g1").expect("g1 listed");
    assert_eq!(g1["writebackConfiguration"], setting);

    // A change of the setting is a delta change on beta.
    let enabled = json!({"isEnabled": true, "onPremisesGroupType": null});
    sim.admin(
        reqwest::Method::PUT,
        "/admin/groups/g1",
        json!({"writebackConfiguration": enabled}),
    )
    .await;
    let (items, _, _) = sim.round(&delta_link, false).await;
    let ids: Vec<&Value> = items.iter().map(|i| &i["id"]).collect();
    assert_eq!(ids, [&json!("g1")], "{items:?}");
    assert_eq!(items[0]["writebackConfiguration"], enabled);

    let one = sim
        .get(
            &format!("{}/beta/groups/g1?$select=writebackConfiguration", sim.base),
            false,
        )
        .await;
    assert_eq!(one.status(), 200);
    assert_eq!(
        one.json::<Value>().await.unwrap()["writebackConfiguration"],
        enabled
    );
}

#[tokio::test]
async fn converting_a_synced_group_shows_in_delta_and_in_its_sync_behavior() {
    let sim = Sim::start().await;
    let sid = "S-1-5-21-1-2-3-1104";
    sim.admin(
        reqwest::Method::PUT,
        "/admin/groups/g1",
        json!({"onPremisesSyncEnabled": true, "onPremisesSecurityIdentifier": sid}),
    )
    .await;
    let behavior = format!("{}/v1.0/groups/g1/onPremisesSyncBehavior", sim.base);
    assert_eq!(cloud_managed(&sim, &behavior).await, json!(false));
    let select = "displayName,onPremisesSyncEnabled,onPremisesSecurityIdentifier";
    let start = format!("{}/v1.0/groups/delta?$select={select}", sim.base);
    let (_, link, _) = sim.round(&start, false).await;

    let soa = "/admin/groups/g1/source-of-authority";
    sim.admin(reqwest::Method::POST, soa, json!({"isCloudManaged": true}))
        .await;
    assert_eq!(cloud_managed(&sim, &behavior).await, json!(true));
    let (items, link, _) = sim.round(&link, false).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["onPremisesSyncEnabled"], json!(false));
    assert_eq!(
        items[0]["onPremisesSecurityIdentifier"],
        json!(sid),
        "the SID is kept"
    );

    sim.admin(reqwest::Method::POST, soa, json!({"isCloudManaged": false}))
        .await;
    assert_eq!(cloud_managed(&sim, &behavior).await, json!(false));
    let (items, _, _) = sim.round(&link, false).await;
    assert_eq!(
        items[0]["onPremisesSyncEnabled"],
        json!(true),
        "AD took it back"
    );

    let cloud_only = sim
        .http
        .post(format!("{}/admin/groups/g2/source-of-authority", sim.base))
        .json(&json!({"isCloudManaged": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        cloud_only.status(),
        400,
        "a cloud group has nothing to convert"
    );
    let missing = sim
        .get(
            &format!("{}/v1.0/groups/nope/onPremisesSyncBehavior", sim.base),
            false,
        )
        .await;
    assert_eq!(missing.status(), 404);
}

async fn cloud_managed(sim: &Sim, url: &str) -> Value {
    let resp = sim.get(url, false).await;
    assert_eq!(resp.status(), 200, "{url}");
    resp.json::<Value>().await.unwrap()["isCloudManaged"].clone()
}
