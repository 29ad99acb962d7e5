//! Durable queue throughput (no Samba, no Graph): Graph pages committed to the sled store and
//! flushed as the poller does (one transaction and one flush per page), then every change
//! acked as the worker does (one transaction per group). Prints changes per second for
//! enqueue + flush, ack, and both together (median, min, max of `BENCH_REPEATS`, default 5),
//! beside the target (20,000 durable changes/s). Run: `cargo bench --bench queue`.
//!
//! Under `cargo test --all-targets` (no `--bench`) it runs as a smoke test (1,000 changes).

use std::time::Instant;

/// The service's allocator (see `src/main.rs`), so the figures are the service's.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use entra_writeback::graph::page::{GroupDelta, MemberDelta, NextStep};
use entra_writeback::model::{ALL_GROUPS, GroupPatch, MemberKind, MemberRef, Patch, Resource};
use entra_writeback::queue::Store;
use entra_writeback::queue::mirror::DeletePolicy;

fn group(i: usize) -> GroupDelta {
    GroupDelta {
        id: format!("{i:08x}-dddd-4000-8000-{i:012x}"),
        removed: None,
        patch: GroupPatch {
            display_name: Patch::Value(format!("Group {i}")),
            security_enabled: Patch::Value(true),
            ..Default::default()
        },
        members: (0..3)
            .map(|k| MemberDelta {
                member: MemberRef {
                    kind: MemberKind::User,
                    id: format!("user-{}", (i * 7 + k) % 1000),
                },
                removed: false,
            })
            .collect(),
    }
}

fn show(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "median {:.0} (min {:.0}, max {:.0})",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1]
    )
}

/// What one run measured, in changes per second, and the share of the enqueue time spent in
/// the flush.
struct Rates {
    enqueue: f64,
    ack: f64,
    both: f64,
    flush_share: f64,
}

/// One run: `changes` changes in pages of `page`, acked `ack_group` at a time (1: one
/// transaction per group, as a lone worker slot acks).
async fn run(changes: usize, page: usize, ack_group: usize) -> Rates {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("store");
    let policy = DeletePolicy {
        threshold: 100,
        soft_destructive: false,
    };
    // A first, empty round, so the measured pages are an incremental round (plain upserts).
    let end = NextStep::Delta("https://graph.example/v1.0/groups/delta?$deltatoken=0".into());
    store
        .commit_group_page(&[], &end, None, policy, &|_, p| p.eligible())
        .expect("first round");
    let t0 = Instant::now();
    let mut flushing = 0f64;
    let pages = changes.div_ceil(page);
    for p in 0..pages {
        let items: Vec<GroupDelta> = (p * page..((p + 1) * page).min(changes))
            .map(group)
            .collect();
        let last = p + 1 == pages;
        let link = if last {
            NextStep::Delta(format!(
                "https://graph.example/v1.0/groups/delta?$deltatoken={p}"
            ))
        } else {
            NextStep::Next(format!(
                "https://graph.example/v1.0/groups/delta?$skiptoken={p}"
            ))
        };
        let before = store.cursor(Resource::Groups).expect("cursor");
        store
            .commit_group_page(&items, &link, before.as_ref(), policy, &|_, p| p.eligible())
            .expect("commit");
        let f0 = Instant::now();
        store.flush().await.expect("flush");
        flushing += f0.elapsed().as_secs_f64();
    }
    let enqueue = t0.elapsed().as_secs_f64();
    let pending = store.pending_batch(usize::MAX).expect("pending");
    let t1 = Instant::now();
    let seqs: Vec<u64> = pending
        .iter()
        .filter(|(_, c)| c.group_id != ALL_GROUPS)
        .map(|(s, _)| *s)
        .collect();
    for chunk in seqs.chunks(ack_group.max(1)) {
        store.ack(chunk).expect("ack");
    }
    store.flush().await.expect("flush");
    let ack = t1.elapsed().as_secs_f64();
    let n = changes as f64;
    Rates {
        enqueue: n / enqueue,
        ack: n / ack,
        both: n / (enqueue + ack),
        flush_share: flushing / enqueue,
    }
}

#[tokio::main]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let changes: usize = std::env::var("BENCH_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 20_000 } else { 1_000 });
    let page: usize = std::env::var("BENCH_PAGE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let repeats: usize = std::env::var("BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 5 } else { 1 });
    println!("queue, {changes} changes in pages of {page}, {repeats} run(s):");
    for ack_group in [1, 100] {
        let (mut enq, mut ack, mut both, mut share) = (vec![], vec![], vec![], vec![]);
        for _ in 0..repeats {
            let r = run(changes, page, ack_group).await;
            enq.push(r.enqueue);
            ack.push(r.ack);
            both.push(r.both);
            share.push(r.flush_share * 100.0);
        }
        println!("  acks {ack_group} per transaction:");
        println!("    enqueue + flush per page: {} changes/s", show(enq));
        println!(
            "      of which the flush:     {} % of the time",
            show(share)
        );
        println!("    ack:                      {} changes/s", show(ack));
        println!(
            "    durable changes end to end: {} changes/s (target >= 20,000)",
            show(both)
        );
    }
}
