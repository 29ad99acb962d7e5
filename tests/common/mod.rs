//! Shared harness of the integration tests: a real Samba AD DC ([`samba`]), the graph-sim
//! binary ([`sim`]) and the entra-writeback binary driven through its contract ([`service`]);
//! [`compare`] checks that AD equals the tenant.
#![allow(dead_code)]

pub mod compare;
pub mod figures;
pub mod large;
pub mod loader;
pub mod outcome;
pub mod proc_memory;
pub mod relay;
pub mod samba;
pub mod service;
pub mod sim;
pub mod stream;
pub mod summary;
pub mod wait;

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
