//! The whole sign-in lifecycle as an app sees it.

use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use openidconnect::{OAuth2TokenResponse, RefreshToken, TokenResponse, core::CoreUserInfoClaims};
use serde_json::{Value, json};

use super::{App, Browser, LogoutReceiver, callback_params, http, sign_in, tenant_with_password_user};
use crate::{scim::ok, server::Server};

const PASSWORD: &str = "correct horse battery staple";

#[test]
fn an_app_signs_a_person_in_refreshes_and_learns_when_the_session_ends() {
    let server = Server::start();
    let (tenant, ada) = tenant_with_password_user(&server, PASSWORD);
    let receiver = LogoutReceiver::start(&[200]);
    let app = App::register(&server, json!({ "backchannel_logout_uri": receiver.url }));

    // authorize → login → code
    let pending = app.authorize(&["email", "profile", "offline_access"]);
    let mut browser = Browser::new();
    let back = sign_in(&server, &mut browser, &pending.url, "ada@acme.test", PASSWORD);
    assert_eq!(back.status, 303, "{}", back.body);
    let params = callback_params(back.location.as_deref().unwrap());
    assert_eq!(params["state"], pending.state);
    assert_eq!(params["iss"], server.url(""));
    assert!(browser.has_session());

    // code → tokens, the ID token validated by the library (signature by JWKS, iss, aud, nonce).
    let tokens = app.exchange(&params["code"], pending.verifier);
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token.claims(&app.rp.id_token_verifier(), &pending.nonce).unwrap();
    assert_eq!(claims.subject().as_str(), ada);
    assert_eq!(claims.email().unwrap().as_str(), "ada@acme.test");
    let raw: Value = decode_unverified(&id_token.to_string());
    assert_eq!(raw["org_id"], tenant);
    assert_eq!(raw["amr"], json!(["pwd"]));
    assert_eq!(raw["idp"], "password");
    assert!(raw["sid"].is_string());
    assert_eq!(raw["roles"], json!([]));

    // userinfo, with the access token
    let info: CoreUserInfoClaims =
        app.rp.user_info(tokens.access_token().clone(), None).unwrap().request(&http).unwrap();
    assert_eq!(info.subject().as_str(), ada);
    assert_eq!(info.preferred_username().unwrap().as_str(), "ada@acme.test");

    // introspection says active, with the session and the tenant
    let access = tokens.access_token().secret().clone();
    let active = app.introspect(&server, &access);
    assert_eq!(
        (active["active"].as_bool(), active["sid"].clone(), active["org_id"].clone()),
        (Some(true), raw["sid"].clone(), json!(tenant))
    );

    // refresh rotates the refresh token
    let first_refresh = tokens.refresh_token().expect("offline_access gives a refresh token").clone();
    let refreshed = app.rp.exchange_refresh_token(&first_refresh).unwrap().request(&http).unwrap();
    let second_refresh = refreshed.refresh_token().unwrap().clone();
    assert_ne!(second_refresh.secret(), first_refresh.secret());
    assert_eq!(
        app.introspect(&server, first_refresh.secret())["active"],
        false,
        "a replaced token is inactive"
    );
    assert_eq!(app.introspect(&server, second_refresh.secret())["active"], true);

    // A second sign-in in the same browser needs no password: the session answers at once.
    let again = app.authorize(&["email"]);
    let at_once = browser.get(&again.url);
    assert_eq!(at_once.status, 303);
    assert!(callback_params(at_once.location.as_deref().unwrap()).contains_key("code"));

    // The operator ends Ada's sessions: inactive at once, refresh refused, the app told.
    let ended = ok(server.delete(&format!("/api/v1/tenants/{tenant}/users/{ada}/sessions")), 200);
    assert_eq!(ended["ended"], 1);
    assert_eq!(app.introspect(&server, &access)["active"], false);
    let refused = app
        .rp
        .exchange_refresh_token(&RefreshToken::new(second_refresh.secret().clone()))
        .unwrap()
        .request(&http);
    assert!(refused.is_err(), "refresh after revocation");
    let deliveries = receiver.wait_for(1, std::time::Duration::from_secs(10));
    let logout_token = deliveries[0].body.strip_prefix("logout_token=").expect("a logout_token form field");
    let logout = verify_with_jwks(&server, logout_token, &app.client_id);
    assert_eq!(logout["sid"], raw["sid"]);
    assert_eq!(logout["sub"], json!(ada));
    assert!(logout["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(logout.get("nonce").is_none());
}

#[test]
fn rp_initiated_logout_ends_the_session_and_returns_to_a_registered_address() {
    let server = Server::start();
    let (tenant, ada) = tenant_with_password_user(&server, PASSWORD);
    let app =
        App::register(&server, json!({ "post_logout_redirect_uris": ["http://127.0.0.1:9/signed-out"] }));
    let pending = app.authorize(&["email"]);
    let mut browser = Browser::new();
    let back = sign_in(&server, &mut browser, &pending.url, "ada@acme.test", PASSWORD);
    let code = callback_params(back.location.as_deref().unwrap())["code"].clone();
    let tokens = app.exchange(&code, pending.verifier);
    let id_token = tokens.id_token().unwrap().to_string();

    let url = format!(
        "{}?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye",
        server.url("/oauth2/logout"),
        crate::scim::urlencode("http://127.0.0.1:9/signed-out")
    );
    let out = browser.get(&url);
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(out.location.as_deref(), Some("http://127.0.0.1:9/signed-out?state=bye"));
    assert!(!browser.has_session());
    assert_eq!(app.introspect(&server, tokens.access_token().secret())["active"], false);

    // Without a hint, the person must confirm: a link elsewhere cannot sign anyone out.
    let pending = app.authorize(&["email"]);
    sign_in(&server, &mut browser, &pending.url, "ada@acme.test", PASSWORD);
    let confirm = browser.get(&server.url("/oauth2/logout"));
    assert_eq!(confirm.status, 200);
    assert!(browser.has_session(), "nothing ends before the person confirms");
    let done = browser.submit(&server, &confirm, &[]);
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(!browser.has_session());

    // Both ended sessions are in the person's trail, and how they were ended.
    let logouts = server.audit("oauth.logout");
    let via: Vec<&Value> = logouts.iter().map(|r| &r["detail"]["via"]).collect();
    assert_eq!(via, [&json!("id_token_hint"), &json!("confirmation")]);
    assert_eq!(logouts[0]["detail"]["session"], decode_unverified(&id_token)["sid"]);
    assert_eq!(logouts[0]["detail"]["client"], app.client_id.as_str());
    for logout in &logouts {
        assert_eq!((&logout["tenant"], &logout["target"]["id"]), (&json!(tenant), &json!(ada)));
        assert_eq!(logout["actor"]["kind"], "user");
    }
}

#[test]
fn signing_keys_rotate_and_old_tokens_keep_verifying() {
    let server = Server::start();
    tenant_with_password_user(&server, PASSWORD);
    let app = App::register(&server, json!({ "id_token_signing_alg": "ES256" }));
    let pending = app.authorize(&["email"]);
    let mut browser = Browser::new();
    let back = sign_in(&server, &mut browser, &pending.url, "ada@acme.test", PASSWORD);
    let tokens = app.exchange(&callback_params(back.location.as_deref().unwrap())["code"], pending.verifier);
    let before = tokens.access_token().secret().clone();

    // A misspelt option rotates nothing.
    let typo = server.post("/api/v1/signing-keys/rotate", json!({ "immediatly": true }));
    crate::server::expect_error(typo, 400, "malformed_request");
    assert_eq!(server.get("/oauth2/jwks").json::<Value>().unwrap()["keys"].as_array().unwrap().len(), 2);

    // A staged rotation publishes the new keys first: tokens are still signed by the old ones.
    let staged = ok(server.post("/api/v1/signing-keys/rotate", json!({})), 200);
    let statuses: Vec<&str> =
        staged["items"].as_array().unwrap().iter().map(|k| k["status"].as_str().unwrap()).collect();
    assert_eq!(
        (
            statuses.iter().filter(|s| **s == "pending").count(),
            statuses.iter().filter(|s| **s == "active").count()
        ),
        (2, 2)
    );
    let jwks: Value = server.get("/oauth2/jwks").json().unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 4, "the next keys are published before they sign");
    let pending = app.authorize(&["email"]);
    let back = browser.get(&pending.url);
    let staged_tokens =
        app.exchange(&callback_params(back.location.as_deref().unwrap())["code"], pending.verifier);
    let kid = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    assert_eq!(kid(staged_tokens.access_token().secret()), kid(&before), "the handover has not come yet");

    // An immediate rotation (say, after a suspected compromise) hands over at once.
    let keys = ok(server.post("/api/v1/signing-keys/rotate", json!({ "immediate": true })), 200);
    let statuses: Vec<&str> =
        keys["items"].as_array().unwrap().iter().map(|k| k["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "active").count(), 2);
    assert_eq!(statuses.iter().filter(|s| **s == "published").count(), 4);
    let jwks: Value = server.get("/oauth2/jwks").json().unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 6, "the retired keys stay published");
    verify_with_jwks(&server, &before, &app.client_id);
    assert_eq!(app.introspect(&server, &before)["active"], true);

    let pending = app.authorize(&["email"]);
    let back = browser.get(&pending.url);
    let tokens = app.exchange(&callback_params(back.location.as_deref().unwrap())["code"], pending.verifier);
    assert_ne!(kid(tokens.access_token().secret()), kid(&before), "new tokens use the new key");
}

pub(super) fn decode_unverified(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
        .unwrap()
}

/// Verifies a token the way an app would: by its `kid` in the published JWKS, with jsonwebtoken.
fn verify_with_jwks(server: &Server, token: &str, audience: &str) -> Value {
    let jwks: JwkSet = server.get("/oauth2/jwks").json().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("the kid is published");
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[server.url("")]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap().claims
}
