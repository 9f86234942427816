//! The service provider's key pairs: each SAML connection has its own for signing requests and
//! for receiving encrypted assertions, so that one tenant's keys never touch another's. SAML needs
//! RSA (IdPs encrypt to it with RSA-OAEP key transport), and rcgen on ring cannot generate RSA
//! keys, so OpenSSL generates the key and rcgen makes the self-signed certificate.

use openssl::{pkey::PKey, rsa::Rsa};
use time::{Duration, OffsetDateTime};

use crate::store::saml::SpKeyPair;

/// 2048 bits, as Okta, Entra ID and ADFS use for their own SAML keys (NIST: acceptable through
/// 2030). Every encrypted login costs one private-key operation, and at 3072 bits that costs
/// three times as much: the difference between meeting the ACS throughput target and not.
const RSA_BITS: u32 = 2048;
const VALIDITY: Duration = Duration::days(3650);

#[derive(Debug, thiserror::Error)]
#[error("cannot generate the SAML service provider certificate: {0}")]
pub struct CertificateError(String);

fn failed(err: impl std::fmt::Display) -> CertificateError {
    CertificateError(err.to_string())
}

/// A new RSA key and a self-signed certificate for it, named `common_name`.
pub fn generate(common_name: &str, now: OffsetDateTime) -> Result<SpKeyPair, CertificateError> {
    let rsa = Rsa::generate(RSA_BITS).map_err(failed)?;
    let private_pem = PKey::from_rsa(rsa).and_then(|k| k.private_key_to_pem_pkcs8()).map_err(failed)?;
    let private_pem = String::from_utf8(private_pem).map_err(failed)?;
    let key_pair =
        rcgen::KeyPair::from_pem_and_sign_algo(&private_pem, &rcgen::PKCS_RSA_SHA256).map_err(failed)?;

    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    params.not_before = now - Duration::days(1);
    params.not_after = now + VALIDITY;
    let certificate = params.self_signed(&key_pair).map_err(failed)?;

    Ok(SpKeyPair { private_key_pem: private_pem, certificate_pem: certificate.pem() })
}

#[cfg(test)]
mod tests {
    use openssl::x509::X509;

    use super::*;

    #[test]
    fn openssl_accepts_the_certificate_as_self_signed_by_the_stored_key() {
        let now = OffsetDateTime::now_utc();
        let record = generate("Portcullis SAML acme signing", now).unwrap();
        let cert = X509::from_pem(record.certificate_pem.as_bytes()).unwrap();
        let key = PKey::private_key_from_pem(record.private_key_pem.as_bytes()).unwrap();
        assert!(cert.public_key().unwrap().public_eq(&key));
        assert!(cert.verify(&key).unwrap());
        assert_eq!(key.bits(), RSA_BITS);
        let subject = cert.subject_name().entries().next().unwrap().data().to_string().unwrap();
        assert_eq!(subject, "Portcullis SAML acme signing");
    }
}
