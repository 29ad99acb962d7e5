//! Durability and queue operations against real Samba AD: a stream of ≥ 10,000 changes with
//! ≥ 20 SIGKILLs, a 30 s Samba outage, a full disk, replay, and bad state directories.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::compare::{self, Expect, anchor};
use common::samba::{self, SambaDc, attr_first};
use common::service::{Options, Service, tail};
use common::sim::{GraphSim, oid};
use common::stream::{GROUPS, Lcg, Stream, acks};
use common::wait;
use ldap3::Scope;
use serde_json::{Value, json};

/// Waits (polling every 250 ms) for `f`, showing `svc`'s log on timeout.
async fn wait_for<F: AsyncFnMut() -> bool>(svc: &Service, what: &str, secs: u64, f: F) {
    wait::until(what, secs, Duration::from_millis(250), Some(svc), f).await
}

/// displayName of every group under `ou` (one search; safe while groups are being renamed).
async fn display_names(dc: &SambaDc, ou: &str) -> Vec<String> {
    let mut ldap = dc.connect().await;
    let (entries, _) = ldap
        .search(
            ou,
            Scope::Subtree,
            "(objectClass=group)",
            vec!["displayName"],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    entries
        .into_iter()
        .map(ldap3::SearchEntry::construct)
        .filter_map(|e| attr_first(&e, "displayName").map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_changes_and_twenty_sigkills_lose_nothing() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("stream").await;
    let stream = Stream::new(dc).await;
    let sim = GraphSim::start(
        stream.users.clone(),
        stream.groups.clone(),
        &["--page-size", "4", "--member-slice", "5"],
    );
    // Every groups delta page is answered 100 ms late: a round spans seconds, so the kills
    // below, which wait for a round in flight, land inside one.
    sim.faults(json!({"delay": {"ms": 100, "path": "/v1.0/groups/delta"}}))
        .await;
    let svc = Service::new(&sim, dc, &ou);

    let mut rng = Lcg(0xC0FFEE);
    let mut changes = 0usize;
    let mut kill_points = Vec::new();
    while changes < 10_000 || kill_points.len() < 20 {
        let mut child = svc.spawn();
        // The process first finishes the round the previous kill interrupted.
        wait::until(
            "a completed poll cycle",
            120,
            Duration::from_millis(20),
            Some(&svc),
            async || {
                wait::status(&svc)
                    .await
                    .is_some_and(|s| !s["last_successful_round_ms"].is_null())
            },
        )
        .await;
        // Then bursts of tenant changes, which the next round reads, until the kill lands.
        changes += stream.kill_mid_round_after_ack(&sim, &svc, &mut rng).await;
        child.kill().unwrap();
        child.wait().unwrap();
        kill_points.push(sim.requests().await.len());
    }
    sim.clear_faults().await;
    // The first run finishes the round the last kill interrupted (a snapshot from before the
    // last burst, maybe); the second starts from its deltaLink, after every change.
    svc.once_ok();
    svc.once_ok();
    let kills = kill_points.len();
    common::compare::assert_ad_equals_tenant(
        &sim,
        dc,
        &ou,
        // Every name this test gives a group ("Stream <n>", "Stream r<n>") yields the same
        // sAMAccountName, so which one AD created a group with does not matter.
        &Expect::members(&stream.sid_of),
        GROUPS as usize,
        &format!("after {kills} SIGKILLs"),
    )
    .await;

    let requests = sim.requests().await;
    let mid_round = kill_points
        .iter()
        .filter(|k| wait::killed_mid_round(&requests, **k))
        .count();
    let (applied, reapplied) = acks(&wait::run_log(&svc));
    eprintln!(
        "stream: {changes} tenant changes, {kills} SIGKILLs ({mid_round} mid-round), \
         {applied} queued changes acked, {reapplied} re-applied after a crash"
    );
    assert!(kills >= 20 && changes >= 10_000);
    assert!(mid_round >= 1, "no SIGKILL landed mid-round");
    assert!(
        reapplied > 0,
        "no change was re-applied: no SIGKILL hit the window between apply and ack"
    );
}

/// The last `/delta` request graph-sim answered.
fn last_delta_request(requests: &[Value]) -> Value {
    requests
        .iter()
        .rfind(|r| r["path"].as_str().unwrap().ends_with("/delta"))
        .expect("a delta request")
        .clone()
}

/// Loopback IP of the DC the outage test starts, stops and restarts (not the shared one).
const OUTAGE_IP: &str = "127.0.0.3";

#[tokio::test(flavor = "multi_thread")]
async fn samba_down_for_30_seconds_mid_stream_gives_no_dead_letters() {
    // A DC of its own: stopping the shared one would disturb the other tests. It is stopped
    // when the test ends, passed or panicked, so no Samba outlives the test run.
    let (_stop_dc, dc) = SambaDc::start_owned(OUTAGE_IP, &[]);
    let ou = dc.fresh_ou("outage").await;
    let tag = 0xe00;
    let groups: Vec<Value> = (0..10).map(|g| json!({"id": oid(tag, g), "displayName": format!("Out {g}"), "securityEnabled": true})).collect();
    let sim = GraphSim::start(vec![], groups, &[]);
    let svc = Service::with(
        &dc,
        &ou,
        Options {
            tail: "[sync]\nmin_backoff = \"200ms\"\nmax_backoff = \"5s\"\nmax_attempts = 4\n"
                .into(),
            ..Options::new(&dc, &sim)
        },
    );
    let mut child = svc.spawn();
    wait_for(&svc, "the initial write", 30, async || {
        display_names(&dc, &ou).await.len() == 10
    })
    .await;

    samba::stop(OUTAGE_IP);
    let down = Instant::now();
    for g in 0..10 {
        sim.put_group(
            &oid(tag, g),
            json!({"displayName": format!("Out {g} during outage")}),
        )
        .await;
    }
    for g in 10..15 {
        sim.put_group(
            &oid(tag, g),
            json!({"displayName": format!("Out {g} new"), "securityEnabled": true}),
        )
        .await;
    }
    // While AD is down: not ready, changes wait in the queue.
    wait_for(&svc, "readyz to report AD down", 40, async || {
        wait::http_get(svc.http_port, "/readyz")
            .await
            .is_some_and(|(code, body)| code == 503 && body.contains("AD"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down.elapsed())).await;
    SambaDc::start_with(OUTAGE_IP, &["--keep-data"]); // panics with the script's output
    let no_users = BTreeMap::new();
    // sAMAccountName is set at creation (before the outage renames) and kept.
    let expect =
        Expect::members(&no_users).created_as((0..10).map(|g| (oid(tag, g), format!("Out {g}"))));
    compare::wait_ad_equals_tenant(&sim, &dc, &ou, &expect, 15, 90, "after the outage").await;
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    // A clean stop leaves the queue's counts for the next start, which then walks no tree.
    let db = sled::open(svc.state_dir()).unwrap();
    let saved = db
        .open_tree("meta")
        .unwrap()
        .get(b"counts/at-close")
        .unwrap();
    assert!(saved.is_some(), "no counts saved by the stop");
    drop(db);
    let s: Value = serde_json::from_slice(&svc.run(&["queue", "status", "--json"]).stdout).unwrap();
    assert_eq!(s["dead_letters"], 0, "{s}");
    assert_eq!(s["depth"], 0, "{s}");
    let log = std::fs::read_to_string(svc.dir.path().join("run.log")).unwrap();
    assert!(log.contains("retrying"), "{}", tail(&log));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_stops_pages_reports_unready_and_resumes() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("diskfull").await;
    let tag = 0xf00;
    let sim = GraphSim::start(
        vec![],
        vec![json!({"id": oid(tag, 0), "displayName": "Disk 0", "securityEnabled": true})],
        &[],
    );
    let svc = Service::new(&sim, dc, &ou);
    // The state directory on a small tmpfs of its own.
    let mnt = svc.dir.path().join("state");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a tmpfs needs root");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let mut child = svc.spawn();
    wait_for(&svc, "the first group", 30, async || {
        dc.groups_in(&ou).await.len() == 1
    })
    .await;
    wait_for(&svc, "ready", 30, async || {
        wait::http_get(svc.http_port, "/readyz")
            .await
            .is_some_and(|(c, _)| c == 200)
    })
    .await;

    // Fill the disk, then change the tenant.
    let filler = mnt.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=64"])
        .arg(format!("of={}", filler.display()))
        .output();
    for g in 1..20 {
        let big_description = "x".repeat(400);
        sim.put_group(&oid(tag, g), json!({"displayName": format!("Disk {g}"), "description": big_description, "securityEnabled": true})).await;
    }
    wait_for(&svc, "readyz to report the state store", 60, async || {
        wait::http_get(svc.http_port, "/readyz")
            .await
            .is_some_and(|(c, b)| c == 503 && b.contains("state store"))
    })
    .await;
    let during = dc.groups_in(&ou).await.len();
    assert!(during < 20, "pages were taken although the disk was full");
    // The page whose commit failed was the last one asked for. The tenant moves on while the
    // disk stays full.
    let failed = last_delta_request(&sim.requests().await);
    let full_until = sim.requests().await.len();
    sim.put_group(
        &oid(tag, 0),
        json!({"displayName": "Disk 0 renamed while full"}),
    )
    .await;

    // Space returns: the service resumes by itself and nothing is lost.
    std::fs::remove_file(&filler).unwrap();
    wait_for(&svc, "all groups after space returned", 90, async || {
        dc.groups_in(&ou).await.len() == 20
    })
    .await;
    // The cursor did not move past the unpersisted page: the service asks for that very page
    // again (not for the link the failed page returned).
    let mut again = None;
    wait_for(
        &svc,
        "the failed page to be asked for again",
        60,
        async || {
            again = sim.requests().await[full_until..]
                .iter()
                .find(|r| r["path"] == failed["path"])
                .cloned();
            again.is_some()
        },
    )
    .await;
    assert_eq!(
        again.unwrap()["query"],
        failed["query"],
        "the cursor advanced past a page that was never persisted (failed: {failed})"
    );
    let no_users = BTreeMap::new();
    let expect = Expect::members(&no_users).created_as([(oid(tag, 0), "Disk 0".to_string())]);
    compare::wait_ad_equals_tenant(&sim, dc, &ou, &expect, 20, 60, "after space returned").await;
    wait_for(&svc, "ready again", 60, async || {
        wait::http_get(svc.http_port, "/readyz")
            .await
            .is_some_and(|(c, _)| c == 200)
    })
    .await;
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let log = std::fs::read_to_string(svc.dir.path().join("run.log")).unwrap();
    assert!(
        log.contains("state store reopened and writable"),
        "{}",
        tail(&log)
    );
    assert!(!log.contains("panicked"), "{}", tail(&log));
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_restores_hand_deleted_groups_and_fixed_dead_letters() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("replay").await;
    let tag = 0x1100;
    let (a, b, blocked) = (oid(tag, 1), oid(tag, 2), oid(tag, 3));
    let groups = vec![
        json!({"id": a, "displayName": "Replay A", "securityEnabled": true}),
        json!({"id": b, "displayName": "Replay B", "securityEnabled": true}),
        json!({"id": blocked, "displayName": "Blocked", "securityEnabled": true}),
    ];
    // An unowned object holds the name "Blocked" needs: a dead letter until it is removed.
    let blocker = format!("CN=Blocked_{},{ou}", &blocked[blocked.len() - 12..]);
    let mut ldap = dc.connect().await;
    ldap.add(
        &blocker,
        vec![("objectClass", std::collections::HashSet::from(["group"]))],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    let sim = GraphSim::start(vec![], groups, &[]);
    let svc = Service::new(&sim, dc, &ou);
    let out = svc.run(&["run", "--once"]);
    assert_eq!(out.status.code(), Some(1), "the conflict is a dead letter");
    let started = std::time::SystemTime::now() - Duration::from_secs(60);

    // An admin deletes the written groups by hand (or restores AD from an old backup).
    for id in [&a, &b] {
        let e = dc.group_by_anchor(&ou, &anchor(id)).await.unwrap();
        ldap.delete(&e.dn).await.unwrap().success().unwrap();
    }
    svc.once_ok(); // nothing changed in the cloud: nothing happens
    assert_eq!(dc.groups_in(&ou).await.len(), 1);
    let since = humantime::format_rfc3339(started).to_string();
    let out = svc.run(&["replay", "--since", &since]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 group(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    svc.once_ok();
    assert!(dc.group_by_anchor(&ou, &anchor(&a)).await.is_some());
    assert!(dc.group_by_anchor(&ou, &anchor(&b)).await.is_some());

    // The cause of the dead letter is fixed; replay --dead applies it.
    ldap.delete(&blocker).await.unwrap().success().unwrap();
    let out = svc.run(&["replay", "--dead"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("re-queued"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    svc.once_ok();
    assert!(dc.group_by_anchor(&ou, &anchor(&blocked)).await.is_some());
    let s: Value = serde_json::from_slice(&svc.run(&["queue", "status", "--json"]).stdout).unwrap();
    assert_eq!(s["dead_letters"], 0);
    // Nothing pending; `queue show` finds an applied change in the journal.
    let listed: Vec<Value> =
        serde_json::from_slice(&svc.run(&["queue", "list", "--json"]).stdout).unwrap();
    assert!(listed.is_empty(), "{listed:?}");

    // --group and --from: delete one group by hand again, replay only that group.
    let e = dc.group_by_anchor(&ou, &anchor(&a)).await.unwrap();
    ldap.delete(&e.dn).await.unwrap().success().unwrap();
    let out = svc.run(&["replay", "--group", &a]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 group(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let queued: Vec<Value> =
        serde_json::from_slice(&svc.run(&["queue", "list", "--json"]).stdout).unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0]["change"]["group_id"], a.as_str());
    let seq = queued[0]["seq"].as_u64().unwrap();
    svc.once_ok();
    assert!(dc.group_by_anchor(&ou, &anchor(&a)).await.is_some());
    let shown: Value =
        serde_json::from_slice(&svc.run(&["queue", "show", &seq.to_string()]).stdout).unwrap();
    assert_eq!(shown["state"], "journal", "{shown}");

    // --from SEQ: journal entries from SEQ on are re-applied, earlier ones are not. An admin
    // edits both groups by hand; SEQ is A's entry, the last one, so only A is rewritten.
    for id in [&a, &b] {
        let e = dc.group_by_anchor(&ou, &anchor(id)).await.unwrap();
        let edited = std::collections::HashSet::from(["edited by hand"]);
        ldap.modify(&e.dn, vec![ldap3::Mod::Replace("displayName", edited)])
            .await
            .unwrap()
            .success()
            .unwrap();
    }
    let out = svc.run(&["replay", "--from", &seq.to_string()]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("re-queued a reconcile of 1 group(s)\n  {a}\n")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    svc.once_ok();
    let want = compare::desired_state(&sim, dc, &Expect::members(&BTreeMap::new())).await;
    let have = compare::actual_state(dc, &ou).await;
    assert_eq!(have[&anchor(&a)], want[&anchor(&a)], "A was not rewritten");
    let b_edited = compare::Group {
        display_name: "edited by hand".into(),
        ..want[&anchor(&b)].clone()
    };
    assert_eq!(
        have[&anchor(&b)],
        b_edited,
        "B (journal entries before --from only) was re-applied"
    );
    let missing = svc.run(&["queue", "show", "999999999999"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_state_directories_are_refused_clearly() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("badstate").await;
    let sim = GraphSim::start(vec![], vec![], &[]);
    let svc = Service::new(&sim, dc, &ou);
    let state = svc.state_dir();

    // A foreign directory.
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("important.txt"), "not ours").unwrap();
    let out = svc.run(&["queue", "status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("not an entra-writeback database") && err.contains("important.txt"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(state.join("important.txt")).unwrap(),
        "not ours"
    );
    std::fs::remove_file(state.join("important.txt")).unwrap();

    // Locked by a running instance.
    svc.once_ok();
    let mut child = svc.spawn();
    // The store is opened (and locked) before the HTTP server starts.
    wait_for(
        &svc,
        "the running instance to serve /healthz",
        30,
        async || {
            wait::http_get(svc.http_port, "/healthz")
                .await
                .is_some_and(|(c, _)| c == 200)
        },
    )
    .await;
    let out = svc.run(&["queue", "status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("in use by another entra-writeback process"),
        "{err}"
    );
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    child.wait().unwrap();

    // A damaged database file.
    let db = state.join("db");
    let mut bytes = std::fs::read(&db).unwrap();
    for b in bytes.iter_mut().take(4096) {
        *b ^= 0x5a;
    }
    std::fs::write(&db, bytes).unwrap();
    let out = svc.run(&["queue", "status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("corrupt") || err.contains("not an entra-writeback database"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
