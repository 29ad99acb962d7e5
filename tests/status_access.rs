//! Who may read the status page: `/` and `/status.json` name groups and DNs, so on a listener
//! that is not loopback they need `[http] status_token` (or are not served), while `/metrics`
//! and the probes stay open and name no group. The real binary, against graph-sim and Samba.

mod common;

use std::time::{Duration, Instant};

use common::samba::{self, unique_suffix};
use common::security_group;
use common::service::{Running, Service, tail};
use common::sim::{GraphSim, oid};

/// A converged one-group instance listening on `listen_ip`, with an optional token (given
/// through the environment, as an operator keeping secrets out of the file would).
struct Instance {
    svc: Service,
    _sim: GraphSim,
    _run: Running,
    name: String,
}

impl Instance {
    async fn start(tag: u32, listen_ip: &str, token: Option<&str>) -> Instance {
        let dc = samba::shared();
        let ou = dc.fresh_ou(&format!("status-{tag:x}")).await;
        let name = format!("Payroll Admins {}", unique_suffix());
        let sim = GraphSim::start(
            vec![],
            vec![security_group(&oid(tag, tag), &name, vec![])],
            &[],
        );
        let svc = Service::new(&sim, dc, &ou);
        let config = std::fs::read_to_string(&svc.config).unwrap();
        let config = config.replace(
            &format!("listen = \"127.0.0.1:{}\"", svc.http_port),
            &format!("listen = \"{listen_ip}:{}\"", svc.http_port),
        );
        std::fs::write(&svc.config, config).unwrap();
        let mut cmd = svc.command(&["run"]);
        if let Some(t) = token {
            cmd.env("ENTRA_WRITEBACK_HTTP_STATUS_TOKEN", t);
        }
        let run = Running(
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(svc.dir.path().join("run.log")).unwrap())
                .spawn()
                .unwrap(),
        );
        let me = Instance {
            svc,
            _sim: sim,
            _run: run,
            name,
        };
        // Converged: the group is in AD, so the status page has a name and a DN to show.
        let deadline = Instant::now() + Duration::from_secs(60);
        while dc.groups_in(&ou).await.is_empty() {
            let log = std::fs::read_to_string(me.svc.dir.path().join("run.log")).unwrap();
            assert!(
                Instant::now() < deadline,
                "the group never reached AD:\n{}",
                tail(
                    &log.lines()
                        .filter(|l| !l.contains("delta round complete"))
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        me
    }

    async fn get(&self, path: &str, bearer: Option<&str>) -> (u16, String, Option<String>) {
        let mut req = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}{path}", self.svc.http_port))
            .timeout(Duration::from_secs(20));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let challenge = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        (status, r.text().await.unwrap(), challenge)
    }

    /// `/metrics`, `/healthz` and `/readyz` answer without a token and name no group.
    async fn probes_are_open_and_anonymous(&self) {
        for path in ["/metrics", "/healthz", "/readyz"] {
            let (code, body, _) = self.get(path, None).await;
            assert!(code == 200 || path == "/readyz", "{path}: {code} {body}");
            assert!(!body.contains(&self.name), "{path} names a group:\n{body}");
            assert!(!body.contains("OU=status-"), "{path} shows a DN:\n{body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_loopback_listener_without_a_token_serves_no_names() {
    let i = Instance::start(0x1a10, "0.0.0.0", None).await;
    for path in ["/", "/status.json"] {
        let (code, body, _) = i.get(path, None).await;
        assert_eq!(code, 404, "{path}: {body}");
        assert!(!body.contains(&i.name), "{path}: {body}");
        assert!(
            body.contains("http.status_token"),
            "{path} does not say why: {body}"
        );
        // A token the service does not have changes nothing.
        let (code, _, _) = i.get(path, Some("guess")).await;
        assert_eq!(code, 404, "{path}");
    }
    i.probes_are_open_and_anonymous().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_token_the_status_page_needs_it_and_shows_the_groups() {
    const TOKEN: &str = "tok-5f1e0c9a7d2b";
    let i = Instance::start(0x1a20, "0.0.0.0", Some(TOKEN)).await;
    for path in ["/", "/status.json"] {
        for wrong in [None, Some("tok-5f1e0c9a7d2"), Some("tok-5f1e0c9a7d2bX")] {
            let (code, body, challenge) = i.get(path, wrong).await;
            assert_eq!(code, 401, "{path} with {wrong:?}: {body}");
            assert!(
                challenge
                    .as_deref()
                    .is_some_and(|c| c.starts_with("Bearer")),
                "{path}: no Bearer challenge: {challenge:?}"
            );
            assert!(
                !body.contains(&i.name) && !body.contains(TOKEN),
                "{path}: {body}"
            );
        }
        let (code, body, _) = i.get(path, Some(TOKEN)).await;
        assert_eq!(code, 200, "{path}: {body}");
        assert!(
            body.contains(&i.name),
            "{path} with the token lacks the group:\n{body}"
        );
        assert!(!body.contains(TOKEN), "{path} shows the token");
    }
    i.probes_are_open_and_anonymous().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_loopback_the_page_is_open_unless_a_token_is_set() {
    let open = Instance::start(0x1a30, "127.0.0.1", None).await;
    let (code, body, _) = open.get("/status.json", None).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&open.name), "{body}");

    let guarded = Instance::start(0x1a40, "127.0.0.1", Some("loopback-token-1")).await;
    assert_eq!(guarded.get("/status.json", None).await.0, 401);
    assert_eq!(guarded.get("/", Some("loopback-token-1")).await.0, 200);
}
