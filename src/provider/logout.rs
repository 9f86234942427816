//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at the end-session endpoint.
//!
//! With a valid `id_token_hint` (signed by us; expired is fine) the session it names ends at
//! once; without one, the person confirms on a page first, so that a link on another site cannot
//! sign anyone out. `post_logout_redirect_uri` is followed only when it is registered, exactly,
//! for the client the hint or `client_id` names. Ending the session queues back-channel logout
//! tokens to its clients and records `oauth.logout`, in the same commit.

use axum::{
    Form,
    extract::{Query, State, rejection::FormRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use super::authorize::with_params;
use crate::{
    app::AppState,
    ids::{ClientId, SessionId},
    oidc_rp, saml,
    sessions::{self, cookie},
    signin::{self, pages},
    store::{
        StoreError, WriteTx,
        audit::{self, Actor, AuditRecord},
        journal::Subject,
        oauth_clients,
        sessions::SessionRecord,
    },
};

#[derive(Debug, Default, Deserialize)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
    /// Set by the confirmation form.
    confirm: Option<String>,
    csrf: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HintClaims {
    aud: serde_json::Value,
    sid: Option<String>,
}

pub async fn logout_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<LogoutParams>,
) -> Response {
    logout(state, headers, params).await
}

pub async fn logout_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LogoutParams>, FormRejection>,
) -> Response {
    match form {
        Ok(Form(params)) => logout(state, headers, params).await,
        Err(_) => {
            pages::error(StatusCode::BAD_REQUEST, "Something went wrong", "The request could not be read.")
        }
    }
}

async fn logout(state: AppState, headers: HeaderMap, params: LogoutParams) -> Response {
    let hint = params.id_token_hint.as_deref().and_then(|token| {
        state.keys.current().verify_allowing_expiry::<HintClaims>(token, &state.public_url).ok()
    });
    let hinted_client = hint.as_ref().and_then(|h| audience(&h.aud));
    let named_client = params.client_id.as_deref().and_then(|c| c.parse::<ClientId>().ok());
    if let (Some(hinted), Some(named)) = (hinted_client, named_client) {
        if hinted != named {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "Sign-out failed",
                "The application's sign-out request is inconsistent.",
            );
        }
    }
    let client_id = hinted_client.or(named_client);
    let return_to = match return_address(&state, client_id, params.post_logout_redirect_uri.as_deref()).await
    {
        Ok(uri) => uri,
        Err(page) => return page,
    };
    let secure = state.secure_cookies();
    let cookie_session = cookie::read(&headers, cookie::session_name(secure)).map(str::to_owned);
    let now = state.clock.now();
    let browser_session = match cookie_session {
        Some(value) => {
            state.store.read(move |tx| sessions::from_cookie(tx, &value, now)).await.ok().flatten()
        }
        None => None,
    };
    let hinted_session =
        hint.as_ref().and_then(|h| h.sid.as_deref()).and_then(|s| s.parse::<SessionId>().ok());
    let confirmed = params.confirm.as_deref() == Some("yes")
        && params.csrf.as_deref().is_some_and(|c| signin::csrf_ok(&state, &headers, "logout", c));
    let to_end = match (hinted_session, &browser_session) {
        (Some(sid), _) => Some(sid),
        (None, Some(session)) if confirmed => Some(session.id),
        (None, Some(_)) => return confirmation_page(&state, &headers, &params),
        (None, None) => None,
    };
    let mut ended = None;
    if let Some(sid) = to_end {
        let via = if hinted_session.is_some() { "id_token_hint" } else { "confirmation" };
        let ending = move |tx: &WriteTx<'_>| {
            let ended = sessions::end_session(tx, sid, "logout", now)?;
            if let Some(session) = &ended {
                audit::append(tx, logout_record(session, client_id, via, now))?;
            }
            Ok::<_, StoreError>(ended)
        };
        match state.store.write(ending).await {
            Ok(session) => ended = session,
            Err(err) => {
                tracing::error!(%err, "cannot end a session at logout");
                return pages::unavailable();
            }
        }
    }
    let return_to = return_to.map(|uri| {
        let params: Vec<(&str, &str)> =
            params.state.as_deref().map(|s| vec![("state", s)]).unwrap_or_default();
        with_params(&uri, &params)
    });
    // A session a SAML IdP (or an OIDC IdP set to) opened ends there too, and the IdP sends
    // the browser on.
    let at_idp = match &ended {
        Some(session) => match saml::logout::begin(&state, session, return_to.clone()).await {
            Some(response) => Some(response),
            None => oidc_rp::logout::begin(&state, session, return_to.clone()).await,
        },
        None => None,
    };
    let mut response = match (at_idp, return_to) {
        (Some(response), _) => response,
        (None, Some(uri)) => Redirect::to(&uri).into_response(),
        (None, None) => {
            pages::page(StatusCode::OK, "You are signed out", "<p>You can close this window.</p>")
        }
    };
    let ended_browser_session = browser_session.is_some_and(|s| to_end.is_none_or(|sid| sid == s.id));
    if ended_browser_session {
        if let Some(clear) = cookie::clear(cookie::session_name(secure), secure) {
            response.headers_mut().append(header::SET_COOKIE, clear);
        }
    }
    response
}

/// `oauth.logout`: the person (or the app, with their ID token) ended `session`.
fn logout_record(
    session: &SessionRecord,
    client: Option<ClientId>,
    via: &str,
    now: OffsetDateTime,
) -> AuditRecord {
    let user = session.user.to_string();
    AuditRecord::new(
        Some(session.tenant),
        Actor { kind: "user".into(), id: user.clone(), label: None },
        "oauth.logout",
        Some(Subject { kind: "user".into(), id: user, label: None }),
        json!({ "session": session.id, "client": client, "via": via, "idp": session.idp }),
        now,
        None,
    )
}

fn audience(aud: &serde_json::Value) -> Option<ClientId> {
    match aud {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Array(items) if items.len() == 1 => items[0].as_str()?.parse().ok(),
        _ => None,
    }
}

/// The registered post-logout address, or the page explaining why it cannot be used.
async fn return_address(
    state: &AppState,
    client: Option<ClientId>,
    requested: Option<&str>,
) -> Result<Option<String>, Response> {
    let Some(requested) = requested else {
        return Ok(None);
    };
    let refused = || {
        pages::error(
            StatusCode::BAD_REQUEST,
            "Sign-out failed",
            "The application asked to return to an address it has not registered.",
        )
    };
    let Some(client) = client else {
        return Err(refused());
    };
    let found = state.store.read(move |tx| oauth_clients::get(tx, client)).await;
    match found {
        Ok(Some(client)) if client.post_logout_redirect_uris.iter().any(|u| u == requested) => {
            Ok(Some(requested.to_owned()))
        }
        Ok(_) => Err(refused()),
        Err(err) => {
            tracing::error!(%err, "cannot read a client at logout");
            Err(pages::unavailable())
        }
    }
}

fn confirmation_page(state: &AppState, headers: &HeaderMap, params: &LogoutParams) -> Response {
    let (browser, set) = signin::browser_id(state, headers);
    let keep = |name: &str, value: &Option<String>| {
        value.as_deref().map(|v| pages::hidden(name, v)).unwrap_or_default()
    };
    let body = format!(
        "<p>Do you want to sign out?</p><form method=\"post\" action=\"/oauth2/logout\">{csrf}{confirm}{client}{uri}{st}\
         <button type=\"submit\">Sign out</button></form>",
        csrf = pages::hidden("csrf", &signin::csrf_token(state, &browser, "logout")),
        confirm = pages::hidden("confirm", "yes"),
        client = keep("client_id", &params.client_id),
        uri = keep("post_logout_redirect_uri", &params.post_logout_redirect_uri),
        st = keep("state", &params.state),
    );
    signin::with_browser_cookie(pages::page(StatusCode::OK, "Sign out", &body), set)
}
