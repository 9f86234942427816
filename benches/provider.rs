//! The OpenID Provider's hot paths over real HTTP against the release server in its own process,
//! for BENCHMARKS.md (targets in the team's TARGETS.md).
//!
//! 1. The code flow with a live session: GET /oauth2/authorize (answered at once from the
//!    session cookie, one commit) then POST /oauth2/token (one commit), at concurrency 8.
//! 2. Refresh with rotation (one commit each), at concurrency 8.
//! 3. Token introspection of 1,000 distinct live access tokens, at concurrency 8.
//! 4. Revocation → inactive: an operator ends a session; the very next introspection of its
//!    access token must answer inactive (counted), and the revocation's latency is reported.
//!
//! Run with `cargo bench --bench provider`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::{Client, redirect::Policy};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{ADMIN_KEY, Server, drive};

const REDIRECT: &str = "http://127.0.0.1:9/cb";
const PASSWORD: &str = "correct horse battery staple";
const VERIFIER: &str = "bench-verifier-0123456789abcdef0123456789abcdef";

struct Setup {
    base: String,
    tenant: String,
    client_id: String,
    secret: String,
}

fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let attribute = |element: &str, name: &str| {
        let key = format!("{name}=\"");
        let at = element.find(&key)? + key.len();
        Some(element[at..at + element[at..].find('"')?].replace("&amp;", "&"))
    };
    html.match_indices("<input type=\"hidden\"")
        .filter_map(|(at, _)| {
            let element = &html[at..at + html[at..].find('>')?];
            Some((attribute(element, "name")?, attribute(element, "value")?))
        })
        .collect()
}

/// A browser cookie jar of one: enough for the login pages.
#[derive(Default, Clone)]
struct Jar(Arc<Mutex<HashMap<String, String>>>);

impl Jar {
    fn header(&self) -> String {
        self.0.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep(&self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.0.lock().unwrap().insert(name.into(), value.into());
        }
    }

    async fn get(&self, http: &Client, url: &str) -> (u16, Option<String>, String) {
        let response = http.get(url).header("cookie", self.header()).send().await.unwrap();
        self.keep(&response);
        let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        (response.status().as_u16(), location, response.text().await.unwrap())
    }

    async fn post(
        &self,
        http: &Client,
        url: &str,
        page: &str,
        fields: &[(&str, &str)],
    ) -> (u16, Option<String>, String) {
        let mut form = hidden_fields(page);
        form.extend(fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let response = http.post(url).header("cookie", self.header()).form(&form).send().await.unwrap();
        self.keep(&response);
        let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        (response.status().as_u16(), location, response.text().await.unwrap())
    }
}

async fn admin(http: &Client, base: &str, path: &str, body: Value) -> Value {
    let response =
        http.post(format!("{base}/api/v1{path}")).bearer_auth(ADMIN_KEY).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

async fn setup(http: &Client, server: &Server) -> Setup {
    let base = server.base.clone();
    let tenant = admin(http, &base, "/tenants", json!({"slug": "acme", "display_name": "Acme"})).await;
    let tenant = tenant["id"].as_str().unwrap().to_owned();
    let mut setup = Setup { base, tenant, client_id: String::new(), secret: String::new() };
    register(http, &mut setup, "RS256").await;
    setup
}

/// Registers a client signing its tokens with `alg` and makes it the one `setup` uses.
async fn register(http: &Client, setup: &mut Setup, alg: &str) {
    let body =
        json!({"name": format!("bench {alg}"), "redirect_uris": [REDIRECT], "id_token_signing_alg": alg});
    let client = admin(http, &setup.base, "/oauth-clients", body).await;
    setup.client_id = client["client_id"].as_str().unwrap().to_owned();
    setup.secret = client["client_secret"].as_str().unwrap().to_owned();
}

/// A password user `email`, whose password is set through the invitation link.
async fn user(http: &Client, setup: &Setup, email: &str) -> String {
    let created =
        admin(http, &setup.base, &format!("/tenants/{}/users", setup.tenant), json!({"email": email})).await;
    let jar = Jar::default();
    let (_, _, form) = jar.get(http, created["password_link"].as_str().unwrap()).await;
    let (status, _, _) = jar
        .post(
            http,
            &format!("{}/password/reset", setup.base),
            &form,
            &[("password", PASSWORD), ("confirm", PASSWORD)],
        )
        .await;
    assert_eq!(status, 200);
    created["id"].as_str().unwrap().to_owned()
}

fn authorize_url(setup: &Setup, scope: &str) -> String {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
    format!(
        "{}/oauth2/authorize?client_id={}&response_type=code&scope={scope}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256&state=s",
        setup.base,
        setup.client_id,
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    )
}

/// Signs `email` in through the login pages; returns the browser holding the session.
async fn sign_in(http: &Client, setup: &Setup, email: &str) -> Jar {
    let jar = Jar::default();
    let (_, login, _) = jar.get(http, &authorize_url(setup, "openid")).await;
    let (_, _, page) = jar.get(http, &format!("{}{}", setup.base, login.unwrap())).await;
    let (_, _, page) = jar.post(http, &format!("{}/login", setup.base), &page, &[("email", email)]).await;
    let (status, _, _) =
        jar.post(http, &format!("{}/login/password", setup.base), &page, &[("password", PASSWORD)]).await;
    assert_eq!(status, 303);
    jar
}

/// One authorization answered by the session, and its code exchanged: the token response.
async fn code_flow(http: &Client, setup: &Setup, jar: &Jar, scope: &str) -> Value {
    let (status, location, _) = jar.get(http, &authorize_url(setup, scope)).await;
    assert_eq!(status, 303);
    let location = url::Url::parse(&location.unwrap()).unwrap();
    let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let response = http
        .post(format!("{}/oauth2/token", setup.base))
        .basic_auth(&setup.client_id, Some(&setup.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn introspect(http: &Client, setup: &Setup, token: &str) -> bool {
    let response = http
        .post(format!("{}/oauth2/introspect", setup.base))
        .basic_auth(&setup.client_id, Some(&setup.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    // The load generator shares the cores: look for the answer without parsing the JSON.
    body.starts_with(b"{\"active\":true")
}

/// Introspection driven by wrk (if it is installed: `apt-get install wrk`), 8 connections on 2
/// threads for 15 s, cycling through the tokens.
/// With `BENCH_PERF=<file>`, a CPU profile of the server (`perf record`) is taken meanwhile.
fn wrk_introspection(setup: &Setup, tokens: &[String], server_pid: u32) {
    if std::process::Command::new("wrk").arg("--version").output().is_err() {
        println!("introspection with wrk: skipped (wrk is not installed)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("tokens.txt");
    std::fs::write(&list, tokens.join("\n")).unwrap();
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", setup.client_id, setup.secret));
    let script = dir.path().join("introspect.lua");
    std::fs::write(
        &script,
        format!(
            r#"local tokens = {{}}
for line in io.lines("{list}") do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", "/oauth2/introspect",
    {{ ["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = "Basic {basic}" }},
    "token=" .. tokens[(i % #tokens) + 1])
end
"#,
            list = list.display()
        ),
    )
    .unwrap();
    let profiler = std::env::var("BENCH_PERF").ok().map(|file| {
        std::process::Command::new("perf")
            .args([
                "record",
                "-e",
                "cpu-clock",
                "-o",
                &file,
                "-p",
                &server_pid.to_string(),
                "--",
                "sleep",
                "12",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    });
    let output = std::process::Command::new("wrk")
        .args(["-t2", "-c8", "-d15s", "--latency", "-s"])
        .arg(&script)
        .arg(&setup.base)
        .output()
        .unwrap();
    if let Some(mut profiler) = profiler {
        profiler.wait().unwrap();
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let pick = |prefix: &str| {
        text.lines().find(|l| l.trim_start().starts_with(prefix)).unwrap_or("").trim().to_owned()
    };
    println!(
        "introspection with wrk (2 threads, 8 connections, 15 s): {} | p50 {} | p99 {} | {}",
        pick("Requests/sec"),
        pick("50%"),
        pick("99%"),
        if text.contains("Non-2xx") { pick("Non-2xx") } else { "all 200".into() }
    );
}

#[tokio::main]
async fn main() {
    let server = Server::start();
    let http = Client::builder().redirect(Policy::none()).pool_max_idle_per_host(16).build().unwrap();
    let setup = Arc::new(setup(&http, &server).await);
    user(&http, &setup, "ada@acme.test").await;
    let jar = sign_in(&http, &setup, "ada@acme.test").await;

    // 1. The code flow with a live session, for an ES256 client, then an RS256 one (RSA-2048
    //    signing costs ~1 ms a token); keep the RS256 tokens for what follows.
    let mut es256 = Setup {
        base: setup.base.clone(),
        tenant: setup.tenant.clone(),
        client_id: String::new(),
        secret: String::new(),
    };
    register(&http, &mut es256, "ES256").await;
    let es256 = Arc::new(es256);
    {
        let (http, es256, jar) = (http.clone(), Arc::clone(&es256), jar.clone());
        drive("code flow with a live session (authorize + token), ES256 tokens", 8, 2_000, move |_| {
            let (http, es256, jar) = (http.clone(), Arc::clone(&es256), jar.clone());
            async move {
                code_flow(&http, &es256, &jar, "openid%20offline_access").await;
            }
        })
        .await;
    }
    let tokens = Arc::new(Mutex::new(Vec::new()));
    {
        let (http, setup, jar, tokens) = (http.clone(), Arc::clone(&setup), jar.clone(), Arc::clone(&tokens));
        drive("code flow with a live session (authorize + token), RS256 tokens", 8, 2_000, move |_| {
            let (http, setup, jar, tokens) =
                (http.clone(), Arc::clone(&setup), jar.clone(), Arc::clone(&tokens));
            async move {
                let response = code_flow(&http, &setup, &jar, "openid%20offline_access").await;
                tokens.lock().unwrap().push(response);
            }
        })
        .await;
    }

    // 2. Refresh with rotation: each of the first 1,000 families refreshed once.
    let refresh_tokens: Arc<Vec<String>> = Arc::new(
        tokens
            .lock()
            .unwrap()
            .iter()
            .take(1_000)
            .map(|t| t["refresh_token"].as_str().unwrap().to_owned())
            .collect(),
    );
    {
        let (http, setup, refresh_tokens) = (http.clone(), Arc::clone(&setup), Arc::clone(&refresh_tokens));
        drive("refresh with rotation", 8, refresh_tokens.len(), move |n| {
            let (http, setup, token) = (http.clone(), Arc::clone(&setup), refresh_tokens[n].clone());
            async move {
                let response = http
                    .post(format!("{}/oauth2/token", setup.base))
                    .basic_auth(&setup.client_id, Some(&setup.secret))
                    .form(&[("grant_type", "refresh_token"), ("refresh_token", token.as_str())])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
            }
        })
        .await;
    }

    // 3. Introspection of 1,000 distinct live access tokens, each asked about many times.
    let access: Arc<Vec<String>> = Arc::new(
        tokens
            .lock()
            .unwrap()
            .iter()
            .take(1_000)
            .map(|t| t["access_token"].as_str().unwrap().to_owned())
            .collect(),
    );
    for round in ["first", "second"] {
        let (http, setup, access) = (http.clone(), Arc::clone(&setup), Arc::clone(&access));
        drive(&format!("introspection of 1,000 live access tokens ({round} run)"), 8, 200_000, move |n| {
            let (http, setup, access) = (http.clone(), Arc::clone(&setup), Arc::clone(&access));
            async move {
                assert!(introspect(&http, &setup, &access[n % access.len()]).await);
            }
        })
        .await;
    }

    // 3b. The same with wrk, a load generator in C that leaves the server most of the CPU.
    wrk_introspection(&setup, &access, server.child.id());

    // 4. Revocation → inactive, one session at a time.
    let mut latencies = Vec::new();
    let mut inactive_at_once = 0;
    const SESSIONS: usize = 30;
    for n in 0..SESSIONS {
        let email = format!("user{n}@acme.test");
        let id = user(&http, &setup, &email).await;
        let jar = sign_in(&http, &setup, &email).await;
        let token =
            code_flow(&http, &setup, &jar, "openid").await["access_token"].as_str().unwrap().to_owned();
        assert!(introspect(&http, &setup, &token).await);
        let started = Instant::now();
        let response = http
            .delete(format!("{}/api/v1/tenants/{}/users/{id}/sessions", setup.base, setup.tenant))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        latencies.push(started.elapsed());
        if !introspect(&http, &setup, &token).await {
            inactive_at_once += 1;
        }
    }
    latencies.sort();
    println!(
        "revocation → inactive: {inactive_at_once}/{SESSIONS} tokens inactive at the first introspection after the revocation's response; revocation p50 {:.2} ms, max {:.2} ms",
        latencies[SESSIONS / 2].as_secs_f64() * 1000.0,
        latencies[SESSIONS - 1].as_secs_f64() * 1000.0
    );
    println!("server memory after the run: {:.1} MB RSS", server.rss_mb());
}
