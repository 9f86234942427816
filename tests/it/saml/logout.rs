//! Single Logout both ways with the independent IdP, over both bindings.

use std::time::Duration;

use serde_json::{Value, json};

use super::{IDP_ENTITY, IDP_SLO, Idp, SignedIn, Sso, audit, sign_in};
use crate::{
    provider::{App, Browser, LogoutReceiver},
    server::Server,
};

const GOODBYE: &str = "http://127.0.0.1:9/goodbye";

struct Slo {
    server: Server,
    idp: Idp,
    sso: Sso,
    receiver: LogoutReceiver,
    signed_in: SignedIn,
}

/// Ada signed in to an app that listens for back-channel logout.
fn signed_in(settings: Value) -> Slo {
    let (server, idp) = (Server::start(), Idp::new());
    let mut sso = Sso::set_up(&server, &idp, settings);
    let receiver = LogoutReceiver::start(&[200]);
    sso.app = App::register(
        &server,
        json!({ "backchannel_logout_uri": receiver.url, "post_logout_redirect_uris": [GOODBYE] }),
    );
    let signed_in = sign_in(&server, &idp, &sso, "ada@acme.test", "ada@acme.test", &[]).unwrap();
    Slo { server, idp, sso, receiver, signed_in }
}

impl Slo {
    fn slo(&self) -> String {
        self.sso.connection["sp"]["slo_url"].as_str().unwrap().to_owned()
    }

    /// A LogoutRequest from the IdP for ada's session, over `binding`, signed with `key`.
    fn logout_request(&self, binding: &str, key: &str, extra: &[&str]) -> String {
        let (key, cert, slo) =
            (self.idp.path(&format!("{key}.key")), self.idp.path(&format!("{key}.crt")), self.slo());
        let mut args = vec![
            "logout-request",
            "--idp",
            IDP_ENTITY,
            "--key",
            &key,
            "--cert",
            &cert,
            "--slo",
            &slo,
            "--nameid",
            "ada@acme.test",
            "--session-index",
            "_idp-session-1",
            "--binding",
            binding,
        ];
        args.extend(extra);
        self.idp.tool(&args)
    }

    fn session_alive(&self) -> bool {
        self.sso.app.introspect(&self.server, &self.signed_in.access_token)["active"] == true
    }

    /// Reads the message Portcullis sent to the IdP's logout service, as the IdP does.
    fn read_at_idp(&self, location: &str) -> Value {
        assert!(location.starts_with(IDP_SLO), "{location}");
        let sp = self.idp.path("sp.xml");
        serde_json::from_str(&self.idp.tool(&["parse-logout", "--sp-metadata", &sp, "--query", location]))
            .unwrap()
    }

    /// The session ended, and the app was told through back-channel logout with its sid.
    fn assert_logged_out_everywhere(&self) {
        assert!(!self.session_alive(), "introspection still says active");
        let deliveries = self.receiver.wait_for(1, Duration::from_secs(30));
        let token = deliveries[0].body.split("logout_token=").nth(1).unwrap();
        let claims = super::claims_of(token);
        assert_eq!(claims["sid"], self.signed_in.claims["sid"]);
    }
}

#[test]
fn an_idp_initiated_logout_over_post_ends_the_session_tells_the_app_and_is_answered_signed() {
    let mut slo = signed_in(json!({}));
    assert!(slo.session_alive());
    let request = slo.logout_request("post", "idp", &[]);
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &request);
    let answer =
        slo.signed_in.browser.post(&slo.slo(), &[("SAMLRequest", encoded.as_str()), ("RelayState", "rs-1")]);
    assert_eq!(answer.status, 303, "{}", answer.body);
    let response = slo.read_at_idp(answer.location.as_deref().unwrap());
    assert_eq!(response["kind"], "LogoutResponse");
    assert_eq!(response["status"], "urn:oasis:names:tc:SAML:2.0:status:Success");
    assert_eq!(response["signature_valid"], true);
    assert_eq!(response["issuer"], slo.sso.sp_entity());
    let request_id = request.split("ID=\"").nth(1).unwrap().split('"').next().unwrap();
    assert_eq!(response["in_response_to"], request_id);
    assert!(answer.location.unwrap().contains("RelayState=rs-1"));
    assert!(!slo.signed_in.browser.has_session(), "the browser's cookie is cleared");
    slo.assert_logged_out_everywhere();
    let logouts = audit(&slo.server, "sso.saml.logout");
    assert_eq!(logouts[0]["detail"]["sessions_ended"].as_array().unwrap().len(), 1);

    // The same message again is a replay.
    let again = Browser::new().post(&slo.slo(), &[("SAMLRequest", encoded.as_str())]);
    assert!(again.body.contains("<code>replayed</code>"), "{}", again.body);
}

#[test]
fn an_idp_initiated_logout_over_redirect_is_checked_over_the_query_as_sent() {
    let slo = signed_in(json!({}));
    let url = slo.logout_request("redirect", "idp", &["--relay-state", "back to idp"]);
    let tampered = url.replace("RelayState=back", "RelayState=evil");
    let refused = Browser::new().get(&tampered);
    assert!(refused.body.contains("<code>signature_invalid</code>"), "{}", refused.body);
    assert!(slo.session_alive(), "a refused logout ends nothing");
    let answer = Browser::new().get(&url);
    assert_eq!(answer.status, 303, "{}", answer.body);
    let response = slo.read_at_idp(answer.location.as_deref().unwrap());
    assert_eq!(response["signature_valid"], true);
    slo.assert_logged_out_everywhere();
}

#[test]
fn a_logout_request_unsigned_or_signed_by_another_key_ends_nothing() {
    let slo = signed_in(json!({}));
    for (key, extra, check) in
        [("idp", vec!["--no-sign"], "unsigned"), ("attacker", vec![], "signature_invalid")]
    {
        let request = slo.logout_request("post", key, &extra);
        let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &request);
        let page = Browser::new().post(&slo.slo(), &[("SAMLRequest", encoded.as_str())]);
        assert!(page.body.contains(&format!("<code>{check}</code>")), "{key}: {}", page.body);
        let url = slo.logout_request("redirect", key, &extra);
        let page = Browser::new().get(&url);
        assert!(page.body.contains(&format!("<code>{check}</code>")), "{key} redirect: {}", page.body);
    }
    assert!(slo.session_alive());
    let refusals = audit(&slo.server, "sso.saml.logout_refused");
    assert_eq!(refusals.len(), 4, "{refusals:?}");
}

#[test]
fn an_app_logout_ends_the_session_at_the_idp_too_then_returns_to_the_app() {
    let mut slo = signed_in(json!({}));
    let logout = format!(
        "{}?id_token_hint={}&post_logout_redirect_uri={}&state=s-9",
        slo.server.url("/oauth2/logout"),
        slo.signed_in.id_token,
        GOODBYE
    );
    let to_idp = slo.signed_in.browser.get(&logout);
    assert_eq!(to_idp.status, 303, "{}", to_idp.body);
    let request = slo.read_at_idp(to_idp.location.as_deref().unwrap());
    assert_eq!(request["kind"], "LogoutRequest");
    assert_eq!(request["signature_valid"], true);
    assert_eq!(request["nameid"], "ada@acme.test");
    assert_eq!(request["session_index"], "_idp-session-1");
    slo.assert_logged_out_everywhere();

    let (key, cert, our_slo) = (slo.idp.path("idp.key"), slo.idp.path("idp.crt"), slo.slo());
    let answer = slo.idp.tool(&[
        "logout-response",
        "--idp",
        IDP_ENTITY,
        "--key",
        &key,
        "--cert",
        &cert,
        "--slo",
        &our_slo,
        "--in-response-to",
        request["id"].as_str().unwrap(),
        "--binding",
        "redirect",
    ]);
    let back = slo.signed_in.browser.get(&answer);
    assert_eq!(back.status, 303, "{}", back.body);
    assert_eq!(back.location.as_deref(), Some(format!("{GOODBYE}?state=s-9").as_str()));
    let again = Browser::new().get(&answer);
    assert!(again.body.contains("<code>unknown_request</code>"), "{}", again.body);
}

#[test]
fn an_idp_with_a_post_logout_service_gets_a_signed_logout_request_in_a_form() {
    let mut slo = signed_in(json!({ "idp": { "slo_binding": "http_post" } }));
    let logout = format!("{}?id_token_hint={}", slo.server.url("/oauth2/logout"), slo.signed_in.id_token);
    let page = slo.signed_in.browser.get(&logout);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&format!("action=\"{IDP_SLO}\"")), "{}", page.body);
    let value = page.body.split("name=\"SAMLRequest\" value=\"").nth(1).unwrap();
    let encoded = &value[..value.find('"').unwrap()];
    let sp = slo.idp.path("sp.xml");
    let request: Value =
        serde_json::from_str(&slo.idp.tool(&["parse-logout", "--sp-metadata", &sp, "--post-b64", encoded]))
            .unwrap();
    assert_eq!(request["kind"], "LogoutRequest");
    assert_eq!(request["signed"], true);
    assert_eq!(request["signature_valid"], true);
    assert_eq!(request["session_index"], "_idp-session-1");
    slo.assert_logged_out_everywhere();
}
