//! The desired-state mirror and the page commit that feeds it.
//!
//! [`Store::commit_group_page`] turns one Graph page into mirror updates, queued changes and the
//! next cursor, all in one transaction. Only the poller writes the mirror, so reading before the
//! transaction and writing inside it is consistent.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sled::Transactional;

use super::records::*;
use super::store::{Counts, QueueError, Store, cursor_key, dec, enc, tx_enqueue};
use crate::graph::page::{GroupDelta, NextStep, UserDelta};
use crate::model::*;
use crate::model::{MemberKind, MemberRef, Removed};

/// `meta` key of the groups to reconcile at the end of the round in progress (restored, or new
/// to the mirror: AD may hold a frozen or stale copy of them).
const ROUND_RESTORED: &[u8] = b"round/restored";

/// `meta` key holding the epoch of the last full enumeration that reached its deltaLink.
pub(super) const FULL_DONE: &[u8] = b"full/completed";

/// How a round treats deletes.
#[derive(Debug, Clone, Copy)]
pub struct DeletePolicy {
    /// A round that would delete, convert or move more groups than this holds those actions
    /// for approval.
    pub threshold: usize,
    /// Whether the soft-delete policy changes the AD group (delete, convert or move; anything
    /// but freeze), so that soft deletes and groups leaving scope count against the threshold.
    pub soft_destructive: bool,
}

/// What a committed page did, for logs and metrics.
#[derive(Debug, Default, Clone)]
pub struct PageOutcome {
    /// Changes queued, by kind label.
    pub enqueued: BTreeMap<&'static str, usize>,
    /// Members skipped because of their type (devices, contacts, ...).
    pub unsupported_members: usize,
    /// Deletes held back by the threshold at the end of this round.
    pub held_deletes: usize,
    /// This page ended the round.
    pub round_done: bool,
    /// The round was a full enumeration.
    pub full_round: bool,
}

fn member_key(group: &str, m: &MemberRef) -> Vec<u8> {
    let mut k = Vec::with_capacity(group.len() + m.id.len() + 2);
    k.extend_from_slice(group.as_bytes());
    k.push(0);
    k.push(m.kind.tag());
    k.extend_from_slice(m.id.as_bytes());
    k
}

fn member_of_key(member: &str, group: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(group.len() + member.len() + 1);
    k.extend_from_slice(member.as_bytes());
    k.push(0);
    k.extend_from_slice(group.as_bytes());
    k
}

fn prefix(id: &str) -> Vec<u8> {
    let mut p = id.as_bytes().to_vec();
    p.push(0);
    p
}

/// Pending writes to one tree (`None` = remove), applied inside the page transaction.
#[derive(Default)]
struct Writes(BTreeMap<Vec<u8>, Option<Vec<u8>>>);

impl Writes {
    fn put(&mut self, k: Vec<u8>, v: Vec<u8>) {
        self.0.insert(k, Some(v));
    }
    fn del(&mut self, k: Vec<u8>) {
        self.0.insert(k, None);
    }
    /// Applies the writes inside a transaction; returns the change in the tree's entry count
    /// (+1 per new key, -1 per key really removed), for [`super::store::Counts`].
    fn apply_counted(
        &self,
        tree: &sled::transaction::TransactionalTree,
    ) -> Result<i64, sled::transaction::UnabortableTransactionError> {
        let mut delta = 0i64;
        for (k, v) in &self.0 {
            delta += match v {
                Some(v) => i64::from(tree.insert(k.as_slice(), v.as_slice())?.is_none()),
                None => -i64::from(tree.remove(k.as_slice())?.is_some()),
            };
        }
        Ok(delta)
    }
    fn batch(&self) -> sled::Batch {
        let mut b = sled::Batch::default();
        for (k, v) in &self.0 {
            match v {
                Some(v) => b.insert(k.as_slice(), v.as_slice()),
                None => b.remove(k.as_slice()),
            }
        }
        b
    }
}

impl Store {
    /// A cloud group as last seen.
    pub fn group(&self, id: &str) -> Result<Option<GroupRecord>, QueueError> {
        self.t()?
            .groups
            .get(id.as_bytes())?
            .map(|v| dec(id.as_bytes(), &v))
            .transpose()
    }

    /// Every group in the mirror.
    pub fn all_groups(&self) -> Result<Vec<(String, GroupRecord)>, QueueError> {
        self.t()?
            .groups
            .iter()
            .map(|r| {
                let (k, v) = r?;
                Ok((String::from_utf8_lossy(&k).into_owned(), dec(&k, &v)?))
            })
            .collect()
    }

    /// The current members of a group, as Graph lists them.
    pub fn members(&self, group: &str) -> Result<Vec<MemberRef>, QueueError> {
        let p = prefix(group);
        self.t()?
            .members
            .scan_prefix(&p)
            .keys()
            .map(|k| {
                let k = k?;
                let rest = &k[p.len()..];
                Ok(MemberRef {
                    kind: MemberKind::from_tag(rest[0]),
                    id: String::from_utf8_lossy(&rest[1..]).into_owned(),
                })
            })
            .collect()
    }

    /// Whether Graph currently lists `member` in `group`.
    pub fn is_member(&self, group: &str, member: &MemberRef) -> Result<bool, QueueError> {
        Ok(self.t()?.members.contains_key(member_key(group, member))?)
    }

    /// The groups that list `member` (any kind) as a member.
    pub fn groups_containing(&self, member: &str) -> Result<Vec<String>, QueueError> {
        let p = prefix(member);
        self.t()?
            .member_of
            .scan_prefix(&p)
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?[p.len()..]).into_owned()))
            .collect()
    }

    /// A cloud user's on-premises identity.
    pub fn user(&self, id: &str) -> Result<Option<UserRecord>, QueueError> {
        self.t()?
            .users
            .get(id.as_bytes())?
            .map(|v| dec(id.as_bytes(), &v))
            .transpose()
    }

    fn new_cursor(next: &NextStep, full_epoch: Option<u64>) -> Cursor {
        let (link, mid_round) = match next {
            NextStep::Next(l) => (l.clone(), true),
            NextStep::Delta(l) => (l.clone(), false),
        };
        Cursor {
            link,
            mid_round,
            full_epoch: if mid_round { full_epoch } else { None },
            stored_ms: now_ms(),
        }
    }

    /// The epoch of the full round this page belongs to, or `None` for an incremental round.
    fn round_epoch(&self, before: Option<&Cursor>) -> Result<Option<u64>, QueueError> {
        Ok(match before {
            None => Some(self.next_seq()?),
            Some(c) => c.full_epoch,
        })
    }

    /// Records one users page and its cursor atomically. Users whose on-premises SID changed get
    /// their groups re-queued, so a member that was not resolvable yet is written once it is.
    pub fn commit_user_page(
        &self,
        items: &[UserDelta],
        next: &NextStep,
        before: Option<&Cursor>,
    ) -> Result<PageOutcome, QueueError> {
        let epoch = self.round_epoch(before)?;
        let mut users = Writes::default();
        let mut overlay: HashMap<&str, Option<UserRecord>> = HashMap::new();
        let mut touched: Vec<String> = Vec::new();
        for item in items {
            let old = match overlay.get(item.id.as_str()) {
                Some(r) => r.clone(),
                None => self.user(&item.id)?,
            };
            let new = match item.removed {
                Some(Removed::Deleted) => None,
                Some(Removed::Changed) => old.clone(),
                None => {
                    let mut r = old.clone().unwrap_or_default();
                    r.apply(&item.patch);
                    Some(r)
                }
            };
            match &new {
                Some(r) => users.put(item.id.as_bytes().to_vec(), enc(r)),
                None => users.del(item.id.as_bytes().to_vec()),
            }
            if old.as_ref().and_then(|r| r.sid.clone()) != new.as_ref().and_then(|r| r.sid.clone())
            {
                touched.push(item.id.clone());
            }
            overlay.insert(&item.id, new);
        }
        let now = now_ms();
        let mut changes = Vec::new();
        for user in touched {
            for g in self.groups_containing(&user)? {
                if self.group(&g)?.is_some_and(|r| r.wanted()) {
                    let member = MemberRef {
                        kind: MemberKind::User,
                        id: user.clone(),
                    };
                    changes.push(Change {
                        group_id: g,
                        kind: ChangeKind::Upsert {
                            members: vec![member],
                        },
                        seen_ms: now,
                    });
                }
            }
        }
        let seqs = changes
            .iter()
            .map(|_| self.next_seq())
            .collect::<Result<Vec<_>, _>>()?;
        let cursor = Self::new_cursor(next, epoch);
        let users_batch = users.batch();
        let t = self.t()?; // one handle: never mix trees across a reopen
        (&t.meta, &t.pending, &t.users).transaction(|(meta, pending, users_t)| {
            users_t.apply_batch(&users_batch)?;
            for (seq, c) in seqs.iter().zip(&changes) {
                tx_enqueue(pending, *seq, c)?;
            }
            meta.insert(cursor_key(Resource::Users), enc(&cursor))?;
            Ok(())
        })?;
        self.note_enqueued(changes.len());
        let mut out = PageOutcome {
            round_done: !cursor.mid_round,
            full_round: epoch.is_some(),
            ..Default::default()
        };
        if !changes.is_empty() {
            out.enqueued.insert("upsert", changes.len());
        }
        Ok(out)
    }

    /// Records one groups page atomically: mirror updates, the changes they imply and the
    /// cursor after the page. At the end of a round, staged deletes are queued (or held when
    /// more than the threshold); at the end of a full round, members and groups the enumeration
    /// did not list are dropped and every wanted group is queued for reconciliation.
    ///
    /// `admits(id, props)` is the configured scope; its answer is stored in each listed group's
    /// [`GroupRecord::in_scope`]. A group leaving the scope is staged like a soft delete
    /// ([`DeleteReason::LeftScope`]); a group coming back into it is queued for a full
    /// reconcile, since AD may hold a frozen, stale copy of it.
    pub fn commit_group_page(
        &self,
        items: &[GroupDelta],
        next: &NextStep,
        before: Option<&Cursor>,
        policy: DeletePolicy,
        admits: &dyn Fn(&str, &GroupProps) -> bool,
    ) -> Result<PageOutcome, QueueError> {
        let epoch = self.round_epoch(before)?;
        let mut out = PageOutcome {
            full_round: epoch.is_some(),
            ..Default::default()
        };
        let mut records: BTreeMap<String, Option<GroupRecord>> = BTreeMap::new();
        let mut members = Writes::default();
        let mut member_of = Writes::default();
        let mut staged: Vec<(String, DeleteReason)> = Vec::new();
        // Listed live and wanted on this page: any delete staged or held for them is cancelled.
        let mut cancelled: BTreeSet<String> = BTreeSet::new();
        let mut restored: Vec<String> = Vec::new();
        let mut changes: Vec<Change> = Vec::new();
        let now = now_ms();

        for item in items {
            let old = match records.get(&item.id) {
                Some(r) => r.clone(),
                None => self.group(&item.id)?,
            };
            let was_wanted = old.as_ref().is_some_and(GroupRecord::wanted);
            match item.removed {
                Some(Removed::Deleted) => {
                    self.drop_members(&item.id, &mut members, &mut member_of, None)?;
                    records.insert(item.id.clone(), None);
                    cancelled.remove(&item.id);
                    staged.push((item.id.clone(), DeleteReason::HardDeleted));
                }
                Some(Removed::Changed) => {
                    if let Some(mut r) = old {
                        if r.status == GroupStatus::Live {
                            r.status = GroupStatus::SoftDeleted;
                            if was_wanted {
                                cancelled.remove(&item.id);
                                staged.push((item.id.clone(), DeleteReason::SoftDeleted));
                            }
                        }
                        records.insert(item.id.clone(), Some(r));
                    }
                }
                None => {
                    let back_in_scope = old
                        .as_ref()
                        .is_some_and(|o| o.status == GroupStatus::Live && !o.wanted());
                    let old_ad_identity = old.as_ref().map(|o| o.props.ad_identity());
                    if old.is_none() && epoch.is_none() {
                        // New to the mirror in an incremental round: AD may still hold a copy
                        // from before (a group a resync dropped while it was soft-deleted, or
                        // state lost): converge it fully once the round is complete.
                        restored.push(item.id.clone());
                    }
                    let mut r = old.unwrap_or(GroupRecord {
                        props: GroupProps::default(),
                        status: GroupStatus::Live,
                        full_epoch: 0,
                        admitted: true,
                    });
                    if r.status == GroupStatus::SoftDeleted {
                        // Restored: it comes back like a new group, with its full member list
                        // (maybe over several pages); its frozen AD copy is reconciled once the
                        // round is complete.
                        r.status = GroupStatus::Live;
                        self.drop_members(&item.id, &mut members, &mut member_of, None)?;
                        restored.push(item.id.clone());
                    }
                    r.props.apply(&item.patch);
                    r.admitted = admits(&item.id, &r.props);
                    if old_ad_identity.is_some_and(|o| o != r.props.ad_identity()) {
                        // A group synced from AD got (or lost) its SID: the parents that list
                        // it can now reference its original object.
                        self.requeue_parents_of(&item.id, &mut changes, now)?;
                    }
                    if let Some(e) = epoch {
                        r.full_epoch = e;
                    }
                    let mut touched = Vec::new();
                    for m in &item.members {
                        if m.member.kind == MemberKind::Other {
                            out.unsupported_members += 1;
                        }
                        let k = member_key(&item.id, &m.member);
                        let back = member_of_key(&m.member.id, &item.id);
                        if m.removed {
                            members.del(k);
                            member_of.del(back);
                        } else {
                            members.put(k, epoch.unwrap_or(0).to_be_bytes().to_vec());
                            member_of.put(back, vec![m.member.kind.tag()]);
                        }
                        if m.member.kind != MemberKind::Other {
                            touched.push(m.member.clone());
                        }
                    }
                    if r.wanted() {
                        // Back in scope in an incremental round: AD may hold a frozen copy that
                        // missed every change made meanwhile (the mirror kept tracking them), so
                        // converge it all. New and restored groups are listed in full, possibly
                        // over several pages: they only add members (removals wait for a full
                        // enumeration's end, as everywhere).
                        let kind = if back_in_scope && epoch.is_none() {
                            ChangeKind::Reconcile
                        } else {
                            ChangeKind::Upsert { members: touched }
                        };
                        changes.push(Change {
                            group_id: item.id.clone(),
                            kind,
                            seen_ms: now,
                        });
                        staged.retain(|(id, _)| id != &item.id);
                        cancelled.insert(item.id.clone());
                    } else if was_wanted {
                        cancelled.remove(&item.id);
                        staged.push((item.id.clone(), DeleteReason::LeftScope));
                    }
                    records.insert(item.id.clone(), Some(r));
                }
            }
        }

        let mut round_deletes = Writes::default();
        let mut held = Writes::default();
        let cursor = Self::new_cursor(next, epoch);
        // Groups restored during this round, over all its pages so far.
        if let Some(v) = self.t()?.meta.get(ROUND_RESTORED)? {
            restored.extend(dec::<Vec<String>>(ROUND_RESTORED, &v)?);
        }
        restored.sort();
        restored.dedup();
        let restored_to_keep = (cursor.mid_round && !restored.is_empty()).then(|| enc(&restored));
        for id in &cancelled {
            // A listing cancels what earlier pages or rounds staged or held for this group.
            round_deletes.del(id.as_bytes().to_vec());
            held.del(id.as_bytes().to_vec());
        }
        if cursor.mid_round {
            for (id, reason) in &staged {
                round_deletes.put(id.as_bytes().to_vec(), enc(reason));
            }
        } else {
            for id in restored.iter().filter(|_| epoch.is_none()) {
                let wanted = match records.get(id) {
                    Some(r) => r.as_ref().is_some_and(GroupRecord::wanted),
                    None => self.group(id)?.is_some_and(|r| r.wanted()),
                };
                if wanted {
                    changes.push(Change {
                        group_id: id.clone(),
                        kind: ChangeKind::Reconcile,
                        seen_ms: now,
                    });
                }
            }
            if let Some(e) = epoch {
                self.finish_full_round(
                    e,
                    &mut records,
                    &mut members,
                    &mut member_of,
                    &mut changes,
                    now,
                )?;
            }
            // All deletes staged over the round, this page's included.
            let mut all: BTreeMap<String, DeleteReason> = BTreeMap::new();
            for r in self.t()?.round_deletes.iter() {
                let (k, v) = r?;
                let id = String::from_utf8_lossy(&k).into_owned();
                if !cancelled.contains(&id) {
                    all.insert(id, dec(&k, &v)?);
                }
                round_deletes.del(k.to_vec());
            }
            all.extend(staged.iter().cloned());
            // One threshold for all destruction: hard deletes, and soft deletes or scope exits
            // when the soft-delete policy deletes, converts or moves.
            let deleting =
                |r: &DeleteReason| *r == DeleteReason::HardDeleted || policy.soft_destructive;
            let hold = all.values().filter(|r| deleting(r)).count() > policy.threshold;
            for (id, reason) in all {
                if hold && deleting(&reason) {
                    held.put(id.into_bytes(), enc(&reason));
                    out.held_deletes += 1;
                } else {
                    changes.push(Change {
                        group_id: id,
                        kind: ChangeKind::Delete { reason },
                        seen_ms: now,
                    });
                }
            }
        }
        out.round_done = !cursor.mid_round;
        let full_done = epoch.filter(|_| out.round_done);

        let mut groups = Writes::default();
        for (id, r) in &records {
            match r {
                Some(r) => groups.put(id.as_bytes().to_vec(), enc(r)),
                None => groups.del(id.as_bytes().to_vec()),
            }
        }
        let seqs = changes
            .iter()
            .map(|_| self.next_seq())
            .collect::<Result<Vec<_>, _>>()?;
        let (mb, ob, rb) = (members.batch(), member_of.batch(), round_deletes.batch());
        let t = self.t()?; // one handle: never mix trees across a reopen
        let (groups_delta, held_delta) = (
            &t.meta,
            &t.pending,
            &t.groups,
            &t.members,
            &t.member_of,
            &t.round_deletes,
            &t.held_deletes,
        )
            .transaction(
                |(meta, pending, groups_t, members_t, member_of_t, round_t, held_t)| {
                    let groups_delta = groups.apply_counted(groups_t)?;
                    members_t.apply_batch(&mb)?;
                    member_of_t.apply_batch(&ob)?;
                    round_t.apply_batch(&rb)?;
                    let held_delta = held.apply_counted(held_t)?;
                    for (seq, c) in seqs.iter().zip(&changes) {
                        tx_enqueue(pending, *seq, c)?;
                    }
                    meta.insert(cursor_key(Resource::Groups), enc(&cursor))?;
                    match &restored_to_keep {
                        Some(v) => meta.insert(ROUND_RESTORED, v.clone())?,
                        None => meta.remove(ROUND_RESTORED)?,
                    };
                    if let Some(e) = full_done {
                        meta.insert(FULL_DONE, enc(&e))?;
                    }
                    Ok((groups_delta, held_delta))
                },
            )?;
        Counts::adjust(&self.counts.groups, groups_delta);
        Counts::adjust(&self.counts.held, held_delta);
        self.note_enqueued(changes.len());
        for c in &changes {
            *out.enqueued.entry(c.kind.label()).or_default() += 1;
        }
        Ok(out)
    }

    /// Queues an upsert of every wanted group that lists `member_group` as a member.
    fn requeue_parents_of(
        &self,
        member_group: &str,
        changes: &mut Vec<Change>,
        now: u64,
    ) -> Result<(), QueueError> {
        let member = MemberRef {
            kind: MemberKind::Group,
            id: member_group.to_string(),
        };
        for parent in self.groups_containing(member_group)? {
            if parent != member_group && self.group(&parent)?.is_some_and(|r| r.wanted()) {
                changes.push(Change {
                    group_id: parent,
                    kind: ChangeKind::Upsert {
                        members: vec![member.clone()],
                    },
                    seen_ms: now,
                });
            }
        }
        Ok(())
    }

    /// Removes a group's member entries (all, or those not stamped with `keep_epoch`).
    fn drop_members(
        &self,
        group: &str,
        members: &mut Writes,
        member_of: &mut Writes,
        keep_epoch: Option<u64>,
    ) -> Result<(), QueueError> {
        let p = prefix(group);
        for r in self.t()?.members.scan_prefix(&p) {
            let (k, v) = r?;
            if keep_epoch.is_some_and(|e| v.as_ref() == e.to_be_bytes()) {
                continue;
            }
            if members.0.get(k.as_ref()).is_some_and(|w| w.is_some()) && keep_epoch.is_some() {
                continue; // re-listed on this very page
            }
            let member_id = String::from_utf8_lossy(&k[p.len() + 1..]).into_owned();
            members.del(k.to_vec());
            member_of.del(member_of_key(&member_id, group));
        }
        Ok(())
    }

    /// End of a full enumeration: drop what it did not list, reconcile everything, sweep AD.
    fn finish_full_round(
        &self,
        epoch: u64,
        records: &mut BTreeMap<String, Option<GroupRecord>>,
        members: &mut Writes,
        member_of: &mut Writes,
        changes: &mut Vec<Change>,
        now: u64,
    ) -> Result<(), QueueError> {
        let mut all: BTreeMap<String, Option<GroupRecord>> = self
            .all_groups()?
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        all.extend(records.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (id, rec) in all {
            let Some(rec) = rec else { continue };
            if rec.full_epoch != epoch && rec.status == GroupStatus::Live {
                // Not listed by the enumeration: gone. Its AD object is found by the sweep.
                self.drop_members(&id, members, member_of, None)?;
                records.insert(id, None);
                continue;
            }
            if rec.status == GroupStatus::Live {
                self.drop_members(&id, members, member_of, Some(epoch))?;
            }
            if rec.wanted() {
                changes.push(Change {
                    group_id: id,
                    kind: ChangeKind::Reconcile,
                    seen_ms: now,
                });
            }
        }
        changes.push(Change {
            group_id: ALL_GROUPS.into(),
            kind: ChangeKind::Sweep,
            seen_ms: now,
        });
        Ok(())
    }
}
