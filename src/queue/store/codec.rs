//! How keys and records are laid out in sled: records are JSON, sequence numbers big-endian
//! (so sled's byte order is their order), cursors under `cursor/<resource>`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::ConflictableTransactionError;

use super::QueueError;
use crate::model::*;

/// A record as stored (JSON).
pub(in crate::queue) fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records always serialize")
}

/// A stored record decoded; `key` names it in the error.
pub(in crate::queue) fn dec<T: DeserializeOwned>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, QueueError> {
    serde_json::from_slice(bytes).map_err(|e| QueueError::Record {
        key: String::from_utf8_lossy(key).into_owned(),
        detail: e.to_string(),
    })
}

/// The key of a sequence number: big-endian, so keys sort in sequence order.
pub(in crate::queue) fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The sequence number of a key written by [`seq_key`].
pub(in crate::queue) fn seq_of(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[..8.min(key.len())]);
    u64::from_be_bytes(b)
}

/// The first `limit` records of a sequence-keyed tree, decoded, in order.
pub(super) fn scan<T: DeserializeOwned>(
    tree: &sled::Tree,
    limit: usize,
) -> Result<Vec<(u64, T)>, QueueError> {
    tree.iter()
        .take(limit)
        .map(|r| {
            let (k, v) = r?;
            Ok((seq_of(&k), dec(&k, &v)?))
        })
        .collect()
}

/// Aborts a transaction with `e`.
pub(in crate::queue) fn abort(e: QueueError) -> ConflictableTransactionError<QueueError> {
    ConflictableTransactionError::Abort(e)
}

/// The `meta` key of a delta stream's cursor.
pub(in crate::queue) fn cursor_key(r: Resource) -> Vec<u8> {
    format!("cursor/{}", r.as_str()).into_bytes()
}
