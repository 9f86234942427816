//! From the bytes a browser posted to the one assertion the IdP vouched for.
//!
//! 1. The XML guard refuses DTDs, entities, comments, external references, unexpected signature
//!    shapes and duplicate IDs before libxml2 or xmlsec sees the document (samael lets xmlsec
//!    dereference any Reference URI: an SSRF before verification).
//! 2. Exactly one assertion, encrypted or not, anywhere in the document: wrapping attacks need
//!    two.
//! 3. xmlsec verifies every signature against the connection's certificates only (never a key
//!    in the message), with an algorithm allow-list, and samael reduces the document to what the
//!    signatures cover: only that is parsed.
//! 4. An EncryptedAssertion is decrypted with the connection's key (`decrypt`, which handles the
//!    AES-256 and xmlenc11 RSA-OAEP that samael does not). Without a signed Response around it,
//!    the decrypted assertion must carry its own valid signature.
//!
//! Everything here is CPU-bound, synchronous and not `Send` inside (samael's errors): callers run
//! it on a blocking thread and get plain `Refusal`s back.

use openssl::pkey::{PKey, Private};
use samael::{
    crypto::{AllowedSignatureAlgorithm, CertificateDer, CryptoProvider, ReduceMode, XmlSec},
    schema::{Assertion, Response},
};

use super::{
    decrypt,
    guard::{self, Inspected, Rejected},
    refusal::Refusal,
};

const PROTOCOL_NS: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const ASSERTION_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

/// SHA-256 and stronger. SHA-1 (collisions are practical) only where a connection opts in.
const STRONG_ALGORITHMS: [AllowedSignatureAlgorithm; 6] = [
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];
const SHA1_SIGNATURE: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
const SHA1_DIGEST: &str = "http://www.w3.org/2000/09/xmldsig#sha1";

/// What a connection trusts.
pub struct Trust<'a> {
    pub certificates: &'a [CertificateDer],
    pub allow_sha1: bool,
    /// Tried in turn: during an SP key rotation an IdP may encrypt to either certificate.
    pub decryption_keys: &'a [PKey<Private>],
}

/// The verified content of a Response.
#[derive(Debug)]
pub struct Verified {
    /// The Response, when a signature covers it: then its Destination and InResponseTo count.
    pub signed_response: Option<Response>,
    /// The unsigned Response's Destination: proves nothing, but a wrong one is still refused.
    pub unsigned_destination: Option<String>,
    pub assertion: Assertion,
    pub encrypted: bool,
}

pub fn verify_response(xml: &str, trust: &Trust<'_>) -> Result<Verified, Refusal> {
    if trust.certificates.is_empty() {
        // samael skips verification when it has no key: never let it get that far.
        return Err(Refusal::NoIdpCertificate);
    }
    let shape = inspect(xml)?;
    if shape.root.namespace.as_deref() != Some(PROTOCOL_NS) || shape.root.local != "Response" {
        return Err(Refusal::Malformed(format!("a `{}` is not a SAML Response", shape.root.local)));
    }
    check_status(&shape)?;
    let count = shape.assertions.len() + shape.encrypted_assertion_depths.len();
    if count != 1 {
        return Err(Refusal::AssertionCount(count));
    }
    check_algorithms(&shape, trust)?;
    if shape.root_signed {
        let reduced = reduce(xml, trust)?;
        let response: Response = reduced.parse().map_err(|e| Refusal::Malformed(format!("{e}")))?;
        let (assertion, encrypted) = match (&response.assertion, &response.encrypted_assertion) {
            (Some(assertion), None) => (assertion.clone(), false),
            (None, Some(_)) => (decrypt_then_verify(&reduced, trust, false)?, true),
            _ => return Err(Refusal::AssertionCount(0)),
        };
        return Ok(Verified {
            signed_response: Some(response),
            unsigned_destination: None,
            assertion,
            encrypted,
        });
    }
    let unsigned_destination = shape.response.as_ref().and_then(|r| r.destination.clone());
    if shape.encrypted_assertion_depths.len() == 1 {
        let assertion = decrypt_then_verify(xml, trust, true)?;
        return Ok(Verified { signed_response: None, unsigned_destination, assertion, encrypted: true });
    }
    if !shape.assertions.iter().any(|a| a.signed) {
        return Err(Refusal::Unsigned);
    }
    let reduced = reduce(xml, trust)?;
    let assertion = parse_assertion(&reduced)?;
    Ok(Verified { signed_response: None, unsigned_destination, assertion, encrypted: false })
}

fn inspect(xml: &str) -> Result<Inspected, Refusal> {
    guard::inspect(xml, &guard::Limits::default()).map_err(refusal_of)
}

fn refusal_of(rejected: Rejected) -> Refusal {
    match rejected {
        Rejected::Dtd => Refusal::Dtd,
        Rejected::Entity => Refusal::Entity,
        Rejected::CommentOrPi => Refusal::CommentOrPi,
        Rejected::TooLarge { what } => Refusal::TooComplex(what.to_string()),
        Rejected::Malformed(message) => Refusal::Malformed(message),
        Rejected::ReferenceUri => Refusal::ReferenceUri,
        Rejected::Transform => Refusal::Transform,
        Rejected::DuplicateId => Refusal::DuplicateId,
        other @ (Rejected::KeyReference
        | Rejected::SignatureObject
        | Rejected::SignaturePlacement
        | Rejected::CipherReference) => Refusal::SignatureShape(other.to_string()),
    }
}

/// A non-Success status is refused before any signature work: IdPs send errors unsigned, and a
/// refusal needs no proof. The reason shown comes from the IdP, so it is shown as its words.
fn check_status(shape: &Inspected) -> Result<(), Refusal> {
    let Some(response) = &shape.response else { return Ok(()) };
    match response.status_code.as_deref() {
        Some(SUCCESS) => Ok(()),
        code => Err(Refusal::Status {
            code: [code, response.second_status_code.as_deref()]
                .into_iter()
                .flatten()
                .map(|c| c.rsplit(':').next().unwrap_or(c))
                .collect::<Vec<_>>()
                .join("/"),
            message: response.status_message.clone(),
        }),
    }
}

/// xmlsec's allow-list refuses a weak algorithm as an invalid signature; checking first names
/// the actual reason.
fn check_algorithms(shape: &Inspected, trust: &Trust<'_>) -> Result<(), Refusal> {
    let allowed = |uri: &str, sha1: &str, strong: &dyn Fn(&AllowedSignatureAlgorithm) -> &'static str| {
        STRONG_ALGORITHMS.iter().any(|a| strong(a) == uri) || (trust.allow_sha1 && uri == sha1)
    };
    for method in &shape.signature_algorithms {
        if !allowed(method, SHA1_SIGNATURE, &|a| a.signature_uri()) {
            return Err(Refusal::SignatureAlgorithm(method.clone()));
        }
    }
    for method in &shape.digest_algorithms {
        if !allowed(method, SHA1_DIGEST, &|a| a.digest_uri()) {
            return Err(Refusal::SignatureAlgorithm(method.clone()));
        }
    }
    Ok(())
}

/// Verifies every signature in `xml` and keeps only what they cover.
fn reduce(xml: &str, trust: &Trust<'_>) -> Result<String, Refusal> {
    // samael's allow-list has no SHA-1 entry: a connection that accepts SHA-1 relies on
    // `check_algorithms` alone, which has already run on this document.
    let allowed = (!trust.allow_sha1).then_some(&STRONG_ALGORITHMS[..]);
    XmlSec::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        trust.certificates,
        ReduceMode::ValidateAndMarkNoAncestors,
        allowed,
    )
    .map_err(|_| Refusal::SignatureInvalid)
}

/// Decrypts the one EncryptedAssertion of `document` and verifies the assertion inside: its
/// signature must verify when present, and must be present when nothing outside vouched for it.
fn decrypt_then_verify(
    document: &str,
    trust: &Trust<'_>,
    must_be_signed: bool,
) -> Result<Assertion, Refusal> {
    let mut outcome = Err(Refusal::DecryptionFailed);
    for key in trust.decryption_keys {
        outcome = decrypt::decrypt_assertion(document, key).map_err(|err| match err {
            decrypt::DecryptError::UnsupportedAlgorithm(algorithm) => Refusal::EncryptionAlgorithm(algorithm),
            _ => Refusal::DecryptionFailed,
        });
        if !matches!(outcome, Err(Refusal::DecryptionFailed)) {
            break;
        }
    }
    let plaintext = outcome?;
    let shape = inspect(&plaintext)?;
    if shape.root.namespace.as_deref() != Some(ASSERTION_NS) || shape.root.local != "Assertion" {
        return Err(Refusal::DecryptionFailed);
    }
    check_algorithms(&shape, trust)?;
    if shape.root_signed {
        return parse_assertion(&reduce(&plaintext, trust)?);
    }
    if must_be_signed {
        return Err(Refusal::Unsigned);
    }
    parse_assertion(&plaintext)
}

fn parse_assertion(xml: &str) -> Result<Assertion, Refusal> {
    xml.parse::<Assertion>().map_err(|e| Refusal::Malformed(format!("{e}")))
}

#[cfg(test)]
mod tests {
    use openssl::x509::X509;
    use time::OffsetDateTime;

    use super::*;
    use crate::{
        saml::{sp_cert, xml},
        store::saml::SpKeyPair,
    };

    const SUCCESS_STATUS: &str = r#"<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>"#;

    struct Idp {
        key: SpKeyPair,
        certificate: CertificateDer,
        decryption_key: PKey<Private>,
    }

    impl Idp {
        fn new() -> Idp {
            let key = sp_cert::generate("idp", OffsetDateTime::now_utc()).unwrap();
            let der = X509::from_pem(key.certificate_pem.as_bytes()).unwrap().to_der().unwrap();
            let decryption_key = PKey::private_key_from_pem(key.private_key_pem.as_bytes()).unwrap();
            Idp { key, certificate: CertificateDer::from(der), decryption_key }
        }

        fn verify(&self, document: &str) -> Result<Verified, Refusal> {
            let certificates = [self.certificate.clone()];
            verify_response(
                document,
                &Trust {
                    certificates: &certificates,
                    allow_sha1: false,
                    decryption_keys: std::slice::from_ref(&self.decryption_key),
                },
            )
        }

        /// Signs the element whose ID is `id` in `document`: the template goes after its Issuer.
        /// Signs the element whose ID is `id`: the signature goes after its Issuer, whatever the
        /// Issuer's prefix.
        fn sign(&self, document: &str, id: &str) -> String {
            let start = document.find(&format!("ID=\"{id}\"")).unwrap();
            let closing = |at: &usize| {
                document[..*at].rfind('<').is_some_and(|open| document[open..].starts_with("</"))
            };
            let close =
                document[start..].match_indices("Issuer>").map(|(at, _)| start + at).find(closing).unwrap();
            let issuer_end = close + "Issuer>".len();
            let template = xml::signature_template(id, &self.key.certificate_pem);
            let unsigned = format!("{}{template}{}", &document[..issuer_end], &document[issuer_end..]);
            xml::sign_enveloped(&unsigned, &self.key).unwrap()
        }
    }

    fn assertion(id: &str, name: &str) -> String {
        format!(
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>https://idp.test</saml:Issuer><saml:Subject><saml:NameID>{name}</saml:NameID></saml:Subject></saml:Assertion>"#
        )
    }

    fn response(inner: &str) -> String {
        format!(
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_resp" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" Destination="https://sp.test/acs"><saml:Issuer>https://idp.test</saml:Issuer>{SUCCESS_STATUS}{inner}</samlp:Response>"#
        )
    }

    /// A document's root element, without its XML declaration, to embed in another.
    fn element(document: &str) -> &str {
        let document = document.trim();
        match document.strip_prefix("<?xml") {
            Some(rest) => rest[rest.find("?>").unwrap() + 2..].trim(),
            None => document,
        }
    }

    fn name_of(verified: &Verified) -> String {
        verified.assertion.subject.as_ref().unwrap().name_id.as_ref().unwrap().value.clone()
    }

    #[test]
    fn a_signed_response_is_read_from_what_the_signature_covers() {
        let idp = Idp::new();
        let signed = idp.sign(&response(&assertion("_a", "ada@corp.test")), "_resp");
        let verified = idp.verify(&signed).unwrap();
        assert!(verified.signed_response.is_some());
        assert_eq!(name_of(&verified), "ada@corp.test");
    }

    #[test]
    fn a_signed_assertion_in_an_unsigned_response_is_enough() {
        let idp = Idp::new();
        let signed_assertion = idp.sign(&assertion("_a", "ada@corp.test"), "_a");
        let verified = idp.verify(&response(element(&signed_assertion))).unwrap();
        assert!(verified.signed_response.is_none());
        assert_eq!(name_of(&verified), "ada@corp.test");
    }

    #[test]
    fn unsigned_forged_or_foreign_signatures_are_refused() {
        let (idp, attacker) = (Idp::new(), Idp::new());
        let unsigned = response(&assertion("_a", "ada@corp.test"));
        assert_eq!(idp.verify(&unsigned).unwrap_err(), Refusal::Unsigned);
        let by_attacker = attacker.sign(&unsigned, "_resp");
        assert_eq!(idp.verify(&by_attacker).unwrap_err(), Refusal::SignatureInvalid);
        let tampered = idp.sign(&unsigned, "_resp").replace("ada@corp.test", "eve@corp.test");
        assert_eq!(idp.verify(&tampered).unwrap_err(), Refusal::SignatureInvalid);
    }

    #[test]
    fn without_a_trusted_certificate_nothing_is_verified_or_accepted() {
        let idp = Idp::new();
        let signed = idp.sign(&response(&assertion("_a", "ada@corp.test")), "_resp");
        let trust = Trust {
            certificates: &[],
            allow_sha1: false,
            decryption_keys: std::slice::from_ref(&idp.decryption_key),
        };
        assert_eq!(verify_response(&signed, &trust).unwrap_err(), Refusal::NoIdpCertificate);
    }

    #[test]
    fn a_second_assertion_beside_a_signed_one_is_refused() {
        let idp = Idp::new();
        let signed = idp.sign(&assertion("_a", "ada@corp.test"), "_a");
        let wrapped = response(&format!("{}{}", assertion("_evil", "eve@corp.test"), element(&signed)));
        assert_eq!(idp.verify(&wrapped).unwrap_err(), Refusal::AssertionCount(2));
    }

    #[test]
    fn an_error_status_is_reported_in_the_idps_words() {
        let idp = Idp::new();
        let refused = response("").replace(
            SUCCESS_STATUS,
            r#"<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"/></samlp:StatusCode><samlp:StatusMessage>User is not assigned to this application</samlp:StatusMessage></samlp:Status>"#,
        );
        assert_eq!(
            idp.verify(&refused).unwrap_err(),
            Refusal::Status {
                code: "Responder/AuthnFailed".into(),
                message: Some("User is not assigned to this application".into())
            }
        );
    }

    #[test]
    fn an_encrypted_assertion_without_any_signature_is_refused_after_decryption() {
        let key_pem = include_str!("../../tests/fixtures/xmlenc/key.pem");
        let encrypted = element(include_str!("../../tests/fixtures/xmlenc/aes256-gcm_rsa-oaep.xml"));
        let key = PKey::private_key_from_pem(key_pem.as_bytes()).unwrap();
        let idp = Idp::new();
        let certificates = [idp.certificate.clone()];
        let trust = Trust {
            certificates: &certificates,
            allow_sha1: false,
            decryption_keys: std::slice::from_ref(&key),
        };
        assert_eq!(verify_response(&response(encrypted), &trust).unwrap_err(), Refusal::Unsigned);
        let wrong_key = Trust { decryption_keys: std::slice::from_ref(&idp.decryption_key), ..trust };
        assert_eq!(verify_response(&response(encrypted), &wrong_key).unwrap_err(), Refusal::DecryptionFailed);
    }

    #[test]
    fn hostile_xml_never_reaches_xmlsec() {
        let idp = Idp::new();
        let cases =
            [("<!DOCTYPE r [<!ENTITY x \"y\">]>", Refusal::Dtd), ("<!-- c -->", Refusal::CommentOrPi)];
        for (prefix, refusal) in cases {
            let document =
                format!("{prefix}{}", element(&idp.sign(&response(&assertion("_a", "a")), "_resp")));
            assert_eq!(idp.verify(&document).unwrap_err(), refusal);
        }
    }

    /// One IdP and one signed Response for the fuzz cases: key generation is the slow part.
    fn fuzz_subject() -> &'static (Idp, String) {
        static SUBJECT: std::sync::OnceLock<(Idp, String)> = std::sync::OnceLock::new();
        SUBJECT.get_or_init(|| {
            let idp = Idp::new();
            let signed_assertion = idp.sign(&assertion("_a", "ada@corp.test"), "_a");
            let signed = idp.sign(&response(element(&signed_assertion)), "_resp");
            (idp, signed)
        })
    }

    fn encrypted_response() -> (PKey<Private>, String) {
        let key = include_str!("../../tests/fixtures/xmlenc/key.pem");
        let encrypted = element(include_str!("../../tests/fixtures/xmlenc/aes256-cbc_rsa-oaep-mgf1p.xml"));
        (PKey::private_key_from_pem(key.as_bytes()).unwrap(), response(encrypted))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// The ACS input path never panics on a damaged message: truncated, a byte changed, or
        /// markup inserted anywhere; and whatever it accepts is the IdP's own assertion.
        #[test]
        fn damaged_signed_responses_are_refused_or_read_as_signed(
            cut in 0usize..6000,
            at in 0usize..6000,
            byte in proptest::prelude::any::<u8>(),
            inserted in "[<>&;!\\-\\[\\]a-zA-Z0-9\"'= /?#:]{0,40}",
        ) {
            let (idp, signed) = fuzz_subject();
            let mut bytes = signed.clone().into_bytes();
            let at = at % bytes.len();
            bytes[at] = byte;
            let changed = String::from_utf8_lossy(&bytes).into_owned();
            let mut spliced = signed.clone();
            let position = (at..spliced.len()).find(|i| spliced.is_char_boundary(*i)).unwrap_or(spliced.len());
            spliced.insert_str(position, &inserted);
            let truncated: String = signed.chars().take(cut).collect();
            for document in [changed, spliced, truncated] {
                if let Ok(verified) = idp.verify(&document) {
                    proptest::prop_assert_eq!(name_of(&verified), "ada@corp.test");
                }
            }
        }

        /// The decryption path never panics on damaged ciphertext or key material.
        #[test]
        fn damaged_encrypted_assertions_never_panic(at in 0usize..4000, byte in proptest::prelude::any::<u8>()) {
            let (key, document) = encrypted_response();
            let mut bytes = document.into_bytes();
            let at = at % bytes.len();
            bytes[at] = byte;
            let idp = &fuzz_subject().0;
            let certificates = [idp.certificate.clone()];
            let trust = Trust { certificates: &certificates, allow_sha1: false, decryption_keys: std::slice::from_ref(&key) };
            proptest::prop_assert!(verify_response(&String::from_utf8_lossy(&bytes), &trust).is_err());
        }
    }

    #[test]
    fn huge_and_deep_documents_are_refused_by_the_guard_before_any_parsing() {
        let idp = &fuzz_subject().0;
        let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
        assert!(matches!(idp.verify(&deep), Err(Refusal::TooComplex(_))));
        let huge = response(&format!("<saml:Assertion>{}</saml:Assertion>", "x".repeat(2 * 1024 * 1024)));
        assert!(matches!(idp.verify(&huge), Err(Refusal::TooComplex(_))));
        let wide = response(&"<x/>".repeat(50_000));
        assert!(matches!(idp.verify(&wide), Err(Refusal::TooComplex(_))));
    }

    #[test]
    fn okta_and_entra_id_response_shapes_are_read() {
        let idp = Idp::new();
        // Okta: `saml2p:`/`saml2:` prefixes, the Response signed, the assertion signed.
        let okta_assertion = idp.sign(
            &assertion("_okta", "ada@corp.test")
                .replace("saml:", "saml2:")
                .replace("xmlns:saml=", "xmlns:saml2="),
            "_okta",
        );
        let okta = format!(
            r#"<saml2p:Response xmlns:saml2p="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" Destination="https://sp.test/acs"><saml2:Issuer xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion">https://idp.test</saml2:Issuer><saml2p:Status><saml2p:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></saml2p:Status>{}</saml2p:Response>"#,
            element(&okta_assertion)
        );
        let verified = idp.verify(&idp.sign(&okta, "_r")).unwrap();
        assert_eq!(name_of(&verified), "ada@corp.test");
        // Entra ID: an unsigned `samlp:` Response around a signed assertion in the default namespace.
        let entra_assertion = idp.sign(
            &assertion("_entra", "ada@corp.test").replace("saml:", "").replace("xmlns:saml=", "xmlns="),
            "_entra",
        );
        let entra = response(element(&entra_assertion));
        let verified = idp.verify(&entra).unwrap();
        assert!(verified.signed_response.is_none());
        assert_eq!(name_of(&verified), "ada@corp.test");
    }
}
