//! What opening the state store costs at a tenant's size (no Samba, no Graph): a store holding
//! `BENCH_GROUPS` groups (default 100,000) of 10 members each is built as the poller builds it
//! (a full round in pages of 100 groups, each page committed and flushed), every queued change
//! is acked into the journal, and the store is closed. Then, `BENCH_REPEATS` times (default 3),
//! a fresh process (this binary again) opens it as `run` does, reads the status counts once,
//! and prints its VmRSS / VmHWM and the time the open took, for two starts:
//!
//! - after a clean close: the counts come from the snapshot the close left;
//! - after a crash: a copy of the files taken while the store was open, so no snapshot, and
//!   the counts are taken by walking the trees (what every start did before the snapshot).
//!
//! The difference is the start-up walk's cost. The target it serves: idle RSS <= 64 MiB with
//! 100,000 managed groups (issue 18), of which this is the store's share.
//! Run: `cargo bench --bench store_open`. Under `cargo test --all-targets` (no `--bench`) it
//! runs as a smoke test with 500 groups and one repeat.

use std::path::Path;
use std::time::Instant;

use entra_writeback::graph::page::{GroupDelta, MemberDelta, NextStep};
use entra_writeback::model::{GroupPatch, MemberKind, MemberRef, Patch, Resource};
use entra_writeback::queue::Store;
use entra_writeback::queue::mirror::DeletePolicy;

/// The service's allocator (see `src/main.rs`), so the figures are the service's.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "../tests/common/proc_memory.rs"]
mod proc_memory;

#[allow(dead_code)] // the harness's other figures (quantiles) are not printed here
#[path = "../tests/common/figures.rs"]
mod figures;

use figures::Figures;

/// Set in the child: the store to open.
const PROBE_ENV: &str = "STORE_OPEN_PROBE";
const GROUPS_PER_PAGE: usize = 100;
const MEMBERS_PER_GROUP: usize = 10;

/// Group `g` of the tenant, with its 10 members (users shared between groups, as in a tenant
/// of half as many users as groups).
fn group(g: usize, users: usize) -> GroupDelta {
    GroupDelta {
        id: format!("{g:08x}-aaaa-4000-8000-{g:012x}"),
        removed: None,
        patch: GroupPatch {
            display_name: Patch::Value(format!("Group {g}")),
            security_enabled: Patch::Value(true),
            ..Default::default()
        },
        members: (0..MEMBERS_PER_GROUP)
            .map(|k| {
                let u = (g * MEMBERS_PER_GROUP + k) % users;
                MemberDelta {
                    member: MemberRef {
                        kind: MemberKind::User,
                        id: format!("{u:08x}-eeee-4000-8000-{u:012x}"),
                    },
                    removed: false,
                }
            })
            .collect(),
    }
}

/// Builds the converged store of `groups` groups in `dir`, then closes it; returns the crash
/// image copied into `crashed` while it was open.
async fn build(dir: &Path, crashed: &Path, groups: usize) {
    let store = Store::open(dir).expect("store");
    let policy = DeletePolicy {
        threshold: groups,
        soft_destructive: false,
    };
    let started = Instant::now();
    let pages = groups.div_ceil(GROUPS_PER_PAGE);
    for p in 0..pages {
        let items: Vec<GroupDelta> = (p * GROUPS_PER_PAGE..((p + 1) * GROUPS_PER_PAGE).min(groups))
            .map(|g| group(g, (groups / 2).max(1)))
            .collect();
        let link = if p + 1 == pages {
            NextStep::Delta("https://graph.example/v1.0/groups/delta?$deltatoken=1".into())
        } else {
            NextStep::Next(format!(
                "https://graph.example/v1.0/groups/delta?$skiptoken={p}"
            ))
        };
        let before = store.cursor(Resource::Groups).expect("cursor");
        store
            .commit_group_page(&items, &link, before.as_ref(), policy, &|_, p| p.eligible())
            .expect("commit");
        store.flush().await.expect("flush");
        loop {
            let batch = store.pending_batch(1000).expect("pending");
            if batch.is_empty() {
                break;
            }
            let seqs: Vec<u64> = batch.iter().map(|(s, _)| *s).collect();
            store.ack(&seqs).expect("ack");
        }
    }
    store.flush().await.expect("flush");
    copy_dir(dir, crashed);
    let stats = store.stats().expect("stats");
    println!(
        "store of {groups} groups x {MEMBERS_PER_GROUP} members built in {:.0} s: {} mirrored groups, {} journal entries, {} MiB on disk",
        started.elapsed().as_secs_f64(),
        stats.mirrored_groups,
        stats.journal_entries,
        dir_bytes(dir) / (1024 * 1024)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dir_bytes(&e.path())
            } else {
                e.metadata().unwrap().len()
            }
        })
        .sum()
}

/// The child: opens the store, reads the counts, prints `rss hwm secs groups`.
fn probe(path: &str) {
    let t0 = Instant::now();
    let store = Store::open(Path::new(path)).expect("store opens");
    let stats = store.stats().expect("stats");
    let secs = t0.elapsed().as_secs_f64();
    let (rss, hwm) = proc_memory::memory_mib("self");
    println!("{rss} {hwm} {secs} {}", stats.mirrored_groups);
}

/// Runs the child on `path`: (VmRSS, VmHWM, seconds, mirrored groups).
fn open_in_child(path: &Path) -> (f64, f64, f64, u64) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(PROBE_ENV, path)
        .output()
        .expect("probe runs");
    assert!(out.status.success(), "probe failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    (
        f[0].parse().unwrap(),
        f[1].parse().unwrap(),
        f[2].parse().unwrap(),
        f[3].parse().unwrap(),
    )
}

#[tokio::main]
async fn main() {
    if let Ok(path) = std::env::var(PROBE_ENV) {
        probe(&path);
        return;
    }
    let benching = std::env::args().any(|a| a == "--bench");
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let groups = env("BENCH_GROUPS", if benching { 100_000 } else { 500 });
    let repeats = env("BENCH_REPEATS", if benching { 3 } else { 1 });
    let root = tempfile::tempdir().expect("temp dir");
    let (dir, image) = (root.path().join("state"), root.path().join("crash-image"));
    build(&dir, &image, groups).await;
    for (label, clean) in [("after a clean close", true), ("after a crash", false)] {
        let (mut rss, mut hwm, mut secs) =
            (Figures::default(), Figures::default(), Figures::default());
        for r in 0..repeats {
            let path = if clean {
                dir.clone()
            } else {
                // A fresh copy of the image each time: an open leaves a snapshot at its close.
                let copy = root.path().join(format!("crashed-{r}"));
                copy_dir(&image, &copy);
                copy
            };
            let (now, peak, took, counted) = open_in_child(&path);
            assert_eq!(counted as usize, groups, "{label}: mirrored groups");
            rss.push(now);
            hwm.push(peak);
            secs.push(took);
        }
        println!(
            "open {label}, {repeats} runs: VmRSS {} MiB, VmHWM {} MiB, open + counts {} s (target for the whole service: RSS <= 64 MiB)",
            rss.show(0),
            hwm.show(0),
            secs.show(2)
        );
    }
}
