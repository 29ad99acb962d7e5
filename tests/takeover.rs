//! Taking over groups that Microsoft's writeback wrote, against real Samba AD: groups created
//! (by the test's administrator LDAP client) exactly as Connect Sync v1/v2 and Cloud Sync write
//! them are managed in place. `plan` lists the changes and writes nothing; after the service's
//! rounds every objectGUID, sAMAccountName and DN is unchanged (the CN is kept unless
//! `rename_taken_over = true`), members and attributes match the cloud, nothing is created twice.
//! A second writer still reverting a group is detected, the group frozen until `approve-writes`.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use common::outcome::{expect_exit, usn_snapshot};
use common::samba::{self, SambaDc, attr_first, entry_guid, unique_suffix};
use common::service::{Options, Service};
use common::sim::{GraphSim, oid, user};
use common::wait::{self, http_get, run_log, until};
use ldap3::{Mod, SearchEntry};
use serde_json::{Value, json};

/// How another tool wrote a group.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Writer {
    /// Connect Sync v1: universal distribution, `adminDescription` only.
    ConnectV1,
    /// Connect Sync v2 writing a security group.
    ConnectV2,
    /// Cloud Sync: universal security, `adminDescription` and `msDS-ExternalDirectoryObjectId`,
    /// no sAMAccountName (AD generates one).
    CloudSync,
}

/// One group as the other tool left it in AD, and its cloud group.
struct Legacy {
    id: String,
    writer: Writer,
    /// The CN the other tool chose.
    cn: String,
    /// The cloud group.
    cloud: Value,
    /// Indexes (into the tenant's users) of the members AD has.
    ad_members: Vec<usize>,
    /// The description the other tool left, if any.
    ad_description: Option<&'static str>,
}

/// The last 12 characters of an object id (Connect's and Cloud Sync's CN suffix).
fn last12(id: &str) -> &str {
    &id[id.len() - 12..]
}

fn members(users: &[String], which: &[usize]) -> Vec<Value> {
    which.iter().map(|&i| user(&users[i])).collect()
}

/// Four groups as the three writers leave them: both Connect CN styles (one whose cloud group
/// was renamed since, so its CN no longer matches any template), a v2 security group with a
/// hand-written description, and a Cloud Sync group with a display name over 51 characters.
fn legacy_groups(tag: u32, users: &[String]) -> Vec<Legacy> {
    let id = |n| oid(tag, n);
    let (a, b, c, d) = (id(1), id(2), id(3), id(4));
    let long = "Finance Controlling and Reporting Working Group EMEA North";
    vec![
        Legacy {
            cn: format!("Group_{a}"),
            cloud: json!({"id": a, "displayName": "Team Site", "groupTypes": ["Unified"],
                          "securityEnabled": false, "mailEnabled": true, "members": members(users, &[0, 1])}),
            id: a,
            writer: Writer::ConnectV1,
            ad_members: vec![0, 3],
            ad_description: None,
        },
        Legacy {
            cn: format!("Old Marketing_{}", last12(&b)),
            cloud: json!({"id": b, "displayName": "Marketing", "groupTypes": ["Unified"],
                          "securityEnabled": false, "mailEnabled": true, "members": members(users, &[1, 2])}),
            id: b,
            writer: Writer::ConnectV1,
            ad_members: vec![],
            ad_description: None,
        },
        Legacy {
            cn: format!("Group_{c}"),
            cloud: json!({"id": c, "displayName": "Security Team", "description": "Sec",
                          "securityEnabled": true, "groupTypes": [], "members": members(users, &[0, 2, 3])}),
            id: c,
            writer: Writer::ConnectV2,
            ad_members: vec![0],
            ad_description: Some("written by Connect"),
        },
        Legacy {
            cn: format!("{}_{}", &long[..51].trim_end(), last12(&d)),
            cloud: json!({"id": d, "displayName": long, "securityEnabled": true, "groupTypes": [],
                          "members": members(users, &[3])}),
            id: d,
            writer: Writer::CloudSync,
            ad_members: vec![3],
            ad_description: None,
        },
    ]
}

/// Creates `g` in `ou` as its writer would have (as the domain administrator).
async fn write_as_legacy(dc: &SambaDc, ou: &str, g: &Legacy, sids: &[String]) -> String {
    let dn = format!("CN={},{ou}", g.cn);
    let anchor = format!("Group_{}", g.id);
    let display = g.cloud["displayName"].as_str().unwrap();
    // Connect's own sAMAccountName (not ours): the test tag and the last 12 hex digits.
    let sam = format!("Grp{}{}", &g.id[4..8], last12(&g.id));
    let mut attrs: Vec<(&str, &str)> = vec![("adminDescription", &anchor)];
    let group_type = match g.writer {
        Writer::ConnectV1 => "8",
        Writer::ConnectV2 | Writer::CloudSync => "-2147483640",
    };
    attrs.push(("groupType", group_type));
    if g.writer != Writer::CloudSync {
        attrs.push(("sAMAccountName", &sam));
        attrs.push(("displayName", "stale name"));
    } else {
        attrs.push(("displayName", display));
        if dc.schema_patched {
            attrs.push(("msDS-ExternalDirectoryObjectId", &anchor));
        }
    }
    if let Some(desc) = g.ad_description {
        attrs.push(("description", desc));
    }
    dc.add_group(&dn, attrs).await;
    if !g.ad_members.is_empty() {
        let values: HashSet<String> = g
            .ad_members
            .iter()
            .map(|&i| format!("<SID={}>", sids[i]))
            .collect();
        let mut ldap = dc.connect().await;
        ldap.modify(&dn, vec![Mod::Add("member".to_string(), values)])
            .await
            .unwrap()
            .success()
            .unwrap_or_else(|e| panic!("members of {dn}: {e}"));
    }
    dn
}

/// What must not change in a takeover: (DN, objectGUID, sAMAccountName) per anchor.
async fn identities(dc: &SambaDc, ou: &str) -> BTreeMap<String, (String, String, String)> {
    dc.groups_in(ou)
        .await
        .iter()
        .map(|e: &SearchEntry| {
            (
                attr_first(e, "adminDescription").unwrap().to_string(),
                (
                    e.dn.to_lowercase(),
                    entry_guid(e).expect("objectGUID"),
                    attr_first(e, "sAMAccountName").unwrap().to_string(),
                ),
            )
        })
        .collect()
}

/// A tenant of synced users with AD accounts and the legacy groups written into a fresh OU.
struct Lab {
    ou: String,
    users_ou: String,
    sids: Vec<String>,
    groups: Vec<Legacy>,
    sim: GraphSim,
}

async fn lab(dc: &SambaDc, name: &str, tag: u32) -> Lab {
    let ou = dc.fresh_ou(name).await;
    let users_ou = dc.fresh_ou(&format!("{name}-users")).await;
    let sids = dc
        .create_users(&users_ou, &format!("to{}-", unique_suffix()), 4)
        .await;
    let user_ids: Vec<String> = (0..4).map(|i| oid(tag, 100 + i)).collect();
    let groups = legacy_groups(tag, &user_ids);
    for g in &groups {
        write_as_legacy(dc, &ou, g, &sids).await;
    }
    let users = user_ids
        .iter()
        .zip(&sids)
        .map(|(id, sid)| common::synced_user(id, sid))
        .collect();
    let sim = GraphSim::start(users, groups.iter().map(|g| g.cloud.clone()).collect(), &[]);
    Lab {
        ou,
        users_ou,
        sids,
        groups,
        sim,
    }
}

/// The member SIDs the cloud group `g` should have in AD.
fn cloud_sids(lab: &Lab, g: &Legacy) -> BTreeSet<String> {
    g.cloud["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let n = m["id"].as_str().unwrap();
            let i = usize::from_str_radix(&n[n.len() - 6..], 16).unwrap() - 100;
            lab.sids[i].clone()
        })
        .collect()
}

/// Members, displayName, description, groupType and anchors of every group match the cloud.
async fn assert_converged(dc: &SambaDc, lab: &Lab) {
    for g in &lab.groups {
        let anchor = format!("Group_{}", g.id);
        let e = dc.group_by_anchor(&lab.ou, &anchor).await.unwrap();
        assert_eq!(dc.member_sids(&e.dn).await, cloud_sids(lab, g), "{}", e.dn);
        let display = g.cloud["displayName"].as_str().unwrap();
        assert_eq!(attr_first(&e, "displayName"), Some(display), "{}", e.dn);
        let description = g.cloud["description"].as_str();
        assert_eq!(attr_first(&e, "description"), description, "{}", e.dn);
        let security = g.cloud["securityEnabled"].as_bool().unwrap();
        let want_type = if security { "-2147483640" } else { "8" };
        assert_eq!(attr_first(&e, "groupType"), Some(want_type), "{}", e.dn);
        if dc.schema_patched {
            let ext = attr_first(&e, "msDS-ExternalDirectoryObjectId");
            assert_eq!(ext, Some(anchor.as_str()), "{}", e.dn);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_written_by_connect_and_cloud_sync_are_taken_over_in_place_on_samba() {
    let dc = samba::shared();
    let lab = lab(dc, "takeover", 0x7100).await;
    let svc = Service::new(&lab.sim, dc, &lab.ou);
    let before = identities(dc, &lab.ou).await;
    assert_eq!(before.len(), 4);

    // `plan` lists the takeover's changes, and writes nothing.
    let usn_before = (
        usn_snapshot(dc, &lab.ou).await,
        usn_snapshot(dc, &lab.users_ou).await,
    );
    let out = svc.run(&["plan"]);
    expect_exit(&out, 0);
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!plan.contains("+ create"), "plan would create:\n{plan}");
    let c3 = &lab.groups[2];
    assert!(
        plan.contains("description: \"written by Connect\" -> \"Sec\""),
        "{plan}"
    );
    assert!(plan.contains("+ members of"), "{plan}");
    assert!(plan.contains("- members of"), "{plan}");
    assert!(!plan.contains("> rename"), "plan would rename:\n{plan}");
    let usn_after = (
        usn_snapshot(dc, &lab.ou).await,
        usn_snapshot(dc, &lab.users_ou).await,
    );
    assert_eq!(usn_before, usn_after, "plan modified AD");

    // Two rounds: the first takes over, the second (a reconcile) finds nothing left to do.
    svc.once_ok();
    expect_exit(&svc.run(&["resync"]), 0);
    svc.once_ok();
    let after = identities(dc, &lab.ou).await;
    assert_eq!(
        before, after,
        "DN, objectGUID or sAMAccountName changed, or a group was created twice"
    );
    assert_eq!(
        dc.groups_in(&lab.ou).await.len(),
        4,
        "a group was created twice"
    );
    assert_converged(dc, &lab).await;
    let c3_dn = format!("cn=group_{},{}", c3.id, lab.ou.to_lowercase());
    assert!(after.values().any(|(dn, _, _)| *dn == c3_dn), "{after:?}");

    // A later plan has nothing left to change.
    let out = svc.run(&["plan"]);
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    for op in ["+ create", "~ modify", "members of", "> rename"] {
        assert!(
            !plan.contains(op),
            "after the takeover, plan still says {op}:\n{plan}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_layout_and_renaming_taken_over_groups_on_opt_in_on_samba() {
    let dc = samba::shared();
    let lab = lab(dc, "takeover-rename", 0x7200).await;
    // Connect's layout: one OU, CN `Group_<objectId>`; the admin opts into renaming.
    let svc = Service::with(
        dc,
        &lab.ou,
        Options {
            ad_extra: "cn_template = \"Group_{id}\"\nrename_taken_over = true".into(),
            ..Options::new(dc, &lab.sim)
        },
    );
    let before = identities(dc, &lab.ou).await;
    let fresh = oid(0x7200, 9);
    lab.sim
        .put_group(
            &fresh,
            json!({"displayName": "Created Later", "securityEnabled": true, "groupTypes": []}),
        )
        .await;
    svc.once_ok();
    let after = identities(dc, &lab.ou).await;
    assert_eq!(after.len(), 5, "{after:?}");
    for (anchor, (dn, guid, sam)) in &before {
        let id = anchor.strip_prefix("Group_").unwrap();
        let (new_dn, new_guid, new_sam) = &after[anchor];
        assert_eq!((guid, sam), (new_guid, new_sam), "{dn}");
        // Renamed to the template: every CN is now `Group_<objectId>`.
        let want = format!("cn=group_{id},{}", lab.ou.to_lowercase());
        assert_eq!(*new_dn, want, "was {dn}");
    }
    let (dn, _, _) = &after[&format!("Group_{fresh}")];
    assert_eq!(
        *dn,
        format!("cn=group_{fresh},{}", lab.ou.to_lowercase()),
        "a new group follows Connect's layout"
    );
    assert_converged(dc, &lab).await;
}

/// The second writer (Connect Sync left running) takes member `sid` out of `dn` again.
async fn second_writer_removes(dc: &SambaDc, dn: &str, sid: &str) {
    let mut ldap = dc.connect().await;
    let value = HashSet::from([format!("<SID={sid}>")]);
    ldap.modify(dn, vec![Mod::Delete("member".to_string(), value)])
        .await
        .unwrap()
        .success()
        .unwrap_or_else(|e| panic!("second writer on {dn}: {e}"));
}

/// A full compare of every group now: `resync`, then `run --once`; the log.
fn reconcile(svc: &Service) -> String {
    expect_exit(&svc.run(&["resync"]), 0);
    svc.once_ok()
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_writer_reverting_a_member_is_detected_and_the_group_frozen_on_samba() {
    let dc = samba::shared();
    let lab = lab(dc, "two-writers", 0x7300).await;
    let svc = Service::new(&lab.sim, dc, &lab.ou);
    // The Connect v2 group: AD has member 0 of 0, 2, 3. The takeover adds 2 and 3.
    let g = &lab.groups[2];
    let dn = write_dn(&lab, g);
    let sid = lab.sids[3].clone();
    svc.once_ok();
    assert!(dc.member_sids(&dn).await.contains(&sid));

    // Connect still runs and takes member 3 out: once is drift, corrected as always.
    second_writer_removes(dc, &dn, &sid).await;
    let log = reconcile(&svc);
    assert!(
        dc.member_sids(&dn).await.contains(&sid),
        "drift not corrected"
    );
    assert!(
        !log.contains("another writer"),
        "frozen on the first revert"
    );
    let status = json_of(&svc.run(&["queue", "status", "--json"]));
    assert_eq!(status["frozen_groups"], 0, "{status}");

    // It takes member 3 out again: another writer. A running service detects it, freezes the
    // group and says so in its metrics and on its status page.
    second_writer_removes(dc, &dn, &sid).await;
    expect_exit(&svc.run(&["resync"]), 0);
    let running = svc.spawn();
    let metric = "entra_writeback_second_writer_detected_total{kind=\"member\"} 1";
    until(
        "the second writer metric",
        60,
        Duration::from_millis(200),
        Some(&svc),
        async || {
            http_get(svc.http_port, "/metrics")
                .await
                .is_some_and(|(_, body)| body.contains(metric))
        },
    )
    .await;
    let page = wait::status(&svc).await.expect("/status.json");
    assert_eq!(page["queue"]["frozen_groups"], 1, "{page}");
    assert_eq!(page["frozen"][0]["group_id"], g.id.as_str(), "{page}");
    let detail = page["frozen"][0]["detail"].as_str().unwrap();
    assert!(detail.contains(&sid), "{detail}");
    let (_, metrics) = http_get(svc.http_port, "/metrics").await.unwrap();
    assert!(
        metrics.contains("entra_writeback_frozen_groups 1"),
        "{metrics}"
    );
    drop(running);
    assert!(run_log(&svc).contains("another writer keeps reverting this group"));

    // The reverted value stays: nothing is written to the group any more, restarts included.
    let usn = usn_snapshot(dc, &dn).await;
    reconcile(&svc);
    assert!(!dc.member_sids(&dn).await.contains(&sid), "re-written");
    assert_eq!(
        usn_snapshot(dc, &dn).await,
        usn,
        "a frozen group was written"
    );
    let status = json_of(&svc.run(&["queue", "status", "--json"]));
    assert_eq!(status["frozen_groups"], 1, "{status}");
    let out = svc.run(&["check", "--json"]);
    let report = json_of(&out);
    let finding = report
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "state.second_writers")
        .unwrap_or_else(|| panic!("{report:#}"))
        .clone();
    assert_eq!(finding["ok"], false, "{finding}");
    assert!(
        finding["detail"].as_str().unwrap().contains(&g.id),
        "{finding}"
    );
    assert_eq!(out.status.code(), Some(1));

    // The admin stops Connect and confirms: the group is written again.
    let listed = String::from_utf8_lossy(&svc.run(&["approve-writes"]).stdout).into_owned();
    assert!(listed.contains(&g.id) && listed.contains(&sid), "{listed}");
    expect_exit(&svc.run(&["approve-writes", &g.id]), 0);
    svc.once_ok();
    assert!(
        dc.member_sids(&dn).await.contains(&sid),
        "not written after approve-writes"
    );
    let status = json_of(&svc.run(&["queue", "status", "--json"]));
    assert_eq!(status["frozen_groups"], 0, "{status}");
}

/// The DN the legacy writer gave `g`.
fn write_dn(lab: &Lab, g: &Legacy) -> String {
    format!("CN={},{}", g.cn, lab.ou)
}
