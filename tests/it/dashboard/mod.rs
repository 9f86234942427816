//! The dashboard's server side: its pages under a strict CSP, operators' cookie sessions with
//! CSRF tokens, setup links that reach one tenant's setup and nothing else, and the directory
//! browsing its pages read. (The pages themselves are driven in Chromium: `browser.rs`.)

mod browser;

use reqwest::{
    Method,
    blocking::{Client, RequestBuilder, Response},
};
use serde_json::{Value, json};

use crate::{
    scim::{Scim, ok},
    server::{ADMIN_KEY, Server, expect_error},
};

/// A browser's view of the dashboard: its session cookie and CSRF token, kept by hand.
pub struct Dashboard {
    base: String,
    client: Client,
    cookie: String,
    pub csrf: String,
    pub session: Value,
}

impl Dashboard {
    /// Signs in with `credential` (`{"key": …}` or `{"setup_token": …}`), expecting success.
    pub fn sign_in(server: &Server, credential: Value) -> Dashboard {
        let response = sign_in_request(server, &credential).send().unwrap();
        assert_eq!(response.status(), 200);
        let cookie = session_cookie(&response).expect("a session cookie");
        let session: Value = response.json().unwrap();
        let csrf = session["csrf_token"].as_str().unwrap().to_owned();
        Dashboard { base: server.base.clone(), client: Client::new(), cookie, csrf, session }
    }

    /// A request with the session cookie, and the CSRF token unless `without_csrf`.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let needs_token = method != Method::GET;
        let builder =
            self.client.request(method, format!("{}{path}", self.base)).header("cookie", &self.cookie);
        if needs_token { builder.header("x-csrf-token", &self.csrf) } else { builder }
    }

    pub fn without_csrf(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base)).header("cookie", &self.cookie)
    }

    pub fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().unwrap()
    }

    pub fn post(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path).json(&body).send().unwrap()
    }
}

fn sign_in_request(server: &Server, credential: &Value) -> RequestBuilder {
    server.anonymous(Method::POST, "/admin/api/session").json(credential)
}

/// The `name=value` of the session cookie a response sets.
fn session_cookie(response: &Response) -> Option<String> {
    let set = response.headers().get("set-cookie")?.to_str().ok()?;
    Some(set.split(';').next()?.to_owned())
}

/// Creates a setup link for `tenant` and returns the answer (with its `url`) and its token.
pub fn create_link(server: &Server, tenant: &str, body: Value) -> (Value, String) {
    let link = ok(server.post(&format!("/api/v1/tenants/{tenant}/setup-links"), body), 201);
    let token = link["url"].as_str().unwrap().split_once('#').unwrap().1.to_owned();
    (link, token)
}

#[test]
fn the_pages_are_served_under_a_strict_content_security_policy() {
    let server = Server::start();
    for path in ["/admin/", "/admin/setup", "/admin/tenants/anything"] {
        let page = server.anonymous(Method::GET, path).send().unwrap();
        assert_eq!(page.status(), 200, "{path}");
        let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
        let html = page.text().unwrap();
        assert!(html.contains(r#"src="/admin/app.js""#), "one page app: {path}");
        assert!(!html.contains("<script>"), "no inline script");
    }

    let script = server.anonymous(Method::GET, "/admin/app.js").send().unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
    let etag = script.headers()["etag"].to_str().unwrap().to_owned();
    let again = server.anonymous(Method::GET, "/admin/app.js").header("if-none-match", &etag).send().unwrap();
    assert_eq!(again.status(), 304, "revalidated by ETag");

    expect_error(server.anonymous(Method::GET, "/admin/missing.js").send().unwrap(), 404, "not_found");
    expect_error(server.anonymous(Method::GET, "/admin/api/other").send().unwrap(), 404, "not_found");
    expect_error(server.anonymous(Method::GET, "/admin/README.md").send().unwrap(), 404, "not_found");
    let bare = Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let redirect = bare.get(server.url("/admin")).send().unwrap();
    assert_eq!(
        (redirect.status().as_u16(), redirect.headers()["location"].to_str().unwrap()),
        (308, "/admin/")
    );
}

#[test]
fn an_operator_signs_in_with_an_admin_key_and_every_change_needs_the_csrf_token() {
    let server = Server::start();
    expect_error(server.anonymous(Method::GET, "/admin/api/session").send().unwrap(), 401, "unauthenticated");
    let wrong = sign_in_request(&server, &json!({ "key": "pcak_not-a-key" })).send().unwrap();
    expect_error(wrong, 401, "invalid_credentials");
    let events_key =
        ok(server.post("/api/v1/admin-keys", json!({ "name": "app", "scope": "events:read" })), 201);
    let feed_only = sign_in_request(&server, &json!({ "key": events_key["key"] })).send().unwrap();
    expect_error(feed_only, 401, "invalid_credentials");
    let refused = server.audit("admin.dashboard.sign_in");
    assert_eq!(refused.len(), 2);
    assert!(refused.iter().all(|r| r["outcome"] == "failure" && r["actor"]["kind"] == "anonymous"));
    let neither = sign_in_request(&server, &json!({})).send().unwrap();
    expect_error(neither, 400, "malformed_request");

    let response = sign_in_request(&server, &json!({ "key": ADMIN_KEY })).send().unwrap();
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.starts_with("portcullis_admin="), "{set_cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let dashboard = Dashboard::sign_in(&server, json!({ "key": ADMIN_KEY }));
    assert_eq!(dashboard.session["kind"], "operator");
    assert_eq!(dashboard.session["key"]["name"], "bootstrap key");
    assert_eq!(ok(dashboard.get("/admin/api/session"), 200)["csrf_token"], dashboard.csrf.as_str());

    // A change without the token, or with another session's, is refused and changes nothing.
    let forged = dashboard
        .without_csrf(Method::POST, "/api/v1/tenants")
        .json(&json!({ "slug": "acme", "display_name": "Acme" }));
    expect_error(forged.send().unwrap(), 403, "csrf_mismatch");
    let other = Dashboard::sign_in(&server, json!({ "key": ADMIN_KEY }));
    let mixed = dashboard
        .without_csrf(Method::POST, "/api/v1/tenants")
        .header("x-csrf-token", &other.csrf)
        .json(&json!({ "slug": "acme", "display_name": "Acme" }));
    expect_error(mixed.send().unwrap(), 403, "csrf_mismatch");
    assert_eq!(ok(server.get("/api/v1/tenants"), 200)["items"].as_array().unwrap().len(), 0);

    let created =
        ok(dashboard.post("/api/v1/tenants", json!({ "slug": "acme", "display_name": "Acme" })), 201);
    let record = &server.audit("admin.tenant.create")[0];
    assert_eq!(record["actor"]["kind"], "admin_key", "a session acts as the key it signed in with");
    assert!(ok(dashboard.get("/api/v1/tenants"), 200)["items"][0]["id"] == created["id"]);

    // Signing out ends the session (and needs the token too).
    expect_error(
        dashboard.without_csrf(Method::DELETE, "/admin/api/session").send().unwrap(),
        403,
        "csrf_mismatch",
    );
    let out = dashboard.request(Method::DELETE, "/admin/api/session").send().unwrap();
    assert_eq!(out.status(), 204);
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    expect_error(dashboard.get("/api/v1/tenants"), 401, "session_expired");
    expect_error(dashboard.get("/admin/api/session"), 401, "session_expired");
    assert_eq!(server.audit("admin.dashboard.sign_out").len(), 1);

    // Revoking the key a session signed in with ends that session at once.
    let second = ok(server.post("/api/v1/admin-keys", json!({ "name": "second" })), 201);
    let by_second = Dashboard::sign_in(&server, json!({ "key": second["key"] }));
    assert_eq!(by_second.get("/api/v1/tenants").status(), 200);
    assert_eq!(
        server.delete(&format!("/api/v1/admin-keys/{}", second["id"].as_str().unwrap())).status(),
        204
    );
    expect_error(by_second.get("/api/v1/tenants"), 401, "session_expired");
}

#[test]
fn a_setup_link_reaches_its_own_tenants_setup_and_nothing_else() {
    let server = Server::start();
    let acme = server.create_tenant("acme", &["acme.test"]);
    let other = server.create_tenant("other", &["other.test"]);
    let (acme_id, other_id) = (acme["id"].as_str().unwrap(), other["id"].as_str().unwrap());
    let (link, token) = create_link(&server, acme_id, json!({ "note": "Jane at Acme IT" }));
    assert!(link["url"].as_str().unwrap().starts_with(&format!("{}/admin/setup#pcsl_", server.base)));
    assert_eq!((link["status"].as_str(), link["opened_count"].as_u64()), (Some("active"), Some(0)));
    let listed = ok(server.get(&format!("/api/v1/tenants/{acme_id}/setup-links")), 200);
    assert!(listed["items"][0].get("url").is_none(), "the link is shown once");

    let it_admin = Dashboard::sign_in(&server, json!({ "setup_token": token }));
    assert_eq!(it_admin.session["kind"], "setup");
    assert_eq!(it_admin.session["tenant"]["id"], acme_id);
    assert_eq!(it_admin.session["link"]["note"], "Jane at Acme IT");
    let opened = server.audit("admin.setup_link.open");
    assert_eq!(
        (opened[0]["tenant"].as_str(), opened[0]["outcome"].as_str()),
        (Some(acme_id), Some("success"))
    );
    let shown = ok(server.get(&format!("/api/v1/tenants/{acme_id}/setup-links")), 200);
    assert_eq!(shown["items"][0]["opened_count"], 1);

    // What the wizard needs, for its own tenant.
    let own = |rest: &str| format!("/api/v1/tenants/{acme_id}{rest}");
    assert_eq!(ok(it_admin.get(&own("")), 200)["slug"], "acme");
    let saml = ok(it_admin.post(&own("/saml-connections"), json!({ "name": "Okta" })), 201);
    assert!(saml["id"].is_string());
    let scim = ok(it_admin.post(&own("/scim-tokens"), json!({ "name": "Okta provisioning" })), 201);
    assert!(scim["token"].as_str().unwrap().starts_with("pcst_"));
    ok(it_admin.post(&own("/domains"), json!({ "domain": "acme-eu.test" })), 201);
    assert_eq!(it_admin.get(&own("/access-policy")).status(), 200);
    assert_eq!(it_admin.get(&own("/groups")).status(), 200);
    let made = server.audit("admin.scim_token.create");
    assert_eq!(made[0]["actor"]["kind"], "setup_link", "changes name the link");
    assert_eq!(made[0]["actor"]["id"], link["id"]);

    // The IT admin maps groups to the app's roles; tiers, programs and the vocabulary stay the vendor's.
    let vendor = json!({
        "roles": [{ "name": "admin" }, { "name": "viewer" }],
        "tiers": [{ "name": "standard" }, { "name": "enterprise" }],
        "rules": [{ "id": "vip", "when": { "group": "Board" }, "grant": { "tier": "enterprise" } }],
        "default": { "roles": ["viewer"], "tier": "standard" }
    });
    let put = |dashboard: &Dashboard, policy: &Value| {
        dashboard.request(Method::PUT, &own("/access-policy")).json(policy).send().unwrap()
    };
    let operator = Dashboard::sign_in(&server, json!({ "key": ADMIN_KEY }));
    ok(put(&operator, &vendor), 200);
    let mut mapped = vendor.clone();
    mapped["rules"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "id": "admins", "when": { "group": "IT" }, "grant": { "roles": ["admin"] } }));
    assert_eq!(ok(put(&it_admin, &mapped), 200)["version"], 2);
    let mut richer = mapped.clone();
    richer["rules"][1]["grant"]["tier"] = json!("enterprise");
    expect_error(put(&it_admin, &richer), 403, "insufficient_scope");
    let mut renamed = mapped.clone();
    renamed["roles"].as_array_mut().unwrap().push(json!({ "name": "owner" }));
    expect_error(put(&it_admin, &renamed), 403, "insufficient_scope");
    let mut dropped = mapped.clone();
    dropped["rules"].as_array_mut().unwrap().remove(0);
    expect_error(put(&it_admin, &dropped), 403, "insufficient_scope");
    assert_eq!(ok(server.get(&own("/access-policy")), 200)["version"], 2, "refusals saved nothing");

    // Vouching for a domain without DNS is the operator's call.
    let manual = it_admin.post(&own("/domains/acme.test/verify"), json!({ "method": "manual" }));
    expect_error(manual, 403, "insufficient_scope");
    let domains = ok(server.get(&own("/domains")), 200);
    assert!(domains["items"].as_array().unwrap().iter().all(|d| d["status"] == "unverified"), "{domains}");

    // Not another tenant, not the tenant's people or settings, no operator page.
    let refused = [
        (Method::GET, format!("/api/v1/tenants/{other_id}")),
        (Method::GET, format!("/api/v1/tenants/{other_id}/saml-connections")),
        (Method::POST, format!("/api/v1/tenants/{other_id}/scim-tokens")),
        (Method::GET, "/api/v1/tenants/other".to_owned()),
        (Method::GET, "/api/v1/tenants/acme/saml-connections".to_owned()),
        (Method::GET, "/api/v1/tenants".to_owned()),
        (Method::PATCH, own("")),
        (Method::DELETE, own("")),
        (Method::GET, own("/users")),
        (Method::DELETE, own("/sessions")),
        (Method::GET, own("/setup-links")),
        (Method::POST, own("/setup-links")),
        (Method::GET, "/api/v1/audit/search".to_owned()),
        (Method::GET, "/api/v1/admin-keys".to_owned()),
        (Method::POST, "/api/v1/admin-keys".to_owned()),
        (Method::GET, "/api/v1/oauth-clients".to_owned()),
        (Method::GET, "/api/v1/webhooks".to_owned()),
        (Method::GET, "/api/v1/instance".to_owned()),
    ];
    for (method, path) in refused {
        let response = it_admin.request(method.clone(), &path).json(&json!({ "name": "x" })).send().unwrap();
        expect_error(response, 403, "insufficient_scope");
    }
    assert_eq!(ok(server.get(&format!("/api/v1/tenants/{other_id}/scim-tokens")), 200)["items"], json!([]));

    // The IT admin can sign out, which ends the session.
    assert_eq!(it_admin.request(Method::DELETE, "/admin/api/session").send().unwrap().status(), 204);
    expect_error(it_admin.get(&own("")), 401, "session_expired");
    let out = server.audit("admin.dashboard.sign_out");
    assert_eq!(
        (out[0]["actor"]["kind"].as_str(), out[0]["tenant"].as_str()),
        (Some("setup_link"), Some(acme_id))
    );
}

#[test]
fn revoked_and_expired_setup_links_are_refused_and_end_their_sessions() {
    let server = Server::start();
    let tenant = server.create_tenant("acme", &[]);
    let id = tenant["id"].as_str().unwrap();
    let (link, token) = create_link(&server, id, json!({}));
    let it_admin = Dashboard::sign_in(&server, json!({ "setup_token": token }));
    assert_eq!(it_admin.get(&format!("/api/v1/tenants/{id}")).status(), 200);

    let revoke = format!("/api/v1/tenants/{id}/setup-links/{}", link["id"].as_str().unwrap());
    assert_eq!(server.delete(&revoke).status(), 204);
    expect_error(it_admin.get(&format!("/api/v1/tenants/{id}")), 401, "session_expired");
    let reopened = sign_in_request(&server, &json!({ "setup_token": token })).send().unwrap();
    expect_error(reopened, 401, "link_revoked");
    let listed = ok(server.get(&format!("/api/v1/tenants/{id}/setup-links")), 200);
    assert_eq!(listed["items"][0]["status"], "revoked");
    assert_eq!(server.audit("admin.setup_link.revoke").len(), 1);

    // A link that ends in two seconds: usable now, refused after.
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let at = soon.format(&time::format_description::well_known::Rfc3339).unwrap();
    let (_, short) = create_link(&server, id, json!({ "expires_at": at }));
    let brief = Dashboard::sign_in(&server, json!({ "setup_token": short }));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    expect_error(brief.get(&format!("/api/v1/tenants/{id}")), 401, "session_expired");
    let late = sign_in_request(&server, &json!({ "setup_token": short })).send().unwrap();
    expect_error(late, 401, "link_expired");
    let refusals: Vec<Value> =
        server.audit("admin.setup_link.open").into_iter().filter(|r| r["outcome"] == "failure").collect();
    let reasons: Vec<&str> = refusals.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["link_revoked", "link_expired"]);

    let forged = sign_in_request(&server, &json!({ "setup_token": "pcsl_forged" })).send().unwrap();
    expect_error(forged, 401, "invalid_credentials");
    for bad in [
        json!({ "expires_in_hours": 0 }),
        json!({ "expires_in_hours": 721 }),
        json!({ "expires_at": "2001-01-01T00:00:00Z" }),
    ] {
        let error = expect_error(
            server.post(&format!("/api/v1/tenants/{id}/setup-links"), bad),
            400,
            "invalid_value",
        );
        assert!(error["field"].as_str().unwrap().starts_with("expires"));
    }
}

#[test]
fn operators_browse_a_tenants_users_and_groups() {
    let server = Server::start();
    let scim = Scim::new(&server, "acme");
    let tenant = &scim.tenant_id;
    let ada = scim.create_user("ada@acme.test");
    let grace = scim.create_user("grace@acme.test");
    for n in 0..3 {
        scim.create_user(&format!("user{n}@acme.test"));
    }
    let ids = [ada["id"].as_str().unwrap(), grace["id"].as_str().unwrap()];
    let group = scim.create_group("Engineering", &ids);

    let first = ok(server.get(&format!("/api/v1/tenants/{tenant}/users?limit=2")), 200);
    assert_eq!((first["items"].as_array().unwrap().len(), first["total"].as_u64()), (2, Some(5)));
    assert_eq!(first["items"][0]["user_name"], "ada@acme.test", "creation order");
    let after = first["next_after"].as_str().unwrap();
    let rest = ok(server.get(&format!("/api/v1/tenants/{tenant}/users?limit=10&after={after}")), 200);
    assert_eq!(rest["items"].as_array().unwrap().len(), 3);
    assert!(rest.get("next_after").is_none(), "the last page says so");

    let found = ok(server.get(&format!("/api/v1/tenants/{tenant}/users?q=GRACE")), 200);
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    assert_eq!(found["items"][0]["id"], grace["id"]);

    let shown = ok(server.get(&format!("/api/v1/tenants/{tenant}/users/{}", ids[0])), 200);
    assert_eq!(shown["groups"], json!([{ "id": group["id"], "display_name": "Engineering" }]));
    assert_eq!(shown["emails"], json!(["ada@acme.test"]));

    let groups = ok(server.get(&format!("/api/v1/tenants/{tenant}/groups?q=engin")), 200);
    assert_eq!(groups["items"][0]["member_count"], 2);
    let detail =
        ok(server.get(&format!("/api/v1/tenants/{tenant}/groups/{}", group["id"].as_str().unwrap())), 200);
    let members: Vec<&str> =
        detail["members"].as_array().unwrap().iter().map(|m| m["user_name"].as_str().unwrap()).collect();
    assert_eq!(members.len(), 2);
    assert!(members.contains(&"grace@acme.test"));

    expect_error(server.get(&format!("/api/v1/tenants/{tenant}/users/not-an-id")), 404, "not_found");
    let bad_cursor = server.get(&format!("/api/v1/tenants/{tenant}/users?after=nope"));
    expect_error(bad_cursor, 400, "invalid_value");
    expect_error(server.get(&format!("/api/v1/tenants/{tenant}/users?colour=red")), 400, "malformed_request");

    let instance = ok(server.get("/api/v1/instance"), 200);
    assert_eq!(instance["public_url"], server.base.as_str());
    let settings = instance["settings"].as_array().unwrap();
    let key = settings.iter().find(|s| s["name"] == "bootstrap_admin_key").unwrap();
    assert_eq!(key["value"], "***", "secrets are masked");
}
