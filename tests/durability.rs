//! Durability and queue operations against real Samba AD: a stream of ≥ 10,000 changes with
//! ≥ 20 SIGKILLs, a 30 s Samba outage, a full disk, replay, and bad state directories.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use common::samba::{self, SambaDc, attr_first, unique_suffix};
use common::service::{Options, Service, tail};
use common::sim::{GraphSim, oid, user};
use ldap3::Scope;
use serde_json::{Value, json};

thread_local! {
    static LOG: std::cell::RefCell<Option<std::path::PathBuf>> = const { std::cell::RefCell::new(None) };
}

fn show_log_on_timeout(svc: &Service) {
    LOG.with(|l| *l.borrow_mut() = Some(svc.dir.path().join("run.log")));
}

/// A deterministic pseudo-random sequence (no extra crate needed).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
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

async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .ok()?;
    Some((r.status().as_u16(), r.text().await.ok()?))
}

async fn wait_until<F: AsyncFnMut() -> bool>(what: &str, secs: u64, mut f: F) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        if Instant::now() >= deadline {
            // The service's log, if the current test has one, explains most timeouts.
            if let Some(log) = LOG.with(|l| l.borrow().clone()) {
                eprintln!(
                    "--- service log ---\n{}",
                    tail(&std::fs::read_to_string(log).unwrap_or_default())
                );
            }
            panic!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_changes_and_twenty_sigkills_lose_nothing() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("stream").await;
    let users_ou = dc.fresh_ou("stream-users").await;
    let tag = 0xd00;
    const USERS: usize = 200;
    const GROUPS: u32 = 60;
    let sids = dc
        .create_users(&users_ou, &format!("st{}-", unique_suffix()), USERS)
        .await;
    let uid = |i: u64| oid(tag, 1000 + i as u32);
    let sid_of: BTreeMap<String, String> = (0..USERS)
        .map(|i| (uid(i as u64), sids[i].clone()))
        .collect();
    let users: Vec<Value> = (0..USERS)
        .map(|i| common::synced_user(&uid(i as u64), &sids[i]))
        .collect();
    let groups: Vec<Value> = (0..GROUPS)
        .map(|g| json!({"id": oid(tag, g), "displayName": format!("Stream {g}"), "securityEnabled": true,
                        "groupTypes": [], "members": (0..10).map(|k| user(&uid(((g * 3 + k) as u64) % USERS as u64))).collect::<Vec<_>>()}))
        .collect();
    let sim = GraphSim::start(users, groups, &["--page-size", "4", "--member-slice", "5"]);
    let svc = Service::new(&sim, dc, &ou);

    let mut rng = Lcg(0xC0FFEE);
    let mut changes = 0usize;
    let mut kills = 0;
    while changes < 10_000 || kills < 20 {
        let mut child = svc.spawn();
        // A burst of tenant changes while the service runs.
        let ops: Vec<Value> = (0..500)
            .map(|_| {
                let g = oid(tag, rng.next(GROUPS as u64) as u32);
                match rng.next(10) {
                    0 => json!({"op": "put_group", "id": g, "properties": {"displayName": format!("Stream r{}", rng.next(1_000_000))}}),
                    1..=5 => json!({"op": "members", "id": g, "add": [user(&uid(rng.next(USERS as u64)))], "remove": []}),
                    _ => json!({"op": "members", "id": g, "add": [], "remove": [user(&uid(rng.next(USERS as u64)))]}),
                }
            })
            .collect();
        changes += ops.len();
        sim.bulk(ops).await;
        tokio::time::sleep(Duration::from_millis(200 + rng.next(1800))).await;
        child.kill().unwrap(); // SIGKILL, at a random moment
        child.wait().unwrap();
        kills += 1;
    }
    svc.once_ok();
    let want = common::desired_state(&sim, &sid_of).await;
    let have = common::actual_state(dc, &ou).await;
    assert_eq!(have.len(), GROUPS as usize);
    assert_eq!(have, want, "AD differs from the tenant after {kills} kills");

    // How many queued changes were applied more than once (their ack died with the process).
    let log = std::fs::read_to_string(svc.dir.path().join("run.log")).unwrap();
    let mut seen = BTreeSet::new();
    let (mut applied, mut reapplied) = (0, 0);
    for line in log.lines().filter(|l| l.contains("\"message\":\"acked\"")) {
        let v: Value = serde_json::from_str(line).unwrap();
        for seq in v["seqs"]
            .as_str()
            .unwrap()
            .trim_matches(['[', ']'])
            .split(", ")
            .filter(|s| !s.is_empty())
        {
            applied += 1;
            if !seen.insert(seq.to_string()) {
                reapplied += 1;
            }
        }
    }
    eprintln!(
        "stream: {changes} tenant changes, {kills} SIGKILLs, {applied} queued changes acked, {reapplied} re-applied after a crash"
    );
    assert!(kills >= 20 && changes >= 10_000);
}

/// Loopback IP of the DC the outage test starts, stops and restarts (not the shared one).
const OUTAGE_IP: &str = "127.0.0.3";

/// Stops the `deploy/samba-ad.sh` instance on this IP when dropped (also on panic).
struct StopDcOnDrop(&'static str);

impl Drop for StopDcOnDrop {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/samba-ad.sh");
        let _ = Command::new("bash")
            .args([script, "stop", "--ip", self.0])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn samba_down_for_30_seconds_mid_stream_gives_no_dead_letters() {
    // A DC of its own: stopping the shared one would disturb the other tests. It is stopped
    // when the test ends, passed or panicked, so no Samba outlives the test run.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/samba-ad.sh");
    let dc = SambaDc::start(OUTAGE_IP);
    let _stop_dc = StopDcOnDrop(OUTAGE_IP);
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
    show_log_on_timeout(&svc);
    let mut child = svc.spawn();
    wait_until("the initial write", 30, async || {
        display_names(&dc, &ou).await.len() == 10
    })
    .await;

    assert!(
        Command::new("bash")
            .args([script, "stop", "--ip", OUTAGE_IP])
            .status()
            .unwrap()
            .success()
    );
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
    wait_until("readyz to report AD down", 40, async || {
        http_get(svc.http_port, "/readyz")
            .await
            .is_some_and(|(code, body)| code == 503 && body.contains("AD"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down.elapsed())).await;
    let restart = Command::new("bash")
        .args([script, "start", "--ip", OUTAGE_IP, "--keep-data"])
        .output()
        .unwrap();
    assert!(
        restart.status.success(),
        "{}",
        String::from_utf8_lossy(&restart.stderr)
    );
    wait_until("AD to converge after the outage", 90, async || {
        let names = display_names(&dc, &ou).await;
        names.len() == 15
            && names
                .iter()
                .all(|n| n.contains("during outage") || n.ends_with("new"))
    })
    .await;
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
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
    wait_until("the first group", 30, async || {
        dc.groups_in(&ou).await.len() == 1
    })
    .await;
    wait_until("ready", 30, async || {
        http_get(svc.http_port, "/readyz")
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
    wait_until("readyz to report the state store", 60, async || {
        http_get(svc.http_port, "/readyz")
            .await
            .is_some_and(|(c, b)| c == 503 && b.contains("state store"))
    })
    .await;
    let during = dc.groups_in(&ou).await.len();
    assert!(during < 20, "pages were taken although the disk was full");

    // Space returns: the service resumes by itself and nothing is lost.
    std::fs::remove_file(&filler).unwrap();
    wait_until("all groups after space returned", 90, async || {
        dc.groups_in(&ou).await.len() == 20
    })
    .await;
    wait_until("ready again", 60, async || {
        http_get(svc.http_port, "/readyz")
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
        let e = dc
            .group_by_anchor(&ou, &format!("Group_{id}"))
            .await
            .unwrap();
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
    assert!(
        dc.group_by_anchor(&ou, &format!("Group_{a}"))
            .await
            .is_some()
    );
    assert!(
        dc.group_by_anchor(&ou, &format!("Group_{b}"))
            .await
            .is_some()
    );

    // The cause of the dead letter is fixed; replay --dead applies it.
    ldap.delete(&blocker).await.unwrap().success().unwrap();
    let out = svc.run(&["replay", "--dead"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("re-queued"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    svc.once_ok();
    assert!(
        dc.group_by_anchor(&ou, &format!("Group_{blocked}"))
            .await
            .is_some()
    );
    let s: Value = serde_json::from_slice(&svc.run(&["queue", "status", "--json"]).stdout).unwrap();
    assert_eq!(s["dead_letters"], 0);
    // Nothing pending; `queue show` finds an applied change in the journal.
    let listed: Vec<Value> =
        serde_json::from_slice(&svc.run(&["queue", "list", "--json"]).stdout).unwrap();
    assert!(listed.is_empty(), "{listed:?}");

    // --group and --from: delete one group by hand again, replay only that group.
    let e = dc
        .group_by_anchor(&ou, &format!("Group_{a}"))
        .await
        .unwrap();
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
    assert!(
        dc.group_by_anchor(&ou, &format!("Group_{a}"))
            .await
            .is_some()
    );
    let shown: Value =
        serde_json::from_slice(&svc.run(&["queue", "show", &seq.to_string()]).stdout).unwrap();
    assert_eq!(shown["state"], "journal", "{shown}");
    let out = svc.run(&["replay", "--from", &seq.to_string()]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("re-queued a reconcile of"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
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
    tokio::time::sleep(Duration::from_millis(800)).await;
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
