//! The changes the queue holds and the worker applies, and why a group's AD object should go.
//!
//! Imports nothing of the crate but [`super`].

use serde::{Deserialize, Serialize};

use super::cloud::MemberRef;

/// Why a group's AD object should go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteReason {
    /// `@removed: deleted`: permanently deleted in the cloud.
    HardDeleted,
    /// `@removed: changed`: soft-deleted, restorable.
    SoftDeleted,
    /// Still exists but no longer in scope.
    LeftScope,
    /// Owned by us in AD but unknown to a full enumeration.
    Orphaned,
}

impl DeleteReason {
    /// Label for output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteReason::HardDeleted => "hard_deleted",
            DeleteReason::SoftDeleted => "soft_deleted",
            DeleteReason::LeftScope => "left_scope",
            DeleteReason::Orphaned => "orphaned",
        }
    }
}

/// What a queued change asks the worker to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeKind {
    /// Properties and/or the listed members changed; converge them to the mirror.
    Upsert {
        /// Members whose membership changed (added or removed).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        members: Vec<MemberRef>,
    },
    /// Converge the whole group (all attributes, every member) to the mirror.
    Reconcile,
    /// Remove (or freeze) the AD group.
    Delete {
        /// Why.
        reason: DeleteReason,
    },
    /// After a full enumeration: find owned AD groups the cloud no longer has.
    Sweep,
}

impl ChangeKind {
    /// Label for output and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ChangeKind::Upsert { .. } => "upsert",
            ChangeKind::Reconcile => "reconcile",
            ChangeKind::Delete { .. } => "delete",
            ChangeKind::Sweep => "sweep",
        }
    }
}

/// The group id used by changes that concern no single group.
pub const ALL_GROUPS: &str = "*";

/// One queued change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The cloud group it concerns ([`ALL_GROUPS`] for a sweep).
    pub group_id: String,
    /// What to do.
    #[serde(flatten)]
    pub kind: ChangeKind,
    /// When the poller saw it in Graph: the start of replication lag.
    pub seen_ms: u64,
}

/// A snapshot of the queue for `queue status`, `/metrics` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStats {
    /// Pending changes.
    pub depth: u64,
    /// Age of the oldest pending change, seconds.
    pub oldest_age_secs: Option<f64>,
    /// Dead letters.
    pub dead_letters: u64,
    /// Deletes held by the delete threshold.
    pub held_deletes: u64,
    /// Groups frozen because another writer reverted what the service wrote (until
    /// `approve-writes`).
    pub frozen_groups: u64,
    /// Age of the groups cursor, seconds.
    pub cursor_age_secs: Option<f64>,
    /// Whether a full enumeration is in progress.
    pub full_round_in_progress: bool,
    /// Journal entries.
    pub journal_entries: u64,
    /// Groups in the mirror.
    pub mirrored_groups: u64,
}
