//! Memory of the mirror while one large group is recorded (no Samba, no Graph): the pages of a
//! full round carrying one group of `BENCH_MEMBERS` members (default 250,000; 1,000 per page,
//! as graph-sim and Graph slice a large group) are committed and flushed as the poller does.
//! Prints this process's VmRSS and VmHWM as the pages go in, and the time per 1,000 members,
//! beside the target of a whole `run` writing a 250,000-member group (peak RSS <= 128 MiB).
//! Run: `cargo bench --bench mirror_memory`.
//!
//! `BENCH_PAGE_MEMBERS=N` puts `N` members on each page instead of 1,000: with `N` as large
//! as the group it is one page carrying the whole group, as a hostile or broken upstream
//! could send.
//!
//! `BENCH_CACHE=BYTES` sets sled's page cache (`[state] cache_capacity`; default the
//! service's default).
//!
//! Under `cargo test --all-targets` (no `--bench`) it runs as a smoke test (5,000 members).

use std::time::Instant;

use entra_writeback::graph::page::{GroupDelta, MemberDelta, NextStep};
use entra_writeback::model::{GroupPatch, MemberKind, MemberRef, Patch};
use entra_writeback::queue::Store;
use entra_writeback::queue::mirror::DeletePolicy;

/// The service's allocator (see `src/main.rs`), so the figures are the service's.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const GROUP: &str = "0badbeef-dddd-4000-8000-000000000001";

/// Page `p` of the group's slices: members `from..to`, the group's properties on the first.
fn slice(p: usize, from: usize, to: usize) -> GroupDelta {
    GroupDelta {
        id: GROUP.into(),
        removed: None,
        patch: if p == 0 {
            GroupPatch {
                display_name: Patch::Value("Large".into()),
                security_enabled: Patch::Value(true),
                ..Default::default()
            }
        } else {
            GroupPatch::default()
        },
        members: (from..to)
            .map(|i| MemberDelta {
                member: MemberRef {
                    kind: MemberKind::User,
                    id: format!("{i:08x}-eeee-4000-8000-{i:012x}"),
                },
                removed: false,
            })
            .collect(),
    }
}

#[path = "../tests/common/proc_memory.rs"]
mod proc_memory;

/// This process's VmRSS and VmHWM, in whole MiB.
fn rss() -> (u64, u64) {
    let (now, peak) = proc_memory::memory_mib("self");
    (now as u64, peak as u64)
}

#[tokio::main]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let members: usize = std::env::var("BENCH_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 250_000 } else { 5_000 });
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = std::env::var("BENCH_CACHE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(entra_writeback::config::DEFAULT_CACHE_CAPACITY);
    let store = Store::open_with(dir.path(), cache).expect("store");
    let policy = DeletePolicy {
        threshold: 100,
        soft_destructive: false,
    };
    let per_page: usize = std::env::var("BENCH_PAGE_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (base_rss, _) = rss();
    println!(
        "mirror of one {members}-member group, pages of {per_page} members (start: RSS {base_rss} MiB):"
    );
    let pages = members.div_ceil(per_page);
    let started = Instant::now();
    for p in 0..pages {
        let item = slice(p, p * per_page, ((p + 1) * per_page).min(members));
        let link = if p + 1 == pages {
            NextStep::Delta("https://graph.example/v1.0/groups/delta?$deltatoken=1".into())
        } else {
            NextStep::Next(format!(
                "https://graph.example/v1.0/groups/delta?$skiptoken={p}"
            ))
        };
        let before = store
            .cursor(entra_writeback::model::Resource::Groups)
            .expect("cursor");
        store
            .commit_group_page(&[item], &link, before.as_ref(), policy, &|_, p| {
                p.eligible()
            })
            .expect("commit");
        store.flush().await.expect("flush");
        if (p + 1) % (pages / 10).max(1) == 0 || p + 1 == pages {
            let (now, peak) = rss();
            println!(
                "  {:>7} members: RSS {now} MiB, peak {peak} MiB, {:.1} ms per 1,000 members",
                ((p + 1) * per_page).min(members),
                started.elapsed().as_secs_f64() * 1000.0 * 1000.0
                    / ((p + 1) * per_page).min(members) as f64
            );
        }
    }
    let (now, peak) = rss();
    println!(
        "  done: RSS {now} MiB, peak {peak} MiB ({} MiB above the start; target for a whole run <= 128 MiB)",
        peak.saturating_sub(base_rss)
    );
}
