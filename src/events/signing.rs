//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): a secret is `whsec_` and
//! the base64 of 32 random bytes; each delivery carries `webhook-id` (the event id, the same on
//! every retry), `webhook-timestamp` (Unix seconds of the attempt) and `webhook-signature`: `v1,`
//! and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the secret's bytes, once per
//! secret in use, separated by spaces (a rotation signs with the old and the new secret).

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const PREFIX: &str = "whsec_";
const SECRET_BYTES: usize = 32;
/// SHA-256's block: the longest key HMAC uses as it is.
const BLOCK_BYTES: usize = 64;

/// A signing secret, ready to sign.
pub struct SigningKey {
    mac: Hmac<Sha256>,
}

impl SigningKey {
    /// A new random secret, in the form given to the receiver.
    pub fn generate() -> String {
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        format!("{PREFIX}{}", STANDARD.encode(bytes))
    }

    /// Reads a `whsec_…` secret.
    pub fn parse(secret: &str) -> Result<Self, String> {
        let encoded = secret.strip_prefix(PREFIX).ok_or("a signing secret starts with `whsec_`")?;
        let bytes = STANDARD.decode(encoded).map_err(|_| "a signing secret is base64 after `whsec_`")?;
        if bytes.len() < 24 || bytes.len() > BLOCK_BYTES {
            return Err("a signing secret has 24 to 64 bytes".into());
        }
        Ok(Self::from_bytes(&bytes))
    }

    /// HMAC pads keys up to SHA-256's 64-byte block with zeros: padding here is exactly HMAC
    /// keyed with `bytes`, without the fallible `new_from_slice`.
    fn from_bytes(bytes: &[u8]) -> Self {
        let mut block = [0_u8; BLOCK_BYTES];
        block[..bytes.len()].copy_from_slice(bytes);
        Self { mac: <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into()) }
    }

    /// `v1,<base64 HMAC-SHA256>` of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header: one signature per key, space-separated.
pub fn signature_header(keys: &[SigningKey], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter().map(|key| key.sign(id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries' tests
    /// (standard-webhooks/libraries, python/tests/test_webhooks.py).
    #[test]
    fn signs_as_the_reference_libraries_do() {
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn generated_secrets_parse_and_bad_ones_are_refused() {
        let secret = SigningKey::generate();
        assert!(secret.starts_with("whsec_") && SigningKey::parse(&secret).is_ok());
        assert!(SigningKey::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err(), "no prefix");
        assert!(SigningKey::parse("whsec_not base64!").is_err());
        assert!(SigningKey::parse("whsec_c2hvcnQ=").is_err(), "too short");
    }

    #[test]
    fn a_rotation_signs_with_every_key() {
        let keys = [SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 24])];
        let header = signature_header(&keys, "id", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], keys[0].sign("id", 1, b"{}"));
        assert_ne!(parts[0], parts[1]);
    }
}
