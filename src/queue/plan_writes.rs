//! A groups page's plan as buffered writes to the mirror's trees (`groups`, `members`,
//! `member_of`), in the plan's order, for the page transaction to apply. Pure.
//!
//! Imports: the queue's fold plans, keys and codec.

use super::fold::{EdgeWrite, GroupPagePlan, GroupWrite};
use super::keys::{Writes, member_key, member_of_key};
use super::store::enc;

/// The `members` and `member_of` writes of a plan's edges, in the plan's order.
pub(super) fn edge_writes(plan: &GroupPagePlan) -> (Writes, Writes) {
    let (mut members, mut member_of) = (Writes::default(), Writes::default());
    for (e, w) in &plan.edges {
        let (k, back) = (
            member_key(&e.group, &e.member),
            member_of_key(&e.member.id, &e.group),
        );
        match w {
            EdgeWrite::Insert { stamp } => {
                members.put(k, stamp.to_be_bytes().to_vec());
                member_of.put(back, vec![e.member.kind.tag()]);
            }
            EdgeWrite::Remove => {
                members.del(k);
                member_of.del(back);
            }
        }
    }
    (members, member_of)
}

/// The `groups` writes of a plan.
pub(super) fn group_writes(plan: &GroupPagePlan) -> Writes {
    let mut groups = Writes::default();
    for (id, w) in &plan.groups {
        match w {
            GroupWrite::Put(r) => groups.put(id.as_bytes(), enc(r)),
            GroupWrite::Remove => groups.del(id.as_bytes()),
        }
    }
    groups
}
