//! The operators' side of sessions: list a user's, end one, all of a user's, all of a tenant's.
//! Each ending is audited and reaches the session's clients by back-channel logout.

use axum::{
    Extension, Router,
    extract::{Path, State},
    middleware::from_extractor_with_state,
    routing::{delete, get},
};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::{
    admin::{AdminAuth, AdminChange},
    app::AppState,
    http::{ApiError, ApiJson, middleware::RequestId},
    ids::{ClientId, SessionId, UserId},
    store::{
        journal::Subject,
        sessions::{self as stored, SessionRecord},
    },
    tenants,
};

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/tenants/{tenant}/sessions", delete(end_tenant))
        .route("/tenants/{tenant}/sessions/{session}", delete(end_one))
        .route("/tenants/{tenant}/users/{user}/sessions", get(list_user).delete(end_user))
        .route_layer(from_extractor_with_state::<AdminAuth, _>(state))
}

#[derive(Debug, Serialize)]
struct SessionView {
    id: SessionId,
    user: UserId,
    live: bool,
    idp: String,
    amr: Vec<String>,
    clients: Vec<ClientId>,
    user_agent: Option<String>,
    ip: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    last_active_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
    revoked_reason: Option<String>,
}

fn view(s: SessionRecord, now: OffsetDateTime) -> SessionView {
    SessionView {
        live: s.is_live(now),
        id: s.id,
        user: s.user,
        idp: s.idp,
        amr: s.amr,
        clients: s.clients,
        user_agent: s.user_agent,
        ip: s.ip,
        created_at: s.created_at,
        last_active_at: s.last_active_at,
        expires_at: s.expires_at,
        revoked_at: s.revoked_at,
        revoked_reason: s.revoked_reason,
    }
}

#[derive(Debug, Serialize)]
struct Ended {
    ended: usize,
}

fn session_subject(id: &str) -> Subject {
    Subject { kind: "session".into(), id: id.to_owned(), label: None }
}

async fn list_user(
    State(state): State<AppState>,
    Path((tenant, user)): Path<(String, String)>,
) -> Result<ApiJson<serde_json::Value>, ApiError> {
    let user_id: UserId = user.parse().map_err(|_| ApiError::NotFound(format!("no user `{user}`")))?;
    let now = state.clock.now();
    let sessions = state
        .store
        .read(move |tx| {
            let tenant = tenants::resolve(tx, &tenant)?;
            Ok::<_, ApiError>(stored::of_user(tx, tenant.id, user_id)?)
        })
        .await?;
    let items: Vec<SessionView> = sessions.into_iter().rev().map(|s| view(s, now)).collect();
    Ok(ApiJson(json!({ "items": items })))
}

async fn end_one(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((tenant, session)): Path<(String, String)>,
) -> Result<ApiJson<Ended>, ApiError> {
    let not_found = || ApiError::NotFound(format!("the tenant has no session `{session}`"));
    let session_id: SessionId = session.parse().map_err(|_| not_found())?;
    let change = AdminChange::new(auth, &request, state.clock.now());
    let ended = state
        .store
        .write(move |tx| {
            let tenant = tenants::resolve(tx, &tenant)?;
            match stored::get(tx, session_id)? {
                Some(s) if s.tenant == tenant.id => {}
                _ => return Ok(None),
            }
            let ended = super::end_session(tx, session_id, "admin", change.now)?.is_some();
            change.audit(
                tx,
                Some(tenant.id),
                "session.revoke",
                session_subject(&session_id.to_string()),
                json!({ "was_live": ended }),
            )?;
            Ok::<_, ApiError>(Some(usize::from(ended)))
        })
        .await?;
    ended.map(|ended| ApiJson(Ended { ended })).ok_or_else(not_found)
}

async fn end_user(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((tenant, user)): Path<(String, String)>,
) -> Result<ApiJson<Ended>, ApiError> {
    let user_id: UserId = user.parse().map_err(|_| ApiError::NotFound(format!("no user `{user}`")))?;
    let change = AdminChange::new(auth, &request, state.clock.now());
    let ended = state
        .store
        .write(move |tx| {
            let tenant = tenants::resolve(tx, &tenant)?;
            let ended = super::end_user_sessions(tx, tenant.id, user_id, "admin", change.now)?;
            let subject = Subject { kind: "user".into(), id: user_id.to_string(), label: None };
            change.audit(tx, Some(tenant.id), "session.revoke_user", subject, json!({ "ended": ended }))?;
            Ok::<_, ApiError>(ended)
        })
        .await?;
    Ok(ApiJson(Ended { ended }))
}

async fn end_tenant(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(tenant): Path<String>,
) -> Result<ApiJson<Ended>, ApiError> {
    let change = AdminChange::new(auth, &request, state.clock.now());
    let ended = state
        .store
        .write(move |tx| {
            let tenant = tenants::resolve(tx, &tenant)?;
            let ended = super::end_tenant_sessions(tx, tenant.id, "admin", change.now)?;
            let subject = Subject {
                kind: "tenant".into(),
                id: tenant.id.to_string(),
                label: Some(tenant.slug.clone()),
            };
            change.audit(tx, Some(tenant.id), "session.revoke_tenant", subject, json!({ "ended": ended }))?;
            Ok::<_, ApiError>(ended)
        })
        .await?;
    Ok(ApiJson(Ended { ended }))
}
