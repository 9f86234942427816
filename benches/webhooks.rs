//! Webhook delivery over real HTTP, for BENCHMARKS.md: the release server in its own process,
//! a fast receiver (axum, answering 204 at once) in the bench process, on loopback.
//!
//! 1. Throughput: with the endpoint paused, 10,000 users are provisioned over SCIM (10,000
//!    `user.created` events queue up); the endpoint is resumed and the time until the receiver
//!    has had every event is measured: events delivered per second, each delivery's outcome
//!    durably recorded.
//! 2. Provisioning with delivery live: 5,000 more users at concurrency 8 while the events flow;
//!    the SCIM rate beside the one measured without an endpoint, and how far behind the last
//!    webhook arrives.
//! 3. Latency: a SCIM deactivation (PATCH active=false), one at a time, 300 times: from sending
//!    the PATCH to the `user.deactivated` webhook arriving at the receiver.
//! 4. Provisioning while an endpoint hangs (never answers within the timeout): the SCIM rate.
//!
//! Run with `cargo bench --bench webhooks`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{body::Bytes, extract::State, http::StatusCode, routing::post};
use serde_json::{Value, json};

mod support;

use support::{ADMIN_KEY, Server, create_users, expect_status, send, tenant};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const BACKLOG: usize = 10_000;
const LIVE: usize = 5_000;
const DEACTIVATIONS: usize = 300;

#[derive(Default)]
struct Arrivals {
    count: AtomicUsize,
    /// user id → when its `user.deactivated` arrived.
    deactivated: Mutex<HashMap<String, Instant>>,
}

async fn receive(State(arrivals): State<Arc<Arrivals>>, body: Bytes) -> StatusCode {
    arrivals.count.fetch_add(1, Ordering::SeqCst);
    // Only deactivations are parsed: the receiver should cost as little as it can.
    if body.windows(16).any(|w| w == b"user.deactivated") {
        let event: Value = serde_json::from_slice(&body).unwrap();
        let user = event["subject"]["id"].as_str().unwrap().to_owned();
        arrivals.deactivated.lock().unwrap().insert(user, Instant::now());
    }
    StatusCode::NO_CONTENT
}

/// An endpoint that never answers in time.
async fn hang() -> StatusCode {
    tokio::time::sleep(Duration::from_secs(60)).await;
    StatusCode::NO_CONTENT
}

async fn start_receiver() -> (String, Arc<Arrivals>) {
    let arrivals = Arc::new(Arrivals::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hooks", post(receive))
        .route("/slow", post(hang))
        .with_state(Arc::clone(&arrivals));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, arrivals)
}

async fn wait_for_count(arrivals: &Arrivals, count: usize) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(600);
    while arrivals.count.load(Ordering::SeqCst) < count {
        assert!(Instant::now() < deadline, "only {} webhooks arrived", arrivals.count.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Instant::now()
}

#[tokio::main]
async fn main() {
    let server = Server::start_with(&[("PORTCULLIS_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")]);
    let client = reqwest::Client::builder().pool_max_idle_per_host(16).build().unwrap();
    let api = format!("{}/api/v1", server.base);
    let (receiver, arrivals) = start_receiver().await;
    let (base, token) = tenant(&client, &server, "acme").await;

    // Without an endpoint: the SCIM rate to compare with.
    let cpu = server.cpu_seconds();
    create_users(&client, &base, &token, "POST /Users, no webhook endpoint", LIVE, "plain").await;
    println!("server CPU per POST /Users: {:.2} ms", (server.cpu_seconds() - cpu) * 1000.0 / LIVE as f64);

    // 1. A paused endpoint's backlog, drained.
    let endpoint = send(
        client
            .post(format!("{api}/webhooks"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({ "url": receiver, "event_types": ["user.*"] })),
        201,
    )
    .await;
    let endpoint_url = format!("{api}/webhooks/{}", endpoint["id"].as_str().unwrap());
    let set_status =
        |status: &str| client.patch(&endpoint_url).bearer_auth(ADMIN_KEY).json(&json!({ "status": status }));
    send(set_status("paused"), 200).await;
    create_users(&client, &base, &token, "POST /Users, endpoint paused (events queue)", BACKLOG, "queued")
        .await;
    let backlog = wait_backlog(&client, &endpoint_url, BACKLOG as u64).await;
    let (resumed, cpu) = (Instant::now(), server.cpu_seconds());
    send(set_status("active"), 200).await;
    let drained = wait_for_count(&arrivals, BACKLOG).await;
    wait_backlog(&client, &endpoint_url, 0).await;
    let cpu_per_delivery = (server.cpu_seconds() - cpu) * 1000.0 / BACKLOG as f64;
    let seconds = (drained - resumed).as_secs_f64();
    println!(
        "backlog of {backlog} drained to a fast receiver: {seconds:.2} s = {:.0} events/s (16 in flight); server CPU per delivery {cpu_per_delivery:.2} ms",
        BACKLOG as f64 / seconds
    );

    // 2. Provisioning while the events flow.
    let started = Instant::now();
    create_users(&client, &base, &token, "POST /Users with delivery live", LIVE, "live").await;
    let provisioned = started.elapsed();
    let last = wait_for_count(&arrivals, BACKLOG + LIVE).await;
    println!(
        "the last of {LIVE} webhooks arrived {:.0} ms after the last POST ({:.2} s after the first)",
        (last - started - provisioned).as_secs_f64() * 1000.0,
        (last - started).as_secs_f64()
    );

    // 3. Deactivation → webhook.
    let ids = user_ids(&client, &base, &token, DEACTIVATIONS).await;
    let mut latencies = Vec::with_capacity(DEACTIVATIONS);
    for id in &ids {
        let body = json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "value": { "active": false } }] });
        let sent = Instant::now();
        expect_status(client.patch(format!("{base}/Users/{id}")).bearer_auth(&token).json(&body), 200).await;
        let acknowledged = sent.elapsed();
        let arrived = loop {
            if let Some(at) = arrivals.deactivated.lock().unwrap().get(id) {
                break *at;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        latencies.push(((arrived - sent).as_secs_f64() * 1000.0, acknowledged.as_secs_f64() * 1000.0));
    }
    let pct = |values: &mut Vec<f64>, p: f64| {
        values.sort_by(f64::total_cmp);
        values[((values.len() as f64 * p) as usize).min(values.len() - 1)]
    };
    let (mut to_webhook, mut to_response): (Vec<f64>, Vec<f64>) = latencies.into_iter().unzip();
    println!(
        "SCIM deactivation → webhook at the receiver, {DEACTIVATIONS} one at a time: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms (the PATCH's own response: p50 {:.1} ms)",
        pct(&mut to_webhook, 0.5),
        pct(&mut to_webhook, 0.95),
        pct(&mut to_webhook, 0.99),
        pct(&mut to_response, 0.5),
    );

    // 4. A hanging endpoint beside a paused fast one: requests must not notice it.
    send(set_status("paused"), 200).await;
    let slow = receiver.replace("/hooks", "/slow");
    send(client.post(format!("{api}/webhooks")).bearer_auth(ADMIN_KEY).json(&json!({ "url": slow })), 201)
        .await;
    create_users(&client, &base, &token, "POST /Users while an endpoint hangs (10 s timeouts)", LIVE, "hung")
        .await;
    server.stop();
}

async fn wait_backlog(client: &reqwest::Client, endpoint_url: &str, expected: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let view = send(client.get(endpoint_url).bearer_auth(ADMIN_KEY), 200).await;
        let backlog = view["backlog"].as_u64().unwrap();
        if backlog == expected {
            return backlog;
        }
        assert!(Instant::now() < deadline, "the backlog stayed at {backlog}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn user_ids(client: &reqwest::Client, base: &str, token: &str, count: usize) -> Vec<String> {
    let url = format!("{base}/Users?filter=userName%20sw%20%22live%22&count={count}&attributes=id");
    let list = send(client.get(url).bearer_auth(token), 200).await;
    list["Resources"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_owned()).collect()
}
