//! Graph authentication against graph-sim and a real Samba AD DC: certificate credentials
//! (RS256 / PS256, PKCS#8 and PKCS#1 keys, national-cloud scopes), clear errors, proactive token
//! renewal, and recovery from a 401 (the token is dropped, a new one fetched, the request
//! retried). Each test reads graph-sim's request log, which names the token (by serial) every
//! request presented.

mod common;
#[path = "graph_fidelity/support.rs"]
mod support;

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::samba::{self, SambaDc, unique_suffix};
use common::service::{COMMAND_TIMEOUT, Service, output_within};
use common::sim::{CERT_CLIENT_ID, CLIENT_ID, GraphSim, TENANT, cert_pem_path, oid, user};
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use support::*;

/// The test certificate with its key in PKCS#1 (`RSA PRIVATE KEY`) form: the same key as
/// [`cert_pem_path`], converted with `openssl pkey -traditional`.
fn pkcs1_pem_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/graph/app-cert-pkcs1.pem")
}

/// `[graph]` lines naming a client certificate PEM file.
fn cert_lines(pem: &Path, extra: &str) -> String {
    format!("client_certificate = \"{}\"\n{extra}", pem.display())
}

/// One `run --once` of a service authenticating as the certificate app (`graph_lines` name the
/// PEM file; `replace(sim)` gives more config edits) against a fresh tenant with one group
/// holding one synced user, tagged `n`: asserts the group reached AD with that member and
/// returns the simulator (for its request log) and the OU used.
async fn cert_run(
    dc: &SambaDc,
    n: u32,
    graph_lines: &str,
    replace: impl Fn(&GraphSim) -> Vec<(String, String)>,
) -> (GraphSim, String) {
    let ou = dc.fresh_ou(&format!("ga-cert{n}")).await;
    let users_ou = dc.fresh_ou(&format!("ga-cert{n}-users")).await;
    let s = dc
        .create_users(&users_ou, &format!("ga{n}{}-", unique_suffix()), 1)
        .await;
    let (u, g) = (oid(0x3001, 100 + n), oid(0x3001, n));
    let sim = GraphSim::start(
        vec![common::synced_user(&u, &s[0])],
        vec![sec(&g, "Cert Group", vec![user(&u)])],
        &[],
    );
    let svc = service(&sim, dc, &ou, graph_lines, "", "");
    let mut edits = vec![(
        format!("client_id = \"{CLIENT_ID}\""),
        format!("client_id = \"{CERT_CLIENT_ID}\""),
    )];
    edits.extend(replace(&sim));
    let edits: Vec<(&str, &str)> = edits
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    edit_graph(&svc, "", &edits);
    svc.once_ok();
    assert_eq!(ad(dc, &ou).await[&anchor(&g)].2, sids(&[&s[0]]));
    (sim, ou)
}

/// The only token request of `sim`'s log (one token serves a whole run): its form, after
/// checking it carries a client assertion and no secret.
async fn the_assertion_form(sim: &GraphSim) -> Value {
    let log = sim.requests().await;
    let forms = token_forms(&log);
    assert_eq!(forms.len(), 1, "one token for the whole run: {forms:?}");
    let f = forms[0].clone();
    assert!(f.get("client_secret").is_none());
    assert_eq!(f["client_id"], CERT_CLIENT_ID);
    assert_eq!(
        f["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    f
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_credentials_rs256_and_ps256_and_clear_auth_errors() {
    let dc = samba::shared();
    let cert = cert_lines(&cert_pem_path(), "");

    // RS256 (the default). The harness also sets a client secret in the environment: the
    // configured certificate wins.
    let (sim, _) = cert_run(dc, 1, &cert, |_| vec![]).await;
    let f = the_assertion_form(&sim).await;
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
    // follows graph_url, the assertion audience follows authority_url.
    let graph_host = |sim: &GraphSim| {
        let port = sim.base.rsplit(':').next().unwrap().to_string();
        format!("http://localhost:{port}")
    };
    let ps256 = cert_lines(&cert_pem_path(), "client_assertion_algorithm = \"PS256\"");
    let (sim, ou) = cert_run(dc, 2, &ps256, |sim| {
        vec![(
            format!("graph_url = \"{}\"", sim.base),
            format!("graph_url = \"{}/\"", graph_host(sim)),
        )]
    })
    .await;
    let f = the_assertion_form(&sim).await;
    assert_eq!(
        f["scope"],
        format!("{}/.default", graph_host(&sim)),
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
        let out = output_within(
            bad.command(&["check"])
                .env("ENTRA_WRITEBACK_GRAPH_CLIENT_SECRET", "wrong-secret-value"),
            COMMAND_TIMEOUT,
        );
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

/// A PEM whose key is PKCS#1 (`BEGIN RSA PRIVATE KEY`, what `openssl genrsa -traditional` and
/// many older tools write) authenticates like the PKCS#8 one: graph-sim verifies the assertion's
/// signature against the registered certificate, so the run only succeeds if the key was read.
#[tokio::test(flavor = "multi_thread")]
async fn certificate_credentials_with_a_pkcs1_key() {
    let pem = std::fs::read_to_string(pkcs1_pem_path()).unwrap();
    assert!(
        pem.contains("-----BEGIN RSA PRIVATE KEY-----") && !pem.contains("BEGIN PRIVATE KEY"),
        "the fixture must hold a PKCS#1 key only"
    );
    let dc = samba::shared();
    for (n, alg) in [(3, "RS256"), (4, "PS256")] {
        let lines = cert_lines(
            &pkcs1_pem_path(),
            &format!("client_assertion_algorithm = \"{alg}\""),
        );
        let (sim, _) = cert_run(dc, n, &lines, |_| vec![]).await;
        let f = the_assertion_form(&sim).await;
        assert_eq!(
            jwt_part(f["client_assertion"].as_str().unwrap(), 0)["alg"],
            alg
        );
    }
}

/// Token lifetime in the renewal test: short, so several renewals happen in seconds.
const SHORT_LIFETIME_MS: f64 = 6000.0;

/// With 6 s tokens the rule (`renew_after` in `src/graph/auth.rs`, unit-tested for every regime:
/// 90 %, a minute early, half the lifetime) renews at half the lifetime, 3 s after the token was
/// requested. graph-sim logs which token every request presented, so the test sees:
/// - every request presented a token the simulator issued and accepted (no 401), less than
///   the lifetime old: no request was sent with an expired token;
/// - each token was used only until its renewal point (3 s), plus 1.5 s for one request's
///   latency on a loaded machine; a client renewing only at expiry would use tokens up to 6 s old;
/// - each new token was fetched before the previous one expired (gap < 6 s; renewing at expiry
///   makes the gap ≥ 6 s) and not before the renewal point (gap ≥ 3 s − 0.5 s of latency jitter
///   between two token requests; caching nothing would fetch a token per request).
#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_renewed_at_half_their_lifetime_before_they_expire() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("ga-renew").await;
    let g = oid(0x3002, 1);
    let sim = GraphSim::start(
        vec![],
        vec![sec(&g, "Renew", vec![])],
        &["--token-lifetime", "6s"],
    );
    let svc = service(&sim, dc, &ou, "", "", "");
    let _child = svc.spawn();
    wait_until("four tokens issued", &svc, || async {
        token_issues(&sim.requests().await).len() >= 4
    })
    .await;
    let log = sim.requests().await;
    let issues = token_issues(&log);
    assert!(ad_name(dc, &ou, &g).await.is_some(), "the round reached AD");
    let issued_at = |serial: u64| {
        issues
            .iter()
            .find(|(s, _)| *s == serial)
            .map(|(_, at)| *at)
            .unwrap_or_else(|| panic!("token {serial} was never issued: {issues:?}"))
    };
    let requests = graph_requests(&log);
    assert!(requests.len() >= 8, "{requests:?}");
    for r in &requests {
        assert_eq!(r["status"], 200, "{r}");
        let serial = r["token"].as_u64().unwrap_or_else(|| panic!("{r}"));
        let age = r["at_ms"].as_f64().unwrap() - issued_at(serial);
        assert!(
            (0.0..SHORT_LIFETIME_MS / 2.0 + 1500.0).contains(&age),
            "token {serial} used {age:.0} ms after it was issued: {r}"
        );
    }
    for w in issues.windows(2) {
        let gap = w[1].1 - w[0].1;
        println!(
            "token {} fetched {gap:.0} ms after token {}",
            w[1].0, w[0].0
        );
        assert!(
            (SHORT_LIFETIME_MS / 2.0 - 500.0..SHORT_LIFETIME_MS).contains(&gap),
            "token {} fetched {gap:.0} ms after token {}",
            w[1].0,
            w[0].0
        );
    }
}

/// How graph-sim refuses the token the service holds, although the service still thinks it
/// valid (an hour-long token, renewed after 54 minutes).
#[derive(Clone, Copy, Debug)]
enum Refusal {
    /// Entra ID revoked it: 401 `invalid_token`.
    Revoked,
    /// The simulator clock jumps 2 h: expired on Graph's side.
    ClockJump,
}

/// Arms `refusal`, changes group `id` in the tenant and waits for the change in AD; then checks
/// the log: the token in use got one 401, the service fetched exactly one new token, retried
/// the refused request with it, and every later request used it successfully.
async fn recovers_from(
    refusal: Refusal,
    sim: &GraphSim,
    svc: &Service,
    dc: &SambaDc,
    ou: &str,
    id: &str,
) {
    sim.clear_requests().await;
    match refusal {
        Refusal::Revoked => sim.faults(json!({"revoke_tokens": true})).await,
        Refusal::ClockJump => sim.advance_clock("2h").await,
    }
    let name = format!("After {refusal:?}");
    sim.put_group(
        id,
        json!({"displayName": name, "securityEnabled": true, "groupTypes": []}),
    )
    .await;
    wait_until(&format!("{name} in AD"), svc, || async {
        ad_name(dc, ou, id).await.as_deref() == Some(name.as_str())
    })
    .await;

    let log = sim.requests().await;
    let issues = token_issues(&log);
    assert_eq!(issues.len(), 1, "{refusal:?}: one new token: {log:?}");
    let fresh = issues[0].0;
    let requests = graph_requests(&log);
    let refused: Vec<usize> = (0..requests.len())
        .filter(|&i| requests[i]["status"] == 401)
        .collect();
    assert_eq!(refused.len(), 1, "{refusal:?}: one 401: {requests:?}");
    let (k, old) = (refused[0], &requests[refused[0]]);
    assert_eq!(
        old["token"],
        fresh - 1,
        "{refusal:?}: the old token was refused"
    );
    assert!(
        requests[..k].iter().all(|r| r["token"] == fresh - 1),
        "{refusal:?}: {requests:?}"
    );
    let retry = requests
        .get(k + 1)
        .unwrap_or_else(|| panic!("no retry: {requests:?}"));
    assert_eq!(
        (&retry["path"], &retry["query"]),
        (&old["path"], &old["query"]),
        "{refusal:?}: the refused request is retried"
    );
    assert!(
        issues[0].1 < retry["at_ms"].as_f64().unwrap(),
        "{refusal:?}: the new token was fetched before the retry"
    );
    for r in &requests[k + 1..] {
        assert_eq!(
            (r["status"].as_u64(), r["token"].as_u64()),
            (Some(200), Some(fresh)),
            "{refusal:?}: after the 401 every request uses the new token: {r}"
        );
    }
}

/// Graph refuses a token the service believes valid (revoked, or expired by the clock): the
/// service drops it (`TokenSource::invalidate`), fetches a new one and retries; without that it
/// would keep the refused token for the rest of its hour and never deliver the change.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_is_dropped_renewed_and_the_request_retried() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("ga-401").await;
    let (g, h) = (oid(0x3002, 11), oid(0x3002, 12));
    let sim = GraphSim::start(vec![], vec![sec(&g, "Before", vec![])], &[]);
    let svc = service(&sim, dc, &ou, "", "", "");
    let _child = svc.spawn();
    wait_until("the first round in AD", &svc, || async {
        ad_name(dc, &ou, &g).await.is_some()
    })
    .await;
    recovers_from(Refusal::Revoked, &sim, &svc, dc, &ou, &h).await;
    recovers_from(Refusal::ClockJump, &sim, &svc, dc, &ou, &h).await;
}
