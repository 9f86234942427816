//! OIDC Back-Channel Logout from the tenant's IdP: the provider's own logout ends the Portcullis
//! session it started and the app hears of it through its own back-channel logout; crafted
//! logout tokens are refused and change nothing; a token is honoured once.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Op, Sso, audit, sign_in};
use crate::{
    provider::{App, LogoutReceiver},
    saml::SignedIn,
    server::Server,
};

/// A tenant whose app listens for back-channel logouts, and Ada signed in through the OP.
fn signed_in(server: &Server, op: &Op) -> (Sso, LogoutReceiver, SignedIn) {
    let receiver = LogoutReceiver::start(&[200]);
    let sso = Sso::set_up(server, op, json!({}), json!({}));
    let app = App::register(server, json!({ "backchannel_logout_uri": receiver.url }));
    let sso = Sso { app, ..sso };
    let signed_in = sign_in(server, op, &sso, "ada@acme.test", "ada@acme.test").signed_in();
    (sso, receiver, signed_in)
}

fn active(server: &Server, sso: &Sso, signed_in: &SignedIn) -> bool {
    sso.app.introspect(server, &signed_in.access_token)["active"] == json!(true)
}

/// The IdP session of the last login, as the audit trail recorded it.
fn last_sid(server: &Server) -> String {
    audit(server, "sso.oidc.login").last().unwrap()["detail"]["sid"].as_str().unwrap().to_owned()
}

fn logout_token(op: &Op, request: Value) -> Value {
    let mut body = json!({ "client_id": "portcullis", "deliver": true });
    for (key, value) in request.as_object().unwrap() {
        body[key] = value.clone();
    }
    op.control("logout-token", body)
}

#[test]
fn the_providers_logout_ends_the_session_and_the_app_is_told() {
    let (server, op) = (Server::start(), Op::start(json!({})));
    let (sso, receiver, signed_in) = signed_in(&server, &op);
    assert!(active(&server, &sso, &signed_in));

    let ended = op.control("end-session", json!({ "account": "ada@acme.test" }));
    assert_eq!(
        ended["deliveries"][0]["result"], "success",
        "Portcullis accepted the OP's logout token: {ended}"
    );
    assert!(op.backchannel_lines(1)[0].starts_with("backchannel success portcullis"));
    assert!(!active(&server, &sso, &signed_in), "the session ended in the commit that accepted the token");
    let told = receiver.wait_for(1, Duration::from_secs(30));
    assert!(told[0].body.starts_with("logout_token="), "the app got its own logout token");
    let logouts = audit(&server, "sso.oidc.logout");
    assert_eq!(logouts.len(), 1);
    assert_eq!(logouts[0]["detail"]["sessions_ended"].as_array().unwrap().len(), 1);
}

#[test]
fn crafted_logout_tokens_are_refused_and_a_token_works_once() {
    let (server, op) = (Server::start(), Op::start(json!({})));
    let (sso, _receiver, signed_in) = signed_in(&server, &op);
    let sid = last_sid(&server);
    let subject = json!({ "sub": "ada@acme.test", "sid": sid });
    let cases: Vec<(&str, Value, &str)> = vec![
        ("an ID token's nonce", json!({ "claims": { "nonce": "n" } }), "logout_token"),
        ("no logout event", json!({ "claims": { "events": null } }), "logout_token"),
        ("another event", json!({ "claims": { "events": { "urn:other": {} } } }), "logout_token"),
        ("neither sub nor sid", json!({ "sub": null, "sid": null }), "logout_token"),
        ("no jti", json!({ "claims": { "jti": null } }), "logout_token"),
        ("another audience", json!({ "claims": { "aud": "someone-else" } }), "audience"),
        ("another issuer", json!({ "claims": { "iss": "https://evil.test" } }), "issuer"),
        ("expired", json!({ "claims": { "iat": 1_000_000_000, "exp": 1_000_000_120 } }), "expired"),
        ("alg none", json!({ "sign": "none" }), "algorithm"),
        ("HMAC keyed with the public key", json!({ "sign": "hs256-with-public-key" }), "algorithm"),
        ("signed by another key", json!({ "sign": "other-key" }), "signature_invalid"),
        ("an ID token's type", json!({ "header": { "typ": "JWT+id" } }), "logout_token"),
    ];
    for (name, crafted, check) in cases {
        let mut request = subject.clone();
        for (key, value) in crafted.as_object().unwrap() {
            request[key] = value.clone();
        }
        let answer = logout_token(&op, request);
        assert_eq!(answer["status"], 400, "{name}: {answer}");
        let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["error"], "invalid_request", "{name}: {body}");
        let refusal = audit(&server, "sso.oidc.logout_refused").last().cloned().unwrap();
        assert_eq!(refusal["detail"]["check"], check, "{name}: {refusal}");
        assert!(active(&server, &sso, &signed_in), "{name}: the session lives on");
    }

    let genuine = logout_token(&op, subject);
    assert_eq!(genuine["status"], 200, "{genuine}");
    assert!(!active(&server, &sso, &signed_in));
    let replayed = reqwest::blocking::Client::new()
        .post(sso.connection["urls"]["backchannel_logout"].as_str().unwrap())
        .form(&[("logout_token", genuine["logout_token"].as_str().unwrap())])
        .send()
        .unwrap();
    assert_eq!(replayed.status(), 400);
    let refusal = audit(&server, "sso.oidc.logout_refused").last().cloned().unwrap();
    assert_eq!(refusal["detail"]["check"], "logout_replayed");
}

#[test]
fn a_logout_token_naming_only_the_subject_ends_every_session_from_that_provider() {
    let (server, op) = (Server::start(), Op::start(json!({})));
    let (sso, _receiver, first) = signed_in(&server, &op);
    let second = sign_in(&server, &op, &sso, "ada@acme.test", "ada@acme.test").signed_in();
    let answer = logout_token(&op, json!({ "sub": "ada@acme.test" }));
    assert_eq!(answer["status"], 200, "{answer}");
    assert!(!active(&server, &sso, &first) && !active(&server, &sso, &second));
    let logouts = audit(&server, "sso.oidc.logout");
    assert_eq!(logouts[0]["detail"]["sessions_ended"].as_array().unwrap().len(), 2, "{logouts:?}");
}

#[test]
fn the_apps_logout_signs_the_person_out_at_the_provider_where_the_connection_says_so() {
    const GOODBYE: &str = "http://127.0.0.1:9/goodbye";
    let (server, op) = (Server::start(), Op::start(json!({})));
    let sso = Sso::set_up(&server, &op, json!({ "sign_out_at_idp": true }), json!({}));
    let app = App::register(&server, json!({ "post_logout_redirect_uris": [GOODBYE] }));
    let sso = Sso { app, ..sso };
    let mut signed_in = sign_in(&server, &op, &sso, "ada@acme.test", "ada@acme.test").signed_in();
    let logout = format!(
        "{}?id_token_hint={}&post_logout_redirect_uri={GOODBYE}&state=s-9",
        server.url("/oauth2/logout"),
        signed_in.id_token
    );
    let to_idp = signed_in.browser.get(&logout);
    assert_eq!(to_idp.status, 303, "{}", to_idp.body);
    let location = to_idp.location.unwrap();
    let url = url::Url::parse(&location).unwrap();
    let params: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert!(location.starts_with(&format!("{}/session/end", op.issuer)), "{location}");
    assert_eq!(params["client_id"], "portcullis");
    assert_eq!(
        params["post_logout_redirect_uri"],
        sso.connection["urls"]["post_logout_redirect"].as_str().unwrap()
    );
    assert!(params["id_token_hint"].split('.').count() == 3, "the IdP's own ID token is the hint");
    assert!(!active(&server, &sso, &signed_in), "the session ended before the browser left");

    // At the IdP: its confirmation form, then back to Portcullis, then on to the app.
    let confirm = signed_in.browser.get(&location);
    let xsrf =
        confirm.body.split("name=\"xsrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let done = signed_in
        .browser
        .post(&format!("{}/session/end/confirm", op.issuer), &[("xsrf", xsrf.as_str()), ("logout", "yes")]);
    let back = done.location.expect("the IdP sends the browser back");
    assert!(back.starts_with(sso.connection["urls"]["post_logout_redirect"].as_str().unwrap()), "{back}");
    let at_app = signed_in.browser.get(&back);
    assert_eq!(at_app.location.as_deref(), Some(format!("{GOODBYE}?state=s-9").as_str()));
    assert_eq!(signed_in.browser.get(&back).status, 200, "a second return is just a signed-out page");
}

#[test]
fn without_the_setting_the_apps_logout_stays_at_portcullis() {
    const GOODBYE: &str = "http://127.0.0.1:9/goodbye";
    let (server, op) = (Server::start(), Op::start(json!({})));
    let sso = Sso::set_up(&server, &op, json!({}), json!({}));
    let app = App::register(&server, json!({ "post_logout_redirect_uris": [GOODBYE] }));
    let sso = Sso { app, ..sso };
    let mut signed_in = sign_in(&server, &op, &sso, "ada@acme.test", "ada@acme.test").signed_in();
    let logout = format!(
        "{}?id_token_hint={}&post_logout_redirect_uri={GOODBYE}",
        server.url("/oauth2/logout"),
        signed_in.id_token
    );
    let back = signed_in.browser.get(&logout);
    assert_eq!(back.location.as_deref(), Some(GOODBYE));
}
