//! Active Directory: the LDAP connection, the cloud-group → AD mapping, planning operations
//! and applying them.
//!
//! Guarantees: the service only ever modifies or deletes an object that carries its anchor
//! `adminDescription = Group_<objectId>` under an owned OU (the contract's ownership rule). An
//! object matching only `msDS-ExternalDirectoryObjectId` is a reported conflict, never modified.
//! Names are never used to find what to change; a name clash with an object we do not own is a
//! conflict, reported and left alone. Every search that can return many entries is paged (RFC
//! 2696), so a Windows DC's `MaxPageSize` never truncates what the service sees.

pub mod apply;

pub mod ldap;
pub mod mapping;
mod members;
pub mod plan;
pub mod retire;

use crate::model::{dn, sid};
use std::collections::BTreeSet;

use ldap3::Scope;
use ldap3::controls::RawControl;

pub use apply::{Applier, ApplyError, Work};
pub use ldap::{Connection, DirectoryError};
use plan::ActualGroup;
pub use retire::CloudOracle;

/// Attributes read for a managed group.
const GROUP_ATTRS: &[&str] = &[
    "cn",
    "displayName",
    "description",
    "groupType",
    "sAMAccountName",
    "adminDescription",
    "msDS-ExternalDirectoryObjectId",
    "objectSid",
];

/// Values asked for per ranged read of `member` (`member;range=LO-HI`): Windows' default
/// `MaxValRange`, the most a Windows DC returns per read.
pub const DEFAULT_MEMBER_RANGE_STEP: usize = 1500;

/// The extended-DN control (`<GUID=..>;<SID=..>;dn` values), asking for string forms.
fn extended_dn_control() -> RawControl {
    // BER: SEQUENCE { INTEGER 1 }: 1 = SIDs and GUIDs as strings.
    RawControl {
        ctype: "1.2.840.113556.1.4.529".into(),
        crit: false,
        val: Some(vec![0x30, 0x03, 0x02, 0x01, 0x01]),
    }
}

/// The directory as the service sees it: a connection plus what was learned at start-up.
#[derive(Clone)]
pub struct Directory {
    /// The connection.
    pub conn: Connection,
    /// The domain naming context (`DC=...`).
    pub domain_base: String,
    /// Whether the schema has `msDS-ExternalDirectoryObjectId` (Windows Server 2016 schema).
    pub has_external_id: bool,
    /// Where groups are written (the default OU).
    pub target_ou: String,
    /// Every OU the service writes to; it owns anchored groups there and nowhere else.
    pub owned_ous: Vec<String>,
    /// Naming and placement rules.
    pub rules: mapping::MappingRules,
    /// Entries per page of a paged search (`ad.search_page_size`).
    pub page_size: usize,
    /// Values asked for per ranged read of `member` ([`DEFAULT_MEMBER_RANGE_STEP`]; see
    /// [`Directory::with_member_range_step`]).
    member_range_step: usize,
}

fn all_contains(all: &[ldap3::SearchEntry], dn: &str) -> bool {
    all.iter().any(|e| dn::same_dn(&e.dn, dn))
}

/// Whether an object's anchors say the same: `msDS-ExternalDirectoryObjectId`, when set, must
/// equal `adminDescription`. An object whose anchors disagree is never modified or deleted.
fn anchors_agree(a: &ActualGroup) -> bool {
    a.external_id.as_deref().is_none_or(|ext| {
        a.admin_description
            .as_deref()
            .is_some_and(|d| d.eq_ignore_ascii_case(ext))
    })
}

/// The `objectSid` of an entry as `S-1-…`.
fn entry_sid(e: &ldap3::SearchEntry) -> Option<String> {
    e.bin_attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("objectSid"))
        .and_then(|(_, v)| v.first())
        .and_then(|b| sid::to_string(b))
}

fn first(e: &ldap3::SearchEntry, attr: &str) -> Option<String> {
    e.attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, v)| v.first().cloned())
}

impl Directory {
    /// Binds, reads the rootDSE and detects the schema.
    pub async fn open(conn: Connection) -> Result<Directory, DirectoryError> {
        let root = conn
            .search(
                "",
                Scope::Base,
                "(objectClass=*)",
                &["defaultNamingContext", "schemaNamingContext"],
                vec![],
            )
            .await?;
        let root = root.first().ok_or_else(|| DirectoryError::Connect {
            url: conn.config().url.clone(),
            detail: "the server returned no rootDSE".into(),
        })?;
        let domain_base = first(root, "defaultNamingContext").unwrap_or_default();
        let schema = first(root, "schemaNamingContext").unwrap_or_default();
        let has_external_id = !schema.is_empty()
            && !conn
                .search(
                    &schema,
                    Scope::OneLevel,
                    "(lDAPDisplayName=msDS-ExternalDirectoryObjectId)",
                    &["cn"],
                    vec![],
                )
                .await?
                .is_empty();
        let target_ou = conn.config().target_ou.clone();
        let owned_ous = conn.config().owned_ous();
        let rules = mapping::MappingRules::from_config(conn.config());
        let page_size = conn.config().search_page_size;
        tracing::info!(domain = %domain_base, has_external_id, "connected to AD");
        Ok(Directory {
            conn,
            domain_base,
            has_external_id,
            target_ou,
            owned_ous,
            rules,
            page_size,
            member_range_step: DEFAULT_MEMBER_RANGE_STEP,
        })
    }

    /// The same directory reading `member` in ranges of `step` values (at least 1) instead of
    /// [`DEFAULT_MEMBER_RANGE_STEP`]: an internal seam, so tests can force many ranges on a
    /// CI-sized group (Samba honours any explicit range but never splits by itself).
    pub fn with_member_range_step(mut self, step: usize) -> Directory {
        self.member_range_step = step.max(1);
        self
    }

    /// Whether the target OU exists (and is visible to the service account).
    pub async fn target_ou_exists(&self) -> Result<bool, DirectoryError> {
        match self
            .conn
            .search(
                &self.target_ou,
                Scope::Base,
                "(objectClass=*)",
                &["objectClass"],
                vec![],
            )
            .await
        {
            Ok(v) => Ok(!v.is_empty()),
            Err(e) if e.result_code() == Some(ldap::rc::NO_SUCH_OBJECT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the bound account may create groups in the target OU
    /// (`allowedChildClassesEffective`, computed by the DC from the ACL; nothing is written).
    pub async fn can_create_groups(&self) -> Result<bool, DirectoryError> {
        let found = self
            .conn
            .search(
                &self.target_ou,
                Scope::Base,
                "(objectClass=*)",
                &["allowedChildClassesEffective"],
                vec![],
            )
            .await?;
        Ok(found.iter().any(|e| {
            e.attrs.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("allowedChildClassesEffective")
                    && v.iter().any(|c| c.eq_ignore_ascii_case("group"))
            })
        }))
    }

    fn anchor_filter(&self, anchor: &str) -> String {
        let a = dn::filter_value(anchor);
        if self.has_external_id {
            format!(
                "(&(objectClass=group)(|(msDS-ExternalDirectoryObjectId={a})(adminDescription={a})))"
            )
        } else {
            format!("(&(objectClass=group)(adminDescription={a}))")
        }
    }

    fn to_actual(e: &ldap3::SearchEntry) -> ActualGroup {
        ActualGroup {
            dn: e.dn.clone(),
            cn: first(e, "cn").unwrap_or_default(),
            display_name: first(e, "displayName"),
            description: first(e, "description"),
            group_type: first(e, "groupType").and_then(|t| t.parse().ok()),
            sam_account_name: first(e, "sAMAccountName"),
            admin_description: first(e, "adminDescription"),
            external_id: first(e, "msDS-ExternalDirectoryObjectId"),
            sid: entry_sid(e),
        }
    }

    /// Searches every owned OU, paged (a missing optional OU is skipped: it may not exist yet).
    /// `purpose` names the search in the log line that reports its pages.
    async fn search_owned(
        &self,
        filter: &str,
        purpose: &'static str,
    ) -> Result<Vec<ldap3::SearchEntry>, DirectoryError> {
        let mut all: Vec<ldap3::SearchEntry> = Vec::new();
        for ou in &self.owned_ous {
            match self
                .conn
                .search_paged(ou, Scope::Subtree, filter, GROUP_ATTRS, self.page_size)
                .await
            {
                Ok((found, pages)) => {
                    tracing::debug!(
                        purpose,
                        base = %ou,
                        pages,
                        entries = found.len(),
                        page_size = self.page_size,
                        "paged search"
                    );
                    for e in found {
                        if !all_contains(&all, &e.dn) {
                            all.push(e);
                        }
                    }
                }
                Err(e)
                    if e.result_code() == Some(ldap::rc::NO_SUCH_OBJECT)
                        && ou != &self.target_ou => {}
                Err(e) if e.result_code() == Some(ldap::rc::NO_SUCH_OBJECT) => {
                    // The target OU vanished (deleted, or an AD restore in progress): wait for
                    // it rather than dead-letter every change.
                    return Err(DirectoryError::TargetOuMissing { ou: ou.clone() });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(all)
    }

    /// The group we own for cloud group `id`: the one object carrying the anchor in
    /// `adminDescription`, under the owned OUs only. More than one is a conflict; so is an
    /// object that carries the anchor only in `msDS-ExternalDirectoryObjectId` (someone else's,
    /// or tampered with: never modified).
    pub async fn find_owned(&self, group_id: &str) -> Result<Option<ActualGroup>, DirectoryError> {
        let anchor = mapping::anchor(group_id);
        let found = self
            .search_owned(&self.anchor_filter(&anchor), "find_owned")
            .await?;
        let (found, foreign): (Vec<_>, Vec<_>) = found.into_iter().partition(|e| {
            first(e, "adminDescription").is_some_and(|a| a.eq_ignore_ascii_case(&anchor))
                && anchors_agree(&Self::to_actual(e))
        });
        if let Some(f) = foreign.first() {
            crate::metrics::get()
                .conflicts
                .with_label_values(&["anchor_mismatch"])
                .inc();
            return Err(DirectoryError::Conflict {
                kind: "anchor_mismatch",
                detail: format!(
                    "{} carries msDS-ExternalDirectoryObjectId and adminDescription values that do not both say {anchor}; not ours, left untouched",
                    f.dn
                ),
            });
        }
        match found.len() {
            0 => Ok(None),
            1 => Ok(Some(Self::to_actual(&found[0]))),
            n => Err(DirectoryError::Conflict {
                kind: "duplicate_anchor",
                detail: format!(
                    "{n} objects carry the anchor {anchor}: {}",
                    found
                        .iter()
                        .map(|e| e.dn.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            }),
        }
    }

    /// Every group we own (anchored by `adminDescription`), in every owned OU, read with paged
    /// searches.
    pub async fn list_owned(&self) -> Result<Vec<(String, ActualGroup)>, DirectoryError> {
        let found = self
            .search_owned(
                "(&(objectClass=group)(adminDescription=Group_*))",
                "list_owned",
            )
            .await?;
        let owned: Vec<(String, ActualGroup)> = found
            .iter()
            .map(Self::to_actual)
            .filter_map(|a| {
                let id = mapping::id_from_anchor(a.admin_description.as_deref()?)?.to_string();
                if !anchors_agree(&a) {
                    // Two anchors naming different groups: not ours to judge, never swept.
                    tracing::warn!(dn = %a.dn, "anchors disagree; object left untouched");
                    return None;
                }
                Some((id, a))
            })
            .collect();
        tracing::info!(groups = owned.len(), "owned groups listed");
        Ok(owned)
    }

    /// The SID of the account a non-SID identity names (one search), if it exists.
    pub async fn sid_of(
        &self,
        who: &crate::graph::identity::AdIdentity,
    ) -> Result<Option<String>, DirectoryError> {
        let Some((base, filter)) = who.ldap_search() else {
            return Ok(match who {
                crate::graph::identity::AdIdentity::Sid(s) => Some(s.clone()),
                _ => None,
            });
        };
        let scope = if matches!(
            who,
            crate::graph::identity::AdIdentity::DistinguishedName(_)
        ) {
            Scope::Base
        } else {
            Scope::Subtree
        };
        match self
            .conn
            .search(&base, scope, &filter, &["objectSid"], vec![])
            .await
        {
            Ok(found) if found.len() == 1 => Ok(entry_sid(&found[0])),
            Ok(_) => Ok(None),
            Err(e)
                if matches!(
                    e.result_code(),
                    Some(ldap::rc::NO_SUCH_OBJECT) | Some(34) | Some(10)
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether any object has this exact DN.
    pub async fn dn_exists(&self, dn: &str) -> Result<bool, DirectoryError> {
        match self
            .conn
            .search(dn, Scope::Base, "(objectClass=*)", &["objectClass"], vec![])
            .await
        {
            Ok(v) => Ok(!v.is_empty()),
            Err(e) if e.result_code() == Some(ldap::rc::NO_SUCH_OBJECT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// DNs of objects in the domain with this `sAMAccountName`.
    pub async fn sam_account_name_holders(&self, sam: &str) -> Result<Vec<String>, DirectoryError> {
        let filter = format!("(sAMAccountName={})", dn::filter_value(sam));
        Ok(self
            .conn
            .search(&self.domain_base, Scope::Subtree, &filter, &["cn"], vec![])
            .await?
            .into_iter()
            .map(|e| e.dn)
            .collect())
    }

    /// The SIDs of a group's members, read with explicit ranged retrieval
    /// (`member;range=LO-HI`, [`DEFAULT_MEMBER_RANGE_STEP`] values per read), following the
    /// ranges the server answers with until one ends in `*`, so it works on Windows DCs that
    /// return at most `MaxValRange` values per read.
    pub async fn member_sids(&self, dn: &str) -> Result<BTreeSet<String>, DirectoryError> {
        let mut sids = BTreeSet::new();
        let mut start = 0usize;
        loop {
            let attr = format!(
                "member;range={start}-{}",
                start.saturating_add(self.member_range_step - 1)
            );
            let found = self
                .conn
                .search(
                    dn,
                    Scope::Base,
                    "(objectClass=*)",
                    &[attr.as_str()],
                    vec![extended_dn_control()],
                )
                .await?;
            let Some(entry) = found.first() else { break };
            let mut next = None;
            for (name, values) in &entry.attrs {
                let lower = name.to_ascii_lowercase();
                if lower != "member" && !lower.starts_with("member;range=") {
                    continue;
                }
                sids.extend(values.iter().filter_map(|v| sid::from_extended_dn(v)));
                if let Some((_, end)) = lower
                    .strip_prefix("member;range=")
                    .and_then(|r| r.split_once('-'))
                    && end != "*"
                {
                    next = end.parse::<usize>().ok().map(|e| e + 1);
                }
            }
            match next {
                Some(n) if n > start => start = n,
                _ => break,
            }
        }
        Ok(sids)
    }
}
