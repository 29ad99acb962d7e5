//! A groups page cut into parts of bounded member entries, each committed in its own
//! transaction. Pure.
//!
//! sled keeps a copy of a tree node per insert until its transaction ends, so one transaction
//! costs memory in proportion to its writes times the node size: a page carrying 50,000
//! member entries took about 540 MiB. A page is therefore committed in parts of at most
//! [`PART_MEMBERS`] member entries. A part is what Graph itself sends for a large group: the
//! same group again, with the next slice of its members [DQG "Paging through members in a
//! large group"], so folding the parts one after the other gives the mirror the page would
//! have given it.
//!
//! # Guarantees
//! - Items keep their page order; a group's member entries keep theirs; an item whose
//!   entries are cut repeats its properties (and its `@removed`) in every part it is in.
//! - Every part but the last carries at most [`PART_MEMBERS`] entries; only the last part
//!   moves the cursor (see [`super`]), so a crash between parts re-reads the whole page from
//!   the stored cursor, and the parts already stored fold again to the same mirror.
//!
//! Imports: the page shapes of [`crate::graph::page`] only.

use std::borrow::Cow;
use std::ops::Range;

use crate::graph::page::GroupDelta;

/// Most member entries one part of a page commits (one sled transaction).
pub const PART_MEMBERS: usize = 2_000;

/// One part of a page: for each item in it, the item's index and the range of its member
/// entries the part carries.
pub type Part = Vec<(usize, Range<usize>)>;

/// Cuts `items` into parts of at most `max` member entries (`max` ≥ 1). An item without
/// member entries goes into the part being filled; a page with no more than `max` entries is
/// one part.
pub fn cut(items: &[GroupDelta], max: usize) -> Vec<Part> {
    let max = max.max(1);
    let (mut parts, mut part, mut used) = (Vec::new(), Part::new(), 0usize);
    for (i, item) in items.iter().enumerate() {
        let n = item.members.len();
        let mut from = 0;
        loop {
            let take = (n - from).min(max - used);
            part.push((i, from..from + take));
            (from, used) = (from + take, used + take);
            if from == n {
                break;
            }
            parts.push(std::mem::take(&mut part));
            used = 0;
        }
        if used == max && i + 1 < items.len() {
            parts.push(std::mem::take(&mut part));
            used = 0;
        }
    }
    parts.push(part);
    parts
}

/// The items of one part: the page itself when the part is the whole page, else copies of
/// its items carrying only the part's member entries.
pub fn items_of<'a>(items: &'a [GroupDelta], part: &Part) -> Cow<'a, [GroupDelta]> {
    let whole = part.len() == items.len()
        && part
            .iter()
            .all(|(i, r)| r.start == 0 && r.end == items[*i].members.len());
    if whole {
        return Cow::Borrowed(items);
    }
    Cow::Owned(
        part.iter()
            .map(|(i, r)| {
                let item = &items[*i];
                GroupDelta {
                    id: item.id.clone(),
                    removed: item.removed,
                    patch: item.patch.clone(),
                    members: item.members[r.clone()].to_vec(),
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::page::MemberDelta;
    use crate::model::{MemberKind, MemberRef, Removed};

    fn item(id: &str, members: usize) -> GroupDelta {
        GroupDelta {
            id: id.into(),
            removed: None,
            patch: Default::default(),
            members: (0..members)
                .map(|m| MemberDelta {
                    member: MemberRef {
                        kind: MemberKind::User,
                        id: format!("{id}-{m}"),
                    },
                    removed: m % 3 == 0,
                })
                .collect(),
        }
    }

    /// The page's member entries as the parts carry them, in order.
    fn entries(items: &[GroupDelta], parts: &[Part]) -> Vec<(String, MemberDelta)> {
        parts
            .iter()
            .flat_map(|p| items_of(items, p).into_owned())
            .flat_map(|i| i.members.into_iter().map(move |m| (i.id.clone(), m)))
            .collect()
    }

    #[test]
    fn a_page_within_the_bound_is_one_part_and_is_not_copied() {
        let items = vec![item("a", 3), item("b", 0), item("c", 2)];
        let parts = cut(&items, 5);
        assert_eq!(parts.len(), 1);
        assert!(matches!(items_of(&items, &parts[0]), Cow::Borrowed(_)));
        assert_eq!(cut(&[], 5), vec![Part::new()]);
    }

    #[test]
    fn a_large_group_is_cut_into_slices_that_repeat_it_and_keep_every_entry_in_order() {
        let mut items = vec![item("a", 2), item("big", 11), item("c", 1)];
        items[1].removed = Some(Removed::Changed);
        items[1].patch.display_name = crate::model::Patch::Value("Big".into());
        let parts = cut(&items, 4);
        let sizes: Vec<usize> = parts
            .iter()
            .map(|p| p.iter().map(|(_, r)| r.len()).sum())
            .collect();
        assert_eq!(sizes, vec![4, 4, 4, 2]);
        let flat: Vec<(String, MemberDelta)> = items
            .iter()
            .flat_map(|i| i.members.iter().map(move |m| (i.id.clone(), m.clone())))
            .collect();
        assert_eq!(entries(&items, &parts), flat);
        for p in &parts {
            for i in items_of(&items, p).iter().filter(|i| i.id == "big") {
                assert_eq!((i.removed, &i.patch), (items[1].removed, &items[1].patch));
            }
        }
        let ids: Vec<Vec<String>> = parts
            .iter()
            .map(|p| items_of(&items, p).iter().map(|i| i.id.clone()).collect())
            .collect();
        assert_eq!(
            ids,
            [vec!["a", "big"], vec!["big"], vec!["big"], vec!["big", "c"]]
        );
    }

    #[test]
    fn items_without_members_stay_in_page_order_and_no_part_exceeds_the_bound() {
        for max in 1..6 {
            let items = vec![item("a", 0), item("b", 5), item("c", 0), item("d", 3)];
            let parts = cut(&items, max);
            let order: Vec<usize> = parts.iter().flatten().map(|(i, _)| *i).collect();
            assert!(
                order.windows(2).all(|w| w[0] <= w[1]),
                "max {max}: {order:?}"
            );
            for i in 0..items.len() {
                assert!(order.contains(&i), "max {max}: item {i} lost");
            }
            for p in &parts {
                assert!(p.iter().map(|(_, r)| r.len()).sum::<usize>() <= max);
            }
            assert_eq!(entries(&items, &parts).len(), 8);
        }
    }
}
