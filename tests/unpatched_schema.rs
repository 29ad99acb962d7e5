//! A schema without `msDS-ExternalDirectoryObjectId` (Samba 4.17's 2012 R2 schema, unpatched):
//! the anchor is `adminDescription` alone. On a DC of its own (127.0.0.4, stopped when the test
//! ends, passed or panicked), groups are created, found again by `adminDescription` (a resync
//! creates nothing new), renamed in place (same objectGUID) and deleted.

mod common;

use std::collections::BTreeMap;

use common::outcome::members_of;
use common::samba::{SambaDc, attr_first, entry_guid, unique_suffix};
use common::service::{Options, Service};
use common::sim::{GraphSim, oid, user};
use serde_json::json;

/// Loopback IP of this test's DC (not the shared one).
const IP: &str = "127.0.0.4";

/// anchor → (objectGUID, CN, displayName) of every group under `ou`.
async fn groups(dc: &SambaDc, ou: &str) -> BTreeMap<String, (String, String, String)> {
    dc.groups_in(ou)
        .await
        .iter()
        .map(|e| {
            assert!(
                attr_first(e, "msDS-ExternalDirectoryObjectId").is_none(),
                "{} carries an attribute the schema lacks",
                e.dn
            );
            let text = |a| attr_first(e, a).unwrap_or_default().to_string();
            (
                text("adminDescription"),
                (entry_guid(e).unwrap(), text("cn"), text("displayName")),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_external_id_attribute_groups_are_anchored_by_admin_description_alone() {
    let (_stop, dc) = SambaDc::start_owned(IP, &["--no-schema-patch"]);
    assert!(!dc.schema_patched, "the DC was meant to lack the attribute");
    let ou = dc.fresh_ou("unpatched").await;
    let users_ou = dc.fresh_ou("unpatched-users").await;
    let sids = dc
        .create_users(&users_ou, &format!("up{}-", unique_suffix()), 2)
        .await;
    let tag = 0x6300;
    let (a, b) = (oid(tag, 1), oid(tag, 2));
    let users = vec![
        common::synced_user(&oid(tag, 100), &sids[0]),
        common::synced_user(&oid(tag, 101), &sids[1]),
    ];
    let sim = GraphSim::start(
        users,
        vec![
            common::security_group(&a, "Alpha", vec![user(&oid(tag, 100))]),
            common::security_group(&b, "Beta", vec![user(&oid(tag, 101))]),
        ],
        &[],
    );
    let svc = Service::with(&dc, &ou, Options::new(&dc, &sim));
    let log = svc.once_ok();
    assert!(
        log.lines()
            .any(|l| l.contains("connected to AD") && l.contains("\"has_external_id\":false")),
        "the service did not detect the unpatched schema: {:?}",
        log.lines()
            .filter(|l| l.contains("connected to AD"))
            .collect::<Vec<_>>()
    );
    let created = groups(&dc, &ou).await;
    let anchors: Vec<String> = [&a, &b].iter().map(|id| format!("Group_{id}")).collect();
    assert_eq!(created.keys().cloned().collect::<Vec<_>>(), anchors);
    assert_eq!(created[&anchors[0]].2, "Alpha");
    assert_eq!(members_of(&dc, &ou, &a).await, [sids[0].clone()].into());

    // Found again by adminDescription: a full resync creates nothing and keeps every object.
    assert!(svc.run(&["resync"]).status.success());
    svc.once_ok();
    assert_eq!(groups(&dc, &ou).await, created);

    // Renamed in the cloud: the same object gets the new CN and displayName.
    sim.put_group(&a, json!({"displayName": "Alpha Renamed"}))
        .await;
    sim.members(&a, vec![user(&oid(tag, 101))], vec![]).await;
    svc.once_ok();
    let renamed = groups(&dc, &ou).await;
    let (guid, cn, name) = &renamed[&anchors[0]];
    assert_eq!(
        guid, &created[&anchors[0]].0,
        "a rename keeps the objectGUID"
    );
    assert!(cn.starts_with("Alpha Renamed_"), "{cn}");
    assert_eq!(name, "Alpha Renamed");
    assert_eq!(
        members_of(&dc, &ou, &a).await,
        [sids[0].clone(), sids[1].clone()].into()
    );

    // Hard-deleted in the cloud: deleted in AD, the other group untouched.
    sim.delete_group(&b, true).await;
    svc.once_ok();
    let left = groups(&dc, &ou).await;
    assert_eq!(left.keys().collect::<Vec<_>>(), vec![&anchors[0]]);
    assert_eq!(left[&anchors[0]], renamed[&anchors[0]]);
}
