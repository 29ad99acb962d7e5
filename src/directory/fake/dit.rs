//! The fake's directory information tree: entries by normalized DN, each with its attributes,
//! an `objectGUID`, an `objectSid` for security principals, and `member` kept as links (so
//! renaming or deleting a member is reflected, as AD's linked attributes are).
//!
//! Every operation answers with the result code AD gives in the same situation (see each
//! function); the rules are the ones the applier's code reasons about.
//!
//! Imports: the directory's error types, [`crate::model`] (DN and SID helpers).

use std::collections::{BTreeMap, HashSet};

use ldap3::{Mod, Scope};

use crate::directory::error::{DirectoryError, ResultCode};
use crate::model::dn;

/// `objectClassViolation`.
const OBJECT_CLASS_VIOLATION: ResultCode = ResultCode(65);

/// Attributes only the DSA sets.
const PROTECTED: &[&str] = &[
    "objectsid",
    "objectguid",
    "distinguishedname",
    "objectclass",
];

/// One entry.
#[derive(Debug, Clone)]
pub(super) struct Object {
    pub(super) dn: String,
    /// Attribute name as first written, and values; never `member`.
    pub(super) attrs: Vec<(String, Vec<String>)>,
    pub(super) guid: String,
    pub(super) sid: Option<String>,
    /// Member links, by the member's GUID, in the order added.
    pub(super) members: Vec<String>,
}

impl Object {
    pub(super) fn values(&self, name: &str) -> Vec<String> {
        self.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn set(&mut self, name: &str, values: Vec<String>) {
        self.attrs.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        if !values.is_empty() {
            self.attrs.push((name.to_string(), values));
        }
    }

    fn has_class(&self, class: &str) -> bool {
        self.values("objectClass")
            .iter()
            .any(|c| c.eq_ignore_ascii_case(class))
    }
}

/// The tree.
pub(super) struct Dit {
    pub(super) objects: BTreeMap<String, Object>,
    pub(super) domain: String,
    pub(super) schema: String,
    domain_sid: String,
    next_rid: u32,
    next_guid: u64,
    /// The most `member` values one read returns (Windows' `MaxValRange`).
    pub(super) max_val_range: usize,
}

/// The normalized key of a DN (`None` if it does not parse): lower-case RDNs, outermost last.
pub(super) fn key(dn_str: &str) -> Option<String> {
    let rdns = dn::parse_dn(dn_str)?;
    Some(
        rdns.iter()
            .map(|(k, v)| format!("{}={}", k.trim().to_lowercase(), v.trim().to_lowercase()))
            .collect::<Vec<_>>()
            .join("\0"),
    )
}

fn parent_key(k: &str) -> Option<&str> {
    k.split_once('\0').map(|(_, p)| p)
}

/// Whether the entry at key `k` is within `scope` of the base at key `base`.
pub(super) fn in_scope(k: &str, base: &str, scope: Scope) -> bool {
    match scope {
        Scope::Base => k == base,
        Scope::OneLevel => parent_key(k) == Some(base),
        Scope::Subtree => k == base || k.ends_with(&format!("\0{base}")),
    }
}

/// The binary form of a string SID.
pub(super) fn sid_bytes(s: &str) -> Vec<u8> {
    let parts: Vec<u64> = s
        .split('-')
        .skip(1)
        .filter_map(|p| p.parse().ok())
        .collect();
    let (rev, auth, subs) = (parts[0] as u8, parts[1], &parts[2..]);
    let mut b = vec![rev, subs.len() as u8];
    b.extend_from_slice(&auth.to_be_bytes()[2..]);
    for sub in subs {
        b.extend_from_slice(&(*sub as u32).to_le_bytes());
    }
    b
}

pub(super) fn refused(op: &'static str, dn: &str, rc: ResultCode, what: &str) -> DirectoryError {
    DirectoryError::Operation {
        op,
        dn: dn.to_string(),
        rc,
        message: format!("fake: {what}"),
    }
}

impl Dit {
    /// A tree holding the domain object, its configuration and schema containers.
    pub(super) fn new(domain: &str) -> Dit {
        let schema = format!("CN=Schema,CN=Configuration,{domain}");
        let mut dit = Dit {
            objects: BTreeMap::new(),
            domain: domain.to_string(),
            schema: schema.clone(),
            domain_sid: "S-1-5-21-1000-2000-3000".into(),
            next_rid: 1100,
            next_guid: 1,
            max_val_range: crate::directory::DEFAULT_MEMBER_RANGE_STEP,
        };
        let container = |c: &str| vec![("objectClass".to_string(), vec!["top".into(), c.into()])];
        dit.insert(domain, container("domainDNS"));
        dit.insert(
            &format!("CN=Configuration,{domain}"),
            container("container"),
        );
        dit.insert(&schema, container("dMD"));
        dit
    }

    /// Inserts without checks (set-up only).
    pub(super) fn insert(&mut self, dn_str: &str, attrs: Vec<(String, Vec<String>)>) {
        let k = key(dn_str).expect("a valid DN");
        let obj = self.new_object(dn_str, attrs);
        self.objects.insert(k, obj);
    }

    fn new_object(&mut self, dn_str: &str, attrs: Vec<(String, Vec<String>)>) -> Object {
        let guid = format!("6d3f0000-0000-4000-8000-{:012x}", self.next_guid);
        self.next_guid += 1;
        let mut o = Object {
            dn: dn_str.to_string(),
            attrs,
            guid,
            sid: None,
            members: vec![],
        };
        if ["group", "user", "computer"].iter().any(|c| o.has_class(c)) {
            o.sid = Some(format!("{}-{}", self.domain_sid, self.next_rid));
            self.next_rid += 1;
        }
        if o.values("objectCategory").is_empty() {
            let category = if o.has_class("group") {
                "group"
            } else if o.has_class("person") {
                "person"
            } else {
                ""
            };
            o.set("objectCategory", vec![category.to_string()]);
        }
        if let Some((_, rdn)) = dn::parse_dn(dn_str).and_then(|r| r.into_iter().next()) {
            o.set("name", vec![rdn.clone()]);
            o.set("cn", vec![rdn]);
        }
        o
    }

    /// The entry at `dn_str` and its key: 34 for a malformed DN, 32 if there is none. As AD
    /// does, `<SID=…>` and `<GUID=…>` name the object holding that SID or GUID.
    pub(super) fn object(
        &self,
        op: &'static str,
        dn_str: &str,
    ) -> Result<(&String, &Object), DirectoryError> {
        let missing = || refused(op, dn_str, ResultCode::NO_SUCH_OBJECT, "no such object");
        let k = if dn_str.starts_with('<') {
            key(&self.resolve_member(dn_str).ok_or_else(missing)?.dn)
        } else {
            key(dn_str)
        }
        .ok_or_else(|| refused(op, dn_str, ResultCode::INVALID_DN_SYNTAX, "invalid DN"))?;
        self.objects.get_key_value(&k).ok_or_else(missing)
    }

    /// The key of the object a `member` value names: `<SID=…>`, `<GUID=…>` or a DN.
    fn resolve_member(&self, value: &str) -> Option<&Object> {
        if let Some(s) = value
            .strip_prefix("<SID=")
            .and_then(|r| r.strip_suffix('>'))
        {
            return self.objects.values().find(|o| o.sid.as_deref() == Some(s));
        }
        if let Some(g) = value
            .strip_prefix("<GUID=")
            .and_then(|r| r.strip_suffix('>'))
        {
            return self
                .objects
                .values()
                .find(|o| o.guid.eq_ignore_ascii_case(g));
        }
        self.objects.get(&key(value)?)
    }

    /// The entry with this `objectGUID`.
    pub(super) fn by_guid(&self, guid: &str) -> Option<&Object> {
        self.objects.values().find(|o| o.guid == guid)
    }

    /// Whether another object in the domain has this `sAMAccountName`.
    fn sam_taken(&self, sam: &str, except: &str) -> bool {
        self.objects.iter().any(|(k, o)| {
            k != except
                && o.values("sAMAccountName")
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case(sam))
        })
    }

    /// LDAP add: 68 if the DN (or the `sAMAccountName`) is taken, 32 if the parent or a member
    /// is missing, 65 without an `objectClass`.
    pub(super) fn add(
        &mut self,
        dn_str: &str,
        attrs: Vec<(String, HashSet<String>)>,
    ) -> Result<(), DirectoryError> {
        let op = "add";
        let k = key(dn_str)
            .ok_or_else(|| refused(op, dn_str, ResultCode::INVALID_DN_SYNTAX, "invalid DN"))?;
        if self.objects.contains_key(&k) {
            return Err(refused(
                op,
                dn_str,
                ResultCode::ALREADY_EXISTS,
                "entry already exists",
            ));
        }
        if !parent_key(&k).is_some_and(|p| self.objects.contains_key(p)) {
            return Err(refused(
                op,
                dn_str,
                ResultCode::NO_SUCH_OBJECT,
                "parent does not exist",
            ));
        }
        let mut plain = Vec::new();
        let mut member_values = Vec::new();
        for (name, values) in attrs {
            let mut values: Vec<String> = values.into_iter().collect();
            values.sort();
            if name.eq_ignore_ascii_case("member") {
                member_values = values;
            } else if !values.is_empty() {
                plain.push((name, values));
            }
        }
        let mut obj = self.new_object(dn_str, plain);
        if obj.values("objectClass").is_empty() {
            return Err(refused(
                op,
                dn_str,
                OBJECT_CLASS_VIOLATION,
                "no objectClass",
            ));
        }
        if let Some(sam) = obj.values("sAMAccountName").first()
            && self.sam_taken(sam, &k)
        {
            return Err(refused(
                op,
                dn_str,
                ResultCode::ALREADY_EXISTS,
                "sAMAccountName in use",
            ));
        }
        for v in member_values {
            let m = self
                .resolve_member(&v)
                .ok_or_else(|| refused(op, dn_str, ResultCode::NO_SUCH_OBJECT, "no such member"))?;
            obj.members.push(m.guid.clone());
        }
        self.objects.insert(k, obj);
        Ok(())
    }

    /// LDAP modify, all or nothing: 32 if the entry is missing; on `member`, 32 for a value
    /// naming no object, 68 for one already there (Windows), 16 for removing a non-member; on
    /// other attributes 20 / 16; 67 on the RDN attribute, 53 on what only the DSA sets.
    pub(super) fn modify(
        &mut self,
        dn_str: &str,
        mods: Vec<Mod<String>>,
    ) -> Result<(), DirectoryError> {
        let (k, current) = self.object("modify", dn_str)?;
        let (k, mut obj) = (k.clone(), current.clone());
        for m in mods {
            self.apply_mod(&mut obj, &k, m)?;
        }
        self.objects.insert(k, obj);
        Ok(())
    }

    fn apply_mod(&self, obj: &mut Object, k: &str, m: Mod<String>) -> Result<(), DirectoryError> {
        let fail = |rc, what: &str| Err(refused("modify", &obj.dn, rc, what));
        let (name, values, how) = match m {
            Mod::Add(n, v) => (n, v, 'a'),
            Mod::Delete(n, v) => (n, v, 'd'),
            Mod::Replace(n, v) => (n, v, 'r'),
            Mod::Increment(..) => return fail(ResultCode::UNWILLING, "increment not supported"),
        };
        let lower = name.to_ascii_lowercase();
        if lower == "cn" || lower == "name" {
            return fail(ResultCode::NOT_ALLOWED_ON_RDN, "use modrdn to rename");
        }
        if PROTECTED.contains(&lower.as_str()) {
            return fail(ResultCode::UNWILLING, "attribute is system-only");
        }
        let mut values: Vec<String> = values.into_iter().collect();
        values.sort();
        if lower == "member" {
            return self.apply_member_mod(obj, values, how);
        }
        if lower == "samaccountname" && how != 'd' && values.iter().any(|v| self.sam_taken(v, k)) {
            return fail(ResultCode::ALREADY_EXISTS, "sAMAccountName in use");
        }
        let mut have = obj.values(&name);
        let has = |have: &[String], v: &str| have.iter().any(|h| h.eq_ignore_ascii_case(v));
        match how {
            'a' if values.iter().any(|v| has(&have, v)) => {
                return fail(ResultCode::VALUE_EXISTS, "value exists");
            }
            'a' => have.extend(values),
            'd' if values.is_empty() && have.is_empty() => {
                return fail(ResultCode::NO_SUCH_ATTRIBUTE, "no such attribute");
            }
            'd' if values.is_empty() => have.clear(),
            'd' if values.iter().any(|v| !has(&have, v)) => {
                return fail(ResultCode::NO_SUCH_ATTRIBUTE, "no such value");
            }
            'd' => have.retain(|h| !has(&values, h)),
            _ => have = values,
        }
        obj.set(&name, have);
        Ok(())
    }

    fn apply_member_mod(
        &self,
        obj: &mut Object,
        values: Vec<String>,
        how: char,
    ) -> Result<(), DirectoryError> {
        let fail = |rc, what: &str| refused("modify", &obj.dn, rc, what);
        let mut guids = Vec::new();
        for v in &values {
            match self.resolve_member(v) {
                Some(m) => guids.push(m.guid.clone()),
                None if how == 'd' => {
                    return Err(fail(ResultCode::NO_SUCH_ATTRIBUTE, "not a member"));
                }
                None => return Err(fail(ResultCode::NO_SUCH_OBJECT, "no such member object")),
            }
        }
        match how {
            'a' if guids.iter().any(|g| obj.members.contains(g)) => {
                Err(fail(ResultCode::ALREADY_EXISTS, "already a member"))
            }
            'a' => {
                obj.members.extend(guids);
                Ok(())
            }
            'd' if guids.is_empty() => {
                obj.members.clear();
                Ok(())
            }
            'd' if guids.iter().any(|g| !obj.members.contains(g)) => {
                Err(fail(ResultCode::NO_SUCH_ATTRIBUTE, "not a member"))
            }
            'd' => {
                obj.members.retain(|g| !guids.contains(g));
                Ok(())
            }
            _ => {
                obj.members = guids;
                Ok(())
            }
        }
    }

    /// LDAP modrdn (the old RDN value deleted): 32 if the entry or the new parent is missing,
    /// 68 if the new DN is taken, 66 for an entry with children (the service never renames
    /// one; AD would allow it).
    pub(super) fn rename(
        &mut self,
        dn_str: &str,
        new_rdn: &str,
        new_parent: Option<&str>,
    ) -> Result<(), DirectoryError> {
        let op = "modrdn";
        let (k, _) = self.object(op, dn_str)?;
        let k = k.clone();
        if self
            .objects
            .keys()
            .any(|o| parent_key(o) == Some(k.as_str()))
        {
            return Err(refused(
                op,
                dn_str,
                ResultCode::NOT_ALLOWED_ON_NON_LEAF,
                "has children",
            ));
        }
        let parent = match new_parent {
            Some(p) => p.to_string(),
            None => crate::directory::apply::parent_of(&self.objects[&k].dn),
        };
        if !key(&parent).is_some_and(|p| self.objects.contains_key(&p)) {
            return Err(refused(
                op,
                dn_str,
                ResultCode::NO_SUCH_OBJECT,
                "new parent does not exist",
            ));
        }
        let Some((_, value)) = dn::parse_dn(new_rdn)
            .filter(|r| r.len() == 1)
            .and_then(|r| r.into_iter().next())
        else {
            return Err(refused(
                op,
                dn_str,
                ResultCode::INVALID_DN_SYNTAX,
                "invalid new RDN",
            ));
        };
        let new_dn = format!("{new_rdn},{parent}");
        let nk = key(&new_dn).unwrap_or_default();
        if nk != k && self.objects.contains_key(&nk) {
            return Err(refused(
                op,
                dn_str,
                ResultCode::ALREADY_EXISTS,
                "entry already exists",
            ));
        }
        let mut obj = self.objects.remove(&k).expect("checked");
        obj.dn = new_dn;
        obj.set("cn", vec![value.clone()]);
        obj.set("name", vec![value]);
        self.objects.insert(nk, obj);
        Ok(())
    }

    /// LDAP delete: 32 if missing, 66 with children. Links to it disappear.
    pub(super) fn delete(&mut self, dn_str: &str) -> Result<(), DirectoryError> {
        let (k, _) = self.object("delete", dn_str)?;
        let k = k.clone();
        if self
            .objects
            .keys()
            .any(|o| parent_key(o) == Some(k.as_str()))
        {
            return Err(refused(
                "delete",
                dn_str,
                ResultCode::NOT_ALLOWED_ON_NON_LEAF,
                "has children",
            ));
        }
        let gone = self.objects.remove(&k).expect("checked");
        for o in self.objects.values_mut() {
            o.members.retain(|g| *g != gone.guid);
        }
        Ok(())
    }
}
