//! Domain verification through a DNS server started on loopback, and what a verified domain
//! changes: only verified domains route sign-ins to their tenant.

use serde_json::{Value, json};

use crate::{
    provider::{App, Browser},
    scim::ok,
    server::Server,
    support::dns::TestDns,
};

fn domain_of(tenant: &Value) -> (String, String, String) {
    let domain = &tenant["domains"][0];
    (
        domain["domain"].as_str().unwrap().to_owned(),
        domain["verification"]["record_name"].as_str().unwrap().to_owned(),
        domain["verification"]["record_value"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn a_domain_is_verified_once_its_txt_record_is_published() {
    let dns = TestDns::start();
    let server = Server::start_with_settings(&[("PORTCULLIS_DNS_RESOLVERS", &dns.addr().to_string())]);
    let tenant = server.create_tenant("acme", &["acme.test"]);
    let id = tenant["id"].as_str().unwrap();
    let (domain, name, value) = domain_of(&tenant);
    let verify = format!("/api/v1/tenants/{id}/domains/{domain}/verify");

    let missing = server.post(&verify, json!({}));
    assert_eq!(missing.status(), 409);
    let body: Value = missing.json().unwrap();
    assert_eq!(body["error"]["code"], "verification_failed");

    dns.set_txt(&name, [vec!["portcullis-domain-verification=wrong".to_owned()]]);
    let wrong: Value = server.post(&verify, json!({})).json().unwrap();
    assert!(
        wrong["error"]["message"].as_str().unwrap().contains("verification=wrong"),
        "shows what it found: {wrong}"
    );

    // A failing DNS server is the operator's problem to see, not a verdict on the domain.
    dns.set_servfail(true);
    let failing: Value = server.post(&verify, json!({})).json().unwrap();
    assert_eq!(failing["error"]["code"], "dns_unavailable");
    dns.set_servfail(false);
    dns.remove(&name);

    // Published split across two character-strings, as some DNS consoles do.
    let (head, tail) = value.split_at(10);
    dns.set_txt(&name, [vec!["unrelated".to_owned()], vec![head.to_owned(), tail.to_owned()]]);
    let verified = ok(server.post(&verify, json!({})), 200);
    assert_eq!(
        (verified["status"].as_str(), verified["verification_method"].as_str()),
        (Some("verified"), Some("dns"))
    );
    assert!(verified["verified_at"].is_string());
    assert!(dns.queries() >= 4, "every check asked DNS: nothing was cached");
    let shown = ok(server.admin(reqwest::Method::GET, &format!("/api/v1/tenants/{id}")).send().unwrap(), 200);
    assert_eq!(shown["domains"][0]["status"], "verified");

    // Each failed check is in the audit trail with why, then the verification.
    let checks = server.audit("admin.domain.verify");
    let outcomes: Vec<(&str, &str)> = checks
        .iter()
        .map(|r| (r["outcome"].as_str().unwrap(), r["reason"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("failure", "txt_record_missing"),
            ("failure", "txt_value_mismatch"),
            ("failure", "dns_unavailable"),
            ("success", "")
        ]
    );
    for check in &checks {
        assert_eq!((&check["tenant"], &check["target"]["id"]), (&json!(id), &json!(domain)));
        assert_eq!(check["actor"]["kind"], "admin_key");
    }
    assert!(checks[1]["detail"]["message"].as_str().unwrap().contains("verification=wrong"));
}

#[test]
fn an_operator_can_vouch_for_a_domain_on_an_air_gapped_site() {
    let server = Server::start();
    let tenant = server.create_tenant("acme", &["acme.test"]);
    let id = tenant["id"].as_str().unwrap();
    let verified = ok(
        server.post(&format!("/api/v1/tenants/{id}/domains/acme.test/verify"), json!({ "method": "manual" })),
        200,
    );
    assert_eq!(verified["verification_method"], "manual");
    assert!(verified["verified_by"].is_string());
    let unknown = server
        .post(&format!("/api/v1/tenants/{id}/domains/other.test/verify"), json!({ "method": "manual" }));
    assert_eq!(unknown.status(), 404);
}

#[test]
fn only_a_verified_domain_routes_its_people_to_their_tenant_policy() {
    let server = Server::start();
    let tenant = server.create_tenant("acme", &["acme.test"]);
    let id = tenant["id"].as_str().unwrap();
    ok(server.patch(&format!("/api/v1/tenants/{id}"), json!({ "require_sso": true })), 200);
    let app = App::register(&server, json!({}));

    let email_step = |browser: &mut Browser| {
        let pending = app.authorize(&[]);
        let first = browser.get(&pending.url);
        let login = browser.follow(&server, first);
        browser.submit(&server, &login, &[("email", "ada@acme.test")])
    };
    // Unverified: the domain means nothing yet, so the person gets the ordinary password step.
    let mut browser = Browser::new();
    assert_eq!(email_step(&mut browser).status, 200);
    // Verified, and the tenant requires SSO without having a connection: nobody falls back to
    // a password.
    ok(
        server.post(&format!("/api/v1/tenants/{id}/domains/acme.test/verify"), json!({ "method": "manual" })),
        200,
    );
    let page = email_step(&mut browser);
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("Single sign-on is required"));
}
