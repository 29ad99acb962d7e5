//! The desired state of a cloud group and the on-premises identity of a cloud user, folded
//! from delta patches.
//!
//! Imports nothing of the crate but [`super`].

use serde::{Deserialize, Serialize};

use super::cloud::{GroupPatch, UserPatch, WritebackSetting};

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
    /// `mail` (absent in mirrors stored before mail attributes were tracked).
    #[serde(default)]
    pub mail: Option<String>,
    /// `proxyAddresses`, every value as Graph lists it.
    #[serde(default)]
    pub proxy_addresses: Vec<String>,
    /// `onPremisesSyncEnabled`
    pub on_premises_sync_enabled: Option<bool>,
    /// `onPremisesSecurityIdentifier`: set on groups that came from AD (their original's SID).
    #[serde(default)]
    pub on_premises_security_identifier: Option<String>,
    /// `writebackConfiguration` (beta), when read.
    #[serde(default)]
    pub writeback: Option<WritebackSetting>,
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
        p.mail.apply_to(&mut self.mail);
        let mut addresses = Some(std::mem::take(&mut self.proxy_addresses));
        p.proxy_addresses.apply_to(&mut addresses);
        self.proxy_addresses = addresses.unwrap_or_default();
        p.on_premises_sync_enabled
            .apply_to(&mut self.on_premises_sync_enabled);
        p.on_premises_security_identifier
            .apply_to(&mut self.on_premises_security_identifier);
        p.writeback.apply_to(&mut self.writeback);
    }

    /// A group that came from AD and whose source of authority moved to the cloud: it keeps
    /// its original's `onPremisesSecurityIdentifier` but is no longer synced from AD. Its AD
    /// object is the original (found by SID), managed in place, never a new one.
    pub fn source_converted(&self) -> bool {
        self.on_premises_sync_enabled != Some(true)
            && self
                .on_premises_security_identifier
                .as_deref()
                .is_some_and(|s| !s.trim().is_empty())
    }

    /// Whether Connect v2's per-group setting writes this group back: `isEnabled` true, or
    /// unset on a Microsoft 365 group (security groups were opt-in).
    pub fn writeback_enabled(&self) -> bool {
        match self.writeback.as_ref().and_then(|w| w.is_enabled) {
            Some(enabled) => enabled,
            None => self.is_unified(),
        }
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

    /// The contract's eligibility: cloud groups (not synced from AD) that are security-enabled
    /// or Microsoft 365. The configured `[graph.scope]` narrows it further.
    pub fn eligible(&self) -> bool {
        self.on_premises_sync_enabled != Some(true)
            && (self.security_enabled == Some(true) || self.is_unified())
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
