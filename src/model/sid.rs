//! Security identifiers: the binary `objectSid` ↔ `S-1-5-21-…` string, and the SID inside an
//! extended DN (`<GUID=…>;<SID=S-1-…>;CN=…`). Members are matched by SID, never by name.

/// Formats a binary SID as `S-R-I-S1-S2-…`, or `None` if it is malformed.
///
/// Only what [`is_valid`] accepts comes out: revision 1, one to fifteen sub-authorities and an
/// authority below 2³² (larger ones have a hex string form that no AD object uses).
pub fn to_string(b: &[u8]) -> Option<String> {
    if b.len() < 8 {
        return None;
    }
    let revision = b[0];
    let count = b[1] as usize;
    if revision != 1 || !(1..=15).contains(&count) || b.len() != 8 + 4 * count {
        return None;
    }
    let authority = b[2..8]
        .iter()
        .fold(0u64, |acc, x| (acc << 8) | u64::from(*x));
    if authority > u64::from(u32::MAX) {
        return None;
    }
    let mut s = format!("S-{revision}-{authority}");
    for i in 0..count {
        let off = 8 + 4 * i;
        let sub = u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]]);
        s.push_str(&format!("-{sub}"));
    }
    Some(s)
}

/// Whether `s` looks like a string SID: `S-1-<authority>-<sub>…`, at least one and at most 15
/// sub-authorities, all decimal.
pub fn is_valid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 4
        && parts.len() <= 18
        && parts[0] == "S"
        && parts[1] == "1"
        && parts[2..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 10 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The SID component of an extended-DN value, if present.
pub fn from_extended_dn(value: &str) -> Option<String> {
    value
        .split(';')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("<SID=").and_then(|r| r.strip_suffix('>')))
        .filter(|s| is_valid(s))
        .map(str::to_string)
}

/// The member value that names an object by SID (`<SID=S-…>`), accepted by AD in `member`.
pub fn member_value(sid: &str) -> String {
    format!("<SID={sid}>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_sid_round_trip() {
        // S-1-5-21-1-2-3-1105
        let mut b = vec![1u8, 5, 0, 0, 0, 0, 0, 5];
        for sub in [21u32, 1, 2, 3, 1105] {
            b.extend_from_slice(&sub.to_le_bytes());
        }
        assert_eq!(to_string(&b).as_deref(), Some("S-1-5-21-1-2-3-1105"));
        assert_eq!(to_string(&b[..9]), None);
    }

    #[test]
    fn binary_sids_outside_the_string_form_are_refused() {
        // Regressions: `to_string` used to format SIDs that `is_valid` then rejected.
        let sid = |rev: u8, authority: [u8; 6], subs: &[u32]| {
            let mut b = vec![rev, subs.len() as u8];
            b.extend_from_slice(&authority);
            subs.iter()
                .for_each(|s| b.extend_from_slice(&s.to_le_bytes()));
            b
        };
        assert_eq!(to_string(&sid(2, [0, 0, 0, 0, 0, 5], &[21])), None);
        assert_eq!(to_string(&sid(1, [0, 0, 0, 0, 0, 5], &[])), None);
        assert_eq!(to_string(&sid(1, [0, 0, 0, 0, 0, 5], &[7; 16])), None);
        assert_eq!(to_string(&sid(1, [0, 1, 0, 0, 0, 0], &[21])), None);
        let max = to_string(&sid(1, [0, 0, 255, 255, 255, 255], &[u32::MAX; 15])).unwrap();
        assert!(is_valid(&max), "{max}");
        assert!(is_valid(&to_string(&sid(1, [0; 6], &[0])).unwrap()));
    }

    #[test]
    fn extended_dn_parsing() {
        let v = "<GUID=6f1a...>;<SID=S-1-5-21-1-2-3-1105>;CN=Ann,CN=Users,DC=example,DC=test";
        assert_eq!(from_extended_dn(v).as_deref(), Some("S-1-5-21-1-2-3-1105"));
        assert_eq!(from_extended_dn("<GUID=x>;CN=NoSid"), None);
        assert!(is_valid("S-1-5-32-544"));
        assert!(!is_valid("S-1-x"));
        assert!(!is_valid("S-1-5"));
        assert!(!is_valid("S-1-5-x-1"));
        assert!(is_valid("S-1-1-0"));
        assert!(!is_valid("*)(cn=*"));
    }
}
