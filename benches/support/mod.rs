//! What the HTTP benchmarks share: the release server in its own process, and a load driver.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use serde_json::{Value, json};

pub const ADMIN_KEY: &str = "bench-admin-key-0123456789abcdef0123456789";

pub struct Server {
    pub child: Child,
    pub base: String,
    _data: Option<tempfile::TempDir>,
}

impl Server {
    pub fn start() -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut server = Self::start_in(data.path());
        server._data = Some(data);
        server
    }

    /// A server on a data directory the caller keeps.
    pub fn start_in(data: &std::path::Path) -> Server {
        Self::start_in_with(data, &[])
    }

    /// A fresh server with more settings.
    pub fn start_with(settings: &[(&str, &str)]) -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut server = Self::start_in_with(data.path(), settings);
        server._data = Some(data);
        server
    }

    fn start_in_with(data: &std::path::Path, settings: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("serve")
            .envs(settings.iter().copied())
            .env("PORTCULLIS_DATA_DIR", data)
            .env("PORTCULLIS_LISTEN", "127.0.0.1:0")
            .env("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)
            .env("PORTCULLIS_SCIM_RATE_LIMIT", "0")
            .env("PORTCULLIS_LOG_LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = loop {
            let line = lines.next().unwrap().unwrap();
            if let Some(rest) = line.strip_prefix("Portcullis listening on ") {
                break rest.split(' ').next().unwrap().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server { child, base, _data: None }
    }

    /// Stops the server as systemd would (SIGTERM) and waits for it.
    pub fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }

    /// CPU time the server process has used so far (user + system), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command name (which may hold spaces): utime and stime are 14th and 15th.
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks / 100.0
    }

    pub fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `op(0..total)` from `concurrency` tasks; prints the rate and the latency percentiles.
pub async fn drive<F, Fut>(label: &str, concurrency: usize, total: usize, op: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (op, next) = (Arc::new(op), Arc::new(AtomicUsize::new(0)));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (op, next, latencies) = (Arc::clone(&op), Arc::clone(&next), Arc::clone(&latencies));
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    let begun = Instant::now();
                    op(n).await;
                    latencies.lock().unwrap().push(begun.elapsed());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1000.0
    };
    println!(
        "{label}, concurrency {concurrency}: {total} in {seconds:.2} s = {:.0}/s; p50 {:.2} ms, p99 {:.2} ms",
        total as f64 / seconds,
        pct(0.5),
        pct(0.99)
    );
}

/// A tenant and a SCIM token on `server`: (SCIM base URL, token).
pub async fn tenant(client: &reqwest::Client, server: &Server, slug: &str) -> (String, String) {
    let admin = |path: String| client.post(format!("{}/api/v1/{path}", server.base)).bearer_auth(ADMIN_KEY);
    let tenant = send(admin("tenants".into()).json(&json!({"slug": slug, "display_name": slug})), 201).await;
    let id = tenant["id"].as_str().unwrap();
    let token = send(admin(format!("tenants/{id}/scim-tokens")).json(&json!({"name": "bench"})), 201).await;
    (
        tenant["urls"]["scim_base_url"].as_str().unwrap().to_owned(),
        token["token"].as_str().unwrap().to_owned(),
    )
}

pub fn user(name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name, "externalId": format!("ext-{name}"),
        "name": {"givenName": "Bench", "familyName": name},
        "emails": [{"primary": true, "value": name, "type": "work"}],
        "displayName": name, "active": true,
    })
}

/// Sends and checks the status, without parsing the body: the load generator shares the two
/// cores with the server, so it does as little as it can.
pub async fn expect_status(request: reqwest::RequestBuilder, expected: u16) -> Vec<u8> {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    assert_eq!(status, expected, "{}", String::from_utf8_lossy(&body));
    body.to_vec()
}

pub async fn send(request: reqwest::RequestBuilder, expected: u16) -> Value {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_eq!(status, expected, "{body}");
    if body.is_empty() { Value::Null } else { serde_json::from_str(&body).unwrap() }
}

/// Creates `total` users named `{prefix}{n}@load.example` from 8 concurrent clients.
pub async fn create_users(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    label: &str,
    total: usize,
    prefix: &'static str,
) {
    let (c, b, t) = (client.clone(), base.to_owned(), token.to_owned());
    drive(label, 8, total, move |n| {
        let request =
            c.post(format!("{b}/Users")).bearer_auth(&t).json(&user(&format!("{prefix}{n}@load.example")));
        async move {
            expect_status(request, 201).await;
        }
    })
    .await;
}
