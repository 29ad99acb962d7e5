//! Two writers on one group: telling another tool that still writes a group (Connect Sync or
//! Cloud Sync left running during a migration, a script) from a one-off hand edit, and
//! stopping the fight.
//!
//! The service remembers what it wrote to each group lately ([`crate::queue::writers`]). A
//! write it is about to make **repeats** one it made within `[ad] second_writer_window` when
//! the cloud still wants the same value but AD changed back: an attribute it set to `v` that
//! is no longer `v`, a member it added that is gone, a member it removed that is back. The
//! first repeat is drift and is corrected, as reconciliation always did. A repeat of a
//! repeat — reverted again after the correction — is another writer: the group is
//! **frozen** (durably; nothing more is written to it, deletes included) and reported
//! ([`Event::SecondWriter`], a warning log, `queue status`, `check`, the status page) until
//! the admin stops the other tool and runs `approve-writes`.
//!
//! # Guarantees
//! - Detection is pure ([`fight`], [`after_write`]): the same record and plan always give the
//!   same verdict. A cloud change is never a revert (the desired value differs from the one
//!   written), and a write that failed is never remembered (it is recorded after AD confirmed
//!   it), so retries do not count as reverts.
//! - A frozen group is skipped before anything is read or written.
//!
//! Imports: the directory's own modules, [`crate::queue`] (the records) and [`crate::model`].

use super::apply::{Applier, ApplyError};
use super::plan::Operation;
use super::seam::Ldap;
use crate::model::{Event, now_ms};
use crate::queue::writers::{AttrWrite, Frozen, OurWrites};

/// Repeats of one write (within the window) after which the group is frozen: the first is
/// drift, corrected; the second is a fight.
const REPEATS_TOLERATED: u32 = 1;

/// What the service is about to write to one group.
#[derive(Debug, Clone, Copy, Default)]
pub struct Planned<'a> {
    /// Attribute updates (`from` = AD now, `to` = the cloud's value).
    pub updates: &'a [Operation],
    /// Member SIDs to add.
    pub add: &'a [String],
    /// Member SIDs to remove.
    pub remove: &'a [String],
}

impl<'a> Planned<'a> {
    /// Attribute updates only.
    pub fn attributes(updates: &'a [Operation]) -> Planned<'a> {
        Planned {
            updates,
            ..Planned::default()
        }
    }

    /// Member changes only.
    pub fn members(add: &'a [String], remove: &'a [String]) -> Planned<'a> {
        Planned {
            add,
            remove,
            ..Planned::default()
        }
    }

    fn is_empty(&self) -> bool {
        self.updates.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// A write another tool keeps reverting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fight {
    /// `attribute` or `member`.
    pub kind: &'static str,
    /// What: the attribute and the values, or the member SID.
    pub detail: String,
}

/// How many times the attribute write `attr → to` repeats one made since `cutoff_ms` (`None`:
/// not a repeat).
fn attr_repeat(last: &OurWrites, cutoff_ms: u64, attr: &str, to: &Option<String>) -> Option<u32> {
    let w = last.attrs.get(attr)?;
    (w.at_ms >= cutoff_ms && w.to == *to).then_some(w.reverts)
}

/// As [`attr_repeat`], for a member added (`added`) or removed.
fn member_repeat(last: &OurWrites, cutoff_ms: u64, sid: &str, added: bool) -> Option<u32> {
    let w = last.members.get(sid)?;
    (w.at_ms >= cutoff_ms && w.added == added).then_some(w.reverts)
}

/// The first write of `planned` that another writer reverted again after the service had
/// already corrected it once (within the window starting at `cutoff_ms`), if any.
pub fn fight(last: &OurWrites, cutoff_ms: u64, planned: &Planned<'_>) -> Option<Fight> {
    let fought = |n: Option<u32>| n.is_some_and(|n| n >= REPEATS_TOLERATED);
    for op in planned.updates {
        if let Operation::Update { attr, from, to, .. } = op
            && fought(attr_repeat(last, cutoff_ms, attr, to))
        {
            return Some(Fight {
                kind: "attribute",
                detail: format!(
                    "{attr} was set to {} twice and changed back to {} each time",
                    show(to),
                    show(from)
                ),
            });
        }
    }
    let members = [(planned.add, true), (planned.remove, false)];
    for (sids, added) in members {
        if let Some(sid) = sids
            .iter()
            .find(|s| fought(member_repeat(last, cutoff_ms, s, added)))
        {
            let (did, undone) = if added {
                ("added", "removed")
            } else {
                ("removed", "added back")
            };
            return Some(Fight {
                kind: "member",
                detail: format!("member {sid} was {did} twice and {undone} each time"),
            });
        }
    }
    None
}

fn show(v: &Option<String>) -> String {
    v.as_deref()
        .map(|s| format!("{s:?}"))
        .unwrap_or_else(|| "(none)".into())
}

/// The record after `planned` was written at `now_ms`: each item written counts one more
/// repeat if it repeats a write made since `cutoff_ms`, else starts again at 0; what is older
/// than the window is forgotten.
pub fn after_write(
    last: OurWrites,
    cutoff_ms: u64,
    now_ms: u64,
    planned: &Planned<'_>,
) -> OurWrites {
    let mut next = last.clone();
    for op in planned.updates {
        if let Operation::Update { attr, from, to, .. } = op {
            let reverts = attr_repeat(&last, cutoff_ms, attr, to).map_or(0, |n| n + 1);
            let write = AttrWrite {
                from: from.clone(),
                to: to.clone(),
                at_ms: now_ms,
                reverts,
            };
            next.attrs.insert(attr.clone(), write);
        }
    }
    for (sids, added) in [(planned.add, true), (planned.remove, false)] {
        let reverts = |sid: &str| member_repeat(&last, cutoff_ms, sid, added).map_or(0, |n| n + 1);
        next.note_members(sids, added, now_ms, reverts);
    }
    next.forget_before(cutoff_ms);
    next
}

impl<L: Ldap> Applier<L> {
    /// The start of the detection window now (`None`: detection is off, or `plan` runs).
    fn window_start(&self) -> Option<u64> {
        let window = self.dir.config().second_writer_window;
        (!self.dry_run && !window.is_zero())
            .then(|| now_ms().saturating_sub(window.as_millis() as u64))
    }

    /// Whether the group is frozen (another writer): then nothing is done to it.
    pub(super) fn is_frozen(&self, group_id: &str, dn: Option<&str>) -> Result<bool, ApplyError> {
        let Some(frozen) = self.store.frozen(group_id)? else {
            return Ok(false);
        };
        tracing::debug!(
            group = group_id,
            since_ms = frozen.since_ms,
            "frozen: not written"
        );
        self.record(|| Operation::Skip {
            dn: dn.unwrap_or(&frozen.dn).to_string(),
            reason: format!(
                "frozen: another writer ({}); `approve-writes`",
                frozen.detail
            ),
        });
        Ok(true)
    }

    /// Before writing `planned` to the group at `dn`: if another writer keeps reverting it,
    /// freezes the group, reports it and says so (`true`: write nothing).
    pub(super) fn second_writer(
        &self,
        group_id: &str,
        dn: &str,
        planned: &Planned<'_>,
    ) -> Result<bool, ApplyError> {
        let Some(cutoff) = self.window_start().filter(|_| !planned.is_empty()) else {
            return Ok(false);
        };
        let Some(found) = fight(&self.store.our_writes(group_id)?, cutoff, planned) else {
            return Ok(false);
        };
        tracing::warn!(
            group = group_id,
            %dn,
            what = %found.detail,
            "another writer keeps reverting this group: frozen, nothing more is written to it \
             until `entra-writeback approve-writes {group_id}` (stop the other tool first)"
        );
        let why = Frozen {
            since_ms: now_ms(),
            kind: found.kind.to_string(),
            detail: found.detail,
            dn: dn.to_string(),
        };
        self.store.freeze(group_id, &why)?;
        self.events().emit(Event::SecondWriter {
            group_id: group_id.to_string(),
            kind: found.kind,
        });
        Ok(true)
    }

    /// After AD confirmed `planned`: remember it.
    pub(super) fn note_written(
        &self,
        group_id: &str,
        planned: &Planned<'_>,
    ) -> Result<(), ApplyError> {
        let Some(cutoff) = self.window_start().filter(|_| !planned.is_empty()) else {
            return Ok(());
        };
        let last = self.store.our_writes(group_id)?;
        let next = after_write(last, cutoff, now_ms(), planned);
        self.store.set_our_writes(group_id, &next)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(attr: &str, from: Option<&str>, to: &str) -> Operation {
        Operation::Update {
            dn: "CN=G,DC=t".into(),
            attr: attr.into(),
            from: from.map(str::to_string),
            to: Some(to.into()),
        }
    }

    fn sids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Writes `planned` at `now` (window 100 ms) and returns the verdict before it.
    fn round(rec: &mut OurWrites, now: u64, planned: &Planned<'_>) -> Option<Fight> {
        let cutoff = now.saturating_sub(100);
        let verdict = fight(rec, cutoff, planned);
        *rec = after_write(rec.clone(), cutoff, now, planned);
        verdict
    }

    #[test]
    fn a_member_reverted_twice_is_a_fight_once_is_drift() {
        let mut rec = OurWrites::default();
        let add = sids(&["S-1"]);
        let p = Planned {
            add: &add,
            ..Default::default()
        };
        assert_eq!(round(&mut rec, 1000, &p), None, "first write");
        assert_eq!(
            round(&mut rec, 1010, &p),
            None,
            "one revert: drift, corrected"
        );
        let f = round(&mut rec, 1020, &p).expect("reverted again: a fight");
        assert_eq!(f.kind, "member");
        assert!(
            f.detail.contains("S-1") && f.detail.contains("added twice"),
            "{f:?}"
        );
    }

    #[test]
    fn removals_and_attributes_are_watched_too() {
        let mut rec = OurWrites::default();
        let remove = sids(&["S-9"]);
        let p = Planned {
            remove: &remove,
            ..Default::default()
        };
        round(&mut rec, 0, &p);
        round(&mut rec, 1, &p);
        assert!(
            round(&mut rec, 2, &p)
                .unwrap()
                .detail
                .contains("added back")
        );

        let mut rec = OurWrites::default();
        let ops = [update("description", Some("Connect's"), "cloud")];
        let p = Planned {
            updates: &ops,
            ..Default::default()
        };
        round(&mut rec, 0, &p);
        round(&mut rec, 1, &p);
        let f = round(&mut rec, 2, &p).unwrap();
        assert_eq!(f.kind, "attribute");
        assert_eq!(
            f.detail,
            "description was set to \"cloud\" twice and changed back to \"Connect's\" each time"
        );
    }

    #[test]
    fn a_cloud_change_or_an_old_write_is_never_a_revert() {
        let write = |rec: &mut OurWrites, t: u64, to: &str| {
            let ops = [update("displayName", Some("x"), to)];
            let p = Planned {
                updates: &ops,
                ..Default::default()
            };
            round(rec, t, &p)
        };
        // The cloud flips between A and B: every write differs from the last one.
        let mut rec = OurWrites::default();
        for (t, to) in [(0, "A"), (1, "B"), (2, "A"), (3, "B"), (4, "A")] {
            assert_eq!(write(&mut rec, t, to), None, "t={t}");
        }
        // The same write, but each outside the 100 ms window of the one before.
        let mut rec = OurWrites::default();
        for t in [0, 200, 400, 600] {
            assert_eq!(write(&mut rec, t, "A"), None, "t={t}");
        }
        assert_eq!(rec.attrs["displayName"].reverts, 0);
    }

    #[test]
    fn a_write_between_repeats_resets_nothing_it_did_not_touch() {
        let mut rec = OurWrites::default();
        let add = sids(&["S-1"]);
        let members = Planned {
            add: &add,
            ..Default::default()
        };
        let ops = [update("description", None, "d")];
        let attrs = Planned {
            updates: &ops,
            ..Default::default()
        };
        round(&mut rec, 0, &members);
        round(&mut rec, 1, &attrs);
        round(&mut rec, 2, &members);
        assert!(round(&mut rec, 3, &members).is_some());
        assert_eq!(round(&mut rec, 3, &Planned::default()), None);
    }
}
