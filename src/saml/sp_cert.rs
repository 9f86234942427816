//! The SAML service provider's key and self-signed certificate. SAML needs RSA (IdPs encrypt
//! assertions to it with RSA-OAEP key transport), and rcgen on ring cannot generate RSA keys, so
//! OpenSSL generates the key and rcgen makes the certificate.

use openssl::{pkey::PKey, rsa::Rsa};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::store::instance_keys::{InstanceKeyRecord, KeyPurpose};

const RSA_BITS: u32 = 3072;
const VALIDITY: Duration = Duration::days(3650);

#[derive(Debug, thiserror::Error)]
#[error("cannot generate the SAML service provider certificate: {0}")]
pub struct CertificateError(String);

fn failed(err: impl std::fmt::Display) -> CertificateError {
    CertificateError(err.to_string())
}

/// A new RSA key and a self-signed certificate for it; `host` names the certificate.
pub fn generate(host: &str, now: OffsetDateTime) -> Result<InstanceKeyRecord, CertificateError> {
    let rsa = Rsa::generate(RSA_BITS).map_err(failed)?;
    let private_pem = PKey::from_rsa(rsa).and_then(|k| k.private_key_to_pem_pkcs8()).map_err(failed)?;
    let private_pem = String::from_utf8(private_pem).map_err(failed)?;
    let key_pair =
        rcgen::KeyPair::from_pem_and_sign_algo(&private_pem, &rcgen::PKCS_RSA_SHA256).map_err(failed)?;

    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("Portcullis SAML SP {host}"));
    params.not_before = now - Duration::days(1);
    params.not_after = now + VALIDITY;
    let certificate = params.self_signed(&key_pair).map_err(failed)?;

    Ok(InstanceKeyRecord {
        kid: hex::encode(Sha256::digest(certificate.der())),
        purpose: KeyPurpose::SamlServiceProvider,
        algorithm: "RS256".into(),
        private_key_pem: private_pem,
        public_jwk: None,
        certificate_pem: Some(certificate.pem()),
        created_at: now,
        activates_at: None,
        retired_at: None,
    })
}

#[cfg(test)]
mod tests {
    use openssl::x509::X509;

    use super::*;

    #[test]
    fn openssl_accepts_the_certificate_as_self_signed_by_the_stored_key() {
        let now = OffsetDateTime::now_utc();
        let record = generate("id.acme.test", now).unwrap();
        let cert = X509::from_pem(record.certificate_pem.as_ref().unwrap().as_bytes()).unwrap();
        let key = PKey::private_key_from_pem(record.private_key_pem.as_bytes()).unwrap();
        assert!(cert.public_key().unwrap().public_eq(&key));
        assert!(cert.verify(&key).unwrap());
        assert_eq!(key.bits(), RSA_BITS);
        let subject = cert.subject_name().entries().next().unwrap().data().to_string().unwrap();
        assert_eq!(subject, "Portcullis SAML SP id.acme.test");
        assert_eq!(record.kid, hex::encode(Sha256::digest(cert.to_der().unwrap())));
    }
}
