//! Password credentials: `password_credentials` ((tenant, user) → record). The hash is an
//! argon2id PHC string; failed attempts and the lockout they cause live beside it, so a
//! successful sign-in resets them in the same write.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, TableVisitor, WriteTx, codec};
use crate::ids::{TenantId, UserId};

const PASSWORD_CREDENTIALS: TableDefinition<(u128, u128), &[u8]> =
    TableDefinition::new("password_credentials");

/// Every table of this module: created at start, copied by a backup.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(PASSWORD_CREDENTIALS)?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PasswordCredentialRecord {
    /// None until the person chooses a password (an invited user).
    pub hash: Option<String>,
    pub changed_at: Option<OffsetDateTime>,
    /// Consecutive failed attempts, and the lockout they earned.
    pub failures: u32,
    pub last_failure_at: Option<OffsetDateTime>,
    pub locked_until: Option<OffsetDateTime>,
    /// Counts password changes: part of what a reset link is bound to, so each link works once.
    #[serde(default)]
    pub version: u64,
}

impl Record for PasswordCredentialRecord {
    const KIND: &'static str = "password credential";
}

pub fn get(
    src: &impl Source,
    tenant: TenantId,
    user: UserId,
) -> Result<Option<PasswordCredentialRecord>, StoreError> {
    codec::get(src, PASSWORD_CREDENTIALS, (tenant.key(), user.key()))
}

pub fn put(
    tx: &WriteTx<'_>,
    tenant: TenantId,
    user: UserId,
    credential: &PasswordCredentialRecord,
) -> Result<(), StoreError> {
    tx.table_mut(PASSWORD_CREDENTIALS)?
        .insert((tenant.key(), user.key()), codec::encode(credential)?.as_slice())?;
    Ok(())
}

pub fn delete(tx: &WriteTx<'_>, tenant: TenantId, user: UserId) -> Result<(), StoreError> {
    tx.table_mut(PASSWORD_CREDENTIALS)?.remove((tenant.key(), user.key()))?;
    Ok(())
}

pub(super) fn delete_tenant(tx: &WriteTx<'_>, tenant: TenantId) -> Result<(), StoreError> {
    let t = tenant.key();
    tx.table_mut(PASSWORD_CREDENTIALS)?.retain_in((t, 0)..=(t, u128::MAX), |_, _| false)?;
    Ok(())
}
