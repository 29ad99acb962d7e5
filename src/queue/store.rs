//! The sled-backed [`Store`]: opening (and refusing a directory that is in use or not ours),
//! the format marker, and reopening in place after a storage failure.
//!
//! What the store does with changes lives in the submodules: `codec` (key and record encoding),
//! `counts` (in-memory entry counts and [`Store::stats`]), `cursors` (the delta cursors) and
//! `pending` (the pending / dead / journal lifecycle of changes). The page commit that moves a
//! cursor is in `mirror`. The helpers the rest of `queue` uses are re-exported here, so they
//! are all imported from `super::store`.

mod codec;
mod counts;
mod cursors;
mod pending;
mod tail;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use sled::transaction::TransactionError;

use crate::model::*;

pub(super) use codec::{abort, cursor_key, dec, enc, seq_key, seq_of};
#[cfg(test)]
pub(super) use counts::AT_CLOSE;
pub(super) use counts::Counts;
use counts::SaveAtClose;
pub(super) use pending::tx_enqueue;

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

/// `meta` key: the sequence number of the newest sweep queued, by a full enumeration's end or
/// a periodic reconciliation (8 bytes, big-endian). While anything queued at or before it is
/// pending, the last full convergence is still being applied ([`Store::last_sweep`]).
pub(super) const LAST_SWEEP: &[u8] = b"sweep/last";
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
    /// Bytes of sled's page cache (`[state] cache_capacity`), kept for a reopen in place.
    cache_capacity: u64,
    pub(super) depth: Arc<AtomicU64>,
    pub(super) counts: Arc<Counts>,
    /// Saves the counts when the last clone goes (`None` for a temporary store).
    _save_at_close: Option<Arc<SaveAtClose>>,
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
    /// Per group: [`super::records::MemberCount`] (how many members the mirror holds).
    pub(super) member_counts: sled::Tree,
    /// Per group: [`super::records::ListedInRound`] (edges the full round in progress listed).
    pub(super) round_listed: sled::Tree,
}

impl Store {
    /// Opens (or creates) the database in `path` with the default page cache
    /// ([`crate::config::DEFAULT_CACHE_CAPACITY`]); see [`Store::open_with`].
    pub fn open(path: &Path) -> Result<Store, QueueError> {
        Store::open_with(path, crate::config::DEFAULT_CACHE_CAPACITY)
    }

    /// Opens (or creates) the database in `path`, refusing a directory in use or not ours, with
    /// a page cache of `cache_capacity` bytes (`[state] cache_capacity`).
    pub fn open_with(path: &Path, cache_capacity: u64) -> Result<Store, QueueError> {
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
        let db = open_db(path, cache_capacity)?;
        let trees = Trees::new(db, &shown)?;
        let (depth, counts) = (Arc::new(AtomicU64::new(0)), Arc::new(Counts::default()));
        counts.at_open(&trees, &depth)?;
        let inner = Arc::new(RwLock::new(Some(Arc::new(trees))));
        let save_at_close = SaveAtClose {
            inner: inner.clone(),
            depth: depth.clone(),
            counts: counts.clone(),
        };
        Ok(Store {
            inner,
            path: Some(path.to_owned()),
            cache_capacity,
            depth,
            counts,
            _save_at_close: Some(Arc::new(save_at_close)),
        })
    }

    /// A throw-away store in memory (for `plan`, which must not touch the real state).
    pub fn open_temporary() -> Result<Store, QueueError> {
        let db = sled::Config::new().temporary(true).open()?;
        let trees = Trees::new(db, "(temporary)")?;
        Ok(Store {
            inner: Arc::new(RwLock::new(Some(Arc::new(trees)))),
            path: None,
            cache_capacity: crate::config::DEFAULT_CACHE_CAPACITY,
            depth: Arc::default(),
            counts: Arc::default(),
            _save_at_close: None,
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
        let reopened = reopen_db(path, self.cache_capacity)
            .and_then(|db| Trees::new(db, &path.display().to_string()));
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

    /// Adds `n` changes written by a transaction elsewhere to the pending depth.
    pub(super) fn note_enqueued(&self, n: usize) {
        self.depth.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// How often sled's background thread writes buffered data and cleans log segments. Every
/// change the poller records is flushed explicitly before its cursor moves, and dead letters,
/// approvals and cursors are flushed where they are written; what waits for this thread is
/// only acks (a lost ack re-applies a change, which converges to the same result) and segment
/// cleaning. Each wake-up also fsyncs and rewrites pages of old segments, so a short interval
/// costs idle CPU (see BENCHMARKS.md, "Restart and idle").
const BACKGROUND_FLUSH_MS: u64 = 1000;

/// Opens the database this process just closed. sled lets go of its file lock only once its
/// background flusher has woken and stopped (up to [`BACKGROUND_FLUSH_MS`] later), so a lock
/// still held is waited for, up to 10 s; any other failure is returned at once.
fn reopen_db(path: &Path, cache_capacity: u64) -> Result<sled::Db, QueueError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match open_db(path, cache_capacity) {
            Err(QueueError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn open_db(path: &Path, cache_capacity: u64) -> Result<sled::Db, QueueError> {
    let shown = path.display().to_string();
    sled::Config::new()
        .path(path)
        .cache_capacity(cache_capacity)
        .flush_every_ms(Some(BACKGROUND_FLUSH_MS))
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
            member_counts: tree("member_counts")?,
            round_listed: tree("round_listed")?,
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
