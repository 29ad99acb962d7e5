//! Fuzzes the decoders of values a hostile or broken AD returns: binary `objectSid`s, SIDs in
//! extended DNs, ranged attribute names (`member;range=LO-HI`) and DNs themselves. Nothing may
//! panic, and whatever decodes must be consistent: a formatted SID is valid and encodes back
//! to the same bytes, a DN re-escapes to itself, a range always moves forward.
#![no_main]

use entra_writeback::directory::range::{MemberRange, member_range};
use entra_writeback::model::{dn, sid};
use libfuzzer_sys::fuzz_target;

/// `S-1-<authority>-<sub>…` back to the binary form (independent of the code under test).
fn sid_bytes(s: &str) -> Vec<u8> {
    let parts: Vec<&str> = s.split('-').collect();
    let subs = &parts[3..];
    let authority: u64 = parts[2].parse().unwrap();
    let mut b = vec![parts[1].parse::<u8>().unwrap(), subs.len() as u8];
    b.extend_from_slice(&authority.to_be_bytes()[2..]);
    for sub in subs {
        b.extend_from_slice(&sub.parse::<u32>().unwrap().to_le_bytes());
    }
    b
}

fuzz_target!(|data: &[u8]| {
    if let Some(s) = sid::to_string(data) {
        assert!(sid::is_valid(&s), "{s}");
        assert_eq!(sid_bytes(&s), data, "{s}");
    }

    let text = String::from_utf8_lossy(data);
    if let Some(s) = sid::from_extended_dn(&text) {
        assert!(sid::is_valid(&s));
        assert!(text.contains(&sid::member_value(&s)));
    }

    if let MemberRange::Next(n) = member_range(&text) {
        assert!(n > 0);
        assert!(text.to_ascii_lowercase().starts_with("member;range="));
    }

    if let Some(rdns) = dn::parse_dn(&text) {
        assert!(rdns.iter().all(|(a, v)| !a.is_empty() && !v.is_empty()));
        let again: Vec<String> = rdns
            .iter()
            .map(|(a, v)| format!("{a}={}", dn::rdn_value(v)))
            .collect();
        let again = again.join(",");
        assert_eq!(dn::parse_dn(&again).as_ref(), Some(&rdns), "{again:?}");
        assert!(dn::same_dn(&text, &again), "{text:?} vs {again:?}");
        assert!(dn::is_under(&text, &text));
    }
});
