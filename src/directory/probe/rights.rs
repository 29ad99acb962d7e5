//! The rights probe of one owned OU: create a throw-away group there, write every property the
//! service writes, rename it, move it to the other owned OUs and back (from the target OU), and
//! delete it — each step a [`Finding`] naming the right that is missing.
//!
//! # Guarantees
//! - The throw-away is `CN=entra-writeback-check-<12 hex>` with `sAMAccountName`
//!   `ewcheck-<12 hex>` and `adminDescription` `entra-writeback-check-<12 hex>` (no `Group_`
//!   anchor). Only after its own add succeeded is anything modified, renamed, moved or deleted,
//!   and only that DN (as renames and moves change it); an add that finds the name taken stops.
//! - Writes replace a value with a probe value, or with nothing (`member`, the mail
//!   attributes): the DC checks the write right either way, and the group never gets a member.
//! - A delete the DC refuses leaves the throw-away behind; the finding names its DN.
//!
//! Imports: the parent's [`Finding`] and [`Features`], the directory's seam and helpers.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ldap3::Mod;

use super::{DELEGATION, Features, Finding};
use crate::directory::Directory;
use crate::directory::error::{DirectoryError, ResultCode};
use crate::directory::mapping::UNIVERSAL_SECURITY;
use crate::directory::seam::Ldap;
use crate::model::dn;

/// The CN prefix of every throw-away group.
pub const PROBE_PREFIX: &str = "entra-writeback-check-";

/// 12 hex digits, different per call and per process.
fn tag() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mixed = nanos
        ^ (u64::from(std::process::id()) << 28)
        ^ N.fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{:012x}", mixed & 0xffff_ffff_ffff)
}

/// The attributes the throw-away is created with: the same kinds the service creates groups
/// with (`plan::create_attrs`), none of them an anchor.
fn create_attrs(tag: &str, f: Features) -> Vec<(String, HashSet<String>)> {
    let one = |v: &str| HashSet::from([v.to_string()]);
    let mut attrs = vec![
        (
            "objectClass".to_string(),
            HashSet::from(["top".to_string(), "group".to_string()]),
        ),
        ("cn".into(), one(&format!("{PROBE_PREFIX}{tag}"))),
        ("sAMAccountName".into(), one(&format!("ewcheck-{tag}"))),
        (
            "displayName".into(),
            one("entra-writeback check (safe to delete)"),
        ),
        (
            "description".into(),
            one("Created and deleted again by `entra-writeback check` to test its rights"),
        ),
        ("groupType".into(), one(&UNIVERSAL_SECURITY.to_string())),
        (
            "adminDescription".into(),
            one(&format!("{PROBE_PREFIX}{tag}")),
        ),
    ];
    if f.external_id {
        attrs.push((
            "msDS-ExternalDirectoryObjectId".into(),
            one(&format!("{PROBE_PREFIX}{tag}")),
        ));
    }
    attrs
}

/// One write per property the service writes: (attribute, the values it is replaced with).
fn writes(tag: &str, f: Features) -> Vec<(&'static str, Vec<String>)> {
    let probe = format!("{PROBE_PREFIX}{tag}");
    let mut w = vec![
        (
            "displayName",
            vec!["entra-writeback check (written)".into()],
        ),
        (
            "description",
            vec!["entra-writeback check: write test".into()],
        ),
        ("groupType", vec![UNIVERSAL_SECURITY.to_string()]),
        ("adminDescription", vec![probe.clone()]),
    ];
    if f.external_id {
        w.push(("msDS-ExternalDirectoryObjectId", vec![probe]));
    }
    w.extend([
        ("member", vec![]),
        ("mail", vec![]),
        ("proxyAddresses", vec![]),
    ]);
    if f.mail_nickname {
        w.push(("mailNickname", vec![]));
    }
    w
}

fn refused_fix(right: &str, ou: &str) -> String {
    format!("grant {right} on {ou}: {DELEGATION}")
}

/// The throw-away group, wherever renames and moves have put it.
struct Throwaway<'a, L> {
    conn: &'a L,
    /// `CN=…` (escaped).
    rdn: String,
    /// The OU it is in.
    parent: String,
    /// `rdn,parent`.
    dn: String,
}

impl<L: Ldap> Throwaway<'_, L> {
    /// Every write, one modify each; the attributes refused and why.
    async fn write(&self, tag: &str, f: Features) -> Vec<(String, DirectoryError)> {
        let mut refused = Vec::new();
        for (attr, values) in writes(tag, f) {
            let set: HashSet<String> = values.into_iter().collect();
            let m = vec![Mod::Replace(attr.to_string(), set)];
            if let Err(e) = self.conn.modify(&self.dn, m).await {
                refused.push((attr.to_string(), e));
            }
        }
        refused
    }

    /// Renames (and with `to`, moves) it; follows the new DN on success.
    async fn rename(&mut self, rdn: &str, to: Option<&str>) -> Result<(), DirectoryError> {
        self.conn.rename(&self.dn, rdn, to).await?;
        if let Some(to) = to {
            self.parent = to.to_string();
        }
        self.rdn = rdn.to_string();
        self.dn = format!("{rdn},{}", self.parent);
        Ok(())
    }
}

/// The findings of one owned OU (`key` names it in `[ad]`); `others` are the OUs a group may
/// be moved to from it (the other owned OUs, for the target OU; none otherwise).
pub async fn ou<L: Ldap>(
    dir: &Directory<L>,
    f: Features,
    key: &str,
    ou: &str,
    others: &[&str],
) -> Vec<Finding> {
    let bind = &dir.config().bind_dn;
    let name = |what: &str| format!("ad.{what}[{ou}]");
    let mut out = Vec::new();
    match dir.dn_exists(ou).await {
        Ok(true) => out.push(Finding::pass(name("ou"), format!("exists ({key})"))),
        Ok(false) => {
            let detail = format!("{ou} does not exist (or is not visible to {bind})");
            out.push(Finding::fail(
                name("ou"),
                detail,
                format!("create it, or correct {key}"),
            ));
            return out;
        }
        Err(e) => {
            out.push(Finding::fail(
                name("ou"),
                e.to_string(),
                format!("check {key}"),
            ));
            return out;
        }
    }
    let tag = tag();
    let rdn = format!("CN={}", dn::rdn_value(&format!("{PROBE_PREFIX}{tag}")));
    let mut probe = Throwaway {
        conn: &dir.conn,
        dn: format!("{rdn},{ou}"),
        rdn,
        parent: ou.to_string(),
    };
    if let Err(e) = dir.conn.add(&probe.dn, create_attrs(&tag, f)).await {
        let (detail, fix) = if e.result_code() == Some(ResultCode::INSUFFICIENT_ACCESS) {
            (
                format!("{bind} may not create groups in {ou}: {e}"),
                refused_fix("create group objects (create-child)", ou),
            )
        } else {
            (
                format!("cannot create the probe group: {e}"),
                format!("check {key}"),
            )
        };
        out.push(Finding::fail(name("create"), detail, fix));
        for what in ["write", "rename", "delete"] {
            out.push(Finding::not_checked(
                name(what),
                "no probe group was created",
            ));
        }
        return out;
    }
    out.push(Finding::pass(
        name("create"),
        format!("created {}", probe.dn),
    ));
    out.push(write_finding(&probe, &tag, f, &name("write"), ou).await);
    out.push(rename_finding(&mut probe, &tag, &name("rename"), ou).await);
    for other in others {
        out.push(move_finding(&mut probe, ou, other).await);
    }
    out.push(delete_finding(&probe, &name("delete"), ou).await);
    out
}

async fn write_finding<L: Ldap>(
    probe: &Throwaway<'_, L>,
    tag: &str,
    f: Features,
    name: &str,
    ou: &str,
) -> Finding {
    let refused = probe.write(tag, f).await;
    if refused.is_empty() {
        let attrs: Vec<&str> = writes(tag, f).iter().map(|(a, _)| *a).collect();
        return Finding::pass(name, format!("may write {}", attrs.join(", ")));
    }
    let attrs: Vec<&str> = refused.iter().map(|(a, _)| a.as_str()).collect();
    let detail = format!(
        "may not write {}: {}",
        attrs.join(", "),
        refused
            .iter()
            .map(|(a, e)| format!("{a}: {e}"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let right = format!(
        "read/write property {} on descendant group objects",
        attrs.join(", ")
    );
    Finding::fail(name, detail, refused_fix(&right, ou))
}

async fn rename_finding<L: Ldap>(
    probe: &mut Throwaway<'_, L>,
    tag: &str,
    name: &str,
    ou: &str,
) -> Finding {
    let renamed = format!(
        "CN={}",
        dn::rdn_value(&format!("{PROBE_PREFIX}{tag}-renamed"))
    );
    match probe.rename(&renamed, None).await {
        Ok(()) => Finding::pass(name, format!("renamed it to {}", probe.dn)),
        Err(e) => Finding::fail(
            name,
            format!("may not rename groups (a displayName change does): {e}"),
            refused_fix(
                "read/write property cn and name on descendant group objects",
                ou,
            ),
        ),
    }
}

/// Moves the throw-away to `other` and back (soft_delete = "move", previous_ous).
async fn move_finding<L: Ldap>(probe: &mut Throwaway<'_, L>, ou: &str, other: &str) -> Finding {
    let name = format!("ad.move[{ou} -> {other}]");
    let fix = || {
        format!(
            "moving a group needs create-child (group) on the new OU and delete-child (group) \
             on the old one, on {ou} and {other}: {DELEGATION}"
        )
    };
    let rdn = probe.rdn.clone();
    if let Err(e) = probe.rename(&rdn, Some(other)).await {
        return Finding::fail(name, format!("may not move a group to {other}: {e}"), fix());
    }
    match probe.rename(&rdn, Some(ou)).await {
        Ok(()) => Finding::pass(name, format!("moved it to {other} and back")),
        Err(e) => Finding::fail(name, format!("may not move it back to {ou}: {e}"), fix()),
    }
}

async fn delete_finding<L: Ldap>(probe: &Throwaway<'_, L>, name: &str, ou: &str) -> Finding {
    match probe.conn.delete(&probe.dn).await {
        Ok(()) => Finding::pass(name, format!("deleted {}", probe.dn)),
        Err(e) => Finding::fail(
            name,
            format!(
                "may not delete groups: {e}; the probe group {} is left behind: delete it by hand",
                probe.dn
            ),
            refused_fix("delete group objects (delete-child)", ou),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::fake::{FakeDirectory, Fault, FaultRule, ad_config};
    use crate::directory::probe::diagnose_directory;
    use crate::model::Events;

    const DOMAIN: &str = "DC=example,DC=test";

    async fn setup(ous: &[&str]) -> (FakeDirectory, Directory<FakeDirectory>) {
        let fake = FakeDirectory::new(DOMAIN).with_external_id_schema();
        for ou in ous {
            fake.add_ou(&format!("{ou},{DOMAIN}"));
        }
        let mut cfg = ad_config(&format!("OU=Cloud,{DOMAIN}"));
        cfg.soft_delete_ou = Some(format!("OU=Deleted,{DOMAIN}"));
        let dir = fake.directory(&cfg, Events::none()).await;
        (fake, dir)
    }

    fn by_prefix<'a>(all: &'a [Finding], prefix: &str) -> Vec<&'a Finding> {
        all.iter().filter(|f| f.name.starts_with(prefix)).collect()
    }

    #[tokio::test]
    async fn every_right_passes_and_the_probe_group_is_gone() {
        let (fake, dir) = setup(&["OU=Cloud", "OU=Deleted"]).await;
        let all = diagnose_directory(&dir, dir.config()).await;
        assert!(all.iter().all(|f| f.ok), "{all:#?}");
        for what in [
            "ad.ou[",
            "ad.create[",
            "ad.write[",
            "ad.rename[",
            "ad.delete[",
        ] {
            assert_eq!(by_prefix(&all, what).len(), 2, "{what}: {all:#?}");
        }
        // Only from the target OU: there and back.
        assert_eq!(by_prefix(&all, "ad.move[").len(), 1, "{all:#?}");
        assert!(
            by_prefix(&all, "ad.write[")[0]
                .detail
                .contains("msDS-ExternalDirectoryObjectId")
        );
        for ou in ["OU=Cloud", "OU=Deleted"] {
            assert!(
                fake.children(&format!("{ou},{DOMAIN}")).is_empty(),
                "{ou} kept a probe"
            );
        }
    }

    #[tokio::test]
    async fn a_refused_delete_is_named_with_the_group_left_behind() {
        let (fake, dir) = setup(&["OU=Cloud", "OU=Deleted"]).await;
        fake.inject(FaultRule::always(Fault::Refused).on_op("delete"));
        let all = diagnose_directory(&dir, dir.config()).await;
        let deletes = by_prefix(&all, "ad.delete[");
        assert!(deletes.iter().all(|f| !f.ok), "{all:#?}");
        let left = fake.children(&format!("OU=Cloud,{DOMAIN}"));
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(deletes[0].detail.contains(&left[0]), "{:?}", deletes[0]);
        assert!(deletes[0].fix.as_deref().unwrap().contains("delete-child"));
        // Everything else still passed.
        assert!(by_prefix(&all, "ad.write[").iter().all(|f| f.ok));
    }

    #[tokio::test]
    async fn a_missing_ou_stops_only_its_own_checks() {
        let (fake, dir) = setup(&["OU=Cloud"]).await;
        let all = diagnose_directory(&dir, dir.config()).await;
        let missing = format!("ad.ou[OU=Deleted,{DOMAIN}]");
        let f = all.iter().find(|f| f.name == missing).expect("named");
        assert!(
            !f.ok && f.fix.as_deref().unwrap().contains("ad.soft_delete_ou"),
            "{f:?}"
        );
        assert!(
            !by_prefix(&all, "ad.move[")[0].ok,
            "a move to a missing OU fails"
        );
        assert!(
            all.iter()
                .find(|f| f.name == format!("ad.delete[OU=Cloud,{DOMAIN}]"))
                .unwrap()
                .ok
        );
        assert!(fake.children(&format!("OU=Cloud,{DOMAIN}")).is_empty());
    }

    #[tokio::test]
    async fn a_refused_add_names_create_child_and_writes_nothing_else() {
        let (fake, dir) = setup(&["OU=Cloud", "OU=Deleted"]).await;
        fake.inject(FaultRule::always(Fault::Refused).on_op("add"));
        fake.clear_log();
        let all = diagnose_directory(&dir, dir.config()).await;
        let create = by_prefix(&all, "ad.create[");
        assert!(
            create
                .iter()
                .all(|f| !f.ok && f.detail.contains("may not create groups"))
        );
        assert!(
            by_prefix(&all, "ad.write[")
                .iter()
                .all(|f| f.detail.starts_with("not checked"))
        );
        assert!(
            fake.ops().iter().all(|o| matches!(o.op, "search" | "add")),
            "{:?}",
            fake.ops()
        );
    }

    #[test]
    fn probe_names_are_unique_and_fit_sam_account_name() {
        let (a, b) = (tag(), tag());
        assert_ne!(a, b);
        assert_eq!(format!("ewcheck-{a}").len(), 20);
        assert!(
            create_attrs(&a, Features::default())
                .iter()
                .all(|(_, v)| v.iter().all(|v| !v.starts_with("Group_")))
        );
    }
}
