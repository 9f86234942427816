//! SP- and IdP-initiated login with the independent IdP: each signing and encryption shape,
//! the user mapping, and the one-time rules.

use serde_json::{Value, json};

use super::{IDP_SSO, Idp, Sso, audit, claims_of, post_response, sign_in};
use crate::{
    provider::{Browser, callback_params},
    server::Server,
};

/// Signs ada in with a Response of `shape`, on a fresh server; checks what the app learns.
fn sign_in_with(shape: &[&str]) {
    let (server, idp) = (Server::start(), Idp::new());
    let sso = Sso::set_up(&server, &idp, json!({}));
    let claims = sign_in(&server, &idp, &sso, "ada@acme.test", "ada@acme.test", shape).unwrap().claims;
    assert_eq!(claims["sub"], sso.user);
    assert_eq!(claims["amr"], json!(["fed"]));
    assert_eq!(claims["idp"], format!("saml:{}", sso.connection["id"].as_str().unwrap()));
    let logins = audit(&server, "sso.saml.login");
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert_eq!(logins[0]["detail"]["session_index"], "_idp-session-1");
}

#[test]
fn sp_initiated_login_with_a_signed_response_and_assertion_reaches_the_app() {
    sign_in_with(&[]);
}

#[test]
fn a_signed_response_around_an_unsigned_assertion_is_enough() {
    sign_in_with(&["--no-sign-assertion"]);
}

#[test]
fn a_signed_assertion_in_an_unsigned_response_is_enough() {
    sign_in_with(&["--no-sign-response"]);
}

#[test]
fn encrypted_assertions_decrypt_with_every_cipher_okta_entra_and_adfs_use() {
    for (cipher, transport) in [
        ("aes256-cbc", "rsa-oaep-mgf1p"),
        ("aes128-cbc", "rsa-oaep-mgf1p"),
        ("aes256-gcm", "rsa-oaep"),
        ("aes128-gcm", "rsa-oaep"),
    ] {
        sign_in_with(&["--encrypt", "--enc-alg", cipher, "--key-transport", transport]);
    }
}

#[test]
fn a_signed_then_encrypted_assertion_in_an_unsigned_response_is_accepted() {
    sign_in_with(&[
        "--encrypt",
        "--no-sign-response",
        "--enc-alg",
        "aes256-gcm",
        "--key-transport",
        "rsa-oaep",
    ]);
}

#[test]
fn people_are_matched_created_or_refused_as_the_connection_says() {
    let (server, idp) = (Server::start(), Idp::new());
    let sso = Sso::set_up(&server, &idp, json!({}));
    let stranger = sign_in(&server, &idp, &sso, "ada@acme.test", "grace@acme.test", &[]).err().unwrap();
    assert!(stranger.contains("<code>unknown_user</code>"), "{stranger}");

    let enabled = server.patch(&sso.api_path(""), json!({ "jit_provisioning": true }));
    assert_eq!(enabled.status(), 200);
    let attributes = ["--attr", "firstName=Grace", "--attr", "lastName=Hopper", "--attr", "department=Navy"];
    let grace = sign_in(&server, &idp, &sso, "ada@acme.test", "grace@acme.test", &attributes).unwrap().claims;
    assert_ne!(grace["sub"], sso.user);
    assert_eq!(grace["email"], "grace@acme.test");
    let created = audit(&server, "sso.user.create");
    assert_eq!(created.len(), 1, "the just-in-time user is audited as created by the IdP: {created:?}");
    assert_eq!(created[0]["actor"]["kind"], "idp");
    let again = sign_in(&server, &idp, &sso, "ada@acme.test", "grace@acme.test", &attributes).unwrap().claims;
    assert_eq!(again["sub"], grace["sub"], "the second login finds the user the first created");
}

#[test]
fn a_deactivated_user_is_refused() {
    let (server, idp) = (Server::start(), Idp::new());
    let sso = Sso::set_up(&server, &idp, json!({}));
    let token: Value = server
        .post(&format!("/api/v1/tenants/{}/scim-tokens", sso.tenant), json!({ "name": "okta" }))
        .json()
        .unwrap();
    let deactivated = reqwest::blocking::Client::new()
        .patch(server.url(&format!("/scim/v2/{}/Users/{}", sso.tenant, sso.user)))
        .bearer_auth(token["token"].as_str().unwrap())
        .header("content-type", "application/scim+json")
        .body(json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{ "op": "replace", "value": { "active": false } }] }).to_string())
        .send()
        .unwrap();
    assert_eq!(deactivated.status(), 200, "{}", deactivated.text().unwrap());
    let refused = sign_in(&server, &idp, &sso, "ada@acme.test", "ada@acme.test", &[]).err().unwrap();
    assert!(refused.contains("<code>user_deactivated</code>"), "{refused}");
}

#[test]
fn idp_initiated_login_when_allowed_opens_a_session_and_hands_over_to_the_app() {
    let (server, idp) = (Server::start(), Idp::new());
    let sso = Sso::set_up(&server, &idp, json!({ "allow_idp_initiated": true }));
    let mut browser = Browser::new();
    let unsolicited = sso.response(&idp, None, "ada@acme.test", &[]);
    let handed = post_response(&mut browser, &sso.acs(), &unsolicited, "");
    assert_eq!(handed.status, 303, "{}", handed.body);
    let location = handed.location.unwrap();
    assert!(location.starts_with(super::APP_LOGIN), "{location}");
    assert!(location.contains("organization=acme"), "{location}");
    assert!(browser.has_session());
    // The app starts a login for the tenant; the session answers it at once.
    let pending = sso.app.authorize(&["openid"]);
    let answered = browser.get(&format!("{}&organization=acme", pending.url));
    let params = callback_params(answered.location.as_deref().unwrap());
    let tokens = sso.app.exchange(&params["code"], pending.verifier);
    assert_eq!(claims_of(&tokens.extra_fields().id_token().unwrap().to_string())["sub"], sso.user);
    let replay = post_response(&mut Browser::new(), &sso.acs(), &unsolicited, "");
    assert!(replay.body.contains("<code>replayed</code>"), "{}", replay.body);
}

#[test]
fn a_post_binding_idp_gets_a_signed_authn_request_in_a_form_and_prompt_login_forces_authentication() {
    let (server, idp) = (Server::start(), Idp::new());
    let sso = Sso::set_up(&server, &idp, json!({ "idp": { "sso_binding": "http_post" } }));
    let mut browser = Browser::new();
    let pending = sso.app.authorize(&["openid"]);
    let page = sso.begin(&server, &mut browser, &format!("{}&prompt=login", pending.url), "ada@acme.test");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&format!("action=\"{IDP_SSO}\"")), "{}", page.body);
    let value = page.body.split("name=\"SAMLRequest\" value=\"").nth(1).unwrap();
    let encoded = &value[..value.find('"').unwrap()];
    let sp = idp.path("sp.xml");
    let read: Value =
        serde_json::from_str(&idp.tool(&["parse-authn", "--sp-metadata", &sp, "--post-b64", encoded]))
            .unwrap();
    assert_eq!(read["signed"], true);
    assert_eq!(read["signature_valid"], true);
    assert_eq!(read["force_authn"], true, "{read}");
    assert_eq!(read["protocol_binding"], "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST");
}
