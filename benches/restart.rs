//! Restart-and-idle benchmark against a real Samba AD DC and graph-sim (prints figures beside
//! the targets of issue 18; asserts nothing about time). Run: `cargo build --release -p
//! graph-sim && cargo bench --bench restart` (as root: it starts the Samba lab).
//!
//! 1. A tenant of `BENCH_GROUPS` groups (default 1,000) of 10 members each over
//!    `BENCH_GROUPS / 2` users (seeded into the DC's database by `benches/seed-users.py`; the
//!    groups and members go over LDAP) is synced once by `run` until converged (queue empty,
//!    the full round over, every group mirrored).
//! 2. `BENCH_REPEATS` times (default 3), for each binary of `BENCH_BINS` in turn: `run` is
//!    stopped (SIGTERM) and started again with `poll_interval = "1s"`, and right after the
//!    start one member is added to a group in the tenant. Measured from `/proc/PID`: the
//!    CPU-seconds from the start until the process is quiet (the end of the first 10 s in
//!    which it used under 3 % of a core, once the change is in AD; so they include up to
//!    0.3 CPU-s of idling), the CPU % over the 20 s after that, VmRSS and VmHWM at the end,
//!    and the time from the change until AD has it.
//!
//! `BENCH_BINS` (optional) compares builds on the same converged state, e.g.
//! `before=/tmp/ew-main,after=target/release/entra-writeback`; by default it is this build.
//! `BENCH_BINS_FILE` names a file of such `label=path` lines, read again before each repeat
//! (a line `stop` ends the run early).
//! `BENCH_WINDOW` (seconds, default 180) bounds each restart's wait for quiet, and
//! `BENCH_IDLE_SECS` (default 20) sets how long the CPU % is measured once quiet. `BENCH_CACHE`
//! sets `[state] cache_capacity` (bytes, in every benchmark that starts the service; only
//! builds that know the key accept it), and
//! `BENCH_REPEATS=0` measures the initial sync alone. `BENCH_PRESEED=K` (default 0) writes the
//! first `K` groups as the service would write them (its own mapping) straight into the DC's
//! database before `run` starts (`benches/seed-entries.py`), so for them step 1 is a
//! convergence over an AD already right: for 100,000 groups, whose writes over LDAP take Samba
//! hours here. The restarts are the same either way.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs as a smoke test: 50
//! groups, half of them pre-seeded, one restart.

#[allow(unused_imports)] // the harness's own unit tests are not run from here
#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::samba::{self, SambaDc, unique_suffix};
use common::service::{Running, Service};
use common::sim::{GraphSim, oid, user};
use common::wait;
use serde_json::Value;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const TAG: u32 = 0x1800;
/// Quiet: under this share of a core over [`QUIET_FOR`].
const QUIET_SHARE: f64 = 0.03;
const QUIET_FOR: f64 = 10.0;
/// How long the quiet CPU % is measured for, after the quiet point, unless `BENCH_IDLE_SECS`
/// says otherwise (a longer window shows where the CPU settles once sled's cleaner is done).
const IDLE_FOR: u64 = 20;

fn uid(i: u64) -> String {
    oid(TAG, 1_000_000 + i as u32)
}

/// The figures of one restart.
struct Restart {
    cpu_until_quiet: f64,
    quiet_at: Option<f64>,
    quiet_cpu_pct: f64,
    rss_mib: f64,
    hwm_mib: f64,
    change_secs: f64,
}

/// The builds to restart in this repeat, as (label, path): `BENCH_BINS_FILE` (read again
/// before every repeat, so a long run can take builds made meanwhile; a line `stop` ends the
/// run), else `BENCH_BINS`, else this build. An empty path is this build.
fn binaries(this: &str) -> Option<Vec<(String, String)>> {
    let list = match std::env::var("BENCH_BINS_FILE") {
        Ok(path) => std::fs::read_to_string(path).unwrap_or_default(),
        Err(_) => std::env::var("BENCH_BINS")
            .unwrap_or_default()
            .replace(',', "\n"),
    };
    let mut bins = Vec::new();
    for line in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line == "stop" {
            return None;
        }
        let (label, path) = line.split_once('=').expect("builds are label=path");
        let path = if path.is_empty() { this } else { path };
        bins.push((label.to_string(), path.to_string()));
    }
    if bins.is_empty() {
        bins.push(("this build".to_string(), this.to_string()));
    }
    Some(bins)
}

/// utime + stime of `pid` in seconds, from `/proc/PID/stat`.
fn cpu_secs(pid: u32, tick: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    Some((f[11].parse::<f64>().ok()? + f[12].parse::<f64>().ok()?) / tick)
}

/// VmRSS and VmHWM of `pid`, MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    common::proc_memory::memory_mib(&pid.to_string())
}

fn clock_tick() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `run` of `svc` from the binary `bin` (the same arguments and environment as
/// [`Service::spawn`]).
fn spawn_with(svc: &Service, bin: &str) -> Running {
    let model = svc.command(&["run"]);
    let mut c = Command::new(bin);
    c.args(model.get_args());
    for (k, v) in model.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(svc.dir.path().join("run.log"))
        .unwrap();
    Running(
        c.stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    )
}

/// Stops `run` as an orchestrator does (SIGTERM, then waits for the exit).
fn stop(mut child: Running) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the service is converged on a tenant of `groups` groups: every group mirrored, the
/// full round over, nothing queued. (Not `initial_sync`, which stays shown while the progress
/// counts changes that a closing reconcile superseded.)
fn converged(status: &Value, groups: u64) -> bool {
    let q = &status["queue"];
    q["depth"] == 0 && q["mirrored_groups"] == groups && q["full_round_in_progress"] == false
}

/// The tenant in graph-sim and its users in AD; returns the users' SIDs.
/// The first `preseed` groups are also written straight into AD's database.
async fn tenant(dc: &SambaDc, ou: &str, groups: u64, preseed: u64) -> (GraphSim, Vec<String>) {
    let users = (groups / 2).max(100);
    let users_ou = dc.fresh_ou("restart-users").await;
    let t0 = Instant::now();
    let prefix = format!("rs{}-", unique_suffix());
    let sids = dc.seed_users(&users_ou, &prefix, users as usize);
    println!(
        "{users} users seeded into AD's database in {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    let cloud_users: Vec<Value> = (0..users)
        .map(|i| common::synced_user(&uid(i), &sids[i as usize]))
        .collect();
    let cloud_groups: Vec<Value> = (0..groups)
        .map(|g| {
            let members = (0..10).map(|k| user(&uid((g * 7 + k) % users))).collect();
            common::security_group(&oid(TAG, g as u32), &format!("Restart {g}"), members)
        })
        .collect();
    if preseed > 0 {
        let first = &cloud_groups[..preseed as usize];
        preseed_groups(dc, (ou, &users_ou), &prefix, users, first);
    }
    (GraphSim::start(cloud_users, cloud_groups, &[]), sids)
}

/// Writes `groups` (cloud groups under `ou`, their members users `<prefix>i` under
/// `users_ou`) into AD's database as the service would write them.
fn preseed_groups(
    dc: &SambaDc,
    (ou, users_ou): (&str, &str),
    prefix: &str,
    users: u64,
    groups: &[Value],
) {
    let t0 = Instant::now();
    let index: std::collections::HashMap<String, u64> = (0..users).map(|i| (uid(i), i)).collect();
    let member_dn = |m: &Value| {
        let i = index[m["id"].as_str().unwrap()];
        format!("CN={prefix}{i},{users_ou}")
    };
    let jsonl: String = groups
        .iter()
        .map(|g| {
            let members = g["members"].as_array().unwrap().iter().map(member_dn);
            let (id, name) = (
                g["id"].as_str().unwrap(),
                g["displayName"].as_str().unwrap(),
            );
            dc.service_entry(ou, id, name, members.collect()) + "\n"
        })
        .collect();
    let n = dc.seed_entries(&jsonl);
    println!(
        "{n} groups pre-seeded into AD's database (BENCH_PRESEED) in {:.0} s",
        t0.elapsed().as_secs_f64()
    );
}

/// One restart of `bin`: the figures, with `who` added to the first group right after.
async fn restart(
    svc: &Service,
    sim: &GraphSim,
    dc: &SambaDc,
    (bin, group_dn, who, sid): (&str, &str, u64, &str),
    window: f64,
) -> (Running, Restart) {
    let tick = clock_tick();
    let idle_for = env("BENCH_IDLE_SECS", IDLE_FOR) as f64;
    let child = spawn_with(svc, bin);
    let pid = child.id();
    let t0 = Instant::now();
    sim.members(&oid(TAG, 0), vec![user(&uid(who))], vec![])
        .await;
    let changed = t0.elapsed().as_secs_f64();
    let mut change_secs = None;
    let mut samples: Vec<(f64, f64)> = Vec::new();
    let mut quiet_at: Option<(f64, f64)> = None;
    loop {
        let now = t0.elapsed().as_secs_f64();
        let cpu = cpu_secs(pid, tick).expect("the service is running");
        samples.push((now, cpu));
        if change_secs.is_none() && dc.member_sids(group_dn).await.contains(sid) {
            change_secs = Some(t0.elapsed().as_secs_f64() - changed);
        }
        if let Some((at, _)) = quiet_at {
            if now >= at + idle_for {
                break;
            }
        } else if change_secs.is_some() {
            // The 10 s stretch ending now: quiet if it used under QUIET_SHARE of a core.
            if let Some(&(t, c)) = samples.iter().rev().find(|(t, _)| now - t >= QUIET_FOR)
                && cpu - c <= QUIET_SHARE * (now - t)
            {
                quiet_at = Some((now, cpu));
            }
        }
        if now > window {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (end, end_cpu) = *samples.last().unwrap();
    let (rss_mib, hwm_mib) = memory_mib(pid);
    let (cpu_until_quiet, quiet_cpu_pct) = match quiet_at {
        Some((t, c)) => (c, 100.0 * (end_cpu - c) / (end - t)),
        None => (end_cpu, f64::NAN),
    };
    (
        child,
        Restart {
            cpu_until_quiet,
            quiet_at: quiet_at.map(|(t, _)| t),
            quiet_cpu_pct,
            rss_mib,
            hwm_mib,
            change_secs: change_secs.unwrap_or(f64::NAN),
        },
    )
}

fn spread(what: &str, unit: &str, target: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    println!(
        "  {what}: median {:.2}{unit} (min {:.2}, max {:.2}); target {target}",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1]
    );
}

fn report(label: &str, groups: u64, runs: &[Restart]) {
    println!("{label}: {groups} groups, {} restart(s)", runs.len());
    let col = |f: fn(&Restart) -> f64| runs.iter().map(f).collect::<Vec<_>>();
    spread(
        "CPU from start until quiet",
        " CPU-s",
        "< 5 CPU-s",
        col(|r| r.cpu_until_quiet),
    );
    spread(
        "quiet after",
        " s",
        "-",
        col(|r| r.quiet_at.unwrap_or(f64::NAN)),
    );
    spread("CPU when quiet", " %", "< 2 %", col(|r| r.quiet_cpu_pct));
    spread("VmRSS when quiet", " MiB", "<= 64 MiB", col(|r| r.rss_mib));
    spread("VmHWM", " MiB", "<= 64 MiB", col(|r| r.hwm_mib));
    spread(
        "change made right after the start reaches AD",
        " s",
        "<= poll + 1 s = 2 s",
        col(|r| r.change_secs),
    );
}

#[tokio::main]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let groups = env("BENCH_GROUPS", if benching { 1000 } else { 50 });
    let repeats = env("BENCH_REPEATS", if benching { 3 } else { 1 });
    let window = env("BENCH_WINDOW", if benching { 180 } else { 60 }) as f64;
    let this = env!("CARGO_BIN_EXE_entra-writeback").to_string();
    let dc = samba::shared();
    let ou = dc.fresh_ou("restart").await;
    let preseed = env("BENCH_PRESEED", if benching { 0 } else { groups / 2 });
    let (sim, sids) = tenant(dc, &ou, groups, preseed).await;
    let svc = Service::new(&sim, dc, &ou);

    let t0 = Instant::now();
    let first = spawn_with(&svc, &this);
    wait::until(
        "the initial sync to converge",
        6 * 3600,
        Duration::from_secs(2),
        Some(&svc),
        async || {
            wait::status(&svc)
                .await
                .is_some_and(|s| converged(&s, groups))
        },
    )
    .await;
    let took = t0.elapsed().as_secs_f64();
    println!(
        "initial sync by `run`: {groups} groups x 10 members in {took:.0} s = {:.1} groups/s",
        groups as f64 / took
    );
    stop(first);
    let dn = dc
        .group_by_anchor(&ou, &format!("Group_{}", oid(TAG, 0)))
        .await
        .expect("group written")
        .dn;

    let mut runs: Vec<(String, Vec<Restart>)> = Vec::new();
    let mut next = 10;
    for _ in 0..repeats {
        let Some(bins) = binaries(&this) else { break };
        for (label, bin) in bins {
            let sid = &sids[next as usize];
            let (child, r) = restart(&svc, &sim, dc, (&bin, &dn, next, sid), window).await;
            stop(child);
            next += 1;
            println!(
                "{label}: {:.2} CPU-s until quiet at {:.0} s, then {:.2} %; RSS {:.0} MiB (HWM {:.0}); change in AD after {:.2} s",
                r.cpu_until_quiet,
                r.quiet_at.unwrap_or(f64::NAN),
                r.quiet_cpu_pct,
                r.rss_mib,
                r.hwm_mib,
                r.change_secs
            );
            match runs.iter_mut().find(|(l, _)| *l == label) {
                Some((_, v)) => v.push(r),
                None => runs.push((label, vec![r])),
            }
        }
    }
    for (label, r) in &runs {
        report(label, groups, r);
    }
}
