//! Member writes that AD refuses in part, against real Samba AD: a batch refused because of one
//! value (already a member, already gone, no such object) is retried value by value, so the
//! other values land; and the result codes a Windows DC gives where Samba gives another
//! (16 noSuchAttribute, 20 attributeOrValueExists, 32 noSuchObject, and 68 entryAlreadyExists
//! on a create that did succeed) are played by a wire relay that rewrites the code of real
//! Samba responses.

mod common;

use std::collections::BTreeSet;

use common::outcome::{dead_letters, expect_exit, members_of};
use common::relay::{LdapRelay, Rewrite, op};
use common::samba::{self, SambaDc, unique_suffix};
use common::service::{INSECURE_LDAP, Options, Service};
use common::sim::{GraphSim, oid, user};
use ldap3::Mod;
use serde_json::Value;

/// Users with real AD accounts (`sids[i]`), plus one whose SID names no AD object (the last).
struct Tenant {
    sids: Vec<String>,
    tag: u32,
}

impl Tenant {
    async fn new(dc: &SambaDc, tag: u32, n: usize) -> Tenant {
        let users_ou = dc.fresh_ou("members-users").await;
        let mut sids = dc
            .create_users(&users_ou, &format!("mw{}-", unique_suffix()), n)
            .await;
        // Same domain, a RID no account has: Samba refuses it with 53, Windows with 32.
        let domain = sids[0].rsplit_once('-').unwrap().0.to_string();
        sids.push(format!("{domain}-987654"));
        Tenant { sids, tag }
    }

    fn id(&self, i: usize) -> String {
        oid(self.tag, 100 + i as u32)
    }

    fn users(&self) -> Vec<Value> {
        (0..self.sids.len())
            .map(|i| common::synced_user(&self.id(i), &self.sids[i]))
            .collect()
    }

    fn refs(&self, which: &[usize]) -> Vec<Value> {
        which.iter().map(|&i| user(&self.id(i))).collect()
    }

    fn set(&self, which: &[usize]) -> BTreeSet<String> {
        which.iter().map(|&i| self.sids[i].clone()).collect()
    }

    fn bogus(&self) -> usize {
        self.sids.len() - 1
    }
}

/// A hand edit of the group's members in AD (as an administrator would make it).
async fn hand_edit(dc: &SambaDc, ou: &str, group: &str, add: Option<&str>, remove: Option<&str>) {
    let e = dc
        .group_by_anchor(ou, &format!("Group_{group}"))
        .await
        .unwrap();
    let value = |s: &str| std::collections::HashSet::from([format!("<SID={s}>")]);
    let mut mods = Vec::new();
    if let Some(s) = add {
        mods.push(Mod::Add("member".to_string(), value(s)));
    }
    if let Some(s) = remove {
        mods.push(Mod::Delete("member".to_string(), value(s)));
    }
    let mut ldap = dc.connect().await;
    ldap.modify(&e.dn, mods)
        .await
        .unwrap()
        .success()
        .unwrap_or_else(|err| panic!("hand edit of {}: {err}", e.dn));
}

/// `run --once` exits 0, leaves no dead letter, and the group holds exactly `want`.
async fn assert_applied(
    dc: &SambaDc,
    svc: &Service,
    ou: &str,
    g: &str,
    want: BTreeSet<String>,
) -> String {
    let log = expect_exit(&svc.run(&["run", "--once"]), 0);
    assert!(dead_letters(svc).is_empty(), "{:?}", dead_letters(svc));
    assert_eq!(members_of(dc, ou, g).await, want, "members of {g}");
    log
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_refused_for_one_value_is_retried_value_by_value_on_samba() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("members-fallback").await;
    let t = Tenant::new(dc, 0x6100, 5).await;
    let g = oid(t.tag, 1);
    let sim = GraphSim::start(
        t.users(),
        vec![common::security_group(&g, "Fallback", t.refs(&[0, 1, 2]))],
        &[],
    );
    let svc = Service::new(&sim, dc, &ou);
    assert_applied(dc, &svc, &ou, &g, t.set(&[0, 1, 2])).await;

    // AD already has 3 and has already lost 0; the tenant adds 3, 4 and a member without an AD
    // object, and removes 0 and 1. Samba refuses the add batch (68 for 3) and the remove batch
    // (53 for 0); value by value, everything else lands.
    hand_edit(dc, &ou, &g, Some(&t.sids[3]), Some(&t.sids[0])).await;
    sim.members(&g, t.refs(&[3, 4, t.bogus()]), t.refs(&[0, 1]))
        .await;
    let log = assert_applied(dc, &svc, &ou, &g, t.set(&[2, 3, 4])).await;
    assert!(
        log.lines()
            .any(|l| l.contains("member has no AD object; skipped")
                && l.contains(&t.sids[t.bogus()])),
        "the member without an AD object was not reported"
    );
}

/// A service writing through `relay` (plain LDAP: the relay rewrites responses).
fn service_via(relay: &LdapRelay, dc: &SambaDc, sim: &GraphSim, ou: &str) -> Service {
    Service::with(
        dc,
        ou,
        Options {
            ad_url: relay.url.clone(),
            // The relay reads and rewrites LDAP messages, so they must cross it in clear.
            ad_tls: INSECURE_LDAP.into(),
            tail: "[sync]\nmin_backoff = \"50ms\"\nmax_backoff = \"200ms\"\nmax_attempts = 2\n"
                .into(),
            ..Options::new(dc, sim)
        },
    )
}

/// Rewrites every `from` in responses of kind `response` to `to` during the next run.
fn rewrite_all(relay: &LdapRelay, response: u8, from: u8, to: u8) {
    relay.rewrite(Rewrite {
        response,
        from,
        to,
        times: usize::MAX,
    });
}

/// Asserts the relay rewrote at least `min` responses since the last check (so the code under
/// test really was seen by the service), and drops the rule.
fn assert_rewritten(relay: &LdapRelay, min: usize, what: &str) {
    let n = relay.take_rewritten();
    assert!(n >= min, "{what}: {n} responses rewritten, want >= {min}");
}

#[tokio::test(flavor = "multi_thread")]
async fn windows_result_codes_on_member_writes_and_creates_are_handled() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("members-codes").await;
    let t = Tenant::new(dc, 0x6200, 4).await;
    let g = oid(t.tag, 1);
    let sim = GraphSim::start(
        t.users(),
        vec![common::security_group(&g, "Codes", t.refs(&[0]))],
        &[],
    );
    let relay = LdapRelay::start(&dc.url);
    let svc = service_via(&relay, dc, &sim, &ou);

    // 68 on the create although the add went through (an add that timed out, retried): the
    // group is ours (it carries our anchor), so it is used, not reported as a conflict.
    relay.rewrite(Rewrite {
        response: op::ADD_RESPONSE,
        from: 0,
        to: 68,
        times: 1,
    });
    assert_applied(dc, &svc, &ou, &g, t.set(&[0])).await;
    assert_rewritten(&relay, 1, "68 on the create");
    assert_eq!(dc.groups_in(&ou).await.len(), 1, "one group, not two");

    // 20 attributeOrValueExists for a member already there (Samba says 68).
    hand_edit(dc, &ou, &g, Some(&t.sids[1]), None).await;
    sim.members(&g, t.refs(&[1, 2]), vec![]).await;
    rewrite_all(&relay, op::MODIFY_RESPONSE, 68, 20);
    assert_applied(dc, &svc, &ou, &g, t.set(&[0, 1, 2])).await;
    assert_rewritten(&relay, 2, "20 on adding a member");

    // 16 noSuchAttribute for a member already gone (Samba says 53).
    hand_edit(dc, &ou, &g, None, Some(&t.sids[0])).await;
    sim.members(&g, vec![], t.refs(&[0, 1])).await;
    rewrite_all(&relay, op::MODIFY_RESPONSE, 53, 16);
    assert_applied(dc, &svc, &ou, &g, t.set(&[2])).await;
    assert_rewritten(&relay, 2, "16 on removing a member");

    // 32 noSuchObject for a SID that names no AD object (Samba says 53): skipped, the others
    // added.
    sim.members(&g, t.refs(&[3, t.bogus()]), vec![]).await;
    rewrite_all(&relay, op::MODIFY_RESPONSE, 53, 32);
    assert_applied(dc, &svc, &ou, &g, t.set(&[2, 3])).await;
    assert_rewritten(&relay, 2, "32 on adding a member");
}
