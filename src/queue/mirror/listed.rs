//! Edges listed in the full round in progress, counted per group (the `round_listed` tree), so
//! that the round's end reads the edges of only those groups that may hold an unlisted one,
//! rather than walking every edge of the mirror.
//!
//! A `members` entry holds the epoch of the full round that last listed it. The count of a
//! group is kept in the page transaction that writes its edges, from what each write really
//! replaced: +1 for an edge newly stamped with the round's epoch, −1 for one that loses that
//! stamp. So a page folded twice, or parts written again after a crash, count nothing twice.
//! An entry left from another round reads as 0. The round's end trusts the count only when it
//! equals the group's stored member count exactly; any other value means "read the group's
//! edges", so a wrong count can cost a read, never a member left in place.
//!
//! Imports: the queue's store, keys and records; nothing above the queue.

use std::collections::BTreeMap;

use sled::IVec;
use sled::transaction::{TransactionalTree, UnabortableTransactionError};

use super::super::keys::{Writes, split_member_key};
use super::super::records::ListedInRound;
use super::super::store::{QueueError, Trees, dec, enc};

/// Applies a page's `members` writes inside its transaction. In a full round (`epoch`), also
/// keeps each touched group's count of edges stamped with the epoch; `removed` are the groups
/// whose records the page removes (their counts go with them).
pub(super) fn apply_member_writes(
    writes: &Writes,
    members: &TransactionalTree,
    listed: &TransactionalTree,
    epoch: Option<u64>,
    removed: &[&[u8]],
) -> Result<(), UnabortableTransactionError> {
    let Some(e) = epoch else {
        members.apply_batch(&writes.batch())?;
        return Ok(());
    };
    let stamp = e.to_be_bytes();
    let mut deltas: BTreeMap<&[u8], i64> = BTreeMap::new();
    for (k, v) in writes.entries() {
        let old = match v {
            Some(v) => members.insert(k.as_slice(), v.as_slice())?,
            None => members.remove(k.as_slice())?,
        };
        let was = old.as_deref() == Some(stamp.as_slice());
        let is = v.as_deref() == Some(stamp.as_slice());
        if was != is {
            *deltas.entry(split_member_key(k).0).or_default() += if is { 1 } else { -1 };
        }
    }
    for (group, delta) in deltas {
        let count = read_listed(listed, group, e)?;
        let edges = count.saturating_add_signed(delta);
        listed.insert(group, enc(&ListedInRound { epoch: e, edges }))?;
    }
    for group in removed {
        listed.remove(*group)?;
    }
    Ok(())
}

/// A group's count inside the transaction (see [`count_of`]).
fn read_listed(
    listed: &TransactionalTree,
    group: &[u8],
    epoch: u64,
) -> Result<u64, UnabortableTransactionError> {
    Ok(count_of(group, listed.get(group)?, epoch))
}

/// How many of `group`'s stored edges the round `epoch` has listed so far, by its count
/// (see [`count_of`]).
pub(super) fn listed_in_round(t: &Trees, group: &str, epoch: u64) -> Result<u64, QueueError> {
    Ok(count_of(
        group.as_bytes(),
        t.round_listed.get(group)?,
        epoch,
    ))
}

/// A stored count as the round `epoch` reads it: 0 when absent, from another round or
/// unreadable (an unreadable count only costs the round's end a read of the group's edges).
fn count_of(group: &[u8], stored: Option<IVec>, epoch: u64) -> u64 {
    stored
        .and_then(|v| dec::<ListedInRound>(group, &v).ok())
        .filter(|c| c.epoch == epoch)
        .map_or(0, |c| c.edges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_reads_as_zero_unless_it_is_this_round_s() {
        let c = |epoch, edges| Some(IVec::from(enc(&ListedInRound { epoch, edges })));
        assert_eq!(count_of(b"g", c(7, 3), 7), 3);
        assert_eq!(count_of(b"g", c(6, 3), 7), 0, "another round's count");
        assert_eq!(count_of(b"g", None, 7), 0);
        assert_eq!(count_of(b"g", Some(IVec::from(&b"junk"[..])), 7), 0);
    }
}
