//! Escaping for LDAP distinguished names (RFC 4514) and search filters (RFC 4515).
//!
//! Pure functions: every value the service puts into a DN or a filter passes through here, so a
//! hostile group name can neither break a DN nor widen a search.

/// The plain DN of an extended-DN value (`<GUID=…>;<SID=…>;CN=…`): each leading `<…>;`
/// component is dropped. A value without them is returned as is. An RFC 4514 DN escapes `<`
/// and `>`, so a DN itself never starts with `<` or holds a bare `>`.
pub fn strip_extended(value: &str) -> &str {
    let mut rest = value;
    while let Some(inner) = rest.strip_prefix('<') {
        match inner.split_once('>') {
            Some((_, after)) => rest = after.strip_prefix(';').unwrap_or(after),
            None => return value,
        }
    }
    rest
}

/// Escapes a value for use as an RDN attribute value (`CN=<value>`).
///
/// Escapes `, + " \ < > ; =`, a leading `#` or space, a trailing space, and NUL (as `\00`).
pub fn rdn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            '\r' => out.push_str("\\0D"),
            '\n' => out.push_str("\\0A"),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes a value for use inside a search filter assertion (`(attr=<value>)`).
///
/// `* ( ) \` and NUL become `\2a \28 \29 \5c \00`, so a value can only ever match literally.
pub fn filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    out
}

/// Splits a DN into its RDNs (`(attribute, unescaped value)`), or `None` if it is malformed.
///
/// Used to validate configured DNs and to compare DNs that differ only in escaping or case.
pub fn parse_dn(dn: &str) -> Option<Vec<(String, String)>> {
    let mut rdns = Vec::new();
    let mut chars = dn.chars().peekable();
    if dn.trim().is_empty() {
        return None;
    }
    loop {
        let mut attr = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            attr.push(c);
        }
        let attr = attr.trim().to_string();
        if attr.is_empty()
            || !attr
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return None;
        }
        let mut value: Vec<u8> = Vec::new();
        let mut ended_by_comma = false;
        let mut buf = [0u8; 4];
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    let a = chars.next()?;
                    if a.is_ascii_hexdigit() && chars.peek().is_some_and(|b| b.is_ascii_hexdigit())
                    {
                        let b = chars.next()?;
                        let byte = u8::from_str_radix(&format!("{a}{b}"), 16).ok()?;
                        value.push(byte);
                    } else {
                        value.extend_from_slice(a.encode_utf8(&mut buf).as_bytes());
                    }
                }
                ',' => {
                    ended_by_comma = true;
                    break;
                }
                '+' => return None, // multi-valued RDNs are not used by this service
                _ => value.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
            }
        }
        let value = String::from_utf8(value).ok()?;
        if value.is_empty() {
            return None;
        }
        rdns.push((attr, value));
        if !ended_by_comma {
            return Some(rdns);
        }
    }
}

/// Whether two DNs name the same entry (attribute names and values compared case-insensitively).
pub fn same_dn(a: &str, b: &str) -> bool {
    match (parse_dn(a), parse_dn(b)) {
        (Some(x), Some(y)) => {
            x.len() == y.len()
                && x.iter().zip(&y).all(|((ka, va), (kb, vb))| {
                    ka.eq_ignore_ascii_case(kb)
                        && va.trim().to_lowercase() == vb.trim().to_lowercase()
                })
        }
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// Whether `dn` lies at or below `base`.
pub fn is_under(dn: &str, base: &str) -> bool {
    match (parse_dn(dn), parse_dn(base)) {
        (Some(d), Some(b)) if d.len() >= b.len() => {
            let tail = &d[d.len() - b.len()..];
            tail.iter().zip(&b).all(|((ka, va), (kb, vb))| {
                ka.eq_ignore_ascii_case(kb) && va.to_lowercase() == vb.to_lowercase()
            })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdn_escapes_every_special() {
        assert_eq!(
            rdn_value("a,b+c\"d\\e<f>g;h=i"),
            "a\\,b\\+c\\\"d\\\\e\\<f\\>g\\;h\\=i"
        );
        assert_eq!(rdn_value("#lead"), "\\#lead");
        assert_eq!(rdn_value("mid#dle"), "mid#dle");
        assert_eq!(rdn_value(" both "), "\\ both\\ ");
        assert_eq!(rdn_value("nul\0x"), "nul\\00x");
        assert_eq!(rdn_value("Ünïcödé 日本"), "Ünïcödé 日本");
    }

    #[test]
    fn filter_escapes_injection() {
        assert_eq!(
            filter_value("*)(objectClass=*"),
            "\\2a\\29\\28objectClass=\\2a"
        );
        assert_eq!(filter_value("a\\b\0"), "a\\5cb\\00");
    }

    #[test]
    fn escaped_rdn_round_trips_through_parse() {
        for v in ["a,b", "#x", " x ", "q\"\\;<>=+", "plain", "x\0y", "*)(cn=*"] {
            let dn = format!("CN={},OU=Cloud Groups,DC=example,DC=test", rdn_value(v));
            let parsed = parse_dn(&dn).unwrap_or_else(|| panic!("{dn}"));
            assert_eq!(parsed[0].1, v, "{dn}");
            assert_eq!(parsed.len(), 4);
        }
    }

    #[test]
    fn dn_comparisons() {
        assert!(same_dn("CN=A,OU=X,DC=t", "cn=a, ou=x,dc=T"));
        assert!(!same_dn("CN=A,OU=X,DC=t", "CN=B,OU=X,DC=t"));
        assert!(is_under("CN=A,OU=X,DC=t", "OU=X,DC=t"));
        assert!(!is_under("CN=A,OU=Y,DC=t", "OU=X,DC=t"));
        assert!(parse_dn("garbage").is_none());
        assert!(parse_dn("").is_none());
        assert_eq!(parse_dn("CN=\\C3\\A9t\\C3\\A9,DC=t").unwrap()[0].1, "été");
    }

    #[test]
    fn extended_dns_lose_their_guid_and_sid_components() {
        let g = "<GUID=0a1b2c3d-0000-1111-2222-333344445555>";
        let sid = "<SID=S-1-5-21-1-2-3-1105>";
        assert_eq!(strip_extended(&format!("{g};{sid};CN=a,DC=x")), "CN=a,DC=x");
        assert_eq!(strip_extended(&format!("{g};CN=a,DC=x")), "CN=a,DC=x");
        assert_eq!(strip_extended("CN=a\\<b\\>,DC=x"), "CN=a\\<b\\>,DC=x");
        assert_eq!(strip_extended("CN=a,DC=x"), "CN=a,DC=x");
        // Unterminated: not an extended DN, left alone.
        assert_eq!(strip_extended("<GUID=1;CN=a"), "<GUID=1;CN=a");
    }
}
