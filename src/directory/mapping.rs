//! Cloud group → desired AD entry. Pure functions, per the contract's "What lands in AD".
//!
//! # Guarantees
//! - Every written group carries the anchor `Group_<objectId>`; CNs and `sAMAccountName`s are
//!   within AD's limits and keep the object id's suffix, so two groups never map to one name.
//!
//! Imports: [`crate::config`] (the `[ad]` naming rules), [`crate::model`] and [`super::mail`]
//! (the mail attributes).

use super::mail::{self, MailAttrs, MailRules};
use crate::config::{AdConfig, DEFAULT_CN_TEMPLATE};
use crate::model::GroupProps;

use crate::model::dn;

/// `groupType` of a universal security group (`0x80000008`).
pub const UNIVERSAL_SECURITY: i32 = -2147483640;
/// `groupType` of a universal distribution group.
pub const UNIVERSAL_DISTRIBUTION: i32 = 8;
/// Longest display-name part of the CN (the suffix brings it to AD's 64).
const CN_NAME_MAX: usize = 51;
/// `cn` limit (its schema `rangeUpper`), in UTF-16 units.
const CN_MAX: usize = 64;
/// `displayName` limit (its schema `rangeUpper`).
const DISPLAY_NAME_MAX: usize = 256;
/// AD's limit on `description` values the service writes.
const DESCRIPTION_MAX: usize = 448;
/// `sAMAccountName` limit for groups (pre-Windows 2000 name).
const SAM_MAX: usize = 20;

/// The join anchor stamped on every group the service owns: `Group_<objectId>`.
pub fn anchor(group_id: &str) -> String {
    format!("Group_{group_id}")
}

/// The object id inside an anchor value, if it is one of ours.
pub fn id_from_anchor(anchor: &str) -> Option<&str> {
    anchor.strip_prefix("Group_").filter(|s| !s.is_empty())
}

/// The last 12 characters of the object id: the disambiguating suffix.
fn id_suffix(group_id: &str) -> String {
    let chars: Vec<char> = group_id.chars().collect();
    chars[chars.len().saturating_sub(12)..].iter().collect()
}

/// `<displayName, trimmed, ≤ 51 chars>_<last 12 chars of objectId>`, unescaped.
pub fn cn(display_name: Option<&str>, group_id: &str) -> String {
    cn_from_template(DEFAULT_CN_TEMPLATE, display_name, group_id)
}

/// Fills a CN template: `{displayName}` (trimmed, ≤ 51 chars), `{idSuffix}` (last 12 chars of
/// the object id), `{id}` (the whole id). The result is cut to AD's 64 characters.
///
/// Hostile input stays harmless: placeholders are filled in one pass (a display name of
/// `{id}` is text, not a placeholder), and both limits count UTF-16 units, as AD does, so an emoji-heavy name
/// cannot overflow `cn`.
pub fn cn_from_template(template: &str, display_name: Option<&str>, group_id: &str) -> String {
    let name = utf16_prefix(display_name.unwrap_or("").trim(), CN_NAME_MAX).trim_end();
    let name = if name.is_empty() { "Group" } else { name };
    let out = fill_template(template, name, &id_suffix(group_id), group_id);
    utf16_prefix(&out, CN_MAX).trim().to_string()
}

/// Replaces the template's placeholders in one left-to-right pass, so nothing a value brings
/// in is itself expanded.
fn fill_template(template: &str, name: &str, suffix: &str, id: &str) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        let filled = [
            ("{displayName}", name),
            ("{idSuffix}", suffix),
            ("{id}", id),
        ]
        .into_iter()
        .find(|(placeholder, _)| rest.starts_with(placeholder));
        let (value, used) = filled.map_or(("{", 1), |(p, v)| (v, p.len()));
        out.push_str(value);
        rest = &rest[used..];
    }
    out.push_str(rest);
    out
}

/// The longest prefix of `s` that is at most `max` UTF-16 units long (AD's unit for limits).
fn utf16_prefix(s: &str, max: usize) -> &str {
    let mut units = 0;
    for (i, c) in s.char_indices() {
        units += c.len_utf16();
        if units > max {
            return &s[..i];
        }
    }
    s
}

/// Where and how groups are named: the configurable part of the mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingRules {
    /// OU for groups without a more specific rule.
    pub target_ou: String,
    /// OU for Microsoft 365 groups, if different.
    pub m365_ou: Option<String>,
    /// CN template (see [`cn_from_template`]).
    pub cn_template: String,
    /// `graph.writeback_configuration = "honour"`: a group's `onPremisesGroupType` sets its
    /// `groupType`.
    pub honour_writeback: bool,
    /// Which mail attributes are written ([`super::mail`]).
    pub mail: MailRules,
}

impl MappingRules {
    /// The rules the `[ad]` settings describe.
    pub fn from_config(ad: &AdConfig) -> MappingRules {
        MappingRules {
            target_ou: ad.target_ou.clone(),
            m365_ou: ad.target_ou_m365.clone(),
            cn_template: ad.cn_template.clone(),
            honour_writeback: false,
            mail: MailRules::from_config(ad.mail_attributes),
        }
    }

    /// Rules placing everything in `target_ou` with the default CN template.
    pub fn simple(target_ou: &str) -> MappingRules {
        MappingRules {
            target_ou: target_ou.to_string(),
            m365_ou: None,
            cn_template: DEFAULT_CN_TEMPLATE.into(),
            honour_writeback: false,
            mail: MailRules::default(),
        }
    }

    /// The OU a group belongs in.
    pub fn ou_for(&self, props: &GroupProps) -> &str {
        match &self.m365_ou {
            Some(ou) if props.is_unified() => ou,
            _ => &self.target_ou,
        }
    }
}

/// A deterministic `sAMAccountName`: a readable prefix of the display name and the id suffix,
/// ≤ 20 characters, only characters AD accepts. Set at creation and kept on rename.
pub fn sam_account_name(display_name: Option<&str>, group_id: &str) -> String {
    let suffix: String = id_suffix(group_id)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    // The suffix is at most 12 characters (`id_suffix`), so the prefix always has room.
    let room = SAM_MAX - 1 - suffix.len();
    let prefix: String = display_name
        .unwrap_or("")
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => Some(c),
            ' ' | '.' => Some('-'),
            _ => None,
        })
        .take(room)
        .collect();
    let prefix = prefix.trim_matches('-');
    let prefix = if prefix.is_empty() { "grp" } else { prefix };
    format!("{prefix}_{suffix}")
}

/// `description` as written: trimmed to AD-friendly length; empty = none.
pub fn description(d: Option<&str>) -> Option<String> {
    d.map(|d| d.chars().take(DESCRIPTION_MAX).collect::<String>())
        .filter(|d| !d.trim().is_empty())
}

/// `groupType` for a cloud group.
pub fn group_type(props: &GroupProps) -> i32 {
    if props.security_enabled == Some(true) || !props.is_unified() {
        UNIVERSAL_SECURITY
    } else {
        UNIVERSAL_DISTRIBUTION
    }
}

/// `groupType` for Connect v2's `onPremisesGroupType`; `None` for an unset or unknown value
/// (the contract's mapping then applies).
pub fn writeback_group_type(props: &GroupProps) -> Option<i32> {
    let kind = props
        .writeback
        .as_ref()?
        .on_premises_group_type
        .as_deref()?;
    match kind {
        k if k.eq_ignore_ascii_case("universalDistributionGroup") => Some(UNIVERSAL_DISTRIBUTION),
        k if k.eq_ignore_ascii_case("universalSecurityGroup")
            || k.eq_ignore_ascii_case("universalMailEnabledSecurityGroup") =>
        {
            Some(UNIVERSAL_SECURITY)
        }
        _ => None,
    }
}

/// What the AD entry of a cloud group should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredGroup {
    /// `Group_<objectId>`.
    pub anchor: String,
    /// CN value (unescaped).
    pub cn: String,
    /// Full DN (escaped) under [`DesiredGroup::ou`].
    pub dn: String,
    /// The OU it belongs in.
    pub ou: String,
    /// `sAMAccountName` for creation.
    pub sam_account_name: String,
    /// `displayName` (never empty: AD rejects empty values; ≤ 256 characters).
    pub display_name: String,
    /// `description`, if any.
    pub description: Option<String>,
    /// `groupType`.
    pub group_type: i32,
    /// An adopted original (source of authority converted, [`GroupProps::source_converted`]):
    /// its DN, CN, `sAMAccountName` and `groupType` are the original's and are kept.
    pub in_place: bool,
    /// `mail`, `proxyAddresses`, `mailNickname`; `None` when not managed
    /// (`ad.mail_attributes = "off"`).
    pub mail: Option<MailAttrs>,
}

/// Maps a cloud group to its desired AD entry.
pub fn desired(group_id: &str, props: &GroupProps, rules: &MappingRules) -> DesiredGroup {
    let cn = cn_from_template(&rules.cn_template, props.display_name.as_deref(), group_id);
    let ou = rules.ou_for(props).to_string();
    DesiredGroup {
        anchor: anchor(group_id),
        dn: format!("CN={},{ou}", dn::rdn_value(&cn)),
        ou,
        cn,
        sam_account_name: sam_account_name(props.display_name.as_deref(), group_id),
        display_name: props
            .display_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| group_id.to_string())
            .chars()
            .take(DISPLAY_NAME_MAX)
            .collect(),
        description: description(props.description.as_deref()),
        group_type: rules
            .honour_writeback
            .then(|| writeback_group_type(props))
            .flatten()
            .unwrap_or_else(|| group_type(props)),
        in_place: props.source_converted(),
        mail: mail::desired(props, &rules.mail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    #[test]
    fn cn_follows_template() {
        assert_eq!(cn(Some("  Sales  "), ID), "Sales_70867728950e");
        let long = "x".repeat(300);
        let c = cn(Some(&long), ID);
        assert_eq!(c.chars().count(), 64);
        assert_eq!(cn(None, ID), "Group_70867728950e");
        assert_eq!(
            cn(Some("日本語のグループ"), ID),
            "日本語のグループ_70867728950e"
        );
    }

    #[test]
    fn sam_is_short_legal_and_deterministic() {
        for name in [
            Some("Sales Team"),
            Some("*)(objectClass=*"),
            None,
            Some("a.b.c"),
            Some("日本"),
            Some(&*"z".repeat(99)),
        ] {
            let s = sam_account_name(name, ID);
            assert!(s.len() <= 20, "{s}");
            assert!(
                s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{s}"
            );
            assert!(!s.ends_with('.'));
            assert_eq!(s, sam_account_name(name, ID));
            assert!(s.ends_with("70867728950e") || s.len() == 20, "{s}");
        }
        assert_ne!(
            sam_account_name(Some("Sales"), ID),
            sam_account_name(Some("Sales"), "0f8fad5b-d9cb-469f-a165-000000000001")
        );
        assert_eq!(
            sam_account_name(Some("Sales Team"), ID),
            "Sales-T_70867728950e"
        );
    }

    #[test]
    fn templates_and_rules() {
        assert_eq!(
            cn_from_template("Group_{id}", Some("x"), ID),
            format!("Group_{ID}")
        );
        assert!(crate::config::valid_cn_template(
            "{displayName} ({idSuffix})"
        ));
        assert!(!crate::config::valid_cn_template("{displayName}"));
        let rules = MappingRules {
            m365_ou: Some("OU=M365,DC=t".into()),
            ..MappingRules::simple("OU=Sec,DC=t")
        };
        let m365 = GroupProps {
            group_types: vec!["Unified".into()],
            ..Default::default()
        };
        assert_eq!(desired(ID, &m365, &rules).ou, "OU=M365,DC=t");
        assert_eq!(
            desired(ID, &GroupProps::default(), &rules).dn,
            "CN=Group_70867728950e,OU=Sec,DC=t"
        );
    }

    #[test]
    fn sam_keeps_the_longest_prefix_that_fits_with_the_whole_suffix() {
        let long = "Engineering Platform Team";
        assert_eq!(sam_account_name(Some(long), ID), "Enginee_70867728950e");
        // A short id leaves more room for the name.
        assert_eq!(sam_account_name(Some(long), "g-42"), "Engineering-Plat_g42");
        // Nothing usable in the name: a fixed prefix, never an empty one.
        assert_eq!(sam_account_name(Some("..."), ID), "grp_70867728950e");
    }

    #[test]
    fn group_type_values_are_the_ad_flags() {
        // ADS_GROUP_TYPE_UNIVERSAL_GROUP (0x8) | ADS_GROUP_TYPE_SECURITY_ENABLED (0x80000000).
        assert_eq!(UNIVERSAL_SECURITY as u32, 0x8000_0008);
        assert_eq!(UNIVERSAL_DISTRIBUTION as u32, 0x0000_0008);
    }

    #[test]
    fn group_types() {
        let mut p = GroupProps {
            security_enabled: Some(true),
            ..Default::default()
        };
        assert_eq!(group_type(&p), UNIVERSAL_SECURITY);
        p.group_types = vec!["Unified".into()];
        assert_eq!(group_type(&p), UNIVERSAL_SECURITY);
        p.security_enabled = Some(false);
        assert_eq!(group_type(&p), UNIVERSAL_DISTRIBUTION);
    }

    #[test]
    fn honoured_on_premises_group_type_sets_group_type() {
        use crate::model::WritebackSetting;
        let props = |kind: Option<&str>, security: bool| GroupProps {
            group_types: vec!["Unified".into()],
            security_enabled: Some(security),
            writeback: Some(WritebackSetting {
                is_enabled: Some(true),
                on_premises_group_type: kind.map(str::to_string),
            }),
            ..Default::default()
        };
        let honour = MappingRules {
            honour_writeback: true,
            ..MappingRules::simple("OU=C,DC=t")
        };
        let ignore = MappingRules::simple("OU=C,DC=t");
        let ty = |p: &GroupProps, r: &MappingRules| desired(ID, p, r).group_type;
        let sec = props(Some("universalSecurityGroup"), false);
        assert_eq!(ty(&sec, &honour), UNIVERSAL_SECURITY);
        assert_eq!(
            ty(&sec, &ignore),
            UNIVERSAL_DISTRIBUTION,
            "ignored: contract mapping"
        );
        let mail_sec = props(Some("universalMailEnabledSecurityGroup"), false);
        assert_eq!(ty(&mail_sec, &honour), UNIVERSAL_SECURITY);
        let dist = props(Some("UniversalDistributionGroup"), true);
        assert_eq!(ty(&dist, &honour), UNIVERSAL_DISTRIBUTION);
        assert_eq!(
            ty(&props(None, true), &honour),
            UNIVERSAL_SECURITY,
            "unset: contract"
        );
        assert_eq!(
            ty(&props(Some("global"), false), &honour),
            UNIVERSAL_DISTRIBUTION
        );
    }

    #[test]
    fn a_converted_group_is_managed_in_place() {
        let mut p = GroupProps {
            security_enabled: Some(true),
            on_premises_security_identifier: Some("S-1-5-21-1-2-3-1104".into()),
            on_premises_sync_enabled: None,
            ..Default::default()
        };
        let rules = MappingRules::simple("OU=C,DC=t");
        assert!(desired(ID, &p, &rules).in_place);
        p.on_premises_sync_enabled = Some(true);
        assert!(!desired(ID, &p, &rules).in_place, "still synced from AD");
        p.on_premises_sync_enabled = Some(false);
        p.on_premises_security_identifier = Some("  ".into());
        assert!(!desired(ID, &p, &rules).in_place, "no SID: a cloud group");
    }

    #[test]
    fn description_truncated_and_dn_escaped() {
        let p = GroupProps {
            display_name: Some("#a,b".into()),
            description: Some("d".repeat(1000)),
            security_enabled: Some(true),
            ..Default::default()
        };
        let d = desired(ID, &p, &MappingRules::simple("OU=Cloud,DC=t"));
        assert_eq!(d.description.unwrap().chars().count(), 448);
        assert_eq!(d.dn, "CN=\\#a\\,b_70867728950e,OU=Cloud,DC=t");
        assert_eq!(d.anchor, format!("Group_{ID}"));
        assert_eq!(id_from_anchor(&d.anchor), Some(ID));
    }

    #[test]
    fn hostile_names_give_bounded_cns() {
        // Control characters are kept as the display name has them (the DN escapes them);
        // leading and trailing whitespace is trimmed, and an all-blank name is "Group".
        assert_eq!(cn(Some("a\nb\0c\r"), ID), "a\nb\0c_70867728950e");
        assert_eq!(cn(Some("\n\t"), ID), "Group_70867728950e");
        // A display name is text, never a placeholder.
        assert_eq!(
            cn(Some("{id}{idSuffix}"), ID),
            "{id}{idSuffix}_70867728950e"
        );
        assert_eq!(
            cn_from_template("{displayName} {x} {", Some("{displayName}"), ID),
            "{displayName} {x} {"
        );
        // Limits count UTF-16 units, as AD does: 60 emoji fit 25 of them, then the suffix.
        let c = cn(Some(&"\u{1F389}".repeat(60)), ID);
        assert_eq!(c.encode_utf16().count(), 63, "{c}");
        assert!(c.ends_with("_70867728950e"));
    }
}
