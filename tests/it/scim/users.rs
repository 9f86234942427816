//! Users: create, read, replace, patch, delete, with the lifecycle rules around them.

use serde_json::{Value, json};

use super::{ENTERPRISE, Scim, USER_SCHEMA, id, ok, patch_op, scim_error, user};
use crate::server::Server;

#[test]
fn a_created_user_comes_back_with_meta_location_and_etag() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let response = scim.post("/Users", user("ada@acme.test"));
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["content-type"], "application/scim+json");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let created: Value = response.json().unwrap();
    assert_eq!(created["schemas"], json!([USER_SCHEMA]));
    assert_eq!(created["userName"], "ada@acme.test");
    assert_eq!(created["active"], true);
    assert_eq!(created["meta"]["resourceType"], "User");
    assert_eq!(created["meta"]["location"], location);
    assert_eq!(created["meta"]["version"], etag);
    assert_eq!(location, format!("{}/Users/{}", scim.base, id(&created)));
    assert!(created.get("password").is_none());

    let fetched = scim.fetch(&format!("/Users/{}", id(&created)));
    assert_eq!(fetched, created);
}

#[test]
fn every_core_and_enterprise_attribute_round_trips_and_unknown_extensions_are_kept() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let custom = "urn:okta:acme:1.0:user:custom";
    let body = json!({
        "schemas": [USER_SCHEMA, ENTERPRISE, custom],
        "externalId": "00u1abcd",
        "userName": "bjensen@example.com",
        "name": {"formatted": "Ms. Barbara J Jensen III", "familyName": "Jensen", "givenName": "Barbara",
                 "middleName": "Jane", "honorificPrefix": "Ms.", "honorificSuffix": "III"},
        "displayName": "Babs Jensen", "nickName": "Babs", "profileUrl": "https://login.example.com/bjensen",
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true},
                   {"value": "babs@jensen.org", "type": "home"}],
        "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood",
                       "region": "CA", "postalCode": "91608", "country": "USA", "primary": true}],
        "phoneNumbers": [{"value": "555-555-5555", "type": "work"}],
        "ims": [{"value": "someaimhandle", "type": "aim"}],
        "photos": [{"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo"}],
        "userType": "Employee", "title": "Tour Guide", "preferredLanguage": "en-US", "locale": "en-US",
        "timezone": "America/Los_Angeles", "active": true, "password": "t1meMa$heen",
        "entitlements": [{"value": "admin"}], "roles": [{"value": "guide"}],
        ENTERPRISE: {"employeeNumber": "701984", "costCenter": "4130", "organization": "Universal Studios",
                     "division": "Theme Park", "department": "Tour Operations",
                     "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}},
        custom: {"badge": "B-12", "clearance": {"level": 3}},
    });
    let created = ok(scim.post("/Users", body.clone()), 201);
    for (key, value) in body.as_object().unwrap() {
        if key == "password" || key == "schemas" {
            continue;
        }
        assert_eq!(&created[key], value, "{key}");
    }
    assert!(created.get("password").is_none(), "passwords are never returned");
    let schemas = created["schemas"].as_array().unwrap();
    assert!(schemas.contains(&json!(ENTERPRISE)) && schemas.contains(&json!(custom)));
    assert_eq!(scim.fetch(&format!("/Users/{}", id(&created))), created);
}

#[test]
fn a_duplicate_user_name_is_a_uniqueness_conflict_whatever_its_case() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    scim.create_user("ada@acme.test");
    let mut retry = user("ADA@acme.test");
    retry["emails"] = json!([]);
    scim_error(scim.post("/Users", retry), 409, Some("uniqueness"));
    // The same address as another user's sign-in email is refused too.
    let mut same_email = user("ada2");
    same_email["emails"] = json!([{"value": "Ada@Acme.test", "primary": true}]);
    scim_error(scim.post("/Users", same_email), 409, Some("uniqueness"));
    // A retried POST did not create a second user.
    let list = scim.fetch("/Users");
    assert_eq!(list["totalResults"], 1);
}

#[test]
fn put_replaces_the_user_and_bumps_the_version() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let created = scim.create_user("ada@acme.test");
    let path = format!("/Users/{}", id(&created));
    let mut replacement = user("ada.lovelace@acme.test");
    replacement["title"] = json!("Countess");
    replacement["id"] = json!("ignored");
    let replaced = ok(scim.put(&path, replacement), 200);
    assert_eq!(replaced["id"], created["id"]);
    assert_eq!(replaced["userName"], "ada.lovelace@acme.test");
    assert_eq!(replaced["title"], "Countess");
    assert_eq!(replaced["meta"]["created"], created["meta"]["created"]);
    assert_ne!(replaced["meta"]["version"], created["meta"]["version"]);
    // The old userName is free; the new one is found.
    assert_eq!(scim.search("Users", "userName eq \"ada@acme.test\"").len(), 0);
    assert_eq!(scim.search("Users", "userName eq \"ADA.lovelace@acme.test\"").len(), 1);
}

#[test]
fn if_match_guards_changes_and_if_none_match_saves_a_download() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let created = scim.create_user("ada@acme.test");
    let path = format!("/Users/{}", id(&created));
    let etag = created["meta"]["version"].as_str().unwrap().to_owned();
    let deactivate = patch_op(json!([{"op": "replace", "value": {"active": false}}]));

    let stale = scim
        .request(reqwest::Method::PATCH, &path)
        .header("if-match", "W/\"999\"")
        .json(&deactivate)
        .send()
        .unwrap();
    scim_error(stale, 412, None);
    assert_eq!(scim.fetch(&path)["active"], true, "a refused change changes nothing");

    let fresh = scim
        .request(reqwest::Method::PATCH, &path)
        .header("if-match", &etag)
        .json(&deactivate)
        .send()
        .unwrap();
    let patched = ok(fresh, 200);
    assert_eq!(patched["active"], false);

    let not_modified = scim
        .request(reqwest::Method::GET, &path)
        .header("if-none-match", patched["meta"]["version"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    let stale_delete = scim.request(reqwest::Method::DELETE, &path).header("if-match", &etag).send().unwrap();
    scim_error(stale_delete, 412, None);
}

#[test]
fn patch_changes_simple_complex_multi_valued_and_extension_attributes() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let created = scim.create_user("ada@acme.test");
    let path = format!("/Users/{}", id(&created));
    let patched = ok(
        scim.patch(
            &path,
            patch_op(json!([
                {"op": "replace", "path": "name.givenName", "value": "Augusta"},
                {"op": "add", "path": "emails", "value": [{"value": "ada@home.test", "type": "home"}]},
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "countess@acme.test"},
                {"op": "add", "path": format!("{ENTERPRISE}:department"), "value": "Analytical Engines"},
                {"op": "remove", "path": "displayName"},
            ])),
        ),
        200,
    );
    assert_eq!(patched["name"]["givenName"], "Augusta");
    assert_eq!(patched["name"]["familyName"], "Lovelace");
    let emails: Vec<&str> =
        patched["emails"].as_array().unwrap().iter().map(|e| e["value"].as_str().unwrap()).collect();
    assert_eq!(emails, ["countess@acme.test", "ada@home.test"]);
    assert_eq!(patched[ENTERPRISE]["department"], "Analytical Engines");
    assert!(patched.get("displayName").is_none());
    assert_eq!(scim.fetch(&path), patched);
    // The email index followed the change.
    assert_eq!(scim.search("Users", "emails.value eq \"countess@acme.test\"").len(), 1);
    assert_eq!(scim.search("Users", "emails eq \"ada@acme.test\"").len(), 0);
}

#[test]
fn bad_patches_are_refused_with_their_scim_type_and_change_nothing() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let created = scim.create_user("ada@acme.test");
    let path = format!("/Users/{}", id(&created));
    let cases = [
        (json!({"Operations": [{"op": "replace", "value": {"active": false}}]}), "invalidSyntax"),
        (patch_op(json!([])), "invalidSyntax"),
        (patch_op(json!([{"op": "explode", "path": "title", "value": "x"}])), "invalidSyntax"),
        (patch_op(json!([{"op": "replace", "path": "emails[type eq", "value": "x"}])), "invalidPath"),
        (patch_op(json!([{"op": "remove"}])), "noTarget"),
        (patch_op(json!([{"op": "replace", "path": "id", "value": "mine"}])), "mutability"),
        (patch_op(json!([{"op": "replace", "path": "active", "value": "perhaps"}])), "invalidValue"),
        // A valid first operation does not commit when a later one fails.
        (
            patch_op(
                json!([{"op": "replace", "path": "title", "value": "x"}, {"op": "remove", "path": "userName"}]),
            ),
            "invalidValue",
        ),
    ];
    for (body, scim_type) in cases {
        let response = scim.patch(&path, body.clone());
        let status = response.status().as_u16();
        let error = scim_error(response, status, Some(scim_type));
        assert_eq!(status, 400, "{body} → {error}");
    }
    assert_eq!(scim.fetch(&path), created);
}

#[test]
fn delete_removes_the_user_and_a_second_delete_is_not_found() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let created = scim.create_user("ada@acme.test");
    let path = format!("/Users/{}", id(&created));
    assert_eq!(scim.delete(&path).status(), 204);
    scim_error(scim.get(&path), 404, None);
    scim_error(scim.delete(&path), 404, None);
    // The userName can be provisioned again.
    scim.create_user("ada@acme.test");
}

#[test]
fn the_seat_limit_counts_active_users_and_a_deactivation_frees_a_seat() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let tenant = server.patch(&format!("/api/v1/tenants/{}", scim.tenant_id), json!({"seat_limit": 2}));
    assert_eq!(tenant.status(), 200);
    let ada = scim.create_user("ada@acme.test");
    scim.create_user("bob@acme.test");
    let error = scim_error(scim.post("/Users", user("eve@acme.test")), 403, None);
    assert!(error["detail"].as_str().unwrap().contains("seat limit"), "{error}");
    // An inactive user takes no seat.
    let mut inactive = user("eve@acme.test");
    inactive["active"] = json!(false);
    let eve = ok(scim.post("/Users", inactive), 201);
    let activate = patch_op(json!([{"op": "replace", "path": "active", "value": true}]));
    scim_error(scim.patch(&format!("/Users/{}", id(&eve)), activate.clone()), 403, None);
    // Deactivating Ada frees her seat for Eve.
    ok(
        scim.patch(
            &format!("/Users/{}", id(&ada)),
            patch_op(json!([{"op": "replace", "value": {"active": false}}])),
        ),
        200,
    );
    assert_eq!(ok(scim.patch(&format!("/Users/{}", id(&eve)), activate), 200)["active"], true);
}

#[test]
fn attributes_and_excluded_attributes_shape_responses() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let created = scim.create_user("ada@acme.test");
    let path = format!("/Users/{}", id(&created));
    let only = scim.fetch(&format!("{path}?attributes=userName,name.familyName"));
    let mut keys: Vec<&str> = only.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["id", "name", "schemas", "userName"]);
    assert_eq!(only["name"], json!({"familyName": "Lovelace"}));
    let without = scim.fetch(&format!("{path}?excludedAttributes=emails,name"));
    assert!(without.get("emails").is_none() && without.get("name").is_none());
    assert_eq!(without["userName"], "ada@acme.test");
    let created = ok(scim.post("/Users?attributes=id", user("bob@acme.test")), 201);
    assert!(created.get("userName").is_none() && created.get("id").is_some());
}

#[test]
fn deactivation_by_put_and_reactivation_keep_the_users_data() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let mut body = user("ada@acme.test");
    body[ENTERPRISE] = json!({"department": "R&D"});
    let created = ok(scim.post("/Users", body.clone()), 201);
    let path = format!("/Users/{}", id(&created));
    body["active"] = json!(false);
    let deactivated = ok(scim.put(&path, body.clone()), 200);
    assert_eq!(deactivated["active"], false);
    // A deactivated user is still found (Okta and Entra ID look them up before reactivating).
    assert_eq!(scim.search("Users", "userName eq \"ada@acme.test\"").len(), 1);
    let reactivated =
        ok(scim.patch(&path, patch_op(json!([{"op": "Replace", "path": "active", "value": "True"}]))), 200);
    assert_eq!(reactivated["active"], true);
    assert_eq!(reactivated[ENTERPRISE]["department"], "R&D");
    assert_eq!(reactivated["name"], created["name"]);
}

#[test]
fn a_suspended_tenant_cannot_provision() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    assert_eq!(
        server.patch(&format!("/api/v1/tenants/{}", scim.tenant_id), json!({"status": "suspended"})).status(),
        200
    );
    scim_error(scim.post("/Users", user("ada@acme.test")), 403, None);
}

#[test]
fn with_a_retention_period_a_deleted_user_is_gone_from_scim_and_the_name_is_free() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let tenant = server
        .patch(&format!("/api/v1/tenants/{}", scim.tenant_id), json!({"deleted_user_retention_days": 30}));
    assert_eq!(tenant.json::<Value>().unwrap()["deleted_user_retention_days"], 30);
    let created = scim.create_user("ada@acme.test");
    assert_eq!(scim.delete(&format!("/Users/{}", id(&created))).status(), 204);
    scim_error(scim.get(&format!("/Users/{}", id(&created))), 404, None);
    assert_eq!(scim.fetch("/Users")["totalResults"], 0);
    scim.create_user("ada@acme.test");
    let bad = server
        .patch(&format!("/api/v1/tenants/{}", scim.tenant_id), json!({"deleted_user_retention_days": 99999}));
    crate::server::expect_error(bad, 400, "invalid_value");
}

#[test]
fn provisioned_users_and_groups_survive_kill_9() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let ada = scim.create_user("ada@acme.test");
    let group = scim.create_group("Staff", &[&id(&ada)]);
    ok(
        scim.patch(
            &format!("/Users/{}", id(&ada)),
            patch_op(json!([{"op": "replace", "value": {"active": false}}])),
        ),
        200,
    );
    let before =
        (scim.fetch(&format!("/Users/{}", id(&ada))), scim.fetch(&format!("/Groups/{}", id(&group))));
    let data = server.kill9();
    let server = Server::start_with(data, &[("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", crate::server::ADMIN_KEY)]);
    // The restarted server has another port: compare without URLs.
    let base = format!("{}/scim/v2/{}", server.base, scim.tenant_id);
    let scim = Scim { base: base.clone(), ..scim.with_token(&scim.token) };
    let strip =
        |v: Value| serde_json::from_str::<Value>(&v.to_string().replace(&before_base(&v), "")).unwrap();
    let after = (scim.fetch(&format!("/Users/{}", id(&ada))), scim.fetch(&format!("/Groups/{}", id(&group))));
    assert_eq!(strip(after.0), strip(before.0));
    assert_eq!(strip(after.1), strip(before.1));
    assert_eq!(scim.search("Users", "userName eq \"ada@acme.test\"").len(), 1);
}

/// The SCIM base URL in a resource's `meta.location`.
fn before_base(resource: &Value) -> String {
    let location = resource["meta"]["location"].as_str().unwrap();
    location[..location.find("/scim/v2/").unwrap()].to_owned()
}

#[test]
fn a_put_without_active_does_not_reactivate_and_a_user_name_is_not_an_email() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let mut body = user("ada@acme.test");
    body["active"] = json!(false);
    let created = ok(scim.post("/Users", body.clone()), 201);
    body.as_object_mut().unwrap().remove("active");
    let replaced = ok(scim.put(&format!("/Users/{}", id(&created)), body), 200);
    assert!(replaced.get("active").is_none());
    // Still inactive: the seat limit sees no active user.
    server.patch(&format!("/api/v1/tenants/{}", scim.tenant_id), json!({"seat_limit": 1}));
    scim.create_user("bob@acme.test");
    // A userName equal to another user's email is not a sign-in address clash: only emails are.
    let carol = json!({"schemas": [USER_SCHEMA], "userName": "carol", "active": false,
        "emails": [{"value": "dave@acme.test", "primary": true}]});
    ok(scim.post("/Users", carol), 201);
    ok(
        scim.post("/Users", json!({"schemas": [USER_SCHEMA], "userName": "dave@acme.test", "active": false})),
        201,
    );
}

#[test]
fn oversized_and_odd_input_is_refused_or_ignored_not_crashed_on() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let created = ok(scim.post("/Users", json!({"userName": "ada", "部署名": "R&D", "€€": 1})), 201);
    assert!(created.get("部署名").is_none());
    let many: Vec<Value> = (0..1001).map(|i| json!({"value": format!("a{i}@x.test")})).collect();
    scim_error(scim.post("/Users", json!({"userName": "bob", "emails": many})), 400, Some("invalidValue"));
    let ops: Vec<Value> =
        (0..1001).map(|i| json!({"op": "replace", "path": "title", "value": format!("t{i}")})).collect();
    scim_error(
        scim.patch(&format!("/Users/{}", id(&created)), patch_op(json!(ops))),
        400,
        Some("invalidValue"),
    );
    scim_error(scim.post("/Users", json!({"userName": "x".repeat(2000)})), 400, Some("invalidValue"));
}
