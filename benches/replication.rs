//! Replication benchmark against a real Samba AD DC and graph-sim (prints figures; asserts
//! nothing about time). Run: `cargo build --release -p graph-sim && cargo bench --bench
//! replication` (as root: it starts the Samba lab). graph-sim is another package of the
//! workspace, so `cargo bench` does not build it; without a release build the debug one is used
//! (with a note), and with neither the benchmark says how to build it
//! (`common::sim::graph_sim_binary`).
//!
//! 1. Initial sync of each size in `BENCH_GROUPS` (default `2000,10000`) groups of 10 members,
//!    `BENCH_REPEATS` times (default 3), each into a fresh OU with fresh state: wall time,
//!    groups/s, links/s, LDAP operations per group, CPU seconds and peak RSS of the service;
//!    beside it, in the same run, the same groups written by the minimal direct loader
//!    (`common::loader`), and the ratio loader ÷ service (1.0 = as fast as the directory
//!    takes it).
//! 2. A resync over the converged directory (`resync`, then `run --once`): wall time, LDAP
//!    writes (should be 0) and reads.
//! 3. Freshness with `run` polling every second: `BENCH_CHANGES` (default 20) single-member
//!    changes of one group, at idle, then again while `BENCH_BULK` (default 10,000) new groups
//!    are being written: time from the change in the tenant to the member in AD.
//!
//! `BENCH_CONNECTIONS` (default `1`) is a list of `ad.connections` values: step 1 runs for each
//! of them in turn (e.g. `1,4` compares one LDAP connection with four). `BENCH_CHANGES=0`
//! skips step 3.
//!
//! Under `cargo test --all-targets` (no `--bench`) it runs as a smoke test (40 groups, one
//! repeat, 2 changes), so CI checks that the benchmark works without paying for it.

#[allow(unused_imports)] // the harness's own unit tests are not run from here
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::figures::Figures;
use common::loader::{self, LoadEntry};
use common::samba::{self, SambaDc, unique_suffix};
use common::service::{FAST_RETRIES, Options, Service};
use common::sim::{GraphSim, oid, user};
use common::summary;
use serde_json::{Value, json};

/// Members per group.
const MEMBERS: usize = 10;
/// Users the groups draw their members from.
const USERS: usize = 100;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn env_num(name: &str, default: usize) -> usize {
    env_or(name, &default.to_string())
        .parse()
        .unwrap_or(default)
}

/// The members (user indexes) of group `g`.
fn members_of(g: usize) -> impl Iterator<Item = usize> {
    (0..MEMBERS).map(move |k| (g * 7 + k) % USERS)
}

struct Tenant {
    sids: Vec<String>,
    users: Vec<Value>,
    tag: u32,
}

impl Tenant {
    fn uid(&self, i: usize) -> String {
        oid(self.tag, 100_000 + i as u32)
    }

    /// Group `g` of run `r` (each run writes groups of its own: a `sAMAccountName` is unique
    /// in the domain, whichever OU holds it).
    fn group(&self, r: usize, g: usize) -> Value {
        common::security_group(
            &oid(self.tag, (r * 0x10_0000 + g) as u32),
            &format!("Bench {g}"),
            members_of(g).map(|i| user(&self.uid(i))).collect(),
        )
    }

    fn groups(&self, r: usize, n: usize) -> Vec<Value> {
        (0..n).map(|g| self.group(r, g)).collect()
    }
}

async fn tenant(dc: &SambaDc, tag: u32) -> Tenant {
    let users_ou = dc.fresh_ou("bench-users").await;
    let sids = dc
        .create_users(&users_ou, &format!("bn{}-", unique_suffix()), USERS)
        .await;
    let mut t = Tenant {
        sids,
        users: vec![],
        tag,
    };
    t.users = (0..USERS)
        .map(|i| common::synced_user(&t.uid(i), &t.sids[i]))
        .collect();
    t
}

/// The service for one run: [`Service::new`]'s, with `ad.connections = connections`.
fn service(sim: &GraphSim, dc: &SambaDc, ou: &str, connections: usize) -> Service {
    let options = Options {
        ad_extra: format!("connections = {connections}"),
        tail: FAST_RETRIES.into(),
        ..Options::new(dc, sim)
    };
    Service::with(dc, ou, options)
}

/// One size: initial syncs (service, then loader), resyncs. `first` is the index of its
/// first run among all the runs of this process (each run writes groups of its own).
async fn initial_sync(
    dc: &SambaDc,
    t: &Tenant,
    n: usize,
    repeats: usize,
    connections: usize,
    first: usize,
) {
    let (mut wall, mut load, mut ratio, mut cpu, mut rss, mut ops) = Default::default();
    let (mut re_wall, mut re_writes, mut re_reads) = Default::default();
    for r in first..first + repeats {
        let sim = GraphSim::start(t.users.clone(), t.groups(r, n), &[]);
        let ou = dc.fresh_ou("bench").await;
        let svc = service(&sim, dc, &ou, connections);
        let t0 = Instant::now();
        let log = svc.once_ok();
        let secs = t0.elapsed().as_secs_f64();
        record(&mut wall, secs);
        record(&mut ops, summary::work_total(&log) as f64 / n as f64);
        record(
            &mut cpu,
            summary::field(&log, "cpu_ms").unwrap_or(0) as f64 / 1000.0,
        );
        record(
            &mut rss,
            summary::field(&log, "peak_rss_kib").unwrap_or(0) as f64 / 1024.0,
        );

        let lou = dc.fresh_ou("load").await;
        let entries: Vec<LoadEntry> = (0..n)
            .map(|g| {
                let sids = members_of(g).map(|i| t.sids[i].clone()).collect();
                loader::security_group(&lou, &format!("L{g}"), r * 1_000_000 + g, sids)
            })
            .collect();
        let l = loader::load(dc, &entries, 1000).await;
        record(&mut load, l.secs);
        record(&mut ratio, l.secs / secs);

        let out = svc.run(&["resync"]);
        assert!(out.status.success(), "resync failed");
        let t0 = Instant::now();
        let log = svc.once_ok();
        record(&mut re_wall, t0.elapsed().as_secs_f64());
        record(&mut re_writes, summary::work_writes(&log) as f64);
        record(&mut re_reads, summary::work_op(&log, "search") as f64);
    }
    let rate = |per: f64| n as f64 * per / wall.median();
    println!(
        "initial sync, {n} groups x {MEMBERS} members, {repeats} run(s), {connections} LDAP connection(s):"
    );
    println!(
        "  service: wall {} s = {:.0} groups/s, {:.0} links/s; LDAP operations per group {}; CPU {} s; peak RSS {} MiB",
        wall.show(2),
        rate(1.0),
        rate(MEMBERS as f64),
        ops.show(2),
        cpu.show(2),
        rss.show(0)
    );
    println!(
        "  direct loader (same entries, one add each with its members): wall {} s",
        load.show(2)
    );
    println!(
        "  ratio loader / service: {} (target >= 0.8)",
        ratio.show(2)
    );
    println!(
        "  resync over the converged AD: wall {} s; LDAP writes {} (target 0); reads {}",
        re_wall.show(2),
        re_writes.show(0),
        re_reads.show(0)
    );
}

fn record(f: &mut Figures, v: f64) {
    f.push(v);
}

/// Time from a member change of `target` in the tenant to AD showing it, `changes` times.
async fn freshness(
    dc: &SambaDc,
    sim: &GraphSim,
    t: &Tenant,
    dn: &str,
    target: &str,
    changes: usize,
) -> Figures {
    let mut lat = Figures::default();
    for i in 0..changes {
        let who = 50 + i % 40;
        let sid = t.sids[who].clone();
        let adding = !dc.member_sids(dn).await.contains(&sid);
        // Spread the changes over the poll cycle, so the figures sample every phase of it.
        tokio::time::sleep(Duration::from_millis((i as u64 * 373) % 1000)).await;
        let t0 = Instant::now();
        let (add, remove) = if adding {
            (vec![user(&t.uid(who))], vec![])
        } else {
            (vec![], vec![user(&t.uid(who))])
        };
        sim.members(target, add, remove).await;
        while dc.member_sids(dn).await.contains(&sid) != adding {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "change {i} never reached AD"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        lat.push(t0.elapsed().as_secs_f64());
    }
    lat
}

async fn freshness_idle_and_under_load(dc: &SambaDc, t: &Tenant, changes: usize, bulk: usize) {
    let probe = oid(t.tag, 9_999_999);
    let sim = GraphSim::start(
        t.users.clone(),
        vec![common::security_group(
            &probe,
            "Probe",
            vec![user(&t.uid(0))],
        )],
        &[],
    );
    let ou = dc.fresh_ou("fresh").await;
    let svc = Service::new(&sim, dc, &ou);
    let _run = svc.spawn();
    let anchor = format!("Group_{probe}");
    let until = Instant::now() + Duration::from_secs(60);
    let dn = loop {
        if let Some(e) = dc.group_by_anchor(&ou, &anchor).await {
            break e.dn;
        }
        assert!(Instant::now() < until, "the probe group never reached AD");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let idle = freshness(dc, &sim, t, &dn, &probe, changes).await;
    println!(
        "freshness at idle (poll_interval 1 s), {changes} changes: p50 {:.2} s, p99 {:.2} s; {} s (target p99 <= 2 s)",
        idle.quantile(0.5),
        idle.quantile(0.99),
        idle.show(2)
    );
    let ops: Vec<Value> = (0..bulk)
        .map(|g| {
            let members: Vec<Value> = members_of(g).map(|i| user(&t.uid(i))).collect();
            json!({"op": "put_group", "id": oid(t.tag, 5_000_000 + g as u32), "properties": {
                "displayName": format!("Load {g}"), "securityEnabled": true, "groupTypes": [],
                "members": members}})
        })
        .collect();
    sim.bulk(ops).await;
    let started = Instant::now();
    let busy = freshness(dc, &sim, t, &dn, &probe, changes).await;
    let during = dc.groups_in(&ou).await.len().saturating_sub(1);
    println!(
        "freshness while {bulk} new groups are written ({during} written when the last change landed, {:.1} s after they appeared): p50 {:.2} s, p99 {:.2} s; {} s (target p99 <= 2 s)",
        started.elapsed().as_secs_f64(),
        busy.quantile(0.5),
        busy.quantile(0.99),
        busy.show(2)
    );
    println!("  each change in turn (s): {}", busy.in_order(2));
}

#[tokio::main]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = env_or("BENCH_GROUPS", if benching { "2000,10000" } else { "40" })
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let repeats = env_num("BENCH_REPEATS", if benching { 3 } else { 1 });
    let changes = env_num("BENCH_CHANGES", if benching { 20 } else { 2 });
    let bulk = env_num("BENCH_BULK", if benching { 10_000 } else { 40 });
    if !benching {
        println!("smoke run (no --bench): {sizes:?} groups, {repeats} repeat(s)");
    }
    let connections: Vec<usize> = env_or("BENCH_CONNECTIONS", "1")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let dc = samba::shared();
    let t = tenant(dc, 0x2000).await;
    let mut first = 0;
    for n in sizes {
        for &c in &connections {
            initial_sync(dc, &t, n, repeats, c, first).await;
            first += repeats;
        }
    }
    if changes > 0 {
        freshness_idle_and_under_load(dc, &t, changes, bulk).await;
    }
}
