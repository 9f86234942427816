//! Setup links: time-limited credentials with which a customer's IT admin runs the setup wizard
//! for one tenant. Only a SHA-256 digest of a link's token is stored (256 random bits).
//! `setup_links` ((tenant, link) → record) and `setup_link_digests` (digest → (tenant, link)).
//! A revoked or expired link keeps its digest, so that whoever opens it learns why it no longer
//! works; both go with the tenant.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, TableVisitor, WriteTx, codec};
use crate::ids::{SetupLinkId, TenantId};

const SETUP_LINKS: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("setup_links");
const SETUP_LINK_DIGESTS: TableDefinition<&[u8; 32], (u128, u128)> =
    TableDefinition::new("setup_link_digests");

/// Every table of this module: created at start, copied by a backup.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(SETUP_LINKS)?;
    tables.visit(SETUP_LINK_DIGESTS)?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetupLinkRecord {
    pub id: SetupLinkId,
    pub tenant: TenantId,
    /// The operator's note: whom the link was sent to.
    pub note: Option<String>,
    pub digest: [u8; 32],
    /// The admin key that created the link.
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    /// How many times the link was opened (each opening is audited too).
    #[serde(default)]
    pub opened_count: u64,
    pub last_opened_at: Option<OffsetDateTime>,
}

impl Record for SetupLinkRecord {
    const KIND: &'static str = "setup link";
}

/// Where a link stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    Active,
    Expired,
    Revoked,
}

impl SetupLinkRecord {
    pub fn status(&self, now: OffsetDateTime) -> LinkStatus {
        if self.revoked_at.is_some() {
            LinkStatus::Revoked
        } else if now >= self.expires_at {
            LinkStatus::Expired
        } else {
            LinkStatus::Active
        }
    }
}

/// The link whose token has this digest, whatever its status.
pub fn by_digest(src: &impl Source, digest: &[u8; 32]) -> Result<Option<SetupLinkRecord>, StoreError> {
    let key = src.table(SETUP_LINK_DIGESTS)?.get(digest)?.map(|v| v.value());
    match key {
        Some(key) => codec::get(src, SETUP_LINKS, key),
        None => Ok(None),
    }
}

pub fn get(
    src: &impl Source,
    tenant: TenantId,
    id: SetupLinkId,
) -> Result<Option<SetupLinkRecord>, StoreError> {
    codec::get(src, SETUP_LINKS, (tenant.key(), id.key()))
}

/// The tenant's links, revoked and expired ones included, oldest first.
pub fn list(src: &impl Source, tenant: TenantId) -> Result<Vec<SetupLinkRecord>, StoreError> {
    let table = src.table(SETUP_LINKS)?;
    let t = tenant.key();
    let range = table.range((t, 0)..=(t, u128::MAX))?;
    range.map(|entry| codec::decode(entry?.1.value())).collect()
}

/// Stores a new link, or a changed one (revoked, opened).
pub fn put(tx: &WriteTx<'_>, link: &SetupLinkRecord) -> Result<(), StoreError> {
    let key = (link.tenant.key(), link.id.key());
    tx.table_mut(SETUP_LINKS)?.insert(key, codec::encode(link)?.as_slice())?;
    tx.table_mut(SETUP_LINK_DIGESTS)?.insert(&link.digest, key)?;
    Ok(())
}

pub(super) fn delete_tenant(tx: &WriteTx<'_>, tenant: TenantId) -> Result<(), StoreError> {
    for link in list(tx, tenant)? {
        tx.table_mut(SETUP_LINK_DIGESTS)?.remove(&link.digest)?;
    }
    let t = tenant.key();
    tx.table_mut(SETUP_LINKS)?.retain_in((t, 0)..=(t, u128::MAX), |_, _| false)?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use time::Duration;

    use super::*;

    /// An active link of a new tenant, made at `now`, ending an hour later.
    pub(crate) fn link(now: OffsetDateTime) -> SetupLinkRecord {
        SetupLinkRecord {
            id: SetupLinkId::generate(),
            tenant: TenantId::generate(),
            note: None,
            digest: [7; 32],
            created_by: "key".into(),
            created_at: now,
            expires_at: now + Duration::hours(1),
            revoked_at: None,
            opened_count: 0,
            last_opened_at: None,
        }
    }

    #[test]
    fn a_link_is_active_until_it_expires_or_is_revoked() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut l = link(now);
        assert_eq!(l.status(now), LinkStatus::Active);
        assert_eq!(l.status(now + Duration::minutes(59)), LinkStatus::Active);
        assert_eq!(l.status(now + Duration::hours(1)), LinkStatus::Expired, "the end is exclusive");
        l.revoked_at = Some(now);
        assert_eq!(l.status(now), LinkStatus::Revoked);
        assert_eq!(l.status(now + Duration::hours(2)), LinkStatus::Revoked, "revoked wins over expired");
    }
}
