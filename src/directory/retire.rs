//! Retiring AD groups whose cloud group is gone: deletes, the soft-delete policy (freeze,
//! convert to distribution, move) and the orphan sweep.
//!
//! # Guarantees
//! - Every destructive action is re-validated when it executes: the mirror must no longer want
//!   the group **and** Graph, asked right then, must say it is not live
//!   ([`crate::queue::safety::decide`]). A queued or held delete is only a hint.
//! - Sweeps run only on a complete picture ([`crate::queue::Store::complete_picture`]): never during a full
//!   enumeration, never before the first one has completed. Held groups are left out of them.
//! - A sweep that would take more destructive actions than `delete_threshold` holds them all for
//!   `approve-deletes`.
//! - Nothing without our anchor under an owned OU is ever touched (see [`super::Directory::find_owned`]).
//! - A sweep inside a bulk pass takes *which* groups to consider from the pass's listing
//!   ([`super::owned::OwnedListing::unused`]) and reads each candidate afresh; it never acts on
//!   a listed entry. Outside one it lists the owned groups itself.
//!
//! Imports: `directory` (the seam, mapping, plan), `queue` (mirror, safety), `graph` (errors),
//! `model` (delete reasons, events).

use std::future::Future;
use std::pin::Pin;

use super::apply::{Applier, ApplyError};
use super::error::{DirectoryError, ResultCode};
use super::mapping;
use super::plan::{ActualGroup, Operation};
use super::seam::Ldap;
use crate::config::{AdoptedDelete, SoftDeleteAction};
use crate::graph::GraphError;
use crate::model::dn;
use crate::model::event::ManagedGroups;
use crate::model::{DeleteReason, Event};
use crate::queue::safety::{self, CloudNow, Decision};

/// A boxed future, so [`CloudOracle`] can be used as a trait object.
pub type OracleFuture<'a> = Pin<Box<dyn Future<Output = Result<CloudNow, GraphError>> + Send + 'a>>;

/// Asks the cloud where a group stands, right before a destructive action. Implemented over
/// Graph (`/groups/{id}`, then `/directory/deletedItems/{id}`) by the composition root; an
/// in-process fake in tests.
pub trait CloudOracle: Send + Sync {
    /// Graph's answer now. An error means "don't know": the action waits and is retried.
    fn group_state<'a>(&'a self, group_id: &'a str) -> OracleFuture<'a>;
    /// Whether the group's source of authority is the cloud now
    /// (`onPremisesSyncBehavior.isCloudManaged`), asked before its AD original is adopted.
    fn cloud_managed<'a>(&'a self, group_id: &'a str) -> ManagedFuture<'a>;
}

/// A boxed future answering [`CloudOracle::cloud_managed`].
pub type ManagedFuture<'a> = Pin<Box<dyn Future<Output = Result<bool, GraphError>> + Send + 'a>>;

impl<L: Ldap> Applier<L> {
    /// A queued delete (hard delete, soft delete, leaving scope, released hold): re-validated
    /// against the mirror and the cloud, then executed as the decision says.
    pub(super) async fn retire(
        &self,
        group_id: &str,
        reason: DeleteReason,
    ) -> Result<(), ApplyError> {
        if safety::mirror_wants(self.store.group(group_id)?.as_ref()) {
            tracing::info!(
                reason = reason.as_str(),
                "delete cancelled: the group is live and in scope"
            );
            self.count_kept("wanted");
            return Ok(());
        }
        let Some(actual) = self.dir.find_owned(group_id).await? else {
            return Ok(());
        };
        let cloud = self.cloud.group_state(group_id).await?;
        // Read the mirror again after the lookup: the poller may have committed a restore.
        let decision = safety::decide(self.store.group(group_id)?.as_ref(), cloud);
        self.execute(group_id, &actual, decision, reason, cloud)
            .await
    }

    /// Carries out a decision on an owned group.
    async fn execute(
        &self,
        group_id: &str,
        actual: &ActualGroup,
        decision: Decision,
        reason: DeleteReason,
        cloud: CloudNow,
    ) -> Result<(), ApplyError> {
        // Whatever happens next, later applies read this group afresh.
        self.owned.forget(group_id).await;
        if !matches!(decision, Decision::Keep(_)) {
            let record = self.store.group(group_id)?;
            let props = record.as_ref().map(|r| &r.props);
            if self.is_adopted(props, actual) {
                return self
                    .retire_adopted(group_id, actual, decision, reason, props)
                    .await;
            }
        }
        match decision {
            Decision::Keep(why) => {
                tracing::info!(
                    dn = %actual.dn,
                    reason = reason.as_str(),
                    cloud = cloud.as_str(),
                    kept = why.as_str(),
                    "destructive action cancelled; AD group left as it is"
                );
                self.count_kept(why.as_str());
                self.record(|| Operation::Skip {
                    dn: actual.dn.clone(),
                    reason: format!("kept: {} (cloud: {})", why.as_str(), cloud.as_str()),
                });
                Ok(())
            }
            Decision::Delete => self.delete_object(group_id, actual, reason).await,
            Decision::SoftPolicy => match self.soft_delete {
                SoftDeleteAction::Freeze => {
                    self.record(|| Operation::Freeze {
                        dn: actual.dn.clone(),
                        reason: reason.as_str(),
                    });
                    Ok(())
                }
                SoftDeleteAction::Delete => self.delete_object(group_id, actual, reason).await,
                SoftDeleteAction::ConvertToDistribution => self.convert(actual).await,
                SoftDeleteAction::Move => {
                    let ou = self.soft_delete_ou.clone().unwrap_or_default();
                    if !dn::same_dn(&super::apply::parent_of(&actual.dn), &ou) {
                        self.rename(actual, &actual.cn, &ou).await?;
                    }
                    Ok(())
                }
            },
        }
    }

    /// An adopted original whose cloud group is gone or out of scope. Its source of authority
    /// back in AD (rollback): released. A hard delete: deleted only under
    /// `ad.adopted_delete = "delete"`. Anything else: frozen and reported, never converted
    /// or moved, whatever `ad.soft_delete` says (those policies are for groups we created).
    async fn retire_adopted(
        &self,
        group_id: &str,
        actual: &ActualGroup,
        decision: Decision,
        reason: DeleteReason,
        props: Option<&crate::model::GroupProps>,
    ) -> Result<(), ApplyError> {
        if props.is_some_and(|p| p.on_premises_sync_enabled == Some(true)) {
            return self.release(group_id, actual).await;
        }
        if decision == Decision::Delete && self.adopted_delete == AdoptedDelete::Delete {
            return self.delete_object(group_id, actual, reason).await;
        }
        tracing::warn!(
            dn = %actual.dn,
            reason = reason.as_str(),
            "adopted original left as it is (ad.adopted_delete = \"freeze\"; it holds the SID of the group's ACLs)"
        );
        self.count_kept("adopted");
        self.record(|| Operation::Freeze {
            dn: actual.dn.clone(),
            reason: "adopted original",
        });
        Ok(())
    }

    async fn convert(&self, actual: &ActualGroup) -> Result<(), ApplyError> {
        let to = mapping::UNIVERSAL_DISTRIBUTION.to_string();
        let from = actual.group_type.map(|t| t.to_string());
        if from.as_deref() == Some(to.as_str()) {
            return Ok(());
        }
        let op = Operation::Update {
            dn: actual.dn.clone(),
            attr: "groupType".into(),
            from,
            to: Some(to),
        };
        self.update_attributes(&[op]).await
    }

    async fn delete_object(
        &self,
        group_id: &str,
        actual: &ActualGroup,
        reason: DeleteReason,
    ) -> Result<(), ApplyError> {
        self.record(|| Operation::Delete {
            dn: actual.dn.clone(),
            reason: reason.as_str(),
        });
        if self.dry_run {
            return Ok(());
        }
        match self.dir.conn.delete(&actual.dn).await {
            Err(e) if e.result_code() == Some(ResultCode::NO_SUCH_OBJECT) => {}
            other => other?,
        }
        self.store.dematerialize(group_id)?;
        self.events()
            .emit(Event::ManagedGroups(ManagedGroups::Deleted));
        Ok(())
    }

    /// After a full enumeration (or periodically): owned AD groups the mirror does not know are
    /// classified by the cloud and handled as the decision says, under the threshold.
    pub(super) async fn sweep(&self) -> Result<(), ApplyError> {
        if !self.store.complete_picture()? {
            tracing::info!(
                "sweep skipped: no complete full enumeration yet, or one is in progress"
            );
            return Ok(());
        }
        let owned = match self.owned.unused(&self.dir).await? {
            Some(ids) => self.unused_candidates(ids).await?,
            None => {
                let owned = self.dir.list_owned().await?;
                self.events()
                    .emit(Event::ManagedGroups(ManagedGroups::Counted(
                        owned.len() as u64
                    )));
                owned
            }
        };
        let mut decided = Vec::new();
        for (id, actual) in owned {
            let record = self.store.group(&id)?;
            if !safety::sweep_candidate(record.as_ref(), self.store.is_held(&id)?)
                || self.store.frozen(&id)?.is_some()
            {
                continue; // a frozen group (another writer) is not touched until released
            }
            let cloud = self.cloud.group_state(&id).await?;
            if !self.store.complete_picture()? {
                tracing::info!("sweep abandoned: a full enumeration started");
                return Ok(());
            }
            // Read the mirror again after the lookup: the poller may have committed meanwhile.
            if let Some(decision) = safety::sweep_decision(self.store.group(&id)?.as_ref(), cloud) {
                decided.push((id, actual, decision, cloud));
            }
        }
        let destructive: Vec<_> = decided
            .iter()
            .filter(|(_, _, d, _)| safety::is_destructive(*d, self.soft_delete))
            .collect();
        if destructive.len() > self.delete_threshold {
            self.hold_sweep(&destructive)?;
            return Ok(());
        }
        for (id, actual, decision, cloud) in &decided {
            if safety::is_destructive(*decision, self.soft_delete) {
                self.events().emit(Event::ReconcileCorrection {
                    kind: "orphan",
                    count: 1,
                });
            }
            let reason = match decision {
                Decision::SoftPolicy => DeleteReason::SoftDeleted,
                _ => DeleteReason::Orphaned,
            };
            self.execute(id, actual, *decision, reason, *cloud).await?;
        }
        Ok(())
    }

    /// The sweep's candidates among the groups a bulk pass listed and did not use, each read
    /// afresh ([`super::Directory::find_owned`]): one search per candidate (none in a resync
    /// of a converged AD) instead of a second listing. A candidate that is gone is skipped; one
    /// that has become a conflict is reported and left as it is.
    async fn unused_candidates(
        &self,
        ids: Vec<String>,
    ) -> Result<Vec<(String, ActualGroup)>, ApplyError> {
        let mut owned = Vec::new();
        for id in ids {
            if !safety::sweep_candidate(self.store.group(&id)?.as_ref(), self.store.is_held(&id)?) {
                continue;
            }
            match self.dir.find_owned(&id).await {
                Ok(Some(actual)) => owned.push((id, actual)),
                Ok(None) => {}
                Err(DirectoryError::Conflict { kind, detail }) => {
                    tracing::warn!(kind, %detail, "sweep candidate left untouched");
                }
                Err(e) => return Err(e.into()),
            }
        }
        tracing::info!(
            candidates = owned.len(),
            "sweep candidates taken from the bulk pass's listing"
        );
        Ok(owned)
    }

    fn hold_sweep(
        &self,
        destructive: &[&(String, ActualGroup, Decision, CloudNow)],
    ) -> Result<(), ApplyError> {
        for (_, a, _, _) in destructive {
            self.record(|| Operation::Skip {
                dn: a.dn.clone(),
                reason: "held by delete_threshold".into(),
            });
        }
        if self.dry_run {
            return Ok(());
        }
        let held: Vec<_> = destructive
            .iter()
            .map(|(id, _, d, _)| {
                let reason = match d {
                    Decision::SoftPolicy => DeleteReason::SoftDeleted,
                    _ => DeleteReason::Orphaned,
                };
                (id.clone(), reason)
            })
            .collect();
        self.store.hold_deletes(&held)?;
        // The held-deletes count changed: observers get the queue's counts afresh.
        self.events().emit(Event::Queue(self.store.stats()?));
        tracing::warn!(
            count = held.len(),
            threshold = self.delete_threshold,
            "sweep actions held; run approve-deletes"
        );
        Ok(())
    }
}

impl<L: Ldap> Applier<L> {
    /// A destructive action cancelled when re-checked, reported with why.
    fn count_kept(&self, why: &'static str) {
        self.events().emit(Event::DeleteCancelled { reason: why });
    }
}
