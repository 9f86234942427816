//! Rotating the token signing keys: `POST /api/v1/signing-keys/rotate` on a running server, or
//! `portcullis keys rotate` on a stopped one (the database is locked while a server runs). The active keys are retired (they stay published
//! until what they signed has expired) and new ones of each algorithm take over at once.

use axum::{
    Extension, Router,
    extract::State,
    middleware::from_extractor_with_state,
    routing::{get, post},
};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use super::keys::{self, KeySet, RETIRED_KEYS_PUBLISHED_FOR};
use crate::{
    admin::AdminAuth,
    app::AppState,
    http::{ApiError, ApiJson, middleware::RequestId},
    store::{
        Store, StoreError,
        instance_keys::{self, InstanceKeyRecord, KeyPurpose},
        journal::{self, Actor, AuditRecord, Subject},
        oauth_clients::SigningAlgorithm,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Generation(#[from] keys::KeyGenerationError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Generates new signing keys and retires the active ones in one commit, audited as `actor`'s;
/// returns every key.
pub async fn rotate(
    store: &Store,
    now: OffsetDateTime,
    actor: Actor,
    request_id: Option<String>,
) -> Result<Vec<InstanceKeyRecord>, RotationError> {
    let fresh = tokio::task::spawn_blocking(move || {
        [SigningAlgorithm::ES256, SigningAlgorithm::RS256]
            .map(|alg| keys::generate(alg, now))
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|_| StoreError::Panicked)??;
    let all = store
        .write(move |tx| {
            let mut retired = Vec::new();
            for mut key in instance_keys::all(tx)? {
                if key.purpose == KeyPurpose::TokenSigning && key.retired_at.is_none() {
                    key.retired_at = Some(now);
                    instance_keys::put(tx, &key)?;
                    retired.push(key.kid);
                }
            }
            for key in &fresh {
                instance_keys::put(tx, key)?;
            }
            let created: Vec<&str> = fresh.iter().map(|k| k.kid.as_str()).collect();
            let subject = Subject { kind: "signing_keys".into(), id: "token_signing".into(), label: None };
            let detail = json!({ "retired": retired, "created": created });
            let record = AuditRecord::new(
                None,
                actor.clone(),
                "signing_keys.rotate",
                Some(subject),
                detail,
                now,
                request_id.clone(),
            );
            journal::append_audit(tx, record)?;
            instance_keys::all(tx)
        })
        .await?;
    Ok(all)
}

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/signing-keys", get(list))
        .route("/signing-keys/rotate", post(rotate_now))
        .route_layer(from_extractor_with_state::<AdminAuth, _>(state))
}

#[derive(Debug, Serialize)]
struct KeyView {
    kid: String,
    algorithm: String,
    /// `active` (signs), `published` (retired, still verifies) or `expired`.
    status: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    retired_at: Option<OffsetDateTime>,
}

fn views(keys: Vec<InstanceKeyRecord>, now: OffsetDateTime) -> serde_json::Value {
    let items: Vec<KeyView> = keys
        .into_iter()
        .filter(|k| k.purpose == KeyPurpose::TokenSigning)
        .map(|k| KeyView {
            status: match k.retired_at {
                None => "active",
                Some(at) if now < at + RETIRED_KEYS_PUBLISHED_FOR => "published",
                Some(_) => "expired",
            },
            kid: k.kid,
            algorithm: k.algorithm,
            created_at: k.created_at,
            retired_at: k.retired_at,
        })
        .collect();
    json!({ "items": items })
}

async fn list(State(state): State<AppState>) -> Result<ApiJson<serde_json::Value>, ApiError> {
    let keys = state.store.read(instance_keys::all).await?;
    Ok(ApiJson(views(keys, state.clock.now())))
}

async fn rotate_now(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
) -> Result<ApiJson<serde_json::Value>, ApiError> {
    let now = state.clock.now();
    let actor = Actor { kind: "admin_key".into(), id: auth.key_id.to_string(), label: None };
    let all = rotate(&state.store, now, actor, Some(request.0.clone())).await.map_err(|err| match err {
        RotationError::Store(err) => ApiError::from(err),
        RotationError::Generation(err) => ApiError::Internal(err.to_string()),
    })?;
    let set = KeySet::from_records(&all, now).map_err(|e| ApiError::Internal(e.to_string()))?;
    state.keys.replace(set);
    tracing::info!("token signing keys rotated");
    Ok(ApiJson(views(all, now)))
}
