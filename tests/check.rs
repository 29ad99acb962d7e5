//! `check` against a real Samba AD DC and graph-sim, bound as the delegated service account
//! `svc-writeback`: every point reported in one run (also when Graph is down), `--json` for
//! scripts, a right taken from the account named, and the throw-away group gone afterwards.

mod common;

use std::process::Output;

use common::samba::acl::{GROUP_CLASS_GUID, MEMBER_ATTR_GUID};
use common::samba::{self, SambaDc};
use common::service::{Options, Service, free_port};
use common::sim::{CLIENT_SECRET, GraphSim};
use serde_json::{Value, json};

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// `check --json`, parsed: every entry has exactly name, ok, detail and fix.
fn check_json(svc: &Service) -> (Option<i32>, Vec<Value>) {
    let out = svc.run(&["check", "--json"]);
    let report: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check --json is not a JSON array ({e}):\n{}", text(&out)));
    for entry in &report {
        let mut keys: Vec<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["detail", "fix", "name", "ok"], "{entry}");
        assert!(
            entry["ok"].is_boolean() && entry["detail"].is_string(),
            "{entry}"
        );
        assert_eq!(
            entry["fix"].is_null(),
            entry["ok"] == true,
            "a fix exactly when failed: {entry}"
        );
    }
    (out.status.code(), report)
}

fn entry<'a>(report: &'a [Value], name: &str) -> &'a Value {
    report
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` in {report:#?}"))
}

fn assert_no_secret(dc: &SambaDc, out: &str) {
    for secret in [
        dc.svc_bind_password.as_str(),
        dc.bind_password.as_str(),
        CLIENT_SECRET,
    ] {
        assert!(!out.contains(secret), "a secret was printed:\n{out}");
    }
}

/// The AD points of one owned OU that must pass.
fn ou_points(ou: &str) -> Vec<String> {
    ["ou", "create", "write", "rename", "delete"]
        .iter()
        .map(|p| format!("ad.{p}[{ou}]"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn check_reports_every_point_and_leaves_no_probe_group_behind() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("check-all").await;
    let parked = dc.fresh_ou("check-parked").await;
    let sim = GraphSim::start(vec![], vec![], &[]);
    let svc = Service::with(
        dc,
        &ou,
        Options {
            ad_extra: format!("soft_delete = \"move\"\nsoft_delete_ou = \"{parked}\""),
            ..Options::new(dc, &sim)
        },
    );
    let (code, report) = check_json(&svc);
    assert_eq!(code, Some(0), "{report:#?}");
    let mut want: Vec<String> = [
        "config",
        "graph.token",
        "graph.groups_delta",
        "graph.users_delta",
        "ad.reachable",
        "ad.tls",
        "ad.bind",
        "ad.schema",
    ]
    .map(String::from)
    .to_vec();
    want.extend(ou_points(&ou));
    want.extend(ou_points(&parked));
    want.push(format!("ad.move[{ou} -> {parked}]"));
    for name in &want {
        assert_eq!(entry(&report, name)["ok"], true, "{name}: {report:#?}");
    }
    assert!(
        entry(&report, "ad.bind")["detail"]
            .as_str()
            .unwrap()
            .contains("svc-writeback"),
        "{report:#?}"
    );
    let schema = entry(&report, "ad.schema")["detail"].as_str().unwrap();
    assert!(
        schema.contains("msDS-ExternalDirectoryObjectId: yes"),
        "{schema}"
    );
    let writes = entry(&report, &format!("ad.write[{ou}]"))["detail"]
        .as_str()
        .unwrap();
    for attr in [
        "displayName",
        "groupType",
        "adminDescription",
        "member",
        "proxyAddresses",
    ] {
        assert!(writes.contains(attr), "{attr} not tried: {writes}");
    }
    // The throw-away groups are gone, from both OUs.
    assert!(
        dc.groups_in(&ou).await.is_empty(),
        "a probe group was left in {ou}"
    );
    assert!(
        dc.groups_in(&parked).await.is_empty(),
        "a probe group was left in {parked}"
    );

    // The human form: one ✓ line per point, nothing failed, no secret.
    let out = svc.run(&["check"]);
    let human = text(&out);
    assert_eq!(out.status.code(), Some(0), "{human}");
    for name in &want {
        assert!(
            human.contains(&format!("✓ {name}: ")),
            "no ✓ {name} in:\n{human}"
        );
    }
    assert!(!human.contains('✗'), "{human}");
    assert_no_secret(dc, &human);

    // One stream refused: only its own point fails, the rest is still reported.
    sim.faults(json!({"throttle": {"count": 1, "status": 503, "path": "/v1.0/users/delta"}}))
        .await;
    let (code, report) = check_json(&svc);
    assert_eq!(code, Some(1), "{report:#?}");
    let failed: Vec<&str> = report
        .iter()
        .filter(|e| e["ok"] == false)
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["graph.users_delta"], "{report:#?}");
    assert!(dc.groups_in(&ou).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn with_graph_unreachable_check_still_reports_the_ad_checks() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("check-nograph").await;
    // A closed port: the login endpoint and Graph refuse every connection.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let svc = Service::with(dc, &ou, Options::graph_at(dc, &closed));
    let out = svc.run(&["check"]);
    let human = text(&out);
    assert_eq!(out.status.code(), Some(1), "{human}");
    assert!(human.contains("✗ graph.token: "), "{human}");
    assert!(
        human.contains("✗ graph.groups_delta: not checked"),
        "{human}"
    );
    for name in ["ad.reachable", "ad.tls", "ad.bind", "ad.schema"]
        .map(String::from)
        .into_iter()
        .chain(ou_points(&ou))
    {
        assert!(
            human.contains(&format!("✓ {name}: ")),
            "no ✓ {name} in:\n{human}"
        );
    }
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("checks failed: graph.token"),
        "{human}"
    );
    assert_no_secret(dc, &human);

    let (code, report) = check_json(&svc);
    assert_eq!(code, Some(1));
    assert_eq!(entry(&report, "graph.token")["ok"], false);
    assert!(
        entry(&report, "graph.token")["fix"]
            .as_str()
            .unwrap()
            .contains("graph.authority_url")
    );
    assert_eq!(
        entry(&report, &format!("ad.delete[{ou}]"))["ok"],
        true,
        "{report:#?}"
    );
    assert!(
        dc.groups_in(&ou).await.is_empty(),
        "a probe group was left in {ou}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_right_taken_from_svc_writeback_is_named_by_check() {
    let dc = samba::shared();
    let sim = GraphSim::start(vec![], vec![], &[]);
    // Outside the lab OU, so the account holds exactly what deploy/ad/samba-delegate.sh grants.
    let ou = dc.fresh_undelegated_ou("check-rights").await;
    let svc = Service::new(&sim, dc, &ou);
    let (code, report) = check_json(&svc);
    assert_eq!(code, Some(1), "no rights yet: {report:#?}");
    let create = entry(&report, &format!("ad.create[{ou}]"));
    assert!(
        create["ok"] == false
            && create["detail"]
                .as_str()
                .unwrap()
                .contains("may not create groups")
            && create["fix"].as_str().unwrap().contains("create-child"),
        "{create}"
    );

    dc.delegate(&ou);
    let (code, report) = check_json(&svc);
    assert_eq!(code, Some(0), "delegated: {report:#?}");

    // No write on `member` any more: named, and the probe group still goes away.
    dc.add_aces(
        &ou,
        &format!("(OD;CIIO;WP;{MEMBER_ATTR_GUID};{GROUP_CLASS_GUID};{{sid}})"),
    )
    .await;
    let (code, report) = check_json(&svc);
    assert_eq!(code, Some(1), "{report:#?}");
    let write = entry(&report, &format!("ad.write[{ou}]"));
    assert_eq!(write["ok"], false, "{write}");
    assert!(
        write["detail"]
            .as_str()
            .unwrap()
            .starts_with("may not write member:"),
        "{write}"
    );
    assert!(write["fix"].as_str().unwrap().contains("member"), "{write}");
    assert_eq!(entry(&report, &format!("ad.delete[{ou}]"))["ok"], true);
    assert!(
        dc.groups_in(&ou).await.is_empty(),
        "a probe group was left in {ou}"
    );

    // No delete-child: named, and the group it could not delete is the one it names.
    dc.add_aces(&ou, &format!("(OD;;DC;{GROUP_CLASS_GUID};;{{sid}})"))
        .await;
    let out = svc.run(&["check"]);
    let human = text(&out);
    assert_eq!(out.status.code(), Some(1), "{human}");
    let line = human
        .lines()
        .find(|l| l.starts_with(&format!("✗ ad.delete[{ou}]: ")))
        .unwrap_or_else(|| panic!("delete not named:\n{human}"));
    assert!(
        human.contains("delete group objects (delete-child)"),
        "{human}"
    );
    let left = dc.groups_in(&ou).await;
    assert_eq!(left.len(), 1, "{human}");
    assert!(
        line.contains(&left[0].dn),
        "{line} does not name {}",
        left[0].dn
    );
    assert!(
        left[0].dn.contains("entra-writeback-check-"),
        "{}",
        left[0].dn
    );
    let mut admin = dc.connect().await;
    admin.delete(&left[0].dn).await.unwrap().success().unwrap();
    assert_no_secret(dc, &human);
}

/// The lab's `svc-writeback` holds the group writeback delegation and nothing more: no admin
/// rights, nothing outside its OUs, nothing on other classes or on the OU itself.
#[tokio::test(flavor = "multi_thread")]
async fn the_service_account_holds_the_delegation_and_nothing_more() {
    use ldap3::{LdapError, LdapResult, Mod};
    use std::collections::HashSet;
    let dc = samba::shared();
    let ou = dc.fresh_ou("least-privilege").await;
    let outside = dc.fresh_undelegated_ou("least-privilege-outside").await;
    let tag = samba::unique_suffix();
    let sams: Vec<String> = ["am", "mi", "us", "no", "np"]
        .iter()
        .map(|p| format!("{p}{tag}"))
        .collect();
    let admin_made = format!("CN=Admin Made,{outside}");
    dc.add_group(&admin_made, vec![("sAMAccountName", sams[0].as_str())])
        .await;
    let mut svc = dc.connect_as(&dc.svc_bind_dn, &dc.svc_bind_password).await;
    let rc = |r: Result<LdapResult, LdapError>| match r {
        Ok(r) => r.rc,
        Err(LdapError::LdapResult { result }) => result.rc,
        Err(e) => panic!("{e}"),
    };
    let entry = |class: &'static str, sam: &str| {
        vec![
            ("objectClass", HashSet::from([class])),
            ("sAMAccountName", HashSet::from([sam])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(str::to_string).collect()))
        .collect::<Vec<(String, HashSet<String>)>>()
    };
    let replace = |attr: &str, value: &str| {
        vec![Mod::Replace(
            attr.to_string(),
            HashSet::from([value.to_string()]),
        )]
    };
    // Its own OU: a group, yes (and it may delete it again); a user, no.
    let mine = format!("CN=Mine,{ou}");
    assert_eq!(rc(svc.add(&mine, entry("group", &sams[1])).await), 0);
    let user = format!("CN=U,{ou}");
    assert_eq!(rc(svc.add(&user, entry("user", &sams[2])).await), 50);
    // Not a property the service never writes after creation, nor the OU itself.
    assert_eq!(
        rc(svc.modify(&mine, replace("sAMAccountName", "x1")).await),
        50
    );
    assert_eq!(
        rc(svc.modify(&ou, replace("description", "mine now")).await),
        50
    );
    assert_eq!(rc(svc.delete(&mine).await), 0);
    // Outside its OUs: nothing, neither in CN=Users nor on a group elsewhere.
    let users = format!("CN=Nope {tag},CN=Users,{}", dc.base_dn);
    assert_eq!(rc(svc.add(&users, entry("group", &sams[3])).await), 50);
    let elsewhere = format!("CN=Nope,{outside}");
    assert_eq!(rc(svc.add(&elsewhere, entry("group", &sams[4])).await), 50);
    assert_eq!(
        rc(svc
            .modify(&admin_made, replace("description", "changed"))
            .await),
        50
    );
    assert_eq!(rc(svc.delete(&admin_made).await), 50);
    let _ = svc.unbind().await;
}

/// A config that does not load is the one point `check` can report; `--json` still prints it.
#[test]
fn a_config_that_does_not_load_is_reported_as_json_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("entra-writeback.toml");
    std::fs::write(&config, "[graph]\nno_such_key = 1\n").unwrap();
    let out = common::service::output_within(
        std::process::Command::new(env!("CARGO_BIN_EXE_entra-writeback"))
            .arg("--config")
            .arg(&config)
            .args(["check", "--json"]),
        common::service::COMMAND_TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: Vec<Value> = serde_json::from_slice(&out.stdout).expect("a JSON array");
    assert_eq!(report.len(), 1, "{report:#?}");
    assert_eq!(
        (&report[0]["name"], &report[0]["ok"]),
        (&json!("config"), &json!(false))
    );
    assert!(
        report[0]["detail"]
            .as_str()
            .unwrap()
            .contains("no_such_key"),
        "{report:#?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_key"));
}
