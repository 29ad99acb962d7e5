//! The operator commands of the contract against real Samba AD and graph-sim: `plan`,
//! `check`, `decommission`, and quarantine as seen from `/readyz` and `/metrics`.

mod common;

use std::time::Duration;

use common::compare::{self, Expect};
use common::samba::{self, attr_first};
use common::service::{COMMAND_TIMEOUT, INSECURE_LDAP, Options, Service, output_within, tail};
use common::sim::{GraphSim, oid};
use common::wait;
use serde_json::json;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_prints_the_operations_and_writes_nothing() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("plan").await;
    let tag = 0x1200;
    let (keep, rename, gone) = (oid(tag, 1), oid(tag, 2), oid(tag, 3));
    let groups = vec![
        json!({"id": keep, "displayName": "Kept", "securityEnabled": true}),
        json!({"id": rename, "displayName": "Old Name", "securityEnabled": true, "description": "before"}),
        json!({"id": gone, "displayName": "Going Away", "securityEnabled": true}),
    ];
    let sim = GraphSim::start(vec![], groups, &[]);
    let svc = Service::new(&sim, dc, &ou);
    svc.once_ok();
    sim.put_group(
        &rename,
        json!({"displayName": "New Name", "description": "after"}),
    )
    .await;
    sim.put_group(
        &oid(tag, 4),
        json!({"displayName": "Brand New", "securityEnabled": true}),
    )
    .await;
    sim.delete_group(&gone, true).await;
    let before = dc.groups_in(&ou).await;
    let requests_before = sim.requests().await.len();

    let out = svc.run(&["plan"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    eprintln!("{text}");
    let s = |id: &str| id[id.len() - 12..].to_string();
    assert!(
        text.contains(&format!("+ create CN=Brand New_{},{ou}", s(&oid(tag, 4)))),
        "{text}"
    );
    assert!(
        text.contains(&format!("> rename CN=Old Name_{},{ou}", s(&rename))),
        "{text}"
    );
    assert!(
        text.contains("displayName: \"Old Name\" -> \"New Name\""),
        "{text}"
    );
    assert!(
        text.contains("description: \"before\" -> \"after\""),
        "{text}"
    );
    assert!(
        text.contains(&format!("- delete CN=Going Away_{},{ou}", s(&gone))),
        "{text}"
    );
    assert!(
        !text.contains("Kept_"),
        "an up-to-date group has no operations: {text}"
    );
    assert!(text.contains("nothing was written"));

    // Nothing was written, and the service's own cursor did not move: the next real round
    // still sees the changes (plan used a full enumeration of its own).
    let after = dc.groups_in(&ou).await;
    let usns = |v: &Vec<ldap3::SearchEntry>| {
        v.iter()
            .map(|e| attr_first(e, "uSNChanged").unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(usns(&before), usns(&after));
    assert!(sim.requests().await.len() > requests_before);
    svc.once_ok();
    let no_members = std::collections::BTreeMap::new();
    let expect =
        Expect::members(&no_members).created_as([(rename.clone(), "Old Name".to_string())]);
    compare::assert_ad_equals_tenant(&sim, dc, &ou, &expect, 3, "the round after plan").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn check_validates_token_bind_and_target_ou() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("check").await;
    let sim = GraphSim::start(vec![], vec![], &[]);
    let svc = Service::new(&sim, dc, &ou);
    let out = svc.run(&["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("✓ graph.token: token acquired")
            && text.contains(&format!("✓ ad.create[{ou}]: created"))
            && text.contains(&format!("✓ ad.delete[{ou}]: deleted")),
        "{text}"
    );

    // A missing target OU: named, with the key to fix; the other points are still reported.
    let missing = format!("OU=Nope-{},{}", std::process::id(), dc.base_dn);
    let bad_ou = Service::with(
        dc,
        &missing,
        Options {
            ..Options::new(dc, &sim)
        },
    );
    let out = bad_ou.run(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("✗ ad.ou[{missing}]: {missing} does not exist"))
            && text.contains("fix: create it, or correct ad.target_ou")
            && text.contains("✓ ad.bind: "),
        "{text}"
    );
    assert!(
        stderr(&out).contains(&format!("ad.ou[{missing}]")),
        "{}",
        stderr(&out)
    );

    // A wrong password: a clear bind error, and the password is not printed.
    let out = output_within(
        svc.command(&["check"])
            .env("ENTRA_WRITEBACK_AD_BIND_PASSWORD", "Wr0ng-Secret-123"),
        COMMAND_TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(1));
    let all = stdout(&out) + &stderr(&out);
    assert!(
        all.contains("✗ ad.bind: ") && all.contains("result 49"),
        "{all}"
    );
    assert!(
        all.contains("✓ graph.token: "),
        "Graph is still checked: {all}"
    );
    assert!(!all.contains("Wr0ng-Secret-123"));

    // A wrong client secret: the token endpoint's reason, no secret in the output; AD is
    // still checked.
    let out = output_within(
        svc.command(&["check"])
            .env("ENTRA_WRITEBACK_GRAPH_CLIENT_SECRET", "not-the-secret-42"),
        COMMAND_TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(1));
    let all = stdout(&out) + &stderr(&out);
    assert!(
        all.contains("✗ graph.token: ") && all.contains("invalid_client"),
        "{all}"
    );
    assert!(all.contains("✓ ad.bind: "), "AD is still checked: {all}");
    assert!(!all.contains("not-the-secret-42"));
}

/// Asserts that `out` is a refused configuration: exit 1, nothing validated, every `keys` named.
fn assert_config_refused(out: &std::process::Output, keys: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        !stdout(out).contains("config: ok"),
        "got past config validation: {}",
        stdout(out)
    );
    for key in keys {
        assert!(err.contains(key), "{key} not named: {err}");
    }
    assert!(
        !err.contains(&samba::shared().svc_bind_password),
        "the bind password was printed: {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_ldap_without_starttls_is_refused_before_any_bind() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("cleartext").await;
    let sim = GraphSim::start(vec![], vec![], &[]);
    let svc = Service::with(
        dc,
        &ou,
        Options {
            ad_tls: String::new(), // ldap:// with neither starttls nor allow_insecure_ldap
            ..Options::new(dc, &sim)
        },
    );
    let keys = ["ad.url", "ad.starttls", "ad.allow_insecure_ldap"];
    assert_config_refused(&svc.run(&["check"]), &keys);
    assert_config_refused(&svc.run(&["run", "--once"]), &keys);
    assert!(
        sim.requests().await.is_empty(),
        "a refused config still talked to Graph"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_insecure_ldap_accepts_a_plain_bind() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("insecure").await;
    let sim = GraphSim::start(vec![], vec![], &[]);
    // Deliberately plain ldap://: this test is about the opt-in itself (loopback lab DC only).
    let svc = Service::with(
        dc,
        &ou,
        Options {
            ad_tls: INSECURE_LDAP.into(),
            ..Options::new(dc, &sim)
        },
    );
    let out = svc.run(&["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("config: ok") && text.contains("ad.bind: bound as"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_graph_endpoints_off_loopback_are_refused() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("cleargraph").await;
    let sim = GraphSim::start(vec![], vec![], &[]);
    for key in ["graph_url", "authority_url"] {
        let svc = Service::new(&sim, dc, &ou);
        let text = std::fs::read_to_string(&svc.config).unwrap();
        let line = format!("{key} = \"{}\"", sim.base);
        assert!(text.contains(&line), "{text}");
        let text = text.replace(&line, &format!("{key} = \"http://graph.example.com\""));
        std::fs::write(&svc.config, text).unwrap();
        assert_config_refused(&svc.run(&["check"]), &[&format!("graph.{key}")]);
    }
    assert!(
        sim.requests().await.is_empty(),
        "a refused config still talked to Graph"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn target_ou_equal_to_the_naming_context_is_refused() {
    let dc = samba::shared();
    let sim = GraphSim::start(vec![], vec![], &[]);
    for root in ["DC=corp,DC=example,DC=com", dc.base_dn.as_str()] {
        let svc = Service::new(&sim, dc, root);
        assert_config_refused(&svc.run(&["check"]), &["ad.target_ou", "naming context"]);
        assert_config_refused(&svc.run(&["run", "--once"]), &["ad.target_ou"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn decommission_lists_then_deletes_only_owned_groups() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("decom").await;
    let tag = 0x1300;
    let groups: Vec<_> = (0..3)
        .map(
            |i| json!({"id": oid(tag, i), "displayName": format!("D{i}"), "securityEnabled": true}),
        )
        .collect();
    let sim = GraphSim::start(vec![], groups, &[]);
    let svc = Service::new(&sim, dc, &ou);
    svc.once_ok();
    let mut ldap = dc.connect().await;
    let unowned = format!("CN=Hand Made,{ou}");
    ldap.add(
        &unowned,
        vec![("objectClass", std::collections::HashSet::from(["group"]))],
    )
    .await
    .unwrap()
    .success()
    .unwrap();

    let out = svc.run(&["decommission"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("3 group(s) owned"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        dc.groups_in(&ou).await.len(),
        4,
        "without --yes nothing is deleted"
    );
    let out = svc.run(&["decommission", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let left = dc.groups_in(&ou).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].dn, unowned);
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_failures_quarantine_the_service_which_recovers_alone() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("quarantine").await;
    let sim = GraphSim::start(
        vec![],
        vec![json!({"id": oid(0x1400, 1), "displayName": "Q", "securityEnabled": true})],
        &[],
    );
    let svc = Service::with(
        dc,
        &ou,
        Options {
            tail: "[sync]\nmax_attempts = 1\nquarantine_after = 3\nquarantine_interval = \"4s\"\n"
                .into(),
            ..Options::new(dc, &sim)
        },
    );
    // The token endpoint fails for a while: every poll cycle fails.
    const TOKEN_ERRORS: usize = 8;
    sim.faults(json!({"token_errors": TOKEN_ERRORS})).await;
    let mut child = svc.spawn();
    let every = Duration::from_millis(200);
    wait::until("quarantine", 30, every, Some(&svc), async || {
        wait::http_get(svc.http_port, "/readyz")
            .await
            .is_some_and(|(code, body)| code == 503 && body.contains("quarantined"))
    })
    .await;
    let metrics = wait::http_get(svc.http_port, "/metrics").await.unwrap().1;
    assert!(
        metrics
            .lines()
            .any(|l| l == "entra_writeback_quarantined 1"),
        "{metrics}"
    );
    // Once the token endpoint heals, the service leaves quarantine by itself and writes the
    // group.
    wait::until(
        "recovery from quarantine",
        90,
        every,
        Some(&svc),
        async || !dc.groups_in(&ou).await.is_empty(),
    )
    .await;
    let metrics = wait::http_get(svc.http_port, "/metrics").await.unwrap().1;
    assert!(
        metrics
            .lines()
            .any(|l| l == "entra_writeback_quarantined 0"),
        "{metrics}"
    );
    std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    child.wait().unwrap();
    let log = wait::run_log(&svc);
    assert!(
        log.contains("entering quarantine") && log.contains("leaving quarantine"),
        "{}",
        tail(&log)
    );
    // The slow cadence: one token request per poll cycle; from the third failure on (quarantine
    // entered) every next attempt waits the 4 s quarantine interval. That is a lower bound (a
    // sleep never ends early, however loaded the machine), measured on graph-sim's clock from
    // the failed response to the next request, so it holds without margin; 100 ms are left for
    // the clock's resolution.
    let token_times: Vec<f64> = sim
        .requests()
        .await
        .iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with("/token"))
        .map(|r| r["at_ms"].as_f64().unwrap())
        .collect();
    assert!(
        token_times.len() > TOKEN_ERRORS,
        "{} token requests: {token_times:?}",
        token_times.len()
    );
    let gaps: Vec<f64> = token_times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[2..TOKEN_ERRORS].iter().all(|g| *g >= 3900.0),
        "an attempt while quarantined did not wait the slow cadence: {gaps:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_in_a_config_file_others_can_read_is_warned_about_or_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dc = samba::shared();
    let ou = dc.fresh_ou("perms").await;
    let sim = GraphSim::start(vec![], vec![], &[]);
    let svc = Service::new(&sim, dc, &ou);
    // The bind password in the file itself (the harness passes secrets through the environment).
    let text = std::fs::read_to_string(&svc.config).unwrap();
    let text = text.replacen(
        "\n[ad]\n",
        &format!("\n[ad]\nbind_password = \"{}\"\n", dc.svc_bind_password),
        1,
    );
    std::fs::write(&svc.config, text).unwrap();
    let chmod = |mode| {
        std::fs::set_permissions(&svc.config, std::fs::Permissions::from_mode(mode)).unwrap()
    };

    chmod(0o644);
    let out = svc.run(&["queue", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("ad.bind_password") && err.contains("644") && err.contains("chmod 600"),
        "no permission warning:\n{err}"
    );
    assert!(
        !err.contains(&dc.svc_bind_password),
        "the password was printed"
    );

    let out = svc.run(&["--strict-permissions", "queue", "status"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--strict-permissions"),
        "{}",
        stderr(&out)
    );

    chmod(0o600);
    let out = svc.run(&["--strict-permissions", "queue", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("permissions"), "{}", stderr(&out));
}
