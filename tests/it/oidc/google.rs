//! Google sign-in for people whose organisation has no SSO. Nothing here reaches Google: the
//! built-in connection is pointed at the test OpenID Provider (`google_issuer`), which, like
//! Google, puts the claims (and `hd`, the Workspace domain) in the ID token.

use serde_json::{Value, json};

use super::{Op, audit, come_back, link_in, through_idp, with_login_hint};
use crate::{
    provider::{App, Browser, Page},
    scim::ok,
    server::Server,
};

struct Google {
    server: Server,
    op: Op,
    app: App,
}

impl Google {
    fn start(accounts: Value) -> Google {
        let op = Op::start(json!({ "id_token_claims": true, "accounts": accounts }));
        let server = Server::start_with_settings(&[
            ("PORTCULLIS_GOOGLE_CLIENT_ID", "google-client"),
            ("PORTCULLIS_GOOGLE_CLIENT_SECRET", "google-secret"),
            ("PORTCULLIS_GOOGLE_ISSUER", &op.issuer),
        ]);
        let urls = json!({ "callback": server.url("/sso/google/callback"), "backchannel_logout": null });
        op.add_client(
            "google-client",
            "google-secret",
            &urls,
            json!({ "backchannel_logout_uri": null, "backchannel_logout_session_required": null }),
        );
        let app = App::register(&server, json!({}));
        Google { server, op, app }
    }

    /// A tenant with a password user `email`; returns (tenant id, user id).
    fn tenant_with_user(
        &self,
        slug: &str,
        domains: &[&str],
        email: &str,
        settings: Value,
    ) -> (String, String) {
        let tenant = self.server.create_tenant(slug, domains);
        let id = tenant["id"].as_str().unwrap().to_owned();
        if settings.as_object().is_some_and(|s| !s.is_empty()) {
            ok(self.server.patch(&format!("/api/v1/tenants/{id}"), settings), 200);
        }
        let user =
            ok(self.server.post(&format!("/api/v1/tenants/{id}/users"), json!({ "email": email })), 201);
        (id, user["id"].as_str().unwrap().to_owned())
    }

    /// The person clicks "Continue with Google" on the login page and signs in at "Google" as
    /// `account`; returns the browser, the pending authorization and Portcullis' answer.
    fn continue_with_google(&self, account: &str) -> (Browser, crate::provider::Pending, Page) {
        let mut browser = Browser::new();
        let pending = self.app.authorize(&["openid", "email"]);
        let first = browser.get(&pending.url);
        let login = browser.follow(&self.server, first);
        assert!(login.body.contains("Continue with Google"), "{}", login.body);
        let sent = browser.get(&self.server.url(&link_in(&login.body, "/sso/google/start")));
        let sent = with_login_hint(sent, account);
        let callback = through_idp(&mut browser, &self.op, &sent, &self.server.url("/sso/google/callback"));
        let answer = browser.get(&callback);
        (browser, pending, answer)
    }

    /// Signs in as `account` and returns the app's ID token claims, or the page shown instead.
    fn sign_in(&self, account: &str) -> Result<Value, Page> {
        let (browser, pending, answer) = self.continue_with_google(account);
        if answer.status != 303 {
            return Err(answer);
        }
        // The answer was already fetched: hand its redirect to the app as `come_back` would.
        let location = answer.location.clone().unwrap();
        let params = crate::provider::callback_params(&location);
        assert_eq!(params["state"], pending.state);
        let tokens = self.app.exchange(&params["code"], pending.verifier);
        let id_token = openidconnect::TokenResponse::id_token(&tokens).unwrap().to_string();
        drop(browser);
        Ok(crate::saml::claims_of(&id_token))
    }
}

fn refused(page: Page, check: &str) {
    assert!(
        page.body.contains(&format!("<code>{check}</code>")),
        "expected {check}: {} {}",
        page.status,
        page.body
    );
}

#[test]
fn a_person_without_sso_signs_in_with_google() {
    let google = Google::start(
        json!({ "ada@acme.test": { "email": "ada@acme.test", "email_verified": true, "name": "Ada" } }),
    );
    let (tenant, user) = google.tenant_with_user("acme", &["acme.test"], "ada@acme.test", json!({}));
    let claims = google.sign_in("ada@acme.test").unwrap();
    assert_eq!(claims["sub"], user);
    let logins = audit(&google.server, "sso.google.login");
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0]["tenant"], tenant);
    let sessions = ok(google.server.get(&format!("/api/v1/tenants/{tenant}/users/{user}/sessions")), 200);
    assert_eq!(sessions["items"][0]["idp"], "google");
    // Signing in again finds the same user through the Google subject remembered the first time.
    assert_eq!(google.sign_in("ada@acme.test").unwrap()["sub"], user);
    // The app asks for a fresh login: Google gets `max_age=0` (it takes no `prompt=login`), and its
    // `auth_time` must show a new authentication.
    let (mut browser, pending) = (Browser::new(), google.app.authorize(&["openid"]));
    let first = browser.get(&format!("{}&prompt=login", pending.url));
    let login = browser.follow(&google.server, first);
    let sent = browser.get(&google.server.url(&link_in(&login.body, "/sso/google/start")));
    let to_google = url::Url::parse(sent.location.as_deref().unwrap()).unwrap();
    let params: std::collections::HashMap<String, String> = to_google.query_pairs().into_owned().collect();
    assert_eq!(params.get("max_age").map(String::as_str), Some("0"));
    assert!(!params.contains_key("prompt"));
    let sent = with_login_hint(sent, "ada@acme.test");
    let callback = through_idp(&mut browser, &google.op, &sent, &google.server.url("/sso/google/callback"));
    assert_eq!(come_back(&google.app, browser, pending, &callback).signed_in().claims["sub"], user);
}

#[test]
fn a_person_with_accounts_in_several_organisations_chooses_one() {
    let google =
        Google::start(json!({ "ada@shared.test": { "email": "ada@shared.test", "email_verified": true } }));
    let (_, first) = google.tenant_with_user("acme", &[], "ada@shared.test", json!({}));
    let (second_tenant, second) = google.tenant_with_user("globex", &[], "ada@shared.test", json!({}));
    let (mut browser, pending, choice) = google.continue_with_google("ada@shared.test");
    assert_eq!(choice.status, 200, "{}", choice.body);
    assert!(choice.body.contains("Choose your organisation"), "{}", choice.body);
    let link = choice
        .body
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|l| l.starts_with("/sso/google/start") && l.contains(&second_tenant))
        .expect("a link for each organisation")
        .replace("&amp;", "&");
    let sent = browser.get(&google.server.url(&link));
    let sent = with_login_hint(sent, "ada@shared.test");
    let callback = through_idp(&mut browser, &google.op, &sent, &google.server.url("/sso/google/callback"));
    let claims = come_back(&google.app, browser, pending, &callback).signed_in().claims;
    assert_eq!(claims["sub"], second);
    assert_ne!(claims["sub"], first);
}

#[test]
fn a_pinned_workspace_domain_is_enforced_and_vouches_for_new_users() {
    let google = Google::start(json!({
        "bob@acme.test": { "email": "bob@acme.test", "email_verified": true },
        "carol@acme.test": { "email": "carol@acme.test", "email_verified": true, "hd": "acme.test", "given_name": "Carol" },
    }));
    let (tenant, _) = google.tenant_with_user(
        "acme",
        &["acme.test"],
        "bob@acme.test",
        json!({ "google_hosted_domains": ["acme.test"] }),
    );
    ok(
        google.server.post(
            &format!("/api/v1/tenants/{tenant}/domains/acme.test/verify"),
            json!({ "method": "manual" }),
        ),
        200,
    );
    // Bob's address is a personal Google account, not one of the Workspace.
    refused(google.sign_in("bob@acme.test").unwrap_err(), "hosted_domain");
    // Carol's account is in the Workspace: she is created at her first sign-in.
    let carol = google.sign_in("carol@acme.test").unwrap();
    assert_eq!(carol["email"], "carol@acme.test");
    assert_eq!(audit(&google.server, "sso.user.create").len(), 1);
    assert_eq!(google.sign_in("carol@acme.test").unwrap()["sub"], carol["sub"]);
}

#[test]
fn unverified_addresses_strangers_and_organisations_that_demand_sso_are_refused() {
    let google = Google::start(json!({
        "unverified@acme.test": { "email": "ada@acme.test", "email_verified": false },
        "stranger@nowhere.test": { "email": "stranger@nowhere.test", "email_verified": true },
        "sam@strict.test": { "email": "sam@strict.test", "email_verified": true },
    }));
    google.tenant_with_user("acme", &[], "ada@acme.test", json!({}));
    google.tenant_with_user("strict", &[], "sam@strict.test", json!({ "require_sso": true }));
    refused(google.sign_in("unverified@acme.test").unwrap_err(), "email_unverified");
    refused(google.sign_in("stranger@nowhere.test").unwrap_err(), "no_account");
    refused(google.sign_in("sam@strict.test").unwrap_err(), "sso_required");
    assert_eq!(audit(&google.server, "sso.google.refused").len(), 3);
    assert!(audit(&google.server, "sso.google.login").is_empty());
}

#[test]
fn without_settings_google_is_not_offered() {
    let server = Server::start();
    let app = App::register(&server, json!({}));
    let mut browser = Browser::new();
    let first = browser.get(&app.authorize(&["openid"]).url);
    let login = browser.follow(&server, first);
    assert!(!login.body.contains("Google"), "{}", login.body);
    assert_eq!(browser.get(&server.url("/sso/google/start?request=x")).status, 404);
}
