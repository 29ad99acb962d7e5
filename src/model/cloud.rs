//! What the cloud says about an object: tri-state property patches, member references, and
//! the tracked properties of groups and users as delta items carry them.
//!
//! Imports nothing of the crate.

use serde::{Deserialize, Serialize};

/// A property's state in a delta item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Patch<T> {
    /// Not in the item: unchanged (or never set).
    #[default]
    Absent,
    /// Explicitly `null`: cleared.
    Null,
    /// A new (or repeated) value.
    Value(T),
}

impl<T: Clone> Patch<T> {
    /// Applies this patch to a stored optional value.
    pub fn apply_to(&self, slot: &mut Option<T>) {
        match self {
            Patch::Absent => {}
            Patch::Null => *slot = None,
            Patch::Value(v) => *slot = Some(v.clone()),
        }
    }
}

/// Why an object carries `@removed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Removed {
    /// Soft-deleted (restorable), or otherwise changed out of view.
    Changed,
    /// Permanently deleted.
    Deleted,
}

/// The directory object types that can be group members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MemberKind {
    /// `#microsoft.graph.user`
    User,
    /// `#microsoft.graph.group` (a nested group)
    Group,
    /// Devices, contacts, service principals and anything unknown: never written to AD.
    Other,
}

impl MemberKind {
    /// A one-letter tag used in storage keys.
    pub fn tag(self) -> u8 {
        match self {
            MemberKind::User => b'u',
            MemberKind::Group => b'g',
            MemberKind::Other => b'o',
        }
    }
    /// The inverse of [`MemberKind::tag`].
    pub fn from_tag(tag: u8) -> MemberKind {
        match tag {
            b'u' => MemberKind::User,
            b'g' => MemberKind::Group,
            _ => MemberKind::Other,
        }
    }
}

/// A member reference: its type and object id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MemberRef {
    /// Object type.
    pub kind: MemberKind,
    /// Object id.
    pub id: String,
}

/// The group properties the service tracks (the `$select` list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPatch {
    /// `displayName`
    pub display_name: Patch<String>,
    /// `description`
    pub description: Patch<String>,
    /// `groupTypes`
    pub group_types: Patch<Vec<String>>,
    /// `securityEnabled`
    pub security_enabled: Patch<bool>,
    /// `mailEnabled`
    pub mail_enabled: Patch<bool>,
    /// `mailNickname`
    pub mail_nickname: Patch<String>,
    /// `mail`: the primary SMTP address.
    pub mail: Patch<String>,
    /// `proxyAddresses`: every address, `SMTP:` (primary) and `smtp:` prefixes as Graph has them.
    pub proxy_addresses: Patch<Vec<String>>,
    /// `onPremisesSyncEnabled`
    pub on_premises_sync_enabled: Patch<bool>,
    /// `onPremisesSecurityIdentifier`: the AD SID of a group that came from AD (synced, or
    /// source of authority converted), by which its original AD object is found.
    pub on_premises_security_identifier: Patch<String>,
    /// `writebackConfiguration` (Graph beta): Connect v2's per-group writeback settings. Only
    /// read under `graph.writeback_configuration = "honour"`.
    pub writeback: Patch<WritebackSetting>,
}

/// A group's `writebackConfiguration` (beta `groupWritebackConfiguration`), as Connect's group
/// writeback v2 let admins set it per group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WritebackSetting {
    /// `isEnabled`: `None` means the default (Microsoft 365 groups in, security groups out).
    pub is_enabled: Option<bool>,
    /// `onPremisesGroupType`: `universalDistributionGroup`, `universalSecurityGroup` or
    /// `universalMailEnabledSecurityGroup`; `None` means the default for the group's kind.
    pub on_premises_group_type: Option<String>,
}

/// The on-premises identity properties of a user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    /// `onPremisesSecurityIdentifier`: the AD SID, the best key.
    pub sid: Patch<String>,
    /// `onPremisesSamAccountName`
    pub sam_account_name: Patch<String>,
    /// `onPremisesDomainName`
    pub domain: Patch<String>,
    /// `onPremisesDistinguishedName` (may be stale)
    pub distinguished_name: Patch<String>,
    /// `userPrincipalName`, for logs and `plan`
    pub user_principal_name: Patch<String>,
}
