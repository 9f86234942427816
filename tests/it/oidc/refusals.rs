//! Every check of the callback refuses its attack with a page naming the check and an audit
//! record, and signs nobody in: forged, replayed, late or misdirected callbacks, and ID tokens
//! crafted at the provider (alg none, HMAC keyed with the public key, another key, wrong
//! audience, issuer, authorized party, nonce, times, unknown key).

use std::{thread, time::Duration};

use serde_json::{Value, json};

use super::{Op, Sso, audit, come_back, through_idp, to_idp};
use crate::{
    provider::{Browser, Page},
    server::Server,
};

fn set_up() -> (Server, Op, Sso) {
    let (server, op) = (Server::start(), Op::start(json!({})));
    let sso = Sso::set_up(&server, &op, json!({}), json!({}));
    (server, op, sso)
}

/// Starts a login and returns the browser, the app's pending authorization and the callback URL
/// the IdP sent the browser to (not yet opened).
fn at_callback(server: &Server, op: &Op, sso: &Sso) -> (Browser, crate::provider::Pending, String) {
    at_callback_asking(server, op, sso, "")
}

/// `at_callback`, with `extra` parameters on the app's authorization request.
fn at_callback_asking(
    server: &Server,
    op: &Op,
    sso: &Sso,
    extra: &str,
) -> (Browser, crate::provider::Pending, String) {
    let mut browser = Browser::new();
    let pending = sso.app.authorize(&["openid"]);
    let sent = to_idp(server, &mut browser, &format!("{}{extra}", pending.url), "ada@acme.test");
    let callback = through_idp(&mut browser, op, &sent, &sso.callback());
    (browser, pending, callback)
}

fn assert_refused(page: &Page, status: u16, check: &str) {
    assert_eq!(page.status, status, "{check}: {}", page.body);
    assert!(page.body.contains(&format!("<code>{check}</code>")), "expected {check}: {}", page.body);
}

fn last_refusal(server: &Server) -> Value {
    audit(server, "sso.oidc.refused").last().cloned().expect("a refusal was audited")
}

fn with_param(url: &str, name: &str, value: Option<&str>) -> String {
    let mut url = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().filter(|(k, _)| k != name).collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    if let Some(value) = value {
        url.query_pairs_mut().append_pair(name, value);
    }
    url.to_string()
}

#[test]
fn a_forged_replayed_misdirected_or_foreign_callback_is_refused() {
    let (server, op, sso) = set_up();

    let no_state = Browser::new().get(&format!("{}?code=x", sso.callback()));
    assert_refused(&no_state, 400, "unknown_state");
    let forged = Browser::new().get(&format!("{}?code=x&state=made-up", sso.callback()));
    assert_refused(&forged, 400, "unknown_state");
    assert_eq!(last_refusal(&server)["detail"]["check"], "unknown_state");

    // Login CSRF: the attacker's own callback, opened in the victim's browser.
    let (_attacker, _, callback) = at_callback(&server, &op, &sso);
    let mut victim = Browser::new();
    assert_refused(&victim.get(&callback), 403, "wrong_browser");
    assert!(!victim.has_session());

    // The right browser, twice: the first signs in, the second is refused.
    let (browser, pending, callback) = at_callback(&server, &op, &sso);
    let signed_in = come_back(&sso.app, browser, pending, &callback).signed_in();
    let mut browser = signed_in.browser;
    assert_refused(&browser.get(&callback), 403, "already_answered");

    // A state made for another connection's callback.
    let (mut browser, _, callback) = at_callback(&server, &op, &sso);
    let elsewhere =
        callback.replace(sso.connection["id"].as_str().unwrap(), "0190b0c0-0000-7000-8000-000000000000");
    assert_refused(&browser.get(&elsewhere), 403, "wrong_connection");

    // The issuer named in the response (RFC 9207) is checked, and required where promised.
    assert_refused(
        &browser.get(&with_param(&callback, "iss", Some("https://evil.test"))),
        403,
        "issuer_parameter",
    );
    assert_refused(&browser.get(&with_param(&callback, "iss", None)), 403, "issuer_parameter_missing");

    // The IdP's own refusal is shown, not mistaken for a login.
    let denied = with_param(&with_param(&callback, "code", None), "error", Some("access_denied"));
    let denied = with_param(&denied, "error_description", Some("the user said no"));
    let page = browser.get(&denied);
    assert_refused(&page, 403, "idp_error");
    assert!(page.body.contains("the user said no"), "{}", page.body);
    assert_refused(&browser.get(&with_param(&callback, "code", None)), 400, "missing_code");
    // None of these spent the login: the genuine callback still works.
    let signed_in = browser.get(&callback);
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert!(browser.has_session());
}

#[test]
fn a_callback_after_the_login_timed_out_is_refused() {
    let server = Server::start_with_settings(&[("PORTCULLIS_SSO_LOGIN_TIMEOUT_SECS", "5")]);
    let op = Op::start(json!({}));
    let sso = Sso::set_up(&server, &op, json!({}), json!({}));
    let (mut browser, _, callback) = at_callback(&server, &op, &sso);
    thread::sleep(Duration::from_secs(6));
    let page = browser.get(&callback);
    assert_refused(&page, 403, "login_expired");
    assert!(page.body.contains("took too long"), "{}", page.body);
    assert!(!browser.has_session());
}

#[test]
fn crafted_id_tokens_are_refused_each_by_its_check() {
    let (server, op, sso) = set_up();
    let client_id = "portcullis";
    let cases: Vec<(&str, Value, &str)> = vec![
        ("alg none", json!({ "sign": "none" }), "algorithm"),
        ("HMAC keyed with the public key", json!({ "sign": "hs256-with-public-key" }), "algorithm"),
        ("signed by another key", json!({ "sign": "other-key" }), "signature_invalid"),
        ("a key the IdP does not publish", json!({ "header": { "kid": "not-a-key" } }), "unknown_key"),
        ("another audience", json!({ "claims": { "aud": "someone-else" } }), "audience"),
        (
            "an extra audience",
            json!({ "claims": { "aud": [client_id, "someone-else"], "azp": client_id } }),
            "audience",
        ),
        ("another issuer", json!({ "claims": { "iss": "https://evil.test" } }), "issuer"),
        ("another authorized party", json!({ "claims": { "azp": "someone-else" } }), "authorized_party"),
        ("expired", json!({ "claims": { "exp": 1_000_000_000 } }), "expired"),
        (
            "issued in the future",
            json!({ "claims": { "iat": 4_000_000_000u64, "exp": 4_000_000_600u64 } }),
            "issue_time",
        ),
        ("another nonce", json!({ "claims": { "nonce": "replayed-from-elsewhere" } }), "nonce"),
        ("no nonce", json!({ "claims": { "nonce": null } }), "nonce"),
    ];
    for (name, transform, check) in cases {
        let (mut browser, _, callback) = at_callback(&server, &op, &sso);
        op.control("next-id-token", transform);
        let page = browser.get(&callback);
        assert!(
            page.body.contains(&format!("<code>{check}</code>")),
            "{name}: expected {check}, got {} {}",
            page.status,
            page.body
        );
        assert!(!browser.has_session(), "{name}: nobody is signed in");
        let refusal = last_refusal(&server);
        assert_eq!(refusal["detail"]["check"], check, "{name}: {refusal}");
        if ["algorithm", "signature_invalid", "unknown_key"].contains(&check) {
            assert!(page.body.contains("could not be verified"), "{name}: one sentence for the cryptography");
        }
    }
    // After all of that, a genuine login works.
    let (browser, pending, callback) = at_callback(&server, &op, &sso);
    come_back(&sso.app, browser, pending, &callback).signed_in();
}

#[test]
fn a_disabled_connection_or_suspended_tenant_signs_nobody_in() {
    let (server, op, sso) = set_up();
    let (mut browser, _, callback) = at_callback(&server, &op, &sso);
    assert_eq!(server.patch(&sso.api_path(""), json!({ "enabled": false })).status(), 200);
    assert_refused(&browser.get(&callback), 403, "connection_disabled");
    assert_eq!(server.patch(&sso.api_path(""), json!({ "enabled": true })).status(), 200);
    let (mut browser, _, callback) = at_callback(&server, &op, &sso);
    let suspended =
        server.patch(&format!("/api/v1/tenants/{}", sso.tenant), json!({ "status": "suspended" }));
    assert_eq!(suspended.status(), 200);
    assert_refused(&browser.get(&callback), 403, "tenant_suspended");
    assert!(!browser.has_session());
}

#[test]
fn a_fresh_login_the_app_asked_for_must_be_fresh_at_the_idp() {
    let (server, op, sso) = set_up();
    for (name, transform) in [
        ("a remembered login", json!({ "claims": { "auth_time": 1_000_000_000 } })),
        ("no auth_time", json!({ "claims": { "auth_time": null } })),
    ] {
        let (mut browser, _, callback) = at_callback_asking(&server, &op, &sso, "&prompt=login");
        op.control("next-id-token", transform);
        let page = browser.get(&callback);
        assert!(page.body.contains("<code>auth_time</code>"), "{name}: {} {}", page.status, page.body);
        assert!(!browser.has_session(), "{name}");
    }
    let (browser, pending, callback) = at_callback_asking(&server, &op, &sso, "&prompt=login");
    let signed_in = come_back(&sso.app, browser, pending, &callback).signed_in();
    assert!(signed_in.claims["auth_time"].is_number());
    let (browser, pending, callback) = at_callback_asking(&server, &op, &sso, "&max_age=300");
    come_back(&sso.app, browser, pending, &callback).signed_in();
}
