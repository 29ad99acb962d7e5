//! Getting into AD, against a real Samba AD DC: TLS is verified (ldaps and StartTLS, a
//! certificate the CA does not sign is refused, never downgraded), and an account without
//! rights on the target OU gets clear errors and dead letters and changes nothing.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::outcome::{dead_letters, expect_exit, usn_snapshot};
use common::samba::{self, SambaDc, unique_suffix};
use common::service::{COMMAND_TIMEOUT, Options, Running, Service, output_within, tail};
use common::sim::{GraphSim, oid, user};
use serde_json::{Value, json};

fn tls_sim(n: u32) -> GraphSim {
    GraphSim::start(
        vec![],
        vec![common::security_group(&oid(0x900, n), "Tls", vec![])],
        &[],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn ldaps_and_starttls_with_the_lab_ca_write_the_group() {
    let dc = samba::shared();
    for n in [1, 2] {
        let sim = tls_sim(n);
        let ou = dc.fresh_ou("tls").await;
        // 1: ldaps:// + ca_file; 2: ldap:// + StartTLS + ca_file.
        let o = if n == 1 {
            Options::ldaps(dc, &sim)
        } else {
            Options::new(dc, &sim)
        };
        let url = o.ad_url.clone();
        let svc = Service::with(dc, &ou, o);
        svc.once_ok();
        assert_eq!(dc.groups_in(&ou).await.len(), 1, "{url}");
    }
}

/// A CA of its own (not the lab's): it signs nothing the DC presents.
fn foreign_ca(dir: &Path) -> std::path::PathBuf {
    let ca = dir.join("foreign-ca.pem");
    let mut openssl = Command::new("openssl");
    openssl
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=not the lab CA", "-keyout"])
        .arg(dir.join("foreign-ca-key.pem"))
        .arg("-out")
        .arg(&ca);
    let ok = output_within(&mut openssl, Duration::from_secs(60));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    ca
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dc_certificate_the_configured_ca_does_not_sign_is_refused_and_nothing_is_written() {
    let dc = samba::shared();
    let scratch = tempfile::tempdir().unwrap();
    let foreign = foreign_ca(scratch.path());
    // The error names ad.ca_file: the configured file, or that none is set.
    let names_file = format!("ad.ca_file ({})", foreign.display());
    let cases = [
        (
            "ldaps, system roots",
            dc.ldaps_url.clone(),
            String::new(),
            "set ad.ca_file",
        ),
        (
            "StartTLS, system roots",
            dc.url.clone(),
            "starttls = true".into(),
            "set ad.ca_file",
        ),
        (
            "ldaps, a foreign CA",
            dc.ldaps_url.clone(),
            format!("ca_file = \"{}\"", foreign.display()),
            names_file.as_str(),
        ),
        (
            "StartTLS, a foreign CA",
            dc.url.clone(),
            format!("starttls = true\nca_file = \"{}\"", foreign.display()),
            names_file.as_str(),
        ),
    ];
    for (n, (what, url, tls, hint)) in cases.into_iter().enumerate() {
        let sim = tls_sim(3 + n as u32);
        let ou = dc.fresh_ou("tls-bad").await;
        let svc = Service::with(
            dc,
            &ou,
            Options {
                ad_url: url,
                ad_tls: tls,
                tail: "[sync]\nmax_attempts = 2\nmin_backoff = \"50ms\"\n".into(),
                ..Options::new(dc, &sim)
            },
        );
        // A clear error, not a silent downgrade to a plain bind.
        let log = expect_exit(&svc.run(&["run", "--once"]), 1);
        assert!(
            log.to_lowercase().contains("certificate") && log.contains(hint),
            "{what}: no `{hint}` in: {}",
            tail(&log)
        );
        assert!(
            dc.groups_in(&ou).await.is_empty(),
            "{what}: a group was written"
        );
        let status: Value =
            serde_json::from_slice(&svc.run(&["queue", "status", "--json"]).stdout).unwrap();
        assert!(status["depth"].as_u64() >= Some(1), "{what}: {status}");
    }
}

/// The service's config switched to the least-privilege account of the lab, with commands
/// that pass that account's password.
struct AsServiceAccount<'a> {
    svc: &'a Service,
    password: String,
}

impl<'a> AsServiceAccount<'a> {
    fn new(svc: &'a Service, dc: &SambaDc) -> Self {
        let text = std::fs::read_to_string(&svc.config).unwrap();
        let admin = format!("bind_dn = \"{}\"", dc.bind_dn);
        assert!(text.contains(&admin), "{text}");
        let text = text.replace(&admin, &format!("bind_dn = \"{}\"", dc.svc_bind_dn));
        std::fs::write(&svc.config, text).unwrap();
        AsServiceAccount {
            svc,
            password: dc.svc_bind_password.clone(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = self.svc.command(args);
        c.env("ENTRA_WRITEBACK_AD_BIND_PASSWORD", &self.password);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        output_within(&mut self.command(args), COMMAND_TIMEOUT)
    }

    /// `run` in the background (killed on drop).
    fn spawn(&self) -> Running {
        Running(
            self.command(&["run"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

/// Waits (up to 60 s, a hang detector) until `/metrics` of the service on `port` has `line`.
async fn wait_for_metric(port: u16, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            last = r.text().await.unwrap_or_default();
            if last.lines().any(|l| l == line) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ours: Vec<&str> = last
        .lines()
        .filter(|l| l.starts_with(line.split(' ').next().unwrap()))
        .collect();
    panic!("no `{line}` in /metrics; have {ours:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_without_rights_on_the_ou_gets_dead_letters_and_changes_nothing() {
    let dc = samba::shared();
    // Outside the lab OU: svc-writeback holds no delegation there.
    let ou = dc.fresh_undelegated_ou("no-rights").await;
    let users_ou = dc.fresh_ou("no-rights-users").await;
    let sids = dc
        .create_users(&users_ou, &format!("nr{}-", unique_suffix()), 2)
        .await;
    let tag = 0x6400;
    let (g, h) = (oid(tag, 1), oid(tag, 2));
    let users = vec![
        common::synced_user(&oid(tag, 100), &sids[0]),
        common::synced_user(&oid(tag, 101), &sids[1]),
    ];
    let sim = GraphSim::start(
        users,
        vec![common::security_group(
            &g,
            "Rights",
            vec![user(&oid(tag, 100))],
        )],
        &[],
    );
    // Written once by the administrator (a fixture: the service never binds as it otherwise),
    // so there is an object to modify as well.
    let svc = Service::with(
        dc,
        &ou,
        Options {
            tail: "[sync]\nmin_backoff = \"50ms\"\nmax_backoff = \"200ms\"\nmax_attempts = 3\n"
                .into(),
            bind_dn: dc.bind_dn.clone(),
            bind_password: dc.bind_password.clone(),
            ..Options::new(dc, &sim)
        },
    );
    svc.once_ok();
    let before = usn_snapshot(dc, &ou).await;
    assert_eq!(before.len(), 2, "the OU and one group: {before:?}");

    // As svc-writeback, which may read but not write there: a rename, a member and a new group.
    let svc_account = AsServiceAccount::new(&svc, dc);
    let run = |args: &[&str]| svc_account.run(args);
    let out = run(&["check"]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("may not create groups"), "{text}");

    sim.put_group(&g, json!({"displayName": "Rights Renamed"}))
        .await;
    sim.members(&g, vec![user(&oid(tag, 101))], vec![]).await;
    sim.put_group(
        &h,
        json!({"displayName": "Rights New", "securityEnabled": true, "groupTypes": []}),
    )
    .await;
    expect_exit(&run(&["run", "--once"]), 1);
    let dead = dead_letters(&svc);
    for id in [&g, &h] {
        let err = dead.get(id).map(String::as_str).unwrap_or("(none)");
        assert!(err.contains("result 50"), "{id}: {err} (all: {dead:?})");
    }
    let status: Value =
        serde_json::from_slice(&run(&["queue", "status", "--json"]).stdout).unwrap();
    assert_eq!(
        status["depth"], 0,
        "refused changes are not retried forever: {status}"
    );
    assert_eq!(usn_snapshot(dc, &ou).await, before, "AD changed");

    // The daemon shows them in /metrics, binds fine (rights, not credentials) and, left
    // running, still changes nothing.
    let listed: Vec<Value> =
        serde_json::from_slice(&run(&["queue", "list", "--dead", "--json"]).stdout).unwrap();
    let gauge = format!("entra_writeback_dead_letters {}", listed.len());
    let running = svc_account.spawn();
    wait_for_metric(svc.http_port, &gauge).await;
    wait_for_metric(svc.http_port, "entra_writeback_ad_up 1").await;
    drop(running);
    assert_eq!(usn_snapshot(dc, &ou).await, before, "AD changed");
}
