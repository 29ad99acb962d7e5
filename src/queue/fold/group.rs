//! The fold of a groups page: [`fold_group_page`] and the state it keeps while it walks the
//! page. The guarantees are listed in [`super`].
//!
//! Imports: [`super`] (the view and plan types), the queue's records, [`crate::model`] and the
//! page shapes of [`crate::graph::page`].

use std::collections::{BTreeMap, BTreeSet};

use super::{
    DeletePlan, Edge, EdgeWrite, GroupPage, GroupPagePlan, GroupWrite, MirrorView, PageOutcome,
    cursor_after,
};
use crate::graph::page::GroupDelta;
use crate::model::{
    ALL_GROUPS, Change, ChangeKind, DeleteReason, GroupProps, MemberKind, MemberRef, Removed,
};
use crate::queue::records::{GroupRecord, GroupStatus, MemberCount};

/// Folds one groups page over the mirror view into the plan of its writes.
pub fn fold_group_page(view: &MirrorView, page: &GroupPage<'_>) -> GroupPagePlan {
    let mut fold = Fold {
        view,
        page,
        epoch: view.round.full_epoch,
        records: BTreeMap::new(),
        edges: BTreeMap::new(),
        edge_writes: 0,
        staged: BTreeMap::new(),
        cancelled: BTreeSet::new(),
        restored: Vec::new(),
        changes: Vec::new(),
        unsupported: 0,
        counts: BTreeMap::new(),
        refused: 0,
        refused_groups: BTreeSet::new(),
    };
    for item in page.items {
        fold.item(item);
    }
    fold.finish()
}

/// The state of a fold in progress.
struct Fold<'a> {
    view: &'a MirrorView,
    page: &'a GroupPage<'a>,
    epoch: Option<u64>,
    /// Records as this page leaves them so far (`None`: removed).
    records: BTreeMap<String, Option<GroupRecord>>,
    /// Each edge's last write on this page, numbered in write order.
    edges: BTreeMap<Edge, (usize, EdgeWrite)>,
    /// Edge writes so far (numbers the next one).
    edge_writes: usize,
    /// Deletes staged by this page.
    staged: BTreeMap<String, DeleteReason>,
    /// Listed live and wanted on this page.
    cancelled: BTreeSet<String>,
    /// Restored on this page, or new to the mirror in an incremental round.
    restored: Vec<String>,
    changes: Vec<Change>,
    unsupported: usize,
    /// Member counts of the groups whose edges this page wrote, as it leaves them so far.
    counts: BTreeMap<String, MemberCount>,
    /// Members refused by the limit.
    refused: usize,
    /// Groups that had members refused.
    refused_groups: BTreeSet<String>,
}

impl Fold<'_> {
    /// A record as this page has left it so far.
    fn record(&self, id: &str) -> Option<GroupRecord> {
        match self.records.get(id) {
            Some(r) => r.clone(),
            None => self.stored(id),
        }
    }

    /// A group's member count as this page has left it so far.
    fn count(&mut self, group: &str) -> &mut MemberCount {
        let view = self.view;
        self.counts
            .entry(group.to_string())
            .or_insert_with(|| view.member_counts.get(group).copied().unwrap_or_default())
    }

    /// Whether `edge` is stored as this page has left it so far (`stored`: before the page).
    fn present(&self, edge: &Edge, stored: bool) -> bool {
        match self.edges.get(edge) {
            Some((_, EdgeWrite::Insert { .. })) => true,
            Some((_, EdgeWrite::Remove)) => false,
            None => stored,
        }
    }

    /// A record as stored before the page.
    fn stored(&self, id: &str) -> Option<GroupRecord> {
        self.view.groups.get(id).cloned().flatten()
    }

    fn change(&mut self, group_id: &str, kind: ChangeKind) {
        self.changes.push(Change {
            group_id: group_id.to_string(),
            kind,
            seen_ms: self.page.now,
        });
    }

    /// Stages a delete (a later listing of the group on this page cancels it again).
    fn stage(&mut self, id: &str, reason: DeleteReason) {
        self.cancelled.remove(id);
        self.staged.insert(id.to_string(), reason);
    }

    /// Listed live and wanted: nothing staged or held for it may proceed.
    fn cancel(&mut self, id: &str) {
        self.staged.remove(id);
        self.cancelled.insert(id.to_string());
    }

    fn item(&mut self, item: &GroupDelta) {
        let old = self.record(&item.id);
        match item.removed {
            Some(Removed::Deleted) => self.hard_delete(&item.id),
            Some(Removed::Changed) => self.soft_delete(&item.id, old),
            None => self.listed(item, old),
        }
    }

    fn hard_delete(&mut self, id: &str) {
        self.drop_members(id);
        self.records.insert(id.to_string(), None);
        self.stage(id, DeleteReason::HardDeleted);
    }

    fn soft_delete(&mut self, id: &str, old: Option<GroupRecord>) {
        let Some(mut r) = old else { return };
        if r.status == GroupStatus::Live {
            let was_wanted = r.wanted();
            r.status = GroupStatus::SoftDeleted;
            if was_wanted {
                self.stage(id, DeleteReason::SoftDeleted);
            }
        }
        self.records.insert(id.to_string(), Some(r));
    }

    /// The group is listed live: update its record and members, queue what converges AD.
    fn listed(&mut self, item: &GroupDelta, old: Option<GroupRecord>) {
        let was_wanted = old.as_ref().is_some_and(GroupRecord::wanted);
        let back_in_scope = old
            .as_ref()
            .is_some_and(|o| o.status == GroupStatus::Live && !o.wanted());
        let r = self.updated_record(item, old);
        let touched = self.member_edges(item);
        if r.wanted() {
            // Back in scope in an incremental round: AD may hold a frozen copy that missed
            // every change made meanwhile (the mirror kept tracking them), so converge it all.
            // New and restored groups are listed in full, possibly over several pages: they
            // only add members (removals wait for a full enumeration's end, as everywhere).
            let kind = if back_in_scope && self.epoch.is_none() {
                ChangeKind::Reconcile
            } else {
                ChangeKind::Upsert { members: touched }
            };
            self.change(&item.id, kind);
            self.cancel(&item.id);
        } else if was_wanted {
            self.stage(&item.id, DeleteReason::LeftScope);
        }
        self.records.insert(item.id.clone(), Some(r));
    }

    /// The record after a live listing: created or restored, patched, scoped and stamped.
    fn updated_record(&mut self, item: &GroupDelta, old: Option<GroupRecord>) -> GroupRecord {
        let old_ad_identity = old.as_ref().map(|o| o.props.ad_identity());
        if old.is_none() && self.epoch.is_none() {
            // New to the mirror in an incremental round: AD may still hold a copy from before
            // (a group a resync dropped while it was soft-deleted, or state lost): converge it
            // fully once the round is complete.
            self.restored.push(item.id.clone());
        }
        let mut r = old.unwrap_or(GroupRecord {
            props: GroupProps::default(),
            status: GroupStatus::Live,
            full_epoch: 0,
            admitted: true,
        });
        if r.status == GroupStatus::SoftDeleted {
            // Restored: it comes back like a new group, with its full member list (maybe over
            // several pages); its frozen AD copy is reconciled once the round is complete.
            r.status = GroupStatus::Live;
            self.drop_members(&item.id);
            self.restored.push(item.id.clone());
        }
        r.props.apply(&item.patch);
        r.admitted = (self.page.admits)(&item.id, &r.props);
        if old_ad_identity.is_some_and(|o| o != r.props.ad_identity()) {
            // A group synced from AD got (or lost) its SID: the parents that list it can now
            // reference its original object.
            self.requeue_parents(&item.id);
        }
        if let Some(e) = self.epoch {
            if r.full_epoch != e {
                // First listing in this enumeration: the group gets another chance to fit.
                self.count(&item.id).refused = None;
            }
            r.full_epoch = e;
        }
        r
    }

    /// Records the listed member changes; returns the members an upsert names (all but the
    /// unsupported types, which are stored but counted and never written to AD). A member
    /// that would take the group past the limit is refused: not stored, not named, counted.
    fn member_edges(&mut self, item: &GroupDelta) -> Vec<MemberRef> {
        let stamp = self.epoch.unwrap_or(0);
        let max = self.page.max_members as u64;
        let mut touched = Vec::new();
        for m in &item.members {
            let edge = Edge {
                group: item.id.clone(),
                member: m.member.clone(),
            };
            let stored = self.view.stored_edges.contains(&edge);
            let write = if m.removed {
                EdgeWrite::Remove
            } else {
                EdgeWrite::Insert { stamp }
            };
            if !m.removed && !self.present(&edge, stored) && self.count(&item.id).stored >= max {
                self.count(&item.id).refused = Some(max);
                self.refused += 1;
                self.refused_groups.insert(item.id.clone());
                continue;
            }
            self.write_edge(edge, write, stored);
            if m.member.kind == MemberKind::Other {
                self.unsupported += 1;
            } else {
                touched.push(m.member.clone());
            }
        }
        touched
    }

    /// Queues an upsert of every wanted group (as stored) that lists `child` as a member.
    fn requeue_parents(&mut self, child: &str) {
        let view = self.view;
        let member = MemberRef {
            kind: MemberKind::Group,
            id: child.to_string(),
        };
        for parent in view.parents.get(child).into_iter().flatten() {
            if parent != child && self.stored(parent).is_some_and(|r| r.wanted()) {
                let members = vec![member.clone()];
                self.change(parent, ChangeKind::Upsert { members });
            }
        }
    }

    /// Removes every stored member of `group`.
    fn drop_members(&mut self, group: &str) {
        let view = self.view;
        for m in view.members.get(group).into_iter().flatten() {
            let edge = Edge {
                group: group.to_string(),
                member: m.clone(),
            };
            self.write_edge(edge, EdgeWrite::Remove, true);
        }
    }

    /// Writes one edge (`stored`: whether it was stored before the page) and keeps its
    /// group's member count.
    fn write_edge(&mut self, edge: Edge, write: EdgeWrite, stored: bool) {
        let before = self.present(&edge, stored);
        let after = matches!(write, EdgeWrite::Insert { .. });
        if before != after {
            let c = self.count(&edge.group);
            c.stored = if after {
                c.stored + 1
            } else {
                c.stored.saturating_sub(1)
            };
        }
        self.edges.insert(edge, (self.edge_writes, write));
        self.edge_writes += 1;
    }

    fn finish(mut self) -> GroupPagePlan {
        let cursor = cursor_after(self.page.next, self.epoch, self.page.now);
        let mut restored = std::mem::take(&mut self.restored);
        restored.extend(self.view.round.restored.iter().cloned());
        restored.sort();
        restored.dedup();
        let mut deletes = DeletePlan::default();
        if cursor.mid_round {
            deletes.staged = std::mem::take(&mut self.staged);
        } else {
            self.end_round(&restored, &mut deletes);
            restored.clear();
        }
        deletes.cancelled = std::mem::take(&mut self.cancelled);
        let mut member_counts: BTreeMap<String, Option<MemberCount>> =
            std::mem::take(&mut self.counts)
                .into_iter()
                .map(|(id, c)| (id, Some(c)))
                .collect();
        for (id, r) in &self.records {
            if r.is_none() {
                member_counts.insert(id.clone(), None);
            }
        }
        let mut outcome = PageOutcome {
            unsupported_members: self.unsupported,
            refused_members: self.refused,
            refused_groups: std::mem::take(&mut self.refused_groups),
            held_deletes: deletes.held.len(),
            round_done: !cursor.mid_round,
            full_round: self.epoch.is_some(),
            ..Default::default()
        };
        outcome.count(&self.changes);
        let groups = self
            .records
            .into_iter()
            .map(|(id, r)| (id, r.map_or(GroupWrite::Remove, GroupWrite::Put)))
            .collect();
        GroupPagePlan {
            groups,
            edges: in_write_order(self.edges),
            changes: self.changes,
            deletes,
            restored,
            member_counts,
            full_round_done: self.epoch.filter(|_| !cursor.mid_round),
            cursor,
            outcome,
        }
    }

    /// The page ends the round: reconcile what was restored, finish a full enumeration, and
    /// queue or hold every delete the round staged.
    fn end_round(&mut self, restored: &[String], deletes: &mut DeletePlan) {
        if self.epoch.is_none() {
            for id in restored {
                if self.record(id).is_some_and(|r| r.wanted()) {
                    self.change(id, ChangeKind::Reconcile);
                }
            }
        }
        if let Some(e) = self.epoch {
            self.finish_full_round(e);
        }
        let view = self.view;
        let mut all: BTreeMap<String, DeleteReason> = BTreeMap::new();
        for (id, reason) in view.round.end.iter().flat_map(|e| &e.staged) {
            deletes.unstaged.insert(id.clone());
            if !self.cancelled.contains(id) {
                all.insert(id.clone(), *reason);
            }
        }
        all.extend(std::mem::take(&mut self.staged));
        // One threshold for all destruction: hard deletes, and soft deletes or scope exits
        // when the soft-delete policy deletes, converts or moves.
        let policy = self.page.policy;
        let deleting =
            |r: &DeleteReason| *r == DeleteReason::HardDeleted || policy.soft_destructive;
        let hold = all.values().filter(|r| deleting(r)).count() > policy.threshold;
        for (id, reason) in all {
            if hold && deleting(&reason) {
                deletes.held.insert(id, reason);
            } else {
                self.change(&id, ChangeKind::Delete { reason });
            }
        }
    }

    /// End of a full enumeration: drop what it did not list, reconcile everything, sweep AD.
    fn finish_full_round(&mut self, epoch: u64) {
        let view = self.view;
        let full = view.round.end.as_ref().and_then(|e| e.full.as_ref());
        let mut all: BTreeMap<String, Option<GroupRecord>> = full
            .into_iter()
            .flat_map(|f| &f.groups)
            .map(|(id, r)| (id.clone(), Some(r.clone())))
            .collect();
        all.extend(self.records.clone());
        let unlisted = |id: &str| full.and_then(|f| f.unlisted.get(id)).into_iter().flatten();
        for (id, rec) in all {
            let Some(rec) = rec else { continue };
            if rec.full_epoch != epoch && rec.status == GroupStatus::Live {
                // Not listed by the enumeration: gone. Its AD object is found by the sweep.
                for m in unlisted(&id) {
                    self.drop_edge(&id, m, false);
                }
                self.records.insert(id, None);
                continue;
            }
            if rec.status == GroupStatus::Live {
                for m in unlisted(&id) {
                    self.drop_edge(&id, m, true);
                }
            }
            if rec.wanted() {
                self.change(&id, ChangeKind::Reconcile);
            }
        }
        self.change(ALL_GROUPS, ChangeKind::Sweep);
    }

    /// Removes one stored edge, unless `keep_relisted` and this very page listed it.
    fn drop_edge(&mut self, group: &str, member: &MemberRef, keep_relisted: bool) {
        let edge = Edge {
            group: group.to_string(),
            member: member.clone(),
        };
        if keep_relisted && matches!(self.edges.get(&edge), Some((_, EdgeWrite::Insert { .. }))) {
            return;
        }
        self.write_edge(edge, EdgeWrite::Remove, true);
    }
}

/// Each edge once, in the order of its last write.
fn in_write_order(edges: BTreeMap<Edge, (usize, EdgeWrite)>) -> Vec<(Edge, EdgeWrite)> {
    let mut v: Vec<(usize, Edge, EdgeWrite)> =
        edges.into_iter().map(|(e, (n, w))| (n, e, w)).collect();
    v.sort_by_key(|(n, _, _)| *n);
    v.into_iter().map(|(_, e, w)| (e, w)).collect()
}
