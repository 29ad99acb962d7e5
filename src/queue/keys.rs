//! The storage keys of the mirror's membership trees, and a buffer of writes to one tree that a
//! page transaction applies.
//!
//! `members` keys are (group id, 0, member kind tag, member id) → the epoch stamp (8 bytes,
//! big-endian); `member_of` keys are (member id, 0, group id) → the member kind tag. Ids never
//! contain a 0 byte.
//!
//! Imports: [`crate::model`] only.

use std::collections::BTreeMap;

use crate::model::{MemberKind, MemberRef};

/// The `members` key of `m` in `group`.
pub(super) fn member_key(group: &str, m: &MemberRef) -> Vec<u8> {
    let mut k = Vec::with_capacity(group.len() + m.id.len() + 2);
    k.extend_from_slice(group.as_bytes());
    k.push(0);
    k.push(m.kind.tag());
    k.extend_from_slice(m.id.as_bytes());
    k
}

/// The `member_of` key of `group` listing `member`.
pub(super) fn member_of_key(member: &str, group: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(group.len() + member.len() + 1);
    k.extend_from_slice(member.as_bytes());
    k.push(0);
    k.extend_from_slice(group.as_bytes());
    k
}

/// The key prefix of everything stored under `id` in `members` or `member_of`.
pub(super) fn prefix(id: &str) -> Vec<u8> {
    let mut p = id.as_bytes().to_vec();
    p.push(0);
    p
}

/// Splits a `members` key into its group's id and the rest (kind tag and member id), at its
/// first 0 byte; a key without one is all group.
pub(super) fn split_member_key(key: &[u8]) -> (&[u8], &[u8]) {
    match key.iter().position(|&b| b == 0) {
        Some(at) => (&key[..at], &key[at + 1..]),
        None => (key, &[]),
    }
}

/// The member a `members` key names, after its group's prefix.
pub(super) fn member_ref(rest: &[u8]) -> MemberRef {
    MemberRef {
        kind: MemberKind::from_tag(rest[0]),
        id: String::from_utf8_lossy(&rest[1..]).into_owned(),
    }
}

/// Pending writes to one tree (`None` = remove), applied inside the page transaction.
#[derive(Default)]
pub(super) struct Writes(BTreeMap<Vec<u8>, Option<Vec<u8>>>);

impl Writes {
    /// Writes `v` under `k`.
    pub(super) fn put(&mut self, k: impl Into<Vec<u8>>, v: Vec<u8>) {
        self.0.insert(k.into(), Some(v));
    }
    /// Removes `k`.
    pub(super) fn del(&mut self, k: impl Into<Vec<u8>>) {
        self.0.insert(k.into(), None);
    }
    /// Applies the writes inside a transaction; returns the change in the tree's entry count
    /// (+1 per new key, -1 per key really removed), for [`super::store::Counts`].
    pub(super) fn apply_counted(
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
    /// The writes in key order (`None` = remove).
    pub(super) fn entries(&self) -> impl Iterator<Item = (&Vec<u8>, &Option<Vec<u8>>)> {
        self.0.iter()
    }
    /// The writes as a batch, for a tree whose entry count nobody keeps.
    pub(super) fn batch(&self) -> sled::Batch {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_members_key_splits_into_its_group_and_member() {
        let m = MemberRef {
            kind: MemberKind::from_tag(1),
            id: "u1".into(),
        };
        let k = member_key("g1", &m);
        let (group, rest) = split_member_key(&k);
        assert_eq!(group, b"g1");
        assert_eq!(member_ref(rest), m);
        assert_eq!(split_member_key(b"g1"), (&b"g1"[..], &b""[..]));
        assert_eq!(split_member_key(b"\0\x01u1").0, b"");
    }
}
