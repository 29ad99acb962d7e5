//! Groups another tool wrote (Connect Sync group writeback v1/v2, Cloud Sync's provisioning to
//! AD) and the service took over in place. Pure.
//!
//! A group carrying our anchor (`adminDescription = Group_<objectId>`) is managed whoever
//! created it. It counts as **taken over** when its `sAMAccountName` is not one the service
//! creates: ours always end with `_` and the object id's suffix
//! ([`mapping::sam_account_name`], set at creation and kept on rename), while Connect writes
//! its own and Cloud Sync leaves AD to generate one. The test looks at the AD object only, so
//! `plan` (which runs on a throw-away state) and `run` agree, and a lost state changes nothing.
//!
//! # Guarantees
//! - A taken-over group keeps its CN (scripts and Exchange know it by DN) unless
//!   `[ad] rename_taken_over = true`; a group the service created follows `cn_template`.
//! - Moving between owned OUs is not decided here: the rules (`target_ou`, `target_ou_m365`)
//!   still place every group, keeping its CN.
//!
//! Imports: [`super::mapping`] and [`super::plan`] (the desired and actual shapes) only.

use super::mapping::{self, DesiredGroup};
use super::plan::ActualGroup;

/// Whether the AD object was written by another tool: its `sAMAccountName` (if any) does not
/// end with the suffix of the ones the service creates for this group.
pub fn taken_over(group_id: &str, actual: &ActualGroup) -> bool {
    let ours = mapping::sam_account_name(None, group_id);
    // `grp_<suffix>`: everything from the underscore on is what every name of ours ends with.
    let suffix = &ours[ours.rfind('_').unwrap_or(0)..];
    let Some(sam) = actual.sam_account_name.as_deref() else {
        return true;
    };
    let sam = sam.to_ascii_lowercase();
    !sam.ends_with(&suffix.to_ascii_lowercase())
}

/// The CN the group should have: the one it has if it was taken over (and the admin did not
/// opt into renaming), else the one `cn_template` gives.
pub fn cn_to_keep<'a>(
    group_id: &str,
    desired: &'a DesiredGroup,
    actual: &'a ActualGroup,
    rename_taken_over: bool,
) -> &'a str {
    if !rename_taken_over && taken_over(group_id, actual) {
        &actual.cn
    } else {
        &desired.cn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::mapping::{MappingRules, desired};
    use crate::model::GroupProps;

    const ID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    fn actual(cn: &str, sam: Option<&str>) -> ActualGroup {
        ActualGroup {
            cn: cn.into(),
            sam_account_name: sam.map(str::to_string),
            ..Default::default()
        }
    }

    fn want(name: &str) -> DesiredGroup {
        let props = GroupProps {
            display_name: Some(name.into()),
            ..Default::default()
        };
        desired(ID, &props, &MappingRules::simple("OU=C,DC=t"))
    }

    #[test]
    fn our_names_are_ours_whatever_the_display_name_was() {
        // Created as "Sales Team", renamed in the cloud since: the suffix still says ours.
        let created = mapping::sam_account_name(Some("Sales Team"), ID);
        assert!(!taken_over(
            ID,
            &actual("Sales Team_70867728950e", Some(&created))
        ));
        assert!(!taken_over(ID, &actual("x", Some(&created.to_uppercase()))));
        assert!(!taken_over("g-42", &actual("x", Some("Eng_g42"))));
    }

    #[test]
    fn connect_and_cloud_sync_names_are_taken_over() {
        // Connect's own sAMAccountName, Cloud Sync's AD-generated one, none at all, and a
        // name of ours for another group.
        for sam in [
            Some("Group_0f8fad5bd9cb469"),
            Some("$V31000-ABCDEFGHIJKL"),
            None,
            Some("Sales_000000000001"),
        ] {
            assert!(taken_over(ID, &actual("Group_x", sam)), "{sam:?}");
        }
    }

    #[test]
    fn a_taken_over_group_keeps_its_cn_unless_renaming_is_asked_for() {
        let d = want("Marketing");
        let connect = actual(&format!("Group_{ID}"), Some("Grp0f8fad5bd9cb469f"));
        assert_eq!(cn_to_keep(ID, &d, &connect, false), format!("Group_{ID}"));
        assert_eq!(cn_to_keep(ID, &d, &connect, true), "Marketing_70867728950e");
        // A group the service created follows the template (a cloud rename renames it).
        let ours = actual("Old_70867728950e", Some("Old_70867728950e"));
        assert_eq!(cn_to_keep(ID, &d, &ours, false), "Marketing_70867728950e");
    }
}
