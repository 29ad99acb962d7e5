//! The delta stream as an explicit state machine: pure, no I/O.
//!
//! A stream (groups or users) always stands in one of three [`Stream`] states, the ones its
//! stored cursor records:
//!
//! ```text
//!               page ends with a nextLink          page ends with a nextLink
//!   Unsynced ─────────────────────────▶ MidRound ◀─────────────────────────┐
//!   (full round pending)                {nextLink, full}  ─────────────────┘
//!      ▲  │ page ends with a deltaLink        │ page ends with a deltaLink
//!      │  ▼                                   ▼
//!      │ Synced {deltaLink} ◀─────────────────┘
//!      │  │ (next round: incremental; a nextLink leads to MidRound{full: false})
//!      └──┘ Graph refuses the link (410, syncStateNotFound, resyncRequired): resync
//! ```
//!
//! One delta round is a [`Round`]: where the stream stands plus what the round has done so far
//! (its [`RoundTally`]). [`Round::start`] gives the first [`Action`]; the caller carries it out
//! and reports what happened as an [`Input`]; [`step`] turns (round, input) into the next round
//! and action, until a terminal action ([`Action::Done`], [`Action::Stop`],
//! [`Action::GiveUp`]). This is kube-runtime's watcher (`State` enum plus `step`) without the
//! I/O: the HTTP loop lives in `crate::sync::poll` and only fetches, commits and reports.
//!
//! # Guarantees
//! - **Full rounds list every property.** `Prefer: return=minimal` is asked for only when the
//!   configuration wants it and the request belongs to an incremental round.
//! - **A round ends.** A nextLink that repeats the link just requested, or more pages than the
//!   round's budget (`graph.max_pages_per_round`, default [`MAX_PAGES_PER_ROUND`]), stops it
//!   ([`RunawayKind`]), an endless chain of distinct nextLinks included; Graph may force at most
//!   [`MAX_RESYNCS_PER_ROUND`] resyncs in one round, the next refusal fails it.
//! - **A resync is a full enumeration.** The stored cursor is dropped ([`Action::Resync`]) and
//!   the round starts again from the initial URL; the round counts as full.
//! - **The machine follows what the store recorded.** An [`Input::Page`] is fed only after the
//!   page and the cursor after it were committed and flushed, so [`Round::stream`] is always
//!   what the stored cursor says (persist before advancing, see `crate::queue`).
//!
//! # May import
//! [`crate::model`] and its siblings in [`crate::graph`] (the page model); nothing that does
//! I/O, nothing above graph, no observability module.

use std::fmt;

use super::page::{self, NextStep};
use crate::model::Resource;
use crate::model::event::RoundTally;

/// The default page budget of a round (a guard against an endless nextLink chain):
/// `graph.max_pages_per_round`'s default.
pub const MAX_PAGES_PER_ROUND: usize = crate::config::DEFAULT_MAX_PAGES_PER_ROUND;

/// At most this many resyncs Graph may force in one round; the next refusal fails the round.
pub const MAX_RESYNCS_PER_ROUND: usize = 2;

/// The `$select` list of a stream's full rounds.
pub fn select(resource: Resource) -> &'static str {
    match resource {
        Resource::Groups => page::GROUP_SELECT,
        Resource::Users => page::USER_SELECT,
    }
}

impl super::GraphClient {
    /// The first URL of a full delta round of `resource`: v1.0 with the stream's `$select`, or
    /// for groups under `graph.writeback_configuration = "honour"`, the beta endpoint with
    /// `writebackConfiguration` selected too.
    pub fn delta_url(&self, resource: Resource) -> String {
        if self.delta_is_beta(resource) {
            format!(
                "{}/beta/{}/delta?$select={}",
                self.graph_url(),
                resource.as_str(),
                page::GROUP_SELECT_BETA
            )
        } else {
            self.initial_url(resource.as_str(), select(resource))
        }
    }

    /// Whether `resource` is read from the beta endpoint (groups, when the per-group
    /// `writebackConfiguration` is honoured).
    pub fn delta_is_beta(&self, resource: Resource) -> bool {
        resource == Resource::Groups && self.scope().honours_writeback_configuration()
    }
}

/// The endpoint label of a stream's delta requests (for the client's accounting).
pub fn endpoint(resource: Resource) -> &'static str {
    match resource {
        Resource::Groups => "groups_delta",
        Resource::Users => "users_delta",
    }
}

/// Where a delta stream stands between two pages: what its stored cursor records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stream {
    /// No cursor: the next page starts a full enumeration from the initial URL.
    Unsynced,
    /// A round in progress.
    MidRound {
        /// The opaque nextLink Graph gave (never rebuilt).
        next_link: String,
        /// Whether the round is a full enumeration (initial round or resync). The store keeps
        /// that enumeration's epoch; the machine only needs to know there is one.
        full: bool,
    },
    /// Synced: the next round is incremental and starts here.
    Synced {
        /// The opaque deltaLink Graph gave.
        delta_link: String,
    },
}

impl Stream {
    /// Whether the next page belongs to a full enumeration.
    pub fn is_full(&self) -> bool {
        matches!(self, Stream::Unsynced | Stream::MidRound { full: true, .. })
    }

    /// The link to request next; `None` when it is the initial URL.
    pub fn link(&self) -> Option<&str> {
        match self {
            Stream::Unsynced => None,
            Stream::MidRound { next_link, .. } => Some(next_link),
            Stream::Synced { delta_link } => Some(delta_link),
        }
    }

    /// Where the stream stands once a page requested from here, ending with `next`, is stored.
    pub fn after(&self, next: NextStep) -> Stream {
        match next {
            NextStep::Next(next_link) => Stream::MidRound {
                next_link,
                full: self.is_full(),
            },
            NextStep::Delta(delta_link) => Stream::Synced { delta_link },
        }
    }
}

/// Why a round was stopped before its deltaLink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunawayKind {
    /// A page's nextLink was the link that page was requested with.
    RepeatedNextLink,
    /// The round reached its page budget (the number given, `graph.max_pages_per_round`)
    /// without a deltaLink.
    PageBudget(usize),
}

impl fmt::Display for RunawayKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunawayKind::RepeatedNextLink => {
                f.write_str("nextLink repeated itself; stopping the round")
            }
            RunawayKind::PageBudget(n) => write!(
                f,
                "round exceeded {n} pages without a deltaLink (graph.max_pages_per_round); \
                 stopping the round, cursor kept"
            ),
        }
    }
}

/// What the caller saw when it carried out the last [`Action::Fetch`] or [`Action::Resync`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The page was parsed, committed and flushed together with the cursor after it.
    Page {
        /// The link the page ended with.
        next: NextStep,
        /// Items on the page.
        items: usize,
        /// Changes the commit queued.
        enqueued: usize,
        /// Earlier queued changes the commit dropped as superseded (a full enumeration's
        /// closing reconciles replace the round's pending upserts).
        superseded: usize,
        /// Deletes the commit held back by the threshold.
        held_deletes: usize,
    },
    /// Graph refused the link (HTTP 410, `syncStateNotFound`, `resyncRequired`).
    ResyncRequired {
        /// The code Graph answered with.
        code: String,
    },
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Request `url`, with `Prefer: return=minimal` if `minimal`.
    Fetch {
        /// The whole URL, as Graph gave it (or the initial URL).
        url: String,
        /// Whether to send `Prefer: return=minimal`.
        minimal: bool,
    },
    /// Forget the stream's stored cursor, then request `url` (the initial URL; never minimal).
    Resync {
        /// The initial URL.
        url: String,
        /// The code Graph refused the last link with.
        code: String,
    },
    /// The round reached its deltaLink.
    Done,
    /// The round ran away; stop it (the cursor stays where the last page left it).
    Stop(RunawayKind),
    /// Graph refused the link once more than [`MAX_RESYNCS_PER_ROUND`] resyncs allow: fail the
    /// round with that answer.
    GiveUp {
        /// The code Graph answered with.
        code: String,
    },
}

/// One delta round of one stream: where the stream stands and what the round did so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    stream: Stream,
    /// The link of the request the next input answers, if one is in flight.
    requested: Option<String>,
    tally: RoundTally,
    initial_url: String,
    prefer_minimal: bool,
    /// The most pages the round may take.
    max_pages: usize,
}

impl Round {
    /// Starts a round from `stream` (what the stored cursor says); `initial_url` begins a full
    /// enumeration; `prefer_minimal` is `graph.prefer_return_minimal`. Returns the first action,
    /// always a [`Action::Fetch`].
    /// The page budget is [`MAX_PAGES_PER_ROUND`]; [`Round::start_with_budget`] sets another.
    pub fn start(stream: Stream, initial_url: String, prefer_minimal: bool) -> (Round, Action) {
        Round::start_with_budget(stream, initial_url, prefer_minimal, MAX_PAGES_PER_ROUND)
    }

    /// [`Round::start`] with a page budget of `max_pages` (`graph.max_pages_per_round`; at
    /// least 1): the round stops with [`RunawayKind::PageBudget`] once it has taken that many
    /// pages without reaching a deltaLink.
    pub fn start_with_budget(
        stream: Stream,
        initial_url: String,
        prefer_minimal: bool,
        max_pages: usize,
    ) -> (Round, Action) {
        let mut round = Round {
            stream,
            requested: None,
            tally: RoundTally::default(),
            initial_url,
            prefer_minimal,
            max_pages: max_pages.max(1),
        };
        let (url, minimal) = round.request();
        (round, Action::Fetch { url, minimal })
    }

    /// Where the stream stands now.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// The round's running totals.
    pub fn tally(&self) -> RoundTally {
        self.tally
    }

    /// The next request from where the stream stands (URL, minimal), noted as in flight.
    fn request(&mut self) -> (String, bool) {
        let full = self.stream.is_full();
        let url = self.stream.link().unwrap_or(&self.initial_url).to_string();
        self.tally.full |= full;
        self.requested = Some(url.clone());
        (url, self.prefer_minimal && !full)
    }

    /// The request the machine makes after a page ending with `next`, if it makes one: what
    /// the poller may fetch while that page is committed. It asks [`step`] itself, so the
    /// page budget and the repeated-link guard are never passed by a fetch ahead.
    pub fn fetch_after(&self, next: &NextStep) -> Option<(String, bool)> {
        let page = Input::Page {
            next: next.clone(),
            items: 0,
            enqueued: 0,
            superseded: 0,
            held_deletes: 0,
        };
        match step(self.clone(), page).1 {
            Action::Fetch { url, minimal } => Some((url, minimal)),
            _ => None,
        }
    }
}

/// The transition function: the round after `input`, and what to do next.
pub fn step(mut round: Round, input: Input) -> (Round, Action) {
    let requested = round.requested.take();
    match input {
        Input::Page {
            next,
            items,
            enqueued,
            superseded,
            held_deletes,
        } => {
            let t = &mut round.tally;
            t.pages += 1;
            t.items += items;
            t.enqueued = (t.enqueued + enqueued).saturating_sub(superseded);
            t.held_deletes += held_deletes;
            round.stream = round.stream.after(next);
            let action = match &round.stream {
                Stream::Synced { .. } => Action::Done,
                Stream::MidRound { next_link, .. } if requested.as_ref() == Some(next_link) => {
                    Action::Stop(RunawayKind::RepeatedNextLink)
                }
                _ if round.tally.pages >= round.max_pages => {
                    Action::Stop(RunawayKind::PageBudget(round.max_pages))
                }
                _ => {
                    let (url, minimal) = round.request();
                    Action::Fetch { url, minimal }
                }
            };
            (round, action)
        }
        Input::ResyncRequired { code } if round.tally.resyncs < MAX_RESYNCS_PER_ROUND => {
            round.tally.resyncs += 1;
            round.stream = Stream::Unsynced;
            let (url, _) = round.request();
            (round, Action::Resync { url, code })
        }
        Input::ResyncRequired { code } => (round, Action::GiveUp { code }),
    }
}

#[cfg(test)]
pub(crate) mod tests;
