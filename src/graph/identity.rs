//! How a cloud user is found in AD, from the `onPremises*` properties users/delta gives us.
//!
//! Order of preference (graph-delta.md §6): `onPremisesSecurityIdentifier` (exact, written
//! directly as `<SID=…>`), then `onPremisesSamAccountName` + `onPremisesDomainName` (unique per
//! domain; needs one AD search to turn into a SID), then `onPremisesDistinguishedName` (may be
//! stale after a move or rename in AD, so it is only a last resort and must be checked to exist).
//! `onPremisesImmutableId` is deliberately not used: its encoding is customer-specific.
//!
//! This module is pure: it says *which* identity a user has and builds the LDAP filter for it.
//! Resolving a non-SID identity needs an AD search, which is the directory side's job.

use crate::model::UserRecord;

/// The best AD identity a cloud user has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdIdentity {
    /// The AD SID: written as `<SID=…>` with no lookup.
    Sid(String),
    /// `sAMAccountName` in a DNS domain: one search of that domain finds the object.
    SamAccountName {
        /// `onPremisesSamAccountName`.
        sam_account_name: String,
        /// `onPremisesDomainName` (DNS name, e.g. `corp.example.com`).
        domain: String,
    },
    /// A DN that may be stale: must be read back before use.
    DistinguishedName(String),
}

/// Why a user has no AD identity yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresolved {
    /// users/delta has not told us about this user yet (replication lag, or a round still
    /// running): retry later; never treat as "not a member".
    UnknownUser,
    /// The user exists in the cloud with no on-premises identity (cloud-only): it can't be an
    /// AD member until it gets one (then users/delta reports it and its groups are re-queued).
    CloudOnly,
}

impl Unresolved {
    /// Bounded label for `members_skipped_total{reason}`.
    pub fn label(self) -> &'static str {
        match self {
            Unresolved::UnknownUser => "unresolved",
            Unresolved::CloudOnly => "cloud_only",
        }
    }
}

/// Picks the best identity of `user` (`None` = users/delta has not listed it yet).
pub fn identity(user: Option<&UserRecord>) -> Result<AdIdentity, Unresolved> {
    let u = user.ok_or(Unresolved::UnknownUser)?;
    fn nonempty(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
    if let Some(sid) = nonempty(&u.sid).filter(|s| crate::model::sid::is_valid(s)) {
        return Ok(AdIdentity::Sid(sid.to_string()));
    }
    if let (Some(sam), Some(domain)) = (nonempty(&u.sam_account_name), nonempty(&u.domain)) {
        return Ok(AdIdentity::SamAccountName {
            sam_account_name: sam.to_string(),
            domain: domain.to_string(),
        });
    }
    if let Some(dn) = nonempty(&u.distinguished_name) {
        return Ok(AdIdentity::DistinguishedName(dn.to_string()));
    }
    Err(Unresolved::CloudOnly)
}

impl AdIdentity {
    /// The search that finds this identity in AD: (base DN, LDAP filter). For a SID no search is
    /// needed (`None`). The base of a `sAMAccountName` search is the domain's naming context
    /// derived from its DNS name (`corp.example.com` → `DC=corp,DC=example,DC=com`); a DN is read
    /// with a base-scope search of itself.
    pub fn ldap_search(&self) -> Option<(String, String)> {
        match self {
            AdIdentity::Sid(_) => None,
            AdIdentity::SamAccountName {
                sam_account_name,
                domain,
            } => Some((
                domain_to_dn(domain),
                format!(
                    "(&(objectCategory=person)(objectClass=user)(sAMAccountName={}))",
                    crate::model::dn::filter_value(sam_account_name)
                ),
            )),
            AdIdentity::DistinguishedName(dn) => {
                Some((dn.clone(), "(objectClass=user)".to_string()))
            }
        }
    }
}

/// `corp.example.com` → `DC=corp,DC=example,DC=com` (labels RFC 4514-escaped).
pub fn domain_to_dn(domain: &str) -> String {
    domain
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
        .map(|l| format!("DC={}", crate::model::dn::rdn_value(l)))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(
        sid: Option<&str>,
        sam: Option<&str>,
        domain: Option<&str>,
        dn: Option<&str>,
    ) -> UserRecord {
        UserRecord {
            sid: sid.map(Into::into),
            sam_account_name: sam.map(Into::into),
            domain: domain.map(Into::into),
            distinguished_name: dn.map(Into::into),
            user_principal_name: Some("ann@contoso.com".into()),
        }
    }

    #[test]
    fn sid_first_then_sam_and_domain_then_dn() {
        let sid = "S-1-5-21-1593702746-1846835621-3620547420-1104";
        let all = user(
            Some(sid),
            Some("ann"),
            Some("corp.example.com"),
            Some("CN=Ann,DC=corp"),
        );
        assert_eq!(identity(Some(&all)), Ok(AdIdentity::Sid(sid.into())));
        let no_sid = user(
            None,
            Some("ann"),
            Some("corp.example.com"),
            Some("CN=Ann,DC=corp"),
        );
        let id = identity(Some(&no_sid)).unwrap();
        assert_eq!(
            id,
            AdIdentity::SamAccountName {
                sam_account_name: "ann".into(),
                domain: "corp.example.com".into()
            }
        );
        assert_eq!(
            id.ldap_search(),
            Some((
                "DC=corp,DC=example,DC=com".into(),
                "(&(objectCategory=person)(objectClass=user)(sAMAccountName=ann))".into()
            ))
        );
        let bad_sid = user(Some("not-a-sid"), None, None, Some("CN=Ann,DC=corp"));
        assert_eq!(
            identity(Some(&bad_sid)),
            Ok(AdIdentity::DistinguishedName("CN=Ann,DC=corp".into()))
        );
        let sam_only = user(None, Some("ann"), None, None);
        assert_eq!(
            identity(Some(&sam_only)),
            Err(Unresolved::CloudOnly),
            "sAMAccountName needs its domain"
        );
        assert_eq!(
            identity(Some(&user(None, None, None, None))),
            Err(Unresolved::CloudOnly)
        );
        assert_eq!(identity(None), Err(Unresolved::UnknownUser));
        assert_eq!(Unresolved::UnknownUser.label(), "unresolved");
    }

    #[test]
    fn escaping() {
        assert_eq!(
            domain_to_dn("corp.example.com."),
            "DC=corp,DC=example,DC=com"
        );
        assert_eq!(domain_to_dn("a,b.com"), "DC=a\\,b,DC=com");
        let sam = AdIdentity::SamAccountName {
            sam_account_name: "j*rg".into(),
            domain: "corp.example.com".into(),
        };
        let (base, filter) = sam.ldap_search().unwrap();
        assert_eq!(base, "DC=corp,DC=example,DC=com");
        assert!(filter.contains("(sAMAccountName=j\\2arg)"), "{filter}");
    }
}
