//! The closing reconcile of a full enumeration supersedes the group's pending upserts: a
//! reconcile converges every attribute and member to what the mirror says when it is applied,
//! which includes everything those upserts would have done. Dropping them in the transaction
//! that queues the reconcile makes each group one apply per full round instead of two (an
//! upsert during the round, then the reconcile), across any number of worker windows.
//!
//! # Guarantees
//! - Only upserts and reconciles of a group the same page reconciles are dropped; a group with
//!   a pending delete or sweep keeps every change, in order.
//! - Safe against an apply in flight: the reconcile gets a new sequence number, behind it, and
//!   an ack of a dropped change finds nothing to move (the reconcile still runs).
//!
//! Imports: [`crate::model`] and the store's codec.

use std::collections::{BTreeMap, BTreeSet};

use super::store::{QueueError, dec, seq_of};
use crate::model::{Change, ChangeKind};

/// What a page's closing reconciles make redundant: the pending changes (by sequence number)
/// to drop, and the page's own changes to keep (in order). Pure.
///
/// A group qualifies when the page reconciles it and nothing but upserts and reconciles of it
/// is pending or on the page; then only the page's last reconcile of it stays.
pub fn superseded<'a>(
    pending: impl IntoIterator<Item = (u64, &'a Change)>,
    page_changes: &[Change],
) -> (Vec<u64>, Vec<Change>) {
    let convergent =
        |k: &ChangeKind| matches!(k, ChangeKind::Upsert { .. } | ChangeKind::Reconcile);
    // Reconciled groups, and the index of each one's last reconcile on the page.
    let mut last: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, c) in page_changes.iter().enumerate() {
        if c.kind == ChangeKind::Reconcile {
            last.insert(c.group_id.as_str(), i);
        }
    }
    let mut spoiled: BTreeSet<&str> = page_changes
        .iter()
        .filter(|c| !convergent(&c.kind))
        .map(|c| c.group_id.as_str())
        .collect();
    let mut drop = Vec::new();
    let mut dropped_of: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (seq, c) in pending {
        let Some((id, _)) = last.get_key_value(c.group_id.as_str()) else {
            continue;
        };
        if convergent(&c.kind) {
            dropped_of.entry(id).or_default().push(seq);
        } else {
            spoiled.insert(id);
        }
    }
    for (id, seqs) in dropped_of {
        if !spoiled.contains(id) {
            drop.extend(seqs);
        }
    }
    let keep = page_changes
        .iter()
        .enumerate()
        .filter(|(i, c)| match last.get(c.group_id.as_str()) {
            Some(at) if !spoiled.contains(c.group_id.as_str()) => i == at,
            _ => true,
        })
        .map(|(_, c)| c.clone())
        .collect();
    (drop, keep)
}

/// [`superseded`] over the stored `pending` tree (one pass, at the end of a full enumeration
/// only).
pub(super) fn superseded_in(
    pending: &sled::Tree,
    page_changes: &[Change],
) -> Result<(Vec<u64>, Vec<Change>), QueueError> {
    let mut all = Vec::new();
    for r in pending.iter() {
        let (k, v) = r?;
        let change: Change = dec(&k, &v)?;
        all.push((seq_of(&k), change));
    }
    Ok(superseded(all.iter().map(|(s, c)| (*s, c)), page_changes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeleteReason, MemberKind, MemberRef};

    fn change(id: &str, kind: ChangeKind) -> Change {
        Change {
            group_id: id.into(),
            kind,
            seen_ms: 0,
        }
    }

    fn upsert(id: &str) -> Change {
        change(
            id,
            ChangeKind::Upsert {
                members: vec![MemberRef {
                    kind: MemberKind::User,
                    id: "u".into(),
                }],
            },
        )
    }

    #[test]
    fn only_upserts_of_reconciled_groups_without_a_pending_delete_are_dropped() {
        let pending = [
            (1, upsert("a")),
            (2, upsert("b")),
            (3, upsert("a")),
            (4, upsert("c")),
            (
                5,
                change(
                    "c",
                    ChangeKind::Delete {
                        reason: DeleteReason::SoftDeleted,
                    },
                ),
            ),
            (6, change("c", ChangeKind::Reconcile)),
            (7, change("d", ChangeKind::Reconcile)),
        ];
        let page = [
            change("a", ChangeKind::Reconcile),
            change("c", ChangeKind::Reconcile),
            change("d", ChangeKind::Reconcile),
            change("e", ChangeKind::Reconcile),
            upsert("b"),
        ];
        let (mut got, kept) = superseded(pending.iter().map(|(s, c)| (*s, c)), &page);
        got.sort();
        // a: both upserts; b: not reconciled by the page; c: has a pending delete; d: an
        // older reconcile.
        assert_eq!(got, vec![1, 3, 7]);
        assert_eq!(kept, page.to_vec());
        let (none, kept) = superseded(pending.iter().map(|(s, c)| (*s, c)), &[upsert("a")]);
        assert!(none.is_empty());
        assert_eq!(kept, vec![upsert("a")]);
    }

    #[test]
    fn the_pages_own_upserts_of_a_reconciled_group_are_dropped_unless_it_is_deleted_too() {
        let delete = change(
            "b",
            ChangeKind::Delete {
                reason: DeleteReason::LeftScope,
            },
        );
        let page = [
            upsert("a"),
            upsert("b"),
            delete.clone(),
            upsert("c"),
            change("a", ChangeKind::Reconcile),
            change("b", ChangeKind::Reconcile),
        ];
        let (drop, kept) = superseded(std::iter::empty(), &page);
        assert!(drop.is_empty());
        assert_eq!(
            kept,
            vec![
                upsert("b"),
                delete,
                upsert("c"),
                change("a", ChangeKind::Reconcile),
                change("b", ChangeKind::Reconcile),
            ]
        );
    }
}
