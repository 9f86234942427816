//! The dashboard's sessions: an operator signed in with an admin key, or a customer's IT admin
//! who opened a setup link. The cookie holds 256 random bits; only their SHA-256 digest is
//! stored (`admin_sessions`: digest → record). Sessions are few, so expired ones are swept
//! whenever a new one starts.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, TableVisitor, WriteTx, codec};
use crate::ids::{AdminKeyId, SetupLinkId, TenantId};

const ADMIN_SESSIONS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("admin_sessions");

/// Every table of this module: created at start, copied by a backup.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(ADMIN_SESSIONS)?;
    Ok(())
}

/// Who a dashboard session acts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SessionHolder {
    /// An operator, with the admin key they signed in with.
    Operator { key: AdminKeyId },
    /// A customer's IT admin, through a setup link of one tenant.
    Setup { link: SetupLinkId, tenant: TenantId },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminSessionRecord {
    pub holder: SessionHolder,
    /// Sent back in `X-CSRF-Token` by every request that changes something.
    pub csrf_token: String,
    pub created_at: OffsetDateTime,
    /// Refreshed at most once a minute, so that reads stay reads.
    pub last_seen_at: OffsetDateTime,
    /// The absolute end, whatever the activity.
    pub expires_at: OffsetDateTime,
}

impl Record for AdminSessionRecord {
    const KIND: &'static str = "dashboard session";
}

pub fn get(src: &impl Source, digest: &[u8; 32]) -> Result<Option<AdminSessionRecord>, StoreError> {
    codec::get(src, ADMIN_SESSIONS, digest)
}

pub fn put(tx: &WriteTx<'_>, digest: &[u8; 32], session: &AdminSessionRecord) -> Result<(), StoreError> {
    tx.table_mut(ADMIN_SESSIONS)?.insert(digest, codec::encode(session)?.as_slice())?;
    Ok(())
}

pub fn remove(tx: &WriteTx<'_>, digest: &[u8; 32]) -> Result<bool, StoreError> {
    Ok(tx.table_mut(ADMIN_SESSIONS)?.remove(digest)?.is_some())
}

/// Forgets the sessions for which `ended` holds; returns how many.
pub fn remove_where(
    tx: &WriteTx<'_>,
    ended: impl Fn(&AdminSessionRecord) -> bool,
) -> Result<usize, StoreError> {
    let mut doomed = Vec::new();
    for entry in tx.table_mut(ADMIN_SESSIONS)?.iter()? {
        let (digest, value) = entry?;
        if ended(&codec::decode(value.value())?) {
            doomed.push(*digest.value());
        }
    }
    let mut table = tx.table_mut(ADMIN_SESSIONS)?;
    for digest in &doomed {
        table.remove(digest)?;
    }
    Ok(doomed.len())
}
