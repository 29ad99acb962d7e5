//! Creating a group: the cheapest correct write is one `add` that carries the first
//! `member_batch_size` members; the rest follow in batched modifies, with no read of the
//! growing member list in between (the mirror says what the members are).
//!
//! # Guarantees
//! - Nothing is searched before the add: AD itself refuses a taken DN or `sAMAccountName`
//!   (68). Only then is the refusal explained — our own object from an earlier attempt that
//!   timed out (then it is converged as an existing group), or a name or `sAMAccountName` held
//!   by an object we do not own (a reported [`Event::Conflict`]; that object is never touched).
//! - A member value that names no AD object spoils only the inline batch: the group is added
//!   bare and its members are written in batches, value by value where one is refused.
//! - Once the object exists, parents that already list it are queued (after a read of its
//!   SID), so nesting survives crashes; a group no parent lists costs no read.
//!
//! Imports: the directory's own modules, [`crate::model`].

use super::DirectoryError;
use super::apply::{Applier, ApplyError, set};
use super::error::ResultCode;
use super::mapping::DesiredGroup;
use super::plan::{self, ActualGroup, Operation};
use super::seam::Ldap;
use crate::model::Event;
use crate::model::event::ManagedGroups;

/// What creating a group came to.
// One value per apply, matched at once: boxing the object would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Created {
    /// A new object, with every member the mirror lists (as far as AD has them).
    New,
    /// Our object was already there (an earlier add that timed out had succeeded).
    Existing(ActualGroup),
}

impl<L: Ldap> Applier<L> {
    /// Creates the group with its members (see the module's guarantees).
    pub(super) async fn create(
        &self,
        group_id: &str,
        d: &DesiredGroup,
    ) -> Result<Created, ApplyError> {
        let mut want: Vec<String> = self
            .desired_member_sids(group_id)
            .await?
            .into_iter()
            .collect();
        let attrs = plan::create_attrs(d, self.dir.has_external_id);
        self.record(|| Operation::Create {
            dn: d.dn.clone(),
            attrs: attrs.clone(),
        });
        if self.dry_run {
            self.add_members(&d.dn, &want).await?; // recorded, not executed
            return Ok(Created::New);
        }
        // The first batch goes inline with the add; `want` keeps it, `rest` the others.
        let rest = want.split_off(want.len().min(self.batch));
        let inline = &want[..];
        let rest = match self.add_object(d, &attrs, inline).await {
            Ok(()) => rest,
            Err(e) if e.result_code() == Some(ResultCode::ALREADY_EXISTS) => {
                return self.explain_taken(group_id, d, e).await;
            }
            // A member value names no AD object (32 on Windows, 53 on Samba): add the group
            // bare; the batches below find the culprit value by value.
            Err(e)
                if !inline.is_empty()
                    && matches!(
                        e.result_code(),
                        Some(ResultCode::NO_SUCH_OBJECT | ResultCode::UNWILLING)
                    ) =>
            {
                tracing::info!(error = %e, "adding with members refused; adding the group bare");
                match self.add_object(d, &attrs, &[]).await {
                    Ok(()) => want.into_iter().chain(rest).collect(),
                    Err(e) if e.result_code() == Some(ResultCode::ALREADY_EXISTS) => {
                        return self.explain_taken(group_id, d, e).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        self.events()
            .emit(Event::ManagedGroups(ManagedGroups::Created));
        self.add_members(&d.dn, &rest).await?;
        self.queue_waiting_parents(group_id).await?;
        Ok(Created::New)
    }

    /// One LDAP add of the group, carrying `members` inline.
    async fn add_object(
        &self,
        d: &DesiredGroup,
        attrs: &[(String, Vec<String>)],
        members: &[String],
    ) -> Result<(), DirectoryError> {
        let mut entry: Vec<_> = attrs
            .iter()
            .map(|(k, v)| (k.clone(), set(v.iter().cloned())))
            .collect();
        if !members.is_empty() {
            self.record(|| Operation::AddMembers {
                dn: d.dn.clone(),
                members: members.to_vec(),
            });
            entry.push((
                "member".to_string(),
                set(members.iter().map(|s| crate::model::sid::member_value(s))),
            ));
        }
        self.dir.conn.add(&d.dn, entry).await
    }

    /// AD refused the add with 68: ours already (an earlier attempt), or a name or
    /// `sAMAccountName` someone else holds (a conflict, left alone).
    async fn explain_taken(
        &self,
        group_id: &str,
        d: &DesiredGroup,
        refused: DirectoryError,
    ) -> Result<Created, ApplyError> {
        if let Some(a) = self.dir.find_owned(group_id).await? {
            return Ok(Created::Existing(a));
        }
        let (kind, detail) = if self.dir.dn_exists(&d.dn).await? {
            (
                "name",
                format!(
                    "{} exists and does not carry the anchor {}; left untouched",
                    d.dn, d.anchor
                ),
            )
        } else if let Some(h) = self
            .dir
            .sam_account_name_holders(&d.sam_account_name)
            .await?
            .first()
        {
            (
                "sam_account_name",
                format!(
                    "sAMAccountName {} is taken by {h}; left untouched",
                    d.sam_account_name
                ),
            )
        } else {
            ("name", format!("creating {}: {refused}", d.dn))
        };
        self.events().emit(Event::Conflict { kind });
        Err(DirectoryError::Conflict { kind, detail }.into())
    }

    /// Parents that listed this group before it existed wait for its SID: read it once and
    /// queue them (in the same transaction that records the object). A group no parent lists
    /// costs nothing here; a parent that lists it later finds the object in AD.
    async fn queue_waiting_parents(&self, group_id: &str) -> Result<(), ApplyError> {
        if self.parent_changes(group_id)?.is_empty() {
            return Ok(());
        }
        if let Some(a) = self.dir.find_owned(group_id).await? {
            self.materialize(group_id, &a)?;
        }
        Ok(())
    }
}
