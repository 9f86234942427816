//! The operators' side: admin API keys, the extractor that guards the admin API, the
//! dashboard's pages and sessions, and setup links for customers' IT admins.

mod audit;
mod auth;
mod instance;
mod keys;
mod openapi;
mod session;
mod setup_links;
mod ui;

use axum::{
    Extension, Router,
    extract::{Path, State},
    http::StatusCode,
    middleware::from_extractor_with_state,
    routing::{delete, get},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

pub use audit::AdminChange;
pub use auth::{AdminAuth, Caller};
pub use keys::{IssuedKey, digest, issue_key, validate_supplied_key};

/// The record of an operator-supplied first key.
pub fn keys_record_for(key: &str, now: OffsetDateTime) -> admin_keys::AdminKeyRecord {
    keys::supplied_record(key, "bootstrap key".into(), now)
}

use crate::{
    app::AppState,
    http::{ApiError, ApiJson, middleware::RequestId},
    ids::AdminKeyId,
    store::{StoreError, admin_keys, journal::Subject},
};

/// The audit trail's name for an admin key (never its secret, nor the part of it the list shows).
pub fn key_subject(key: &admin_keys::AdminKeyRecord) -> Subject {
    Subject { kind: "admin_key".into(), id: key.id.to_string(), label: Some(key.name.clone()) }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no admin credentials")]
    MissingCredentials,
    #[error("invalid admin credentials")]
    InvalidCredentials,
    #[error("invalid {field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("no admin key {0}")]
    KeyNotFound(String),
    #[error("the last active admin key cannot be revoked")]
    LastKey,
    #[error("this key's scope does not reach this route")]
    OutOfScope(admin_keys::KeyScope),
    #[error("a setup link reaches only its own tenant's setup")]
    OutsideSetup,
    #[error("the dashboard session has ended")]
    SessionEnded,
    #[error("the request lacks the session's CSRF token")]
    CsrfMismatch,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The admin API's own routes; every one but its description needs an admin API key.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin-keys", get(list_keys).post(create_key))
        .route("/admin-keys/{id}", delete(revoke_key))
        .route("/audit", get(audit::list))
        .route("/instance", get(instance::show))
        .route_layer(from_extractor_with_state::<AdminAuth, _>(state.clone()))
        .merge(setup_links::router(state))
        // After the route layer: the description of the API needs no credential.
        .merge(openapi::router())
}

/// The dashboard: its pages and its sign-in, outside the JSON API.
pub fn dashboard_router() -> Router<AppState> {
    ui::router().merge(session::router())
}

#[derive(Debug, Serialize)]
struct AdminKeyView {
    id: AdminKeyId,
    name: String,
    scope: admin_keys::KeyScope,
    prefix: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
}

impl From<admin_keys::AdminKeyRecord> for AdminKeyView {
    fn from(r: admin_keys::AdminKeyRecord) -> Self {
        Self {
            id: r.id,
            name: r.name,
            scope: r.scope,
            prefix: r.prefix,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        }
    }
}

#[derive(Debug, Serialize)]
struct KeyList {
    items: Vec<AdminKeyView>,
}

async fn list_keys(State(state): State<AppState>) -> Result<ApiJson<KeyList>, ApiError> {
    let keys = state.store.read(admin_keys::all).await?;
    Ok(ApiJson(KeyList { items: keys.into_iter().map(Into::into).collect() }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    /// `admin` (the default), `events:read` or `metrics:read`.
    scope: Option<admin_keys::KeyScope>,
}

#[derive(Debug, Serialize)]
struct CreatedKey {
    #[serde(flatten)]
    view: AdminKeyView,
    /// The key itself: shown in this response only.
    key: String,
}

async fn create_key(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    ApiJson(input): ApiJson<CreateKey>,
) -> Result<(StatusCode, ApiJson<CreatedKey>), ApiError> {
    let name = keys::validate_name(&input.name)?;
    let change = AdminChange::new(auth, &request, state.clock.now());
    let issued = issue_key(name, input.scope.unwrap_or_default(), change.now);
    let record = issued.record.clone();
    state
        .store
        .write(move |tx| {
            admin_keys::insert(tx, &record)?;
            change.audit(tx, None, "admin_key.create", key_subject(&record), json!({ "scope": record.scope }))
        })
        .await?;
    tracing::info!(key_id = %issued.record.id, "admin API key created");
    Ok((StatusCode::CREATED, ApiJson(CreatedKey { view: issued.record.into(), key: issued.key })))
}

async fn revoke_key(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key_id: AdminKeyId = id.parse().map_err(|_| AdminError::KeyNotFound(id.clone()))?;
    let change = AdminChange::new(auth, &request, state.clock.now());
    state
        .store
        .write(move |tx| {
            let key =
                admin_keys::get(tx, key_id)?.ok_or_else(|| AdminError::KeyNotFound(key_id.to_string()))?;
            // An events key cannot run the admin API: the last full key must stay.
            let is_admin = |k: &admin_keys::AdminKeyRecord| {
                k.revoked_at.is_none() && k.scope == admin_keys::KeyScope::Admin
            };
            let others_active = admin_keys::all(tx)?.iter().any(|k| k.id != key_id && is_admin(k));
            if is_admin(&key) && !others_active {
                return Err(AdminError::LastKey);
            }
            // Revoking a revoked key changes nothing, and is not recorded.
            if key.revoked_at.is_none() {
                admin_keys::revoke(tx, key_id, change.now)?;
                change.audit(tx, None, "admin_key.revoke", key_subject(&key), json!({}))?;
            }
            Ok(())
        })
        .await?;
    tracing::info!(key_id = %key_id, "admin API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
