//! Model-based test of delete safety, in process: random sequences of cloud events (create,
//! soft delete, restore, purge, scope exit/entry), 410 resyncs, interrupted rounds, crashes,
//! lost state, approvals, partial drains and periodic sweeps, run through the real store
//! (`commit_group_page`, holds, `complete_picture`), the real coalescing and the real decision
//! functions (`queue::safety`), against a simple model of the cloud and of AD.
//!
//! Checked after every step:
//! - no destructive action (delete, convert, move) ever hits a group that is live and in scope
//!   in the cloud at that moment;
//! - an AD object is never created for a group that already has one (no duplicates).
//!
//! Checked at the end, after settling (a resync, a full round, drains and approvals):
//! - every group purged in the cloud is gone from AD;
//! - every live, in-scope group is in AD, and if it was in AD before, with the same identity.

use std::collections::{BTreeMap, BTreeSet};

use entra_writeback::config::SoftDeleteAction;
use entra_writeback::directory::Work;
use entra_writeback::graph::page::{GroupDelta, NextStep};
use entra_writeback::model::{DeleteReason, Resource};
use entra_writeback::model::{GroupPatch, Patch, Removed};
use entra_writeback::queue::mirror::DeletePolicy;
use entra_writeback::queue::safety::{self, CloudNow, Decision};
use entra_writeback::queue::{Store, group_batch};
use proptest::prelude::*;

const GROUPS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cloud {
    Absent,
    Live { in_scope: bool },
    Soft,
    Purged,
}

#[derive(Debug, Clone)]
enum Step {
    Create(usize),
    SoftDelete(usize),
    Restore(usize),
    Purge(usize),
    ScopeExit(usize),
    ScopeEntry(usize),
    /// Graph expired the delta token (410): the next round is a full enumeration.
    Resync,
    /// A delta round; a full one may stop after `stop_after` pages (a crash or slow round).
    Round {
        stop_after: Option<usize>,
    },
    /// Apply at most this many groups' work, then stop (crash mid-drain when followed by Crash).
    Drain {
        groups: usize,
    },
    /// The periodic reconcile: a sweep, if the store allows it.
    PeriodicSweep,
    ApproveAll,
    ApproveOne(usize),
    /// The process dies and restarts on the same state directory.
    Crash,
    /// The state directory is lost; AD keeps its groups.
    LoseState,
}

fn step() -> impl Strategy<Value = Step> {
    let g = 0..GROUPS;
    prop_oneof![
        3 => g.clone().prop_map(Step::Create),
        2 => g.clone().prop_map(Step::SoftDelete),
        2 => g.clone().prop_map(Step::Restore),
        1 => g.clone().prop_map(Step::Purge),
        1 => g.clone().prop_map(Step::ScopeExit),
        1 => g.clone().prop_map(Step::ScopeEntry),
        1 => Just(Step::Resync),
        4 => proptest::option::of(0..3usize).prop_map(|stop_after| Step::Round { stop_after }),
        4 => (0..4usize).prop_map(|groups| Step::Drain { groups }),
        1 => Just(Step::PeriodicSweep),
        1 => Just(Step::ApproveAll),
        1 => g.clone().prop_map(Step::ApproveOne),
        1 => Just(Step::Crash),
        1 => Just(Step::LoseState),
    ]
}

fn policy() -> impl Strategy<Value = SoftDeleteAction> {
    prop_oneof![
        Just(SoftDeleteAction::Freeze),
        Just(SoftDeleteAction::Delete),
        Just(SoftDeleteAction::ConvertToDistribution),
        Just(SoftDeleteAction::Move),
    ]
}

/// An AD group object: its identity (objectGUID) and what was done to it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AdGroup {
    guid: u64,
    converted: bool,
    moved: bool,
}

struct World {
    cloud: Vec<Cloud>,
    /// Groups changed since the current delta stream last reported them.
    dirty: BTreeSet<usize>,
    ad: BTreeMap<String, AdGroup>,
    next_guid: u64,
    store: Option<Store>,
    dir: tempfile::TempDir,
    soft: SoftDeleteAction,
    threshold: usize,
    /// Monotonic link counter (opaque links must differ).
    links: u64,
}

fn id(i: usize) -> String {
    format!("00000000-0000-0000-0000-{i:012}")
}

fn index(id: &str) -> usize {
    id.rsplit('-').next().unwrap().parse().unwrap()
}

impl World {
    fn new(soft: SoftDeleteAction, threshold: usize) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        World {
            cloud: vec![Cloud::Absent; GROUPS],
            dirty: BTreeSet::new(),
            ad: BTreeMap::new(),
            next_guid: 1,
            store: Some(store),
            dir,
            soft,
            threshold,
            links: 0,
        }
    }

    fn store(&self) -> &Store {
        self.store.as_ref().unwrap()
    }

    fn cloud_state(&self, gid: &str) -> CloudNow {
        match self.cloud[index(gid)] {
            Cloud::Live { in_scope } => CloudNow::Live { in_scope },
            Cloud::Soft => CloudNow::SoftDeleted,
            Cloud::Purged | Cloud::Absent => CloudNow::Purged,
        }
    }

    fn wanted_in_cloud(&self, gid: &str) -> bool {
        self.cloud[index(gid)] == Cloud::Live { in_scope: true }
    }

    fn change(&mut self, i: usize, to: Cloud) {
        self.cloud[i] = to;
        self.dirty.insert(i);
    }

    fn cloud_event(&mut self, s: &Step) {
        match *s {
            Step::Create(i) if self.cloud[i] == Cloud::Absent => {
                self.change(i, Cloud::Live { in_scope: true })
            }
            Step::SoftDelete(i) if matches!(self.cloud[i], Cloud::Live { .. }) => {
                self.change(i, Cloud::Soft)
            }
            Step::Restore(i) if self.cloud[i] == Cloud::Soft => {
                self.change(i, Cloud::Live { in_scope: true })
            }
            Step::Purge(i) if matches!(self.cloud[i], Cloud::Live { .. } | Cloud::Soft) => {
                self.change(i, Cloud::Purged)
            }
            Step::ScopeExit(i) if matches!(self.cloud[i], Cloud::Live { .. }) => {
                self.change(i, Cloud::Live { in_scope: false })
            }
            Step::ScopeEntry(i) if matches!(self.cloud[i], Cloud::Live { .. }) => {
                self.change(i, Cloud::Live { in_scope: true })
            }
            _ => {}
        }
    }

    fn listed(&self, i: usize) -> GroupDelta {
        let in_scope = matches!(self.cloud[i], Cloud::Live { in_scope: true });
        GroupDelta {
            id: id(i),
            removed: None,
            patch: GroupPatch {
                display_name: Patch::Value(format!("G{i}")),
                security_enabled: Patch::Value(in_scope),
                ..Default::default()
            },
            members: vec![],
        }
    }

    fn link(&mut self, last: bool) -> NextStep {
        self.links += 1;
        let l = format!(
            "https://graph.example/v1.0/groups/delta?token={}",
            self.links
        );
        if last {
            NextStep::Delta(l)
        } else {
            NextStep::Next(l)
        }
    }

    fn commit(&mut self, items: &[GroupDelta], last: bool) {
        let next = self.link(last);
        let store = self.store();
        let before = store.cursor(Resource::Groups).unwrap();
        let policy = DeletePolicy {
            threshold: self.threshold,
            soft_destructive: self.soft != SoftDeleteAction::Freeze,
        };
        store
            .commit_group_page(items, &next, before.as_ref(), policy, &|_, p| p.eligible())
            .unwrap();
    }

    fn round(&mut self, stop_after: Option<usize>) {
        let cursor = self.store().cursor(Resource::Groups).unwrap();
        let full = cursor.as_ref().is_none_or(|c| c.full_epoch.is_some());
        if !full {
            let items: Vec<GroupDelta> = std::mem::take(&mut self.dirty)
                .into_iter()
                .filter_map(|i| match self.cloud[i] {
                    Cloud::Live { .. } => Some(self.listed(i)),
                    Cloud::Soft => Some(removed(i, Removed::Changed)),
                    Cloud::Purged => Some(removed(i, Removed::Deleted)),
                    Cloud::Absent => None,
                })
                .collect();
            self.commit(&items, true);
            return;
        }
        // A full enumeration lists the live groups now; later changes go to the next round.
        if cursor.is_none() {
            self.dirty.clear();
        }
        let live: Vec<GroupDelta> = (0..GROUPS)
            .filter(|&i| matches!(self.cloud[i], Cloud::Live { .. }))
            .map(|i| self.listed(i))
            .collect();
        let pages: Vec<Vec<GroupDelta>> = if live.is_empty() {
            vec![vec![]]
        } else {
            live.chunks(2).map(<[GroupDelta]>::to_vec).collect()
        };
        let n = pages.len();
        for (k, page) in pages.into_iter().enumerate() {
            if stop_after.is_some_and(|s| k >= s) {
                return; // interrupted: the cursor stays mid-round
            }
            self.commit(&page, k + 1 == n);
        }
    }

    /// Applies pending work, oldest first, for at most `limit` groups (all when `None`).
    fn drain(&mut self, limit: Option<usize>) {
        let mut done = 0;
        loop {
            let batch = self.store().pending_batch(1024).unwrap();
            if batch.is_empty() {
                return;
            }
            // The worker's own grouping: per group, in sequence order.
            for (gid, changes) in group_batch(batch) {
                if limit.is_some_and(|l| done >= l) {
                    return;
                }
                done += 1;
                let seqs: Vec<u64> = changes.iter().map(|(s, _)| *s).collect();
                if let Some(work) = Work::coalesce(changes.iter().map(|(_, c)| &c.kind)) {
                    self.apply(&gid, &work);
                }
                self.store().ack(&seqs).unwrap();
            }
        }
    }

    fn apply(&mut self, gid: &str, work: &Work) {
        match work {
            Work::Converge { .. } => {
                let wanted = self.store().group(gid).unwrap().is_some_and(|r| r.wanted());
                if wanted && !self.ad.contains_key(gid) {
                    self.create(gid);
                } else if wanted && let Some(g) = self.ad.get_mut(gid) {
                    // Converge restores type and place (what the admin's rules say).
                    g.converted = false;
                    g.moved = false;
                }
            }
            Work::Delete(_) => {
                if safety::mirror_wants(self.store().group(gid).unwrap().as_ref())
                    || !self.ad.contains_key(gid)
                {
                    return;
                }
                let cloud = self.cloud_state(gid);
                let d = safety::decide(self.store().group(gid).unwrap().as_ref(), cloud);
                self.execute(gid, d);
            }
            Work::Sweep => self.sweep(),
        }
    }

    fn sweep(&mut self) {
        if !self.store().complete_picture().unwrap() {
            return;
        }
        let owned: Vec<String> = self.ad.keys().cloned().collect();
        let store = self.store().clone();
        let decided: Vec<(String, Decision)> = owned
            .into_iter()
            .filter(|g| {
                safety::sweep_candidate(store.group(g).unwrap().as_ref(), store.is_held(g).unwrap())
            })
            .filter_map(|g| {
                let d = safety::sweep_decision(
                    store.group(&g).unwrap().as_ref(),
                    self.cloud_state(&g),
                )?;
                Some((g, d))
            })
            .collect();
        let destructive: Vec<&(String, Decision)> = decided
            .iter()
            .filter(|(_, d)| safety::is_destructive(*d, self.soft))
            .collect();
        if destructive.len() > self.threshold {
            let held: Vec<(String, DeleteReason)> = destructive
                .iter()
                .map(|(g, _)| (g.clone(), DeleteReason::Orphaned))
                .collect();
            store.hold_deletes(&held).unwrap();
            return;
        }
        for (g, d) in decided {
            self.execute(&g, d);
        }
    }

    fn execute(&mut self, gid: &str, d: Decision) {
        let destructive = safety::is_destructive(d, self.soft);
        if destructive {
            assert!(
                !self.wanted_in_cloud(gid),
                "destructive action {d:?} ({:?}) on {gid}, which is live and in scope",
                self.soft
            );
        }
        match (d, self.soft) {
            (Decision::Keep(_), _) | (Decision::SoftPolicy, SoftDeleteAction::Freeze) => {}
            (Decision::Delete, _) | (Decision::SoftPolicy, SoftDeleteAction::Delete) => {
                self.ad.remove(gid);
            }
            (Decision::SoftPolicy, SoftDeleteAction::ConvertToDistribution) => {
                self.ad.get_mut(gid).unwrap().converted = true;
            }
            (Decision::SoftPolicy, SoftDeleteAction::Move) => {
                self.ad.get_mut(gid).unwrap().moved = true;
            }
        }
    }

    fn create(&mut self, gid: &str) {
        assert!(!self.ad.contains_key(gid), "{gid} created twice");
        self.ad.insert(
            gid.to_string(),
            AdGroup {
                guid: self.next_guid,
                converted: false,
                moved: false,
            },
        );
        self.next_guid += 1;
    }

    fn reopen(&mut self, lose_state: bool) {
        let path = self.dir.path().join("state");
        self.store = None; // closes sled
        if lose_state {
            std::fs::remove_dir_all(&path).unwrap();
            self.dirty.clear();
        }
        // sled's flusher thread lets go of the lock a moment after the last handle drops.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Store::open(&path) {
                Ok(s) => break self.store = Some(s),
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("reopen: {e}"),
            }
        }
    }

    fn run(&mut self, s: &Step) {
        match *s {
            Step::Resync => self.store().reset_cursor(Resource::Groups).unwrap(),
            Step::Round { stop_after } => self.round(stop_after),
            Step::Drain { groups } => self.drain(Some(groups)),
            Step::PeriodicSweep => {
                if self.store().enqueue_reconcile_all().unwrap().is_some() {
                    self.drain(None);
                }
            }
            Step::ApproveAll => {
                self.store().approve_deletes(None).unwrap();
            }
            Step::ApproveOne(i) => {
                self.store().approve_deletes(Some(&[id(i)])).unwrap();
            }
            Step::Crash => self.reopen(false),
            Step::LoseState => self.reopen(true),
            _ => self.cloud_event(s),
        }
    }

    /// Lets everything converge: a resync round, drains and approvals, twice.
    fn settle(&mut self) {
        for _ in 0..2 {
            self.store().reset_cursor(Resource::Groups).unwrap();
            self.round(None);
            self.drain(None);
            self.store().approve_deletes(None).unwrap();
            self.drain(None);
            self.round(None);
            self.drain(None);
        }
    }
}

fn removed(i: usize, how: Removed) -> GroupDelta {
    GroupDelta {
        id: id(i),
        removed: Some(how),
        patch: GroupPatch::default(),
        members: vec![],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn no_live_group_is_ever_harmed_and_every_purged_group_goes(
        soft in policy(),
        threshold in 0..3usize,
        steps in proptest::collection::vec(step(), 1..80),
    ) {
        let mut w = World::new(soft, threshold);
        // Identity of every AD object of a group that stayed live and in scope meanwhile.
        for s in &steps {
            let before: BTreeMap<String, u64> = w
                .ad
                .iter()
                .filter(|(g, _)| w.wanted_in_cloud(g))
                .map(|(g, a)| (g.clone(), a.guid))
                .collect();
            w.run(s);
            for (g, guid) in before {
                if w.wanted_in_cloud(&g) {
                    let now = w.ad.get(&g).map(|a| a.guid);
                    prop_assert_eq!(now, Some(guid), "{} lost or recreated after {:?}", g, s);
                }
            }
        }
        let before: BTreeMap<String, u64> = w
            .ad
            .iter()
            .filter(|(g, _)| w.wanted_in_cloud(g))
            .map(|(g, a)| (g.clone(), a.guid))
            .collect();
        w.settle();
        for i in 0..GROUPS {
            let g = id(i);
            match w.cloud[i] {
                Cloud::Purged => prop_assert!(!w.ad.contains_key(&g), "purged {} still in AD", g),
                Cloud::Live { in_scope: true } => {
                    prop_assert!(w.ad.contains_key(&g), "live {} missing from AD", g);
                    if let Some(guid) = before.get(&g) {
                        prop_assert_eq!(w.ad[&g].guid, *guid, "{} recreated while settling", g);
                    }
                }
                _ => {}
            }
        }
    }
}

/// The model's sensitivity, spelled out: a restore that lands after the delete was queued and
/// before it runs must keep the group (a queued delete is only a hint).
#[test]
fn a_restore_between_queueing_and_running_a_delete_keeps_the_group() {
    for soft in [SoftDeleteAction::Delete, SoftDeleteAction::Move] {
        let mut w = World::new(soft, 5);
        for s in [
            Step::Create(0),
            Step::Round { stop_after: None },
            Step::Drain { groups: 9 },
        ] {
            w.run(&s);
        }
        let guid = w.ad[&id(0)].guid;
        for s in [
            Step::SoftDelete(0),
            Step::Round { stop_after: None },
            Step::Restore(0),
            Step::Drain { groups: 9 },
        ] {
            w.run(&s);
        }
        assert_eq!(w.ad[&id(0)].guid, guid);
        assert!(!w.ad[&id(0)].moved);
    }
}
