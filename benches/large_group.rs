//! Large-group benchmark against a real Samba AD DC and graph-sim (prints figures; asserts
//! nothing about time). Run: `cargo build --release -p graph-sim && cargo bench --bench
//! large_group` (as root: it starts the Samba lab). graph-sim is another package of the
//! workspace, so `cargo bench` does not build it; without a release build the debug one is used
//! (with a note), and with neither the benchmark says how to build it
//! (`common::sim::graph_sim_binary`).
//!
//! 1. Initial write of one `BENCH_MEMBERS`-member group (default 50,000) with `run --once`:
//!    time and LDAP operations. The first cut took about 10 minutes for 50,000 members, while
//!    a direct `ldapmodify` of the same links takes seconds: the time is the service's own
//!    (the large-groups issue), which is what this benchmark measures.
//! 2. `BENCH_REPEATS` (default 5) one-member adds and removes on that group and on a
//!    one-member group: time (median, min, max) and LDAP operations of each `run --once`.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs as a smoke test with 500
//! members and one repeat, so CI checks that the benchmark works without paying for it.
//!
//! The CI-sized checks of the same claims (operation counts, ranged reads) are in
//! `tests/large_group.rs`.

#[allow(unused_imports)] // the harness's own unit tests are not run from here
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::large::LargeGroup;
use common::samba;

fn env(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Seconds and LDAP operations of one `run --once`.
#[derive(Default)]
struct Runs {
    secs: Vec<f64>,
    ops: Vec<u64>,
}

impl Runs {
    fn once(&mut self, g: &LargeGroup) {
        let t0 = Instant::now();
        let (ops, _) = g.once();
        self.secs.push(t0.elapsed().as_secs_f64());
        self.ops.push(ops);
    }

    fn report(&mut self, what: &str) {
        self.secs.sort_by(f64::total_cmp);
        self.ops.sort_unstable();
        let (s, o) = (&self.secs, &self.ops);
        println!(
            "{what}, {} runs: median {:.3} s (min {:.3}, max {:.3}); LDAP operations median {} (min {}, max {})",
            s.len(),
            s[s.len() / 2],
            s[0],
            s[s.len() - 1],
            o[o.len() / 2],
            o[0],
            o[o.len() - 1]
        );
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` (CI) runs this binary without
    // it, as a smoke test of the benchmark itself: a small group, one repeat.
    let benching = std::env::args().any(|a| a == "--bench");
    let n = env("BENCH_MEMBERS", if benching { 50_000 } else { 500 });
    let repeats = env("BENCH_REPEATS", if benching { 5 } else { 1 });
    if !benching {
        println!("smoke run (no --bench): {n} members, {repeats} repeat(s)");
    }
    let dc = samba::shared();
    let g = LargeGroup::new(dc, n, repeats, 0x2b00).await;

    let mut initial = Runs::default();
    initial.once(&g);
    let took = initial.secs[0];
    println!(
        "initial write: {n}-member group (+ a one-member group) in {took:.1} s = {:.0} member links/s, {} LDAP operations",
        f64::from(n) / took,
        initial.ops[0]
    );

    for (group, label) in [
        (&g.big, format!("{n}-member group")),
        (&g.small, "one-member group".into()),
    ] {
        let (mut add, mut remove) = (Runs::default(), Runs::default());
        for k in 0..repeats {
            g.add(group, n + k).await;
            add.once(&g);
            g.remove(group, n + k).await;
            remove.once(&g);
        }
        add.report(&format!("+1 member on the {label}"));
        remove.report(&format!("-1 member on the {label}"));
    }
}
