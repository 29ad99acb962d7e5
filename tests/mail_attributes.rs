//! Mail attributes against real Samba: a Microsoft 365 group lands with `mail` and every
//! `proxyAddresses` value (prefix case kept); adding and removing an address in the cloud follows
//! within a round on the same object; an address an unowned object already holds is a reported
//! conflict, the rest of the group still lands and the other object is untouched; a group that
//! stops being mail-enabled loses what was written. `mailNickname` is written where the schema has
//! it (a DC of this test's own started with `deploy/samba-ad.sh --exchange-schema`, 127.0.0.7)
//! and skipped cleanly where it lacks it (the shared DC: Samba's stock schema has `mail` and
//! `proxyAddresses` but not `mailNickname`). `ad.mail_attributes = "off"` writes none of them.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use common::outcome::{dead_letters, usn_snapshot};
use common::samba::{SambaDc, attr_first, attr_values, entry_guid, shared, unique_suffix};
use common::service::{Options, Service};
use common::sim::{GraphSim, oid, user};
use common::wait;
use ldap3::SearchEntry;
use serde_json::{Value, json};

/// Loopback IP of the Exchange-schema DC (stopped when its test ends).
const EXCHANGE_IP: &str = "127.0.0.7";

/// A Microsoft 365 group (mail-enabled, not security-enabled) with these addresses.
fn m365_group(
    id: &str,
    name: &str,
    mail: &str,
    addresses: &[String],
    members: Vec<Value>,
) -> Value {
    json!({"id": id, "displayName": name, "groupTypes": ["Unified"], "securityEnabled": false,
           "mailEnabled": true, "mail": mail, "mailNickname": name.to_lowercase(),
           "proxyAddresses": addresses, "members": members})
}

async fn group(dc: &SambaDc, ou: &str, id: &str) -> SearchEntry {
    dc.group_by_anchor(ou, &format!("Group_{id}"))
        .await
        .unwrap_or_else(|| panic!("no group anchored Group_{id} under {ou}"))
}

/// The `proxyAddresses` values exactly as AD holds them (order is not significant).
fn addresses(e: &SearchEntry) -> BTreeSet<String> {
    attr_values(e, "proxyAddresses").iter().cloned().collect()
}

fn set(values: &[&String]) -> BTreeSet<String> {
    values.iter().map(|v| v.to_string()).collect()
}

/// Adds a contact (the administrator's, outside the service's OU) holding `address`.
async fn add_contact(dc: &SambaDc, dn: &str, address: &str) {
    let mut ldap = dc.connect().await;
    let attrs = vec![
        ("objectClass", HashSet::from(["contact"])),
        ("proxyAddresses", HashSet::from([address])),
    ];
    ldap.add(dn, attrs)
        .await
        .unwrap()
        .success()
        .unwrap_or_else(|e| panic!("add {dn}: {e}"));
    let _ = ldap.unbind().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn m365_addresses_land_follow_the_cloud_and_a_clash_is_reported_not_taken() {
    let dc = shared();
    let ou = dc.fresh_ou("mail").await;
    let elsewhere = dc.fresh_ou("mail-unowned").await;
    let users_ou = dc.fresh_ou("mail-users").await;
    let s = unique_suffix();
    let (_, sid) = dc.create_user(&users_ou, &format!("ml{s}")).await;
    let (tag, u) = (0x6600, oid(0x6600, 100));
    let (m365, sec) = (oid(tag, 1), oid(tag, 2));
    let addr = |local: &str, domain: &str, primary: bool| {
        let prefix = if primary { "SMTP" } else { "smtp" };
        format!("{prefix}:{local}-{s}@{domain}")
    };
    let primary = addr("sales", "contoso.com", true);
    let routing = addr("sales", "contoso.onmicrosoft.com", false);
    let clash = addr("taken", "contoso.com", false);
    let contact = format!("CN=Someone Else {s},{elsewhere}");
    // Held by the administrator's contact, in upper case: AD matches addresses case-insensitively.
    add_contact(dc, &contact, &clash.to_uppercase()).await;
    let before = usn_snapshot(dc, &elsewhere).await;

    let mail = format!("sales-{s}@contoso.com");
    let sec_mail = format!("sec-{s}@contoso.com");
    let sec_address = addr("sec", "contoso.com", true);
    let groups = vec![
        m365_group(
            &m365,
            "Sales",
            &mail,
            &[primary.clone(), routing.clone(), clash.clone()],
            vec![user(&u)],
        ),
        json!({"id": sec, "displayName": "Secure", "groupTypes": [], "securityEnabled": true,
               "mailEnabled": true, "mail": sec_mail, "proxyAddresses": [&sec_address], "members": []}),
    ];
    let sim = GraphSim::start(vec![common::synced_user(&u, &sid)], groups, &[]);
    let svc = Service::new(&sim, dc, &ou);
    let log = svc.once_ok();
    assert!(
        log.lines()
            .any(|l| l.contains("connected to AD") && l.contains("\"has_mail_nickname\":false")),
        "the shared DC's schema lacks mailNickname"
    );

    // Every address but the one the contact holds, prefix case kept; members and type landed.
    let g = group(dc, &ou, &m365).await;
    assert_eq!(attr_first(&g, "mail"), Some(mail.as_str()));
    assert_eq!(addresses(&g), set(&[&primary, &routing]));
    assert_eq!(
        attr_first(&g, "mailNickname"),
        None,
        "skipped: the schema lacks it"
    );
    assert_eq!(attr_first(&g, "groupType"), Some("8"));
    assert_eq!(dc.member_sids(&g.dn).await, BTreeSet::from([sid.clone()]));
    let guid = entry_guid(&g).unwrap();
    // The clash is reported (naming the address and the holder), the group does not fail.
    assert!(
        log.lines().any(
            |l| l.contains("proxy address held by an object the service does not own")
                && l.contains(&clash)
                && l.contains(&contact)
        ),
        "the clash was not reported:\n{}",
        common::service::tail(&log)
    );
    assert!(dead_letters(&svc).is_empty());
    assert_eq!(
        usn_snapshot(dc, &elsewhere).await,
        before,
        "the contact was modified"
    );
    // A mail-enabled security group carries its mail attributes too.
    let s_group = group(dc, &ou, &sec).await;
    assert_eq!(attr_first(&s_group, "mail"), Some(sec_mail.as_str()));
    assert_eq!(attr_values(&s_group, "proxyAddresses"), [sec_address]);

    // An address added and one removed in the cloud follow within a round, on the same object.
    let added = addr("deals", "contoso.com", false);
    sim.put_group(&m365, json!({"proxyAddresses": [primary, added, clash]}))
        .await;
    // The security group stops being mail-enabled: what was written is cleared.
    sim.put_group(&sec, json!({"mailEnabled": false})).await;
    let log = svc.once_ok();
    let g = group(dc, &ou, &m365).await;
    assert_eq!(addresses(&g), set(&[&primary, &added]));
    assert_eq!(
        entry_guid(&g).as_deref(),
        Some(guid.as_str()),
        "same object"
    );
    let s_group = group(dc, &ou, &sec).await;
    assert_eq!(
        (
            attr_first(&s_group, "mail"),
            attr_values(&s_group, "proxyAddresses").len()
        ),
        (None, 0),
        "no longer mail-enabled"
    );
    assert!(
        log.contains(&clash),
        "the clash is reported again while it lasts"
    );
    assert_eq!(
        usn_snapshot(dc, &elsewhere).await,
        before,
        "the contact was modified"
    );
    assert!(dead_letters(&svc).is_empty());

    // A converged group is compared as a set: a full reconcile writes nothing to it.
    let usn = attr_first(&g, "uSNChanged").unwrap().to_string();
    assert!(svc.run(&["resync"]).status.success());
    svc.once_ok();
    let g = group(dc, &ou, &m365).await;
    assert_eq!(
        attr_first(&g, "uSNChanged"),
        Some(usn.as_str()),
        "a converged group is not written"
    );

    // The clash is on /metrics and the status page while the service runs (a resync makes its
    // first round reconcile the group again).
    assert!(svc.run(&["resync"]).status.success());
    let _running = svc.spawn();
    let metric = r#"entra_writeback_conflicts_total{kind="proxy_address"}"#;
    wait::until(
        "the proxy_address conflict on /metrics and /status.json",
        60,
        Duration::from_millis(200),
        Some(&svc),
        async || {
            let counted =
                wait::http_get(svc.http_port, "/metrics")
                    .await
                    .is_some_and(|(_, body)| {
                        body.lines()
                            .filter_map(|l| l.strip_prefix(metric))
                            .any(|v| v.trim().parse::<f64>().is_ok_and(|n| n >= 1.0))
                    });
            let shown = wait::status(&svc)
                .await
                .is_some_and(|s| s["totals"]["conflicts"].as_u64() >= Some(1));
            counted && shown
        },
    )
    .await;
    assert_eq!(
        usn_snapshot(dc, &elsewhere).await,
        before,
        "the contact was modified"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_nickname_is_written_where_the_exchange_schema_has_it_and_off_writes_nothing() {
    let (_stop, dc) = SambaDc::start_owned(EXCHANGE_IP, &["--exchange-schema"]);
    assert!(dc.exchange_schema && dc.schema_patched);
    let ou = dc.fresh_ou("mail-exchange").await;
    let s = unique_suffix();
    let tag = 0x6700;
    let (on, off) = (oid(tag, 1), oid(tag, 2));
    let address = format!("SMTP:team-{s}@contoso.com");
    let groups = [
        m365_group(
            &on,
            "Team",
            &format!("team-{s}@contoso.com"),
            std::slice::from_ref(&address),
            vec![],
        ),
        m365_group(
            &off,
            "Quiet",
            &format!("quiet-{s}@contoso.com"),
            &[format!("SMTP:quiet-{s}@contoso.com")],
            vec![],
        ),
    ];
    let sim = GraphSim::start(vec![], groups[..1].to_vec(), &[]);
    let svc = Service::new(&sim, &dc, &ou);
    let log = svc.once_ok();
    assert!(
        log.lines()
            .any(|l| l.contains("connected to AD") && l.contains("\"has_mail_nickname\":true")),
        "the Exchange schema's mailNickname was not detected"
    );
    let g = group(&dc, &ou, &on).await;
    assert_eq!(attr_first(&g, "mailNickname"), Some("team"));
    assert_eq!(attr_values(&g, "proxyAddresses"), [address]);
    sim.put_group(&on, json!({"mailNickname": format!("team-{s}")}))
        .await;
    svc.once_ok();
    let g = group(&dc, &ou, &on).await;
    assert_eq!(
        attr_first(&g, "mailNickname"),
        Some(format!("team-{s}").as_str())
    );

    // `mail_attributes = "off"`: the group lands, none of its mail attributes do.
    let quiet_ou = dc.fresh_ou("mail-off").await;
    let quiet_sim = GraphSim::start(vec![], groups[1..].to_vec(), &[]);
    let quiet = Service::with(
        &dc,
        &quiet_ou,
        Options {
            ad_extra: "mail_attributes = \"off\"".into(),
            ..Options::new(&dc, &quiet_sim)
        },
    );
    quiet.once_ok();
    let g = group(&dc, &quiet_ou, &off).await;
    for attr in ["mail", "proxyAddresses", "mailNickname"] {
        assert_eq!(attr_first(&g, attr), None, "{attr} written although off");
    }
    assert_eq!(attr_first(&g, "displayName"), Some("Quiet"));
}
