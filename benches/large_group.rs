//! Large-group benchmark against a real Samba AD DC and graph-sim (prints figures; asserts
//! nothing about time). Run: `cargo build --release -p graph-sim && cargo bench --bench
//! large_group` (as root: it starts the Samba lab). graph-sim is another package of the
//! workspace, so `cargo bench` does not build it; without a release build the debug one is used
//! (with a note), and with neither the benchmark says how to build it
//! (`common::sim::graph_sim_binary`).
//!
//! For each size in `BENCH_MEMBERS` (default `20000,50000,250000`):
//! 1. The initial write of one group of that many members (graph-sim slices it over pages of
//!    1,000 members) with `run --once`: time, links/s, the work's LDAP operations, CPU seconds
//!    and peak RSS; beside it, in the same run, the minimal direct loader writing the same
//!    number of links (members of another foreign domain, so both pay Samba's creation of
//!    foreign security principals) in batches of 1,000, and the ratio loader ÷ service.
//! 2. `BENCH_REPEATS` (default 5) one-member adds and removes on that group and on a
//!    one-member group: time (median, min, max) and the work's LDAP operations (binding and
//!    the schema probe of each `run --once` left out).
//!
//! On Samba a new member costs a foreign security principal, about 85 links/s here, so a
//! 50,000-member write takes about ten minutes: set `EW_TEST_COMMAND_TIMEOUT_SECS=3600` for
//! that size (one `run --once` is otherwise killed after ten minutes).
//!
//! With `BENCH_RSS_MEMBERS=N` it only samples the peak RSS of the first `BENCH_RSS_SECS`
//! (default 180) seconds of writing an `N`-member group, for sizes whose write outlasts the
//! time at hand (250,000 members: Samba creates a foreign security principal per new SID);
//! `BENCH_RSS_SLICE=M` has graph-sim put `M` members on a page (default 1,000, as Graph; as
//! many as the group: one hostile page).
//!
//! With `BENCH_PRINCIPALS=1` the members' foreign security principals are seeded into the
//! DC's database first (`benches/seed-entries.py`), and the direct loader writes the same
//! member SIDs: both writers then only link existing objects, as for members already in the
//! directory, so the figures measure the write path rather than Samba's principal creation.
//!
//! `BENCH_LOG=1` prints the service's log of each initial write (to stderr), to see where
//! its time goes.
//!
//! With `BENCH_PRESEED_MEMBERS=N` the `N`-member group is written straight into the DC's
//! database instead (as the service writes it, with its members' foreign security
//! principals), `run --once` converges over it, and step 2 follows: ±1 member on a group too
//! large to write over LDAP in the time at hand.
//!
//! With `BENCH_FRESH_MEMBERS=N` it measures freshness beside a large write instead: `run`
//! (polling every second) writes an `N`-member group, and meanwhile `BENCH_CHANGES` (default
//! 20) one-member adds to a one-member group are timed from the tenant to AD; it prints
//! p50/p99 and how many of the large group's members were in AD when the last change landed
//! (fewer than `N`: the changes were measured while it was still being written).
//! `BENCH_BATCH` sets `ad.member_batch_size` for it (default 1,000).
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs as a smoke test with 500
//! members and one repeat, then the pre-seeded mode with 300, so CI checks that the benchmark
//! works without paying for it.
//!
//! The CI-sized checks of the same claims (operation counts, ranged reads) are in
//! `tests/large_group.rs`.

#[allow(unused_imports)] // the harness's own unit tests are not run from here
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::figures::Figures;
use common::large::{LargeGroup, MEMBER_BATCH};
use common::loader;
use common::samba::{self, SambaDc};
use common::summary;

/// Seconds and work LDAP operations of `run --once`s.
#[derive(Default)]
struct Runs {
    secs: Figures,
    ops: Figures,
}

impl Runs {
    fn once(&mut self, g: &LargeGroup) -> String {
        let t0 = Instant::now();
        let (_, log) = g.once();
        self.secs.push(t0.elapsed().as_secs_f64());
        self.ops.push(summary::work_total(&log) as f64);
        log
    }

    fn report(&self, what: &str) {
        println!(
            "  {what}: {} s; LDAP operations {} (target <= 3)",
            self.secs.show(3),
            self.ops.show(0)
        );
    }
}

/// The work's LDAP operations by kind, as `add=1 modify=19 …`.
fn ops_breakdown(log: &str) -> String {
    summary::work_ops(log)
        .iter()
        .map(|(op, k)| format!("{op}={k}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The loader's time for one group of `n` members of a foreign domain of its own.
/// The direct loader writing one group of these member SIDs; its seconds. `tag` tells the
/// loaded groups of one process apart.
async fn direct(dc: &SambaDc, sids: Vec<String>, tag: u32) -> f64 {
    let ou = dc.fresh_ou("large-load").await;
    let unique = (tag as usize) << 20 | sids.len();
    let entry = loader::security_group(&ou, "Loaded", unique, sids);
    loader::load(dc, &[entry], MEMBER_BATCH as usize).await.secs
}

/// The member SIDs the direct loader writes beside the service's `n`-member group. With
/// `principals`, the group's own members, whose foreign security principals are first seeded
/// into the DC's database (so that both writers only link, as for members already in the
/// directory); else as many SIDs of another foreign domain, whose principals both writers
/// make Samba create.
fn loader_sids(dc: &SambaDc, g: &LargeGroup, n: u32, principals: bool) -> Vec<String> {
    if !principals {
        let pid = std::process::id();
        return (0..n)
            .map(|i| format!("S-1-5-21-4001-{n}-{pid}-{}", 100_000 + i))
            .collect();
    }
    let t0 = Instant::now();
    let sids: Vec<String> = (0..n).map(|i| g.sid(i)).collect();
    let mut jsonl = String::new();
    for sid in &sids {
        jsonl.push_str(&dc.foreign_principal_entry(sid).0);
        jsonl.push('\n');
    }
    dc.seed_entries(&jsonl);
    println!(
        "{n} foreign security principals seeded into AD's database in {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    sids
}

async fn size(dc: &SambaDc, n: u32, repeats: u32, tag: u32, principals: bool) {
    let g = LargeGroup::new(dc, n, repeats, tag).await;
    let sids = loader_sids(dc, &g, n, principals);
    let mut initial = Runs::default();
    let log = initial.once(&g);
    let took = initial.secs.median();
    if std::env::var_os("BENCH_LOG").is_some() {
        eprintln!("{log}");
    }
    let loaded = direct(dc, sids, tag).await;
    let kind = if principals {
        "members' principals already in AD"
    } else {
        "Samba creates a principal per member"
    };
    println!("{n}-member group ({kind}):");
    println!(
        "  initial write (+ a one-member group): {took:.1} s = {:.0} links/s; LDAP operations {} ({}); CPU {:.1} s; peak RSS {} MiB (target <= 128)",
        f64::from(n) / took,
        summary::work_total(&log),
        ops_breakdown(&log),
        summary::field(&log, "cpu_ms").unwrap_or(0) as f64 / 1000.0,
        summary::field(&log, "peak_rss_kib").unwrap_or(0) / 1024
    );
    println!(
        "  direct loader, same number of links in batches of {MEMBER_BATCH}: {loaded:.1} s; ratio loader / service {:.2} (target >= 0.8)",
        loaded / took
    );
    plus_minus_one(&g, n, repeats).await;
}

/// `repeats` one-member adds and removes on the `n`-member group and on the one-member group,
/// each applied by a `run --once`: times and LDAP operations.
async fn plus_minus_one(g: &LargeGroup, n: u32, repeats: u32) {
    for (group, label) in [
        (&g.big, format!("{n}-member group")),
        (&g.small, "one-member group".into()),
    ] {
        let (mut add, mut remove) = (Runs::default(), Runs::default());
        for k in 0..repeats {
            g.add(group, n + k).await;
            add.once(g);
            g.remove(group, n + k).await;
            remove.once(g);
        }
        add.report(&format!("+1 member on the {label}, {repeats} runs"));
        remove.report(&format!("-1 member on the {label}, {repeats} runs"));
    }
}

/// ±1 member on an `n`-member group that is already in AD, for sizes whose write over LDAP
/// outlasts the time at hand (250,000 members: Samba creates a foreign security principal per
/// member, about an hour here). The group, as the service writes it, and its members' foreign
/// security principals go straight into the DC's database; `run --once` converges over them
/// (reading the group's members once, writing none of them), then the runs of
/// [`plus_minus_one`].
async fn preseeded(dc: &SambaDc, n: u32, repeats: u32) {
    let g = LargeGroup::new(dc, n, repeats, 0x2e00).await;
    let t0 = Instant::now();
    let mut jsonl = String::new();
    let mut dns = Vec::with_capacity(n as usize);
    for i in 0..n {
        let (entry, dn) = dc.foreign_principal_entry(&g.sid(i));
        jsonl.push_str(&entry);
        jsonl.push('\n');
        dns.push(dn);
    }
    jsonl.push_str(&dc.service_entry(&g.ou, &g.big, "Large Group", dns));
    jsonl.push('\n');
    dc.seed_entries(&jsonl);
    let seeded = t0.elapsed().as_secs_f64();
    let mut converge = Runs::default();
    let log = converge.once(&g);
    let dn = dn_when_written(dc, &g.ou, &g.big).await;
    let in_ad = dc.member_sids(&dn).await.len();
    println!(
        "{n}-member group, pre-seeded into AD's database in {seeded:.0} s ({in_ad} members in AD after the convergence):"
    );
    println!(
        "  convergence by `run --once` (+ the one-member group's add): {:.1} s; LDAP operations {} ({}); peak RSS {} MiB",
        converge.secs.median(),
        summary::work_total(&log),
        ops_breakdown(&log),
        summary::field(&log, "peak_rss_kib").unwrap_or(0) / 1024
    );
    plus_minus_one(&g, n, repeats).await;
}

/// The peak RSS of `run --once` writing a `n`-member group, sampled from `/proc` every second
/// for `secs` seconds (the members are all loaded, mirrored and resolved before the first
/// batch is written, so the peak comes early), then the run is stopped: for sizes whose full
/// write takes longer than the time at hand. `slice`: members per Graph page (graph-sim).
async fn rss_only(dc: &SambaDc, n: u32, secs: u64, slice: u32) {
    let g = LargeGroup::sliced(dc, n, 0, 0x2c00, slice).await;
    let mut child = common::service::Running(
        g.svc
            .command(&["run", "--once"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run --once starts"),
    );
    let pid = child.id().to_string();
    let (mut peak, mut rss) = (0f64, 0f64);
    let started = Instant::now();
    while started.elapsed().as_secs() < secs {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        let (now, hwm) = common::proc_memory::memory_mib(&pid);
        peak = peak.max(hwm);
        rss = now;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let written = match dc.group_by_anchor(&g.ou, &format!("Group_{}", g.big)).await {
        Some(e) => dc.member_sids(&e.dn).await.len(),
        None => 0,
    };
    drop(child);
    println!(
        "{n}-member group, {slice} members per page, the first {:.0} s of its write: peak RSS {peak:.0} MiB, RSS {rss:.0} MiB at the end (target <= 128); {written} members in AD by then",
        started.elapsed().as_secs_f64()
    );
}

/// Polls `probe` every 20 ms until it holds, for up to `limit`; returns whether it did.
async fn wait_for(limit: Duration, mut probe: impl AsyncFnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The DN of `id`'s group under `ou` once it is in AD (up to ten minutes).
async fn dn_when_written(dc: &SambaDc, ou: &str, id: &str) -> String {
    let anchor = format!("Group_{id}");
    let mut dn = None;
    let found = wait_for(Duration::from_secs(600), async || {
        dn = dc.group_by_anchor(ou, &anchor).await.map(|e| e.dn);
        dn.is_some()
    })
    .await;
    assert!(found, "{anchor} never reached AD");
    dn.unwrap()
}

/// Freshness of one-member changes to a small group while `run` writes an `n`-member group.
async fn freshness_beside(dc: &SambaDc, n: u32, changes: u32, batch: u64) {
    let g = LargeGroup::new(dc, n, changes, 0x2d00 + (batch % 0x100) as u32).await;
    let text = std::fs::read_to_string(&g.svc.config).unwrap();
    let text = text.replace(
        &format!("member_batch_size = {MEMBER_BATCH}"),
        &format!("member_batch_size = {batch}"),
    );
    std::fs::write(&g.svc.config, text).unwrap();
    let _run = g.svc.spawn();
    let (small, big) = (
        dn_when_written(dc, &g.ou, &g.small).await,
        dn_when_written(dc, &g.ou, &g.big).await,
    );
    let mut lat = Figures::default();
    for i in 0..changes {
        let sid = g.sid(n + i);
        let t0 = Instant::now();
        g.add(&g.small, n + i).await;
        let landed = wait_for(Duration::from_secs(300), async || {
            dc.member_sids(&small).await.contains(&sid)
        })
        .await;
        assert!(landed, "change {i} never reached AD");
        lat.push(t0.elapsed().as_secs_f64());
        // Spread the next change over the poll cycle.
        tokio::time::sleep(Duration::from_millis(u64::from(i) * 373 % 1000)).await;
    }
    let written = dc.member_sids(&big).await.len();
    println!(
        "freshness of a one-member group while a {n}-member group is written (poll 1 s, batches of {batch}), {changes} changes: p50 {:.2} s, p99 {:.2} s; {} s (target p99 <= 2 s); {written} of {n} members in AD when the last landed",
        lat.quantile(0.5),
        lat.quantile(0.99),
        lat.show(2)
    );
}

/// The number in the environment variable `name`, or `default`.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    if let Ok(n) = std::env::var("BENCH_FRESH_MEMBERS") {
        let changes = env_or("BENCH_CHANGES", 20);
        let batch = env_or("BENCH_BATCH", MEMBER_BATCH);
        let n = n.parse().expect("a member count");
        freshness_beside(samba::shared(), n, changes, batch).await;
        return;
    }
    if let Ok(n) = std::env::var("BENCH_PRESEED_MEMBERS") {
        let n = n.parse().expect("a member count");
        preseeded(samba::shared(), n, env_or("BENCH_REPEATS", 5)).await;
        return;
    }
    if let Ok(n) = std::env::var("BENCH_RSS_MEMBERS") {
        let secs = env_or("BENCH_RSS_SECS", 180);
        let slice = env_or("BENCH_RSS_SLICE", 1000);
        let n = n.parse().expect("a member count");
        rss_only(samba::shared(), n, secs, slice).await;
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --all-targets` (CI) runs this binary without
    // it, as a smoke test of the benchmark itself: a small group, one repeat.
    let benching = std::env::args().any(|a| a == "--bench");
    let default = if benching {
        "20000,50000,250000"
    } else {
        "500"
    };
    let sizes: Vec<u32> = std::env::var("BENCH_MEMBERS")
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let repeats = env_or("BENCH_REPEATS", if benching { 5 } else { 1 });
    if !benching {
        println!("smoke run (no --bench): {sizes:?} members, {repeats} repeat(s)");
    }
    let principals = std::env::var("BENCH_PRINCIPALS").is_ok_and(|v| v == "1");
    let dc = samba::shared();
    for (i, n) in sizes.into_iter().enumerate() {
        size(dc, n, repeats, 0x2b00 + i as u32 * 0x10, principals).await;
    }
    if !benching {
        // The seeded modes too, so that CI keeps the seeding of their entries working.
        size(dc, 200, 1, 0x2a00, true).await;
        preseeded(dc, 300, 1).await;
    }
}
