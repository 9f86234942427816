//! Back-channel logout tokens waiting to reach the clients of ended sessions: the outbox of
//! OpenID Connect Back-Channel Logout. `logout_deliveries` ((due time in ms, delivery) → record),
//! so that the dispatcher reads only what is due, in order. A delivery is queued in the
//! transaction that ends the session and leaves the queue when the client accepted it or its
//! retries are exhausted.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, TableVisitor, WriteTx, codec};
use crate::ids::{ClientId, DeliveryId, SessionId, TenantId, UserId};

const LOGOUT_DELIVERIES: TableDefinition<(i64, u128), &[u8]> = TableDefinition::new("logout_deliveries");

/// Every table of this module: created at start, copied by a backup.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(LOGOUT_DELIVERIES)?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogoutDeliveryRecord {
    pub id: DeliveryId,
    pub client: ClientId,
    pub uri: String,
    pub tenant: TenantId,
    pub user: UserId,
    pub session: SessionId,
    pub created_at: OffsetDateTime,
    pub due_at: OffsetDateTime,
    pub attempts: u32,
    pub last_error: Option<String>,
}

impl Record for LogoutDeliveryRecord {
    const KIND: &'static str = "logout delivery";
}

fn key(delivery: &LogoutDeliveryRecord) -> (i64, u128) {
    let due_ms = (delivery.due_at.unix_timestamp_nanos() / 1_000_000) as i64;
    (due_ms, delivery.id.key())
}

pub fn enqueue(tx: &WriteTx<'_>, delivery: &LogoutDeliveryRecord) -> Result<(), StoreError> {
    tx.table_mut(LOGOUT_DELIVERIES)?.insert(key(delivery), codec::encode(delivery)?.as_slice())?;
    Ok(())
}

/// Up to `limit` deliveries due at `now`, earliest first.
pub fn due(
    src: &impl Source,
    now: OffsetDateTime,
    limit: usize,
) -> Result<Vec<LogoutDeliveryRecord>, StoreError> {
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let table = src.table(LOGOUT_DELIVERIES)?;
    let range = table.range(..=(now_ms, u128::MAX))?;
    range.take(limit).map(|entry| codec::decode(entry?.1.value())).collect()
}

/// How many deliveries are waiting, due or not.
pub fn backlog(src: &impl Source) -> Result<u64, StoreError> {
    Ok(src.table(LOGOUT_DELIVERIES)?.len()?)
}

/// Removes a delivery (done, or given up).
pub fn remove(tx: &WriteTx<'_>, delivery: &LogoutDeliveryRecord) -> Result<(), StoreError> {
    tx.table_mut(LOGOUT_DELIVERIES)?.remove(key(delivery))?;
    Ok(())
}

/// Moves a delivery to its next attempt.
pub fn reschedule(
    tx: &WriteTx<'_>,
    before: &LogoutDeliveryRecord,
    after: &LogoutDeliveryRecord,
) -> Result<(), StoreError> {
    remove(tx, before)?;
    enqueue(tx, after)
}
