//! Observability, end to end, with the real binaries against a real Samba AD DC and graph-sim:
//! `/metrics` through `promtool check metrics`, a real Prometheus server scraping a live round
//! and evaluating every dashboard and alert expression, `/readyz` and `/healthz`, the status
//! page in headless Chromium (and the README screenshot), spans in the logs, secrets kept out
//! of every output, and initial-sync progress on a terminal and off it.
//!
//! System tools come from `deploy/test-deps.sh` (run by `.ci/run`; a test only checks they are
//! there): `prometheus` (promtool and the server), `chromium`, and `bsdutils` (`script`, for a
//! pseudo-terminal).
//!
//! `EW_UPDATE_SCREENSHOT=1` copies the status page screenshot to `docs/status-page.png`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::samba::{self, SambaDc, unique_suffix};
use common::service::{COMMAND_TIMEOUT, Options, Running, Service, free_port, output_within, tail};
use common::sim::{CLIENT_SECRET, GraphSim, group, user};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------- helpers

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails with the fix when a system tool the test needs is missing: tests never install
/// packages themselves (`deploy/test-deps.sh`, run by `.ci/run`, does) and never skip.
fn require_tools(tools: &[&str]) {
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "`{tool}` is not installed: run `sudo bash deploy/test-deps.sh` first"
        );
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn get(url: &str) -> (u16, String) {
    match http().get(url).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// Polls `check` every 250 ms until it returns `Some`, or panics after `limit` with `what`.
async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// An object id unique per (tag, n) within this test process: the tests here share one process,
/// hence one salt, and the CN and sAMAccountName use only the id's last 12 characters, so the
/// tag goes into those too.
fn oid(tag: u32, n: u32) -> String {
    common::sim::oid(tag, ((tag & 0xff) << 16) | n)
}

fn synced_user(id: &str, sid: &str) -> Value {
    json!({"id": id, "displayName": format!("User {}", &id[id.len() - 4..]),
           "userPrincipalName": format!("{id}@contoso.com"),
           "onPremisesSecurityIdentifier": sid, "onPremisesSyncEnabled": true})
}

/// "Payroll Admins": a group whose AD name [`block_name`] takes first.
fn conflicting_group(id: &str, member: &str) -> Value {
    json!({"id": id, "displayName": "Payroll Admins", "groupTypes": [], "securityEnabled": true,
           "members": [user(member)]})
}

/// Creates an unowned AD group holding the CN the service would use for "Payroll Admins" `id`.
async fn block_name(dc: &SambaDc, ou: &str, id: &str) {
    let cn = format!("Payroll Admins_{}", &id[id.len() - 12..]);
    let mut ldap = dc.connect().await;
    let sam = format!("pa{}", unique_suffix());
    let sam = &sam[..sam.len().min(20)];
    ldap.add(
        &format!("CN={cn},{ou}"),
        vec![
            ("objectClass", ["top", "group"].into_iter().collect()),
            ("sAMAccountName", [sam].into_iter().collect()),
        ],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
}

/// A small tenant on graph-sim, a fresh OU on the shared DC, and a configured service.
struct Lab {
    dc: &'static SambaDc,
    ou: String,
    sim: GraphSim,
    svc: Service,
    /// In-scope groups, written back.
    groups: Vec<String>,
    /// Users that have AD accounts.
    users: Vec<String>,
    /// A group whose CN is held by an object the service does not own (a dead letter).
    conflicted: Option<String>,
}

impl Lab {
    /// `n_groups` security groups with a member or two each (plus, with `conflict`, one more
    /// whose name is taken in AD), an M365 group, a cloud-only member and an out-of-scope group.
    async fn new(name: &str, tag: u32, n_groups: usize, conflict: bool, sim_args: &[&str]) -> Lab {
        let dc = samba::shared();
        let ou = dc.fresh_ou(name).await;
        let users_ou = dc.fresh_ou(&format!("{name}-users")).await;
        let sids = dc
            .create_users(&users_ou, &format!("ob{}-", unique_suffix()), 6)
            .await;
        let users: Vec<String> = (0..6).map(|i| oid(tag, 100 + i)).collect();
        let mut tenant_users: Vec<Value> = users
            .iter()
            .zip(&sids)
            .map(|(id, sid)| synced_user(id, sid))
            .collect();
        let cloud_only = oid(tag, 199);
        tenant_users.push(json!({"id": cloud_only, "displayName": "Cloud Only",
                                 "userPrincipalName": "cloud.only@contoso.com"}));
        let names = [
            "Finance Team",
            "Engineering",
            "Sales EMEA",
            "Helpdesk",
            "Legal",
            "Marketing",
            "Facilities",
            "Research",
        ];
        let mut groups: Vec<String> = Vec::new();
        let mut tenant_groups = Vec::new();
        for i in 0..n_groups {
            let id = oid(tag, i as u32 + 1);
            let name = match names.get(i) {
                Some(n) => n.to_string(),
                None => format!("Project {i:04}"),
            };
            let mut members = vec![user(&users[i % 6])];
            if i == 0 {
                members.push(user(&users[1]));
                members.push(user(&cloud_only));
            }
            if i == 1 {
                members.push(group(&groups[0]));
            }
            tenant_groups.push(json!({"id": id, "displayName": name, "description": format!("{name} (cloud)"),
                "groupTypes": [], "securityEnabled": true, "mailEnabled": false, "members": members}));
            groups.push(id);
        }
        let m365 = oid(tag, 900);
        tenant_groups.push(
            json!({"id": m365, "displayName": "All Staff", "groupTypes": ["Unified"],
            "securityEnabled": false, "mailEnabled": true,
            "members": users.iter().take(4).map(|u| user(u)).collect::<Vec<_>>()}),
        );
        groups.push(m365);
        tenant_groups.push(
            json!({"id": oid(tag, 901), "displayName": "Synced From AD", "groupTypes": [],
            "securityEnabled": true, "onPremisesSyncEnabled": true, "members": [user(&users[0])]}),
        );
        let conflicted = conflict.then(|| oid(tag, 902));
        if let Some(id) = &conflicted {
            tenant_groups.push(conflicting_group(id, &users[5]));
            block_name(dc, &ou, id).await;
        }
        let sim = GraphSim::start(tenant_users, tenant_groups, sim_args);
        let svc = Service::new(&sim, dc, &ou);
        Lab {
            dc,
            ou,
            sim,
            svc,
            groups,
            users,
            conflicted,
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.svc.http_port)
    }

    /// `run` in the background; killed when the guard drops.
    async fn spawn(&self) -> Running {
        let p = self.svc.spawn();
        let url = format!("{}/healthz", self.base());
        wait_for("/healthz", Duration::from_secs(30), || async {
            (get(&url).await.0 == 200).then_some(())
        })
        .await;
        p
    }

    async fn status(&self) -> Value {
        let (code, body) = get(&format!("{}/status.json", self.base())).await;
        assert_eq!(code, 200, "/status.json: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Waits until the queue is empty and `applied` changes were applied since start.
    async fn wait_applied(&self, applied: u64) -> Value {
        wait_for(
            &format!("{applied} applied changes and an empty queue"),
            Duration::from_secs(120),
            || async {
                let s = self.status().await;
                (s["totals"]["applied"].as_u64() >= Some(applied)
                    && s["queue"]["depth"].as_u64() == Some(0)
                    && s["in_flight"].as_array().is_some_and(Vec::is_empty))
                .then_some(s)
            },
        )
        .await
    }

    /// Changes the tenant: toggles a member of group `i % n` and renames it every other time.
    async fn churn(&self, i: usize) {
        let g = &self.groups[i % self.groups.len()];
        let u = &self.users[(i + 3) % self.users.len()];
        if i.is_multiple_of(2) {
            self.sim.members(g, vec![user(u)], vec![]).await;
        } else {
            self.sim.members(g, vec![], vec![user(u)]).await;
        }
        if i % 4 == 1 {
            self.sim
                .put_group(g, json!({"description": format!("revision {i}")}))
                .await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.svc.dir.path().join("run.log")).unwrap_or_default()
    }

    /// Adds "Payroll Admins" to the tenant now, its AD name already taken.
    async fn add_conflict(&mut self, tag: u32) {
        let id = oid(tag, 902);
        block_name(self.dc, &self.ou, &id).await;
        self.sim
            .put_group(&id, conflicting_group(&id, &self.users[5]))
            .await;
        self.conflicted = Some(id);
    }
}

/// One label of one sample: (metric name, label name, label value).
type Label = (String, String, String);

/// `# TYPE` of every family, and every label value, of a Prometheus text exposition.
fn parse_exposition(text: &str) -> (BTreeMap<String, String>, Vec<Label>) {
    let mut types = BTreeMap::new();
    let mut labels = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            types.insert(
                it.next().unwrap().to_string(),
                it.next().unwrap().to_string(),
            );
        } else if !line.starts_with('#')
            && let Some((name, rest)) = line.split_once('{')
        {
            let inner = &rest[..rest.rfind('}').unwrap()];
            for pair in inner.split("\",") {
                let (k, v) = pair.split_once("=\"").unwrap();
                labels.push((
                    name.to_string(),
                    k.to_string(),
                    v.trim_end_matches('"').to_string(),
                ));
            }
        }
    }
    (types, labels)
}

/// The value of one series (`name{labels}` exactly as exposed, or a bare name).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

// ------------------------------------------------------------------------------- the tests

/// The metric families issue 6 lists, by the type they must have.
const FAMILIES: &[(&str, &str)] = &[
    ("graph_requests_total", "counter"),
    ("graph_throttled_total", "counter"),
    ("graph_retry_after_seconds_total", "counter"),
    ("delta_rounds_total", "counter"),
    ("delta_round_duration_seconds", "histogram"),
    ("changes_enqueued_total", "counter"),
    ("changes_applied_total", "counter"),
    ("queue_depth", "gauge"),
    ("queue_oldest_age_seconds", "gauge"),
    ("dead_letters", "gauge"),
    ("dead_letters_total", "counter"),
    ("ad_operations_total", "counter"),
    ("ad_operation_duration_seconds", "histogram"),
    ("retries_total", "counter"),
    ("replication_lag_seconds", "histogram"),
    ("members_skipped_total", "counter"),
    ("conflicts_total", "counter"),
    ("managed_groups", "gauge"),
    ("reconcile_corrections_total", "counter"),
    ("last_successful_round_timestamp_seconds", "gauge"),
    ("quarantined", "gauge"),
    ("build_info", "gauge"),
    ("ad_up", "gauge"),
    ("ready", "gauge"),
    ("held_deletes", "gauge"),
    ("frozen_groups", "gauge"),
    ("second_writer_detected_total", "counter"),
];

#[tokio::test(flavor = "multi_thread")]
async fn a_metrics_scrape_after_a_round_passes_promtool_and_has_every_metric_with_bounded_labels() {
    require_tools(&["promtool", "prometheus"]);
    let lab = Lab::new("obs-metrics", 0x610, 4, true, &["--page-size", "2"]).await;
    // One throttled groups/delta request (with Retry-After), so the throttling series has a
    // known endpoint label to assert on.
    lab.sim
        .faults(
            json!({"throttle": {"count": 1, "status": 429, "retry_after": "0.2",
                                    "path": "/v1.0/groups/delta"}}),
        )
        .await;
    let _run = lab.spawn().await;
    lab.wait_applied(5).await;
    lab.churn(0).await;
    lab.wait_applied(6).await;

    let (code, text) = get(&format!("{}/metrics", lab.base())).await;
    assert_eq!(code, 200);

    // promtool's own linter on the real scrape.
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    std::io::Write::write_all(p.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- scrape ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Every listed family, with its type; nothing outside the prefix.
    let (types, labels) = parse_exposition(&text);
    for (name, kind) in FAMILIES {
        let full = format!("entra_writeback_{name}");
        assert_eq!(
            types.get(&full).map(String::as_str),
            Some(*kind),
            "{full} missing or mistyped in:\n{text}"
        );
    }
    assert!(types.keys().all(|k| k.starts_with("entra_writeback_")));

    // Bounded labels: short identifiers only, never an object id, a DN or an error message.
    let ids: BTreeSet<&str> = lab
        .groups
        .iter()
        .chain(&lab.users)
        .map(String::as_str)
        .collect();
    for (metric, k, v) in &labels {
        let bounded = v.len() <= 24
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c));
        assert!(
            bounded && !ids.iter().any(|id| v.contains(id)),
            "{metric}: label {k}={v:?} is not a bounded value"
        );
    }

    // The round really shows up.
    let want = [
        (
            r#"entra_writeback_graph_requests_total{endpoint="groups_delta",status_class="2xx"}"#,
            1.0,
        ),
        (
            r#"entra_writeback_graph_throttled_total{endpoint="groups_delta"}"#,
            1.0,
        ),
        (r#"entra_writeback_changes_applied_total{result="ok"}"#, 6.0),
        (
            r#"entra_writeback_changes_applied_total{result="dead"}"#,
            1.0,
        ),
        ("entra_writeback_dead_letters_total", 1.0),
        ("entra_writeback_dead_letters", 1.0),
        (r#"entra_writeback_conflicts_total{kind="name"}"#, 1.0),
        ("entra_writeback_replication_lag_seconds_count", 6.0),
        ("entra_writeback_managed_groups", 5.0),
        (
            "entra_writeback_last_successful_round_timestamp_seconds",
            1.0,
        ),
        ("entra_writeback_ad_up", 1.0),
        ("entra_writeback_ready", 1.0),
        (r#"entra_writeback_retries_total{stage="graph"}"#, 1.0),
        // Users are polled before groups, so the cloud-only user is known as such (not merely
        // "unresolved") by the time its group is applied.
        (
            r#"entra_writeback_members_skipped_total{reason="cloud_only"}"#,
            1.0,
        ),
        ("entra_writeback_graph_retry_after_seconds_total", 0.2),
    ];
    for (series, at_least) in want {
        let v = sample(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
        assert!(v >= at_least, "{series} = {v}, want >= {at_least}");
    }
    // The gauge follows the queue (a poll may queue something between two reads: wait for it
    // to drain rather than assert on one instant).
    let base = lab.base();
    wait_for(
        "entra_writeback_queue_depth 0",
        Duration::from_secs(20),
        || async {
            let (_, t) = get(&format!("{base}/metrics")).await;
            (sample(&t, "entra_writeback_queue_depth") == Some(0.0)).then_some(())
        },
    )
    .await;
    assert!(
        text.contains(&format!(
            r#"entra_writeback_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
}

/// A Prometheus server run from the test, scraping the service every second.
struct Prometheus {
    base: String,
    _proc: Running,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts a Prometheus scraping the service every second, with the shipped alert rules
    /// loaded with every `for:` set to `0s`: the live test checks what each rule's expression
    /// says about real metrics (an alert fires as soon as its condition holds), while the `for:`
    /// durations themselves are checked in simulated time by `promtool test rules
    /// alerts_test.yml` (deploy/prometheus/check.sh).
    async fn start(target_port: u16) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let shipped = std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap();
        let pending = shipped
            .lines()
            .filter(|l| l.trim_start().starts_with("for:"))
            .count();
        assert!(
            pending >= 5,
            "expected alert rules with `for:` in alerts.yml"
        );
        let immediate: String = shipped
            .lines()
            .map(|l| match l.find("for:") {
                Some(at) if l[..at].trim().is_empty() => format!("{}for: 0s\n", &l[..at]),
                _ => format!("{l}\n"),
            })
            .collect();
        let rules = dir.path().join("alerts.yml");
        std::fs::write(&rules, immediate).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: entra-writeback\n    static_configs:\n      - targets: [\"127.0.0.1:{target_port}\"]\n",
            rules = rules.display()
        );
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, config).unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            base: format!("http://127.0.0.1:{port}"),
            _proc: Running(child),
            _dir: dir,
        };
        let ready = format!("{}/-/ready", p.base);
        wait_for("prometheus /-/ready", Duration::from_secs(60), || async {
            (get(&ready).await.0 == 200).then_some(())
        })
        .await;
        p
    }

    async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let url = url::Url::parse_with_params(&format!("{}{path}", self.base), params).unwrap();
        let (code, body) = get(url.as_str()).await;
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|_| panic!("{path} {params:?}: HTTP {code}: {body}"));
        assert_eq!(
            v["status"], "success",
            "{path} {params:?}: HTTP {code}: {body}"
        );
        v["data"].clone()
    }

    /// Names of the alerts firing now.
    async fn firing(&self) -> BTreeSet<String> {
        let alerts = self.api("/api/v1/alerts", &[]).await;
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == "firing")
            .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_string))
            .collect()
    }

    async fn query(&self, expr: &str) -> Vec<Value> {
        let data = self.api("/api/v1/query", &[("query", expr)]).await;
        match data["resultType"].as_str() {
            Some("vector") => data["result"].as_array().cloned().unwrap_or_default(),
            Some("scalar") => vec![json!({"value": data["result"]})],
            other => panic!("{expr}: unexpected result type {other:?}"),
        }
    }
}

/// The Grafana variables replaced as `deploy/prometheus/check.sh --list-exprs` does.
fn concrete(expr: &str) -> String {
    expr.replace("\"$job\"", "\".*\"")
        .replace("\"$instance\"", "\".*\"")
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
}

/// Dashboard panels that must show data after a live round (the others may rightly be empty:
/// held deletes, reconcile corrections, AD errors need situations this test does not create).
const CORE_PANELS: &[&str] = &[
    "Ready",
    "AD reachable",
    "Quarantined",
    "Last successful round",
    "Managed groups",
    "Version",
    "Replication lag (Graph → AD)",
    "Changes applied",
    "Changes enqueued",
    "Queue depth",
    "Oldest queued change",
    "Dead letters",
    "Dead-lettered per minute",
    "Conflicts per minute",
    "Skipped members per minute",
    "Retries per minute",
    "Graph requests",
    "Graph throttled",
    "Retry-After wait",
    "Delta round duration p95",
    "Delta rounds per minute",
    "AD operation latency p95",
    "AD operations",
];

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_a_live_round_and_every_dashboard_and_alert_expression_evaluates() {
    require_tools(&["promtool", "prometheus"]);
    let mut lab = Lab::new("obs-prom", 0x620, 6, false, &["--page-size", "2"]).await;
    let prom = Prometheus::start(lab.svc.http_port).await;
    let run = lab.spawn().await;
    lab.wait_applied(7).await;
    // Prometheus has seen no dead letter yet; then a conflict makes one.
    wait_for(
        "a scrape with 0 dead letters",
        Duration::from_secs(30),
        || async {
            let r = prom.query("entra_writeback_dead_letters_total").await;
            (r.len() == 1 && r[0]["value"][1] == "0").then_some(())
        },
    )
    .await;
    lab.add_conflict(0x620).await;

    // Keep the tenant changing for a while, with a throttling episode, so that every rate and
    // histogram over the last minute has samples.
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(25) {
        lab.churn(i).await;
        if i == 5 {
            lab.sim
                .faults(json!({"throttle": {"count": 2, "status": 429, "retry_after": "0.3"}}))
                .await;
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    lab.wait_applied(7 + i as u64 / 2).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // a few more scrapes

    // The target is up and has been scraped many times.
    let targets = prom.api("/api/v1/targets", &[]).await;
    let active = targets["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["health"], "up", "{}", active[0]);
    let scrapes = prom
        .query("count_over_time(entra_writeback_build_info[10m])")
        .await;
    let n: f64 = scrapes[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(n >= 20.0, "only {n} scrapes");

    // Every expression of the dashboard and of the alert rules, as check.sh lists them: each
    // parses and evaluates.
    let list = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("bash")
        .arg(repo().join("deploy/prometheus/check.sh"))
        .arg("--list-exprs")
        .arg(list.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check.sh failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let exprs = std::fs::read_to_string(list.path()).unwrap();
    let exprs: Vec<&str> = exprs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(exprs.len() >= 30, "{exprs:?}");
    for e in &exprs {
        prom.query(e).await; // asserts status == success
    }

    // The core panels return real numbers.
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("dashboards/entra-writeback.json")).unwrap(),
    )
    .unwrap();
    let mut panels = BTreeMap::new();
    let mut stack: Vec<&Value> = dash["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = stack.pop() {
        if let Some(inner) = p["panels"].as_array() {
            stack.extend(inner);
        }
        if let (Some(title), Some(targets)) = (p["title"].as_str(), p["targets"].as_array()) {
            panels.insert(
                title.to_string(),
                targets
                    .iter()
                    .filter_map(|t| t["expr"].as_str().map(concrete))
                    .collect::<Vec<_>>(),
            );
        }
    }
    let mut empty = Vec::new();
    for title in CORE_PANELS {
        let targets = panels
            .get(*title)
            .unwrap_or_else(|| panic!("no panel {title:?} in the dashboard"));
        for e in targets {
            let result = prom.query(e).await;
            let numbers = result
                .iter()
                .filter_map(|r| r["value"][1].as_str())
                .filter(|v| v.parse::<f64>().is_ok_and(f64::is_finite))
                .count();
            if numbers == 0 {
                empty.push(format!("{title}: {e} -> {result:?}"));
            }
        }
    }
    assert!(
        empty.is_empty(),
        "core panels without data:\n{}",
        empty.join("\n")
    );

    // Some values are known exactly.
    let v = |r: &[Value]| -> f64 { r[0]["value"][1].as_str().unwrap().parse().unwrap() };
    assert_eq!(v(&prom.query("max(entra_writeback_ready)").await), 1.0);
    assert!(v(&prom.query("max(entra_writeback_dead_letters)").await) >= 1.0);
    assert_eq!(
        v(&prom.query("max(entra_writeback_managed_groups)").await),
        lab.groups.len() as f64
    );

    // The alert rules are loaded and evaluate without error; the only one firing is the dead
    // letter this test caused.
    let rules = prom.api("/api/v1/rules", &[]).await;
    let rules: Vec<&Value> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(rules.len() >= 6, "{rules:?}");
    for r in &rules {
        assert_eq!(
            r["health"], "ok",
            "rule {} failed: {}",
            r["name"], r["lastError"]
        );
    }
    // With `for:` at 0s, exactly the alerts whose condition this run created are firing: the
    // dead letter, and the throttling episode (within the last 5 minutes). Nothing else: AD is
    // up, nothing is quarantined or held, lag is low, rounds succeed.
    assert_eq!(
        prom.firing().await,
        firing(&[
            "EntraWritebackDeadLettersGrowing",
            "EntraWritebackGraphThrottled"
        ]),
    );

    // The service goes away: the target-down alert fires from the failed scrapes.
    drop(run);
    wait_for(
        "EntraWritebackDown firing",
        Duration::from_secs(60),
        || async {
            prom.firing()
                .await
                .contains("EntraWritebackDown")
                .then_some(())
        },
    )
    .await;
}

/// A set of alert names, for comparing with [`Prometheus::firing`].
fn firing(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn chromium(profile: &Path, args: &[&str]) -> Output {
    let out = Command::new("timeout")
        .arg("120")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium {args:?} failed ({:?}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_renders_in_headless_chromium_with_health_lag_queue_dead_letters_and_history()
 {
    require_tools(&["chromium"]);
    let lab = Lab::new("obs-page", 0x630, 8, true, &["--page-size", "3"]).await;
    let _run = lab.spawn().await;
    lab.wait_applied(9).await;
    // Some incremental activity: renames and member changes.
    lab.sim
        .put_group(&lab.groups[2], json!({"displayName": "Sales EMEA & APAC"}))
        .await;
    for i in 0..6 {
        lab.churn(i).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    lab.wait_applied(13).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // a few empty incremental rounds

    let url = format!("{}/", lab.base());
    // The raw document: self-contained, reloads itself.
    let (code, html) = get(&url).await;
    assert_eq!(code, 200);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains(r#"<meta http-equiv="refresh" content="5">"#),
        "{html}"
    );
    for external in [
        "<script", "<link", "<img", "<iframe", "@import", "url(", "src=",
    ] {
        assert!(!html.contains(external), "page references {external}");
    }
    for href in html.split("href=\"").skip(1) {
        assert!(
            href.starts_with('/'),
            "link leaves the listener: {href:.40}"
        );
    }

    // What a browser sees.
    let profile = tempfile::tempdir().unwrap();
    let dom = chromium(profile.path(), &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    let conflicted = lab.conflicted.as_deref().unwrap();
    let dead = lab.status().await["queue"]["dead_letters"]
        .as_u64()
        .unwrap();
    assert!(dead >= 1);
    let dead_heading = format!("Dead letters <span class=\"count\">({dead})</span>");
    for want in [
        &dead_heading,
        "entra-writeback: ready",
        "Readiness",
        ">Ready<",
        ">Reachable<",
        "Replication lag",
        "Queue depth",
        "Payroll Admins",
        conflicted,
        ">conflict<",
        "exists and does not carry the anchor",
        "Last applied changes",
        "Sales EMEA &amp; APAC",
        "Finance Team",
        ">applied<",
        "Last delta rounds",
        ">full<",
        ">incremental<",
        ">groups<",
        ">users<",
        "contoso.onmicrosoft.com",
        &lab.ou,
    ] {
        assert!(dom.contains(want), "status page lacks {want:?}:\n{dom}");
    }
    let tiles = dom.matches("class=\"tile ").count();
    assert!(tiles >= 8, "{tiles} tiles");
    let rows = dom.matches("<tr class=\"change\">").count();
    assert!(rows >= 10, "{rows} applied-change rows");
    // Rounds that read something are listed; empty polls only counted.
    assert!(dom.matches("<tr class=\"round\">").count() >= 4);
    assert!(
        dom.contains("empty incremental round(s) since start"),
        "{dom}"
    );

    // The same snapshot as JSON.
    let s = lab.status().await;
    assert_eq!(s["ready"], true);
    assert_eq!(s["dead_letters"][0]["class"], "conflict");
    assert_eq!(s["dead_letters"][0]["group_id"], conflicted);
    assert!(s["lag"]["p50_ms"].as_u64().is_some());
    assert_eq!(s["totals"]["managed_groups"], lab.groups.len() as u64);

    // A screenshot of the real page.
    let shot = profile.path().join("status-page.png");
    chromium(
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,1180",
            &url,
        ],
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(png.len() > 20_000, "screenshot is suspiciously small");
    if std::env::var_os("EW_UPDATE_SCREENSHOT").is_some() {
        std::fs::create_dir_all(repo().join("docs")).unwrap();
        std::fs::write(repo().join("docs/status-page.png"), &png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_follows_graph_and_ad_and_stays_ready_while_the_queue_is_idle() {
    let lab = Lab::new("obs-ready", 0x640, 2, false, &[]).await;
    let base = lab.base();

    // AD unreachable (nothing listens): alive, not ready, and says why.
    let dead_ad = Service::with(
        lab.dc,
        &lab.ou,
        Options {
            ad_url: format!("ldap://127.0.0.1:{}", free_port()),
            tail: "[sync]\nmin_backoff = \"100ms\"\nmax_backoff = \"1s\"\nmax_attempts = 2\n"
                .into(),
            ..Options::new(lab.dc, &lab.sim)
        },
    );
    // Graph unreachable.
    let dead_graph = Service::with(
        lab.dc,
        &lab.ou,
        Options {
            graph_url: format!("http://127.0.0.1:{}", free_port()),
            tail: "[sync]\nmin_backoff = \"100ms\"\nmax_backoff = \"1s\"\nmax_attempts = 2\n"
                .into(),
            ..Options::new(lab.dc, &lab.sim)
        },
    );
    let _a = dead_ad.spawn();
    let _g = dead_graph.spawn();
    for (svc, why, not_why) in [
        (&dead_ad, "no successful AD bind recently", "Graph"),
        (&dead_graph, "no successful Graph round recently", "AD bind"),
    ] {
        let b = format!("http://127.0.0.1:{}", svc.http_port);
        wait_for("/healthz", Duration::from_secs(30), || async {
            (get(&format!("{b}/healthz")).await == (200, "ok\n".into())).then_some(())
        })
        .await;
        // Give the failing side time to fail and the working side time to succeed.
        let body = wait_for(
            &format!("/readyz saying {why}"),
            Duration::from_secs(60),
            || async {
                let (code, body) = get(&format!("{b}/readyz")).await;
                (code == 503 && body.contains(why) && !body.contains(not_why)).then_some(body)
            },
        )
        .await;
        assert!(body.starts_with("not ready: "), "{body}");
        let (_, metrics) = get(&format!("{b}/metrics")).await;
        assert_eq!(sample(&metrics, "entra_writeback_ready"), Some(0.0));
        let (_, page) = get(&format!("{b}/")).await;
        assert!(page.contains("Not ready") && page.contains(why), "{page}");
    }
    let (_, m) = get(&format!("http://127.0.0.1:{}/metrics", dead_ad.http_port)).await;
    assert_eq!(sample(&m, "entra_writeback_ad_up"), Some(0.0));

    // Healthy: ready after the first round, and still ready after more than the 60 s window
    // without any work (the AD probe keeps the AD half fresh).
    let _run = lab.spawn().await;
    lab.wait_applied(3).await;
    wait_for("/readyz 200", Duration::from_secs(30), || async {
        (get(&format!("{base}/readyz")).await == (200, "ready\n".into())).then_some(())
    })
    .await;
    let searches = |m: &str| {
        sample(
            m,
            r#"entra_writeback_ad_operations_total{op="search",result="ok"}"#,
        )
        .unwrap_or(0.0)
    };
    let before = searches(&get(&format!("{base}/metrics")).await.1);
    let idle = Instant::now();
    while idle.elapsed() < Duration::from_secs(70) {
        let (code, body) = get(&format!("{base}/readyz")).await;
        assert_eq!(
            code,
            200,
            "not ready after {:?} idle: {body}\n{}",
            idle.elapsed(),
            tail(&lab.log())
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let (_, m) = get(&format!("{base}/metrics")).await;
    assert!(searches(&m) > before, "no AD probe while idle");
    assert_eq!(sample(&m, "entra_writeback_ready"), Some(1.0));
    assert_eq!(sample(&m, "entra_writeback_ad_up"), Some(1.0));
}

/// Log lines as JSON values (`[log] format = "json"`).
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_have_a_span_per_round_and_per_applied_change_carrying_the_group_id() {
    let lab = Lab::new("obs-spans", 0x650, 3, false, &[]).await;
    let log = lab.svc.once_ok();
    let lines = json_lines(&log);
    assert!(!lines.is_empty(), "no JSON log lines:\n{log}");

    // One "applied" event per group, inside its `apply` span, which carries the group id.
    let applied: BTreeSet<String> = lines
        .iter()
        .filter(|l| l["message"] == "applied")
        .map(|l| {
            assert_eq!(l["span"]["name"], "apply", "{l}");
            l["span"]["group"].as_str().unwrap().to_string()
        })
        .collect();
    let want: BTreeSet<String> = lab.groups.iter().cloned().collect();
    assert!(applied.is_superset(&want), "{applied:?} vs {want:?}");

    // Each round's summary inside its `delta_round` span.
    for resource in ["users", "groups"] {
        assert!(
            lines.iter().any(|l| l["message"] == "delta round complete"
                && l["span"]["name"] == "delta_round"
                && l["span"]["resource"] == resource),
            "no {resource} round span:\n{log}"
        );
    }
    // Everything the worker logs about a group is inside a span that names it.
    for l in &lines {
        if l["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("entra_writeback::directory::apply"))
        {
            assert!(
                l["spans"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["name"] == "apply")),
                "directory event outside an apply span: {l}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_reach_logs_metrics_the_status_page_or_error_messages() {
    let lab = Lab::new("obs-secrets", 0x660, 3, false, &[]).await;
    let ad_password = samba::shared().svc_bind_password.clone();
    // Every access token graph-sim issues starts with this (base64url of its JWT header).
    let token_prefix = "eyJ0eXAiOiJKV1Qi";
    let secrets = [CLIENT_SECRET, ad_password.as_str(), token_prefix];
    let leaks = |what: &str, text: &str| {
        for s in secrets {
            assert!(!text.contains(s), "{what} contains the secret {s:?}");
        }
    };

    // A full round at the most verbose level, every crate included.
    let out = output_within(
        lab.svc
            .command(&["run", "--once"])
            .env("ENTRA_WRITEBACK_LOG", "trace"),
        COMMAND_TIMEOUT,
    );
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let ours: String = log
        .lines()
        .filter(|l| l.contains("\"target\":\"entra_writeback") || !l.starts_with('{'))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(out.status.success(), "{}", tail(&ours));
    assert!(log.lines().count() > 100, "expected a verbose trace log");
    leaks("the trace log of run --once", &log);
    leaks("stdout", &String::from_utf8_lossy(&out.stdout));

    // The running service's outputs.
    lab.sim
        .put_group(&lab.groups[0], json!({"displayName": "Renamed"}))
        .await;
    let _run = {
        let mut c = lab.svc.command(&["run"]);
        c.env("ENTRA_WRITEBACK_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(lab.svc.dir.path().join("run.log")).unwrap(),
            ));
        Running(c.spawn().unwrap())
    };
    wait_for("/healthz", Duration::from_secs(30), || async {
        (get(&format!("{}/healthz", lab.base())).await.0 == 200).then_some(())
    })
    .await;
    lab.wait_applied(1).await;
    for path in ["/", "/status.json", "/metrics", "/readyz", "/healthz"] {
        let (code, body) = get(&format!("{}{path}", lab.base())).await;
        assert_eq!(code, 200, "{path}");
        leaks(path, &body);
    }
    leaks("the debug log of run", &lab.log());
    drop(_run);

    // Wrong credentials: the errors name the account, never the secret tried.
    let wrong_ad = format!("Wr0ng-AD-{}", unique_suffix());
    let wrong_graph = format!("Wr0ng-Graph-{}", unique_suffix());
    for (var, value, cmd) in [
        ("ENTRA_WRITEBACK_AD_BIND_PASSWORD", &wrong_ad, "check"),
        ("ENTRA_WRITEBACK_AD_BIND_PASSWORD", &wrong_ad, "run --once"),
        ("ENTRA_WRITEBACK_GRAPH_CLIENT_SECRET", &wrong_graph, "check"),
        (
            "ENTRA_WRITEBACK_GRAPH_CLIENT_SECRET",
            &wrong_graph,
            "run --once",
        ),
    ] {
        let args: Vec<&str> = cmd.split(' ').collect();
        let out = output_within(
            lab.svc
                .command(&args)
                .env(var, value)
                .env("ENTRA_WRITEBACK_LOG", "trace"),
            COMMAND_TIMEOUT,
        );
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{cmd} with a wrong {var} succeeded");
        assert!(
            !all.contains(value.as_str()),
            "{cmd}: the wrong {var} appears in the output:\n{}",
            tail(&all)
        );
        leaks(cmd, &all);
    }
}

/// Runs `cmd` on a pseudo-terminal (util-linux `script`), 120 columns wide; returns what the
/// terminal showed.
fn on_a_terminal(svc: &Service, args: &str, env: &[(&str, &str)]) -> (bool, String) {
    let bin = env!("CARGO_BIN_EXE_entra-writeback");
    let inner = format!(
        "stty cols 120 rows 40; exec {bin} --config {} {args}",
        svc.config.display()
    );
    let mut c = Command::new("script");
    c.args(["-qefc", &inner, "/dev/null"])
        .stdin(Stdio::null())
        .env(
            "ENTRA_WRITEBACK_GRAPH_CLIENT_SECRET",
            common::sim::CLIENT_SECRET,
        )
        .env(
            "ENTRA_WRITEBACK_AD_BIND_PASSWORD",
            &samba::shared().svc_bind_password,
        )
        .env("TERM", "xterm-256color");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = output_within(&mut c, COMMAND_TIMEOUT);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_initial_sync_shows_bars_on_a_terminal_and_progress_lines_otherwise() {
    require_tools(&["script"]);
    // Big enough to take a few seconds: every page is a flushed transaction.
    const GROUPS: usize = 300;

    // Not a terminal: periodic progress lines, then one summary.
    let lab = Lab::new("obs-progress", 0x670, GROUPS, false, &["--page-size", "1"]).await;
    let out = output_within(
        lab.svc
            .command(&["run", "--once"])
            .env("ENTRA_WRITEBACK_PROGRESS_INTERVAL", "250ms"),
        COMMAND_TIMEOUT,
    );
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{}", tail(&log));
    let lines = json_lines(&log);
    let progress: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "initial sync in progress")
        .collect();
    assert!(
        progress.len() >= 2,
        "expected periodic progress lines:\n{}",
        tail(&log)
    );
    let items: Vec<u64> = progress
        .iter()
        .map(|l| l["graph_items"].as_u64().unwrap())
        .collect();
    assert!(
        items.windows(2).all(|w| w[0] <= w[1]),
        "progress went backwards: {items:?}"
    );
    let done: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "initial sync complete")
        .collect();
    assert_eq!(done.len(), 1, "{}", tail(&log));
    assert!(done[0]["applied"].as_u64().unwrap() > GROUPS as u64);
    assert_eq!(done[0]["dead_letters"], 0);
    // An incremental round is not an initial sync: no progress output at all.
    let again = lab.svc.once_ok();
    assert!(!again.contains("initial sync"), "{}", tail(&again));

    // A terminal: bars on stdout (the log lines, human-formatted, print above them).
    let lab = Lab::new("obs-bars", 0x671, GROUPS, false, &["--page-size", "1"]).await;
    let cfg = std::fs::read_to_string(&lab.svc.config).unwrap();
    std::fs::write(
        &lab.svc.config,
        cfg.replace("format = \"json\"", "format = \"auto\""),
    )
    .unwrap();
    let (ok, screen) = on_a_terminal(&lab.svc, "run --once", &[]);
    assert!(ok, "run --once on a terminal failed:\n{screen}");
    for want in [
        "Graph users",
        "Graph groups",
        "AD",
        "changes",
        "done",
        "initial sync complete",
    ] {
        assert!(screen.contains(want), "terminal lacks {want:?}:\n{screen}");
    }
    // The AD bar ends full: "N/N changes", N being every change of the sync.
    let full_bar = screen.split(" changes").any(|before| {
        let frac = before
            .rsplit(|c: char| c != '/' && !c.is_ascii_digit())
            .next();
        frac.and_then(|f| f.split_once('/'))
            .is_some_and(|(a, b)| a == b && a.parse::<usize>().is_ok_and(|n| n > GROUPS))
    });
    assert!(full_bar, "the AD bar did not reach its end:\n{screen}");
    assert!(
        !screen.contains("{\"timestamp\""),
        "JSON logs on a terminal:\n{screen}"
    );
    assert!(!screen.contains("initial sync in progress"));
}
