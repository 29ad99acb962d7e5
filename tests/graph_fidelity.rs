//! Graph source fidelity (issue 3): every documented behaviour of Microsoft Graph delta query,
//! played by graph-sim against the real binaries and a real Samba AD DC. Each test asserts the
//! final AD state, or the exact requests the service made (graph-sim's request log).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::samba::{self, SambaDc, attr_first, entry_sid, unique_suffix};
use common::service::{Options, Service, tail};
use common::sim::{CERT_CLIENT_ID, CLIENT_ID, GraphSim, TENANT, cert_pem_path, group, oid, user};
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

const SYNC: &str = "[sync]\nmin_backoff = \"100ms\"\nmax_backoff = \"1s\"\nmax_attempts = 4\n";

fn sec(id: &str, name: &str, members: Vec<Value>) -> Value {
    json!({"id": id, "displayName": name, "groupTypes": [], "securityEnabled": true,
           "mailEnabled": false, "members": members})
}

fn anchor(id: &str) -> String {
    format!("Group_{id}")
}

/// A service whose `[graph]` table gets `graph_lines` and whose config file ends with `tail`
/// (`[ad]` extras go in `ad_extra`). Group ids must differ in their last 12 characters across
/// services sharing the DC (`oid(_, n)` with distinct `n`): sAMAccountNames are domain-wide.
fn service(
    sim: &GraphSim,
    dc: &SambaDc,
    ou: &str,
    graph_lines: &str,
    ad_extra: &str,
    tail: &str,
) -> Service {
    let svc = Service::with(
        dc,
        ou,
        Options {
            ad_extra: ad_extra.into(),
            tail: format!("{SYNC}{tail}"),
            ..Options::new(dc, sim)
        },
    );
    edit_graph(&svc, graph_lines, &[]);
    svc
}

/// Inserts lines into the `[graph]` table and applies text replacements to the config file.
fn edit_graph(svc: &Service, graph_lines: &str, replace: &[(&str, &str)]) {
    let mut text = std::fs::read_to_string(&svc.config).unwrap();
    text = text.replacen(
        "poll_interval = \"1s\"\n",
        &format!("poll_interval = \"1s\"\n{graph_lines}\n"),
        1,
    );
    for (from, to) in replace {
        assert!(text.contains(from), "config has no {from}");
        text = text.replace(from, to);
    }
    std::fs::write(&svc.config, text).unwrap();
}

/// What AD holds under `ou`: anchor → (displayName, description, member SIDs, objectSid).
type AdState = BTreeMap<String, (String, Option<String>, BTreeSet<String>, String)>;

async fn ad(dc: &SambaDc, ou: &str) -> AdState {
    let mut out = BTreeMap::new();
    for e in dc.groups_in(ou).await {
        let a = attr_first(&e, "adminDescription").unwrap().to_string();
        let name = attr_first(&e, "displayName")
            .unwrap_or_default()
            .to_string();
        let desc = attr_first(&e, "description").map(str::to_string);
        out.insert(
            a,
            (
                name,
                desc,
                dc.member_sids(&e.dn).await,
                entry_sid(&e).unwrap(),
            ),
        );
    }
    out
}

/// anchor → member SIDs, for comparing with what the tenant says.
fn members_of(state: &AdState) -> BTreeMap<String, BTreeSet<String>> {
    state
        .iter()
        .map(|(k, v)| (k.clone(), v.2.clone()))
        .collect()
}

fn sids(v: &[&String]) -> BTreeSet<String> {
    v.iter().map(|s| (*s).clone()).collect()
}

/// `/v1.0` requests of the log (not token requests).
fn graph_requests(log: &[Value]) -> Vec<&Value> {
    log.iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/v1.0/")))
        .collect()
}

fn token_forms(log: &[Value]) -> Vec<&Value> {
    log.iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/oauth2/v2.0/token"))
        })
        .map(|r| &r["form"])
        .collect()
}

fn jwt_part(jwt: &str, i: usize) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(i).unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_credentials_rs256_and_ps256_and_clear_auth_errors() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("gf-cert").await;
    let ou2 = dc.fresh_ou("gf-cert2").await;
    let users_ou = dc.fresh_ou("gf-cert-users").await;
    let s = dc
        .create_users(&users_ou, &format!("gc{}-", unique_suffix()), 1)
        .await;
    let (u0, g) = (oid(0x3001, 100), oid(0x3001, 1));
    let sim = GraphSim::start(
        vec![common::synced_user(&u0, &s[0])],
        vec![sec(&g, "Cert Group", vec![user(&u0)])],
        &[],
    );
    let cert = format!("client_certificate = \"{}\"", cert_pem_path().display());
    let (secret_app, cert_app) = (
        format!("client_id = \"{CLIENT_ID}\""),
        format!("client_id = \"{CERT_CLIENT_ID}\""),
    );
    let client = [(secret_app.as_str(), cert_app.as_str())];

    // RS256 (the default). The harness also sets a client secret in the environment: the
    // configured certificate wins.
    let rs = service(&sim, dc, &ou, &cert, "", "");
    edit_graph(&rs, "", &client);
    rs.once_ok();
    let state = ad(dc, &ou).await;
    assert_eq!(state[&anchor(&g)].2, sids(&[&s[0]]));

    let log = sim.requests().await;
    let forms = token_forms(&log);
    assert_eq!(forms.len(), 1, "one token for the whole run");
    let f = forms[0];
    assert!(f.get("client_secret").is_none());
    assert_eq!(f["client_id"], CERT_CLIENT_ID);
    assert_eq!(
        f["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert_eq!(f["scope"], format!("{}/.default", sim.base));
    let jwt = f["client_assertion"].as_str().unwrap();
    let (h, c) = (jwt_part(jwt, 0), jwt_part(jwt, 1));
    let der = rustls_pki_types::CertificateDer::from_pem_file(cert_pem_path()).unwrap();
    let thumb = |alg| URL_SAFE_NO_PAD.encode(ring::digest::digest(alg, der.as_ref()));
    assert_eq!(h["alg"], "RS256");
    assert_eq!(h["x5t"], thumb(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY));
    assert_eq!(h["x5t#S256"], thumb(&ring::digest::SHA256));
    assert_eq!(c["aud"], format!("{}/{TENANT}/oauth2/v2.0/token", sim.base));
    assert_eq!(
        (&c["iss"], &c["sub"]),
        (&json!(CERT_CLIENT_ID), &json!(CERT_CLIENT_ID))
    );
    assert_eq!(c["nbf"], c["iat"]);
    let life = c["exp"].as_u64().unwrap() - c["nbf"].as_u64().unwrap();
    assert!(life > 0 && life <= 600, "assertion lifetime {life} s");
    assert!(c["jti"].as_str().is_some_and(|j| j.len() == 36));

    // PS256, and a Graph host that is not the login host (as in national clouds): the scope
    // follows graph_url, the assertion audience follows authority_url. (Another tenant, so the
    // group's sAMAccountName does not clash with the first one's.)
    let (u1, g2) = (oid(0x3001, 101), oid(0x3001, 11));
    let sim = GraphSim::start(
        vec![common::synced_user(&u1, &s[0])],
        vec![sec(&g2, "Cert Group", vec![user(&u1)])],
        &[],
    );
    let port = sim.base.rsplit(':').next().unwrap().to_string();
    let graph_host = format!("http://localhost:{port}");
    let ps = service(
        &sim,
        dc,
        &ou2,
        &format!("{cert}\nclient_assertion_algorithm = \"PS256\""),
        "",
        "",
    );
    edit_graph(
        &ps,
        "",
        &[
            client[0],
            (
                &format!("graph_url = \"{}\"", sim.base),
                &format!("graph_url = \"{graph_host}/\""),
            ),
        ],
    );
    ps.once_ok();
    assert_eq!(ad(dc, &ou2).await[&anchor(&g2)].2, sids(&[&s[0]]));
    let log = sim.requests().await;
    let f = token_forms(&log)[0];
    assert_eq!(
        f["scope"],
        format!("{graph_host}/.default"),
        "scope = {{graph_url}}/.default"
    );
    let jwt = f["client_assertion"].as_str().unwrap();
    assert_eq!(jwt_part(jwt, 0)["alg"], "PS256");
    assert_eq!(
        jwt_part(jwt, 1)["aud"],
        format!("{}/{TENANT}/oauth2/v2.0/token", sim.base)
    );

    // Clear errors naming what to fix.
    // (config replacements, AADSTS code, key the hint names)
    type Case = (Vec<(String, String)>, &'static str, &'static str);
    let cases: Vec<Case> = vec![
        (
            vec![(
                format!("tenant_id = \"{TENANT}\""),
                "tenant_id = \"fabrikam.onmicrosoft.com\"".into(),
            )],
            "AADSTS90002",
            "graph.tenant_id",
        ),
        (vec![], "AADSTS7000215", "graph.client_secret"),
        (
            vec![(
                format!("client_id = \"{CLIENT_ID}\""),
                "client_id = \"no-such-app\"".into(),
            )],
            "AADSTS700016",
            "graph.client_id",
        ),
    ];
    for (replace, code, key) in cases {
        let bad = service(&sim, dc, &ou, "", "", "");
        let r: Vec<(&str, &str)> = replace
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        edit_graph(&bad, "", &r);
        let out = bad
            .command(&["check"])
            .env("ENTRA_WRITEBACK_GRAPH_CLIENT_SECRET", "wrong-secret-value")
            .output()
            .unwrap();
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains(code) && text.contains(key),
            "expected {code} and {key}:\n{text}"
        );
        assert!(
            !text.contains("wrong-secret-value"),
            "secret leaked:\n{text}"
        );
    }
    // A certificate the app registration does not know (the secret app has none registered).
    let bad = service(&sim, dc, &ou, &cert, "", "");
    let out = bad.run(&["check"]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("invalid_client") && text.contains("graph.client_certificate"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_renewed_before_expiry_and_after_a_401() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("gf-renew").await;
    let (g, h) = (oid(0x3002, 1), oid(0x3002, 2));
    let sim = GraphSim::start(
        vec![],
        vec![sec(&g, "Renew", vec![])],
        &["--token-lifetime", "4s"],
    );
    let svc = service(&sim, dc, &ou, "", "", "");
    let mut child = svc.spawn();
    // 4 s tokens are renewed at half their lifetime: a few tokens in ~7 s, and no 401.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let log = sim.requests().await;
    let tokens = token_forms(&log).len();
    assert!(tokens >= 2, "{tokens} token request(s)");
    assert!(
        graph_requests(&log).iter().all(|r| r["status"] != 401),
        "a token was used after it expired"
    );
    // The simulator clock jumps 2 h: Graph answers 401; the service drops its token, gets a new
    // one and goes on.
    sim.advance_clock("2h").await;
    sim.put_group(
        &h,
        json!({"displayName": "After Jump", "securityEnabled": true, "groupTypes": []}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ad(dc, &ou).await.contains_key(&anchor(&h)) {
        assert!(
            Instant::now() < deadline,
            "{}",
            tail(&std::fs::read_to_string(svc.dir.path().join("run.log")).unwrap_or_default())
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A delta token expires (410 + Location) while the tenant changes and someone edits AD by hand:
/// the full resync leaves AD exactly as the tenant says. Then each other resync signal.
#[tokio::test(flavor = "multi_thread")]
async fn expired_delta_token_resyncs_and_reconciles_ad_exactly() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("gf-resync").await;
    let users_ou = dc.fresh_ou("gf-resync-users").await;
    let s = dc
        .create_users(&users_ou, &format!("gr{}-", unique_suffix()), 6)
        .await;
    let u = |i: usize| oid(0x3003, 100 + i as u32);
    let users: Vec<Value> = (0..6).map(|i| common::synced_user(&u(i), &s[i])).collect();
    let (a, b, c, d, e) = (
        oid(0x3003, 1),
        oid(0x3003, 2),
        oid(0x3003, 3),
        oid(0x3003, 4),
        oid(0x3003, 5),
    );
    let sim = GraphSim::start(
        users,
        vec![
            sec(&a, "Alpha", vec![user(&u(0)), user(&u(1))]),
            json!({"id": b, "displayName": "Bravo", "description": "b", "groupTypes": ["Unified"],
                   "securityEnabled": true, "members": [user(&u(2)), user(&u(3))]}),
            sec(&c, "Charlie", vec![user(&u(4))]),
            sec(&d, "Delta", vec![group(&a), user(&u(5))]),
        ],
        &["--page-size", "2"],
    );
    let svc = service(&sim, dc, &ou, "", "", "");
    svc.once_ok();
    let before = ad(dc, &ou).await;
    assert_eq!(before.len(), 4);
    let sid_a = before[&anchor(&a)].3.clone();

    // The gap: tokens expire; the tenant changes (a hard delete among them); AD is edited by hand.
    sim.faults(json!({"expire_delta_tokens": {"status": 410}}))
        .await;
    sim.delete_group(&c, true).await;
    sim.members(&a, vec![user(&u(5))], vec![user(&u(0))]).await;
    sim.put_group(
        &b,
        json!({"displayName": "Bravo Renamed", "description": null}),
    )
    .await;
    sim.put_group(
        &e,
        json!({"displayName": "Echo", "securityEnabled": true, "groupTypes": [],
        "members": [user(&u(1))]}),
    )
    .await;
    sim.delete_user(&u(3), true).await; // cascades: leaves Bravo
    {
        let (dn_a, dn_b, dn_d) = (
            dc.group_by_anchor(&ou, &anchor(&a)).await.unwrap().dn,
            dc.group_by_anchor(&ou, &anchor(&b)).await.unwrap().dn,
            dc.group_by_anchor(&ou, &anchor(&d)).await.unwrap().dn,
        );
        let mut ldap = dc.connect().await;
        let stray = format!("<SID={}>", s[4]);
        let gone = format!("<SID={}>", s[2]);
        ldap.modify(
            &dn_a,
            vec![ldap3::Mod::Add("member", [stray.as_str()].into())],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
        ldap.modify(
            &dn_b,
            vec![ldap3::Mod::Delete("member", [gone.as_str()].into())],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
        ldap.modify(
            &dn_d,
            vec![ldap3::Mod::Replace("description", ["hand edit"].into())],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
        let _ = ldap.unbind().await;
    }
    sim.clear_requests().await;
    let log = svc.once_ok();
    assert!(log.contains("starting a full resync"), "{}", tail(&log));

    // Each stream was restarted from its initial URL right after the 410.
    let reqs = sim.requests().await;
    let reqs = graph_requests(&reqs);
    for path in ["/v1.0/users/delta", "/v1.0/groups/delta"] {
        let of: Vec<&&Value> = reqs.iter().filter(|r| r["path"] == path).collect();
        assert_eq!(of[0]["status"], 410, "{path}: {of:?}");
        let q = of[1]["query"].as_str().unwrap();
        assert!(
            q.starts_with("$select=") && !q.contains("token"),
            "{path} restarted with {q}"
        );
    }

    let after = ad(dc, &ou).await;
    let want: BTreeMap<String, BTreeSet<String>> = [
        (anchor(&a), sids(&[&s[1], &s[5]])),
        (anchor(&b), sids(&[&s[2]])),
        (
            anchor(&d),
            [sid_a.clone(), s[5].clone()].into_iter().collect(),
        ),
        (anchor(&e), sids(&[&s[1]])),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        members_of(&after),
        want,
        "AD differs from the tenant after the resync"
    );
    assert_eq!(after[&anchor(&b)].0, "Bravo Renamed");
    assert_eq!(
        after[&anchor(&b)].1,
        None,
        "description cleared in the cloud"
    );
    assert_eq!(
        after[&anchor(&d)].1,
        None,
        "hand-edited description reverted"
    );
    assert_eq!(
        after[&anchor(&a)].3,
        sid_a,
        "groups are kept, not re-created"
    );

    // The other signals: 400 syncStateNotFound, resyncRequired, an unknown sync-state code, and
    // a 410 with a code we have never seen. Each restarts the round and lands the change.
    for (i, (status, code)) in [
        (400, "syncStateNotFound"),
        (400, "resyncRequired"),
        (400, "syncStateInvalid"),
        (410, "somethingNew"),
    ]
    .into_iter()
    .enumerate()
    {
        sim.faults(json!({"expire_delta_tokens": {"status": status, "code": code}}))
            .await;
        sim.put_group(&a, json!({"displayName": format!("Alpha {i}")}))
            .await;
        sim.clear_requests().await;
        svc.once_ok();
        let reqs = sim.requests().await;
        let groups: Vec<&Value> = graph_requests(&reqs)
            .into_iter()
            .filter(|r| r["path"] == "/v1.0/groups/delta")
            .collect();
        assert_eq!(groups[0]["status"], status, "{code}");
        assert!(
            !groups[1]["query"].as_str().unwrap().contains("token"),
            "{code}: {groups:?}"
        );
        let now = ad(dc, &ou).await;
        assert_eq!(now[&anchor(&a)].0, format!("Alpha {i}"), "{code}");
        assert_eq!(members_of(&now), want, "{code}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_honours_retry_after_and_backs_off_without_tight_loops() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("gf-throttle").await;
    let g = oid(0x3004, 1);
    let sim = GraphSim::start(vec![], vec![sec(&g, "Throttled 0", vec![])], &[]);
    let svc = service(&sim, dc, &ou, "", "", "");
    svc.once_ok();

    // (status, Retry-After, count, lowest and highest allowed gap in ms)
    let cases: [(u16, Option<&str>, u32, f64, f64); 4] = [
        (429, Some("1.5"), 1, 1500.0, 3000.0),
        (503, Some("0.4"), 1, 400.0, 1500.0),
        (504, None, 3, 100.0, 2500.0),
        (429, None, 2, 100.0, 2500.0),
    ];
    for (i, (status, ra, count, lo, hi)) in cases.into_iter().enumerate() {
        let mut t = json!({"count": count, "status": status});
        if let Some(ra) = ra {
            t["retry_after"] = json!(ra);
        }
        sim.faults(json!({ "throttle": t })).await;
        sim.put_group(&g, json!({"displayName": format!("Throttled {}", i + 1)}))
            .await;
        sim.clear_requests().await;
        svc.once_ok();
        let log = sim.requests().await;
        let reqs = graph_requests(&log);
        let throttled: Vec<usize> = (0..reqs.len())
            .filter(|&k| reqs[k]["status"] == status)
            .collect();
        assert_eq!(throttled.len(), count as usize, "{reqs:?}");
        for k in throttled {
            let gap = reqs[k + 1]["at_ms"].as_f64().unwrap() - reqs[k]["at_ms"].as_f64().unwrap();
            println!("HTTP {status} Retry-After {ra:?}: next request {gap:.0} ms later");
            assert!(
                gap >= lo && gap < hi,
                "HTTP {status} Retry-After {ra:?}: retried after {gap} ms"
            );
            assert_eq!(
                reqs[k + 1]["path"],
                reqs[k]["path"],
                "the same request is retried"
            );
            assert_eq!(reqs[k + 1]["query"], reqs[k]["query"]);
        }
        let name = &ad(dc, &ou).await[&anchor(&g)].0;
        assert_eq!(name, &format!("Throttled {}", i + 1));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_rate_stays_under_the_configured_ceiling() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("gf-rate").await;
    let groups: Vec<Value> = (0..12)
        .map(|i| sec(&oid(0x3005, i), &format!("Rate {i}"), vec![]))
        .collect();
    let sim = GraphSim::start(vec![], groups, &["--page-size", "1"]);
    let svc = service(&sim, dc, &ou, "max_requests_per_second = 4", "", "");
    svc.once_ok();
    assert_eq!(ad(dc, &ou).await.len(), 12);
    let log = sim.requests().await;
    let at: Vec<f64> = graph_requests(&log)
        .iter()
        .map(|r| r["at_ms"].as_f64().unwrap())
        .collect();
    assert!(at.len() >= 13, "{} requests", at.len());
    // Never 5 requests within one second (the log stamps each request when it is answered).
    for w in at.windows(5) {
        assert!(
            w[4] - w[0] >= 950.0,
            "5 requests within {} ms: {at:?}",
            w[4] - w[0]
        );
    }
    let span = at[at.len() - 1] - at[0];
    println!("{} Graph requests at ≤ 4/s took {span:.0} ms", at.len());
    assert!(
        span >= ((at.len() - 1) / 4) as f64 * 1000.0 - 50.0,
        "{span} ms"
    );
}

/// Soft delete, restore and hard delete (purge) of security, Microsoft 365 security-enabled
/// and Microsoft 365 groups, under both soft-delete policies.
#[tokio::test(flavor = "multi_thread")]
async fn soft_delete_restore_and_hard_delete_for_every_group_type() {
    let dc = samba::shared();
    let freeze_ou = dc.fresh_ou("gf-freeze").await;
    let delete_ou = dc.fresh_ou("gf-softdel").await;
    let users_ou = dc.fresh_ou("gf-del-users").await;
    let s = dc
        .create_users(&users_ou, &format!("gd{}-", unique_suffix()), 2)
        .await;
    let (u0, u1) = (oid(0x3006, 100), oid(0x3006, 101));
    // One tenant per policy (sAMAccountNames are domain-wide, so the ids differ).
    let tenant = |n: u32| {
        let (gs, gms, gmu) = (oid(0x3006, n + 1), oid(0x3006, n + 2), oid(0x3006, n + 3));
        let sim = GraphSim::start(
            vec![
                common::synced_user(&u0, &s[0]),
                common::synced_user(&u1, &s[1]),
            ],
            vec![
                sec(&gs, "Sec", vec![user(&u0)]),
                json!({"id": gms, "displayName": "M365 Sec", "groupTypes": ["Unified"], "securityEnabled": true,
                       "mailEnabled": true, "members": [user(&u0)]}),
                json!({"id": gmu, "displayName": "M365", "groupTypes": ["Unified"], "securityEnabled": false,
                       "mailEnabled": true, "members": [user(&u0)]}),
            ],
            &[],
        );
        (sim, [gs, gms, gmu])
    };
    let (sim_f, ids_f) = tenant(0);
    let (sim_d, ids_d) = tenant(10);
    let freeze = service(&sim_f, dc, &freeze_ou, "", "", "");
    let delete = service(&sim_d, dc, &delete_ou, "", "soft_delete = \"delete\"", "");
    let both = [(&sim_f, &ids_f), (&sim_d, &ids_d)];
    let run = || {
        freeze.once_ok();
        delete.once_ok();
    };
    run();
    let f1 = ad(dc, &freeze_ou).await;
    assert_eq!(f1.len(), 3);
    assert_eq!(ad(dc, &delete_ou).await.len(), 3);

    for (sim, ids) in both {
        for g in ids {
            sim.delete_group(g, false).await;
        }
    }
    run();
    assert_eq!(ad(dc, &freeze_ou).await, f1, "soft delete freezes");
    assert!(ad(dc, &delete_ou).await.is_empty(), "soft_delete = delete");

    for (sim, ids) in both {
        for g in ids {
            sim.restore_group(g).await;
        }
        sim.members(&ids[0], vec![user(&u1)], vec![]).await;
    }
    run();
    for (ou, [gs, gms, gmu]) in [(&freeze_ou, &ids_f), (&delete_ou, &ids_d)] {
        let now = ad(dc, ou).await;
        assert_eq!(now.len(), 3, "restored in {ou}");
        assert_eq!(now[&anchor(gs)].2, sids(&[&s[0], &s[1]]));
        assert_eq!(now[&anchor(gms)].2, sids(&[&s[0]]));
        assert_eq!(now[&anchor(gmu)].2, sids(&[&s[0]]));
    }
    let f2 = ad(dc, &freeze_ou).await;
    let gs = &ids_f[0];
    assert_eq!(
        f2[&anchor(gs)].3,
        f1[&anchor(gs)].3,
        "the frozen group came back, not a new one"
    );

    // Hard deletes: purge after a soft delete (Sec), directly (M365 Sec), soft then purge in
    // two rounds (M365).
    for (sim, [gs, gms, gmu]) in both {
        sim.delete_group(gs, false).await;
        sim.delete_group(gs, true).await;
        sim.delete_group(gms, true).await;
        sim.delete_group(gmu, false).await;
    }
    run();
    let f3 = ad(dc, &freeze_ou).await;
    assert_eq!(
        f3.keys().collect::<Vec<_>>(),
        [&anchor(&ids_f[2])],
        "only the soft-deleted one is kept"
    );
    assert!(ad(dc, &delete_ou).await.is_empty());
    for (sim, ids) in both {
        sim.delete_group(&ids[2], true).await;
    }
    run();
    assert!(
        ad(dc, &freeze_ou).await.is_empty(),
        "purge deletes the frozen group"
    );
}

/// Member adds and `@removed`, nested groups, duplicated and reordered items, empty pages with a
/// nextLink, sliced large groups, and `Prefer: return=minimal` rounds (absent = unchanged,
/// null = cleared).
#[tokio::test(flavor = "multi_thread")]
async fn members_duplicates_reordering_empty_pages_and_minimal_rounds() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("gf-members").await;
    let users_ou = dc.fresh_ou("gf-members-users").await;
    let s = dc
        .create_users(&users_ou, &format!("gm{}-", unique_suffix()), 8)
        .await;
    let u = |i: usize| oid(0x3007, 100 + i as u32);
    let mut users: Vec<Value> = (0..8).map(|i| common::synced_user(&u(i), &s[i])).collect();
    let cloud_only = oid(0x3007, 999);
    users.push(json!({"id": cloud_only, "displayName": "Cloud Only"}));
    let (big, child, parent, lonely) = (
        oid(0x3007, 1),
        oid(0x3007, 2),
        oid(0x3007, 3),
        oid(0x3007, 4),
    );
    let mut big_members: Vec<Value> = (0..7).map(|i| user(&u(i))).collect();
    big_members.extend([
        json!({"@odata.type": "#microsoft.graph.device", "id": oid(0x3007, 500)}),
        json!({"@odata.type": "#microsoft.graph.orgContact", "id": oid(0x3007, 501)}),
        json!({"@odata.type": "#microsoft.graph.servicePrincipal", "id": oid(0x3007, 502)}),
        user(&cloud_only),
    ]);
    let sim = GraphSim::start(
        users,
        vec![
            json!({"id": big, "displayName": "Big", "description": "big one", "groupTypes": [],
                   "securityEnabled": true, "members": big_members}),
            sec(&child, "Child", vec![user(&u(7))]),
            json!({"id": parent, "displayName": "Parent", "groupTypes": ["Unified"], "securityEnabled": true,
                   "members": [group(&child), user(&u(0))]}),
            sec(&lonely, "Lonely", vec![]),
        ],
        &["--page-size", "2", "--member-slice", "3", "--empty-pages"],
    );
    sim.faults(json!({"duplicate_changes": true, "reorder_changes": true}))
        .await;
    let svc = service(&sim, dc, &ou, "prefer_return_minimal = true", "", "");
    svc.once_ok();
    let r1 = ad(dc, &ou).await;
    let child_sid = r1[&anchor(&child)].3.clone();
    let want1: BTreeMap<String, BTreeSet<String>> = [
        (anchor(&big), (0..7).map(|i| s[i].clone()).collect()),
        (anchor(&child), sids(&[&s[7]])),
        (
            anchor(&parent),
            [child_sid.clone(), s[0].clone()].into_iter().collect(),
        ),
        (anchor(&lonely), BTreeSet::new()),
    ]
    .into_iter()
    .collect();
    assert_eq!(members_of(&r1), want1);
    let log = sim.requests().await;
    let first = graph_requests(&log);
    assert!(
        first.iter().all(|r| r["prefer"].is_null()),
        "no Prefer on the initial round"
    );
    let group_pages = first
        .iter()
        .filter(|r| r["path"] == "/v1.0/groups/delta")
        .count();
    assert!(
        group_pages >= 10,
        "sliced, duplicated, with empty pages: {group_pages} pages"
    );

    sim.members(&big, vec![user(&u(7))], vec![user(&u(1)), user(&u(2))])
        .await;
    sim.put_group(&big, json!({"description": null})).await;
    sim.put_group(&child, json!({"displayName": "Child Two"}))
        .await;
    sim.members(&parent, vec![user(&u(3))], vec![group(&child)])
        .await;
    sim.clear_requests().await;
    svc.once_ok();
    let r2 = ad(dc, &ou).await;
    let mut want2 = want1.clone();
    want2.insert(
        anchor(&big),
        [0, 3, 4, 5, 6, 7].iter().map(|&i| s[i].clone()).collect(),
    );
    want2.insert(anchor(&parent), sids(&[&s[0], &s[3]]));
    assert_eq!(members_of(&r2), want2);
    assert_eq!(
        r2[&anchor(&big)].0,
        "Big",
        "absent in a minimal round = unchanged"
    );
    assert_eq!(r2[&anchor(&big)].1, None, "null = cleared");
    assert_eq!(r2[&anchor(&child)].0, "Child Two");
    assert_eq!(r2[&anchor(&child)].3, child_sid, "renamed in place");
    let log = sim.requests().await;
    let second = graph_requests(&log);
    assert!(!second.is_empty());
    assert!(
        second.iter().all(|r| r["prefer"] == "return=minimal"),
        "every incremental request asks for return=minimal: {second:?}"
    );
}

/// A member whose user users/delta has not reported yet (replication lag), or who has no
/// on-premises identity yet, is skipped (never removed) and written once it resolves.
#[tokio::test(flavor = "multi_thread")]
async fn unresolved_members_are_retried_and_never_written_as_removed() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("gf-lag").await;
    let users_ou = dc.fresh_ou("gf-lag-users").await;
    let s = dc
        .create_users(&users_ou, &format!("gl{}-", unique_suffix()), 4)
        .await;
    let u = |i: usize| oid(0x3008, 100 + i as u32);
    let (ghost, late) = (u(2), u(3));
    let g = oid(0x3008, 1);
    let sim = GraphSim::start(
        vec![
            common::synced_user(&u(0), &s[0]),
            common::synced_user(&u(1), &s[1]),
            json!({"id": late, "displayName": "Late", "userPrincipalName": "late@contoso.com"}),
        ],
        vec![sec(
            &g,
            "Lagging",
            vec![user(&u(0)), user(&ghost), user(&late)],
        )],
        &[],
    );
    let svc = service(&sim, dc, &ou, "", "", "");
    svc.once_ok();
    assert_eq!(ad(dc, &ou).await[&anchor(&g)].2, sids(&[&s[0]]));

    // Other changes and even a full resync never remove what is there while members are pending.
    sim.members(&g, vec![user(&u(1))], vec![]).await;
    svc.once_ok();
    assert!(svc.run(&["resync"]).status.success());
    svc.once_ok();
    assert_eq!(ad(dc, &ou).await[&anchor(&g)].2, sids(&[&s[0], &s[1]]));

    // users/delta catches up: the ghost appears with its SID, the cloud-only user gets synced.
    sim.put_user(&ghost, common::synced_user(&ghost, &s[2]))
        .await;
    sim.put_user(
        &late,
        json!({"onPremisesSecurityIdentifier": s[3], "onPremisesSyncEnabled": true}),
    )
    .await;
    svc.once_ok();
    assert_eq!(
        ad(dc, &ou).await[&anchor(&g)].2,
        sids(&[&s[0], &s[1], &s[2], &s[3]])
    );
}

/// `[graph.scope]`: group types, dynamic groups, a displayName pattern and exclusion, an id
/// allow-list; leaving scope is a soft delete (here with `soft_delete = "delete"`), coming back
/// converges everything that changed meanwhile, and a scope change in the config re-evaluates
/// every group.
#[tokio::test(flavor = "multi_thread")]
async fn scope_filters_and_groups_leaving_and_entering_scope() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("gf-scope").await;
    let users_ou = dc.fresh_ou("gf-scope-users").await;
    let s = dc
        .create_users(&users_ou, &format!("gs{}-", unique_suffix()), 3)
        .await;
    let u = |i: usize| oid(0x3009, 100 + i as u32);
    let id = |n: u32| oid(0x3009, n);
    let sim = GraphSim::start(
        (0..3).map(|i| common::synced_user(&u(i), &s[i])).collect(),
        vec![
            sec(&id(1), "SG-A", vec![user(&u(0))]),
            json!({"id": id(2), "displayName": "SG-M365", "groupTypes": ["Unified"], "securityEnabled": true}),
            sec(&id(3), "Other", vec![user(&u(0))]),
            json!({"id": id(4), "displayName": "SG-Dyn", "groupTypes": ["DynamicMembership"], "securityEnabled": true}),
            sec(&id(5), "SG-Test lab", vec![]),
            sec(&id(6), "SG-B", vec![user(&u(1))]),
        ],
        &[],
    );
    let scope = "[graph.scope]\ngroup_types = [\"security\"]\ndynamic_groups = false\n\
                 display_name_pattern = \"^SG-\"\ndisplay_name_exclude = \"(?i)test\"\n";
    let svc = service(&sim, dc, &ou, "", "soft_delete = \"delete\"", scope);
    svc.once_ok();
    let names = |st: &AdState| st.values().map(|v| v.0.clone()).collect::<BTreeSet<_>>();
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(names(&ad(dc, &ou).await), set(&["SG-A", "SG-B"]));

    // SG-B leaves scope (renamed) and changes meanwhile; Other enters scope.
    sim.put_group(&id(6), json!({"displayName": "Legacy B"}))
        .await;
    sim.members(&id(6), vec![user(&u(2))], vec![]).await;
    sim.put_group(&id(3), json!({"displayName": "SG-Other"}))
        .await;
    svc.once_ok();
    assert_eq!(names(&ad(dc, &ou).await), set(&["SG-A", "SG-Other"]));

    // SG-B comes back with the members it gained while out of scope.
    sim.put_group(&id(6), json!({"displayName": "SG-B again"}))
        .await;
    svc.once_ok();
    let st = ad(dc, &ou).await;
    assert_eq!(names(&st), set(&["SG-A", "SG-Other", "SG-B again"]));
    assert_eq!(st[&anchor(&id(6))].2, sids(&[&s[1], &s[2]]));

    // The admin narrows the scope to an allow-list: every group is re-evaluated.
    let text = std::fs::read_to_string(&svc.config).unwrap();
    std::fs::write(
        &svc.config,
        text.replace(
            "[graph.scope]\n",
            &format!(
                "[graph.scope]\ngroup_ids = [\"{}\"]\n",
                id(1).to_uppercase()
            ),
        ),
    )
    .unwrap();
    let log = svc.once_ok();
    assert!(log.contains("graph.scope changed"), "{}", tail(&log));
    assert_eq!(names(&ad(dc, &ou).await), set(&["SG-A"]));
}

/// Devices, contacts, service principals and cloud-only users are never written to AD, and
/// `members_skipped_total{reason}` counts them.
#[tokio::test(flavor = "multi_thread")]
async fn other_member_types_are_skipped_and_counted() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("gf-types").await;
    let users_ou = dc.fresh_ou("gf-types-users").await;
    let s = dc
        .create_users(&users_ou, &format!("gt{}-", unique_suffix()), 1)
        .await;
    let (u0, cloud_only, g) = (oid(0x300a, 100), oid(0x300a, 101), oid(0x300a, 1));
    let sim = GraphSim::start(
        vec![
            common::synced_user(&u0, &s[0]),
            json!({"id": cloud_only, "displayName": "Cloud"}),
        ],
        vec![sec(
            &g,
            "Mixed",
            vec![
                user(&u0),
                user(&cloud_only),
                json!({"@odata.type": "#microsoft.graph.device", "id": oid(0x300a, 500)}),
                json!({"@odata.type": "#microsoft.graph.orgContact", "id": oid(0x300a, 501)}),
                json!({"@odata.type": "#microsoft.graph.servicePrincipal", "id": oid(0x300a, 502)}),
            ],
        )],
        &[],
    );
    let svc = service(&sim, dc, &ou, "", "", "");
    let mut child = svc.spawn();
    let url = format!("http://127.0.0.1:{}/metrics", svc.http_port);
    let metric = |text: &str, name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let (text, state) = loop {
        let text = match reqwest::get(&url).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let state = ad(dc, &ou).await;
        if metric(
            &text,
            "entra_writeback_members_skipped_total{reason=\"unsupported_type\"}",
        ) >= 3.0
            && metric(
                &text,
                "entra_writeback_members_skipped_total{reason=\"cloud_only\"}",
            ) >= 1.0
            && state.contains_key(&anchor(&g))
        {
            break (text, state);
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed the skipped members:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        state[&anchor(&g)].2,
        sids(&[&s[0]]),
        "only the synced user is written"
    );
    assert!(
        metric(
            &text,
            "entra_writeback_graph_requests_total{class=\"2xx\",endpoint=\"groups_delta\"}"
        ) >= 1.0
            || text.contains("entra_writeback_graph_requests_total")
    );
}
