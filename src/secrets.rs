//! Secrets Portcullis must be able to read back (an upstream IdP's client secret) are sealed
//! with AES-256-GCM under a key kept outside the database, in a file of its own
//! (`secret_key_file`, by default `secret.key` in the data directory): a copy of the database
//! alone (a backup, a support bundle) does not reveal them. Each sealed value is bound to its
//! purpose (the record it belongs to) as associated data, so one cannot be moved to another.
//!
//! Composed from OpenSSL's AEAD; nothing cryptographic is implemented here.

use std::{
    io::{self, Write},
    path::Path,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};
use rand::RngCore;

const VERSION: &str = "v1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("the secret key file {path} cannot be used: {message}")]
    KeyFile { path: String, message: String },
    #[error("the sealed secret is not readable with this instance's secret key")]
    Unreadable,
    #[error("the secret cannot be sealed: {0}")]
    Seal(String),
}

/// Seals and opens secrets with the instance's secret key.
pub struct SecretBox {
    key: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox")
    }
}

impl SecretBox {
    pub fn from_key(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// Reads the key file, or creates it (readable by its owner only) on the first start.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretsError> {
        let fail = |message: String| SecretsError::KeyFile { path: path.display().to_string(), message };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let key = hex::decode(text.trim())
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                    .ok_or_else(|| fail("it must hold 64 hexadecimal digits (32 bytes)".into()))?;
                Ok(Self { key })
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                write_new_private(path, hex::encode(key).as_bytes()).map_err(|e| fail(e.to_string()))?;
                tracing::info!(path = %path.display(), "created the secret key file");
                Ok(Self { key })
            }
            Err(err) => Err(fail(err.to_string())),
        }
    }

    /// `plaintext` sealed for `purpose`: `v1.` + base64url(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, purpose: &str, plaintext: &str) -> Result<String, SecretsError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut tag = [0u8; TAG_LEN];
        let ciphertext = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(&nonce),
            purpose.as_bytes(),
            plaintext.as_bytes(),
            &mut tag,
        )
        .map_err(|err| SecretsError::Seal(err.to_string()))?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len() + TAG_LEN);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed.extend_from_slice(&tag);
        Ok(format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// The plaintext of a value sealed for `purpose`.
    pub fn open(&self, purpose: &str, sealed: &str) -> Result<String, SecretsError> {
        let encoded = sealed.strip_prefix("v1.").ok_or(SecretsError::Unreadable)?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| SecretsError::Unreadable)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretsError::Unreadable);
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let plaintext =
            decrypt_aead(Cipher::aes_256_gcm(), &self.key, Some(nonce), purpose.as_bytes(), ciphertext, tag)
                .map_err(|_| SecretsError::Unreadable)?;
        String::from_utf8(plaintext).map_err(|_| SecretsError::Unreadable)
    }
}

/// Writes a new file only its owner can read, and makes it durable.
fn write_new_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_purpose_and_untampered() {
        let sealer = SecretBox::from_key([9; 32]);
        let sealed = sealer.seal("oidc:1", "s3cr3t").unwrap();
        assert!(!sealed.contains("s3cr3t"));
        assert_eq!(sealer.open("oidc:1", &sealed).unwrap(), "s3cr3t");
        assert!(sealer.open("oidc:2", &sealed).is_err(), "bound to its purpose");
        assert!(SecretBox::from_key([8; 32]).open("oidc:1", &sealed).is_err(), "another key");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(sealer.open("oidc:1", &String::from_utf8(tampered).unwrap()).is_err());
        assert_ne!(sealer.seal("oidc:1", "s3cr3t").unwrap(), sealed, "a fresh nonce each time");
    }

    #[test]
    fn the_key_file_is_created_private_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let first = SecretBox::load_or_create(&path).unwrap();
        let sealed = first.seal("p", "value").unwrap();
        let second = SecretBox::load_or_create(&path).unwrap();
        assert_eq!(second.open("p", &sealed).unwrap(), "value");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        std::fs::write(&path, "not hex").unwrap();
        assert!(SecretBox::load_or_create(&path).is_err());
    }
}
