//! Limits against a hostile upstream, played by graph-sim against the real binary and a real
//! Samba AD DC: a group with more members than `graph.max_members_per_group` is refused with a
//! per-group error while the other groups proceed (and an AD copy is never shrunk); an endless
//! chain of distinct nextLinks, an oversized response and a page with too many objects each
//! end the round with an error and keep the cursor.

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use common::compare::anchor;
use common::outcome::{dead_letters, expect_exit, members_of};
use common::samba::{self, unique_suffix};
use common::service::Service;
use common::sim::{GraphSim, oid, user};
use entra_writeback::model::Resource;
use entra_writeback::queue::{Cursor, Store};
use serde_json::{Value, json};

/// Adds `lines` to the service's `[graph]` table.
fn graph_lines(svc: &Service, lines: &str) {
    let text = std::fs::read_to_string(&svc.config).unwrap();
    let at = "poll_interval = \"1s\"\n";
    assert!(text.contains(at));
    let text = text.replacen(at, &format!("{at}{lines}\n"), 1);
    std::fs::write(&svc.config, text).unwrap();
}

/// The stored cursor of `resource` (the service must not be running).
fn stored_cursor(svc: &Service, resource: Resource) -> Option<Cursor> {
    let store = Store::open(&svc.state_dir()).unwrap();
    store.cursor(resource).unwrap()
}

/// The `/v1.0/groups/delta` requests of the log.
fn groups_delta(log: &[Value]) -> Vec<Value> {
    log.iter()
        .filter(|r| r["path"] == "/v1.0/groups/delta")
        .cloned()
        .collect()
}

/// The member-limit classes of `svc`'s dead letters: group id → class.
fn dead_classes(svc: &Service) -> Vec<(String, String)> {
    let out = svc.run(&["queue", "list", "--dead", "--json"]);
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter()
        .map(|d| {
            let l = &d["dead_letter"];
            (
                l["change"]["group_id"].as_str().unwrap().to_string(),
                l["class"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A 300,000-member group (default limit, 250,000) is refused with a clear per-group error
/// while the other groups of the round are written with their members.
#[tokio::test(flavor = "multi_thread")]
async fn a_300000_member_group_is_refused_while_other_groups_proceed() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("limit-big").await;
    let users_ou = dc.fresh_ou("limit-big-users").await;
    let tag = 0x7101;
    let sids = dc
        .create_users(&users_ou, &format!("lb{}-", unique_suffix()), 3)
        .await;
    let uid = |i: usize| oid(tag, 1 + i as u32);
    let users: Vec<Value> = (0..3)
        .map(|i| common::synced_user(&uid(i), &sids[i]))
        .collect();
    let (big, a, b) = (oid(tag, 0x100000), oid(tag, 0x100001), oid(tag, 0x100002));
    let mut big_members: Vec<Value> = (0..300_000u32)
        .map(|n| user(&oid(tag, 0x200000 + n)))
        .collect();
    big_members.push(user(&uid(0)));
    let sim = GraphSim::start(
        users,
        vec![
            common::security_group(&big, "Huge", big_members),
            common::security_group(&a, "Alpha", vec![user(&uid(0)), user(&uid(1))]),
            common::security_group(&b, "Beta", vec![user(&uid(2))]),
        ],
        &["--page-size", "100", "--member-slice", "5000"],
    );
    let svc = Service::new(&sim, dc, &ou);
    let started = Instant::now();
    let out = svc.run(&["run", "--once"]);
    let log = expect_exit(&out, 1); // a new dead letter: the refused group
    eprintln!("300,000-member round took {:?}", started.elapsed());
    assert!(
        log.contains("graph.max_members_per_group"),
        "the refusal is logged"
    );
    assert!(!log.contains("panicked"));
    // The other groups proceed.
    assert_eq!(
        members_of(dc, &ou, &a).await,
        BTreeSet::from([sids[0].clone(), sids[1].clone()])
    );
    assert_eq!(
        members_of(dc, &ou, &b).await,
        BTreeSet::from([sids[2].clone()])
    );
    // The big one is not written, and says why, per group.
    assert!(dc.group_by_anchor(&ou, &anchor(&big)).await.is_none());
    let dead = dead_letters(&svc);
    let text = &dead[&big];
    assert!(
        text.contains("more than 250000 members") && text.contains("graph.max_members_per_group"),
        "{text}"
    );
    assert!(
        dead_classes(&svc)
            .iter()
            .all(|(g, c)| *g == big && c == "member_limit")
    );
    // The mirror stopped growing at the limit.
    let store = Store::open(&svc.state_dir()).unwrap();
    let count = store.member_count(&big).unwrap();
    assert_eq!((count.stored, count.refused), (250_000, Some(250_000)));
}

/// With a lowered limit, a group already in AD that grows past it is refused, and its AD copy
/// keeps every member it had: never shrunk, never deleted.
#[tokio::test(flavor = "multi_thread")]
async fn a_group_growing_past_the_limit_is_frozen_in_ad_not_shrunk() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("limit-grow").await;
    let users_ou = dc.fresh_ou("limit-grow-users").await;
    let tag = 0x7102;
    let sids = dc
        .create_users(&users_ou, &format!("lg{}-", unique_suffix()), 3)
        .await;
    let uid = |i: usize| oid(tag, 1 + i as u32);
    let users: Vec<Value> = (0..3)
        .map(|i| common::synced_user(&uid(i), &sids[i]))
        .collect();
    let (g, other) = (oid(tag, 0x100), oid(tag, 0x101));
    let sim = GraphSim::start(
        users,
        vec![
            common::security_group(&g, "Growing", vec![user(&uid(0)), user(&uid(1))]),
            common::security_group(&other, "Other", vec![user(&uid(2))]),
        ],
        &[],
    );
    let svc = Service::new(&sim, dc, &ou);
    graph_lines(&svc, "max_members_per_group = 5");
    svc.once_ok();
    let before = members_of(dc, &ou, &g).await;
    assert_eq!(before.len(), 2);
    // Grows to 8 members (6 cloud-only), past the limit of 5; the other group changes too.
    let extra: Vec<Value> = (0..6).map(|n| user(&oid(tag, 0x1000 + n))).collect();
    sim.members(&g, extra, vec![]).await;
    sim.members(&other, vec![user(&uid(0))], vec![]).await;
    let out = svc.run(&["run", "--once"]);
    let log = expect_exit(&out, 1);
    assert!(log.contains("graph.max_members_per_group"));
    assert_eq!(members_of(dc, &ou, &g).await, before, "never shrunk");
    assert_eq!(
        members_of(dc, &ou, &other).await,
        BTreeSet::from([sids[0].clone(), sids[2].clone()])
    );
    assert!(dead_letters(&svc)[&g].contains("more than 5 members"));
    // Another round, nothing new: still there, still refused, still whole.
    let _ = svc.run(&["run", "--once"]);
    assert_eq!(members_of(dc, &ou, &g).await, before);
}

/// An endless chain of distinct nextLinks ends the round with an error after
/// `graph.max_pages_per_round` pages; the stored cursor is the last committed page's, and the
/// next round resumes from it once Graph behaves.
#[tokio::test(flavor = "multi_thread")]
async fn an_endless_next_link_chain_ends_the_round_and_keeps_the_cursor() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("limit-endless").await;
    let g = oid(0x7103, 1);
    let sim = GraphSim::start(
        vec![],
        vec![json!({"id": g, "displayName": "Before", "securityEnabled": true})],
        &[],
    );
    let svc = Service::new(&sim, dc, &ou);
    graph_lines(&svc, "max_pages_per_round = 5");
    svc.once_ok();
    let synced = stored_cursor(&svc, Resource::Groups).unwrap();
    assert!(!synced.mid_round);
    sim.put_group(&g, json!({"displayName": "After"})).await;
    sim.faults(json!({"endless_next_links": "groups"})).await;
    sim.clear_requests().await;
    let out = svc.run(&["run", "--once"]);
    let log = expect_exit(&out, 1);
    assert!(
        log.contains("round exceeded 5 pages") && log.contains("cursor kept"),
        "{}",
        common::service::tail(&log)
    );
    let reqs = groups_delta(&sim.requests().await);
    assert_eq!(reqs.len(), 5, "the budget, then stop");
    let queries: BTreeSet<&str> = reqs.iter().map(|r| r["query"].as_str().unwrap()).collect();
    assert_eq!(queries.len(), 5, "each nextLink distinct");
    let kept = stored_cursor(&svc, Resource::Groups).unwrap();
    assert!(
        kept.mid_round && kept.link.contains("$endless="),
        "{kept:?}"
    );
    assert!(
        !queries.iter().any(|q| kept.link.ends_with(q)),
        "the cursor is the last committed page's nextLink, not yet requested"
    );
    // Graph behaves again: the next round starts from the stored cursor and finishes.
    sim.clear_faults().await;
    sim.clear_requests().await;
    svc.once_ok();
    let reqs = groups_delta(&sim.requests().await);
    assert!(kept.link.ends_with(reqs[0]["query"].as_str().unwrap()));
    let e = dc.group_by_anchor(&ou, &anchor(&g)).await.unwrap();
    assert_eq!(samba::attr_first(&e, "displayName"), Some("After"));
}

/// A response over `graph.max_response_bytes` and a page over `graph.max_page_items` each end
/// the round with an error naming the key; the cursor does not move.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_responses_and_pages_are_refused_and_keep_the_cursor() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("limit-size").await;
    let tag = 0x7104;
    let groups: Vec<Value> = (0..4)
        .map(|i| json!({"id": oid(tag, i), "displayName": format!("Size {i}"), "securityEnabled": true}))
        .collect();
    let sim = GraphSim::start(vec![], groups, &["--page-size", "3"]);
    let svc = Service::new(&sim, dc, &ou);
    svc.once_ok();
    let synced = stored_cursor(&svc, Resource::Groups).unwrap();
    let long = "x".repeat(6000);
    sim.put_group(&oid(tag, 0), json!({"description": long}))
        .await;
    for (lines, says) in [
        (
            "max_response_bytes = 4096",
            "larger than graph.max_response_bytes (4096 bytes",
        ),
        ("max_page_items = 2", "more than graph.max_page_items (2)"),
    ] {
        let config = std::fs::read_to_string(&svc.config).unwrap();
        graph_lines(&svc, lines);
        if lines.starts_with("max_page_items") {
            for i in 1..4 {
                sim.put_group(&oid(tag, i), json!({"description": "more"}))
                    .await;
            }
        }
        let out = svc.run(&["run", "--once"]);
        let log = expect_exit(&out, 1);
        assert!(log.contains(says), "{}", common::service::tail(&log));
        assert!(!log.contains("panicked"));
        assert_eq!(
            stored_cursor(&svc, Resource::Groups).unwrap(),
            synced,
            "{lines}"
        );
        std::fs::write(&svc.config, config).unwrap();
    }
    svc.once_ok();
    assert_ne!(stored_cursor(&svc, Resource::Groups).unwrap(), synced);
}
