//! SP- and IdP-initiated login with the independent IdP: each signing and encryption shape,
//! the user mapping, and the one-time rules.

use serde_json::json;

use super::{Idp, Sso, audit, post_response};
use crate::{
    provider::{Browser, callback_params},
    server::Server,
};

/// Signs ada in through the IdP with a Response made with `shape`; returns the ID token claims.
fn sign_in_with(shape: &[&str]) -> serde_json::Value {
    let server = Server::start();
    let idp = Idp::new();
    let sso = Sso::set_up(&server, &idp, json!({}));
    let mut browser = Browser::new();
    let (pending, request, relay_state) = sso.start(&server, &idp, &mut browser, "ada@acme.test");
    assert_eq!(request["signature_valid"], true, "the IdP verified our AuthnRequest: {request}");
    assert_eq!(request["acs_url"], sso.acs());
    let mut options = shape.to_vec();
    let cert = idp.path("sp-encryption.crt");
    if options.contains(&"--encrypt") {
        options.extend(["--sp-cert", cert.as_str()]);
    }
    let xml = sso.response(&idp, Some(request["id"].as_str().unwrap()), "ada@acme.test", &options);
    let back = post_response(&mut browser, &sso.acs(), &xml, &relay_state);
    assert_eq!(back.status, 303, "{}", back.body);
    let params = callback_params(back.location.as_deref().unwrap());
    assert_eq!(params["state"], pending.state);
    let tokens = sso.app.exchange(&params["code"], pending.verifier);
    let id_token = tokens.extra_fields().id_token().unwrap();
    let claims: serde_json::Value = {
        let payload = id_token.to_string().split('.').nth(1).unwrap().to_owned();
        serde_json::from_slice(&base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap())
            .unwrap()
    };
    assert_eq!(claims["sub"], sso.user);
    assert_eq!(claims["amr"], json!(["fed"]));
    assert_eq!(claims["idp"], format!("saml:{}", sso.connection["id"].as_str().unwrap()));
    let logins = audit(&server, "sso.saml.login");
    assert_eq!(logins.len(), 1, "{logins:?}");
    claims
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
    sign_in_with(&["--encrypt", "--no-sign-response", "--enc-alg", "aes256-gcm", "--key-transport", "rsa-oaep"]);
}
