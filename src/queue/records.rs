//! The records kept in the store, serialized as JSON so an operator can read them.

use serde::{Deserialize, Serialize};

use crate::graph::model::{GroupPatch, MemberRef, UserPatch};

/// Milliseconds since the Unix epoch, the store's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Which delta stream a cursor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// `groups/delta`
    Groups,
    /// `users/delta`
    Users,
}

impl Resource {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Groups => "groups",
            Resource::Users => "users",
        }
    }
}

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

/// The tracked properties of a cloud group: the desired state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupProps {
    /// `displayName`
    pub display_name: Option<String>,
    /// `description`
    pub description: Option<String>,
    /// `groupTypes`
    pub group_types: Vec<String>,
    /// `securityEnabled`
    pub security_enabled: Option<bool>,
    /// `mailEnabled`
    pub mail_enabled: Option<bool>,
    /// `mailNickname`
    pub mail_nickname: Option<String>,
    /// `onPremisesSyncEnabled`
    pub on_premises_sync_enabled: Option<bool>,
    /// `onPremisesSecurityIdentifier`: set on groups that came from AD (their original's SID).
    #[serde(default)]
    pub on_premises_security_identifier: Option<String>,
}

impl GroupProps {
    /// Folds a delta item's properties in (absent = unchanged, null = cleared).
    pub fn apply(&mut self, p: &GroupPatch) {
        p.display_name.apply_to(&mut self.display_name);
        p.description.apply_to(&mut self.description);
        let mut types = Some(std::mem::take(&mut self.group_types));
        p.group_types.apply_to(&mut types);
        self.group_types = types.unwrap_or_default();
        p.security_enabled.apply_to(&mut self.security_enabled);
        p.mail_enabled.apply_to(&mut self.mail_enabled);
        p.mail_nickname.apply_to(&mut self.mail_nickname);
        p.on_premises_sync_enabled
            .apply_to(&mut self.on_premises_sync_enabled);
        p.on_premises_security_identifier
            .apply_to(&mut self.on_premises_security_identifier);
    }

    /// What lets a group synced from AD be referenced as a member: whether it is synced, and
    /// its on-premises SID.
    pub fn ad_identity(&self) -> (Option<bool>, Option<String>) {
        (
            self.on_premises_sync_enabled,
            self.on_premises_security_identifier.clone(),
        )
    }

    /// A Microsoft 365 group.
    pub fn is_unified(&self) -> bool {
        self.group_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case("Unified"))
    }

    /// The contract's scope: cloud groups (not synced from AD) that are security-enabled or M365.
    pub fn in_scope(&self) -> bool {
        self.on_premises_sync_enabled != Some(true)
            && (self.security_enabled == Some(true) || self.is_unified())
    }
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
    #[serde(default = "admitted")]
    pub in_scope: bool,
}

fn admitted() -> bool {
    true
}

impl GroupRecord {
    /// Whether the service should have this group in AD: live, inside the contract's scope
    /// (cloud, security-enabled or Microsoft 365) and admitted by the configured scope.
    pub fn wanted(&self) -> bool {
        self.status == GroupStatus::Live && self.in_scope && self.props.in_scope()
    }
}

/// The on-premises identity of a cloud user: how a member is found in AD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// AD SID.
    pub sid: Option<String>,
    /// sAMAccountName on-premises.
    pub sam_account_name: Option<String>,
    /// DNS domain on-premises.
    pub domain: Option<String>,
    /// DN on-premises (may be stale).
    pub distinguished_name: Option<String>,
    /// UPN, for messages.
    pub user_principal_name: Option<String>,
}

impl UserRecord {
    /// Folds a delta item in.
    pub fn apply(&mut self, p: &UserPatch) {
        p.sid.apply_to(&mut self.sid);
        p.sam_account_name.apply_to(&mut self.sam_account_name);
        p.domain.apply_to(&mut self.domain);
        p.distinguished_name.apply_to(&mut self.distinguished_name);
        p.user_principal_name
            .apply_to(&mut self.user_principal_name);
    }
}

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
