//! Crashes and bad input: SIGKILL mid-round, unreachable AD or Graph, malformed pages.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::compare::{self, Expect};
use common::samba::{self, attr_first, unique_suffix};
use common::service::{Options, Service, free_port, tail};
use common::sim::{GraphSim, oid, user};
use common::wait;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_round_loses_nothing() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("crash").await;
    let users_ou = dc.fresh_ou("crash-users").await;
    let tag = 0x300;
    const USERS: usize = 120;
    let sids = dc
        .create_users(&users_ou, &format!("cr{}-", unique_suffix()), USERS)
        .await;
    let uid = |i: usize| oid(tag, 1000 + i as u32);
    let sid_of: BTreeMap<String, String> = (0..USERS).map(|i| (uid(i), sids[i].clone())).collect();
    let users: Vec<Value> = (0..USERS)
        .map(|i| common::synced_user(&uid(i), &sids[i]))
        .collect();
    let groups: Vec<Value> = (0..40u32)
        .map(|g| {
            let members: Vec<Value> = (0..30).map(|k| user(&uid((g as usize * 7 + k) % USERS))).collect();
            json!({"id": oid(tag, g), "displayName": format!("Crash {g}"), "securityEnabled": true, "groupTypes": [],
                   "members": members})
        })
        .collect();
    let sim = GraphSim::start(users, groups, &["--page-size", "1", "--member-slice", "7"]);
    // Groups delta pages answer 50 ms late: a round spans seconds, long enough to be seen in
    // flight and killed inside.
    sim.faults(json!({"delay": {"ms": 50, "path": "/v1.0/groups/delta"}}))
        .await;
    let svc = Service::new(&sim, dc, &ou);

    // Kill the service inside a groups round, after a varying number of its pages, changing
    // the tenant in between.
    let mut seed: u64 = 0x5eed_1234;
    let mut kill_points = Vec::new();
    for round in 0..6u32 {
        let mut child = svc.spawn();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let pages = 1 + (seed >> 33) % 30;
        wait::until(
            &format!("a groups round in flight with {pages} page(s) committed"),
            120,
            Duration::from_millis(5),
            Some(&svc),
            async || {
                wait::status(&svc).await.is_some_and(|s| {
                    s["in_flight"].as_array().is_some_and(|f| {
                        f.iter().any(|r| {
                            r["resource"] == "groups" && r["pages"].as_u64() >= Some(pages)
                        })
                    })
                })
            },
        )
        .await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kill_points.push(sim.requests().await.len());
        let g = round * 5;
        sim.members(
            &oid(tag, g),
            vec![user(&uid(100 + round as usize))],
            vec![user(&uid((g as usize * 7) % USERS))],
        )
        .await;
        sim.put_group(
            &oid(tag, g + 1),
            json!({"displayName": format!("Crash {} renamed {round}", g + 1)}),
        )
        .await;
    }
    sim.clear_faults().await;
    // The first run finishes the round the last kill interrupted (it may be a snapshot from
    // before some of the changes above); the second reads everything since.
    svc.once_ok();
    svc.once_ok();
    let requests = sim.requests().await;
    let mid_round = kill_points
        .iter()
        .filter(|k| wait::killed_mid_round(&requests, **k))
        .count();
    assert!(mid_round >= 1, "no SIGKILL landed mid-round");
    // Every name given here ("Crash <n>", "Crash <n> renamed <r>") yields the same
    // sAMAccountName, so which one AD created a group with does not matter.
    compare::assert_ad_equals_tenant(
        &sim,
        dc,
        &ou,
        &Expect::members(&sid_of),
        40,
        "after crashes",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_ad_retries_then_fails_clearly() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("noad").await;
    let sim = GraphSim::start(
        vec![],
        vec![json!({"id": oid(0x400, 1), "displayName": "G", "securityEnabled": true})],
        &[],
    );
    let svc = Service::with(
        dc,
        &ou,
        Options {
            ad_url: "ldap://127.0.0.9:389".into(),
            tail: "[sync]\nmin_backoff = \"50ms\"\nmax_backoff = \"200ms\"\nmax_attempts = 3\n"
                .into(),
            ..Options::new(dc, &sim)
        },
    );
    let out = svc.run(&["run", "--once"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", tail(&log));
    assert!(
        log.contains("retrying"),
        "no retries logged:\n{}",
        tail(&log)
    );
    assert!(
        log.contains("cannot connect to AD at ldap://127.0.0.9:389"),
        "{}",
        tail(&log)
    );
    assert!(!log.contains("panicked"), "{}", tail(&log));
    // The change stays queued for the next run.
    let status = svc.run(&["queue", "status", "--json"]);
    let s: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(s["depth"].as_u64().unwrap() >= 1, "{s}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_graph_retries_then_fails_clearly() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("nograph").await;
    let svc = Service::with(
        dc,
        &ou,
        Options {
            tail: "[sync]\nmin_backoff = \"50ms\"\nmax_backoff = \"200ms\"\nmax_attempts = 3\n"
                .into(),
            ..Options::graph_at(dc, &format!("http://127.0.0.1:{}", free_port()))
        },
    );
    let out = svc.run(&["run", "--once"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", tail(&log));
    assert!(log.contains("retrying"), "{}", tail(&log));
    assert!(
        log.contains("cannot reach Microsoft Graph"),
        "{}",
        tail(&log)
    );
    assert!(!log.contains("panicked"), "{}", tail(&log));
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_page_is_rejected_without_moving_the_cursor() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("malformed").await;
    let g = oid(0x500, 1);
    let sim = GraphSim::start(
        vec![],
        vec![json!({"id": g, "displayName": "Before", "securityEnabled": true})],
        &[],
    );
    let svc = Service::new(&sim, dc, &ou);
    svc.once_ok();
    sim.put_group(&g, json!({"displayName": "After"})).await;
    // Three malformed pages in a row: bad JSON, `value` not an array, no links at all.
    for _ in 0..3 {
        sim.faults(json!({"malformed_pages": 1})).await;
        let delta_requests = |r: &Vec<Value>| {
            r.iter()
                .filter(|r| r["path"].as_str().unwrap().ends_with("/delta"))
                .count()
        };
        let before = delta_requests(&sim.requests().await);
        let out = svc.run(&["run", "--once"]);
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}", tail(&log));
        assert!(log.contains("page rejected, cursor kept"), "{}", tail(&log));
        assert!(!log.contains("panicked"));
        assert_eq!(
            delta_requests(&sim.requests().await),
            before + 1,
            "a rejected page must stop the round"
        );
    }
    // The next run asks for the same link again and gets the change.
    let is_delta = |r: &&Value| r["path"].as_str().unwrap().ends_with("/delta");
    let reqs = sim.requests().await;
    let last_bad = reqs.iter().rfind(is_delta).unwrap().clone();
    svc.once_ok();
    let reqs = sim.requests().await;
    let retried = reqs
        .iter()
        .skip_while(|r| r["seq"] != last_bad["seq"])
        .filter(is_delta)
        .nth(1)
        .unwrap();
    assert_eq!(
        retried["query"], last_bad["query"],
        "cursor moved past a rejected page"
    );
    let groups = dc.groups_in(&ou).await;
    assert_eq!(attr_first(&groups[0], "displayName"), Some("After"));
}
