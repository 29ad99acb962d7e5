//! Applying one group's net change to AD, idempotently: read the object by anchor, compute the
//! operations (pure, [`super::plan`]), execute them. In dry-run mode (`plan`) the operations are
//! recorded instead of executed.
//!
//! # Guarantees
//! - Re-applying is harmless: "already a member" (68/20) and "not a member" (53/16) count as
//!   done, creation looks up the anchor first, deletion of a missing object is a no-op.
//! - A name or `sAMAccountName` held by an object we do not own is a conflict
//!   ([`Event::Conflict`]), never overwritten; a refused rename leaves the rest applied.
//! - Members are removed only when the mirror's lists are complete (no full enumeration in
//!   progress).
//! - Once a group's object exists, the parents listing it are queued in the same transaction
//!   that records it, so nesting survives retries and crashes.
//!
//! Imports: the directory's own modules (through the [`Ldap`] seam), [`crate::config`],
//! [`crate::graph`] (errors), [`crate::queue`] (the mirror), [`crate::model`] (events).

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use ldap3::Mod;

use super::create::Created;
use super::listed_members::MemberDigest;
use super::owned::{Lookup, OwnedListing};
use super::plan::{self, ActualGroup, Operation};
use super::retire::CloudOracle;
use super::seam::Ldap;
use super::writers::Planned;
use super::{Connection, Directory, DirectoryError, mapping};
use crate::config::SoftDeleteAction;
use crate::graph::GraphError;
use crate::model::dn;
use crate::model::{ALL_GROUPS, Change, ChangeKind, now_ms};

pub use super::work::Work;
use crate::model::{Event, Events};
use crate::model::{MemberKind, MemberRef};
use crate::queue::{QueueError, Store};

/// Why applying a change failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// AD refused or could not be reached.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] QueueError),
    /// Graph could not say whether a group is gone (the destructive action waits).
    #[error("asking Graph whether the group is gone: {0}")]
    Graph(#[from] GraphError),
    /// The group lists more members than `graph.max_members_per_group`: the mirror holds an
    /// incomplete list, so the group is not written (an AD copy is left as it is, never
    /// shrunk). Permanent until the limit is raised and a `resync` lists it again.
    #[error(
        "group lists more than {limit} members (graph.max_members_per_group): not written to \
         AD, its AD copy (if any) left as it is; raise the limit and run `resync`"
    )]
    MemberLimit {
        /// The limit in force when members were refused.
        limit: u64,
    },
}

impl ApplyError {
    /// Whether a retry may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ApplyError::Directory(e) => e.is_transient(),
            ApplyError::Store(e) => e.is_transient(),
            ApplyError::Graph(e) => e.is_transient(),
            ApplyError::MemberLimit { .. } => false,
        }
    }
    /// Bounded label.
    pub fn class(&self) -> &'static str {
        match self {
            ApplyError::Directory(e) => e.class(),
            ApplyError::Store(_) => "store",
            ApplyError::Graph(_) => "graph",
            ApplyError::MemberLimit { .. } => "member_limit",
        }
    }
}

/// Applies work to AD (or records it, in dry-run mode), over any [`Ldap`].
#[derive(Clone)]
pub struct Applier<L = Connection> {
    pub(super) dir: Directory<L>,
    pub(super) store: Store,
    pub(super) cloud: Arc<dyn CloudOracle>,
    pub(super) soft_delete: SoftDeleteAction,
    pub(super) soft_delete_ou: Option<String>,
    pub(super) adopted_delete: crate::config::AdoptedDelete,
    pub(super) batch: usize,
    pub(super) delete_threshold: usize,
    pub(super) dry_run: bool,
    /// The owned-groups listing of a bulk pass ([`Applier::begin_bulk`]).
    pub(super) owned: Arc<OwnedListing>,
    planned: Arc<Mutex<Vec<Operation>>>,
}

/// Drift a reconcile corrects, reported as [`Event::ReconcileCorrection`] (only for a full
/// compare of a group that existed: a new group's first write is not drift).
struct Corrections<'a> {
    events: &'a Events,
    counted: bool,
}

impl Corrections<'_> {
    fn count(&self, kind: &'static str, n: usize) {
        if self.counted && n > 0 {
            self.events.emit(Event::ReconcileCorrection {
                kind,
                count: n as u64,
            });
        }
    }
}

pub(super) fn set(values: impl IntoIterator<Item = String>) -> HashSet<String> {
    values.into_iter().collect()
}

impl<L: Ldap> Applier<L> {
    /// An applier; `cloud` re-checks every destructive action; `dry_run` records operations
    /// instead of executing them. It reports through the directory's [`Events`].
    pub fn new(
        dir: Directory<L>,
        store: Store,
        cloud: Arc<dyn CloudOracle>,
        dry_run: bool,
    ) -> Applier<L> {
        let cfg = dir.config();
        Applier {
            soft_delete: cfg.soft_delete,
            soft_delete_ou: cfg.soft_delete_ou.clone(),
            adopted_delete: cfg.adopted_delete,
            batch: cfg.member_batch_size,
            delete_threshold: cfg.delete_threshold,
            dir,
            store,
            cloud,
            dry_run,
            owned: Arc::default(),
            planned: Arc::default(),
        }
    }

    /// Many groups are waiting (an initial sync, a resync): list the owned groups once, on
    /// the next apply, instead of searching for each ([`super::owned`]).
    pub async fn begin_bulk(&self) {
        self.owned.begin().await;
    }

    /// The bulk pass is over: drop its listing.
    pub async fn end_bulk(&self) {
        self.owned.end().await;
    }

    /// Whether a bulk pass is on.
    pub async fn in_bulk(&self) -> bool {
        self.owned.is_active().await
    }

    /// The directory it writes to.
    pub fn directory(&self) -> &Directory<L> {
        &self.dir
    }

    /// The handle it reports through (the directory's).
    pub(super) fn events(&self) -> &Events {
        self.dir.events()
    }

    /// Operations recorded in dry-run mode (taken).
    pub fn take_planned(&self) -> Vec<Operation> {
        std::mem::take(&mut *self.planned.lock().expect("not poisoned"))
    }

    /// Records an operation: kept for `plan` in dry-run mode, else logged at debug level.
    /// `op` is built only then: a large group's member lists are not copied for nothing.
    pub(super) fn record(&self, op: impl FnOnce() -> Operation) {
        if self.dry_run {
            self.planned.lock().expect("not poisoned").push(op());
        } else if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(op = %op().to_string().trim_end(), "AD operation");
        }
    }

    /// Applies the net work for one group.
    pub async fn apply(&self, group_id: &str, work: &Work) -> Result<(), ApplyError> {
        if !matches!(work, Work::Sweep) && self.is_frozen(group_id, None)? {
            return Ok(()); // another writer: nothing is written until `approve-writes`
        }
        match work {
            Work::Sweep => self.sweep().await,
            Work::Delete(reason) => self.retire(group_id, *reason).await,
            Work::Converge { full, members } => self.converge(group_id, *full, members).await,
        }
    }

    async fn converge(
        &self,
        group_id: &str,
        full: bool,
        touched: &BTreeSet<MemberRef>,
    ) -> Result<(), ApplyError> {
        let Some(record) = self.store.group(group_id)? else {
            return Ok(());
        };
        if !record.wanted() {
            return Ok(()); // soft-deleted or out of scope: a Delete change carries the policy
        }
        if let Some(limit) = self.store.member_count(group_id)?.refused {
            return Err(ApplyError::MemberLimit { limit });
        }
        let mut desired = mapping::desired(group_id, &record.props, &self.dir.rules);
        let found = self.locate(group_id).await?;
        let (actual, full, counted) = match found {
            Some(a) => (a, full, full),
            // Source of authority converted: its original is managed in place, never created.
            None if desired.in_place => (self.adopt(group_id, &record.props).await?, true, false),
            None => {
                self.drop_taken_addresses(group_id, &mut desired, None)
                    .await?;
                match self.create(group_id, &desired).await? {
                    Created::New => return Ok(()),
                    // An earlier add that timed out had succeeded: compare everything, as a
                    // reconcile would (not drift: our own write).
                    Created::Existing(a) => (a, true, false),
                }
            }
        };
        // Checked against the object itself: the addresses it holds (an adopted original's
        // own, say) are never a clash.
        self.drop_taken_addresses(group_id, &mut desired, Some(&actual))
            .await?;
        let corrections = Corrections {
            events: self.events(),
            counted,
        };
        self.converge_existing(group_id, full, touched, &desired, &actual, &corrections)
            .await
    }

    /// Where the group's AD object is: from the bulk pass's listing when it knows, else at the
    /// SID recorded when the object was confirmed (one indexed read), else by searching for
    /// its anchor.
    pub(super) async fn locate(&self, group_id: &str) -> Result<Option<ActualGroup>, ApplyError> {
        match self.owned.lookup(&self.dir, group_id).await? {
            Lookup::Known(found) => Ok(found),
            Lookup::Ask => {
                let remembered = self.store.materialized_sid(group_id)?;
                Ok(self
                    .dir
                    .find_owned_remembered(group_id, remembered.as_deref())
                    .await?)
            }
        }
    }

    /// Converges an existing object: attributes, members (all of them, or the touched ones),
    /// then its name and place.
    async fn converge_existing(
        &self,
        group_id: &str,
        full: bool,
        touched: &BTreeSet<MemberRef>,
        desired: &mapping::DesiredGroup,
        actual: &ActualGroup,
        corrections: &Corrections<'_>,
    ) -> Result<(), ApplyError> {
        if !self.dry_run {
            self.materialize(group_id, actual)?;
        }
        let updates = plan::attribute_updates(desired, actual, self.dir.has_external_id);
        let planned = Planned::attributes(&updates);
        if self.second_writer(group_id, &actual.dn, &planned)? {
            return Ok(());
        }
        corrections.count("attribute", updates.len());
        self.update_attributes(&updates).await?;
        self.note_written(group_id, &planned)?;
        if full {
            self.converge_all_members(group_id, actual, corrections)
                .await?;
        } else {
            self.converge_touched_members(group_id, &actual.dn, touched)
                .await?;
        }
        let rename_taken_over = self.dir.config().rename_taken_over;
        let cn = super::takeover::cn_to_keep(group_id, desired, actual, rename_taken_over);
        let rename = plan::needs_rename(desired, actual) && cn != actual.cn;
        if rename || plan::needs_move(desired, &parent_of(&actual.dn)) {
            let cn = if rename { cn } else { actual.cn.as_str() };
            match self.rename(actual, cn, &desired.ou).await {
                // The members and attributes above stay applied; the name waits for the clash
                // to be resolved (reported, counted, retried by the next reconcile).
                Err(ApplyError::Directory(DirectoryError::Conflict { detail, .. })) => {
                    tracing::warn!(%detail, "rename refused; other changes applied");
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// Every member compared with AD (reconcile, or an object an earlier attempt created).
    /// When a bulk pass's listing read the object's members and they are the ones wanted,
    /// there is nothing to read or write.
    async fn converge_all_members(
        &self,
        group_id: &str,
        actual: &ActualGroup,
        corrections: &Corrections<'_>,
    ) -> Result<(), ApplyError> {
        let dn = actual.dn.as_str();
        // During a full enumeration the mirror's member lists may still be partial: add what is
        // known, remove nothing until the enumeration is complete.
        let may_remove = !self.store.full_round_in_progress()?;
        let want = self.desired_member_sids(group_id).await?;
        // Hashed only when the listing read the members (a reconcile outside a bulk pass
        // does not pay for it).
        if actual
            .listed_members
            .is_some_and(|listed| listed == MemberDigest::of(&want))
        {
            return Ok(());
        }
        let have = self.dir.member_sids(dn).await?;
        let (mut add, mut remove) = plan::member_diff(want, have);
        remove.retain(|_| may_remove);
        if self.second_writer(group_id, dn, &Planned::members(&add, &remove))? {
            return Ok(());
        }
        corrections.count("member_add", add.len());
        corrections.count("member_remove", remove.len());
        let skipped = self.add_members(dn, &add).await?;
        self.remove_members(dn, &remove).await?;
        add.retain(|s| !skipped.contains(s)); // never written: not ours to watch
        self.note_written(group_id, &Planned::members(&add, &remove))
    }

    /// Only the members an upsert touched: each added or removed as the mirror now says.
    async fn converge_touched_members(
        &self,
        group_id: &str,
        dn: &str,
        touched: &BTreeSet<MemberRef>,
    ) -> Result<(), ApplyError> {
        let (mut add, mut remove) = (Vec::new(), Vec::new());
        for m in touched {
            if let Some(s) = self.member_sid(m).await? {
                if self.store.is_member(group_id, m)? {
                    add.push(s)
                } else {
                    remove.push(s)
                }
            }
        }
        self.add_members(dn, &add).await?;
        self.remove_members(dn, &remove).await?;
        Ok(())
    }

    /// Once a group's AD object is known to exist (created by this apply, an earlier attempt or
    /// another process), every parent listing it is queued to converge, in the same transaction
    /// that records the object, so nesting survives retries and crashes.
    pub(super) fn materialize(
        &self,
        group_id: &str,
        actual: &ActualGroup,
    ) -> Result<(), ApplyError> {
        let sid = actual.sid.clone().unwrap_or_else(|| actual.dn.clone());
        if self.store.materialized_sid(group_id)?.as_deref() == Some(sid.as_str()) {
            return Ok(());
        }
        let parents = self.parent_changes(group_id)?;
        self.store.materialize(group_id, &sid, &parents)?;
        Ok(())
    }

    pub(super) async fn update_attributes(&self, updates: &[Operation]) -> Result<(), ApplyError> {
        let Some(Operation::Update { dn, .. } | Operation::SetValues { dn, .. }) = updates.first()
        else {
            return Ok(());
        };
        let mut mods = Vec::new();
        for u in updates {
            self.record(|| u.clone());
            match u {
                Operation::Update { attr, to, .. } => {
                    mods.push(Mod::Replace(attr.clone(), set(to.clone())))
                }
                Operation::SetValues { attr, to, .. } => {
                    mods.push(Mod::Replace(attr.clone(), set(to.clone())))
                }
                _ => {}
            }
        }
        if !self.dry_run {
            self.dir.conn.modify(dn, mods).await?;
        }
        Ok(())
    }

    /// Renames and/or moves a group (one modrdn), refusing to take a name that is in use.
    pub(super) async fn rename(
        &self,
        actual: &ActualGroup,
        cn: &str,
        ou: &str,
    ) -> Result<(), ApplyError> {
        let target = format!("CN={},{ou}", dn::rdn_value(cn));
        if !dn::same_dn(&target, &actual.dn) && self.dir.dn_exists(&target).await? {
            self.events().emit(Event::Conflict { kind: "name" });
            return Err(DirectoryError::Conflict {
                kind: "name",
                detail: format!("cannot rename {} to {target}: the name is taken", actual.dn),
            }
            .into());
        }
        self.record(|| Operation::Rename {
            from: actual.dn.clone(),
            to: target.clone(),
        });
        if !self.dry_run {
            let moved = !dn::same_dn(&parent_of(&actual.dn), ou);
            let rdn = format!("CN={}", dn::rdn_value(cn));
            self.dir
                .conn
                .rename(&actual.dn, &rdn, moved.then_some(ou))
                .await?;
        }
        Ok(())
    }

    /// Upserts of every parent that lists this group as a member.
    pub(super) fn parent_changes(&self, group_id: &str) -> Result<Vec<Change>, ApplyError> {
        let member = MemberRef {
            kind: MemberKind::Group,
            id: group_id.to_string(),
        };
        let mut changes = Vec::new();
        for parent in self.store.groups_containing(group_id)? {
            if parent != group_id && self.store.is_member(&parent, &member)? {
                changes.push(Change {
                    group_id: parent,
                    kind: ChangeKind::Upsert {
                        members: vec![member.clone()],
                    },
                    seen_ms: now_ms(),
                });
            }
        }
        Ok(changes)
    }
}

pub(super) fn parent_of(dn: &str) -> String {
    // The parent is everything after the first unescaped comma.
    let mut escaped = false;
    for (i, c) in dn.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ',' if !escaped => return dn[i + 1..].to_string(),
            _ => escaped = false,
        }
    }
    String::new()
}

/// Group id used in logs for sweeps.
pub fn describe(group_id: &str) -> &str {
    if group_id == ALL_GROUPS {
        "(all groups)"
    } else {
        group_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_of_escaped_dn() {
        assert_eq!(parent_of("CN=a\\,b,OU=X,DC=t"), "OU=X,DC=t");
        assert_eq!(parent_of("CN=a\\\\,OU=X,DC=t"), "OU=X,DC=t");
    }
}
