//! Finding a group's AD object from what the store remembers of it: the SID recorded when the
//! object was confirmed ([`crate::queue::Store::materialized_sid`]).
//!
//! `adminDescription` is not indexed in AD's schema, so the anchor search of
//! [`Directory::find_owned`] evaluates every group under the owned OUs: 1.8 s per search at
//! 100,000 groups on Samba, where a base read of `<SID=…>` (answered from the `objectSid`
//! index by AD and Samba) takes 0.02 s. A converge of a known group reads that one object.
//!
//! # Guarantees
//! - The remembered object is taken only when it still carries our anchor in
//!   `adminDescription`, its anchors agree and it lies under an owned OU: the ownership rule
//!   of [`Directory::find_owned`]. Anything else (no SID remembered, the object gone, moved
//!   out of the owned OUs, tampered with) falls back to that full search, with its conflict
//!   reporting. The fast path never answers "absent", so it never leads to a create.
//! - It does not look for a second object carrying the anchor: it is for converging a group
//!   only. Destructive paths (delete, sweep) keep the full search.
//!
//! Imports: the directory's own modules and [`crate::model`].

use ldap3::Scope;

use super::error::{DirectoryError, ResultCode};
use super::plan::ActualGroup;
use super::read::{GROUP_ATTRS, carries_anchor, to_actual};
use super::seam::{DnForm, Ldap};
use super::{Directory, mapping};
use crate::model::{dn, sid};

/// Whether a remembered object is still ours for `anchor`. Pure.
fn still_ours(a: &ActualGroup, anchor: &str, owned_ous: &[String]) -> bool {
    carries_anchor(a, anchor) && owned_ous.iter().any(|ou| dn::is_under(&a.dn, ou))
}

impl<L: Ldap> Directory<L> {
    /// The group we own for cloud group `id`, read first at `remembered_sid` (one indexed base
    /// read) and searched for by anchor only when that object is not, or no longer, ours.
    pub async fn find_owned_remembered(
        &self,
        group_id: &str,
        remembered_sid: Option<&str>,
    ) -> Result<Option<ActualGroup>, DirectoryError> {
        if let Some(found) = self.read_remembered(group_id, remembered_sid).await? {
            return Ok(Some(found));
        }
        self.find_owned(group_id).await
    }

    /// The object holding `remembered_sid`, if it is still ours for `group_id`.
    async fn read_remembered(
        &self,
        group_id: &str,
        remembered_sid: Option<&str>,
    ) -> Result<Option<ActualGroup>, DirectoryError> {
        let Some(s) = remembered_sid.filter(|s| sid::is_valid(s)) else {
            return Ok(None);
        };
        let anchor = mapping::anchor(group_id);
        let filter = format!(
            "(&(objectClass=group)(adminDescription={}))",
            dn::filter_value(&anchor)
        );
        let base = sid::member_value(s);
        let found = match self
            .conn
            .search(&base, Scope::Base, &filter, GROUP_ATTRS, DnForm::Plain)
            .await
        {
            Ok(found) => found,
            Err(e) if e.result_code() == Some(ResultCode::NO_SUCH_OBJECT) => return Ok(None),
            Err(e) => return Err(e),
        };
        let [entry] = found.as_slice() else {
            return Ok(None);
        };
        let actual = to_actual(entry);
        Ok(still_ours(&actual, &anchor, &self.owned_ous).then_some(actual))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OU: &str = "OU=Cloud,DC=t";

    fn group(dn: &str, admin: Option<&str>, ext: Option<&str>) -> ActualGroup {
        ActualGroup {
            dn: dn.into(),
            admin_description: admin.map(Into::into),
            external_id: ext.map(Into::into),
            ..ActualGroup::default()
        }
    }

    #[test]
    fn a_remembered_object_is_ours_only_with_our_anchor_agreeing_under_an_owned_ou() {
        let ous = [OU.to_string()];
        let a = "Group_g1";
        assert!(still_ours(
            &group("CN=G,OU=Cloud,DC=t", Some(a), None),
            a,
            &ous
        ));
        assert!(still_ours(
            &group("CN=G,OU=Cloud,DC=t", Some("group_G1"), Some(a)),
            a,
            &ous
        ));
        assert!(!still_ours(
            &group("CN=G,OU=Cloud,DC=t", Some("Group_g2"), None),
            a,
            &ous
        ));
        assert!(!still_ours(
            &group("CN=G,OU=Cloud,DC=t", None, Some(a)),
            a,
            &ous
        ));
        assert!(!still_ours(
            &group("CN=G,OU=Cloud,DC=t", Some(a), Some("Group_g2")),
            a,
            &ous
        ));
        assert!(!still_ours(
            &group("CN=G,OU=Elsewhere,DC=t", Some(a), None),
            a,
            &ous
        ));
    }
}
