//! Adopting the original AD object of a group whose source of authority moved to the cloud
//! (Graph `onPremisesSyncBehavior.isCloudManaged = true`): the cloud group keeps its
//! original's `onPremisesSecurityIdentifier`, and that object — with the SID every ACL holds —
//! is managed in place, as Cloud Sync's provisioning to AD does.
//!
//! # Guarantees
//! - Such a group is never created: without an adoptable original nothing is written, and the
//!   reason is a reported conflict ([`Event::Conflict`] `adopt`, a dead letter naming the fix).
//! - An original is adopted only when Graph says the group is cloud-managed right now, when it
//!   lies under `ad.adopt_ous`, and when it carries no other group's anchor. Adopting it
//!   stamps the anchor (in the same modify as its other attributes); its DN, CN,
//!   `sAMAccountName` and `groupType` are kept ([`super::mapping::DesiredGroup::in_place`]).
//! - Releasing it (the source of authority went back to AD) removes only the anchor.
//!
//! Imports: the directory's own modules, [`crate::model`].

use ldap3::{Mod, Scope};

use super::apply::{Applier, ApplyError, set};
use super::error::ResultCode;
use super::plan::{ActualGroup, Operation};
use super::read::{GROUP_ATTRS, to_actual};
use super::seam::{DnForm, Ldap};
use super::{Directory, DirectoryError, mapping};
use crate::config::AdConfig;
use crate::model::{Event, GroupProps, dn, sid};

/// Why an original cannot be adopted (the conflict's detail, naming what the admin can do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `ad.adopt_ous` is empty: report, don't adopt (the default).
    NotConfigured,
    /// The cloud group's `onPremisesSecurityIdentifier` is not a SID.
    BadSid,
    /// Graph says the source of authority is not the cloud (yet, or any more).
    NotCloudManaged,
    /// No object holds the SID (deleted, or in another forest).
    Missing,
    /// The object holding the SID is not a group.
    NotAGroup,
    /// The original lies outside every `ad.adopt_ous`.
    Outside,
    /// The original carries another group's anchor.
    ForeignAnchor,
}

impl Refusal {
    /// What the admin reads: why, and what to do.
    pub fn explain(&self, group_id: &str, sid: &str, dn: Option<&str>) -> String {
        let at = dn.map(|d| format!(" ({d})")).unwrap_or_default();
        let why = match self {
            Refusal::NotConfigured => "ad.adopt_ous is empty, so originals are reported, never \
                 adopted; list the OU holding it in ad.adopt_ous to manage it in place"
                .to_string(),
            Refusal::BadSid => "its onPremisesSecurityIdentifier is not a SID".to_string(),
            Refusal::NotCloudManaged => "Graph says onPremisesSyncBehavior.isCloudManaged is \
                 not true: the source of authority is still AD"
                .to_string(),
            Refusal::Missing => "no AD object holds that SID; restore the original from the AD \
                 Recycle Bin (a new group would have a new SID), then `replay --dead`"
                .to_string(),
            Refusal::NotAGroup => "the object holding that SID is not a group".to_string(),
            Refusal::Outside => format!(
                "the original{at} is outside ad.adopt_ous; add its OU there to manage it in place"
            ),
            Refusal::ForeignAnchor => format!(
                "the original{at} carries another anchor in adminDescription or \
                 msDS-ExternalDirectoryObjectId; clear it if it is stale"
            ),
        };
        format!(
            "cloud group {group_id} came from AD (SID {sid}) and is now cloud-managed; nothing \
             was written and no group was created: {why}"
        )
    }
}

/// Whether `original` may be adopted for the group anchored `anchor`: a group, under one of
/// `adopt_ous`, carrying no anchor or ours. Pure.
pub fn adoptable(
    original: &ActualGroup,
    anchor: &str,
    adopt_ous: &[String],
) -> Result<(), Refusal> {
    if !adopt_ous.iter().any(|ou| dn::is_under(&original.dn, ou)) {
        return Err(Refusal::Outside);
    }
    let ours_or_none = |v: &Option<String>| {
        v.as_deref()
            .is_none_or(|v| v.trim().is_empty() || v.eq_ignore_ascii_case(anchor))
    };
    if !ours_or_none(&original.admin_description) || !ours_or_none(&original.external_id) {
        return Err(Refusal::ForeignAnchor);
    }
    Ok(())
}

impl<L: Ldap> Directory<L> {
    /// The group holding `sid`, wherever it is in the domain (a base search of `<SID=…>`, which
    /// AD and Samba resolve). The inner `Err` says why there is none to adopt: `Missing` if no
    /// object holds it, `NotAGroup` if a non-group does, `BadSid` if `sid` is not a SID (it is
    /// never put into a DN then).
    pub async fn find_by_sid(
        &self,
        sid: &str,
    ) -> Result<Result<ActualGroup, Refusal>, DirectoryError> {
        if !sid::is_valid(sid) {
            return Ok(Err(Refusal::BadSid));
        }
        let base = sid::member_value(sid);
        let found = match self
            .conn
            .search(
                &base,
                Scope::Base,
                "(objectClass=*)",
                &with_class(),
                DnForm::Plain,
            )
            .await
        {
            Ok(found) => found,
            Err(e) if e.result_code() == Some(ResultCode::NO_SUCH_OBJECT) => {
                return Ok(Err(Refusal::Missing));
            }
            Err(e) => return Err(e),
        };
        let Some(entry) = found.first() else {
            return Ok(Err(Refusal::Missing));
        };
        let is_group = entry
            .attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("objectClass"))
            .is_some_and(|(_, v)| v.iter().any(|c| c.eq_ignore_ascii_case("group")));
        Ok(if is_group {
            Ok(to_actual(entry))
        } else {
            Err(Refusal::NotAGroup)
        })
    }
}

/// The managed attributes and `objectClass`.
fn with_class() -> Vec<&'static str> {
    let mut attrs = GROUP_ATTRS.to_vec();
    attrs.push("objectClass");
    attrs
}

impl<L: Ldap> Applier<L> {
    /// The original to converge for a source-converted group that has no anchored object yet:
    /// found by SID and checked (see the module's guarantees). The anchor is stamped by the
    /// caller's attribute update, together with the group's other attributes.
    pub(super) async fn adopt(
        &self,
        group_id: &str,
        props: &GroupProps,
    ) -> Result<ActualGroup, ApplyError> {
        let sid = props
            .on_premises_security_identifier
            .clone()
            .unwrap_or_default();
        let refuse = |r: Refusal, dn: Option<&str>| -> ApplyError {
            self.events().emit(Event::Conflict { kind: "adopt" });
            let detail = r.explain(group_id, &sid, dn);
            tracing::warn!(group = group_id, %detail, "original not adopted");
            DirectoryError::Conflict {
                kind: "adopt",
                detail,
            }
            .into()
        };
        let adopt_ous = &self.dir.config().adopt_ous;
        if adopt_ous.is_empty() {
            return Err(refuse(Refusal::NotConfigured, None));
        }
        if !sid::is_valid(&sid) {
            return Err(refuse(Refusal::BadSid, None));
        }
        if !self.cloud.cloud_managed(group_id).await? {
            return Err(refuse(Refusal::NotCloudManaged, None));
        }
        let original = match self.dir.find_by_sid(&sid).await? {
            Ok(original) => original,
            Err(r) => return Err(refuse(r, None)),
        };
        if let Err(r) = adoptable(&original, &mapping::anchor(group_id), adopt_ous) {
            return Err(refuse(r, Some(&original.dn)));
        }
        tracing::info!(group = group_id, dn = %original.dn, %sid, "adopting the original AD group in place");
        Ok(original)
    }

    /// Stops managing an adopted original whose source of authority went back to AD: removes
    /// our anchor values, nothing else. The object, its SID, members and attributes stay.
    pub(super) async fn release(
        &self,
        group_id: &str,
        actual: &ActualGroup,
    ) -> Result<(), ApplyError> {
        for (attr, value) in anchor_values(actual) {
            self.record(|| Operation::Update {
                dn: actual.dn.clone(),
                attr: attr.into(),
                from: Some(value),
                to: None,
            });
        }
        if !self.dry_run {
            self.dir.release(actual).await?;
        }
        tracing::info!(group = group_id, dn = %actual.dn, "released the adopted original: its source of authority is AD again");
        Ok(())
    }

    /// Whether `actual` is an adopted original rather than a group the service created: it
    /// holds the SID the cloud group came with, or it lies where only originals are adopted
    /// ([`adopted_by_place`]; a lost state still finds those).
    pub(super) fn is_adopted(&self, props: Option<&GroupProps>, actual: &ActualGroup) -> bool {
        let same_sid = props
            .and_then(|p| p.on_premises_security_identifier.as_deref())
            .zip(actual.sid.as_deref())
            .is_some_and(|(want, have)| want.eq_ignore_ascii_case(have));
        same_sid || adopted_by_place(&actual.dn, self.dir.config())
    }
}

/// Whether an owned object at `dn` is an adopted original by where it is: under an
/// `ad.adopt_ous` OU and under none of the OUs the service creates groups in. Pure.
pub fn adopted_by_place(dn: &str, cfg: &AdConfig) -> bool {
    let created_here = dn::is_under(dn, &cfg.target_ou)
        || cfg
            .target_ou_m365
            .as_deref()
            .is_some_and(|ou| dn::is_under(dn, ou));
    !created_here && cfg.adopt_ous.iter().any(|ou| dn::is_under(dn, ou))
}

/// The anchor values an object carries (what releasing it removes).
fn anchor_values(actual: &ActualGroup) -> Vec<(&'static str, String)> {
    [
        ("adminDescription", &actual.admin_description),
        ("msDS-ExternalDirectoryObjectId", &actual.external_id),
    ]
    .into_iter()
    .filter_map(|(attr, v)| v.clone().map(|v| (attr, v)))
    .collect()
}

impl<L: Ldap> Directory<L> {
    /// Removes our anchor values from an adopted original (one modify), and nothing else.
    pub async fn release(&self, actual: &ActualGroup) -> Result<(), DirectoryError> {
        let mods: Vec<Mod<String>> = anchor_values(actual)
            .into_iter()
            .map(|(attr, v)| Mod::Delete(attr.to_string(), set([v])))
            .collect();
        if mods.is_empty() {
            return Ok(());
        }
        self.conn.modify(&actual.dn, mods).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANCHOR: &str = "Group_g1";

    fn original(dn: &str, admin: Option<&str>, ext: Option<&str>) -> ActualGroup {
        ActualGroup {
            dn: dn.into(),
            admin_description: admin.map(str::to_string),
            external_id: ext.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn only_originals_under_adopt_ous_without_a_foreign_anchor_are_adopted() {
        let ous = vec!["OU=Groups,DC=t".to_string()];
        let ok = original("CN=Finance,OU=Groups,DC=t", None, None);
        assert_eq!(adoptable(&ok, ANCHOR, &ous), Ok(()));
        let deeper = original("CN=F,OU=Sub,OU=groups,DC=T", Some(""), None);
        assert_eq!(
            adoptable(&deeper, ANCHOR, &ous),
            Ok(()),
            "below, any case, blank anchor"
        );
        let ours = original("CN=F,OU=Groups,DC=t", Some("group_G1"), Some("Group_g1"));
        assert_eq!(
            adoptable(&ours, ANCHOR, &ous),
            Ok(()),
            "already ours: a retry"
        );
        let outside = original("CN=F,OU=Other,DC=t", None, None);
        assert_eq!(adoptable(&outside, ANCHOR, &ous), Err(Refusal::Outside));
        assert_eq!(adoptable(&ok, ANCHOR, &[]), Err(Refusal::Outside));
        let theirs = original("CN=F,OU=Groups,DC=t", Some("Group_g2"), None);
        assert_eq!(
            adoptable(&theirs, ANCHOR, &ous),
            Err(Refusal::ForeignAnchor)
        );
        let note = original("CN=F,OU=Groups,DC=t", Some("owned by HR"), None);
        assert_eq!(adoptable(&note, ANCHOR, &ous), Err(Refusal::ForeignAnchor));
        let ext = original("CN=F,OU=Groups,DC=t", None, Some("User_x"));
        assert_eq!(adoptable(&ext, ANCHOR, &ous), Err(Refusal::ForeignAnchor));
    }

    #[test]
    fn adopted_by_place_means_an_adopt_ou_that_is_not_a_target_ou() {
        let mut cfg = crate::directory::fake::ad_config("OU=Cloud,OU=Groups,DC=t");
        let dn = "CN=F,OU=Groups,DC=t";
        assert!(!adopted_by_place(dn, &cfg), "no adopt_ous");
        cfg.adopt_ous = vec!["OU=Groups,DC=t".into()];
        assert!(adopted_by_place(dn, &cfg));
        assert!(
            !adopted_by_place("CN=Ours,OU=Cloud,OU=Groups,DC=t", &cfg),
            "created there"
        );
        cfg.target_ou_m365 = Some("OU=Groups,DC=t".into());
        assert!(
            !adopted_by_place(dn, &cfg),
            "also an OU groups are created in"
        );
    }

    #[test]
    fn refusals_name_the_fix() {
        let say = |r: Refusal| r.explain("g1", "S-1-5-21-1-2-3-1104", Some("CN=F,OU=X,DC=t"));
        assert!(say(Refusal::NotConfigured).contains("ad.adopt_ous"));
        assert!(say(Refusal::Outside).contains("CN=F,OU=X,DC=t"));
        assert!(say(Refusal::Missing).contains("Recycle Bin"));
        assert!(say(Refusal::NotCloudManaged).contains("isCloudManaged"));
        for r in [Refusal::BadSid, Refusal::NotAGroup, Refusal::ForeignAnchor] {
            let text = say(r);
            assert!(
                text.contains("no group was created") && text.contains("S-1-5-21-1-2-3-1104"),
                "{text}"
            );
        }
    }
}
