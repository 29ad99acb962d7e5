//! The shapes of Microsoft Graph delta pages, parsed from raw JSON.
//!
//! Parsing is strict about structure (a page must be an object with a `value` array and exactly
//! one of `@odata.nextLink` / `@odata.deltaLink`) and lenient about content (unknown properties
//! are ignored, odd ids are kept as strings). Properties are tri-state: absent (unchanged, or never
//! set), `null` (cleared), or a value. Typed SDK models drop `members@delta`; we parse raw JSON.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{
    GroupPatch, MemberKind, MemberRef, Patch, Removed, UserPatch, WritebackSetting,
};

/// Why a page was rejected. A rejected page never advances the cursor.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The body is not JSON.
    #[error("page is not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The JSON does not have the shape of a delta page.
    #[error("malformed delta page: {0}")]
    Shape(String),
    /// The page carries more objects than `graph.max_page_items` allows (counted before the
    /// page is parsed).
    #[error("delta page carries {items} objects, more than graph.max_page_items ({limit})")]
    TooManyItems {
        /// Objects in the page's `value`.
        items: usize,
        /// The configured limit.
        limit: usize,
    },
}

/// Counts the objects in a page's `value` without building them (each is skipped as it is
/// read: memory stays constant) and refuses a page with more than `limit`
/// ([`PageError::TooManyItems`]). A body that does not have a `value` array passes: the parser
/// rejects it with its own, more precise error.
pub fn check_item_count(body: &[u8], limit: usize) -> Result<(), PageError> {
    match serde_json::from_slice::<ItemProbe>(body) {
        Ok(ItemProbe {
            value: Count(items),
        }) if items > limit => Err(PageError::TooManyItems { items, limit }),
        _ => Ok(()),
    }
}

/// The `value` of a page, counted (every other key ignored).
#[derive(Deserialize)]
struct ItemProbe {
    value: Count,
}

/// The length of a JSON array whose elements are skipped unread.
struct Count(usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        struct Counter;
        impl<'de> serde::de::Visitor<'de> for Counter {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Count, A::Error> {
                let mut n = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
        }
        d.deserialize_seq(Counter)
    }
}

/// One page of a delta round.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaPage<T> {
    /// The objects on this page.
    pub items: Vec<T>,
    /// Where the round goes on, or where the next round starts.
    pub link: NextStep,
}

/// The link a page ends with: exactly one per page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NextStep {
    /// More pages in this round.
    Next(String),
    /// End of round; the start of the next one.
    Delta(String),
}

/// One entry of `members@delta`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDelta {
    /// Who.
    pub member: MemberRef,
    /// True if the membership ended (`@removed`).
    pub removed: bool,
}

/// The `$select` list of group rounds.
pub const GROUP_SELECT: &str = "displayName,description,groupTypes,securityEnabled,mailEnabled,mailNickname,mail,proxyAddresses,onPremisesSyncEnabled,onPremisesSecurityIdentifier,members";

/// The `$select` list of group rounds on the beta endpoint, under
/// `graph.writeback_configuration = "honour"`: [`GROUP_SELECT`] and `writebackConfiguration`.
pub const GROUP_SELECT_BETA: &str = "displayName,description,groupTypes,securityEnabled,mailEnabled,mailNickname,mail,proxyAddresses,onPremisesSyncEnabled,onPremisesSecurityIdentifier,writebackConfiguration,members";

/// The `$select` list of user rounds.
pub const USER_SELECT: &str = "displayName,userPrincipalName,onPremisesSecurityIdentifier,onPremisesSamAccountName,onPremisesDomainName,onPremisesDistinguishedName,onPremisesSyncEnabled";

/// One group item of a delta page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDelta {
    /// Object id.
    pub id: String,
    /// Set when the group was removed; properties are then empty.
    pub removed: Option<Removed>,
    /// Changed properties.
    pub patch: GroupPatch,
    /// Member changes (initial round: members).
    pub members: Vec<MemberDelta>,
}

/// One user item of a delta page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDelta {
    /// Object id.
    pub id: String,
    /// Set when the user was removed.
    pub removed: Option<Removed>,
    /// Changed properties.
    pub patch: UserPatch,
}

/// The member kind an `@odata.type` names.
fn member_kind(t: Option<&str>) -> MemberKind {
    match t.map(|t| {
        t.trim_start_matches('#')
            .trim_start_matches("microsoft.graph.")
    }) {
        Some("user") => MemberKind::User,
        Some("group") => MemberKind::Group,
        _ => MemberKind::Other,
    }
}

/// Parses a groups delta page.
pub fn parse_group_page(body: &[u8]) -> Result<DeltaPage<GroupDelta>, PageError> {
    parse_page(body, parse_group)
}

/// Parses one group object (`GET /groups/{id}`), as a delta item without members.
pub fn parse_group_object(body: &[u8]) -> Result<GroupDelta, PageError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| shape(&e.to_string()))?;
    let o = v
        .as_object()
        .ok_or_else(|| shape("a group must be a JSON object"))?;
    parse_group(o).map_err(|e| shape(&e))
}

/// Parses a users delta page.
pub fn parse_user_page(body: &[u8]) -> Result<DeltaPage<UserDelta>, PageError> {
    parse_page(body, parse_user)
}

fn parse_page<T>(
    body: &[u8],
    item: fn(&Map<String, Value>) -> Result<T, String>,
) -> Result<DeltaPage<T>, PageError> {
    let root: Value = serde_json::from_slice(body).map_err(PageError::NotJson)?;
    let obj = root
        .as_object()
        .ok_or_else(|| shape("page is not a JSON object"))?;
    let values = obj
        .get("value")
        .and_then(Value::as_array)
        .ok_or_else(|| shape("`value` is missing or not an array"))?;
    let link = match (
        link_of(obj, "@odata.nextLink")?,
        link_of(obj, "@odata.deltaLink")?,
    ) {
        (Some(n), None) => NextStep::Next(n),
        (None, Some(d)) => NextStep::Delta(d),
        (Some(_), Some(_)) => return Err(shape("page has both a nextLink and a deltaLink")),
        (None, None) => return Err(shape("page has neither a nextLink nor a deltaLink")),
    };
    let items = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let o = v
                .as_object()
                .ok_or_else(|| format!("value[{i}] is not an object"))?;
            item(o).map_err(|e| format!("value[{i}]: {e}"))
        })
        .collect::<Result<Vec<T>, String>>()
        .map_err(PageError::Shape)?;
    Ok(DeltaPage { items, link })
}

fn shape(msg: &str) -> PageError {
    PageError::Shape(msg.to_string())
}

fn link_of(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, PageError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if url::Url::parse(s).is_ok() => Ok(Some(s.clone())),
        Some(_) => Err(PageError::Shape(format!("`{key}` is not an absolute URL"))),
    }
}

fn id_of(o: &Map<String, Value>) -> Result<String, String> {
    match o.get("id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Ok(s.clone()),
        _ => Err("`id` is missing or not a string".into()),
    }
}

fn removed_of(o: &Map<String, Value>) -> Result<Option<Removed>, String> {
    match o.get("@removed") {
        None | Some(Value::Null) => Ok(None),
        Some(r) => match r.get("reason").and_then(Value::as_str) {
            Some("deleted") => Ok(Some(Removed::Deleted)),
            // "changed" and any reason Graph may add later: the object left our view but may return.
            _ => Ok(Some(Removed::Changed)),
        },
    }
}

fn patch<T>(
    o: &Map<String, Value>,
    key: &str,
    conv: fn(&Value) -> Option<T>,
) -> Result<Patch<T>, String> {
    match o.get(key) {
        None => Ok(Patch::Absent),
        Some(Value::Null) => Ok(Patch::Null),
        Some(v) => conv(v)
            .map(Patch::Value)
            .ok_or_else(|| format!("`{key}` has the wrong type")),
    }
}

fn string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// `writebackConfiguration`: an object whose two properties may each be null or absent.
fn writeback(v: &Value) -> Option<WritebackSetting> {
    let o = v.as_object()?;
    let is_enabled = match o.get("isEnabled") {
        None | Some(Value::Null) => None,
        Some(b) => Some(b.as_bool()?),
    };
    let on_premises_group_type = match o.get("onPremisesGroupType") {
        None | Some(Value::Null) => None,
        Some(t) => Some(t.as_str()?.to_string()),
    };
    Some(WritebackSetting {
        is_enabled,
        on_premises_group_type,
    })
}

fn parse_group(o: &Map<String, Value>) -> Result<GroupDelta, String> {
    let id = id_of(o)?;
    let removed = removed_of(o)?;
    let patch = GroupPatch {
        display_name: patch(o, "displayName", string)?,
        description: patch(o, "description", string)?,
        group_types: patch(o, "groupTypes", strings)?,
        security_enabled: patch(o, "securityEnabled", Value::as_bool)?,
        mail_enabled: patch(o, "mailEnabled", Value::as_bool)?,
        mail_nickname: patch(o, "mailNickname", string)?,
        mail: patch(o, "mail", string)?,
        proxy_addresses: patch(o, "proxyAddresses", strings)?,
        on_premises_sync_enabled: patch(o, "onPremisesSyncEnabled", Value::as_bool)?,
        on_premises_security_identifier: patch(o, "onPremisesSecurityIdentifier", string)?,
        writeback: patch(o, "writebackConfiguration", writeback)?,
    };
    let members = match o.get("members@delta") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, m)| parse_member(m).map_err(|e| format!("members@delta[{i}]: {e}")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("`members@delta` is not an array".into()),
    };
    Ok(GroupDelta {
        id,
        removed,
        patch,
        members,
    })
}

fn parse_member(v: &Value) -> Result<MemberDelta, String> {
    let o = v.as_object().ok_or("not an object")?;
    let id = id_of(o)?;
    let kind = member_kind(o.get("@odata.type").and_then(Value::as_str));
    Ok(MemberDelta {
        member: MemberRef { kind, id },
        removed: o.get("@removed").is_some_and(|r| !r.is_null()),
    })
}

fn parse_user(o: &Map<String, Value>) -> Result<UserDelta, String> {
    Ok(UserDelta {
        id: id_of(o)?,
        removed: removed_of(o)?,
        patch: UserPatch {
            sid: patch(o, "onPremisesSecurityIdentifier", string)?,
            sam_account_name: patch(o, "onPremisesSamAccountName", string)?,
            domain: patch(o, "onPremisesDomainName", string)?,
            distinguished_name: patch(o, "onPremisesDistinguishedName", string)?,
            user_principal_name: patch(o, "userPrincipalName", string)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_page_with_members_and_group_without_members() {
        let body = br##"{"@odata.context":"x","@odata.nextLink":"https://graph.microsoft.com/v1.0/groups/delta?$skiptoken=abc",
          "value":[{"id":"g1","displayName":"Sales","description":null,"groupTypes":[],"securityEnabled":true,
            "members@delta":[{"@odata.type":"#microsoft.graph.user","id":"u1"},{"@odata.type":"#microsoft.graph.user","id":"u2"}]},
           {"id":"g2","displayName":"sg-HR"}]}"##;
        let p = parse_group_page(body).unwrap();
        assert!(matches!(p.link, NextStep::Next(_)));
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.items[0].members.len(), 2);
        assert_eq!(p.items[0].patch.description, Patch::Null);
        assert_eq!(p.items[1].patch.description, Patch::Absent);
        assert!(p.items[1].members.is_empty());
    }

    #[test]
    fn group_sid_is_tri_state() {
        let body = br#"{"@odata.deltaLink":"https://g/groups/delta?$deltatoken=1","value":[
            {"id":"g1","onPremisesSyncEnabled":true,"onPremisesSecurityIdentifier":"S-1-5-21-1-2-3-1106"},
            {"id":"g2","onPremisesSecurityIdentifier":null},{"id":"g3"}]}"#;
        let p = parse_group_page(body).unwrap();
        let sid = |i: usize| p.items[i].patch.on_premises_security_identifier.clone();
        assert_eq!(sid(0), Patch::Value("S-1-5-21-1-2-3-1106".into()));
        assert_eq!(sid(1), Patch::Null);
        assert_eq!(sid(2), Patch::Absent);
        let bad = br#"{"@odata.deltaLink":"https://g/d","value":[{"id":"g","onPremisesSecurityIdentifier":5}]}"#;
        assert!(parse_group_page(bad).is_err());
        assert!(
            GROUP_SELECT
                .split(',')
                .any(|f| f == "onPremisesSecurityIdentifier")
        );
    }

    #[test]
    fn mail_and_every_proxy_address_are_read_and_folded() {
        let body = br#"{"@odata.deltaLink":"https://g/groups/delta?$deltatoken=1","value":[
            {"id":"g1","mail":"sales@contoso.com","proxyAddresses":["SMTP:sales@contoso.com","smtp:s@contoso.onmicrosoft.com"]},
            {"id":"g2","mail":null,"proxyAddresses":[]},{"id":"g3"}]}"#;
        let p = parse_group_page(body).unwrap();
        let mut props = crate::model::GroupProps::default();
        props.apply(&p.items[0].patch);
        assert_eq!(props.mail.as_deref(), Some("sales@contoso.com"));
        assert_eq!(
            props.proxy_addresses,
            ["SMTP:sales@contoso.com", "smtp:s@contoso.onmicrosoft.com"]
        );
        props.apply(&p.items[2].patch);
        assert_eq!(props.proxy_addresses.len(), 2, "absent: unchanged");
        props.apply(&p.items[1].patch);
        assert_eq!((props.mail, props.proxy_addresses), (None, vec![]));
        let bad = br#"{"@odata.deltaLink":"https://g/d","value":[{"id":"g","proxyAddresses":"SMTP:a@x"}]}"#;
        assert!(parse_group_page(bad).is_err());
        for f in ["mail", "proxyAddresses"] {
            assert!(GROUP_SELECT.split(',').any(|s| s == f), "{f}");
        }
        // The beta endpoint (writebackConfiguration honoured) asks for everything v1.0 does.
        for f in GROUP_SELECT.split(',') {
            assert!(
                GROUP_SELECT_BETA.split(',').any(|s| s == f),
                "beta lacks {f}"
            );
        }
        // A mirror stored before mail attributes were tracked still decodes.
        let old: crate::model::GroupProps = serde_json::from_str(
            r#"{"display_name":"x","description":null,"group_types":[],"security_enabled":true,
                "mail_enabled":null,"mail_nickname":null,"on_premises_sync_enabled":null}"#,
        )
        .unwrap();
        assert_eq!((old.mail, old.proxy_addresses), (None, vec![]));
    }

    #[test]
    fn removed_members_and_groups() {
        let body = br##"{"@odata.deltaLink":"https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=o",
          "value":[{"id":"g1","members@delta":[{"@odata.type":"#microsoft.graph.user","id":"u1"},
             {"@odata.type":"#microsoft.graph.group","id":"0123456789a","@removed":{"reason":"deleted"}},
             {"@odata.type":"#microsoft.graph.device","id":"d1"}]},
           {"id":"g3","@removed":{"reason":"changed"}},{"id":"g4","@removed":{"reason":"deleted"}}]}"##;
        let p = parse_group_page(body).unwrap();
        assert_eq!(
            p.link,
            NextStep::Delta("https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=o".into())
        );
        let m = &p.items[0].members;
        assert!(!m[0].removed && m[1].removed);
        assert_eq!(m[1].member.kind, MemberKind::Group);
        assert_eq!(m[2].member.kind, MemberKind::Other);
        assert_eq!(p.items[1].removed, Some(Removed::Changed));
        assert_eq!(p.items[2].removed, Some(Removed::Deleted));
    }

    #[test]
    fn malformed_pages_are_rejected() {
        for body in [
            &b"not json"[..],
            br#"[]"#,
            br#"{"value":"x","@odata.deltaLink":"https://g/d"}"#,
            br#"{"value":[]}"#,
            br#"{"value":[],"@odata.nextLink":"https://g/n","@odata.deltaLink":"https://g/d"}"#,
            br#"{"value":[{"displayName":"no id"}],"@odata.deltaLink":"https://g/d"}"#,
            br#"{"value":[{"id":"g","members@delta":{}}],"@odata.deltaLink":"https://g/d"}"#,
            br#"{"value":[{"id":"g","securityEnabled":"yes"}],"@odata.deltaLink":"https://g/d"}"#,
            br#"{"value":[],"@odata.deltaLink":"relative"}"#,
        ] {
            assert!(
                parse_group_page(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn user_page() {
        let body = br#"{"@odata.deltaLink":"https://g/users/delta?$deltatoken=1","value":[
            {"id":"u1","onPremisesSecurityIdentifier":"S-1-5-21-1-2-3-1105","userPrincipalName":"a@b"},
            {"id":"u2","@removed":{"reason":"deleted"}}]}"#;
        let p = parse_user_page(body).unwrap();
        assert_eq!(
            p.items[0].patch.sid,
            Patch::Value("S-1-5-21-1-2-3-1105".into())
        );
        assert_eq!(p.items[1].removed, Some(Removed::Deleted));
    }

    #[test]
    fn pages_with_more_objects_than_the_limit_are_refused_before_parsing() {
        let page = |n: usize| {
            let items: Vec<String> = (0..n).map(|i| format!(r#"{{"id":"g{i}"}}"#)).collect();
            format!(
                r#"{{"@odata.nextLink":"https://g/next","value":[{}],"x":{{"value":1}}}}"#,
                items.join(",")
            )
        };
        assert!(check_item_count(page(3).as_bytes(), 3).is_ok());
        let err = check_item_count(page(4).as_bytes(), 3).unwrap_err();
        assert!(matches!(
            err,
            PageError::TooManyItems { items: 4, limit: 3 }
        ));
        assert_eq!(
            err.to_string(),
            "delta page carries 4 objects, more than graph.max_page_items (3)"
        );
        // Not a page: left to the parser's own errors.
        for body in [&b"{"[..], b"[]", br#"{"value":{}}"#, b"{}"] {
            assert!(check_item_count(body, 0).is_ok());
        }
    }
}
