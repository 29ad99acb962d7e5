//! Benchmark set-up at scale: users written straight into the instance's database by
//! `benches/seed-users.py` (Samba's own module stack, transactions of 1,000), because one LDAP
//! add per user would spend most of a 100,000-group benchmark on set-up it does not measure.
//! Benchmarks that measure a converged state (a restart, ±1 member on a huge group) may also
//! pre-seed what the service would write (`benches/seed-entries.py`, built with the service's
//! own mapping); whatever a benchmark measures the service writing goes over LDAP.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::SambaDc;
use super::acl::run;

impl SambaDc {
    /// Adds `n` users `<prefix>0 ..` under `ou` (which must exist) through the database, not
    /// LDAP; their objectSids in that order. For benchmarks: the DC keeps running.
    pub fn seed_users(&self, ou: &str, prefix: &str, n: usize) -> Vec<String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/seed-users.py");
        let out = run(
            Command::new("/usr/bin/python3")
                .arg(script)
                .arg(self.dir.join("etc/smb.conf"))
                .args([ou, prefix, &n.to_string()]),
            "seed-users.py",
        );
        let sids: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with("S-1-5-"))
            .map(str::to_string)
            .collect();
        assert_eq!(sids.len(), n, "seed-users.py printed:\n{out}");
        sids
    }

    /// Adds ready-made entries (one JSON ldb message per line, see `benches/seed-entries.py`)
    /// through the database, not LDAP. For the benchmarks that need a converged tenant of a
    /// size whose writes over LDAP would take hours; returns how many were added.
    pub fn seed_entries(&self, jsonl: &str) -> usize {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/seed-entries.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(self.dir.join("etc/smb.conf"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("seed-entries.py starts");
        let mut stdin = child.stdin.take().unwrap();
        // A refused entry ends the script early (a broken pipe here): its stderr says why.
        let _ = stdin.write_all(jsonl.as_bytes());
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "seed-entries.py failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("seed-entries.py prints a count")
    }

    /// The entry the service writes for the security group `id` named `name` under `ou`
    /// (its own mapping and create attributes), with `member_dns` as members: one line for
    /// [`SambaDc::seed_entries`].
    pub fn service_entry(&self, ou: &str, id: &str, name: &str, member_dns: Vec<String>) -> String {
        use entra_writeback::directory::{mapping, plan};
        let props = entra_writeback::model::GroupProps {
            display_name: Some(name.to_string()),
            security_enabled: Some(true),
            ..Default::default()
        };
        let d = mapping::desired(id, &props, &mapping::MappingRules::simple(ou));
        let mut msg = serde_json::Map::new();
        msg.insert("dn".into(), d.dn.clone().into());
        for (attr, values) in plan::create_attrs(&d, self.schema_patched) {
            msg.insert(attr, values.into());
        }
        if !member_dns.is_empty() {
            msg.insert("member".into(), member_dns.into());
        }
        serde_json::Value::Object(msg).to_string()
    }

    /// The foreign security principal of `sid` (what Samba creates when a foreign SID first
    /// becomes a member), as one line for [`SambaDc::seed_entries`]; returns it and its DN.
    pub fn foreign_principal_entry(&self, sid: &str) -> (String, String) {
        let dn = format!("CN={sid},CN=ForeignSecurityPrincipals,{}", self.base_dn);
        let entry = serde_json::json!({"dn": dn, "objectClass": "foreignSecurityPrincipal", "objectSid": sid});
        (entry.to_string(), dn)
    }
}
