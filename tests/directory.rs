//! What lands in AD, against a real Samba AD DC: hostile names, ownership and conflicts, the
//! delete threshold, reconciliation of hand edits, and graceful shutdown (TLS and rights:
//! `tests/ad_access.rs`).

mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use common::outcome::usn_snapshot;
use common::samba::{self, SambaDc, attr_first, entry_guid, unique_suffix};
use common::service::{Options, Service, tail};
use common::sim::{GraphSim, oid, user};
use ldap3::{Mod, SearchEntry};
use serde_json::{Value, json};

fn suffix(id: &str) -> &str {
    &id[id.len() - 12..]
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_names_are_written_exactly_and_nothing_else_is_touched() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("hostile").await;
    let users_ou = dc.fresh_ou("hostile-users").await;
    let sids = dc
        .create_users(&users_ou, &format!("ho{}-", unique_suffix()), 2)
        .await;
    let tag = 0x600;
    // Unowned neighbours: one in the target OU, one outside; neither may change.
    dc.add_group(
        &format!("CN=Sentinel,{ou}"),
        vec![("sAMAccountName", &format!("sent{}", unique_suffix())[..19])],
    )
    .await;
    let before_outside = usn_snapshot(dc, &users_ou).await;
    let names: Vec<String> = vec![
        r#"a,b+c"d\e<f>g;h=i"#.into(),
        "#leading hash".into(),
        " padded both ends ".into(),
        "Ünïcödé 日本語 группа 🚀".into(),
        "x".repeat(300),
        "*)(objectClass=*".into(),
        "*".into(),
        r"\2a\29 literal escapes \\".into(),
        "CN=evil,OU=Domain Controllers".into(),
        "trailing backslash \\".into(),
        "tab\tand\nnewline".into(),
        "nul\u{0}byte".into(),
        "=;+<>#,\"".into(),
    ];
    let users = vec![
        common::synced_user(&oid(tag, 900), &sids[0]),
        common::synced_user(&oid(tag, 901), &sids[1]),
    ];
    let groups: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut g = common::security_group(
                &oid(tag, i as u32),
                n,
                vec![user(&oid(tag, 900 + (i as u32 % 2)))],
            );
            g["description"] = json!(format!("desc of {n}"));
            g
        })
        .collect();
    let sim = GraphSim::start(users, groups, &["--page-size", "3"]);
    let svc = Service::new(&sim, dc, &ou);
    svc.once_ok();

    let found = dc.groups_in(&ou).await;
    assert_eq!(
        found.len(),
        names.len() + 1,
        "{:?}",
        found.iter().map(|e| &e.dn).collect::<Vec<_>>()
    );
    for (i, name) in names.iter().enumerate() {
        let id = oid(tag, i as u32);
        let e = dc
            .group_by_anchor(&ou, &format!("Group_{id}"))
            .await
            .unwrap_or_else(|| panic!("missing {name:?}"));
        let cn_name: String = name
            .trim()
            .chars()
            .take(51)
            .collect::<String>()
            .trim_end()
            .to_string();
        assert_eq!(
            attr_first(&e, "cn"),
            Some(format!("{cn_name}_{}", suffix(&id)).as_str()),
            "{name:?}"
        );
        let display: String = name.chars().take(256).collect();
        assert_eq!(
            attr_first(&e, "displayName"),
            Some(display.as_str()),
            "{name:?}"
        );
        assert_eq!(
            attr_first(&e, "description"),
            Some(format!("desc of {name}").as_str())
        );
        let sam = attr_first(&e, "sAMAccountName").unwrap();
        assert!(
            sam.len() <= 20
                && !sam.contains([
                    '"', '/', '\\', '[', ']', ':', ';', '|', '=', ',', '+', '*', '?', '<', '>'
                ]),
            "{sam}"
        );
        assert_eq!(
            dc.member_sids(&e.dn).await,
            BTreeSet::from([sids[i % 2].clone()]),
            "{name:?}"
        );
    }
    let sentinel = dc
        .groups_in(&ou)
        .await
        .into_iter()
        .find(|e| e.dn.starts_with("CN=Sentinel"))
        .unwrap();
    assert!(attr_first(&sentinel, "adminDescription").is_none());
    assert!(
        attr_first(&sentinel, "member").is_none(),
        "the unowned sentinel got members"
    );
    assert_eq!(
        usn_snapshot(dc, &users_ou).await,
        before_outside,
        "objects outside the target OU changed"
    );

    // A second pass changes nothing either.
    let before = usn_snapshot(dc, &ou).await;
    assert!(svc.run(&["resync"]).status.success());
    svc.once_ok();
    assert_eq!(usn_snapshot(dc, &ou).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn unowned_objects_with_our_names_are_conflicts_and_stay_byte_for_byte() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("collide").await;
    let other_ou = dc.fresh_ou("collide-elsewhere").await;
    let tag = 0x700;
    let (same_cn, same_sam, dup_anchor, fine) =
        (oid(tag, 1), oid(tag, 2), oid(tag, 3), oid(tag, 4));
    // 1: an unowned group with exactly our CN and sAMAccountName in the target OU.
    dc.add_group(
        &format!("CN=Collide_{},{ou}", suffix(&same_cn)),
        vec![
            ("sAMAccountName", &format!("Collide_{}", suffix(&same_cn))),
            ("description", "not yours"),
        ],
    )
    .await;
    // 2: an unowned object elsewhere holding our sAMAccountName.
    dc.add_group(
        &format!("CN=Someone Else,{other_ou}"),
        vec![("sAMAccountName", &format!("SamOnly_{}", suffix(&same_sam)))],
    )
    .await;
    // 3: two hand-made objects carrying the same anchor.
    for n in ["Dup One", "Dup Two"] {
        dc.add_group(
            &format!("CN={n},{ou}"),
            vec![
                ("adminDescription", &format!("Group_{dup_anchor}")),
                (
                    "sAMAccountName",
                    &format!("{}{}", n.replace(' ', ""), &unique_suffix()[..8]),
                ),
            ],
        )
        .await;
    }
    // Tests run in parallel on one DC: snapshot the two OUs this one uses.
    let snapshot = || async {
        let mut s = usn_snapshot(dc, &ou).await;
        s.extend(usn_snapshot(dc, &other_ou).await);
        s
    };
    let before = snapshot().await;
    let groups = vec![
        common::security_group(&same_cn, "Collide", vec![]),
        common::security_group(&same_sam, "SamOnly", vec![]),
        common::security_group(&dup_anchor, "Duplicated", vec![]),
        common::security_group(&fine, "Fine", vec![]),
    ];
    let sim = GraphSim::start(vec![], groups, &[]);
    let svc = Service::new(&sim, dc, &ou);
    let out = svc.run(&["run", "--once"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "conflicts are dead letters: {}",
        tail(&log)
    );

    // Only the one clean group was created; every pre-existing object is unchanged.
    let after = snapshot().await;
    for (dn, usn) in &before {
        assert_eq!(after.get(dn), Some(usn), "{dn} was modified");
    }
    let new: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(
        new[0].starts_with(&format!("cn=fine_{}", suffix(&fine))),
        "{new:?}"
    );

    let classes = common::outcome::dead_letters(&svc);
    assert!(classes[&same_cn].contains("conflict (name)"), "{classes:?}");
    assert!(
        classes[&same_sam].contains("conflict (sam_account_name)"),
        "{classes:?}"
    );
    assert!(
        classes[&dup_anchor].contains("conflict (duplicate_anchor)"),
        "{classes:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_threshold_holds_a_mass_delete_until_approved() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("threshold").await;
    let tag = 0x800;
    let groups: Vec<Value> = (0..4)
        .map(|i| common::security_group(&oid(tag, i), &format!("T{i}"), vec![]))
        .collect();
    let sim = GraphSim::start(vec![], groups, &[]);
    let svc = Service::with(
        dc,
        &ou,
        Options {
            ad_extra: "delete_threshold = 2".into(),
            tail: "[sync]\nmin_backoff = \"100ms\"\nmax_backoff = \"1s\"\n".into(),
            ..Options::new(dc, &sim)
        },
    );
    svc.once_ok();
    assert_eq!(dc.groups_in(&ou).await.len(), 4);
    for i in 0..3 {
        sim.delete_group(&oid(tag, i), true).await;
    }
    svc.once_ok();
    assert_eq!(
        dc.groups_in(&ou).await.len(),
        4,
        "3 deletes > threshold 2 must be held"
    );
    let listed = svc.run(&["approve-deletes"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains("3 delete(s) held"), "{text}");
    let s: Value = serde_json::from_slice(&svc.run(&["queue", "status", "--json"]).stdout).unwrap();
    assert_eq!(s["held_deletes"], 3);
    assert!(svc.run(&["approve-deletes", "--all"]).status.success());
    svc.once_ok();
    let left = dc.groups_in(&ou).await;
    assert_eq!(left.len(), 1);
    assert_eq!(attr_first(&left[0], "displayName"), Some("T3"));
}

#[tokio::test(flavor = "multi_thread")]
async fn hand_edits_are_reverted_by_reconciliation_and_sigterm_stops_cleanly() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("drift").await;
    let users_ou = dc.fresh_ou("drift-users").await;
    let sids = dc
        .create_users(&users_ou, &format!("dr{}-", unique_suffix()), 3)
        .await;
    let tag = 0xa00;
    let users: Vec<Value> = (0..3)
        .map(|i| common::synced_user(&oid(tag, 100 + i), &sids[i as usize]))
        .collect();
    let g = oid(tag, 1);
    let mut group = common::security_group(
        &g,
        "Drifty",
        vec![user(&oid(tag, 100)), user(&oid(tag, 101))],
    );
    group["description"] = json!("official");
    let sim = GraphSim::start(users, vec![group], &[]);
    let svc = Service::with(
        dc,
        &ou,
        Options {
            tail: "[sync]\nreconcile_interval = \"2s\"\nmin_backoff = \"100ms\"\n".into(),
            ..Options::new(dc, &sim)
        },
    );
    let mut child = svc.spawn();
    let want: BTreeSet<String> = [sids[0].clone(), sids[1].clone()].into();
    let e = wait_converged(dc, &ou, &g, &want, "the initial write").await;
    // Hand edits: description, an extra member, a removed member.
    let mut ldap = dc.connect().await;
    ldap.modify(
        &e.dn,
        vec![
            Mod::Replace("description", HashSet::from(["hand edit"])),
            Mod::Add(
                "member",
                HashSet::from([format!("<SID={}>", sids[2]).as_str()]),
            ),
            Mod::Delete(
                "member",
                HashSet::from([format!("<SID={}>", sids[0]).as_str()]),
            ),
        ],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    wait_converged(
        dc,
        &ou,
        &g,
        &want,
        "reconciliation to revert the hand edits",
    )
    .await;

    // SIGTERM: exits 0 with a "stopped" line. The deadline only catches a hang (a clean stop
    // takes well under a second; 120 s leaves room for a loaded 2-core machine), it measures
    // nothing.
    unsafe_sigterm(child.id());
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit 120 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status:?}");
    let log = std::fs::read_to_string(svc.dir.path().join("run.log")).unwrap();
    assert!(
        log.contains("periodic reconciliation queued"),
        "{}",
        tail(&log)
    );
    assert!(log.contains("\"message\":\"stopped\""), "{}", tail(&log));
}

async fn wait_converged(
    dc: &SambaDc,
    ou: &str,
    g: &str,
    want: &BTreeSet<String>,
    what: &str,
) -> SearchEntry {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(e) = dc.group_by_anchor(ou, &format!("Group_{g}")).await {
            let members = dc.member_sids(&e.dn).await;
            if attr_first(&e, "description") == Some("official") && &members == want {
                return e;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn unsafe_sigterm(pid: u32) {
    let ok = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn placement_rules_templates_and_soft_delete_actions() {
    let dc = samba::shared();
    let sec_ou = dc.fresh_ou("rules-sec").await;
    let m365_ou = dc.fresh_ou("rules-m365").await;
    let holding_ou = dc.fresh_ou("rules-holding").await;
    let tag = 0xc00;
    let (sec, m365, soft, convert) = (oid(tag, 1), oid(tag, 2), oid(tag, 3), oid(tag, 4));
    let groups = vec![
        common::security_group(&sec, "Security One", vec![]),
        json!({"id": m365, "displayName": "Team Site", "groupTypes": ["Unified"], "securityEnabled": false, "mailEnabled": true}),
        common::security_group(&soft, "Soon Soft Deleted", vec![]),
        common::security_group(&convert, "Soon Converted", vec![]),
    ];
    let sim = GraphSim::start(vec![], groups, &[]);
    let config = |extra: String| Options {
        ad_extra: extra,
        ..Options::new(dc, &sim)
    };
    let rules = format!(
        "target_ou_m365 = \"{m365_ou}\"\nsoft_delete = \"move\"\nsoft_delete_ou = \"{holding_ou}\""
    );
    let svc = Service::with(dc, &sec_ou, config(rules.clone()));
    svc.once_ok();
    assert_eq!(dc.groups_in(&sec_ou).await.len(), 3);
    let m = dc.groups_in(&m365_ou).await;
    assert_eq!(m.len(), 1);
    assert_eq!(
        attr_first(&m[0], "cn"),
        Some(format!("Team Site_{}", suffix(&m365)).as_str())
    );

    // Soft delete with soft_delete = "move": moved to the holding OU, same object.
    let before = dc
        .group_by_anchor(&sec_ou, &format!("Group_{soft}"))
        .await
        .unwrap();
    sim.delete_group(&soft, false).await;
    svc.once_ok();
    let moved = dc
        .group_by_anchor(&holding_ou, &format!("Group_{soft}"))
        .await
        .expect("moved to the holding OU");
    // objectGUID is binary: compare the decoded GUIDs (raw `attrs` would be None == None).
    assert_eq!(
        entry_guid(&moved).expect("objectGUID"),
        entry_guid(&before).expect("objectGUID"),
        "the move kept the object"
    );
    // Restored: it moves back.
    sim.restore_group(&soft).await;
    svc.once_ok();
    assert!(
        dc.group_by_anchor(&sec_ou, &format!("Group_{soft}"))
            .await
            .is_some(),
        "restored group moved back"
    );
    assert!(
        dc.group_by_anchor(&holding_ou, &format!("Group_{soft}"))
            .await
            .is_none()
    );

    // A new CN template renames every group in place; a new rule moves M365 groups.
    let rules2 = format!(
        "cn_template = \"Group_{{id}}\"\nsoft_delete = \"convert_to_distribution\"\nprevious_ous = [\"{m365_ou}\", \"{holding_ou}\"]"
    );
    let svc2 = Service::with(dc, &sec_ou, config(rules2));
    std::fs::remove_dir_all(svc2.state_dir()).ok();
    svc2.once_ok(); // fresh state: full round, reconciles names and placement
    let all = dc.groups_in(&sec_ou).await;
    let cns: BTreeSet<String> = all
        .iter()
        .map(|e| attr_first(e, "cn").unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = [&sec, &m365, &soft, &convert]
        .iter()
        .map(|id| format!("Group_{id}"))
        .collect();
    assert_eq!(
        cns, want,
        "renamed by the template and M365 group moved back to target_ou"
    );
    assert!(dc.groups_in(&m365_ou).await.is_empty());

    // soft_delete = "convert_to_distribution".
    sim.delete_group(&convert, false).await;
    svc2.once_ok();
    let c = dc
        .group_by_anchor(&sec_ou, &format!("Group_{convert}"))
        .await
        .unwrap();
    assert_eq!(attr_first(&c, "groupType"), Some("8"));
}
