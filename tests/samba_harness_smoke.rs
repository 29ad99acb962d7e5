//! Checks the Samba AD test harness itself against a real DC: start (or
//! reuse) it, create an OU, a user and a group, and read them back the ways
//! the other integration tests rely on.

mod common {
    pub mod samba;
}

use std::collections::{BTreeSet, HashSet};

use common::samba::{self, SambaDc, StopOnDrop};
use ldap3::Scope;

/// The loopback IP of the DCs these tests start for themselves (never the shared one).
const OWN_IP: &str = "127.0.0.4";

/// Members for a group big enough to need two ranged reads (> 1,500).
const BIG_GROUP: usize = 1600;

#[tokio::test]
async fn harness_creates_ou_and_user_and_reads_the_sid_back() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("harness").await;
    let sam = format!("u{}", samba::unique_suffix());
    let (user_dn, sid) = dc.create_user(&ou, &sam).await;
    assert_eq!(user_dn, format!("CN={sam},{ou}"));
    assert!(sid.starts_with("S-1-5-21-"), "unexpected SID {sid}");

    // The server agrees with our conversion: a string-SID filter finds the user.
    let mut ldap = dc.connect().await;
    let (entries, _) = ldap
        .search(
            &ou,
            Scope::Subtree,
            &format!("(objectSid={sid})"),
            vec!["dn"],
        )
        .await
        .and_then(|r| r.success())
        .expect("search by objectSid");
    assert_eq!(entries.len(), 1);
    assert_eq!(
        ldap3::SearchEntry::construct(entries.into_iter().next().unwrap()).dn,
        user_dn
    );
    ldap.unbind().await.ok();

    // Two fresh OUs never collide.
    assert_ne!(ou, dc.fresh_ou("harness").await);
}

#[tokio::test]
async fn harness_reads_large_groups_by_anchor_with_all_member_sids() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("harness-group").await;
    let (user_dn, user_sid) = dc
        .create_user(&ou, &format!("m{}", samba::unique_suffix()))
        .await;

    // Foreign-domain SIDs become foreignSecurityPrincipals on the fly (an
    // existing one is simply reused), which makes a big group cheap to build.
    let domain = "S-1-5-21-1000-2000-3000";
    let mut expected: BTreeSet<String> = (1..BIG_GROUP).map(|i| format!("{domain}-{i}")).collect();
    expected.insert(user_sid.clone());
    let member_values: HashSet<String> = expected.iter().map(|s| format!("<SID={s}>")).collect();

    let anchor = format!("Group_{}", samba::unique_suffix());
    let group_dn = format!("CN=big,{ou}");
    let mut attrs: Vec<(String, HashSet<String>)> = vec![
        ("objectClass".into(), HashSet::from(["group".into()])),
        (
            "sAMAccountName".into(),
            HashSet::from([format!("g{}", samba::unique_suffix())]),
        ),
        ("groupType".into(), HashSet::from(["-2147483640".into()])),
        ("adminDescription".into(), HashSet::from([anchor.clone()])),
        ("member".into(), member_values),
    ];
    if dc.schema_patched {
        attrs.push((
            "msDS-ExternalDirectoryObjectId".into(),
            HashSet::from([anchor.clone()]),
        ));
    }
    let mut ldap = dc.connect().await;
    ldap.add(&group_dn, attrs)
        .await
        .and_then(|r| r.success())
        .expect("add a 1,600-member group");
    ldap.unbind().await.ok();

    let group = dc
        .group_by_anchor(&ou, &anchor)
        .await
        .expect("the group is found by its anchor");
    assert_eq!(group.dn, group_dn);
    let members = samba::attr_values(&group, "member");
    assert_eq!(
        members.len(),
        BIG_GROUP,
        "ranged retrieval must return every member"
    );
    assert!(members.contains(&user_dn));
    assert!(group.attrs.keys().all(|k| !k.contains(";range=")));
    assert_eq!(samba::attr_first(&group, "groupType"), Some("-2147483640"));
    assert!(samba::attr_first(&group, "uSNChanged").is_some());
    assert!(samba::entry_sid(&group).is_some_and(|s| s.starts_with("S-1-5-21-")));
    if dc.schema_patched {
        assert_eq!(
            samba::attr_first(&group, "msDS-ExternalDirectoryObjectId"),
            Some(anchor.as_str())
        );
    }
    assert!(dc.group_by_anchor(&ou, "Group_absent").await.is_none());

    assert_eq!(dc.member_sids(&group_dn).await, expected);

    let groups = dc.groups_in(&ou).await;
    assert_eq!(groups.len(), 1);
    assert_eq!(samba::attr_values(&groups[0], "member").len(), BIG_GROUP);
}

#[tokio::test]
async fn harness_tls_is_verified_by_rustls_and_the_service_account_binds() {
    let dc: &SambaDc = samba::shared();
    for starttls in [false, true] {
        let mut ldap = dc.connect_tls(starttls).await;
        let (entries, _) = ldap
            .search(&dc.base_dn, Scope::Base, "(objectClass=*)", vec!["dn"])
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("search over TLS (starttls={starttls}): {e}"));
        assert_eq!(entries.len(), 1);
        ldap.unbind().await.ok();
    }
    // The script seeded the service account (it binds) and the default target OU (it exists).
    let mut svc = dc.connect_as(&dc.svc_bind_dn, &dc.svc_bind_password).await;
    let (entries, _) = svc
        .search(
            &dc.cloud_groups_ou(),
            Scope::Base,
            "(objectClass=organizationalUnit)",
            vec!["ou"],
        )
        .await
        .and_then(|r| r.success())
        .expect("read the seeded target OU");
    assert_eq!(entries.len(), 1, "{} is not seeded", dc.cloud_groups_ou());
    svc.unbind().await.ok();
}

/// `samba-ad.sh start` stops the samba it started when a later step fails: here seeding the
/// directory, made to fail by an `ldapadd` (first on `PATH`) that refuses everything.
#[test]
fn a_start_that_fails_after_samba_started_leaves_no_samba_running() {
    samba::stop(OWN_IP); // a leftover instance would be reused, not started
    let _guard = StopOnDrop(OWN_IP); // if the script leaves samba running, still clean up
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("ldapadd");
    std::fs::write(
        &fake,
        "#!/bin/sh\ncat >/dev/null\necho 'ldapadd: refused by the test' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let out = std::process::Command::new("bash")
        .arg(samba::script())
        .args(["start", "--ip", OWN_IP])
        .env("PATH", path)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "start succeeded:\n{stderr}");
    assert!(
        stderr.contains("could not create"),
        "seeding was meant to fail:\n{stderr}"
    );
    let pid: u32 = stderr
        .split("started samba (pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("samba was never started:\n{stderr}"));
    // The script waits for samba to exit before it exits itself (a zombie counts as gone); the
    // deadline only guards against a slow exit on a loaded machine.
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.rsplit(") ").next().unwrap_or("").starts_with('Z'))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while running() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        !running(),
        "samba (pid {pid}) still runs after a failed start:\n{stderr}"
    );
    let addr = format!("{OWN_IP}:389").parse().unwrap();
    assert!(
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_err(),
        "something still listens on {addr}"
    );
}
