//! The attack suite: for each check of the ACS, a message a naive service provider would accept,
//! refused with that check named, no session, and an audit record. Every attack answers the same
//! pending request, and a valid Response to it still signs in afterwards: a refusal changes
//! nothing.
//!
//! The attacker's identity (mallory@acme.test) is a provisioned user, so that an attack which got
//! through would sign somebody in rather than fail for want of a user.

use std::{
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use serde_json::json;

use super::{Idp, Sso, audit, post_response};
use crate::{
    provider::{Browser, Page},
    server::Server,
};

const EVIL: &str = "mallory@acme.test";
/// What stops a wrapped document: the guard's rules on the signature (one Reference, to the
/// element the signature sits in; no Object), or the single-assertion rule. Which one fires
/// first depends on the shape; never a later check, which would mean the evil copy was read.
const WRAPPING: &[&str] = &["assertion_count", "signature_shape", "reference_uri", "duplicate_id"];

struct Attack<'a> {
    server: &'a Server,
    idp: &'a Idp,
    sso: Sso,
    browser: Browser,
    request: String,
    relay_state: String,
}

impl Attack<'_> {
    fn response(&self, extra: &[&str]) -> String {
        self.sso.response(self.idp, Some(&self.request), "ada@acme.test", extra)
    }

    fn post(&mut self, xml: &str) -> Page {
        post_response(&mut self.browser, &self.sso.acs(), xml, &self.relay_state)
    }

    /// Posts `xml` and asserts it is refused by `check` without signing anybody in.
    fn refused(&mut self, what: &str, xml: &str, check: &str) {
        let page = self.post(xml);
        assert!(matches!(page.status, 400 | 403 | 413), "{what}: {} {}", page.status, page.body);
        assert!(
            page.body.contains(&format!("<code>{check}</code>")),
            "{what}: expected {check}, got {}",
            page.body
        );
        assert!(page.location.is_none() && !self.browser.has_session(), "{what} signed somebody in");
    }

    /// An attack made by the tool from a valid Response (`shape` options to `response`).
    fn crafted(&self, kind: &str, shape: &[&str], options: &[&str]) -> String {
        let original = self.idp.write(&format!("{kind}.xml"), &self.response(shape));
        let (key, cert) = (self.idp.path("idp.key"), self.idp.path("idp.crt"));
        let (attacker_key, attacker_cert) = (self.idp.path("attacker.key"), self.idp.path("attacker.crt"));
        let mut args = vec![
            "attack",
            "--kind",
            kind,
            "--in",
            &original,
            "--key",
            &key,
            "--cert",
            &cert,
            "--attacker-key",
            &attacker_key,
            "--attacker-cert",
            &attacker_cert,
            "--evil-nameid",
            EVIL,
        ];
        args.extend(options);
        self.idp.run(&args).1
    }
}

fn attack_bench<'a>(server: &'a Server, idp: &'a Idp) -> Attack<'a> {
    let sso = Sso::set_up(server, idp, json!({}));
    let evil = server.post(&format!("/api/v1/tenants/{}/users", sso.tenant), json!({ "email": EVIL }));
    assert_eq!(evil.status(), 201);
    let mut browser = Browser::new();
    let (_, request, relay_state) = sso.start(server, idp, &mut browser, "ada@acme.test");
    let request = request["id"].as_str().unwrap().to_owned();
    Attack { server, idp, sso, browser, request, relay_state }
}

/// Every refusal above left its audit record, naming the check.
fn assert_audited(server: &Server, checks: &[&str]) {
    let refused = audit(server, "sso.saml.refused");
    for check in checks {
        assert!(
            refused.iter().any(|r| r["detail"]["check"] == *check),
            "no audit record for {check}: {refused:?}"
        );
    }
}

#[test]
fn signature_attacks_are_refused_and_only_the_signed_element_is_ever_read() {
    let (server, idp) = (Server::start(), Idp::new());
    let mut attack = attack_bench(&server, &idp);
    let assertion_signed = ["--no-sign-response"];
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("unsigned", attack.crafted("strip-signatures", &[], &[]), &["unsigned"]),
        ("tampered after signing", attack.crafted("tamper-nameid", &[], &[]), &["signature_invalid"]),
        (
            "signed by the attacker, his certificate inside",
            attack.crafted("attacker-key", &[], &[]),
            &["signature_invalid"],
        ),
        ("signed with SHA-1", attack.response(&["--sign-alg", "rsa-sha1"]), &["signature_algorithm"]),
        (
            "a second, unsigned assertion",
            attack.crafted("two-assertions", &assertion_signed, &[]),
            &["assertion_count"],
        ),
        ("XSW1", attack.crafted("xsw1", &[], &[]), WRAPPING),
        ("XSW2", attack.crafted("xsw2", &[], &[]), WRAPPING),
        ("XSW3", attack.crafted("xsw3", &assertion_signed, &[]), WRAPPING),
        ("XSW4", attack.crafted("xsw4", &assertion_signed, &[]), WRAPPING),
        ("XSW5", attack.crafted("xsw5", &assertion_signed, &[]), WRAPPING),
        ("XSW6", attack.crafted("xsw6", &assertion_signed, &[]), WRAPPING),
        ("XSW7", attack.crafted("xsw7", &assertion_signed, &[]), WRAPPING),
        ("XSW8", attack.crafted("xsw8", &assertion_signed, &[]), WRAPPING),
        ("an XSLT transform", attack.crafted("xslt-transform", &[], &[]), &["transform"]),
    ];
    let mut seen = Vec::new();
    for (what, xml, checks) in cases {
        assert!(!xml.is_empty(), "{what}: the tool made nothing");
        let page = attack.post(&xml);
        let check =
            checks.iter().find(|c| page.body.contains(&format!("<code>{c}</code>"))).unwrap_or_else(|| {
                panic!("{what}: refused for another reason, or accepted: {} {}", page.status, page.body)
            });
        assert!(page.location.is_none() && !attack.browser.has_session(), "{what} signed somebody in");
        seen.push(*check);
    }
    assert_audited(&server, &seen);
    still_signs_in(&mut attack);
}

#[test]
fn xml_attacks_are_refused_before_any_xml_library_sees_them() {
    let (server, idp) = (Server::start(), Idp::new());
    let mut attack = attack_bench(&server, &idp);
    let fetched = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/steal", listener.local_addr().unwrap());
    let counter = Arc::clone(&fetched);
    std::thread::spawn(move || {
        for _ in listener.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let nameid = ["--nameid", "ada@acme.test", "--suffix", ".evil.test"];
    let cases = [
        ("comment in NameID", attack.crafted("comment-nameid", &[], &nameid), "comment_or_pi"),
        ("processing instruction in NameID", attack.crafted("pi-nameid", &[], &nameid), "comment_or_pi"),
        ("entity in NameID", attack.crafted("entity-nameid", &[], &nameid), "dtd"),
        ("external entity", attack.crafted("xxe", &[], &[]), "dtd"),
        ("billion laughs", attack.crafted("billion-laughs", &[], &[]), "dtd"),
        ("Reference to an URL", attack.crafted("ssrf-reference", &[], &["--url", &url]), "reference_uri"),
        ("deep nesting", format!("{}{}", "<a>".repeat(5000), "</a>".repeat(5000)), "too_complex"),
    ];
    for (what, xml, check) in &cases {
        attack.refused(what, xml, check);
    }
    assert_eq!(fetched.load(Ordering::SeqCst), 0, "a Reference URI was fetched");
    let not_base64 = attack.browser.post(&attack.sso.acs(), &[("SAMLResponse", "%%%not base64")]);
    assert!(not_base64.body.contains("<code>malformed</code>"), "{}", not_base64.body);
    let huge = "A".repeat(300 * 1024);
    let too_large = attack.browser.post(&attack.sso.acs(), &[("SAMLResponse", huge.as_str())]);
    assert_eq!(too_large.status, 413, "{}", too_large.body);
    assert!(too_large.body.contains("<code>too_large</code>"));
    assert_audited(
        &server,
        &["comment_or_pi", "dtd", "reference_uri", "too_complex", "malformed", "too_large"],
    );
    still_signs_in(&mut attack);
}

#[test]
fn a_response_meant_for_another_place_time_or_request_is_refused() {
    let (server, idp) = (Server::start(), Idp::new());
    let mut attack = attack_bench(&server, &idp);
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        ("another destination", vec!["--destination", "https://evil.test/acs"], "destination"),
        (
            "another destination on an unsigned envelope",
            vec!["--no-sign-response", "--destination", "https://evil.test/acs"],
            "destination",
        ),
        ("another recipient", vec!["--recipient", "https://evil.test/acs"], "recipient"),
        ("another audience", vec!["--audience", "https://other-sp.test/metadata"], "audience"),
        ("no audience", vec!["--no-audience"], "audience"),
        ("another assertion issuer", vec!["--assertion-issuer", "https://evil.test/idp"], "issuer"),
        ("another response issuer", vec!["--response-issuer", "https://evil.test/idp"], "issuer"),
        ("expired", vec!["--issue-offset", "-900", "--not-on-or-after-offset", "-600"], "expired"),
        ("not yet valid", vec!["--not-before-offset", "900", "--issue-offset", "0"], "not_yet_valid"),
        ("issued in the future", vec!["--issue-offset", "900"], "not_yet_valid"),
        ("an error status", vec!["--status", "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"], "status"),
    ];
    for (what, options, check) in cases {
        let xml = attack.response(&options);
        attack.refused(what, &xml, check);
    }
    let unknown = attack.sso.response(&idp, Some("_never_sent"), "ada@acme.test", &[]);
    attack.refused("a request never sent", &unknown, "unknown_request");
    let unsolicited = attack.sso.response(&idp, None, "ada@acme.test", &[]);
    attack.refused("unsolicited, IdP-initiated off", &unsolicited, "unsolicited");
    assert_audited(
        &server,
        &[
            "destination",
            "recipient",
            "audience",
            "issuer",
            "expired",
            "not_yet_valid",
            "status",
            "unknown_request",
            "unsolicited",
        ],
    );
    still_signs_in(&mut attack);
}

#[test]
fn an_answered_request_and_a_used_assertion_are_refused_the_second_time() {
    let (server, idp) = (Server::start(), Idp::new());
    let mut attack = attack_bench(&server, &idp);
    let first = attack.response(&["--assertion-id", "_once"]);
    assert_eq!(attack.post(&first).status, 303);
    let mut other = Browser::new();
    let replayed = post_response(&mut other, &attack.sso.acs(), &first, &attack.relay_state);
    assert!(replayed.body.contains("<code>request_already_answered</code>"), "{}", replayed.body);
    // The same assertion, in a Response to a new request.
    let (_, request, relay_state) = attack.sso.start(&server, &idp, &mut other, "ada@acme.test");
    let again = attack.sso.response(
        &idp,
        Some(request["id"].as_str().unwrap()),
        "ada@acme.test",
        &["--assertion-id", "_once"],
    );
    let page = post_response(&mut other, &attack.sso.acs(), &again, &relay_state);
    assert!(page.body.contains("<code>replayed</code>"), "{}", page.body);
    assert!(!other.has_session());
    assert_audited(&server, &["request_already_answered", "replayed"]);
}

#[test]
fn a_response_to_another_connections_request_is_refused() {
    let (server, idp) = (Server::start(), Idp::new());
    let mut attack = attack_bench(&server, &idp);
    let second = server.post(
        &format!("/api/v1/tenants/{}/saml-connections", attack.sso.tenant),
        json!({ "name": "Second IdP", "idp_metadata": idp.metadata(false) }),
    );
    assert_eq!(second.status(), 201);
    let second: serde_json::Value = second.json().unwrap();
    // The app's authorization, sent to the second connection directly.
    let pending = attack.sso.app.authorize(&["openid"]);
    let mut browser = Browser::new();
    let first = browser.get(&pending.url);
    let request = first.location.unwrap().split("request=").nth(1).unwrap().to_owned();
    let start = browser
        .get(&server.url(&format!("/sso/saml/{}/start?request={request}", second["id"].as_str().unwrap())));
    let sp = idp.write(
        "second-sp.xml",
        &server.get(&format!("/sso/saml/{}/metadata", second["id"].as_str().unwrap())).text().unwrap(),
    );
    let read: serde_json::Value = serde_json::from_str(&idp.tool(&[
        "parse-authn",
        "--sp-metadata",
        &sp,
        "--query",
        start.location.as_deref().unwrap(),
    ]))
    .unwrap();
    let crossed = attack.sso.response(&idp, Some(read["id"].as_str().unwrap()), "ada@acme.test", &[]);
    attack.refused("another connection's request", &crossed, "request_of_another_connection");
    still_signs_in(&mut attack);
}

/// The pending request survived every refusal: a valid Response to it signs ada in.
fn still_signs_in(attack: &mut Attack<'_>) {
    let valid = attack.response(&[]);
    let page = attack.post(&valid);
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(attack.browser.has_session());
    let _ = attack.server;
}
