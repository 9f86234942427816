//! Attempts the deliveries that are due, at most `PER_ENDPOINT` at once per endpoint, each in a
//! task of its own: a slow or dead endpoint holds up only its own deliveries, never a request.
//!
//! An attempt POSTs the event's JSON with the Standard Webhooks headers. A 2xx answer delivers
//! it; anything else (another status, a timeout, a refused connection, a refused address) is
//! retried after `initial · 2ⁿ` (capped at `max`) plus up to 20% jitter, until the retry window
//! has passed since the first attempt: then the delivery is marked failed and can be replayed.
//! The outcome, the endpoint's health and a pause (after `pause_after` of failures without a
//! success, and at least `MIN_FAILURES_TO_PAUSE` attempts) commit together.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration as StdDuration, Instant},
};

use rand::Rng;
use serde_json::json;
use time::{Duration, OffsetDateTime};
use tokio::task::JoinSet;

use super::{RetryPolicy, payload, signing};
use crate::{
    app::AppState,
    ids::{EndpointId, EntryId},
    store::{
        StoreError, WriteTx,
        audit::{self, Actor, AuditRecord},
        journal::{self, Subject},
        webhooks::{self, Attempt, DeliveryRecord, EndpointRecord, EndpointStatus, Next},
    },
};

/// Deliveries in flight per endpoint.
pub const PER_ENDPOINT: usize = 16;
/// How often the queue is looked at when nothing wakes the dispatcher.
const IDLE_CHECK: StdDuration = StdDuration::from_secs(1);
/// An endpoint is paused only after this many failed attempts in a row, however long they took.
const MIN_FAILURES_TO_PAUSE: u32 = 5;
/// The part of an answer's body kept with the attempt.
const KEPT_RESPONSE_BYTES: usize = 1024;

/// Runs until the server stops.
pub async fn deliver(state: AppState) {
    let mut dispatcher = Dispatcher::default();
    loop {
        let next_check = match dispatcher.start_due(&state).await {
            Ok(next_check) => next_check,
            Err(err) => {
                tracing::warn!(%err, "cannot read the webhook queue");
                IDLE_CHECK
            }
        };
        tokio::select! {
            Some(done) = dispatcher.running.join_next_with_id(), if !dispatcher.running.is_empty() => {
                dispatcher.finished(done);
                while let Some(done) = dispatcher.running.try_join_next_with_id() {
                    dispatcher.finished(done);
                }
            }
            () = state.events.wake.notified() => {}
            () = tokio::time::sleep(next_check) => {}
        }
    }
}

#[derive(Default)]
struct Dispatcher {
    running: JoinSet<()>,
    /// Each running attempt's delivery, by task (a panicked task is known only by its id).
    tasks: HashMap<tokio::task::Id, (EndpointId, u64)>,
    in_flight: HashSet<(EndpointId, u64)>,
    per_endpoint: HashMap<EndpointId, usize>,
}

impl Dispatcher {
    /// Starts what is due on every active endpoint; returns how long until something else is.
    async fn start_due(&mut self, state: &AppState) -> Result<StdDuration, StoreError> {
        let now = state.clock.now();
        let mut next_check = IDLE_CHECK;
        let endpoints = state.store.read(webhooks::endpoints).await?;
        for endpoint in endpoints.into_iter().filter(|e| e.status == EndpointStatus::Active) {
            let busy = self.per_endpoint.get(&endpoint.id).copied().unwrap_or(0);
            if busy < PER_ENDPOINT {
                let id = endpoint.id;
                let due = state.store.read(|tx| webhooks::due(tx, id, now, PER_ENDPOINT + busy)).await?;
                let fresh: Vec<DeliveryRecord> = due
                    .into_iter()
                    .filter(|d| !self.in_flight.contains(&(id, d.seq)))
                    .take(PER_ENDPOINT - busy)
                    .collect();
                if !fresh.is_empty() {
                    self.start(state, &endpoint, fresh, now);
                }
            }
            if let Some(at) = state.store.read(|tx| webhooks::next_due(tx, endpoint.id)).await? {
                let wait = StdDuration::try_from(at - now).unwrap_or(StdDuration::ZERO);
                if wait > StdDuration::ZERO {
                    next_check = next_check.min(wait);
                }
            }
        }
        Ok(next_check)
    }

    fn start(
        &mut self,
        state: &AppState,
        endpoint: &EndpointRecord,
        due: Vec<DeliveryRecord>,
        now: OffsetDateTime,
    ) {
        let keys = match state.events.signing_keys(endpoint, now) {
            Ok(keys) => keys,
            Err(err) => {
                return tracing::error!(endpoint = %endpoint.id, %err, "cannot open the webhook's signing secret");
            }
        };
        let endpoint = Arc::new(endpoint.clone());
        for delivery in due {
            self.in_flight.insert((endpoint.id, delivery.seq));
            *self.per_endpoint.entry(endpoint.id).or_default() += 1;
            let key = (endpoint.id, delivery.seq);
            let (state, endpoint, keys) = (state.clone(), Arc::clone(&endpoint), Arc::clone(&keys));
            let task = self.running.spawn(async move { attempt(&state, &endpoint, &keys, delivery).await });
            self.tasks.insert(task.id(), key);
        }
    }

    fn finished(&mut self, done: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let task = match done {
            Ok((task, ())) => task,
            Err(err) => {
                tracing::error!(%err, "a webhook attempt failed unexpectedly; it will be retried");
                err.id()
            }
        };
        let Some(key) = self.tasks.remove(&task) else { return };
        self.in_flight.remove(&key);
        if let Some(count) = self.per_endpoint.get_mut(&key.0) {
            *count = count.saturating_sub(1);
        }
    }
}

/// Makes one attempt and records it.
async fn attempt(
    state: &AppState,
    endpoint: &EndpointRecord,
    keys: &[signing::SigningKey],
    delivery: DeliveryRecord,
) {
    let seq = delivery.seq;
    let event = state.store.read(|tx| journal::event(tx, seq)).await;
    let started = state.clock.now();
    let timer = Instant::now();
    let sent = match event {
        Ok(Some(event)) => {
            let body = serde_json::to_vec(&payload(&event)).unwrap_or_default();
            post(state, endpoint, keys, &event.id.to_string(), started.unix_timestamp(), body).await
        }
        Ok(None) => Sent::EventGone,
        Err(err) => return tracing::warn!(%err, "cannot read an event to deliver"),
    };
    let gone = matches!(sent, Sent::EventGone);
    let attempt = sent.into_attempt(started, timer.elapsed());
    let next = decide(&state.events.retry, &delivery, &attempt, gone, state.clock.now());
    log(endpoint, &delivery, &attempt, next);
    let (endpoint_id, pause_after) = (endpoint.id, state.events.pause_after);
    let result = state
        .store
        .write(move |tx| {
            let recorded = webhooks::record_attempt(tx, endpoint_id, seq, attempt.clone(), next)?;
            if recorded.is_some() {
                note_health(tx, endpoint_id, attempt.succeeded(), attempt.at, pause_after)?;
            }
            Ok::<_, StoreError>(())
        })
        .await;
    if let Err(err) = result {
        tracing::warn!(%err, "cannot record a webhook attempt");
    }
}

fn log(endpoint: &EndpointRecord, delivery: &DeliveryRecord, attempt: &Attempt, next: Next) {
    let (endpoint, event, kind) = (endpoint.id, delivery.event, delivery.kind.as_str());
    let status = attempt.status.unwrap_or(0);
    match next {
        Next::Delivered => tracing::debug!(%endpoint, %event, kind, status, "webhook delivered"),
        Next::RetryAt(at) => {
            let error = attempt.error.as_deref().unwrap_or("");
            tracing::info!(%endpoint, %event, kind, status, error, retry_at = %at, "webhook attempt failed")
        }
        Next::GiveUp => tracing::warn!(%endpoint, %event, kind, status, "webhook delivery failed for good"),
    }
}

/// What follows an attempt.
fn decide(
    retry: &RetryPolicy,
    delivery: &DeliveryRecord,
    attempt: &Attempt,
    gone: bool,
    now: OffsetDateTime,
) -> Next {
    if attempt.succeeded() {
        return Next::Delivered;
    }
    let first = delivery.first_attempt_at.unwrap_or(attempt.at);
    if gone || now - first >= retry.window {
        return Next::GiveUp;
    }
    Next::RetryAt(now + backoff(retry, delivery.attempt_count))
}

/// `initial · 2^attempts`, at most `max`, plus up to 20% jitter.
fn backoff(retry: &RetryPolicy, attempts: u32) -> Duration {
    let base = retry.initial.as_secs_f64() * 2f64.powi(attempts.min(30) as i32);
    let capped = base.min(retry.max.as_secs_f64());
    Duration::seconds_f64(capped + rand::rng().random_range(0.0..=0.2) * capped)
}

/// Sends a `webhook.test` event to `endpoint` now, signed as every delivery is, outside the
/// outbox (no retry, nothing in the feed): what an operator runs to check a receiver.
pub async fn send_test(state: &AppState, endpoint: &EndpointRecord) -> Result<Attempt, String> {
    let now = state.clock.now();
    let keys = state.events.signing_keys(endpoint, now)?;
    let id = EntryId::generate().to_string();
    let body = json!({
        "id": id, "type": "webhook.test", "timestamp": audit::format_time(now),
        "data": { "endpoint_id": endpoint.id },
    });
    let timer = Instant::now();
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let sent = post(state, endpoint, &keys, &id, now.unix_timestamp(), body).await;
    Ok(sent.into_attempt(now, timer.elapsed()))
}

/// What an attempt came to.
enum Sent {
    Answered {
        status: u16,
        body: Option<String>,
    },
    NoAnswer(String),
    /// The event was forgotten (retention) before it could be delivered.
    EventGone,
}

impl Sent {
    fn into_attempt(self, at: OffsetDateTime, took: StdDuration) -> Attempt {
        let (status, response, error) = match self {
            Sent::Answered { status, body } => (Some(status), body, None),
            Sent::NoAnswer(reason) => (None, None, Some(reason)),
            Sent::EventGone => {
                (None, None, Some("the event is no longer kept (events_retention_days)".into()))
            }
        };
        Attempt { at, duration_ms: took.as_millis() as u64, status, response, error, replay: false }
    }
}

/// POSTs a signed event.
async fn post(
    state: &AppState,
    endpoint: &EndpointRecord,
    keys: &[signing::SigningKey],
    id: &str,
    timestamp: i64,
    body: Vec<u8>,
) -> Sent {
    let url = match state.events.urls.check(&endpoint.url) {
        Ok(url) => url,
        Err(reason) => return Sent::NoAnswer(format!("the URL is not allowed: {reason}")),
    };
    let signature = signing::signature_header(keys, id, timestamp, &body);
    let sent = state
        .events
        .client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let mut response = match sent {
        Ok(response) => response,
        Err(err) => return Sent::NoAnswer(describe(&err)),
    };
    let status = response.status().as_u16();
    let mut kept = Vec::new();
    while kept.len() < KEPT_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(KEPT_RESPONSE_BYTES);
    Sent::Answered { status, body: (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned()) }
}

/// Why no answer came, without the URL (it may carry a token of the receiver's).
fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out".into();
    }
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(internal) = cause.downcast_ref::<super::urls::InternalAddress>() {
            return internal.to_string();
        }
        if cause.source().is_none() {
            return format!("cannot connect: {cause}");
        }
        source = cause.source();
    }
    if err.is_connect() { "cannot connect".into() } else { "the request failed".into() }
}

/// Keeps the endpoint's run of failures; pauses it when the run is long enough.
fn note_health(
    tx: &WriteTx<'_>,
    id: EndpointId,
    succeeded: bool,
    now: OffsetDateTime,
    pause_after: Duration,
) -> Result<(), StoreError> {
    let Some(mut endpoint) = webhooks::get_endpoint(tx, id)? else { return Ok(()) };
    if succeeded {
        let stale = endpoint.last_success_at.is_none_or(|at| now - at >= Duration::minutes(1));
        if endpoint.consecutive_failures == 0 && !stale {
            return Ok(());
        }
        endpoint.consecutive_failures = 0;
        endpoint.failing_since = None;
        endpoint.last_success_at = Some(now);
        return webhooks::put_endpoint(tx, &endpoint);
    }
    endpoint.consecutive_failures += 1;
    let since = *endpoint.failing_since.get_or_insert(now);
    let due_to_pause = endpoint.status == EndpointStatus::Active
        && endpoint.consecutive_failures >= MIN_FAILURES_TO_PAUSE
        && now - since >= pause_after;
    if due_to_pause {
        endpoint.status = EndpointStatus::Paused;
        endpoint.paused_at = Some(now);
        endpoint.paused_reason = Some(format!(
            "no successful delivery since {} ({} failed attempts)",
            audit::format_time(since),
            endpoint.consecutive_failures
        ));
        endpoint.updated_at = now;
        let record = AuditRecord::new(
            None,
            Actor::system("webhooks"),
            "webhook.endpoint.paused",
            Some(endpoint_subject(&endpoint)),
            json!({ "reason": endpoint.paused_reason, "consecutive_failures": endpoint.consecutive_failures }),
            now,
            None,
        );
        audit::append(tx, record)?;
        tracing::warn!(endpoint = %endpoint.id, failures = endpoint.consecutive_failures, "webhook endpoint paused");
    }
    webhooks::put_endpoint(tx, &endpoint)
}

/// The audit trail's name for an endpoint.
pub fn endpoint_subject(endpoint: &EndpointRecord) -> Subject {
    let label =
        if endpoint.description.is_empty() { endpoint.url.clone() } else { endpoint.description.clone() };
    Subject { kind: "webhook_endpoint".into(), id: endpoint.id.to_string(), label: Some(label) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{EntryId, TenantId};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: StdDuration::from_secs(5),
            max: StdDuration::from_secs(3600),
            window: Duration::days(3),
        }
    }

    fn delivery(first_attempt_at: Option<OffsetDateTime>, attempt_count: u32) -> DeliveryRecord {
        DeliveryRecord {
            endpoint: EndpointId::generate(),
            seq: 1,
            event: EntryId::generate(),
            kind: "user.created".into(),
            tenant: TenantId::generate(),
            resource: "user:a".into(),
            state: webhooks::DeliveryState::Pending,
            created_at: OffsetDateTime::UNIX_EPOCH,
            due_at: Some(OffsetDateTime::UNIX_EPOCH),
            first_attempt_at,
            attempt_count,
            attempts: Vec::new(),
            finished_at: None,
            replayed: false,
        }
    }

    fn answered(at: OffsetDateTime, status: Option<u16>) -> Attempt {
        Attempt { at, duration_ms: 3, status, response: None, error: None, replay: false }
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_bounded_jitter() {
        for (attempts, base) in [(0, 5.0), (1, 10.0), (4, 80.0), (10, 3600.0), (40, 3600.0)] {
            let delay = backoff(&policy(), attempts).as_seconds_f64();
            assert!(delay >= base && delay <= base * 1.2, "attempt {attempts}: {delay}");
        }
    }

    #[test]
    fn failures_retry_until_the_window_closes_and_2xx_delivers() {
        let start = OffsetDateTime::UNIX_EPOCH;
        let now = start + Duration::hours(1);
        assert_eq!(
            decide(&policy(), &delivery(Some(start), 3), &answered(now, Some(204)), false, now),
            Next::Delivered
        );
        let Next::RetryAt(at) =
            decide(&policy(), &delivery(Some(start), 3), &answered(now, Some(500)), false, now)
        else {
            panic!("a 500 within the window is retried");
        };
        assert!(at >= now + Duration::seconds(40) && at <= now + Duration::seconds(48));
        let late = start + Duration::days(3);
        assert_eq!(
            decide(&policy(), &delivery(Some(start), 30), &answered(late, None), false, late),
            Next::GiveUp
        );
        assert_eq!(decide(&policy(), &delivery(None, 0), &answered(now, Some(410)), true, now), Next::GiveUp);
        assert!(matches!(
            decide(&policy(), &delivery(None, 0), &answered(now, Some(301)), false, now),
            Next::RetryAt(_)
        ));
    }
}
