//! Admin API keys: `pcak_` followed by 256 random bits in base64url. Only their SHA-256 digest
//! is stored.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::AdminError;
use crate::{
    ids::AdminKeyId,
    store::admin_keys::{AdminKeyRecord, KeyScope},
};

const PREFIX: &str = "pcak_";
/// How many leading characters of a key are kept to recognise it in a list.
const SHOWN_CHARS: usize = 12;
const MAX_NAME_CHARS: usize = 100;

/// A new key and the record that stores its digest.
pub struct IssuedKey {
    pub key: String,
    pub record: AdminKeyRecord,
}

pub fn issue_key(name: String, scope: KeyScope, now: OffsetDateTime) -> IssuedKey {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let key = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    let prefix = key.chars().take(SHOWN_CHARS).collect();
    let record = AdminKeyRecord { scope, ..record_for(&key, name, prefix, now) };
    IssuedKey { key, record }
}

/// The record for a key the operator supplied (`PORTCULLIS_BOOTSTRAP_ADMIN_KEY`). The listing
/// shows no part of it: a supplied key has no public prefix like ours, so its first characters
/// are secret.
pub fn supplied_record(key: &str, name: String, now: OffsetDateTime) -> AdminKeyRecord {
    record_for(key, name, "(supplied)".into(), now)
}

fn record_for(key: &str, name: String, prefix: String, now: OffsetDateTime) -> AdminKeyRecord {
    AdminKeyRecord {
        id: AdminKeyId::generate(),
        name,
        scope: KeyScope::Admin,
        digest: digest(key),
        prefix,
        created_at: now,
        revoked_at: None,
    }
}

pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A supplied key must be long enough to be unguessable and safe to send in a header.
pub fn validate_supplied_key(key: &str) -> Result<(), String> {
    if !(32..=512).contains(&key.len()) {
        return Err("must be 32 to 512 characters long (for example `openssl rand -hex 32`)".into());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if !key.chars().all(allowed) {
        return Err("may contain only letters, digits and - . _ ~ + / =".into());
    }
    Ok(())
}

pub fn validate_name(name: &str) -> Result<String, AdminError> {
    crate::text::label(name, MAX_NAME_CHARS).map_err(|message| AdminError::Invalid { field: "name", message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_keys_are_random_and_only_their_digest_is_kept() {
        let a = issue_key("a".into(), KeyScope::Admin, OffsetDateTime::UNIX_EPOCH);
        let b = issue_key("b".into(), KeyScope::Admin, OffsetDateTime::UNIX_EPOCH);
        assert_ne!(a.key, b.key);
        assert!(a.key.starts_with(PREFIX) && a.key.len() == PREFIX.len() + 43);
        assert_eq!(a.record.digest, digest(&a.key));
        assert!(a.key.starts_with(&a.record.prefix));
        assert!(validate_supplied_key(&a.key).is_ok());
    }

    #[test]
    fn weak_or_unsafe_supplied_keys_are_refused() {
        assert!(validate_supplied_key("short").is_err());
        assert!(validate_supplied_key(&format!("{} x", "a".repeat(40))).is_err());
        assert!(validate_supplied_key(&"a".repeat(600)).is_err());
        assert!(validate_supplied_key(&"0123456789abcdef".repeat(4)).is_ok());
    }
}
