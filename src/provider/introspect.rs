//! Token introspection (RFC 7662), revocation (RFC 7009) and userinfo (OpenID Connect Core
//! §5.3): the checks the app makes on every request.
//!
//! An access token is active while its signature, issuer and expiry hold, it has not been revoked,
//! and its session is live. The signature check is the only expensive step, and its outcome never
//! changes, so verified claims are remembered by the token's digest; the revocation and session
//! checks read the store every time, which is what makes a revocation take effect at its commit.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json,
    extract::{State, rejection::FormRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{
    OAuthError,
    claims::{AccessClaims, user_claims},
    clients::{self, ClientCredentials},
};
use crate::{
    app::AppState,
    audit::refusals as audit_refusals,
    http::auth::bearer_token,
    ids::{SessionId, TenantId, UserId},
    store::{
        Source, StoreError,
        access::{self, UserAccessRecord},
        audit::{self, Actor, AuditRecord},
        directory, grants,
        journal::Subject,
        sessions, tenants,
    },
};

/// How many verified access tokens are remembered; past it the memory is cleared and refilled.
const VERIFIED_CAPACITY: usize = 100_000;

/// Access tokens whose signature has been verified, by SHA-256 of the token.
#[derive(Default)]
pub struct VerifiedTokens {
    claims: Mutex<HashMap<[u8; 32], Arc<AccessClaims>>>,
}

impl VerifiedTokens {
    /// The token's claims if it is a well-signed, unexpired access token of this issuer.
    pub fn verify(&self, state: &AppState, token: &str, now: OffsetDateTime) -> Option<Arc<AccessClaims>> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let known = self.claims.lock().ok().and_then(|map| map.get(&digest).cloned());
        let claims = match known {
            Some(claims) => claims,
            None => {
                let claims: AccessClaims =
                    state.keys.current().verify(token, "at+jwt", &state.public_url).ok()?;
                let claims = Arc::new(claims);
                if let Ok(mut map) = self.claims.lock() {
                    if map.len() >= VERIFIED_CAPACITY {
                        map.clear();
                    }
                    map.insert(digest, Arc::clone(&claims));
                }
                claims
            }
        };
        (claims.exp > now.unix_timestamp()).then_some(claims)
    }
}

/// Whether a verified access token is still active: not revoked, its session live.
fn access_token_active(
    src: &impl Source,
    claims: &AccessClaims,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let Ok(jti) = claims.jti.parse::<uuid::Uuid>() else {
        return Ok(false);
    };
    if grants::is_access_token_revoked(src, jti.as_u128())? {
        return Ok(false);
    }
    let Ok(sid) = claims.sid.parse::<SessionId>() else {
        return Ok(false);
    };
    Ok(sessions::get(src, sid)?.is_some_and(|s| s.is_live(now)))
}

/// What the access policy gives a live access token's user now: an app that introspects on every
/// request sees a demotion at once, not when the token expires. None when the token is not live.
fn current_access(
    src: &impl Source,
    claims: &AccessClaims,
    now: OffsetDateTime,
) -> Result<Option<UserAccessRecord>, StoreError> {
    if !access_token_active(src, claims, now)? {
        return Ok(None);
    }
    let (Ok(tenant), Ok(user)) = (claims.org_id.parse::<TenantId>(), claims.sub.parse::<UserId>()) else {
        return Ok(None);
    };
    Ok(Some(access::user_access(src, tenant, user)?.unwrap_or_default()))
}

#[derive(Debug, Deserialize)]
pub struct TokenParams {
    token: Option<String>,
    token_type_hint: Option<String>,
    #[serde(flatten)]
    credentials: ClientCredentials,
}

fn read_form(form: Result<Form<TokenParams>, FormRejection>) -> Result<TokenParams, OAuthError> {
    form.map(|Form(params)| params)
        .map_err(|_| OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"))
}

pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<TokenParams>, FormRejection>,
) -> Response {
    let result = async {
        let params = read_form(form)?;
        if let Err(error) = clients::authenticate(&state, &headers, &params.credentials, false).await {
            record_refused_caller(&state, &headers, &params.credentials, &error).await;
            return Err(error);
        }
        let token = params.token.ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        Ok::<_, OAuthError>(describe(&state, &token, params.token_type_hint.as_deref()).await?)
    }
    .await;
    match result {
        Ok(Described::Access(claims)) => {
            Json(ActiveAccessToken { active: true, token_type: "Bearer", claims: &claims }).into_response()
        }
        Ok(Described::Other(body)) => Json(body).into_response(),
        Err(err) => err.into_response(),
    }
}

/// `oauth.introspect.refused`: a caller that failed client authentication. (Introspection is a
/// read: answered requests are not recorded.)
async fn record_refused_caller(
    state: &AppState,
    headers: &HeaderMap,
    credentials: &ClientCredentials,
    error: &OAuthError,
) {
    let detail = json!({
        "client_id": clients::claimed_id(headers, credentials), "error_description": error.description,
    });
    let record = AuditRecord::new(
        None,
        Actor::anonymous(),
        "oauth.introspect.refused",
        None,
        detail,
        state.clock.now(),
        None,
    );
    audit_refusals::record(state, record.refused(error.code)).await;
}

enum Described {
    /// A live access token: answered from its claims, with the user's roles, tier and programs
    /// as they are now (the token's own may be older).
    Access(Box<AccessClaims>),
    /// A refresh token, or `{"active": false}` (RFC 7662 §2.2: nothing more for inactive tokens).
    Other(Value),
}

async fn describe(state: &AppState, token: &str, hint: Option<&str>) -> Result<Described, StoreError> {
    let now = state.clock.now();
    let inactive = || Described::Other(json!({ "active": false }));
    let as_refresh_first = hint == Some("refresh_token") || token.starts_with("pcrt_");
    if !as_refresh_first {
        if let Some(claims) = state.provider.verified.verify(state, token, now) {
            let current = state.store.read(|tx| current_access(tx, &claims, now)).await?;
            return Ok(match current {
                Some(access) => Described::Access(Box::new(AccessClaims {
                    roles: access.roles,
                    tier: access.tier,
                    programs: access.programs,
                    ..(*claims).clone()
                })),
                None => inactive(),
            });
        }
    }
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let described = state.store.read(|tx| refresh_description(tx, &digest, now)).await?;
    Ok(described.map_or_else(inactive, Described::Other))
}

/// RFC 7662 §2.2 for an active access token, serialised straight from its claims (this answer is
/// the app's per-request check).
#[derive(Serialize)]
struct ActiveAccessToken<'a> {
    active: bool,
    token_type: &'static str,
    #[serde(flatten)]
    claims: &'a AccessClaims,
}

fn refresh_description(
    src: &impl Source,
    digest: &[u8; 32],
    now: OffsetDateTime,
) -> Result<Option<Value>, StoreError> {
    let Some(token) = grants::refresh_token(src, digest)? else {
        return Ok(None);
    };
    let Some(family) = grants::refresh_family(src, token.family)? else {
        return Ok(None);
    };
    let live_session = sessions::get(src, family.session)?.is_some_and(|s| s.is_live(now));
    if token.replaced_at.is_some() || family.revoked_at.is_some() || token.expires_at <= now || !live_session
    {
        return Ok(None);
    }
    Ok(Some(json!({
        "active": true, "token_type": "refresh_token", "scope": family.scopes.join(" "),
        "client_id": family.client, "sub": family.user, "exp": token.expires_at.unix_timestamp(),
        "iat": token.issued_at.unix_timestamp(), "sid": family.session, "org_id": family.tenant,
    })))
}

/// RFC 7009: answers 200 whether or not the token was known, so nothing is learnt from it.
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<TokenParams>, FormRejection>,
) -> Response {
    let result = async {
        let params = read_form(form)?;
        let client = clients::authenticate(&state, &headers, &params.credentials, true).await?;
        let token = params.token.ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        let now = state.clock.now();
        if let Some(claims) = state.provider.verified.verify(&state, &token, now) {
            let owned = claims.client_id == client.id.to_string();
            let jti = claims.jti.parse::<uuid::Uuid>().ok().map(|j| j.as_u128());
            if let (true, Some(jti)) = (owned, jti) {
                let expires_at = OffsetDateTime::from_unix_timestamp(claims.exp).unwrap_or(now);
                let detail = json!({ "token_type": "access_token", "jti": claims.jti, "session": claims.sid });
                let record = revoked(&client, claims.org_id.parse().ok(), &claims.sub, detail, now);
                state
                    .store
                    .write(move |tx| {
                        grants::revoke_access_token(tx, jti, expires_at)?;
                        audit::append(tx, record.clone())
                    })
                    .await?;
            }
            return Ok::<_, OAuthError>(());
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        state
            .store
            .write(move |tx| {
                let Some(token) = grants::refresh_token(tx, &digest)? else {
                    return Ok::<_, StoreError>(());
                };
                let Some(family) = grants::refresh_family(tx, token.family)?.filter(|f| f.client == client.id && f.revoked_at.is_none()) else {
                    return Ok(());
                };
                grants::revoke_refresh_family(tx, family.id, "revoked_by_client", now)?;
                let detail = json!({ "token_type": "refresh_token", "refresh_family": family.id, "session": family.session });
                audit::append(tx, revoked(&client, Some(family.tenant), &family.user.to_string(), detail, now))?;
                Ok(())
            })
            .await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(err) => err.into_response(),
    }
}

/// The record of a client revoking one of its tokens (RFC 7009).
fn revoked(
    client: &crate::store::oauth_clients::OAuthClientRecord,
    tenant: Option<TenantId>,
    user: &str,
    detail: Value,
    now: OffsetDateTime,
) -> AuditRecord {
    let target = Subject { kind: "user".into(), id: user.to_owned(), label: None };
    AuditRecord::new(tenant, clients::actor(client), "oauth.token.revoked", Some(target), detail, now, None)
}

/// The signed-in person's claims, for a live access token with the `openid` scope.
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result = async {
        let token = bearer_token(&headers).map_err(|_| OAuthError::invalid_token())?;
        let now = state.clock.now();
        let claims =
            state.provider.verified.verify(&state, token, now).ok_or_else(OAuthError::invalid_token)?;
        if !claims.has_scope("openid") {
            return Err(OAuthError::new("insufficient_scope", "the token lacks the openid scope"));
        }
        let body = state.store.read(|tx| userinfo_claims(tx, &claims, now)).await?;
        body.ok_or_else(OAuthError::invalid_token)
    }
    .await;
    match result {
        Ok(body) => Json(body).into_response(),
        Err(err) => err.into_response(),
    }
}

fn userinfo_claims(
    src: &impl Source,
    claims: &AccessClaims,
    now: OffsetDateTime,
) -> Result<Option<Value>, StoreError> {
    if !access_token_active(src, claims, now)? {
        return Ok(None);
    }
    let (Ok(tenant_id), Ok(user_id)) = (claims.org_id.parse::<TenantId>(), claims.sub.parse::<UserId>())
    else {
        return Ok(None);
    };
    let Some(user) = directory::user(src, tenant_id, user_id)?.filter(|u| u.active) else {
        return Ok(None);
    };
    let Some(tenant) = tenants::get(src, tenant_id)? else {
        return Ok(None);
    };
    let scopes: Vec<String> = claims.scope.split(' ').map(str::to_owned).collect();
    let verified = super::token::email_verified(src, &tenant, &user)?;
    let access = access::user_access(src, tenant_id, user_id)?.unwrap_or_default();
    let mut body = user_claims(&user, &tenant, &access, &scopes, verified);
    body.insert("sub".into(), json!(user.id));
    Ok(Some(Value::Object(body)))
}
