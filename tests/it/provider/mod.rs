//! The OpenID Provider driven the way an app drives it: the `openidconnect` crate as the relying
//! party (discovery, PKCE, ID token validation, userinfo, refresh), and a small cookie-keeping
//! browser that fills in the login pages.

mod flows;
mod journeys;
mod refusals;

use std::{
    collections::{HashMap, VecDeque},
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    core::{CoreClient, CoreProviderMetadata, CoreResponseType},
};
use reqwest::{Method, blocking::Client, redirect::Policy};
use serde_json::{Value, json};

use crate::{scim::ok, server::Server};

pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// The HTTP client the relying party uses (no redirects, as OAuth demands).
pub fn http(request: openidconnect::HttpRequest) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let client = Client::builder().redirect(Policy::none()).build()?;
    let (parts, body) = request.into_parts();
    let mut builder = client.request(parts.method, parts.uri.to_string()).body(body);
    for (name, value) in &parts.headers {
        builder = builder.header(name, value);
    }
    let response = builder.send()?;
    let mut out = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        out = out.header(name, value);
    }
    Ok(out.body(response.bytes()?.to_vec()).unwrap())
}

pub type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// An app registered as a client, with its relying party built from discovery alone.
pub struct App {
    pub client_id: String,
    pub secret: String,
    pub rp: Rp,
}

impl App {
    pub fn register(server: &Server, extra: Value) -> App {
        let mut body = json!({ "name": "The App", "redirect_uris": [REDIRECT_URI] });
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        let created = ok(server.post("/api/v1/oauth-clients", body), 201);
        let (client_id, secret) = (
            created["client_id"].as_str().unwrap().to_owned(),
            created["client_secret"].as_str().unwrap().to_owned(),
        );
        let metadata =
            CoreProviderMetadata::discover(&IssuerUrl::new(server.url("")).unwrap(), &http).unwrap();
        let rp = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(client_id.clone()),
            Some(ClientSecret::new(secret.clone())),
        )
        .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap());
        App { client_id, secret, rp }
    }

    /// An authorization URL with PKCE S256 and a nonce, and what the app keeps to finish it.
    pub fn authorize(&self, scopes: &[&str]) -> Pending {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self.rp.authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in scopes {
            request = request.add_scope(Scope::new((*scope).into()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Pending { url: url.to_string(), state: state.secret().clone(), nonce, verifier }
    }

    pub fn exchange(&self, code: &str, verifier: PkceCodeVerifier) -> openidconnect::core::CoreTokenResponse {
        self.rp
            .exchange_code(AuthorizationCode::new(code.into()))
            .unwrap()
            .set_pkce_verifier(verifier)
            .request(&http)
            .unwrap()
    }

    /// POSTs to a token-side endpoint with this client's Basic credentials.
    pub fn call(&self, server: &Server, path: &str, form: &[(&str, &str)]) -> reqwest::blocking::Response {
        Client::new()
            .post(server.url(path))
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(form)
            .send()
            .unwrap()
    }

    pub fn introspect(&self, server: &Server, token: &str) -> Value {
        ok(self.call(server, "/oauth2/introspect", &[("token", token)]), 200)
    }
}

pub struct Pending {
    pub url: String,
    pub state: String,
    pub nonce: Nonce,
    pub verifier: PkceCodeVerifier,
}

/// A browser: keeps cookies, never follows redirects by itself, reads forms' hidden fields.
pub struct Browser {
    client: Client,
    cookies: HashMap<String, String>,
}

#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            client: Client::builder().redirect(Policy::none()).build().unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn send(&mut self, method: Method, url: &str, form: Option<&[(String, String)]>) -> Page {
        let cookie_header: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut request = self.client.request(method, url).header("cookie", cookie_header.join("; "));
        if let Some(form) = form {
            request = request.form(form);
        }
        let response = request.send().unwrap();
        for value in response.headers().get_all("set-cookie") {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), value.into());
            }
        }
        let status = response.status().as_u16();
        let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        Page { status, location, body: response.text().unwrap() }
    }

    pub fn get(&mut self, url: &str) -> Page {
        self.send(Method::GET, url, None)
    }

    /// POSTs a form to `url`, as an IdP's auto-submitting page makes the browser do.
    pub fn post(&mut self, url: &str, fields: &[(&str, &str)]) -> Page {
        let form: Vec<(String, String)> = fields.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        self.send(Method::POST, url, Some(&form))
    }

    /// Submits the page's form (its action and hidden fields) with `fields` filled in.
    pub fn submit(&mut self, server: &Server, page: &Page, fields: &[(&str, &str)]) -> Page {
        let action = attribute(&page.body, "<form", "action").expect("the page has a form");
        let mut form = hidden_fields(&page.body);
        for (name, value) in fields {
            form.retain(|(n, _)| n != name);
            form.push(((*name).into(), (*value).into()));
        }
        self.send(Method::POST, &server.url(&action), Some(&form))
    }

    /// Follows redirects inside the server until one leaves it (or a page is shown).
    pub fn follow(&mut self, server: &Server, mut page: Page) -> Page {
        while let Some(location) = page.location.clone() {
            if !location.starts_with('/') {
                return page;
            }
            page = self.get(&server.url(&location));
        }
        page
    }

    pub fn has_session(&self) -> bool {
        self.cookies.contains_key("portcullis_session")
    }
}

fn unescape(value: &str) -> String {
    value
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn attribute(html: &str, tag: &str, name: &str) -> Option<String> {
    let start = html.find(tag)?;
    let rest = &html[start..];
    let end = rest.find('>')?;
    let element = &rest[..end];
    let key = format!("{name}=\"");
    let at = element.find(&key)? + key.len();
    let value = &element[at..];
    Some(unescape(&value[..value.find('"')?]))
}

fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.match_indices("<input type=\"hidden\"")
        .filter_map(|(at, _)| {
            let element = &html[at..];
            Some((attribute(element, "<input", "name")?, attribute(element, "<input", "value")?))
        })
        .collect()
}

/// The query parameters of the URL the browser was sent back to the app with.
pub fn callback_params(location: &str) -> HashMap<String, String> {
    let url = url::Url::parse(location).unwrap();
    assert!(location.starts_with(REDIRECT_URI), "sent to {location}");
    url.query_pairs().into_owned().collect()
}

/// A tenant with a password user `ada@acme.test` whose password is set through her invitation.
pub fn tenant_with_password_user(server: &Server, password: &str) -> (String, String) {
    let tenant = server.create_tenant("acme", &["acme.test"]);
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();
    let user = ok(
        server.post(
            &format!("/api/v1/tenants/{tenant_id}/users"),
            json!({ "email": "Ada@acme.test", "display_name": "Ada Lovelace" }),
        ),
        201,
    );
    assert_eq!(user["emailed"], false, "without SMTP the operator gets the link");
    let link = user["password_link"].as_str().unwrap().to_owned();
    let mut browser = Browser::new();
    let form = browser.get(&link);
    assert_eq!(form.status, 200, "{}", form.body);
    let done = browser.submit(server, &form, &[("password", password), ("confirm", password)]);
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Your password is set"));
    (tenant_id, user["id"].as_str().unwrap().to_owned())
}

/// Signs `email` in with `password` in `browser` from an authorization URL; returns the page
/// that sends the browser back to the app.
pub fn sign_in(server: &Server, browser: &mut Browser, url: &str, email: &str, password: &str) -> Page {
    let first = browser.get(url);
    let login = browser.follow(server, first);
    assert_eq!(login.status, 200, "{}", login.body);
    let password_page = browser.submit(server, &login, &[("email", email)]);
    assert_eq!(password_page.status, 200, "{}", password_page.body);
    browser.submit(server, &password_page, &[("password", password)])
}

/// One POST the receiver got, and what it answered.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub body: String,
    pub answered: u16,
    pub at: Instant,
}

/// A back-channel logout receiver on loopback that answers each POST with the next status of its
/// script (the last one repeating), and records every body.
pub struct LogoutReceiver {
    pub url: String,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
}

impl LogoutReceiver {
    pub fn start(script: &[u16]) -> LogoutReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/backchannel", listener.local_addr().unwrap());
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&deliveries);
        let mut script: VecDeque<u16> = script.iter().copied().collect();
        let last = *script.back().expect("a script with at least one status");
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let status = script.pop_front().unwrap_or(last);
                seen.lock().unwrap().push(Delivery {
                    body: String::from_utf8_lossy(&body).into_owned(),
                    answered: status,
                    at: Instant::now(),
                });
                let _ =
                    write!(stream, "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        LogoutReceiver { url, deliveries }
    }

    /// Waits (up to `patience`) for `count` deliveries.
    pub fn wait_for(&self, count: usize, patience: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + patience;
        loop {
            let deliveries = self.deliveries.lock().unwrap().clone();
            if deliveries.len() >= count {
                return deliveries;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} back-channel logout deliveries within {patience:?}, got {deliveries:?}"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}
