//! The mail attributes of written-back groups — `mail`, `proxyAddresses`, `mailNickname` — as
//! the contract's "What lands in AD" fixes them: what a group should carry, how that compares
//! with AD, and which addresses a clash search must check. Pure; the search itself is
//! [`super::mail_clash`].
//!
//! # Guarantees
//! - With `ad.mail_attributes = "off"` none of them is written or cleared ([`desired`] is
//!   `None`).
//! - Microsoft 365 groups and mail-enabled groups carry `mail` and every `proxyAddresses` value
//!   Graph lists, with the case of its `SMTP:` (primary) / `smtp:` prefix kept. Left out are
//!   only an empty value and a second value equal to an earlier one but for case (AD holds
//!   values case-insensitively, so it refuses the pair); an address held by an object the
//!   service does not own is left out by the applier, reported.
//! - `mailNickname` only where the schema has it ([`MailRules::mail_nickname`]).
//! - A group that is not (or no longer) mail-enabled carries none of them: what was written is
//!   cleared.
//! - `proxyAddresses` compare as sets (order-insensitive); a change of prefix case (a new
//!   primary) is a change.
//!
//! Imports: [`super::plan`] (operations), [`crate::config`], [`crate::model`].

use std::collections::BTreeSet;

use super::plan::Operation;
use crate::config::MailAttributes;
use crate::model::{GroupProps, dn};

/// What the service writes of the mail attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailRules {
    /// `ad.mail_attributes` is `"auto"`.
    pub write: bool,
    /// The schema has `mailNickname` (detected when the directory is opened).
    pub mail_nickname: bool,
    /// `onPremisesGroupType = universalMailEnabledSecurityGroup` makes a group a mail group
    /// (`graph.writeback_configuration = "honour"`).
    pub by_type: bool,
}

impl Default for MailRules {
    /// `"auto"`, on a schema without `mailNickname` (until the directory says otherwise).
    fn default() -> MailRules {
        MailRules::from_config(MailAttributes::Auto)
    }
}

impl MailRules {
    /// The rules `ad.mail_attributes` describes (the schema's `mailNickname` is detected later).
    pub fn from_config(setting: MailAttributes) -> MailRules {
        MailRules {
            write: setting == MailAttributes::Auto,
            mail_nickname: false,
            by_type: false,
        }
    }
}

/// The mail attributes of an AD group, as read or as wanted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailAttrs {
    /// `mail`.
    pub mail: Option<String>,
    /// `proxyAddresses`, every value.
    pub proxy_addresses: Vec<String>,
    /// `mailNickname`.
    pub mail_nickname: Option<String>,
}

/// Whether a cloud group carries mail attributes: Microsoft 365, mail-enabled, or (when
/// `by_type`: `graph.writeback_configuration = "honour"`) typed
/// `universalMailEnabledSecurityGroup` by Connect v2's setting.
pub fn is_mail_group(props: &GroupProps, by_type: bool) -> bool {
    let typed = by_type
        && props
            .writeback
            .as_ref()
            .and_then(|w| w.on_premises_group_type.as_deref())
            .is_some_and(|t| t.eq_ignore_ascii_case("universalMailEnabledSecurityGroup"));
    props.is_unified() || props.mail_enabled == Some(true) || typed
}

/// What a group's mail attributes should be; `None` when the service does not manage them:
/// `"off"`, or an adopted original the cloud does not call mail-enabled (what on-premises
/// Exchange set on it before the conversion is left alone, never cleared).
pub fn desired(props: &GroupProps, rules: &MailRules) -> Option<MailAttrs> {
    if !rules.write {
        return None;
    }
    if !is_mail_group(props, rules.by_type) {
        return (!props.source_converted()).then(MailAttrs::default);
    }
    let text = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let mut seen = BTreeSet::new();
    let proxy_addresses = props
        .proxy_addresses
        .iter()
        .filter(|a| !a.trim().is_empty() && seen.insert(a.to_lowercase()))
        .cloned()
        .collect();
    Some(MailAttrs {
        mail: text(&props.mail),
        proxy_addresses,
        mail_nickname: text(&props.mail_nickname).filter(|_| rules.mail_nickname),
    })
}

/// The attributes a new group is created with (only those that have values).
pub fn create_attrs(want: &MailAttrs) -> Vec<(String, Vec<String>)> {
    let mut attrs = Vec::new();
    if let Some(m) = &want.mail {
        attrs.push(("mail".to_string(), vec![m.clone()]));
    }
    if !want.proxy_addresses.is_empty() {
        attrs.push(("proxyAddresses".into(), want.proxy_addresses.clone()));
    }
    if let Some(n) = &want.mail_nickname {
        attrs.push(("mailNickname".into(), vec![n.clone()]));
    }
    attrs
}

/// The updates that bring `have` to `want` on the group `dn`.
pub fn updates(dn: &str, want: &MailAttrs, have: &MailAttrs) -> Vec<Operation> {
    let mut ops = Vec::new();
    for (attr, now, to) in [
        ("mail", &have.mail, &want.mail),
        ("mailNickname", &have.mail_nickname, &want.mail_nickname),
    ] {
        if now != to {
            ops.push(Operation::Update {
                dn: dn.to_string(),
                attr: attr.into(),
                from: now.clone(),
                to: to.clone(),
            });
        }
    }
    let as_set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<String>>();
    if as_set(&want.proxy_addresses) != as_set(&have.proxy_addresses) {
        ops.push(Operation::SetValues {
            dn: dn.to_string(),
            attr: "proxyAddresses".into(),
            from: as_set(&have.proxy_addresses).into_iter().collect(),
            to: want.proxy_addresses.clone(),
        });
    }
    ops
}

/// The wanted addresses the group's object does not hold yet (compared case-insensitively, as
/// AD does): only these can clash with another object, so a converged group costs no search.
pub fn unverified<'a>(want: &'a MailAttrs, have: Option<&MailAttrs>) -> Vec<&'a str> {
    let held: BTreeSet<String> = have
        .map(|h| h.proxy_addresses.iter().map(|a| a.to_lowercase()).collect())
        .unwrap_or_default();
    want.proxy_addresses
        .iter()
        .filter(|a| !held.contains(&a.to_lowercase()))
        .map(String::as_str)
        .collect()
}

/// The search filter for objects holding any of `addresses` (values escaped).
pub fn holders_filter(addresses: &[&str]) -> String {
    let terms: String = addresses
        .iter()
        .map(|a| format!("(proxyAddresses={})", dn::filter_value(a)))
        .collect();
    format!("(|{terms})")
}

/// Leaves the `taken` addresses (case-insensitively) out of `want`.
pub fn without(want: &mut MailAttrs, taken: &[String]) {
    let taken: BTreeSet<String> = taken.iter().map(|a| a.to_lowercase()).collect();
    want.proxy_addresses
        .retain(|a| !taken.contains(&a.to_lowercase()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m365(addresses: &[&str]) -> GroupProps {
        GroupProps {
            group_types: vec!["Unified".into()],
            mail_enabled: Some(true),
            mail: Some("sales@contoso.com".into()),
            mail_nickname: Some("sales".into()),
            proxy_addresses: addresses.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    const ADDRS: [&str; 3] = [
        "SMTP:sales@contoso.com",
        "smtp:sales@contoso.onmicrosoft.com",
        "X500:/o=ExchangeLabs/ou=x/cn=sales",
    ];

    #[test]
    fn a_microsoft_365_group_carries_every_address_with_its_prefix_case() {
        let rules = MailRules::default();
        let want = desired(&m365(&ADDRS), &rules).unwrap();
        assert_eq!(want.mail.as_deref(), Some("sales@contoso.com"));
        assert_eq!(want.proxy_addresses, ADDRS);
        assert_eq!(want.mail_nickname, None, "the schema lacks mailNickname");
        let with_nick = MailRules {
            mail_nickname: true,
            ..rules
        };
        let want = desired(&m365(&ADDRS), &with_nick).unwrap();
        assert_eq!(want.mail_nickname.as_deref(), Some("sales"));
        let attrs = create_attrs(&want);
        let names: Vec<&str> = attrs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["mail", "proxyAddresses", "mailNickname"]);
        assert_eq!(attrs[1].1, ADDRS);
    }

    #[test]
    fn mail_enabled_security_groups_too_and_others_carry_nothing() {
        let rules = MailRules::default();
        let mut p = GroupProps {
            security_enabled: Some(true),
            mail_enabled: Some(true),
            mail: Some("sec@contoso.com".into()),
            proxy_addresses: vec!["SMTP:sec@contoso.com".into()],
            ..Default::default()
        };
        assert_eq!(desired(&p, &rules).unwrap().proxy_addresses.len(), 1);
        p.mail_enabled = Some(false);
        assert_eq!(desired(&p, &rules), Some(MailAttrs::default()));
        assert!(create_attrs(&MailAttrs::default()).is_empty());
        let off = MailRules::from_config(MailAttributes::Off);
        assert_eq!(desired(&m365(&ADDRS), &off), None, "off: not managed");
    }

    #[test]
    fn a_mail_enabled_security_type_is_a_mail_group_only_when_honoured() {
        let p = GroupProps {
            security_enabled: Some(true),
            mail_enabled: Some(false),
            mail: Some("fin@contoso.com".into()),
            proxy_addresses: vec!["SMTP:fin@contoso.com".into()],
            writeback: Some(crate::model::WritebackSetting {
                is_enabled: Some(true),
                on_premises_group_type: Some("universalMailEnabledSecurityGroup".into()),
            }),
            ..Default::default()
        };
        let ignored = MailRules::default();
        assert_eq!(desired(&p, &ignored), Some(MailAttrs::default()));
        let honoured = MailRules {
            by_type: true,
            ..ignored
        };
        let want = desired(&p, &honoured).unwrap();
        assert_eq!(want.mail.as_deref(), Some("fin@contoso.com"));
        assert_eq!(want.proxy_addresses, ["SMTP:fin@contoso.com"]);
    }

    #[test]
    fn an_adopted_original_keeps_what_exchange_set_unless_the_cloud_has_mail() {
        let mut p = GroupProps {
            security_enabled: Some(true),
            mail_enabled: Some(false),
            on_premises_security_identifier: Some("S-1-5-21-1-2-3-1104".into()),
            on_premises_sync_enabled: Some(false),
            ..Default::default()
        };
        assert_eq!(
            desired(&p, &MailRules::default()),
            None,
            "not managed: never cleared"
        );
        p.mail_enabled = Some(true);
        p.mail = Some("orig@contoso.com".into());
        let want = desired(&p, &MailRules::default()).unwrap();
        assert_eq!(
            want.mail.as_deref(),
            Some("orig@contoso.com"),
            "the cloud's addresses"
        );
    }

    #[test]
    fn only_empty_and_case_only_duplicate_values_are_left_out() {
        let p = m365(&["SMTP:a@x", "", "smtp:A@X", "smtp:b@x", "smtp:b@x"]);
        let want = desired(&p, &MailRules::default()).unwrap();
        assert_eq!(want.proxy_addresses, ["SMTP:a@x", "smtp:b@x"]);
    }

    #[test]
    fn addresses_compare_as_sets_and_a_new_primary_is_a_change() {
        let want = desired(&m365(&ADDRS), &MailRules::default()).unwrap();
        let mut have = want.clone();
        have.proxy_addresses.reverse();
        assert!(
            updates("CN=g", &want, &have).is_empty(),
            "order is not a change"
        );
        have.proxy_addresses[2] = "smtp:SALES@contoso.com".into();
        let ops = updates("CN=g", &want, &have);
        assert!(
            matches!(&ops[..], [Operation::SetValues { attr, to, .. }] if attr == "proxyAddresses" && to == &ADDRS),
            "{ops:?}"
        );
        let cleared = updates("CN=g", &MailAttrs::default(), &want);
        let attrs: Vec<String> = cleared
            .iter()
            .map(|o| match o {
                Operation::Update { attr, to: None, .. } => attr.clone(),
                Operation::SetValues { attr, to, .. } if to.is_empty() => attr.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(attrs, ["mail", "proxyAddresses"]);
    }

    #[test]
    fn creates_carry_the_addresses_and_plans_show_them_in_the_groups_block() {
        use crate::directory::mapping::{MappingRules, desired as group};
        use crate::directory::plan::{self, ActualGroup};
        let d = group("g-1", &m365(&ADDRS), &MappingRules::simple("OU=C,DC=t"));
        let attrs = plan::create_attrs(&d, false);
        assert!(attrs.contains(&("proxyAddresses".into(), ADDRS.map(String::from).to_vec())));
        assert!(attrs.contains(&("mail".into(), vec!["sales@contoso.com".into()])));
        let a = ActualGroup {
            dn: d.dn.clone(),
            cn: d.cn.clone(),
            ..Default::default()
        };
        let text = plan::render(&plan::attribute_updates(&d, &a, false));
        assert_eq!(text.matches("~ modify").count(), 1, "{text}");
        let line = format!(
            "    proxyAddresses: (none) -> {}\n",
            ADDRS.map(|v| format!("{v:?}")).join(" | ")
        );
        assert!(text.contains(&line), "{text}");
    }

    #[test]
    fn only_addresses_the_object_lacks_are_searched_and_taken_ones_are_left_out() {
        let mut want = desired(&m365(&ADDRS), &MailRules::default()).unwrap();
        assert_eq!(unverified(&want, None), ADDRS);
        let mut have = want.clone();
        have.proxy_addresses = vec!["smtp:SALES@contoso.com".into()];
        assert_eq!(unverified(&want, Some(&have)), &ADDRS[1..]);
        assert!(unverified(&want, Some(&want.clone())).is_empty());
        assert_eq!(
            holders_filter(&["smtp:a*b@x", "X500:/o=(x)"]),
            "(|(proxyAddresses=smtp:a\\2ab@x)(proxyAddresses=X500:/o=\\28x\\29))"
        );
        without(&mut want, &["SMTP:SALES@CONTOSO.ONMICROSOFT.COM".into()]);
        assert_eq!(want.proxy_addresses, [ADDRS[0], ADDRS[2]]);
    }
}
