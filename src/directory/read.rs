//! Reading AD: the owned groups (by anchor, or all of them), names and `sAMAccountName`s in
//! use, the SID an identity names, and a group's members by ranged retrieval.
//!
//! # Guarantees
//! - [`Directory::find_owned`] returns only an object that carries our anchor in
//!   `adminDescription` under an owned OU, with no disagreeing `msDS-ExternalDirectoryObjectId`;
//!   anything else carrying the anchor is a conflict, never a match. Its filter scans every
//!   group under the owned OUs (`adminDescription` is not indexed), so converging a group the
//!   store remembers reads it at its SID first ([`super::remembered`]).
//! - Searches over owned OUs are paged; a missing optional OU is skipped, a missing target OU
//!   is [`DirectoryError::TargetOuMissing`] (transient), never "no groups".
//! - `member` is read in explicit ranges until the server says `*`, so Windows' `MaxValRange`
//!   never truncates a group.
//!
//! Imports: the directory's own modules, [`crate::model`] (DN/SID helpers, events) and
//! [`crate::graph::identity`] (what a user is known by in AD).

use std::collections::{BTreeSet, HashSet};

use ldap3::{Scope, SearchEntry};

use super::error::{DirectoryError, ResultCode};
use super::mail::MailAttrs;
use super::plan::ActualGroup;
use super::range::{MemberRange, member_range};
use super::seam::{DnForm, Ldap, PageSink};
use super::{Directory, mapping};
use crate::graph::identity::AdIdentity;
use crate::model::{Event, dn, sid};

/// Attributes read for a managed group.
pub(super) const GROUP_ATTRS: &[&str] = &[
    "cn",
    "displayName",
    "description",
    "groupType",
    "sAMAccountName",
    "adminDescription",
    "msDS-ExternalDirectoryObjectId",
    "objectSid",
    "mail",
    "proxyAddresses",
    "mailNickname",
];

/// A DN in the form [`dn::same_dn`] compares: two DNs are the same exactly when their keys
/// are equal, so duplicates across overlapping owned OUs are found with a set, in one pass
/// (comparing every entry with every other one took minutes of CPU at 10,000 groups).
fn dn_key(name: &str) -> Result<Vec<(String, String)>, String> {
    match dn::parse_dn(name) {
        Some(rdns) => Ok(rdns
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_lowercase()))
            .collect()),
        None => Err(name.to_ascii_lowercase()),
    }
}

/// Whether [`Directory::count_owned`] counts this object: our anchor in `adminDescription`,
/// and no other in `msDS-ExternalDirectoryObjectId`.
pub(super) fn counts_as_owned(a: &ActualGroup) -> bool {
    a.admin_description
        .as_deref()
        .and_then(mapping::id_from_anchor)
        .is_some()
        && anchors_agree(a)
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

/// Whether an object is ours for `anchor`: it carries it in `adminDescription`, and its
/// anchors agree (the ownership rule of [`Directory::find_owned`], under an owned OU).
pub(super) fn carries_anchor(a: &ActualGroup, anchor: &str) -> bool {
    a.admin_description
        .as_deref()
        .is_some_and(|d| d.eq_ignore_ascii_case(anchor))
        && anchors_agree(a)
}

/// The `objectSid` of an entry as `S-1-…`.
fn entry_sid(e: &SearchEntry) -> Option<String> {
    e.bin_attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("objectSid"))
        .and_then(|(_, v)| v.first())
        .and_then(|b| sid::to_string(b))
}

/// Every value of `attr` (case-insensitive name).
pub(super) fn all(e: &SearchEntry, attr: &str) -> Vec<String> {
    e.attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// The first value of `attr` (case-insensitive name).
pub(super) fn first(e: &SearchEntry, attr: &str) -> Option<String> {
    e.attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, v)| v.first().cloned())
}

pub(super) fn to_actual(e: &SearchEntry) -> ActualGroup {
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
        mail: Box::new(MailAttrs {
            mail: first(e, "mail"),
            proxy_addresses: all(e, "proxyAddresses"),
            mail_nickname: first(e, "mailNickname"),
        }),
        listed_members: None,
    }
}

impl<L: Ldap> Directory<L> {
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

    /// Searches every owned OU, paged (a missing optional OU is skipped: it may not exist yet).
    /// `purpose` names the search in the log line that reports its pages.
    async fn search_owned(
        &self,
        filter: &str,
        purpose: &'static str,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        self.search_owned_reading(filter, GROUP_ATTRS, purpose)
            .await
    }

    /// [`Self::search_owned`] reading only `attrs`.
    async fn search_owned_reading(
        &self,
        filter: &str,
        attrs: &[&str],
        purpose: &'static str,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let mut all = Vec::new();
        self.search_owned_each(filter, attrs, DnForm::Plain, purpose, &mut |e| all.push(e))
            .await?;
        Ok(all)
    }

    /// Searches every owned OU, paged, handing each entry to `each` as its page arrives (a
    /// caller that keeps less than the entry never holds the whole answer). Entries are
    /// de-duplicated only when one owned OU lies inside another (otherwise no entry can be
    /// found twice).
    pub(super) async fn search_owned_each(
        &self,
        filter: &str,
        attrs: &[&str],
        form: DnForm,
        purpose: &'static str,
        each: &mut (dyn FnMut(SearchEntry) + Send),
    ) -> Result<(), DirectoryError> {
        let mut seen = HashSet::new();
        let nested = self.owned_ous.iter().enumerate().any(|(i, a)| {
            self.owned_ous
                .iter()
                .enumerate()
                .any(|(j, b)| i != j && dn::is_under(a, b))
        });
        for ou in &self.owned_ous {
            let mut entries = 0usize;
            let mut sink = |page: Vec<SearchEntry>| {
                entries += page.len();
                for e in page {
                    if !nested || seen.insert(dn_key(&e.dn)) {
                        each(e);
                    }
                }
            };
            let sink: PageSink<'_> = &mut sink;
            match self
                .conn
                .search_paged(
                    ou,
                    Scope::Subtree,
                    filter,
                    attrs,
                    form,
                    self.page_size,
                    sink,
                )
                .await
            {
                Ok(pages) => {
                    tracing::debug!(
                        purpose,
                        base = %ou,
                        pages,
                        entries,
                        page_size = self.page_size,
                        "paged search"
                    );
                }
                Err(e)
                    if e.result_code() == Some(ResultCode::NO_SUCH_OBJECT)
                        && ou != &self.target_ou => {}
                Err(e) if e.result_code() == Some(ResultCode::NO_SUCH_OBJECT) => {
                    // The target OU vanished (deleted, or an AD restore in progress): wait for
                    // it rather than dead-letter every change.
                    return Err(DirectoryError::TargetOuMissing { ou: ou.clone() });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
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
        let (found, foreign): (Vec<_>, Vec<_>) = found
            .into_iter()
            .partition(|e| carries_anchor(&to_actual(e), &anchor));
        if let Some(f) = foreign.first() {
            self.events().emit(Event::Conflict {
                kind: "anchor_mismatch",
            });
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
            1 => Ok(Some(to_actual(&found[0]))),
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
            .map(to_actual)
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

    /// How many groups we own (what [`Self::list_owned`] would list), reading only their
    /// anchors and counting page by page: the count at start-up holds one page, never the
    /// whole tenant.
    pub async fn count_owned(&self) -> Result<usize, DirectoryError> {
        let mut owned = 0usize;
        let mut count = |e: SearchEntry| owned += usize::from(counts_as_owned(&to_actual(&e)));
        self.search_owned_each(
            "(&(objectClass=group)(adminDescription=Group_*))",
            &["adminDescription", "msDS-ExternalDirectoryObjectId"],
            DnForm::Plain,
            "count_owned",
            &mut count,
        )
        .await?;
        Ok(owned)
    }

    /// The SID of the account a non-SID identity names (one search), if it exists.
    pub async fn sid_of(&self, who: &AdIdentity) -> Result<Option<String>, DirectoryError> {
        let Some((base, filter)) = who.ldap_search() else {
            return Ok(match who {
                AdIdentity::Sid(s) => Some(s.clone()),
                _ => None,
            });
        };
        let scope = if matches!(who, AdIdentity::DistinguishedName(_)) {
            Scope::Base
        } else {
            Scope::Subtree
        };
        match self
            .conn
            .search(&base, scope, &filter, &["objectSid"], DnForm::Plain)
            .await
        {
            Ok(found) if found.len() == 1 => Ok(entry_sid(&found[0])),
            Ok(_) => Ok(None),
            Err(e)
                if matches!(
                    e.result_code(),
                    Some(ResultCode::NO_SUCH_OBJECT)
                        | Some(ResultCode::INVALID_DN_SYNTAX)
                        | Some(ResultCode::REFERRAL)
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
            .search(
                dn,
                Scope::Base,
                "(objectClass=*)",
                &["objectClass"],
                DnForm::Plain,
            )
            .await
        {
            Ok(v) => Ok(!v.is_empty()),
            Err(e) if e.result_code() == Some(ResultCode::NO_SUCH_OBJECT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// DNs of objects in the domain with this `sAMAccountName`.
    pub async fn sam_account_name_holders(&self, sam: &str) -> Result<Vec<String>, DirectoryError> {
        let filter = format!("(sAMAccountName={})", dn::filter_value(sam));
        Ok(self
            .conn
            .search(
                &self.domain_base,
                Scope::Subtree,
                &filter,
                &["cn"],
                DnForm::Plain,
            )
            .await?
            .into_iter()
            .map(|e| e.dn)
            .collect())
    }

    /// The SIDs of a group's members, read with explicit ranged retrieval
    /// (`member;range=LO-HI`, [`super::DEFAULT_MEMBER_RANGE_STEP`] values per read), following
    /// the ranges the server answers with until one ends in `*`, so it works on Windows DCs
    /// that return at most `MaxValRange` values per read.
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
                    DnForm::Extended,
                )
                .await?;
            let Some(entry) = found.first() else { break };
            let mut next = None;
            for (name, values) in &entry.attrs {
                let range = member_range(name);
                if range == MemberRange::Other {
                    continue;
                }
                sids.extend(values.iter().filter_map(|v| sid::from_extended_dn(v)));
                if let MemberRange::Next(n) = range {
                    next = Some(n);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dn_keys_are_equal_exactly_when_the_dns_are_the_same() {
        let dns = [
            "CN=Sales,OU=Cloud Groups,DC=example,DC=test",
            "cn=sales,ou=cloud groups,dc=EXAMPLE,dc=test",
            "CN=Sales ,OU=Cloud Groups,DC=example,DC=test",
            "CN=Sales2,OU=Cloud Groups,DC=example,DC=test",
            "CN=Sales,OU=Other,DC=example,DC=test",
            "CN=Ünïcode,OU=Cloud Groups,DC=example,DC=test",
            "CN=üNÏCODE,OU=Cloud Groups,DC=example,DC=test",
            "CN=A\\,B,OU=Cloud Groups,DC=example,DC=test",
            "CN=A,B,OU=Cloud Groups,DC=example,DC=test",
            "not a dn",
            "NOT A DN",
        ];
        for a in dns {
            for b in dns {
                assert_eq!(dn_key(a) == dn_key(b), dn::same_dn(a, b), "{a:?} vs {b:?}");
            }
        }
    }
}
