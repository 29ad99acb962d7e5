//! Benchmark set-up at scale: users written straight into the instance's database by
//! `benches/seed-users.py` (Samba's own module stack, transactions of 1,000), because one LDAP
//! add per user would spend most of a 100,000-group benchmark on set-up it does not measure.
//! What the service writes always goes over LDAP.

use std::path::Path;
use std::process::Command;

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
}
