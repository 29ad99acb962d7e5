//! Benchmark set-up at scale: users written straight into the instance's database by
//! `benches/seed-users.py` (Samba's own module stack, transactions of 1,000), because one LDAP
//! add per user would spend most of a 100,000-group benchmark on set-up it does not measure.
//! What the service writes always goes over LDAP.

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
        stdin.write_all(jsonl.as_bytes()).unwrap();
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
}
