//! What every response carries, health and readiness, and graceful shutdown.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use reqwest::Method;
use serde_json::{Value, json};

use crate::server::Server;

#[test]
fn every_response_has_a_request_id_and_security_headers() {
    let server = Server::start();
    let responses = [
        server.get("/api/v1/tenants"),
        server.anonymous(Method::GET, "/api/v1/tenants").send().unwrap(),
        server.anonymous(Method::GET, "/nowhere").send().unwrap(),
        server.anonymous(Method::GET, "/healthz").send().unwrap(),
    ];
    let mut ids = Vec::new();
    for response in responses {
        let headers = response.headers();
        let id = headers["x-request-id"].to_str().unwrap().to_owned();
        assert!(!id.is_empty());
        ids.push(id);
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["cache-control"], "no-store");
        assert!(headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "request ids must be unique");

    // A caller's plain request id is kept, a hostile one replaced.
    let kept = server.anonymous(Method::GET, "/healthz").header("x-request-id", "trace-123").send().unwrap();
    assert_eq!(kept.headers()["x-request-id"], "trace-123");
    let replaced = server.anonymous(Method::GET, "/healthz").header("x-request-id", "a b\tc").send().unwrap();
    assert_ne!(replaced.headers()["x-request-id"], "a b\tc");
}

#[test]
fn health_and_readiness() {
    let server = Server::start();
    let health = server.anonymous(Method::GET, "/healthz").send().unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().unwrap()["status"], "ok");
    let ready = server.anonymous(Method::GET, "/readyz").send().unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().unwrap()["status"], "ready");
}

#[test]
fn logs_never_contain_the_admin_key() {
    let server = Server::start();
    server.create_tenant("acme", &["acme.com"]);
    let created: Value = server.post("/api/v1/admin-keys", json!({ "name": "x" })).json().unwrap();
    let _ = server.anonymous(Method::GET, "/api/v1/tenants").bearer_auth("pcak_guess").send().unwrap();
    let logs = server.stderr();
    assert!(logs.contains("tenant created"), "{logs}");
    assert!(!logs.contains(crate::server::ADMIN_KEY));
    assert!(!logs.contains(created["key"].as_str().unwrap()));
    assert!(!logs.contains("pcak_guess"));
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_cleanly() {
    let mut server = Server::start();
    let address = server.base.trim_start_matches("http://").to_owned();
    let body = json!({ "slug": "in-flight", "display_name": "In Flight" }).to_string();
    let (head, tail) = body.split_at(10);

    // Start a request and send only part of its body.
    let mut stream = TcpStream::connect(&address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        stream,
        "POST /api/v1/tenants HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
        crate::server::ADMIN_KEY,
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    server.send_sigterm();
    std::thread::sleep(Duration::from_millis(300));
    // New connections are no longer accepted while the old request is still served.
    stream.write_all(tail.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");

    let status = server.wait_exit();
    assert!(status.success(), "{status:?}");
    let data = server.data();
    drop(server);
    let restarted = Server::start_with(data, &[("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", crate::server::ADMIN_KEY)]);
    assert_eq!(restarted.get("/api/v1/tenants/in-flight").status(), 200);
}

#[test]
fn a_request_that_outlasts_the_time_limit_gets_a_json_503() {
    let server = Server::start_with_settings(&[("PORTCULLIS_REQUEST_TIMEOUT_SECS", "1")]);
    let address = server.base.trim_start_matches("http://").to_owned();
    // A body that never finishes arriving.
    let mut stream = TcpStream::connect(&address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        stream,
        "POST /api/v1/tenants HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"slug\"",
        crate::server::ADMIN_KEY,
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains("\"timed_out\""), "{response}");
    assert!(response.to_ascii_lowercase().contains("x-request-id:"), "{response}");
}
