//! The fake answers as AD does where the service's code depends on it, and the directory
//! logic (anchors, conflicts, ranged reads) runs unchanged over it.

use std::collections::HashSet;

use ldap3::{Mod, Scope};

use super::*;
use crate::directory::DirectoryError;
use crate::model::event::Recorded;
use crate::model::{Event, sid};

const DOMAIN: &str = "DC=corp,DC=example";
const OU: &str = "OU=Groups,DC=corp,DC=example";
const PEOPLE: &str = "OU=People,DC=corp,DC=example";

fn lab() -> FakeDirectory {
    let fake = FakeDirectory::new(DOMAIN);
    fake.add_ou(OU);
    fake.add_ou(PEOPLE);
    fake
}

fn set(v: &[&str]) -> HashSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn group_attrs(sam: &str, anchor: &str) -> Vec<(String, HashSet<String>)> {
    vec![
        ("objectClass".into(), set(&["top", "group"])),
        ("sAMAccountName".into(), set(&[sam])),
        ("adminDescription".into(), set(&[anchor])),
    ]
}

fn rc(e: &DirectoryError) -> u32 {
    e.result_code().map_or(0, |c| c.0)
}

#[tokio::test]
async fn adds_are_refused_as_ad_refuses_them() {
    let fake = lab();
    let dn = format!("CN=Sales,{OU}");
    fake.add(&dn, group_attrs("sales", "Group_a"))
        .await
        .unwrap();
    let again = fake
        .add(&dn, group_attrs("sales2", "Group_b"))
        .await
        .unwrap_err();
    assert_eq!(rc(&again), 68, "{again}");
    let sam = fake
        .add(&format!("CN=Other,{OU}"), group_attrs("SALES", "Group_c"))
        .await
        .unwrap_err();
    assert_eq!(
        rc(&sam),
        68,
        "a sAMAccountName is unique in the domain: {sam}"
    );
    let orphan = fake
        .add(
            &format!("CN=X,OU=Nowhere,{DOMAIN}"),
            group_attrs("x", "Group_d"),
        )
        .await
        .unwrap_err();
    assert_eq!(rc(&orphan), 32, "{orphan}");
    // objectGUID and objectSid are assigned; cn follows the RDN.
    let sid = fake.sid(&dn).expect("a group is a security principal");
    assert!(sid::is_valid(&sid), "{sid}");
    assert_eq!(fake.attr(&dn, "cn").unwrap(), vec!["Sales".to_string()]);
    let found = Ldap::search(
        &fake,
        &dn,
        Scope::Base,
        "(objectClass=*)",
        &["objectSid"],
        DnForm::Plain,
    )
    .await
    .unwrap();
    let bin = &found[0].bin_attrs["objectSid"][0];
    assert_eq!(sid::to_string(bin).as_deref(), Some(sid.as_str()));
}

#[tokio::test]
async fn member_writes_answer_with_windows_result_codes_and_members_are_links() {
    let fake = lab();
    let g = format!("CN=Sales,{OU}");
    fake.add(&g, group_attrs("sales", "Group_a")).await.unwrap();
    let ann = fake.add_user(PEOPLE, "Ann", "ann");
    let bob = fake.add_user(PEOPLE, "Bob", "bob");
    let add = |s: &str| {
        vec![Mod::Add(
            "member".to_string(),
            set(&[&sid::member_value(s)]),
        )]
    };
    let del = |s: &str| {
        vec![Mod::Delete(
            "member".to_string(),
            set(&[&sid::member_value(s)]),
        )]
    };
    fake.modify(&g, add(&ann)).await.unwrap();
    assert_eq!(rc(&fake.modify(&g, add(&ann)).await.unwrap_err()), 68);
    assert_eq!(rc(&fake.modify(&g, del(&bob)).await.unwrap_err()), 16);
    let unknown = "S-1-5-21-9-9-9-999";
    assert_eq!(rc(&fake.modify(&g, add(unknown)).await.unwrap_err()), 32);
    // A modify is all or nothing.
    let both = vec![
        Mod::Add("member".to_string(), set(&[&sid::member_value(&bob)])),
        Mod::Add("member".to_string(), set(&[&sid::member_value(unknown)])),
    ];
    assert!(fake.modify(&g, both).await.is_err());
    assert_eq!(fake.member_sids(&g).unwrap(), [ann.clone()].into());
    fake.modify(&g, add(&bob)).await.unwrap();
    // Deleting a member removes its link, as AD does.
    fake.delete(&format!("CN=Ann,{PEOPLE}")).await.unwrap();
    assert_eq!(fake.member_sids(&g).unwrap(), [bob].into());
    // Other attributes: the RDN attribute needs modrdn; missing entries are 32.
    let cn = vec![Mod::Replace("cn".to_string(), set(&["x"]))];
    assert_eq!(rc(&fake.modify(&g, cn).await.unwrap_err()), 67);
    let desc = vec![Mod::Replace("description".to_string(), set(&["d"]))];
    assert_eq!(
        rc(&fake
            .modify(&format!("CN=Gone,{OU}"), desc.clone())
            .await
            .unwrap_err()),
        32
    );
    fake.modify(&g, desc).await.unwrap();
    assert_eq!(fake.attr(&g, "description").unwrap(), vec!["d".to_string()]);
}

#[tokio::test]
async fn renames_and_deletes_check_names_parents_and_children() {
    let fake = lab();
    let (a, b) = (format!("CN=A,{OU}"), format!("CN=B,{OU}"));
    fake.add(&a, group_attrs("a", "Group_a")).await.unwrap();
    fake.add(&b, group_attrs("b", "Group_b")).await.unwrap();
    assert_eq!(rc(&fake.rename(&a, "CN=B", None).await.unwrap_err()), 68);
    let nowhere = format!("OU=Nowhere,{DOMAIN}");
    assert_eq!(
        rc(&fake.rename(&a, "CN=A", Some(&nowhere)).await.unwrap_err()),
        32
    );
    fake.rename(&a, "CN=C", Some(PEOPLE)).await.unwrap();
    let c = format!("CN=C,{PEOPLE}");
    assert_eq!(fake.attr(&c, "cn").unwrap(), vec!["C".to_string()]);
    assert_eq!(fake.attr(&a, "cn"), None);
    assert_eq!(
        rc(&fake.delete(OU).await.unwrap_err()),
        66,
        "an OU with a group in it"
    );
    assert_eq!(rc(&fake.delete(&a).await.unwrap_err()), 32);
    fake.delete(&b).await.unwrap();
    assert!(fake.children(OU).is_empty());
}

#[tokio::test]
async fn faults_fail_the_matching_operations_the_given_number_of_times() {
    let fake = lab();
    fake.inject(FaultRule::next(2, Fault::Busy).on_op("add").on_dn("CN=A,"));
    let a = format!("CN=A,{OU}");
    for _ in 0..2 {
        let e = fake.add(&a, group_attrs("a", "Group_a")).await.unwrap_err();
        assert!(e.is_transient() && !e.is_systemic(), "{e}");
    }
    // Other DNs and operations are not affected meanwhile; the third add succeeds.
    fake.add(&a, group_attrs("a", "Group_a")).await.unwrap();
    fake.inject(FaultRule::always(Fault::Down));
    let e = fake.delete(&a).await.unwrap_err();
    assert!(e.is_systemic(), "{e}");
    fake.clear_faults();
    fake.inject(FaultRule::next(1, Fault::Refused));
    assert!(!fake.delete(&a).await.unwrap_err().is_transient());
    fake.delete(&a).await.unwrap();
    let adds: Vec<bool> = fake
        .ops()
        .iter()
        .filter(|r| r.op == "add")
        .map(|r| r.ok)
        .collect();
    assert_eq!(adds, vec![false, false, true]);
    assert_eq!(fake.count_ok("delete", "CN=A"), 1);
}

#[tokio::test]
async fn the_directory_opens_over_the_fake_and_detects_the_schema() {
    let cfg = ad_config(OU);
    let samba_like = lab().directory(&cfg, Events::none()).await;
    assert_eq!(samba_like.domain_base, DOMAIN);
    assert!(!samba_like.has_external_id);
    assert!(samba_like.target_ou_exists().await.unwrap());
    let windows = lab()
        .with_external_id_schema()
        .directory(&cfg, Events::none())
        .await;
    assert!(windows.has_external_id);
    assert!(!windows.has_mail_nickname && !windows.rules.mail.mail_nickname);
    let exchange = lab()
        .with_mail_nickname_schema()
        .directory(&cfg, Events::none())
        .await;
    assert!(exchange.has_mail_nickname && exchange.rules.mail.mail_nickname);
    assert!(!exchange.has_external_id);
}

#[tokio::test]
async fn find_owned_reports_foreign_and_duplicate_anchors_as_conflicts() {
    let fake = lab().with_external_id_schema();
    let (seen, events) = Recorded::new();
    let dir = fake.directory(&ad_config(OU), events).await;
    fake.seed(
        &format!("CN=Theirs,{OU}"),
        &[
            ("objectClass", &["top", "group"]),
            ("msDS-ExternalDirectoryObjectId", &["Group_g1"]),
        ],
    );
    let e = dir.find_owned("g1").await.unwrap_err();
    assert!(
        matches!(
            e,
            DirectoryError::Conflict {
                kind: "anchor_mismatch",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        seen.events(),
        vec![Event::Conflict {
            kind: "anchor_mismatch"
        }]
    );
    for cn in ["One", "Two"] {
        fake.seed(
            &format!("CN={cn},{OU}"),
            &[
                ("objectClass", &["top", "group"]),
                ("adminDescription", &["Group_g2"]),
            ],
        );
    }
    let e = dir.find_owned("g2").await.unwrap_err();
    assert!(
        matches!(
            e,
            DirectoryError::Conflict {
                kind: "duplicate_anchor",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        seen.events().len(),
        1,
        "a duplicate anchor is not counted as a conflict"
    );
    // Only anchored groups in owned OUs are listed, and an anchor outside them is not ours.
    fake.seed(
        &format!("CN=Elsewhere,{PEOPLE}"),
        &[
            ("objectClass", &["top", "group"]),
            ("adminDescription", &["Group_g3"]),
        ],
    );
    assert_eq!(dir.find_owned("g3").await.unwrap(), None);
    let ids: Vec<String> = dir
        .list_owned()
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, vec!["g2".to_string(), "g2".to_string()]);
}

#[tokio::test]
async fn members_are_read_in_ranges_until_the_server_says_star() {
    let fake = lab().with_max_val_range(3);
    let dir = fake.directory(&ad_config(OU), Events::none()).await;
    let g = format!("CN=Big,{OU}");
    fake.add(&g, group_attrs("big", "Group_big")).await.unwrap();
    let mut want = std::collections::BTreeSet::new();
    for i in 0..8 {
        let s = fake.add_user(PEOPLE, &format!("U{i}"), &format!("u{i}"));
        fake.modify(
            &g,
            vec![Mod::Add("member".into(), set(&[&sid::member_value(&s)]))],
        )
        .await
        .unwrap();
        want.insert(s);
    }
    fake.clear_log();
    // The directory asks for 1500 at a time; the server caps at 3: 0-2, 3-5, 6-*.
    assert_eq!(dir.member_sids(&g).await.unwrap(), want);
    assert_eq!(fake.count_ok("search", "CN=Big"), 3);
    // With a step of 2, under the server's cap: 0-1, 2-3, 4-5, 6-*.
    fake.clear_log();
    let dir = dir.with_member_range_step(2);
    assert_eq!(dir.member_sids(&g).await.unwrap(), want);
    assert_eq!(fake.count_ok("search", "CN=Big"), 4);
}

#[tokio::test]
async fn a_missing_target_ou_is_transient_and_a_missing_optional_ou_is_skipped() {
    let fake = FakeDirectory::new(DOMAIN);
    let mut cfg = ad_config(OU);
    cfg.previous_ous = vec![format!("OU=Old,{DOMAIN}")];
    let dir = fake.directory(&cfg, Events::none()).await;
    let e = dir.find_owned("g1").await.unwrap_err();
    assert!(
        matches!(e, DirectoryError::TargetOuMissing { .. }) && e.is_transient(),
        "{e}"
    );
    fake.add_ou(OU);
    assert_eq!(dir.find_owned("g1").await.unwrap(), None);
}

#[tokio::test]
async fn the_owned_count_agrees_with_the_listing_in_nested_and_separate_ous() {
    let fake = lab().with_external_id_schema();
    let inner = format!("OU=Inner,{OU}");
    fake.add_ou(&inner);
    let group = |dn: String, admin: &str, ext: Option<&str>| {
        let mut attrs: Vec<(&str, &[&str])> = vec![
            ("objectClass", &["top", "group"]),
            ("adminDescription", std::slice::from_ref(&admin)),
        ];
        if let Some(e) = ext.as_ref() {
            attrs.push(("msDS-ExternalDirectoryObjectId", std::slice::from_ref(e)));
        }
        fake.seed(&dn, &attrs);
    };
    group(format!("CN=A,{OU}"), "Group_a", None);
    group(format!("CN=B,{inner}"), "Group_b", Some("Group_b"));
    group(format!("CN=C,{OU}"), "Group_c", Some("Group_x")); // anchors disagree: not ours
    group(format!("CN=D,{OU}"), "note", None); // no anchor
    let mut cfg = ad_config(OU);
    let dir = fake.directory(&cfg, Events::none()).await;
    assert_eq!(dir.count_owned().await.unwrap(), 2);
    assert_eq!(dir.list_owned().await.unwrap().len(), 2);
    // The inner OU owned too: B is found by both searches, counted once.
    cfg.previous_ous = vec![inner];
    let dir = fake.directory(&cfg, Events::none()).await;
    assert_eq!(dir.count_owned().await.unwrap(), 2);
    assert_eq!(dir.list_owned().await.unwrap().len(), 2);
}
