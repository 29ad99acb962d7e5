//! Fuzzes the cloud group → AD entry mapping (`directory::mapping`) with hostile names, ids,
//! descriptions and CN templates: nothing may panic, and every name, DN and filter built from
//! the input must be legal for AD and keep its structure.
//!
//! Input: one flag byte (bit 0 security-enabled, bit 1 Unified, bit 2 use the fuzzed template),
//! then UTF-8 (lossy) fields separated by `\x1f`: display name, object id, description, template.
#![no_main]

use entra_writeback::config::{DEFAULT_CN_TEMPLATE, valid_cn_template};
use entra_writeback::directory::mapping::{self, MappingRules};
use entra_writeback::model::{GroupProps, dn};
use ldap3::asn1::{ASNTag, PL, StructureTag};
use libfuzzer_sys::fuzz_target;

/// Characters AD refuses in a `sAMAccountName`.
const SAM_FORBIDDEN: &str = "\"/\\[]:;|=,+*?<>";

/// The value of the last equality assertion in a parsed filter.
fn last_equality_value(tag: &StructureTag) -> Option<Vec<u8>> {
    let PL::C(parts) = &tag.payload else {
        return None;
    };
    if tag.id == 3 {
        let PL::P(v) = &parts.get(1)?.payload else {
            return None;
        };
        return Some(v.clone());
    }
    last_equality_value(parts.last()?)
}

/// `filter` parses (ldap3's parser) and its last assertion carries exactly `value`.
fn assert_filter_keeps(filter: &str, value: &str) {
    let tag = ldap3::parse_filter(filter).unwrap_or_else(|()| panic!("unparsable: {filter:?}"));
    let got = last_equality_value(&tag.into_structure());
    assert_eq!(got.as_deref(), Some(value.as_bytes()), "{filter:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut fields = text.split('\u{1f}');
    let name = fields.next().filter(|s| !s.is_empty());
    let id = fields
        .next()
        .unwrap_or("0f8fad5b-d9cb-469f-a165-70867728950e");
    let description = fields.next();
    let template = fields
        .next()
        .filter(|t| flags & 4 != 0 && valid_cn_template(t))
        .unwrap_or(DEFAULT_CN_TEMPLATE);
    if id.is_empty() {
        return; // the Graph page parser never yields an empty id
    }

    let props = GroupProps {
        display_name: name.map(str::to_string),
        description: description.map(str::to_string),
        security_enabled: Some(flags & 1 != 0),
        group_types: if flags & 2 != 0 {
            vec!["Unified".into()]
        } else {
            vec![]
        },
        ..Default::default()
    };
    let rules = MappingRules {
        cn_template: template.to_string(),
        ..MappingRules::simple("OU=Cloud Groups,DC=example,DC=test")
    };
    let d = mapping::desired(id, &props, &rules);
    assert_eq!(d, mapping::desired(id, &props, &rules), "deterministic");

    // CN: bounded (AD counts UTF-16 units), trimmed; the display name's characters are kept.
    assert!(d.cn.encode_utf16().count() <= 64, "{:?}", d.cn);
    assert_eq!(d.cn, d.cn.trim());
    if template == DEFAULT_CN_TEMPLATE {
        assert!(!d.cn.is_empty());
        assert_eq!(d.cn, mapping::cn(name, id));
    }

    // sAMAccountName: ≤ 20, none of AD's forbidden characters, no trailing period.
    let sam = &d.sam_account_name;
    assert!(
        !sam.is_empty() && sam.len() <= 20 && sam.is_ascii(),
        "{sam:?}"
    );
    assert!(
        !sam.chars()
            .any(|c| SAM_FORBIDDEN.contains(c) || c.is_control()),
        "{sam:?}"
    );
    assert!(!sam.ends_with('.'), "{sam:?}");

    // DN: the escaped CN under the OU, parsing back to exactly that CN.
    if !d.cn.is_empty() {
        let rdns = dn::parse_dn(&d.dn).unwrap_or_else(|| panic!("unparsable DN {:?}", d.dn));
        assert_eq!(rdns.len(), 4, "{:?}", d.dn);
        assert_eq!(rdns[0], ("CN".to_string(), d.cn.clone()), "{:?}", d.dn);
        assert!(dn::is_under(&d.dn, &d.ou));
    }

    // Other attributes stay within AD's limits.
    assert!(!d.display_name.is_empty() && d.display_name.chars().count() <= 256);
    assert!(
        d.description
            .as_ref()
            .is_none_or(|s| s.chars().count() <= 448)
    );
    assert_eq!(mapping::id_from_anchor(&d.anchor), Some(id));

    // Filters built from the values match them literally and keep their structure.
    let anchor = dn::filter_value(&d.anchor);
    assert_filter_keeps(
        &format!(
            "(&(objectClass=group)(|(msDS-ExternalDirectoryObjectId={anchor})(adminDescription={anchor})))"
        ),
        &d.anchor,
    );
    assert_filter_keeps(&format!("(sAMAccountName={})", dn::filter_value(sam)), sam);
    if let Some(n) = name {
        assert_filter_keeps(&format!("(displayName={})", dn::filter_value(n)), n);
    }
});
