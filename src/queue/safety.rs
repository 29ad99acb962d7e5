//! Delete safety: whether a destructive action (delete, convert to distribution, move) may run
//! *now*, decided from the mirror and from the cloud at the moment of execution.
//!
//! # Guarantees
//! - Queued deletes, held deletes and round-staged deletes are hints, never authority. An action
//!   runs only when the mirror no longer wants the group **and** Graph, asked right before, says
//!   it is not live. When the two disagree, AD is left as it is.
//! - A group the mirror wants is never touched, whatever the cloud lookup says (replication lag
//!   can make a live group answer 404 for a moment).
//! - Orphans are judged only from a complete picture: see [`Store::complete_picture`].
//!
//! Pure functions, no I/O: the worker asks Graph and passes the answer in. Imports: records and
//! config only.

use super::records::{GroupRecord, GroupStatus};
use crate::config::SoftDeleteAction;

/// Graph's answer about a group right now: where it stands and, when it is live, whether the
/// contract's scope and `[graph.scope]` still admit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudNow {
    /// It exists; `in_scope` is the scope evaluated on its current properties.
    Live {
        /// Admitted by the scope now.
        in_scope: bool,
    },
    /// Soft-deleted and restorable (200 from `deletedItems/{id}`).
    SoftDeleted,
    /// Gone for good: 404 from both `groups/{id}` and `deletedItems/{id}`.
    Purged,
}

impl CloudNow {
    /// Label for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CloudNow::Live { in_scope: true } => "live",
            CloudNow::Live { in_scope: false } => "live_out_of_scope",
            CloudNow::SoftDeleted => "soft_deleted",
            CloudNow::Purged => "purged",
        }
    }
}

/// What to do with an owned AD group whose cloud group may be gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Leave the AD group exactly as it is.
    Keep(KeepReason),
    /// Apply the soft-delete policy (`ad.soft_delete`): freeze, convert, move or delete.
    SoftPolicy,
    /// Delete it: the cloud purged the group.
    Delete,
}

/// Why a destructive action was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepReason {
    /// The mirror wants the group in AD (live and in scope).
    Wanted,
    /// Graph says the group is live (restored, or the mirror is behind).
    LiveInCloud,
    /// The mirror says live-but-out-of-scope while Graph says purged: wait for the delta
    /// stream to agree.
    Disagreement,
}

impl KeepReason {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            KeepReason::Wanted => "wanted",
            KeepReason::LiveInCloud => "live_in_cloud",
            KeepReason::Disagreement => "disagreement",
        }
    }
}

/// Whether the mirror alone already forbids any destructive action (no need to ask Graph).
pub fn mirror_wants(record: Option<&GroupRecord>) -> bool {
    record.is_some_and(GroupRecord::wanted)
}

/// The decision for a group, from the mirror's record (`None`: unknown to the mirror, e.g.
/// hard-deleted or not listed by a full enumeration) and Graph's answer now.
///
/// | mirror \ cloud | live, in scope | live, out of scope | soft-deleted | purged |
/// |---|---|---|---|---|
/// | wanted | keep | keep | keep | keep |
/// | live, out of scope | keep | policy | policy | keep |
/// | soft-deleted | keep | policy | policy | delete |
/// | unknown | keep | policy | policy | delete |
pub fn decide(record: Option<&GroupRecord>, cloud: CloudNow) -> Decision {
    if mirror_wants(record) {
        return Decision::Keep(KeepReason::Wanted);
    }
    let live_out_of_scope = record.is_some_and(|r| r.status == GroupStatus::Live);
    match cloud {
        CloudNow::Live { in_scope: true } => Decision::Keep(KeepReason::LiveInCloud),
        CloudNow::Live { in_scope: false } | CloudNow::SoftDeleted => Decision::SoftPolicy,
        CloudNow::Purged if live_out_of_scope => Decision::Keep(KeepReason::Disagreement),
        CloudNow::Purged => Decision::Delete,
    }
}

/// Whether a decision changes the AD object (and so counts against `delete_threshold`).
pub fn is_destructive(decision: Decision, policy: SoftDeleteAction) -> bool {
    match decision {
        Decision::Keep(_) => false,
        Decision::SoftPolicy => policy != SoftDeleteAction::Freeze,
        Decision::Delete => true,
    }
}

/// Whether a sweep must classify this owned AD group: the mirror does not know it (not listed
/// by the last full enumeration), or knows it only as soft-deleted (it may have been purged
/// during a gap in the delta stream). Held groups are left out until released.
pub fn sweep_candidate(record: Option<&GroupRecord>, held: bool) -> bool {
    !held && record.is_none_or(|r| r.status == GroupStatus::SoftDeleted)
}

/// What a sweep does with a candidate, given Graph's answer: `None` when there is nothing to do
/// (a soft-deleted group whose policy was applied when the soft delete was seen).
pub fn sweep_decision(record: Option<&GroupRecord>, cloud: CloudNow) -> Option<Decision> {
    let decision = decide(record, cloud);
    let already_handled = record.is_some_and(|r| r.status == GroupStatus::SoftDeleted);
    (!already_handled || decision == Decision::Delete).then_some(decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_documented_ones() {
        // `deletes_cancelled_total{reason}` values (README, alerts, dashboard) and log fields.
        let reasons = [
            KeepReason::Wanted,
            KeepReason::LiveInCloud,
            KeepReason::Disagreement,
        ]
        .map(KeepReason::as_str);
        assert_eq!(reasons, ["wanted", "live_in_cloud", "disagreement"]);
        let states = [
            CloudNow::Live { in_scope: true },
            CloudNow::Live { in_scope: false },
            CloudNow::SoftDeleted,
            CloudNow::Purged,
        ]
        .map(CloudNow::as_str);
        assert_eq!(
            states,
            ["live", "live_out_of_scope", "soft_deleted", "purged"]
        );
    }
    use crate::model::GroupProps;

    fn rec(status: GroupStatus, in_scope: bool) -> GroupRecord {
        GroupRecord {
            props: GroupProps {
                security_enabled: Some(true),
                ..Default::default()
            },
            status,
            full_epoch: 0,
            admitted: in_scope,
        }
    }

    #[test]
    fn a_wanted_group_is_kept_whatever_the_cloud_says() {
        let r = rec(GroupStatus::Live, true);
        for c in [
            CloudNow::Live { in_scope: true },
            CloudNow::Live { in_scope: false },
            CloudNow::SoftDeleted,
            CloudNow::Purged,
        ] {
            assert_eq!(decide(Some(&r), c), Decision::Keep(KeepReason::Wanted));
        }
    }

    #[test]
    fn the_table() {
        let out = rec(GroupStatus::Live, false);
        let soft = rec(GroupStatus::SoftDeleted, true);
        use CloudNow::*;
        #[allow(non_upper_case_globals)]
        const Live: CloudNow = CloudNow::Live { in_scope: true };
        #[allow(non_upper_case_globals)]
        const Gone: CloudNow = CloudNow::Live { in_scope: false };
        assert_eq!(decide(Some(&out), Gone), Decision::SoftPolicy);
        assert_eq!(
            decide(Some(&out), Live),
            Decision::Keep(KeepReason::LiveInCloud),
            "came back into scope since"
        );
        assert_eq!(decide(Some(&soft), Gone), Decision::SoftPolicy);
        assert_eq!(decide(None, Gone), Decision::SoftPolicy);
        assert_eq!(decide(Some(&out), SoftDeleted), Decision::SoftPolicy);
        assert_eq!(
            decide(Some(&out), Purged),
            Decision::Keep(KeepReason::Disagreement)
        );
        assert_eq!(
            decide(Some(&soft), Live),
            Decision::Keep(KeepReason::LiveInCloud)
        );
        assert_eq!(decide(Some(&soft), SoftDeleted), Decision::SoftPolicy);
        assert_eq!(decide(Some(&soft), Purged), Decision::Delete);
        assert_eq!(decide(None, Live), Decision::Keep(KeepReason::LiveInCloud));
        assert_eq!(decide(None, SoftDeleted), Decision::SoftPolicy);
        assert_eq!(decide(None, Purged), Decision::Delete);
    }

    #[test]
    fn freeze_is_not_destructive() {
        assert!(!is_destructive(
            Decision::SoftPolicy,
            SoftDeleteAction::Freeze
        ));
        for p in [
            SoftDeleteAction::Delete,
            SoftDeleteAction::ConvertToDistribution,
            SoftDeleteAction::Move,
        ] {
            assert!(is_destructive(Decision::SoftPolicy, p));
            assert!(is_destructive(Decision::Delete, p));
            assert!(!is_destructive(Decision::Keep(KeepReason::Wanted), p));
        }
    }

    #[test]
    fn sweeps_classify_unknown_and_soft_deleted_groups_only() {
        let live = rec(GroupStatus::Live, true);
        let out = rec(GroupStatus::Live, false);
        let soft = rec(GroupStatus::SoftDeleted, true);
        assert!(sweep_candidate(None, false));
        assert!(sweep_candidate(Some(&soft), false));
        assert!(!sweep_candidate(None, true), "held");
        assert!(!sweep_candidate(Some(&live), false));
        assert!(
            !sweep_candidate(Some(&out), false),
            "handled when it left scope"
        );
        use CloudNow::*;
        #[allow(non_upper_case_globals)]
        const Live: CloudNow = CloudNow::Live { in_scope: true };
        assert_eq!(sweep_decision(Some(&soft), SoftDeleted), None);
        assert_eq!(sweep_decision(Some(&soft), Live), None);
        assert_eq!(sweep_decision(Some(&soft), Purged), Some(Decision::Delete));
        assert_eq!(
            sweep_decision(None, SoftDeleted),
            Some(Decision::SoftPolicy)
        );
        assert_eq!(sweep_decision(None, Purged), Some(Decision::Delete));
        assert_eq!(
            sweep_decision(None, Live),
            Some(Decision::Keep(KeepReason::LiveInCloud))
        );
    }
}
