//! Webhook endpoints and the deliveries of lifecycle events to them.
//!
//! The fan-out (`fan_out`) turns each new event of the outbox into one delivery per endpoint that
//! wants it, in the order of the outbox, and moves the endpoint's cursor (`webhook_fanout`) in the
//! same commit. Deliveries of one resource (a user, a group, a session) to one endpoint form a
//! line: only its head is due at a time, so a receiver sees a resource's events in order while
//! other resources go on. Tables:
//! - `webhook_endpoints` (endpoint → record);
//! - `webhook_deliveries` ((endpoint, event seq) → record): every delivery with its attempts, kept
//!   until pruned;
//! - `webhook_waiting` ((endpoint, resource, seq)): the deliveries not finished yet, per resource;
//! - `webhook_due` ((endpoint, due ms, seq)): the head of each resource's line and when it is due;
//! - `webhook_fanout` (`cursor` → the last outbox sequence fanned out).

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, TableVisitor, WriteTx, codec, journal::EventRecord};
use crate::ids::{EndpointId, EntryId, TenantId};

const ENDPOINTS: TableDefinition<u128, &[u8]> = TableDefinition::new("webhook_endpoints");
const DELIVERIES: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("webhook_deliveries");
const WAITING: TableDefinition<(u128, &str, u64), ()> = TableDefinition::new("webhook_waiting");
const DUE: TableDefinition<(u128, i64, u64), ()> = TableDefinition::new("webhook_due");
const FANOUT: TableDefinition<&str, u64> = TableDefinition::new("webhook_fanout");
const CURSOR: &str = "cursor";

/// Attempts kept per delivery: the first and the latest ones.
const KEPT_ATTEMPTS: usize = 20;

/// Every table of this module: created at start, copied by a backup.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(ENDPOINTS)?;
    tables.visit(DELIVERIES)?;
    tables.visit(WAITING)?;
    tables.visit(DUE)?;
    tables.visit(FANOUT)?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStatus {
    Active,
    /// No attempts are made; deliveries wait (and new ones queue up) until it is resumed.
    Paused,
}

/// A signing secret, sealed at rest (`crate::secrets`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SigningSecret {
    pub sealed: String,
    pub created_at: OffsetDateTime,
    /// A replaced secret keeps signing (beside its successor) until then.
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub id: EndpointId,
    pub url: String,
    pub description: String,
    /// Event types (`user.deactivated`), families (`user.*`) or `*`.
    pub event_types: Vec<String>,
    /// Only these tenants' events; empty: every tenant's.
    pub tenants: Vec<TenantId>,
    /// Newest first.
    pub secrets: Vec<SigningSecret>,
    pub status: EndpointStatus,
    pub paused_reason: Option<String>,
    pub paused_at: Option<OffsetDateTime>,
    /// Failed attempts since the last success, and when that run of failures began.
    pub consecutive_failures: u32,
    pub failing_since: Option<OffsetDateTime>,
    pub last_success_at: Option<OffsetDateTime>,
    /// Events up to this outbox sequence were there before the endpoint: not delivered.
    pub created_after_seq: u64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Record for EndpointRecord {
    const KIND: &'static str = "webhook endpoint";
}

impl EndpointRecord {
    /// Whether the endpoint wants `event`.
    pub fn wants(&self, event: &EventRecord) -> bool {
        event.seq > self.created_after_seq
            && (self.tenants.is_empty() || self.tenants.contains(&event.tenant))
            && self.event_types.iter().any(|pattern| type_matches(pattern, &event.kind))
    }
}

/// `*`, `user.*` (a family) or an exact type.
pub fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its turn or its next attempt.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Retried until the retry window closed; can be replayed.
    Failed,
}

/// One POST to the endpoint and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: OffsetDateTime,
    pub duration_ms: u64,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// The start of the answer's body (at most 1 KiB).
    pub response: Option<String>,
    /// Why no answer came (timeout, refused connection, address not allowed).
    pub error: Option<String>,
    /// Made because an operator asked for it.
    #[serde(default)]
    pub replay: bool,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|status| (200..300).contains(&status))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub endpoint: EndpointId,
    /// The event's outbox sequence.
    pub seq: u64,
    pub event: EntryId,
    pub kind: String,
    pub tenant: TenantId,
    /// The line this delivery waits in: `user:<id>`, `group:<id>`, `session:<id>`.
    pub resource: String,
    pub state: DeliveryState,
    pub created_at: OffsetDateTime,
    /// When it is due, while it is the head of its line; `None` while it waits behind another.
    pub due_at: Option<OffsetDateTime>,
    /// The first attempt of the current run (a replay starts a new one): the retry window
    /// counts from it.
    pub first_attempt_at: Option<OffsetDateTime>,
    pub attempt_count: u32,
    /// The first and the latest attempts (`KEPT_ATTEMPTS` in all).
    pub attempts: Vec<Attempt>,
    pub finished_at: Option<OffsetDateTime>,
    /// An operator replayed it: its next attempt is marked as a replay.
    #[serde(default)]
    pub replayed: bool,
}

impl Record for DeliveryRecord {
    const KIND: &'static str = "webhook delivery";
}

fn millis(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

// --- endpoints ---

pub fn get_endpoint(src: &impl Source, id: EndpointId) -> Result<Option<EndpointRecord>, StoreError> {
    codec::get(src, ENDPOINTS, id.key())
}

/// Every endpoint, oldest first.
pub fn endpoints(src: &impl Source) -> Result<Vec<EndpointRecord>, StoreError> {
    let table = src.table(ENDPOINTS)?;
    table.iter()?.map(|entry| codec::decode(entry?.1.value())).collect()
}

pub fn put_endpoint(tx: &WriteTx<'_>, endpoint: &EndpointRecord) -> Result<(), StoreError> {
    tx.table_mut(ENDPOINTS)?.insert(endpoint.id.key(), codec::encode(endpoint)?.as_slice())?;
    Ok(())
}

/// Deletes an endpoint with its deliveries. Returns false if there was none.
pub fn delete_endpoint(tx: &WriteTx<'_>, id: EndpointId) -> Result<bool, StoreError> {
    let key = id.key();
    if tx.table_mut(ENDPOINTS)?.remove(key)?.is_none() {
        return Ok(false);
    }
    tx.table_mut(DELIVERIES)?.retain_in((key, 0)..=(key, u64::MAX), |_, _| false)?;
    tx.table_mut(DUE)?.retain_in((key, i64::MIN, 0)..=(key, i64::MAX, u64::MAX), |_, _| false)?;
    let mut waiting = tx.table_mut(WAITING)?;
    let mut keys: Vec<(String, u64)> = Vec::new();
    for entry in waiting.range((key, "", 0)..)? {
        let (entry_key, _) = entry?;
        let (owner, resource, seq) = entry_key.value();
        if owner != key {
            break;
        }
        keys.push((resource.to_owned(), seq));
    }
    for (resource, seq) in keys {
        waiting.remove((key, resource.as_str(), seq))?;
    }
    Ok(true)
}

// --- fan-out ---

/// The last outbox sequence already turned into deliveries.
pub fn fanout_cursor(src: &impl Source) -> Result<u64, StoreError> {
    Ok(src.table(FANOUT)?.get(CURSOR)?.map_or(0, |v| v.value()))
}

/// Queues a delivery of each event to each endpoint that wants it, and moves the cursor past
/// the events. Returns how many deliveries were queued.
pub fn fan_out(
    tx: &WriteTx<'_>,
    events: &[EventRecord],
    endpoints: &[EndpointRecord],
    now: OffsetDateTime,
) -> Result<usize, StoreError> {
    let Some(last) = events.last() else { return Ok(0) };
    let mut queued = 0;
    for event in events {
        for endpoint in endpoints.iter().filter(|endpoint| endpoint.wants(event)) {
            enqueue(tx, endpoint.id, event, now)?;
            queued += 1;
        }
    }
    tx.table_mut(FANOUT)?.insert(CURSOR, last.seq)?;
    Ok(queued)
}

/// Starts the fan-out at `seq` (a database whose outbox predates webhooks).
pub fn set_fanout_cursor(tx: &WriteTx<'_>, seq: u64) -> Result<(), StoreError> {
    tx.table_mut(FANOUT)?.insert(CURSOR, seq)?;
    Ok(())
}

fn resource_of(event: &EventRecord) -> String {
    format!("{}:{}", event.subject.kind, event.subject.id)
}

fn enqueue(
    tx: &WriteTx<'_>,
    endpoint: EndpointId,
    event: &EventRecord,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let mut delivery = DeliveryRecord {
        endpoint,
        seq: event.seq,
        event: event.id,
        kind: event.kind.clone(),
        tenant: event.tenant,
        resource: resource_of(event),
        state: DeliveryState::Pending,
        created_at: now,
        due_at: None,
        first_attempt_at: None,
        attempt_count: 0,
        attempts: Vec::new(),
        finished_at: None,
        replayed: false,
    };
    join_line(tx, &mut delivery, now)?;
    save(tx, &delivery)
}

/// Puts a delivery at the end of its resource's line; at once due if the line was empty.
fn join_line(tx: &WriteTx<'_>, delivery: &mut DeliveryRecord, now: OffsetDateTime) -> Result<(), StoreError> {
    let key = delivery.endpoint.key();
    let line_empty = first_waiting(tx, key, &delivery.resource)?.is_none();
    tx.table_mut(WAITING)?.insert((key, delivery.resource.as_str(), delivery.seq), ())?;
    if line_empty {
        delivery.due_at = Some(now);
        tx.table_mut(DUE)?.insert((key, millis(now), delivery.seq), ())?;
    }
    Ok(())
}

fn first_waiting(src: &impl Source, endpoint: u128, resource: &str) -> Result<Option<u64>, StoreError> {
    let table = src.table(WAITING)?;
    let mut range = table.range((endpoint, resource, 0)..=(endpoint, resource, u64::MAX))?;
    Ok(range.next().transpose()?.map(|(key, _)| key.value().2))
}

fn save(tx: &WriteTx<'_>, delivery: &DeliveryRecord) -> Result<(), StoreError> {
    let key = (delivery.endpoint.key(), delivery.seq);
    tx.table_mut(DELIVERIES)?.insert(key, codec::encode(delivery)?.as_slice())?;
    Ok(())
}

// --- delivery ---

pub fn get_delivery(
    src: &impl Source,
    endpoint: EndpointId,
    seq: u64,
) -> Result<Option<DeliveryRecord>, StoreError> {
    codec::get(src, DELIVERIES, (endpoint.key(), seq))
}

/// Up to `limit` deliveries of `endpoint` due at `now`, earliest first.
pub fn due(
    src: &impl Source,
    endpoint: EndpointId,
    now: OffsetDateTime,
    limit: usize,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let key = endpoint.key();
    let table = src.table(DUE)?;
    let mut found = Vec::new();
    for entry in table.range((key, i64::MIN, 0)..=(key, millis(now), u64::MAX))?.take(limit) {
        let seq = entry?.0.value().2;
        found.extend(get_delivery(src, endpoint, seq)?);
    }
    Ok(found)
}

/// When the next delivery of `endpoint` falls due, if any is waiting.
pub fn next_due(src: &impl Source, endpoint: EndpointId) -> Result<Option<OffsetDateTime>, StoreError> {
    let key = endpoint.key();
    let table = src.table(DUE)?;
    let mut range = table.range((key, i64::MIN, 0)..=(key, i64::MAX, u64::MAX))?;
    let first = range.next().transpose()?.map(|(key, _)| key.value().1);
    Ok(first.and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()))
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    Delivered,
    RetryAt(OffsetDateTime),
    /// The retry window has closed.
    GiveUp,
}

/// Records an attempt and its consequence. Finishing a delivery makes the next one of its line
/// due at once. Returns the delivery as it is now, or `None` if it is gone (endpoint deleted) or
/// no longer the one attempted (replayed meanwhile).
pub fn record_attempt(
    tx: &WriteTx<'_>,
    endpoint: EndpointId,
    seq: u64,
    attempt: Attempt,
    next: Next,
) -> Result<Option<DeliveryRecord>, StoreError> {
    let Some(mut delivery) = get_delivery(tx, endpoint, seq)? else { return Ok(None) };
    let Some(due_at) = delivery.due_at.filter(|_| delivery.state == DeliveryState::Pending) else {
        return Ok(None);
    };
    let now = attempt.at;
    let attempt = Attempt { replay: delivery.replayed, ..attempt };
    delivery.replayed = false;
    tx.table_mut(DUE)?.remove((endpoint.key(), millis(due_at), seq))?;
    delivery.first_attempt_at.get_or_insert(now);
    delivery.attempt_count += 1;
    if delivery.attempts.len() >= KEPT_ATTEMPTS {
        delivery.attempts.remove(1);
    }
    delivery.attempts.push(attempt);
    match next {
        Next::RetryAt(at) => {
            delivery.due_at = Some(at);
            tx.table_mut(DUE)?.insert((endpoint.key(), millis(at), seq), ())?;
        }
        Next::Delivered | Next::GiveUp => {
            delivery.state =
                if next == Next::Delivered { DeliveryState::Delivered } else { DeliveryState::Failed };
            delivery.due_at = None;
            delivery.finished_at = Some(now);
            leave_line(tx, &delivery, now)?;
        }
    }
    save(tx, &delivery)?;
    Ok(Some(delivery))
}

/// Takes a finished delivery out of its line; the next of the line is due at once.
fn leave_line(tx: &WriteTx<'_>, delivery: &DeliveryRecord, now: OffsetDateTime) -> Result<(), StoreError> {
    let key = delivery.endpoint.key();
    tx.table_mut(WAITING)?.remove((key, delivery.resource.as_str(), delivery.seq))?;
    if let Some(next_seq) = first_waiting(tx, key, &delivery.resource)? {
        if let Some(mut next) = get_delivery(tx, delivery.endpoint, next_seq)? {
            next.due_at = Some(now);
            tx.table_mut(DUE)?.insert((key, millis(now), next_seq), ())?;
            save(tx, &next)?;
        }
    }
    Ok(())
}

/// Queues a finished delivery again (same event, same id): at once if its line is empty, else
/// after the deliveries ahead of it. Returns it, or `None` if there is no such delivery; a
/// pending one is left as it is.
pub fn replay(
    tx: &WriteTx<'_>,
    endpoint: EndpointId,
    seq: u64,
    now: OffsetDateTime,
) -> Result<Option<DeliveryRecord>, StoreError> {
    let Some(mut delivery) = get_delivery(tx, endpoint, seq)? else { return Ok(None) };
    if delivery.state != DeliveryState::Pending {
        delivery.state = DeliveryState::Pending;
        delivery.finished_at = None;
        delivery.first_attempt_at = None;
        delivery.replayed = true;
        join_line(tx, &mut delivery, now)?;
        save(tx, &delivery)?;
    }
    Ok(Some(delivery))
}

/// An endpoint's deliveries, newest first, from before sequence `before`, optionally of one state.
pub fn deliveries(
    src: &impl Source,
    endpoint: EndpointId,
    state: Option<DeliveryState>,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let key = endpoint.key();
    let table = src.table(DELIVERIES)?;
    let end = before.map_or(u64::MAX, |seq| seq.saturating_sub(1));
    let mut found = Vec::new();
    for entry in table.range((key, 0)..=(key, end))?.rev() {
        let delivery: DeliveryRecord = codec::decode(entry?.1.value())?;
        if state.is_none_or(|state| delivery.state == state) {
            found.push(delivery);
            if found.len() == limit {
                break;
            }
        }
    }
    Ok(found)
}

/// How many deliveries of `endpoint` are not finished.
pub fn backlog(src: &impl Source, endpoint: EndpointId) -> Result<u64, StoreError> {
    let key = endpoint.key();
    let table = src.table(WAITING)?;
    let mut count = 0;
    for entry in table.range((key, "", 0)..)? {
        if entry?.0.value().0 != key {
            break;
        }
        count += 1;
    }
    Ok(count)
}

/// How many deliveries are not finished, every endpoint's (paused ones' included). redb keeps
/// each table's length in its header, so this costs no scan, however long the backlog.
pub fn waiting_total(src: &impl Source) -> Result<u64, StoreError> {
    Ok(src.table(WAITING)?.len()?)
}

/// Forgets up to `limit` finished deliveries that finished before `cutoff`. Returns how many.
/// Each endpoint's deliveries are in event order, so the scan stops at its first one made after
/// the cutoff: it reads only the old ones, not the whole log.
pub fn prune_finished(tx: &WriteTx<'_>, cutoff: OffsetDateTime, limit: usize) -> Result<usize, StoreError> {
    let mut doomed = Vec::new();
    for endpoint in endpoints(tx)? {
        let key = endpoint.id.key();
        let table = tx.table(DELIVERIES)?;
        for entry in table.range((key, 0)..=(key, u64::MAX))? {
            let (entry_key, value) = entry?;
            let delivery: DeliveryRecord = codec::decode(value.value())?;
            if delivery.created_at >= cutoff || doomed.len() == limit {
                break;
            }
            if delivery.finished_at.is_some_and(|at| at < cutoff) {
                doomed.push(entry_key.value());
            }
        }
    }
    let mut table = tx.table_mut(DELIVERIES)?;
    for key in &doomed {
        table.remove(key)?;
    }
    Ok(doomed.len())
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;
    use crate::store::{journal::Subject, testing};

    fn endpoint(types: &[&str]) -> EndpointRecord {
        let now = OffsetDateTime::UNIX_EPOCH;
        EndpointRecord {
            id: EndpointId::generate(),
            url: "https://hooks.example.com/".into(),
            description: String::new(),
            event_types: types.iter().map(|t| t.to_string()).collect(),
            tenants: Vec::new(),
            secrets: Vec::new(),
            status: EndpointStatus::Active,
            paused_reason: None,
            paused_at: None,
            consecutive_failures: 0,
            failing_since: None,
            last_success_at: None,
            created_after_seq: 0,
            created_at: now,
            updated_at: now,
        }
    }

    fn event(seq: u64, kind: &str, subject: &str) -> EventRecord {
        EventRecord {
            id: EntryId::generate(),
            seq,
            tenant: TenantId::from_key(1),
            kind: kind.into(),
            occurred_at: OffsetDateTime::UNIX_EPOCH,
            subject: Subject { kind: "user".into(), id: subject.into(), label: None },
            data: serde_json::json!({}),
        }
    }

    fn attempt(at: OffsetDateTime, status: u16) -> Attempt {
        Attempt { at, duration_ms: 1, status: Some(status), response: None, error: None, replay: false }
    }

    /// A store with `hook` saved and `events` fanned out to it at `now`.
    async fn queued(
        hook: EndpointRecord,
        events: Vec<EventRecord>,
        now: OffsetDateTime,
    ) -> (tempfile::TempDir, crate::store::Store) {
        let (dir, store) = testing::store();
        store
            .write(move |tx| {
                put_endpoint(tx, &hook)?;
                fan_out(tx, &events, std::slice::from_ref(&hook), now)
            })
            .await
            .unwrap();
        (dir, store)
    }

    fn due_seqs(store: &crate::store::Store, endpoint: EndpointId, now: OffsetDateTime) -> Vec<u64> {
        store.read_now(|tx| due(tx, endpoint, now, 100)).unwrap().iter().map(|d| d.seq).collect()
    }

    #[test]
    fn patterns_match_types_families_and_everything() {
        assert!(type_matches("*", "user.created"));
        assert!(type_matches("user.*", "user.created"));
        assert!(!type_matches("user.*", "group.created"));
        assert!(type_matches("user.created", "user.created"));
        assert!(!type_matches("user.created", "user.created_extra"));
    }

    #[tokio::test]
    async fn a_resource_waits_for_its_earlier_event_while_others_go_on() {
        let hook = endpoint(&["*"]);
        let id = hook.id;
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let events =
            vec![event(1, "user.created", "a"), event(2, "user.created", "b"), event(3, "user.updated", "a")];
        let (_dir, store) = queued(hook, events, now).await;
        assert_eq!(due_seqs(&store, id, now), [1, 2], "a's second event waits behind its first");

        // a's first event fails and is retried later: a's second still waits.
        let later = now + Duration::seconds(30);
        store
            .write(move |tx| record_attempt(tx, id, 1, attempt(now, 500), Next::RetryAt(later)))
            .await
            .unwrap();
        assert_eq!(due_seqs(&store, id, now), [2]);
        assert_eq!(due_seqs(&store, id, later), [2, 1], "earliest due first");

        // Delivered: the next of a's line is due at once.
        store.write(move |tx| record_attempt(tx, id, 1, attempt(later, 204), Next::Delivered)).await.unwrap();
        assert_eq!(due_seqs(&store, id, later), [2, 3]);
        let first = store.read_now(|tx| get_delivery(tx, id, 1)).unwrap().unwrap();
        assert_eq!(
            (first.state, first.attempt_count, first.attempts.len()),
            (DeliveryState::Delivered, 2, 2)
        );
        assert_eq!(store.read_now(|tx| backlog(tx, id)).unwrap(), 2);
        assert_eq!(store.read_now(waiting_total).unwrap(), 2);
    }

    #[tokio::test]
    async fn a_replayed_delivery_queues_behind_its_line_and_keeps_its_event() {
        let hook = endpoint(&["user.*"]);
        let id = hook.id;
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let events = vec![event(1, "user.created", "a"), event(2, "user.updated", "a")];
        let (_dir, store) = queued(hook, events, now).await;
        store.write(move |tx| record_attempt(tx, id, 1, attempt(now, 500), Next::GiveUp)).await.unwrap();
        assert_eq!(due_seqs(&store, id, now), [2]);
        let replayed = store.write(move |tx| replay(tx, id, 1, now)).await.unwrap().unwrap();
        assert_eq!((replayed.state, replayed.due_at), (DeliveryState::Pending, None), "behind 2");
        store.write(move |tx| record_attempt(tx, id, 2, attempt(now, 200), Next::Delivered)).await.unwrap();
        assert_eq!(due_seqs(&store, id, now), [1]);
        let failed = store.read_now(|tx| deliveries(tx, id, Some(DeliveryState::Failed), None, 10)).unwrap();
        assert!(failed.is_empty());
    }

    #[tokio::test]
    async fn unwanted_events_and_events_before_the_endpoint_are_not_delivered() {
        let (_dir, store) = testing::store();
        let mut hook = endpoint(&["user.deactivated"]);
        hook.created_after_seq = 1;
        let id = hook.id;
        let now = OffsetDateTime::UNIX_EPOCH;
        let events = vec![
            event(1, "user.deactivated", "a"),
            event(2, "user.created", "b"),
            event(3, "user.deactivated", "c"),
        ];
        let queued =
            store.write(move |tx| fan_out(tx, &events, std::slice::from_ref(&hook), now)).await.unwrap();
        assert_eq!(queued, 1);
        assert_eq!(due_seqs(&store, id, now), [3]);
        assert_eq!(store.read_now(fanout_cursor).unwrap(), 3);
    }

    #[tokio::test]
    async fn pruning_forgets_only_deliveries_finished_before_the_cutoff() {
        let hook = endpoint(&["*"]);
        let id = hook.id;
        let day = |n: i64| OffsetDateTime::UNIX_EPOCH + Duration::days(n);
        let events =
            vec![event(1, "user.created", "a"), event(2, "user.created", "b"), event(3, "user.created", "c")];
        let (_dir, store) = queued(hook, events, day(1)).await;
        store
            .write(move |tx| record_attempt(tx, id, 1, attempt(day(1), 200), Next::Delivered))
            .await
            .unwrap();
        store
            .write(move |tx| record_attempt(tx, id, 2, attempt(day(5), 200), Next::Delivered))
            .await
            .unwrap();
        assert_eq!(store.write(move |tx| prune_finished(tx, day(3), 100)).await.unwrap(), 1);
        let kept: Vec<u64> =
            store.read_now(|tx| deliveries(tx, id, None, None, 10)).unwrap().iter().map(|d| d.seq).collect();
        assert_eq!(kept, [3, 2], "the pending one and the one finished after the cutoff");
    }

    #[tokio::test]
    async fn deleting_an_endpoint_forgets_its_deliveries() {
        let hook = endpoint(&["*"]);
        let id = hook.id;
        let now = OffsetDateTime::UNIX_EPOCH;
        let events = vec![event(1, "user.created", "a"), event(2, "user.updated", "a")];
        let (_dir, store) = queued(hook, events, now).await;
        assert!(store.write(move |tx| delete_endpoint(tx, id)).await.unwrap());
        assert!(due_seqs(&store, id, now).is_empty());
        assert_eq!(store.read_now(|tx| backlog(tx, id)).unwrap(), 0);
        assert!(store.read_now(|tx| deliveries(tx, id, None, None, 10)).unwrap().is_empty());
    }
}
