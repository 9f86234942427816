//! The instance's own key material: JWT signing keys and the SAML service provider certificate.
//! `instance_keys` (key id → record).
//!
//! Private keys are stored as PKCS#8 PEM inside the database file, which is why the data
//! directory is created readable by its owner only.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, TableVisitor, WriteTx, codec};

const INSTANCE_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("instance_keys");

/// Every table of this module: created at start, copied by a backup.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(INSTANCE_KEYS)?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyPurpose {
    /// Signs the tokens Portcullis issues as an OpenID Provider.
    TokenSigning,
    /// An instance-wide SAML key pair, made by the first releases; no longer made or used: each
    /// SAML connection has its own (`store::saml::SpKeyPair`). Kept so that old records read.
    SamlServiceProvider,
    /// A symmetric secret (32 random bytes, hex in `private_key_pem`) from which the keys of
    /// password links and form CSRF tokens are derived.
    LinkSigning,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceKeyRecord {
    /// The key id (for token signing keys, the RFC 7638 thumbprint of the public key).
    pub kid: String,
    pub purpose: KeyPurpose,
    /// A JOSE algorithm name such as `ES256` or `RS256`.
    pub algorithm: String,
    pub private_key_pem: String,
    /// The public key as a JWK (token signing keys).
    pub public_jwk: Option<serde_json::Value>,
    /// The self-signed certificate (SAML keys).
    pub certificate_pem: Option<String>,
    pub created_at: OffsetDateTime,
    /// When a token signing key starts signing (None: at once). A rotated-in key is published
    /// first, so that apps caching the JWKS know it before it signs.
    #[serde(default)]
    pub activates_at: Option<OffsetDateTime>,
    /// Retired keys no longer sign; they stay published until what they signed has expired.
    pub retired_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for InstanceKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceKeyRecord")
            .field("kid", &self.kid)
            .field("purpose", &self.purpose)
            .field("algorithm", &self.algorithm)
            .field("private_key_pem", &"***")
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

impl Record for InstanceKeyRecord {
    const KIND: &'static str = "instance key";
}

pub fn all(src: &impl Source) -> Result<Vec<InstanceKeyRecord>, StoreError> {
    let table = src.table(INSTANCE_KEYS)?;
    let range = table.range::<&str>(..)?;
    range.map(|entry| codec::decode(entry?.1.value())).collect()
}

pub fn put(tx: &WriteTx<'_>, key: &InstanceKeyRecord) -> Result<(), StoreError> {
    tx.table_mut(INSTANCE_KEYS)?.insert(key.kid.as_str(), codec::encode(key)?.as_slice())?;
    Ok(())
}
