//! The owned-groups listing of a bulk pass: while many groups wait (an initial sync, a resync),
//! the applier reads what the service owns once, as one paged listing, instead of searching
//! for each group by its anchor.
//!
//! # Guarantees
//! - A group's entry is used at most once: after its first apply in the pass, every later
//!   apply of that group reads AD afresh ([`super::Directory::find_owned`]), so the service's
//!   own writes are never hidden by a stale listing.
//! - Anything the per-group search would call a conflict (anchors that disagree, an anchor
//!   only in `msDS-ExternalDirectoryObjectId`, two objects with one anchor) is *suspect* here:
//!   the apply falls back to the per-group search, which reports it. The listing never turns a
//!   conflict into "absent", so it never leads to a duplicate.
//! - Destructive paths (delete, move, convert, sweep) never act on it: they always read
//!   afresh. The sweep only takes from it *which* groups to look at ([`OwnedListing::unused`]),
//!   then reads each of them again on its own before deciding anything.
//! - The listing carries each group's members when it read all of them (a digest,
//!   [`super::listed_members`]): a group whose listed members are the ones the mirror wants
//!   is neither read nor written again; any other is read ranged, on its own.
//! - It lives only while the pass is busy ([`OwnedListing::end`] drops it), so idle memory
//!   does not grow with the tenant.
//!
//! Imports: the directory's own modules and [`crate::model`].

use std::collections::{HashMap, HashSet};

use tokio::sync::Mutex;

use super::listed_members::{digest_of_entry, listing_attr};
use super::plan::ActualGroup;
use super::read::{GROUP_ATTRS, counts_as_owned, to_actual};
use super::{Directory, DirectoryError, DnForm, Ldap, mapping};
use crate::model::Event;
use crate::model::event::ManagedGroups;

/// What the listing says about one group.
#[derive(Debug, Clone, PartialEq, Eq)]
// Most entries are ours: boxing them would add an allocation per listed group to save the
// rare `Suspect` a few hundred bytes.
#[allow(clippy::large_enum_variant)]
pub enum Listed {
    /// Exactly one object carries the anchor, and both anchors agree: ours, as listed.
    Ours(ActualGroup),
    /// Something about it needs the per-group search (and its conflict reporting).
    Suspect,
}

/// The listing's answer for a group: known from the listing, or "ask AD".
#[derive(Debug, Clone, PartialEq, Eq)]
// One answer per lookup, taken apart at once: a box would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Lookup {
    /// The listing knows: `Some` = the object, `None` = no object carried the anchor.
    Known(Option<ActualGroup>),
    /// Not in bulk mode, already used once, or suspect: search AD for this group.
    Ask,
}

/// Indexes listed objects by the cloud id of their anchors (lower-cased). Pure.
///
/// `entries` are every group under the owned OUs that carries `Group_…` in
/// `adminDescription` or `msDS-ExternalDirectoryObjectId`.
pub fn index(entries: Vec<ActualGroup>) -> HashMap<String, Listed> {
    let mut out: HashMap<String, Listed> = HashMap::new();
    for a in entries {
        let by_desc = a
            .admin_description
            .as_deref()
            .and_then(mapping::id_from_anchor);
        let by_ext = a.external_id.as_deref().and_then(mapping::id_from_anchor);
        let ids: HashSet<String> = by_desc
            .iter()
            .chain(by_ext.iter())
            .map(|id| id.to_ascii_lowercase())
            .collect();
        let clean = ids.len() == 1 && by_desc.is_some();
        for id in ids {
            let listed = match out.get(&id) {
                // Two objects for one anchor: a conflict the per-group search reports.
                Some(_) => Listed::Suspect,
                None if clean => Listed::Ours(a.clone()),
                None => Listed::Suspect,
            };
            out.insert(id, listed);
        }
    }
    out
}

impl<L: Ldap> Directory<L> {
    /// Every group under the owned OUs that carries a `Group_…` anchor in either attribute,
    /// as read (paged), conflicts included: the raw material of a bulk pass's listing
    /// ([`index`] tells ours from suspect). Each carries the digest of its members when the
    /// listing read all of them ([`super::listed_members`]); entries are converted page by
    /// page, so the raw answer is never held whole.
    pub async fn list_anchored(&self) -> Result<Vec<ActualGroup>, DirectoryError> {
        let filter = if self.has_external_id {
            "(&(objectClass=group)(|(adminDescription=Group_*)(msDS-ExternalDirectoryObjectId=Group_*)))"
        } else {
            "(&(objectClass=group)(adminDescription=Group_*))"
        };
        let member = listing_attr();
        let mut attrs = GROUP_ATTRS.to_vec();
        attrs.push(&member);
        let mut found = Vec::new();
        let mut keep = |e: ldap3::SearchEntry| {
            let mut a = to_actual(&e);
            a.listed_members = digest_of_entry(&e);
            found.push(a);
        };
        self.search_owned_each(filter, &attrs, DnForm::Extended, "list_anchored", &mut keep)
            .await?;
        let whole = found.iter().filter(|a| a.listed_members.is_some()).count();
        tracing::info!(
            groups = found.len(),
            members_listed = whole,
            "owned groups listed for a bulk pass"
        );
        Ok(found)
    }
}

#[derive(Default)]
struct State {
    /// Bulk mode is on: load the listing on first use.
    active: bool,
    listing: Option<HashMap<String, Listed>>,
    /// Groups whose entry was used (or that must be read afresh from now on).
    used: HashSet<String>,
}

/// The listing, shared by the worker's tasks.
#[derive(Default)]
pub struct OwnedListing {
    state: Mutex<State>,
}

impl OwnedListing {
    /// Turns bulk mode on: the next lookup lists the owned groups (once).
    pub async fn begin(&self) {
        self.state.lock().await.active = true;
    }

    /// Turns bulk mode off and frees the listing.
    pub async fn end(&self) {
        *self.state.lock().await = State::default();
    }

    /// Whether bulk mode is on.
    pub async fn is_active(&self) -> bool {
        self.state.lock().await.active
    }

    /// From now on, `group_id` is read afresh (its AD object is about to change in a way the
    /// listing does not follow).
    pub async fn forget(&self, group_id: &str) {
        let mut s = self.state.lock().await;
        if s.active {
            s.used.insert(group_id.to_ascii_lowercase());
        }
    }

    /// The listing's answer for `group_id`, listing the owned OUs first if bulk mode is on and
    /// nothing is loaded yet. The entry is used up by this call.
    pub async fn lookup<L: Ldap>(
        &self,
        dir: &Directory<L>,
        group_id: &str,
    ) -> Result<Lookup, DirectoryError> {
        let mut s = self.state.lock().await;
        if !s.active {
            return Ok(Lookup::Ask);
        }
        load(&mut s, dir).await?;
        let id = group_id.to_ascii_lowercase();
        if !s.used.insert(id.clone()) {
            return Ok(Lookup::Ask);
        }
        let listing = s.listing.as_mut().expect("loaded above");
        Ok(match listing.remove(&id) {
            None => Lookup::Known(None),
            Some(Listed::Ours(a)) => Lookup::Known(Some(a)),
            Some(Listed::Suspect) => Lookup::Ask,
        })
    }

    /// For the sweep: the ids of the groups this pass's listing (loaded now if need be) found
    /// ours that no apply of the pass has used, so the only ones the sweep can find orphaned
    /// (a group used by an apply had a change of its own, which handles it). `None` outside
    /// a bulk pass: the sweep then lists the owned groups itself. Objects created since the
    /// listing by anyone else are left to the next sweep, which is the safe direction.
    pub async fn unused<L: Ldap>(
        &self,
        dir: &Directory<L>,
    ) -> Result<Option<Vec<String>>, DirectoryError> {
        let mut s = self.state.lock().await;
        if !s.active {
            return Ok(None);
        }
        load(&mut s, dir).await?;
        let listing = s.listing.as_ref().expect("loaded above");
        Ok(Some(
            listing
                .iter()
                .filter(|(id, listed)| matches!(listed, Listed::Ours(_)) && !s.used.contains(*id))
                .map(|(id, _)| id.clone())
                .collect(),
        ))
    }
}

/// Lists the owned groups into `s` unless a listing is loaded. Called with the state's lock
/// held, on purpose: the other tasks wait for the listing rather than each searching AD.
async fn load<L: Ldap>(s: &mut State, dir: &Directory<L>) -> Result<(), DirectoryError> {
    if s.listing.is_some() {
        return Ok(());
    }
    let listed = dir.list_anchored().await?;
    // What `count_owned` counts, read here for free: observers recount from it.
    let owned = listed.iter().filter(|a| counts_as_owned(a)).count();
    dir.events()
        .emit(Event::ManagedGroups(ManagedGroups::Counted(owned as u64)));
    s.listing = Some(index(listed));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(dn: &str, desc: Option<&str>, ext: Option<&str>) -> ActualGroup {
        ActualGroup {
            dn: dn.into(),
            admin_description: desc.map(str::to_string),
            external_id: ext.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn clean_objects_are_ours_and_conflicts_are_suspect() {
        let idx = index(vec![
            obj("CN=a", Some("Group_aaa"), None),
            obj("CN=b", Some("Group_BBB"), Some("Group_bbb")),
            // Anchors disagree: both ids suspect.
            obj("CN=c", Some("Group_ccc"), Some("Group_ddd")),
            // Only the external id: not ours to match.
            obj("CN=e", None, Some("Group_eee")),
            // Two objects for one anchor.
            obj("CN=f1", Some("Group_fff"), None),
            obj("CN=f2", Some("Group_fff"), None),
        ]);
        assert!(matches!(&idx["aaa"], Listed::Ours(a) if a.dn == "CN=a"));
        assert!(matches!(&idx["bbb"], Listed::Ours(a) if a.dn == "CN=b"));
        for id in ["ccc", "ddd", "eee", "fff"] {
            assert_eq!(idx[id], Listed::Suspect, "{id}");
        }
        assert!(!idx.contains_key("zzz"));
    }
}
