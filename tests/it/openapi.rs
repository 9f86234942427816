//! The admin API's OpenAPI document (`GET /api/v1/openapi.json`, written by hand in
//! src/admin/openapi.json) held to the server, both ways:
//! - every route the admin API's routers declare is in the document: the routers merged under
//!   `/api/v1` in `app::router` are followed through the source, and their `.route(…)` paths and
//!   methods compared with the document's operations (axum cannot list its routes);
//! - every operation of the document exists: each is called on the real server (with real ids and
//!   the document's own request examples) and must not meet the router's 404 or 405 fallback;
//! - what it says of credentials holds: without one every operation but the document itself is
//!   refused, an `events:read` key and a setup link's session reach exactly the operations that
//!   list them;
//! - it is valid OpenAPI 3.1, and every answer given above (status, content type, body) is the
//!   one it describes: checked by openapi-spec-validator and openapi-schema-validator
//!   (`scripts/openapi-check`, installed on first use), not by our own reading of it.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use reqwest::{Method, blocking::RequestBuilder};
use serde_json::{Value, json};

use crate::{
    dashboard::Dashboard,
    scim::{Scim, ok},
    server::Server,
};

const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

/// One operation of the document.
struct Operation {
    method: String,
    /// As in the document: relative to `/api/v1`, with `{name}` parameters.
    path: String,
    id: String,
    /// The request example, sent as the body (JSON, or XML for a raw body).
    example: Option<Value>,
    json_body: bool,
    /// Each scheme a security alternative names, with the roles it asks for there.
    security: Vec<(String, Vec<String>)>,
}

impl Operation {
    fn name(&self) -> String {
        format!("{} /api/v1{} ({})", self.method.to_uppercase(), self.path, self.id)
    }

    fn allows(&self, scheme: &str, role: &str) -> bool {
        self.security.iter().any(|(s, roles)| s == scheme && roles.iter().any(|r| r == role))
    }

    fn public(&self) -> bool {
        self.security.is_empty()
    }
}

fn operations(document: &Value) -> Vec<Operation> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{method} {path}: not a method this test knows");
            let body = &operation["requestBody"]["content"];
            let security = operation["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path}: every operation states its security"))
                .iter()
                .flat_map(|alternative| alternative.as_object().unwrap().iter())
                .map(|(scheme, roles)| {
                    let roles = roles.as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned());
                    (scheme.clone(), roles.collect())
                })
                .collect();
            found.push(Operation {
                method: method.clone(),
                path: path.clone(),
                id: operation["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path}: no operationId"))
                    .into(),
                example: body.as_object().and_then(|c| c.values().find_map(|m| m.get("example").cloned())),
                json_body: body.get("application/json").is_some(),
                security,
            });
        }
    }
    found
}

// --- the routes in the source ---------------------------------------------------------------------

/// `(METHOD, path)` of every route of the routers merged under `/api/v1` in `app::router`, read
/// from their source: each `.route("…", get(…).post(…))`, following `.merge(x::router(…))`,
/// delegations (`tokens::router(state)`) and `pub use` re-exports into other modules. Whatever it
/// cannot follow (a nested router, a route that is not a literal, a method it does not know) fails
/// the test rather than being skipped.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let app = source(Path::new("src/app.rs"));
    let body = function_body(&app, "router").expect("src/app.rs has `fn router`");
    assert!(body.contains(".nest(\"/api/v1\", api)"), "app::router no longer nests `api` at /api/v1");
    let start = body.find("let api = Router::new()").expect("app::router builds `let api = Router::new()…`");
    let end = start + body[start..].find(';').unwrap();
    let mut routes = BTreeSet::new();
    let mut visited = BTreeSet::new();
    scan(&[], &body[start..end], "app::router", &mut routes, &mut visited);
    routes
}

fn scan(
    module: &[String],
    code: &str,
    context: &str,
    routes: &mut BTreeSet<(String, String)>,
    visited: &mut BTreeSet<String>,
) {
    for bad in [".nest(", ".nest_service(", ".route_service(", ".fallback_service("] {
        assert!(!code.contains(bad), "{context}: `{bad}…)` is not followed by this test: teach it");
    }
    let mut rest = code;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let (path, methods) = route_call(rest, context);
        for method in methods {
            assert!(
                routes.insert((method.clone(), path.clone())),
                "{context}: {method} {path} is declared twice"
            );
        }
    }
    let mut found_router_call = false;
    let mut rest = code;
    while let Some(at) = rest.find("router(") {
        let before = &rest[..at + "router".len()];
        let callee: String = before
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        rest = &rest[at + "router(".len()..];
        let segments: Vec<&str> = callee.split("::").collect();
        let (name, path) = segments.split_last().unwrap();
        if path.is_empty() && !name.ends_with("router") {
            continue;
        }
        found_router_call = true;
        resolve(&relative(module, path), name, routes, visited);
    }
    let merges = code.matches(".merge(").count();
    assert!(
        merges == 0 || found_router_call,
        "{context}: merges something other than a `…router(…)` call; teach this test to follow it"
    );
}

/// The path and methods of one `.route(` call, `rest` starting after its opening parenthesis.
fn route_call(rest: &str, context: &str) -> (String, Vec<String>) {
    let rest = rest.trim_start();
    let literal =
        rest.strip_prefix('"').unwrap_or_else(|| panic!("{context}: a route whose path is not a literal"));
    let close = literal.find('"').unwrap();
    let path = literal[..close].to_owned();
    let after = literal[close + 1..].trim_start();
    let handler =
        after.strip_prefix(',').unwrap_or_else(|| panic!("{context}: `.route(\"{path}\"` without a handler"));
    // The handler expression: up to the parenthesis that closes `.route(`.
    let mut depth = 0usize;
    let mut end = handler.len();
    for (i, c) in handler.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => {
                end = i;
                break;
            }
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
    }
    let expression = &handler[..end];
    // The method routers chained at its top level: `get(a).post(b)`, `axum::routing::put(c)`.
    let (mut methods, mut depth, mut word) = (Vec::new(), 0usize, String::new());
    for c in expression.chars() {
        match c {
            '(' => {
                if depth == 0 {
                    match word.as_str() {
                        "get" | "put" | "post" | "patch" | "delete" => methods.push(word.to_uppercase()),
                        "head" | "options" | "trace" | "connect" | "any" | "on" | "any_service"
                        | "on_service" => {
                            panic!("{context}: `{word}(…)` on {path} is not followed by this test: teach it")
                        }
                        _ => {}
                    }
                }
                depth += 1;
                word.clear();
            }
            ')' => {
                depth -= 1;
                word.clear();
            }
            c if c.is_ascii_alphanumeric() || c == '_' => word.push(c),
            _ => word.clear(),
        }
    }
    assert!(!methods.is_empty(), "{context}: no method found on the route {path}");
    (path, methods)
}

/// Follows `module::name` to its body (through `pub use` re-exports) and scans it.
fn resolve(
    module: &[String],
    name: &str,
    routes: &mut BTreeSet<(String, String)>,
    visited: &mut BTreeSet<String>,
) {
    let context = format!("{}::{name}", module.join("::"));
    if !visited.insert(context.clone()) {
        return;
    }
    let file = module_file(module).unwrap_or_else(|| panic!("{context}: no source file for the module"));
    let code = source(&file);
    if let Some(body) = function_body(&code, name) {
        let before = routes.len();
        scan(module, &body, &context, routes, visited);
        assert!(
            routes.len() > before || body.contains("router("),
            "{context} ({}): found no routes in it",
            file.display()
        );
        return;
    }
    let re_export = code.split(';').map(str::trim).find_map(|statement| {
        let used =
            statement.strip_prefix("pub use ").or_else(|| statement.strip_prefix("pub(crate) use "))?;
        let (path, names) = match used.split_once("::{") {
            Some((path, names)) => {
                (path, names.trim_end_matches('}').split(',').map(str::trim).collect::<Vec<_>>())
            }
            None => {
                let (path, last) = used.rsplit_once("::")?;
                (path, vec![last])
            }
        };
        names.contains(&name).then(|| path.to_owned())
    });
    let path = re_export
        .unwrap_or_else(|| panic!("{context}: neither defined nor re-exported in {}", file.display()));
    let segments: Vec<&str> = path.split("::").collect();
    resolve(&relative(module, &segments), name, routes, visited);
}

/// The module a path written in `module` names (`tokens` → `scim::tokens`, `crate::x` → `x`).
fn relative(module: &[String], path: &[&str]) -> Vec<String> {
    let mut target = module.to_vec();
    for segment in path {
        match *segment {
            "crate" => target.clear(),
            "super" => {
                target.pop();
            }
            "self" => {}
            segment => target.push(segment.to_owned()),
        }
    }
    target
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn module_file(module: &[String]) -> Option<PathBuf> {
    let base = root().join("src").join(module.join("/"));
    [base.with_extension("rs"), base.join("mod.rs")].into_iter().find(|p| p.is_file())
}

/// A source file without its comments (a commented-out route is no route).
fn source(path: &Path) -> String {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_string = false;
        let mut previous = ' ';
        let mut cut = line.len();
        for (i, c) in line.char_indices() {
            if c == '"' && previous != '\\' {
                in_string = !in_string;
            }
            if !in_string && c == '/' && previous == '/' {
                cut = i - 1;
                break;
            }
            previous = c;
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

/// The body (between its braces) of `fn name(` in `code`.
fn function_body(code: &str, name: &str) -> Option<String> {
    let signature = format!("fn {name}(");
    let start = code.find(&signature)?;
    let open = start + code[start..].find('{')?;
    let mut depth = 0usize;
    for (i, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(code[open + 1..open + i].to_owned());
                }
            }
            _ => {}
        }
    }
    None
}

#[test]
fn every_route_of_the_admin_api_is_in_the_document_and_nothing_else() {
    let document: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("src/admin/openapi.json")).unwrap())
            .unwrap();
    let documented: BTreeSet<(String, String)> =
        operations(&document).iter().map(|o| (o.method.to_uppercase(), o.path.clone())).collect();
    let declared = routes_in_source();
    let missing: Vec<String> =
        declared.difference(&documented).map(|(m, p)| format!("{m} /api/v1{p}")).collect();
    let extra: Vec<String> =
        documented.difference(&declared).map(|(m, p)| format!("{m} /api/v1{p}")).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "src/admin/openapi.json is out of step with the routers:\n  declared but not documented: {missing:?}\n  \
         documented but not declared: {extra:?}\n(a route declared in a way this scan cannot see: teach \
         routes_in_source() in tests/it/openapi.rs)"
    );
    // A sanity check of the scan itself: it saw the routers it should have.
    for route in [("GET", "/tenants"), ("DELETE", "/tenants/{tenant}/sessions"), ("GET", "/events/{event}")] {
        assert!(declared.contains(&(route.0.to_owned(), route.1.to_owned())), "the scan missed {route:?}");
    }
}

// --- the server -------------------------------------------------------------------------------------

/// An answer, as `scripts/openapi-check` reads it.
fn answer(operation: &Operation, response: reqwest::blocking::Response) -> (u16, Value, Value) {
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let text = response.text().unwrap();
    let body = if content_type.as_deref().is_some_and(|t| t.starts_with("application/json")) {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{}: not JSON: {text}", operation.name()))
    } else {
        Value::Null
    };
    let line = json!({
        "method": operation.method, "path": operation.path, "status": status,
        "content_type": content_type, "body": body,
    });
    (status, body, line)
}

/// Sends `operation` to `path` with its example as the body.
fn send(builder: RequestBuilder, operation: &Operation) -> RequestBuilder {
    match &operation.example {
        Some(example) if operation.json_body => builder.json(example),
        Some(Value::String(text)) => builder.header("content-type", "application/xml").body(text.clone()),
        _ if operation.json_body => builder.json(&json!({})),
        _ => builder,
    }
}

fn method(operation: &Operation) -> Method {
    Method::from_bytes(operation.method.to_uppercase().as_bytes()).unwrap()
}

/// The path with its parameters filled in from `ids` (by the segment before a parameter and its
/// name, or its name alone); any other parameter gets an id that names nothing.
fn fill(path: &str, ids: &BTreeMap<String, String>) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let filled: Vec<String> = segments
        .iter()
        .enumerate()
        .map(|(i, segment)| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => {
                let keyed = format!("{}/{name}", segments[i - 1]);
                ids.get(&keyed).or_else(|| ids.get(name)).cloned().unwrap_or_else(unused_id)
            }
            None => (*segment).to_owned(),
        })
        .collect();
    format!("/api/v1{}", filled.join("/"))
}

/// A syntactically valid id that names nothing made here (UUIDv7-shaped, from 2024).
fn unused_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("0190a000-0000-7000-8000-{:012x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn is_fallback(status: u16, body: &Value) -> bool {
    status == 405
        || body["error"]["code"] == "method_not_allowed"
        || (status == 404
            && body["error"]["message"].as_str().is_some_and(|m| m.starts_with("nothing is served at")))
}

fn error_of(body: &Value) -> (&str, &str) {
    (
        body["error"]["code"].as_str().unwrap_or_default(),
        body["error"]["message"].as_str().unwrap_or_default(),
    )
}

/// Real things for the operations to name, made through the API (each answer is kept for the
/// schema check too): a tenant with a domain, a local user, a SCIM group, an OAuth client, SAML
/// and OIDC connections, a webhook endpoint (to a closed local port) and its delivery of an event,
/// a setup link and an `events:read` key.
struct Fixture {
    ids: BTreeMap<String, String>,
    events_key: String,
    setup_token: String,
}

fn fixture(
    server: &Server,
    answers: &mut Vec<Value>,
    by_path: &BTreeMap<(String, String), &Operation>,
) -> Fixture {
    let mut call = |method: &str, template: &str, path: &str, body: Option<Value>| -> Value {
        let operation = by_path[&(method.to_owned(), template.to_owned())];
        let mut builder = server.admin(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), path);
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        let (status, body, line) = answer(operation, builder.send().unwrap());
        assert!((200..300).contains(&status), "{}: {status} {body}", operation.name());
        answers.push(line);
        body
    };
    let mut ids = BTreeMap::new();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = call(
        "post",
        "/webhooks",
        "/api/v1/webhooks",
        Some(
            json!({ "url": format!("http://127.0.0.1:{closed_port}/hook"), "description": "nobody listens" }),
        ),
    );
    ids.insert("webhooks/id".into(), endpoint["id"].as_str().unwrap().to_owned());
    let tenant = call(
        "post",
        "/tenants",
        "/api/v1/tenants",
        Some(json!({ "slug": "openapi-co", "display_name": "OpenAPI Co", "domains": ["openapi.example"] })),
    );
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();
    ids.insert("tenant".into(), tenant_id.clone());
    ids.insert("domain".into(), "openapi.example".into());
    let t = |rest: &str| format!("/api/v1/tenants/{tenant_id}{rest}");
    let user = call(
        "post",
        "/tenants/{tenant}/users",
        &t("/users"),
        Some(json!({ "email": "lee@openapi.example", "display_name": "Lee" })),
    );
    ids.insert("user".into(), user["id"].as_str().unwrap().to_owned());
    let token =
        call("post", "/tenants/{tenant}/scim-tokens", &t("/scim-tokens"), Some(json!({ "name": "okta" })));
    ids.insert("scim-tokens/id".into(), token["id"].as_str().unwrap().to_owned());
    let scim = Scim::of_tenant(server, &tenant).with_token(token["token"].as_str().unwrap());
    let group = ok(scim.post("/Groups", json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering" })), 201);
    ids.insert("group".into(), group["id"].as_str().unwrap().to_owned());
    let saml = call(
        "post",
        "/tenants/{tenant}/saml-connections",
        &t("/saml-connections"),
        Some(json!({ "name": "Okta" })),
    );
    ids.insert("saml-connections/id".into(), saml["id"].as_str().unwrap().to_owned());
    let oidc = call(
        "post",
        "/tenants/{tenant}/oidc-connections",
        &t("/oidc-connections"),
        Some(json!({ "name": "Entra" })),
    );
    ids.insert("oidc-connections/id".into(), oidc["id"].as_str().unwrap().to_owned());
    let client = call(
        "post",
        "/oauth-clients",
        "/api/v1/oauth-clients",
        Some(json!({ "name": "app", "redirect_uris": ["https://app.example/cb"] })),
    );
    ids.insert("oauth-clients/id".into(), client["client_id"].as_str().unwrap().to_owned());
    let key = call(
        "post",
        "/admin-keys",
        "/api/v1/admin-keys",
        Some(json!({ "name": "feed", "scope": "events:read" })),
    );
    ids.insert("admin-keys/id".into(), key["id"].as_str().unwrap().to_owned());
    let link =
        call("post", "/tenants/{tenant}/setup-links", &t("/setup-links"), Some(json!({ "note": "IT" })));
    ids.insert("setup-links/id".into(), link["id"].as_str().unwrap().to_owned());
    let feed = call("get", "/events", &format!("/api/v1/events?tenant={tenant_id}&type=group.created"), None);
    ids.insert("event".into(), feed["items"][0]["sequence"].to_string());
    ids.insert("record".into(), "1".into());
    Fixture {
        ids,
        events_key: key["key"].as_str().unwrap().to_owned(),
        setup_token: link["url"].as_str().unwrap().split_once('#').unwrap().1.to_owned(),
    }
}

/// Sends the answers to the independent validators.
fn check_with_validators(document: &str, answers: &[Value]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, document).unwrap();
    let mut child = Command::new(root().join("scripts/openapi-check"))
        .arg(&file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = answers.iter().map(|a| format!("{a}\n")).collect();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the document or the server's answers disagree with it:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(&format!("{} answers: 0 problems", answers.len())), "{stdout}");
}

#[test]
fn the_server_serves_every_operation_of_the_document_as_it_describes() {
    let server = Server::start_with_settings(&[("PORTCULLIS_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")]);

    // Served without a credential, cached by ETag, under the server's security headers.
    let response = server.anonymous(Method::GET, "/api/v1/openapi.json").send().unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let text = response.text().unwrap();
    let again =
        server.anonymous(Method::GET, "/api/v1/openapi.json").header("if-none-match", &etag).send().unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);

    let document: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"), "info.version is the crate's version");
    let instance: Value = server.get("/api/v1/instance").json().unwrap();
    assert_eq!(document["info"]["version"], instance["version"]);
    assert_eq!(document["servers"][0]["url"], "/api/v1");

    let operations = operations(&document);
    let mut ids = BTreeSet::new();
    for operation in &operations {
        assert!(ids.insert(operation.id.clone()), "operationId {} is used twice", operation.id);
    }
    let by_path: BTreeMap<(String, String), &Operation> =
        operations.iter().map(|o| ((o.method.clone(), o.path.clone()), o)).collect();

    let mut answers = Vec::new();
    let fixture = fixture(&server, &mut answers, &by_path);
    let tenant = fixture.ids["tenant"].clone();
    // Only the tenant is real for the sweeps with narrow credentials: what they reach runs, on
    // things that do not exist.
    let only_tenant = BTreeMap::from([("tenant".to_owned(), tenant.clone())]);
    let mut wrong = Vec::new();

    // Without a credential: refused, but for the document itself.
    for operation in &operations {
        let path = fill(&operation.path, &only_tenant);
        let (status, body, line) =
            answer(operation, send(server.anonymous(method(operation), &path), operation).send().unwrap());
        let refused = status == 401 && error_of(&body).0 == "unauthenticated";
        if refused == operation.public() {
            wrong.push(format!("{} without a credential answered {status} {body}", operation.name()));
        }
        answers.push(line);
    }

    // An `events:read` key reaches the operations whose security lists that role, nothing else.
    for operation in &operations {
        let path = fill(&operation.path, &only_tenant);
        let builder = server.anonymous(method(operation), &path).bearer_auth(&fixture.events_key);
        let (status, body, line) = answer(operation, send(builder, operation).send().unwrap());
        let (code, message) = error_of(&body);
        let refused = status == 403 && code == "insufficient_scope" && message.contains("`events:read`");
        let reached = operation.public() || operation.allows("adminKey", "events:read");
        if refused == reached {
            wrong.push(format!("{} with an events:read key answered {status} {body}", operation.name()));
        }
        answers.push(line);
    }

    // A setup link's session reaches the operations whose security lists the role `setup`.
    let session = Dashboard::sign_in(&server, json!({ "setup_token": fixture.setup_token }));
    for operation in &operations {
        let path = fill(&operation.path, &only_tenant);
        let (status, body, line) =
            answer(operation, send(session.request(method(operation), &path), operation).send().unwrap());
        let (code, message) = error_of(&body);
        let refused =
            status == 403 && code == "insufficient_scope" && message.contains("setup of its own tenant");
        let reached = operation.public() || operation.allows("dashboardSession", "setup");
        if refused == reached {
            wrong.push(format!("{} from a setup link answered {status} {body}", operation.name()));
        }
        answers.push(line);
    }

    // With the admin key and real ids: every operation is served by a route of its own (a
    // handler's 404 for a missing thing is an answer; the router's fallback is not). Deletions
    // last, the tenant's very last.
    let mut order: Vec<&Operation> = operations.iter().collect();
    // (A thing's own deletions before the thing's: `…/sp-keys/previous` before its connection.)
    order.sort_by_key(|o| {
        (o.method == "delete", o.path == "/tenants/{tenant}", std::cmp::Reverse(o.path.matches('/').count()))
    });
    for operation in order {
        let path = fill(&operation.path, &fixture.ids);
        let (status, body, line) =
            answer(operation, send(server.admin(method(operation), &path), operation).send().unwrap());
        if is_fallback(status, &body) {
            wrong.push(format!("{} is not served: {status} {body}", operation.name()));
        }
        answers.push(line);
    }
    assert!(wrong.is_empty(), "the server does not do what the document says:\n{}", wrong.join("\n"));

    check_with_validators(&text, &answers);
}
