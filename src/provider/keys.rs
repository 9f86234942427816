//! Token signing keys. Each is an ECDSA P-256 key (ES256) generated with rcgen on ring; its key
//! id is the RFC 7638 thumbprint of its public JWK, so the id follows from the key itself.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::store::instance_keys::{InstanceKeyRecord, KeyPurpose};

#[derive(Debug, thiserror::Error)]
#[error("cannot generate a token signing key: {0}")]
pub struct KeyGenerationError(String);

pub fn generate_es256(now: OffsetDateTime) -> Result<InstanceKeyRecord, KeyGenerationError> {
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| KeyGenerationError(e.to_string()))?;
    // An uncompressed SEC1 point: 0x04, then 32 bytes of x and 32 of y.
    let point = key_pair.public_key_raw();
    let (x, y) = match point {
        [0x04, rest @ ..] if rest.len() == 64 => rest.split_at(32),
        _ => return Err(KeyGenerationError("unexpected public key encoding".into())),
    };
    let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
    // RFC 7638: the required members, in lexicographic order, without whitespace.
    let thumbprint_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint_input.as_bytes()));
    let jwk =
        json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y, "use": "sig", "alg": "ES256", "kid": kid });
    Ok(InstanceKeyRecord {
        kid,
        purpose: KeyPurpose::TokenSigning,
        algorithm: "ES256".into(),
        private_key_pem: key_pair.serialize_pem(),
        public_jwk: Some(jwk),
        certificate_pem: None,
        created_at: now,
        retired_at: None,
    })
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Claims {
        sub: String,
        exp: u64,
    }

    #[test]
    fn a_token_signed_with_the_key_verifies_with_its_published_jwk() {
        let key = generate_es256(OffsetDateTime::UNIX_EPOCH).unwrap();
        let jwk = key.public_jwk.as_ref().unwrap();
        let claims = Claims { sub: "ada".into(), exp: 4_000_000_000 };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        let token =
            encode(&header, &claims, &EncodingKey::from_ec_pem(key.private_key_pem.as_bytes()).unwrap())
                .unwrap();

        let decoding =
            DecodingKey::from_ec_components(jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap()).unwrap();
        let decoded = decode::<Claims>(&token, &decoding, &Validation::new(Algorithm::ES256)).unwrap();
        assert_eq!(decoded.claims, claims);
        assert_eq!(decoded.header.kid.as_deref(), Some(key.kid.as_str()));
    }

    #[test]
    fn the_key_id_is_the_rfc7638_thumbprint_computed_by_openssl_too() {
        let key = generate_es256(OffsetDateTime::UNIX_EPOCH).unwrap();
        // Recompute the public point independently from the private key with OpenSSL.
        let pkey = openssl::pkey::PKey::private_key_from_pem(key.private_key_pem.as_bytes()).unwrap();
        let ec = pkey.ec_key().unwrap();
        let mut ctx = openssl::bn::BigNumContext::new().unwrap();
        let (mut x, mut y) = (openssl::bn::BigNum::new().unwrap(), openssl::bn::BigNum::new().unwrap());
        ec.public_key().affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx).unwrap();
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(x.to_vec_padded(32).unwrap()),
            URL_SAFE_NO_PAD.encode(y.to_vec_padded(32).unwrap()),
        );
        let input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        assert_eq!(key.kid, URL_SAFE_NO_PAD.encode(Sha256::digest(input.as_bytes())));
    }
}
