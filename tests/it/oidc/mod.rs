//! Signing in through an upstream OpenID Provider: panva's certified `oidc-provider`, started on
//! loopback by each test (`scripts/oidc-op`), as a tenant's IdP and as Google.

mod google;
mod login;
mod logout;
mod refusals;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

use reqwest::blocking::Client;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{
    provider::{App, Browser, Page, Pending, callback_params},
    saml::{SignedIn, claims_of},
    scim::ok,
    server::Server,
};

/// The test OpenID Provider, running until dropped.
pub struct Op {
    child: Child,
    pub issuer: String,
    port: u16,
    dir: TempDir,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Op {
    /// Starts the OP with `config` (see tests/oidc/op/README.md) on a free port.
    pub fn start(config: Value) -> Op {
        Self::start_on(0, config, tempfile::tempdir().unwrap())
    }

    fn start_on(port: u16, mut config: Value, dir: TempDir) -> Op {
        config["port"] = json!(port);
        let path = dir.path().join("op.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/oidc-op");
        let mut child = Command::new(script)
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (ready, listening) = mpsc::channel();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&lines);
        let out = BufReader::new(child.stdout.take().unwrap());
        thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("OP listening on ") {
                    let _ = ready.send(url.to_owned());
                } else {
                    seen.lock().unwrap().push(line);
                }
            }
        });
        let issuer = listening.recv_timeout(Duration::from_secs(300)).expect("the test OP started");
        let port = issuer.rsplit(':').next().unwrap().parse().unwrap();
        Op { child, issuer, port, dir, lines }
    }

    /// Stops the OP and starts it again on the same port (the same issuer) with `config`.
    pub fn restart(mut self, config: Value) -> Op {
        self.stop();
        let (port, dir) = (self.port, std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()));
        Self::start_on(port, config, dir)
    }

    fn stop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }

    pub fn control(&self, path: &str, body: Value) -> Value {
        let response =
            Client::new().post(format!("{}/_control/{path}", self.issuer)).json(&body).send().unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().unwrap_or(Value::Null);
        assert!(status < 300, "control {path}: {status} {body}");
        body
    }

    /// The OP's private signing keys.
    pub fn jwks(&self) -> Value {
        Client::new().get(format!("{}/_control/jwks", self.issuer)).send().unwrap().json().unwrap()
    }

    /// Registers `client_id` with our callback and back-channel logout URIs; `extra` adds
    /// metadata (null removes a field).
    pub fn add_client(&self, client_id: &str, secret: &str, urls: &Value, extra: Value) {
        let mut client = json!({
            "client_id": client_id, "client_secret": secret,
            "redirect_uris": [urls["callback"]],
            "backchannel_logout_uri": urls["backchannel_logout"],
            "backchannel_logout_session_required": true,
            "grant_types": ["authorization_code"], "response_types": ["code"],
        });
        if let Some(back) = urls["post_logout_redirect"].as_str() {
            client["post_logout_redirect_uris"] = json!([back]);
        }
        let fields = client.as_object_mut().unwrap();
        for (key, value) in extra.as_object().unwrap() {
            if value.is_null() {
                fields.remove(key);
            } else {
                fields.insert(key.clone(), value.clone());
            }
        }
        self.control("clients", client);
    }

    /// Waits (up to a minute) for `count` back-channel logout lines.
    pub fn backchannel_lines(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let lines: Vec<String> = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.starts_with("backchannel "))
                .cloned()
                .collect();
            if lines.len() >= count {
                return lines;
            }
            assert!(Instant::now() < deadline, "expected {count} back-channel lines, got {lines:?}");
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        self.stop();
    }
}

pub const CLIENT_SECRET: &str = "portcullis-at-the-op-secret";

/// A tenant `acme` (domain acme.test, verified) with an OIDC connection to the OP, a user
/// ada@acme.test, and the app.
pub struct Sso {
    pub app: App,
    pub tenant: String,
    pub connection: Value,
    pub user: String,
}

impl Sso {
    /// The connection is made with `settings` (over the issuer, client id and secret), and the OP
    /// learns of it as client `portcullis` with `client` metadata.
    pub fn set_up(server: &Server, op: &Op, settings: Value, client: Value) -> Sso {
        let tenant = server.create_tenant("acme", &["acme.test"]);
        let tenant_id = tenant["id"].as_str().unwrap().to_owned();
        ok(
            server.post(
                &format!("/api/v1/tenants/{tenant_id}/domains/acme.test/verify"),
                json!({ "method": "manual" }),
            ),
            200,
        );
        let user = ok(
            server.post(
                &format!("/api/v1/tenants/{tenant_id}/users"),
                json!({ "email": "ada@acme.test", "display_name": "Ada Lovelace" }),
            ),
            201,
        );
        let mut body = json!({
            "name": "Acme Okta", "issuer": op.issuer, "client_id": "portcullis", "client_secret": CLIENT_SECRET,
        });
        for (key, value) in settings.as_object().unwrap() {
            body[key] = value.clone();
        }
        let connection = ok(server.post(&format!("/api/v1/tenants/{tenant_id}/oidc-connections"), body), 201);
        op.add_client("portcullis", CLIENT_SECRET, &connection["urls"], client);
        let app = App::register(server, json!({}));
        Sso { app, tenant: tenant_id, connection, user: user["id"].as_str().unwrap().to_owned() }
    }

    pub fn api_path(&self, suffix: &str) -> String {
        format!(
            "/api/v1/tenants/{}/oidc-connections/{}{suffix}",
            self.tenant,
            self.connection["id"].as_str().unwrap()
        )
    }

    pub fn callback(&self) -> String {
        self.connection["urls"]["callback"].as_str().unwrap().to_owned()
    }
}

/// The browser opens the app's authorization `url` and types `email`; Portcullis sends it to
/// the IdP. Returns the redirect to the IdP.
pub fn to_idp(server: &Server, browser: &mut Browser, url: &str, email: &str) -> Page {
    let first = browser.get(url);
    let login = browser.follow(server, first);
    assert_eq!(login.status, 200, "{}", login.body);
    let sent = browser.submit(server, &login, &[("email", email)]);
    let sent = if sent.status == 200 && sent.body.contains("Use my password instead") {
        let link = link_in(&sent.body, "/sso/oidc/");
        browser.get(&server.url(&link))
    } else {
        sent
    };
    let sent = browser.follow(server, sent);
    assert!(sent.location.is_some(), "not sent to the IdP: {} {}", sent.status, sent.body);
    sent
}

/// The first link in `html` starting with `prefix`.
pub fn link_in(html: &str, prefix: &str) -> String {
    let at =
        html.find(&format!("href=\"{prefix}")).unwrap_or_else(|| panic!("no link to {prefix} in {html}"))
            + "href=\"".len();
    html[at..at + html[at..].find('"').unwrap()].replace("&amp;", "&")
}

/// Follows the IdP's redirects (its login and consent need no person) until the browser is sent
/// to `callback`; returns that URL.
pub fn through_idp(browser: &mut Browser, op: &Op, to_idp: &Page, callback: &str) -> String {
    let mut location = to_idp.location.clone().unwrap();
    for _ in 0..12 {
        if location.starts_with(callback) {
            return location;
        }
        let page = if location.starts_with('/') {
            browser.get(&format!("{}{location}", op.issuer))
        } else {
            browser.get(&location)
        };
        location = match page.location {
            Some(next) => next,
            // oidc-provider ends another account's session with an auto-submitting form first.
            None if page.body.contains("/session/end/confirm") => {
                let xsrf = hidden_value(&page.body, "xsrf");
                let done = browser.post(
                    &format!("{}/session/end/confirm", op.issuer),
                    &[("xsrf", xsrf.as_str()), ("logout", "yes")],
                );
                done.location.unwrap_or_else(|| panic!("the OP's logout went nowhere: {}", done.body))
            }
            None => panic!("the IdP stopped at {location}: {} {}", page.status, page.body),
        };
    }
    panic!("the IdP never sent the browser back to {callback}")
}

fn hidden_value(html: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let at = html.find(&key).unwrap_or_else(|| panic!("no {name} in {html}")) + key.len();
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

/// What a callback to Portcullis led to.
pub enum Outcome {
    SignedIn(SignedIn),
    /// The page shown instead (a refusal, a choice).
    Page(Page),
}

impl Outcome {
    pub fn signed_in(self) -> SignedIn {
        match self {
            Outcome::SignedIn(signed_in) => signed_in,
            Outcome::Page(page) => panic!("not signed in: {} {}", page.status, page.body),
        }
    }

    pub fn refused(self) -> Page {
        match self {
            Outcome::Page(page) => page,
            Outcome::SignedIn(signed_in) => panic!("signed in: {}", signed_in.claims),
        }
    }
}

/// The browser brings the IdP's answer to Portcullis; the app finishes its authorization.
pub fn come_back(app: &App, mut browser: Browser, pending: Pending, callback_url: &str) -> Outcome {
    let back = browser.get(callback_url);
    if back.status != 303
        || !back.location.as_deref().is_some_and(|l| l.starts_with(crate::provider::REDIRECT_URI))
    {
        return Outcome::Page(back);
    }
    let params = callback_params(back.location.as_deref().unwrap());
    assert_eq!(params["state"], pending.state);
    let tokens = app.exchange(&params["code"], pending.verifier);
    let id_token = openidconnect::TokenResponse::id_token(&tokens).unwrap().to_string();
    let access_token = openidconnect::OAuth2TokenResponse::access_token(&tokens).secret().clone();
    Outcome::SignedIn(SignedIn { claims: claims_of(&id_token), id_token, access_token, browser })
}

/// `email` signs in to the app through the tenant's IdP, as the OP's account `account`.
pub fn sign_in(server: &Server, op: &Op, sso: &Sso, email: &str, account: &str) -> Outcome {
    let mut browser = Browser::new();
    let pending = sso.app.authorize(&["openid", "email"]);
    let sent = to_idp(server, &mut browser, &pending.url, email);
    let sent = with_login_hint(sent, account);
    let callback = through_idp(&mut browser, op, &sent, &sso.callback());
    come_back(&sso.app, browser, pending, &callback)
}

/// The redirect to the IdP, with the OP's account chosen by `login_hint`.
pub fn with_login_hint(mut page: Page, account: &str) -> Page {
    let mut url = url::Url::parse(page.location.as_deref().unwrap()).unwrap();
    let pairs: Vec<(String, String)> =
        url.query_pairs().into_owned().filter(|(k, _)| k != "login_hint").collect();
    url.query_pairs_mut().clear().extend_pairs(pairs).append_pair("login_hint", account);
    page.location = Some(url.to_string());
    page
}

/// The audit records of `action`.
pub use crate::saml::audit;
