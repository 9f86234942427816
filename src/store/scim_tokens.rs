//! Each tenant's SCIM bearer tokens. Only a SHA-256 digest of a token is stored (tokens are
//! 256-bit random values, so a fast hash suffices). `scim_tokens` ((tenant, token) → record) and
//! `scim_token_digests` (digest → (tenant, token), the lookup on every SCIM request; a revoked
//! token's digest goes in the transaction that revokes it).

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, TableVisitor, WriteTx, codec};
use crate::ids::{ScimTokenId, TenantId};

const SCIM_TOKENS: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("scim_tokens");
const SCIM_TOKEN_DIGESTS: TableDefinition<&[u8; 32], (u128, u128)> =
    TableDefinition::new("scim_token_digests");

/// Every table of this module: created at start, copied by a backup.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(SCIM_TOKENS)?;
    tables.visit(SCIM_TOKEN_DIGESTS)?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScimTokenRecord {
    pub id: ScimTokenId,
    pub tenant: TenantId,
    pub name: String,
    pub digest: [u8; 32],
    /// The first characters of the token, to recognise it in a list.
    pub prefix: String,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    /// Updated at most once a minute, so that reads stay reads.
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

impl Record for ScimTokenRecord {
    const KIND: &'static str = "SCIM token";
}

impl ScimTokenRecord {
    pub fn is_usable(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }
}

pub fn by_digest(src: &impl Source, digest: &[u8; 32]) -> Result<Option<ScimTokenRecord>, StoreError> {
    let key = src.table(SCIM_TOKEN_DIGESTS)?.get(digest)?.map(|v| v.value());
    match key {
        Some(key) => codec::get(src, SCIM_TOKENS, key),
        None => Ok(None),
    }
}

pub fn get(
    src: &impl Source,
    tenant: TenantId,
    id: ScimTokenId,
) -> Result<Option<ScimTokenRecord>, StoreError> {
    codec::get(src, SCIM_TOKENS, (tenant.key(), id.key()))
}

/// The tenant's tokens, revoked ones included, oldest first.
pub fn list(src: &impl Source, tenant: TenantId) -> Result<Vec<ScimTokenRecord>, StoreError> {
    let table = src.table(SCIM_TOKENS)?;
    let t = tenant.key();
    let range = table.range((t, 0)..=(t, u128::MAX))?;
    range.map(|entry| codec::decode(entry?.1.value())).collect()
}

pub fn insert(tx: &WriteTx<'_>, token: &ScimTokenRecord) -> Result<(), StoreError> {
    let key = (token.tenant.key(), token.id.key());
    tx.table_mut(SCIM_TOKENS)?.insert(key, codec::encode(token)?.as_slice())?;
    tx.table_mut(SCIM_TOKEN_DIGESTS)?.insert(&token.digest, key)?;
    Ok(())
}

/// Marks the token revoked and forgets its digest; returns the updated record.
pub fn revoke(
    tx: &WriteTx<'_>,
    tenant: TenantId,
    id: ScimTokenId,
    now: OffsetDateTime,
) -> Result<Option<ScimTokenRecord>, StoreError> {
    let Some(mut token) = get(tx, tenant, id)? else {
        return Ok(None);
    };
    if token.revoked_at.is_none() {
        token.revoked_at = Some(now);
        tx.table_mut(SCIM_TOKENS)?.insert((tenant.key(), id.key()), codec::encode(&token)?.as_slice())?;
        tx.table_mut(SCIM_TOKEN_DIGESTS)?.remove(&token.digest)?;
    }
    Ok(Some(token))
}

/// Records a use of the token (no-op for a token revoked meanwhile).
pub fn touch(
    tx: &WriteTx<'_>,
    tenant: TenantId,
    id: ScimTokenId,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    if let Some(mut token) = get(tx, tenant, id)? {
        if token.revoked_at.is_none() && token.last_used_at.is_none_or(|at| at < now) {
            token.last_used_at = Some(now);
            tx.table_mut(SCIM_TOKENS)?.insert((tenant.key(), id.key()), codec::encode(&token)?.as_slice())?;
        }
    }
    Ok(())
}

pub(super) fn delete_tenant(tx: &WriteTx<'_>, tenant: TenantId) -> Result<(), StoreError> {
    for token in list(tx, tenant)? {
        tx.table_mut(SCIM_TOKEN_DIGESTS)?.remove(&token.digest)?;
    }
    let t = tenant.key();
    tx.table_mut(SCIM_TOKENS)?.retain_in((t, 0)..=(t, u128::MAX), |_, _| false)?;
    Ok(())
}
