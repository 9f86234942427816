//! The event outbox (sequence → lifecycle event), written in the transaction of the change it
//! describes, which the events feature delivers as webhooks and serves as a feed with a cursor
//! (the sequence). Its sibling, the audit log, is `audit`.
//!
//! Sequences start at 1 and only grow. An event's id is a UUIDv7 made inside the write: a batch
//! that is re-run after a neighbour's failure discards its first attempt, ids included.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, TableVisitor, WriteTx, codec};
use crate::ids::{EntryId, TenantId};

const EVENT_OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("event_outbox");
/// Event id → sequence: finds the event a receiver names by its `webhook-id`.
const EVENT_IDS: TableDefinition<u128, u64> = TableDefinition::new("event_ids");

/// Every table of this module: created at start, copied by a backup.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(EVENT_OUTBOX)?;
    tables.visit(EVENT_IDS)?;
    Ok(())
}

/// Migration 4: the id index of the events written before it existed.
pub(super) fn index_event_ids(tx: &WriteTx<'_>) -> Result<(), StoreError> {
    let outbox = tx.table(EVENT_OUTBOX)?;
    let mut ids = tx.table_mut(EVENT_IDS)?;
    for entry in outbox.iter()? {
        let event: EventRecord = codec::decode(entry?.1.value())?;
        ids.insert(event.id.key(), event.seq)?;
    }
    Ok(())
}

/// What an event or an audit record is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// `user`, `group`, `scim_token`, …
    pub kind: String,
    pub id: String,
    /// A human-readable name (a userName, a group's name), as it was at the time.
    pub label: Option<String>,
}

/// A lifecycle event (`user.created`, `user.deactivated`, `group.member_added`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: EntryId,
    pub seq: u64,
    pub tenant: TenantId,
    pub kind: String,
    pub occurred_at: OffsetDateTime,
    pub subject: Subject,
    /// The event's payload: the state of the subject that a receiver needs.
    pub data: serde_json::Value,
}

impl Record for EventRecord {
    const KIND: &'static str = "event";
}

fn next_seq(tx: &WriteTx<'_>, table: TableDefinition<u64, &[u8]>) -> Result<u64, StoreError> {
    Ok(tx.table(table)?.last()?.map_or(1, |(key, _)| key.value() + 1))
}

/// Appends an event; its `seq` is assigned here.
pub fn append_event(tx: &WriteTx<'_>, mut event: EventRecord) -> Result<u64, StoreError> {
    event.seq = next_seq(tx, EVENT_OUTBOX)?;
    tx.table_mut(EVENT_OUTBOX)?.insert(event.seq, codec::encode(&event)?.as_slice())?;
    tx.table_mut(EVENT_IDS)?.insert(event.id.key(), event.seq)?;
    Ok(event.seq)
}

/// The event at sequence `seq`.
pub fn event(src: &impl Source, seq: u64) -> Result<Option<EventRecord>, StoreError> {
    codec::get(src, EVENT_OUTBOX, seq)
}

/// The sequence of the event with id `id`.
pub fn seq_of(src: &impl Source, id: EntryId) -> Result<Option<u64>, StoreError> {
    Ok(src.table(EVENT_IDS)?.get(id.key())?.map(|v| v.value()))
}

/// Removes up to `limit` of the oldest events that happened before `cutoff` and have a sequence
/// up to `through`. Returns how many. The last event is always kept: sequences continue from it.
pub fn prune_events(
    tx: &WriteTx<'_>,
    cutoff: OffsetDateTime,
    through: u64,
    limit: usize,
) -> Result<usize, StoreError> {
    let through = through.min(last_seq(tx)?.saturating_sub(1));
    let mut outbox = tx.table_mut(EVENT_OUTBOX)?;
    let mut doomed = Vec::new();
    for entry in outbox.range(..=through)?.take(limit) {
        let event: EventRecord = codec::decode(entry?.1.value())?;
        if event.occurred_at >= cutoff {
            break;
        }
        doomed.push((event.seq, event.id));
    }
    let mut ids = tx.table_mut(EVENT_IDS)?;
    for (seq, id) in &doomed {
        outbox.remove(seq)?;
        ids.remove(id.key())?;
    }
    Ok(doomed.len())
}

/// The last sequence written (0 for none).
pub fn last_seq(src: &impl Source) -> Result<u64, StoreError> {
    Ok(src.table(EVENT_OUTBOX)?.last()?.map_or(0, |(key, _)| key.value()))
}

/// Up to `limit` events after sequence `after`, oldest first.
pub fn events_after(src: &impl Source, after: u64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
    let table = src.table(EVENT_OUTBOX)?;
    let range = table.range(after.saturating_add(1)..)?;
    range.take(limit).map(|entry| codec::decode(entry?.1.value())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    fn event(kind: &str) -> EventRecord {
        EventRecord {
            id: EntryId::generate(),
            seq: 0,
            tenant: TenantId::generate(),
            kind: kind.into(),
            occurred_at: OffsetDateTime::UNIX_EPOCH,
            subject: Subject { kind: "user".into(), id: "u".into(), label: None },
            data: serde_json::json!({}),
        }
    }

    #[tokio::test]
    async fn the_migration_indexes_the_ids_of_events_written_before_the_index() {
        let (_dir, store) = testing::store();
        let written = event("a");
        let id = written.id;
        store.write(move |tx| append_event(tx, written.clone())).await.unwrap();
        // As a database of schema 3 had it: the event without its id entry.
        store
            .write(move |tx| {
                tx.table_mut(EVENT_IDS)?.remove(id.key())?;
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        assert_eq!(store.read_now(|tx| seq_of(tx, id)).unwrap(), None);
        store.write(index_event_ids).await.unwrap();
        assert_eq!(store.read_now(|tx| seq_of(tx, id)).unwrap(), Some(1));
    }

    #[tokio::test]
    async fn pruning_forgets_old_events_up_to_the_cursor_but_never_the_last() {
        let (_dir, store) = testing::store();
        let at = |days: i64| OffsetDateTime::UNIX_EPOCH + time::Duration::days(days);
        let old = |kind: &str, days: i64| EventRecord { occurred_at: at(days), ..event(kind) };
        let first = old("a", 1);
        let first_id = first.id;
        let events = [first, old("b", 2), old("c", 3), old("d", 4)];
        store
            .write(move |tx| events.iter().try_for_each(|e| append_event(tx, e.clone()).map(|_| ())))
            .await
            .unwrap();
        // Older than day 10, but only through sequence 2 (what the fan-out has seen).
        assert_eq!(store.write(move |tx| prune_events(tx, at(10), 2, 100)).await.unwrap(), 2);
        assert_eq!(store.read_now(|tx| seq_of(tx, first_id)).unwrap(), None);
        assert_eq!(store.read_now(|tx| events_after(tx, 0, 10)).unwrap().len(), 2);
        // Everything is old now, but the last event stays: sequences go on from it.
        assert_eq!(store.write(move |tx| prune_events(tx, at(10), 4, 100)).await.unwrap(), 1);
        assert_eq!(store.read_now(last_seq).unwrap(), 4);
        assert_eq!(store.write(|tx| append_event(tx, event("e"))).await.unwrap(), 5);
    }

    #[tokio::test]
    async fn events_get_increasing_sequences_and_read_back_after_a_cursor() {
        let (_dir, store) = testing::store();
        let seqs = store
            .write(|tx| Ok::<_, StoreError>((append_event(tx, event("a"))?, append_event(tx, event("b"))?)))
            .await
            .unwrap();
        assert_eq!(seqs, (1, 2));
        let third = store.write(|tx| append_event(tx, event("c"))).await.unwrap();
        assert_eq!(third, 3);
        let after_one: Vec<String> =
            store.read(|tx| events_after(tx, 1, 10)).await.unwrap().into_iter().map(|e| e.kind).collect();
        assert_eq!(after_one, ["b", "c"]);
    }
}
