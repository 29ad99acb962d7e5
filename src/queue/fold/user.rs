//! The users page fold: pure functions from the stored users a Graph page touches and the page
//! to what the page does to the store ([`UserPagePlan`]). No sled, no I/O, no clock:
//! [`crate::queue::mirror`] reads the views and writes the plan in one transaction.
//!
//! The fold runs in two steps so that group memberships are read only for the few users whose
//! on-premises SID changed: [`fold_user_page`] decides the user records and which SIDs changed,
//! then [`requeue_groups`] queues an upsert of every wanted group listing such a user, so a
//! member that was not resolvable yet is written once it is.
//!
//! # Guarantees
//! - A user's record follows its patches; `@removed: deleted` removes it, `@removed: changed`
//!   keeps it as it was.
//! - Every SID change requeues the wanted groups that list the user, and nothing else does.
//!
//! Imports: [`super`] (the page outcome and cursor), the queue's records, [`crate::model`] and
//! the page shapes of [`crate::graph::page`]; nothing above the queue.

use std::collections::BTreeMap;

use super::{PageOutcome, cursor_after};
use crate::graph::page::{NextStep, UserDelta};
use crate::model::{Change, ChangeKind, MemberKind, MemberRef, Removed, UserRecord};
use crate::queue::records::{Cursor, GroupRecord};

/// The stored records of the users on a page, and the round the page belongs to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserView {
    /// Stored records (`None`: not in the mirror); an id missing reads as not stored.
    pub users: BTreeMap<String, Option<UserRecord>>,
    /// The epoch of the full enumeration the page belongs to; `None` in an incremental round.
    pub full_epoch: Option<u64>,
}

/// The groups listing the users whose SID changed, as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserGroupsView {
    /// Per user, the groups that list it as a member, in id order.
    pub containing: BTreeMap<String, Vec<String>>,
    /// The stored records of those groups (`None`: not in the mirror).
    pub groups: BTreeMap<String, Option<GroupRecord>>,
}

/// What a users page does to the store, written in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct UserPagePlan {
    /// User records to write or remove.
    pub users: BTreeMap<String, UserWrite>,
    /// The users whose on-premises SID the page changed, once per change, in page order.
    pub sid_changed: Vec<String>,
    /// Changes to queue, in order (filled by [`requeue_groups`]).
    pub changes: Vec<Change>,
    /// The cursor after the page.
    pub cursor: Cursor,
    /// What the page did, for logs and metrics.
    pub outcome: PageOutcome,
}

/// A write to one user record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserWrite {
    /// Store this record.
    Put(UserRecord),
    /// Remove the record.
    Remove,
}

impl UserPagePlan {
    /// Whether the plan writes nothing but its cursor.
    pub fn only_the_cursor(&self) -> bool {
        self.users.is_empty() && self.changes.is_empty() && self.sid_changed.is_empty()
    }
}

/// Folds one users page over the stored users into its record writes and cursor; `now` is the
/// time the cursor is stored at.
pub fn fold_user_page(
    view: &UserView,
    items: &[UserDelta],
    next: &NextStep,
    now: u64,
) -> UserPagePlan {
    let mut records: BTreeMap<String, Option<UserRecord>> = BTreeMap::new();
    let mut sid_changed = Vec::new();
    for item in items {
        let old = match records.get(&item.id) {
            Some(r) => r.clone(),
            None => view.users.get(&item.id).cloned().flatten(),
        };
        let new = match item.removed {
            Some(Removed::Deleted) => None,
            Some(Removed::Changed) => old.clone(),
            None => {
                let mut r = old.clone().unwrap_or_default();
                r.apply(&item.patch);
                Some(r)
            }
        };
        if old.as_ref().and_then(|r| r.sid.as_ref()) != new.as_ref().and_then(|r| r.sid.as_ref()) {
            sid_changed.push(item.id.clone());
        }
        records.insert(item.id.clone(), new);
    }
    let cursor = cursor_after(next, view.full_epoch, now);
    UserPagePlan {
        users: records
            .into_iter()
            .map(|(id, r)| (id, r.map_or(UserWrite::Remove, UserWrite::Put)))
            .collect(),
        sid_changed,
        changes: Vec::new(),
        outcome: PageOutcome {
            round_done: !cursor.mid_round,
            full_round: view.full_epoch.is_some(),
            ..Default::default()
        },
        cursor,
    }
}

/// Queues an upsert naming the user of every wanted group listing a user whose SID changed
/// (stamped `now`), and counts them into the plan's outcome.
pub fn requeue_groups(plan: &mut UserPagePlan, view: &UserGroupsView, now: u64) {
    for user in &plan.sid_changed {
        for g in view.containing.get(user).into_iter().flatten() {
            if view
                .groups
                .get(g)
                .cloned()
                .flatten()
                .is_some_and(|r| r.wanted())
            {
                let member = MemberRef {
                    kind: MemberKind::User,
                    id: user.clone(),
                };
                plan.changes.push(Change {
                    group_id: g.clone(),
                    kind: ChangeKind::Upsert {
                        members: vec![member],
                    },
                    seen_ms: now,
                });
            }
        }
    }
    plan.outcome.count(&plan.changes);
}
