//! The poller: reads delta rounds from Graph into the store, driving the pure state machine of
//! [`crate::graph::delta`].
//!
//! Each turn of [`Poller::round`]'s loop carries out one [`Action`]: it fetches the URL the
//! machine names, parses the page, commits it (changes, mirror updates and the cursor after the
//! page, in one transaction) and flushes, then feeds the outcome back to [`step`]. Every decision
//! (which URL, `Prefer: return=minimal` or not, end of round, resync, runaway) is the machine's.
//!
//! # Guarantees
//! - **Persist before advancing.** No page is committed before the previous one and its cursor
//!   are flushed to disk; a crash resumes from the last flushed cursor. The next page is
//!   fetched while the current one is committed ([`ahead`]): a fetch moves nothing, and its
//!   body is used only if the machine then asks for exactly that request.
//! - **A rejected page moves nothing.** A malformed page or a failing store ends the round with
//!   an error and the cursor stays where it was.
//! - **A hostile upstream is bounded.** A response over `graph.max_response_bytes` is refused
//!   while it is read (`crate::graph::client`), a page with more than `graph.max_page_items`
//!   objects before it is parsed, a round of more than `graph.max_pages_per_round` pages is
//!   stopped (an endless nextLink chain): each ends the round with an error and keeps the
//!   cursor. Members past `graph.max_members_per_group` are refused per group by the page
//!   commit (`crate::queue::fold`) and reported as [`Event::MembersSkipped`]
//!   (`member_limit`) with a warning naming the groups.
//! - **A changed `[graph.scope]` is noticed.** Once per process, before the first groups round,
//!   stored scope decisions are compared with the configured scope; any difference forgets the
//!   groups cursor, so the round is a full enumeration that re-evaluates every group.
//! - **It reports, never reaches in.** What happened goes out as [`Event`]s through the
//!   [`Events`] handle given at construction: [`Event::ChangesEnqueued`] and
//!   [`Event::MembersSkipped`] per committed page, then [`Event::PageCommitted`];
//!   [`Event::RoundFinished`] per round, [`Event::CycleSucceeded`] after users and groups both
//!   succeeded.
//!
//! # May import
//! [`crate::model`], [`crate::graph`] and [`crate::queue`]; never an observability module.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

use tokio::sync::Notify;
use tracing::Instrument;

use crate::graph::client::Limits;
use crate::graph::delta::{self, Action, Input, Round, RunawayKind, Stream, step};
use crate::graph::page::{self, DeltaPage, GroupDelta, NextStep, PageError, UserDelta};
use crate::graph::scope::Scope;
use crate::graph::{GraphClient, GraphError};
use crate::model::event::RoundTally;
use crate::model::{Event, Events, GroupProps, Resource};
use crate::queue::mirror::{DeletePolicy, PageOutcome};
use crate::queue::{Cursor, QueueError, Store};

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
    #[error("{} {why}", .resource.as_str())]
    Runaway {
        /// Which stream.
        resource: Resource,
        /// What ran away.
        why: RunawayKind,
    },
    /// The service is stopping; the round resumes from its stored cursor at the next start.
    #[error("stopped between pages; the round resumes from its cursor")]
    Stopped,
}

impl PollError {
    /// Whether the next round may succeed without an operator.
    pub fn is_transient(&self) -> bool {
        match self {
            PollError::Graph(e) => e.is_transient(),
            PollError::Stopped => true,
            PollError::Page { .. } => true,
            PollError::Store(e) => e.is_transient(),
            PollError::Runaway { .. } => true,
        }
    }
}

/// Where the stored cursor says a stream stands.
pub fn stream_of(cursor: Option<&Cursor>) -> Stream {
    match cursor {
        None => Stream::Unsynced,
        Some(c) if c.mid_round => Stream::MidRound {
            next_link: c.link.clone(),
            full: c.full_epoch.is_some(),
        },
        Some(c) => Stream::Synced {
            delta_link: c.link.clone(),
        },
    }
}

/// Whether a stored delta link is one of Graph's beta endpoint (`…/beta/groups/delta…`).
fn link_is_beta(link: &str) -> bool {
    url::Url::parse(link).is_ok_and(|u| {
        u.path_segments()
            .is_some_and(|mut s| s.any(|seg| seg == "beta"))
    })
}

/// Reads delta rounds from Graph into the store.
#[derive(Clone)]
pub struct Poller {
    client: GraphClient,
    store: Store,
    policy: DeletePolicy,
    /// Woken after each committed page once the round has queued changes, so the worker starts
    /// at once.
    pub wake: Arc<Notify>,
    events: Events,
    /// Set once this process has compared the mirror's scope decisions with `[graph.scope]`.
    scope_checked: Arc<AtomicBool>,
}

impl Poller {
    /// A poller writing into `store`, reporting through `events`.
    pub fn new(
        client: GraphClient,
        store: Store,
        policy: DeletePolicy,
        wake: Arc<Notify>,
        events: Events,
    ) -> Poller {
        Poller {
            client,
            store,
            policy,
            wake,
            events,
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
        let fingerprint = scope.fingerprint();
        let cursor = self.store.cursor(Resource::Groups)?;
        // The same scope as when the mirror was last judged: no walk over every group (a
        // restart of a large tenant must not decode the whole mirror before its first poll).
        let changed = if self.store.scope_fingerprint()?.as_deref() == Some(fingerprint.as_str()) {
            0
        } else {
            self.store
                .all_groups()?
                .into_iter()
                .filter(|(id, r)| r.admitted != scope.admits(id, &r.props))
                .count()
        };
        if changed > 0 && cursor.is_some() {
            tracing::warn!(
                groups = changed,
                "graph.scope changed since the groups were last seen; starting a full resync"
            );
            self.store.reset_cursor(Resource::Groups)?;
        } else if let Some(c) = cursor
            && link_is_beta(&c.link) != self.client.delta_is_beta(Resource::Groups)
        {
            // The stored link belongs to the other endpoint: its pages would lack (or carry)
            // `writebackConfiguration`, so every group is read again from the right one.
            tracing::warn!(
                "graph.writeback_configuration changed since the groups were last read; starting a full resync"
            );
            self.store.reset_cursor(Resource::Groups)?;
        }
        // After the reset (flushed): a crash in between walks once more, never skips a change.
        self.store.set_scope_fingerprint(&fingerprint)?;
        Ok(())
    }

    /// One users round then one groups round (users first, so new members resolve). The tally
    /// is the groups round's, with the users round's resyncs added.
    /// `stop` is checked between pages.
    pub async fn cycle(&self, stop: &CancellationToken) -> Result<RoundTally, PollError> {
        let users = self.round(Resource::Users, stop).await?;
        let mut groups = self.round(Resource::Groups, stop).await?;
        groups.resyncs += users.resyncs;
        self.events.emit(Event::CycleSucceeded);
        Ok(groups)
    }

    /// Walks one round of `resource` to its deltaLink.
    pub async fn round(
        &self,
        resource: Resource,
        stop: &CancellationToken,
    ) -> Result<RoundTally, PollError> {
        let started = Instant::now();
        let label = resource.as_str();
        let span = tracing::info_span!("delta_round", resource = label);
        let result = self.walk(resource, stop).instrument(span.clone()).await;
        let _in_round = span.enter();
        self.events.emit(Event::RoundFinished {
            resource,
            duration: started.elapsed(),
            outcome: result.as_ref().map(|t| *t).map_err(|e| e.to_string()),
        });
        match &result {
            Ok(r) => tracing::info!(
                resource = label,
                kind = if r.full { "full" } else { "incremental" },
                pages = r.pages,
                items = r.items,
                enqueued = r.enqueued,
                held_deletes = r.held_deletes,
                ms = started.elapsed().as_millis() as u64,
                "delta round complete"
            ),
            Err(e) => tracing::warn!(resource = label, error = %e, "delta round failed"),
        }
        result
    }

    /// Carries out the machine's actions until one ends the round.
    async fn walk(
        &self,
        resource: Resource,
        stop: &CancellationToken,
    ) -> Result<RoundTally, PollError> {
        if resource == Resource::Groups {
            self.check_scope_change()?;
        }
        let stored = self.store.cursor(resource)?;
        let initial = self.client.delta_url(resource);
        let (mut round, mut action) = Round::start_with_budget(
            stream_of(stored.as_ref()),
            initial,
            self.client.prefer_minimal(),
            self.client.limits().max_pages_per_round,
        );
        let mut ahead: Option<Ahead> = None;
        loop {
            if stop.is_cancelled() {
                return Err(PollError::Stopped);
            }
            let (url, minimal) = match action {
                Action::Fetch { url, minimal } => (url, minimal),
                Action::Resync { url, code } => {
                    tracing::warn!(
                        resource = resource.as_str(),
                        code,
                        "delta token rejected; starting a full resync"
                    );
                    self.store.reset_cursor(resource)?;
                    (url, false)
                }
                Action::Done => return Ok(round.tally()),
                Action::Stop(why) => return Err(PollError::Runaway { resource, why }),
                Action::GiveUp { code } => return Err(GraphError::ResyncRequired { code }.into()),
            };
            let fetched_ahead = match ahead.take() {
                Some(a) => a.take(&url, minimal).await,
                None => None,
            };
            let fetched = match fetched_ahead {
                Some(body) => Ok(body),
                None => {
                    self.client
                        .get(delta::endpoint(resource), &url, minimal)
                        .await
                }
            };
            let input = match fetched {
                Ok(body) => {
                    let (input, next) = self.commit(resource, &body, &round).await?;
                    ahead = next;
                    input
                }
                Err(GraphError::ResyncRequired { code }) => Input::ResyncRequired { code },
                Err(e) => return Err(e.into()),
            };
            let committed = matches!(input, Input::Page { .. });
            (round, action) = step(round, input);
            if committed {
                self.events.emit(Event::PageCommitted {
                    resource,
                    round: round.tally(),
                });
                if round.tally().enqueued > 0 {
                    self.wake.notify_one();
                }
            }
        }
    }

    /// Parses `body` as a page of `resource`, commits it after the stored cursor, flushes, and
    /// reports what the commit queued and skipped. Returns the page as the machine's input,
    /// and the request `round` makes next, fetched meanwhile ([`ahead`]).
    async fn commit(
        &self,
        resource: Resource,
        body: &[u8],
        round: &Round,
    ) -> Result<(Input, Option<Ahead>), PollError> {
        let limits = self.client.limits();
        let page = Parsed::of(resource, body, limits)?;
        let ahead = round
            .fetch_after(page.link())
            .map(|(url, minimal)| Ahead::start(&self.client, resource, &url, minimal));
        let (input, outcome) =
            page.commit(&self.store, self.policy, self.client.scope(), limits)?;
        self.store.flush().await?;
        report_page(&self.events, &outcome);
        Ok((input, ahead))
    }
}

/// Parses `body` as a page of `resource` and commits it, in one transaction with the cursor
/// after it, on top of the stored cursor (not flushed yet). `scope` decides which groups are
/// admitted. Returns the page as the machine's input, and what the commit did.
#[cfg(test)]
fn commit_page(
    store: &Store,
    policy: DeletePolicy,
    scope: &Scope,
    resource: Resource,
    body: &[u8],
) -> Result<(Input, PageOutcome), PollError> {
    let limits = Limits::default();
    Parsed::of(resource, body, limits)?.commit(store, policy, scope, limits)
}

/// A page parsed, not yet committed.
enum Parsed {
    Groups(DeltaPage<GroupDelta>),
    Users(DeltaPage<UserDelta>),
}

impl Parsed {
    /// Parses `body` as a page of `resource`; one with more than `max_page_items` objects is
    /// rejected before it is parsed.
    fn of(resource: Resource, body: &[u8], limits: Limits) -> Result<Parsed, PollError> {
        let page_err = |source| PollError::Page {
            resource: resource.as_str(),
            source,
        };
        page::check_item_count(body, limits.max_page_items).map_err(page_err)?;
        Ok(match resource {
            Resource::Groups => Parsed::Groups(page::parse_group_page(body).map_err(page_err)?),
            Resource::Users => Parsed::Users(page::parse_user_page(body).map_err(page_err)?),
        })
    }

    /// Where the page says the round goes on.
    fn link(&self) -> &NextStep {
        match self {
            Parsed::Groups(p) => &p.link,
            Parsed::Users(p) => &p.link,
        }
    }

    /// Commits the page after the stored cursor (not flushed yet); groups keep at most
    /// `max_members_per_group` members.
    fn commit(
        self,
        store: &Store,
        policy: DeletePolicy,
        scope: &Scope,
        limits: Limits,
    ) -> Result<(Input, PageOutcome), PollError> {
        let (next, items, outcome) = match self {
            Parsed::Groups(page) => {
                let before = store.cursor(Resource::Groups)?;
                let admits = |id: &str, p: &GroupProps| scope.admits(id, p);
                let outcome = store.commit_group_page_limited(
                    &page.items,
                    &page.link,
                    before.as_ref(),
                    policy,
                    &admits,
                    limits.max_members_per_group,
                )?;
                (page.link, page.items.len(), outcome)
            }
            Parsed::Users(page) => {
                let before = store.cursor(Resource::Users)?;
                let outcome = store.commit_user_page(&page.items, &page.link, before.as_ref())?;
                (page.link, page.items.len(), outcome)
            }
        };
        let input = Input::Page {
            next,
            items,
            enqueued: outcome.enqueued.values().sum(),
            superseded: outcome.superseded,
            held_deletes: outcome.held_deletes,
        };
        Ok((input, outcome))
    }
}

/// Reports what a committed page queued (per kind) and which members it skipped.
fn report_page(events: &Events, outcome: &PageOutcome) {
    for (kind, n) in &outcome.enqueued {
        events.emit(Event::ChangesEnqueued {
            kind,
            count: *n as u64,
        });
    }
    if outcome.refused_members > 0 {
        tracing::warn!(
            groups = ?outcome.refused_groups,
            refused = outcome.refused_members,
            "groups list more members than graph.max_members_per_group; their extra members \
             are not kept and the groups are not written to AD (changes dead-lettered as \
             member_limit)"
        );
        events.emit(Event::MembersSkipped {
            reason: "member_limit",
            count: outcome.refused_members as u64,
        });
    }
    if outcome.unsupported_members > 0 {
        events.emit(Event::MembersSkipped {
            reason: "unsupported_type",
            count: outcome.unsupported_members as u64,
        });
    }
}

mod ahead;
#[cfg(test)]
mod tests;

use ahead::Ahead;
