//! Starting, killing and restarting the real server.

use std::{
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::Duration,
};

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::Value;
use tempfile::TempDir;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef0123456789";

pub struct Server {
    child: Child,
    pub base: String,
    pub admin_key: String,
    data: Arc<TempDir>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    client: Client,
}

/// A `portcullis` command with a clean environment: no `PORTCULLIS_*` from the developer's shell.
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    for (name, _) in std::env::vars() {
        if name.starts_with("PORTCULLIS_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Runs `portcullis serve` expecting it to refuse to start; returns what it printed to stderr.
pub fn serve_refused(listen: &str, data_dir: &Path) -> String {
    let output =
        command().args(["serve", "--listen", listen]).env("PORTCULLIS_DATA_DIR", data_dir).output().unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

impl Server {
    /// A fresh server whose first admin key is `ADMIN_KEY`.
    pub fn start() -> Server {
        Self::start_with(
            Arc::new(tempfile::tempdir().unwrap()),
            &[("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)],
        )
    }

    /// A fresh server whose first admin key is `ADMIN_KEY`, with more settings.
    pub fn start_with_settings(settings: &[(&str, &str)]) -> Server {
        let mut env = vec![("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)];
        env.extend_from_slice(settings);
        Self::start_with(Arc::new(tempfile::tempdir().unwrap()), &env)
    }

    pub fn start_with(data: Arc<TempDir>, env: &[(&str, &str)]) -> Server {
        let mut cmd = command();
        cmd.arg("serve")
            .env("PORTCULLIS_DATA_DIR", data.path())
            .env("PORTCULLIS_LISTEN", "127.0.0.1:0")
            .env("PORTCULLIS_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start portcullis");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        {
            let out = BufReader::new(child.stdout.take().unwrap());
            let stdout = Arc::clone(&stdout);
            thread::spawn(move || {
                for line in out.lines().map_while(Result::ok) {
                    stdout.lock().unwrap().push_str(&format!("{line}\n"));
                    if let Some(rest) = line.strip_prefix("Portcullis listening on ") {
                        let url = rest.split_whitespace().next().unwrap_or_default().to_owned();
                        let _ = ready_tx.send(url);
                    }
                }
            });
        }
        {
            let mut err = child.stderr.take().unwrap();
            let stderr = Arc::clone(&stderr);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    stderr.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let base = match ready_rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("portcullis did not start; stderr:\n{}", stderr.lock().unwrap());
            }
        };
        let admin_key = env
            .iter()
            .find(|(k, _)| *k == "PORTCULLIS_BOOTSTRAP_ADMIN_KEY")
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        let client = Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Server { child, base, admin_key, data, stdout, stderr, client }
    }

    /// Talks to the server with `client` from now on (one that trusts its test certificate).
    pub fn use_client(&mut self, client: Client) {
        self.client = client;
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    pub fn data(&self) -> Arc<TempDir> {
        Arc::clone(&self.data)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(mut self) -> Arc<TempDir> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        Arc::clone(&self.data)
    }

    pub fn send_sigterm(&self) {
        self.send_signal("TERM");
    }

    pub fn send_signal(&self, signal: &str) {
        // The shell's built-in kill: no dependency on procps.
        let status =
            Command::new("sh").arg("-c").arg(format!("kill -{signal} {}", self.pid())).status().unwrap();
        assert!(status.success());
    }

    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("portcullis did not exit after SIGTERM");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with the admin key.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(&self.admin_key)
    }

    pub fn anonymous(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub fn get(&self, path: &str) -> Response {
        self.admin(reqwest::Method::GET, path).send().unwrap()
    }

    pub fn post(&self, path: &str, body: Value) -> Response {
        self.admin(reqwest::Method::POST, path).json(&body).send().unwrap()
    }

    pub fn patch(&self, path: &str, body: Value) -> Response {
        self.admin(reqwest::Method::PATCH, path).json(&body).send().unwrap()
    }

    pub fn delete(&self, path: &str) -> Response {
        self.admin(reqwest::Method::DELETE, path).send().unwrap()
    }

    /// Creates a tenant and returns its JSON.
    pub fn create_tenant(&self, slug: &str, domains: &[&str]) -> Value {
        let response = self.post(
            "/api/v1/tenants",
            serde_json::json!({ "slug": slug, "display_name": format!("{slug} Inc."), "domains": domains }),
        );
        assert_eq!(response.status(), 201, "{}", response.text().unwrap_or_default());
        response.json().unwrap()
    }

    /// The audit records of `action`, oldest first, as the plain listing shows them.
    pub fn audit(&self, action: &str) -> Vec<Value> {
        let response = self.get(&format!("/api/v1/audit?action={action}&limit=100"));
        assert_eq!(response.status(), 200);
        response.json::<Value>().unwrap()["items"].as_array().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts the status and that the body is an error of the admin API's shape; returns the error.
pub fn expect_error(response: Response, status: u16, code: &str) -> Value {
    let actual = response.status().as_u16();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let body = response.text().unwrap();
    assert_eq!(actual, status, "body: {body}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "body: {body}");
    let value: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(value["error"]["code"], code, "body: {body}");
    assert!(value["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "body: {body}");
    value["error"].clone()
}
