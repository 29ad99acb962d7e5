//! Member counts of the mirror (the `member_counts` tree), read for the groups fold: what
//! `graph.max_members_per_group` is checked against.
//!
//! Imports: the queue's store, records, keys and folds, and the page shapes of
//! [`crate::graph::page`]; nothing above the queue.

use std::collections::BTreeSet;

use super::super::fold::{Edge, MirrorView};
use super::super::keys::{member_key, prefix};
use super::super::records::MemberCount;
use super::super::store::{QueueError, Trees};
use super::get;
use crate::graph::page::GroupDelta;

/// A group's stored member count: its `member_counts` entry, or (a store written before
/// counts were kept) its edges counted once.
pub(super) fn member_count(t: &Trees, group: &str) -> Result<MemberCount, QueueError> {
    if let Some(c) = get(&t.member_counts, group)? {
        return Ok(c);
    }
    let stored = t.members.scan_prefix(prefix(group)).keys().count() as u64;
    Ok(MemberCount {
        stored,
        refused: None,
    })
}

/// Reads the member counts the fold keeps (see [`MirrorView::member_counts`]) and which of
/// the page's listed edges are stored.
pub(super) fn read_member_counts(
    t: &Trees,
    items: &[GroupDelta],
    view: &mut MirrorView,
) -> Result<(), QueueError> {
    let unlisted = view.round.end.as_ref().and_then(|e| e.full.as_ref());
    let groups: BTreeSet<&str> = items
        .iter()
        .map(|i| i.id.as_str())
        .chain(
            unlisted
                .into_iter()
                .flat_map(|f| f.unlisted.keys().map(String::as_str)),
        )
        .collect();
    for g in groups {
        view.member_counts
            .insert(g.to_string(), member_count(t, g)?);
    }
    for item in items.iter().filter(|i| i.removed.is_none()) {
        for m in &item.members {
            if t.members.contains_key(member_key(&item.id, &m.member))? {
                view.stored_edges.insert(Edge {
                    group: item.id.clone(),
                    member: m.member.clone(),
                });
            }
        }
    }
    Ok(())
}
