//! Reading back what a run left behind: dead letters, per-entry `uSNChanged` (to prove nothing
//! was modified), a group's members by anchor.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;

use ldap3::{Scope, SearchEntry};
use serde_json::Value;

use super::samba::{SambaDc, attr_first};
use super::service::{Service, tail};

/// Dead letters of `svc`: group id → error text.
pub fn dead_letters(svc: &Service) -> BTreeMap<String, String> {
    let out = svc.run(&["queue", "list", "--dead", "--json"]);
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter()
        .map(|d| {
            (
                d["dead_letter"]["change"]["group_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                d["dead_letter"]["error"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Every entry under `base` (any class) with its uSNChanged: equal snapshots prove nothing
/// there was created, modified or deleted.
pub async fn usn_snapshot(dc: &SambaDc, base: &str) -> BTreeMap<String, String> {
    let mut ldap = dc.connect().await;
    let (entries, _) = ldap
        .search(base, Scope::Subtree, "(objectClass=*)", vec!["uSNChanged"])
        .await
        .unwrap()
        .success()
        .unwrap();
    entries
        .into_iter()
        .map(SearchEntry::construct)
        .map(|e| {
            (
                e.dn.to_lowercase(),
                attr_first(&e, "uSNChanged").unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The member SIDs of the group anchored `Group_<id>` under `ou` (panics if there is none).
pub async fn members_of(dc: &SambaDc, ou: &str, id: &str) -> BTreeSet<String> {
    let e = dc
        .group_by_anchor(ou, &format!("Group_{id}"))
        .await
        .unwrap_or_else(|| panic!("no group anchored Group_{id} under {ou}"));
    dc.member_sids(&e.dn).await
}

/// The output's stderr (the service's log), asserting the exit code.
pub fn expect_exit(out: &Output, code: i32) -> String {
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{}", tail(&log));
    log
}
