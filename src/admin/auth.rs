//! `AdminAuth`: the caller presented an active admin API key.

use axum::{extract::FromRequestParts, http::request::Parts};

use super::{AdminError, digest};
use crate::{
    app::AppState,
    http::{
        ApiError,
        auth::{BearerError, bearer_token},
    },
    ids::AdminKeyId,
    store::admin_keys,
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
            Some(key) if key.revoked_at.is_none() => Ok(AdminAuth { key_id: key.id }),
            _ => Err(AdminError::InvalidCredentials.into()),
        }
    }
}
