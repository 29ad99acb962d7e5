//! The sled-backed [`Store`]: opening, the page commit that moves a cursor, and the pending /
//! dead / journal lifecycle of changes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::records::*;
use crate::model::*;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Another process holds the state directory.
    #[error(
        "state directory {path} is in use by another entra-writeback process (or is not writable): {source}"
    )]
    Locked {
        /// The directory.
        path: String,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// The directory holds something that is not our database, or a damaged one.
    #[error("state directory {path} is corrupt or not an entra-writeback database: {detail}")]
    Corrupt {
        /// The directory.
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// A read or write failed (disk full, read-only file system, I/O error).
    #[error("state store I/O failed: {0}")]
    Io(#[source] sled::Error),
    /// The state directory is on a read-only file system or not writable by this user.
    #[error("state directory {path} is not writable: {detail}")]
    NotWritable {
        /// The directory.
        path: String,
        /// The OS error.
        detail: String,
    },
    /// A stored record could not be decoded.
    #[error("state store record {key} is unreadable: {detail}")]
    Record {
        /// Which record.
        key: String,
        /// Decoder message.
        detail: String,
    },
}

impl QueueError {
    /// I/O failures (a full disk, say) may heal; the rest need an operator.
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::Io(_))
    }
}

impl From<sled::Error> for QueueError {
    fn from(e: sled::Error) -> Self {
        QueueError::Io(e)
    }
}

impl From<TransactionError<QueueError>> for QueueError {
    fn from(e: TransactionError<QueueError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => QueueError::Io(e),
        }
    }
}

const FORMAT_KEY: &[u8] = b"format";
const FORMAT: &[u8] = b"entra-writeback/1";

/// The durable store. Cheap to clone: clones share one database.
///
/// After a storage failure (disk full, I/O error) sled refuses every later write until the
/// database is reopened; [`Store::recover`] does that in place, for every clone at once.
#[derive(Clone)]
pub struct Store {
    inner: Arc<RwLock<Option<Arc<Trees>>>>,
    path: Option<PathBuf>,
    depth: Arc<AtomicU64>,
    pub(super) counts: Arc<Counts>,
}

/// Entry counts of the trees that status, metrics and journal trimming report, kept in memory.
///
/// sled's `Tree::len()` is a full scan, so nothing that runs per poll, scrape, page render or
/// worker pass may call it. The counts are taken once when the database is opened (one pass per
/// tree; a crash loses nothing, since they are never persisted) and then adjusted by every write
/// that changes those trees, from what its transaction really inserted or removed.
#[derive(Debug, Default)]
pub(super) struct Counts {
    /// Entries of `dead`.
    pub(super) dead: AtomicU64,
    /// Entries of `held_deletes`.
    pub(super) held: AtomicU64,
    /// Entries of `journal`.
    pub(super) journal: AtomicU64,
    /// Entries of `groups` (the mirror).
    pub(super) groups: AtomicU64,
}

impl Counts {
    /// Recounts from the trees (at open and after a reopen in place).
    fn recount(&self, t: &Trees) {
        self.dead.store(t.dead.len() as u64, Ordering::Relaxed);
        self.held
            .store(t.held_deletes.len() as u64, Ordering::Relaxed);
        self.journal
            .store(t.journal.len() as u64, Ordering::Relaxed);
        self.groups.store(t.groups.len() as u64, Ordering::Relaxed);
    }

    /// Applies a committed change of `delta` entries to `count`.
    pub(super) fn adjust(count: &AtomicU64, delta: i64) {
        let _ = count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
            Some(c.saturating_add_signed(delta))
        });
    }
}

/// The open database and its trees.
pub(super) struct Trees {
    pub(super) db: sled::Db,
    pub(super) meta: sled::Tree,
    pub(super) pending: sled::Tree,
    pub(super) dead: sled::Tree,
    pub(super) journal: sled::Tree,
    pub(super) groups: sled::Tree,
    pub(super) members: sled::Tree,
    pub(super) member_of: sled::Tree,
    pub(super) users: sled::Tree,
    pub(super) round_deletes: sled::Tree,
    pub(super) held_deletes: sled::Tree,
    pub(super) materialized: sled::Tree,
}

pub(super) fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records always serialize")
}

pub(super) fn dec<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, QueueError> {
    serde_json::from_slice(bytes).map_err(|e| QueueError::Record {
        key: String::from_utf8_lossy(key).into_owned(),
        detail: e.to_string(),
    })
}

pub(super) fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub(super) fn seq_of(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[..8.min(key.len())]);
    u64::from_be_bytes(b)
}

/// The first `limit` records of a sequence-keyed tree, decoded, in order.
fn scan<T: DeserializeOwned>(tree: &sled::Tree, limit: usize) -> Result<Vec<(u64, T)>, QueueError> {
    tree.iter()
        .take(limit)
        .map(|r| {
            let (k, v) = r?;
            Ok((seq_of(&k), dec(&k, &v)?))
        })
        .collect()
}

pub(super) fn abort(e: QueueError) -> ConflictableTransactionError<QueueError> {
    ConflictableTransactionError::Abort(e)
}

impl Store {
    /// Opens (or creates) the database in `path`, refusing a directory in use or not ours.
    pub fn open(path: &Path) -> Result<Store, QueueError> {
        let shown = path.display().to_string();
        if path.exists() && !path.is_dir() {
            return Err(QueueError::Corrupt {
                path: shown,
                detail: "not a directory".into(),
            });
        }
        if path.is_dir() {
            let foreign = std::fs::read_dir(path)
                .map_err(|e| QueueError::Io(e.into()))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|n| {
                    !matches!(n.as_str(), "conf" | "db" | "blobs" | "snap.tmp")
                        && !n.starts_with("snap.")
                });
            if let Some(name) = foreign {
                return Err(QueueError::Corrupt {
                    path: shown,
                    detail: format!(
                        "unexpected file `{name}`; point [state] path at an empty or entra-writeback directory"
                    ),
                });
            }
        }
        let db = open_db(path)?;
        let trees = Trees::new(db, &shown)?;
        let depth = trees.pending.len() as u64;
        let counts = Counts::default();
        counts.recount(&trees);
        Ok(Store {
            inner: Arc::new(RwLock::new(Some(Arc::new(trees)))),
            path: Some(path.to_owned()),
            depth: Arc::new(AtomicU64::new(depth)),
            counts: Arc::new(counts),
        })
    }

    /// A throw-away store in memory (for `plan`, which must not touch the real state).
    pub fn open_temporary() -> Result<Store, QueueError> {
        let db = sled::Config::new().temporary(true).open()?;
        let trees = Trees::new(db, "(temporary)")?;
        Ok(Store {
            inner: Arc::new(RwLock::new(Some(Arc::new(trees)))),
            path: None,
            depth: Arc::default(),
            counts: Arc::default(),
        })
    }

    /// The open trees (an error while the database is being reopened).
    pub(super) fn t(&self) -> Result<Arc<Trees>, QueueError> {
        self.inner
            .read()
            .expect("store lock not poisoned")
            .clone()
            .ok_or_else(|| {
                QueueError::Io(sled::Error::Unsupported(
                    "the state store is being reopened".into(),
                ))
            })
    }

    /// Reopens the database after a storage failure and proves it writable (a flushed probe
    /// write). Everything flushed before the failure is kept; later unflushed writes are lost,
    /// which the queue's guarantees allow (pages are re-read, changes re-applied).
    pub fn recover(&self) -> Result<(), QueueError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let old = self.inner.write().expect("store lock not poisoned").take();
        if let Some(old) = old {
            // Wait for in-flight operations to let go, so sled closes the files and its lock.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while Arc::strong_count(&old) > 1 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            drop(old);
        }
        let reopened = open_db(path).and_then(|db| Trees::new(db, &path.display().to_string()));
        match reopened {
            Ok(trees) => {
                trees
                    .meta
                    .insert(b"probe", now_ms().to_be_bytes().to_vec())?;
                trees.db.flush()?;
                self.depth
                    .store(trees.pending.len() as u64, Ordering::Relaxed);
                self.counts.recount(&trees);
                *self.inner.write().expect("store lock not poisoned") = Some(Arc::new(trees));
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Writes everything to disk; called before a Graph cursor is allowed to move on.
    pub async fn flush(&self) -> Result<(), QueueError> {
        self.t()?.db.flush_async().await?;
        Ok(())
    }

    /// A fresh sequence number (monotonic across restarts).
    pub(super) fn next_seq(&self) -> Result<u64, QueueError> {
        Ok(self.t()?.db.generate_id()?)
    }

    /// The stored cursor of a delta stream.
    pub fn cursor(&self, r: Resource) -> Result<Option<Cursor>, QueueError> {
        let key = cursor_key(r);
        self.t()?.meta.get(&key)?.map(|v| dec(&key, &v)).transpose()
    }

    /// Forgets one stream's cursor (Graph asked for a resync).
    pub fn reset_cursor(&self, r: Resource) -> Result<(), QueueError> {
        self.t()?.meta.remove(cursor_key(r))?;
        self.t()?.db.flush()?;
        Ok(())
    }

    /// Forgets both cursors: the next round is a full enumeration that also reconciles AD.
    pub fn reset_cursors(&self) -> Result<(), QueueError> {
        self.t()?.meta.remove(cursor_key(Resource::Groups))?;
        self.t()?.meta.remove(cursor_key(Resource::Users))?;
        self.t()?.db.flush()?;
        Ok(())
    }

    /// Queues changes outside a Graph page (replay, parents of a new nested group).
    pub fn enqueue(&self, changes: &[Change]) -> Result<Vec<u64>, QueueError> {
        let mut batch = sled::Batch::default();
        let mut seqs = Vec::with_capacity(changes.len());
        for c in changes {
            let seq = self.next_seq()?;
            batch.insert(&seq_key(seq), enc(c));
            seqs.push(seq);
        }
        self.t()?.pending.apply_batch(batch)?;
        self.depth
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        Ok(seqs)
    }

    /// Whether the mirror is a complete picture of the cloud: a full enumeration has reached its
    /// deltaLink since the store was created, and no full enumeration is in progress now. Only
    /// then may owned AD groups missing from the mirror be judged as orphans.
    pub fn complete_picture(&self) -> Result<bool, QueueError> {
        let done = self.t()?.meta.contains_key(super::mirror::FULL_DONE)?;
        Ok(done && !self.full_round_in_progress()?)
    }

    /// Whether the groups stream is in (or about to start) a full enumeration, during which
    /// the mirror's member lists may be partial: no member may be removed from AD then.
    pub fn full_round_in_progress(&self) -> Result<bool, QueueError> {
        Ok(self
            .cursor(Resource::Groups)?
            .is_none_or(|c| c.full_epoch.is_some()))
    }

    /// Queues a full reconcile of every wanted group plus a sweep for orphans (the periodic,
    /// level-triggered drift correction); returns how many groups, or `None` when the mirror
    /// is not a complete picture yet (a full enumeration is pending or in progress: its end
    /// queues the same work).
    pub fn enqueue_reconcile_all(&self) -> Result<Option<usize>, QueueError> {
        if !self.complete_picture()? {
            return Ok(None);
        }
        let now = now_ms();
        let mut changes: Vec<Change> = self
            .all_groups()?
            .into_iter()
            .filter(|(_, r)| r.wanted())
            .map(|(id, _)| Change {
                group_id: id,
                kind: ChangeKind::Reconcile,
                seen_ms: now,
            })
            .collect();
        let n = changes.len();
        changes.push(Change {
            group_id: ALL_GROUPS.into(),
            kind: ChangeKind::Sweep,
            seen_ms: now,
        });
        self.enqueue(&changes)?;
        Ok(Some(n))
    }

    pub(super) fn note_enqueued(&self, n: usize) {
        self.depth.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The oldest pending changes, in order.
    pub fn pending_batch(&self, limit: usize) -> Result<Vec<(u64, Change)>, QueueError> {
        scan(&self.t()?.pending, limit)
    }

    /// The oldest pending changes of groups not in `skip` (parked groups wait; the others
    /// proceed), in order.
    pub fn pending_batch_excluding(
        &self,
        limit: usize,
        skip: &std::collections::HashSet<String>,
    ) -> Result<Vec<(u64, Change)>, QueueError> {
        if skip.is_empty() {
            return self.pending_batch(limit);
        }
        let mut out = Vec::new();
        for r in self.t()?.pending.iter() {
            let (k, v) = r?;
            let change: Change = dec(&k, &v)?;
            if skip.contains(&change.group_id) {
                continue;
            }
            out.push((seq_of(&k), change));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Pending changes (for `queue list`).
    pub fn list_pending(&self, limit: usize) -> Result<Vec<(u64, Change)>, QueueError> {
        self.pending_batch(limit)
    }

    /// Dead letters (for `queue list --dead`).
    pub fn list_dead(&self, limit: usize) -> Result<Vec<(u64, DeadLetter)>, QueueError> {
        scan(&self.t()?.dead, limit)
    }

    /// One change by sequence number, wherever it is.
    pub fn show(&self, seq: u64) -> Result<Option<serde_json::Value>, QueueError> {
        let k = seq_key(seq);
        let t = self.t()?;
        for (place, tree) in [
            ("pending", &t.pending),
            ("dead", &t.dead),
            ("journal", &t.journal),
        ] {
            if let Some(v) = tree.get(k)? {
                let value: serde_json::Value = dec(&k, &v)?;
                return Ok(Some(
                    serde_json::json!({"seq": seq, "state": place, "record": value}),
                ));
            }
        }
        Ok(None)
    }

    /// AD has the changes: drop them from `pending` and journal them, in one transaction.
    pub fn ack(&self, seqs: &[u64]) -> Result<(), QueueError> {
        let now = now_ms();
        let t = self.t()?;
        self.move_pending(seqs, &t.journal, &self.counts.journal, |change| {
            enc(&JournalEntry {
                change,
                applied_ms: now,
            })
        })
    }

    /// The changes failed permanently: move them to `dead` with the reason.
    pub fn dead_letter(&self, seqs: &[u64], error: &str, class: &str) -> Result<(), QueueError> {
        let now = now_ms();
        let t = self.t()?;
        self.move_pending(seqs, &t.dead, &self.counts.dead, |change| {
            enc(&DeadLetter {
                change,
                error: error.to_string(),
                class: class.to_string(),
                at_ms: now,
            })
        })?;
        t.db.flush()?;
        Ok(())
    }

    /// Moves changes out of `pending` into `to` (as `record(change)`), in one transaction, and
    /// keeps the depth and `to_count` exact (only entries really moved count).
    fn move_pending(
        &self,
        seqs: &[u64],
        to: &sled::Tree,
        to_count: &AtomicU64,
        record: impl Fn(Change) -> Vec<u8>,
    ) -> Result<(), QueueError> {
        let t = self.t()?;
        let (removed, added) = (&t.pending, to).transaction(|(pending, to)| {
            let (mut removed, mut added) = (0i64, 0i64);
            for &seq in seqs {
                if let Some(v) = pending.remove(&seq_key(seq))? {
                    let change: Change = dec(&seq_key(seq), &v).map_err(abort)?;
                    removed += 1;
                    added += i64::from(to.insert(&seq_key(seq), record(change))?.is_none());
                }
            }
            Ok((removed, added))
        })?;
        Counts::adjust(&self.depth, -removed);
        Counts::adjust(to_count, added);
        Ok(())
    }

    /// Counts and ages for status output and metrics.
    pub fn stats(&self) -> Result<QueueStats, QueueError> {
        let now = now_ms();
        let oldest = match self.t()?.pending.first()? {
            Some((k, v)) => Some(dec::<Change>(&k, &v)?.seen_ms),
            None => None,
        };
        let cursor = self.cursor(Resource::Groups)?;
        Ok(QueueStats {
            depth: self.depth.load(Ordering::Relaxed),
            oldest_age_secs: oldest.map(|t| now.saturating_sub(t) as f64 / 1000.0),
            dead_letters: self.counts.dead.load(Ordering::Relaxed),
            held_deletes: self.counts.held.load(Ordering::Relaxed),
            cursor_age_secs: cursor
                .as_ref()
                .map(|c| now.saturating_sub(c.stored_ms) as f64 / 1000.0),
            full_round_in_progress: cursor.as_ref().is_none_or(|c| c.full_epoch.is_some()),
            journal_entries: self.counts.journal.load(Ordering::Relaxed),
            mirrored_groups: self.counts.groups.load(Ordering::Relaxed),
        })
    }

    /// Releases held deletes (all, or the given ids) into the queue; returns the released ids.
    pub fn approve_deletes(&self, ids: Option<&[String]>) -> Result<Vec<String>, QueueError> {
        let now = now_ms();
        let chosen: Vec<(String, DeleteReason)> = self
            .held_deletes()?
            .into_iter()
            .filter(|(id, _)| ids.is_none_or(|want| want.contains(id)))
            .collect();
        let changes: Vec<Change> = chosen
            .iter()
            .map(|(id, reason)| Change {
                group_id: id.clone(),
                kind: ChangeKind::Delete { reason: *reason },
                seen_ms: now,
            })
            .collect();
        let seqs = changes
            .iter()
            .map(|_| self.next_seq())
            .collect::<Result<Vec<_>, _>>()?;
        let t = self.t()?;
        // One transaction: a crash leaves each delete either held or queued, never both or none.
        let released = (&t.pending, &t.held_deletes).transaction(|(pending, held)| {
            let mut released = 0i64;
            for ((seq, c), (id, _)) in seqs.iter().zip(&changes).zip(&chosen) {
                tx_enqueue(pending, *seq, c)?;
                released += i64::from(held.remove(id.as_bytes())?.is_some());
            }
            Ok(released)
        })?;
        Counts::adjust(&self.counts.held, -released);
        self.note_enqueued(changes.len());
        t.db.flush()?;
        Ok(chosen.into_iter().map(|(id, _)| id).collect())
    }
}

pub(super) fn cursor_key(r: Resource) -> Vec<u8> {
    format!("cursor/{}", r.as_str()).into_bytes()
}

fn open_db(path: &Path) -> Result<sled::Db, QueueError> {
    let shown = path.display().to_string();
    sled::Config::new()
        .path(path)
        .flush_every_ms(Some(200))
        .open()
        .map_err(|e| match e {
            sled::Error::Io(ref io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("lock") =>
            {
                QueueError::Locked {
                    path: shown.clone(),
                    source: e,
                }
            }
            sled::Error::Io(ref io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                QueueError::NotWritable {
                    path: shown.clone(),
                    detail: io.to_string(),
                }
            }
            sled::Error::Io(_) => QueueError::Io(e),
            other => QueueError::Corrupt {
                path: shown.clone(),
                detail: other.to_string(),
            },
        })
}

impl Trees {
    /// Opens the trees and checks (or stamps) the format marker.
    fn new(db: sled::Db, shown: &str) -> Result<Trees, QueueError> {
        let tree = |name: &str| db.open_tree(name);
        let trees = Trees {
            meta: tree("meta")?,
            pending: tree("pending")?,
            dead: tree("dead")?,
            journal: tree("journal")?,
            groups: tree("groups")?,
            members: tree("members")?,
            member_of: tree("member_of")?,
            users: tree("users")?,
            round_deletes: tree("round_deletes")?,
            held_deletes: tree("held_deletes")?,
            materialized: tree("materialized")?,
            db,
        };
        match trees.meta.get(FORMAT_KEY)? {
            Some(v) if v.as_ref() == FORMAT => {}
            Some(v) => {
                return Err(QueueError::Corrupt {
                    path: shown.to_string(),
                    detail: format!("unknown format `{}`", String::from_utf8_lossy(&v)),
                });
            }
            None if trees.pending.is_empty() && trees.groups.is_empty() => {
                trees.meta.insert(FORMAT_KEY, FORMAT)?;
                trees.db.flush()?;
            }
            None => {
                return Err(QueueError::Corrupt {
                    path: shown.to_string(),
                    detail: "format marker missing".into(),
                });
            }
        }
        Ok(trees)
    }
}

/// Inserts a change into `pending` inside a transaction.
pub(super) fn tx_enqueue(
    pending: &TransactionalTree,
    seq: u64,
    change: &Change,
) -> Result<(), ConflictableTransactionError<QueueError>> {
    pending.insert(&seq_key(seq), enc(change))?;
    Ok(())
}
