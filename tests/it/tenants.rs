//! The tenant lifecycle through the admin API.

use serde_json::{Value, json};

use crate::{
    provider::{App, Browser, sign_in, tenant_with_password_user},
    scim::ok,
    server::{Server, expect_error},
};

#[test]
fn create_read_update_and_delete_a_tenant() {
    let server = Server::start();
    let response = server.post(
        "/api/v1/tenants",
        json!({ "slug": "acme", "display_name": "  Acme Corp ", "domains": ["Acme.COM", "acme.io."] }),
    );
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let tenant: Value = response.json().unwrap();
    let id = tenant["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/tenants/{id}"));
    assert_eq!(tenant["slug"], "acme");
    assert_eq!(tenant["display_name"], "Acme Corp");
    assert_eq!(tenant["status"], "active");
    assert_eq!(tenant["urls"]["scim_base_url"], server.url(&format!("/scim/v2/{id}")));
    let domains = tenant["domains"].as_array().unwrap();
    assert_eq!(domains.len(), 2);
    assert_eq!(domains[0]["domain"], "acme.com");
    assert_eq!(domains[1]["domain"], "acme.io");
    assert_eq!(domains[0]["status"], "unverified");
    assert_eq!(domains[0]["verification"]["record_type"], "TXT");
    assert_eq!(domains[0]["verification"]["record_name"], "_portcullis-challenge.acme.com");
    let record = domains[0]["verification"]["record_value"].as_str().unwrap();
    assert!(record.starts_with("portcullis-domain-verification=") && record.len() > 40, "{record}");
    assert_ne!(domains[0]["verification"]["record_value"], domains[1]["verification"]["record_value"]);

    // By id and by slug.
    assert_eq!(server.get(&location).json::<Value>().unwrap(), tenant);
    assert_eq!(server.get("/api/v1/tenants/acme").json::<Value>().unwrap(), tenant);

    // A partial update leaves the other fields alone.
    let response =
        server.patch(&location, json!({ "display_name": "Acme Corporation", "status": "suspended" }));
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().unwrap();
    assert_eq!(updated["display_name"], "Acme Corporation");
    assert_eq!(updated["status"], "suspended");
    assert_eq!(updated["slug"], "acme");
    assert_eq!(updated["domains"], tenant["domains"]);
    assert_eq!(updated["created_at"], tenant["created_at"]);

    // Renaming the slug frees the old one.
    let renamed: Value = server.patch(&location, json!({ "slug": "acme-corp" })).json().unwrap();
    assert_eq!(renamed["slug"], "acme-corp");
    expect_error(server.get("/api/v1/tenants/acme"), 404, "not_found");
    assert_eq!(server.get("/api/v1/tenants/acme-corp").json::<Value>().unwrap()["id"], id.as_str());
    server.create_tenant("acme", &[]);

    // Deleting removes the tenant and frees its slug and domains.
    assert_eq!(server.delete(&location).status(), 204);
    expect_error(server.get(&location), 404, "not_found");
    expect_error(server.delete(&location), 404, "not_found");
    server.create_tenant("acme-corp", &["acme.com", "acme.io"]);

    // Each change is in the tenant's audit trail, by the admin key, with what it changed.
    let of_acme = |action: &str| -> Vec<Value> {
        server.audit(action).into_iter().filter(|r| r["target"]["id"] == id.as_str()).collect()
    };
    let created = &of_acme("admin.tenant.create")[0];
    assert_eq!((&created["actor"]["kind"], &created["tenant"]), (&json!("admin_key"), &json!(id)));
    assert_eq!(
        (&created["detail"]["slug"], &created["detail"]["domains"]),
        (&json!("acme"), &json!(["acme.com", "acme.io"]))
    );
    let updates = of_acme("admin.tenant.update");
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0]["detail"]["before"], json!({ "display_name": "Acme Corp", "status": "active" }));
    assert_eq!(
        updates[0]["detail"]["after"],
        json!({ "display_name": "Acme Corporation", "status": "suspended" })
    );
    assert_eq!(updates[0]["detail"]["sessions_ended"], 0);
    assert_eq!(
        (&updates[1]["detail"]["before"], &updates[1]["detail"]["after"]),
        (&json!({ "slug": "acme" }), &json!({ "slug": "acme-corp" }))
    );
    let deleted = of_acme("admin.tenant.delete");
    assert_eq!(deleted.len(), 1, "the refused second deletion changed nothing");
    assert_eq!(
        (&deleted[0]["outcome"], &deleted[0]["detail"]["sessions_ended"]),
        (&json!("success"), &json!(0))
    );
}

#[test]
fn domains_belong_to_one_tenant_at_a_time() {
    let server = Server::start();
    let acme = server.create_tenant("acme", &["acme.com"]);
    let globex = server.create_tenant("globex", &[]);
    let globex_domains = format!("/api/v1/tenants/{}/domains", globex["id"].as_str().unwrap());

    let error =
        expect_error(server.post(&globex_domains, json!({ "domain": "ACME.com" })), 409, "domain_taken");
    assert_eq!(error["field"], "domain");
    expect_error(
        server.post("/api/v1/tenants/acme/domains", json!({ "domain": "acme.com" })),
        409,
        "domain_exists",
    );
    // A tenant created with a taken domain is not created at all.
    expect_error(
        server.post(
            "/api/v1/tenants",
            json!({ "slug": "initech", "display_name": "Initech", "domains": ["initech.com", "acme.com"] }),
        ),
        409,
        "domain_taken",
    );
    expect_error(server.get("/api/v1/tenants/initech"), 404, "not_found");
    server.create_tenant("initech", &["initech.com"]);

    // Add, list, remove; removal frees the domain for another tenant.
    let response = server.post(&globex_domains, json!({ "domain": "globex.example" }));
    assert_eq!(response.status(), 201);
    assert_eq!(response.json::<Value>().unwrap()["domain"], "globex.example");
    let listed: Value = server.get(&globex_domains).json().unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(server.delete("/api/v1/tenants/acme/domains/Acme.Com").status(), 204);
    expect_error(server.delete("/api/v1/tenants/acme/domains/acme.com"), 404, "not_found");
    assert_eq!(server.post(&globex_domains, json!({ "domain": "acme.com" })).status(), 201);
    let acme_now: Value = server.get("/api/v1/tenants/acme").json().unwrap();
    assert!(acme_now["domains"].as_array().unwrap().is_empty());
    assert_eq!(acme_now["id"], acme["id"]);

    // Additions and removals are audited in the tenant's trail; refused ones changed nothing.
    let added: Vec<(Value, Value)> = server
        .audit("admin.domain.add")
        .iter()
        .map(|r| (r["tenant"].clone(), r["target"]["id"].clone()))
        .collect();
    assert_eq!(
        added,
        [(globex["id"].clone(), json!("globex.example")), (globex["id"].clone(), json!("acme.com"))]
    );
    let removed = server.audit("admin.domain.remove");
    assert_eq!(removed.len(), 1);
    assert_eq!((&removed[0]["tenant"], &removed[0]["target"]["id"]), (&acme["id"], &json!("acme.com")));
    assert_eq!(
        (&removed[0]["actor"]["kind"], &removed[0]["detail"]["status"]),
        (&json!("admin_key"), &json!("unverified"))
    );
}

#[test]
fn tenants_are_listed_in_pages_in_creation_order() {
    let server = Server::start();
    let slugs: Vec<String> = (0..7).map(|i| format!("tenant-{i}")).collect();
    for slug in &slugs {
        server.create_tenant(slug, &[]);
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/tenants?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let page: Value = server.get(&path).json().unwrap();
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|t| t["slug"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/tenants?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, slugs);
    assert_eq!(pages, 3);
    let default_page: Value = server.get("/api/v1/tenants").json().unwrap();
    assert_eq!(default_page["items"].as_array().unwrap().len(), 7);
    assert!(default_page.get("next_cursor").is_none());
}

#[test]
fn concurrent_creations_of_one_slug_have_exactly_one_winner() {
    let server = Server::start();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..24)
            .map(|i| {
                let server = &server;
                scope.spawn(move || {
                    let slug = format!("contested-{}", i % 4);
                    let body =
                        json!({ "slug": slug, "display_name": "x", "domains": [format!("d{i}.example")] });
                    server.post("/api/v1/tenants", body).status().as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 4, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 20, "{statuses:?}");
    let page: Value = server.get("/api/v1/tenants?limit=100").json().unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    // The losers' domains were not left behind: every domain held belongs to a listed tenant.
    for tenant in items {
        assert_eq!(tenant["domains"].as_array().unwrap().len(), 1);
    }
}

#[test]
fn a_suspension_ends_the_tenants_sessions_and_the_trail_says_how_many() {
    let server = Server::start();
    let password = "correct horse battery staple";
    let (tenant, _) = tenant_with_password_user(&server, password);
    let pending = App::register(&server, json!({})).authorize(&[]);
    let back = sign_in(&server, &mut Browser::new(), &pending.url, "ada@acme.test", password);
    assert_eq!(back.status, 303, "{}", back.body);
    ok(server.patch(&format!("/api/v1/tenants/{tenant}"), json!({ "status": "suspended" })), 200);
    let update = &server.audit("admin.tenant.update")[0];
    assert_eq!(update["detail"]["sessions_ended"], 1);
    assert_eq!(update["detail"]["after"], json!({ "status": "suspended" }));
}
