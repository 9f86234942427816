//! Operators' admin API keys. Only a SHA-256 digest of each key is stored: the keys are 256-bit
//! random values, so a fast hash is enough (a slow password hash guards low-entropy secrets).
//! `admin_keys` (id → record) and `admin_key_digests` (digest → id, for the lookup on every
//! request; a revoked key's digest is removed in the transaction that revokes it).

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, TableVisitor, WriteTx, codec};
use crate::ids::AdminKeyId;

const ADMIN_KEYS: TableDefinition<u128, &[u8]> = TableDefinition::new("admin_keys");
const ADMIN_KEY_DIGESTS: TableDefinition<&[u8; 32], u128> = TableDefinition::new("admin_key_digests");

/// Every table of this module: created at start, copied by a backup.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(ADMIN_KEYS)?;
    tables.visit(ADMIN_KEY_DIGESTS)?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminKeyRecord {
    pub id: AdminKeyId,
    pub name: String,
    /// What the key may do; keys made before scopes existed are full admin keys.
    #[serde(default)]
    pub scope: KeyScope,
    pub digest: [u8; 32],
    /// The first characters of the key, to recognise it in a list.
    pub prefix: String,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

/// What an admin API key may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyScope {
    /// The whole admin API.
    #[default]
    #[serde(rename = "admin")]
    Admin,
    /// Only reading the events feed: the credential an app keeps to catch up on events.
    #[serde(rename = "events:read")]
    EventsRead,
    /// Only scraping `/metrics`: the credential Prometheus keeps.
    #[serde(rename = "metrics:read")]
    MetricsRead,
}

impl Record for AdminKeyRecord {
    const KIND: &'static str = "admin key";
}

pub fn by_digest(src: &impl Source, digest: &[u8; 32]) -> Result<Option<AdminKeyRecord>, StoreError> {
    let id = src.table(ADMIN_KEY_DIGESTS)?.get(digest)?.map(|v| v.value());
    match id {
        Some(id) => get(src, AdminKeyId::from_key(id)),
        None => Ok(None),
    }
}

pub fn get(src: &impl Source, id: AdminKeyId) -> Result<Option<AdminKeyRecord>, StoreError> {
    codec::get(src, ADMIN_KEYS, id.key())
}

/// Every key, revoked ones included, oldest first.
pub fn all(src: &impl Source) -> Result<Vec<AdminKeyRecord>, StoreError> {
    let table = src.table(ADMIN_KEYS)?;
    let range = table.range(0..)?;
    range.map(|entry| codec::decode(entry?.1.value())).collect()
}

pub fn insert(tx: &WriteTx<'_>, key: &AdminKeyRecord) -> Result<(), StoreError> {
    tx.table_mut(ADMIN_KEYS)?.insert(key.id.key(), codec::encode(key)?.as_slice())?;
    tx.table_mut(ADMIN_KEY_DIGESTS)?.insert(&key.digest, key.id.key())?;
    Ok(())
}

/// Marks the key revoked and forgets its digest; returns the updated record.
pub fn revoke(
    tx: &WriteTx<'_>,
    id: AdminKeyId,
    now: OffsetDateTime,
) -> Result<Option<AdminKeyRecord>, StoreError> {
    let Some(mut key) = get(tx, id)? else {
        return Ok(None);
    };
    if key.revoked_at.is_none() {
        key.revoked_at = Some(now);
        tx.table_mut(ADMIN_KEYS)?.insert(key.id.key(), codec::encode(&key)?.as_slice())?;
        tx.table_mut(ADMIN_KEY_DIGESTS)?.remove(&key.digest)?;
    }
    Ok(Some(key))
}
