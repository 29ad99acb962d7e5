//! Shared harness of the integration tests: a real Samba AD DC ([`samba`]), the graph-sim
//! binary ([`sim`]) and the entra-writeback binary driven through its contract ([`service`]).
#![allow(dead_code)]

pub mod large;
pub mod outcome;
pub mod relay;
pub mod samba;
pub mod service;
pub mod sim;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

/// A cloud user synced from AD: its on-premises SID is how it is found there.
pub fn synced_user(id: &str, sid: &str) -> Value {
    json!({"id": id, "displayName": id, "userPrincipalName": format!("{id}@contoso.com"),
           "onPremisesSecurityIdentifier": sid, "onPremisesSyncEnabled": true})
}

/// A cloud security group.
pub fn security_group(id: &str, name: &str, members: Vec<Value>) -> Value {
    json!({"id": id, "displayName": name, "securityEnabled": true, "groupTypes": [], "members": members})
}

/// Group state as compared by the convergence tests: anchor → (displayName, member SIDs).
pub type GroupState = BTreeMap<String, (String, BTreeSet<String>)>;

/// What AD should hold, from graph-sim's tenant (user members mapped through `sid_of`).
pub async fn desired_state(sim: &sim::GraphSim, sid_of: &BTreeMap<String, String>) -> GroupState {
    let resp: Value = reqwest::get(format!("{}/admin/state", sim.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    resp["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let members = g["members"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(|m| sid_of.get(m["id"].as_str().unwrap()).cloned())
                        .collect()
                })
                .unwrap_or_default();
            (
                format!("Group_{}", g["id"].as_str().unwrap()),
                (g["displayName"].as_str().unwrap().to_string(), members),
            )
        })
        .collect()
}

/// What AD holds under `ou`, read back with a real LDAP client.
pub async fn actual_state(dc: &samba::SambaDc, ou: &str) -> GroupState {
    let mut out = BTreeMap::new();
    for e in dc.groups_in(ou).await {
        let anchor = samba::attr_first(&e, "adminDescription")
            .unwrap()
            .to_string();
        let name = samba::attr_first(&e, "displayName").unwrap().to_string();
        out.insert(anchor, (name, dc.member_sids(&e.dn).await));
    }
    out
}
