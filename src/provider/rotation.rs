//! Rotating the token signing keys: `POST /api/v1/signing-keys/rotate` on a running server, or
//! `portcullis keys rotate` on a stopped one (the database is locked while a server runs).
//!
//! New keys of each algorithm are published at once and take over from the active ones after
//! `PUBLISHED_BEFORE_USE` (or at once, when asked), so that apps caching the JWKS know a key
//! before they meet a token it signed. The keys they replace stay published until what they
//! signed has expired.

use axum::{
    Extension, Router,
    extract::State,
    middleware::from_extractor_with_state,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use super::keys::{self, KeySet, RETIRED_KEYS_PUBLISHED_FOR};
use crate::{
    admin::AdminAuth,
    app::AppState,
    http::{ApiError, ApiJson, middleware::RequestId},
    store::{
        Store, StoreError,
        audit::{self, Actor, AuditRecord},
        instance_keys::{self, InstanceKeyRecord, KeyPurpose},
        journal::Subject,
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

/// How long new keys are published before they sign: longer than apps may cache the JWKS
/// (`Cache-Control: max-age=300`), so no app meets a `kid` it has never seen.
pub const PUBLISHED_BEFORE_USE: time::Duration = time::Duration::minutes(6);

/// How a rotation hands over. A misspelt field is refused: `{"immediatly": true}` must not
/// quietly rotate on the slow schedule after a suspected compromise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handover {
    /// The new keys sign at once (apps that cache the JWKS and do not refetch it on an unknown
    /// `kid` may refuse tokens for a few minutes); otherwise after `PUBLISHED_BEFORE_USE`.
    #[serde(default)]
    pub immediate: bool,
}

/// Generates new signing keys, which take over from the active ones at the handover, in one
/// commit audited as `actor`'s; returns every key.
pub async fn rotate(
    store: &Store,
    now: OffsetDateTime,
    handover: Handover,
    actor: Actor,
    request_id: Option<String>,
) -> Result<Vec<InstanceKeyRecord>, RotationError> {
    let takeover = if handover.immediate { now } else { now + PUBLISHED_BEFORE_USE };
    let fresh = tokio::task::spawn_blocking(move || {
        [SigningAlgorithm::ES256, SigningAlgorithm::RS256]
            .map(|alg| {
                keys::generate(alg, now).map(|key| InstanceKeyRecord { activates_at: Some(takeover), ..key })
            })
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|_| StoreError::Panicked)??;
    let all = store
        .write(move |tx| {
            let mut retired = Vec::new();
            for mut key in instance_keys::all(tx)? {
                if key.purpose == KeyPurpose::TokenSigning && key.retired_at.is_none_or(|at| at > takeover) {
                    key.retired_at = Some(takeover);
                    instance_keys::put(tx, &key)?;
                    retired.push(key.kid);
                }
            }
            for key in &fresh {
                instance_keys::put(tx, key)?;
            }
            let created: Vec<&str> = fresh.iter().map(|k| k.kid.as_str()).collect();
            let subject = Subject { kind: "signing_keys".into(), id: "token_signing".into(), label: None };
            let detail =
                json!({ "retired": retired, "created": created, "takeover": takeover.unix_timestamp() });
            let record = AuditRecord::new(
                None,
                actor.clone(),
                "signing_keys.rotate",
                Some(subject),
                detail,
                now,
                request_id.clone(),
            );
            audit::append(tx, record)?;
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
    /// `pending` (published, signs from `activates_at`), `active` (signs; until `retired_at` if
    /// set), `published` (retired, still verifies) or `expired`.
    status: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    activates_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    retired_at: Option<OffsetDateTime>,
}

/// `pending` (published, signs from its activation), `active` (signs), `published` (retired,
/// still verifies) or `expired`.
pub fn status(key: &InstanceKeyRecord, now: OffsetDateTime) -> &'static str {
    match (key.activates_at, key.retired_at) {
        (_, Some(at)) if at <= now && now < at + RETIRED_KEYS_PUBLISHED_FOR => "published",
        (_, Some(at)) if at <= now => "expired",
        (Some(at), _) if now < at => "pending",
        _ => "active",
    }
}

fn views(keys: Vec<InstanceKeyRecord>, now: OffsetDateTime) -> serde_json::Value {
    let items: Vec<KeyView> = keys
        .into_iter()
        .filter(|k| k.purpose == KeyPurpose::TokenSigning)
        .map(|k| KeyView {
            status: status(&k, now),
            kid: k.kid,
            algorithm: k.algorithm,
            created_at: k.created_at,
            activates_at: k.activates_at,
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
    body: axum::body::Bytes,
) -> Result<ApiJson<serde_json::Value>, ApiError> {
    // The body is optional: none (or `{}`) hands over after `PUBLISHED_BEFORE_USE`.
    let handover: Handover = if body.is_empty() {
        Handover::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|err| ApiError::Malformed(format!("not a rotation request: {err}")))?
    };
    let now = state.clock.now();
    let actor = auth.actor();
    let all =
        rotate(&state.store, now, handover, actor, Some(request.0.clone())).await.map_err(
            |err| match err {
                RotationError::Store(err) => ApiError::from(err),
                RotationError::Generation(err) => ApiError::Internal(err.to_string()),
            },
        )?;
    let set = KeySet::from_records(&all, now).map_err(|e| ApiError::Internal(e.to_string()))?;
    state.keys.replace(set);
    tracing::info!("token signing keys rotated");
    Ok(ApiJson(views(all, now)))
}

/// Rebuilds the key set from the store every minute, so that keys whose publication has ended
/// leave the JWKS without a restart (the handover itself is decided at each signature).
pub async fn refresh_key_set(state: AppState) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        let now = state.clock.now();
        let set = state
            .store
            .read(instance_keys::all)
            .await
            .map_err(|e| e.to_string())
            .and_then(|records| KeySet::from_records(&records, now).map_err(|e| e.to_string()));
        match set {
            Ok(set) => state.keys.replace(set),
            Err(err) => tracing::warn!(%err, "cannot refresh the signing keys"),
        }
    }
}
