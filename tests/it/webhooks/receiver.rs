//! A webhook receiver on loopback, scripted by each test: it records every request with its
//! Standard Webhooks headers and answers as the test's script says (a status, or a hang longer
//! than the server's timeout). Signatures are checked by `verify`, with the Python reference
//! library, never here.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use serde_json::{Value, json};

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    Status(u16),
    /// Answers 200 only after `HANG`: past the server's timeout in these tests.
    Hang,
}

const HANG: Duration = Duration::from_secs(4);

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    pub payload: Value,
    pub answer: Reply,
}

impl Received {
    pub fn kind(&self) -> &str {
        self.payload["type"].as_str().unwrap_or_default()
    }

    pub fn delivered(&self) -> bool {
        matches!(self.answer, Reply::Status(200..=299))
    }

    /// The request as `scripts/webhook-verify` reads it.
    pub fn as_verifiable(&self) -> Value {
        json!({
            "headers": {
                "webhook-id": self.id, "webhook-timestamp": self.timestamp, "webhook-signature": self.signature,
            },
            "body": self.body,
        })
    }
}

type Script = Box<dyn Fn(&Value, usize) -> Reply + Send>;

struct Shared {
    received: Mutex<Vec<Received>>,
    attempts: Mutex<HashMap<String, usize>>,
    script: Mutex<Script>,
}

pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Receiver {
    /// A receiver answering 204 to everything.
    pub fn start() -> Receiver {
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            attempts: Mutex::new(HashMap::new()),
            script: Mutex::new(Box::new(|_, _| Reply::Status(204))),
        });
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = Arc::clone(&shared);
        thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                url_tx.send(format!("http://{}/hooks", listener.local_addr().unwrap())).unwrap();
                let app = axum::Router::new().route("/hooks", post(receive)).with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let url = url_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Receiver { url, shared, stop: Some(stop) }
    }

    /// From now on, answers as `script` says: it gets the event and which attempt of it this is.
    pub fn answer(&self, script: impl Fn(&Value, usize) -> Reply + Send + 'static) {
        *self.shared.script.lock().unwrap() = Box::new(script);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The requests answered 2xx, in the order they arrived.
    pub fn delivered(&self) -> Vec<Received> {
        self.received().into_iter().filter(Received::delivered).collect()
    }

    /// Waits (up to a minute) until `done` holds for what has arrived; returns it.
    pub fn wait_until(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let received = self.received();
            if done(&received) {
                return received;
            }
            let kinds: Vec<(&str, &str)> = received
                .iter()
                .map(|r| (r.kind(), r.payload["subject"]["label"].as_str().unwrap_or_default()))
                .collect();
            assert!(Instant::now() < deadline, "waited a minute for {what}; received {kinds:?}");
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `count` distinct events have been delivered (2xx).
    pub fn wait_delivered(&self, count: usize) -> Vec<Received> {
        self.wait_until(&format!("{count} delivered events"), |received| {
            distinct_delivered(received) >= count
        });
        self.delivered()
    }
}

pub fn distinct_delivered(received: &[Received]) -> usize {
    let mut ids: Vec<&str> = received.iter().filter(|r| r.delivered()).map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = String::from_utf8_lossy(&body).into_owned();
    let payload: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let id = header("webhook-id");
    let attempt = {
        let mut attempts = shared.attempts.lock().unwrap();
        let count = attempts.entry(id.clone()).or_default();
        *count += 1;
        *count
    };
    let answer = (shared.script.lock().unwrap())(&payload, attempt);
    let received = Received {
        id,
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body,
        payload,
        answer,
    };
    shared.received.lock().unwrap().push(received);
    match answer {
        Reply::Status(status) => StatusCode::from_u16(status).unwrap(),
        Reply::Hang => {
            tokio::time::sleep(HANG).await;
            StatusCode::OK
        }
    }
}

/// Checks each request with the Standard Webhooks reference library: `ok` or `refused: …`.
pub fn verify(secret: &str, requests: &[Value]) -> Vec<String> {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/webhook-verify");
    let mut child = std::process::Command::new(script)
        .arg(secret)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = requests.iter().map(|r| format!("{r}\n")).collect();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect()
}
