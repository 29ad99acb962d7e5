//! The worker's test lab: a real [`Store`] (sled, in a temp dir) fed by the mirror's own page
//! commits, the real applier, and the in-memory directory fake behind the [`Ldap`] seam.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{DrainReport, Worker, WorkerError};
use crate::config::AdConfig;
use crate::config::SyncConfig;
use crate::directory::fake::{FakeDirectory, ad_config};
use crate::directory::retire::{CloudOracle, ManagedFuture, OracleFuture};
use crate::directory::{Applier, mapping};
use crate::graph::page::{GroupDelta, NextStep, UserDelta};
use crate::model::event::{GroupOutcome, Recorded};
use crate::model::{ALL_GROUPS, Event, GroupPatch, Patch, Removed, Resource, UserPatch};
use crate::queue::Store;
use crate::queue::mirror::DeletePolicy;
use crate::queue::safety::CloudNow;

pub(super) const DOMAIN: &str = "DC=corp,DC=example";
pub(super) const OU: &str = "OU=Groups,DC=corp,DC=example";
pub(super) const PEOPLE: &str = "OU=People,DC=corp,DC=example";
pub(super) const G1: &str = "11111111-aaaa-4000-8000-000000000001";
pub(super) const G2: &str = "22222222-bbbb-4000-8000-000000000002";

/// What Graph says about each group when a destructive action is re-checked (default:
/// purged), and whether its source of authority is the cloud (default: not).
#[derive(Default)]
pub(super) struct Cloud(
    pub(super) Mutex<HashMap<String, CloudNow>>,
    pub(super) Mutex<HashMap<String, bool>>,
);

impl CloudOracle for Cloud {
    fn group_state<'a>(&'a self, group_id: &'a str) -> OracleFuture<'a> {
        let now = self.0.lock().unwrap().get(group_id).copied();
        Box::pin(async move { Ok(now.unwrap_or(CloudNow::Purged)) })
    }

    fn cloud_managed<'a>(&'a self, group_id: &'a str) -> ManagedFuture<'a> {
        let managed = self.1.lock().unwrap().get(group_id).copied();
        Box::pin(async move { Ok(managed.unwrap_or(false)) })
    }
}

pub(super) struct Lab {
    pub(super) fake: FakeDirectory,
    pub(super) store: Store,
    pub(super) cloud: Arc<Cloud>,
    pub(super) worker: Worker<FakeDirectory>,
    pub(super) seen: Arc<Recorded>,
    /// User id → its AD SID.
    pub(super) sids: HashMap<String, String>,
    pub(super) _tmp: tempfile::TempDir,
}

pub(super) fn sync_config(max_attempts: u32) -> SyncConfig {
    SyncConfig {
        max_attempts,
        min_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        concurrency: 4,
        ..SyncConfig::default()
    }
}

pub(super) fn removed(id: &str, how: Removed) -> GroupDelta {
    GroupDelta {
        id: id.into(),
        removed: Some(how),
        patch: GroupPatch::default(),
        members: vec![],
    }
}

impl Lab {
    /// A directory with the target OU and one AD account per user, and a store whose mirror
    /// knows each user's SID.
    pub(super) async fn new(users: &[&str], max_attempts: u32) -> Lab {
        Lab::with(users, max_attempts, |_| {}).await
    }

    /// [`Lab::new`] with the `[ad]` section adjusted by `tweak`.
    pub(super) async fn with(
        users: &[&str],
        max_attempts: u32,
        tweak: impl FnOnce(&mut AdConfig),
    ) -> Lab {
        let fake = FakeDirectory::new(DOMAIN);
        fake.add_ou(OU);
        fake.add_ou(PEOPLE);
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let mut sids = HashMap::new();
        let mut items = Vec::new();
        for u in users {
            let sid = fake.add_user(PEOPLE, u, u);
            items.push(UserDelta {
                id: u.to_string(),
                removed: None,
                patch: UserPatch {
                    sid: Patch::Value(sid.clone()),
                    ..Default::default()
                },
            });
            sids.insert(u.to_string(), sid);
        }
        let link = NextStep::Delta("https://graph.example/v1.0/users/delta?$deltatoken=1".into());
        store.commit_user_page(&items, &link, None).unwrap();
        let (seen, events) = Recorded::new();
        let mut cfg = ad_config(OU);
        cfg.soft_delete = crate::config::SoftDeleteAction::Delete;
        tweak(&mut cfg);
        let dir = fake.directory(&cfg, events.clone()).await;
        let cloud = Arc::new(Cloud::default());
        let applier = Applier::new(dir, store.clone(), cloud.clone(), false);
        let worker = Worker::new(store.clone(), applier, sync_config(max_attempts), events);
        Lab {
            fake,
            store,
            cloud,
            worker,
            seen,
            sids,
            _tmp: tmp,
        }
    }

    /// Commits one groups page that ends a round (the first round is a full enumeration).
    pub(super) fn round(&self, items: &[GroupDelta]) {
        self.page(items, true);
    }

    /// Commits one groups page; `last` ends the round (a deltaLink), else a nextLink follows.
    pub(super) fn page(&self, items: &[GroupDelta], last: bool) {
        let before = self.store.cursor(Resource::Groups).unwrap();
        let link = if last {
            NextStep::Delta("https://graph.example/v1.0/groups/delta?$deltatoken=x".into())
        } else {
            NextStep::Next("https://graph.example/v1.0/groups/delta?$skiptoken=y".into())
        };
        let policy = DeletePolicy {
            threshold: 10,
            soft_destructive: true,
        };
        self.store
            .commit_group_page(items, &link, before.as_ref(), policy, &|_, p| p.eligible())
            .unwrap();
    }

    pub(super) async fn drain(&self) -> Result<DrainReport, WorkerError> {
        self.worker
            .drain(&tokio_util::sync::CancellationToken::new())
            .await
    }

    /// The DN of the AD group anchored to `id`, if there is one.
    pub(super) fn dn_of(&self, id: &str) -> Option<String> {
        let anchor = mapping::anchor(id);
        self.fake.children(OU).into_iter().find(|dn| {
            self.fake
                .attr(dn, "adminDescription")
                .is_some_and(|v| v == [anchor.clone()])
        })
    }

    pub(super) fn member_sids(&self, id: &str) -> BTreeSet<String> {
        self.fake
            .member_sids(&self.dn_of(id).expect("the group is in AD"))
            .unwrap()
    }

    pub(super) fn sids(&self, users: &[&str]) -> BTreeSet<String> {
        users.iter().map(|u| self.sids[*u].clone()).collect()
    }

    pub(super) fn depth(&self) -> u64 {
        self.store.stats().unwrap().depth
    }

    /// The `GroupFinished` events so far, as (group, number of changes, outcome), the orphan
    /// sweep that ends every full round left out.
    pub(super) fn finished(&self) -> Vec<(String, usize, GroupOutcome)> {
        self.seen
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::GroupFinished {
                    group_id,
                    seen_ms,
                    outcome,
                    ..
                } if group_id != ALL_GROUPS => Some((group_id, seen_ms.len(), outcome)),
                _ => None,
            })
            .collect()
    }

    pub(super) fn count(&self, want: &Event) -> usize {
        self.seen.events().iter().filter(|e| *e == want).count()
    }
}
