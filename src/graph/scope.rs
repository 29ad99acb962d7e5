//! The configured scope (`[graph.scope]`): which cloud groups are written back.
//!
//! The contract's scope (cloud groups, security-enabled or Microsoft 365, never groups synced
//! from AD) is fixed and lives in [`GroupProps::eligible`]; this module narrows it by
//! configuration. The poller evaluates it when it commits a group and stores the answer in
//! the queue's `GroupRecord::admitted`, so the worker never needs the configuration. A group
//! that stops matching is handled like a soft delete (`DeleteReason::LeftScope`); one that
//! starts matching is reconciled in full.
//!
//! Under `graph.writeback_configuration = "honour"`, Connect v2's per-group setting narrows it
//! too ([`GroupProps::writeback_enabled`]).

use std::collections::HashSet;

use regex::Regex;

use crate::config::{GroupTypeFilter, ScopeConfig, WritebackConfigurationMode};
use crate::model::GroupProps;

/// A compiled `[graph.scope]`.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Security-enabled non-M365 groups admitted.
    security: bool,
    /// Microsoft 365 groups admitted.
    microsoft365: bool,
    /// Dynamic-membership groups admitted.
    dynamic: bool,
    /// Allow-list of ids (lower case); `None` = every id.
    ids: Option<HashSet<String>>,
    /// `displayName` must match this.
    include: Option<Regex>,
    /// `displayName` must not match this.
    exclude: Option<Regex>,
    /// Whether the per-group `writebackConfiguration` is obeyed.
    writeback: WritebackConfigurationMode,
}

impl Default for Scope {
    fn default() -> Self {
        Scope::new(&ScopeConfig::default()).expect("the default scope compiles")
    }
}

/// A `[graph.scope]` pattern that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("graph.scope.{key}: {source}")]
pub struct ScopeError {
    /// The key under `[graph.scope]`.
    pub key: &'static str,
    /// What the regex engine said.
    #[source]
    pub source: regex::Error,
}

impl Scope {
    /// Compiles the configuration (already validated by `Config::load`; errors name the key).
    pub fn new(cfg: &ScopeConfig) -> Result<Scope, ScopeError> {
        let compile = |key: &'static str, p: &Option<String>| {
            p.as_deref()
                .map(Regex::new)
                .transpose()
                .map_err(|source| ScopeError { key, source })
        };
        Ok(Scope {
            security: cfg.group_types.contains(&GroupTypeFilter::Security),
            microsoft365: cfg.group_types.contains(&GroupTypeFilter::Microsoft365),
            dynamic: cfg.dynamic_groups,
            ids: (!cfg.group_ids.is_empty()).then(|| {
                cfg.group_ids
                    .iter()
                    .map(|i| i.trim().to_ascii_lowercase())
                    .collect()
            }),
            include: compile("display_name_pattern", &cfg.display_name_pattern)?,
            exclude: compile("display_name_exclude", &cfg.display_name_exclude)?,
            writeback: WritebackConfigurationMode::Ignore,
        })
    }

    /// The same scope obeying (or ignoring) the per-group `writebackConfiguration`.
    pub fn with_writeback_configuration(mut self, mode: WritebackConfigurationMode) -> Scope {
        self.writeback = mode;
        self
    }

    /// A stable text naming everything that decides admission: equal fingerprints admit the
    /// same groups, so a restart with an unchanged scope need not re-judge the mirror.
    pub fn fingerprint(&self) -> String {
        let mut ids: Vec<&String> = self.ids.iter().flatten().collect();
        ids.sort();
        let pattern = |r: &Option<Regex>| r.as_ref().map(|r| r.as_str().to_string());
        format!(
            "v1 security={} m365={} dynamic={} ids={ids:?} include={:?} exclude={:?} writeback={:?}",
            self.security,
            self.microsoft365,
            self.dynamic,
            pattern(&self.include),
            pattern(&self.exclude),
            self.writeback
        )
    }

    /// Whether the per-group `writebackConfiguration` is read and obeyed (groups delta then
    /// comes from Graph's beta endpoint).
    pub fn honours_writeback_configuration(&self) -> bool {
        self.writeback == WritebackConfigurationMode::Honour
    }

    /// Whether the configuration admits group `id` with these properties. (The contract's own
    /// rules are checked separately by [`GroupProps::eligible`].)
    pub fn admits(&self, id: &str, props: &GroupProps) -> bool {
        let type_ok = if props.is_unified() {
            self.microsoft365
        } else {
            self.security
        };
        let dynamic = props
            .group_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case("DynamicMembership"));
        let name = props.display_name.as_deref().unwrap_or("");
        type_ok
            && (self.dynamic || !dynamic)
            && self
                .ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&id.to_ascii_lowercase()))
            && self.include.as_ref().is_none_or(|r| r.is_match(name))
            && self.exclude.as_ref().is_none_or(|r| !r.is_match(name))
            && (!self.honours_writeback_configuration() || props.writeback_enabled())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(name: &str, types: &[&str], security: bool) -> GroupProps {
        GroupProps {
            display_name: Some(name.into()),
            group_types: types.iter().map(|t| t.to_string()).collect(),
            security_enabled: Some(security),
            ..Default::default()
        }
    }

    #[test]
    fn default_scope_admits_everything_the_contract_does() {
        let s = Scope::default();
        assert!(s.admits("g", &props("Eng", &[], true)));
        assert!(s.admits("g", &props("M365", &["Unified"], false)));
        assert!(s.admits("g", &props("Dyn", &["DynamicMembership"], true)));
        assert!(s.admits("g", &GroupProps::default()), "no name, no pattern");
    }

    #[test]
    fn types_ids_and_patterns_narrow_the_scope() {
        let cfg = ScopeConfig {
            group_types: vec![GroupTypeFilter::Security],
            dynamic_groups: false,
            group_ids: vec!["AAAA-1".into(), "bbbb-2".into()],
            display_name_pattern: Some("^SG-".into()),
            display_name_exclude: Some("(?i)test".into()),
        };
        let s = Scope::new(&cfg).unwrap();
        assert!(
            s.admits("aaaa-1", &props("SG-Eng", &[], true)),
            "ids compare case-insensitively"
        );
        assert!(
            !s.admits("cccc-3", &props("SG-Eng", &[], true)),
            "not allow-listed"
        );
        assert!(
            !s.admits("bbbb-2", &props("SG-M365", &["Unified"], true)),
            "M365 not admitted"
        );
        assert!(!s.admits("bbbb-2", &props("SG-Dyn", &["DynamicMembership"], true)));
        assert!(!s.admits("bbbb-2", &props("Eng", &[], true)), "pattern");
        assert!(
            !s.admits("bbbb-2", &props("SG-Test lab", &[], true)),
            "exclusion"
        );
        assert!(
            !s.admits("bbbb-2", &GroupProps::default()),
            "no name never matches a pattern"
        );
        let bad = ScopeConfig {
            display_name_pattern: Some("(".into()),
            ..ScopeConfig::default()
        };
        assert!(
            Scope::new(&bad)
                .unwrap_err()
                .to_string()
                .contains("display_name_pattern")
        );
    }

    #[test]
    fn fingerprints_differ_exactly_when_the_scope_does() {
        let cfg = |ids: &[&str], pattern: Option<&str>| ScopeConfig {
            group_ids: ids.iter().map(|s| s.to_string()).collect(),
            display_name_pattern: pattern.map(str::to_string),
            ..ScopeConfig::default()
        };
        let print = |c: &ScopeConfig| Scope::new(c).unwrap().fingerprint();
        assert_eq!(
            print(&cfg(&["b", "A"], None)),
            print(&cfg(&["a", "b"], None)),
            "order, case"
        );
        assert_ne!(print(&cfg(&["a"], None)), print(&cfg(&["a", "b"], None)));
        assert_ne!(print(&cfg(&[], Some("^SG-"))), print(&cfg(&[], None)));
        assert_ne!(
            print(&cfg(&[], Some("^SG-"))),
            print(&cfg(&[], Some("^SG")))
        );
        let honour =
            Scope::default().with_writeback_configuration(WritebackConfigurationMode::Honour);
        assert_ne!(honour.fingerprint(), Scope::default().fingerprint());
        let no_dynamic = ScopeConfig {
            dynamic_groups: false,
            ..ScopeConfig::default()
        };
        assert_ne!(print(&no_dynamic), Scope::default().fingerprint());
    }

    #[test]
    fn honoured_writeback_settings_follow_connect_v2() {
        use crate::model::WritebackSetting;
        let with = |types: &[&str], security: bool, enabled: Option<bool>| GroupProps {
            writeback: Some(WritebackSetting {
                is_enabled: enabled,
                on_premises_group_type: None,
            }),
            ..props("G", types, security)
        };
        let ignore = Scope::default();
        let honour =
            Scope::default().with_writeback_configuration(WritebackConfigurationMode::Honour);
        assert!(honour.honours_writeback_configuration());
        assert!(!ignore.honours_writeback_configuration());
        // isEnabled = false keeps any group out, but only when honoured.
        assert!(!honour.admits("g", &with(&["Unified"], false, Some(false))));
        assert!(ignore.admits("g", &with(&["Unified"], false, Some(false))));
        assert!(!honour.admits("g", &with(&[], true, Some(false))));
        // Unset: Microsoft 365 groups in, security groups out (Connect v2's defaults).
        assert!(honour.admits("g", &with(&["Unified"], false, None)));
        assert!(
            honour.admits("g", &props("M365", &["Unified"], false)),
            "no setting read"
        );
        assert!(!honour.admits("g", &with(&[], true, None)));
        assert!(!honour.admits("g", &props("Sec", &[], true)));
        // isEnabled = true lets a security group in.
        assert!(honour.admits("g", &with(&[], true, Some(true))));
        // The rest of the scope still applies.
        let narrow = Scope::new(&ScopeConfig {
            group_types: vec![GroupTypeFilter::Security],
            ..ScopeConfig::default()
        })
        .unwrap()
        .with_writeback_configuration(WritebackConfigurationMode::Honour);
        assert!(!narrow.admits("g", &with(&["Unified"], false, Some(true))));
    }
}
