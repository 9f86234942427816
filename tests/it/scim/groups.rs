//! Groups and their members.

use serde_json::{Value, json};

use super::{GROUP_SCHEMA, Scim, id, ok, patch_op, scim_error};
use crate::server::Server;

fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group["members"]
        .as_array()
        .map(|m| m.iter().map(|m| m["value"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[test]
fn a_group_is_created_with_members_and_users_list_their_groups() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let ada = id(&scim.create_user("ada@acme.test"));
    let bob = id(&scim.create_user("bob@acme.test"));
    let response = scim.post(
        "/Groups",
        json!({"schemas": [GROUP_SCHEMA], "displayName": "Engineering", "externalId": "okta-1",
        "members": [{"value": ada, "display": "Ada"}, {"value": bob}]}),
    );
    assert_eq!(response.status(), 201);
    assert!(response.headers().contains_key("location") && response.headers().contains_key("etag"));
    let group: Value = response.json().unwrap();
    assert_eq!(group["displayName"], "Engineering");
    assert_eq!(group["externalId"], "okta-1");
    assert_eq!(group["meta"]["resourceType"], "Group");
    assert_eq!(member_ids(&group), sorted(vec![ada.clone(), bob.clone()]));
    let user = scim.fetch(&format!("/Users/{ada}"));
    assert_eq!(
        user["groups"],
        json!([{"value": group["id"], "$ref": format!("{}/Groups/{}", scim.base, id(&group)),
        "display": "Engineering", "type": "direct"}])
    );
    let without_members = scim.fetch(&format!("/Groups/{}?excludedAttributes=members", id(&group)));
    assert!(without_members.get("members").is_none());
}

#[test]
fn group_names_are_unique_and_members_must_be_users_of_the_tenant() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let other = Scim::new(&server, "globex");
    let outsider = id(&other.create_user("eve@globex.test"));
    scim.create_group("Engineering", &[]);
    scim_error(scim.post("/Groups", json!({"displayName": "ENGINEERING"})), 409, Some("uniqueness"));
    scim_error(
        scim.post("/Groups", json!({"displayName": "Ops", "members": [{"value": outsider}]})),
        400,
        Some("invalidValue"),
    );
    scim_error(
        scim.post("/Groups", json!({"displayName": "Ops", "members": [{"value": "not-an-id"}]})),
        400,
        Some("invalidValue"),
    );
    let nested = json!({"displayName": "Ops", "members": [{"value": outsider, "type": "Group"}]});
    scim_error(scim.post("/Groups", nested), 400, Some("invalidValue"));
    scim_error(scim.post("/Groups", json!({"members": []})), 400, Some("invalidValue"));
    assert_eq!(scim.fetch("/Groups")["totalResults"], 1);
}

#[test]
fn patch_adds_and_removes_members_in_every_shape_clients_send() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let users: Vec<String> = (0..5).map(|i| id(&scim.create_user(&format!("u{i}@acme.test")))).collect();
    let group = scim.create_group("Staff", &[]);
    let path = format!("/Groups/{}", id(&group));
    let members = |scim: &Scim| member_ids(&scim.fetch(&path));

    // Okta: add with a list.
    let add = patch_op(
        json!([{"op": "add", "path": "members", "value": [{"value": users[0]}, {"value": users[1]}, {"value": users[2]}]}]),
    );
    assert_eq!(scim.patch(&path, add.clone()).status(), 204);
    assert_eq!(members(&scim), sorted(users[..3].to_vec()));
    // Adding again is harmless (a retried request).
    assert_eq!(scim.patch(&path, add).status(), 204);
    assert_eq!(members(&scim).len(), 3);
    // Okta: remove with a value filter.
    let remove = patch_op(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", users[0])}]));
    assert_eq!(scim.patch(&path, remove).status(), 204);
    assert_eq!(members(&scim), sorted(users[1..3].to_vec()));
    // Entra ID: capitalised op, remove with a value array.
    let remove = patch_op(json!([{"op": "Remove", "path": "members", "value": [{"value": users[1]}]}]));
    assert_eq!(scim.patch(&path, remove).status(), 204);
    assert_eq!(members(&scim), vec![users[2].clone()]);
    // Replace the whole list, and rename in the same request.
    let replace = patch_op(
        json!([{"op": "replace", "value": {"displayName": "Everyone", "members": [{"value": users[3]}, {"value": users[4]}]}}]),
    );
    assert_eq!(scim.patch(&path, replace).status(), 204);
    let group = scim.fetch(&path);
    assert_eq!(group["displayName"], "Everyone");
    assert_eq!(member_ids(&group), sorted(users[3..].to_vec()));
    // Remove all.
    assert_eq!(scim.patch(&path, patch_op(json!([{"op": "remove", "path": "members"}]))).status(), 204);
    assert!(scim.fetch(&path).get("members").is_none());
    // A member that is not a user is refused, and nothing else in the request applies.
    let bad = patch_op(
        json!([{"op": "replace", "path": "displayName", "value": "X"}, {"op": "add", "path": "members", "value": [{"value": "nobody"}]}]),
    );
    scim_error(scim.patch(&path, bad), 400, Some("invalidValue"));
    assert_eq!(scim.fetch(&path)["displayName"], "Everyone");
    // Asking for attributes gets the group back.
    let answer = ok(
        scim.patch(
            &format!("{path}?attributes=displayName"),
            patch_op(json!([{"op": "replace", "path": "displayName", "value": "All"}])),
        ),
        200,
    );
    assert_eq!(answer["displayName"], "All");
}

#[test]
fn put_replaces_name_and_members_and_delete_removes_memberships() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let ada = id(&scim.create_user("ada@acme.test"));
    let bob = id(&scim.create_user("bob@acme.test"));
    let group = scim.create_group("Staff", &[&ada]);
    let path = format!("/Groups/{}", id(&group));
    let replaced = ok(
        scim.put(
            &path,
            json!({"schemas": [GROUP_SCHEMA], "displayName": "Crew", "members": [{"value": bob}]}),
        ),
        200,
    );
    assert_eq!(replaced["displayName"], "Crew");
    assert_eq!(member_ids(&replaced), vec![bob.clone()]);
    assert!(scim.fetch(&format!("/Users/{ada}")).get("groups").is_none());
    assert_eq!(scim.delete(&path).status(), 204);
    scim_error(scim.get(&path), 404, None);
    assert!(scim.fetch(&format!("/Users/{bob}")).get("groups").is_none());
    // Deleting a user removes them from groups.
    let group = scim.create_group("Again", &[&ada, &bob]);
    assert_eq!(scim.delete(&format!("/Users/{ada}")).status(), 204);
    assert_eq!(member_ids(&scim.fetch(&format!("/Groups/{}", id(&group)))), vec![bob]);
}
