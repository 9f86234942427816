//! The audit trail in the admin API:
//! - `GET /api/v1/audit/search`: records newest first, by tenant, actor, user, target, action
//!   (or a dotted prefix), outcome, time range, request id, source address and free text;
//!   `next_before` continues the listing. Answered by the index, read from the log.
//! - `GET /api/v1/audit/records/{id or seq}`: one record, with its hash.
//! - `GET /api/v1/audit/export?format=jsonl|csv`: every record of a time range (and tenant),
//!   oldest first, streamed.
//! - `POST /api/v1/audit/verify`: recomputes the hash chains.
//! - `GET /api/v1/audit/status`: how far the index is behind the log, and each chain's head.
//! - `GET|PUT /api/v1/tenants/{tenant}/audit-retention`: how long a tenant's records are kept.
//!
//! (`GET /api/v1/audit`, the log in sequence order from a cursor for a SIEM to follow, is the
//! admin feature's.)

use axum::{
    Extension, Router,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    middleware::from_extractor_with_state,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{Filters, export, retention};
use crate::{
    admin::{AdminAuth, AdminChange},
    app::AppState,
    http::{ApiError, ApiJson, ApiQuery, middleware::RequestId},
    store::{
        StoreError,
        audit::{self, AuditRecord, INSTANCE_CHAIN},
        directory,
        journal::Subject,
    },
    tenants::resolve,
};

const PAGE: usize = 50;
const MAX_PAGE: usize = 500;
const MAX_RETENTION_DAYS: u32 = 36_500;
/// The longest free-text query: enough for any question, short of a query that costs the index.
const MAX_QUERY_CHARS: usize = 500;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/audit/search", get(search))
        .route("/audit/records/{record}", get(show))
        .route("/audit/export", get(export_records))
        .route("/audit/verify", post(verify))
        .route("/audit/status", get(status))
        .route("/audit/reindex", post(reindex))
        .route_layer(from_extractor_with_state::<AdminAuth, _>(state))
}

/// The routes under a tenant.
pub fn tenant_router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/tenants/{tenant}/audit-retention", get(show_retention).put(set_retention))
        .route_layer(from_extractor_with_state::<AdminAuth, _>(state))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    /// A tenant's id or slug, or `instance`.
    tenant: Option<String>,
    actor: Option<String>,
    /// A user's id, or their user name (or email) as records name them.
    user: Option<String>,
    target: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
    request_id: Option<String>,
    source_ip: Option<String>,
    q: Option<String>,
    before: Option<u64>,
    limit: Option<usize>,
}

async fn search(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<ApiJson<Value>, ApiError> {
    let limit = params.limit.unwrap_or(PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid("limit", format!("must be 1 to {MAX_PAGE}")));
    }
    let filters = filters(&state, params).await?;
    let index = state.audit.clone();
    let indexed_through = index.indexed_seq();
    let seqs = tokio::task::spawn_blocking(move || index.search(&filters, limit))
        .await
        .map_err(|_| ApiError::Internal("the audit search panicked".into()))??;
    let full_page = seqs.len() == limit;
    let next_before = seqs.last().copied().filter(|_| full_page);
    let records = state
        .store
        .read(move |tx| {
            // A record retention removed after it was indexed is no longer there.
            seqs.iter().filter_map(|seq| audit::get(tx, *seq).transpose()).collect::<Result<Vec<_>, _>>()
        })
        .await?;
    let items: Vec<Value> = records.iter().map(view).collect();
    Ok(ApiJson(json!({ "items": items, "next_before": next_before, "indexed_through": indexed_through })))
}

/// The filters a search asks for, checked, with names resolved.
async fn filters(state: &AppState, params: SearchParams) -> Result<Filters, ApiError> {
    let tenant = match params.tenant.as_deref() {
        None => None,
        Some(INSTANCE_CHAIN) => Some(None),
        Some(reference) => {
            let reference = reference.to_owned();
            Some(Some(state.store.read(move |tx| resolve(tx, &reference)).await?.id))
        }
    };
    let mut user: Vec<String> = params.user.iter().cloned().collect();
    // Records name a person by id and by their user name at the time: a name that is a user's
    // now also finds the records made under their id before a rename.
    if let (Some(Some(tenant)), Some(name)) = (tenant, params.user.clone()) {
        let found = state
            .store
            .read(move |tx| {
                let by_name = directory::user_id_by_name(tx, tenant, &name)?;
                let by_email = directory::user_by_email(tx, tenant, &name.to_lowercase())?.map(|u| u.id);
                Ok::<_, StoreError>([by_name, by_email])
            })
            .await?;
        user.extend(found.into_iter().flatten().map(|id| id.to_string()));
    }
    if params.q.as_ref().is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS) {
        return Err(ApiError::invalid("q", format!("must be at most {MAX_QUERY_CHARS} characters")));
    }
    let outcome = params.outcome.map(|o| o.to_lowercase());
    if outcome.as_deref().is_some_and(|o| o != "success" && o != "failure") {
        return Err(ApiError::invalid("outcome", "must be `success` or `failure`"));
    }
    let (since, until) = (time_param("since", params.since)?, time_param("until", params.until)?);
    if let (Some(since), Some(until)) = (since, until) {
        if since >= until {
            return Err(ApiError::invalid("until", "must be after `since`"));
        }
    }
    Ok(Filters {
        chain: tenant.map(audit::chain_of),
        actor: params.actor.into_iter().collect(),
        user,
        target: params.target.into_iter().collect(),
        action: params.action.map(|a| a.trim_end_matches('.').to_lowercase()),
        outcome,
        since,
        until,
        request_id: params.request_id,
        source_ip: params.source_ip,
        text: params.q.filter(|q| !q.trim().is_empty()),
        before: params.before,
    })
}

fn time_param(name: &'static str, value: Option<String>) -> Result<Option<OffsetDateTime>, ApiError> {
    value
        .map(|v| {
            OffsetDateTime::parse(&v, &Rfc3339).map_err(|_| {
                ApiError::invalid(name, "must be an RFC 3339 time, such as 2026-07-01T00:00:00Z")
            })
        })
        .transpose()
}

/// A record as the API shows it: its fields, and its hash.
pub fn view(record: &AuditRecord) -> Value {
    let mut view = record.to_json();
    view["hash"] = json!(record.hash());
    view
}

async fn show(
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<ApiJson<Value>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no audit record `{reference}`"));
    let seq = match reference.parse::<u64>() {
        Ok(seq) => Some(seq),
        Err(_) => {
            let (index, id) = (state.audit.clone(), reference.to_lowercase());
            tokio::task::spawn_blocking(move || index.seq_of(&id))
                .await
                .map_err(|_| ApiError::Internal("the audit search panicked".into()))??
        }
    };
    let Some(seq) = seq else { return Err(not_found()) };
    let record = state.store.read(move |tx| audit::get(tx, seq)).await?.ok_or_else(not_found)?;
    Ok(ApiJson(view(&record)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportParams {
    /// `jsonl` (the default) or `csv`.
    format: Option<String>,
    tenant: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// Streams the records of a range; the export itself is recorded first (who took a copy of the
/// trail, of what), in the chain of the tenant it covers.
async fn export_records(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    let format = match params.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => export::Format::JsonLines,
        "csv" => export::Format::Csv,
        _ => return Err(ApiError::invalid("format", "must be `jsonl` or `csv`")),
    };
    let search = SearchParams {
        tenant: params.tenant,
        since: params.since,
        until: params.until,
        ..Default::default()
    };
    let filters = filters(&state, search).await?;
    let range = export::Range { chain: filters.chain, since: filters.since, until: filters.until };
    let change = AdminChange::new(auth, &request, state.clock.now());
    let tenant = range.chain.as_deref().and_then(|c| c.parse().ok());
    let detail = json!({
        "format": format.extension(),
        "since": range.since.map(audit::format_time), "until": range.until.map(audit::format_time),
    });
    let covered = range.chain.clone().unwrap_or_else(|| "all".into());
    let target = Subject { kind: "audit_chain".into(), id: covered, label: None };
    state
        .store
        .write(move |tx| change.audit(tx, tenant, "audit.export", target.clone(), detail.clone()))
        .await?;
    let body = export::stream(state.store.clone(), range, format);
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    let disposition = format!("attachment; filename=\"audit.{}\"", format.extension());
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyParams {
    tenant: Option<String>,
}

async fn verify(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<VerifyParams>,
) -> Result<ApiJson<Value>, ApiError> {
    let chain = filters(&state, SearchParams { tenant: params.tenant, ..Default::default() }).await?.chain;
    let report = state.store.read_blocking(move |tx| audit::verify(tx, chain.as_deref())).await?;
    Ok(ApiJson(json!({ "intact": report.intact(), "records": report.records(), "report": report })))
}

/// Rebuilds the index from the log in the background (202); `/audit/status` shows the progress.
async fn reindex(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
) -> Result<(StatusCode, ApiJson<Value>), ApiError> {
    let change = AdminChange::new(auth, &request, state.clock.now());
    let target = Subject { kind: "audit_index".into(), id: "audit".into(), label: None };
    state.store.write(move |tx| change.audit(tx, None, "audit.reindex", target.clone(), json!({}))).await?;
    state.audit.request_rebuild();
    Ok((StatusCode::ACCEPTED, ApiJson(json!({ "rebuilding": true }))))
}

async fn status(State(state): State<AppState>) -> Result<ApiJson<Value>, ApiError> {
    let (last_seq, heads) =
        state.store.read(|tx| Ok::<_, StoreError>((audit::last_seq(tx)?, audit::heads(tx)?))).await?;
    let indexed = state.audit.indexed_seq();
    Ok(ApiJson(json!({
        "last_seq": last_seq,
        "indexed_seq": indexed,
        "index_lag": last_seq.saturating_sub(indexed),
        "indexed_records": state.audit.documents(),
        "chains": heads,
    })))
}

async fn show_retention(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<ApiJson<Value>, ApiError> {
    let days = state
        .store
        .read(move |tx| {
            let tenant = resolve(tx, &tenant)?;
            Ok::<_, ApiError>(audit::retention(tx, &tenant.id.to_string())?)
        })
        .await?;
    Ok(ApiJson(json!({ "days": days })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionInput {
    /// Days a record is kept; `null`: forever.
    days: Option<u32>,
}

async fn set_retention(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(tenant): Path<String>,
    ApiJson(input): ApiJson<RetentionInput>,
) -> Result<ApiJson<Value>, ApiError> {
    if input.days.is_some_and(|d| !(1..=MAX_RETENTION_DAYS).contains(&d)) {
        return Err(ApiError::invalid(
            "days",
            format!("must be 1 to {MAX_RETENTION_DAYS}, or null to keep records forever"),
        ));
    }
    let change = AdminChange::new(auth, &request, state.clock.now());
    let chain = state
        .store
        .write(move |tx| {
            let tenant = resolve(tx, &tenant)?;
            let chain = tenant.id.to_string();
            let before = audit::retention(tx, &chain)?;
            audit::set_retention(tx, &chain, input.days)?;
            let target =
                Subject { kind: "tenant".into(), id: chain.clone(), label: Some(tenant.slug.clone()) };
            let detail = json!({ "before": { "days": before }, "after": { "days": input.days } });
            change.audit(tx, Some(tenant.id), "audit_retention.update", target, detail)?;
            Ok::<_, ApiError>(chain)
        })
        .await?;
    if input.days.is_some() {
        // Apply it now rather than at the next hourly sweep.
        tokio::spawn(retention::sweep_chain(state.store.clone(), state.clock.clone(), chain));
    }
    Ok(ApiJson(json!({ "days": input.days })))
}
