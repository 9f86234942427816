//! The redirect URI: `/sso/oidc/{connection}/callback` and `/sso/google/callback`.
//!
//! In order: the `state` must name a login this server started, for this upstream, unanswered,
//! unexpired, from this browser; the issuer named in the response (RFC 9207) must be the
//! upstream's; then the code is exchanged with the PKCE verifier, the ID token verified
//! (`tokens`, one key refresh for an unknown key), userinfo read where the mapping needs it, and
//! the person mapped to a user. One write transaction then marks the login answered, links the
//! IdP subject, creates a user just in time where allowed and finishes the app's authorization,
//! so that of two callbacks with one `state` exactly one signs anybody in. A refusal at any step
//! answers with a page naming the check and leaves an audit record; it changes nothing else.

use std::{net::IpAddr, sync::Arc};

use axum::{
    Extension,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::Response,
};
use openidconnect::{
    AccessToken, AuthorizationCode, OAuth2TokenResponse, PkceCodeVerifier, RequestTokenError,
    SubjectIdentifier, TokenResponse, UserInfoClaims, UserInfoError, core::CoreGenderClaim,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::{
    Upstream,
    claims::{self, Outcome, Person},
    google,
    issuer::Published,
    login::{browser_digest, client},
    refusal::{self, Context, Refusal, idp_actor, unavailable},
    tokens::{self, Expected, OtherClaims, VerifiedIdToken},
};
use crate::{
    app::AppState,
    directory::{
        Change,
        federated::{self, Resolved},
    },
    http::{client_ip::ClientIp, middleware::RequestId},
    ids::ConnectionId,
    metrics::SignInMethod,
    provider::{self, Finish, FinishError, FinishFailure, Prelude},
    sessions::{self, SignIn, cookie},
    signin::pages,
    store::{
        StoreError, WriteTx,
        audit::{self, AuditRecord},
        journal::Subject,
        oidc::{self, Answering, PendingLogin},
        sessions::IdpSession,
        tenants::{self, TenantRecord, TenantStatus},
    },
};

#[derive(Debug, Deserialize)]
pub struct CallbackParams {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
}

/// Who came back, for the session and the audit trail.
struct Caller {
    ip: String,
    user_agent: Option<String>,
    /// The browser cookie's value, if the browser sent one.
    browser: Option<String>,
    trace: RequestId,
}

/// A refusal and where it happened.
struct Refused {
    refusal: Refusal,
    context: Context,
}

impl From<Refusal> for Refused {
    fn from(refusal: Refusal) -> Self {
        Refused { refusal, context: Context::default() }
    }
}

/// `sso.oidc.*` or `sso.google.*`: the audit actions of an upstream.
fn family(upstream: &str) -> &'static str {
    if upstream == google::UPSTREAM { "google" } else { "oidc" }
}

/// The metrics' name for how the person signed in.
fn method(upstream: &str) -> SignInMethod {
    if upstream == google::UPSTREAM { SignInMethod::Google } else { SignInMethod::Oidc }
}

pub async fn connection_callback(
    State(state): State<AppState>,
    Path(connection): Path<String>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Extension(trace): Extension<RequestId>,
    Query(params): Query<CallbackParams>,
) -> Response {
    let upstream = match connection.parse::<ConnectionId>() {
        Ok(id) => format!("oidc:{id}"),
        Err(_) => return Refusal::UnknownConnection.page(&trace.0),
    };
    respond(&state, &upstream, params, caller(&state, client, &headers, trace)).await
}

pub async fn google_callback(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Extension(trace): Extension<RequestId>,
    Query(params): Query<CallbackParams>,
) -> Response {
    respond(&state, google::UPSTREAM, params, caller(&state, client, &headers, trace)).await
}

fn caller(state: &AppState, client: IpAddr, headers: &HeaderMap, trace: RequestId) -> Caller {
    Caller {
        ip: client.to_string(),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(200).collect()),
        browser: cookie::read(headers, cookie::browser_name(state.secure_cookies())).map(str::to_owned),
        trace,
    }
}

async fn respond(state: &AppState, upstream: &str, params: CallbackParams, caller: Caller) -> Response {
    match accept(state, upstream, params, &caller).await {
        Ok(response) => response,
        Err(mut refused) => {
            if refused.context.upstream.is_none() {
                refused.context.upstream = Some(upstream.to_owned());
            }
            let detail = refused.context.detail.as_object_mut();
            if let Some(fields) = detail {
                fields.insert("ip".into(), json!(caller.ip));
                fields.insert("user_agent".into(), json!(caller.user_agent));
            } else {
                refused.context.detail = json!({ "ip": caller.ip, "user_agent": caller.user_agent });
            }
            match refused.refusal {
                Refusal::Unavailable => state.metrics.sign_in_failed(method(upstream)),
                _ => state.metrics.sign_in_refused(method(upstream), refused.refusal.code()),
            }
            let action = format!("sso.{}.refused", family(upstream));
            refusal::record(state, &action, &refused.refusal, &refused.context, &caller.trace.0).await;
            if let Some(ticket) = refused.context.test_ticket.clone() {
                report_refused_test(state, ticket, &refused.refusal).await;
            }
            refused.refusal.page(&caller.trace.0)
        }
    }
}

async fn accept(
    state: &AppState,
    upstream_key: &str,
    params: CallbackParams,
    caller: &Caller,
) -> Result<Response, Refused> {
    let now = state.clock.now();
    let login_state =
        params.state.clone().filter(|s| !s.is_empty() && s.len() <= 200).ok_or(Refusal::UnknownState)?;
    let pending = pending_login(state, &login_state, upstream_key, caller, now).await?;
    let context = Context {
        tenant: pending.tenant,
        upstream: Some(upstream_key.to_owned()),
        detail: json!({ "test": pending.test }),
        test_ticket: pending.test_of.clone(),
    };
    let in_context = |refusal: Refusal| Refused { refusal, context: context.clone() };
    let upstream = load_upstream(state, upstream_key, pending.test).await.map_err(in_context)?;
    let published = state
        .oidc
        .issuers
        .get(&upstream.issuer, now)
        .await
        .map_err(|err| in_context(Refusal::IdpUnreachable(err.to_string())))?;
    check_response(&params, &upstream, &published).map_err(in_context)?;
    let code =
        params.code.clone().filter(|c| !c.is_empty()).ok_or_else(|| in_context(Refusal::MissingCode))?;
    let (token, all_claims) =
        authenticate(state, &upstream, published, &pending, code, now).await.map_err(in_context)?;
    let person = claims::map(&token.subject, &all_claims, &upstream.mapping);
    let mut context = context.clone();
    context.detail =
        json!({ "test": pending.test, "sub": token.subject, "sid": token.sid, "email": person.mapped.email });
    let in_context = |refusal: Refusal| Refused { refusal, context: context.clone() };
    let hd = all_claims.get("hd").and_then(Value::as_str).map(str::to_owned);
    let found =
        find_user(state, &upstream, &pending, &person, hd.as_deref(), now).await.map_err(in_context)?;
    let login = Login { state: login_state, pending, upstream, token, person, claims: all_claims };
    match found {
        Outcome::One(account) if login.pending.test => {
            test_result(state, &login, Ok(*account), caller, now).await.map_err(in_context)
        }
        Outcome::Refused(refusal) if login.pending.test => {
            test_result(state, &login, Err(refusal), caller, now).await.map_err(in_context)
        }
        Outcome::Refused(refusal) => Err(in_context(refusal)),
        Outcome::Several(tenants) => choose_tenant(state, &login, &tenants, now).await.map_err(in_context),
        Outcome::One(account) => {
            let (tenant, resolved) = *account;
            sign_in(state, login, tenant, resolved, caller, now).await.map_err(in_context)
        }
    }
}

/// The login the callback answers, if it may: ours, for this upstream, unanswered, unexpired,
/// in the browser that started it.
async fn pending_login(
    state: &AppState,
    login_state: &str,
    upstream: &str,
    caller: &Caller,
    now: OffsetDateTime,
) -> Result<PendingLogin, Refused> {
    let key = login_state.to_owned();
    let pending = state.store.read(move |tx| oidc::login(tx, &key)).await.map_err(unavailable)?;
    let Some(pending) = pending else { return Err(Refusal::UnknownState.into()) };
    let refusal = if pending.upstream != upstream {
        Some(Refusal::WrongConnection)
    } else if pending.test && pending.test_of.is_none() {
        // A test's ticket is never sent to an IdP as a `state`.
        Some(Refusal::UnknownState)
    } else if pending.answered_at.is_some() {
        Some(Refusal::AlreadyAnswered)
    } else if pending.expires_at <= now {
        Some(Refusal::LoginExpired)
    } else if !caller.browser.as_deref().is_some_and(|b| same_browser(&browser_digest(b), &pending.browser)) {
        Some(Refusal::WrongBrowser)
    } else {
        None
    };
    match refusal {
        Some(refusal) => Err(Refused {
            refusal,
            // Not the test's ending: this callback is not (or no longer) the login it ran.
            context: Context {
                tenant: pending.tenant,
                upstream: Some(pending.upstream.clone()),
                ..Context::default()
            },
        }),
        None => Ok(pending),
    }
}

fn same_browser(presented: &[u8; 32], expected: &[u8; 32]) -> bool {
    subtle::ConstantTimeEq::ct_eq(&presented[..], &expected[..]).into()
}

/// The upstream as it is now: a connection must still exist, be enabled (unless this is a test)
/// and belong to an active tenant.
async fn load_upstream(state: &AppState, key: &str, testing: bool) -> Result<Upstream, Refusal> {
    if key == google::UPSTREAM {
        return Upstream::google(state).ok_or(Refusal::UnknownConnection);
    }
    let id: ConnectionId =
        key.strip_prefix("oidc:").and_then(|id| id.parse().ok()).ok_or(Refusal::UnknownConnection)?;
    let connection = super::usable_connection(state, id, testing).await?;
    Upstream::of_connection(state, connection)
}

/// The authorization response itself: the issuer it names (RFC 9207, against mix-up attacks),
/// then the IdP's own error, if it sent one.
fn check_response(
    params: &CallbackParams,
    upstream: &Upstream,
    published: &Published,
) -> Result<(), Refusal> {
    match &params.iss {
        Some(iss) if iss != &upstream.issuer => {
            return Err(Refusal::IssuerParameter { found: iss.clone(), expected: upstream.issuer.clone() });
        }
        None if published.discovered.authorization_response_iss_parameter_supported => {
            return Err(Refusal::IssuerParameterMissing);
        }
        _ => {}
    }
    if let Some(error) = &params.error {
        let short = |text: &str| text.chars().take(200).collect::<String>();
        return Err(Refusal::IdpError {
            error: short(error),
            description: params.error_description.as_deref().map(short),
        });
    }
    Ok(())
}

/// The code exchanged, the ID token verified, and userinfo's claims added where the mapping
/// needs more than the ID token carries.
async fn authenticate(
    state: &AppState,
    upstream: &Upstream,
    published: Arc<Published>,
    pending: &PendingLogin,
    code: String,
    now: OffsetDateTime,
) -> Result<(VerifiedIdToken, Map<String, Value>), Refusal> {
    let outbound = state.oidc.issuers.outbound().clone();
    let http = move |request| {
        let outbound = outbound.clone();
        async move { outbound.execute(request).await }
    };
    let client = client(upstream, &published, &pending.redirect_uri)?;
    let response = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|err| Refusal::NotConfigured(err.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
        .request_async(&http)
        .await
        .map_err(token_refusal)?;
    let raw = response.id_token().map(ToString::to_string).ok_or(Refusal::NoIdToken)?;
    let access_token = response.access_token().secret().clone();
    let expected = Expected {
        issuer: &upstream.issuer,
        client_id: &upstream.client_id,
        now,
        skew: upstream.skew,
        authenticated_after: pending.max_age.and_then(|age| match age {
            0 => Some(pending.created_at),
            age => now.checked_sub(time::Duration::seconds(i64::try_from(age).unwrap_or(i64::MAX))),
        }),
    };
    let verify = |published: &Published| {
        tokens::verify_id_token(&raw, Some(&access_token), &pending.nonce, &published.keys, &expected)
    };
    let (token, published) = match verify(&published) {
        Err(Refusal::UnknownKey) => {
            let fresh = state
                .oidc
                .issuers
                .refresh_keys(&upstream.issuer, &published)
                .await
                .map_err(|err| Refusal::IdpUnreachable(err.to_string()))?;
            (verify(&fresh)?, fresh)
        }
        verified => (verified?, published),
    };
    let mut all = token.claims.clone();
    if claims::lacks_claims(&all, &upstream.mapping) && published.discovered.userinfo_endpoint.is_some() {
        let client = super::login::client(upstream, &published, &pending.redirect_uri)?;
        let request = client
            .user_info(
                AccessToken::new(access_token.clone()),
                Some(SubjectIdentifier::new(token.subject.clone())),
            )
            .map_err(|err| Refusal::UserInfo(err.to_string()))?;
        let info: UserInfoClaims<OtherClaims, CoreGenderClaim> =
            request.request_async(&http).await.map_err(userinfo_refusal)?;
        if let Ok(Value::Object(extra)) = serde_json::to_value(&info) {
            for (name, value) in extra {
                all.entry(name).or_insert(value);
            }
        }
    }
    Ok((token, all))
}

fn token_refusal<E: std::error::Error + 'static, T: openidconnect::ErrorResponse + 'static>(
    err: RequestTokenError<E, T>,
) -> Refusal {
    match err {
        RequestTokenError::ServerResponse(response) => Refusal::TokenEndpoint(response.to_string()),
        RequestTokenError::Request(err) => Refusal::IdpUnreachable(err.to_string()),
        RequestTokenError::Parse(err, _) => {
            Refusal::TokenEndpoint(format!("the answer is not readable: {err}"))
        }
        RequestTokenError::Other(message) => Refusal::TokenEndpoint(message),
    }
}

fn userinfo_refusal<E: std::error::Error + 'static>(err: UserInfoError<E>) -> Refusal {
    match err {
        UserInfoError::ClaimsVerification(err) => {
            Refusal::UserInfo(format!("the claims are not acceptable: {err}"))
        }
        other => Refusal::UserInfo(other.to_string()),
    }
}

async fn find_user(
    state: &AppState,
    upstream: &Upstream,
    pending: &PendingLogin,
    person: &Person,
    hd: Option<&str>,
    now: OffsetDateTime,
) -> Result<Outcome, Refusal> {
    let (person, hd, tenant) = (person.clone(), hd.map(str::to_owned), pending.tenant);
    match &upstream.connection {
        None => state
            .store
            .read(move |tx| google::resolve(tx, tenant, &person, hd.as_deref(), now))
            .await
            .map_err(unavailable),
        Some(connection) => {
            let (tenant_id, jit, key) =
                (connection.tenant, connection.jit_provisioning, upstream.key.clone());
            let (tenant, resolved) = state
                .store
                .read(move |tx| {
                    let tenant = tenants::get(tx, tenant_id)?;
                    Ok::<_, StoreError>((tenant, claims::resolve(tx, tenant_id, &key, &person, jit, now)?))
                })
                .await
                .map_err(unavailable)?;
            let Some(tenant) = tenant.filter(|t| t.status == TenantStatus::Active) else {
                return Ok(Outcome::Refused(Refusal::TenantSuspended));
            };
            Ok(match resolved {
                Ok(resolved) => Outcome::One(Box::new((tenant, resolved))),
                Err(refusal) => Outcome::Refused(refusal),
            })
        }
    }
}

/// A verified login on its way to a session.
struct Login {
    state: String,
    pending: PendingLogin,
    upstream: Upstream,
    token: VerifiedIdToken,
    person: Person,
    claims: Map<String, Value>,
}

async fn sign_in(
    state: &AppState,
    login: Login,
    tenant: TenantRecord,
    resolved: Resolved,
    caller: &Caller,
    now: OffsetDateTime,
) -> Result<Response, Refusal> {
    let authorization = login.pending.authorization.ok_or(Refusal::UnknownState)?;
    let sign_in = SignIn {
        tenant: tenant.id,
        user: resolved.user().id,
        amr: vec!["fed".into()],
        idp: login.upstream.key.clone(),
        idp_session_ends_at: None,
        idp_session: Some(IdpSession {
            name_id: login.token.subject.clone(),
            name_id_format: None,
            session_index: login.token.sid.clone(),
        }),
        user_agent: caller.user_agent.clone(),
        ip: Some(caller.ip.clone()),
    };
    let session = sessions::new_session(sign_in, &tenant, now);
    let prelude = one_time_work(&login, &tenant, &resolved, &session.record, caller, now);
    let finished = provider::finish_stored_after(
        state,
        authorization,
        Finish::New(session),
        Some(prelude),
        caller.trace.clone(),
    )
    .await;
    state.metrics.sign_in_finished(method(&login.upstream.key), &finished);
    match finished {
        Ok(response) => Ok(response),
        Err(FinishFailure { error: FinishError::Refused(refusal), .. }) => Err(refusal),
        Err(FinishFailure { response, .. }) => Ok(response),
    }
}

/// What must commit with the sign-in: the login answered, the subject linked, the IdP session
/// remembered for back-channel logout, the new user, the user and tenant still active. Checked
/// again here, in the transaction, because two callbacks may race, and so may a deactivation.
fn one_time_work(
    login: &Login,
    tenant: &TenantRecord,
    resolved: &Resolved,
    session: &crate::store::sessions::SessionRecord,
    caller: &Caller,
    now: OffsetDateTime,
) -> Prelude<Refusal> {
    let (login_state, key, tenant_id) = (login.state.clone(), login.upstream.key.clone(), tenant.id);
    let (subject, sid) = (login.token.subject.clone(), login.token.sid.clone());
    let (session_id, session_ends) = (session.id, session.expires_at);
    // Kept only where the IdP will be asked to sign the person out too (its `id_token_hint`).
    let id_token_hint =
        login.upstream.connection.as_ref().filter(|c| c.sign_out_at_idp).map(|_| login.token.raw.clone());
    // Google sends no groups: its sign-ins leave the claims of the tenant's own IdP alone.
    let claims = login.upstream.connection.as_ref().map(|_| login.person.mapped.sign_in_claims());
    let new_user = match resolved {
        Resolved::New(user) => Some(user.clone()),
        Resolved::Existing(_) => None,
    };
    let change = Change {
        tenant: tenant_id,
        actor: idp_actor(&key),
        channel: "sso",
        request_id: Some(caller.trace.0.clone()),
        now,
    };
    let action = format!("{}.login", family(&key));
    let detail = json!({ "upstream": key, "sub": subject, "sid": sid, "session": session_id });
    let user_id = resolved.user().id;
    Arc::new(move |tx: &WriteTx<'_>| {
        match oidc::answer_login(tx, &login_state, now)? {
            Answering::Answered(p) if p.upstream == key => {}
            Answering::Answered(_) => return Err(FinishError::Refused(Refusal::WrongConnection)),
            Answering::AlreadyAnswered(_) => return Err(FinishError::Refused(Refusal::AlreadyAnswered)),
            Answering::Unknown => return Err(FinishError::Refused(Refusal::UnknownState)),
        }
        federated::admit(tx, &change, new_user.as_ref(), user_id, claims.as_ref())?
            .map_err(|refused| FinishError::Refused(refused.into()))?;
        oidc::link_subject(tx, &key, &subject, tenant_id, user_id)?;
        if let Some(sid) = &sid {
            oidc::record_idp_session(tx, &key, sid, session_id, session_ends)?;
        }
        if let Some(raw) = &id_token_hint {
            oidc::keep_id_token(tx, session_id, raw, session_ends)?;
        }
        let target = Subject { kind: "user".into(), id: user_id.to_string(), label: None };
        change.audit(tx, &action, target, detail.clone())?;
        Ok(())
    })
}

/// The person has accounts in several organisations: the login is used up, and each choice
/// starts Google sign-in again for that organisation.
async fn choose_tenant(
    state: &AppState,
    login: &Login,
    tenants: &[TenantRecord],
    now: OffsetDateTime,
) -> Result<Response, Refusal> {
    let authorization = login.pending.authorization.ok_or(Refusal::UnknownState)?;
    let key = login.state.clone();
    let answered = state
        .store
        .write(move |tx| {
            Ok::<_, StoreError>(matches!(oidc::answer_login(tx, &key, now)?, Answering::Answered(_)))
        })
        .await
        .map_err(unavailable)?;
    if !answered {
        return Err(Refusal::AlreadyAnswered);
    }
    let items: String = tenants
        .iter()
        .map(|t| {
            format!(
                "<li><a href=\"/sso/google/start?request={authorization}&amp;organization={}\">{}</a></li>",
                t.id,
                pages::escape(&t.display_name)
            )
        })
        .collect();
    let body = format!(
        "<p>Your Google account has accounts in several organisations. Which one do you want to use?</p><ul class=\"choices\">{items}</ul>"
    );
    Ok(pages::page(StatusCode::OK, "Choose your organisation", &body))
}

/// A test's login refused after its state was found (the IdP's error, a bad token, an unreachable
/// IdP…): the test ends with the check that failed, so the admin sees why where they wait. Only
/// an unanswered ticket: a test's answer is never replaced.
async fn report_refused_test(state: &AppState, ticket: String, refusal: &Refusal) {
    let now = state.clock.now();
    let result = json!({
        "ok": false, "stage": "message", "check": refusal.code(), "reason": refusal.to_string(),
        "at": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    });
    let recorded = state
        .store
        .write(move |tx| {
            if matches!(oidc::answer_login(tx, &ticket, now)?, Answering::Answered(_)) {
                oidc::record_test_result(tx, &ticket, result.clone())?;
            }
            Ok::<_, StoreError>(())
        })
        .await;
    if let Err(err) = recorded {
        tracing::error!(%err, "cannot record a refused connection test");
    }
}

/// An admin's connection test: everything checked, nobody signed in. The outcome is shown and
/// kept with the test's ticket for the admin API.
async fn test_result(
    state: &AppState,
    login: &Login,
    resolution: Result<(TenantRecord, Resolved), Refusal>,
    caller: &Caller,
    now: OffsetDateTime,
) -> Result<Response, Refusal> {
    let user = match &resolution {
        Ok((_, resolved)) => resolved.test_view(),
        Err(refusal) => {
            json!({ "outcome": "refused", "check": refusal.code(), "reason": refusal.to_string() })
        }
    };
    let result = json!({
        "ok": resolution.is_ok(),
        "subject": login.token.subject, "sid": login.token.sid,
        "claims": login.claims, "user_name": login.person.user_name,
        "email_verified": login.person.email_verified, "mapped": login.person.mapped,
        "user": user, "at": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    });
    let ticket = login.pending.test_of.clone().unwrap_or_default();
    let (login_state, stored, key, tenant) =
        (login.state.clone(), result.clone(), login.upstream.key.clone(), login.pending.tenant);
    let trace = caller.trace.0.clone();
    let failed_check = resolution.as_ref().err().map(Refusal::code);
    let answered = state
        .store
        .write(move |tx| {
            if !matches!(oidc::answer_login(tx, &login_state, now)?, Answering::Answered(_)) {
                return Ok(false);
            }
            oidc::answer_login(tx, &ticket, now)?;
            oidc::record_test_result(tx, &ticket, stored.clone())?;
            let record = AuditRecord::new(
                tenant,
                idp_actor(&key),
                format!("sso.{}.test", family(&key)),
                Some(Subject { kind: "oidc_connection".into(), id: key.clone(), label: None }),
                stored.clone(),
                now,
                Some(trace.clone()),
            );
            audit::append(
                tx,
                match failed_check {
                    Some(check) => record.refused(check),
                    None => record,
                },
            )?;
            Ok::<_, StoreError>(true)
        })
        .await
        .map_err(unavailable)?;
    if !answered {
        return Err(Refusal::AlreadyAnswered);
    }
    Ok(pages::connection_test("OpenID Connect connection test", &result))
}
