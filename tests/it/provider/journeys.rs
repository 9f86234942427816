//! Journeys that span more than one request and one party: a forgotten password through the
//! mail relay, lockout, a back-channel logout that has to be retried, a tenant's vanity address,
//! re-authentication (`prompt=login`, `max_age`) and an authorization pinned to a tenant.

use std::{thread, time::Duration};

use openidconnect::TokenResponse;
use serde_json::{Value, json};

use super::{App, Browser, LogoutReceiver, Page, callback_params, sign_in, tenant_with_password_user};
use crate::{
    scim::{ok, urlencode},
    server::Server,
    support::smtp::TestSmtp,
};

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "violet kettles hum beneath lighthouses";
const WRONG: &str = "wrong password 123";
const FAILED: &str = "The email or password is not correct.";
const LOCKED: &str = "Too many failed attempts";

// --- Forgotten passwords ----------------------------------------------------------------------

#[test]
fn a_forgotten_password_is_reset_through_the_mail_relay_and_every_link_works_once() {
    let smtp = TestSmtp::start();
    let port = smtp.port().to_string();
    let server = Server::start_with_settings(&[
        ("PORTCULLIS_SMTP_HOST", "127.0.0.1"),
        ("PORTCULLIS_SMTP_PORT", &port),
        ("PORTCULLIS_SMTP_SECURITY", "none"),
    ]);
    let tenant = server.create_tenant("acme", &["acme.test"]);
    let tenant_id = tenant["id"].as_str().unwrap();

    // With a relay, the invitation goes by email and the operator never sees the link.
    let user = ok(
        server.post(
            &format!("/api/v1/tenants/{tenant_id}/users"),
            json!({ "email": "Ada@acme.test", "display_name": "Ada Lovelace" }),
        ),
        201,
    );
    assert_eq!(user["emailed"], true, "{user}");
    assert!(user.get("password_link").is_none(), "the link is not shown when emailed: {user}");
    let invitation = smtp.wait_for(1).remove(0);
    assert_eq!(invitation.rcpt_to, ["ada@acme.test"]);
    let invite_link = invitation.password_link();
    assert!(invite_link.starts_with(&server.url("/password/reset?token=")), "{invite_link}");
    let set = set_password(&server, &invite_link, PASSWORD);
    assert_eq!(set.status, 200, "{}", set.body);
    assert!(set.body.contains("Your password is set"));

    // Ada signs in on her laptop with it.
    let app = App::register(&server, json!({}));
    let mut laptop = Browser::new();
    let pending = app.authorize(&["email"]);
    let back = sign_in(&server, &mut laptop, &pending.url, "ada@acme.test", PASSWORD);
    assert!(callback_params(back.location.as_deref().unwrap()).contains_key("code"));

    // On her phone she has forgotten it: the password page links to the forgot page.
    let mut phone = Browser::new();
    let pending = app.authorize(&["email"]);
    let first = phone.get(&pending.url);
    let login = phone.follow(&server, first);
    let password_page = phone.submit(&server, &login, &[("email", "ada@acme.test")]);
    assert_eq!(password_page.status, 200, "{}", password_page.body);
    let forgot = phone.get(&server.url(&href(&password_page.body, "/password/forgot")));
    assert_eq!(forgot.status, 200, "{}", forgot.body);
    assert!(forgot.body.contains("action=\"/password/forgot\""), "{}", forgot.body);

    // The same answer for an unknown address and a known one.
    let unknown = phone.submit(&server, &forgot, &[("email", "nobody@acme.test")]);
    let known = phone.submit(&server, &forgot, &[("email", "Ada@acme.test")]);
    assert_eq!(unknown.status, 200, "{}", unknown.body);
    assert!(unknown.body.contains("Check your email"), "{}", unknown.body);
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));

    // Exactly one more email, to Ada. (The unknown address was submitted first: had it produced
    // an email, it would be here by the time hers is, or shortly after.)
    let mails = smtp.wait_for(2);
    thread::sleep(Duration::from_millis(500));
    let mails_now = smtp.messages();
    assert_eq!(mails_now.len(), 2, "{mails_now:#?}");
    assert_eq!(mails[1].rcpt_to, ["ada@acme.test"]);
    let reset_link = mails[1].password_link();
    assert_ne!(reset_link, invite_link);

    // The invitation was spent when it set the first password.
    assert_link_refused(&invite_link);

    // A form opened from the reset link before it is used is dead once the link has been used.
    let mut other_tab = Browser::new();
    let stale_form = other_tab.get(&reset_link);
    assert_eq!(stale_form.status, 200, "{}", stale_form.body);

    let set = set_password(&server, &reset_link, NEW_PASSWORD);
    assert_eq!(set.status, 200, "{}", set.body);
    assert!(set.body.contains("Your password is set"));
    assert_link_refused(&reset_link);
    let late = other_tab.submit(&server, &stale_form, &[("password", PASSWORD), ("confirm", PASSWORD)]);
    assert_eq!(late.status, 400, "{}", late.body);
    assert!(late.body.contains("This link does not work"), "{}", late.body);

    // The old password no longer works; the new one does.
    let pending = app.authorize(&["email"]);
    let refused = sign_in(&server, &mut Browser::new(), &pending.url, "ada@acme.test", PASSWORD);
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.contains(FAILED));
    let mut fresh = Browser::new();
    let back = sign_in(&server, &mut fresh, &pending.url, "ada@acme.test", NEW_PASSWORD);
    assert_eq!(back.status, 303, "{}", back.body);
    let params = callback_params(back.location.as_deref().unwrap());
    assert_eq!(params["state"], pending.state);
    let tokens = app.exchange(&params["code"], pending.verifier);
    assert_eq!(claims_of(&tokens.id_token().unwrap().to_string())["org_id"], tenant_id);

    // The new password signed the laptop out.
    let again = laptop.get(&app.authorize(&["email"]).url);
    assert_eq!(again.status, 303);
    assert!(again.location.as_deref().unwrap().starts_with("/login?request="), "{:?}", again.location);
}

/// Opens a password link in a new browser and sets `password` through its form.
fn set_password(server: &Server, link: &str, password: &str) -> Page {
    let mut browser = Browser::new();
    let form = browser.get(link);
    assert_eq!(form.status, 200, "{}", form.body);
    browser.submit(server, &form, &[("password", password), ("confirm", password)])
}

fn assert_link_refused(link: &str) {
    let page = Browser::new().get(link);
    assert_eq!(page.status, 400, "{link}: {}", page.body);
    assert!(page.body.contains("This link does not work"), "{}", page.body);
    assert!(!page.body.contains("<form"), "{}", page.body);
}

// --- Lockout ------------------------------------------------------------------------------------

#[test]
fn five_wrong_passwords_are_free() {
    let server = Server::start();
    tenant_with_password_user(&server, PASSWORD);
    let app = App::register(&server, json!({}));
    let pending = app.authorize(&[]);
    let mut browser = Browser::new();
    for attempt in 1..=5 {
        let page = sign_in(&server, &mut browser, &pending.url, "ada@acme.test", WRONG);
        assert_eq!(page.status, 401, "attempt {attempt}: {}", page.body);
        assert!(page.body.contains(FAILED), "attempt {attempt}: {}", page.body);
    }
    let back = sign_in(&server, &mut browser, &pending.url, "ada@acme.test", PASSWORD);
    assert_eq!(back.status, 303, "{}", back.body);
    assert!(callback_params(back.location.as_deref().unwrap()).contains_key("code"));
}

#[test]
fn the_sixth_wrong_password_locks_the_account_even_against_the_right_one() {
    // Seven attempts at one address: under the per-address and per-account bursts of ten.
    let server = Server::start();
    tenant_with_password_user(&server, PASSWORD);
    let app = App::register(&server, json!({}));
    let pending = app.authorize(&[]);
    let mut browser = Browser::new();
    for attempt in 1..=6 {
        let page = sign_in(&server, &mut browser, &pending.url, "ada@acme.test", WRONG);
        assert_eq!(page.status, 401, "attempt {attempt}: {}", page.body);
        assert!(page.body.contains(FAILED), "attempt {attempt}: {}", page.body);
        assert!(!page.body.contains(LOCKED), "attempt {attempt}: {}", page.body);
    }
    let locked = sign_in(&server, &mut browser, &pending.url, "ada@acme.test", PASSWORD);
    assert_eq!((locked.status, &locked.location), (401, &None), "{}", locked.body);
    assert!(locked.body.contains(LOCKED), "{}", locked.body);
    assert!(locked.body.contains("reset your password"), "{}", locked.body);
    assert!(!browser.has_session());
}

#[test]
fn an_unknown_address_never_looks_locked() {
    // The same seven attempts as above, at an address without an account: lockout reveals nothing.
    let server = Server::start();
    tenant_with_password_user(&server, PASSWORD);
    let app = App::register(&server, json!({}));
    let pending = app.authorize(&[]);
    let mut browser = Browser::new();
    for attempt in 1..=7 {
        let page = sign_in(&server, &mut browser, &pending.url, "nobody@acme.test", WRONG);
        assert_eq!(page.status, 401, "attempt {attempt}: {}", page.body);
        assert!(page.body.contains(FAILED), "attempt {attempt}: {}", page.body);
        assert!(!page.body.contains(LOCKED), "attempt {attempt}: {}", page.body);
    }
}

// --- Back-channel logout ----------------------------------------------------------------------

#[test]
fn a_failed_back_channel_logout_is_retried_with_the_same_session() {
    let server = Server::start();
    let (tenant, ada) = tenant_with_password_user(&server, PASSWORD);
    let receiver = LogoutReceiver::start(&[500, 200]);
    let app = App::register(&server, json!({ "backchannel_logout_uri": receiver.url }));
    let pending = app.authorize(&["email"]);
    let mut browser = Browser::new();
    let back = sign_in(&server, &mut browser, &pending.url, "ada@acme.test", PASSWORD);
    let tokens = app.exchange(&callback_params(back.location.as_deref().unwrap())["code"], pending.verifier);
    let sid = claims_of(&tokens.id_token().unwrap().to_string())["sid"].clone();
    assert!(sid.is_string());

    let ended = ok(server.delete(&format!("/api/v1/tenants/{tenant}/users/{ada}/sessions")), 200);
    assert_eq!(ended["ended"], 1);

    let deliveries = receiver.wait_for(2, Duration::from_secs(30));
    assert_eq!(deliveries.iter().map(|d| d.answered).collect::<Vec<_>>(), [500, 200]);
    let logouts: Vec<Value> = deliveries
        .iter()
        .map(|d| claims_of(d.body.strip_prefix("logout_token=").expect("a logout_token form field")))
        .collect();
    for logout in &logouts {
        assert_eq!(logout["sid"], sid);
        assert_eq!(logout["sub"], json!(ada));
        assert_eq!(logout["aud"], json!(app.client_id));
        assert!(logout["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    }
    assert_ne!(logouts[0]["jti"], logouts[1]["jti"], "each attempt signs a fresh token");
    // A lower bound only: the retry waited for its backoff (5 s and jitter) rather than hammering.
    let gap = deliveries[1].at - deliveries[0].at;
    assert!(gap >= Duration::from_secs(4), "retried after {gap:?}");
}

// --- The vanity address -------------------------------------------------------------------------

#[test]
fn a_tenants_vanity_address_sends_people_to_start_at_the_app() {
    let server = Server::start();
    let tenant = server.create_tenant("acme", &["acme.test"]);

    // No app says where sign-ins start yet: a page says to open the app.
    let page = Browser::new().get(&server.url("/t/acme"));
    assert_eq!((page.status, &page.location), (200, &None), "{}", page.body);
    assert!(page.body.contains("Sign in to acme Inc."), "{}", page.body);

    App::register(&server, json!({ "initiate_login_uri": "https://app.test/start" }));
    let page = Browser::new().get(&server.url("/t/acme"));
    assert_eq!(page.status, 303, "{}", page.body);
    let location = url::Url::parse(page.location.as_deref().unwrap()).unwrap();
    assert_eq!(
        (location.scheme(), location.host_str(), location.path()),
        ("https", Some("app.test"), "/start")
    );
    let params: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    assert_eq!(params, [("iss".to_owned(), server.url("")), ("organization".to_owned(), "acme".to_owned())]);

    let unknown = Browser::new().get(&server.url("/t/nobody"));
    assert_eq!((unknown.status, &unknown.location), (404, &None));
    assert!(unknown.body.contains("Unknown organisation"), "{}", unknown.body);

    // A suspended tenant has no door either.
    let tenant_id = tenant["id"].as_str().unwrap();
    ok(server.patch(&format!("/api/v1/tenants/{tenant_id}"), json!({ "status": "suspended" })), 200);
    let suspended = Browser::new().get(&server.url("/t/acme"));
    assert_eq!((suspended.status, &suspended.location), (404, &None), "{}", suspended.body);
}

// --- Re-authentication ------------------------------------------------------------------------

#[test]
fn prompt_login_and_max_age_make_a_signed_in_person_sign_in_again() {
    let server = Server::start();
    tenant_with_password_user(&server, PASSWORD);
    let app = App::register(&server, json!({}));
    let pending = app.authorize(&["email"]);
    let mut browser = Browser::new();
    let back = sign_in(&server, &mut browser, &pending.url, "ada@acme.test", PASSWORD);
    let tokens = app.exchange(&callback_params(back.location.as_deref().unwrap())["code"], pending.verifier);
    let first = claims_of(&tokens.id_token().unwrap().to_string());

    // Without either, the session answers at once.
    let at_once = browser.get(&app.authorize(&["email"]).url);
    assert_eq!(at_once.status, 303, "{}", at_once.body);
    assert!(callback_params(at_once.location.as_deref().unwrap()).contains_key("code"));
    // A max_age the session is younger than: at once too.
    let young_enough = browser.get(&format!("{}&max_age=3600", app.authorize(&["email"]).url));
    assert_eq!(young_enough.status, 303, "{}", young_enough.body);
    assert!(callback_params(young_enough.location.as_deref().unwrap()).contains_key("code"));

    // prompt=login and max_age=0 send the person to the login page, with no code.
    for extra in ["&prompt=login", "&max_age=0"] {
        let page = browser.get(&format!("{}{extra}", app.authorize(&["email"]).url));
        assert_eq!(page.status, 303, "{extra}: {}", page.body);
        let location = page.location.unwrap();
        assert!(location.starts_with("/login?request="), "{extra}: sent to {location}");
        assert!(!location.contains("code="), "{extra}: {location}");
        let login = browser.get(&server.url(&location));
        assert_eq!(login.status, 200, "{extra}: {}", login.body);
        assert!(login.body.contains("name=\"email\""), "{extra}: the email step: {}", login.body);
        assert!(browser.has_session(), "{extra}: the session itself lives on");
    }

    // Signing in again answers with a new session.
    let pending = app.authorize(&["email"]);
    let forced = format!("{}&prompt=login", pending.url);
    let back = sign_in(&server, &mut browser, &forced, "ada@acme.test", PASSWORD);
    assert_eq!(back.status, 303, "{}", back.body);
    let tokens = app.exchange(&callback_params(back.location.as_deref().unwrap())["code"], pending.verifier);
    let second = claims_of(&tokens.id_token().unwrap().to_string());
    assert_ne!(second["sid"], first["sid"], "a fresh sign-in, not the old session");
    assert!(second["auth_time"].as_i64().unwrap() >= first["auth_time"].as_i64().unwrap());
}

// --- Pinning a tenant -------------------------------------------------------------------------

#[test]
fn an_authorization_pinned_to_a_tenant_goes_straight_to_its_password_step() {
    let server = Server::start();
    let (acme, _) = tenant_with_password_user(&server, PASSWORD);
    let globex = server.create_tenant("globex", &["globex.test"]);
    let app = App::register(&server, json!({}));
    let hint = format!("&login_hint={}", urlencode("ada@acme.test"));

    let pending = app.authorize(&["email"]);
    let mut browser = Browser::new();
    let first = browser.get(&format!("{}&organization=acme{hint}", pending.url));
    assert_eq!(first.status, 303, "{}", first.body);
    let page = browser.follow(&server, first);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<h1>Enter your password</h1>"), "no email step: {}", page.body);
    assert!(page.body.contains("Signing in as <strong>ada@acme.test</strong>"), "{}", page.body);
    assert!(page.body.contains(&format!("name=\"tenant\" value=\"{acme}\"")), "{}", page.body);
    let back = browser.submit(&server, &page, &[("password", PASSWORD)]);
    assert_eq!(back.status, 303, "{}", back.body);
    let params = callback_params(back.location.as_deref().unwrap());
    let tokens = app.exchange(&params["code"], pending.verifier);
    let claims = claims_of(&tokens.id_token().unwrap().to_string());
    assert_eq!(claims["org_id"], acme);
    assert_eq!(claims["org_slug"], "acme");

    // The session answers an authorization pinned to its own tenant (named by id this time) ...
    let same = browser.get(&format!("{}&organization={acme}", app.authorize(&["email"]).url));
    assert_eq!(same.status, 303, "{}", same.body);
    assert!(callback_params(same.location.as_deref().unwrap()).contains_key("code"));

    // ... but not one pinned to another tenant, where Ada's password opens nothing.
    let globex_id = globex["id"].as_str().unwrap();
    let elsewhere = browser.get(&format!("{}&organization=globex{hint}", app.authorize(&["email"]).url));
    assert_eq!(elsewhere.status, 303, "{}", elsewhere.body);
    assert!(elsewhere.location.as_deref().unwrap().starts_with("/login?request="));
    let page = browser.follow(&server, elsewhere);
    assert!(page.body.contains("<h1>Enter your password</h1>"), "{}", page.body);
    assert!(page.body.contains(&format!("name=\"tenant\" value=\"{globex_id}\"")), "{}", page.body);
    let refused = browser.submit(&server, &page, &[("password", PASSWORD)]);
    assert_eq!((refused.status, &refused.location), (401, &None), "{}", refused.body);
    assert!(refused.body.contains(FAILED), "{}", refused.body);

    // An unknown organization goes back to the app as an error.
    let unknown = browser.get(&format!("{}&organization=initech", app.authorize(&["email"]).url));
    assert_eq!(callback_params(unknown.location.as_deref().unwrap())["error"], "invalid_request");
}

// --- Helpers ------------------------------------------------------------------------------------

/// The `href` of the first link starting with `prefix`.
fn href(html: &str, prefix: &str) -> String {
    let key = format!("href=\"{prefix}");
    let at = html.find(&key).unwrap_or_else(|| panic!("no link to {prefix} in {html}")) + "href=\"".len();
    let rest = &html[at..];
    rest[..rest.find('"').unwrap()].replace("&amp;", "&")
}

/// A JWT's claims, unverified (other tests verify signatures; these read what was said).
fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
        .unwrap()
}

/// A password user `email` in the tenant `tenant_id`, with `password` set through the invitation.
fn password_user(server: &Server, tenant_id: &str, email: &str, password: &str) {
    let user = ok(server.post(&format!("/api/v1/tenants/{tenant_id}/users"), json!({ "email": email })), 201);
    let mut browser = Browser::new();
    let form = browser.get(user["password_link"].as_str().unwrap());
    let done = browser.submit(server, &form, &[("password", password), ("confirm", password)]);
    assert_eq!(done.status, 200, "{}", done.body);
}

#[test]
fn a_person_with_the_same_password_in_two_organisations_chooses_one() {
    let server = Server::start();
    tenant_with_password_user(&server, PASSWORD);
    let globex = server.create_tenant("globex", &["globex.test"]);
    password_user(&server, globex["id"].as_str().unwrap(), "ada@acme.test", PASSWORD);
    let app = App::register(&server, json!({}));
    let pending = app.authorize(&["email"]);
    let mut browser = Browser::new();

    let choice = sign_in(&server, &mut browser, &pending.url, "ada@acme.test", PASSWORD);
    assert_eq!(choice.status, 200, "{}", choice.body);
    assert!(choice.body.contains("several organisations"), "{}", choice.body);
    let start =
        choice.body.find("globex Inc.").map(|end| choice.body[..end].rfind("href=\"").unwrap() + 6).unwrap();
    let link = choice.body[start..start + choice.body[start..].find('"').unwrap()].replace("&amp;", "&");
    // The choice asks for the password again, for that organisation only.
    let password_page = browser.get(&server.url(&link));
    assert_eq!(password_page.status, 200, "{}", password_page.body);
    assert!(password_page.body.contains("ada@acme.test"), "{}", password_page.body);
    let back = browser.submit(&server, &password_page, &[("password", PASSWORD)]);
    assert_eq!(back.status, 303, "{}", back.body);
    let tokens = app.exchange(&callback_params(back.location.as_deref().unwrap())["code"], pending.verifier);
    let claims = super::flows::decode_unverified(&tokens.id_token().unwrap().to_string());
    assert_eq!(claims["org_slug"], "globex");
}
