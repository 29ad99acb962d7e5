//! The `run --once finished` summary line, parsed: LDAP operations (all, and the work's own
//! per operation), CPU time and peak memory, as the tests and benchmarks read them.

use serde_json::Value;

/// The `run --once finished` log line, parsed.
pub fn summary(log: &str) -> Value {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("run --once finished"))
        .expect("summary line");
    serde_json::from_str(line).expect("JSON log line")
}

/// `ldap_operations` from the `run --once finished` log line: everything, binding included.
pub fn ldap_ops(log: &str) -> u64 {
    summary(log)["ldap_operations"]
        .as_u64()
        .expect("ldap_operations field")
}

/// The LDAP operations of the work itself (`ldap_work`: bind, rootDSE and schema probe left
/// out), per operation: `[("add", 2), ("modify", 5), ("search", 5)]`.
pub fn work_ops(log: &str) -> Vec<(String, u64)> {
    let v = summary(log);
    let text = v["ldap_work"].as_str().expect("ldap_work field");
    text.split_whitespace()
        .map(|kv| {
            let (op, n) = kv.split_once('=').expect("op=count");
            (op.to_string(), n.parse().expect("a count"))
        })
        .collect()
}

/// Of [`work_ops`], the count of one operation (0 if absent).
pub fn work_op(log: &str, op: &str) -> u64 {
    work_ops(log)
        .into_iter()
        .find(|(o, _)| o == op)
        .map_or(0, |(_, n)| n)
}

/// Of [`work_ops`], all of them.
pub fn work_total(log: &str) -> u64 {
    work_ops(log).iter().map(|(_, n)| n).sum()
}

/// A numeric field of the summary (`cpu_ms`, `peak_rss_kib`, …), if present.
pub fn field(log: &str, name: &str) -> Option<u64> {
    summary(log)[name].as_u64()
}

/// LDAP writes of the work: adds, modifies, renames and deletes.
pub fn work_writes(log: &str) -> u64 {
    ["add", "modify", "modrdn", "delete"]
        .iter()
        .map(|op| work_op(log, op))
        .sum()
}
