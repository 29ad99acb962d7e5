//! LDAP search filters (RFC 4515) for the fake: parsing the string form and matching it
//! against an entry, case-insensitively (AD's matching rule for the attributes the service
//! searches on).
//!
//! Supported: `&`, `|`, `!`, equality, presence (`attr=*`) and substrings (`attr=a*b*c`), with
//! `\XX` escapes in values. Ordering and approximate matches are refused (the service never
//! sends them).
//!
//! Imports nothing of the crate.

/// A parsed filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Filter {
    /// Every one matches.
    And(Vec<Filter>),
    /// At least one matches.
    Or(Vec<Filter>),
    /// It does not match.
    Not(Box<Filter>),
    /// The attribute has a value.
    Present(String),
    /// A value equals this (case-insensitively).
    Equal(String, String),
    /// A value starts with the first piece, contains the middle ones in order, and ends with
    /// the last.
    Substring {
        /// Attribute.
        attr: String,
        /// `a` of `a*…`.
        initial: String,
        /// `b` of `…*b*…`.
        any: Vec<String>,
        /// `c` of `…*c`.
        last: String,
    },
}

/// Parses a filter, or `None` if it is malformed or uses what the fake does not support.
pub(crate) fn parse(s: &str) -> Option<Filter> {
    let (f, rest) = parse_one(s.trim())?;
    rest.is_empty().then_some(f)
}

fn parse_one(s: &str) -> Option<(Filter, &str)> {
    let s = s.strip_prefix('(')?;
    let (f, rest) = match s.chars().next()? {
        '&' => parse_list(&s[1..]).map(|(v, r)| (Filter::And(v), r))?,
        '|' => parse_list(&s[1..]).map(|(v, r)| (Filter::Or(v), r))?,
        '!' => parse_one(&s[1..]).map(|(f, r)| (Filter::Not(Box::new(f)), r))?,
        _ => {
            let end = s.find(')')?;
            (parse_item(&s[..end])?, &s[end..])
        }
    };
    Some((f, rest.strip_prefix(')')?))
}

fn parse_list(mut s: &str) -> Option<(Vec<Filter>, &str)> {
    let mut v = Vec::new();
    while s.starts_with('(') {
        let (f, rest) = parse_one(s)?;
        v.push(f);
        s = rest;
    }
    Some((v, s))
}

fn parse_item(s: &str) -> Option<Filter> {
    let (attr, value) = s.split_once('=')?;
    if attr.is_empty() || attr.ends_with(['<', '>', '~', ':']) {
        return None;
    }
    let attr = attr.to_string();
    if value == "*" {
        return Some(Filter::Present(attr));
    }
    let pieces: Vec<String> = value.split('*').map(unescape).collect::<Option<_>>()?;
    Some(match pieces.as_slice() {
        [one] => Filter::Equal(attr, one.clone()),
        [initial, any @ .., last] => Filter::Substring {
            attr,
            initial: initial.clone(),
            any: any.iter().filter(|p| !p.is_empty()).cloned().collect(),
            last: last.clone(),
        },
        [] => return None,
    })
}

/// `\XX` escapes to bytes (UTF-8), or `None` if one is malformed.
fn unescape(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Filter {
    /// Whether an entry whose values of an attribute are `values(name)` matches.
    pub(crate) fn matches(&self, values: &dyn Fn(&str) -> Vec<String>) -> bool {
        match self {
            Filter::And(v) => v.iter().all(|f| f.matches(values)),
            Filter::Or(v) => v.iter().any(|f| f.matches(values)),
            Filter::Not(f) => !f.matches(values),
            Filter::Present(a) => !values(a).is_empty(),
            Filter::Equal(a, want) => values(a)
                .iter()
                .any(|v| v.to_lowercase() == want.to_lowercase()),
            Filter::Substring {
                attr,
                initial,
                any,
                last,
            } => values(attr)
                .iter()
                .any(|v| substring_match(&v.to_lowercase(), initial, any, last)),
        }
    }
}

fn substring_match(v: &str, initial: &str, any: &[String], last: &str) -> bool {
    let (initial, last) = (initial.to_lowercase(), last.to_lowercase());
    let Some(mut rest) = v.strip_prefix(initial.as_str()) else {
        return false;
    };
    for piece in any {
        let piece = piece.to_lowercase();
        match rest.find(piece.as_str()) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(attrs: &[(&str, &[&str])]) -> impl Fn(&str) -> Vec<String> {
        let attrs: Vec<(String, Vec<String>)> = attrs
            .iter()
            .map(|(k, v)| (k.to_lowercase(), v.iter().map(|s| s.to_string()).collect()))
            .collect();
        move |name: &str| {
            attrs
                .iter()
                .find(|(k, _)| *k == name.to_lowercase())
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        }
    }

    #[test]
    fn the_filters_the_service_sends_match_as_ad_would() {
        let group = entry(&[
            ("objectClass", &["top", "group"]),
            ("adminDescription", &["Group_abc"]),
            ("sAMAccountName", &["Sales*(1)"]),
        ]);
        let ok = |f: &str| parse(f).unwrap_or_else(|| panic!("{f}")).matches(&group);
        assert!(ok("(objectClass=*)"));
        assert!(ok("(&(objectClass=group)(adminDescription=Group_*))"));
        assert!(ok(
            "(&(objectClass=GROUP)(|(msDS-ExternalDirectoryObjectId=Group_abc)(adminDescription=group_ABC)))"
        ));
        assert!(!ok("(&(objectClass=group)(adminDescription=Group_abd))"));
        assert!(ok("(sAMAccountName=Sales\\2a\\281\\29)"), "escaped value");
        assert!(!ok("(sAMAccountName=Sales)"));
        assert!(ok("(adminDescription=*ou*_a*c)"));
        assert!(!ok("(adminDescription=*x*)"));
        assert!(ok("(!(objectClass=user))"));
        assert!(!ok("(msDS-ExternalDirectoryObjectId=*)"));
    }

    #[test]
    fn malformed_and_unsupported_filters_are_refused() {
        for bad in [
            "",
            "objectClass=*",
            "(objectClass=*",
            "(&(a=b)",
            "(a>=1)",
            "(a~=b)",
            "(a=\\zz)",
            "(=x)",
            "(a=b))",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
