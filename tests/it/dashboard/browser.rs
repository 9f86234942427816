//! The dashboard in a real browser: `scripts/e2e wizard` (tests/e2e/run.js) drives Debian's
//! Chromium through playwright-core. An operator creates a tenant and a setup link; the customer's
//! IT admin opens it and runs the setup wizard against samlify, an independent SAML IdP
//! (metadata upload, DNS domain verification, a connection test, a SCIM token, a group mapped to
//! a role); SCIM provisions the user and the group; then the user signs in to the app through
//! the IdP. Screenshots of every step land in `target/e2e-screenshots`. This side answers the
//! script's DNS requests from the test DNS server and checks the server's state afterwards.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::PathBuf,
    process::{Command, Stdio},
    thread,
};

use serde_json::Value;

use crate::{
    scim::ok,
    server::{ADMIN_KEY, Server},
    support::dns::TestDns,
};

/// The last `max` bytes of `text` (on a character boundary), for failure messages.
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[test]
fn an_it_admin_sets_up_sso_and_scim_from_a_setup_link_in_chromium() {
    let dns = TestDns::start();
    let server = Server::start_with_settings(&[("PORTCULLIS_DNS_RESOLVERS", &dns.addr().to_string())]);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let screenshots = root.join("target/e2e-screenshots");

    // No time limit here: the script installs what it needs on a fresh machine first (apt, npm),
    // and each of its browser steps has its own limit.
    let mut e2e = Command::new(root.join("scripts/e2e"))
        .arg("wizard")
        .env("PORTCULLIS_URL", &server.base)
        .env("PORTCULLIS_ADMIN_KEY", ADMIN_KEY)
        .env("E2E_SCREENSHOTS", &screenshots)
        .env_remove("E2E_IGNORE_CONSOLE")
        .env_remove("E2E_WIZARD_STEPS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start scripts/e2e");
    let mut stderr_pipe = e2e.stderr.take().unwrap();
    let stderr = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let mut stdin = e2e.stdin.take().unwrap();
    let mut protocol = Vec::new();
    for line in BufReader::new(e2e.stdout.take().unwrap()).lines() {
        let line = line.expect("read scripts/e2e's output");
        if let Some(record) = line.strip_prefix("dns-txt ") {
            let (name, value) = record.split_once(' ').expect("dns-txt NAME VALUE");
            dns.set_txt(name, [vec![value.to_owned()]]);
            // The script may have died meanwhile: its exit status says so below.
            let _ = writeln!(stdin, "ok").and_then(|()| stdin.flush());
        }
        protocol.push(line);
    }
    drop(stdin);
    let status = e2e.wait().unwrap();
    let stderr = stderr.join().unwrap();
    let report = || {
        format!(
            "screenshots in {}\n--- protocol:\n{}\n--- stderr of scripts/e2e (tail):\n{}\n--- server stderr (tail):\n{}",
            screenshots.display(),
            protocol.join("\n"),
            tail(&stderr, 12_000),
            tail(&server.stderr(), 4_000),
        )
    };
    assert!(status.success(), "scripts/e2e wizard failed ({status}); {}", report());
    assert_eq!(protocol.last().map(String::as_str), Some("done"), "{}", report());
    assert!(
        !protocol.iter().any(|l| l == "step wizard-skipped"),
        "tests/e2e/wizard-steps.js is missing: the wizard's pages were not driven; {}",
        report()
    );

    // What the browser did is in the server's state, and the audit trail says who did it.
    let tenant = ok(server.get("/api/v1/tenants/acme"), 200);
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();
    assert_eq!(tenant["display_name"], "Acme Corp");
    let domain = tenant["domains"].as_array().unwrap().iter().find(|d| d["domain"] == "acme.test").unwrap();
    assert_eq!(
        (&domain["status"], &domain["verification_method"]),
        (&"verified".into(), &"dns".into()),
        "{domain}"
    );
    let by_link = |record: &Value| record["actor"]["kind"] == "setup_link" && record["outcome"] == "success";
    let in_tenant = |action: &str| -> Vec<Value> {
        server.audit(action).into_iter().filter(|r| r["tenant"] == tenant_id.as_str()).collect()
    };

    let opened = in_tenant("admin.setup_link.open");
    assert!(opened.iter().any(|r| r["outcome"] == "success"), "the setup link was opened: {opened:?}");
    let verifications = in_tenant("admin.domain.verify");
    assert!(
        verifications.iter().any(|r| by_link(r) && r["target"]["id"] == "acme.test"),
        "the IT admin verified the domain through the setup link: {verifications:?}"
    );

    let connections = ok(server.get(&format!("/api/v1/tenants/{tenant_id}/saml-connections")), 200);
    let connections = connections["items"].as_array().unwrap();
    assert!(connections.iter().any(|c| c["enabled"] == true), "an enabled SAML connection: {connections:?}");
    let created = in_tenant("admin.saml_connection.create");
    assert!(created.iter().any(by_link), "the IT admin made the connection: {created:?}");
    let tests = in_tenant("sso.saml.test");
    assert!(tests.iter().any(|r| r["outcome"] == "success"), "a connection test passed: {tests:?}");
    let mappings = in_tenant("admin.access_policy.update");
    assert!(mappings.iter().any(by_link), "the IT admin mapped a group to a role: {mappings:?}");

    // The user SCIM provisioned signed in through the IdP, with the role her group maps to.
    let access = ok(server.get(&format!("/api/v1/tenants/{tenant_id}/users/ada@acme.test/access")), 200);
    let groups: Vec<&Value> =
        access["groups"].as_array().unwrap().iter().map(|g| &g["display_name"]).collect();
    assert!(groups.contains(&&Value::from("Engineering")), "{access}");
    assert!(!access["roles"].as_array().unwrap().is_empty(), "{access}");
    let logins = in_tenant("sso.saml.login");
    assert!(
        logins.iter().any(|r| r["outcome"] == "success" && r["target"]["id"] == access["user"]),
        "ada signed in through SAML: {logins:?}"
    );
    let authorizations = in_tenant("signin.authorize");
    assert!(
        authorizations.iter().any(|r| r["target"]["id"] == access["user"]
            && r["detail"]["idp"].as_str().is_some_and(|idp| idp.starts_with("saml:"))),
        "the app's authorization through the SAML connection is recorded: {authorizations:?}"
    );
}
