//! Setup links, managed by operators under `/api/v1/tenants/{tenant}/setup-links`: a
//! time-limited URL (`{public_url}/admin/setup#pcsl_…`) for a customer's IT admin, who opens it
//! to run the setup wizard for that one tenant without an operator account. The token sits in
//! the URL's fragment, which browsers send to no server and put in no Referer; only its
//! SHA-256 digest is stored. Creating, opening and revoking a link are audited, and every
//! change made through it names the link as its actor.

use axum::{
    Extension, Router,
    extract::{Path, State},
    http::StatusCode,
    middleware::from_extractor_with_state,
    routing::{delete, get},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::{AdminAuth, AdminChange, digest, session::random_token};
use crate::{
    app::AppState,
    http::{ApiError, ApiJson, middleware::RequestId},
    ids::{SetupLinkId, TenantId},
    store::{
        journal::Subject,
        setup_links::{self, LinkStatus, SetupLinkRecord},
    },
    tenants::{self, TenantError},
};

const TOKEN_PREFIX: &str = "pcsl_";
const DEFAULT_HOURS: i64 = 72;
/// A link lives at most 30 days: long enough for a customer's change window, short enough that
/// a forgotten one expires.
const MAX_HOURS: i64 = 720;
const MAX_NOTE_CHARS: usize = 200;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/tenants/{tenant}/setup-links", get(list).post(create))
        .route("/tenants/{tenant}/setup-links/{id}", delete(revoke))
        .route_layer(from_extractor_with_state::<AdminAuth, _>(state))
}

/// The audit trail's name for a link (its note, never its token).
pub fn link_subject(link: &SetupLinkRecord) -> Subject {
    Subject { kind: "setup_link".into(), id: link.id.to_string(), label: link.note.clone() }
}

#[derive(Debug, Serialize)]
struct LinkView {
    id: SetupLinkId,
    tenant_id: TenantId,
    note: Option<String>,
    status: LinkStatus,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
    opened_count: u64,
    #[serde(with = "time::serde::rfc3339::option")]
    last_opened_at: Option<OffsetDateTime>,
}

fn view(link: SetupLinkRecord, now: OffsetDateTime) -> LinkView {
    LinkView {
        id: link.id,
        tenant_id: link.tenant,
        status: link.status(now),
        note: link.note,
        created_at: link.created_at,
        expires_at: link.expires_at,
        revoked_at: link.revoked_at,
        opened_count: link.opened_count,
        last_opened_at: link.last_opened_at,
    }
}

#[derive(Debug, Serialize)]
struct LinkList {
    items: Vec<LinkView>,
}

async fn list(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<ApiJson<LinkList>, ApiError> {
    let links = state
        .store
        .read(move |tx| {
            let tenant = tenants::resolve(tx, &tenant)?;
            Ok::<_, TenantError>(setup_links::list(tx, tenant.id)?)
        })
        .await?;
    let now = state.clock.now();
    // Newest first: the one just sent is what an operator looks for.
    Ok(ApiJson(LinkList { items: links.into_iter().rev().map(|l| view(l, now)).collect() }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateLink {
    note: Option<String>,
    /// The lifetime in hours (72 by default), or
    expires_in_hours: Option<i64>,
    /// the moment it ends.
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

/// When a new link ends: within `MAX_HOURS` from now.
fn expiry(input: &CreateLink, now: OffsetDateTime) -> Result<OffsetDateTime, ApiError> {
    match (input.expires_in_hours, input.expires_at) {
        (Some(_), Some(_)) => {
            Err(ApiError::invalid("expires_at", "give expires_in_hours or expires_at, not both"))
        }
        (Some(hours), None) if !(1..=MAX_HOURS).contains(&hours) => {
            Err(ApiError::invalid("expires_in_hours", format!("must be 1 to {MAX_HOURS} hours")))
        }
        (Some(hours), None) => Ok(now + Duration::hours(hours)),
        (None, Some(at)) if at <= now || at > now + Duration::hours(MAX_HOURS) => Err(ApiError::invalid(
            "expires_at",
            format!("must be in the future and within {MAX_HOURS} hours"),
        )),
        (None, Some(at)) => Ok(at),
        (None, None) => Ok(now + Duration::hours(DEFAULT_HOURS)),
    }
}

#[derive(Debug, Serialize)]
struct CreatedLink {
    #[serde(flatten)]
    view: LinkView,
    /// The link itself: shown in this response only.
    url: String,
}

async fn create(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(tenant): Path<String>,
    ApiJson(input): ApiJson<CreateLink>,
) -> Result<(StatusCode, ApiJson<CreatedLink>), ApiError> {
    let now = state.clock.now();
    let expires_at = expiry(&input, now)?;
    let note = input
        .note
        .filter(|n| !n.trim().is_empty())
        .map(|n| crate::text::label(&n, MAX_NOTE_CHARS))
        .transpose()
        .map_err(|m| ApiError::invalid("note", m))?;
    let token = format!("{TOKEN_PREFIX}{}", random_token());
    let (digest, created_by) = (digest(&token), auth.actor().id);
    let change = AdminChange::new(auth, &request, now);
    let link = state
        .store
        .write(move |tx| {
            let tenant = tenants::resolve(tx, &tenant)?;
            let link = SetupLinkRecord {
                id: SetupLinkId::generate(),
                tenant: tenant.id,
                note: note.clone(),
                digest,
                created_by: created_by.clone(),
                created_at: now,
                expires_at,
                revoked_at: None,
                opened_count: 0,
                last_opened_at: None,
            };
            setup_links::put(tx, &link)?;
            let detail = json!({ "expires_at": crate::store::audit::format_time(link.expires_at) });
            change.audit(tx, Some(tenant.id), "setup_link.create", link_subject(&link), detail)?;
            Ok::<_, TenantError>(link)
        })
        .await?;
    tracing::info!(tenant = %link.tenant, link_id = %link.id, "setup link created");
    let url = format!("{}/admin/setup#{token}", state.public_url);
    Ok((StatusCode::CREATED, ApiJson(CreatedLink { view: view(link, now), url })))
}

async fn revoke(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::NotFound(format!("the tenant has no setup link `{id}`"));
    let link_id: SetupLinkId = id.parse().map_err(|_| not_found())?;
    let now = state.clock.now();
    let change = AdminChange::new(auth, &request, now);
    let found = state
        .store
        .write(move |tx| {
            let tenant = tenants::resolve(tx, &tenant)?;
            let Some(mut link) = setup_links::get(tx, tenant.id, link_id)? else {
                return Ok(false);
            };
            // Revoking a revoked link changes nothing, and is not recorded. Its sessions end
            // with it: each request checks the link.
            if link.revoked_at.is_none() {
                link.revoked_at = Some(now);
                setup_links::put(tx, &link)?;
                change.audit(tx, Some(tenant.id), "setup_link.revoke", link_subject(&link), json!({}))?;
            }
            Ok::<_, TenantError>(true)
        })
        .await?;
    if !found {
        return Err(not_found());
    }
    tracing::info!(link_id = %link_id, "setup link revoked");
    Ok(StatusCode::NO_CONTENT)
}
