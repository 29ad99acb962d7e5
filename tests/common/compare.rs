//! "AD equals the tenant": what AD should hold, computed from graph-sim's tenant with the
//! contract's mapping rules (re-derived here, never by calling the production mapping, so a
//! mapping bug cannot pass), what AD holds, read back with a real LDAP client, and a readable
//! diff of the two.
//!
//! Compared per group, keyed by its `adminDescription` anchor: CN, sAMAccountName, displayName,
//! description, groupType, `msDS-ExternalDirectoryObjectId` (where the schema has it) and the
//! member set. Members are SIDs, except members that are groups written back under the same
//! OU, which are their anchors (so a nested group compares without knowing its SID upfront).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::Value;

use super::samba::{SambaDc, attr_first, entry_sid};
use super::sim::GraphSim;

/// universal security (`0x80000008`), for security-enabled groups.
pub const UNIVERSAL_SECURITY: i64 = -2147483640;
/// universal distribution, for Microsoft 365 groups that are not security-enabled.
pub const UNIVERSAL_DISTRIBUTION: i64 = 8;

/// One written-back group, every attribute the contract fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The RDN value (unescaped).
    pub cn: String,
    /// `sAMAccountName`.
    pub sam: String,
    /// `displayName`.
    pub display_name: String,
    /// `description`, if any.
    pub description: Option<String>,
    /// `groupType`.
    pub group_type: i64,
    /// `msDS-ExternalDirectoryObjectId` (`None` where the schema lacks it).
    pub external_id: Option<String>,
    /// Member SIDs; nested groups of the same OU as their anchors.
    pub members: BTreeSet<String>,
}

/// Groups keyed by anchor (`adminDescription = Group_<objectId>`).
pub type GroupState = BTreeMap<String, Group>;

/// The anchor of a cloud group, as the contract writes it.
pub fn anchor(id: &str) -> String {
    format!("Group_{id}")
}

/// What a test knows beyond the tenant.
pub struct Expect<'a> {
    /// Cloud object id → SID of its AD object (synced users, or other non-written-back
    /// objects present in AD). Members not listed (cloud-only) are expected to be skipped.
    pub sid_of: &'a BTreeMap<String, String>,
    /// Group id → its displayName when AD created it: `sAMAccountName` is set at creation
    /// and kept on rename. A group not listed is expected to carry its current name's.
    pub created_as: BTreeMap<String, String>,
}

impl<'a> Expect<'a> {
    /// Only member SIDs; every group's sAMAccountName from its current name.
    pub fn members(sid_of: &'a BTreeMap<String, String>) -> Expect<'a> {
        Expect {
            sid_of,
            created_as: BTreeMap::new(),
        }
    }

    /// Adds the creation names of groups renamed since.
    pub fn created_as<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = (S, S)>,
        S: Into<String>,
    {
        self.created_as
            .extend(names.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }
}

/// The contract's CN: `<displayName, trimmed, ≤ 51 chars>_<last 12 chars of objectId>`
/// (an empty name becomes `Group`, the service's documented fallback).
pub fn expected_cn(display_name: &str, id: &str) -> String {
    let name: String = display_name.trim().chars().take(51).collect();
    let name = match name.trim_end() {
        "" => "Group",
        n => n,
    };
    let cn: String = format!("{name}_{}", id_suffix(id))
        .chars()
        .take(64)
        .collect();
    cn.trim().to_string()
}

/// The service's sAMAccountName rule (≤ 20 chars, deterministic, unique through the id
/// suffix): up to 7 characters of the name (letters, digits, `-`, `_`; space and `.` become
/// `-`; others dropped; no leading or trailing `-`; `grp` if nothing is left), `_`, then the
/// id's last 12 characters.
pub fn expected_sam(display_name: &str, id: &str) -> String {
    let prefix: String = display_name
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => Some(c),
            ' ' | '.' => Some('-'),
            _ => None,
        })
        .take(7)
        .collect();
    let prefix = match prefix.trim_matches('-') {
        "" => "grp",
        p => p,
    };
    format!("{prefix}_{}", id_suffix(id))
}

/// The last 12 characters of a GUID-shaped object id (hex digits only, so the sAM rule keeps
/// them all).
fn id_suffix(id: &str) -> &str {
    let s = &id[id.len() - 12..];
    assert!(
        s.chars().all(|c| c.is_ascii_hexdigit()),
        "not a GUID-shaped id: {id}"
    );
    s
}

/// Whether the contract writes this cloud group back: not synced from AD, and
/// security-enabled or Microsoft 365.
fn in_scope(g: &Value) -> bool {
    g["onPremisesSyncEnabled"] != true && (g["securityEnabled"] == true || is_unified(g))
}

fn is_unified(g: &Value) -> bool {
    g["groupTypes"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "Unified"))
}

/// What AD should hold under the test's OU (default mapping: one target OU, default CN
/// template), from graph-sim's current tenant (`/admin/state`).
pub async fn desired_state(sim: &GraphSim, dc: &SambaDc, expect: &Expect<'_>) -> GroupState {
    let state = sim.state().await;
    let groups: Vec<&Value> = state["groups"]
        .as_array()
        .expect("/admin/state lists groups")
        .iter()
        .filter(|g| in_scope(g))
        .collect();
    let written: BTreeSet<&str> = groups.iter().map(|g| g["id"].as_str().unwrap()).collect();
    groups
        .iter()
        .map(|g| {
            let id = g["id"].as_str().unwrap();
            let name = g["displayName"].as_str().unwrap_or("").to_string();
            let created = expect.created_as.get(id).unwrap_or(&name);
            let members = g["members"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| {
                    let mid = m["id"].as_str().unwrap();
                    let is_group = m["@odata.type"]
                        .as_str()
                        .is_some_and(|t| t.ends_with("group"));
                    match expect.sid_of.get(mid) {
                        Some(sid) => Some(sid.clone()),
                        None if is_group && written.contains(mid) => Some(anchor(mid)),
                        None => None,
                    }
                })
                .collect();
            let want = Group {
                cn: expected_cn(&name, id),
                sam: expected_sam(created, id),
                display_name: if name.trim().is_empty() {
                    id.to_string()
                } else {
                    name.chars().take(256).collect()
                },
                description: g["description"]
                    .as_str()
                    .filter(|d| !d.trim().is_empty())
                    .map(|d| d.chars().take(448).collect()),
                group_type: if g["securityEnabled"] == true || !is_unified(g) {
                    UNIVERSAL_SECURITY
                } else {
                    UNIVERSAL_DISTRIBUTION
                },
                external_id: dc.schema_patched.then(|| anchor(id)),
                members,
            };
            (anchor(id), want)
        })
        .collect()
}

/// What AD holds under `ou` (subtree), read back with a real LDAP client. A group without an
/// anchor, or a second one with the same anchor, gets a key naming its DN, so it shows up in
/// the diff instead of hiding.
pub async fn actual_state(dc: &SambaDc, ou: &str) -> GroupState {
    // A running service may rename or delete a group between the search and the member read:
    // then the snapshot is in flux, and is taken again.
    for _ in 0..50 {
        if let Some(state) = snapshot(dc, ou).await {
            return state;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("AD under {ou} kept changing during 50 snapshots");
}

/// One snapshot of [`actual_state`], or `None` if a group vanished while it was read.
async fn snapshot(dc: &SambaDc, ou: &str) -> Option<GroupState> {
    let entries = dc.groups_in(ou).await;
    let anchor_of_sid: BTreeMap<String, String> = entries
        .iter()
        .filter_map(|e| {
            Some((
                entry_sid(e)?,
                attr_first(e, "adminDescription")?.to_string(),
            ))
        })
        .collect();
    let mut out = BTreeMap::new();
    for e in &entries {
        let text = |a: &str| attr_first(e, a).map(str::to_string);
        let members = dc
            .try_member_sids(&e.dn)
            .await?
            .into_iter()
            .map(|sid| anchor_of_sid.get(&sid).cloned().unwrap_or(sid))
            .collect();
        let group = Group {
            cn: text("cn").unwrap_or_default(),
            sam: text("sAMAccountName").unwrap_or_default(),
            display_name: text("displayName").unwrap_or_default(),
            description: text("description"),
            group_type: text("groupType").map_or(0, |t| t.parse().unwrap()),
            external_id: text("msDS-ExternalDirectoryObjectId"),
            members,
        };
        let key = match text("adminDescription") {
            Some(a) if !out.contains_key(&a) => a,
            Some(a) => format!("{a} (duplicate: {})", e.dn),
            None => format!("(no adminDescription: {})", e.dn),
        };
        out.insert(key, group);
    }
    Some(out)
}

/// Line-per-difference report between `want` and `have` (empty when equal).
pub fn diff(want: &GroupState, have: &GroupState) -> String {
    let mut out = String::new();
    for (k, w) in want {
        let Some(h) = have.get(k) else {
            let _ = writeln!(out, "- {k}: missing from AD (want CN={:?})", w.cn);
            continue;
        };
        let mut field = |name: &str, w: String, h: String| {
            if w != h {
                let _ = writeln!(out, "~ {k} {name}: want {w}, AD has {h}");
            }
        };
        field("cn", format!("{:?}", w.cn), format!("{:?}", h.cn));
        field(
            "sAMAccountName",
            format!("{:?}", w.sam),
            format!("{:?}", h.sam),
        );
        field(
            "displayName",
            format!("{:?}", w.display_name),
            format!("{:?}", h.display_name),
        );
        field(
            "description",
            format!("{:?}", w.description),
            format!("{:?}", h.description),
        );
        field(
            "groupType",
            w.group_type.to_string(),
            h.group_type.to_string(),
        );
        field(
            "msDS-ExternalDirectoryObjectId",
            format!("{:?}", w.external_id),
            format!("{:?}", h.external_id),
        );
        let missing: Vec<_> = w.members.difference(&h.members).collect();
        let extra: Vec<_> = h.members.difference(&w.members).collect();
        if !missing.is_empty() || !extra.is_empty() {
            let _ = writeln!(
                out,
                "~ {k} members: missing {missing:?}, unexpected {extra:?}"
            );
        }
    }
    for (k, h) in have {
        if !want.contains_key(k) {
            let _ = writeln!(out, "+ {k}: in AD but not wanted (CN={:?})", h.cn);
        }
    }
    out
}

/// Asserts `have == want`, printing the differences (and `context`) otherwise.
pub fn assert_same(want: &GroupState, have: &GroupState, context: &str) {
    let d = diff(want, have);
    assert!(
        d.is_empty() && want == have,
        "{context}: AD differs ({} group(s) wanted, {} in AD)\n{d}",
        want.len(),
        have.len()
    );
}

/// Asserts AD under `ou` equals what the tenant of `sim` maps to, and that it is not trivially
/// empty (`at_least` groups).
pub async fn assert_ad_equals_tenant(
    sim: &GraphSim,
    dc: &SambaDc,
    ou: &str,
    expect: &Expect<'_>,
    at_least: usize,
    context: &str,
) -> GroupState {
    let want = desired_state(sim, dc, expect).await;
    let have = actual_state(dc, ou).await;
    assert!(
        want.len() >= at_least,
        "{context}: only {} group(s) in scope; the comparison would prove little",
        want.len()
    );
    assert_same(&want, &have, context);
    have
}

/// Waits (up to `secs`) until AD under `ou` equals what the tenant maps to, for tests where
/// the service keeps running; on timeout fails with the diff.
pub async fn wait_ad_equals_tenant(
    sim: &GraphSim,
    dc: &SambaDc,
    ou: &str,
    expect: &Expect<'_>,
    at_least: usize,
    secs: u64,
    context: &str,
) -> GroupState {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let want = desired_state(sim, dc, expect).await;
        let have = actual_state(dc, ou).await;
        if want == have || std::time::Instant::now() >= deadline {
            return assert_ad_equals_tenant(sim, dc, ou, expect, at_least, context).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}
