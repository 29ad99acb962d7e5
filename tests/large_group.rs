//! Scale, CI-sized, against real Samba AD: a 5,000-member group is written, one-member changes
//! on it cost the same LDAP operations as on a one-member group, and the service's ranged
//! `member` read returns every member across many ranges.
//!
//! Samba never splits `member` into ranges by itself, but honours an explicit
//! `member;range=LO-HI`: the ranges are checked on the wire (a relay records what the
//! service's reader asks for), at the default step (1,500, Windows' `MaxValRange`) and at a
//! forced step of 100. A group sent whole on one page is written the same way. The
//! 50,000-member figure is a benchmark: `cargo bench --bench large_group`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::large::{self, LargeGroup, MEMBER_BATCH};
use common::relay::LdapRelay;
use common::samba::{self, SambaDc};
use common::service::{INSECURE_LDAP, Options, Service};
use common::sim::CLIENT_SECRET;
use common::summary;
use entra_writeback::config::Config;
use entra_writeback::directory::{Connection, DEFAULT_MEMBER_RANGE_STEP, Directory};
use entra_writeback::model::Events;

/// Members of the large group: more than two default ranges, so a full read at the default
/// step takes three searches where a one-member group takes one.
const N: u32 = 5_000;

/// The forced range step of the ranged-read check.
const SMALL_STEP: usize = 100;

/// The service's directory, in-process, connected through `relay` (plain LDAP: the relay reads
/// the requests).
async fn directory_via(dc: &SambaDc, g: &LargeGroup, relay: &LdapRelay) -> Directory {
    let svc = Service::with(
        dc,
        &g.ou,
        Options {
            ad_url: relay.url.clone(),
            ad_tls: INSECURE_LDAP.into(),
            ..large::options(dc, &g.sim)
        },
    );
    let text = std::fs::read_to_string(&svc.config).unwrap();
    let cfg = Config::parse(&text, Path::new("large_group.toml"), |k| match k {
        "ENTRA_WRITEBACK_AD_BIND_PASSWORD" => Some(dc.svc_bind_password.clone()),
        "ENTRA_WRITEBACK_GRAPH_CLIENT_SECRET" => Some(CLIENT_SECRET.into()),
        _ => None,
    })
    .unwrap();
    let conn = Connection::new(&cfg.ad, Events::none()).unwrap();
    Directory::open(conn).await.unwrap()
}

/// Asserts two member sets are equal, reporting sizes and a few differences (not thousands of
/// SIDs).
fn assert_members(got: &BTreeSet<String>, want: &BTreeSet<String>, what: &str) {
    let missing: Vec<_> = want.difference(got).take(3).collect();
    let extra: Vec<_> = got.difference(want).take(3).collect();
    assert!(
        got == want,
        "{what}: {} members, want {}; missing e.g. {missing:?}, extra e.g. {extra:?}",
        got.len(),
        want.len()
    );
}

/// The ranges a reader stepping by `step` asks for on an `n`-value attribute: `0-(step-1)`,
/// `step-(2·step-1)`, …, up to the range that holds the last value.
fn expected_ranges(n: usize, step: usize) -> Vec<String> {
    (0..n.div_ceil(step))
        .map(|k| format!("{}-{}", k * step, k * step + step - 1))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_group_is_read_in_ranges_and_one_member_changes_cost_what_they_cost_on_a_small_one()
{
    let dc = samba::shared();
    let g = LargeGroup::new(dc, N, 1, 0xb00).await;
    let (initial_ops, log) = g.once();
    let e = dc
        .group_by_anchor(&g.ou, &format!("Group_{}", g.big))
        .await
        .unwrap();
    let want: BTreeSet<String> = (0..N).map(|i| g.sid(i)).collect();
    assert_members(
        &dc.member_sids(&e.dn).await,
        &want,
        "AD after the initial write",
    );
    // The group arrived sliced over many pages and is written as one apply: one add that
    // carries the first batch of members, then one modify per further batch, and no read of
    // its members in between (the only searches: per group its anchor search, and the sweep's
    // listing). The one-member group is a single add.
    let batches = u64::from(N).div_ceil(MEMBER_BATCH);
    let work = summary::work_ops(&log);
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    let work = format!("{work:?}; warnings: {warnings:#?}");
    assert_eq!(summary::work_op(&log, "add"), 2, "{work}");
    assert_eq!(summary::work_op(&log, "modify"), batches - 1, "{work}");
    assert_eq!(summary::work_op(&log, "search"), 2 + 1, "{work}");
    assert_eq!(summary::work_total(&log), 2 + (batches - 1) + 3, "{work}");

    // The service's reader, at the default step and at a forced small one: every member, in
    // consecutive explicit ranges (each one a search on the wire).
    let relay = LdapRelay::start(&dc.url);
    let dir = directory_via(dc, &g, &relay).await;
    relay.take_ranges("member");
    let read = dir.member_sids(&e.dn).await.unwrap();
    assert_members(&read, &want, "member_sids at the default step");
    assert_eq!(
        relay.take_ranges("member"),
        expected_ranges(N as usize, DEFAULT_MEMBER_RANGE_STEP)
    );
    let dir = dir.with_member_range_step(SMALL_STEP);
    let read = dir.member_sids(&e.dn).await.unwrap();
    assert_members(
        &read,
        &want,
        &format!("member_sids at a step of {SMALL_STEP}"),
    );
    assert_eq!(
        relay.take_ranges("member"),
        expected_ranges(N as usize, SMALL_STEP)
    );

    // One member added, then one removed, on each group: the large group costs exactly what the
    // one-member group does, and at most 3 LDAP operations (its anchor search and one modify;
    // no member read).
    let small = one_member_cost(&g, &g.small, N).await;
    let large = one_member_cost(&g, &g.big, N).await;
    eprintln!(
        "{N}-member group: initial write {initial_ops} LDAP operations; (+1, -1) member: {large:?}, on a one-member group {small:?}"
    );
    assert_eq!(
        large, small,
        "(add, remove) LDAP operations: {N}-member group {large:?}, one-member group {small:?}"
    );
    assert!(large.0 <= 3 && large.1 <= 3, "(+1, -1) cost {large:?}");
    assert_members(&dc.member_sids(&e.dn).await, &want, "AD after +1/-1");
}

/// A converged group is found at the SID the store remembers with one base read on Samba
/// (answered from the `objectSid` index, where the anchor search evaluates every group under
/// the OU), and a remembered SID that is not the group's falls back to that search.
#[tokio::test(flavor = "multi_thread")]
async fn a_remembered_group_is_one_base_read_at_its_sid_and_anything_else_is_searched_for() {
    let dc = samba::shared();
    let g = LargeGroup::new(dc, 3, 1, 0xb80).await;
    g.once();
    let e = dc
        .group_by_anchor(&g.ou, &format!("Group_{}", g.big))
        .await
        .unwrap();
    let sid = samba::entry_sid(&e).unwrap();
    let relay = LdapRelay::start(&dc.url);
    let dir = directory_via(dc, &g, &relay).await;
    relay.take();
    relay.take_searches_naming("");
    let found = dir.find_owned_remembered(&g.big, Some(&sid)).await.unwrap();
    assert_eq!(found.map(|a| a.dn), Some(e.dn.clone()));
    assert_eq!(relay.take(), (1, 0), "one search, not paged");
    assert_eq!(relay.take_searches_naming(&format!("<SID={sid}>")), 1);
    // A SID that is not the group's (a member's): refused, then the anchor search finds it.
    let found = dir
        .find_owned_remembered(&g.big, Some(&g.sid(0)))
        .await
        .unwrap();
    assert_eq!(found.map(|a| a.dn), Some(e.dn.clone()));
    assert_eq!(
        relay.take(),
        (2, 1),
        "the base read, then the paged anchor search"
    );
    assert_eq!(
        relay.take_searches_naming(&format!("<SID={}>", g.sid(0))),
        1
    );
}

/// Members of the group sent on one page: more than one part of a page commit
/// (`queue::mirror::parts::PART_MEMBERS`, 2,000 member entries), so the page is recorded in
/// several transactions.
const ONE_PAGE: u32 = 2_500;

/// A page carrying a whole large group (what a broken or hostile upstream could send; Graph
/// slices one) is recorded in bounded parts and written exactly as a sliced one: every member
/// in AD, one add and one modify per further batch, no member read.
#[tokio::test(flavor = "multi_thread")]
async fn a_group_sent_whole_on_one_page_is_recorded_in_parts_and_written_whole() {
    let dc = samba::shared();
    let g = LargeGroup::sliced(dc, ONE_PAGE, 0, 0xb40, ONE_PAGE).await;
    let (_, log) = g.once();
    let e = dc
        .group_by_anchor(&g.ou, &format!("Group_{}", g.big))
        .await
        .unwrap();
    let want: BTreeSet<String> = (0..ONE_PAGE).map(|i| g.sid(i)).collect();
    assert_members(&dc.member_sids(&e.dn).await, &want, "AD after one page");
    let batches = u64::from(ONE_PAGE).div_ceil(MEMBER_BATCH);
    let work = format!("{:?}", summary::work_ops(&log));
    assert_eq!(summary::work_op(&log, "add"), 2, "{work}");
    assert_eq!(summary::work_op(&log, "modify"), batches - 1, "{work}");
    assert_eq!(summary::work_op(&log, "search"), 2 + 1, "{work}");
}

/// LDAP operations of the work of `run --once` (binding and the schema probe left out) after
/// user `i` joined `group`, then after it left again.
async fn one_member_cost(g: &LargeGroup, group: &str, i: u32) -> (u64, u64) {
    g.add(group, i).await;
    let (_, log) = g.once();
    let add = summary::work_total(&log);
    g.remove(group, i).await;
    let (_, log) = g.once();
    (add, summary::work_total(&log))
}
