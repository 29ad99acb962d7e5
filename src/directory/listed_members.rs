//! What a bulk pass's listing knows about a group's members: a digest of their SIDs, when the
//! listing read all of them, so that a group already converged costs no member read.
//!
//! The listing asks for `member;range=0-(LISTED_MEMBERS - 1)` with the extended-DN control:
//! a group of at most [`LISTED_MEMBERS`] members comes back whole (`member;range=0-*`, or no
//! attribute at all when it has none), a larger one cut short (`member;range=0-99`), and only
//! that one is read again, ranged, on its own. The page of a listing so holds at most
//! `LISTED_MEMBERS` values per group, whatever the groups' sizes.
//!
//! # Guarantees
//! - A digest is made only from a complete answer: the plain `member` attribute or a range
//!   from 0 to `*`. Any other range, repeated, or malformed name means "read the members".
//! - Two digests are equal exactly when the SID sets are (SHA-256 over the sorted SIDs), so
//!   "equal" may skip the read, never a write AD needs.
//!
//! Pure functions. Imports: [`crate::model::sid`] and ldap3's entry type.

use std::collections::BTreeSet;

use ldap3::SearchEntry;

use crate::model::sid;

/// `member` values the listing reads with each group; larger groups are read on their own.
pub const LISTED_MEMBERS: usize = 100;

/// The `member` attribute the listing asks for.
pub fn listing_attr() -> String {
    format!("member;range=0-{}", LISTED_MEMBERS - 1)
}

/// A digest of a set of member SIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberDigest([u8; 32]);

impl MemberDigest {
    /// The digest of `sids` (a set, so sorted and without repeats).
    pub fn of(sids: &BTreeSet<String>) -> MemberDigest {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for s in sids {
            // A SID holds no newline (`sid::is_valid`), so the joined form is unambiguous.
            ctx.update(s.as_bytes());
            ctx.update(b"\n");
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        MemberDigest(out)
    }
}

/// Whether an attribute name carries a group's whole member list from the first value on.
fn complete(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "member" || lower == "member;range=0-*"
}

/// Whether an attribute name is a (ranged or whole) `member`.
fn is_member(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "member" || lower.starts_with("member;")
}

/// The digest of a listed entry's members, when the entry carries all of them (`None`: read
/// them from AD). Values without a SID are skipped, as [`super::Directory::member_sids`]
/// skips them.
pub fn digest_of_entry(e: &SearchEntry) -> Option<MemberDigest> {
    let mut found = e.attrs.iter().filter(|(name, _)| is_member(name));
    let sids: BTreeSet<String> = match (found.next(), found.next()) {
        (None, _) => BTreeSet::new(),
        (Some((name, values)), None) if complete(name) => values
            .iter()
            .filter_map(|v| sid::from_extended_dn(v))
            .collect(),
        _ => return None,
    };
    Some(MemberDigest::of(&sids))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const A: &str = "S-1-5-21-1-2-3-1105";
    const B: &str = "S-1-5-21-1-2-3-1106";

    fn entry(attrs: &[(&str, &[&str])]) -> SearchEntry {
        SearchEntry {
            dn: "CN=g,DC=t".into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect::<HashMap<_, _>>(),
            bin_attrs: HashMap::new(),
        }
    }

    fn ext(sid: &str) -> String {
        format!("<GUID=0a1b2c3d-0000-1111-2222-333344445555>;<SID={sid}>;CN=u,DC=t")
    }

    fn set(sids: &[&str]) -> BTreeSet<String> {
        sids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_complete_answer_gives_the_digest_of_its_sids() {
        let (a, b) = (ext(A), ext(B));
        let both = MemberDigest::of(&set(&[A, B]));
        for name in ["member", "Member;Range=0-*"] {
            let e = entry(&[("cn", &["g"]), (name, &[b.as_str(), a.as_str()])]);
            assert_eq!(digest_of_entry(&e), Some(both), "{name}");
        }
        // No member attribute: the group is empty.
        assert_eq!(
            digest_of_entry(&entry(&[("cn", &["g"])])),
            Some(MemberDigest::of(&BTreeSet::new()))
        );
        // A value without a SID (a contact) is skipped, as the ranged read skips it.
        let contact = "<GUID=0a1b2c3d-0000-1111-2222-333344445555>;CN=c,DC=t";
        let e = entry(&[("member", &[a.as_str(), contact])]);
        assert_eq!(digest_of_entry(&e), Some(MemberDigest::of(&set(&[A]))));
    }

    #[test]
    fn a_cut_short_or_odd_answer_means_read_the_members() {
        let a = ext(A);
        for name in [
            "member;range=0-99",
            "member;range=100-*",
            "member;range=0-x",
            "member;range=0",
        ] {
            let e = entry(&[(name, &[a.as_str()])]);
            assert_eq!(digest_of_entry(&e), None, "{name}");
        }
        let e = entry(&[
            ("member", &[a.as_str()]),
            ("member;range=0-*", &[a.as_str()]),
        ]);
        assert_eq!(digest_of_entry(&e), None, "two member attributes");
    }

    #[test]
    fn digests_differ_when_the_sets_do() {
        let one = MemberDigest::of(&set(&[A]));
        assert_ne!(one, MemberDigest::of(&set(&[A, B])));
        assert_ne!(one, MemberDigest::of(&set(&[B])));
        assert_ne!(one, MemberDigest::of(&BTreeSet::new()));
        assert_eq!(one, MemberDigest::of(&set(&[A])));
        // The separator keeps "ab" + "c" apart from "a" + "bc".
        assert_ne!(
            MemberDigest::of(&set(&["a", "bc"])),
            MemberDigest::of(&set(&["ab", "c"]))
        );
    }
}
