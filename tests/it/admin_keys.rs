//! Admin API keys: creation (shown once), listing, revocation, and the refusals.

use reqwest::Method;
use serde_json::{Value, json};

use crate::server::{ADMIN_KEY, Server, expect_error};

#[test]
fn keys_are_shown_once_work_and_stop_working_when_revoked() {
    let server = Server::start();
    let response = server.post("/api/v1/admin-keys", json!({ "name": "ci robot" }));
    assert_eq!(response.status(), 201);
    let created: Value = response.json().unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("pcak_"));
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));

    let listed: Value = server.get("/api/v1/admin-keys").json().unwrap();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|k| k.get("key").is_none() && k.get("digest").is_none()));
    assert!(!listed.to_string().contains(&key));
    // The operator's own first key shows none of its characters.
    assert!(items.iter().any(|k| k["prefix"] == "(supplied)"));
    assert!(!listed.to_string().contains(&ADMIN_KEY[..8]));

    let with_new_key = |method, path: &str| server.anonymous(method, path).bearer_auth(&key).send().unwrap();
    assert_eq!(with_new_key(Method::GET, "/api/v1/tenants").status(), 200);

    let id = created["id"].as_str().unwrap();
    assert_eq!(server.delete(&format!("/api/v1/admin-keys/{id}")).status(), 204);
    expect_error(with_new_key(Method::GET, "/api/v1/tenants"), 401, "invalid_token");
    let listed: Value = server.get("/api/v1/admin-keys").json().unwrap();
    let revoked = listed["items"].as_array().unwrap().iter().find(|k| k["id"] == id).unwrap().clone();
    assert!(revoked["revoked_at"].is_string());

    // Both are in the audit trail, after the first key's creation at the first start; no key is.
    let created = server.audit("admin.admin_key.create");
    assert_eq!(created.len(), 2);
    assert_eq!(
        (&created[0]["actor"]["kind"], &created[0]["actor"]["id"]),
        (&json!("system"), &json!("init"))
    );
    assert_eq!(created[0]["detail"]["origin"], "bootstrap_admin_key");
    assert_eq!(created[1]["actor"]["kind"], "admin_key");
    assert_eq!(created[1]["actor"]["id"], created[0]["target"]["id"], "made with the first key");
    assert_eq!(
        (&created[1]["target"]["id"], &created[1]["target"]["label"]),
        (&json!(id), &json!("ci robot"))
    );
    assert_eq!(created[1]["outcome"], "success");
    let revocations = server.audit("admin.admin_key.revoke");
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0]["target"]["id"], id);
    let trail = json!([created, revocations]).to_string();
    assert!(!trail.contains(&key) && !trail.contains(&key[..12]) && !trail.contains(ADMIN_KEY));
}

#[test]
fn the_last_active_key_cannot_be_revoked() {
    let server = Server::start();
    let listed: Value = server.get("/api/v1/admin-keys").json().unwrap();
    let id = listed["items"][0]["id"].as_str().unwrap().to_owned();
    expect_error(server.delete(&format!("/api/v1/admin-keys/{id}")), 409, "last_admin_key");
    assert_eq!(server.get("/api/v1/tenants").status(), 200);
    expect_error(server.delete("/api/v1/admin-keys/not-an-id"), 404, "not_found");
    expect_error(server.delete("/api/v1/admin-keys/00000000-0000-7000-8000-000000000000"), 404, "not_found");
}

#[test]
fn requests_without_a_valid_key_are_refused_and_change_nothing() {
    let server = Server::start();
    let body = json!({ "slug": "acme", "display_name": "Acme" });
    let attempts = [
        server.anonymous(Method::POST, "/api/v1/tenants").json(&body).send().unwrap(),
        server
            .anonymous(Method::POST, "/api/v1/tenants")
            .bearer_auth("pcak_wrong")
            .json(&body)
            .send()
            .unwrap(),
        server
            .anonymous(Method::POST, "/api/v1/tenants")
            .header("authorization", "Basic YTpi")
            .json(&body)
            .send()
            .unwrap(),
        server
            .anonymous(Method::POST, "/api/v1/tenants")
            .header("authorization", "Bearer")
            .json(&body)
            .send()
            .unwrap(),
    ];
    for (i, response) in attempts.into_iter().enumerate() {
        let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
        let code = if i == 0 { "unauthenticated" } else { "invalid_token" };
        expect_error(response, 401, code);
        assert!(challenge.unwrap().starts_with("Bearer"));
    }
    for path in ["/api/v1/tenants", "/api/v1/tenants/acme", "/api/v1/admin-keys"] {
        expect_error(server.anonymous(Method::GET, path).send().unwrap(), 401, "unauthenticated");
    }
    let listed: Value = server.get("/api/v1/tenants").json().unwrap();
    assert!(listed["items"].as_array().unwrap().is_empty());
}
