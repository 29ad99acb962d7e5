//! The stored cursors of the two delta streams, and what they say about the mirror: whether it
//! is a complete picture of the cloud, or a full enumeration is under way.

use super::{QueueError, Store, cursor_key, dec};
use crate::model::*;
use crate::queue::records::*;

/// Meta key of [`Store::scope_fingerprint`].
const SCOPE_FINGERPRINT: &[u8] = b"scope/fingerprint";

impl Store {
    /// The stored cursor of a delta stream.
    pub fn cursor(&self, r: Resource) -> Result<Option<Cursor>, QueueError> {
        let key = cursor_key(r);
        self.t()?.meta.get(&key)?.map(|v| dec(&key, &v)).transpose()
    }

    /// Forgets one stream's cursor (Graph asked for a resync).
    pub fn reset_cursor(&self, r: Resource) -> Result<(), QueueError> {
        self.t()?.meta.remove(cursor_key(r))?;
        self.t()?.db.flush()?;
        Ok(())
    }

    /// Forgets both cursors: the next round is a full enumeration that also reconciles AD.
    pub fn reset_cursors(&self) -> Result<(), QueueError> {
        self.t()?.meta.remove(cursor_key(Resource::Groups))?;
        self.t()?.meta.remove(cursor_key(Resource::Users))?;
        self.t()?.db.flush()?;
        Ok(())
    }

    /// The fingerprint of the scope the mirror's `admitted` flags were last judged by (see
    /// `graph::Scope::fingerprint`), if one was stored.
    pub fn scope_fingerprint(&self) -> Result<Option<String>, QueueError> {
        Ok(self
            .t()?
            .meta
            .get(SCOPE_FINGERPRINT)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Records the scope the mirror is judged by, durably: a restart with the same scope then
    /// needs no walk over the mirror.
    pub fn set_scope_fingerprint(&self, fingerprint: &str) -> Result<(), QueueError> {
        self.t()?
            .meta
            .insert(SCOPE_FINGERPRINT, fingerprint.as_bytes())?;
        self.t()?.db.flush()?;
        Ok(())
    }

    /// Whether the mirror is a complete picture of the cloud: a full enumeration has reached its
    /// deltaLink since the store was created, and no full enumeration is in progress now. Only
    /// then may owned AD groups missing from the mirror be judged as orphans.
    pub fn complete_picture(&self) -> Result<bool, QueueError> {
        let done = self
            .t()?
            .meta
            .contains_key(crate::queue::mirror::FULL_DONE)?;
        Ok(done && !self.full_round_in_progress()?)
    }

    /// Whether the groups stream is in (or about to start) a full enumeration, during which
    /// the mirror's member lists may be partial: no member may be removed from AD then.
    pub fn full_round_in_progress(&self) -> Result<bool, QueueError> {
        Ok(self
            .cursor(Resource::Groups)?
            .is_none_or(|c| c.full_epoch.is_some()))
    }
}
