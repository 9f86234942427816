//! Every refusal an attacker or a broken client meets, each in OAuth's own format and changing
//! nothing.

use openidconnect::{OAuth2TokenResponse, RefreshToken};
use reqwest::blocking::Client;
use serde_json::{Value, json};

use super::{App, Browser, REDIRECT_URI, callback_params, http, sign_in, tenant_with_password_user};
use crate::{
    scim::{issue_token, urlencode},
    server::Server,
};

const PASSWORD: &str = "correct horse battery staple";

fn authorize_url(server: &Server, app: &App, extra: &str) -> String {
    format!(
        "{}?client_id={}&response_type=code&scope=openid&state=s1&redirect_uri={}{extra}",
        server.url("/oauth2/authorize"),
        app.client_id,
        urlencode(REDIRECT_URI)
    )
}

const CHALLENGE: &str =
    "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";

#[test]
fn an_unregistered_redirect_uri_is_never_redirected_to() {
    let server = Server::start();
    let app = App::register(&server, json!({}));
    for uri in
        ["http://127.0.0.1:9/callback/extra", "http://127.0.0.1:9/callbac", "https://evil.test/callback"]
    {
        let url = format!(
            "{}?client_id={}&response_type=code&scope=openid&redirect_uri={}{CHALLENGE}",
            server.url("/oauth2/authorize"),
            app.client_id,
            urlencode(uri)
        );
        let page = Browser::new().get(&url);
        assert_eq!((page.status, page.location), (400, None), "{uri}");
        assert!(page.body.contains("not registered"));
    }
    let unknown = Browser::new().get(&format!(
        "{}?client_id=nobody&redirect_uri={}",
        server.url("/oauth2/authorize"),
        urlencode(REDIRECT_URI)
    ));
    assert_eq!((unknown.status, unknown.location), (400, None));
}

#[test]
fn pkce_is_required_and_plain_is_refused() {
    let server = Server::start();
    let app = App::register(&server, json!({}));
    let error_of = |extra: &str| {
        let page = Browser::new().get(&authorize_url(&server, &app, extra));
        assert_eq!(page.status, 303, "{}", page.body);
        let params = callback_params(page.location.as_deref().unwrap());
        assert_eq!(params["state"], "s1");
        params["error"].clone()
    };
    assert_eq!(error_of(""), "invalid_request");
    assert_eq!(
        error_of("&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=plain"),
        "invalid_request"
    );
    assert_eq!(error_of("&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"), "invalid_request");
    let token_flow =
        authorize_url(&server, &app, CHALLENGE).replace("response_type=code", "response_type=token");
    let page = Browser::new().get(&token_flow);
    assert_eq!(callback_params(page.location.as_deref().unwrap())["error"], "unsupported_response_type");
    // A repeated parameter makes the whole request untrustworthy: a page, no redirect.
    let repeated =
        Browser::new().get(&format!("{}&response_type=code", authorize_url(&server, &app, CHALLENGE)));
    assert_eq!((repeated.status, repeated.location), (400, None));
    let no_openid = authorize_url(&server, &app, CHALLENGE).replace("scope=openid", "scope=email");
    let page = Browser::new().get(&no_openid);
    assert_eq!(callback_params(page.location.as_deref().unwrap())["error"], "invalid_scope");
    assert_eq!(error_of(&format!("{CHALLENGE}&prompt=none")), "login_required");

    // What went back to the app is in the trail; not login_required, a silent check's answer.
    let refused = server.audit("oauth.authorize.refused");
    let reasons: Vec<&str> = refused.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(
        reasons,
        [
            "invalid_request",
            "invalid_request",
            "invalid_request",
            "unsupported_response_type",
            "invalid_scope"
        ]
    );
    for record in &refused {
        assert_eq!((&record["outcome"], &record["actor"]["kind"]), (&json!("failure"), &json!("anonymous")));
        assert_eq!(record["detail"]["client"], app.client_id.as_str());
    }
}

#[test]
fn a_reused_code_is_refused_and_revokes_what_it_issued() {
    let server = Server::start();
    tenant_with_password_user(&server, PASSWORD);
    let app = App::register(&server, json!({}));
    let pending = app.authorize(&["offline_access"]);
    let verifier = pending.verifier.secret().clone();
    let mut browser = Browser::new();
    let back = sign_in(&server, &mut browser, &pending.url, "ada@acme.test", PASSWORD);
    let code = callback_params(back.location.as_deref().unwrap())["code"].clone();
    let tokens = app.exchange(&code, pending.verifier);
    let replay = app.call(
        &server,
        "/oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ],
    );
    let body = oauth_error(replay, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(app.introspect(&server, tokens.access_token().secret())["active"], false);
    assert_eq!(app.introspect(&server, tokens.refresh_token().unwrap().secret())["active"], false);
    // The replay is recorded once, with what it revoked.
    assert_eq!(server.audit("oauth.code.replayed").len(), 1);
    assert!(server.audit("oauth.token.refused").is_empty());
}

#[test]
fn a_code_needs_its_verifier_redirect_uri_and_client() {
    let server = Server::start();
    let (tenant, ada) = tenant_with_password_user(&server, PASSWORD);
    let app = App::register(&server, json!({}));
    let other = App::register(&server, json!({}));
    let pending = app.authorize(&[]);
    let verifier = pending.verifier.secret().clone();
    let mut browser = Browser::new();
    let back = sign_in(&server, &mut browser, &pending.url, "ada@acme.test", PASSWORD);
    let code = callback_params(back.location.as_deref().unwrap())["code"].clone();
    let exchange = |who: &App, verifier: &str, redirect: &str| {
        who.call(
            &server,
            "/oauth2/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", verifier),
            ],
        )
    };
    let wrong_verifier = "x".repeat(43);
    assert_eq!(oauth_error(exchange(&app, &wrong_verifier, REDIRECT_URI), 400)["error"], "invalid_grant");
    assert_eq!(
        oauth_error(exchange(&app, &verifier, "http://127.0.0.1:9/other"), 400)["error"],
        "invalid_grant"
    );
    assert_eq!(oauth_error(exchange(&other, &verifier, REDIRECT_URI), 400)["error"], "invalid_grant");
    // A wrong client secret is invalid_client with a Basic challenge.
    let wrong_secret = Client::new()
        .post(server.url("/oauth2/token"))
        .basic_auth(&app.client_id, Some("pccs_wrong"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .unwrap();
    assert_eq!(wrong_secret.headers()["www-authenticate"], "Basic realm=\"portcullis\"");
    assert_eq!(oauth_error(wrong_secret, 401)["error"], "invalid_client");
    // None of the refusals used the code up.
    let tokens = exchange(&app, &verifier, REDIRECT_URI);
    assert_eq!(tokens.status(), 200);

    // Each refusal is in the trail: a client's against the code's tenant and person, the wrong
    // secret's by nobody in particular. No code, verifier or secret is in it.
    let refused = server.audit("oauth.token.refused");
    assert_eq!(refused.len(), 4);
    for (record, by) in refused[..3].iter().zip([&app, &app, &other]) {
        assert_eq!((&record["reason"], &record["outcome"]), (&json!("invalid_grant"), &json!("failure")));
        assert_eq!(
            (&record["actor"]["kind"], &record["actor"]["id"]),
            (&json!("oauth_client"), &json!(by.client_id))
        );
        assert_eq!((&record["tenant"], &record["target"]["id"]), (&json!(tenant), &json!(ada)));
        assert_eq!(record["detail"]["grant_type"], "authorization_code");
    }
    let stranger = &refused[3];
    assert_eq!(
        (&stranger["reason"], &stranger["actor"]["kind"]),
        (&json!("invalid_client"), &json!("anonymous"))
    );
    assert_eq!(
        (&stranger["tenant"], &stranger["detail"]["client_id"]),
        (&Value::Null, &json!(app.client_id))
    );
    let trail = json!(refused).to_string();
    for secret in [code.as_str(), verifier.as_str(), app.secret.as_str(), "pccs_wrong"] {
        assert!(!trail.contains(secret), "{secret} in {trail}");
    }
}

#[test]
fn a_reused_refresh_token_revokes_its_whole_family() {
    let server = Server::start();
    tenant_with_password_user(&server, PASSWORD);
    let app = App::register(&server, json!({}));
    let pending = app.authorize(&["offline_access"]);
    let mut browser = Browser::new();
    let back = sign_in(&server, &mut browser, &pending.url, "ada@acme.test", PASSWORD);
    let tokens = app.exchange(&callback_params(back.location.as_deref().unwrap())["code"], pending.verifier);
    let first = tokens.refresh_token().unwrap().clone();
    let second = app
        .rp
        .exchange_refresh_token(&first)
        .unwrap()
        .request(&http)
        .unwrap()
        .refresh_token()
        .unwrap()
        .clone();
    // An attacker replays the first token: refused, and the legitimate second one dies with it.
    assert!(app.rp.exchange_refresh_token(&first).unwrap().request(&http).is_err());
    assert!(
        app.rp
            .exchange_refresh_token(&RefreshToken::new(second.secret().clone()))
            .unwrap()
            .request(&http)
            .is_err()
    );
    assert_eq!(app.introspect(&server, second.secret())["active"], false);
    // The session itself lives on: the browser signs in again without a password.
    let again = app.authorize(&["email"]);
    assert_eq!(browser.get(&again.url).status, 303);
}

#[test]
fn deactivation_by_scim_ends_sessions_at_once() {
    let server = Server::start();
    let (tenant, ada) = tenant_with_password_user(&server, PASSWORD);
    let app = App::register(&server, json!({}));
    let pending = app.authorize(&["offline_access"]);
    let mut browser = Browser::new();
    let back = sign_in(&server, &mut browser, &pending.url, "ada@acme.test", PASSWORD);
    let tokens = app.exchange(&callback_params(back.location.as_deref().unwrap())["code"], pending.verifier);
    let token = issue_token(&server, &tenant, "okta");
    let deactivated = Client::new()
        .patch(server.url(&format!("/scim/v2/{tenant}/Users/{ada}")))
        .bearer_auth(token)
        .header("content-type", "application/scim+json")
        .body(
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "replace", "value": { "active": false } }]
            })
            .to_string(),
        )
        .send()
        .unwrap();
    assert_eq!(deactivated.status(), 200);
    assert_eq!(app.introspect(&server, tokens.access_token().secret())["active"], false);
    assert!(app.rp.exchange_refresh_token(tokens.refresh_token().unwrap()).unwrap().request(&http).is_err());
    let refused = &server.audit("oauth.token.refused")[0];
    assert_eq!(
        (&refused["reason"], &refused["detail"]["grant_type"]),
        (&json!("invalid_grant"), &json!("refresh_token"))
    );
    assert_eq!((&refused["tenant"], &refused["target"]["id"]), (&json!(tenant), &json!(ada)));
    assert!(!refused.to_string().contains(tokens.refresh_token().unwrap().secret()));
    // And the browser's session no longer answers an authorization.
    let again = app.authorize(&["email"]);
    let page = browser.get(&again.url);
    assert!(page.location.as_deref().unwrap().starts_with("/login"), "sent to sign in again");
}

#[test]
fn wrong_passwords_get_one_answer_and_forms_need_their_csrf_token() {
    let server = Server::start();
    tenant_with_password_user(&server, PASSWORD);
    let app = App::register(&server, json!({}));
    let pending = app.authorize(&[]);
    let mut browser = Browser::new();
    for email in ["ada@acme.test", "nobody@acme.test"] {
        let page = sign_in(&server, &mut browser, &pending.url, email, "wrong password 123");
        assert_eq!(page.status, 401, "{}", page.body);
        assert!(page.body.contains("The email or password is not correct."), "{email}");
    }
    // A form posted from elsewhere (no browser cookie, no token) is refused.
    let first = browser.get(&pending.url);
    let login = browser.follow(&server, first);
    let mut stranger = Browser::new();
    let forged = stranger.submit(&server, &login, &[("email", "ada@acme.test")]);
    assert_eq!(forged.status, 403);
}

fn oauth_error(response: reqwest::blocking::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().unwrap()
}

#[test]
fn a_rotated_or_deleted_client_secret_stops_working_at_once() {
    let server = Server::start();
    let app = App::register(&server, json!({}));
    let old_secret = app.secret.clone();
    // Verified once, so that the server remembers the client for a second.
    assert_eq!(app.introspect(&server, "not-a-token")["active"], false);
    let rotated = crate::scim::ok(
        server.post(&format!("/api/v1/oauth-clients/{}/secret", app.client_id), json!({})),
        200,
    );
    assert_ne!(rotated["client_secret"].as_str().unwrap(), app.secret);
    assert_eq!(
        oauth_error(app.call(&server, "/oauth2/introspect", &[("token", "x")]), 401)["error"],
        "invalid_client"
    );
    let fresh = App { secret: rotated["client_secret"].as_str().unwrap().to_owned(), ..app };
    assert_eq!(fresh.introspect(&server, "not-a-token")["active"], false);
    assert_eq!(server.delete(&format!("/api/v1/oauth-clients/{}", fresh.client_id)).status(), 204);
    assert_eq!(
        oauth_error(fresh.call(&server, "/oauth2/introspect", &[("token", "x")]), 401)["error"],
        "invalid_client"
    );
    // Answered introspections are reads, not recorded; the two refused callers are.
    let refused = server.audit("oauth.introspect.refused");
    assert_eq!(refused.len(), 2);
    for record in &refused {
        assert_eq!(
            (&record["reason"], &record["actor"]["kind"]),
            (&json!("invalid_client"), &json!("anonymous"))
        );
        assert_eq!(record["detail"]["client_id"], fresh.client_id.as_str());
        assert!(!record.to_string().contains(&old_secret) && !record.to_string().contains(&fresh.secret));
    }
}
