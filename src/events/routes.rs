//! Webhooks and the events feed in the admin API:
//! - `GET|POST /webhooks`, `GET|PATCH|DELETE /webhooks/{id}`: endpoints (the signing secret is
//!   shown only when created or rotated);
//! - `POST /webhooks/{id}/secret`: a new secret; the old one keeps signing beside it for the
//!   overlap asked for;
//! - `POST /webhooks/{id}/test`: a signed `webhook.test` event sent at once, and what came back;
//! - `GET /webhooks/{id}/deliveries[?state&before&limit]`, `GET …/deliveries/{event id or seq}`:
//!   deliveries newest first, one with all its attempts;
//! - `POST …/deliveries/{event}/replay`, `POST /webhooks/{id}/replay-failed`: send again;
//! - `GET /events[?after&limit&type&tenant]`, `GET /events/{id or seq}`: the feed, oldest first
//!   from a sequence cursor.

use axum::{
    Extension, Router,
    extract::{Path, State},
    http::StatusCode,
    middleware::from_extractor_with_state,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::{
    EVENT_TYPES,
    delivery::{self, endpoint_subject},
    payload,
    signing::SigningKey,
    urls::UrlPolicy,
};
use crate::{
    admin::{AdminAuth, AdminChange},
    app::AppState,
    http::{ApiError, ApiJson, ApiQuery, middleware::RequestId},
    ids::{EndpointId, EntryId, TenantId},
    store::{
        Source, StoreError,
        audit::format_time,
        journal::{self, EventRecord},
        webhooks::{
            self, Attempt, DeliveryRecord, DeliveryState, EndpointRecord, EndpointStatus, SigningSecret,
        },
    },
    tenants::resolve,
};

const PAGE: usize = 50;
const MAX_PAGE: usize = 500;
/// Events a feed request looks at, matching or not: a narrow filter over a long history answers
/// in bounded time with a cursor to go on from.
const MAX_SCANNED: usize = 20_000;
const MAX_OVERLAP_HOURS: i64 = 7 * 24;
const DEFAULT_OVERLAP_HOURS: i64 = 24;
/// Failed deliveries one `replay-failed` call queues again.
const MAX_REPLAYED: usize = 10_000;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", get(show).patch(update).delete(remove))
        .route("/webhooks/{id}/secret", post(rotate_secret))
        .route("/webhooks/{id}/test", post(send_test))
        .route("/webhooks/{id}/deliveries", get(list_deliveries))
        .route("/webhooks/{id}/deliveries/{event}", get(show_delivery))
        .route("/webhooks/{id}/deliveries/{event}/replay", post(replay))
        .route("/webhooks/{id}/replay-failed", post(replay_failed))
        .route("/events", get(feed))
        .route("/events/{event}", get(show_event))
        .route_layer(from_extractor_with_state::<AdminAuth, _>(state))
}

// --- endpoints ---

#[derive(Debug, Serialize)]
struct EndpointView {
    id: EndpointId,
    url: String,
    description: String,
    event_types: Vec<String>,
    tenants: Vec<TenantId>,
    status: EndpointStatus,
    paused_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    paused_at: Option<OffsetDateTime>,
    consecutive_failures: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    failing_since: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_success_at: Option<OffsetDateTime>,
    /// Deliveries not finished yet.
    backlog: u64,
    /// The secrets signing now: when each was made and, during a rotation's overlap, until when.
    secrets: Vec<Value>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

fn endpoint_view(
    src: &impl Source,
    endpoint: EndpointRecord,
    now: OffsetDateTime,
) -> Result<EndpointView, StoreError> {
    let backlog = webhooks::backlog(src, endpoint.id)?;
    let secrets = endpoint
        .secrets
        .iter()
        .filter(|s| s.expires_at.is_none_or(|at| at > now))
        .map(|s| json!({ "created_at": format_time(s.created_at), "expires_at": s.expires_at.map(format_time) }))
        .collect();
    Ok(EndpointView {
        id: endpoint.id,
        url: endpoint.url,
        description: endpoint.description,
        event_types: endpoint.event_types,
        tenants: endpoint.tenants,
        status: endpoint.status,
        paused_reason: endpoint.paused_reason,
        paused_at: endpoint.paused_at,
        consecutive_failures: endpoint.consecutive_failures,
        failing_since: endpoint.failing_since,
        last_success_at: endpoint.last_success_at,
        backlog,
        secrets,
        created_at: endpoint.created_at,
        updated_at: endpoint.updated_at,
    })
}

/// What an operator sets on an endpoint; absent fields are left as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointSettings {
    url: Option<String>,
    description: Option<String>,
    event_types: Option<Vec<String>>,
    /// Tenant ids or slugs; empty: every tenant.
    tenants: Option<Vec<String>>,
    /// `active` resumes a paused endpoint; `paused` stops attempts (deliveries keep queuing).
    status: Option<EndpointStatus>,
}

impl EndpointSettings {
    /// Checks and applies everything but `tenants` (resolved in the transaction).
    fn apply(
        &self,
        urls: &UrlPolicy,
        endpoint: &mut EndpointRecord,
        now: OffsetDateTime,
    ) -> Result<(), ApiError> {
        if let Some(url) = &self.url {
            endpoint.url = urls.check(url).map_err(|reason| ApiError::invalid("url", reason))?.into();
        }
        if let Some(description) = &self.description {
            if description.chars().count() > 200 {
                return Err(ApiError::invalid("description", "is longer than 200 characters"));
            }
            endpoint.description = description.trim().to_owned();
        }
        if let Some(types) = &self.event_types {
            endpoint.event_types = check_event_types("event_types", types)?;
        }
        match self.status {
            Some(EndpointStatus::Active) if endpoint.status == EndpointStatus::Paused => {
                endpoint.status = EndpointStatus::Active;
                endpoint.paused_at = None;
                endpoint.paused_reason = None;
                endpoint.consecutive_failures = 0;
                endpoint.failing_since = None;
            }
            Some(EndpointStatus::Paused) if endpoint.status == EndpointStatus::Active => {
                endpoint.status = EndpointStatus::Paused;
                endpoint.paused_at = Some(now);
                endpoint.paused_reason = Some("paused by an operator".into());
            }
            _ => {}
        }
        endpoint.updated_at = now;
        Ok(())
    }

    fn tenants(&self, src: &impl Source) -> Result<Option<Vec<TenantId>>, ApiError> {
        let Some(references) = &self.tenants else { return Ok(None) };
        let mut ids = Vec::new();
        for reference in references {
            let tenant = resolve(src, reference)
                .map_err(|_| ApiError::invalid("tenants", format!("there is no tenant `{reference}`")))?;
            if !ids.contains(&tenant.id) {
                ids.push(tenant.id);
            }
        }
        Ok(Some(ids))
    }
}

/// Checks a list of types, families (`user.*`) or `*`; `field` names it in a refusal.
fn check_event_types(field: &'static str, types: &[String]) -> Result<Vec<String>, ApiError> {
    if types.is_empty() {
        return Err(ApiError::invalid(field, "name at least one event type, a family (`user.*`) or `*`"));
    }
    let mut checked = Vec::new();
    for wanted in types {
        let known = EVENT_TYPES.iter().any(|kind| webhooks::type_matches(wanted, kind));
        let well_formed = wanted == "*"
            || !wanted.contains('*')
            || wanted.ends_with(".*") && wanted.matches('*').count() == 1;
        if !known || !well_formed {
            return Err(ApiError::invalid(
                field,
                format!("`{wanted}` is not an event type; the types are {}", EVENT_TYPES.join(", ")),
            ));
        }
        if !checked.contains(wanted) {
            checked.push(wanted.clone());
        }
    }
    Ok(checked)
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no webhook endpoint `{id}`"))
}

fn endpoint_id(id: &str) -> Result<EndpointId, ApiError> {
    id.parse().map_err(|_| not_found(id))
}

/// The endpoint's secrets after a new one: the new one first, the current ones kept for
/// `overlap` (those already ending sooner keep their end).
fn rotated(
    secrets: &[SigningSecret],
    new: SigningSecret,
    overlap: Duration,
    now: OffsetDateTime,
) -> Vec<SigningSecret> {
    let end = now + overlap;
    let kept = secrets
        .iter()
        .filter(|s| s.expires_at.is_none_or(|at| at > now) && overlap > Duration::ZERO)
        .map(|s| SigningSecret { expires_at: Some(s.expires_at.map_or(end, |at| at.min(end))), ..s.clone() });
    std::iter::once(new).chain(kept).collect()
}

async fn list(State(state): State<AppState>) -> Result<ApiJson<Value>, ApiError> {
    let now = state.clock.now();
    let views = state
        .store
        .read(|tx| {
            let endpoints = webhooks::endpoints(tx)?;
            endpoints.into_iter().map(|e| endpoint_view(tx, e, now)).collect::<Result<Vec<_>, StoreError>>()
        })
        .await?;
    Ok(ApiJson(json!({ "items": views })))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<ApiJson<EndpointView>, ApiError> {
    let endpoint = endpoint_id(&id)?;
    let now = state.clock.now();
    let view = state
        .store
        .read(|tx| webhooks::get_endpoint(tx, endpoint)?.map(|e| endpoint_view(tx, e, now)).transpose())
        .await?;
    Ok(ApiJson(view.ok_or_else(|| not_found(&id))?))
}

async fn create(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    ApiJson(settings): ApiJson<EndpointSettings>,
) -> Result<(StatusCode, ApiJson<Value>), ApiError> {
    if settings.url.is_none() {
        return Err(ApiError::invalid("url", "is required"));
    }
    let now = state.clock.now();
    let id = EndpointId::generate();
    let secret = SigningKey::generate();
    let sealed = state.events.seal_secret(id, &secret).map_err(ApiError::Internal)?;
    let mut endpoint = EndpointRecord {
        id,
        url: String::new(),
        description: String::new(),
        event_types: vec!["*".into()],
        tenants: Vec::new(),
        secrets: vec![SigningSecret { sealed, created_at: now, expires_at: None }],
        status: EndpointStatus::Active,
        paused_reason: None,
        paused_at: None,
        consecutive_failures: 0,
        failing_since: None,
        last_success_at: None,
        created_after_seq: 0,
        created_at: now,
        updated_at: now,
    };
    settings.apply(&state.events.urls, &mut endpoint, now)?;
    let change = AdminChange::new(auth, &request, now);
    let view = state
        .store
        .write(move |tx| {
            let mut endpoint = endpoint.clone();
            endpoint.tenants = settings.tenants(tx)?.unwrap_or_default();
            // Delivers what happens from now on; what happened before is in the feed.
            endpoint.created_after_seq = journal::last_seq(tx)?;
            webhooks::put_endpoint(tx, &endpoint)?;
            change.audit(
                tx,
                None,
                "webhook.endpoint.create",
                endpoint_subject(&endpoint),
                audited(&endpoint),
            )?;
            Ok::<_, ApiError>(endpoint_view(tx, endpoint, now)?)
        })
        .await?;
    tracing::info!(endpoint = %id, "webhook endpoint created");
    let mut body = serde_json::to_value(view).map_err(|err| ApiError::Internal(err.to_string()))?;
    body["secret"] = json!(secret);
    Ok((StatusCode::CREATED, ApiJson(body)))
}

/// What the audit trail keeps of an endpoint (never a secret).
fn audited(endpoint: &EndpointRecord) -> Value {
    json!({
        "url": endpoint.url, "description": endpoint.description, "event_types": endpoint.event_types,
        "tenants": endpoint.tenants, "status": endpoint.status,
    })
}

async fn update(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
    ApiJson(settings): ApiJson<EndpointSettings>,
) -> Result<ApiJson<EndpointView>, ApiError> {
    let endpoint_id = endpoint_id(&id)?;
    let now = state.clock.now();
    let change = AdminChange::new(auth, &request, now);
    let urls = std::sync::Arc::clone(&state.events.urls);
    let view = state
        .store
        .write(move |tx| {
            let Some(before) = webhooks::get_endpoint(tx, endpoint_id)? else { return Ok(None) };
            let mut after = before.clone();
            settings.apply(&urls, &mut after, now)?;
            if let Some(tenants) = settings.tenants(tx)? {
                after.tenants = tenants;
            }
            webhooks::put_endpoint(tx, &after)?;
            let detail = json!({ "before": audited(&before), "after": audited(&after) });
            change.audit(tx, None, "webhook.endpoint.update", endpoint_subject(&after), detail)?;
            Ok::<_, ApiError>(Some(endpoint_view(tx, after, now)?))
        })
        .await?
        .ok_or_else(|| not_found(&id))?;
    state.events.wake.notify_one();
    Ok(ApiJson(view))
}

async fn remove(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let endpoint_id = endpoint_id(&id)?;
    let change = AdminChange::new(auth, &request, state.clock.now());
    let removed = state
        .store
        .write(move |tx| {
            let Some(endpoint) = webhooks::get_endpoint(tx, endpoint_id)? else {
                return Ok::<_, StoreError>(false);
            };
            webhooks::delete_endpoint(tx, endpoint_id)?;
            change.audit(
                tx,
                None,
                "webhook.endpoint.delete",
                endpoint_subject(&endpoint),
                audited(&endpoint),
            )?;
            Ok(true)
        })
        .await?;
    if removed { Ok(StatusCode::NO_CONTENT) } else { Err(not_found(&id)) }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateSecret {
    /// How long the current secret keeps signing beside the new one (0–168; 24 by default).
    overlap_hours: Option<i64>,
}

async fn rotate_secret(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<ApiJson<Value>, ApiError> {
    let endpoint_id = endpoint_id(&id)?;
    // The body is optional: none (or `{}`) keeps the current secret for a day.
    let asked: RotateSecret = if body.is_empty() {
        RotateSecret::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|err| ApiError::Malformed(format!("not a rotation request: {err}")))?
    };
    let overlap_hours = asked.overlap_hours.unwrap_or(DEFAULT_OVERLAP_HOURS);
    if !(0..=MAX_OVERLAP_HOURS).contains(&overlap_hours) {
        return Err(ApiError::invalid(
            "overlap_hours",
            format!("is a number of hours from 0 to {MAX_OVERLAP_HOURS}"),
        ));
    }
    let now = state.clock.now();
    let secret = SigningKey::generate();
    let sealed = state.events.seal_secret(endpoint_id, &secret).map_err(ApiError::Internal)?;
    let change = AdminChange::new(auth, &request, now);
    let view = state
        .store
        .write(move |tx| {
            let Some(mut endpoint) = webhooks::get_endpoint(tx, endpoint_id)? else { return Ok(None) };
            let new = SigningSecret { sealed: sealed.clone(), created_at: now, expires_at: None };
            endpoint.secrets = rotated(&endpoint.secrets, new, Duration::hours(overlap_hours), now);
            endpoint.updated_at = now;
            webhooks::put_endpoint(tx, &endpoint)?;
            let detail = json!({ "overlap_hours": overlap_hours });
            change.audit(tx, None, "webhook.endpoint.secret_rotate", endpoint_subject(&endpoint), detail)?;
            Ok::<_, StoreError>(Some(endpoint_view(tx, endpoint, now)?))
        })
        .await?
        .ok_or_else(|| not_found(&id))?;
    let mut body = serde_json::to_value(view).map_err(|err| ApiError::Internal(err.to_string()))?;
    body["secret"] = json!(secret);
    Ok(ApiJson(body))
}

/// Sends a signed `webhook.test` event at once and answers what came back.
async fn send_test(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<ApiJson<Value>, ApiError> {
    let endpoint_id = endpoint_id(&id)?;
    let endpoint = state
        .store
        .read(|tx| webhooks::get_endpoint(tx, endpoint_id))
        .await?
        .ok_or_else(|| not_found(&id))?;
    let attempt = delivery::send_test(&state, &endpoint).await.map_err(ApiError::Internal)?;
    let change = AdminChange::new(auth, &request, state.clock.now());
    let (subject, detail) =
        (endpoint_subject(&endpoint), json!({ "status": attempt.status, "error": attempt.error }));
    state
        .store
        .write(move |tx| change.audit(tx, None, "webhook.endpoint.test", subject.clone(), detail.clone()))
        .await?;
    Ok(ApiJson(json!({ "delivered": attempt.succeeded(), "attempt": attempt_view(&attempt) })))
}

// --- deliveries ---

fn attempt_view(attempt: &Attempt) -> Value {
    json!({
        "at": format_time(attempt.at), "duration_ms": attempt.duration_ms, "status": attempt.status,
        "response": attempt.response, "error": attempt.error, "replay": attempt.replay,
    })
}

fn delivery_view(delivery: &DeliveryRecord, with_attempts: bool) -> Value {
    let mut view = json!({
        "event_id": delivery.event,
        "sequence": delivery.seq,
        "type": delivery.kind,
        "tenant_id": delivery.tenant,
        "state": delivery.state,
        "created_at": format_time(delivery.created_at),
        "next_attempt_at": delivery.due_at.map(format_time),
        "finished_at": delivery.finished_at.map(format_time),
        "attempt_count": delivery.attempt_count,
        "last_attempt": delivery.attempts.last().map(attempt_view),
    });
    if with_attempts {
        view["attempts"] = delivery.attempts.iter().map(attempt_view).collect();
    }
    view
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryParams {
    state: Option<DeliveryState>,
    before: Option<u64>,
    limit: Option<usize>,
}

async fn list_deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<DeliveryParams>,
) -> Result<ApiJson<Value>, ApiError> {
    let endpoint = endpoint_id(&id)?;
    let limit = params.limit.unwrap_or(PAGE).clamp(1, MAX_PAGE);
    let found = state
        .store
        .read(|tx| {
            if webhooks::get_endpoint(tx, endpoint)?.is_none() {
                return Ok(None);
            }
            webhooks::deliveries(tx, endpoint, params.state, params.before, limit).map(Some)
        })
        .await?
        .ok_or_else(|| not_found(&id))?;
    let next_before = (found.len() == limit).then(|| found.last().map(|d| d.seq)).flatten();
    let items: Vec<Value> = found.iter().map(|d| delivery_view(d, false)).collect();
    Ok(ApiJson(json!({ "items": items, "next_before": next_before })))
}

/// An event named by its id (the `webhook-id` receivers see) or its sequence.
fn event_seq(src: &impl Source, reference: &str) -> Result<Option<u64>, StoreError> {
    if let Ok(seq) = reference.parse::<u64>() {
        return Ok(Some(seq));
    }
    match reference.parse::<EntryId>() {
        Ok(id) => journal::seq_of(src, id),
        Err(_) => Ok(None),
    }
}

async fn show_delivery(
    State(state): State<AppState>,
    Path((id, event)): Path<(String, String)>,
) -> Result<ApiJson<Value>, ApiError> {
    let endpoint = endpoint_id(&id)?;
    let found = state
        .store
        .read(|tx| match event_seq(tx, &event)? {
            Some(seq) => webhooks::get_delivery(tx, endpoint, seq),
            None => Ok(None),
        })
        .await?;
    let delivery = found.ok_or_else(|| ApiError::NotFound(format!("no delivery of `{event}` to `{id}`")))?;
    Ok(ApiJson(delivery_view(&delivery, true)))
}

async fn replay(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((id, event)): Path<(String, String)>,
) -> Result<(StatusCode, ApiJson<Value>), ApiError> {
    let endpoint_id = endpoint_id(&id)?;
    let now = state.clock.now();
    let change = AdminChange::new(auth, &request, now);
    let replayed = state
        .store
        .write(move |tx| {
            let Some(endpoint) = webhooks::get_endpoint(tx, endpoint_id)? else { return Ok(None) };
            let Some(seq) = event_seq(tx, &event)? else { return Ok(None) };
            let Some(delivery) = webhooks::replay(tx, endpoint_id, seq, now)? else { return Ok(None) };
            let detail = json!({ "event_id": delivery.event, "sequence": seq, "type": delivery.kind });
            change.audit(
                tx,
                Some(delivery.tenant),
                "webhook.delivery.replay",
                endpoint_subject(&endpoint),
                detail,
            )?;
            Ok::<_, StoreError>(Some(delivery))
        })
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no delivery of that event to `{id}`")))?;
    state.events.wake.notify_one();
    Ok((StatusCode::ACCEPTED, ApiJson(delivery_view(&replayed, false))))
}

/// Queues every failed delivery of an endpoint again (after an outage the receiver has fixed).
async fn replay_failed(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<(StatusCode, ApiJson<Value>), ApiError> {
    let endpoint_id = endpoint_id(&id)?;
    let now = state.clock.now();
    let change = AdminChange::new(auth, &request, now);
    let count = state
        .store
        .write(move |tx| {
            let Some(endpoint) = webhooks::get_endpoint(tx, endpoint_id)? else { return Ok(None) };
            let failed =
                webhooks::deliveries(tx, endpoint_id, Some(DeliveryState::Failed), None, MAX_REPLAYED)?;
            // Oldest first, so that each resource's line keeps the events' order.
            for delivery in failed.iter().rev() {
                webhooks::replay(tx, endpoint_id, delivery.seq, now)?;
            }
            let detail = json!({ "replayed": failed.len() });
            change.audit(tx, None, "webhook.delivery.replay_failed", endpoint_subject(&endpoint), detail)?;
            Ok::<_, StoreError>(Some(failed.len()))
        })
        .await?
        .ok_or_else(|| not_found(&id))?;
    state.events.wake.notify_one();
    Ok((StatusCode::ACCEPTED, ApiJson(json!({ "replayed": count }))))
}

// --- the feed ---

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedParams {
    /// The cursor: the `next_after` of the previous page (0 or absent: from the oldest kept).
    after: Option<u64>,
    limit: Option<usize>,
    /// Comma-separated types or families (`user.*`).
    #[serde(rename = "type")]
    types: Option<String>,
    /// A tenant id or slug.
    tenant: Option<String>,
}

async fn feed(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<FeedParams>,
) -> Result<ApiJson<Value>, ApiError> {
    let limit = params.limit.unwrap_or(PAGE).clamp(1, MAX_PAGE);
    let types = params
        .types
        .as_deref()
        .map(|list| {
            check_event_types("type", &list.split(',').map(|t| t.trim().to_owned()).collect::<Vec<_>>())
        })
        .transpose()?;
    let tenant = match &params.tenant {
        Some(reference) => Some(
            state
                .store
                .read(|tx| resolve(tx, reference))
                .await
                .map_err(|_| ApiError::invalid("tenant", format!("there is no tenant `{reference}`")))?
                .id,
        ),
        None => None,
    };
    let wanted = move |event: &EventRecord| {
        tenant.is_none_or(|t| event.tenant == t)
            && types.as_ref().is_none_or(|types| types.iter().any(|t| webhooks::type_matches(t, &event.kind)))
    };
    let after = params.after.unwrap_or(0);
    let (items, cursor, last) = state
        .store
        .read_blocking(move |tx| {
            let (mut items, mut cursor, mut scanned) = (Vec::new(), after, 0);
            'scan: while scanned < MAX_SCANNED {
                let batch = journal::events_after(tx, cursor, 1000)?;
                if batch.is_empty() {
                    break;
                }
                for event in batch {
                    (cursor, scanned) = (event.seq, scanned + 1);
                    if wanted(&event) {
                        items.push(payload(&event));
                        if items.len() == limit {
                            break 'scan;
                        }
                    }
                }
            }
            Ok::<_, StoreError>((items, cursor, journal::last_seq(tx)?))
        })
        .await?;
    Ok(ApiJson(json!({ "items": items, "next_after": cursor, "has_more": cursor < last })))
}

async fn show_event(
    State(state): State<AppState>,
    Path(event): Path<String>,
) -> Result<ApiJson<Value>, ApiError> {
    let found = state
        .store
        .read(|tx| match event_seq(tx, &event)? {
            Some(seq) => journal::event(tx, seq),
            None => Ok(None),
        })
        .await?;
    let event = found
        .ok_or_else(|| ApiError::NotFound(format!("no event `{event}` (it may be past its retention)")))?;
    Ok(ApiJson(payload(&event)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_filters_name_known_types_families_or_everything() {
        assert_eq!(
            check_event_types("event_types", &["user.*".into(), "user.*".into()]).unwrap(),
            ["user.*"]
        );
        assert!(check_event_types("event_types", &["*".into(), "session.revoked".into()]).is_ok());
        for bad in ["user.signed_in", "us*", "*.created", "bogus.*", ""] {
            assert!(check_event_types("event_types", &[bad.into()]).is_err(), "{bad}");
        }
        assert!(check_event_types("event_types", &[]).is_err());
    }

    #[test]
    fn a_rotation_keeps_the_current_secret_for_the_overlap_only() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(10);
        let secret =
            |name: &str, expires_at| SigningSecret { sealed: name.into(), created_at: now, expires_at };
        let current =
            vec![secret("a", None), secret("old", Some(now + Duration::hours(1))), secret("gone", Some(now))];
        let next = rotated(&current, secret("b", None), Duration::hours(24), now);
        let kept: Vec<(&str, Option<OffsetDateTime>)> =
            next.iter().map(|s| (s.sealed.as_str(), s.expires_at)).collect();
        assert_eq!(
            kept,
            [("b", None), ("a", Some(now + Duration::hours(24))), ("old", Some(now + Duration::hours(1)))]
        );
        assert_eq!(rotated(&current, secret("c", None), Duration::ZERO, now).len(), 1, "no overlap");
    }
}
