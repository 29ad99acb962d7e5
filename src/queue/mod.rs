//! The durable queue: Graph changes waiting for AD, the desired-state mirror they refer to, the
//! journal of applied changes and the dead letters. sled is kept behind [`Store`] so the engine
//! could be swapped.
//!
//! # Guarantees
//! - **Persist before advancing.** The changes of a Graph page, the mirror updates they imply and
//!   the cursor that follows that page are written in one sled transaction and flushed to disk
//!   before the next page is requested. A crash at any point resumes from the last flushed cursor;
//!   a page is either wholly recorded or not at all. The one exception bounds memory: a groups
//!   page with more than 2,000 member entries is written in parts of 2,000, each one
//!   transaction, the cursor only with the last ([`mirror::parts`]); a crash between parts asks
//!   for the page again, and its parts already stored fold to the same mirror, as Graph's own
//!   repeated slices of a large group do.
//! - **At-least-once.** A change leaves `pending` only after AD has confirmed it (ack), moving to
//!   the journal in the same transaction. A crash between AD's reply and the ack re-applies the
//!   change, which is harmless because applying is idempotent.
//! - **Per-group order.** Pending changes are keyed by a monotonic sequence number; the worker
//!   applies the changes of one group it sees together as one net change (coalescing), never
//!   the same group twice at once. A full enumeration's closing reconcile supersedes the
//!   round's pending upserts of the group in the transaction that queues it ([`supersede`]).
//! - **Level, not only edge.** Member changes are recorded in the mirror; a queued change names
//!   *which* members were touched and the worker applies what the mirror says *now*, so stale or
//!   duplicated changes converge to the same result.
//! - **Nothing dropped silently.** A change that fails permanently becomes a dead letter with its
//!   reason; `replay --dead` re-queues it.
//!
//! # Layout (sled trees)
//! `meta` (cursors, counters) · `pending` (seq → [`Change`]) · `dead` (seq → [`DeadLetter`]) ·
//! `journal` (seq → [`JournalEntry`]) · `groups` (id → [`GroupRecord`]) · `members`
//! (group id, 0, kind tag, member id → epoch) · `member_of` (member id, 0, group id) · `users`
//! (id → [`UserRecord`]) · `round_deletes` / `held_deletes` (group id → [`DeleteReason`]) ·
//! `materialized` (group id → the SID of its AD object, once an apply confirmed it) ·
//! `our_writes` / `frozen` (two writers on one group: [`writers`]).
//!
//! # Page commits
//! A page is committed as a fold and a write: `fold` turns the part of the mirror the page
//! touches and the page into a plan, with no I/O (and unit tests of its own); `mirror` reads
//! that view and writes the plan in one transaction. `keys` encodes the membership trees' keys.
//!
//! Imports: [`crate::model`], [`crate::config`] and the page shapes of [`crate::graph::page`];
//! nothing above the queue.

mod fold;
mod journal;
mod keys;
pub mod mirror;
mod plan_writes;
mod records;
pub mod safety;
mod store;
pub mod supersede;
pub mod writers;

pub use records::*;
pub use store::{QueueError, Store};

#[cfg(test)]
mod commit_tests;
#[cfg(test)]
mod operator_tests;
#[cfg(test)]
mod parts_tests;
#[cfg(test)]
mod round_end_tests;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
pub(crate) mod tests;
