//! Scale: a 50,000-member group written to real Samba AD, then one-member changes whose LDAP
//! cost is measured (the service logs `ldap_operations` per `run --once`).

mod common;

use std::time::Instant;

use common::samba;
use common::service::Service;
use common::sim::{GraphSim, oid, user};
use serde_json::{Value, json};

const N: u32 = 50_000;

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
async fn fifty_thousand_members_then_one_member_changes_cost_o1_ldap_operations() {
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
    let users: Vec<Value> = (0..=N)
        .map(|i| json!({"id": oid(tag, 1000 + i), "onPremisesSecurityIdentifier": sid(i)}))
        .collect();
    let big = oid(tag, 1);
    let members: Vec<Value> = (0..N).map(|i| user(&oid(tag, 1000 + i))).collect();
    let groups = vec![
        json!({"id": big, "displayName": "Fifty Thousand", "securityEnabled": true, "groupTypes": [],
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
    let e = dc
        .group_by_anchor(&ou, &format!("Group_{big}"))
        .await
        .unwrap();
    let have = dc.member_sids(&e.dn).await;
    assert_eq!(have.len(), N as usize);
    assert!(have.contains(&sid(0)) && have.contains(&sid(N - 1)));

    // One member added, then one removed: each a bounded, size-independent number of operations.
    sim.members(&big, vec![user(&oid(tag, 1000 + N))], vec![])
        .await;
    let log = svc.once_ok();
    let add_ops = ldap_ops(&log);
    sim.members(&big, vec![], vec![user(&oid(tag, 1000))]).await;
    let log = svc.once_ok();
    let remove_ops = ldap_ops(&log);
    let have = dc.member_sids(&e.dn).await;
    assert_eq!(have.len(), N as usize);
    assert!(have.contains(&sid(N)) && !have.contains(&sid(0)));
    eprintln!(
        "50k group: initial write {:.1} s with {initial_ops} LDAP operations; +1 member: {add_ops} operations; -1 member: {remove_ops} operations",
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
