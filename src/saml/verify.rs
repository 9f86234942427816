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
    pub decryption_key: &'a PKey<Private>,
}

/// The verified content of a Response.
#[derive(Debug)]
pub struct Verified {
    /// The Response, when a signature covers it: then its Destination and InResponseTo count.
    pub signed_response: Option<Response>,
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
        return Ok(Verified { signed_response: Some(response), assertion, encrypted });
    }
    if shape.encrypted_assertion_depths.len() == 1 {
        let assertion = decrypt_then_verify(xml, trust, true)?;
        return Ok(Verified { signed_response: None, assertion, encrypted: true });
    }
    if !shape.assertions.iter().any(|a| a.signed) {
        return Err(Refusal::Unsigned);
    }
    let reduced = reduce(xml, trust)?;
    let assertion = parse_assertion(&reduced)?;
    Ok(Verified { signed_response: None, assertion, encrypted: false })
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
fn decrypt_then_verify(document: &str, trust: &Trust<'_>, must_be_signed: bool) -> Result<Assertion, Refusal> {
    let plaintext = decrypt::decrypt_assertion(document, trust.decryption_key).map_err(|err| match err {
        decrypt::DecryptError::UnsupportedAlgorithm(algorithm) => Refusal::EncryptionAlgorithm(algorithm),
        _ => Refusal::DecryptionFailed,
    })?;
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
