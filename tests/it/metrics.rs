//! `/metrics`: read by Prometheus' own parsers (the Python client's classic and OpenMetrics
//! parsers, and promtool's linter, through `scripts/metrics-check`), counting the traffic a test
//! makes; and closed to anyone without an admin key or a `metrics:read` key.

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
};

use reqwest::{Method, blocking::Response};
use serde_json::{Value, json};

use crate::{
    provider::{self, App, Browser, tenant_with_password_user},
    scim::{Scim, ok, patch_op},
    server::{Server, expect_error},
};

const OPENMETRICS: &str = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2";

/// Runs `scripts/metrics-check mode` on `exposition`; its stdout, or a failure with its stderr.
fn check(mode: &str, exposition: &str) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/metrics-check");
    let mut child = Command::new(script)
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "metrics-check {mode} refused it:\n{stdout}\n{stderr}\n{exposition}");
    stdout.into_owned()
}

/// The families a parser read, by name.
fn parse(mode: &str, exposition: &str) -> Value {
    serde_json::from_str(&check(mode, exposition)).unwrap()
}

/// The value of the sample `name` whose labels include `labels`; 0 when there is none.
fn value(families: &Value, family: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let Some(samples) = families[family]["samples"].as_array() else { panic!("no family {family}") };
    samples
        .iter()
        .filter(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .map(|s| s["value"].as_f64().unwrap())
        .sum()
}

fn scrape(server: &Server, key: &str, accept: Option<&str>) -> (String, String) {
    let mut request = server.anonymous(Method::GET, "/metrics").bearer_auth(key);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    (content_type, response.text().unwrap())
}

fn metrics_key(server: &Server) -> (String, String) {
    let created =
        ok(server.post("/api/v1/admin-keys", json!({ "name": "prometheus", "scope": "metrics:read" })), 201);
    assert_eq!(created["scope"], "metrics:read");
    (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned())
}

#[test]
fn the_exposition_parses_in_both_formats_and_counts_the_traffic() {
    let server = Server::start();
    let password = "correct horse battery staple";
    let (tenant, ada) = tenant_with_password_user(&server, password);
    let app = App::register(&server, json!({}));

    // A refused password and a sign-in.
    let pending = app.authorize(&["email"]);
    let refused = provider::sign_in(&server, &mut Browser::new(), &pending.url, "ada@acme.test", "wrong");
    assert!(refused.location.is_none());
    let pending = app.authorize(&["email"]);
    let back = provider::sign_in(&server, &mut Browser::new(), &pending.url, "ada@acme.test", password);
    assert!(back.location.is_some(), "signed in");

    // SCIM: a user made, and Ada deactivated, which ends her session.
    let scim = Scim::of_tenant(&server, &ok(server.get(&format!("/api/v1/tenants/{tenant}")), 200));
    scim.create_user("grace@acme.test");
    let deactivate = patch_op(json!([{ "op": "replace", "value": { "active": false } }]));
    ok(scim.patch(&format!("/Users/{ada}"), deactivate), 200);
    assert_eq!(scim.get("/Users/not-a-user").status(), 404);
    // Admin calls (three, and the one above), and a path no route serves.
    for _ in 0..3 {
        ok(server.get(&format!("/api/v1/tenants/{tenant}")), 200);
    }
    assert_eq!(server.get("/api/v1/no-such-thing/42").status(), 404);

    let (_, key) = metrics_key(&server);
    let (content_type, text) = scrape(&server, &server.admin_key, None);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let (content_type, openmetrics) = scrape(&server, &key, Some(OPENMETRICS));
    assert_eq!(content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(openmetrics.ends_with("# EOF\n"));
    check("promtool", &text);

    for (mode, body) in [("text", &text), ("openmetrics", &openmetrics)] {
        let families = parse(mode, body);
        let types: Vec<(&str, &str)> = [
            ("portcullis_http_requests", "counter"),
            ("portcullis_http_request_duration_seconds", "histogram"),
            ("portcullis_scim_operations", "counter"),
            ("portcullis_signins", "counter"),
            ("portcullis_signin_refusals", "counter"),
            ("portcullis_sessions_revoked", "counter"),
            ("portcullis_webhook_deliveries_waiting", "gauge"),
            ("portcullis_webhook_fanout_lag_events", "gauge"),
            ("portcullis_webhook_delivery_overdue_seconds", "gauge"),
            ("portcullis_backchannel_logouts_waiting", "gauge"),
            ("portcullis_audit_index_lag_records", "gauge"),
            ("portcullis_store_write_batches", "counter"),
            ("portcullis_store_write_operations", "counter"),
            ("portcullis_build_info", "gauge"),
            ("process_start_time_seconds", "gauge"),
        ]
        .into_iter()
        .filter(|(name, kind)| families[*name]["type"] != *kind)
        .collect();
        assert!(types.is_empty(), "{mode}: missing or mistyped {types:?} in {families:#}");

        let scim = |resource, operation, outcome| {
            value(
                &families,
                "portcullis_scim_operations",
                "portcullis_scim_operations_total",
                &[("resource", resource), ("operation", operation), ("outcome", outcome)],
            )
        };
        assert!(scim("User", "create", "success") >= 1.0, "{mode}");
        assert!(scim("User", "patch", "success") >= 1.0, "{mode}");
        assert!(scim("User", "get", "client_error") >= 1.0, "{mode}: the 404");
        let signins = |method, outcome| {
            value(
                &families,
                "portcullis_signins",
                "portcullis_signins_total",
                &[("method", method), ("outcome", outcome)],
            )
        };
        assert_eq!(signins("password", "success"), 1.0, "{mode}");
        assert_eq!(signins("password", "refused"), 1.0, "{mode}");
        assert_eq!(signins("saml", "success"), 0.0, "{mode}: every method is there from 0");
        let reason = [("method", "password"), ("reason", "invalid_credentials")];
        assert_eq!(
            value(&families, "portcullis_signin_refusals", "portcullis_signin_refusals_total", &reason),
            1.0
        );
        let revoked = |cause| {
            value(
                &families,
                "portcullis_sessions_revoked",
                "portcullis_sessions_revoked_total",
                &[("cause", cause)],
            )
        };
        assert_eq!(revoked("user_deactivated"), 1.0, "{mode}: Ada's one session");
        assert_eq!(revoked("admin"), 0.0, "{mode}");

        let requests = |route, code| {
            value(
                &families,
                "portcullis_http_requests",
                "portcullis_http_requests_total",
                &[("method", "GET"), ("route", route), ("code", code)],
            )
        };
        assert_eq!(requests("/api/v1/tenants/{tenant}", "200"), 4.0, "{mode}: by template, not by path");
        assert!(requests("unmatched", "404") >= 1.0, "{mode}");
        let all_routes = families["portcullis_http_requests"]["samples"].as_array().unwrap();
        assert!(
            all_routes.iter().all(|s| !s["labels"]["route"].as_str().unwrap().contains(tenant.as_str())),
            "{mode}: no tenant id in a label"
        );
        let latency = value(
            &families,
            "portcullis_http_request_duration_seconds",
            "portcullis_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", "/api/v1/tenants/{tenant}")],
        );
        assert_eq!(latency, 4.0, "{mode}");
        let build = value(
            &families,
            "portcullis_build_info",
            "portcullis_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
        );
        assert_eq!(build, 1.0);
        assert!(
            value(&families, "portcullis_store_write_batches", "portcullis_store_write_batches_total", &[])
                >= 1.0
        );
    }
}

#[test]
fn metrics_need_an_admin_key_or_a_metrics_key_and_a_metrics_key_reaches_nothing_else() {
    let server = Server::start();
    Scim::new(&server, "acme").create_user("ada@acme.test");
    expect_error(server.anonymous(Method::GET, "/metrics").send().unwrap(), 401, "unauthenticated");
    let wrong = server.anonymous(Method::GET, "/metrics").bearer_auth("pcak_not-a-key").send().unwrap();
    expect_error(wrong, 401, "invalid_token");
    let events = ok(server.post("/api/v1/admin-keys", json!({ "name": "app", "scope": "events:read" })), 201);
    let events_key = events["key"].as_str().unwrap();
    let refused = server.anonymous(Method::GET, "/metrics").bearer_auth(events_key).send().unwrap();
    expect_error(refused, 403, "insufficient_scope");

    let (id, key) = metrics_key(&server);
    let with_key = |method: Method, path: &str| -> Response {
        server.anonymous(method, path).bearer_auth(&key).json(&json!({ "name": "x" })).send().unwrap()
    };
    assert_eq!(with_key(Method::GET, "/metrics").status(), 200);
    for (method, path) in [
        (Method::GET, "/api/v1/tenants"),
        (Method::POST, "/api/v1/tenants"),
        (Method::GET, "/api/v1/events"),
        (Method::GET, "/api/v1/admin-keys"),
        (Method::POST, "/api/v1/admin-keys"),
        (Method::GET, "/api/v1/audit/search"),
        (Method::GET, "/api/v1/webhooks"),
        (Method::GET, "/api/v1/instance"),
    ] {
        let error = expect_error(with_key(method.clone(), path), 403, "insufficient_scope");
        assert!(error["message"].as_str().unwrap().contains("metrics:read"), "{method} {path}: {error}");
    }
    let keys = ok(server.get("/api/v1/admin-keys"), 200);
    assert_eq!(keys["items"].as_array().unwrap().len(), 3, "nothing was made with it");
    // It cannot open a dashboard session either.
    let session =
        server.anonymous(Method::POST, "/admin/api/session").json(&json!({ "key": key })).send().unwrap();
    expect_error(session, 401, "invalid_credentials");
    // Nor is it an admin key: the last full key still cannot be revoked.
    let full = keys["items"].as_array().unwrap().iter().find(|k| k["scope"] == "admin").unwrap().clone();
    expect_error(
        server.delete(&format!("/api/v1/admin-keys/{}", full["id"].as_str().unwrap())),
        409,
        "last_admin_key",
    );

    // Revoked, it opens nothing.
    assert_eq!(server.delete(&format!("/api/v1/admin-keys/{id}")).status(), 204);
    expect_error(with_key(Method::GET, "/metrics"), 401, "invalid_token");
}
