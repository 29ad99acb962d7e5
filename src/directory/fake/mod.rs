//! An in-memory Active Directory behind the [`Ldap`] seam, for in-process tests of the
//! directory logic, the applier and the worker.
//!
//! It is honest where the service's code reasons about AD's answers: it refuses to add an
//! existing DN or a taken `sAMAccountName` (68), to write under a missing parent or to a
//! missing entry (32), to add a member that names no object (32) or is already there (68), to
//! remove a non-member (16), to modify the RDN attribute (67); it assigns `objectGUID` and
//! `objectSid`, keeps `member` as links (a deleted member disappears from its groups), pages
//! searches, caps ranged `member` reads at `MaxValRange`, evaluates the filters the service
//! sends, and answers the rootDSE and the schema probe. It does not model ACLs, referrals,
//! the recycle bin or renaming an entry that has children.
//!
//! Faults: [`FaultRule`]s make the next N matching operations fail, transiently
//! ([`Fault::Busy`], [`Fault::Broken`], [`Fault::Down`]) or permanently ([`Fault::Refused`]).
//! Every operation is logged ([`FakeDirectory::ops`]) so tests can count what was done.
//!
//! # Guarantees
//! - Each operation is atomic (one lock), as an LDAP operation is on a DC.
//! - Compiled only for tests (`cfg(test)`) or with the `fake` feature: never in the shipped
//!   binary.
//!
//! Imports: the directory's seam and error types, [`crate::config`] (to build an `[ad]`
//! section), [`crate::model`] (DN helpers, events).

mod dit;
mod filter;
mod search;

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use ldap3::{Mod, Scope, SearchEntry};

use super::Directory;
use super::error::{DirectoryError, ResultCode};
use super::seam::{DnForm, Ldap, PageSink};
use crate::config::AdConfig;
use crate::model::Events;
use dit::{Dit, key, refused};

/// What an injected fault looks like to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `busy` (51): transient, concerns only this operation.
    Busy,
    /// The connection broke mid-operation (transport error): transient, this operation only.
    Broken,
    /// AD cannot be reached (connect error): transient and systemic.
    Down,
    /// `insufficientAccessRights` (50): permanent.
    Refused,
}

impl Fault {
    fn error(self, op: &'static str, dn: &str) -> DirectoryError {
        match self {
            Fault::Busy => refused(op, dn, ResultCode::BUSY, "busy"),
            Fault::Refused => refused(
                op,
                dn,
                ResultCode::INSUFFICIENT_ACCESS,
                "insufficient access rights",
            ),
            Fault::Broken => DirectoryError::Transport {
                op,
                dn: dn.to_string(),
                detail: "fake: connection reset".into(),
            },
            Fault::Down => DirectoryError::Connect {
                url: "ldap://fake.invalid".into(),
                detail: "fake: unreachable".into(),
            },
        }
    }
}

/// Which operations fail, how often, and how.
#[derive(Debug, Clone)]
pub struct FaultRule {
    op: Option<&'static str>,
    dn: Option<String>,
    times: usize,
    fault: Fault,
}

impl FaultRule {
    /// The next `times` operations fail with `fault`.
    pub fn next(times: usize, fault: Fault) -> FaultRule {
        FaultRule {
            op: None,
            dn: None,
            times,
            fault,
        }
    }

    /// Every matching operation fails with `fault`, until [`FakeDirectory::clear_faults`].
    pub fn always(fault: Fault) -> FaultRule {
        FaultRule::next(usize::MAX, fault)
    }

    /// Only operations named `op` (`search`, `add`, `modify`, `modrdn`, `delete`).
    pub fn on_op(mut self, op: &'static str) -> FaultRule {
        self.op = Some(op);
        self
    }

    /// Only operations whose DN (or search base) contains `part`, case-insensitively.
    pub fn on_dn(mut self, part: &str) -> FaultRule {
        self.dn = Some(part.to_lowercase());
        self
    }

    fn matches(&self, op: &str, dn: &str) -> bool {
        self.times > 0
            && self.op.is_none_or(|o| o == op)
            && self
                .dn
                .as_ref()
                .is_none_or(|d| dn.to_lowercase().contains(d))
    }
}

/// One operation the fake was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    /// `search`, `add`, `modify`, `modrdn`, `delete`.
    pub op: &'static str,
    /// Its DN or search base.
    pub dn: String,
    /// Whether it succeeded.
    pub ok: bool,
}

struct State {
    dit: Dit,
    faults: Vec<FaultRule>,
    holds: Vec<(&'static str, String, tokio::sync::watch::Receiver<bool>)>,
    log: Vec<OpRecord>,
}

/// Operations held back by [`FakeDirectory::hold`] wait until this is released (or dropped).
pub struct Hold(tokio::sync::watch::Sender<bool>);

impl Hold {
    /// Lets the held operations (and later matching ones) run.
    pub fn release(&self) {
        self.0.send_replace(true);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.release();
    }
}

/// The in-memory directory. Clones share it.
#[derive(Clone)]
pub struct FakeDirectory(Arc<Mutex<State>>);

/// An `[ad]` section for tests: groups go to `target_ou`; everything else is the default.
pub fn ad_config(target_ou: &str) -> AdConfig {
    let text = format!(
        "url = \"ldaps://fake.invalid\"\nbind_dn = \"CN=svc,CN=Users\"\ntarget_ou = \"{target_ou}\"\n"
    );
    toml::from_str(&text).expect("a valid [ad] section")
}

impl FakeDirectory {
    /// A directory holding only the domain `domain` (`DC=…`) and its schema container, with a
    /// schema that lacks `msDS-ExternalDirectoryObjectId` (like Samba's).
    pub fn new(domain: &str) -> FakeDirectory {
        FakeDirectory(Arc::new(Mutex::new(State {
            dit: Dit::new(domain),
            faults: vec![],
            holds: vec![],
            log: vec![],
        })))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `msDS-ExternalDirectoryObjectId` to the schema (a Windows Server 2016 schema).
    pub fn with_external_id_schema(self) -> FakeDirectory {
        self.with_schema_attribute(
            "ms-DS-External-Directory-Object-Id",
            "msDS-ExternalDirectoryObjectId",
        )
    }

    /// Adds `mailNickname` to the schema (as Exchange's schema extension does).
    pub fn with_mail_nickname_schema(self) -> FakeDirectory {
        self.with_schema_attribute("ms-Exch-Mail-Nickname", "mailNickname")
    }

    fn with_schema_attribute(self, cn: &str, name: &str) -> FakeDirectory {
        {
            let mut s = self.lock();
            let dn = format!("CN={cn},{}", s.dit.schema);
            let attrs = vec![
                (
                    "objectClass".to_string(),
                    vec!["top".into(), "attributeSchema".into()],
                ),
                ("lDAPDisplayName".to_string(), vec![name.into()]),
            ];
            s.dit.insert(&dn, attrs);
        }
        self
    }

    /// Caps ranged `member` reads at `n` values (Windows' `MaxValRange`, 1500 by default).
    pub fn with_max_val_range(self, n: usize) -> FakeDirectory {
        self.lock().dit.max_val_range = n.max(1);
        self
    }

    /// Opens a [`Directory`] over this fake (rootDSE and schema probe included).
    pub async fn directory(&self, cfg: &AdConfig, events: Events) -> Directory<FakeDirectory> {
        Directory::open_with(self.clone(), cfg, events)
            .await
            .expect("the fake answers the rootDSE")
    }

    /// Set-up: adds an entry (unlogged, no faults); panics if AD would refuse it.
    pub fn seed(&self, dn: &str, attrs: &[(&str, &[&str])]) {
        let attrs = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect();
        if let Err(e) = self.lock().dit.add(dn, attrs) {
            panic!("seeding {dn}: {e}");
        }
    }

    /// Set-up: an organizational unit.
    pub fn add_ou(&self, dn: &str) {
        self.seed(dn, &[("objectClass", &["top", "organizationalUnit"])]);
    }

    /// Set-up: a user account `CN=<cn>,<parent>` with this `sAMAccountName`; returns its SID.
    pub fn add_user(&self, parent: &str, cn: &str, sam: &str) -> String {
        let dn = format!("CN={},{parent}", crate::model::dn::rdn_value(cn));
        self.seed(
            &dn,
            &[
                (
                    "objectClass",
                    &["top", "person", "organizationalPerson", "user"],
                ),
                ("sAMAccountName", &[sam]),
            ],
        );
        self.sid(&dn).expect("a user has a SID")
    }

    /// The SID of the entry at `dn`, if it exists and has one.
    pub fn sid(&self, dn: &str) -> Option<String> {
        let s = self.lock();
        s.dit.objects.get(&key(dn)?)?.sid.clone()
    }

    /// The values of `attr` on the entry at `dn` (`None`: no such entry).
    pub fn attr(&self, dn: &str, attr: &str) -> Option<Vec<String>> {
        let s = self.lock();
        Some(s.dit.objects.get(&key(dn)?)?.values(attr))
    }

    /// The SIDs of the members of the group at `dn` (`None`: no such entry).
    pub fn member_sids(&self, dn: &str) -> Option<BTreeSet<String>> {
        let s = self.lock();
        let o = s.dit.objects.get(&key(dn)?)?;
        Some(
            o.members
                .iter()
                .filter_map(|g| s.dit.objects.values().find(|m| m.guid == *g))
                .filter_map(|m| m.sid.clone())
                .collect(),
        )
    }

    /// DNs of the entries directly under `parent`.
    pub fn children(&self, parent: &str) -> Vec<String> {
        let s = self.lock();
        let Some(pk) = key(parent) else { return vec![] };
        s.dit
            .objects
            .iter()
            .filter(|(k, _)| k.split_once('\0').is_some_and(|(_, p)| p == pk))
            .map(|(_, o)| o.dn.clone())
            .collect()
    }

    /// Makes operations fail as `rule` says (rules are tried in the order added).
    pub fn inject(&self, rule: FaultRule) {
        self.lock().faults.push(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Every operation asked for so far, in order (set-up excluded).
    pub fn ops(&self) -> Vec<OpRecord> {
        self.lock().log.clone()
    }

    /// How many operations named `op` succeeded on a DN (or base) containing `dn_part`.
    pub fn count_ok(&self, op: &str, dn_part: &str) -> usize {
        let part = dn_part.to_lowercase();
        self.lock()
            .log
            .iter()
            .filter(|r| r.ok && r.op == op && r.dn.to_lowercase().contains(&part))
            .count()
    }

    /// Makes every `op` on a DN containing `dn_part` wait (asynchronously, without holding
    /// the directory) until the returned [`Hold`] is released: a slow operation, for tests of
    /// what proceeds meanwhile.
    pub fn hold(&self, op: &'static str, dn_part: &str) -> Hold {
        let (tx, rx) = tokio::sync::watch::channel(false);
        self.lock().holds.push((op, dn_part.to_lowercase(), rx));
        Hold(tx)
    }

    /// Waits while a [`Hold`] covers this operation.
    fn gate(&self, op: &'static str, dn: &str) -> impl Future<Output = ()> + Send + use<> {
        let dn = dn.to_lowercase();
        let gates: Vec<_> = self
            .lock()
            .holds
            .iter()
            .filter(|(o, part, _)| *o == op && dn.contains(part.as_str()))
            .map(|(_, _, rx)| rx.clone())
            .collect();
        async move {
            for mut rx in gates {
                let _ = rx.wait_for(|released| *released).await;
            }
        }
    }

    /// Forgets the operation log.
    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    /// Runs one operation: an injected fault first, else `f` on the tree; logs the outcome.
    fn run<T>(
        &self,
        op: &'static str,
        dn: &str,
        f: impl FnOnce(&mut Dit) -> Result<T, DirectoryError>,
    ) -> Result<T, DirectoryError> {
        let mut s = self.lock();
        let fault = s.faults.iter_mut().find(|r| r.matches(op, dn)).map(|r| {
            r.times = r.times.saturating_sub(1);
            r.fault
        });
        let result = match fault {
            Some(fault) => Err(fault.error(op, dn)),
            None => f(&mut s.dit),
        };
        s.log.push(OpRecord {
            op,
            dn: dn.to_string(),
            ok: result.is_ok(),
        });
        result
    }
}

impl Ldap for FakeDirectory {
    fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        form: DnForm,
    ) -> impl Future<Output = Result<Vec<SearchEntry>, DirectoryError>> + Send {
        let r = self.run("search", base, |d| {
            d.search(base, scope, filter, attrs, form)
        });
        std::future::ready(r)
    }

    fn search_paged(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        form: DnForm,
        page_size: usize,
        sink: PageSink<'_>,
    ) -> impl Future<Output = Result<usize, DirectoryError>> + Send {
        let r = self
            .run("search", base, |d| {
                d.search(base, scope, filter, attrs, form)
            })
            .map(|mut found| {
                let size = page_size.max(1);
                let pages = found.len().div_ceil(size).max(1);
                while found.len() > size {
                    let rest = found.split_off(size);
                    sink(std::mem::replace(&mut found, rest));
                }
                sink(found);
                pages
            });
        std::future::ready(r)
    }

    fn add(
        &self,
        dn: &str,
        attrs: Vec<(String, HashSet<String>)>,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send {
        let (gate, me, dn) = (self.gate("add", dn), self.clone(), dn.to_string());
        async move {
            gate.await;
            me.run("add", &dn, |d| d.add(&dn, attrs))
        }
    }

    fn modify(
        &self,
        dn: &str,
        mods: Vec<Mod<String>>,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send {
        let (gate, me, dn) = (self.gate("modify", dn), self.clone(), dn.to_string());
        async move {
            gate.await;
            me.run("modify", &dn, |d| d.modify(&dn, mods))
        }
    }

    fn rename(
        &self,
        dn: &str,
        new_rdn: &str,
        new_parent: Option<&str>,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send {
        std::future::ready(self.run("modrdn", dn, |d| d.rename(dn, new_rdn, new_parent)))
    }

    fn delete(&self, dn: &str) -> impl Future<Output = Result<(), DirectoryError>> + Send {
        std::future::ready(self.run("delete", dn, |d| d.delete(dn)))
    }
}

#[cfg(test)]
mod tests;
