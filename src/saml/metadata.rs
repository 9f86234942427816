//! SAML metadata both ways: reading an IdP's EntityDescriptor into a connection's settings, and
//! writing the service provider's own for the IdP admin to upload.
//!
//! IdP metadata is hostile input like any message (it may come from a URL): it passes the XML
//! guard first. A signed document is believed only if its signature verifies against a
//! certificate already trusted for that connection (a pinned metadata certificate, or the IdP's
//! current signing certificates when refreshing); `validUntil` in the past refuses it.
//!
//! samael's own `metadata()` is not used: it hard-codes `AuthnRequestsSigned="false"` and the
//! POST binding only, and advertises ciphers it cannot decrypt.

use base64::{Engine, engine::general_purpose::STANDARD};
use openssl::x509::X509;
use samael::{
    crypto::{CertificateDer, CryptoProvider, ReduceMode, XmlSec},
    metadata::{EntityDescriptor, IdpSsoDescriptor},
};
use time::OffsetDateTime;

use super::{
    SpUrls, guard,
    xml::{certificate_base64, escape},
};
use crate::store::saml::{Binding, IdpSettings, SamlConnectionRecord};

const MD_NS: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
/// Metadata of one IdP is small; aggregates of whole federations are not accepted anyway.
const METADATA_LIMITS: guard::Limits = guard::Limits {
    max_bytes: 1024 * 1024,
    max_depth: 32,
    max_elements: 20_000,
    max_attributes_per_element: 64,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("the metadata is not acceptable XML: {0}")]
    Unsafe(String),
    #[error("the metadata cannot be read: {0}")]
    Unreadable(String),
    #[error("the metadata describes no identity provider (no IDPSSODescriptor)")]
    NotAnIdp,
    #[error("the metadata has no entityID")]
    NoEntityId,
    #[error("the identity provider has no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding")]
    NoSsoService,
    #[error("the identity provider publishes no signing certificate")]
    NoSigningCertificate,
    #[error("certificate {index} cannot be read: {message}")]
    BadCertificate { index: usize, message: String },
    #[error("the metadata expired at {0} (validUntil)")]
    Expired(String),
    #[error("the metadata's signature does not verify against the trusted certificate")]
    BadSignature,
}

/// What IdP metadata says, ready to become a connection's `IdpSettings`.
#[derive(Debug, Clone, PartialEq)]
pub struct IdpMetadata {
    pub settings: IdpSettings,
    pub name_id_formats: Vec<String>,
    pub valid_until: Option<OffsetDateTime>,
    /// The document was signed and its signature verified against a trusted certificate.
    pub signature_verified: bool,
}

/// Reads IdP metadata. `trusted` are the certificates a signature must verify against; with
/// none, a signature is not checked (and `signature_verified` says so).
pub fn parse_idp(
    xml: &str,
    trusted: &[CertificateDer],
    now: OffsetDateTime,
) -> Result<IdpMetadata, MetadataError> {
    let shape = guard::inspect(xml, &METADATA_LIMITS).map_err(|r| MetadataError::Unsafe(r.to_string()))?;
    if shape.root.namespace.as_deref() != Some(MD_NS) || shape.root.local != "EntityDescriptor" {
        return Err(MetadataError::Unreadable(format!(
            "the document is a `{}`, not an EntityDescriptor (upload the identity provider's own metadata)",
            shape.root.local
        )));
    }
    let signature_verified = shape.root_signed && !trusted.is_empty();
    let document = if signature_verified {
        XmlSec::reduce_xml_to_signed(xml, trusted, ReduceMode::ValidateAndMarkNoAncestors)
            .map_err(|_| MetadataError::BadSignature)?
    } else {
        xml.to_owned()
    };
    let entity: EntityDescriptor = document.parse().map_err(|e| MetadataError::Unreadable(format!("{e}")))?;
    read_entity(entity, signature_verified, now)
}

fn read_entity(
    entity: EntityDescriptor,
    signature_verified: bool,
    now: OffsetDateTime,
) -> Result<IdpMetadata, MetadataError> {
    let entity_id =
        entity.entity_id.clone().filter(|id| !id.trim().is_empty()).ok_or(MetadataError::NoEntityId)?;
    let idp = entity
        .idp_sso_descriptors
        .as_ref()
        .and_then(|descriptors| descriptors.first())
        .ok_or(MetadataError::NotAnIdp)?;
    let valid_until = [entity.valid_until, idp.valid_until]
        .into_iter()
        .flatten()
        .map(|at| OffsetDateTime::from_unix_timestamp(at.timestamp()).unwrap_or(OffsetDateTime::UNIX_EPOCH))
        .min();
    if let Some(until) = valid_until.filter(|until| *until <= now) {
        return Err(MetadataError::Expired(super::xml::instant(until)));
    }
    let (sso_binding, sso_url) =
        preferred_endpoint(&idp.single_sign_on_services).ok_or(MetadataError::NoSsoService)?;
    let slo = preferred_endpoint(&idp.single_logout_services);
    let signing_certificates = signing_certificates(idp)?;
    Ok(IdpMetadata {
        settings: IdpSettings {
            entity_id,
            sso_url,
            sso_binding,
            slo_url: slo.as_ref().map(|(_, url)| url.clone()),
            slo_binding: slo.map(|(binding, _)| binding).unwrap_or_default(),
            signing_certificates,
            wants_signed_requests: idp.want_authn_requests_signed.unwrap_or(false),
        },
        name_id_formats: idp.name_id_formats.iter().map(|f| f.trim().to_owned()).collect(),
        valid_until,
        signature_verified,
    })
}

/// HTTP-Redirect where offered (no page in between), else HTTP-POST.
fn preferred_endpoint(endpoints: &[samael::metadata::Endpoint]) -> Option<(Binding, String)> {
    [Binding::HttpRedirect, Binding::HttpPost].into_iter().find_map(|binding| {
        endpoints.iter().find(|e| e.binding == binding.urn()).map(|e| (binding, e.location.trim().to_owned()))
    })
}

/// Keys marked for signing, or with no use (which means both); each must be a readable X.509
/// certificate. Duplicates are dropped.
fn signing_certificates(idp: &IdpSsoDescriptor) -> Result<Vec<String>, MetadataError> {
    let mut found: Vec<String> = Vec::new();
    let usable = idp
        .key_descriptors
        .iter()
        .filter(|k| k.key_use.as_deref().is_none_or(|u| u.is_empty() || u == "signing"));
    for descriptor in usable {
        let certificates = descriptor.key_info.x509_data.iter().flat_map(|data| data.certificates.iter());
        for certificate in certificates {
            let normalised: String = certificate.chars().filter(|c| !c.is_whitespace()).collect();
            check_certificate(&normalised)
                .map_err(|message| MetadataError::BadCertificate { index: found.len() + 1, message })?;
            if !found.contains(&normalised) {
                found.push(normalised);
            }
        }
    }
    if found.is_empty() {
        return Err(MetadataError::NoSigningCertificate);
    }
    Ok(found)
}

/// A certificate in base64 DER (PEM armour allowed) that OpenSSL reads, with an RSA or EC key;
/// returns it as base64 DER.
pub fn normalise_certificate(value: &str) -> Result<String, String> {
    let body = certificate_base64(value);
    let body: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    check_certificate(&body)?;
    Ok(body)
}

fn check_certificate(base64_der: &str) -> Result<(), String> {
    let der = STANDARD.decode(base64_der).map_err(|_| "it is not base64".to_owned())?;
    let certificate = X509::from_der(&der).map_err(|_| "it is not an X.509 certificate".to_owned())?;
    let key = certificate.public_key().map_err(|_| "its public key cannot be read".to_owned())?;
    if key.rsa().is_err() && key.ec_key().is_err() {
        return Err("its key is neither RSA nor EC".into());
    }
    if key.rsa().is_ok_and(|rsa| rsa.size() < 256) {
        return Err("its RSA key is shorter than 2048 bits".into());
    }
    Ok(())
}

/// The certificates of a connection in the form xmlsec wants.
pub fn certificates_der(base64_ders: &[String]) -> Vec<CertificateDer> {
    base64_ders.iter().filter_map(|c| STANDARD.decode(c).ok()).map(CertificateDer::from).collect()
}

/// A certificate's expiry, for the admin views.
pub fn certificate_not_after(base64_der: &str) -> Option<String> {
    let der = STANDARD.decode(base64_der).ok()?;
    Some(X509::from_der(&der).ok()?.not_after().to_string())
}

/// The service provider's metadata for `connection`: what the IdP admin uploads. Stable for as
/// long as the connection's keys are: nothing in it depends on the time it is served. During a
/// rotation the next keys are published after the current ones.
pub fn sp_metadata(connection: &SamlConnectionRecord, urls: &SpUrls) -> String {
    let key = |usage: &str, pem: &str| {
        format!(
            "<md:KeyDescriptor use=\"{usage}\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>{}</md:KeyDescriptor>",
            certificate_base64(pem),
            if usage == "encryption" { ENCRYPTION_METHODS } else { "" },
        )
    };
    let slo = [Binding::HttpRedirect, Binding::HttpPost]
        .iter()
        .map(|b| {
            format!("<md:SingleLogoutService Binding=\"{}\" Location=\"{}\"/>", b.urn(), escape(&urls.slo))
        })
        .collect::<String>();
    let name_id = connection
        .name_id_format
        .as_deref()
        .map(|f| format!("<md:NameIDFormat>{}</md:NameIDFormat>", escape(f)))
        .unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <md:EntityDescriptor xmlns:md=\"{MD_NS}\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"{entity}\">\
         <md:SPSSODescriptor AuthnRequestsSigned=\"true\" WantAssertionsSigned=\"true\" protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\
         {signing}{encryption}{slo}{name_id}\
         <md:AssertionConsumerService Binding=\"{post}\" Location=\"{acs}\" index=\"0\" isDefault=\"true\"/>\
         </md:SPSSODescriptor></md:EntityDescriptor>\n",
        entity = escape(&urls.entity_id),
        signing = [Some(&connection.sp_signing), connection.sp_next.as_ref().map(|k| &k.signing)]
            .into_iter()
            .flatten()
            .map(|pair| key("signing", &pair.certificate_pem))
            .collect::<String>(),
        encryption = [Some(&connection.sp_encryption), connection.sp_next.as_ref().map(|k| &k.encryption)]
            .into_iter()
            .flatten()
            .map(|pair| key("encryption", &pair.certificate_pem))
            .collect::<String>(),
        post = Binding::POST_URN,
        acs = escape(&urls.acs),
    )
}

/// The content ciphers and key transports Portcullis decrypts, best first.
const ENCRYPTION_METHODS: &str = "<md:EncryptionMethod Algorithm=\"http://www.w3.org/2009/xmlenc11#aes256-gcm\"/>\
    <md:EncryptionMethod Algorithm=\"http://www.w3.org/2009/xmlenc11#aes128-gcm\"/>\
    <md:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#aes256-cbc\"/>\
    <md:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#aes128-cbc\"/>\
    <md:EncryptionMethod Algorithm=\"http://www.w3.org/2009/xmlenc11#rsa-oaep\"/>\
    <md:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p\"/>";

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn okta_metadata_fills_a_connection() {
        let read =
            parse_idp(include_str!("../../tests/fixtures/saml/okta-metadata.xml"), &[], now()).unwrap();
        assert_eq!(read.settings.entity_id, "http://www.okta.com/exk1fixture0000000001");
        assert_eq!(read.settings.sso_binding, Binding::HttpRedirect, "Redirect is preferred where offered");
        assert!(read.settings.sso_url.ends_with("/sso/saml"));
        assert_eq!(read.settings.slo_url, None);
        assert_eq!(read.settings.signing_certificates.len(), 1);
        assert!(!read.settings.wants_signed_requests);
        assert!(
            read.name_id_formats
                .contains(&"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".to_owned())
        );
        assert!(!read.signature_verified);
    }

    #[test]
    fn entra_id_federation_metadata_is_read_past_its_ws_federation_roles() {
        let read =
            parse_idp(include_str!("../../tests/fixtures/saml/entra-id-metadata.xml"), &[], now()).unwrap();
        assert_eq!(read.settings.entity_id, "https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/");
        assert_eq!(
            read.settings.sso_url,
            "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/saml2"
        );
        assert_eq!(read.settings.slo_url.as_deref(), Some(read.settings.sso_url.as_str()));
        assert_eq!(read.settings.signing_certificates.len(), 1, "the same certificate thrice is one");
    }

    #[test]
    fn metadata_without_an_idp_or_keys_or_past_its_validity_is_refused() {
        let okta = include_str!("../../tests/fixtures/saml/okta-metadata.xml");
        let expired = okta
            .replace("<md:EntityDescriptor ", "<md:EntityDescriptor validUntil=\"2020-01-01T00:00:00Z\" ");
        assert!(matches!(parse_idp(&expired, &[], now()), Err(MetadataError::Expired(_))));
        let empty = format!("<md:EntityDescriptor xmlns:md=\"{MD_NS}\" entityID=\"https://idp\"/>");
        assert_eq!(parse_idp(&empty, &[], now()), Err(MetadataError::NotAnIdp));
        let start = okta.find("<md:KeyDescriptor").unwrap();
        let end = okta.find("</md:KeyDescriptor>").unwrap() + "</md:KeyDescriptor>".len();
        let keyless = format!("{}{}", &okta[..start], &okta[end..]);
        assert_eq!(parse_idp(&keyless, &[], now()), Err(MetadataError::NoSigningCertificate));
    }

    #[test]
    fn sp_metadata_advertises_what_portcullis_does() {
        let key = |name: &str| crate::saml::sp_cert::generate(name, now()).unwrap();
        let connection = SamlConnectionRecord {
            id: crate::ids::ConnectionId::generate(),
            tenant: crate::ids::TenantId::generate(),
            name: "Okta".into(),
            enabled: true,
            idp: IdpSettings::default(),
            name_id_format: Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into()),
            attribute_mapping: Default::default(),
            allow_idp_initiated: false,
            jit_provisioning: false,
            clock_skew_secs: 120,
            allow_sha1: false,
            sp_signing: key("signing"),
            sp_encryption: key("encryption"),
            sp_next: None,
            sp_previous: None,
            metadata_source: None,
            metadata_certificate: None,
            metadata_valid_until: None,
            created_at: now(),
            updated_at: now(),
        };
        let urls = SpUrls::new("https://id.example.com", connection.id);
        let document = sp_metadata(&connection, &urls);
        let shape = guard::inspect(&document, &METADATA_LIMITS).unwrap();
        assert_eq!(shape.root.local, "EntityDescriptor");
        for expected in [
            format!("entityID=\"{}\"", urls.entity_id),
            format!("Location=\"{}\" index=\"0\"", urls.acs),
            "AuthnRequestsSigned=\"true\"".to_owned(),
            "WantAssertionsSigned=\"true\"".to_owned(),
            "use=\"signing\"".to_owned(),
            "use=\"encryption\"".to_owned(),
        ] {
            assert!(document.contains(&expected), "{expected} missing from {document}");
        }
        assert!(
            !document.contains("rsa-1_5") && !document.contains("aes192"),
            "only what is decrypted is advertised"
        );
    }
}
