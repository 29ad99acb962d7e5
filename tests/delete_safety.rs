//! Delete safety against a real Samba AD DC (issue 9): an AD group is a security principal, so
//! a group the cloud still has (live or restorable) must keep its object — same objectGUID —
//! whatever the order of soft deletes, restores, approvals, resyncs, lost state and scope edits.
//! Every destructive action is re-validated when it executes, sweeps run only on a complete
//! picture, and `delete_threshold` counts every destructive action (deletes, conversions,
//! moves).

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::compare;
use common::samba::{self, SambaDc, attr_first, entry_guid, unique_suffix};
use common::service::{Options, Service, tail};
use common::sim::{GraphSim, oid, user};
use serde_json::{Value, json};

/// universal security, as the contract writes it.
const SECURITY: &str = "-2147483640";
/// universal distribution.
const DISTRIBUTION: &str = "8";

/// A service over StartTLS (verified against the lab CA), with `ad_extra` in `[ad]` and
/// `sync_extra` in `[sync]` (short retry delays either way), and `tail` after that.
fn service(
    sim: &GraphSim,
    dc: &SambaDc,
    ou: &str,
    ad_extra: &str,
    sync_extra: &str,
    tail: &str,
) -> Service {
    Service::with(
        dc,
        ou,
        Options {
            // `Options::new` already connects over StartTLS with the lab CA (`ad_tls`).
            ad_extra: ad_extra.to_string(),
            tail: format!(
                "[sync]\nmin_backoff = \"100ms\"\nmax_backoff = \"1s\"\nmax_attempts = 4\n\
                 {sync_extra}\n{tail}"
            ),
            ..Options::new(dc, sim)
        },
    )
}

fn anchor(id: &str) -> String {
    format!("Group_{id}")
}

/// The objectGUID of the group anchored to `id` under `ou`, if there is one.
async fn guid(dc: &SambaDc, ou: &str, id: &str) -> Option<String> {
    dc.group_by_anchor(ou, &anchor(id))
        .await
        .map(|e| entry_guid(&e).expect("a group has an objectGUID"))
}

/// objectGUID of every group in `ids` under `ou`; panics if one is missing.
async fn guids(dc: &SambaDc, ou: &str, ids: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for id in ids {
        let g = guid(dc, ou, id)
            .await
            .unwrap_or_else(|| panic!("group {id} is missing from {ou}"));
        out.insert(id.clone(), g);
    }
    out
}

/// The groupType of the group anchored to `id` under `ou`.
async fn group_type(dc: &SambaDc, ou: &str, id: &str) -> String {
    let e = dc
        .group_by_anchor(ou, &anchor(id))
        .await
        .unwrap_or_else(|| panic!("group {id} is missing from {ou}"));
    attr_first(&e, "groupType").unwrap().to_string()
}

/// `queue status --json`.
fn queue_status(svc: &Service) -> Value {
    let out = svc.run(&["queue", "status", "--json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn held(svc: &Service) -> u64 {
    queue_status(svc)["held_deletes"].as_u64().unwrap()
}

/// `approve-deletes` with `args`, asserting exit 0; returns stdout.
fn approve(svc: &Service, args: &[&str]) -> String {
    let mut all = vec!["approve-deletes"];
    all.extend_from_slice(args);
    let out = svc.run(&all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "approve-deletes {args:?}: {out:?}\n{text}"
    );
    text
}

/// Log lines (JSON) recording an AD create or delete of a group.
fn creates_and_deletes(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("\"+ create ") || l.contains("\"- delete "))
        .collect()
}

/// N security groups of tag `tag`, named `<prefix> i`.
fn groups(tag: u32, n: u32, prefix: &str) -> (Vec<String>, Vec<Value>) {
    let ids: Vec<String> = (0..n).map(|i| oid(tag, i)).collect();
    let gs = ids
        .iter()
        .enumerate()
        .map(|(i, id)| common::security_group(id, &format!("{prefix} {i}"), vec![]))
        .collect();
    (ids, gs)
}

/// Two groups written back under `soft_delete = "delete"` with `delete_threshold = 1`, then
/// both soft-deleted in the cloud and a round run: both deletes are held and AD is unchanged.
/// The starting point of the restore / approve tests.
struct TwoHeld {
    dc: &'static SambaDc,
    ou: String,
    ids: Vec<String>,
    sim: GraphSim,
    svc: Service,
    /// objectGUIDs before anything was deleted.
    before: BTreeMap<String, String>,
}

impl TwoHeld {
    async fn new(ou_name: &str, tag: u32, prefix: &str, sync_extra: &str) -> TwoHeld {
        let dc = samba::shared();
        let ou = dc.fresh_ou(ou_name).await;
        let (ids, gs) = groups(tag, 2, prefix);
        let sim = GraphSim::start(vec![], gs, &[]);
        let svc = service(
            &sim,
            dc,
            &ou,
            "soft_delete = \"delete\"\ndelete_threshold = 1",
            sync_extra,
            "",
        );
        svc.once_ok();
        let before = guids(dc, &ou, &ids).await;
        for id in &ids {
            sim.delete_group(id, false).await;
        }
        svc.once_ok();
        assert_eq!(held(&svc), 2);
        assert_eq!(
            guids(dc, &ou, &ids).await,
            before,
            "held: AD must not change"
        );
        TwoHeld {
            dc,
            ou,
            ids,
            sim,
            svc,
            before,
        }
    }
}

/// Two soft-deleted groups under `soft_delete = "delete"` and `delete_threshold = 1` are held;
/// both restored in the cloud, a round, then `approve-deletes --all`: both live groups stay,
/// same objects.
#[tokio::test(flavor = "multi_thread")]
async fn restored_groups_are_not_deleted_after_approve_all() {
    let TwoHeld {
        dc,
        ou,
        ids,
        sim,
        svc,
        before,
    } = TwoHeld::new("ds-restore", 0x9d01, "Restore", "").await;
    let listed = approve(&svc, &[]);
    assert!(listed.contains("2 delete(s) held"), "{listed}");
    for id in &ids {
        assert!(listed.contains(id.as_str()), "{id} not listed:\n{listed}");
    }

    for id in &ids {
        sim.restore_group(id).await;
    }
    svc.once_ok();
    assert_eq!(
        held(&svc),
        0,
        "listing the restored groups cancels their held deletes"
    );
    approve(&svc, &["--all"]);
    let log = svc.once_ok();
    assert_eq!(
        guids(dc, &ou, &ids).await,
        before,
        "restored groups deleted or recreated:\n{}",
        tail(&log)
    );
    assert!(
        creates_and_deletes(&log).is_empty(),
        "{:?}",
        creates_and_deletes(&log)
    );
    assert_eq!(queue_status(&svc)["dead_letters"], 0);
}

/// Two held; only one restored; approve all: the restored one survives (same objectGUID), the
/// one still soft-deleted is deleted as the policy says.
#[tokio::test(flavor = "multi_thread")]
async fn approve_all_deletes_only_the_group_still_soft_deleted() {
    let TwoHeld {
        dc,
        ou,
        ids,
        sim,
        svc,
        before,
    } = TwoHeld::new("ds-restore-one", 0x9d02, "Half", "").await;
    let (restored, gone) = (&ids[0], &ids[1]);

    sim.restore_group(restored).await;
    svc.once_ok();
    assert_eq!(held(&svc), 1, "only the restored group's hold is cancelled");
    approve(&svc, &["--all"]);
    let log = svc.once_ok();
    assert_eq!(
        guid(dc, &ou, restored).await.as_ref(),
        Some(&before[restored]),
        "the restored group must survive as the same object:\n{}",
        tail(&log)
    );
    assert_eq!(
        guid(dc, &ou, gone).await,
        None,
        "the group still soft-deleted is deleted once approved:\n{}",
        tail(&log)
    );
    assert_eq!(held(&svc), 0);
}

/// Held, restored in the cloud, approved before any round has seen the restore: the released
/// delete is re-checked when it executes, so the live groups stay.
#[tokio::test(flavor = "multi_thread")]
async fn approved_before_the_restore_is_seen_is_still_not_deleted() {
    let TwoHeld {
        dc,
        ou,
        ids,
        sim,
        svc,
        before,
    } = TwoHeld::new("ds-restore-race", 0x9d03, "Race", "").await;
    for id in &ids {
        sim.restore_group(id).await;
    }
    approve(&svc, &["--all"]);
    let log = svc.once_ok();
    assert_eq!(
        guids(dc, &ou, &ids).await,
        before,
        "released deletes of restored groups executed:\n{}",
        tail(&log)
    );
    assert!(
        creates_and_deletes(&log).is_empty(),
        "{:?}",
        creates_and_deletes(&log)
    );
}

/// Held, restored in the cloud, approved, and executed by a `run` whose groups delta keeps
/// failing (so the mirror still says soft-deleted): the check against Graph at execution time
/// (`GET /groups/{id}` → live) alone keeps both groups.
#[tokio::test(flavor = "multi_thread")]
async fn released_deletes_are_rechecked_against_graph_when_they_execute() {
    let TwoHeld {
        dc,
        ou,
        ids,
        sim,
        svc,
        before,
    } = TwoHeld::new("ds-recheck", 0x9d09, "Recheck", "quarantine_after = 0").await;
    for id in &ids {
        sim.restore_group(id).await;
    }
    // The service will not see the restore through delta: every groups delta request fails.
    sim.faults(
        json!({"throttle": {"count": 100_000, "status": 503, "path": "/v1.0/groups/delta"}}),
    )
    .await;
    approve(&svc, &["--all"]);
    assert_eq!(
        queue_status(&svc)["depth"],
        2,
        "two released deletes queued"
    );
    sim.clear_requests().await;
    let mut child = svc.spawn();
    wait_status(&svc, "the released deletes to be processed", 120, |s| {
        s["queue"]["depth"] == 0
            && s["changes"]
                .as_array()
                .is_some_and(|c| c.iter().filter(|c| c["work"] == "delete").count() >= 2)
    })
    .await;
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success(), "clean stop on SIGTERM");
    let log = std::fs::read_to_string(svc.dir.path().join("run.log")).unwrap();
    let requests = sim.requests().await;
    for id in &ids {
        assert!(
            requests
                .iter()
                .any(|r| r["path"] == format!("/v1.0/groups/{id}") && r["status"] == 200),
            "{id} was not looked up in Graph before its delete: {requests:?}"
        );
    }
    assert!(
        !requests
            .iter()
            .any(|r| r["path"] == "/v1.0/groups/delta" && r["status"] == 200),
        "the groups delta must have kept failing for this test to mean anything"
    );
    assert_eq!(
        guids(dc, &ou, &ids).await,
        before,
        "released deletes of live groups executed:\n{}",
        tail(&log)
    );
    assert!(
        creates_and_deletes(&log).is_empty(),
        "{:?}",
        creates_and_deletes(&log)
    );
}

async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .ok()?;
    Some((r.status().as_u16(), r.text().await.ok()?))
}

async fn status(port: u16) -> Option<Value> {
    match http_get(port, "/status.json").await {
        Some((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// Waits (polling /status.json) until `f` accepts a snapshot; returns it. On timeout, shows
/// the service log.
async fn wait_status(svc: &Service, what: &str, secs: u64, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = status(svc.http_port).await
            && f(&s)
        {
            return s;
        }
        if Instant::now() >= deadline {
            let log = std::fs::read_to_string(svc.dir.path().join("run.log")).unwrap_or_default();
            panic!(
                "timed out after {secs}s waiting for {what}\n--- status ---\n{:?}\n--- log ---\n{}",
                status(svc.http_port).await,
                tail(&log)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The groups full round that completed, if any, from a status snapshot.
fn full_groups_round(s: &Value) -> Option<&Value> {
    s["rounds"]
        .as_array()?
        .iter()
        .find(|r| r["resource"] == "groups" && r["kind"] == "full" && r["result"] == "ok")
}

fn drained(s: &Value) -> bool {
    s["queue"]["depth"] == 0
        && s["queue"]["full_round_in_progress"] == false
        && s["in_flight"].as_array().is_some_and(Vec::is_empty)
}

/// Lost state + a first full round much slower than `reconcile_interval`: the owned groups
/// already in AD are kept (same objectGUID, same members); nothing is deleted or created while
/// the round is partial, and nothing afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn lost_state_and_a_slow_first_round_keep_every_group() {
    const N: u32 = 24;
    let dc = samba::shared();
    let ou = dc.fresh_ou("ds-lost-state").await;
    let users_ou = dc.fresh_ou("ds-lost-state-users").await;
    let tag = 0x9d04;
    let sids = dc
        .create_users(&users_ou, &format!("dl{}-", unique_suffix()), 2)
        .await;
    let uid = |i: u32| oid(tag, 1000 + i);
    let users: Vec<Value> = (0..2)
        .map(|i| common::synced_user(&uid(i), &sids[i as usize]))
        .collect();
    let ids: Vec<String> = (0..N).map(|i| oid(tag, i)).collect();
    let gs: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            common::security_group(id, &format!("Lost {i}"), vec![user(&uid(0)), user(&uid(1))])
        })
        .collect();
    // One member per group item and two items per page: the groups round takes 24+ pages, and
    // a group's members arrive over two items (possibly two pages), so a partial round knows
    // only some of them.
    let sim = GraphSim::start(users, gs, &["--page-size", "2", "--member-slice", "1"]);
    let svc = service(&sim, dc, &ou, "", "reconcile_interval = \"1s\"", "");
    let first = svc.once_ok();
    assert!(
        creates_and_deletes(&first).len() >= N as usize,
        "the log check must see the creates:\n{}",
        tail(&first)
    );
    let before = guids(dc, &ou, &ids).await;
    let sid_of: BTreeMap<String, String> =
        (0..2).map(|i| (uid(i), sids[i as usize].clone())).collect();
    let members_before = compare::assert_ad_equals_tenant(
        &sim,
        dc,
        &ou,
        &compare::Expect::members(&sid_of),
        N as usize,
        "after the first round",
    )
    .await;
    assert!(
        members_before.values().all(|g| g.members.len() == 2),
        "{members_before:?}"
    );

    std::fs::remove_dir_all(svc.state_dir()).unwrap();
    // Every groups delta page answers 400 ms late: the first round spans many reconcile
    // intervals.
    sim.faults(json!({"delay": {"ms": 400, "path": "/v1.0/groups/delta"}}))
        .await;
    let mut child = svc.spawn();
    let done = wait_status(
        &svc,
        "the first full round to complete and the queue to drain",
        180,
        |s| full_groups_round(s).is_some() && drained(s),
    )
    .await;
    let round = full_groups_round(&done).unwrap();
    assert!(
        round["duration_ms"].as_u64().unwrap() >= 5_000,
        "the first round must be slow for this test to mean anything: {round}"
    );
    // A few more reconcile intervals on a complete picture (sweeps included).
    tokio::time::sleep(Duration::from_secs(4)).await;
    wait_status(&svc, "the queue to drain again", 60, drained).await;
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success(), "clean stop on SIGTERM");

    let log = std::fs::read_to_string(svc.dir.path().join("run.log")).unwrap();
    assert!(
        creates_and_deletes(&log).is_empty(),
        "groups deleted or created after the state was lost:\n{}",
        creates_and_deletes(&log).join("\n")
    );
    assert!(
        !log.contains("\"- members of "),
        "members removed:\n{}",
        tail(&log)
    );
    assert_eq!(dc.groups_in(&ou).await.len(), N as usize);
    assert_eq!(
        guids(dc, &ou, &ids).await,
        before,
        "a group got a new objectGUID"
    );
    compare::assert_same(
        &members_before,
        &compare::actual_state(dc, &ou).await,
        "after the state was lost",
    );
    assert_eq!(queue_status(&svc)["dead_letters"], 0);
    // The window this test is about was open: reconciliation came due mid-round.
    assert!(
        log.contains("periodic reconciliation skipped"),
        "reconcile never fired during the partial round:\n{}",
        tail(&log)
    );
}

/// A group soft-deleted while the delta token expires (410 → full enumeration, which does not
/// list it) stays frozen: same object. Purged afterwards, it is deleted.
#[tokio::test(flavor = "multi_thread")]
async fn soft_delete_during_a_resync_stays_frozen_until_purged() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("ds-resync-soft").await;
    let (ids, gs) = groups(0x9d05, 2, "Resync");
    let (soft, live) = (&ids[0], &ids[1]);
    let sim = GraphSim::start(vec![], gs, &[]);
    let svc = service(&sim, dc, &ou, "", "", "");
    svc.once_ok();
    let before = guids(dc, &ou, &ids).await;

    sim.delete_group(soft, false).await;
    sim.faults(json!({"expire_delta_tokens": {"status": 410}}))
        .await;
    sim.clear_requests().await;
    let log = svc.once_ok();
    let requests = sim.requests().await;
    assert!(
        requests.iter().any(|r| r["status"] == 410),
        "the delta token was not rejected: {requests:?}"
    );
    assert_eq!(
        guids(dc, &ou, &ids).await,
        before,
        "a soft-deleted group was deleted by the resync:\n{}",
        tail(&log)
    );
    assert!(
        creates_and_deletes(&log).is_empty(),
        "{:?}",
        creates_and_deletes(&log)
    );

    sim.delete_group(soft, true).await;
    let log = svc.once_ok();
    assert_eq!(
        guid(dc, &ou, soft).await,
        None,
        "purged: deleted from AD\n{}",
        tail(&log)
    );
    assert_eq!(guid(dc, &ou, live).await.as_ref(), Some(&before[live]));
}

/// A group purged while the token is expired is never seen as `@removed`: the full round
/// does not list it, the sweep finds it purged (404 in deletedItems) and deletes it.
#[tokio::test(flavor = "multi_thread")]
async fn purged_during_a_resync_is_deleted_after_the_full_round() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("ds-resync-purge").await;
    let (ids, gs) = groups(0x9d06, 2, "Purge");
    let (purged, live) = (&ids[0], &ids[1]);
    let sim = GraphSim::start(vec![], gs, &[]);
    let svc = service(&sim, dc, &ou, "", "", "");
    svc.once_ok();
    let before = guids(dc, &ou, &ids).await;

    sim.faults(json!({"expire_delta_tokens": {"status": 410}}))
        .await;
    sim.delete_group(purged, true).await;
    let log = svc.once_ok();
    assert_eq!(
        guid(dc, &ou, purged).await,
        None,
        "a purged group must be deleted after the full round and sweep:\n{}",
        tail(&log)
    );
    assert_eq!(guid(dc, &ou, live).await.as_ref(), Some(&before[live]));
}

/// `soft_delete = "convert_to_distribution"`, threshold 1: three soft deletes are held (still
/// security groups); approving one id converts only that one, the others stay held.
#[tokio::test(flavor = "multi_thread")]
async fn the_threshold_counts_conversions() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("ds-convert").await;
    let (ids, gs) = groups(0x9d07, 3, "Convert");
    let sim = GraphSim::start(vec![], gs, &[]);
    let svc = service(
        &sim,
        dc,
        &ou,
        "soft_delete = \"convert_to_distribution\"\ndelete_threshold = 1",
        "",
        "",
    );
    svc.once_ok();
    let before = guids(dc, &ou, &ids).await;
    for id in &ids {
        assert_eq!(group_type(dc, &ou, id).await, SECURITY);
        sim.delete_group(id, false).await;
    }
    let log = svc.once_ok();
    assert_eq!(held(&svc), 3, "{}", tail(&log));
    for id in &ids {
        assert_eq!(
            group_type(dc, &ou, id).await,
            SECURITY,
            "{id} converted despite the threshold:\n{}",
            tail(&log)
        );
    }

    let text = approve(&svc, &[&ids[0]]);
    assert!(text.contains("released 1"), "{text}");
    assert_eq!(held(&svc), 2, "approving one id leaves the others held");
    let log = svc.once_ok();
    assert_eq!(
        group_type(dc, &ou, &ids[0]).await,
        DISTRIBUTION,
        "{}",
        tail(&log)
    );
    for id in &ids[1..] {
        assert_eq!(group_type(dc, &ou, id).await, SECURITY, "{}", tail(&log));
    }
    assert_eq!(held(&svc), 2);
    let listed = approve(&svc, &[]);
    assert!(
        listed.contains(ids[1].as_str()) && listed.contains(ids[2].as_str()),
        "{listed}"
    );
    assert!(!listed.contains(ids[0].as_str()), "{listed}");
    assert_eq!(
        guids(dc, &ou, &ids).await,
        before,
        "conversion keeps the object"
    );
}

/// `soft_delete = "move"`, threshold 1: a `[graph.scope]` typo that puts every group out of
/// scope holds them all; none is moved. Fixing the typo cancels the holds.
#[tokio::test(flavor = "multi_thread")]
async fn a_scope_typo_cannot_move_every_group() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("ds-scope").await;
    let holding = dc.fresh_ou("ds-scope-holding").await;
    let (ids, gs) = groups(0x9d08, 3, "SG-Team");
    let sim = GraphSim::start(vec![], gs, &[]);
    let svc = service(
        &sim,
        dc,
        &ou,
        &format!("soft_delete = \"move\"\nsoft_delete_ou = \"{holding}\"\ndelete_threshold = 1"),
        "",
        "[graph.scope]\ndisplay_name_pattern = \"^SG-\"\n",
    );
    svc.once_ok();
    let before = guids(dc, &ou, &ids).await;

    let config = std::fs::read_to_string(&svc.config).unwrap();
    let typo = config.replace(
        "display_name_pattern = \"^SG-\"",
        "display_name_pattern = \"^GS-\"",
    );
    assert_ne!(config, typo);
    std::fs::write(&svc.config, &typo).unwrap();
    let log = svc.once_ok();
    assert!(log.contains("graph.scope changed"), "{}", tail(&log));
    assert_eq!(held(&svc), 3, "{}", tail(&log));
    assert!(
        dc.groups_in(&holding).await.is_empty(),
        "groups moved despite the threshold:\n{}",
        tail(&log)
    );
    assert_eq!(guids(dc, &ou, &ids).await, before);

    // The typo fixed: every group is back in scope and its hold cancelled; still in place.
    std::fs::write(&svc.config, &config).unwrap();
    let log = svc.once_ok();
    assert_eq!(held(&svc), 0, "{}", tail(&log));
    assert!(dc.groups_in(&holding).await.is_empty());
    assert_eq!(guids(dc, &ou, &ids).await, before);
}
