//! `[ad]`: the directory written to, how the service binds to it, and the shape of what lands
//! in it (OUs, CN template, soft-delete handling, batch and page sizes).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Secret, duration};

/// `[ad]`: the directory and the shape of what lands in it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdConfig {
    /// `ldap://host` or `ldaps://host`.
    pub url: String,
    /// DN of the service account.
    pub bind_dn: String,
    /// Its password (or env `ENTRA_WRITEBACK_AD_BIND_PASSWORD`).
    #[serde(default)]
    pub bind_password: Option<Secret>,
    /// CA bundle (PEM) that signs the DC's certificate; system roots otherwise.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Upgrade `ldap://` with StartTLS (`ldaps://` is TLS from the start and must not set it).
    #[serde(default)]
    pub starttls: bool,
    /// Accept a plain `ldap://` URL without StartTLS, i.e. send the bind password and every
    /// change in clear. Off by default: such a config is a startup error unless this is true.
    /// Only for a lab DC on a trusted network.
    #[serde(default)]
    pub allow_insecure_ldap: bool,
    /// Page size of the Simple Paged Results control (RFC 2696) on LDAP searches that can return
    /// many entries (1..=1000, default 1000). Windows returns at most `MaxPageSize` (1,000 by
    /// default) entries per unpaged search or page, so larger pages are cut short there.
    #[serde(default = "default_search_page_size")]
    pub search_page_size: usize,
    /// The OU written-back groups are created in; the service owns only anchored objects here.
    pub target_ou: String,
    /// A round that would delete more groups than this holds the deletes for approval.
    #[serde(default = "default_delete_threshold")]
    pub delete_threshold: usize,
    /// What a soft delete (or a group leaving scope) does to the AD group.
    #[serde(default)]
    pub soft_delete: SoftDeleteAction,
    /// Member values per LDAP modify.
    #[serde(default = "default_member_batch")]
    pub member_batch_size: usize,
    /// LDAP connections the service opens to the DC (1..=16), each bound with the same account;
    /// operations go to them in turn, and ldap3 already pipelines several operations over
    /// each. Samba answers LDAP from one process, so more than one gains nothing there; a
    /// Windows DC takes more parallelism.
    #[serde(default = "default_connections")]
    pub connections: usize,
    /// Timeout of one LDAP operation.
    #[serde(default = "default_ldap_timeout", deserialize_with = "duration")]
    pub operation_timeout: Duration,
    /// OU for Microsoft 365 groups, when they should not go to `target_ou`.
    #[serde(default)]
    pub target_ou_m365: Option<String>,
    /// OU that `soft_delete = "move"` moves groups to (owned by the service too).
    #[serde(default)]
    pub soft_delete_ou: Option<String>,
    /// OUs the service used to write to (before a rule change): it still owns its anchored
    /// groups there and moves them to where the rules now place them.
    #[serde(default)]
    pub previous_ous: Vec<String>,
    /// CN template: `{displayName}`, `{idSuffix}`, `{id}`; must contain `{id}` or `{idSuffix}`.
    #[serde(default = "default_cn_template")]
    pub cn_template: String,
    /// Where the original AD objects of groups whose source of authority moved to the cloud
    /// may be adopted (found by `objectSid`, managed in place). Empty: such groups are
    /// reported, never adopted, never duplicated. The service owns what it adopted here.
    #[serde(default)]
    pub adopt_ous: Vec<String>,
    /// What a cloud hard delete does to an adopted original: `freeze` (default: left as it is,
    /// reported) or `delete`.
    #[serde(default)]
    pub adopted_delete: AdoptedDelete,
    /// Rename groups taken over from another writer (Connect Sync, Cloud Sync) to
    /// `cn_template`. Off by default: a taken-over group keeps its CN, hence its DN.
    #[serde(default)]
    pub rename_taken_over: bool,
    /// Two writers: a write the service repeats because AD changed back within this window
    /// (the cloud unchanged) is drift the first time; the second time the group is frozen
    /// until `approve-writes`. `0s` disables the detection.
    #[serde(
        default = "default_second_writer_window",
        deserialize_with = "duration"
    )]
    pub second_writer_window: Duration,
    /// Whether Microsoft 365 and mail-enabled groups carry `mail`, `proxyAddresses` and (where
    /// the schema has it) `mailNickname`.
    #[serde(default)]
    pub mail_attributes: MailAttributes,
}

/// `ad.adopted_delete`: the delete policy of an adopted original (an AD group that existed
/// before the cloud took over its source of authority, and still holds its SID in ACLs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdoptedDelete {
    /// Never deleted by the service: a hard delete in the cloud freezes it and reports it.
    #[default]
    Freeze,
    /// Deleted when its cloud group is permanently deleted, like a group the service created.
    Delete,
}

/// `ad.mail_attributes`: whether the service writes the mail attributes of groups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailAttributes {
    /// Microsoft 365 and mail-enabled groups carry `mail`, every `proxyAddresses` value and,
    /// where the schema has it, `mailNickname`.
    #[default]
    Auto,
    /// Nothing of this is written or cleared.
    Off,
}

impl AdConfig {
    /// Every OU the service writes to, hence owns anchored groups in.
    pub fn owned_ous(&self) -> Vec<String> {
        let mut ous = vec![self.target_ou.clone()];
        ous.extend(self.target_ou_m365.iter().cloned());
        ous.extend(self.soft_delete_ou.iter().cloned());
        ous.extend(self.previous_ous.iter().cloned());
        ous.extend(self.adopt_ous.iter().cloned());
        ous.dedup();
        ous
    }
}

fn default_second_writer_window() -> Duration {
    Duration::from_secs(2 * 3600)
}

/// The CN template used when `ad.cn_template` is not set.
pub const DEFAULT_CN_TEMPLATE: &str = "{displayName}_{idSuffix}";

fn default_cn_template() -> String {
    DEFAULT_CN_TEMPLATE.to_string()
}

/// Whether a CN template keeps names unique: it must contain `{id}` or `{idSuffix}`.
pub fn valid_cn_template(template: &str) -> bool {
    template.contains("{id}") || template.contains("{idSuffix}")
}

/// What happens to an AD group whose cloud group was soft-deleted or left scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SoftDeleteAction {
    /// Leave it as it is (Microsoft's default).
    #[default]
    Freeze,
    /// Delete it.
    Delete,
    /// Turn it into a universal distribution group (no longer grants access).
    ConvertToDistribution,
    /// Move it to `ad.soft_delete_ou`.
    Move,
}

fn default_ldap_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_delete_threshold() -> usize {
    100
}
fn default_member_batch() -> usize {
    1000
}
fn default_connections() -> usize {
    1
}
fn default_search_page_size() -> usize {
    1000
}
