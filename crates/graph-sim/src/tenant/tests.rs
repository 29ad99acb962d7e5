//! Unit tests of the tenant model: parsing, member keys, history and state.

use super::*;
use serde_json::json;

fn tenant() -> Tenant {
    Tenant::from_json(
        &json!({"tenant_id": "t", "users": [{"id": "u1", "displayName": "Ann"}],
                "groups": [{"id": "g1", "displayName": "Eng", "description": null,
                            "members": [{"@odata.type": "#microsoft.graph.user", "id": "u1"}]}]})
        .to_string(),
    )
    .unwrap()
}

#[test]
fn loads_file_at_version_one() {
    let t = tenant();
    assert_eq!(t.version, 1);
    let g = &t.groups["g1"];
    assert_eq!(g.props["description"].value, Value::Null);
    assert_eq!(g.current_members().count(), 1);
    assert!(Tenant::from_json(r#"{"tenant_id":"t","users":[{"id":"a"},{"id":"a"}]}"#).is_err());
}

#[test]
fn member_types_are_normalised_and_checked() {
    let k = MemberKey::parse(&json!({"@odata.type": "device", "id": "d"})).unwrap();
    assert_eq!(k.odata_type, "#microsoft.graph.device");
    assert!(MemberKey::parse(&json!({"@odata.type": "#microsoft.graph.team", "id": "d"})).is_err());
    assert!(MemberKey::parse(&json!({"id": "d"})).is_err());
}

#[test]
fn delete_restore_and_hard_delete_cascade() {
    let mut t = tenant();
    let v = t.bump();
    t.delete(Kind::User, "u1", false, v).unwrap();
    assert_eq!(t.users["u1"].life_now(), Life::SoftDeleted);
    assert_eq!(
        t.groups["g1"].current_members().count(),
        1,
        "soft delete keeps membership"
    );
    assert!(t.put(Kind::User, "u1", Map::new(), t.version + 1).is_err());
    let v = t.bump();
    t.restore(Kind::User, "u1", v).unwrap();
    let v = t.bump();
    t.delete(Kind::User, "u1", true, v).unwrap();
    assert_eq!(t.users["u1"].life_now(), Life::Gone);
    assert!(t.users["u1"].props.is_empty());
    assert_eq!(
        t.groups["g1"].current_members().count(),
        0,
        "hard delete cascades"
    );
    assert_eq!(t.users["u1"].life_at(1), Life::Active);
    assert!(t.restore(Kind::User, "u1", t.version + 1).is_err());
    let state = t.to_state_json();
    assert_eq!(state["users"], json!([]));
}
