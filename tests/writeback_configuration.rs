//! Connect v2's per-group writeback settings (issue 12), against a real Samba AD DC: under
//! `graph.writeback_configuration = "honour"` groups delta comes from Graph's beta endpoint,
//! `isEnabled` decides which groups are written (unset: Microsoft 365 in, security out), and
//! `onPremisesGroupType` sets the AD `groupType`. A type change converts the same object.

mod common;

use common::samba::{self, SambaDc, attr_first, entry_guid};
use common::service::{Options, Service};
use common::sim::{GraphSim, oid};
use serde_json::{Value, json};

const SECURITY: &str = "-2147483640";
const DISTRIBUTION: &str = "8";

fn service(sim: &GraphSim, dc: &SambaDc, ou: &str, mode: &str) -> Service {
    Service::with(
        dc,
        ou,
        Options {
            graph_extra: format!("writeback_configuration = \"{mode}\""),
            tail: "[sync]\nmin_backoff = \"100ms\"\nmax_backoff = \"1s\"\nmax_attempts = 2\n"
                .into(),
            ..Options::new(dc, sim)
        },
    )
}

/// A cloud group with a `writebackConfiguration`.
fn group(id: &str, unified: bool, enabled: Value, kind: Value) -> Value {
    let types: Vec<&str> = if unified { vec!["Unified"] } else { vec![] };
    json!({"id": id, "displayName": format!("wbc-{}", &id[id.len() - 6..]), "groupTypes": types,
           "securityEnabled": !unified, "mailEnabled": unified, "members": [],
           "writebackConfiguration": {"isEnabled": enabled, "onPremisesGroupType": kind}})
}

/// `(objectGUID, groupType)` of the group anchored to `id`, if written.
async fn written(dc: &SambaDc, ou: &str, id: &str) -> Option<(String, String)> {
    let e = dc.group_by_anchor(ou, &format!("Group_{id}")).await?;
    Some((entry_guid(&e)?, attr_first(&e, "groupType")?.to_string()))
}

#[tokio::test(flavor = "multi_thread")]
async fn honoured_settings_choose_groups_and_types_and_convert_in_place() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("wbc").await;
    let id = |n| oid(0x5bc, n);
    let (m365_default, m365_off, sec_default, sec_on, m365_as_sec, m365_mail_sec) =
        (id(1), id(2), id(3), id(4), id(5), id(6));
    let sec_mail = id(7);
    let null = Value::Null;
    // A security group Connect v2 wrote as mail-enabled: the cloud says mailEnabled = false,
    // the setting's type makes it a mail group.
    let mut typed_mail = group(
        &sec_mail,
        false,
        json!(true),
        json!("universalMailEnabledSecurityGroup"),
    );
    typed_mail["mail"] = json!(format!("{}@contoso.com", &sec_mail[24..]));
    typed_mail["proxyAddresses"] = json!([format!("SMTP:{}@contoso.com", &sec_mail[24..])]);
    let sim = GraphSim::start(
        vec![],
        vec![
            group(&m365_default, true, null.clone(), null.clone()),
            group(&m365_off, true, json!(false), null.clone()),
            group(&sec_default, false, null.clone(), null.clone()),
            group(&sec_on, false, json!(true), json!("universalSecurityGroup")),
            group(
                &m365_as_sec,
                true,
                json!(true),
                json!("universalSecurityGroup"),
            ),
            group(
                &m365_mail_sec,
                true,
                null.clone(),
                json!("universalMailEnabledSecurityGroup"),
            ),
            typed_mail,
        ],
        &[],
    );
    let svc = service(&sim, dc, &ou, "honour");
    svc.once_ok();

    let paths = request_paths(&sim).await;
    assert!(
        paths.iter().any(|p| p.starts_with("/beta/groups/delta")),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.starts_with("/v1.0/groups/delta")),
        "{paths:?}"
    );

    let ty = async |g: &str| written(dc, &ou, g).await.map(|(_, t)| t);
    assert_eq!(
        ty(&m365_default).await.as_deref(),
        Some(DISTRIBUTION),
        "M365 in by default"
    );
    assert_eq!(ty(&m365_off).await, None, "isEnabled = false keeps it out");
    assert_eq!(ty(&sec_default).await, None, "security groups are opt-in");
    assert_eq!(ty(&sec_on).await.as_deref(), Some(SECURITY));
    assert_eq!(
        ty(&m365_as_sec).await.as_deref(),
        Some(SECURITY),
        "onPremisesGroupType wins"
    );
    assert_eq!(ty(&m365_mail_sec).await.as_deref(), Some(SECURITY));
    assert_eq!(ty(&sec_mail).await.as_deref(), Some(SECURITY));
    let landed = dc
        .group_by_anchor(&ou, &format!("Group_{sec_mail}"))
        .await
        .unwrap();
    let address = format!("{}@contoso.com", &sec_mail[24..]);
    assert_eq!(
        attr_first(&landed, "mail"),
        Some(address.as_str()),
        "typed mail-enabled: mail written"
    );

    // A type change converts the same object; turning writeback off freezes it (the default
    // soft_delete), it is never deleted; turning it on creates the opted-in group.
    let (guid, _) = written(dc, &ou, &m365_as_sec).await.unwrap();
    let (default_guid, _) = written(dc, &ou, &m365_default).await.unwrap();
    let setting = |enabled: Value, kind: &str| json!({"writebackConfiguration": {"isEnabled": enabled, "onPremisesGroupType": kind}});
    sim.put_group(
        &m365_as_sec,
        setting(json!(true), "universalDistributionGroup"),
    )
    .await;
    sim.put_group(
        &m365_default,
        setting(json!(false), "universalDistributionGroup"),
    )
    .await;
    sim.put_group(&sec_default, setting(json!(true), "universalSecurityGroup"))
        .await;
    svc.once_ok();
    assert_eq!(
        written(dc, &ou, &m365_as_sec).await,
        Some((guid, DISTRIBUTION.into())),
        "same object"
    );
    assert_eq!(
        written(dc, &ou, &m365_default).await.map(|(g, _)| g),
        Some(default_guid),
        "out of scope: frozen, same object"
    );
    assert_eq!(
        ty(&sec_default).await.as_deref(),
        Some(SECURITY),
        "opted in"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ignored_settings_change_nothing_and_switching_mode_reads_everything_again() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("wbc-ignore").await;
    // n differs from the other test's: the CN and sAMAccountName use the id's last 12 characters.
    let (off, sec) = (oid(0x5bd, 11), oid(0x5bd, 12));
    let sim = GraphSim::start(
        vec![],
        vec![
            group(&off, true, json!(false), Value::Null),
            group(&sec, false, Value::Null, json!("universalSecurityGroup")),
        ],
        &[],
    );
    let ignoring = service(&sim, dc, &ou, "ignore");
    ignoring.once_ok();
    let paths = request_paths(&sim).await;
    assert!(
        !paths.iter().any(|p| p.starts_with("/beta/")),
        "v1.0 only: {paths:?}"
    );
    assert_eq!(
        written(dc, &ou, &off).await.map(|(_, t)| t).as_deref(),
        Some(DISTRIBUTION)
    );
    assert_eq!(
        written(dc, &ou, &sec).await.map(|(_, t)| t).as_deref(),
        Some(SECURITY)
    );

    // The same state under "honour": the scope changed and the stored v1.0 cursor cannot carry
    // the settings, so the next round is a full one on beta, and the group now switched off is
    // frozen, not deleted.
    let (guid, _) = written(dc, &ou, &off).await.unwrap();
    honour_from_now_on(&ignoring);
    sim.clear_requests().await;
    let log = ignoring.once_ok();
    assert!(log.contains("starting a full resync"), "{log}");
    let paths = request_paths(&sim).await;
    assert!(
        paths.iter().any(|p| p.starts_with("/beta/groups/delta")),
        "{paths:?}"
    );
    assert_eq!(
        written(dc, &ou, &off).await.map(|(g, _)| g),
        Some(guid),
        "kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn turning_honour_on_reads_every_group_again_from_beta_and_converts_in_place() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("wbc-switch").await;
    let on = oid(0x5be, 21);
    // Admitted either way (a Microsoft 365 group), but typed only when honoured.
    let sim = GraphSim::start(
        vec![],
        vec![group(
            &on,
            true,
            json!(true),
            json!("universalSecurityGroup"),
        )],
        &[],
    );
    let ignoring = service(&sim, dc, &ou, "ignore");
    ignoring.once_ok();
    let (guid, kind) = written(dc, &ou, &on).await.expect("written");
    assert_eq!(kind, DISTRIBUTION, "ignored: the contract's mapping");

    honour_from_now_on(&ignoring);
    sim.clear_requests().await;
    let log = ignoring.once_ok();
    assert!(
        log.contains("graph.writeback_configuration changed"),
        "{log}"
    );
    let requests = sim.requests().await;
    let first = requests
        .iter()
        .find(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/groups/delta"))
        })
        .expect("a groups round");
    assert_eq!(first["path"], "/beta/groups/delta");
    assert!(
        !first["query"].as_str().unwrap_or("").contains("deltatoken"),
        "a full round: {first}"
    );
    assert_eq!(
        written(dc, &ou, &on).await,
        Some((guid, SECURITY.into())),
        "converted in place"
    );
}

/// Rewrites `svc`'s config to `graph.writeback_configuration = "honour"` (same state).
fn honour_from_now_on(svc: &Service) {
    let text = std::fs::read_to_string(&svc.config).unwrap();
    let switched = text.replace(
        "writeback_configuration = \"ignore\"",
        "writeback_configuration = \"honour\"",
    );
    assert_ne!(text, switched, "the config said ignore");
    std::fs::write(&svc.config, switched).unwrap();
}

/// The paths of the Graph requests the simulator logged.
async fn request_paths(sim: &GraphSim) -> Vec<String> {
    sim.requests()
        .await
        .iter()
        .filter_map(|r| r["path"].as_str().map(str::to_string))
        .collect()
}
