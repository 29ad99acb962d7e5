//! The view a groups page is folded over ([`MirrorView`]): the records, members and parents
//! the page touches, the member counts, and what the end of a round consults. Read-only.
//!
//! Imports: the queue's store, records, keys and folds, and the page shapes of
//! [`crate::graph::page`]; nothing above the queue.

use std::collections::{BTreeMap, BTreeSet};

use super::super::fold::{FullMirrorView, MirrorView, RoundEndView};
use super::super::keys::{member_key, member_ref, prefix, split_member_key};
use super::super::records::*;
use super::super::store::{QueueError, Trees, dec};
use super::counts::{member_count, read_member_counts};
use super::listed::listed_in_round;
use super::{ROUND_RESTORED, containing, members_of, read_group_into};
use crate::graph::page::{GroupDelta, NextStep};
use crate::model::{MemberRef, Removed};

pub(super) fn all_groups(t: &Trees) -> Result<Vec<(String, GroupRecord)>, QueueError> {
    t.groups
        .iter()
        .map(|r| {
            let (k, v) = r?;
            Ok((String::from_utf8_lossy(&k).into_owned(), dec(&k, &v)?))
        })
        .collect()
}

/// Reads what the fold of a groups page consults (see [`MirrorView`]).
pub(super) fn read_group_view(
    t: &Trees,
    items: &[GroupDelta],
    next: &NextStep,
    epoch: Option<u64>,
) -> Result<MirrorView, QueueError> {
    let mut view = MirrorView::default();
    view.round.full_epoch = epoch;
    if let Some(v) = t.meta.get(ROUND_RESTORED)? {
        view.round.restored = dec(ROUND_RESTORED, &v)?;
    }
    for item in items {
        read_group_into(t, &mut view.groups, &item.id)?;
    }
    for id in may_drop_members(items, &view.groups) {
        let members = members_of(t, &id)?;
        view.members.insert(id, members);
    }
    for item in items.iter().filter(|i| i.removed.is_none()) {
        if view.parents.contains_key(&item.id) {
            continue;
        }
        let parents = containing(t, &item.id)?;
        for p in &parents {
            read_group_into(t, &mut view.groups, p)?;
        }
        view.parents.insert(item.id.clone(), parents);
    }
    if let NextStep::Delta(_) = next {
        view.round.end = Some(read_round_end(t, items, epoch, &mut view)?);
    }
    read_member_counts(t, items, &mut view)?;
    Ok(view)
}

/// The groups whose stored members the fold may drop: hard-deleted on the page, or listed live
/// while soft-deleted (as stored, or by an earlier `@removed: changed` on the page).
fn may_drop_members(
    items: &[GroupDelta],
    stored: &BTreeMap<String, Option<GroupRecord>>,
) -> BTreeSet<String> {
    // Per group: (hard-deleted, listed live, soft-deleted on the page).
    let mut seen: BTreeMap<&str, (bool, bool, bool)> = BTreeMap::new();
    for item in items {
        let s = seen.entry(item.id.as_str()).or_default();
        match item.removed {
            Some(Removed::Deleted) => s.0 = true,
            None => s.1 = true,
            Some(Removed::Changed) => s.2 = true,
        }
    }
    seen.into_iter()
        .filter(|(id, (deleted, listed, changed))| {
            let soft = stored
                .get(*id)
                .and_then(Option::as_ref)
                .is_some_and(|r| r.status == GroupStatus::SoftDeleted);
            *deleted || (*listed && (soft || *changed))
        })
        .map(|(id, _)| id.to_string())
        .collect()
}

/// Reads what the end of a round consults: the staged deletes, the records of the groups
/// restored during an incremental round, or, after a full enumeration, every group's record
/// and the edges it did not list (`items` is the round's last page).
fn read_round_end(
    t: &Trees,
    items: &[GroupDelta],
    epoch: Option<u64>,
    view: &mut MirrorView,
) -> Result<RoundEndView, QueueError> {
    let mut end = RoundEndView::default();
    for r in t.round_deletes.iter() {
        let (k, v) = r?;
        end.staged
            .insert(String::from_utf8_lossy(&k).into_owned(), dec(&k, &v)?);
    }
    match epoch {
        None => {
            for id in &view.round.restored {
                read_group_into(t, &mut view.groups, id)?;
            }
        }
        Some(e) => end.full = Some(read_full_round_end(t, items, e)?),
    }
    Ok(end)
}

/// After the full enumeration `epoch`: every group's record, and the edges of live groups
/// that the round did not list. A group listed in the round is read only when its count of
/// listed edges ([`listed_in_round`], plus the stored edges the last page lists again) falls
/// short of its stored member count; a group not listed has all its edges read, and so has
/// a group of the last page that has no record yet (edges without a record are unlisted).
/// A soft-deleted group's edges are not read: the fold drops unlisted edges of live groups
/// only, and a group restored on the last page has its stored edges dropped whole.
fn read_full_round_end(
    t: &Trees,
    items: &[GroupDelta],
    epoch: u64,
) -> Result<FullMirrorView, QueueError> {
    let stamp = epoch.to_be_bytes();
    let mut relisted: BTreeMap<&str, BTreeSet<&MemberRef>> = BTreeMap::new();
    for item in items.iter().filter(|i| i.removed.is_none()) {
        for m in item.members.iter().filter(|m| !m.removed) {
            let stored = t.members.get(member_key(&item.id, &m.member))?;
            if stored.is_some_and(|v| v.as_ref() != stamp) {
                relisted.entry(&item.id).or_default().insert(&m.member);
            }
        }
    }
    let mut full = FullMirrorView {
        groups: all_groups(t)?.into_iter().collect(),
        ..Default::default()
    };
    let unrecorded = items.iter().filter(|i| !full.groups.contains_key(&i.id));
    let mut to_read: BTreeSet<&str> = unrecorded.map(|i| i.id.as_str()).collect();
    for (id, rec) in &full.groups {
        if rec.status != GroupStatus::Live {
            continue;
        }
        if rec.full_epoch == epoch {
            let again = relisted.get(id.as_str()).map_or(0, BTreeSet::len) as u64;
            let listed = listed_in_round(t, id, epoch)? + again;
            if listed == member_count(t, id)?.stored {
                continue;
            }
        }
        to_read.insert(id);
    }
    let mut unlisted = BTreeMap::new();
    for id in to_read {
        let mut edges = Vec::new();
        for r in t.members.scan_prefix(prefix(id)) {
            let (k, v) = r?;
            if v.as_ref() != stamp {
                edges.push(member_ref(split_member_key(&k).1));
            }
        }
        if !edges.is_empty() {
            unlisted.insert(id.to_string(), edges);
        }
    }
    full.unlisted = unlisted;
    Ok(full)
}
