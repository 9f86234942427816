//! Signing out at the IdP (OpenID Connect RP-Initiated Logout 1.0), for connections set to
//! (`sign_out_at_idp`): when the app signs a person out of a session such a connection started,
//! the browser goes to the IdP's end-session endpoint with the IdP's own ID token as
//! `id_token_hint`, and comes back to `/sso/oidc/{connection}/logged-out`, which sends it on to
//! the app's post-logout address. The Portcullis session has already ended by then.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::Deserialize;
use time::Duration;

use super::connection_urls;
use crate::{
    app::AppState,
    ids::ConnectionId,
    signin::pages,
    store::{
        StoreError,
        oidc::{self, PendingLogout},
        sessions::SessionRecord,
    },
};

/// How long the IdP has to send the browser back.
const LOGOUT_LIFETIME: Duration = Duration::minutes(10);

/// The redirect to the IdP's end-session endpoint, if the session came from a connection that
/// signs people out there; None: nothing to do at the IdP.
pub async fn begin(state: &AppState, session: &SessionRecord, return_to: Option<String>) -> Option<Response> {
    let id: ConnectionId = session.idp.strip_prefix("oidc:")?.parse().ok()?;
    let session_id = session.id;
    let found = state
        .store
        .read(move |tx| Ok::<_, StoreError>((oidc::connection(tx, id)?, oidc::id_token(tx, session_id)?)))
        .await;
    let (connection, hint) = match found {
        Ok(found) => found,
        Err(err) => {
            tracing::error!(%err, "cannot read an OIDC connection for a logout");
            return None;
        }
    };
    let connection = connection.filter(|c| c.sign_out_at_idp)?;
    let end_session = connection.discovered.as_ref()?.end_session_endpoint.clone()?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let logout_state = URL_SAFE_NO_PAD.encode(bytes);
    let pending = PendingLogout {
        upstream: connection.upstream(),
        return_to,
        expires_at: state.clock.now() + LOGOUT_LIFETIME,
    };
    let key = logout_state.clone();
    if let Err(err) = state.store.write(move |tx| oidc::put_logout(tx, &key, &pending)).await {
        tracing::error!(%err, "cannot store an OIDC logout");
        return None;
    }
    let back = connection_urls(&state.public_url, &connection).post_logout_redirect;
    let mut params = vec![
        ("client_id", connection.client_id.as_str()),
        ("post_logout_redirect_uri", back.as_str()),
        ("state", logout_state.as_str()),
    ];
    if let Some(hint) = &hint {
        params.push(("id_token_hint", hint.as_str()));
    }
    Some(crate::provider::redirect_with(&end_session, &params))
}

#[derive(Debug, Deserialize)]
pub struct LoggedOutParams {
    state: Option<String>,
}

/// Back from the IdP: on to the app's post-logout address, once.
pub async fn logged_out(
    State(state): State<AppState>,
    Path(connection): Path<String>,
    Query(params): Query<LoggedOutParams>,
) -> Response {
    let signed_out =
        || pages::page(StatusCode::OK, "You are signed out", "<p>You can close this window.</p>");
    let Some(key) = params.state.filter(|s| !s.is_empty() && s.len() <= 100) else {
        return signed_out();
    };
    let now = state.clock.now();
    match state.store.write(move |tx| oidc::take_logout(tx, &key)).await {
        Ok(Some(pending)) if pending.upstream == format!("oidc:{connection}") && pending.expires_at > now => {
            match pending.return_to {
                Some(uri) => Redirect::to(&uri).into_response(),
                None => signed_out(),
            }
        }
        Ok(_) => signed_out(),
        Err(err) => {
            tracing::error!(%err, "cannot read an OIDC logout");
            pages::unavailable()
        }
    }
}
