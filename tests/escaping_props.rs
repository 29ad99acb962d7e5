//! Property tests for everything a hostile group name or id passes through on its way into AD:
//! RDN escaping, filter escaping, and the CN / `sAMAccountName` generation (issue 14).
//!
//! Each property is checked against an independent oracle written here (or ldap3's own filter
//! parser), not against the code under test.

use entra_writeback::directory::mapping::{self, MappingRules};
use entra_writeback::model::{GroupProps, dn};
use ldap3::asn1::{ASNTag, PL, StructureTag};
use proptest::prelude::*;

/// Strings biased towards the characters DN and filter syntax care about, mixed with any text.
fn hostile() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        ',',
        '+',
        '"',
        '\\',
        '<',
        '>',
        ';',
        '=',
        '#',
        ' ',
        '\0',
        '\r',
        '\n',
        '*',
        '(',
        ')',
        '{',
        '}',
        '/',
        '[',
        ']',
        ':',
        '|',
        '?',
        '.',
        '-',
        '_',
        'é',
        '日',
        '\u{1F389}',
        '\u{200B}',
        'a',
        'Z',
        '0',
        'f',
    ]);
    prop_oneof![
        any::<String>(),
        prop::collection::vec(special, 0..80).prop_map(|v| v.into_iter().collect()),
        "[{}a-z_ ]{0,70}".prop_map(|s| s.replace('_', "{id}")),
    ]
}

/// Graph object ids: GUIDs, lower-case hex.
fn guid() -> impl Strategy<Value = String> {
    "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
}

/// Characters AD refuses in a `sAMAccountName`.
const SAM_FORBIDDEN: &str = "\"/\\[]:;|=,+*?<>";

/// Undoes RFC 4515 escaping; `None` if a raw `(`, `)`, `*` or NUL appears or a `\` is not
/// followed by two hex digits (the value would change the filter's structure).
fn unescape_filter_value(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' | b')' | b'*' | 0 => return None,
            b'\\' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// The escaped RDN value never holds an unescaped DN special (checked without `parse_dn`).
fn rdn_is_well_escaped(escaped: &str) -> bool {
    let chars: Vec<char> = escaped.chars().collect();
    let mut i = 0;
    let mut first = true;
    let mut last_was_escaped_space = false;
    while i < chars.len() {
        let c = chars[i];
        last_was_escaped_space = false;
        if c == '\\' {
            let Some(&next) = chars.get(i + 1) else {
                return false; // a dangling escape
            };
            last_was_escaped_space = next == ' ';
            i += 2;
        } else {
            if matches!(c, ',' | '+' | '"' | ';' | '<' | '>' | '=' | '\0')
                || (first && (c == '#' || c == ' '))
            {
                return false;
            }
            i += 1;
        }
        first = false;
    }
    // A trailing space must be escaped.
    last_was_escaped_space || !escaped.ends_with(' ')
}

/// The equality assertion `(attr=value)` as ldap3's filter parser sees it, if it is one.
fn equality(tag: &StructureTag) -> Option<(Vec<u8>, Vec<u8>)> {
    match &tag.payload {
        PL::C(parts) if tag.id == 3 && parts.len() == 2 => {
            match (&parts[0].payload, &parts[1].payload) {
                (PL::P(a), PL::P(v)) => Some((a.clone(), v.clone())),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Asserts the CN and `sAMAccountName` rules of the contract's "What lands in AD".
fn assert_legal_names(name: Option<&str>, id: &str) -> Result<(), TestCaseError> {
    let cn = mapping::cn(name, id);
    prop_assert!(cn.encode_utf16().count() <= 64, "cn too long: {cn:?}");
    prop_assert!(!cn.is_empty());
    // Control characters of the display name are kept, as the contract says (the DN escapes
    // them, and tests/directory.rs proves Samba stores them exactly).
    prop_assert_eq!(&cn, &cn.trim());
    prop_assert_eq!(&cn, &mapping::cn(name, id), "cn is deterministic");

    let sam = mapping::sam_account_name(name, id);
    prop_assert!(!sam.is_empty() && sam.len() <= 20, "sam length: {sam:?}");
    prop_assert!(sam.is_ascii(), "{sam:?}");
    prop_assert!(
        !sam.chars()
            .any(|c| SAM_FORBIDDEN.contains(c) || c.is_control())
    );
    prop_assert!(!sam.ends_with('.') && !sam.ends_with(' '), "{sam:?}");
    prop_assert_eq!(
        &sam,
        &mapping::sam_account_name(name, id),
        "sam is deterministic"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any non-empty value, escaped, parses back as one RDN with exactly that value, and the
    /// rest of the DN is untouched.
    #[test]
    fn escaped_rdn_parses_back_to_the_same_value(v in hostile()) {
        let escaped = dn::rdn_value(&v);
        prop_assert!(rdn_is_well_escaped(&escaped), "{escaped:?}");
        let full = format!("CN={escaped},OU=x,DC=y");
        let parsed = dn::parse_dn(&full);
        if v.is_empty() {
            // An empty RDN value is refused outright, never read as something else.
            prop_assert_eq!(parsed, None);
        } else {
            let expected = vec![
                ("CN".to_string(), v.clone()),
                ("OU".to_string(), "x".to_string()),
                ("DC".to_string(), "y".to_string()),
            ];
            prop_assert_eq!(parsed, Some(expected), "{}", full);
            let alone = dn::parse_dn(&format!("CN={escaped}"));
            prop_assert_eq!(alone, Some(vec![("CN".to_string(), v.clone())]));
            prop_assert!(dn::is_under(&full, "OU=x,DC=y"));
            prop_assert!(dn::same_dn(&full, &full));
        }
    }

    /// Filter escaping never changes a filter's structure: no raw `(`, `)`, `*` or NUL, every
    /// `\` starts a hex pair, unescaping gives the value back, and ldap3's parser reads one
    /// equality assertion carrying exactly the value's bytes (also inside an `&`).
    #[test]
    fn filter_escaping_keeps_the_structure(v in hostile()) {
        let escaped = dn::filter_value(&v);
        prop_assert_eq!(unescape_filter_value(&escaped), Some(v.as_bytes().to_vec()), "{}", escaped);

        let filter = format!("(cn={escaped})");
        let tag = ldap3::parse_filter(&filter).map_err(|()| TestCaseError::fail(filter.clone()))?;
        let (attr, value) = equality(&tag.into_structure()).ok_or_else(|| TestCaseError::fail(filter.clone()))?;
        prop_assert_eq!(attr, b"cn".to_vec());
        prop_assert_eq!(value, v.as_bytes().to_vec());

        let anded = format!("(&(objectClass=group)(adminDescription={escaped}))");
        let tag = ldap3::parse_filter(&anded).map_err(|()| TestCaseError::fail(anded.clone()))?.into_structure();
        let PL::C(items) = &tag.payload else { return Err(TestCaseError::fail("not constructed")) };
        prop_assert_eq!(tag.id, 0, "an AND");
        prop_assert_eq!(items.len(), 2);
        prop_assert_eq!(equality(&items[1]).map(|(_, v)| v), Some(v.as_bytes().to_vec()));
    }

    /// CN and sAMAccountName: legal, bounded and deterministic for any display name and id.
    #[test]
    fn names_are_legal_for_any_input(name in prop::option::of(hostile()), id in hostile()) {
        assert_legal_names(name.as_deref(), &id)?;
    }

    /// For real (GUID) ids the CN keeps the 12-character suffix and the sAMAccountName ends
    /// with it, so two groups whose ids differ there never share either name.
    #[test]
    fn names_keep_the_id_suffix(name in prop::option::of(hostile()), a in guid(), b in guid()) {
        assert_legal_names(name.as_deref(), &a)?;
        let tail = format!("_{}", &a[a.len() - 12..]);
        let cn = mapping::cn(name.as_deref(), &a);
        prop_assert!(cn.ends_with(&tail), "{}", cn);
        let sam = mapping::sam_account_name(name.as_deref(), &a);
        prop_assert!(sam.ends_with(&tail), "{}", sam);
        if a[a.len() - 12..] != b[b.len() - 12..] {
            prop_assert_ne!(sam, mapping::sam_account_name(name.as_deref(), &b));
            prop_assert_ne!(mapping::cn(name.as_deref(), &a), mapping::cn(name.as_deref(), &b));
        }
    }

    /// The desired entry's DN is the escaped CN under the OU, and parses back to it.
    #[test]
    fn desired_dn_is_the_cn_under_the_ou(name in prop::option::of(hostile()), id in guid(), desc in prop::option::of(hostile())) {
        let props = GroupProps { display_name: name, description: desc, ..Default::default() };
        let d = mapping::desired(&id, &props, &MappingRules::simple("OU=Cloud Groups,DC=example,DC=test"));
        let rdns = dn::parse_dn(&d.dn).ok_or_else(|| TestCaseError::fail(d.dn.clone()))?;
        prop_assert_eq!(rdns.len(), 4);
        prop_assert_eq!(&rdns[0], &("CN".to_string(), d.cn.clone()));
        prop_assert!(dn::is_under(&d.dn, &d.ou));
        prop_assert!(!d.display_name.is_empty() && d.display_name.chars().count() <= 256);
        prop_assert!(d.description.is_none_or(|s| s.chars().count() <= 448 && !s.trim().is_empty()));
        prop_assert_eq!(mapping::id_from_anchor(&d.anchor), Some(id.as_str()));
    }
}

/// Cases the properties found, kept as plain regressions.
#[test]
fn found_cases() {
    let id = "0f8fad5b-d9cb-469f-a165-70867728950e";
    assert_eq!(mapping::cn(Some("x\ny"), id), "x\ny_70867728950e");
    assert_eq!(
        mapping::cn(Some(&"{id}".repeat(12)), id),
        format!(
            "{}_70867728950e",
            "{id}".repeat(12).chars().take(51).collect::<String>()
        )
    );
    assert!(
        mapping::cn(Some(&"\u{1F389}".repeat(64)), id)
            .encode_utf16()
            .count()
            <= 64
    );
}
