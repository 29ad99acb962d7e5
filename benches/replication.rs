//! Replication benchmark against a real Samba AD DC and graph-sim (prints figures; asserts
//! nothing about time). Run: `cargo build --release -p graph-sim && cargo bench --bench
//! replication` (as root: it starts the Samba lab). graph-sim is another package of the
//! workspace, so `cargo bench` does not build it; without a release build the debug one is used
//! (with a note), and with neither the benchmark says how to build it
//! (`common::sim::graph_sim_binary`).
//!
//! 1. Initial sync: `BENCH_GROUPS` groups (default 500) of 10 members each, with `run --once`.
//! 2. End-to-end latency: with `run` polling every second, `BENCH_CHANGES` (default 20)
//!    single-member changes, one at a time at spread-out moments of the poll cycle: time from
//!    the change in the tenant to the member being visible in AD (bounded by `poll_interval`
//!    plus the apply).

#[allow(unused_imports)] // the harness's own unit tests are not run from here
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::samba::{self, unique_suffix};
use common::service::Service;
use common::sim::{GraphSim, oid, user};
use serde_json::Value;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let groups = env("BENCH_GROUPS", 500) as u32;
    let changes = env("BENCH_CHANGES", 20);
    let dc = samba::shared();
    let ou = dc.fresh_ou("bench").await;
    let users_ou = dc.fresh_ou("bench-users").await;
    let sids = dc
        .create_users(&users_ou, &format!("bn{}-", unique_suffix()), 100)
        .await;
    let tag = 0x2000;
    let uid = |i: usize| oid(tag, 100_000 + i as u32);
    let users: Vec<Value> = (0..sids.len())
        .map(|i| common::synced_user(&uid(i), &sids[i]))
        .collect();
    let tenant: Vec<Value> = (0..groups)
        .map(|g| {
            common::security_group(
                &oid(tag, g),
                &format!("Bench {g}"),
                (0..10)
                    .map(|k| user(&uid((g as usize * 7 + k) % 100)))
                    .collect(),
            )
        })
        .collect();
    let sim = GraphSim::start(users, tenant, &[]);
    let svc = Service::new(&sim, dc, &ou);

    let started = Instant::now();
    svc.once_ok();
    let took = started.elapsed().as_secs_f64();
    println!(
        "initial sync: {groups} groups x 10 members in {took:.2} s = {:.0} groups/s, {:.0} member links/s",
        groups as f64 / took,
        groups as f64 * 10.0 / took
    );

    let mut child = svc.spawn();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let target = oid(tag, 0);
    let dn = dc
        .group_by_anchor(&ou, &format!("Group_{target}"))
        .await
        .expect("group written")
        .dn;
    let mut lat = Vec::new();
    for i in 0..changes {
        let who = 50 + i % 40;
        let sid = sids[who].clone();
        let adding = !dc.member_sids(&dn).await.contains(&sid);
        // Spread the changes over the poll cycle, so the figures sample every phase of it.
        tokio::time::sleep(Duration::from_millis((i as u64 * 373) % 1000)).await;
        let t0 = Instant::now();
        if adding {
            sim.members(&target, vec![user(&uid(who))], vec![]).await;
        } else {
            sim.members(&target, vec![], vec![user(&uid(who))]).await;
        }
        loop {
            if dc.member_sids(&dn).await.contains(&sid) == adding {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "change {i} never reached AD"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        lat.push(t0.elapsed().as_secs_f64());
    }
    child.kill().ok();
    lat.sort_by(f64::total_cmp);
    println!(
        "end-to-end latency (poll_interval 1 s), {} single-member changes: median {:.2} s, p95 {:.2} s, max {:.2} s",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        lat[lat.len() - 1]
    );
}
