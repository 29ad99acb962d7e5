//! Two writers on one group: what the service itself last wrote to each group (so a revert by
//! another tool can be told from a cloud change), and the groups frozen because another tool
//! reverted it. Both are durable: a frozen group stays frozen across restarts until
//! `approve-writes` releases it.
//!
//! # Layout (sled trees)
//! `our_writes` (group id → [`OurWrites`]) · `frozen` (group id → [`Frozen`]).
//!
//! # Guarantees
//! - Releasing a frozen group forgets what the service wrote to it and queues a reconcile of
//!   it, in one transaction: it is either still frozen or released and queued.
//! - A record holds at most [`MEMBERS_KEPT`] members, so a bulk write of a large group
//!   costs a bounded record.
//!
//! Imports: [`crate::model`] only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::QueueError;
use super::store::{Store, dec, enc, tx_enqueue};
use crate::model::{Change, ChangeKind, now_ms};

/// Members of one write remembered per group (a sample of a bulk write is enough to see a
/// revert: another writer reverting a group reverts it all).
pub const MEMBERS_KEPT: usize = 256;

/// One attribute value the service wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrWrite {
    /// The value AD had before.
    pub from: Option<String>,
    /// The value written.
    pub to: Option<String>,
    /// When (Unix ms).
    pub at_ms: u64,
    /// How many times in a row this write repeated one made within the detection window
    /// (it had been reverted).
    #[serde(default)]
    pub reverts: u32,
}

/// One member the service added or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberWrite {
    /// Added (`true`) or removed.
    pub added: bool,
    /// When (Unix ms).
    pub at_ms: u64,
    /// As [`AttrWrite::reverts`].
    #[serde(default)]
    pub reverts: u32,
}

/// What the service wrote to one group lately: the last write of each attribute and member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OurWrites {
    /// Attribute name → its last write.
    pub attrs: BTreeMap<String, AttrWrite>,
    /// Member SID → its last write.
    pub members: BTreeMap<String, MemberWrite>,
}

impl OurWrites {
    /// Drops what was written before `cutoff_ms` (outside the detection window).
    pub fn forget_before(&mut self, cutoff_ms: u64) {
        self.attrs.retain(|_, w| w.at_ms >= cutoff_ms);
        self.members.retain(|_, w| w.at_ms >= cutoff_ms);
    }

    /// Notes members written now (`added` or removed), up to [`MEMBERS_KEPT`] in all;
    /// `reverts` gives each one's count (see [`AttrWrite::reverts`]).
    pub fn note_members(
        &mut self,
        sids: &[String],
        added: bool,
        at_ms: u64,
        reverts: impl Fn(&str) -> u32,
    ) {
        for sid in sids {
            if self.members.len() >= MEMBERS_KEPT && !self.members.contains_key(sid) {
                break;
            }
            let reverts = reverts(sid);
            self.members.insert(
                sid.clone(),
                MemberWrite {
                    added,
                    at_ms,
                    reverts,
                },
            );
        }
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty() && self.members.is_empty()
    }
}

/// Why a group is frozen: another tool reverted what the service wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frozen {
    /// When it was detected (Unix ms).
    pub since_ms: u64,
    /// `attribute` or `member`.
    pub kind: String,
    /// What was reverted (attribute name and values, or member SID).
    pub detail: String,
    /// The group's DN then.
    pub dn: String,
}

impl Store {
    fn tree(&self, name: &str) -> Result<sled::Tree, QueueError> {
        Ok(self.t()?.db.open_tree(name)?)
    }

    /// What the service lately wrote to `id` (empty if nothing).
    pub fn our_writes(&self, id: &str) -> Result<OurWrites, QueueError> {
        match self.tree("our_writes")?.get(id.as_bytes())? {
            Some(v) => dec(id.as_bytes(), &v),
            None => Ok(OurWrites::default()),
        }
    }

    /// Replaces the record of what the service wrote to `id` (an empty one removes it).
    pub fn set_our_writes(&self, id: &str, writes: &OurWrites) -> Result<(), QueueError> {
        let tree = self.tree("our_writes")?;
        if writes.is_empty() {
            tree.remove(id.as_bytes())?;
        } else {
            tree.insert(id.as_bytes(), enc(writes))?;
        }
        Ok(())
    }

    /// Freezes `id`: the service stops writing it until [`Store::approve_writes`]. Flushed.
    pub fn freeze(&self, id: &str, why: &Frozen) -> Result<(), QueueError> {
        self.tree("frozen")?.insert(id.as_bytes(), enc(why))?;
        self.t()?.db.flush()?;
        Ok(())
    }

    /// Why `id` is frozen, if it is.
    pub fn frozen(&self, id: &str) -> Result<Option<Frozen>, QueueError> {
        match self.tree("frozen")?.get(id.as_bytes())? {
            Some(v) => Ok(Some(dec(id.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// Every frozen group, by id.
    pub fn frozen_groups(&self) -> Result<Vec<(String, Frozen)>, QueueError> {
        self.tree("frozen")?
            .iter()
            .map(|r| {
                let (k, v) = r?;
                Ok((String::from_utf8_lossy(&k).into_owned(), dec(&k, &v)?))
            })
            .collect()
    }

    /// How many groups are frozen.
    pub fn frozen_count(&self) -> Result<u64, QueueError> {
        Ok(self.tree("frozen")?.len() as u64)
    }

    /// Releases frozen groups (all, or those in `ids`): each is unfrozen, what the service
    /// wrote to it forgotten, and a reconcile of it queued, in one transaction. Returns the
    /// released ids.
    pub fn approve_writes(&self, ids: Option<&[String]>) -> Result<Vec<String>, QueueError> {
        let chosen: Vec<String> = self
            .frozen_groups()?
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| ids.is_none_or(|want| want.contains(id)))
            .collect();
        let now = now_ms();
        let seqs = chosen
            .iter()
            .map(|_| self.next_seq())
            .collect::<Result<Vec<_>, _>>()?;
        let t = self.t()?;
        let (frozen, writes) = (self.tree("frozen")?, self.tree("our_writes")?);
        (&t.pending, &frozen, &writes).transaction(|(pending, frozen, writes)| {
            for (seq, id) in seqs.iter().zip(&chosen) {
                let change = Change {
                    group_id: id.clone(),
                    kind: ChangeKind::Reconcile,
                    seen_ms: now,
                };
                tx_enqueue(pending, *seq, &change)?;
                frozen.remove(id.as_bytes())?;
                writes.remove(id.as_bytes())?;
            }
            Ok::<_, ConflictableTransactionError<QueueError>>(())
        })?;
        self.note_enqueued(chosen.len());
        t.db.flush()?;
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frozen(detail: &str) -> Frozen {
        Frozen {
            since_ms: 1,
            kind: "member".into(),
            detail: detail.into(),
            dn: "CN=G,DC=t".into(),
        }
    }

    #[test]
    fn frozen_groups_survive_a_reopen_and_release_queues_a_reconcile() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.freeze("g1", &frozen("S-1")).unwrap();
            store.freeze("g2", &frozen("S-2")).unwrap();
            let mut w = OurWrites::default();
            w.note_members(&["S-1".into()], true, 5, |_| 0);
            store.set_our_writes("g1", &w).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.frozen_count().unwrap(), 2);
        assert_eq!(store.frozen("g1").unwrap(), Some(frozen("S-1")));
        let depth = store.stats().unwrap().depth;
        assert_eq!(store.approve_writes(Some(&["g1".into()])).unwrap(), ["g1"]);
        assert_eq!(store.frozen("g1").unwrap(), None);
        assert!(store.our_writes("g1").unwrap().is_empty());
        assert_eq!(store.frozen_count().unwrap(), 1);
        assert_eq!(store.stats().unwrap().depth, depth + 1);
        assert_eq!(store.approve_writes(None).unwrap(), ["g2"]);
        assert_eq!(store.frozen_count().unwrap(), 0);
    }

    #[test]
    fn records_are_bounded_and_forget_old_writes() {
        let mut w = OurWrites::default();
        let sids: Vec<String> = (0..1000).map(|i| format!("S-{i}")).collect();
        w.note_members(&sids, true, 10, |_| 0);
        assert_eq!(w.members.len(), MEMBERS_KEPT);
        w.attrs.insert(
            "displayName".into(),
            AttrWrite {
                from: None,
                to: Some("x".into()),
                at_ms: 20,
                reverts: 0,
            },
        );
        w.forget_before(15);
        assert!(w.members.is_empty());
        assert_eq!(w.attrs.len(), 1);
        w.forget_before(21);
        assert!(w.is_empty());
    }
}
