//! Secrets never leave the process: with known, distinctive secrets (the Graph client secret,
//! the lab's real AD bind password, a status token, the certificate credential's private key)
//! and logging at `trace` for every crate, full rounds, the listener, every inspection command
//! and the error paths (a wrong bind password, a Graph 401, an unreachable AD) are scraped, and
//! no secret appears in any of them, raw, base64- or percent-encoded.
//!
//! The scraper proves it can see: a canary, a string handled exactly like a secret but put in a
//! group's display name, must be found in every channel that shows group names (logs, `plan`,
//! the queue commands, `/` and `/status.json`), so a channel that were empty or unread would
//! fail the test instead of passing it.

mod common;

use std::collections::BTreeSet;
use std::process::Output;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::samba::{self, unique_suffix};
use common::service::{COMMAND_TIMEOUT, Options, Service, free_port, output_within, tail};
use common::sim::{CERT_CLIENT_ID, CLIENT_ID, GraphSim, TENANT, cert_pem_path, default_clients};
use common::{security_group, wait};
use serde_json::{Value, json};

const CLIENT_SECRET: &str = "cs-Vq8mZr2LpX9sKt4w+client/secret";
const STATUS_TOKEN: &str = "st-Hx7Nn3Jd5Qa1Wm6e-status-token";
const WRONG_PASSWORD: &str = "wp-Lk4Ty8Rb2Zc6Ug0v-wrong+bind";
const WRONG_SECRET: &str = "ws-Mj5Pq9Ed3Fh7Gi1k-wrong-graph";
/// Not a secret: the marker that proves each channel is read (see the module docs).
const CANARY: &str = "cn-Rr4Ss8Tt2Uu6Vv0w-canary";

/// Looks for each needle, under its label, in every scraped text.
struct Scraper {
    needles: Vec<(String, String)>,
}

impl Scraper {
    /// Every secret raw, base64-encoded and percent-encoded (as in a form body); the private
    /// key by each of its base64 lines.
    fn new(secrets: &[(&str, &str)], key_pem: &str) -> Scraper {
        let mut needles = Vec::new();
        for (label, s) in secrets {
            needles.push((label.to_string(), s.to_string()));
            let form: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
            needles.push((format!("{label} (base64)"), STANDARD.encode(s)));
            if form != *s {
                needles.push((format!("{label} (form-encoded)"), form));
            }
        }
        let key = &key_pem[key_pem
            .find("-----BEGIN PRIVATE KEY-----")
            .expect("a PKCS#8 key")..];
        for line in key
            .lines()
            .filter(|l| l.len() >= 40 && !l.starts_with("-----"))
        {
            needles.push(("client certificate key".into(), line.to_string()));
        }
        Scraper { needles }
    }

    /// The labels of the needles found in `text`.
    fn found(&self, text: &str) -> BTreeSet<String> {
        self.needles
            .iter()
            .filter(|(_, n)| text.contains(n.as_str()))
            .map(|(label, _)| label.clone())
            .collect()
    }
}

/// What was read: (channel, text).
#[derive(Default)]
struct Scraped(Vec<(String, String)>);

impl Scraped {
    fn add(&mut self, channel: &str, text: impl Into<String>) {
        self.0.push((channel.to_string(), text.into()));
    }

    /// Records stdout and stderr of a command as two channels; returns both joined.
    fn command(&mut self, channel: &str, out: &Output) -> String {
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        self.add(&format!("{channel}: stdout"), o.clone());
        self.add(&format!("{channel}: stderr"), e.clone());
        o + &e
    }
}

/// The service with the secrets in its (0600) config file and the bind password in the
/// environment, every command logging at `trace`.
struct Setup {
    svc: Service,
    sim: GraphSim,
    ou: String,
    group_id: String,
}

impl Setup {
    async fn new(canary_name: &str) -> Setup {
        let dc = samba::shared();
        let ou = dc.fresh_ou("secrets").await;
        let group_id = common::sim::oid(0x5ec, 1);
        let mut clients = default_clients();
        clients[0] = json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET});
        let tenant = json!({"tenant_id": TENANT, "clients": clients, "users": [],
            "groups": [security_group(&group_id, canary_name, vec![])]});
        let sim = GraphSim::start_tenant(tenant, &[]);
        let svc = Service::with(
            dc,
            &ou,
            Options {
                tail: "[sync]\nmin_backoff = \"50ms\"\nmax_backoff = \"200ms\"\nmax_attempts = 2\n"
                    .into(),
                ..Options::new(dc, &sim)
            },
        );
        let me = Setup {
            svc,
            sim,
            ou,
            group_id,
        };
        me.edit(&format!("client_id = \"{CLIENT_ID}\""), |line| {
            format!("{line}\nclient_secret = \"{CLIENT_SECRET}\"")
        });
        me.edit("[http]", |line| {
            format!("{line}\nstatus_token = \"{STATUS_TOKEN}\"")
        });
        me
    }

    /// Replaces the config line `line` by `with(line)`, keeping the file private.
    fn edit(&self, line: &str, with: impl FnOnce(&str) -> String) {
        use std::os::unix::fs::PermissionsExt;
        let text = std::fs::read_to_string(&self.svc.config).unwrap();
        assert!(text.contains(line), "no `{line}` in:\n{text}");
        std::fs::write(&self.svc.config, text.replacen(line, &with(line), 1)).unwrap();
        let private = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(&self.svc.config, private).unwrap();
    }

    /// A command with `bind_password` in the environment and everything logged at trace.
    fn command(&self, args: &[&str], bind_password: &str) -> std::process::Command {
        let mut c = self.svc.command(args);
        c.env_remove("ENTRA_WRITEBACK_GRAPH_CLIENT_SECRET")
            .env("ENTRA_WRITEBACK_AD_BIND_PASSWORD", bind_password)
            .env("ENTRA_WRITEBACK_LOG", "trace");
        c
    }

    fn run(&self, args: &[&str], bind_password: &str) -> Output {
        output_within(&mut self.command(args, bind_password), COMMAND_TIMEOUT)
    }
}

/// A wrong bind password (`check`, `run --once`), then the queue that run left.
fn wrong_bind_password(s: &Setup, out: &mut Scraped) {
    let text = out.command(
        "check, wrong bind password",
        &s.run(&["check"], WRONG_PASSWORD),
    );
    assert!(text.contains("result 49"), "{}", tail(&text));
    let once = s.run(&["run", "--once"], WRONG_PASSWORD);
    let text = out.command("run --once, wrong bind password", &once);
    assert_eq!(once.status.code(), Some(1), "{}", tail(&text));
    let list = s.run(&["queue", "list", "--json"], WRONG_PASSWORD);
    out.command("queue list --json", &list);
    let rows: Vec<Value> = serde_json::from_slice(&list.stdout).unwrap();
    assert!(!rows.is_empty(), "nothing queued");
    for row in rows {
        let seq = row["seq"].to_string();
        out.command(
            "queue show SEQ",
            &s.run(&["queue", "show", &seq], WRONG_PASSWORD),
        );
    }
    for args in [&["queue", "list"][..], &["queue", "status", "--json"]] {
        out.command(&args.join(" "), &s.run(args, WRONG_PASSWORD));
    }
}

/// After a rename in the cloud: a `run --once` that applies it, `check`, and the inspection
/// commands.
async fn later_rounds(s: &Setup, out: &mut Scraped, password: &str, new_name: &str) {
    s.sim
        .put_group(&s.group_id, json!({"displayName": new_name}))
        .await;
    let once = s.run(&["run", "--once"], password);
    let text = out.command("run --once", &once);
    assert!(once.status.success(), "{}", tail(&text));
    let check = s.run(&["check"], password);
    let text = out.command("check", &check);
    assert!(check.status.success(), "{}", tail(&text));
    for args in [
        &["queue", "list", "--dead", "--json"][..],
        &["queue", "status"],
        &["decommission"],
    ] {
        out.command(&args.join(" "), &s.run(args, password));
    }
}

/// `run` in the background, converging AD: `/metrics`, the probes, the status page with the
/// token and the refusals without it, then its log.
async fn listener(s: &Setup, out: &mut Scraped, password: &str) {
    let log_path = s.svc.dir.path().join("run.log");
    let running = common::service::Running(
        s.command(&["run"], password)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let port = s.svc.http_port;
    wait::until(
        "the listener",
        60,
        Duration::from_millis(200),
        Some(&s.svc),
        async || wait::http_get(port, "/metrics").await.is_some(),
    )
    .await;
    // The run has done its round (the canary group logged at DEBUG, and on the status page)
    // before the pages are read and it is stopped: otherwise those channels could prove nothing.
    let http = reqwest::Client::new();
    let page = |path: &'static str| {
        let req = http
            .get(format!("http://127.0.0.1:{port}{path}"))
            .bearer_auth(STATUS_TOKEN);
        async move {
            match req.send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            }
        }
    };
    wait::until(
        "the run's round in its trace log and on its status page",
        60,
        Duration::from_millis(200),
        Some(&s.svc),
        async || {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            log.contains(CANARY)
                && log.lines().any(|l| {
                    l.contains(r#""level":"DEBUG""#) && l.contains(r#""target":"entra_writeback::"#)
                })
                && page("/").await.contains(CANARY)
                && page("/status.json").await.contains(CANARY)
        },
    )
    .await;
    for (path, token, want) in [
        ("/metrics", None, Some(200)),
        ("/healthz", None, Some(200)),
        ("/readyz", None, None),
        ("/", Some(STATUS_TOKEN), Some(200)),
        ("/status.json", Some(STATUS_TOKEN), Some(200)),
        ("/", None, Some(401)),
        ("/status.json", Some(WRONG_SECRET), Some(401)),
    ] {
        let mut req = http.get(format!("http://127.0.0.1:{port}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let code = r.status().as_u16();
        let headers = format!("{:?}", r.headers());
        let body = r.text().await.unwrap();
        assert!(want.is_none_or(|w| w == code), "{path}: {code} {body}");
        out.add(
            &format!("GET {path} ({code})"),
            format!("{headers}\n{body}"),
        );
    }
    drop(running);
    out.add(
        "run (trace log)",
        std::fs::read_to_string(&log_path).unwrap(),
    );
}

/// A Graph 401 (a wrong client secret) and an unreachable AD, each through `check` and
/// `run --once`; then the certificate credential. Restores the config after each.
fn error_paths(s: &Setup, out: &mut Scraped, password: &str) {
    let original = std::fs::read_to_string(&s.svc.config).unwrap();
    let restore = || std::fs::write(&s.svc.config, &original).unwrap();
    s.edit(&format!("client_secret = \"{CLIENT_SECRET}\""), |_| {
        format!("client_secret = \"{WRONG_SECRET}\"")
    });
    for args in [&["check"][..], &["run", "--once"]] {
        let o = s.run(args, password);
        let text = out.command(&format!("{}, Graph 401", args.join(" ")), &o);
        assert_eq!(o.status.code(), Some(1), "{}", tail(&text));
        assert!(
            text.contains("401") || text.contains("invalid_client"),
            "{}",
            tail(&text)
        );
    }
    restore();
    let dc = samba::shared();
    s.edit(&format!("url = \"{}\"", dc.url), |_| {
        format!("url = \"ldap://127.0.0.1:{}\"", free_port())
    });
    for args in [&["check"][..], &["run", "--once"]] {
        let o = s.run(args, password);
        let text = out.command(&format!("{}, AD unreachable", args.join(" ")), &o);
        assert_eq!(o.status.code(), Some(1), "{}", tail(&text));
        assert!(text.contains("cannot connect to AD"), "{}", tail(&text));
    }
    restore();
    s.edit(&format!("client_id = \"{CLIENT_ID}\""), |_| {
        format!("client_id = \"{CERT_CLIENT_ID}\"")
    });
    s.edit(&format!("client_secret = \"{CLIENT_SECRET}\""), |_| {
        format!("client_certificate = \"{}\"", cert_pem_path().display())
    });
    for args in [&["check"][..], &["run", "--once"]] {
        let o = s.run(args, password);
        let text = out.command(&format!("{}, certificate credential", args.join(" ")), &o);
        assert!(o.status.success(), "{}", tail(&text));
    }
    restore();
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_appears_in_logs_pages_commands_or_errors() {
    let dc = samba::shared();
    let canary_name = format!("Canary {CANARY} {}", unique_suffix());
    let key_pem = std::fs::read_to_string(cert_pem_path()).unwrap();
    let secrets = [
        ("graph.client_secret", CLIENT_SECRET),
        ("ad.bind_password", dc.svc_bind_password.as_str()),
        ("http.status_token", STATUS_TOKEN),
        ("wrong bind password", WRONG_PASSWORD),
        ("wrong client secret", WRONG_SECRET),
        ("canary", CANARY),
    ];
    let scraper = Scraper::new(&secrets, &key_pem);
    // The scraper finds what it is looking for, in each form.
    let key_at = key_pem.find("PRIVATE KEY-----").unwrap();
    let sample = format!(
        "a{}b{}c",
        STANDARD.encode(STATUS_TOKEN),
        &key_pem[key_at + 100..key_at + 300]
    );
    assert_eq!(
        scraper.found(&sample),
        BTreeSet::from([
            "http.status_token (base64)".into(),
            "client certificate key".into()
        ])
    );

    let s = Setup::new(&canary_name).await;
    let mut out = Scraped::default();
    wrong_bind_password(&s, &mut out);
    let plan = s.run(&["plan"], &dc.svc_bind_password);
    out.command("plan", &plan);
    listener(&s, &mut out, &dc.svc_bind_password).await;
    let renamed = format!("{canary_name} renamed");
    later_rounds(&s, &mut out, &dc.svc_bind_password, &renamed).await;
    let groups = dc.groups_in(&s.ou).await;
    assert_eq!(groups.len(), 1, "the rounds did not converge");
    error_paths(&s, &mut out, &dc.svc_bind_password);

    let mut leaks = Vec::new();
    let mut canary_seen = BTreeSet::new();
    for (channel, text) in &out.0 {
        let mut found = scraper.found(text);
        if found.remove("canary") {
            canary_seen.insert(channel.as_str());
        }
        if !found.is_empty() {
            leaks.push(format!("{channel}: {found:?}"));
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    // Logging really was at trace, for the service and its libraries.
    let log = &out
        .0
        .iter()
        .find(|(c, _)| c == "run (trace log)")
        .unwrap()
        .1;
    let lines_at = |level: &str, target: &str| {
        log.lines()
            .filter(|l| l.contains(&format!(r#""level":"{level}""#)) && l.contains(target))
            .count()
    };
    assert!(lines_at("TRACE", "rustls") > 0 && lines_at("TRACE", "hyper") > 0);
    assert!(lines_at("DEBUG", r#""target":"entra_writeback::"#) > 0);
    // The queue names changes by group id, not by name: that is its witness (`queue show`
    // output was checked as it was read).
    for (channel, text) in &out.0 {
        if channel == "queue list --json: stdout" || channel == "queue list: stdout" {
            assert!(text.contains(&s.group_id), "{channel}: {text}");
        }
    }
    for channel in [
        "plan: stdout",
        "decommission: stdout",
        "run --once: stderr",
        "GET / (200)",
        "GET /status.json (200)",
        "run (trace log)",
    ] {
        assert!(
            canary_seen.contains(channel),
            "the canary is not seen in `{channel}`, so that channel proves nothing; seen in \
             {canary_seen:?}"
        );
    }
    for channel in [
        "GET /metrics (200)",
        "GET / (401)",
        "GET /status.json (401)",
    ] {
        assert!(!canary_seen.contains(channel), "{channel} names a group");
    }
}
