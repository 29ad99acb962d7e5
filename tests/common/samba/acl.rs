//! The lab's delegation, from the tests' side: grant the service account the group writeback
//! rights on an OU with `deploy/ad/samba-delegate.sh` (as an admin following the README would),
//! and take one away again with an explicit deny ACE (`samba-tool dsacl set`).
//!
//! Both work on the instance's database directly (`<dir>/private/sam.ldb`), as the lab's own
//! seeding does: no password on a command line.

use std::path::Path;
use std::process::{Command, Stdio};

use ldap3::Scope;

use super::{SambaDc, entry_sid, expect_ok};

/// `schemaIDGUID` of the `group` class (the same in every AD forest).
pub const GROUP_CLASS_GUID: &str = "bf967a9c-0de6-11d0-a285-00aa003049e2";
/// `schemaIDGUID` of the `member` attribute.
pub const MEMBER_ATTR_GUID: &str = "bf9679c0-0de6-11d0-a285-00aa003049e2";

/// Runs `c` to completion; its stdout and stderr. Panics, with both, if it fails.
pub(super) fn run(c: &mut Command, what: &str) -> String {
    let out = c
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

impl SambaDc {
    fn db_args(&self) -> [String; 4] {
        [
            "--url".into(),
            self.dir.join("private/sam.ldb").display().to_string(),
            "--conf".into(),
            self.dir.join("etc/smb.conf").display().to_string(),
        ]
    }

    /// Runs `deploy/ad/samba-delegate.sh` for the service account on `ou`; its output.
    pub fn delegate(&self, ou: &str) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/ad/samba-delegate.sh");
        run(
            Command::new("bash")
                .arg(script)
                .args(self.db_args())
                .args([self.svc_bind_dn.as_str(), ou]),
            &format!("samba-delegate.sh on {ou}"),
        )
    }

    /// Adds ACEs (SDDL, `{sid}` standing for the service account's SID) to `ou`'s DACL.
    pub async fn add_aces(&self, ou: &str, sddl: &str) {
        let sddl = sddl.replace("{sid}", &self.svc_sid().await);
        let [_, url, _, conf] = self.db_args();
        run(
            Command::new("samba-tool")
                .args(["dsacl", "set", "-H", &url, "-s", &conf])
                .arg(format!("--objectdn={ou}"))
                .arg(format!("--sddl={sddl}")),
            &format!("samba-tool dsacl set on {ou}"),
        );
    }

    /// The service account's `objectSid` (`S-1-5-21-…`).
    pub async fn svc_sid(&self) -> String {
        let mut ldap = self.connect().await;
        let (entries, _) = expect_ok(
            ldap.search(
                &self.svc_bind_dn,
                Scope::Base,
                "(objectClass=*)",
                vec!["objectSid"],
            )
            .await
            .and_then(|r| r.success()),
            "read the service account's objectSid",
        );
        let _ = ldap.unbind().await;
        let entry = ldap3::SearchEntry::construct(entries.into_iter().next().expect("one entry"));
        entry_sid(&entry).expect("a SID")
    }
}
