//! Writing the messages Portcullis sends: XML escaping, enveloped XML signatures (xmlsec through
//! samael, over a template), and the HTTP-Redirect binding's DEFLATE encoding and query-string
//! signature (SAML Bindings §3.4.4.1, RSA-SHA256 by OpenSSL).

use std::io::Write;

use base64::{Engine, engine::general_purpose::STANDARD};
use flate2::{Compression, write::DeflateEncoder};
use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};
use rand::RngCore;
use samael::crypto::{CryptoProvider, XmlSec};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::store::saml::SpKeyPair;

pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

#[derive(Debug, thiserror::Error)]
#[error("cannot sign a SAML message: {0}")]
pub struct SigningError(String);

fn failed(err: impl std::fmt::Display) -> SigningError {
    SigningError(err.to_string())
}

/// Escapes text for XML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    crate::signin::pages::escape(text)
}

/// A message ID: `_` (IDs are NCNames, which cannot start with a digit) and 160 random bits.
/// samael's own IDs carry 32 bits, guessable enough to be answered in advance.
pub fn new_id() -> String {
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    format!("_{}", hex::encode(bytes))
}

/// SAML's dateTime: UTC, whole seconds, `Z`.
pub fn instant(at: OffsetDateTime) -> String {
    let at = at.replace_nanosecond(0).unwrap_or(at).to_offset(time::UtcOffset::UTC);
    at.format(&Rfc3339).unwrap_or_default()
}

/// The base64 body of a PEM certificate, as metadata and KeyInfo carry it.
pub fn certificate_base64(certificate_pem: &str) -> String {
    certificate_pem.lines().filter(|line| !line.starts_with("-----")).map(str::trim).collect()
}

/// The `ds:Signature` template xmlsec fills in: RSA-SHA256 over the element `id`, with the
/// exclusive canonicalisation and enveloped-signature transforms SAML requires. It goes right
/// after the message's `Issuer` (the schema's order).
pub fn signature_template(id: &str, certificate_pem: &str) -> String {
    format!(
        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>\
         <ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>\
         <ds:SignatureMethod Algorithm=\"{RSA_SHA256}\"/>\
         <ds:Reference URI=\"#{id}\"><ds:Transforms>\
         <ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>\
         <ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms>\
         <ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><ds:DigestValue/>\
         </ds:Reference></ds:SignedInfo><ds:SignatureValue/>\
         <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>\
         </ds:Signature>",
        id = escape(id),
        cert = certificate_base64(certificate_pem),
    )
}

/// Signs a document that carries a `signature_template`.
pub fn sign_enveloped(xml: &str, key: &SpKeyPair) -> Result<String, SigningError> {
    let private = PKey::private_key_from_pem(key.private_key_pem.as_bytes()).map_err(failed)?;
    let der = private.private_key_to_der().map_err(failed)?;
    XmlSec::sign_xml(xml, &der).map_err(failed)
}

/// DEFLATE then base64: the HTTP-Redirect binding's encoding of a message.
pub fn deflate_base64(xml: &str) -> Result<String, SigningError> {
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(xml.as_bytes()).map_err(failed)?;
    Ok(STANDARD.encode(encoder.finish().map_err(failed)?))
}

/// The query string that sends `xml` through the HTTP-Redirect binding as `parameter`
/// (`SAMLRequest` or `SAMLResponse`), signed with `key` when given.
pub fn redirect_query(
    parameter: &str,
    xml: &str,
    relay_state: Option<&str>,
    key: Option<&SpKeyPair>,
) -> Result<String, SigningError> {
    let encode = |value: &str| url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>();
    let mut query = format!("{parameter}={}", encode(&deflate_base64(xml)?));
    if let Some(relay_state) = relay_state {
        query.push_str(&format!("&RelayState={}", encode(relay_state)));
    }
    if let Some(key) = key {
        query.push_str(&format!("&SigAlg={}", encode(RSA_SHA256)));
        let private = PKey::private_key_from_pem(key.private_key_pem.as_bytes()).map_err(failed)?;
        let mut signer = Signer::new(MessageDigest::sha256(), &private).map_err(failed)?;
        signer.update(query.as_bytes()).map_err(failed)?;
        let signature = signer.sign_to_vec().map_err(failed)?;
        query.push_str(&format!("&Signature={}", encode(&STANDARD.encode(signature))));
    }
    Ok(query)
}

/// Appends `query` to `url`, which may have a query of its own.
pub fn with_query(url: &str, query: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{query}")
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::DeflateDecoder;
    use openssl::{sign::Verifier, x509::X509};

    use super::*;

    fn key_pair() -> SpKeyPair {
        crate::saml::sp_cert::generate("test", OffsetDateTime::now_utc()).unwrap()
    }

    #[test]
    fn ids_are_ncnames_with_160_random_bits() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(a.starts_with('_') && a.len() == 41);
    }

    #[test]
    fn a_signed_redirect_query_verifies_with_the_certificate_over_the_exact_octets() {
        let key = key_pair();
        let query = redirect_query("SAMLRequest", "<x/>", Some("abc def"), Some(&key)).unwrap();
        let (signed, signature) = query.split_once("&Signature=").unwrap();
        assert!(signed.contains("&RelayState=abc+def&SigAlg="));
        let signature: String = url::form_urlencoded::parse(format!("s={signature}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap();
        let cert = X509::from_pem(key.certificate_pem.as_bytes()).unwrap();
        let public = cert.public_key().unwrap();
        let mut verifier = Verifier::new(MessageDigest::sha256(), &public).unwrap();
        verifier.update(signed.as_bytes()).unwrap();
        assert!(verifier.verify(&STANDARD.decode(signature).unwrap()).unwrap());

        let encoded = signed.split('&').next().unwrap().trim_start_matches("SAMLRequest=");
        let encoded: String = url::form_urlencoded::parse(format!("v={encoded}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap();
        let mut xml = String::new();
        DeflateDecoder::new(STANDARD.decode(encoded).unwrap().as_slice()).read_to_string(&mut xml).unwrap();
        assert_eq!(xml, "<x/>");
    }

    #[test]
    fn an_enveloped_signature_verifies_with_xmlsec_and_the_certificate() {
        let key = key_pair();
        let id = new_id();
        let xml = format!(
            "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\">\
             <saml:Issuer xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\">sp</saml:Issuer>{}</samlp:LogoutRequest>",
            signature_template(&id, &key.certificate_pem)
        );
        let signed = sign_enveloped(&xml, &key).unwrap();
        let cert = X509::from_pem(key.certificate_pem.as_bytes()).unwrap();
        let der = samael::crypto::CertificateDer::from(cert.to_der().unwrap());
        let reduced = XmlSec::reduce_xml_to_signed(&signed, &[der], samael::crypto::ReduceMode::default());
        assert!(reduced.unwrap().contains("LogoutRequest"));
        let tampered = signed.replace(">sp<", ">evil<");
        let der = samael::crypto::CertificateDer::from(cert.to_der().unwrap());
        assert!(
            XmlSec::reduce_xml_to_signed(&tampered, &[der], samael::crypto::ReduceMode::default()).is_err()
        );
    }
}
