//! The net work for one group: a group's pending changes, oldest first, folded into one
//! [`Work`] ([`Work::coalesce`]). Pure.
//!
//! # Guarantees
//! - The last word wins: a delete or a sweep replaces what came before; an upsert after a
//!   reconcile keeps the full compare; touched members accumulate.
//!
//! Imports: [`crate::model`] only.

use std::collections::BTreeSet;

use crate::model::{ChangeKind, DeleteReason, MemberRef};

/// The net work for one group, after coalescing its pending changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// Converge attributes, and either every member (`full`) or the touched ones.
    Converge {
        /// Compare all members (reconcile) rather than only `members`.
        full: bool,
        /// Members whose membership changed.
        members: BTreeSet<MemberRef>,
    },
    /// The cloud group went away.
    Delete(DeleteReason),
    /// Find and handle owned groups the cloud no longer has.
    Sweep,
}

impl Work {
    /// Folds a group's pending changes, oldest first, into one net piece of work.
    pub fn coalesce<'a>(changes: impl IntoIterator<Item = &'a ChangeKind>) -> Option<Work> {
        let mut net: Option<Work> = None;
        for c in changes {
            net = Some(match (net, c) {
                (_, ChangeKind::Delete { reason }) => Work::Delete(*reason),
                (_, ChangeKind::Sweep) => Work::Sweep,
                (Some(Work::Converge { full, mut members }), ChangeKind::Upsert { members: m }) => {
                    members.extend(m.iter().cloned());
                    Work::Converge { full, members }
                }
                (_, ChangeKind::Reconcile) => Work::Converge {
                    full: true,
                    members: BTreeSet::new(),
                },
                (_, ChangeKind::Upsert { members }) => Work::Converge {
                    full: false,
                    members: members.iter().cloned().collect(),
                },
            });
        }
        net
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MemberKind;

    fn m(id: &str) -> MemberRef {
        MemberRef {
            kind: MemberKind::User,
            id: id.into(),
        }
    }

    #[test]
    fn coalescing() {
        let up = |ids: &[&str]| ChangeKind::Upsert {
            members: ids.iter().map(|i| m(i)).collect(),
        };
        let w = Work::coalesce(&[up(&["a"]), up(&["b"])]).unwrap();
        assert_eq!(
            w,
            Work::Converge {
                full: false,
                members: [m("a"), m("b")].into_iter().collect()
            }
        );
        let w = Work::coalesce(&[up(&["a"]), ChangeKind::Reconcile, up(&["b"])]).unwrap();
        assert_eq!(
            w,
            Work::Converge {
                full: true,
                members: [m("b")].into_iter().collect()
            }
        );
        let del = ChangeKind::Delete {
            reason: DeleteReason::HardDeleted,
        };
        assert_eq!(
            Work::coalesce(&[up(&["a"]), del.clone()]).unwrap(),
            Work::Delete(DeleteReason::HardDeleted)
        );
        // A group re-created after a delete converges fully.
        assert!(matches!(
            Work::coalesce(&[del, up(&["a"])]).unwrap(),
            Work::Converge { full: false, .. }
        ));
        assert_eq!(Work::coalesce(&[]), None);
    }
}
