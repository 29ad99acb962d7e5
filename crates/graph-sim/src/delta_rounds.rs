//! Delta rounds: which items a round contains, how large groups are sliced and how items are paged
//! (the link formats live in `cursor`).
//!
//! A round is computed in full when it starts (a snapshot at tenant version W) and its pages are
//! kept in memory under a round id; the deltaLink on the last page encodes W and the `$select`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use serde_json::{Map, Value, json};

use super::tenant::{DirObject, Kind, Life, MemberKey, Tenant, state_at};

/// The `$select` of a round: `None` = everything (and members for groups).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection(pub Option<Vec<String>>);

impl Selection {
    /// Parses a comma-separated `$select` (`id` is implied; empty means no selection).
    pub fn parse(raw: Option<&str>) -> Selection {
        let mut fields: Vec<String> = Vec::new();
        for f in raw.unwrap_or("").split(',').map(str::trim) {
            if !f.is_empty() && f != "id" && !fields.iter().any(|x| x == f) {
                fields.push(f.to_string());
            }
        }
        Selection((!fields.is_empty()).then_some(fields))
    }

    /// Whether property `name` is returned and tracked.
    pub fn has_prop(&self, name: &str) -> bool {
        self.0.as_ref().is_none_or(|f| f.iter().any(|x| x == name))
    }

    /// Whether `members@delta` is returned and tracked for a collection of `kind`.
    pub fn has_members(&self, kind: Kind) -> bool {
        kind == Kind::Group && self.has_prop("members")
    }

    /// The comma-joined list, as used in `@odata.context` and links (`None` = no `$select`).
    pub fn joined(&self) -> Option<String> {
        self.0.as_ref().map(|f| f.join(","))
    }
}

/// What one round is asked for.
#[derive(Clone, Debug)]
pub struct RoundSpec {
    /// Collection.
    pub kind: Kind,
    /// `$select` of the round.
    pub sel: Selection,
    /// Version of the deltaLink the round starts from; `None` = initial round.
    pub since: Option<u64>,
    /// `Prefer: return=minimal` (incremental rounds only).
    pub minimal: bool,
}

/// One object's contribution to a round before slicing.
enum Change {
    Removed(&'static str),
    Item {
        props: Map<String, Value>,
        members: Option<Vec<Value>>,
    },
}

fn removed_member(k: &MemberKey) -> Value {
    json!({"@odata.type": k.odata_type, "id": k.id, "@removed": {"reason": "deleted"}})
}

/// Net member changes since `since`; `full` lists every current member as added.
fn member_delta(obj: &DirObject, since: Option<u64>, full: bool) -> Vec<Value> {
    let mut out = Vec::new();
    for (k, hist) in &obj.members {
        let now = hist.last().is_some_and(|(_, p)| *p);
        let before = since.is_some_and(|v| state_at(hist, v).unwrap_or(false));
        if now && (full || !before) {
            out.push(k.to_json());
        } else if !now && before {
            out.push(removed_member(k));
        }
    }
    out
}

fn object_change(obj: &DirObject, spec: &RoundSpec) -> Option<Change> {
    let now = obj.life_now();
    let tracked = spec.sel.has_members(spec.kind);
    let (full, changed_since) = match spec.since {
        None => (true, None),
        Some(v) => {
            let life_event = obj.life_changed_after(v);
            match now {
                Life::SoftDeleted if life_event => return Some(Change::Removed("changed")),
                Life::Gone if life_event => return Some(Change::Removed("deleted")),
                Life::Active => (life_event || obj.life_at(v) != Life::Active, Some(v)),
                _ => return None,
            }
        }
    };
    if now != Life::Active {
        return None;
    }
    let members = tracked.then(|| member_delta(obj, changed_since, full));
    let changed_prop = |name: &str| changed_since.is_none_or(|v| obj.props[name].version > v);
    let mut props = Map::new();
    let mut any_prop_changed = false;
    for (name, p) in obj.props.iter().filter(|(n, _)| spec.sel.has_prop(n)) {
        let changed = changed_prop(name);
        any_prop_changed |= changed;
        if full || changed || !spec.minimal {
            props.insert(name.clone(), p.value.clone());
        }
    }
    let members_changed = members.as_ref().is_some_and(|m| !m.is_empty());
    if !full && !any_prop_changed && !members_changed {
        return None;
    }
    Some(Change::Item {
        props,
        members: members.filter(|m| !m.is_empty()),
    })
}

/// Builds the items of a round (before paging), slicing large groups and spreading the slices.
pub fn compute_items(tenant: &Tenant, spec: &RoundSpec, member_slice: usize) -> Vec<Value> {
    let slice = member_slice.max(1);
    // One queue of items per object; the scheduler below interleaves the queues.
    let mut queues: Vec<VecDeque<Value>> = Vec::new();
    for (id, obj) in tenant.objects(spec.kind) {
        let Some(change) = object_change(obj, spec) else {
            continue;
        };
        let item = |props: &Map<String, Value>, members: Option<&[Value]>| {
            let mut m = Map::new();
            m.insert("id".into(), Value::String(id.clone()));
            m.extend(props.clone());
            if let Some(ms) = members {
                m.insert("members@delta".into(), Value::Array(ms.to_vec()));
            }
            Value::Object(m)
        };
        let q = match change {
            Change::Removed(reason) => {
                VecDeque::from([json!({"id": id, "@removed": {"reason": reason}})])
            }
            Change::Item {
                props,
                members: None,
            } => VecDeque::from([item(&props, None)]),
            Change::Item {
                props,
                members: Some(ms),
            } => ms.chunks(slice).map(|c| item(&props, Some(c))).collect(),
        };
        queues.push(q);
    }
    interleave(queues)
}

/// Emits every queue's items, always taking from the queue with the most items left that is not
/// the one just used, so slices of one group are separated by other items whenever possible.
fn interleave(mut queues: Vec<VecDeque<Value>>) -> Vec<Value> {
    let total = queues.iter().map(VecDeque::len).sum();
    let mut out = Vec::with_capacity(total);
    let mut heap: BinaryHeap<(usize, Reverse<usize>)> = queues
        .iter()
        .enumerate()
        .map(|(i, q)| (q.len(), Reverse(i)))
        .collect();
    let mut last: Option<usize> = None;
    while let Some(top) = heap.pop() {
        let pick = if Some(top.1.0) == last {
            match heap.pop() {
                Some(second) => {
                    heap.push(top);
                    second
                }
                None => top,
            }
        } else {
            top
        };
        let i = pick.1.0;
        out.extend(queues[i].pop_front());
        if !queues[i].is_empty() {
            heap.push((queues[i].len(), pick.1));
        }
        last = Some(i);
    }
    out
}

/// Reverses the order of items and of every item's `members@delta` (the `reorder_changes` fault).
pub fn reverse(items: &mut [Value]) {
    items.reverse();
    for item in items.iter_mut() {
        if let Some(Value::Array(m)) = item.get_mut("members@delta") {
            m.reverse();
        }
    }
}

/// Splits items into pages of at most `page_size` items and at most `member_cap` member
/// entries (`members@delta`), so a large group's slice fills a page and the next slice goes on
/// the next one, as Graph pages a large group [DQG "Paging through members in a large group"];
/// an item carrying more members than the cap goes on a page of its own. `empty_pages` puts an
/// empty page between real pages. `duplicate` repeats every item, the copies starting on a
/// fresh page. Always at least one page.
pub fn paginate(
    items: Vec<Value>,
    page_size: usize,
    member_cap: usize,
    empty_pages: bool,
    duplicate: bool,
) -> Vec<Vec<Value>> {
    let mut real: Vec<Vec<Value>> = Vec::new();
    let (mut page, mut members) = (Vec::new(), 0usize);
    for item in items {
        let carried = item
            .get("members@delta")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let full = page.len() >= page_size.max(1) || members + carried > member_cap.max(1);
        if full && !page.is_empty() {
            real.push(std::mem::take(&mut page));
            members = 0;
        }
        members += carried;
        page.push(item);
    }
    if !page.is_empty() {
        real.push(page);
    }
    if duplicate {
        real.extend(real.clone());
    }
    let mut pages = Vec::with_capacity(real.len() * 2);
    for (i, p) in real.into_iter().enumerate() {
        if i > 0 && empty_pages {
            pages.push(Vec::new());
        }
        pages.push(p);
    }
    if pages.is_empty() {
        pages.push(Vec::new());
    }
    pages
}

/// A paged round kept in memory until its skiptokens are forgotten.
#[derive(Debug)]
pub struct Round {
    /// Collection the round belongs to.
    pub kind: Kind,
    /// API version it was asked on (`v1.0` or `beta`): its links stay there.
    pub api: &'static str,
    /// `$select`, carried into the deltaLink.
    pub sel: Selection,
    /// Tenant version the round is a snapshot of (encoded in the deltaLink).
    pub version: u64,
    /// The pages.
    pub pages: Vec<Vec<Value>>,
}

/// The rounds in progress, oldest evicted first beyond a cap.
#[derive(Debug)]
pub struct Rounds {
    next_id: u64,
    cap: usize,
    map: BTreeMap<u64, Round>,
}

impl Rounds {
    /// An empty store keeping at most `cap` rounds.
    pub fn new(cap: usize) -> Rounds {
        Rounds {
            next_id: 1,
            cap: cap.max(1),
            map: BTreeMap::new(),
        }
    }

    /// Stores a round and returns its id.
    pub fn insert(&mut self, round: Round) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.map.insert(id, round);
        while self.map.len() > self.cap {
            self.map.pop_first();
        }
        id
    }

    /// Looks a round up.
    pub fn get(&self, id: u64) -> Option<&Round> {
        self.map.get(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Tenant {
        let members: Vec<Value> = (0..1200)
            .map(|i| json!({"@odata.type": "#microsoft.graph.user", "id": format!("u{i:04}")}))
            .collect();
        Tenant::from_json(
            &json!({"tenant_id": "t",
            "users": [{"id": "u0000", "displayName": "Ann", "mail": "a@x"}],
            "groups": [{"id": "big", "displayName": "Big", "members": members},
                       {"id": "g1", "displayName": "One", "description": "d"},
                       {"id": "g2", "displayName": "Two"}]})
            .to_string(),
        )
        .unwrap()
    }

    fn spec(since: Option<u64>, minimal: bool, sel: Option<&str>) -> RoundSpec {
        RoundSpec {
            kind: Kind::Group,
            sel: Selection::parse(sel),
            since,
            minimal,
        }
    }

    fn ids(items: &[Value]) -> Vec<&str> {
        items.iter().map(|i| i["id"].as_str().unwrap()).collect()
    }

    #[test]
    fn initial_round_slices_large_groups_between_other_items() {
        let items = compute_items(&tenant(), &spec(None, false, None), 500);
        assert_eq!(ids(&items), ["big", "g1", "big", "g2", "big"]);
        let sizes: Vec<usize> = items
            .iter()
            .filter(|i| i["id"] == "big")
            .map(|i| i["members@delta"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [500, 500, 200]);
        assert!(
            items
                .iter()
                .filter(|i| i["id"] == "big")
                .all(|i| i["displayName"] == "Big")
        );
        assert!(
            items[1].get("members@delta").is_none(),
            "no members = no members@delta"
        );
        let pages = paginate(items, 2, usize::MAX, true, false);
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            [2, 0, 2, 0, 1]
        );
    }

    #[test]
    fn incremental_round_reports_net_member_changes_and_selected_props() {
        let mut t = tenant();
        let w = t.version;
        let v = t.bump();
        let u = |id: &str| MemberKey {
            odata_type: "#microsoft.graph.user".into(),
            id: id.into(),
        };
        t.change_members("big", &[u("new"), u("flip")], &[u("u0001")], v)
            .unwrap();
        let v = t.bump();
        t.change_members("big", &[], &[u("flip")], v).unwrap();
        let v = t.bump();
        t.put(
            Kind::Group,
            "g1",
            serde_json::from_value(json!({"description": null})).unwrap(),
            v,
        )
        .unwrap();
        let items = compute_items(
            &t,
            &spec(Some(w), false, Some("displayName,description,members")),
            500,
        );
        assert_eq!(ids(&items), ["big", "g1"]);
        assert_eq!(
            items[0]["members@delta"],
            json!([
            {"@odata.type": "#microsoft.graph.user", "id": "new"},
            {"@odata.type": "#microsoft.graph.user", "id": "u0001", "@removed": {"reason": "deleted"}}])
        );
        assert_eq!(
            items[1],
            json!({"id": "g1", "displayName": "One", "description": null})
        );
        let minimal = compute_items(
            &t,
            &spec(Some(w), true, Some("displayName,description,members")),
            500,
        );
        assert_eq!(minimal[1], json!({"id": "g1", "description": null}));
        assert_eq!(
            minimal[0],
            json!({"id": "big", "members@delta": items[0]["members@delta"]})
        );
        let unselected = compute_items(&t, &spec(Some(w), false, Some("displayName")), 500);
        assert!(
            unselected.is_empty(),
            "changes to unselected properties are not reported"
        );
        assert!(compute_items(&t, &spec(Some(t.version), false, None), 500).is_empty());
    }

    #[test]
    fn mail_and_proxy_addresses_are_served_when_selected_and_their_changes_are_deltas() {
        let mut t = tenant();
        let v = t.bump();
        let addresses = json!(["SMTP:one@contoso.com", "smtp:one@contoso.onmicrosoft.com"]);
        let props = json!({"mail": "one@contoso.com", "proxyAddresses": addresses});
        t.put(Kind::Group, "g1", serde_json::from_value(props).unwrap(), v)
            .unwrap();
        let sel = Some("displayName,mail,proxyAddresses,members");
        let full = compute_items(&t, &spec(None, false, sel), 5000);
        let g1 = full.iter().find(|i| i["id"] == "g1").unwrap();
        assert_eq!(g1["mail"], "one@contoso.com");
        assert_eq!(g1["proxyAddresses"], addresses);
        assert!(
            compute_items(&t, &spec(None, false, Some("displayName")), 5000)
                .iter()
                .all(|i| i.get("proxyAddresses").is_none()),
            "not selected, not served"
        );
        // Removing one address is a change of the whole (multi-valued) property.
        let w = t.version;
        let v = t.bump();
        let fewer = json!({"proxyAddresses": ["SMTP:one@contoso.com"]});
        t.put(Kind::Group, "g1", serde_json::from_value(fewer).unwrap(), v)
            .unwrap();
        let items = compute_items(&t, &spec(Some(w), true, sel), 500);
        assert_eq!(
            items,
            [json!({"id": "g1", "proxyAddresses": ["SMTP:one@contoso.com"]})]
        );
        let w = t.version;
        let v = t.bump();
        let same = json!({"proxyAddresses": ["SMTP:one@contoso.com"]});
        t.put(Kind::Group, "g1", serde_json::from_value(same).unwrap(), v)
            .unwrap();
        assert!(
            compute_items(&t, &spec(Some(w), false, sel), 500).is_empty(),
            "an unchanged value is no change"
        );
    }

    #[test]
    fn soft_delete_hard_delete_and_restore() {
        let mut t = tenant();
        let w0 = t.version;
        let v = t.bump();
        t.delete(Kind::Group, "g1", false, v).unwrap();
        let v = t.bump();
        t.delete(Kind::Group, "g2", true, v).unwrap();
        let items = compute_items(&t, &spec(Some(w0), false, None), 500);
        assert_eq!(
            items,
            [
                json!({"id": "g1", "@removed": {"reason": "changed"}}),
                json!({"id": "g2", "@removed": {"reason": "deleted"}})
            ]
        );
        assert_eq!(
            ids(&compute_items(&t, &spec(None, false, None), 5000)),
            ["big"]
        );
        let w1 = t.version;
        let v = t.bump();
        t.restore(Kind::Group, "g1", v).unwrap();
        let restored = compute_items(&t, &spec(Some(w1), true, None), 500);
        assert_eq!(
            restored,
            [json!({"id": "g1", "displayName": "One", "description": "d"})]
        );
        let v = t.bump();
        t.delete(Kind::Group, "g1", false, v).unwrap();
        let w2 = t.version;
        let v = t.bump();
        t.delete(Kind::Group, "g1", true, v).unwrap();
        let purged = compute_items(&t, &spec(Some(w2), false, None), 500);
        assert_eq!(
            purged,
            [json!({"id": "g1", "@removed": {"reason": "deleted"}})]
        );
    }

    #[test]
    fn duplicates_start_on_a_new_page() {
        let items: Vec<Value> = (0..3).map(|i| json!({"id": i})).collect();
        let pages = paginate(items, 2, usize::MAX, false, true);
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1, 2, 1]);
        assert_eq!(
            paginate(Vec::new(), 2, usize::MAX, true, true),
            vec![Vec::<Value>::new()]
        );
    }

    #[test]
    fn a_large_groups_slice_fills_its_page() {
        let group = |id: &str, n: usize| {
            let members: Vec<Value> = (0..n).map(|m| json!({"id": format!("u{m}")})).collect();
            json!({"id": id, "members@delta": members})
        };
        // Slices of 3 members (cap 3): each fills a page; small groups share one.
        let items = vec![
            group("big", 3),
            group("big", 3),
            group("a", 1),
            group("b", 1),
            group("c", 0),
            group("big", 2),
        ];
        let pages = paginate(items, 10, 3, false, false);
        let ids: Vec<Vec<&str>> = pages
            .iter()
            .map(|p| p.iter().map(|i| i["id"].as_str().unwrap()).collect())
            .collect();
        assert_eq!(
            ids,
            [vec!["big"], vec!["big"], vec!["a", "b", "c"], vec!["big"]]
        );
        // An item above the cap still goes out, alone.
        let pages = paginate(vec![group("a", 1), group("huge", 9)], 10, 3, false, false);
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1]);
    }
}
