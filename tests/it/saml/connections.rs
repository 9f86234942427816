//! Connections in the admin API: metadata both ways, validation, tests, and what a change does.

use serde_json::{Value, json};

use super::{IDP_ENTITY, IDP_SLO, IDP_SSO, Idp, Sso, audit, post_response};
use crate::{
    provider::Browser,
    server::{Server, expect_error},
};

fn connections_path(tenant: &str) -> String {
    format!("/api/v1/tenants/{tenant}/saml-connections")
}

#[test]
fn uploaded_idp_metadata_fills_the_connection_and_sp_metadata_stays_stable_across_restarts() {
    let idp = Idp::new();
    let server = Server::start();
    let tenant = server.create_tenant("acme", &["acme.test"]);
    let tenant = tenant["id"].as_str().unwrap();
    let created = server.post(&connections_path(tenant), json!({ "name": "Okta" }));
    assert_eq!(created.status(), 201);
    let created: Value = created.json().unwrap();
    assert_eq!(created["enabled"], false, "incomplete connections start disabled");
    assert_eq!(created["missing"], json!(["idp.entity_id", "idp.sso_url", "idp.signing_certificates"]));
    let path = format!("{}/{}", connections_path(tenant), created["id"].as_str().unwrap());
    let refused = server.patch(&path, json!({ "enabled": true }));
    expect_error(refused, 400, "invalid_value");

    let uploaded = server
        .admin(reqwest::Method::PUT, &format!("{path}/idp-metadata"))
        .header("content-type", "application/samlmetadata+xml")
        .body(idp.metadata(true))
        .send()
        .unwrap();
    assert_eq!(uploaded.status(), 200, "{}", uploaded.text().unwrap());
    let filled: Value = uploaded.json().unwrap();
    assert_eq!(filled["idp"]["entity_id"], IDP_ENTITY);
    assert_eq!(filled["idp"]["sso_url"], IDP_SSO);
    assert_eq!(filled["idp"]["slo_url"], IDP_SLO);
    assert_eq!(filled["idp"]["sso_binding"], "http_redirect");
    assert_eq!(filled["idp"]["signing_certificates"].as_array().unwrap().len(), 1);
    assert_eq!(filled["missing"], json!([]));
    assert_eq!(server.patch(&path, json!({ "enabled": true })).status(), 200);

    let public = format!("/sso/saml/{}/metadata", created["id"].as_str().unwrap());
    let before = server.get(&public);
    assert_eq!(before.headers()["content-type"], "application/samlmetadata+xml");
    let before = before.text().unwrap();
    assert!(before.contains(&format!("entityID=\"{}\"", created["sp"]["entity_id"].as_str().unwrap())));
    assert!(before.contains("AuthnRequestsSigned=\"true\""));
    assert!(before.contains("use=\"encryption\"") && before.contains("aes256-gcm"));
    let before = before.replace(&server.url(""), "ORIGIN");
    let data = server.kill9();
    let restarted = Server::start_with(data, &[("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", crate::server::ADMIN_KEY)]);
    let after = restarted.get(&public).text().unwrap().replace(&restarted.url(""), "ORIGIN");
    assert_eq!(after, before, "SP metadata is the same after a restart (the test server's port aside)");

    let actions: Vec<String> = audit(&restarted, "admin.saml_connection.")
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        ["admin.saml_connection.create", "admin.saml_connection.update", "admin.saml_connection.update"]
    );
}

#[test]
fn the_independent_idp_reads_our_sp_metadata_and_verifies_our_requests_with_it() {
    let (server, idp) = (Server::start(), Idp::new());
    let sso = Sso::set_up(&server, &idp, json!({}));
    let mut browser = Browser::new();
    let (_, request, _) = sso.start(&server, &idp, &mut browser, "ada@acme.test");
    assert_eq!(request["issuer"], sso.sp_entity());
    assert_eq!(request["destination"], IDP_SSO);
    assert_eq!(request["signature_valid"], true);
    // The same request checked against another connection's SP metadata fails: each
    // connection signs with its own key.
    let other: Value =
        server.post(&connections_path(&sso.tenant), json!({ "name": "Another IdP" })).json().unwrap();
    let foreign_metadata =
        server.get(&format!("/sso/saml/{}/metadata", other["id"].as_str().unwrap())).text().unwrap();
    let foreign = idp.write("foreign-sp.xml", &foreign_metadata);
    let pending = sso.app.authorize(&["openid"]);
    let page = sso.begin(&server, &mut Browser::new(), &pending.url, "ada@acme.test");
    let (ok, _, _) =
        idp.run(&["parse-authn", "--sp-metadata", &foreign, "--query", page.location.as_deref().unwrap()]);
    assert!(!ok, "a request verified against another SP's certificate");
}

#[test]
fn metadata_that_is_expired_forged_or_without_keys_is_refused_and_changes_nothing() {
    let (server, idp) = (Server::start(), Idp::new());
    let sso = Sso::set_up(&server, &idp, json!({}));
    let path = sso.api_path("");
    let cert = idp.path("idp.crt");
    let expired = idp.tool(&[
        "metadata",
        "--idp",
        IDP_ENTITY,
        "--cert",
        &cert,
        "--sso",
        IDP_SSO,
        "--valid-until",
        "2020-01-01T00:00:00Z",
    ]);
    let error = expect_error(server.patch(&path, json!({ "idp_metadata": expired })), 400, "invalid_value");
    assert!(error["message"].as_str().unwrap().contains("expired"), "{error}");

    // Signed by a key the connection does not trust (the attacker's), claiming a new SSO URL.
    let forged = idp.metadata_signed_by("attacker", &["attacker"], "https://evil.test/sso");
    let error = expect_error(server.patch(&path, json!({ "idp_metadata": forged })), 400, "invalid_value");
    assert!(error["message"].as_str().unwrap().contains("signature"), "{error}");

    // Signed by the trusted key: accepted, a rotation adding a second certificate.
    let rotated = idp.metadata_signed_by("idp", &["idp", "rotated"], IDP_SSO);
    let updated = server.patch(&path, json!({ "idp_metadata": rotated }));
    assert_eq!(updated.status(), 200, "{}", updated.text().unwrap());
    let updated: Value = updated.json().unwrap();
    assert_eq!(updated["idp"]["signing_certificates"].as_array().unwrap().len(), 2);

    let no_keys = format!(
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"{IDP_ENTITY}\"><md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\"><md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"{IDP_SSO}\"/></md:IDPSSODescriptor></md:EntityDescriptor>"
    );
    let error = expect_error(server.patch(&path, json!({ "idp_metadata": no_keys })), 400, "invalid_value");
    assert!(error["message"].as_str().unwrap().contains("no signing certificate"), "{error}");
    let dtd = format!("<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>{}", idp.metadata(false));
    expect_error(server.patch(&path, json!({ "idp_metadata": dtd })), 400, "invalid_value");
    let not_a_certificate =
        server.patch(&path, json!({ "idp": { "signing_certificates": ["bm90IGEgY2VydA=="] } }));
    expect_error(not_a_certificate, 400, "invalid_value");
    let plain_http = server.patch(&path, json!({ "idp": { "sso_url": "http://idp.example.test/sso" } }));
    expect_error(plain_http, 400, "invalid_value");
    let shown: Value = server.get(&path).json().unwrap();
    assert_eq!(shown["idp"], updated["idp"], "refused changes left the connection as it was");
}

#[test]
fn a_connection_test_runs_a_real_login_shows_the_result_and_signs_nobody_in() {
    let (server, idp) = (Server::start(), Idp::new());
    // A setup wizard tests the connection before it enables it.
    let sso = Sso::set_up(&server, &idp, json!({ "enabled": false }));
    let test = server.post(&sso.api_path("/tests"), json!({}));
    assert_eq!(test.status(), 201);
    let test: Value = test.json().unwrap();
    let mut browser = Browser::new();
    let at_idp = browser.get(test["start_url"].as_str().unwrap());
    let sp = idp.path("sp.xml");
    let request: Value = serde_json::from_str(&idp.tool(&[
        "parse-authn",
        "--sp-metadata",
        &sp,
        "--query",
        at_idp.location.as_deref().unwrap(),
    ]))
    .unwrap();
    assert_eq!(request["id"], test["id"]);
    let waiting: Value =
        server.get(&sso.api_path(&format!("/tests/{}", test["id"].as_str().unwrap()))).json().unwrap();
    assert_eq!(waiting["status"], "waiting");
    let xml = sso.response(
        &idp,
        Some(test["id"].as_str().unwrap()),
        "ada@acme.test",
        &["--attr", "department=R&D"],
    );
    let shown = post_response(&mut browser, &sso.acs(), &xml, "");
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(shown.body.contains("passed every check"), "{}", shown.body);
    assert!(shown.body.contains("R&amp;amp;D") || shown.body.contains("R&amp;D"), "{}", shown.body);
    assert!(!browser.has_session(), "a test signs nobody in");
    let done: Value =
        server.get(&sso.api_path(&format!("/tests/{}", test["id"].as_str().unwrap()))).json().unwrap();
    assert_eq!(done["status"], "done");
    assert_eq!(done["result"]["ok"], true);
    assert_eq!(done["result"]["user"]["outcome"], "existing");
    assert_eq!(done["result"]["mapped"]["department"], "R&D");
    assert_eq!(audit(&server, "sso.saml.test").len(), 1);
    // Not enabled, the connection still signs nobody in.
    let pending = sso.app.authorize(&["openid"]);
    let login = sso.begin(&server, &mut Browser::new(), &pending.url, "ada@acme.test");
    assert!(login.body.contains("name=\"password\""), "{}", login.body);
}

#[test]
fn a_test_whose_response_fails_a_check_ends_with_that_check() {
    let (server, idp) = (Server::start(), Idp::new());
    let sso = Sso::set_up(&server, &idp, json!({ "enabled": false }));
    let test: Value = server.post(&sso.api_path("/tests"), json!({})).json().unwrap();
    let id = test["id"].as_str().unwrap();
    let mut browser = Browser::new();
    let at_idp = browser.get(test["start_url"].as_str().unwrap());
    assert!(
        at_idp.location.as_deref().unwrap().contains(&format!("RelayState={id}")),
        "RelayState names the test"
    );
    // The IdP's clock is ten minutes behind: the assertion has expired when it arrives.
    let xml = sso.response(&idp, Some(id), "ada@acme.test", &["--not-on-or-after-offset", "-600"]);
    let shown = post_response(&mut browser, &sso.acs(), &xml, id);
    assert!(shown.body.contains("<code>expired</code>") || shown.status >= 400, "{}", shown.body);
    let done: Value = server.get(&sso.api_path(&format!("/tests/{id}"))).json().unwrap();
    assert_eq!(
        (done["status"].as_str(), done["result"]["ok"].as_bool()),
        (Some("done"), Some(false)),
        "{done}"
    );
    assert_eq!(done["result"]["stage"], "message");
    assert!(done["result"]["check"].is_string() && done["result"]["reason"].is_string(), "{done}");

    // A RelayState naming an answered test, or none at all, changes nothing.
    let again = post_response(&mut browser, &sso.acs(), &xml, id);
    assert!(again.status >= 400 || again.body.contains("<code>"), "{}", again.body);
    let still: Value = server.get(&sso.api_path(&format!("/tests/{id}"))).json().unwrap();
    assert_eq!(still["result"], done["result"]);
}

#[test]
fn a_disabled_or_deleted_connection_signs_nobody_in() {
    let (server, idp) = (Server::start(), Idp::new());
    let sso = Sso::set_up(&server, &idp, json!({}));
    let mut browser = Browser::new();
    let (_, request, relay_state) = sso.start(&server, &idp, &mut browser, "ada@acme.test");
    let xml = sso.response(&idp, Some(request["id"].as_str().unwrap()), "ada@acme.test", &[]);
    assert_eq!(server.patch(&sso.api_path(""), json!({ "enabled": false })).status(), 200);
    let page = post_response(&mut browser, &sso.acs(), &xml, &relay_state);
    assert!(page.body.contains("<code>connection_disabled</code>"), "{}", page.body);
    assert_eq!(server.delete(&sso.api_path("")).status(), 204);
    let page = post_response(&mut browser, &sso.acs(), &xml, &relay_state);
    assert_eq!(page.status, 404);
    assert!(!browser.has_session());
    // Without a connection the tenant's people are back to passwords.
    let pending = sso.app.authorize(&["openid"]);
    let login = sso.begin(&server, &mut Browser::new(), &pending.url, "ada@acme.test");
    assert!(login.body.contains("name=\"password\""), "{}", login.body);
}

/// Serves whatever `document` holds at `/metadata`, over HTTP on loopback.
fn metadata_server(document: std::sync::Arc<std::sync::Mutex<(u16, String)>>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/metadata", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let (status, body) = document.lock().unwrap().clone();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn metadata_from_a_url_is_fetched_refreshed_and_its_certificate_changes_audited() {
    let (server, idp) = (Server::start(), Idp::new());
    let tenant = server.create_tenant("acme", &["acme.test"]);
    let tenant = tenant["id"].as_str().unwrap();
    let served = std::sync::Arc::new(std::sync::Mutex::new((200, idp.metadata(false))));
    let url = metadata_server(std::sync::Arc::clone(&served));
    let created = server.post(
        &connections_path(tenant),
        json!({ "name": "Okta", "metadata_url": url, "metadata_refresh_hours": 6 }),
    );
    assert_eq!(created.status(), 201, "{}", created.text().unwrap());
    let created: Value = created.json().unwrap();
    assert_eq!(created["enabled"], true);
    assert_eq!(created["idp"]["entity_id"], IDP_ENTITY);
    assert_eq!(created["metadata_source"]["refresh_hours"], 6);
    let path = format!("{}/{}", connections_path(tenant), created["id"].as_str().unwrap());

    // The IdP adds a second certificate, in metadata signed with the key already trusted.
    served.lock().unwrap().1 = idp.metadata_signed_by("idp", &["idp", "rotated"], IDP_SSO);
    let refreshed = server.post(&format!("{path}/idp-metadata/refresh"), json!({}));
    assert_eq!(refreshed.status(), 200, "{}", refreshed.text().unwrap());
    let refreshed: Value = refreshed.json().unwrap();
    assert_eq!(refreshed["idp"]["signing_certificates"].as_array().unwrap().len(), 2);
    let changes = audit(&server, "saml_connection.certificates_changed");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["detail"]["before"].as_array().unwrap().len(), 1);
    assert_eq!(changes[0]["detail"]["after"].as_array().unwrap().len(), 2);

    // Metadata signed by a key nobody trusts, or an unreachable URL: the last good settings stay.
    served.lock().unwrap().1 = idp.metadata_signed_by("attacker", &["attacker"], "https://evil.test/sso");
    let forged = server.post(&format!("{path}/idp-metadata/refresh"), json!({}));
    let error = expect_error(forged, 400, "invalid_value");
    assert!(error["message"].as_str().unwrap().contains("signature"), "{error}");
    served.lock().unwrap().0 = 500;
    expect_error(server.post(&format!("{path}/idp-metadata/refresh"), json!({})), 400, "invalid_value");
    let kept: Value = server.get(&path).json().unwrap();
    assert_eq!(kept["idp"], refreshed["idp"]);
    assert!(kept["metadata_source"]["last_error"].as_str().unwrap().contains("500"), "{kept}");
    assert_eq!(audit(&server, "saml_connection.metadata_refresh_failed").len(), 2);

    let plain_http = server.patch(&path, json!({ "metadata_url": "http://idp.example.test/metadata" }));
    expect_error(plain_http, 400, "invalid_value");
}

/// Signs ada in with an assertion encrypted to `certificate` (a PEM file); returns the page.
fn encrypted_login(server: &Server, idp: &Idp, sso: &Sso, certificate: &str) -> crate::provider::Page {
    let mut browser = Browser::new();
    let (_, request, relay_state) = sso.start(server, idp, &mut browser, "ada@acme.test");
    let xml = sso.response(
        idp,
        Some(request["id"].as_str().unwrap()),
        "ada@acme.test",
        &["--encrypt", "--sp-cert", certificate, "--no-sign-response"],
    );
    post_response(&mut browser, &sso.acs(), &xml, &relay_state)
}

#[test]
fn sp_keys_rotate_in_stages_without_refusing_a_login() {
    let (server, idp) = (Server::start(), Idp::new());
    let sso = Sso::set_up(&server, &idp, json!({}));
    let old_certificate = idp.path("sp-encryption.crt");

    // 1. Prepared: the next keys are published beside the current ones and decrypt already.
    let prepared = server.post(&sso.api_path("/sp-keys"), json!({}));
    assert_eq!(prepared.status(), 201);
    let prepared: Value = prepared.json().unwrap();
    let next = &prepared["sp"]["next"];
    let published = server.get(&sso.api_path("/sp-metadata")).text().unwrap();
    assert_eq!(published.matches("use=\"signing\"").count(), 2);
    assert_eq!(published.matches("use=\"encryption\"").count(), 2);
    let new_certificate =
        idp.write("sp-encryption-next.crt", next["encryption_certificate"].as_str().unwrap());
    assert_eq!(encrypted_login(&server, &idp, &sso, &new_certificate).status, 303);
    assert_eq!(encrypted_login(&server, &idp, &sso, &old_certificate).status, 303);

    // 2. Activated: requests are signed with the new key (the IdP, holding the new metadata,
    // verifies them); assertions encrypted to the old certificate still decrypt.
    let activated = server.post(&sso.api_path("/sp-keys/activate"), json!({}));
    assert_eq!(activated.status(), 200);
    let activated: Value = activated.json().unwrap();
    assert_eq!(activated["sp"]["signing_certificate"], next["signing_certificate"]);
    assert!(activated["sp"]["previous_replaced_at"].is_string());
    idp.write("sp.xml", &server.get(&sso.api_path("/sp-metadata")).text().unwrap());
    assert_eq!(encrypted_login(&server, &idp, &sso, &old_certificate).status, 303);
    assert_eq!(encrypted_login(&server, &idp, &sso, &new_certificate).status, 303);
    let again = server.post(&sso.api_path("/sp-keys/activate"), json!({}));
    expect_error(again, 409, "no_rotation");

    // 3. The overlap ends: the old certificate no longer decrypts.
    assert_eq!(server.delete(&sso.api_path("/sp-keys/previous")).status(), 200);
    let refused = encrypted_login(&server, &idp, &sso, &old_certificate);
    assert!(refused.body.contains("<code>decryption_failed</code>"), "{}", refused.body);
    assert_eq!(encrypted_login(&server, &idp, &sso, &new_certificate).status, 303);
    let steps = audit(&server, "admin.saml_connection.");
    let actions: Vec<&str> =
        steps.iter().map(|r| r["action"].as_str().unwrap()).filter(|a| a.contains("sp_keys")).collect();
    assert_eq!(
        actions,
        [
            "admin.saml_connection.sp_keys_prepared",
            "admin.saml_connection.sp_keys_activated",
            "admin.saml_connection.sp_keys_retired"
        ]
    );
}
