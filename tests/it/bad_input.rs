//! Clients' mistakes get a 4xx with a JSON body that says what is wrong, and change nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::server::{Server, expect_error};

fn raw_post(server: &Server, path: &str, body: &str) -> reqwest::blocking::Response {
    server
        .admin(Method::POST, path)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .unwrap()
}

fn tenant_count(server: &Server) -> usize {
    let page: Value = server.get("/api/v1/tenants?limit=200").json().unwrap();
    page["items"].as_array().unwrap().len()
}

#[test]
fn malformed_bodies_are_refused() {
    let server = Server::start();
    let cases = [
        ("{\"slug\": \"acme\",", "truncated JSON"),
        ("not json", "not JSON at all"),
        ("[]", "an array, not an object"),
        ("{\"slug\": 5, \"display_name\": \"Acme\"}", "a number for a string"),
        ("{\"display_name\": \"Acme\"}", "a missing field"),
        ("{\"slug\": \"acme\", \"display_name\": \"Acme\", \"colour\": \"red\"}", "an unknown field"),
        ("{\"slug\": \"acme\", \"display_name\": \"Acme\", \"status\": \"deleted\"}", "an unknown status"),
        (
            "{\"slug\": \"acme\", \"display_name\": \"Acme\", \"domains\": \"acme.com\"}",
            "a string for a list",
        ),
    ];
    for (body, what) in cases {
        let error = expect_error(raw_post(&server, "/api/v1/tenants", body), 400, "malformed_request");
        println!("{what}: {}", error["message"]);
    }
    let error = expect_error(
        raw_post(
            &server,
            "/api/v1/tenants",
            "{\"slug\": \"acme\", \"display_name\": \"Acme\", \"colour\": \"red\"}",
        ),
        400,
        "malformed_request",
    );
    assert!(error["message"].as_str().unwrap().contains("colour"), "{error}");
    assert_eq!(tenant_count(&server), 0);
}

#[test]
fn invalid_values_name_the_field() {
    let server = Server::start();
    let cases = [
        (json!({ "slug": "Acme", "display_name": "Acme" }), "slug"),
        (json!({ "slug": "a", "display_name": "Acme" }), "slug"),
        (json!({ "slug": "x".repeat(64), "display_name": "Acme" }), "slug"),
        (json!({ "slug": "admin", "display_name": "Acme" }), "slug"),
        (json!({ "slug": "acme", "display_name": "" }), "display_name"),
        (json!({ "slug": "acme", "display_name": "x".repeat(201) }), "display_name"),
        (json!({ "slug": "acme", "display_name": "Acme", "domains": ["localhost"] }), "domain"),
        (json!({ "slug": "acme", "display_name": "Acme", "domains": ["192.168.0.1"] }), "domain"),
        (json!({ "slug": "acme", "display_name": "Acme", "domains": ["a".repeat(300) + ".com"] }), "domain"),
        (json!({ "slug": "acme", "display_name": "Acme", "domains": ["*.acme.com"] }), "domain"),
    ];
    for (body, field) in cases {
        let error = expect_error(server.post("/api/v1/tenants", body), 400, "invalid_value");
        assert_eq!(error["field"], field, "{error}");
    }
    assert_eq!(tenant_count(&server), 0);

    server.create_tenant("acme", &[]);
    let error = expect_error(
        server.patch("/api/v1/tenants/acme", json!({ "slug": "Not Valid" })),
        400,
        "invalid_value",
    );
    assert_eq!(error["field"], "slug");
    let error = expect_error(
        server.post("/api/v1/tenants", json!({ "slug": "acme", "display_name": "Again" })),
        409,
        "slug_taken",
    );
    assert_eq!(error["field"], "slug");
    let error = expect_error(
        server.post("/api/v1/tenants/acme/domains", json!({ "domain": "no_underscores.com" })),
        400,
        "invalid_value",
    );
    assert_eq!(error["field"], "domain");
    let tenant: Value = server.get("/api/v1/tenants/acme").json().unwrap();
    assert_eq!(tenant["display_name"], "acme Inc.");
    assert!(tenant["domains"].as_array().unwrap().is_empty());
}

#[test]
fn oversized_and_mistyped_requests_are_refused() {
    let server = Server::start_with_settings(&[("PORTCULLIS_MAX_BODY_BYTES", "4096")]);
    let huge = format!("{{\"slug\": \"acme\", \"display_name\": \"{}\"}}", "x".repeat(8192));
    expect_error(raw_post(&server, "/api/v1/tenants", &huge), 413, "payload_too_large");
    let no_type = server
        .admin(Method::POST, "/api/v1/tenants")
        .body(json!({ "slug": "acme", "display_name": "Acme" }).to_string())
        .send()
        .unwrap();
    expect_error(no_type, 415, "unsupported_media_type");
    expect_error(server.get("/api/v1/tenants?limit=0"), 400, "invalid_value");
    expect_error(server.get("/api/v1/tenants?limit=100000"), 400, "invalid_value");
    expect_error(server.get("/api/v1/tenants?limit=abc"), 400, "malformed_request");
    expect_error(server.get("/api/v1/tenants?cursor=nonsense"), 400, "invalid_value");
    expect_error(server.get("/api/v1/tenants?colour=red"), 400, "malformed_request");
    assert_eq!(tenant_count(&server), 0);
}

#[test]
fn unknown_paths_and_methods_answer_in_json() {
    let server = Server::start();
    expect_error(server.get("/api/v1/nope"), 404, "not_found");
    expect_error(server.anonymous(Method::GET, "/no/such/page").send().unwrap(), 404, "not_found");
    expect_error(server.admin(Method::PUT, "/api/v1/tenants").send().unwrap(), 405, "method_not_allowed");
    expect_error(server.get("/api/v1/tenants/does-not-exist"), 404, "not_found");
    expect_error(
        server.get("/api/v1/tenants/00000000-0000-7000-8000-000000000000/domains"),
        404,
        "not_found",
    );
}
