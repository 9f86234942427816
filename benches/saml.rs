//! SAML ACS throughput: validated logins per second against the release server, each one a
//! durable session, at concurrency 4. Responses are made before the clock starts, by an IdP in
//! this process (xmlsec through Portcullis' own signing helper, OpenSSL for the encryption), in
//! three shapes: a signed Response; a signed Response around an encrypted assertion (AES-256-GCM,
//! RSA-OAEP); and the heaviest, a signed Response around a signed-then-encrypted assertion.
//! IdP-initiated, so that each post is one ACS request and nothing else. The validation alone is
//! timed in this process too. `cargo bench --bench saml`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::STANDARD};
use openssl::{
    asn1::Asn1Time,
    hash::MessageDigest,
    pkey::PKey,
    rsa::{Padding, Rsa},
    symm::{Cipher, encrypt_aead},
    x509::{X509, X509NameBuilder},
};
use portcullis::{saml::xml, store::saml::SpKeyPair};
use rand::RngCore;
use serde_json::{Value, json};
use support::{ADMIN_KEY, Server, drive};
use time::OffsetDateTime;

const IDP: &str = "https://idp.bench.test/saml";
const LOGINS: usize = 3_000;
/// More than wrk can post in its 4 seconds: each Response is accepted once only.
const WRK_BODIES: usize = 8_000;

fn idp_key_pair() -> SpKeyPair {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "bench idp").unwrap();
    let name = name.build();
    let mut builder = X509::builder().unwrap();
    builder.set_version(2).unwrap();
    builder.set_subject_name(&name).unwrap();
    builder.set_issuer_name(&name).unwrap();
    builder.set_pubkey(&key).unwrap();
    builder.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    builder.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
    builder.sign(&key, MessageDigest::sha256()).unwrap();
    SpKeyPair {
        private_key_pem: String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
        certificate_pem: String::from_utf8(builder.build().to_pem().unwrap()).unwrap(),
    }
}

fn strip_declaration(document: &str) -> &str {
    match document.trim().strip_prefix("<?xml") {
        Some(rest) => rest[rest.find("?>").unwrap() + 2..].trim(),
        None => document.trim(),
    }
}

/// Signs the element `id`: its signature goes right after its Issuer.
fn sign(document: &str, id: &str, idp: &SpKeyPair) -> String {
    let start = document.find(&format!("ID=\"{id}\"")).unwrap();
    let issuer_end = start + document[start..].find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
    let template = xml::signature_template(id, &idp.certificate_pem);
    let unsigned = format!("{}{template}{}", &document[..issuer_end], &document[issuer_end..]);
    strip_declaration(&xml::sign_enveloped(&unsigned, idp).unwrap()).to_owned()
}

/// AES-256-GCM under a fresh key, the key under RSA-OAEP to the SP's encryption certificate.
fn encrypt(assertion: &str, sp_certificate_pem: &str) -> String {
    let (mut key, mut iv) = ([0u8; 32], [0u8; 12]);
    rand::rng().fill_bytes(&mut key);
    rand::rng().fill_bytes(&mut iv);
    let mut tag = [0u8; 16];
    let ciphertext =
        encrypt_aead(Cipher::aes_256_gcm(), &key, Some(&iv), &[], assertion.as_bytes(), &mut tag).unwrap();
    let rsa = X509::from_pem(sp_certificate_pem.as_bytes()).unwrap().public_key().unwrap().rsa().unwrap();
    let mut wrapped = vec![0u8; rsa.size() as usize];
    let length = rsa.public_encrypt(&key, &mut wrapped, Padding::PKCS1_OAEP).unwrap();
    let content = [iv.as_slice(), &ciphertext, &tag].concat();
    format!(
        "<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\" Type=\"http://www.w3.org/2001/04/xmlenc#Element\">\
         <xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2009/xmlenc11#aes256-gcm\"/>\
         <ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><xenc:EncryptedKey>\
         <xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p\"/>\
         <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>\
         <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></saml:EncryptedAssertion>",
        STANDARD.encode(&wrapped[..length]),
        STANDARD.encode(content),
    )
}

/// How the IdP protects a Response.
#[derive(Clone, Copy)]
struct Shape {
    sign_assertion: bool,
    encrypt: bool,
}

/// One unsolicited Response for ada, signed (and shaped by `shape`), base64 for the form.
fn response(n: usize, idp: &SpKeyPair, connection: &Value, shape: Shape) -> String {
    let (acs, audience) =
        (connection["sp"]["acs_url"].as_str().unwrap(), connection["sp"]["entity_id"].as_str().unwrap());
    let now = OffsetDateTime::now_utc();
    let (issued, until) = (xml::instant(now), xml::instant(now + time::Duration::minutes(20)));
    let assertion_id = format!("_bench-assertion-{n}-{}", xml::new_id());
    let assertion = format!(
        "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{assertion_id}\" Version=\"2.0\" IssueInstant=\"{issued}\">\
         <saml:Issuer>{IDP}</saml:Issuer><saml:Subject><saml:NameID Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress\">ada@acme.test</saml:NameID>\
         <saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\"><saml:SubjectConfirmationData NotOnOrAfter=\"{until}\" Recipient=\"{acs}\"/></saml:SubjectConfirmation></saml:Subject>\
         <saml:Conditions NotBefore=\"{issued}\" NotOnOrAfter=\"{until}\"><saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions>\
         <saml:AuthnStatement AuthnInstant=\"{issued}\" SessionIndex=\"_s{n}\"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>\
         <saml:AttributeStatement><saml:Attribute Name=\"groups\"><saml:AttributeValue>Engineering</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>\
         </saml:Assertion>"
    );
    let assertion = if shape.sign_assertion { sign(&assertion, &assertion_id, idp) } else { assertion };
    let inner = if shape.encrypt {
        encrypt(&assertion, connection["sp"]["encryption_certificate"].as_str().unwrap())
    } else {
        assertion
    };
    let response_id = format!("_bench-response-{n}");
    let document = format!(
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{response_id}\" Version=\"2.0\" IssueInstant=\"{issued}\" Destination=\"{acs}\">\
         <saml:Issuer>{IDP}</saml:Issuer><samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>{inner}</samlp:Response>"
    );
    STANDARD.encode(sign(&document, &response_id, idp))
}

/// The validation alone, in this process, on one core: what the ACS costs before HTTP and the store.
fn validation_only(idp: &SpKeyPair, connection: &Value, shape: Shape, label: &str) {
    use portcullis::saml::verify::{Trust, verify_response};
    let bodies: Vec<String> = (0..300)
        .map(|n| {
            String::from_utf8(STANDARD.decode(response(100_000 + n, idp, connection, shape)).unwrap())
                .unwrap()
        })
        .collect();
    let der = X509::from_pem(idp.certificate_pem.as_bytes()).unwrap().to_der().unwrap();
    let certificates = [samael::crypto::CertificateDer::from(der)];
    // The SP's private key is not in the connection's view: decryption is timed with the cost of
    // a key of the same size.
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let trust =
        Trust { certificates: &certificates, allow_sha1: false, decryption_keys: std::slice::from_ref(&key) };
    let started = std::time::Instant::now();
    let mut refused = 0;
    for body in &bodies {
        refused += usize::from(verify_response(body, &trust).is_err());
    }
    let per = started.elapsed().as_secs_f64() / bodies.len() as f64;
    println!(
        "validation only, {label}: {:.2} ms each = {:.0}/s on one core ({refused} refused: decryption uses another key)",
        per * 1000.0,
        1.0 / per
    );
}

/// The signed-Response shape driven by `wrk` (C: it leaves the server more of the two cores than
/// reqwest does), 2 threads with 2 connections each, every request a Response of its own.
fn wrk_signed_responses(acs: &str, idp: &SpKeyPair, connection: &Value) {
    if std::process::Command::new("wrk").arg("--version").output().is_err() {
        println!("ACS with wrk: skipped (wrk is not installed)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("bodies.txt");
    let shape = Shape { sign_assertion: false, encrypt: false };
    let bodies: Vec<String> = (0..WRK_BODIES)
        .map(|n| {
            let encoded = response(200_000 + n, idp, connection, shape);
            format!(
                "SAMLResponse={}",
                url::form_urlencoded::byte_serialize(encoded.as_bytes()).collect::<String>()
            )
        })
        .collect();
    std::fs::write(&list, bodies.join("\n")).unwrap();
    let path = url::Url::parse(acs).unwrap().path().to_owned();
    let script = dir.path().join("acs.lua");
    std::fs::write(
        &script,
        format!(
            r#"local threads = 0
function setup(thread) thread:set("id", threads); threads = threads + 1 end
function init(args)
  bodies = {{}}
  for line in io.lines("{list}") do bodies[#bodies + 1] = line end
  i = 0
end
request = function()
  local n = i * 2 + id + 1
  i = i + 1
  if n > #bodies then n = #bodies end
  return wrk.format("POST", "{path}", {{ ["Content-Type"] = "application/x-www-form-urlencoded" }}, bodies[n])
end
"#,
            list = list.display()
        ),
    )
    .unwrap();
    let base = acs.split("/sso/").next().unwrap().to_owned();
    let output = std::process::Command::new("wrk")
        .args(["-t2", "-c4", "-d4s", "--latency", "-s"])
        .arg(&script)
        .arg(&base)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let pick = |prefix: &str| {
        text.lines().find(|l| l.trim_start().starts_with(prefix)).unwrap_or("").trim().to_owned()
    };
    println!(
        "ACS logins, signed Response, wrk (2 threads, 4 connections, 4 s): {} | p50 {} | p99 {} | {}",
        pick("Requests/sec"),
        pick("50%"),
        pick("99%"),
        if text.contains("Non-2xx") {
            pick("Non-2xx")
        } else {
            "every answer a redirect into a session".into()
        }
    );
}

fn admin(client: &reqwest::blocking::Client, base: &str, path: &str, body: Value) -> Value {
    let response = client.post(format!("{base}{path}")).bearer_auth(ADMIN_KEY).json(&body).send().unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.text().unwrap());
    response.json().unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = Server::start();
    let idp = idp_key_pair();
    let connection = tokio::task::spawn_blocking({
        let (base, idp) = (server.base.clone(), idp.clone());
        move || {
            let client = reqwest::blocking::Client::new();
            let tenant = admin(&client, &base, "/api/v1/tenants", json!({ "slug": "acme", "display_name": "Acme", "domains": ["acme.test"] }));
            let tenant = tenant["id"].as_str().unwrap().to_owned();
            admin(&client, &base, &format!("/api/v1/tenants/{tenant}/users"), json!({ "email": "ada@acme.test" }));
            admin(
                &client,
                &base,
                &format!("/api/v1/tenants/{tenant}/saml-connections"),
                json!({
                    "name": "bench", "allow_idp_initiated": true,
                    "idp": { "entity_id": IDP, "sso_url": "https://idp.bench.test/sso", "signing_certificates": [idp.certificate_pem] },
                }),
            )
        }
    })
    .await
    .unwrap();
    let acs = connection["sp"]["acs_url"].as_str().unwrap().to_owned();
    validation_only(&idp, &connection, Shape { sign_assertion: false, encrypt: false }, "signed Response");
    validation_only(
        &idp,
        &connection,
        Shape { sign_assertion: true, encrypt: false },
        "signed Response + signed assertion",
    );
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let shapes = [
        ("signed Response", Shape { sign_assertion: false, encrypt: false }),
        (
            "signed Response + encrypted assertion (AES-256-GCM, RSA-OAEP)",
            Shape { sign_assertion: false, encrypt: true },
        ),
        ("signed Response + signed, then encrypted assertion", Shape { sign_assertion: true, encrypt: true }),
    ];
    for (label, shape) in shapes {
        let started = std::time::Instant::now();
        let bodies: Arc<Vec<String>> = Arc::new(
            tokio::task::spawn_blocking({
                let (idp, connection) = (idp.clone(), connection.clone());
                move || (0..LOGINS).map(|n| response(n, &idp, &connection, shape)).collect()
            })
            .await
            .unwrap(),
        );
        println!("made {LOGINS} responses in {:.1} s", started.elapsed().as_secs_f64());
        let (client, acs) = (client.clone(), acs.clone());
        drive(&format!("ACS logins, {label}, durable sessions"), 4, LOGINS, move |n| {
            let (client, acs, bodies) = (client.clone(), acs.clone(), Arc::clone(&bodies));
            async move {
                let response =
                    client.post(&acs).form(&[("SAMLResponse", bodies[n].as_str())]).send().await.unwrap();
                let status = response.status().as_u16();
                assert!(status == 303 || status == 200, "{status}: {}", response.text().await.unwrap());
            }
        })
        .await;
    }
    tokio::task::spawn_blocking({
        let (acs, idp, connection) = (acs.clone(), idp.clone(), connection.clone());
        move || wrk_signed_responses(&acs, &idp, &connection)
    })
    .await
    .unwrap();
    println!("server RSS after the run: {:.0} MB", server.rss_mb());
}
