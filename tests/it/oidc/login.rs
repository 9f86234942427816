//! A tenant's people sign in through its OpenID Provider: claims from the ID token or userinfo,
//! mapping, just-in-time users, key rotation at the provider, connection tests, and the admin
//! API around it.

use serde_json::{Value, json};

use super::{CLIENT_SECRET, Op, Sso, audit, sign_in, through_idp, to_idp};
use crate::{provider::Browser, scim::ok, server::Server};

fn ada_claims() -> Value {
    json!({
        "email": "ada@acme.test", "email_verified": true, "preferred_username": "ada@acme.test",
        "given_name": "Ada", "family_name": "Lovelace", "name": "Ada Lovelace",
        "groups": ["Engineering", "Admins"], "department": "R&D",
    })
}

const SCOPES: [&str; 5] = ["openid", "email", "profile", "groups", "org"];

/// The SCIM form of a user, read with a SCIM token of the tenant.
fn scim_user(server: &Server, tenant: &str, user: &str) -> Value {
    let token =
        ok(server.post(&format!("/api/v1/tenants/{tenant}/scim-tokens"), json!({ "name": "reader" })), 201);
    let response = reqwest::blocking::Client::new()
        .get(server.url(&format!("/scim/v2/{tenant}/Users/{user}")))
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().unwrap()
}

#[test]
fn a_provisioned_user_signs_in_with_claims_read_from_userinfo() {
    let (server, op) = (Server::start(), Op::start(json!({ "accounts": { "ada@acme.test": ada_claims() } })));
    let sso = Sso::set_up(&server, &op, json!({ "scopes": SCOPES }), json!({}));
    assert_eq!(sso.connection["enabled"], true, "complete settings are enabled: {}", sso.connection);
    assert_eq!(sso.connection["client_secret_set"], true);
    assert!(!sso.connection.to_string().contains(CLIENT_SECRET), "the secret is never shown again");
    assert_eq!(sso.connection["discovered"]["authorization_response_iss_parameter_supported"], true);

    let signed_in = sign_in(&server, &op, &sso, "ada@acme.test", "ada@acme.test").signed_in();
    assert_eq!(signed_in.claims["sub"], sso.user, "the provisioned user, found by preferred_username");
    let logins = audit(&server, "sso.oidc.login");
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert_eq!(logins[0]["detail"]["sub"], "ada@acme.test");
    assert!(logins[0]["detail"]["sid"].is_string(), "the IdP session is kept for back-channel logout");
    let sessions =
        ok(server.get(&format!("/api/v1/tenants/{}/users/{}/sessions", sso.tenant, sso.user)), 200);
    let idp = sso.connection["id"].as_str().unwrap();
    assert_eq!(sessions["items"][0]["idp"], format!("oidc:{idp}"), "{sessions}");
    assert!(!server.stderr().contains(CLIENT_SECRET), "no secret in the logs");
}

#[test]
fn unknown_people_are_created_just_in_time_with_their_mapped_claims() {
    let mut grace = ada_claims();
    grace["email"] = json!("grace@acme.test");
    grace["preferred_username"] = json!("ghopper");
    grace["given_name"] = json!("Grace");
    grace["family_name"] = json!("Hopper");
    grace["department"] = json!("Navy");
    let (server, op) = (Server::start(), Op::start(json!({ "accounts": { "grace@acme.test": grace } })));
    let settings = json!({ "scopes": SCOPES, "jit_provisioning": true, "claim_mapping": { "custom": { "division": "department" } } });
    let sso = Sso::set_up(&server, &op, settings, json!({}));

    let first = sign_in(&server, &op, &sso, "grace@acme.test", "grace@acme.test").signed_in();
    assert_ne!(first.claims["sub"], sso.user);
    assert_eq!(first.claims["email"], "grace@acme.test");
    let user = scim_user(&server, &sso.tenant, first.claims["sub"].as_str().unwrap());
    assert_eq!(user["userName"], "grace@acme.test");
    assert_eq!(user["name"]["givenName"], "Grace");
    assert_eq!(user["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"], "Navy");
    let created = audit(&server, "sso.user.create");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["actor"]["id"], format!("oidc:{}", sso.connection["id"].as_str().unwrap()));

    let again = sign_in(&server, &op, &sso, "grace@acme.test", "grace@acme.test").signed_in();
    assert_eq!(again.claims["sub"], first.claims["sub"], "the second login finds the user the first created");
}

#[test]
fn without_just_in_time_creation_a_stranger_is_refused_and_an_unverified_address_never_matches() {
    let (server, op) = (
        Server::start(),
        Op::start(json!({ "accounts": {
            "eve@acme.test": { "email": "eve@acme.test", "email_verified": true },
            "mallory@acme.test": { "email": "ada@acme.test", "email_verified": false },
        } })),
    );
    let sso = Sso::set_up(&server, &op, json!({}), json!({}));
    let refused = sign_in(&server, &op, &sso, "eve@acme.test", "eve@acme.test").refused();
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("<code>unknown_user</code>"), "{}", refused.body);
    // Mallory's IdP account claims Ada's address without having verified it.
    let refused = sign_in(&server, &op, &sso, "ada@acme.test", "mallory@acme.test").refused();
    assert!(refused.body.contains("<code>unknown_user</code>"), "{}", refused.body);
    let refusals = audit(&server, "sso.oidc.refused");
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert_eq!(refusals[1]["detail"]["check"], "unknown_user");
}

#[test]
fn an_id_token_carrying_the_claims_needs_no_userinfo_and_es256_keys_verify() {
    let op = Op::start(json!({ "id_token_claims": true, "accounts": { "ada@acme.test": ada_claims() } }));
    let server = Server::start();
    let sso = Sso::set_up(
        &server,
        &op,
        json!({ "scopes": SCOPES }),
        json!({ "id_token_signed_response_alg": "ES256" }),
    );
    let signed_in = sign_in(&server, &op, &sso, "ada@acme.test", "ada@acme.test").signed_in();
    assert_eq!(signed_in.claims["sub"], sso.user);
}

#[test]
fn client_secret_post_and_ps256_interoperate() {
    let (server, op) = (Server::start(), Op::start(json!({ "accounts": { "ada@acme.test": ada_claims() } })));
    let sso = Sso::set_up(
        &server,
        &op,
        json!({ "token_auth_method": "client_secret_post" }),
        json!({ "token_endpoint_auth_method": "client_secret_post", "id_token_signed_response_alg": "PS256" }),
    );
    sign_in(&server, &op, &sso, "ada@acme.test", "ada@acme.test").signed_in();
}

#[test]
fn a_key_rotated_at_the_provider_is_fetched_once_and_logins_go_on() {
    let config = json!({ "accounts": { "ada@acme.test": ada_claims() } });
    let (server, op) = (Server::start(), Op::start(config.clone()));
    let sso = Sso::set_up(&server, &op, json!({}), json!({}));
    sign_in(&server, &op, &sso, "ada@acme.test", "ada@acme.test").signed_in();

    // The provider restarts with new keys only: the key Portcullis cached is gone.
    let old_kids: Vec<Value> =
        op.jwks()["keys"].as_array().unwrap().iter().map(|k| k["kid"].clone()).collect();
    let client = json!({
        "client_id": "portcullis", "client_secret": CLIENT_SECRET,
        "redirect_uris": [sso.connection["urls"]["callback"]],
        "backchannel_logout_uri": sso.connection["urls"]["backchannel_logout"],
        "backchannel_logout_session_required": true,
    });
    let mut rotated = config.clone();
    rotated["clients"] = json!([client]);
    let op = op.restart(rotated);
    let new_kids: Vec<Value> =
        op.jwks()["keys"].as_array().unwrap().iter().map(|k| k["kid"].clone()).collect();
    assert!(new_kids.iter().all(|kid| !old_kids.contains(kid)), "the keys really changed");

    let again = sign_in(&server, &op, &sso, "ada@acme.test", "ada@acme.test").signed_in();
    assert_eq!(again.claims["sub"], sso.user);
    assert!(audit(&server, "sso.oidc.refused").is_empty(), "no login was refused during the rotation");
    assert_eq!(
        server.stderr().matches("fetched an issuer's signing keys again").count(),
        1,
        "one refresh for the new key"
    );
}

#[test]
fn a_connection_test_shows_the_claims_and_the_mapped_user_and_signs_nobody_in() {
    let (server, op) = (Server::start(), Op::start(json!({ "accounts": { "ada@acme.test": ada_claims() } })));
    let sso = Sso::set_up(&server, &op, json!({ "scopes": SCOPES, "enabled": false }), json!({}));
    assert_eq!(sso.connection["enabled"], false);
    let test = ok(server.post(&sso.api_path("/tests"), json!({})), 201);
    let mut browser = Browser::new();
    let start = test["start_url"].as_str().unwrap();
    let sent = browser.get(start);
    let sent = super::with_login_hint(sent, "ada@acme.test");
    let callback = through_idp(&mut browser, &op, &sent, &sso.callback());
    let shown = browser.get(&callback);
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(shown.body.contains("passed every check"), "{}", shown.body);
    assert!(shown.body.contains("Engineering"), "the groups claim is shown: {}", shown.body);
    assert!(!browser.has_session(), "a test signs nobody in");

    let result = ok(server.get(&sso.api_path(&format!("/tests/{}", test["id"].as_str().unwrap()))), 200);
    assert_eq!(result["status"], "done");
    assert_eq!(result["result"]["ok"], true);
    assert_eq!(result["result"]["user"]["id"], sso.user);
    assert_eq!(result["result"]["mapped"]["department"], "R&D");
    assert_eq!(result["result"]["mapped"]["groups"], json!(["Engineering", "Admins"]));
    assert_eq!(audit(&server, "sso.oidc.test").len(), 1);
    let again = browser.get(&callback);
    assert!(again.body.contains("<code>already_answered</code>"), "{}", again.body);
}

#[test]
fn a_connection_test_whose_token_fails_a_check_ends_with_that_check() {
    let (server, op) = (Server::start(), Op::start(json!({ "accounts": { "ada@acme.test": ada_claims() } })));
    let sso = Sso::set_up(&server, &op, json!({ "scopes": SCOPES, "enabled": false }), json!({}));
    let test = ok(server.post(&sso.api_path("/tests"), json!({})), 201);
    let result_path = sso.api_path(&format!("/tests/{}", test["id"].as_str().unwrap()));
    // The IdP signs the ID token with a key it does not publish.
    op.control("next-id-token", json!({ "sign": "other-key" }));
    let mut browser = Browser::new();
    let sent = super::with_login_hint(browser.get(test["start_url"].as_str().unwrap()), "ada@acme.test");
    let callback = through_idp(&mut browser, &op, &sent, &sso.callback());
    let refused = browser.get(&callback);
    assert!(refused.body.contains("<code>"), "the tab names the check: {}", refused.body);
    let result = ok(server.get(&result_path), 200);
    assert_eq!(
        (result["status"].as_str(), result["result"]["ok"].as_bool()),
        (Some("done"), Some(false)),
        "{result}"
    );
    assert_eq!(result["result"]["stage"], "message");
    assert!(result["result"]["check"].is_string(), "{result}");
    assert!(!browser.has_session());
}

#[test]
fn the_admin_api_checks_settings_and_audits_changes_without_the_secret() {
    let (server, op) = (Server::start(), Op::start(json!({})));
    let tenant = server.create_tenant("acme", &["acme.test"]);
    let path = format!("/api/v1/tenants/{}/oidc-connections", tenant["id"].as_str().unwrap());

    let unreachable = server.post(&path, json!({ "name": "x", "issuer": "http://127.0.0.1:9/nothing" }));
    crate::server::expect_error(unreachable, 400, "invalid_value");
    let plain_http = server.post(&path, json!({ "name": "x", "issuer": "http://idp.example.com" }));
    crate::server::expect_error(plain_http, 400, "invalid_value");
    let wrong_issuer = server.post(&path, json!({ "name": "x", "issuer": format!("{}/", op.issuer) }));
    let body = crate::server::expect_error(wrong_issuer, 400, "invalid_value");
    assert!(body["message"].as_str().unwrap().contains("names the issuer"), "{body}");
    let incomplete = ok(server.post(&path, json!({ "name": "Draft", "issuer": op.issuer })), 201);
    assert_eq!(incomplete["enabled"], false);
    assert_eq!(incomplete["missing"], json!(["client_id", "client_secret"]));
    let id = incomplete["id"].as_str().unwrap();
    let enable = server.patch(&format!("{path}/{id}"), json!({ "enabled": true }));
    crate::server::expect_error(enable, 400, "invalid_value");
    let bad_scope = server.patch(&format!("{path}/{id}"), json!({ "scopes": ["openid", "a b"] }));
    crate::server::expect_error(bad_scope, 400, "invalid_value");
    let unknown_field = server.patch(&format!("{path}/{id}"), json!({ "client_secrets": "x" }));
    assert_eq!(unknown_field.status(), 400);

    let done = ok(
        server.patch(
            &format!("{path}/{id}"),
            json!({ "client_id": "portcullis", "client_secret": "s3cr3t-value", "enabled": true, "scopes": ["email"] }),
        ),
        200,
    );
    assert_eq!(done["enabled"], true);
    assert_eq!(done["scopes"], json!(["openid", "email"]));
    let updates = audit(&server, "admin.oidc_connection.update");
    assert!(!updates.iter().any(|u| u.to_string().contains("s3cr3t-value")), "{updates:?}");
    assert_eq!(updates.last().unwrap()["detail"]["client_secret_changed"], true);
    let stored = std::fs::read(server.data_dir().join("portcullis.redb")).unwrap();
    assert!(!stored.windows(12).any(|w| w == b"s3cr3t-value"), "the secret is sealed at rest");
    assert_eq!(server.delete(&format!("{path}/{id}")).status(), 204);
    assert_eq!(server.get(&format!("{path}/{id}")).status(), 404);
}

#[test]
fn the_typed_address_reaches_the_idp_as_a_login_hint_and_the_request_carries_pkce_state_and_nonce() {
    let (server, op) = (Server::start(), Op::start(json!({})));
    let sso = Sso::set_up(&server, &op, json!({}), json!({}));
    let mut browser = Browser::new();
    let pending = sso.app.authorize(&["openid"]);
    let sent = to_idp(&server, &mut browser, &pending.url, "ada@acme.test");
    let url = url::Url::parse(sent.location.as_deref().unwrap()).unwrap();
    let params: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert!(url.as_str().starts_with(&op.issuer));
    assert_eq!(params["login_hint"], "ada@acme.test");
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["redirect_uri"], sso.callback());
    assert!(params["state"].len() >= 43 && params["nonce"].len() >= 43);
    assert_eq!(params["scope"], "openid email profile");
}
