//! The delta-round state machine.
//!
//! A stream (groups or users) is always in one of three states, stored as its [`Cursor`]:
//! *no cursor* (the next round is a full enumeration) → *mid-round* (a nextLink, and the epoch
//! of the full enumeration if it is one) → *synced* (a deltaLink; the next round is incremental).
//! One [`Poller::round`] walks nextLinks to the deltaLink, committing and flushing each page
//! before requesting the next. HTTP 410 / `syncStateNotFound` / `resyncRequired` drop the cursor
//! and start a full enumeration, whose end reconciles AD. A malformed page ends the round with
//! an error and the cursor stays where it was.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::Instrument;

use super::client::{GraphClient, GraphError};
use super::page::{self, PageError};
use crate::health::Health;
use crate::metrics;
use crate::model::Resource;
use crate::queue::{Cursor, QueueError, Store, mirror::DeletePolicy};

/// Why a round failed.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// Graph could not be read.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A page was malformed; the cursor did not move.
    #[error("{resource} delta page rejected, cursor kept: {source}")]
    Page {
        /// Which stream.
        resource: &'static str,
        /// What was wrong.
        #[source]
        source: PageError,
    },
    /// The state store failed (disk full, read-only): the cursor did not move.
    #[error(transparent)]
    Store(#[from] QueueError),
    /// A nextLink repeated itself or the round exceeded its page budget.
    #[error("{0}")]
    Runaway(String),
}

impl PollError {
    /// Whether the next round may succeed without an operator.
    pub fn is_transient(&self) -> bool {
        match self {
            PollError::Graph(e) => e.is_transient(),
            PollError::Page { .. } => true,
            PollError::Store(e) => e.is_transient(),
            PollError::Runaway(_) => true,
        }
    }
}

/// What a completed round did.
#[derive(Debug, Clone, Default)]
pub struct RoundReport {
    /// Pages read.
    pub pages: usize,
    /// Items read.
    pub items: usize,
    /// Changes queued.
    pub enqueued: usize,
    /// Whether it was a full enumeration.
    pub full: bool,
    /// Deletes held by the threshold.
    pub held_deletes: usize,
    /// Resyncs forced by Graph during the round.
    pub resyncs: usize,
}

/// At most this many pages per round (a guard against an endless nextLink chain).
const MAX_PAGES_PER_ROUND: usize = 200_000;

/// Reads delta rounds from Graph into the store.
#[derive(Clone)]
pub struct Poller {
    client: GraphClient,
    store: Store,
    policy: DeletePolicy,
    /// Woken after each committed page so the worker starts at once.
    pub wake: Arc<Notify>,
    health: Health,
    /// Set once this process has compared the mirror's scope decisions with `[graph.scope]`.
    scope_checked: Arc<AtomicBool>,
}

impl Poller {
    /// A poller writing into `store`.
    pub fn new(
        client: GraphClient,
        store: Store,
        policy: DeletePolicy,
        wake: Arc<Notify>,
        health: Health,
    ) -> Poller {
        Poller {
            client,
            store,
            policy,
            wake,
            health,
            scope_checked: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Once per process, before the first groups round: if a stored scope decision no longer
    /// matches `[graph.scope]` (the admin changed it), forget the groups cursor so the next
    /// round is a full enumeration, which re-evaluates every group (leaving scope = soft delete,
    /// entering = create) and reconciles AD.
    fn check_scope_change(&self) -> Result<(), PollError> {
        if self.scope_checked.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let scope = self.client.scope();
        let changed = self
            .store
            .all_groups()?
            .into_iter()
            .filter(|(id, r)| r.admitted != scope.admits(id, &r.props))
            .count();
        if changed > 0 && self.store.cursor(Resource::Groups)?.is_some() {
            tracing::warn!(
                groups = changed,
                "graph.scope changed since the groups were last seen; starting a full resync"
            );
            self.store.reset_cursor(Resource::Groups)?;
        }
        Ok(())
    }

    /// One users round then one groups round (users first, so new members resolve).
    pub async fn cycle(&self) -> Result<RoundReport, PollError> {
        let users = self.round(Resource::Users).await?;
        let mut groups = self.round(Resource::Groups).await?;
        groups.resyncs += users.resyncs;
        self.health.graph_ok();
        metrics::get()
            .last_round_ts
            .set(crate::model::now_ms() as f64 / 1000.0);
        Ok(groups)
    }

    /// Walks one round of `resource` to its deltaLink.
    pub async fn round(&self, resource: Resource) -> Result<RoundReport, PollError> {
        let started = Instant::now();
        let label = resource.as_str();
        let span = tracing::info_span!("delta_round", resource = label);
        let result = self.walk(resource).instrument(span.clone()).await;
        let _in_round = span.enter();
        crate::status::round_finished(label, started, &result);
        let m = metrics::get();
        m.round_duration
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(r) => {
                let kind = if r.full { "full" } else { "incremental" };
                m.rounds
                    .with_label_values(&[label, kind, if r.resyncs > 0 { "resync" } else { "ok" }])
                    .inc();
                tracing::info!(
                    resource = label,
                    kind,
                    pages = r.pages,
                    items = r.items,
                    enqueued = r.enqueued,
                    held_deletes = r.held_deletes,
                    ms = started.elapsed().as_millis() as u64,
                    "delta round complete"
                );
            }
            Err(e) => {
                m.rounds
                    .with_label_values(&[label, "unknown", "error"])
                    .inc();
                tracing::warn!(resource = label, error = %e, "delta round failed");
            }
        }
        result
    }

    async fn walk(&self, resource: Resource) -> Result<RoundReport, PollError> {
        let (path, select, endpoint) = match resource {
            Resource::Groups => ("groups", page::GROUP_SELECT, "groups_delta"),
            Resource::Users => ("users", page::USER_SELECT, "users_delta"),
        };
        if resource == Resource::Groups {
            self.check_scope_change()?;
        }
        let scope = self.client.scope().clone();
        let admits = move |id: &str, p: &crate::model::GroupProps| scope.admits(id, p);
        let mut report = RoundReport::default();
        let mut last_link: Option<String> = None;
        loop {
            let before: Option<Cursor> = self.store.cursor(resource)?;
            report.full |= before.as_ref().is_none_or(|c| c.full_epoch.is_some());
            let url = match &before {
                None => self.client.initial_url(path, select),
                Some(c) => c.link.clone(),
            };
            if before.as_ref().is_some_and(|c| c.mid_round)
                && last_link.as_deref() == Some(url.as_str())
            {
                return Err(PollError::Runaway(format!(
                    "{path} nextLink repeated itself; stopping the round"
                )));
            }
            if report.pages >= MAX_PAGES_PER_ROUND {
                return Err(PollError::Runaway(format!(
                    "{path} round exceeded {MAX_PAGES_PER_ROUND} pages"
                )));
            }
            // `Prefer: return=minimal` only in incremental rounds: a full enumeration must list
            // every property.
            let minimal = self.client.prefer_minimal()
                && before.as_ref().is_some_and(|c| c.full_epoch.is_none());
            let body = match self.client.get(endpoint, &url, minimal).await {
                Ok(b) => b,
                Err(GraphError::ResyncRequired { code }) if report.resyncs < 2 => {
                    tracing::warn!(
                        resource = path,
                        code,
                        "delta token rejected; starting a full resync"
                    );
                    self.store.reset_cursor(resource)?;
                    report.resyncs += 1;
                    last_link = None;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let page_err = |source| PollError::Page {
                resource: path,
                source,
            };
            let outcome = match resource {
                Resource::Groups => {
                    let page = page::parse_group_page(&body).map_err(page_err)?;
                    report.items += page.items.len();
                    self.store.commit_group_page(
                        &page.items,
                        &page.link,
                        before.as_ref(),
                        self.policy,
                        &admits,
                    )?
                }
                Resource::Users => {
                    let page = page::parse_user_page(&body).map_err(page_err)?;
                    report.items += page.items.len();
                    self.store
                        .commit_user_page(&page.items, &page.link, before.as_ref())?
                }
            };
            self.store.flush().await?;
            report.pages += 1;
            let m = metrics::get();
            for (kind, n) in &outcome.enqueued {
                m.changes_enqueued
                    .with_label_values(&[kind])
                    .inc_by(*n as u64);
                report.enqueued += n;
            }
            if outcome.unsupported_members > 0 {
                m.members_skipped
                    .with_label_values(&["unsupported_type"])
                    .inc_by(outcome.unsupported_members as u64);
            }
            report.held_deletes += outcome.held_deletes;
            crate::status::page(resource.as_str(), &report);
            if report.enqueued > 0 {
                self.wake.notify_one();
            }
            if outcome.round_done {
                return Ok(report);
            }
            last_link = Some(url);
        }
    }
}

/// Sleeps `d` unless `stop` fires first; returns true if stopped.
pub async fn sleep_or_stop(d: Duration, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.changed() => true,
    }
}
