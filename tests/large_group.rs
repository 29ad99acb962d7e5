//! Scale: a large group written to real Samba AD, then one-member changes whose LDAP cost is
//! measured (the service logs `ldap_operations` per `run --once`).
//!
//! Size: `EW_LARGE_GROUP_MEMBERS` (default 5,000). Samba 4.17 links member values in time that
//! grows with the group (a 1,000-value modify costs ~0.6 s more per 1,000 members already
//! there), so 50,000 members take ~10 minutes there: `EW_LARGE_GROUP_MEMBERS=50000 cargo test
//! --test large_group -- --nocapture` gives the full figure (README). The assertion on a
//! one-member change is the same at every size: its cost must not depend on the size.

mod common;

use std::time::Instant;

use common::samba;
use common::service::Service;
use common::sim::{GraphSim, oid, user};
use serde_json::{Value, json};

fn members() -> u32 {
    std::env::var("EW_LARGE_GROUP_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

/// `ldap_operations` from the `run --once finished` log line.
fn ldap_ops(log: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("run --once finished"))
        .expect("summary line");
    let v: Value = serde_json::from_str(line).expect("JSON log line");
    v["ldap_operations"]
        .as_u64()
        .expect("ldap_operations field")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_group_then_one_member_changes_cost_o1_ldap_operations() {
    let n = members();
    let dc = samba::shared();
    let ou = dc.fresh_ou("large50k").await;
    let tag = 0xb00;
    // Members need AD objects with SIDs; SIDs of a foreign domain become foreign security
    // principals on first use, which is far cheaper to set up than 50,000 user accounts.
    let salt = oid(tag, 0);
    let domain = format!(
        "S-1-5-21-4000-{}-{}",
        u32::from_str_radix(&salt[27..33], 16).unwrap(),
        std::process::id()
    );
    let sid = |i: u32| format!("{domain}-{}", 100_000 + i);
    let users: Vec<Value> = (0..=n)
        .map(|i| json!({"id": oid(tag, 1000 + i), "onPremisesSecurityIdentifier": sid(i)}))
        .collect();
    let big = oid(tag, 1);
    let members: Vec<Value> = (0..n).map(|i| user(&oid(tag, 1000 + i))).collect();
    let groups = vec![
        json!({"id": big, "displayName": "Large Group", "securityEnabled": true, "groupTypes": [],
        "members": members}),
    ];
    let sim = GraphSim::start(
        users,
        groups,
        &["--page-size", "2000", "--member-slice", "1000"],
    );
    let svc = Service::new(&sim, dc, &ou);

    let started = Instant::now();
    let log = svc.once_ok();
    let initial = started.elapsed();
    let initial_ops = ldap_ops(&log);
    if std::env::var("EW_SHOW_LOG").is_ok() {
        eprintln!("{log}");
    }
    let e = dc
        .group_by_anchor(&ou, &format!("Group_{big}"))
        .await
        .unwrap();
    let have = dc.member_sids(&e.dn).await;
    assert_eq!(have.len(), n as usize);
    assert!(have.contains(&sid(0)) && have.contains(&sid(n - 1)));

    // One member added, then one removed: each a bounded, size-independent number of operations.
    sim.members(&big, vec![user(&oid(tag, 1000 + n))], vec![])
        .await;
    let log = svc.once_ok();
    let add_ops = ldap_ops(&log);
    sim.members(&big, vec![], vec![user(&oid(tag, 1000))]).await;
    let log = svc.once_ok();
    let remove_ops = ldap_ops(&log);
    let have = dc.member_sids(&e.dn).await;
    assert_eq!(have.len(), n as usize);
    assert!(have.contains(&sid(n)) && !have.contains(&sid(0)));
    eprintln!(
        "{n}-member group: initial write {:.1} s with {initial_ops} LDAP operations; +1 member: {add_ops} operations; -1 member: {remove_ops} operations",
        initial.as_secs_f64()
    );
    // bind + rootDSE + schema probe + anchor search + one modify.
    assert!(
        add_ops <= 6,
        "one-member add cost {add_ops} LDAP operations"
    );
    assert!(
        remove_ops <= 6,
        "one-member remove cost {remove_ops} LDAP operations"
    );
    assert!(
        initial_ops < 200,
        "initial write cost {initial_ops} LDAP operations"
    );
}
