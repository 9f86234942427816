//! `AdminAuth`: the caller presented an active admin API key, and its scope allows the request.

use axum::{
    extract::{FromRequestParts, OriginalUri},
    http::{Method, request::Parts},
};

use super::{AdminError, digest};
use crate::{
    app::AppState,
    http::{
        ApiError,
        auth::{BearerError, bearer_token},
    },
    ids::AdminKeyId,
    store::admin_keys::{self, KeyScope},
};

/// Proof that the request carries an active admin API key.
#[derive(Debug, Clone, Copy)]
pub struct AdminAuth {
    pub key_id: AdminKeyId,
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    #[tracing::instrument(skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).map_err(|err| match err {
            BearerError::Missing => AdminError::MissingCredentials,
            BearerError::Malformed => AdminError::InvalidCredentials,
        })?;
        let digest = digest(token);
        let key = state.store.read(move |tx| admin_keys::by_digest(tx, &digest)).await?;
        match key {
            Some(key) if key.revoked_at.is_none() => {
                if key.scope == KeyScope::EventsRead && !reads_the_feed(parts) {
                    return Err(AdminError::OutOfScope.into());
                }
                Ok(AdminAuth { key_id: key.id })
            }
            _ => Err(AdminError::InvalidCredentials.into()),
        }
    }
}

/// Whether the request reads the events feed: all an `events:read` key may do.
fn reads_the_feed(parts: &Parts) -> bool {
    let path = parts.extensions.get::<OriginalUri>().map_or(parts.uri.path(), |original| original.path());
    parts.method == Method::GET && (path == "/api/v1/events" || path.starts_with("/api/v1/events/"))
}
