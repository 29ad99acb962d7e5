//! The view a groups page is folded over ([`MirrorView`]): the records, members and parents
//! the page touches, the member counts, and what the end of a round consults. Read-only.
//!
//! Imports: the queue's store, records, keys and folds, and the page shapes of
//! [`crate::graph::page`]; nothing above the queue.

use std::collections::{BTreeMap, BTreeSet};

use super::super::fold::{FullMirrorView, MirrorView, RoundEndView};
use super::super::keys::member_ref;
use super::super::records::*;
use super::super::store::{QueueError, Trees, dec};
use super::counts::read_member_counts;
use super::{ROUND_RESTORED, containing, members_of, read_group_into};
use crate::graph::page::{GroupDelta, NextStep};
use crate::model::Removed;

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
        view.round.end = Some(read_round_end(t, epoch, &mut view)?);
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
/// restored during an incremental round, or the whole mirror after a full enumeration.
fn read_round_end(
    t: &Trees,
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
        Some(e) => {
            let mut full = FullMirrorView {
                groups: all_groups(t)?.into_iter().collect(),
                ..Default::default()
            };
            for r in t.members.iter() {
                let (k, v) = r?;
                if v.as_ref() == e.to_be_bytes() {
                    continue;
                }
                let Some(at) = k.iter().position(|&b| b == 0) else {
                    continue;
                };
                let group = String::from_utf8_lossy(&k[..at]).into_owned();
                full.unlisted
                    .entry(group)
                    .or_default()
                    .push(member_ref(&k[at + 1..]));
            }
            end.full = Some(full);
        }
    }
    Ok(end)
}
