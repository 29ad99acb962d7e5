//! The records kept in the store, serialized as JSON so an operator can read them.

use serde::{Deserialize, Serialize};

use crate::model::{Change, GroupProps};

/// Where a delta stream stands: the link to request next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The whole opaque URL Graph gave us (never rebuilt).
    pub link: String,
    /// `true` for a nextLink (a round in progress), `false` for a deltaLink.
    pub mid_round: bool,
    /// Set while a full enumeration (initial round or resync) is in progress: its epoch.
    pub full_epoch: Option<u64>,
    /// When this cursor was stored.
    pub stored_ms: u64,
}

/// Lifecycle of a group in the mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupStatus {
    /// Exists in the cloud.
    Live,
    /// Soft-deleted in the cloud (restorable); its AD group is handled by the soft-delete policy.
    SoftDeleted,
}

/// A cloud group as last seen in Graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// Desired properties.
    pub props: GroupProps,
    /// Live or soft-deleted.
    pub status: GroupStatus,
    /// The last full enumeration that listed it.
    pub full_epoch: u64,
    /// The configured scope (`[graph.scope]`) admitted it when the poller last committed it.
    /// Computed by the poller so the worker needs no scope configuration; records written
    /// before scopes existed read as `true` (no filter was configured then).
    /// (Stored under its former name `in_scope`.)
    #[serde(rename = "in_scope", default = "admitted_by_default")]
    pub admitted: bool,
}

fn admitted_by_default() -> bool {
    true
}

impl GroupRecord {
    /// Whether the service should have this group in AD: live, inside the contract's scope
    /// (cloud, security-enabled or Microsoft 365) and admitted by the configured scope.
    pub fn wanted(&self) -> bool {
        self.status == GroupStatus::Live && self.admitted && self.props.eligible()
    }
}

/// How many members the mirror holds for a group (the `member_counts` tree), and whether it
/// refused some because the group listed more than `graph.max_members_per_group`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberCount {
    /// Membership edges stored for the group.
    pub stored: u64,
    /// Set to the limit in force when a member was refused: the mirror's list is incomplete,
    /// so the group is not written to AD (its AD copy, if any, is left as it is). Cleared when
    /// a full enumeration (`resync`) lists the group again within the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<u64>,
}

/// How many of a group's edges the full round `epoch` has listed (the `round_listed` tree;
/// see `mirror::listed`): what lets the round's end skip the edges of a group it listed whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedInRound {
    /// The round (its epoch) the count belongs to.
    pub epoch: u64,
    /// Edges stamped with that epoch.
    pub edges: u64,
}

/// A change that failed permanently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The change.
    pub change: Change,
    /// The error, as text (no secrets: errors never carry them).
    pub error: String,
    /// Bounded error class, as in metrics.
    pub class: String,
    /// When it was dead-lettered.
    pub at_ms: u64,
}

/// A change AD has confirmed, kept for `replay`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The change.
    pub change: Change,
    /// When AD confirmed it.
    pub applied_ms: u64,
}

/// A pending batch split per group: groups in the order their first change appears, each with
/// its changes in sequence order. The worker applies each entry as one coalesced change, so a
/// group stays ordered with itself while different groups may run side by side.
pub fn group_batch(batch: Vec<(u64, Change)>) -> Vec<(String, Vec<(u64, Change)>)> {
    let mut out: Vec<(String, Vec<(u64, Change)>)> = Vec::new();
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (seq, c) in batch {
        match at.get(&c.group_id) {
            Some(&i) => out[i].1.push((seq, c)),
            None => {
                at.insert(c.group_id.clone(), out.len());
                out.push((c.group_id.clone(), vec![(seq, c)]));
            }
        }
    }
    out
}
