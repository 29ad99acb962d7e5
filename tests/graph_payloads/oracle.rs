//! A second, independent reading of a delta page from its JSON, written from Graph's documented
//! page shape (`shared/reference/graph-delta.md`): what the parser must return for a body, or
//! `None` where the page breaks the shape (the parser must then reject it). The randomized test
//! compares the parser with it on every mutated body.

use entra_writeback::graph::page::{DeltaPage, GroupDelta, MemberDelta, NextStep, UserDelta};

use entra_writeback::model::{
    GroupPatch, MemberKind, MemberRef, Patch, Removed, UserPatch, WritebackSetting,
};
use serde_json::{Map, Value};

type Object = Map<String, Value>;

/// What `parse_group_page(body)` must return (`None`: it must fail).
pub fn group_page(body: &[u8]) -> Option<DeltaPage<GroupDelta>> {
    page(body, group)
}

/// What `parse_user_page(body)` must return (`None`: it must fail).
pub fn user_page(body: &[u8]) -> Option<DeltaPage<UserDelta>> {
    page(body, user)
}

/// A JSON object with `value` (an array of objects, each read by `item`) and exactly one of
/// `@odata.nextLink` / `@odata.deltaLink` (absolute URLs; `null` counts as absent).
fn page<T>(body: &[u8], item: fn(&Object) -> Option<T>) -> Option<DeltaPage<T>> {
    let root: Value = serde_json::from_slice(body).ok()?;
    let root = root.as_object()?;
    let link = |key: &str| match root.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) if url::Url::parse(s).is_ok() => Some(Some(s.clone())),
        Some(_) => None,
    };
    let link = match (link("@odata.nextLink")?, link("@odata.deltaLink")?) {
        (Some(n), None) => NextStep::Next(n),
        (None, Some(d)) => NextStep::Delta(d),
        _ => return None,
    };
    let items = root
        .get("value")?
        .as_array()?
        .iter()
        .map(|v| item(v.as_object()?))
        .collect::<Option<Vec<T>>>()?;
    Some(DeltaPage { items, link })
}

/// A non-empty string `id` of at most 256 characters (Graph ids are 36).
fn id(o: &Object) -> Option<String> {
    let id = o.get("id")?.as_str()?;
    (!id.is_empty() && id.len() <= 256).then(|| id.to_string())
}

/// Top-level `@removed`: `deleted` is a hard delete, any other reason (`changed`, or one Graph
/// adds later) a soft delete; `null` is no removal.
fn removed(o: &Object) -> Option<Removed> {
    match o.get("@removed") {
        None | Some(Value::Null) => None,
        Some(r) if r.get("reason").and_then(Value::as_str) == Some("deleted") => {
            Some(Removed::Deleted)
        }
        Some(_) => Some(Removed::Changed),
    }
}

/// A property: absent = unchanged, `null` = cleared, else a value of the right type (or the
/// page is broken).
fn prop<T>(o: &Object, key: &str, read: fn(&Value) -> Option<T>) -> Option<Patch<T>> {
    match o.get(key) {
        None => Some(Patch::Absent),
        Some(Value::Null) => Some(Patch::Null),
        Some(v) => read(v).map(Patch::Value),
    }
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// `writebackConfiguration`: both fields optional; a present field of the wrong type fails.
fn writeback_setting(v: &Value) -> Option<WritebackSetting> {
    let o = v.as_object()?;
    let optional = |key: &str| -> Option<Option<Value>> {
        match o.get(key) {
            None | Some(Value::Null) => Some(None),
            Some(x) => Some(Some(x.clone())),
        }
    };
    let enabled = optional("isEnabled")?;
    let kind = optional("onPremisesGroupType")?;
    Some(WritebackSetting {
        is_enabled: match enabled {
            None => None,
            Some(b) => Some(b.as_bool()?),
        },
        on_premises_group_type: match kind {
            None => None,
            Some(t) => Some(t.as_str()?.to_string()),
        },
    })
}

fn texts(v: &Value) -> Option<Vec<String>> {
    v.as_array()?.iter().map(text).collect()
}

fn group(o: &Object) -> Option<GroupDelta> {
    let members = match o.get("members@delta") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => v
            .as_array()?
            .iter()
            .map(|m| member(m.as_object()?))
            .collect::<Option<_>>()?,
    };
    Some(GroupDelta {
        id: id(o)?,
        removed: removed(o),
        patch: GroupPatch {
            display_name: prop(o, "displayName", text)?,
            description: prop(o, "description", text)?,
            group_types: prop(o, "groupTypes", texts)?,
            security_enabled: prop(o, "securityEnabled", Value::as_bool)?,
            mail_enabled: prop(o, "mailEnabled", Value::as_bool)?,
            mail_nickname: prop(o, "mailNickname", text)?,
            mail: prop(o, "mail", text)?,
            proxy_addresses: prop(o, "proxyAddresses", texts)?,
            on_premises_sync_enabled: prop(o, "onPremisesSyncEnabled", Value::as_bool)?,
            on_premises_security_identifier: prop(o, "onPremisesSecurityIdentifier", text)?,
            writeback: prop(o, "writebackConfiguration", writeback_setting)?,
        },
        members,
    })
}

/// A `members@delta` entry: `@odata.type` user or group, with or without the
/// `#microsoft.graph.` prefix (the parser is lenient there: any repeats of `#`, then of
/// `microsoft.graph.`), anything else is another kind; a non-null `@removed` of any shape ends
/// the membership.
fn member(o: &Object) -> Option<MemberDelta> {
    let name = o.get("@odata.type").and_then(Value::as_str).map(|t| {
        t.trim_start_matches('#')
            .trim_start_matches("microsoft.graph.")
    });
    let kind = match name {
        Some("user") => MemberKind::User,
        Some("group") => MemberKind::Group,
        _ => MemberKind::Other,
    };
    Some(MemberDelta {
        member: MemberRef { kind, id: id(o)? },
        removed: o.get("@removed").is_some_and(|r| !r.is_null()),
    })
}

fn user(o: &Object) -> Option<UserDelta> {
    Some(UserDelta {
        id: id(o)?,
        removed: removed(o),
        patch: UserPatch {
            sid: prop(o, "onPremisesSecurityIdentifier", text)?,
            sam_account_name: prop(o, "onPremisesSamAccountName", text)?,
            domain: prop(o, "onPremisesDomainName", text)?,
            distinguished_name: prop(o, "onPremisesDistinguishedName", text)?,
            user_principal_name: prop(o, "userPrincipalName", text)?,
        },
    })
}
