//! Portcullis as the OpenID Provider the app talks to: discovery, JWKS, the authorization and
//! token endpoints, userinfo, introspection, revocation and RP-initiated logout, plus the OAuth
//! clients' admin API and the signing keys.

mod authorize;
pub mod claims;
pub mod clients;
pub mod crypto;
mod discovery;
mod error;
mod introspect;
pub mod keys;
mod logout;
pub mod rotation;
mod token;

use axum::{Router, routing::get};

pub use authorize::{
    Finish, FinishError, FinishFailure, Prelude, finish_stored, finish_stored_after, random_token,
    redirect_with,
};
pub use error::OAuthError;
pub use introspect::VerifiedTokens;

use crate::app::AppState;

/// What the provider keeps in memory.
#[derive(Default)]
pub struct ProviderRuntime {
    /// Access tokens whose signatures have been checked.
    pub verified: VerifiedTokens,
    /// Clients whose credentials have been checked in the last second.
    pub clients: clients::ClientCache,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery::configuration))
        .route("/oauth2/jwks", get(discovery::jwks))
        .route("/oauth2/authorize", get(authorize::authorize_get).post(authorize::authorize_post))
        .route("/oauth2/token", axum::routing::post(token::token))
        .route("/oauth2/userinfo", get(introspect::userinfo).post(introspect::userinfo))
        .route("/oauth2/introspect", axum::routing::post(introspect::introspect))
        .route("/oauth2/revoke", axum::routing::post(introspect::revoke))
        .route("/oauth2/logout", get(logout::logout_get).post(logout::logout_post))
}
