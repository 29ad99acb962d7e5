//! A minimal direct LDAP loader, the yardstick of the benchmarks: the same group entries the
//! service writes, each one `add` carrying its first `batch` members, then one modify per
//! further batch, one after the other over one StartTLS connection, with no reads. What the
//! directory can take at best; the service's time is reported beside it, as a ratio.

use std::collections::HashSet;
use std::time::Instant;

use ldap3::{Ldap, Mod};

use super::samba::SambaDc;

/// One group to load.
pub struct LoadEntry {
    /// Its DN.
    pub dn: String,
    /// Attributes other than `member`.
    pub attrs: Vec<(String, Vec<String>)>,
    /// Member SIDs (written as `<SID=…>`, as the service writes them).
    pub member_sids: Vec<String>,
}

/// A universal security group `name` under `ou` with these member SIDs; `n` makes the
/// `sAMAccountName` unique.
pub fn security_group(ou: &str, name: &str, n: usize, member_sids: Vec<String>) -> LoadEntry {
    let attrs = [
        ("objectClass", vec!["top", "group"]),
        ("cn", vec![name]),
        ("displayName", vec![name]),
        ("groupType", vec!["-2147483640"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .chain([
        (
            "sAMAccountName".to_string(),
            vec![format!("ld{n:x}-{}", std::process::id())],
        ),
        ("adminDescription".to_string(), vec![format!("Loader_{n}")]),
    ])
    .collect();
    LoadEntry {
        dn: format!("CN={name},{ou}"),
        attrs,
        member_sids,
    }
}

/// What a load took.
pub struct LoadReport {
    /// Wall time, seconds.
    pub secs: f64,
    /// LDAP operations sent (bind excluded).
    pub operations: u64,
}

fn values(sids: &[String]) -> HashSet<String> {
    sids.iter().map(|s| format!("<SID={s}>")).collect()
}

/// Writes `entries` in order over one StartTLS connection (panics on any refusal: the loader
/// is only ever given entries the directory accepts).
pub async fn load(dc: &SambaDc, entries: &[LoadEntry], batch: usize) -> LoadReport {
    let mut ldap: Ldap = dc.connect_tls(true).await;
    let started = Instant::now();
    let mut operations = 0;
    for e in entries {
        let (first, rest) = e.member_sids.split_at(e.member_sids.len().min(batch));
        let mut attrs: Vec<(String, HashSet<String>)> = e
            .attrs
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
            .collect();
        if !first.is_empty() {
            attrs.push(("member".into(), values(first)));
        }
        ldap.add(&e.dn, attrs)
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|err| panic!("loader: add {}: {err}", e.dn));
        operations += 1;
        for chunk in rest.chunks(batch) {
            ldap.modify(&e.dn, vec![Mod::Add("member".to_string(), values(chunk))])
                .await
                .and_then(|r| r.success())
                .unwrap_or_else(|err| panic!("loader: modify {}: {err}", e.dn));
            operations += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = ldap.unbind().await;
    LoadReport { secs, operations }
}
