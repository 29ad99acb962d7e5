//! Reading values out of a `SearchEntry`: text and binary attributes, and AD's binary forms
//! (`objectSid`, `objectGUID`) and extended DNs converted to the strings AD prints.

use std::fmt::Write as _;

use ldap3::SearchEntry;

/// Converts a binary SID (as in `objectSid`) to its string form
/// `S-<revision>-<authority>-<sub1>-…` (MS-DTYP 2.4.2.2: authority in decimal
/// below 2^32, else `0x` and 12 hex digits). `None` if the bytes are not a SID.
pub fn sid_to_string(bytes: &[u8]) -> Option<String> {
    let (&revision, rest) = bytes.split_first()?;
    let (&count, rest) = rest.split_first()?;
    if revision != 1 || count > 15 || rest.len() != 6 + 4 * usize::from(count) {
        return None;
    }
    let (authority, subs) = rest.split_at(6);
    let authority = authority
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let mut out = if authority < (1 << 32) {
        format!("S-{revision}-{authority}")
    } else {
        format!("S-{revision}-0x{authority:012X}")
    };
    for sub in subs.chunks_exact(4) {
        let sub = u32::from_le_bytes(sub.try_into().expect("4-byte chunk"));
        write!(out, "-{sub}").expect("write to String");
    }
    Some(out)
}

/// Converts a binary GUID (as in `objectGUID`, little-endian fields) to the
/// form AD uses in `<GUID=…>`: `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub fn guid_to_string(bytes: &[u8]) -> Option<String> {
    let b: &[u8; 16] = bytes.try_into().ok()?;
    Some(format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    ))
}

/// The `S-…` SID inside an extended DN such as
/// `<GUID=…>;<SID=S-1-5-21-…>;CN=…`.
pub fn extended_dn_sid(value: &str) -> Option<&str> {
    let start = value.find("<SID=")? + "<SID=".len();
    let len = value[start..].find('>')?;
    Some(&value[start..start + len])
}

/// The values of `attr` (case-insensitive name), text attributes only.
pub fn attr_values<'a>(entry: &'a SearchEntry, attr: &str) -> &'a [String] {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .map_or(&[], |(_, v)| v.as_slice())
}

/// The first value of a text attribute (case-insensitive name).
pub fn attr_first<'a>(entry: &'a SearchEntry, attr: &str) -> Option<&'a str> {
    attr_values(entry, attr).first().map(String::as_str)
}

/// The raw bytes of an attribute's values wherever ldap3 put them:
/// `bin_attrs` when a value was not UTF-8, `attrs` otherwise.
pub fn binary_values(entry: &SearchEntry, attr: &str) -> Vec<Vec<u8>> {
    if let Some((_, values)) = entry
        .bin_attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
    {
        return values.clone();
    }
    attr_values(entry, attr)
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect()
}

/// The entry's `objectSid` in string form.
pub fn entry_sid(entry: &SearchEntry) -> Option<String> {
    binary_values(entry, "objectSid")
        .first()
        .and_then(|b| sid_to_string(b))
}

/// The entry's `objectGUID` in string form.
pub fn entry_guid(entry: &SearchEntry) -> Option<String> {
    binary_values(entry, "objectGUID")
        .first()
        .and_then(|b| guid_to_string(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// objectSid of a user on the test DC, as read with ldapsearch.
    const USER_SID: [u8; 28] = [
        0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x15, 0x00, 0x00, 0x00, 0x5a, 0xf9, 0xfd,
        0x5e, 0xa5, 0x79, 0x14, 0x6e, 0x5c, 0x2b, 0xcd, 0xd7, 0x50, 0x04, 0x00, 0x00,
    ];

    #[test]
    fn sid_to_string_domain_user() {
        assert_eq!(
            sid_to_string(&USER_SID).as_deref(),
            Some("S-1-5-21-1593702746-1846835621-3620547420-1104")
        );
    }

    #[test]
    fn sid_to_string_well_known() {
        // Everyone, BUILTIN\Administrators, NT AUTHORITY (no sub-authority).
        assert_eq!(
            sid_to_string(&[1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]).as_deref(),
            Some("S-1-1-0")
        );
        assert_eq!(
            sid_to_string(&[1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0]).as_deref(),
            Some("S-1-5-32-544")
        );
        assert_eq!(
            sid_to_string(&[1, 0, 0, 0, 0, 0, 0, 5]).as_deref(),
            Some("S-1-5")
        );
    }

    #[test]
    fn sid_to_string_large_values() {
        // Sub-authority 0xFFFFFFFF, and an authority of 2^32 or more (hex form).
        assert_eq!(
            sid_to_string(&[1, 1, 0, 0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff]).as_deref(),
            Some("S-1-5-4294967295")
        );
        assert_eq!(
            sid_to_string(&[1, 1, 0, 1, 0, 0, 0, 0, 7, 0, 0, 0]).as_deref(),
            Some("S-1-0x000100000000-7")
        );
    }

    #[test]
    fn sid_to_string_rejects_malformed() {
        assert_eq!(sid_to_string(&[]), None);
        assert_eq!(sid_to_string(&[1]), None);
        assert_eq!(sid_to_string(&USER_SID[..27]), None, "truncated");
        let mut long = USER_SID.to_vec();
        long.push(0);
        assert_eq!(sid_to_string(&long), None, "trailing byte");
        let mut revision = USER_SID;
        revision[0] = 2;
        assert_eq!(sid_to_string(&revision), None, "revision 2");
    }

    #[test]
    fn guid_to_string_mixed_endian() {
        // objectGUID:: XNc4OMnHXkKKlWqt+TzX4Q== read back as <GUID=3838d75c-…>.
        let bytes = [
            0x5c, 0xd7, 0x38, 0x38, 0xc9, 0xc7, 0x5e, 0x42, 0x8a, 0x95, 0x6a, 0xad, 0xf9, 0x3c,
            0xd7, 0xe1,
        ];
        assert_eq!(
            guid_to_string(&bytes).as_deref(),
            Some("3838d75c-c7c9-425e-8a95-6aadf93cd7e1")
        );
        assert_eq!(guid_to_string(&bytes[..15]), None);
    }

    #[test]
    fn extended_dn_sid_parses() {
        let v = "<GUID=3838d75c-c7c9-425e-8a95-6aadf93cd7e1>;\
                 <SID=S-1-5-21-1593702746-1846835621-3620547420-1104>;CN=u1,OU=facts,DC=example,DC=test";
        assert_eq!(
            extended_dn_sid(v),
            Some("S-1-5-21-1593702746-1846835621-3620547420-1104")
        );
        assert_eq!(
            extended_dn_sid("<GUID=x>;CN=contact,DC=example,DC=test"),
            None
        );
    }
}
