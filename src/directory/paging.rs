//! The Simple Paged Results control (RFC 2696): its OID, the page limit, and parsing the
//! cookie out of a server's response value without trusting it.
//!
//! # Guarantees
//! - Parsing never panics on what a server sends: malformed input is `None`.
//!
//! Imports nothing of the crate.

/// OID of the Simple Paged Results control (RFC 2696).
pub const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

/// A paged search gives up after this many pages (a server looping on its cookie).
pub const MAX_PAGES: usize = 100_000;

/// One BER TLV: (tag, value, rest), definite lengths only.
fn ber_tlv(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The cookie of a paged-results response value `SEQUENCE { INTEGER size, OCTET STRING
/// cookie }`, or `None` if it is malformed (never a panic on what a server sends).
pub fn paged_cookie(value: &[u8]) -> Option<Vec<u8>> {
    let (0x30, seq, _) = ber_tlv(value)? else {
        return None;
    };
    let (0x02, _, rest) = ber_tlv(seq)? else {
        return None;
    };
    let (0x04, cookie, _) = ber_tlv(rest)? else {
        return None;
    };
    Some(cookie.to_vec())
}

#[cfg(test)]
mod tests {
    use super::paged_cookie;

    #[test]
    fn cookies_parse_and_garbage_is_refused() {
        // SEQUENCE { INTEGER 0, OCTET STRING "ab" }
        assert_eq!(
            paged_cookie(&[0x30, 0x07, 0x02, 0x01, 0x00, 0x04, 0x02, b'a', b'b']),
            Some(b"ab".to_vec())
        );
        // The last page: an empty cookie.
        assert_eq!(
            paged_cookie(&[0x30, 0x05, 0x02, 0x01, 0x00, 0x04, 0x00]),
            Some(vec![])
        );
        // Long-form length.
        let mut v = vec![0x30, 0x81, 0x86, 0x02, 0x01, 0x00, 0x04, 0x81, 0x80];
        v.extend([7u8; 128]);
        assert_eq!(paged_cookie(&v), Some(vec![7u8; 128]));
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x02, 0x01],
            &[0x31, 0x05, 0x02, 0x01, 0x00, 0x04, 0x00],
            &[0x30, 0x05, 0x02, 0x01, 0x00, 0x05, 0x00],
            &[0x30, 0x85, 0xff, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert_eq!(paged_cookie(bad), None, "{bad:?}");
        }
    }
}
