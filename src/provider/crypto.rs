//! The cryptography behind jsonwebtoken. Its RustCrypto backend signs RSA with the `rsa` crate,
//! whose private-key operations are not constant-time (RUSTSEC-2023-0071, the Marvin attack), so
//! RSA signatures are made by OpenSSL instead; everything else (ECDSA signing, every
//! verification, which uses only public keys) stays with RustCrypto. Installed once per process.

use std::sync::OnceLock;

use jsonwebtoken::{
    Algorithm, EncodingKey,
    crypto::{CryptoProvider, JwtSigner, rust_crypto},
    errors::{Error, ErrorKind},
    signature,
};
use openssl::{hash::MessageDigest, pkey::PKey, rsa::Rsa, sign::Signer};

/// Makes this module's provider jsonwebtoken's for the whole process; safe to call many times.
pub fn install() {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    let mut created = false;
    let provider = PROVIDER.get_or_init(|| {
        created = true;
        CryptoProvider {
            signer_factory: new_signer,
            verifier_factory: rust_crypto::DEFAULT_PROVIDER.verifier_factory,
            key_utils: rust_crypto::DEFAULT_PROVIDER.key_utils.clone(),
        }
    });
    if created && provider.install_default().is_err() {
        tracing::warn!("a jsonwebtoken crypto provider was already installed");
    }
}

fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    match algorithm {
        Algorithm::RS256 => Ok(Box::new(OpenSslRs256::new(key)?)),
        other => (rust_crypto::DEFAULT_PROVIDER.signer_factory)(other, key),
    }
}

/// RSASSA-PKCS1-v1_5 with SHA-256 (JWA `RS256`), by OpenSSL.
struct OpenSslRs256 {
    key: PKey<openssl::pkey::Private>,
}

impl OpenSslRs256 {
    fn new(key: &EncodingKey) -> Result<Self, Error> {
        // jsonwebtoken keeps an RSA private key as PKCS#1 DER.
        let rsa = Rsa::private_key_from_der(key.as_bytes())
            .map_err(|_| Error::from(ErrorKind::InvalidRsaKey(String::new())))?;
        let key = PKey::from_rsa(rsa).map_err(|_| Error::from(ErrorKind::InvalidRsaKey(String::new())))?;
        Ok(Self { key })
    }
}

impl signature::Signer<Vec<u8>> for OpenSslRs256 {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let mut signer =
            Signer::new(MessageDigest::sha256(), &self.key).map_err(signature::Error::from_source)?;
        signer.sign_oneshot_to_vec(message).map_err(signature::Error::from_source)
    }
}

impl JwtSigner for OpenSslRs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use jsonwebtoken::{DecodingKey, Header, Validation, decode, encode};
    use openssl::sign::Verifier;
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn rs256_tokens_signed_by_openssl_verify_with_openssl_and_with_rustcrypto() {
        install();
        let rsa = Rsa::generate(2048).unwrap();
        let pem = rsa.private_key_to_pem().unwrap();
        let claims = json!({ "sub": "ada", "exp": 4_000_000_000u64 });
        let token =
            encode(&Header::new(Algorithm::RS256), &claims, &EncodingKey::from_rsa_pem(&pem).unwrap())
                .unwrap();

        // OpenSSL's own verification of the signature over "header.payload".
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let public = PKey::public_key_from_pem(&rsa.public_key_to_pem().unwrap()).unwrap();
        let mut verifier = Verifier::new(MessageDigest::sha256(), &public).unwrap();
        assert!(
            verifier.verify_oneshot(&URL_SAFE_NO_PAD.decode(signature).unwrap(), signed.as_bytes()).unwrap()
        );

        // And jsonwebtoken's RustCrypto verifier, from the public components as a JWKS gives them.
        let (n, e) = (URL_SAFE_NO_PAD.encode(rsa.n().to_vec()), URL_SAFE_NO_PAD.encode(rsa.e().to_vec()));
        let decoded = decode::<Value>(
            &token,
            &DecodingKey::from_rsa_components(&n, &e).unwrap(),
            &Validation::new(Algorithm::RS256),
        )
        .unwrap();
        assert_eq!(decoded.claims, claims);
    }
}
