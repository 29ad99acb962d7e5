//! Members: resolving cloud members to AD SIDs, and adding or removing them in batches.
//!
//! Batches of `member_batch_size` values per modify; a batch refused because one value is
//! already there (68/20), already gone (53/16) or names no AD object (32, or Samba's 53) is
//! retried value by value, so one bad member never blocks the others.
//!
//! # Guarantees
//! - Members are matched by SID only; a member with no AD object is skipped and reported
//!   ([`Event::MembersSkipped`]), never guessed by name.
//! - A group synced *from* AD is referenced by its original object's SID.
//!
//! Imports: the directory's own modules, [`crate::graph::identity`], [`crate::queue`] (records),
//! [`crate::model`].

use std::collections::BTreeSet;

use ldap3::Mod;

use super::apply::{Applier, ApplyError, set};
use super::error::ResultCode;
use super::plan::Operation;
use super::seam::Ldap;
use crate::graph::identity::{AdIdentity, identity};
use crate::model::{Event, MemberKind, MemberRef, sid};

/// Members read from the mirror at a time while a group's SIDs are resolved: a large group's
/// member list is never held whole beside its SIDs.
const MIRROR_READ: usize = 1_000;

impl<L: Ldap> Applier<L> {
    /// The AD SIDs of every member the mirror lists for the group (those with an AD object).
    pub(super) async fn desired_member_sids(
        &self,
        group_id: &str,
    ) -> Result<BTreeSet<String>, ApplyError> {
        let mut out = BTreeSet::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .members_page(group_id, after.as_ref(), MIRROR_READ)?;
            for m in &page {
                if let Some(s) = self.member_sid(m).await? {
                    out.insert(s);
                }
            }
            if page.len() < MIRROR_READ {
                return Ok(out);
            }
            after = page.into_iter().last();
        }
    }

    /// The AD SID of a cloud member, or `None` (skipped and counted) if it has no AD object.
    pub(super) async fn member_sid(&self, m: &MemberRef) -> Result<Option<String>, ApplyError> {
        let skipped = |reason: &'static str| {
            self.events()
                .emit(Event::MembersSkipped { reason, count: 1 })
        };
        match m.kind {
            MemberKind::User => match identity(self.store.user(&m.id)?.as_ref()) {
                Ok(AdIdentity::Sid(s)) => Ok(Some(s)),
                Ok(other) => {
                    // No SID from Graph: find the account by sAMAccountName (or its DN).
                    let found = self.dir.sid_of(&other).await?;
                    if found.is_none() {
                        skipped("unresolved");
                    }
                    Ok(found)
                }
                Err(why) => {
                    skipped(why.label());
                    Ok(None)
                }
            },
            MemberKind::Group => {
                let record = self.store.group(&m.id)?;
                if let Some(sid) = record.as_ref().and_then(synced_group_sid) {
                    // A group synced from AD: its original object, by the SID Graph reports.
                    return Ok(Some(sid));
                }
                if !record.is_some_and(|g| g.wanted()) {
                    skipped("not_in_scope");
                    return Ok(None);
                }
                // Recorded when the nested group's object was confirmed: no search needed.
                if let Some(sid) = self
                    .store
                    .materialized_sid(&m.id)?
                    .filter(|s| sid::is_valid(s))
                {
                    return Ok(Some(sid));
                }
                match self.locate(&m.id).await?.and_then(|a| a.sid) {
                    Some(s) => Ok(Some(s)),
                    None => {
                        skipped("unresolved"); // written once the nested group exists
                        Ok(None)
                    }
                }
            }
            // Counted once, by the poller, when the page is committed.
            MemberKind::Other => Ok(None),
        }
    }

    /// Adds members; returns those skipped because they name no AD object.
    pub(super) async fn add_members(
        &self,
        dn: &str,
        sids: &[String],
    ) -> Result<Vec<String>, ApplyError> {
        self.change_members(dn, sids, true).await
    }

    pub(super) async fn remove_members(&self, dn: &str, sids: &[String]) -> Result<(), ApplyError> {
        self.change_members(dn, sids, false).await.map(drop)
    }

    /// Adds or removes members in batches; a batch refused because one value is already there
    /// (or already gone, or names no AD object) is retried value by value, treating those codes
    /// as done (or, for a missing object, skipped: those are returned).
    async fn change_members(
        &self,
        dn: &str,
        sids: &[String],
        add: bool,
    ) -> Result<Vec<String>, ApplyError> {
        let mut skipped = Vec::new();
        if sids.is_empty() {
            return Ok(skipped);
        }
        self.record(|| {
            if add {
                Operation::AddMembers {
                    dn: dn.to_string(),
                    members: sids.to_vec(),
                }
            } else {
                Operation::RemoveMembers {
                    dn: dn.to_string(),
                    members: sids.to_vec(),
                }
            }
        });
        if self.dry_run {
            return Ok(skipped);
        }
        // Already done: add → "already a member" (68/20); remove → "not a member" (53/16).
        let done = |code: ResultCode| {
            if add {
                matches!(code, ResultCode::ALREADY_EXISTS | ResultCode::VALUE_EXISTS)
            } else {
                matches!(code, ResultCode::UNWILLING | ResultCode::NO_SUCH_ATTRIBUTE)
            }
        };
        // The SID names no AD object: 32 (Windows), 53 "specified sid doesn't exist" (Samba).
        let missing = |code: ResultCode| {
            add && matches!(code, ResultCode::NO_SUCH_OBJECT | ResultCode::UNWILLING)
        };
        let modify = |values: Vec<String>| {
            let vals = set(values.iter().map(|s| sid::member_value(s)));
            let m = if add {
                Mod::Add("member".to_string(), vals)
            } else {
                Mod::Delete("member".to_string(), vals)
            };
            let conn = self.dir.conn.clone();
            async move { conn.modify(dn, vec![m]).await }
        };
        for chunk in sids.chunks(self.batch) {
            match modify(chunk.to_vec()).await {
                Ok(()) => continue,
                Err(e) if chunk.len() == 1 && e.result_code().is_some_and(done) => continue,
                Err(e) if e.result_code().is_some_and(|c| done(c) || missing(c)) => {}
                Err(e) => return Err(e.into()),
            }
            // One value spoiled the batch: go value by value.
            for s in chunk {
                match modify(vec![s.clone()]).await {
                    Ok(()) => {}
                    Err(e) if e.result_code().is_some_and(done) => {}
                    Err(e) if e.result_code().is_some_and(missing) => {
                        self.events().emit(Event::MembersSkipped {
                            reason: "unresolved",
                            count: 1,
                        });
                        tracing::warn!(group = dn, member_sid = %s, "member has no AD object; skipped");
                        skipped.push(s.clone());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(skipped)
    }
}

/// The AD SID of a group that came from AD (`onPremisesSyncEnabled: true`, or its source of
/// authority converted to the cloud) with a well-formed `onPremisesSecurityIdentifier`: its
/// original AD object, which can be a member whether or not the service manages it.
fn synced_group_sid(record: &crate::queue::GroupRecord) -> Option<String> {
    let props = &record.props;
    if props.on_premises_sync_enabled != Some(true) && !props.source_converted() {
        return None;
    }
    props
        .on_premises_security_identifier
        .as_deref()
        .filter(|s| sid::is_valid(s))
        .map(str::to_string)
}
