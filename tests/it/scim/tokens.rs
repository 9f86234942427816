//! SCIM tokens: issued by the admin API, scoped to their tenant, revocable, expiring, limited.

use serde_json::{Value, json};

use super::{Scim, issue_token, scim_error};
use crate::server::{Server, expect_error};

#[test]
fn tokens_are_shown_once_listed_with_their_use_and_revocable() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let listed: Value =
        server.get(&format!("/api/v1/tenants/{}/scim-tokens", scim.tenant_id)).json().unwrap();
    let item = &listed["items"][0];
    assert_eq!(item["name"], "okta");
    assert!(item.get("token").is_none() && item["created_at"].is_string());
    assert!(scim.token.starts_with(item["prefix"].as_str().unwrap()));
    scim.fetch("/Users");
    // Recording the last use happens after the response; give it a moment.
    let mut last_used = Value::Null;
    for _ in 0..50 {
        let listed: Value =
            server.get(&format!("/api/v1/tenants/{}/scim-tokens", scim.tenant_id)).json().unwrap();
        last_used = listed["items"][0]["last_used_at"].clone();
        if last_used.is_string() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(last_used.is_string(), "last_used_at was not recorded");

    let id = item["id"].as_str().unwrap();
    assert_eq!(server.delete(&format!("/api/v1/tenants/{}/scim-tokens/{id}", scim.tenant_id)).status(), 204);
    scim_error(scim.get("/Users"), 401, None);
    expect_error(
        server.delete(&format!("/api/v1/tenants/{}/scim-tokens/nope", scim.tenant_id)),
        404,
        "not_found",
    );
}

#[test]
fn a_token_works_only_at_its_own_tenant() {
    let server = Server::start();
    let acme = Scim::new(&server, "acme");
    let globex = Scim::new(&server, "globex");
    acme.create_user("ada@acme.test");
    let crossed = globex.with_token(&acme.token);
    let response = crossed.get("/Users");
    assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"scim\"");
    scim_error(response, 401, None);
    scim_error(crossed.post("/Users", super::user("eve@globex.test")), 401, None);
    // Globex sees none of Acme's users, even by id.
    let ada = &acme.search("Users", "userName eq \"ada@acme.test\"")[0];
    scim_error(globex.get(&format!("/Users/{}", ada["id"].as_str().unwrap())), 404, None);
    assert_eq!(globex.fetch("/Users")["totalResults"], 0);
    // No token, a malformed one, an admin key: all refused the same way.
    scim_error(
        acme.request(reqwest::Method::GET, "/Users").header("authorization", "").send().unwrap(),
        401,
        None,
    );
    scim_error(acme.with_token("pcst_forged").get("/Users"), 401, None);
    scim_error(acme.with_token(crate::server::ADMIN_KEY).get("/Users"), 401, None);
    // An unknown tenant id answers like a wrong token.
    let nowhere = Scim {
        base: acme.base.replace(&acme.tenant_id, "00000000-0000-7000-8000-000000000000"),
        ..acme.with_token(&acme.token)
    };
    scim_error(nowhere.get("/Users"), 401, None);
}

#[test]
fn an_expired_token_is_refused_and_bad_expiries_are_not_accepted() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let path = format!("/api/v1/tenants/{}/scim-tokens", scim.tenant_id);
    expect_error(
        server.post(&path, json!({"name": "old", "expires_at": "2001-01-01T00:00:00Z"})),
        400,
        "invalid_value",
    );
    expect_error(server.post(&path, json!({"name": ""})), 400, "invalid_value");
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let soon = soon.format(&time::format_description::well_known::Rfc3339).unwrap();
    let created: Value = server.post(&path, json!({"name": "brief", "expires_at": soon})).json().unwrap();
    let brief = scim.with_token(created["token"].as_str().unwrap());
    assert_eq!(brief.get("/Users").status(), 200);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    scim_error(brief.get("/Users"), 401, None);
}

#[test]
fn each_token_has_its_own_rate_limit() {
    let server = Server::start_with_settings(&[
        ("PORTCULLIS_SCIM_RATE_LIMIT", "1"),
        ("PORTCULLIS_SCIM_RATE_BURST", "3"),
    ]);
    let scim = Scim::new(&server, "acme");
    for _ in 0..3 {
        assert_eq!(scim.get("/Users").status(), 200);
    }
    let limited = scim.get("/Users");
    assert!(limited.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    scim_error(limited, 429, None);
    let second = scim.with_token(&issue_token(&server, &scim.tenant_id, "entra"));
    assert_eq!(second.get("/Users").status(), 200);
}

#[test]
fn oversized_bodies_and_wrong_content_types_are_refused() {
    let server = Server::start_with_settings(&[("PORTCULLIS_SCIM_MAX_BODY_BYTES", "2048")]);
    let scim = Scim::new(&server, "acme");
    let mut big = super::user("ada@acme.test");
    big["title"] = json!("x".repeat(4096));
    scim_error(scim.post("/Users", big), 413, None);
    let text = scim
        .request(reqwest::Method::POST, "/Users")
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .unwrap();
    scim_error(text, 415, Some("invalidSyntax"));
    let broken = scim
        .request(reqwest::Method::POST, "/Users")
        .header("content-type", "application/scim+json")
        .body("{")
        .send()
        .unwrap();
    scim_error(broken, 400, Some("invalidSyntax"));
    assert_eq!(scim.fetch("/Users")["totalResults"], 0);
}

#[test]
fn discovery_tells_the_truth_and_unknown_paths_are_scim_errors() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let config = scim.fetch("/ServiceProviderConfig");
    assert_eq!(config["patch"]["supported"], true);
    assert_eq!(config["bulk"]["supported"], false);
    assert_eq!(config["filter"]["supported"], true);
    assert_eq!(config["etag"]["supported"], true);
    assert_eq!(config["sort"]["supported"], true);
    assert_eq!(config["changePassword"]["supported"], false);
    let types = scim.fetch("/ResourceTypes");
    assert_eq!(types["totalResults"], 2);
    let user_type = scim.fetch("/ResourceTypes/User");
    assert_eq!(user_type["schemaExtensions"][0]["schema"], super::ENTERPRISE);
    let schemas = scim.fetch("/Schemas");
    assert_eq!(schemas["totalResults"], 3);
    let user_schema = scim.fetch(&format!("/Schemas/{}", super::USER_SCHEMA));
    assert!(user_schema["attributes"].as_array().unwrap().iter().any(|a| a["name"] == "userName"));
    scim_error(scim.get("/Schemas/urn:nope"), 404, None);
    scim_error(scim.get("/Nothing/here"), 404, None);
    scim_error(scim.post("/ServiceProviderConfig", json!({})), 405, None);
    scim_error(scim.post("/Bulk", json!({})), 501, None);
}

#[test]
fn revocation_and_suspension_take_effect_on_the_next_request() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let second = scim.with_token(&issue_token(&server, &scim.tenant_id, "entra"));
    assert_eq!(scim.get("/Users").status(), 200);
    assert_eq!(second.get("/Users").status(), 200);
    let listed: Value =
        server.get(&format!("/api/v1/tenants/{}/scim-tokens", scim.tenant_id)).json().unwrap();
    let first_id = listed["items"][0]["id"].as_str().unwrap();
    assert_eq!(
        server.delete(&format!("/api/v1/tenants/{}/scim-tokens/{first_id}", scim.tenant_id)).status(),
        204
    );
    scim_error(scim.get("/Users"), 401, None);
    // A tenant suspended a moment after a token was used takes no more changes.
    let suspend =
        server.patch(&format!("/api/v1/tenants/{}", scim.tenant_id), json!({"status": "suspended"}));
    assert_eq!(suspend.status(), 200);
    scim_error(second.post("/Users", super::user("ada@acme.test")), 403, None);
}

#[test]
fn a_scim_request_that_outlasts_the_time_limit_gets_a_scim_503() {
    use std::io::{Read, Write};
    let server = Server::start_with_settings(&[("PORTCULLIS_REQUEST_TIMEOUT_SECS", "1")]);
    let scim = Scim::new(&server, "acme");
    let address = server.base.trim_start_matches("http://").to_owned();
    let path = scim.base.trim_start_matches(&server.base).to_owned();
    // A body that never finishes arriving.
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    write!(
        stream,
        "POST {path}/Users HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"userName\"",
        scim.token,
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains("urn:ietf:params:scim:api:messages:2.0:Error"), "{response}");
    assert!(response.to_ascii_lowercase().contains("content-type: application/scim+json"), "{response}");
}
