//! The desired-state mirror and the page commits that feed it.
//!
//! [`Store::commit_group_page`] and [`Store::commit_user_page`] each read the part of the store
//! a Graph page touches (a view), fold the page over it with the pure functions of
//! [`super::fold`], and write the resulting plan (mirror updates, queued
//! changes, staged and held deletes, the next cursor) in **one** sled transaction: a page is
//! wholly recorded or not at all, and its cursor never moves without it (see [`super`]). A
//! groups page carrying more than [`parts::PART_MEMBERS`] member entries is folded and written
//! in parts of that size, one transaction each, as if Graph had sliced it over more pages;
//! only its last part moves the cursor ([`parts`]).
//!
//! # Reading the view outside the transaction
//! sled's transactions cannot scan, and a plain tree read inside a transaction closure would
//! deadlock (sled 0.34 holds its global write lock for the whole closure), so the view is read
//! just before the transaction, through the same trees handle the transaction writes. That is
//! consistent because only the poller writes what the view holds (`groups`, `members`,
//! `member_of`, `users`, `round_deletes` and the round keys of `meta`), one page at a time,
//! and a second process cannot open the store. What other writers touch concurrently is never
//! read for a decision: `pending` gets fresh sequence numbers, and `held_deletes` (the worker's
//! sweep holds, `approve-deletes` releases) is only written by key (a cancelled hold is
//! removed whether or not it is still there), with the entry counts taken from what the
//! transaction really inserted or removed.
//!
//! Imports: the queue's store, records and folds, [`crate::model`] and the page shapes of
//! [`crate::graph::page`]; nothing above the queue.

use std::collections::BTreeMap;

use sled::Transactional;

pub use super::fold::{DeletePolicy, PageOutcome};
use super::fold::{
    GroupPage, GroupPagePlan, GroupWrite, UserGroupsView, UserPagePlan, UserView, UserWrite,
    cursor_can_wait, fold_group_page, fold_user_page, requeue_groups,
};
use super::keys::{Writes, member_key, member_ref, prefix, split_member_key};
use super::plan_writes::{edge_writes, group_writes};
use super::records::*;
use super::store::{
    Counts, LAST_SWEEP, QueueError, Store, Trees, cursor_key, dec, enc, seq_key, tx_enqueue,
};
use crate::graph::page::{GroupDelta, NextStep, UserDelta};
use crate::model::MemberRef;
use crate::model::*;

mod counts;
mod listed;
pub mod parts;
mod view;

use counts::member_count;
use listed::apply_member_writes;
use view::{all_groups, read_group_view};

/// `meta` key of the groups to reconcile at the end of the round in progress (restored, or new
/// to the mirror: AD may hold a frozen or stale copy of them).
const ROUND_RESTORED: &[u8] = b"round/restored";

/// `meta` key holding the epoch of the last full enumeration that reached its deltaLink.
pub(super) const FULL_DONE: &[u8] = b"full/completed";

/// A record stored under `id`.
fn get<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    id: &str,
) -> Result<Option<T>, QueueError> {
    tree.get(id.as_bytes())?
        .map(|v| dec(id.as_bytes(), &v))
        .transpose()
}

fn get_group(t: &Trees, id: &str) -> Result<Option<GroupRecord>, QueueError> {
    get(&t.groups, id)
}

fn get_user(t: &Trees, id: &str) -> Result<Option<UserRecord>, QueueError> {
    get(&t.users, id)
}

/// What the keys stored under `id`'s prefix name after it, as `name` reads them.
fn under<T>(tree: &sled::Tree, id: &str, name: fn(&[u8]) -> T) -> Result<Vec<T>, QueueError> {
    let p = prefix(id);
    tree.scan_prefix(&p)
        .keys()
        .map(|k| Ok(name(&k?[p.len()..])))
        .collect()
}

fn members_of(t: &Trees, group: &str) -> Result<Vec<MemberRef>, QueueError> {
    under(&t.members, group, member_ref)
}

fn containing(t: &Trees, member: &str) -> Result<Vec<String>, QueueError> {
    under(&t.member_of, member, |rest| {
        String::from_utf8_lossy(rest).into_owned()
    })
}

/// Reads a group's record into `groups` unless it is there already.
fn read_group_into(
    t: &Trees,
    groups: &mut BTreeMap<String, Option<GroupRecord>>,
    id: &str,
) -> Result<(), QueueError> {
    if !groups.contains_key(id) {
        groups.insert(id.to_string(), get_group(t, id)?);
    }
    Ok(())
}

/// The epoch of the full round a page belongs to, or `None` for an incremental round.
fn round_epoch(t: &Trees, before: Option<&Cursor>) -> Result<Option<u64>, QueueError> {
    Ok(match before {
        None => Some(t.db.generate_id()?),
        Some(c) => c.full_epoch,
    })
}

/// Fresh sequence numbers for `n` changes.
fn seqs(t: &Trees, n: usize) -> Result<Vec<u64>, QueueError> {
    (0..n).map(|_| Ok(t.db.generate_id()?)).collect()
}

impl Store {
    /// A cloud group as last seen.
    pub fn group(&self, id: &str) -> Result<Option<GroupRecord>, QueueError> {
        get_group(&*self.t()?, id)
    }

    /// Every group in the mirror.
    pub fn all_groups(&self) -> Result<Vec<(String, GroupRecord)>, QueueError> {
        all_groups(&*self.t()?)
    }

    /// The current members of a group, as Graph lists them.
    pub fn members(&self, group: &str) -> Result<Vec<MemberRef>, QueueError> {
        members_of(&*self.t()?, group)
    }

    /// Up to `limit` members of a group, in key order, after `after` (from the first when
    /// `None`): a large group read in bounded pieces rather than as one list.
    pub fn members_page(
        &self,
        group: &str,
        after: Option<&MemberRef>,
        limit: usize,
    ) -> Result<Vec<MemberRef>, QueueError> {
        let t = self.t()?;
        let p = prefix(group);
        let from = match after {
            Some(m) => std::ops::Bound::Excluded(member_key(group, m)),
            None => std::ops::Bound::Included(p.clone()),
        };
        t.members
            .range((from, std::ops::Bound::Unbounded))
            .keys()
            .take_while(|k| k.as_ref().map_or(true, |k| k.starts_with(&p)))
            .take(limit)
            .map(|k| Ok(member_ref(split_member_key(&k?).1)))
            .collect()
    }

    /// Whether Graph currently lists `member` in `group`.
    pub fn is_member(&self, group: &str, member: &MemberRef) -> Result<bool, QueueError> {
        Ok(self.t()?.members.contains_key(member_key(group, member))?)
    }

    /// The groups that list `member` (any kind) as a member.
    pub fn groups_containing(&self, member: &str) -> Result<Vec<String>, QueueError> {
        containing(&*self.t()?, member)
    }

    /// How many members the mirror holds for a group, and whether the member limit refused
    /// some (then the group must not be written to AD).
    pub fn member_count(&self, group: &str) -> Result<MemberCount, QueueError> {
        member_count(&*self.t()?, group)
    }

    /// A cloud user's on-premises identity.
    pub fn user(&self, id: &str) -> Result<Option<UserRecord>, QueueError> {
        get_user(&*self.t()?, id)
    }

    /// Records one users page and its cursor atomically. Users whose on-premises SID changed get
    /// their groups re-queued, so a member that was not resolvable yet is written once it is.
    pub fn commit_user_page(
        &self,
        items: &[UserDelta],
        next: &NextStep,
        before: Option<&Cursor>,
    ) -> Result<PageOutcome, QueueError> {
        let t = self.t()?; // one handle: never mix trees across a reopen
        let mut view = UserView {
            full_epoch: round_epoch(&t, before)?,
            ..Default::default()
        };
        for item in items {
            if !view.users.contains_key(&item.id) {
                view.users.insert(item.id.clone(), get_user(&t, &item.id)?);
            }
        }
        let now = now_ms();
        let mut plan = fold_user_page(&view, items, next, now);
        if plan.only_the_cursor() && cursor_can_wait(before, &plan.cursor, items.is_empty(), now) {
            return Ok(plan.outcome); // an idle round: nothing to store (see `cursor_can_wait`)
        }
        let mut groups = UserGroupsView::default();
        for user in &plan.sid_changed {
            let listing = containing(&t, user)?;
            for g in &listing {
                read_group_into(&t, &mut groups.groups, g)?;
            }
            groups.containing.insert(user.clone(), listing);
        }
        requeue_groups(&mut plan, &groups, now);
        write_user_plan(&t, &plan)?;
        self.note_enqueued(plan.changes.len());
        Ok(plan.outcome)
    }

    /// Records one groups page atomically: mirror updates, the changes they imply and the
    /// cursor after the page. At the end of a round, staged deletes are queued (or held when
    /// more than the threshold); at the end of a full round, members and groups the enumeration
    /// did not list are dropped and every wanted group is queued for reconciliation.
    ///
    /// `admits(id, props)` is the configured scope; its answer is stored in each listed group's
    /// [`GroupRecord::admitted`]. A group leaving the scope is staged like a soft delete
    /// ([`DeleteReason::LeftScope`]); a group coming back into it is queued for a full
    /// reconcile, since AD may hold a frozen, stale copy of it. The decisions are
    /// [`super::fold`]'s; this reads its view and writes its plan.
    pub fn commit_group_page(
        &self,
        items: &[GroupDelta],
        next: &NextStep,
        before: Option<&Cursor>,
        policy: DeletePolicy,
        admits: &dyn Fn(&str, &GroupProps) -> bool,
    ) -> Result<PageOutcome, QueueError> {
        let max = crate::config::DEFAULT_MAX_MEMBERS_PER_GROUP;
        self.commit_group_page_limited(items, next, before, policy, admits, max)
    }

    /// [`Store::commit_group_page`] keeping at most `max_members` members per group
    /// (`graph.max_members_per_group`): a group listing more is marked refused (see
    /// [`MemberCount`] and [`super::fold`]) and its extra members are not stored.
    pub fn commit_group_page_limited(
        &self,
        items: &[GroupDelta],
        next: &NextStep,
        before: Option<&Cursor>,
        policy: DeletePolicy,
        admits: &dyn Fn(&str, &GroupProps) -> bool,
        max_members: usize,
    ) -> Result<PageOutcome, QueueError> {
        let page = GroupPage {
            items,
            next,
            policy,
            admits,
            now: now_ms(),
            max_members,
        };
        self.commit_group_page_in_parts(&page, before, parts::PART_MEMBERS, usize::MAX)
    }

    /// Commits `page` in parts of at most `part_members` member entries ([`parts`]), writing
    /// no more than `write_parts` of them: a test stops there to leave the store as a crash
    /// between two parts would.
    pub(super) fn commit_group_page_in_parts(
        &self,
        page: &GroupPage,
        before: Option<&Cursor>,
        part_members: usize,
        write_parts: usize,
    ) -> Result<PageOutcome, QueueError> {
        let (items, next) = (page.items, page.next);
        let t = self.t()?; // one handle: never mix trees across a reopen
        let epoch = round_epoch(&t, before)?;
        let parts = parts::cut(items, part_members);
        let (mut outcome, last) = (PageOutcome::default(), parts.len() - 1);
        // Every part but the last folds as a mid-round page and leaves the cursor alone.
        let mid = NextStep::Next(before.map(|c| c.link.clone()).unwrap_or_default());
        for (i, part) in parts.iter().enumerate().take(write_parts) {
            let part = GroupPage {
                items: &parts::items_of(items, part),
                next: if i == last { next } else { &mid },
                ..*page
            };
            let done = self.commit_group_part(&t, &part, before, epoch, i == last)?;
            outcome.merge(done);
        }
        Ok(outcome)
    }

    /// How many of `group`'s edges the full round `epoch` has listed (see [`listed`]).
    #[cfg(test)]
    pub(super) fn listed_in_round(&self, group: &str, epoch: u64) -> Result<u64, QueueError> {
        listed::listed_in_round(&*self.t()?, group, epoch)
    }

    /// Folds and writes one part of a groups page ([`parts`]); `last` says whether it is the
    /// page's last part, the one that stores the cursor.
    fn commit_group_part(
        &self,
        t: &Trees,
        page: &GroupPage,
        before: Option<&Cursor>,
        epoch: Option<u64>,
        last: bool,
    ) -> Result<PageOutcome, QueueError> {
        let view = read_group_view(t, page.items, page.next, epoch)?;
        let plan = fold_group_page(&view, page);
        let idle = plan.only_the_cursor()
            && (!last || cursor_can_wait(before, &plan.cursor, page.items.is_empty(), page.now));
        if idle {
            return Ok(plan.outcome); // an idle round: nothing to store (see `cursor_can_wait`)
        }
        let written = write_group_plan(t, &plan, last, epoch)?;
        Counts::adjust(&self.counts.groups, written.groups);
        Counts::adjust(&self.counts.held, written.held);
        Counts::adjust(
            &self.depth,
            written.queued.len() as i64 - written.superseded as i64,
        );
        let mut outcome = plan.outcome;
        outcome.enqueued.clear();
        outcome.count(&written.queued);
        outcome.superseded = written.superseded;
        Ok(outcome)
    }
}

/// What writing a groups page did.
struct Written {
    /// Change in the entry count of `groups`.
    groups: i64,
    /// Change in the entry count of `held_deletes`.
    held: i64,
    /// The changes queued (the plan's, less those its closing reconciles superseded).
    queued: Vec<Change>,
    /// Pending changes dropped as superseded ([`super::supersede`]).
    superseded: usize,
}

/// The page's writes to `round_deletes` and `held_deletes`, in that order.
fn delete_writes(plan: &GroupPagePlan) -> (Writes, Writes) {
    let d = &plan.deletes;
    let (mut round, mut held) = (Writes::default(), Writes::default());
    for id in d.cancelled.iter().chain(&d.unstaged) {
        round.del(id.as_bytes());
    }
    for (id, reason) in &d.staged {
        round.put(id.as_bytes(), enc(reason));
    }
    for id in &d.cancelled {
        held.del(id.as_bytes());
    }
    for (id, reason) in &d.held {
        held.put(id.as_bytes(), enc(reason));
    }
    (round, held)
}

/// The page's writes to `member_counts` (a `None` count removes the group's entry).
fn count_writes(plan: &GroupPagePlan) -> Writes {
    let mut counts = Writes::default();
    for (id, c) in &plan.member_counts {
        match c {
            Some(c) => counts.put(id.as_bytes(), enc(c)),
            None => counts.del(id.as_bytes()),
        }
    }
    counts
}

/// Whether the page ends a round and reconciles groups: a full enumeration's close, or an
/// incremental round's reconciles of the groups it created or restored. Those reconciles
/// supersede the same groups' pending upserts ([`super::supersede`]), so each such group is
/// one apply, and a change of another group listed late in a large round is not left behind
/// thousands of upserts of the round's own groups. Other pages never scan `pending`.
fn closes_with_reconciles(plan: &GroupPagePlan) -> bool {
    plan.full_round_done.is_some()
        || (!plan.cursor.mid_round && plan.changes.iter().any(|c| c.kind == ChangeKind::Reconcile))
}

/// Writes a groups page's plan in one transaction; the cursor too when `with_cursor` (the
/// page's last part). `epoch` is the full round's, if the page belongs to one.
fn write_group_plan(
    t: &Trees,
    plan: &GroupPagePlan,
    with_cursor: bool,
    epoch: Option<u64>,
) -> Result<Written, QueueError> {
    let (superseded, changes) = if closes_with_reconciles(plan) {
        super::supersede::superseded_in(&t.pending, &plan.changes)?
    } else {
        (Vec::new(), plan.changes.clone())
    };
    let seqs = seqs(t, changes.len())?;
    let groups = group_writes(plan);
    let (members, member_of) = edge_writes(plan);
    let (round, held) = delete_writes(plan);
    let counts = count_writes(plan).batch();
    let restored = (!plan.restored.is_empty()).then(|| enc(&plan.restored));
    let removed: Vec<&[u8]> = (plan.groups.iter())
        .filter(|(_, w)| matches!(w, GroupWrite::Remove))
        .map(|(id, _)| id.as_bytes())
        .collect();
    let (ob, rb) = (member_of.batch(), round.batch());
    let cursor = enc(&plan.cursor);
    let trees = (
        &t.meta,
        &t.pending,
        &t.groups,
        &t.members,
        &t.member_of,
        &t.round_deletes,
        &t.held_deletes,
        &t.member_counts,
        &t.round_listed,
    );
    let deltas = trees.transaction(
        |(meta, pending, groups_t, members_t, of_t, round_t, held_t, counts_t, listed_t)| {
            let groups_delta = groups.apply_counted(groups_t)?;
            apply_member_writes(&members, members_t, listed_t, epoch, &removed)?;
            counts_t.apply_batch(&counts)?;
            of_t.apply_batch(&ob)?;
            round_t.apply_batch(&rb)?;
            let held_delta = held.apply_counted(held_t)?;
            let mut dropped = 0i64;
            for seq in &superseded {
                dropped += i64::from(pending.remove(&seq_key(*seq))?.is_some());
            }
            for (seq, c) in seqs.iter().zip(&changes) {
                tx_enqueue(pending, *seq, c)?;
                if c.kind == ChangeKind::Sweep {
                    meta.insert(LAST_SWEEP, &seq.to_be_bytes())?;
                }
            }
            if with_cursor {
                meta.insert(cursor_key(Resource::Groups), cursor.as_slice())?;
            }
            match &restored {
                Some(v) => meta.insert(ROUND_RESTORED, v.as_slice())?,
                None => meta.remove(ROUND_RESTORED)?,
            };
            if let Some(e) = plan.full_round_done {
                meta.insert(FULL_DONE, enc(&e))?;
            }
            Ok((groups_delta, held_delta, dropped))
        },
    )?;
    let (groups, held, dropped) = deltas;
    Ok(Written {
        groups,
        held,
        queued: changes,
        superseded: dropped as usize,
    })
}

/// Writes a users page's plan in one transaction.
fn write_user_plan(t: &Trees, plan: &UserPagePlan) -> Result<(), QueueError> {
    let seqs = seqs(t, plan.changes.len())?;
    let mut users = Writes::default();
    for (id, w) in &plan.users {
        match w {
            UserWrite::Put(r) => users.put(id.as_bytes(), enc(r)),
            UserWrite::Remove => users.del(id.as_bytes()),
        }
    }
    let users = users.batch();
    let cursor = enc(&plan.cursor);
    (&t.meta, &t.pending, &t.users).transaction(|(meta, pending, users_t)| {
        users_t.apply_batch(&users)?;
        for (seq, c) in seqs.iter().zip(&plan.changes) {
            tx_enqueue(pending, *seq, c)?;
        }
        meta.insert(cursor_key(Resource::Users), cursor.as_slice())?;
        Ok(())
    })?;
    Ok(())
}
