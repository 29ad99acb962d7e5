//! Desired vs actual → operations. Pure: what the worker executes and what `plan` prints.
//!
//! # Guarantees
//! - No I/O: the same inputs always give the same operations, so `plan` shows exactly what
//!   `run` would do.
//!
//! Imports: [`super::mapping`], [`super::mail`], [`super::listed_members`] and
//! [`crate::model::dn`] only.

use std::collections::BTreeSet;
use std::fmt;

use super::listed_members::MemberDigest;
use super::mail::{self, MailAttrs};
use super::mapping::DesiredGroup;

/// A group as read from AD (the attributes the service manages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActualGroup {
    /// Its DN as the server spells it.
    pub dn: String,
    /// `cn`.
    pub cn: String,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `groupType`.
    pub group_type: Option<i32>,
    /// `sAMAccountName`.
    pub sam_account_name: Option<String>,
    /// `adminDescription`.
    pub admin_description: Option<String>,
    /// `msDS-ExternalDirectoryObjectId`.
    pub external_id: Option<String>,
    /// `objectSid` as `S-1-5-...`.
    pub sid: Option<String>,
    /// `mail`, `proxyAddresses`, `mailNickname` (boxed: rarely set, and it keeps the enums that
    /// carry an `ActualGroup` small).
    pub mail: Box<MailAttrs>,
    /// The members as a bulk pass's listing read them, when it read all of them: a digest
    /// that spares an already converged group its member read. `None`: read them from AD.
    pub listed_members: Option<MemberDigest>,
}

/// One change the service makes (or would make) in AD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Create a group with these attributes.
    Create {
        /// New DN.
        dn: String,
        /// Attributes and values.
        attrs: Vec<(String, Vec<String>)>,
    },
    /// Set (or clear, `to: None`) one attribute.
    Update {
        /// The group.
        dn: String,
        /// Attribute name.
        attr: String,
        /// Value now.
        from: Option<String>,
        /// Value wanted.
        to: Option<String>,
    },
    /// Set (or clear, `to` empty) every value of a multi-valued attribute.
    SetValues {
        /// The group.
        dn: String,
        /// Attribute name.
        attr: String,
        /// Values now.
        from: Vec<String>,
        /// Values wanted.
        to: Vec<String>,
    },
    /// Rename (new CN).
    Rename {
        /// Current DN.
        from: String,
        /// New DN.
        to: String,
    },
    /// Add members (by `<SID=...>`).
    AddMembers {
        /// The group.
        dn: String,
        /// Member SIDs.
        members: Vec<String>,
    },
    /// Remove members.
    RemoveMembers {
        /// The group.
        dn: String,
        /// Member SIDs.
        members: Vec<String>,
    },
    /// Delete the group.
    Delete {
        /// The group.
        dn: String,
        /// Why, as a label.
        reason: &'static str,
    },
    /// Leave the group as it is although its cloud group is gone (soft delete policy).
    Freeze {
        /// The group.
        dn: String,
        /// Why, as a label.
        reason: &'static str,
    },
    /// Not done: held for approval or in conflict.
    Skip {
        /// The group or name concerned.
        dn: String,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = show_value;
        match self {
            Operation::Create { dn, attrs } => {
                writeln!(f, "+ create {dn}")?;
                for (k, v) in attrs {
                    writeln!(f, "    {k}: {}", v.join(" | "))?;
                }
                Ok(())
            }
            Operation::Update { dn, attr, from, to } => writeln!(
                f,
                "~ modify {dn}\n    {attr}: {} -> {}",
                show(from),
                show(to)
            ),
            Operation::SetValues { dn, .. } => writeln!(f, "~ modify {dn}\n{}", update_line(self)),
            Operation::Rename { from, to } => writeln!(f, "> rename {from}\n    to {to}"),
            Operation::AddMembers { dn, members } => writeln!(
                f,
                "+ members of {dn}: +{} ({})",
                members.len(),
                preview(members)
            ),
            Operation::RemoveMembers { dn, members } => writeln!(
                f,
                "- members of {dn}: -{} ({})",
                members.len(),
                preview(members)
            ),
            Operation::Delete { dn, reason } => writeln!(f, "- delete {dn} ({reason})"),
            Operation::Freeze { dn, reason } => writeln!(f, "= keep {dn} frozen ({reason})"),
            Operation::Skip { dn, reason } => writeln!(f, "! skip {dn}: {reason}"),
        }
    }
}

/// An attribute value as shown in plans: quoted, or `(none)`.
fn show_value(v: &Option<String>) -> String {
    v.as_deref()
        .map(|s| format!("{s:?}"))
        .unwrap_or_else(|| "(none)".into())
}

/// Values as shown in plans: each quoted, `|`-separated, or `(none)`.
fn show_values(v: &[String]) -> String {
    if v.is_empty() {
        return "(none)".into();
    }
    v.iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The group an attribute update concerns.
fn update_dn(op: &Operation) -> Option<&str> {
    match op {
        Operation::Update { dn, .. } | Operation::SetValues { dn, .. } => Some(dn),
        _ => None,
    }
}

/// `    attr: from -> to` of an attribute update.
fn update_line(op: &Operation) -> String {
    match op {
        Operation::Update { attr, from, to, .. } => {
            format!("    {attr}: {} -> {}", show_value(from), show_value(to))
        }
        Operation::SetValues { attr, from, to, .. } => {
            format!("    {attr}: {} -> {}", show_values(from), show_values(to))
        }
        _ => String::new(),
    }
}

/// Renders operations for people: attribute updates of one group are shown as one block.
pub fn render(ops: &[Operation]) -> String {
    let mut out = String::new();
    let mut last_update_dn: Option<&str> = None;
    for op in ops {
        match update_dn(op) {
            Some(dn) if last_update_dn == Some(dn) => {
                out.push_str(&update_line(op));
                out.push('\n');
            }
            _ => out.push_str(&op.to_string()),
        }
        last_update_dn = update_dn(op);
    }
    out
}

fn preview(v: &[String]) -> String {
    let mut s = v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if v.len() > 5 {
        s.push_str(&format!(", … {} more", v.len() - 5));
    }
    s
}

/// The attributes of a new group.
pub fn create_attrs(d: &DesiredGroup, has_external_id: bool) -> Vec<(String, Vec<String>)> {
    let mut attrs = vec![
        (
            "objectClass".to_string(),
            vec!["top".to_string(), "group".to_string()],
        ),
        ("cn".into(), vec![d.cn.clone()]),
        ("sAMAccountName".into(), vec![d.sam_account_name.clone()]),
        ("displayName".into(), vec![d.display_name.clone()]),
        ("groupType".into(), vec![d.group_type.to_string()]),
        ("adminDescription".into(), vec![d.anchor.clone()]),
    ];
    if has_external_id {
        attrs.push((
            "msDS-ExternalDirectoryObjectId".into(),
            vec![d.anchor.clone()],
        ));
    }
    if let Some(desc) = &d.description {
        attrs.push(("description".into(), vec![desc.clone()]));
    }
    attrs.extend(d.mail.as_ref().map(mail::create_attrs).unwrap_or_default());
    attrs
}

/// Attribute updates that bring `actual` to `desired` (CN is handled by rename).
pub fn attribute_updates(
    d: &DesiredGroup,
    a: &ActualGroup,
    has_external_id: bool,
) -> Vec<Operation> {
    let mut ops = Vec::new();
    let mut want = |attr: &str, now: &Option<String>, to: Option<String>| {
        if *now != to {
            ops.push(Operation::Update {
                dn: a.dn.clone(),
                attr: attr.into(),
                from: now.clone(),
                to,
            });
        }
    };
    want("displayName", &a.display_name, Some(d.display_name.clone()));
    want("description", &a.description, d.description.clone());
    if !d.in_place {
        // An adopted original keeps its type (global or domain local scope included):
        // converting it is never the service's call.
        want(
            "groupType",
            &a.group_type.map(|t| t.to_string()),
            Some(d.group_type.to_string()),
        );
    }
    want(
        "adminDescription",
        &a.admin_description,
        Some(d.anchor.clone()),
    );
    if has_external_id {
        want(
            "msDS-ExternalDirectoryObjectId",
            &a.external_id,
            Some(d.anchor.clone()),
        );
    }
    if let Some(want) = &d.mail {
        ops.extend(mail::updates(&a.dn, want, &a.mail));
    }
    ops
}

/// Whether the CN must change (a case-only change is a rename too). Never for an adopted
/// original: scripts, ACL tooling and Exchange know it by its DN.
pub fn needs_rename(d: &DesiredGroup, a: &ActualGroup) -> bool {
    !d.in_place && d.cn != a.cn
}

/// Whether the group must move to the OU the rules place it in (never an adopted original).
pub fn needs_move(d: &DesiredGroup, current_parent: &str) -> bool {
    !d.in_place && !crate::model::dn::same_dn(current_parent, &d.ou)
}

/// Members to add and to remove so `actual` equals `desired` (both sets of SIDs), in SID
/// order. Takes both sets and moves their values into the answer: a large group's SIDs are
/// never held twice.
pub fn member_diff(
    desired: BTreeSet<String>,
    mut actual: BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    let add = desired.into_iter().filter(|s| !actual.remove(s)).collect();
    (add, actual.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::mapping::{MappingRules, UNIVERSAL_SECURITY, desired};
    use crate::model::GroupProps;

    fn d() -> DesiredGroup {
        let p = GroupProps {
            display_name: Some("Eng".into()),
            security_enabled: Some(true),
            ..Default::default()
        };
        desired("g-000000000001", &p, &MappingRules::simple("OU=C,DC=t"))
    }

    #[test]
    fn up_to_date_group_needs_nothing() {
        let d = d();
        let a = ActualGroup {
            dn: d.dn.clone(),
            cn: d.cn.clone(),
            display_name: Some("Eng".into()),
            group_type: Some(UNIVERSAL_SECURITY),
            admin_description: Some(d.anchor.clone()),
            external_id: Some(d.anchor.clone()),
            ..Default::default()
        };
        assert!(attribute_updates(&d, &a, true).is_empty());
        assert!(!needs_rename(&d, &a));
    }

    #[test]
    fn drift_is_listed() {
        let d = d();
        let a = ActualGroup {
            dn: d.dn.clone(),
            cn: "Old_000000000001".into(),
            description: Some("hand edit".into()),
            ..Default::default()
        };
        let ops = attribute_updates(&d, &a, false);
        let attrs: Vec<_> = ops
            .iter()
            .map(|o| match o {
                Operation::Update { attr, .. } => attr.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(
            attrs,
            [
                "displayName",
                "description",
                "groupType",
                "adminDescription"
            ]
        );
        assert!(needs_rename(&d, &a));
    }

    #[test]
    fn render_groups_updates_of_one_group() {
        let d = d();
        let a = ActualGroup {
            dn: d.dn.clone(),
            cn: d.cn.clone(),
            ..Default::default()
        };
        let text = render(&attribute_updates(&d, &a, false));
        assert_eq!(text.matches("~ modify").count(), 1, "{text}");
        assert!(
            text.contains("    displayName: (none) -> \"Eng\"") && text.contains("    groupType:"),
            "{text}"
        );
    }

    #[test]
    fn member_diff_both_ways() {
        let set = |v: &[&str]| {
            v.iter()
                .map(|s| s.to_string())
                .collect::<BTreeSet<String>>()
        };
        assert_eq!(
            member_diff(set(&["a", "b", "d"]), set(&["b", "c", "e"])),
            (vec!["a".into(), "d".into()], vec!["c".into(), "e".into()])
        );
        assert_eq!(member_diff(set(&["a"]), set(&["a"])), (vec![], vec![]));
        assert_eq!(
            member_diff(set(&[]), set(&["x"])),
            (vec![], vec!["x".into()])
        );
    }

    #[test]
    fn member_lists_in_plans_show_five_then_a_count() {
        let members = |n: usize| -> Vec<String> { (1..=n).map(|i| format!("S-{i}")).collect() };
        let line = |n: usize| {
            Operation::AddMembers {
                dn: "CN=G".into(),
                members: members(n),
            }
            .to_string()
        };
        assert_eq!(line(5), "+ members of CN=G: +5 (S-1, S-2, S-3, S-4, S-5)\n");
        assert_eq!(
            line(7),
            "+ members of CN=G: +7 (S-1, S-2, S-3, S-4, S-5, … 2 more)\n"
        );
        let removed = Operation::RemoveMembers {
            dn: "CN=G".into(),
            members: members(1),
        };
        assert_eq!(removed.to_string(), "- members of CN=G: -1 (S-1)\n");
    }

    #[test]
    fn a_new_group_carries_every_attribute_it_is_created_with() {
        let mut d = d();
        let attrs =
            |d: &DesiredGroup, ext: bool| -> Vec<(String, Vec<String>)> { create_attrs(d, ext) };
        let expected = |with_ext: bool, desc: Option<&str>| {
            let mut v: Vec<(String, Vec<String>)> = vec![
                ("objectClass".into(), vec!["top".into(), "group".into()]),
                ("cn".into(), vec!["Eng_000000000001".into()]),
                ("sAMAccountName".into(), vec![d.sam_account_name.clone()]),
                ("displayName".into(), vec!["Eng".into()]),
                ("groupType".into(), vec!["-2147483640".into()]),
                (
                    "adminDescription".into(),
                    vec!["Group_g-000000000001".into()],
                ),
            ];
            if with_ext {
                v.push((
                    "msDS-ExternalDirectoryObjectId".into(),
                    vec!["Group_g-000000000001".into()],
                ));
            }
            if let Some(desc) = desc {
                v.push(("description".into(), vec![desc.into()]));
            }
            v
        };
        assert_eq!(attrs(&d, true), expected(true, None));
        assert_eq!(attrs(&d, false), expected(false, None));
        d.description = Some("Engineering".into());
        assert_eq!(attrs(&d, false), expected(false, Some("Engineering")));
    }
}
