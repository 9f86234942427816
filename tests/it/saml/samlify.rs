//! A second, independent identity provider: samlify (Node.js, xml-crypto; no xmlsec, no
//! pysaml2), driven through `scripts/samlify-idp`. Metadata both ways: its IdP metadata fills the
//! connection, and it reads Portcullis' SP metadata to verify the AuthnRequest's signature and to
//! find the ACS, the audience and the encryption certificate.

use std::path::PathBuf;

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::json;

use super::{IDP_ENTITY, IDP_SSO, Idp, Sso, post_response};
use crate::{
    provider::{Browser, callback_params},
    server::Server,
};

fn samlify(args: &[&str]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/samlify-idp");
    let output = std::process::Command::new(script).args(args).output().unwrap();
    assert!(output.status.success(), "samlify-idp {args:?}:\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn signs_in_through_samlify(encrypt: bool) {
    let (server, idp) = (Server::start(), Idp::new());
    let (key, cert) = (idp.path("idp.key"), idp.path("idp.crt"));
    let base = ["--idp", IDP_ENTITY, "--key", &key, "--cert", &cert, "--sso", IDP_SSO];
    let metadata = samlify(&[&["metadata"][..], &base].concat());
    let sso = Sso::set_up(&server, &idp, json!({ "idp_metadata": metadata }));
    assert_eq!(sso.connection["idp"]["wants_signed_requests"], true);
    let mut browser = Browser::new();
    let pending = sso.app.authorize(&["openid", "email"]);
    let at_idp = sso.begin(&server, &mut browser, &pending.url, "ada@acme.test");
    let location = at_idp.location.unwrap();
    let sp = idp.path("sp.xml");
    let mut login = [
        &["login"][..],
        &base,
        &["--sp-metadata", &sp, "--request-url", &location, "--nameid", "ada@acme.test"],
    ]
    .concat();
    if encrypt {
        login.push("--encrypt");
    }
    let encoded = samlify(&login);
    let xml = String::from_utf8(STANDARD.decode(encoded.trim()).unwrap()).unwrap();
    assert_eq!(xml.contains("EncryptedAssertion"), encrypt);
    let relay_state = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "RelayState")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let back = post_response(&mut browser, &sso.acs(), &xml, &relay_state);
    assert_eq!(back.status, 303, "{}", back.body);
    let params = callback_params(back.location.as_deref().unwrap());
    let tokens = sso.app.exchange(&params["code"], pending.verifier);
    let claims = super::claims_of(&tokens.extra_fields().id_token().unwrap().to_string());
    assert_eq!(claims["sub"], sso.user);
}

#[test]
fn samlify_reads_our_metadata_verifies_our_request_and_its_signed_response_signs_in() {
    signs_in_through_samlify(false);
}

#[test]
fn samlify_encrypts_to_our_certificate_and_its_response_signs_in() {
    signs_in_through_samlify(true);
}
