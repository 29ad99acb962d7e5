//! Proxy-address clashes: an address the cloud gives a group that an AD object the service does
//! not own already holds.
//!
//! # Guarantees
//! - Only the addresses the group's object does not hold yet are searched for, in one search
//!   of the domain, so a converged group costs no read.
//! - An address an object we do not own holds is a reported conflict ([`Event::Conflict`],
//!   `proxy_address`, and a warning naming the holder): the group is written without that one
//!   address and does not fail; the other object is never modified.
//! - A holder that is one of our own groups is not a conflict (an address moving from one
//!   cloud group to another; that group's own change removes it there).
//!
//! Imports: the directory's own modules, [`crate::model`] (DN helpers, events).

use ldap3::Scope;

use super::apply::{Applier, ApplyError};
use super::error::ResultCode;
use super::mapping::{self, DesiredGroup};
use super::plan::ActualGroup;
use super::read::{all, first};
use super::seam::{DnForm, Ldap};
use super::{Directory, DirectoryError, mail};
use crate::model::{Event, dn};

/// An object holding some of the addresses searched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its DN.
    pub dn: String,
    /// Whether it is one of the service's groups (anchored, under an owned OU).
    pub owned: bool,
    /// Its `proxyAddresses`.
    pub addresses: Vec<String>,
}

impl<L: Ldap> Directory<L> {
    /// The objects of the domain holding any of `addresses` (matched as AD matches
    /// `proxyAddresses`: case-insensitively).
    pub async fn proxy_address_holders(
        &self,
        addresses: &[&str],
    ) -> Result<Vec<Holder>, DirectoryError> {
        if addresses.is_empty() {
            return Ok(Vec::new());
        }
        let found = match self
            .conn
            .search(
                &self.domain_base,
                Scope::Subtree,
                &mail::holders_filter(addresses),
                &["adminDescription", "proxyAddresses"],
                DnForm::Plain,
            )
            .await
        {
            Ok(found) => found,
            Err(e) if e.result_code() == Some(ResultCode::REFERRAL) => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(found
            .iter()
            .map(|e| Holder {
                owned: first(e, "adminDescription")
                    .as_deref()
                    .and_then(mapping::id_from_anchor)
                    .is_some()
                    && self.owned_ous.iter().any(|ou| dn::is_under(&e.dn, ou)),
                dn: e.dn.clone(),
                addresses: all(e, "proxyAddresses"),
            })
            .collect())
    }
}

impl<L: Ldap> Applier<L> {
    /// Leaves out of `desired` every address an object we do not own already holds, reporting
    /// each (see the module's guarantees). `actual` is the group's object, if it exists.
    pub(super) async fn drop_taken_addresses(
        &self,
        group_id: &str,
        desired: &mut DesiredGroup,
        actual: Option<&ActualGroup>,
    ) -> Result<(), ApplyError> {
        let Some(want) = desired.mail.as_mut() else {
            return Ok(());
        };
        let unverified = mail::unverified(want, actual.map(|a| &*a.mail));
        let holders = self.dir.proxy_address_holders(&unverified).await?;
        let ours = actual.map(|a| a.dn.as_str());
        let mut taken = Vec::new();
        for h in holders {
            if h.owned || ours.is_some_and(|d| dn::same_dn(d, &h.dn)) {
                continue;
            }
            for address in unverified
                .iter()
                .filter(|u| h.addresses.iter().any(|a| a.eq_ignore_ascii_case(u)))
            {
                tracing::warn!(
                    group = group_id,
                    address = %address,
                    holder = %h.dn,
                    "proxy address held by an object the service does not own; the group is written without it, the other object left untouched"
                );
                self.events().emit(Event::Conflict {
                    kind: "proxy_address",
                });
                taken.push(address.to_string());
            }
        }
        mail::without(want, &taken);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::directory::fake::{FakeDirectory, ad_config};
    use crate::model::Events;

    const DOMAIN: &str = "DC=corp,DC=example";
    const OU: &str = "OU=Cloud,DC=corp,DC=example";
    const OTHER: &str = "OU=Mail,DC=corp,DC=example";

    #[tokio::test]
    async fn holders_are_found_case_insensitively_and_ours_are_told_apart() {
        let fake = FakeDirectory::new(DOMAIN);
        fake.add_ou(OU);
        fake.add_ou(OTHER);
        fake.seed(
            &format!("CN=Ours,{OU}"),
            &[
                ("objectClass", &["top", "group"]),
                ("adminDescription", &["Group_g1"]),
                ("proxyAddresses", &["smtp:moved@x"]),
            ],
        );
        let anchored_elsewhere = format!("CN=Lookalike,{OTHER}");
        fake.seed(
            &anchored_elsewhere,
            &[
                ("objectClass", &["top", "group"]),
                ("adminDescription", &["Group_g2"]),
                ("proxyAddresses", &["SMTP:taken@x", "smtp:other@x"]),
            ],
        );
        let dir = fake.directory(&ad_config(OU), Events::none()).await;
        assert!(dir.proxy_address_holders(&[]).await.unwrap().is_empty());
        let mut found = dir
            .proxy_address_holders(&["smtp:TAKEN@x", "SMTP:moved@x", "smtp:free@x"])
            .await
            .unwrap();
        found.sort_by(|a, b| a.dn.cmp(&b.dn));
        let summary: Vec<(String, bool)> = found.iter().map(|h| (h.dn.clone(), h.owned)).collect();
        assert_eq!(
            summary,
            [(anchored_elsewhere, false), (format!("CN=Ours,{OU}"), true)],
            "an anchor outside the owned OUs is not ours"
        );
        assert_eq!(found[0].addresses, ["SMTP:taken@x", "smtp:other@x"]);
    }
}
