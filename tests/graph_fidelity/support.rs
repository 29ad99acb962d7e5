//! Helpers shared by the Graph fidelity tests (`graph_fidelity.rs`, `graph_auth.rs`,
//! `graph_members.rs`, `graph_retry.rs`): a service configured against graph-sim, what AD
//! holds, and readers of graph-sim's request log and of the service's metrics.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::common::samba::{SambaDc, attr_first, entry_sid};
use crate::common::service::{Options, Service, tail};
use crate::common::sim::GraphSim;

/// `[sync]` of every service here: quick retries, at most 4 attempts per request.
pub const SYNC: &str = "[sync]\nmin_backoff = \"100ms\"\nmax_backoff = \"1s\"\nmax_attempts = 4\n";

/// A cloud security group (not mail-enabled, no group types).
pub fn sec(id: &str, name: &str, members: Vec<Value>) -> Value {
    json!({"id": id, "displayName": name, "groupTypes": [], "securityEnabled": true,
           "mailEnabled": false, "members": members})
}

/// The anchor (`adminDescription`) the service writes for group `id`.
pub fn anchor(id: &str) -> String {
    format!("Group_{id}")
}

/// A service whose `[graph]` table gets `graph_lines` and whose config file ends with `tail`
/// (`[ad]` extras go in `ad_extra`). Group ids must differ in their last 12 characters across
/// services sharing the DC (`oid(_, n)` with distinct `n`): sAMAccountNames are domain-wide.
pub fn service(
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
pub fn edit_graph(svc: &Service, graph_lines: &str, replace: &[(&str, &str)]) {
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
pub type AdState = BTreeMap<String, (String, Option<String>, BTreeSet<String>, String)>;

/// Reads [`AdState`] from the DC with a real LDAP client.
pub async fn ad(dc: &SambaDc, ou: &str) -> AdState {
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

/// The displayName in AD of group `id` under `ou`, if it is there: one search, no read by DN,
/// so it is safe to poll while a running service renames groups (a DN read could race a move).
pub async fn ad_name(dc: &SambaDc, ou: &str, id: &str) -> Option<String> {
    let e = dc.group_by_anchor(ou, &anchor(id)).await?;
    Some(
        attr_first(&e, "displayName")
            .unwrap_or_default()
            .to_string(),
    )
}

/// anchor → member SIDs, for comparing with what the tenant says.
pub fn members_of(state: &AdState) -> BTreeMap<String, BTreeSet<String>> {
    state
        .iter()
        .map(|(k, v)| (k.clone(), v.2.clone()))
        .collect()
}

/// A SID set from borrowed strings.
pub fn sids(v: &[&String]) -> BTreeSet<String> {
    v.iter().map(|s| (*s).clone()).collect()
}

/// `/v1.0` requests of the log (not token requests).
pub fn graph_requests(log: &[Value]) -> Vec<&Value> {
    log.iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/v1.0/")))
        .collect()
}

/// The form of every token request of the log, in order.
pub fn token_forms(log: &[Value]) -> Vec<&Value> {
    log.iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/oauth2/v2.0/token"))
        })
        .map(|r| &r["form"])
        .collect()
}

/// Part `i` (0 header, 1 claims) of a JWT, decoded.
pub fn jwt_part(jwt: &str, i: usize) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(i).unwrap())
            .unwrap(),
    )
    .unwrap()
}

/// stderr then stdout of a finished command.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

/// Token requests answered 200: (serial of the token issued, `at_ms`), in issue order.
pub fn token_issues(log: &[Value]) -> Vec<(u64, f64)> {
    log.iter()
        .filter(|r| {
            r["status"] == 200
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/oauth2/v2.0/token"))
        })
        .map(|r| (r["token"].as_u64().unwrap(), r["at_ms"].as_f64().unwrap()))
        .collect()
}

/// Polls `done` every 200 ms until it holds; fails after 60 s (a generous deadline for a
/// loaded machine) with `what` and the tail of the service's log.
pub async fn wait_until<F, Fut>(what: &str, svc: &Service, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{}",
            tail(&std::fs::read_to_string(svc.dir.path().join("run.log")).unwrap_or_default())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The service's `/metrics` text (empty while it is not listening yet).
pub async fn scrape(svc: &Service) -> String {
    let url = format!("http://127.0.0.1:{}/metrics", svc.http_port);
    match reqwest::get(&url).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The value of sample `name` whose labels are exactly `labels` (in any order), if exported.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeSet<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
        let got: BTreeSet<String> = rest
            .strip_suffix('}')?
            .split(',')
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        (n == name && got == want).then(|| value.parse().ok())?
    })
}
