//! The worker's two lanes: groups ready to be dispatched from the oldest end of the queue and
//! from the newest. Pure.

use std::collections::VecDeque;
use std::time::Instant;

use crate::model::Change;

/// Groups ready to be dispatched, from both ends of the queue: free slots alternate between
/// the oldest waiting groups and the newest, so a change made now never waits behind a bulk
/// of older ones, and the bulk still proceeds.
#[derive(Default)]
pub(super) struct Lanes {
    pub(super) oldest: VecDeque<(String, Vec<(u64, Change)>)>,
    pub(super) newest: VecDeque<(String, Vec<(u64, Change)>)>,
    /// When the newest lane was last refreshed.
    pub(super) looked: Option<Instant>,
    /// When the oldest lane's window was read.
    pub(super) window_read: Option<Instant>,
    /// Whose turn it is.
    newest_next: bool,
}

impl Lanes {
    pub(super) fn is_empty(&self) -> bool {
        self.oldest.is_empty() && self.newest.is_empty()
    }

    pub(super) fn next(&mut self) -> Option<(String, Vec<(u64, Change)>)> {
        self.newest_next = !self.newest_next;
        let (first, second) = if self.newest_next {
            (&mut self.newest, &mut self.oldest)
        } else {
            (&mut self.oldest, &mut self.newest)
        };
        let (gid, mut changes) = first.pop_front().or_else(|| second.pop_front())?;
        // A group in both lanes goes as one apply of everything seen of it.
        for lane in [&mut self.oldest, &mut self.newest] {
            if let Some(at) = lane.iter().position(|(g, _)| *g == gid) {
                let (_, more) = lane.remove(at).expect("found above");
                changes.extend(more);
            }
        }
        changes.sort_by_key(|(seq, _)| *seq);
        changes.dedup_by_key(|(seq, _)| *seq);
        Some((gid, changes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ChangeKind;

    fn entry(g: &str, seqs: &[u64]) -> (String, Vec<(u64, Change)>) {
        let c = |seq| {
            (
                seq,
                Change {
                    group_id: g.into(),
                    kind: ChangeKind::Reconcile,
                    seen_ms: 0,
                },
            )
        };
        (g.into(), seqs.iter().map(|s| c(*s)).collect())
    }

    #[test]
    fn slots_alternate_and_a_group_in_both_lanes_goes_once_with_all_its_changes() {
        let mut lanes = Lanes {
            oldest: [entry("a", &[1]), entry("b", &[2]), entry("c", &[3])].into(),
            newest: [entry("z", &[9]), entry("b", &[8])].into(),
            ..Default::default()
        };
        let order: Vec<(String, Vec<u64>)> = std::iter::from_fn(|| lanes.next())
            .map(|(g, cs)| (g, cs.iter().map(|(s, _)| *s).collect()))
            .collect();
        assert_eq!(
            order,
            [
                ("z".to_string(), vec![9]),
                ("a".to_string(), vec![1]),
                ("b".to_string(), vec![2, 8]),
                ("c".to_string(), vec![3]),
            ]
        );
        assert!(lanes.is_empty());
    }
}
