//! Page commits as folds: pure functions from the part of the mirror a Graph page touches and
//! the page to a plan of what the page does to the store. No sled, no I/O, no clock:
//! [`super::mirror`] reads the view, passes the time in and writes the plan in one transaction.
//!
//! - Groups: [`fold_group_page`] turns a [`MirrorView`] and a [`GroupPage`] into a
//!   [`GroupPagePlan`] (record writes, membership edges, changes to queue, staged, held and
//!   cancelled deletes, the next cursor and the [`PageOutcome`]).
//! - Users: [`fold_user_page`] and [`requeue_groups`] turn a [`UserView`] (and, for the users
//!   whose SID changed, a [`UserGroupsView`]) into a [`UserPagePlan`].
//!
//! # Guarantees
//! - **Deletes are staged, never decided by one page.** A group hard-deleted (`@removed:
//!   deleted`), soft-deleted while wanted (`@removed: changed`) or leaving the configured scope
//!   is staged for the end of the round. Listing it live and wanted later in the round cancels
//!   the staging, and cancels a delete an earlier round held for approval
//!   ([`DeletePlan::cancelled`]). A group that is live and wanted is never staged, held or
//!   queued for deletion by the page that lists it.
//! - **One threshold for all destruction.** At the end of a round, when more of its staged
//!   deletes would change AD than [`DeletePolicy::threshold`] (hard deletes, plus soft deletes
//!   and scope exits when [`DeletePolicy::soft_destructive`]), those are held for approval
//!   instead of queued; the others are queued.
//! - **Removals wait for a full enumeration's end.** New and restored groups only add members
//!   while their listing may span pages; members (and groups) a full enumeration did not list
//!   are dropped when it reaches its deltaLink, which also queues a reconcile of every wanted
//!   group and a sweep.
//! - **Restores come back whole.** A soft-deleted group listed live again drops its stored
//!   members (the listing brings the full list) and, like a group new in an incremental round,
//!   is reconciled once the round is complete: AD may hold a frozen or stale copy of it.
//! - **A group's members are bounded.** A listing that would take a group past
//!   [`GroupPage::max_members`] stored members is refused member by member (never stored), the
//!   group is marked refused in its [`MemberCount`] and the refusals are counted
//!   ([`PageOutcome::refused_members`]); the applier then refuses to write that group. Nothing
//!   is removed because of the limit. The mark is cleared when a full enumeration lists the
//!   group again and it fits.
//! - Deterministic: the same view and page give the same plan; changes keep page order.
//!
//! Imports: the queue's records, [`crate::model`] and the page shapes of [`crate::graph::page`];
//! nothing above the queue.

#[cfg(test)]
mod delete_tests;
mod group;
#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod tests;
mod user;
#[cfg(test)]
mod user_tests;

use std::collections::{BTreeMap, BTreeSet};

use super::records::{Cursor, GroupRecord, MemberCount};
use crate::graph::page::{GroupDelta, NextStep};
use crate::model::{Change, DeleteReason, GroupProps, MemberRef};

pub use group::fold_group_page;
pub use user::{UserGroupsView, UserPagePlan, UserView, UserWrite, fold_user_page, requeue_groups};

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
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PageOutcome {
    /// Changes queued, by kind label.
    pub enqueued: BTreeMap<&'static str, usize>,
    /// Pending changes dropped as superseded by this page's closing reconciles.
    pub superseded: usize,
    /// Members skipped because of their type (devices, contacts, ...).
    pub unsupported_members: usize,
    /// Deletes held back by the threshold at the end of this round.
    pub held_deletes: usize,
    /// This page ended the round.
    pub round_done: bool,
    /// The round was a full enumeration.
    pub full_round: bool,
    /// Members not stored because their group reached `graph.max_members_per_group`.
    pub refused_members: usize,
    /// The groups that had members refused on this page.
    pub refused_groups: BTreeSet<String>,
}

impl PageOutcome {
    /// Counts `changes` into [`PageOutcome::enqueued`] by kind label.
    pub fn count(&mut self, changes: &[Change]) {
        for c in changes {
            *self.enqueued.entry(c.kind.label()).or_default() += 1;
        }
    }

    /// Adds what a later part of the same page did (see [`crate::queue::mirror::parts`]):
    /// counts add up, the round flags are the later part's.
    pub fn merge(&mut self, later: PageOutcome) {
        for (kind, n) in later.enqueued {
            *self.enqueued.entry(kind).or_default() += n;
        }
        self.superseded += later.superseded;
        self.unsupported_members += later.unsupported_members;
        self.held_deletes += later.held_deletes;
        self.round_done = later.round_done;
        self.full_round = later.full_round;
        self.refused_members += later.refused_members;
        self.refused_groups.extend(later.refused_groups);
    }
}

/// The part of the mirror a groups page touches, as stored before the page.
///
/// An id missing from a map reads as "not stored" (no record, no members, no parents); the
/// reader in [`super::mirror`] fills in everything the fold consults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MirrorView {
    /// Stored records (`None`: not in the mirror) of the groups on the page, of the groups
    /// listing a listed group as a member, and (when the page ends an incremental round) of
    /// the groups restored earlier in the round.
    pub groups: BTreeMap<String, Option<GroupRecord>>,
    /// Every stored member of the groups whose member list the page may drop: those
    /// hard-deleted on it, and those it lists live that are, or become on it, soft-deleted
    /// (a restore).
    pub members: BTreeMap<String, Vec<MemberRef>>,
    /// For each group the page lists live, the groups that list it as a member, in id order.
    pub parents: BTreeMap<String, Vec<String>>,
    /// The stored member counts of the groups on the page and, at the end of a full
    /// enumeration, of the groups whose unlisted members it drops (missing: none stored).
    pub member_counts: BTreeMap<String, MemberCount>,
    /// Which of the membership edges the page names (live listings) are stored already.
    pub stored_edges: BTreeSet<Edge>,
    /// The round the page belongs to.
    pub round: RoundView,
}

/// Where the round in progress stands before the page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoundView {
    /// The epoch of the full enumeration the page belongs to; `None` in an incremental round.
    pub full_epoch: Option<u64>,
    /// Groups earlier pages of the round restored (or, in an incremental round, found new to
    /// the mirror): reconciled once the round is complete.
    pub restored: Vec<String>,
    /// Present when the page ends the round (its link is a deltaLink).
    pub end: Option<RoundEndView>,
}

/// What the end of a round consults beyond the page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoundEndView {
    /// Deletes earlier pages of the round staged.
    pub staged: BTreeMap<String, DeleteReason>,
    /// At the end of a full enumeration: the whole mirror.
    pub full: Option<FullMirrorView>,
}

/// The whole mirror at the end of a full enumeration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FullMirrorView {
    /// Every stored group.
    pub groups: BTreeMap<String, GroupRecord>,
    /// Per group, the stored members not stamped with the enumeration's epoch: those it has
    /// not listed. (A group the enumeration did not list has no member stamped with its epoch:
    /// members are stamped only by a listing.)
    pub unlisted: BTreeMap<String, Vec<MemberRef>>,
}

/// One groups page and what the fold needs to know about the configuration.
pub struct GroupPage<'a> {
    /// The page's items, in page order.
    pub items: &'a [GroupDelta],
    /// The link the page ends with.
    pub next: &'a NextStep,
    /// The delete threshold and soft-delete policy.
    pub policy: DeletePolicy,
    /// The configured scope: `admits(id, props)`.
    pub admits: &'a dyn Fn(&str, &GroupProps) -> bool,
    /// The time the changes are stamped with (`seen_ms`) and the cursor is stored at.
    pub now: u64,
    /// `graph.max_members_per_group`: most members stored for one group.
    pub max_members: usize,
}

/// What a groups page does to the store, written in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPagePlan {
    /// Mirror records to write or remove.
    pub groups: BTreeMap<String, GroupWrite>,
    /// Membership edges to insert or remove (the `members` tree and its `member_of` index),
    /// each once, in the order of its last write on the page. The order matters for the index:
    /// it is keyed by member id and group only, so when the page writes edges of one member id
    /// under two kinds, the later write decides the group's entry.
    pub edges: Vec<(Edge, EdgeWrite)>,
    /// Changes to queue, in order.
    pub changes: Vec<Change>,
    /// What happens to staged and held deletes.
    pub deletes: DeletePlan,
    /// Groups to reconcile at the end of the round, carried to its next page (empty when the
    /// page ends the round or there are none).
    pub restored: Vec<String>,
    /// Member counts to store (`None`: the group left the mirror, forget its count).
    pub member_counts: BTreeMap<String, Option<MemberCount>>,
    /// The cursor after the page.
    pub cursor: Cursor,
    /// Set to the epoch when the page completes a full enumeration.
    pub full_round_done: Option<u64>,
    /// What the page did, for logs and metrics.
    pub outcome: PageOutcome,
}

/// A write to one mirror record.
#[derive(Debug, Clone, PartialEq, Eq)]
// Nearly every write is a `Put`: boxing the record would add an allocation per write to save
// the rare `Remove` its size.
#[allow(clippy::large_enum_variant)]
pub enum GroupWrite {
    /// Store this record.
    Put(GroupRecord),
    /// Remove the record (hard-deleted, or not listed by a full enumeration).
    Remove,
}

/// One membership edge: `member` listed in `group`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// The group.
    pub group: String,
    /// The member.
    pub member: MemberRef,
}

/// A write to one membership edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeWrite {
    /// Listed; stamped with the full enumeration's epoch (0 in an incremental round).
    Insert {
        /// The epoch stamp.
        stamp: u64,
    },
    /// No longer listed.
    Remove,
}

/// What a page does to the deletes staged during a round and held for approval.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletePlan {
    /// Groups listed live and wanted: whatever earlier pages staged or the threshold held for
    /// them is dropped.
    pub cancelled: BTreeSet<String>,
    /// Deletes staged for the end of the round (mid-round pages only).
    pub staged: BTreeMap<String, DeleteReason>,
    /// Deletes staged by earlier pages that the end of the round consumed (queued, held or
    /// cancelled): removed from the stage.
    pub unstaged: BTreeSet<String>,
    /// Deletes held for approval by the threshold.
    pub held: BTreeMap<String, DeleteReason>,
}

/// The cursor that follows a page ending with `next`.
pub fn cursor_after(next: &NextStep, full_epoch: Option<u64>, now: u64) -> Cursor {
    let (link, mid_round) = match next {
        NextStep::Next(l) => (l.clone(), true),
        NextStep::Delta(l) => (l.clone(), false),
    };
    Cursor {
        link,
        mid_round,
        full_epoch: if mid_round { full_epoch } else { None },
        stored_ms: now,
    }
}

/// How long an idle stream may keep its stored deltaLink instead of storing the new one: a
/// round that brought nothing writes nothing until then (so an idle service costs sled no
/// write, hence no flush or segment cleaning, per poll), and `cursor age` stays within it.
pub const IDLE_CURSOR_REFRESH_MS: u64 = 60_000;

/// Whether a page may leave the store untouched: an incremental round's only page, with no
/// items, ending where the stored cursor is (a deltaLink) and stored less than
/// [`IDLE_CURSOR_REFRESH_MS`] ago. Safe because replaying from the older deltaLink returns what
/// changed since it, which is what changed since the newer one (this round brought nothing).
/// The caller also checks that the plan writes nothing else. Pure.
pub fn cursor_can_wait(
    before: Option<&Cursor>,
    after: &Cursor,
    page_empty: bool,
    now: u64,
) -> bool {
    let Some(before) = before else { return false };
    page_empty
        && !before.mid_round
        && before.full_epoch.is_none()
        && !after.mid_round
        && now.saturating_sub(before.stored_ms) < IDLE_CURSOR_REFRESH_MS
}

impl GroupPagePlan {
    /// Whether the plan writes nothing but its cursor.
    pub fn only_the_cursor(&self) -> bool {
        self.groups.is_empty()
            && self.edges.is_empty()
            && self.changes.is_empty()
            && self.deletes.cancelled.is_empty()
            && self.deletes.staged.is_empty()
            && self.deletes.unstaged.is_empty()
            && self.deletes.held.is_empty()
            && self.restored.is_empty()
            && self.member_counts.is_empty()
            && self.full_round_done.is_none()
    }
}

#[cfg(test)]
mod cursor_tests {
    use super::*;

    fn cursor(mid_round: bool, full: Option<u64>, stored_ms: u64) -> Cursor {
        Cursor {
            link: "l".into(),
            mid_round,
            full_epoch: full,
            stored_ms,
        }
    }

    #[test]
    fn only_an_empty_page_between_two_recent_delta_links_may_skip_its_write() {
        let now = 1_000_000;
        let recent = cursor(false, None, now - 1_000);
        let delta = cursor(false, None, now);
        assert!(cursor_can_wait(Some(&recent), &delta, true, now));
        assert!(!cursor_can_wait(Some(&recent), &delta, false, now), "items");
        assert!(!cursor_can_wait(None, &delta, true, now), "first round");
        assert!(
            !cursor_can_wait(Some(&cursor(true, None, now)), &delta, true, now),
            "mid-round"
        );
        assert!(
            !cursor_can_wait(Some(&cursor(false, Some(3), now)), &delta, true, now),
            "full"
        );
        assert!(
            !cursor_can_wait(Some(&recent), &cursor(true, None, now), true, now),
            "nextLink"
        );
        let old = cursor(false, None, now - IDLE_CURSOR_REFRESH_MS);
        assert!(
            !cursor_can_wait(Some(&old), &delta, true, now),
            "refreshed once a minute"
        );
    }
}
