//! The token endpoint (RFC 6749 §3.2): the `authorization_code` grant with PKCE, and the
//! `refresh_token` grant with rotation and reuse detection (RFC 9700 §4.14.2).
//!
//! Every check that depends on state runs inside the write that consumes the code or the refresh
//! token, so two concurrent exchanges of one code cannot both succeed. A refused exchange that
//! must still change something (a reused code or refresh token revokes what it led to) commits
//! that change and its audit record, and then answers with the error. Every other refusal is
//! recorded after it (`oauth.token.refused`), in a write of its own.

use std::sync::Arc;

use axum::{
    Extension, Form, Json,
    extract::{State, rejection::FormRejection},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use super::{
    OAuthError,
    authorize::{random_token, verifier_matches},
    claims::{AccessClaims, user_claims},
    clients::{self, ClientCredentials},
};
use crate::{
    app::AppState,
    audit::refusals as audit_refusals,
    http::middleware::RequestId,
    ids::{RefreshFamilyId, SessionId, TenantId, UserId},
    sessions,
    store::{
        Source, StoreError, WriteTx,
        access::{self, UserAccessRecord},
        audit::{self, Actor, AuditRecord},
        directory::{self, UserRecord},
        grants::{self, CodeRecord, RefreshFamilyRecord, RefreshTokenRecord},
        journal::Subject,
        oauth_clients::OAuthClientRecord,
        sessions::{self as stored_sessions, SessionRecord},
        tenants::{self, DomainStatus, TenantRecord, TenantStatus},
    },
};

#[derive(Debug, Default, Deserialize)]
pub struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    #[serde(flatten)]
    credentials: ClientCredentials,
}

pub async fn token(
    State(state): State<AppState>,
    Extension(trace): Extension<RequestId>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    let request = match form {
        Ok(Form(request)) => request,
        Err(_) => {
            let error = OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded token parameters",
            );
            let refused = Refused::from(error);
            record_refusal(
                &state,
                &refused,
                None,
                clients::claimed_id(&headers, &Default::default()),
                &trace,
            )
            .await;
            return refused.error.into_response();
        }
    };
    let (grant_type, claimed) =
        (request.grant_type.clone(), clients::claimed_id(&headers, &request.credentials));
    match exchange(&state, &headers, request, &trace).await {
        Ok(body) => no_store(Json(body).into_response()),
        Err(refused) => {
            record_refusal(&state, &refused, grant_type, claimed, &trace).await;
            refused.error.into_response()
        }
    }
}

/// A refused token request: the error the client gets, and what the audit record says of it.
#[derive(Debug)]
struct Refused {
    error: OAuthError,
    /// The client, once it authenticated.
    client: Option<Arc<OAuthClientRecord>>,
    /// The tenant and user of the code or refresh token presented, once it was found.
    subject: Option<(TenantId, UserId)>,
    /// Already in the trail: a replay, recorded in the commit that revoked what it had issued.
    recorded: bool,
}

impl From<OAuthError> for Refused {
    fn from(error: OAuthError) -> Self {
        Self { error, client: None, subject: None, recorded: false }
    }
}

impl From<StoreError> for Refused {
    fn from(err: StoreError) -> Self {
        OAuthError::from(err).into()
    }
}

impl Refused {
    /// The refusal of a code or refresh token of `user` in `tenant`.
    fn about(tenant: TenantId, user: UserId) -> impl Fn(OAuthError) -> Refused {
        move |error| Refused { subject: Some((tenant, user)), ..error.into() }
    }
}

/// `oauth.token.refused`, with the OAuth error code as the reason. The detail names the client
/// as it was claimed; the code, the refresh token and the secret never appear.
async fn record_refusal(
    state: &AppState,
    refused: &Refused,
    grant_type: Option<String>,
    claimed_client: Option<String>,
    trace: &RequestId,
) {
    if refused.recorded {
        return;
    }
    let detail = json!({
        "grant_type": grant_type, "error_description": refused.error.description, "client_id": claimed_client,
    });
    let record = AuditRecord::new(
        refused.subject.map(|(tenant, _)| tenant),
        refused.client.as_deref().map_or_else(Actor::anonymous, clients::actor),
        "oauth.token.refused",
        refused.subject.map(|(_, user)| user_subject(user)),
        detail,
        state.clock.now(),
        Some(trace.0.clone()),
    )
    .refused(refused.error.code);
    audit_refusals::record(state, record).await;
}

fn user_subject(user: UserId) -> Subject {
    Subject { kind: "user".into(), id: user.to_string(), label: None }
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

async fn exchange(
    state: &AppState,
    headers: &HeaderMap,
    request: TokenRequest,
    trace: &RequestId,
) -> Result<Value, Refused> {
    let credentials = &request.credentials;
    let client = clients::authenticate(state, headers, credentials, true).await?;
    let granted = match request.grant_type.as_deref() {
        Some("authorization_code") => redeem_code(state, &client, &request, trace).await,
        Some("refresh_token") => refresh(state, &client, &request, trace).await,
        Some(_) => {
            Err(OAuthError::new("unsupported_grant_type", "supported: authorization_code, refresh_token")
                .into())
        }
        None => Err(OAuthError::invalid_request("grant_type is required").into()),
    };
    granted.map_err(|refused| Refused { client: Some(Arc::clone(&client)), ..refused })
}

/// What a successful exchange produced, before the tokens are signed.
struct Grant {
    user: UserRecord,
    tenant: TenantRecord,
    session: SessionRecord,
    scopes: Vec<String>,
    nonce: Option<String>,
    refresh_token: Option<String>,
    email_verified: bool,
    /// Read at issue, so a refresh carries roles changed since the login.
    access: UserAccessRecord,
}

enum Redeemed {
    Granted(Box<Grant>),
    /// The code (of this tenant and user) was used before: what it issued was revoked, and the
    /// replay recorded, in this commit.
    Replayed(TenantId, UserId),
}

/// What a grant issues, decided inside its write.
struct Issued {
    grant_type: &'static str,
    scopes: Vec<String>,
    nonce: Option<String>,
    refresh_token: Option<String>,
    refresh_family: Option<RefreshFamilyId>,
    jti: uuid::Uuid,
}

/// Ends a grant's write: records the session's activity and client and the audit record, and
/// gathers what the response needs.
fn conclude(
    tx: &WriteTx<'_>,
    client: &OAuthClientRecord,
    (user, tenant, session): (UserRecord, TenantRecord, SessionRecord),
    issued: Issued,
    now: OffsetDateTime,
    trace: &RequestId,
) -> Result<Box<Grant>, OAuthError> {
    sessions::touch(tx, session.id, Some(client.id), now)?;
    let detail = json!({
        "grant_type": issued.grant_type, "session": session.id, "scope": issued.scopes.join(" "),
        "access_token_jti": issued.jti, "refresh_family": issued.refresh_family,
    });
    audit::append(tx, grant_audit(client, tenant.id, user.id, "oauth.token.issued", detail, now, trace))?;
    let email_verified = email_verified(tx, &tenant, &user)?;
    let access = access::user_access(tx, tenant.id, user.id)?.unwrap_or_default();
    Ok(Box::new(Grant {
        user,
        tenant,
        session,
        scopes: issued.scopes,
        nonce: issued.nonce,
        refresh_token: issued.refresh_token,
        email_verified,
        access,
    }))
}

/// The audit record of a token grant (or of a replay it refused), by the client.
fn grant_audit(
    client: &OAuthClientRecord,
    tenant: TenantId,
    user: UserId,
    action: &str,
    detail: Value,
    now: OffsetDateTime,
    trace: &RequestId,
) -> AuditRecord {
    AuditRecord::new(
        Some(tenant),
        clients::actor(client),
        action,
        Some(user_subject(user)),
        detail,
        now,
        Some(trace.0.clone()),
    )
}

async fn redeem_code(
    state: &AppState,
    client: &OAuthClientRecord,
    request: &TokenRequest,
    trace: &RequestId,
) -> Result<Value, Refused> {
    let code = request.code.as_deref().ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let verifier = request
        .code_verifier
        .clone()
        .ok_or_else(|| OAuthError::invalid_request("code_verifier is required (PKCE)"))?;
    let redirect_uri = request
        .redirect_uri
        .clone()
        .ok_or_else(|| OAuthError::invalid_request("redirect_uri is required"))?;
    let digest: [u8; 32] = Sha256::digest(code.as_bytes()).into();
    let now = state.clock.now();
    let jti = uuid::Uuid::new_v4();
    let access_expires_at = now + Duration::seconds(i64::from(client.access_token_ttl_secs));
    let refresh_token = random_token("pcrt_");
    let refresh_digest: [u8; 32] = Sha256::digest(refresh_token.as_bytes()).into();
    let family_id = RefreshFamilyId::generate();
    let (client_record, refresh_value, trace) = (client.clone(), refresh_token.clone(), trace.clone());
    let outcome = state
        .store
        .write(move |tx| {
            let Some(mut record) = grants::code(tx, &digest)? else {
                return Err(Refused::from(OAuthError::invalid_grant("the code is not valid")));
            };
            let refused = Refused::about(record.tenant, record.user);
            if record.redeemed_at.is_some() {
                revoke_what_code_issued(tx, &record, now)?;
                let detail = json!({ "session": record.session, "revoked_family": record.family });
                let audit = grant_audit(
                    &client_record,
                    record.tenant,
                    record.user,
                    "oauth.code.replayed",
                    detail,
                    now,
                    &trace,
                )
                .refused("code_replayed");
                audit::append(tx, audit)?;
                return Ok(Redeemed::Replayed(record.tenant, record.user));
            }
            check_code(&record, &client_record, &redirect_uri, &verifier, now).map_err(&refused)?;
            let (user, tenant, session) =
                live_subject(tx, &record.tenant, record.user, record.session, now).map_err(&refused)?;
            let wants_refresh = client_record.refresh_token_ttl_secs > 0
                && record.scopes.iter().any(|s| s == "offline_access");
            record.redeemed_at = Some(now);
            record.access_token_jti = Some(jti.as_u128());
            record.access_token_expires_at = Some(access_expires_at);
            if wants_refresh {
                record.family = Some(family_id);
                start_family(tx, &client_record, &record, &session, family_id, &refresh_digest, now)?;
            }
            grants::put_code(tx, &digest, &record)?;
            let issued = Issued {
                grant_type: "authorization_code",
                scopes: record.scopes.clone(),
                nonce: record.nonce.clone(),
                refresh_token: wants_refresh.then(|| refresh_value.clone()),
                refresh_family: record.family,
                jti,
            };
            let grant = conclude(tx, &client_record, (user, tenant, session), issued, now, &trace);
            Ok(Redeemed::Granted(grant.map_err(&refused)?))
        })
        .await?;
    match outcome {
        Redeemed::Granted(grant) => Ok(issue(state, client, *grant, jti, now, true)?),
        Redeemed::Replayed(tenant, user) => {
            tracing::warn!(client_id = %client.id, "an authorization code was presented twice; its tokens are revoked");
            let refused = Refused::about(tenant, user)(OAuthError::invalid_grant("the code is not valid"));
            Err(Refused { recorded: true, ..refused })
        }
    }
}

fn check_code(
    record: &CodeRecord,
    client: &OAuthClientRecord,
    redirect_uri: &str,
    verifier: &str,
    now: OffsetDateTime,
) -> Result<(), OAuthError> {
    // One answer for every reason: the client learns nothing about codes that are not its own.
    let refused = || OAuthError::invalid_grant("the code is not valid");
    if record.client != client.id || record.expires_at <= now {
        return Err(refused());
    }
    if record.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant("redirect_uri differs from the authorization request's"));
    }
    if !verifier_matches(verifier, &record.code_challenge) {
        return Err(OAuthError::invalid_grant("the code_verifier does not match the code_challenge"));
    }
    Ok(())
}

/// RFC 6749 §4.1.2: a code used twice revokes the tokens issued from it.
fn revoke_what_code_issued(
    tx: &WriteTx<'_>,
    record: &CodeRecord,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    if let Some(family) = record.family {
        grants::revoke_refresh_family(tx, family, "code_reused", now)?;
    }
    if let (Some(jti), Some(expires_at)) = (record.access_token_jti, record.access_token_expires_at) {
        grants::revoke_access_token(tx, jti, expires_at)?;
    }
    Ok(())
}

/// The user, tenant and session a grant is for, all still active.
fn live_subject(
    src: &impl Source,
    tenant: &crate::ids::TenantId,
    user: crate::ids::UserId,
    session: SessionId,
    now: OffsetDateTime,
) -> Result<(UserRecord, TenantRecord, SessionRecord), OAuthError> {
    let ended = || OAuthError::invalid_grant("the session has ended");
    let session = stored_sessions::get(src, session)?.filter(|s| s.is_live(now)).ok_or_else(ended)?;
    let user = directory::user(src, *tenant, user)?.filter(|u| u.active).ok_or_else(ended)?;
    let tenant =
        tenants::get(src, *tenant)?.filter(|t| t.status == TenantStatus::Active).ok_or_else(ended)?;
    Ok((user, tenant, session))
}

fn start_family(
    tx: &WriteTx<'_>,
    client: &OAuthClientRecord,
    code: &CodeRecord,
    session: &SessionRecord,
    id: RefreshFamilyId,
    digest: &[u8; 32],
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let family = RefreshFamilyRecord {
        id,
        client: client.id,
        tenant: code.tenant,
        user: code.user,
        session: session.id,
        scopes: code.scopes.clone(),
        auth_time: code.auth_time,
        created_at: now,
        expires_at: session.expires_at,
        revoked_at: None,
        revoked_reason: None,
    };
    grants::put_refresh_family(tx, &family)?;
    grants::put_refresh_token(tx, digest, &refresh_record(client, &family, now))
}

fn refresh_record(
    client: &OAuthClientRecord,
    family: &RefreshFamilyRecord,
    now: OffsetDateTime,
) -> RefreshTokenRecord {
    let ttl_end = now + Duration::seconds(i64::from(client.refresh_token_ttl_secs));
    RefreshTokenRecord {
        family: family.id,
        issued_at: now,
        expires_at: ttl_end.min(family.expires_at),
        replaced_at: None,
    }
}

enum Refreshed {
    Granted(Box<Grant>),
    /// A replaced token (of this tenant and user) came back: the family was revoked, and the
    /// reuse recorded, in this commit.
    Reused(TenantId, UserId),
}

async fn refresh(
    state: &AppState,
    client: &OAuthClientRecord,
    request: &TokenRequest,
    trace: &RequestId,
) -> Result<Value, Refused> {
    let presented = request
        .refresh_token
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let narrowed: Option<Vec<String>> =
        request.scope.as_deref().map(|s| s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect());
    let now = state.clock.now();
    let jti = uuid::Uuid::new_v4();
    let next = random_token("pcrt_");
    let next_digest: [u8; 32] = Sha256::digest(next.as_bytes()).into();
    let (client_record, next_value, trace) = (client.clone(), next.clone(), trace.clone());
    let outcome = state
        .store
        .write(move |tx| {
            let invalid = || OAuthError::invalid_grant("the refresh token is not valid");
            let mut token = grants::refresh_token(tx, &digest)?.ok_or_else(invalid)?;
            let family = grants::refresh_family(tx, token.family)?.ok_or_else(invalid)?;
            let refused = Refused::about(family.tenant, family.user);
            if family.client != client_record.id || family.revoked_at.is_some() || token.expires_at <= now {
                return Err(refused(invalid()));
            }
            if token.replaced_at.is_some() {
                grants::revoke_refresh_family(tx, family.id, "reuse_detected", now)?;
                let detail = json!({ "session": family.session, "revoked_family": family.id });
                let audit = grant_audit(
                    &client_record,
                    family.tenant,
                    family.user,
                    "oauth.refresh.reused",
                    detail,
                    now,
                    &trace,
                )
                .refused("refresh_token_reused");
                audit::append(tx, audit)?;
                return Ok(Refreshed::Reused(family.tenant, family.user));
            }
            let (user, tenant, session) =
                live_subject(tx, &family.tenant, family.user, family.session, now).map_err(&refused)?;
            let scopes = match &narrowed {
                Some(asked) if asked.iter().any(|s| !family.scopes.contains(s)) => {
                    return Err(refused(OAuthError::new("invalid_scope", "a refresh cannot add scopes")));
                }
                Some(asked) => asked.clone(),
                None => family.scopes.clone(),
            };
            token.replaced_at = Some(now);
            grants::put_refresh_token(tx, &digest, &token)?;
            grants::put_refresh_token(tx, &next_digest, &refresh_record(&client_record, &family, now))?;
            let issued = Issued {
                grant_type: "refresh_token",
                scopes,
                nonce: None,
                refresh_token: Some(next_value.clone()),
                refresh_family: Some(family.id),
                jti,
            };
            let grant = conclude(tx, &client_record, (user, tenant, session), issued, now, &trace);
            Ok(Refreshed::Granted(grant.map_err(&refused)?))
        })
        .await?;
    match outcome {
        Refreshed::Granted(grant) => Ok(issue(state, client, *grant, jti, now, true)?),
        Refreshed::Reused(tenant, user) => {
            tracing::warn!(client_id = %client.id, "a replaced refresh token was presented; its family is revoked");
            let refused =
                Refused::about(tenant, user)(OAuthError::invalid_grant("the refresh token is not valid"));
            Err(Refused { recorded: true, ..refused })
        }
    }
}

/// Whether the user's email is at a domain the tenant has proved it controls.
pub(super) fn email_verified(
    src: &impl Source,
    tenant: &TenantRecord,
    user: &UserRecord,
) -> Result<bool, StoreError> {
    let Some(domain) = user.email.as_deref().and_then(|e| e.rsplit_once('@')).map(|(_, d)| d) else {
        return Ok(false);
    };
    Ok(tenants::domain(src, tenant.id, domain)?.is_some_and(|d| d.status == DomainStatus::Verified))
}

/// Signs the access token and ID token of a grant and shapes the token response.
fn issue(
    state: &AppState,
    client: &OAuthClientRecord,
    grant: Grant,
    jti: uuid::Uuid,
    now: OffsetDateTime,
    with_id_token: bool,
) -> Result<Value, OAuthError> {
    let keys = state.keys.current();
    let issuer = state.public_url.to_string();
    let scope = grant.scopes.join(" ");
    let access = AccessClaims {
        iss: issuer.clone(),
        sub: grant.user.id.to_string(),
        aud: client.id.to_string(),
        client_id: client.id.to_string(),
        exp: (now + Duration::seconds(i64::from(client.access_token_ttl_secs))).unix_timestamp(),
        iat: now.unix_timestamp(),
        jti: jti.hyphenated().to_string(),
        scope: scope.clone(),
        sid: grant.session.id.to_string(),
        org_id: grant.tenant.id.to_string(),
        auth_time: grant.session.created_at.unix_timestamp(),
        roles: grant.access.roles.clone(),
        tier: grant.access.tier.clone(),
        programs: grant.access.programs.clone(),
    };
    let signing_failed = |err: super::keys::TokenError| {
        tracing::error!(%err, "cannot sign a token");
        OAuthError::server_error()
    };
    let access_token =
        keys.sign(client.id_token_signing_alg, "at+jwt", &access, now).map_err(signing_failed)?;
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": client.access_token_ttl_secs,
        "scope": scope,
    });
    if with_id_token {
        let id_token = id_token(client, &grant, &issuer, now);
        body["id_token"] =
            json!(keys.sign(client.id_token_signing_alg, "JWT", &id_token, now).map_err(signing_failed)?);
    }
    if let Some(refresh_token) = grant.refresh_token {
        body["refresh_token"] = json!(refresh_token);
    }
    Ok(body)
}

fn id_token(client: &OAuthClientRecord, grant: &Grant, issuer: &str, now: OffsetDateTime) -> Value {
    let mut claims =
        user_claims(&grant.user, &grant.tenant, &grant.access, &grant.scopes, grant.email_verified);
    let standard = json!({
        "iss": issuer,
        "sub": grant.user.id,
        "aud": client.id,
        "azp": client.id,
        "exp": (now + Duration::seconds(i64::from(client.id_token_ttl_secs))).unix_timestamp(),
        "iat": now.unix_timestamp(),
        "auth_time": grant.session.created_at.unix_timestamp(),
        "sid": grant.session.id,
        "amr": grant.session.amr,
        "idp": grant.session.idp,
    });
    if let Value::Object(standard) = standard {
        claims.extend(standard);
    }
    if let Some(nonce) = &grant.nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    Value::Object(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ids::{TenantId, UserId},
        provider::clients::tests::client_record,
    };

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn code_for(client: &OAuthClientRecord, now: OffsetDateTime) -> CodeRecord {
        CodeRecord {
            client: client.id,
            redirect_uri: "https://app.test/callback".into(),
            tenant: TenantId::generate(),
            user: UserId::generate(),
            session: SessionId::generate(),
            scopes: vec!["openid".into()],
            nonce: None,
            code_challenge: CHALLENGE.into(),
            auth_time: now,
            expires_at: now + Duration::seconds(60),
            redeemed_at: None,
            family: None,
            access_token_jti: None,
            access_token_expires_at: None,
        }
    }

    #[test]
    fn a_code_is_refused_when_expired_or_presented_with_anything_but_its_own_client_uri_and_verifier() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let client = client_record(None, now);
        let code = code_for(&client, now);
        let uri = "https://app.test/callback";
        assert!(check_code(&code, &client, uri, VERIFIER, now).is_ok());
        assert!(check_code(&code, &client, uri, VERIFIER, now + Duration::seconds(60)).is_err(), "expired");
        assert!(check_code(&code, &client_record(None, now), uri, VERIFIER, now).is_err(), "another client");
        assert!(
            check_code(&code, &client, "https://app.test/callback/", VERIFIER, now).is_err(),
            "another URI"
        );
        assert!(
            check_code(&code, &client, uri, CHALLENGE, now).is_err(),
            "the challenge is not the verifier"
        );
    }
}
