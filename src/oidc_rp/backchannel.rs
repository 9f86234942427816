//! The OIDC Back-Channel Logout receiver: `POST /sso/oidc/{connection}/backchannel-logout`.
//!
//! The IdP posts a logout token when a person's session there ends. It is verified like an ID
//! token (issuer, audience, signature by the IdP's keys) plus what makes it a logout token
//! (`events`, no `nonce`, `sub` or `sid`), and honoured once (`jti`). In one transaction the
//! Portcullis sessions that IdP session started (by `sid`, else every session of the subject
//! from this connection) end, which queues the app's own back-channel logouts. The IdP gets 200,
//! or 400 with an OAuth error (§2.8); a refusal changes nothing and is audited.

use axum::{
    Extension, Form, Json,
    extract::{Path, State, rejection::FormRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;
use time::Duration;

use super::{
    refusal::{self, Context, Refusal, idp_actor, unavailable},
    tokens::{self, Expected, VerifiedLogout},
};
use crate::{
    app::AppState,
    http::middleware::RequestId,
    ids::{ConnectionId, SessionId},
    sessions,
    store::{
        StoreError, WriteTx,
        audit::{self, AuditRecord},
        journal::Subject,
        oidc::{self, OidcConnectionRecord},
        sessions as stored_sessions,
    },
};

#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    logout_token: String,
}

pub async fn receive(
    State(state): State<AppState>,
    Path(connection): Path<String>,
    Extension(trace): Extension<RequestId>,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let mut context = Context { upstream: Some(format!("oidc:{connection}")), ..Context::default() };
    match accept(&state, &connection, form, &mut context, &trace).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(refusal) => {
            refusal::record(&state, "sso.oidc.logout_refused", &refusal, &context, &trace.0).await;
            let status = match refusal {
                Refusal::UnknownConnection => StatusCode::NOT_FOUND,
                Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            let error = if status == StatusCode::SERVICE_UNAVAILABLE {
                "temporarily_unavailable"
            } else {
                "invalid_request"
            };
            (status, Json(json!({ "error": error, "error_description": refusal.public_message() })))
                .into_response()
        }
    }
}

async fn accept(
    state: &AppState,
    reference: &str,
    form: Result<Form<LogoutForm>, FormRejection>,
    context: &mut Context,
    trace: &RequestId,
) -> Result<(), Refusal> {
    let id: ConnectionId = reference.parse().map_err(|_| Refusal::UnknownConnection)?;
    let connection = state
        .store
        .read(move |tx| oidc::connection(tx, id))
        .await
        .map_err(unavailable)?
        .ok_or(Refusal::UnknownConnection)?;
    context.tenant = Some(connection.tenant);
    let Ok(Form(form)) = form else {
        return Err(Refusal::LogoutToken("the request carries no `logout_token`".into()));
    };
    let logout = verify(state, &connection, &form.logout_token).await?;
    context.detail = json!({ "jti": logout.jti, "sub": logout.sub, "sid": logout.sid });
    let now = state.clock.now();
    let (key, tenant, trace) = (connection.upstream(), connection.tenant, trace.0.clone());
    let ended = state
        .store
        .write(move |tx| {
            if !oidc::mark_logout_token(tx, &key, &logout.jti, logout.expires_at)? {
                return Ok(None);
            }
            let mut ended = Vec::new();
            for session in matching_sessions(tx, &key, &logout)? {
                if sessions::end_session(tx, session, "idp_logout", now)?.is_some() {
                    ended.push(session.to_string());
                }
            }
            audit::append(
                tx,
                AuditRecord::new(
                    Some(tenant),
                    idp_actor(&key),
                    "sso.oidc.logout",
                    Some(Subject { kind: "oidc_connection".into(), id: key.clone(), label: None }),
                    json!({ "jti": logout.jti, "sub": logout.sub, "sid": logout.sid, "sessions_ended": ended }),
                    now,
                    Some(trace.clone()),
                ),
            )?;
            Ok::<_, StoreError>(Some(ended.len()))
        })
        .await
        .map_err(unavailable)?;
    match ended {
        Some(count) => {
            tracing::info!(connection = %connection.id, sessions = count, "back-channel logout from an IdP");
            Ok(())
        }
        None => Err(Refusal::LogoutReplayed),
    }
}

/// The logout token, verified against the connection's issuer keys (fetched again once if it
/// names a key we do not have).
async fn verify(
    state: &AppState,
    connection: &OidcConnectionRecord,
    raw: &str,
) -> Result<VerifiedLogout, Refusal> {
    let now = state.clock.now();
    let issuers = &state.oidc.issuers;
    let published =
        issuers.get(&connection.issuer, now).await.map_err(|err| Refusal::IdpUnreachable(err.to_string()))?;
    let expected = Expected {
        issuer: &connection.issuer,
        client_id: &connection.client_id,
        now,
        skew: Duration::seconds(i64::from(connection.clock_skew_secs)),
        authenticated_after: None,
    };
    match tokens::verify_logout_token(raw, &published.jwks, &expected) {
        Err(Refusal::UnknownKey) => {
            let fresh = issuers
                .refresh_keys(&connection.issuer, &published)
                .await
                .map_err(|err| Refusal::IdpUnreachable(err.to_string()))?;
            tokens::verify_logout_token(raw, &fresh.jwks, &expected)
        }
        verified => verified,
    }
}

/// The sessions a logout token names: those the IdP session `sid` started (of the subject, if
/// it is named too), else every session of the subject from this connection.
fn matching_sessions(
    tx: &WriteTx<'_>,
    key: &str,
    logout: &VerifiedLogout,
) -> Result<Vec<SessionId>, StoreError> {
    let of_subject = |session: &stored_sessions::SessionRecord| {
        session.idp == key
            && logout
                .sub
                .as_deref()
                .is_none_or(|sub| session.idp_session.as_ref().is_some_and(|s| s.name_id == sub))
    };
    let mut found = Vec::new();
    match (&logout.sid, &logout.sub) {
        (Some(sid), _) => {
            for id in oidc::idp_session_sessions(tx, key, sid)? {
                if stored_sessions::get(tx, id)?.is_some_and(|s| of_subject(&s)) {
                    found.push(id);
                }
            }
        }
        (None, Some(sub)) => {
            for (tenant, user) in oidc::subject_users(tx, key, sub)? {
                found.extend(
                    stored_sessions::of_user(tx, tenant, user)?
                        .iter()
                        .filter(|s| of_subject(s))
                        .map(|s| s.id),
                );
            }
        }
        (None, None) => {}
    }
    Ok(found)
}
