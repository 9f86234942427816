//! Okta and Entra ID, replayed: every request sequence in tests/fixtures/scim (transcribed from
//! the vendors' documentation; the format is in that folder's README) runs against a fresh
//! tenant and must get the answers those clients expect.

use std::{collections::HashMap, path::PathBuf};

use reqwest::Method;
use serde_json::{Value, json};

use super::Scim;
use crate::server::Server;

fn fixtures(client: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scim").join(client);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

/// Replaces `{{name}}` placeholders in every string of a JSON value.
fn fill(value: &Value, vars: &HashMap<String, String>) -> Value {
    match value {
        Value::String(s) => Value::String(fill_text(s, vars)),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill(v, vars)).collect()),
        Value::Object(fields) => {
            Value::Object(fields.iter().map(|(k, v)| (k.clone(), fill(v, vars))).collect())
        }
        other => other.clone(),
    }
}

fn fill_text(text: &str, vars: &HashMap<String, String>) -> String {
    vars.iter().fold(text.to_owned(), |text, (name, value)| text.replace(&format!("{{{{{name}}}}}"), value))
}

/// Whether `actual` contains `expected` (objects key by key, arrays as distinct matches in any order).
fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => {
            expected.iter().all(|(k, v)| actual.get(k).is_some_and(|a| contains(a, v)))
        }
        (Value::Array(actual), Value::Array(expected)) => {
            let mut used = vec![false; actual.len()];
            expected.iter().all(|e| {
                let found = actual.iter().enumerate().find(|(i, a)| !used[*i] && contains(a, e));
                found.map(|(i, _)| used[i] = true).is_some()
            })
        }
        (actual, expected) => actual == expected,
    }
}

/// Replays one fixture against a fresh tenant, with `policy` as its access policy when given;
/// returns the server for a look at what the replay left.
fn replay(file: &PathBuf, policy: Option<&Value>) -> Server {
    let server = Server::start();
    let scim = Scim::new(&server, "idp");
    if let Some(policy) = policy {
        let path = format!("/api/v1/tenants/{}/access-policy", scim.tenant_id);
        let saved = server.admin(Method::PUT, &path).json(policy).send().unwrap();
        assert_eq!(saved.status(), 200);
    }
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let mut vars = HashMap::from([("base_url".to_owned(), scim.base.clone())]);
    for (n, step) in fixture["steps"].as_array().unwrap().iter().enumerate() {
        let method = Method::from_bytes(step["method"].as_str().unwrap().as_bytes()).unwrap();
        let path = fill_text(step["path"].as_str().unwrap(), &vars);
        let mut request = scim.request(method.clone(), &path);
        let mut has_content_type = false;
        if let Some(headers) = step["headers"].as_object() {
            for (header, value) in headers {
                has_content_type |= header.eq_ignore_ascii_case("content-type");
                request = request.header(header, fill_text(value.as_str().unwrap(), &vars));
            }
        }
        if !step["body"].is_null() {
            if !has_content_type {
                request = request.header("content-type", "application/scim+json");
            }
            request = request.body(fill(&step["body"], &vars).to_string());
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        let context = format!("{name} step {n} ({method} {path}) → {status} {text}");
        let expect = &step["expect"];
        let accepted: Vec<u64> = match &expect["status"] {
            Value::Array(list) => list.iter().filter_map(Value::as_u64).collect(),
            single => single.as_u64().into_iter().collect(),
        };
        assert!(accepted.contains(&u64::from(status)), "{context}");
        let body: Value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
        if !body.is_null() {
            if let Some(subset) = expect.get("body_contains") {
                assert!(contains(&body, &fill(subset, &vars)), "{context}\nexpected to contain {subset}");
            }
            if let Some(subset) = expect.get("body_not_contains") {
                assert!(
                    !contains(&body, &fill(subset, &vars)),
                    "{context}\nexpected not to contain {subset}"
                );
            }
            for absent in expect["body_absent"].as_array().into_iter().flatten() {
                assert!(body.get(absent.as_str().unwrap()).is_none(), "{context}\n{absent} should be absent");
            }
        }
        for (var, attribute) in step["capture"].as_object().into_iter().flatten() {
            let value = body[attribute.as_str().unwrap()]
                .as_str()
                .unwrap_or_else(|| panic!("{context}: no {attribute}"));
            vars.insert(var.clone(), value.to_owned());
        }
    }
    server
}

#[test]
fn okta_request_sequences() {
    for file in fixtures("okta") {
        replay(&file, None);
    }
}

#[test]
fn entra_id_request_sequences() {
    for file in fixtures("entra") {
        replay(&file, None);
    }
}

/// The same sequences with an access policy that names their groups and reads their users'
/// attributes: live re-evaluation changes none of the answers the clients expect.
#[test]
fn both_vendors_sequences_with_an_access_policy_naming_their_groups() {
    let policy = json!({
        "roles": [{ "name": "member" }, { "name": "pushed" }, { "name": "managed" }],
        "rules": [
            { "id": "okta-push", "when": { "any_group": ["Test SCIMv2", "displayName"] }, "grant": { "roles": ["pushed"] } },
            { "id": "managed", "when": { "attribute": { "name": "manager", "present": true } }, "grant": { "roles": ["managed"] } },
        ],
        "default": { "roles": ["member"] },
    });
    let mut given = HashMap::<String, usize>::new();
    for file in fixtures("okta").into_iter().chain(fixtures("entra")) {
        let server = replay(&file, Some(&policy));
        let audit: Value =
            server.get("/api/v1/audit?action=scim.user.roles_change&limit=500").json().unwrap();
        for change in audit["items"].as_array().unwrap() {
            for role in change["detail"]["after"]["roles"].as_array().unwrap() {
                *given.entry(role.as_str().unwrap().to_owned()).or_default() += 1;
            }
        }
    }
    for role in ["member", "pushed", "managed"] {
        assert!(given.get(role).is_some_and(|n| *n > 0), "nobody was given {role}: {given:?}");
    }
}
