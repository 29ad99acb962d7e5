//! Tenant state: directory objects as versioned property bags with membership and lifecycle
//! history, so that any delta token (a version number) can be answered exactly.
//!
//! Tenant file shape:
//! ```json
//! {"tenant_id": "contoso.onmicrosoft.com",
//!  "clients": [{"client_id": "…", "client_secret": "…"},
//!              {"client_id": "…", "certificate_thumbprint_sha256": "<base64url>"},
//!              {"client_id": "…", "certificate_pem": "-----BEGIN CERTIFICATE-----…"}],
//!  "users":  [{"id": "…", "displayName": "Ann", "onPremisesSecurityIdentifier": "S-1-5-…"}],
//!  "groups": [{"id": "…", "displayName": "Eng", "members": [{"@odata.type": "#microsoft.graph.user", "id": "…"}]},
//!             {"id": "…", "displayName": "Synced", "onPremisesSyncEnabled": true,
//!              "onPremisesSecurityIdentifier": "S-1-5-21-…"}]}
//! ```
//! Everything but `id` (and `members` for groups) is an opaque property passed through as is
//! (so groups synced from AD carry `onPremisesSecurityIdentifier` like users do); a property
//! absent from the file has never been set. The whole file is loaded as tenant version 1.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::SimError;

/// Member object types Graph allows in `members@delta`, without the `#microsoft.graph.` prefix.
pub const MEMBER_TYPES: [&str; 5] = ["user", "group", "device", "orgContact", "servicePrincipal"];

/// Which collection an object lives in; users and groups are versioned the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `/groups`
    Group,
    /// `/users`
    User,
}

impl Kind {
    /// The collection name used in URLs and `@odata.context`.
    pub fn collection(self) -> &'static str {
        match self {
            Kind::Group => "groups",
            Kind::User => "users",
        }
    }

    /// The `@odata.type` an object of this kind has when it appears as a group member.
    pub fn odata_type(self) -> &'static str {
        match self {
            Kind::Group => "#microsoft.graph.group",
            Kind::User => "#microsoft.graph.user",
        }
    }
}

/// A group member's identity: Graph keys members by (`@odata.type`, `id`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberKey {
    /// Full type, e.g. `#microsoft.graph.user`.
    pub odata_type: String,
    /// Object id of the member.
    pub id: String,
}

impl MemberKey {
    /// Parses `{"@odata.type": "#microsoft.graph.user" | "microsoft.graph.user" | "user", "id": …}`.
    pub fn parse(v: &Value) -> Result<MemberKey, SimError> {
        let bad = |why: &str| SimError::BadRequest(format!("member {v}: {why}"));
        let obj = v.as_object().ok_or_else(|| bad("not an object"))?;
        let id = obj
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("missing string \"id\""))?;
        let ty = obj
            .get("@odata.type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("missing string \"@odata.type\""))?;
        let short = ty
            .trim_start_matches('#')
            .trim_start_matches("microsoft.graph.");
        let short = MEMBER_TYPES
            .iter()
            .find(|t| t.eq_ignore_ascii_case(short))
            .ok_or_else(|| bad("unsupported @odata.type"))?;
        Ok(MemberKey {
            odata_type: format!("#microsoft.graph.{short}"),
            id: id.to_string(),
        })
    }

    /// Parses a JSON array of members.
    pub fn parse_list(v: &Value) -> Result<Vec<MemberKey>, SimError> {
        v.as_array()
            .ok_or_else(|| SimError::BadRequest("members must be an array".into()))?
            .iter()
            .map(MemberKey::parse)
            .collect()
    }

    /// The member as it appears in `members@delta` (added form).
    pub fn to_json(&self) -> Value {
        serde_json::json!({"@odata.type": self.odata_type, "id": self.id})
    }
}

/// Lifecycle state of an object at some version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    /// Exists and is visible.
    Active,
    /// Deleted but restorable (Graph's deleted-items container).
    SoftDeleted,
    /// Never existed, hard-deleted or purged.
    Gone,
}

/// One property value and the version that last changed it.
#[derive(Clone, Debug)]
pub struct Prop {
    /// Current value; `null` means cleared (still "set").
    pub value: Value,
    /// Tenant version of the last change.
    pub version: u64,
}

/// A user or group with the history needed to answer any delta token.
#[derive(Clone, Debug, Default)]
pub struct DirObject {
    /// Properties that have been set, by name.
    pub props: BTreeMap<String, Prop>,
    /// Per member: (version, present) transitions, oldest first.
    pub members: BTreeMap<MemberKey, Vec<(u64, bool)>>,
    /// Lifecycle transitions (version, state), oldest first; empty = never existed.
    pub life: Vec<(u64, Life)>,
    /// Wall-clock time of the current soft delete (`deletedDateTime` in deletedItems); `None`
    /// unless the object is soft-deleted now.
    pub deleted_at: Option<std::time::SystemTime>,
    /// `onPremisesSyncBehavior.isCloudManaged` (groups): source of authority converted.
    pub cloud_managed: bool,
}

impl DirObject {
    /// Lifecycle state now.
    pub fn life_now(&self) -> Life {
        self.life.last().map_or(Life::Gone, |(_, l)| *l)
    }

    /// Lifecycle state as of version `v`.
    pub fn life_at(&self, v: u64) -> Life {
        state_at(&self.life, v).unwrap_or(Life::Gone)
    }

    /// Whether the object was created, deleted or restored after version `v`.
    pub fn life_changed_after(&self, v: u64) -> bool {
        self.life.last().is_some_and(|(ver, _)| *ver > v)
    }

    /// Current direct members.
    pub fn current_members(&self) -> impl Iterator<Item = &MemberKey> {
        self.members
            .iter()
            .filter(|(_, h)| h.last().is_some_and(|(_, p)| *p))
            .map(|(k, _)| k)
    }

    fn is_member(&self, key: &MemberKey) -> bool {
        self.members
            .get(key)
            .and_then(|h| h.last())
            .is_some_and(|(_, p)| *p)
    }

    fn set_member(&mut self, key: &MemberKey, present: bool, v: u64) {
        if self.is_member(key) != present {
            self.members
                .entry(key.clone())
                .or_default()
                .push((v, present));
        }
    }

    /// Current properties as a JSON object (without `id`).
    pub fn props_json(&self) -> Map<String, Value> {
        self.props
            .iter()
            .map(|(k, p)| (k.clone(), p.value.clone()))
            .collect()
    }
}

/// The value of a transition history as of version `v` (None before the first transition).
pub fn state_at<T: Copy>(history: &[(u64, T)], v: u64) -> Option<T> {
    history
        .iter()
        .take_while(|(ver, _)| *ver <= v)
        .last()
        .map(|(_, s)| *s)
}

/// An app registration allowed to obtain tokens.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Client {
    /// Application (client) id.
    pub client_id: String,
    /// Shared secret, if the app uses one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// base64url SHA-1 certificate thumbprint accepted as the assertion's `x5t`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_thumbprint_sha1: Option<String>,
    /// base64url SHA-256 certificate thumbprint accepted as the assertion's `x5t#S256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_thumbprint_sha256: Option<String>,
    /// The app's certificate (PEM). When given, both thumbprints are derived from it and
    /// assertion signatures are verified against its public key (RS256 and PS256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_pem: Option<String>,
}

impl Client {
    /// The DER of [`Client::certificate_pem`], if any (errors name the client).
    pub fn certificate_der(&self) -> Result<Option<Vec<u8>>, SimError> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let Some(pem) = &self.certificate_pem else {
            return Ok(None);
        };
        CertificateDer::from_pem_slice(pem.as_bytes())
            .map(|c| Some(c.as_ref().to_vec()))
            .map_err(|e| {
                SimError::TenantFile(format!("client {}: certificate_pem: {e}", self.client_id))
            })
    }

    /// Fills the thumbprints from the certificate, when one is given.
    fn derive_thumbprints(&mut self) -> Result<(), SimError> {
        if let Some(der) = self.certificate_der()? {
            let b64 = |alg| {
                super::token_endpoint::b64url_encode(ring::digest::digest(alg, &der).as_ref())
            };
            self.certificate_thumbprint_sha1 = Some(b64(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY));
            self.certificate_thumbprint_sha256 = Some(b64(&ring::digest::SHA256));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct TenantFile {
    tenant_id: String,
    #[serde(default)]
    clients: Vec<Client>,
    #[serde(default)]
    users: Vec<Map<String, Value>>,
    #[serde(default)]
    groups: Vec<Map<String, Value>>,
}

/// The simulated directory: a global version counter plus every object ever seen.
#[derive(Clone, Debug)]
pub struct Tenant {
    /// Tenant name or id accepted in the token URL.
    pub tenant_id: String,
    /// Registered apps.
    pub clients: Vec<Client>,
    /// Bumped once per mutation; delta tokens are versions.
    pub version: u64,
    /// Groups by id, including tombstones.
    pub groups: BTreeMap<String, DirObject>,
    /// Users by id, including tombstones.
    pub users: BTreeMap<String, DirObject>,
}

impl Tenant {
    /// Parses a tenant file; all objects are created at version 1.
    pub fn from_json(json: &str) -> Result<Tenant, SimError> {
        let file: TenantFile =
            serde_json::from_str(json).map_err(|e| SimError::TenantFile(e.to_string()))?;
        let mut clients = file.clients;
        for c in &mut clients {
            c.derive_thumbprints()?;
        }
        let mut t = Tenant {
            tenant_id: file.tenant_id,
            clients,
            version: 0,
            groups: BTreeMap::new(),
            users: BTreeMap::new(),
        };
        let v = t.bump();
        for (kind, list) in [(Kind::User, file.users), (Kind::Group, file.groups)] {
            for mut obj in list {
                let id = match obj.remove("id") {
                    Some(Value::String(id)) if !id.is_empty() => id,
                    _ => return Err(SimError::TenantFile(format!("a {kind:?} without id"))),
                };
                if t.objects(kind).contains_key(&id) {
                    return Err(SimError::TenantFile(format!("duplicate id {id}")));
                }
                t.put(kind, &id, obj, v)
                    .map_err(|e| SimError::TenantFile(format!("{id}: {e}")))?;
            }
        }
        Ok(t)
    }

    /// Starts a new mutation and returns its version.
    pub fn bump(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// The collection for `kind`.
    pub fn objects(&self, kind: Kind) -> &BTreeMap<String, DirObject> {
        match kind {
            Kind::Group => &self.groups,
            Kind::User => &self.users,
        }
    }

    fn objects_mut(&mut self, kind: Kind) -> &mut BTreeMap<String, DirObject> {
        match kind {
            Kind::Group => &mut self.groups,
            Kind::User => &mut self.users,
        }
    }

    /// Merges `body` into the object (creating it if missing or hard-deleted) at version `v`.
    /// `null` clears a property; `members` (groups only) replaces the member list.
    pub fn put(
        &mut self,
        kind: Kind,
        id: &str,
        mut body: Map<String, Value>,
        v: u64,
    ) -> Result<(), SimError> {
        let members = match body.remove("members") {
            Some(m) if kind == Kind::Group => Some(MemberKey::parse_list(&m)?),
            Some(_) => return Err(SimError::BadRequest("users have no members".into())),
            None => None,
        };
        body.remove("@odata.type");
        if let Some(other) = body.remove("id")
            && other.as_str() != Some(id)
        {
            return Err(SimError::BadRequest(format!(
                "id {other} does not match {id}"
            )));
        }
        if let Some(k) = body.keys().find(|k| k.contains('@')) {
            return Err(SimError::BadRequest(format!("property {k} cannot be set")));
        }
        let obj = self.objects_mut(kind).entry(id.to_string()).or_default();
        match obj.life_now() {
            Life::SoftDeleted => {
                return Err(SimError::Conflict(format!(
                    "{id} is soft-deleted; restore it first"
                )));
            }
            Life::Gone => obj.life.push((v, Life::Active)),
            Life::Active => {}
        }
        for (k, value) in body {
            if obj.props.get(&k).is_none_or(|p| p.value != value) {
                obj.props.insert(k, Prop { value, version: v });
            }
        }
        if let Some(list) = members {
            let wanted: BTreeSet<MemberKey> = list.into_iter().collect();
            let current: Vec<MemberKey> = obj.current_members().cloned().collect();
            for k in current.iter().filter(|k| !wanted.contains(*k)) {
                obj.set_member(k, false, v);
            }
            for k in &wanted {
                obj.set_member(k, true, v);
            }
        }
        Ok(())
    }

    /// Adds then removes direct members of an active group at version `v`.
    pub fn change_members(
        &mut self,
        id: &str,
        add: &[MemberKey],
        remove: &[MemberKey],
        v: u64,
    ) -> Result<(), SimError> {
        let obj = self.active_mut(Kind::Group, id)?;
        for k in add {
            obj.set_member(k, true, v);
        }
        for k in remove {
            obj.set_member(k, false, v);
        }
        Ok(())
    }

    pub(crate) fn active_mut(&mut self, kind: Kind, id: &str) -> Result<&mut DirObject, SimError> {
        match self.objects_mut(kind).get_mut(id) {
            Some(o) if o.life_now() == Life::Active => Ok(o),
            Some(o) if o.life_now() == Life::SoftDeleted => {
                Err(SimError::Conflict(format!("{id} is soft-deleted")))
            }
            _ => Err(SimError::NotFound(format!("{} {id}", kind.collection()))),
        }
    }

    /// Soft-deletes an active object, or (hard) permanently deletes an active or soft-deleted one.
    /// A hard delete clears the object and removes it from every group's membership.
    pub fn delete(&mut self, kind: Kind, id: &str, hard: bool, v: u64) -> Result<(), SimError> {
        let not_found = || SimError::NotFound(format!("{} {id}", kind.collection()));
        let obj = self.objects_mut(kind).get_mut(id).ok_or_else(not_found)?;
        match (obj.life_now(), hard) {
            (Life::Active, false) => {
                obj.life.push((v, Life::SoftDeleted));
                obj.deleted_at = Some(std::time::SystemTime::now());
                return Ok(());
            }
            (Life::Active | Life::SoftDeleted, true) => {}
            _ => return Err(not_found()),
        }
        obj.life.push((v, Life::Gone));
        obj.deleted_at = None;
        obj.props.clear();
        let current: Vec<MemberKey> = obj.current_members().cloned().collect();
        for k in &current {
            obj.set_member(k, false, v);
        }
        let as_member = MemberKey {
            odata_type: kind.odata_type().to_string(),
            id: id.to_string(),
        };
        for g in self.groups.values_mut() {
            g.set_member(&as_member, false, v);
        }
        Ok(())
    }

    /// Restores a soft-deleted object at version `v`.
    pub fn restore(&mut self, kind: Kind, id: &str, v: u64) -> Result<(), SimError> {
        match self.objects_mut(kind).get_mut(id) {
            Some(o) if o.life_now() == Life::SoftDeleted => {
                o.life.push((v, Life::Active));
                o.deleted_at = None;
                Ok(())
            }
            _ => Err(SimError::NotFound(format!(
                "soft-deleted {} {id}",
                kind.collection()
            ))),
        }
    }

    /// The tenant in tenant-file shape (active objects) plus the ids of soft-deleted ones.
    pub fn to_state_json(&self) -> Value {
        let list = |kind: Kind| -> Vec<Value> {
            self.objects(kind)
                .iter()
                .filter(|(_, o)| o.life_now() == Life::Active)
                .map(|(id, o)| {
                    let mut m = Map::new();
                    m.insert("id".into(), Value::String(id.clone()));
                    m.extend(o.props_json());
                    if kind == Kind::Group {
                        let members = o.current_members().map(MemberKey::to_json).collect();
                        m.insert("members".into(), Value::Array(members));
                    }
                    Value::Object(m)
                })
                .collect()
        };
        let deleted = |kind: Kind| -> Vec<&String> {
            self.objects(kind)
                .iter()
                .filter(|(_, o)| o.life_now() == Life::SoftDeleted)
                .map(|(id, _)| id)
                .collect()
        };
        serde_json::json!({
            "tenant_id": self.tenant_id,
            "version": self.version,
            "clients": self.clients,
            "users": list(Kind::User),
            "groups": list(Kind::Group),
            "deleted_users": deleted(Kind::User),
            "deleted_groups": deleted(Kind::Group),
        })
    }
}

#[cfg(test)]
mod tests;
