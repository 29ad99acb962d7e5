//! Searching the fake: scope and filter over the tree, the rootDSE, and what a search returns
//! for one entry — the requested attributes as AD returns them: `objectSid`/`objectGUID`
//! binary, `member` as DNs or extended DNs, ranged reads (`member;range=LO-HI`) capped at
//! `MaxValRange` and named as AD names them, computed `allowedChildClassesEffective`, and no
//! attribute without values.
//!
//! Imports: the fake's tree and filters, the directory's seam and error types.

use ldap3::{Scope, SearchEntry};

use super::dit::{Dit, Object, in_scope, refused, sid_bytes};
use super::filter::{self, Filter};
use crate::directory::error::{DirectoryError, ResultCode};
use crate::directory::seam::DnForm;

/// Classes a container lets the (fully privileged) fake service account create.
const CHILD_CLASSES: &[&str] = &["group", "user", "contact", "organizationalUnit"];

impl Dit {
    /// LDAP search: 32 if the base is missing; the rootDSE at base `""`.
    pub(super) fn search(
        &self,
        base: &str,
        scope: Scope,
        filter_str: &str,
        attrs: &[&str],
        form: DnForm,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let op = "search";
        let filter: Filter = filter::parse(filter_str)
            .ok_or_else(|| refused(op, base, ResultCode::PROTOCOL_ERROR, "bad search filter"))?;
        if base.is_empty() && matches!(scope, Scope::Base) {
            return Ok(vec![self.root_dse(attrs)]);
        }
        let (bk, _) = self.object(op, base)?;
        Ok(self
            .objects
            .iter()
            .filter(|(k, _)| in_scope(k, bk, scope))
            .filter(|(_, o)| filter.matches(&|a| self.values_for_filter(o, a)))
            .map(|(_, o)| self.entry(o, attrs, form))
            .collect())
    }

    fn values_for_filter(&self, o: &Object, attr: &str) -> Vec<String> {
        match attr.to_ascii_lowercase().as_str() {
            "distinguishedname" => vec![o.dn.clone()],
            "member" => o
                .members
                .iter()
                .filter_map(|g| self.by_guid(g).map(|m| m.dn.clone()))
                .collect(),
            _ => o.values(attr),
        }
    }

    fn root_dse(&self, attrs: &[&str]) -> SearchEntry {
        let mut e = SearchEntry {
            dn: String::new(),
            attrs: Default::default(),
            bin_attrs: Default::default(),
        };
        for (name, value) in [
            ("defaultNamingContext", &self.domain),
            ("schemaNamingContext", &self.schema),
        ] {
            if attrs.is_empty()
                || attrs
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(name) || *a == "*")
            {
                e.attrs.insert(name.to_string(), vec![value.clone()]);
            }
        }
        e
    }

    /// The entry for `o` with the `attrs` asked for (none, or `*`: every stored one).
    pub(super) fn entry(&self, o: &Object, attrs: &[&str], form: DnForm) -> SearchEntry {
        let mut e = SearchEntry {
            dn: o.dn.clone(),
            attrs: Default::default(),
            bin_attrs: Default::default(),
        };
        let all = attrs.is_empty() || attrs.contains(&"*");
        if all {
            for (k, v) in &o.attrs {
                e.attrs.insert(k.clone(), v.clone());
            }
            self.members_into(&mut e, o, 0, usize::MAX, false, form);
        }
        for a in attrs {
            let lower = a.to_ascii_lowercase();
            match lower.as_str() {
                "*" | "1.1" => {}
                "objectsid" => {
                    if let Some(s) = &o.sid {
                        e.bin_attrs.insert("objectSid".into(), vec![sid_bytes(s)]);
                    }
                }
                "objectguid" => {
                    e.bin_attrs
                        .insert("objectGUID".into(), vec![o.guid.as_bytes().to_vec()]);
                }
                "distinguishedname" => {
                    e.attrs
                        .insert("distinguishedName".into(), vec![o.dn.clone()]);
                }
                "allowedchildclasseseffective" => {
                    if ["organizationalUnit", "container", "domainDNS"]
                        .iter()
                        .any(|c| {
                            o.values("objectClass")
                                .iter()
                                .any(|v| v.eq_ignore_ascii_case(c))
                        })
                    {
                        e.attrs.insert(
                            "allowedChildClassesEffective".into(),
                            CHILD_CLASSES.iter().map(|c| c.to_string()).collect(),
                        );
                    }
                }
                "member" if !all => self.members_into(&mut e, o, 0, usize::MAX, false, form),
                _ => {
                    if let Some((lo, hi)) = range(&lower) {
                        self.members_into(&mut e, o, lo, hi, true, form);
                    } else if !all {
                        let v = o.values(a);
                        if !v.is_empty() {
                            let name = o
                                .attrs
                                .iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case(a))
                                .map_or(a.to_string(), |(k, _)| k.clone());
                            e.attrs.insert(name, v);
                        }
                    }
                }
            }
        }
        e
    }

    /// `member` values `lo..=hi`, at most `max_val_range` of them. An unranged read that AD
    /// would cut short comes back ranged, as AD does; no members, no attribute.
    fn members_into(
        &self,
        e: &mut SearchEntry,
        o: &Object,
        lo: usize,
        hi: usize,
        ranged: bool,
        form: DnForm,
    ) {
        let values: Vec<String> = o
            .members
            .iter()
            .filter_map(|g| self.by_guid(g))
            .map(|m| match (form, &m.sid) {
                (DnForm::Plain, _) => m.dn.clone(),
                (DnForm::Extended, Some(s)) => format!("<GUID={}>;<SID={s}>;{}", m.guid, m.dn),
                (DnForm::Extended, None) => format!("<GUID={}>;{}", m.guid, m.dn),
            })
            .collect();
        if values.is_empty() || lo >= values.len() {
            return;
        }
        let cap = lo.saturating_add(self.max_val_range.max(1) - 1);
        let end = hi.min(cap).min(values.len() - 1);
        let name = if end == values.len() - 1 {
            format!("member;range={lo}-*")
        } else {
            format!("member;range={lo}-{end}")
        };
        let name = if !ranged && end == values.len() - 1 {
            "member".to_string()
        } else {
            name
        };
        e.attrs.insert(name, values[lo..=end].to_vec());
    }
}

/// `member;range=LO-HI` (or `LO-*`) → (LO, HI).
fn range(attr_lower: &str) -> Option<(usize, usize)> {
    let (lo, hi) = attr_lower.strip_prefix("member;range=")?.split_once('-')?;
    let lo = lo.parse().ok()?;
    let hi = if hi == "*" {
        usize::MAX
    } else {
        hi.parse().ok()?
    };
    (hi >= lo).then_some((lo, hi))
}
