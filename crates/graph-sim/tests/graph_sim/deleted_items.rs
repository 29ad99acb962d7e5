//! deletedItems over HTTP: soft delete, the paged typed list, restore and purge, with the
//! token check, the throttling fault and the request log.

use serde_json::{Value, json};

use super::Sim;

/// GETs `path` (under the base URL) with the token: (status, body).
async fn get_json(sim: &Sim, path: &str) -> (u16, Value) {
    let resp = sim.get(&format!("{}{path}", sim.base), false).await;
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn deleted_items_follow_soft_delete_restore_and_purge() {
    let sim = Sim::start().await;
    let (put, del) = (reqwest::Method::PUT, reqwest::Method::DELETE);
    for id in ["d1", "d2", "d3"] {
        let body = json!({"displayName": id, "securityEnabled": true});
        sim.admin(put.clone(), &format!("/admin/groups/{id}"), body)
            .await;
    }
    let sid = "S-1-5-21-1-2-3-1106";
    let synced = json!({"displayName": "From AD", "onPremisesSyncEnabled": true,
                        "onPremisesSecurityIdentifier": sid});
    sim.admin(put.clone(), "/admin/groups/s1", synced).await;
    let not_found = |(status, body): (u16, Value)| {
        status == 404 && body["error"]["code"] == "Request_ResourceNotFound"
    };

    // A group synced from AD carries its SID in delta when selected.
    let url = format!(
        "{}/v1.0/groups/delta?$select=displayName,onPremisesSecurityIdentifier",
        sim.base
    );
    let (items, _, _) = sim.round(&url, false).await;
    let s1 = items.iter().find(|i| i["id"] == "s1").unwrap();
    assert_eq!(s1["onPremisesSecurityIdentifier"], sid);

    // Live: groups/{id} 200, deletedItems/{id} 404; unknown ids are 404 in both.
    assert_eq!(get_json(&sim, "/v1.0/groups/d1").await.0, 200);
    assert!(not_found(
        get_json(&sim, "/v1.0/directory/deletedItems/d1").await
    ));
    assert!(not_found(
        get_json(&sim, "/v1.0/directory/deletedItems/nope").await
    ));
    assert!(not_found(get_json(&sim, "/v1.0/groups/nope").await));

    // Soft delete: in deletedItems with its properties and deletedDateTime, gone from groups.
    for id in ["d1", "d2", "d3", "g1"] {
        sim.admin(del.clone(), &format!("/admin/groups/{id}"), Value::Null)
            .await;
    }
    let (status, d1) = get_json(&sim, "/v1.0/directory/deletedItems/d1").await;
    assert_eq!(status, 200);
    assert_eq!(d1["@odata.type"], "#microsoft.graph.group");
    assert_eq!(
        (&d1["id"], &d1["displayName"]),
        (&json!("d1"), &json!("d1"))
    );
    let when = d1["deletedDateTime"].as_str().unwrap();
    let when = humantime::parse_rfc3339(when).unwrap();
    let age = std::time::SystemTime::now()
        .duration_since(when)
        .expect("deletedDateTime is not in the future");
    assert!(
        age < std::time::Duration::from_secs(60),
        "deleted {age:?} ago"
    );
    assert!(not_found(get_json(&sim, "/v1.0/groups/d1").await));

    // The typed list, paged by $top with absolute nextLinks; ids in order, none twice.
    let mut url = format!(
        "{}/v1.0/directory/deletedItems/microsoft.graph.group?$top=3",
        sim.base
    );
    let (mut ids, mut pages) = (Vec::new(), 0);
    loop {
        let resp = sim.get(&url, false).await;
        assert_eq!(resp.status(), 200, "{url}");
        let page: Value = resp.json().await.unwrap();
        pages += 1;
        let value = page["value"].as_array().unwrap();
        assert!(value.len() <= 3 && value.iter().all(|v| v["deletedDateTime"].is_string()));
        ids.extend(value.iter().map(|v| v["id"].as_str().unwrap().to_string()));
        match page.get("@odata.nextLink").and_then(Value::as_str) {
            Some(next) => {
                assert!(
                    next.starts_with(&sim.base) && next.contains("$top=3"),
                    "{next}"
                );
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(
        (ids, pages),
        (vec!["d1".into(), "d2".into(), "d3".into(), "g1".into()], 2)
    );
    let (_, page) = get_json(&sim, "/v1.0/directory/deletedItems/microsoft.graph.group").await;
    assert_eq!(
        page["value"].as_array().unwrap().len(),
        2,
        "default: --page-size"
    );
    let (status, _) = get_json(
        &sim,
        "/v1.0/directory/deletedItems/microsoft.graph.group?$top=1000",
    )
    .await;
    assert_eq!(status, 400);
    let (_, users) = get_json(&sim, "/v1.0/directory/deletedItems/microsoft.graph.user").await;
    assert_eq!(users["value"], json!([]));

    // Restore: live again, out of deletedItems.
    sim.admin(
        reqwest::Method::POST,
        "/admin/groups/d1/restore",
        Value::Null,
    )
    .await;
    assert!(not_found(
        get_json(&sim, "/v1.0/directory/deletedItems/d1").await
    ));
    assert_eq!(get_json(&sim, "/v1.0/groups/d1").await.0, 200);

    // Hard delete (of a live group, and purge of a soft-deleted one): 404 everywhere.
    sim.admin(del.clone(), "/admin/groups/d1?hard=true", Value::Null)
        .await;
    sim.admin(del.clone(), "/admin/groups/d2?hard=true", Value::Null)
        .await;
    for id in ["d1", "d2"] {
        assert!(not_found(
            get_json(&sim, &format!("/v1.0/directory/deletedItems/{id}")).await
        ));
        assert!(not_found(
            get_json(&sim, &format!("/v1.0/groups/{id}")).await
        ));
    }

    // Soft-deleted users are there too.
    sim.admin(del.clone(), "/admin/users/u0000", Value::Null)
        .await;
    let (status, u) = get_json(&sim, "/v1.0/directory/deletedItems/u0000").await;
    assert_eq!(
        (status, &u["@odata.type"]),
        (200, &json!("#microsoft.graph.user"))
    );

    // Behind the token check and the throttling fault (here limited to deletedItems).
    let path = "/v1.0/directory/deletedItems/d3";
    let resp = sim
        .http
        .get(format!("{}{path}", sim.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let fault = json!({"throttle": {"count": 1, "status": 503, "path": "/v1.0/directory/"}});
    sim.admin(reqwest::Method::POST, "/admin/faults", fault)
        .await;
    assert_eq!(
        get_json(&sim, "/v1.0/groups/big").await.0,
        200,
        "other paths pass"
    );
    assert_eq!(get_json(&sim, path).await.0, 503);
    assert_eq!(get_json(&sim, path).await.0, 200);
    let log = sim
        .admin(reqwest::Method::GET, "/admin/requests", Value::Null)
        .await;
    let statuses: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == path)
        .map(|r| &r["status"])
        .collect();
    assert_eq!(statuses, [401, 503, 200]);
}
