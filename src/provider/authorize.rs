//! The authorization endpoint (OpenID Connect Core §3.1.2): Authorization Code with PKCE S256.
//!
//! Checks come in the order RFC 6749 §4.1.2.1 demands: until the client and its exact redirect URI
//! are known, errors are shown on a page here and never redirected; after that, they go back to
//! the client as `error` parameters, and are recorded (`oauth.authorize.refused`; not
//! `login_required`, which answers an app's silent check rather than refusing anything). A
//! request that passes waits in the store while the person signs in (its id travels through the
//! login pages and an IdP's RelayState); a browser that already has a live session gets its code
//! at once.

use axum::{
    Extension, Form,
    extract::{
        Query, State,
        rejection::{FormRejection, QueryRejection},
    },
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Redirect, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use url::Url;

use serde_json::json;

use crate::{
    app::AppState,
    audit::refusals as audit_refusals,
    http::middleware::RequestId,
    ids::{AuthRequestId, ClientId},
    sessions::{self, NewSession, cookie},
    signin::pages,
    store::{
        StoreError, WriteTx,
        audit::{self, Actor, AuditRecord},
        directory,
        grants::{self, AuthorizationRequestRecord, CodeRecord},
        journal::Subject,
        oauth_clients::{self, OAuthClientRecord},
        sessions::{self as stored_sessions, SessionRecord},
        tenants::{self, TenantStatus},
    },
};

/// How long a person has to sign in.
pub const REQUEST_LIFETIME: Duration = Duration::minutes(30);
/// How long a code may wait to be exchanged (RFC 6749 §4.1.2 recommends at most ten minutes).
pub const CODE_LIFETIME: Duration = Duration::seconds(60);
const MAX_PARAM: usize = 2048;

#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeParams {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    response_mode: Option<String>,
    prompt: Option<String>,
    max_age: Option<String>,
    login_hint: Option<String>,
    /// Portcullis' extension: the tenant (slug or id) whose way of signing in to use at once.
    organization: Option<String>,
    request: Option<String>,
    request_uri: Option<String>,
}

pub async fn authorize_get(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    query: Result<Query<AuthorizeParams>, QueryRejection>,
) -> Response {
    match query {
        Ok(Query(params)) => authorize(state, headers, params, request_id).await,
        // A repeated parameter (RFC 6749 §3.1): not even the redirect URI can be trusted.
        Err(_) => unreadable_request(),
    }
}

fn unreadable_request() -> Response {
    pages::error(
        axum::http::StatusCode::BAD_REQUEST,
        "This sign-in link is not valid",
        "The application sent a request Portcullis cannot read. Go back to the application and try again.",
    )
}

pub async fn authorize_post(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    form: Result<Form<AuthorizeParams>, FormRejection>,
) -> Response {
    match form {
        Ok(Form(params)) => authorize(state, headers, params, request_id).await,
        Err(_) => unreadable_request(),
    }
}

/// Where an error goes once the client and its redirect URI are trusted.
struct ReturnTo<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
    issuer: &'a str,
}

impl ReturnTo<'_> {
    fn error(&self, code: &str, description: &str) -> Response {
        let mut params = vec![("error", code), ("error_description", description)];
        if let Some(state) = self.state {
            params.push(("state", state));
        }
        params.push(("iss", self.issuer));
        redirect_with(self.redirect_uri, &params)
    }
}

/// A 303 to `uri` with `params` added to its query (RFC 6749 §3.1.2: keep the URI's own query).
pub fn redirect_with(uri: &str, params: &[(&str, &str)]) -> Response {
    match Url::parse(uri) {
        Ok(_) => Redirect::to(&with_params(uri, params)).into_response(),
        Err(_) => pages::error(
            axum::http::StatusCode::BAD_REQUEST,
            "The application is misconfigured",
            "Its return address is not valid. Tell the application's administrator.",
        ),
    }
}

/// `uri` with `params` added to its query (a registered, hence absolute, URI).
pub fn with_params(uri: &str, params: &[(&str, &str)]) -> String {
    match Url::parse(uri) {
        Ok(mut url) => {
            if !params.is_empty() {
                url.query_pairs_mut().extend_pairs(params);
            }
            url.into()
        }
        Err(_) => uri.to_owned(),
    }
}

async fn authorize(
    state: AppState,
    headers: HeaderMap,
    params: AuthorizeParams,
    request_id: RequestId,
) -> Response {
    let client = match trusted_client(&state, &params).await {
        Ok(client) => client,
        Err(response) => return response,
    };
    let (redirect_uri, issuer) =
        (params.redirect_uri.clone().unwrap_or_default(), state.public_url.to_string());
    let back = ReturnTo { redirect_uri: &redirect_uri, state: params.state.as_deref(), issuer: &issuer };
    let now = state.clock.now();
    let request = match validate(&state, &client, &params, now).await {
        Ok(request) => request,
        Err((code, description)) => {
            record_refusal(&state, client.id, &redirect_uri, None, code, &description, &request_id).await;
            return back.error(code, &description);
        }
    };
    let prompt_none = params.prompt.as_deref().is_some_and(|p| p.split(' ').any(|v| v == "none"));

    if let Some(session) = reusable_session(&state, &headers, &request, now).await {
        return match finish::<std::convert::Infallible>(
            &state,
            request,
            Finish::Existing(session),
            false,
            None,
            request_id,
        )
        .await
        {
            Ok(response) => response,
            Err(err) => err.response(&back),
        };
    }
    if prompt_none {
        return back.error("login_required", "the person is not signed in");
    }
    let stored = request.clone();
    match state.store.write(move |tx| grants::put_authorization_request(tx, &stored)).await {
        Ok(()) => Redirect::to(&format!("/login?request={}", request.id)).into_response(),
        Err(err) => {
            tracing::error!(%err, "cannot store an authorization request");
            let (code, description) = UNAVAILABLE;
            record_refusal(&state, client.id, &redirect_uri, None, code, description, &request_id).await;
            back.error(code, description)
        }
    }
}

const UNAVAILABLE: (&str, &str) = ("temporarily_unavailable", "try again in a moment");

/// Records an authorization request refused back to the client: by the browser's person when
/// one had signed in (`session`), else by an anonymous caller.
async fn record_refusal(
    state: &AppState,
    client: ClientId,
    redirect_uri: &str,
    session: Option<&SessionRecord>,
    code: &str,
    description: &str,
    trace: &RequestId,
) {
    let detail = json!({
        "client": client, "redirect_uri": redirect_uri, "error_description": description,
        "session": session.map(|s| s.id),
    });
    let user = session.map(|s| Subject { kind: "user".into(), id: s.user.to_string(), label: None });
    let actor = user.as_ref().map_or_else(Actor::anonymous, |u| Actor {
        kind: "user".into(),
        id: u.id.clone(),
        label: None,
    });
    let record = AuditRecord::new(
        session.map(|s| s.tenant),
        actor,
        "oauth.authorize.refused",
        user,
        detail,
        state.clock.now(),
        Some(trace.0.clone()),
    );
    audit_refusals::record(state, record.refused(code)).await;
}

/// The client and its exact redirect URI, or the page that says what is wrong with them.
async fn trusted_client(state: &AppState, params: &AuthorizeParams) -> Result<OAuthClientRecord, Response> {
    let bad = |message: &str| {
        pages::error(axum::http::StatusCode::BAD_REQUEST, "This sign-in link is not valid", message)
    };
    let Some(client_id) = params.client_id.as_deref().and_then(|id| id.parse().ok()) else {
        return Err(bad("The application did not say who it is. Go back to it and try again."));
    };
    let client = match state.store.read(move |tx| oauth_clients::get(tx, client_id)).await {
        Ok(Some(client)) => client,
        Ok(None) => return Err(bad("The application is not registered with this sign-in service.")),
        Err(err) => {
            tracing::error!(%err, "cannot read an OAuth client");
            return Err(pages::unavailable());
        }
    };
    match params.redirect_uri.as_deref() {
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => Ok(client),
        _ => Err(bad("The application asked to return to an address it has not registered.")),
    }
}

type Refusal = (&'static str, String);

async fn validate(
    state: &AppState,
    client: &OAuthClientRecord,
    params: &AuthorizeParams,
    now: OffsetDateTime,
) -> Result<AuthorizationRequestRecord, Refusal> {
    let invalid = |description: &str| ("invalid_request", description.to_owned());
    if params.request.is_some() {
        return Err(("request_not_supported", "request objects are not supported".into()));
    }
    if params.request_uri.is_some() {
        return Err(("request_uri_not_supported", "request_uri is not supported".into()));
    }
    let too_long = [&params.state, &params.nonce, &params.login_hint, &params.scope, &params.organization]
        .iter()
        .any(|p| p.as_ref().is_some_and(|v| v.len() > MAX_PARAM));
    if too_long {
        return Err(invalid("a parameter is too long"));
    }
    if params.response_type.as_deref() != Some("code") {
        return Err(("unsupported_response_type", "only response_type=code is supported".into()));
    }
    if params.response_mode.as_deref().is_some_and(|m| m != "query") {
        return Err(invalid("only response_mode=query is supported"));
    }
    let scopes = requested_scopes(client, params.scope.as_deref())?;
    let challenge =
        params.code_challenge.as_deref().ok_or_else(|| invalid("code_challenge is required (PKCE)"))?;
    if params.code_challenge_method.as_deref() != Some("S256") {
        return Err(invalid("code_challenge_method must be S256"));
    }
    if !is_s256_challenge(challenge) {
        return Err(invalid("code_challenge must be the base64url SHA-256 of the verifier"));
    }
    let max_age = match params.max_age.as_deref() {
        None => None,
        Some(value) => {
            Some(value.parse::<u64>().map_err(|_| invalid("max_age must be a number of seconds"))?)
        }
    };
    let prompts: Vec<&str> =
        params.prompt.as_deref().unwrap_or_default().split(' ').filter(|p| !p.is_empty()).collect();
    if prompts.contains(&"none") && prompts.len() > 1 {
        return Err(invalid("prompt=none cannot be combined with other values"));
    }
    let tenant = match params.organization.clone() {
        None => None,
        Some(reference) => {
            let found = state
                .store
                .read(move |tx| match crate::tenants::resolve(tx, &reference) {
                    Ok(tenant) => Ok(Some(tenant)),
                    Err(crate::tenants::TenantError::Store(err)) => Err(err),
                    Err(_) => Ok(None),
                })
                .await;
            match found {
                Ok(Some(tenant)) if tenant.status == TenantStatus::Active => Some(tenant.id),
                Ok(_) => return Err(invalid("organization is not a known organization")),
                Err(_) => return Err(("temporarily_unavailable", "try again in a moment".into())),
            }
        }
    };
    Ok(AuthorizationRequestRecord {
        id: AuthRequestId::generate(),
        client: client.id,
        redirect_uri: params.redirect_uri.clone().unwrap_or_default(),
        scopes,
        state: params.state.clone(),
        nonce: params.nonce.clone(),
        code_challenge: challenge.to_owned(),
        response_mode: "query".into(),
        login_hint: params.login_hint.clone(),
        tenant,
        max_age,
        force_login: prompts.contains(&"login"),
        created_at: now,
        expires_at: now + REQUEST_LIFETIME,
    })
}

/// The scopes asked for, which must include `openid` and be allowed to the client.
fn requested_scopes(client: &OAuthClientRecord, scope: Option<&str>) -> Result<Vec<String>, Refusal> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in scope.unwrap_or_default().split(' ').filter(|s| !s.is_empty()) {
        if !client.allowed_scopes.iter().any(|a| a == scope) {
            return Err(("invalid_scope", format!("the scope `{scope}` is not allowed to this client")));
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    if !scopes.iter().any(|s| s == "openid") {
        return Err(("invalid_scope", "the openid scope is required".into()));
    }
    Ok(scopes)
}

/// RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is 43 characters of the base64url alphabet.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `verifier` (RFC 7636 §4.1: 43 to 128 unreserved characters) hashes to `challenge`.
pub fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    well_formed && subtle::ConstantTimeEq::ct_eq(computed.as_bytes(), challenge.as_bytes()).into()
}

/// The browser's live session, if it may answer this request without a new sign-in.
async fn reusable_session(
    state: &AppState,
    headers: &HeaderMap,
    request: &AuthorizationRequestRecord,
    now: OffsetDateTime,
) -> Option<SessionRecord> {
    if request.force_login {
        return None;
    }
    let value = cookie::read(headers, cookie::session_name(state.secure_cookies()))?.to_owned();
    let session = state.store.read(move |tx| sessions::from_cookie(tx, &value, now)).await.ok()??;
    let fresh_enough = request.max_age.is_none_or(|age| {
        now - session.created_at <= Duration::seconds(i64::try_from(age).unwrap_or(i64::MAX))
    });
    let right_tenant = request.tenant.is_none_or(|t| t == session.tenant);
    (fresh_enough && right_tenant).then_some(session)
}

/// How the authorization is being finished: with the browser's session, or a new sign-in's.
pub enum Finish {
    Existing(SessionRecord),
    New(NewSession),
}

/// Why an authorization could not be finished. `E` is why a caller's `Prelude` refused.
#[derive(Debug)]
pub enum FinishError<E = std::convert::Infallible> {
    /// The request expired or was already answered.
    RequestGone,
    /// The user or tenant was deactivated meanwhile.
    AccessDenied,
    /// The caller's prelude refused the sign-in; nothing was committed.
    Refused(E),
    Store(StoreError),
}

impl<E> From<StoreError> for FinishError<E> {
    fn from(err: StoreError) -> Self {
        FinishError::Store(err)
    }
}

impl<E> FinishError<E> {
    /// The error sent back to the client, if this failure is answered with one.
    fn returned(&self) -> Option<(&'static str, &'static str)> {
        match self {
            FinishError::AccessDenied | FinishError::Refused(_) => {
                Some(("access_denied", "the account cannot sign in"))
            }
            FinishError::RequestGone => None,
            FinishError::Store(_) => Some(UNAVAILABLE),
        }
    }

    /// The answer for the browser by default; a caller with a prelude explains its refusals.
    fn response(&self, back: &ReturnTo<'_>) -> Response {
        if let FinishError::Store(err) = self {
            tracing::error!(%err, "cannot finish an authorization");
        }
        match self.returned() {
            Some((code, description)) => back.error(code, description),
            None => pages::expired_request(),
        }
    }
}

/// Work that must commit with the sign-in or not at all (a SAML assertion marked as used, a user
/// created just in time). It runs in the sign-in's transaction, before anything else is written;
/// returning `Err` stops the sign-in.
pub type Prelude<E> = std::sync::Arc<dyn Fn(&WriteTx<'_>) -> Result<(), FinishError<E>> + Send + Sync>;

/// An authorization that could not be finished: why, and the answer the browser would get by
/// default (the error sent back to the client, or the page saying the request expired).
pub struct FinishFailure<E> {
    pub error: FinishError<E>,
    pub response: Response,
}

/// Finishes a stored request after a sign-in: see `finish`.
pub async fn finish_stored(
    state: &AppState,
    id: AuthRequestId,
    how: Finish,
    request_id: RequestId,
) -> Response {
    finish_stored_after::<std::convert::Infallible>(state, id, how, None, request_id)
        .await
        .unwrap_or_else(|failure| failure.response)
}

/// Finishes a stored request after a sign-in, committing `prelude` with it.
pub async fn finish_stored_after<E: Send + 'static>(
    state: &AppState,
    id: AuthRequestId,
    how: Finish,
    prelude: Option<Prelude<E>>,
    request_id: RequestId,
) -> Result<Response, FinishFailure<E>> {
    let now = state.clock.now();
    let request = match state.store.read(move |tx| grants::authorization_request(tx, id)).await {
        Ok(Some(request)) if request.expires_at > now => request,
        Ok(_) => {
            return Err(FinishFailure {
                error: FinishError::RequestGone,
                response: pages::expired_request(),
            });
        }
        Err(err) => {
            tracing::error!(%err, "cannot read an authorization request");
            return Err(FinishFailure { error: FinishError::Store(err), response: pages::unavailable() });
        }
    };
    let issuer = state.public_url.to_string();
    let (redirect_uri, request_state) = (request.redirect_uri.clone(), request.state.clone());
    let back = ReturnTo { redirect_uri: &redirect_uri, state: request_state.as_deref(), issuer: &issuer };
    finish(state, request, how, true, prelude, request_id).await.map_err(|error| {
        let response = error.response(&back);
        FinishFailure { error, response }
    })
}

/// Issues the code for `request` (`stored` if it waited in the store), in one commit with the new session (if any), the session's
/// record of this client, and the removal of the stored request; then sends the browser back to
/// the client with `code`, `state` and `iss` (RFC 9207).
async fn finish<E: Send + 'static>(
    state: &AppState,
    request: AuthorizationRequestRecord,
    how: Finish,
    stored: bool,
    prelude: Option<Prelude<E>>,
    trace: RequestId,
) -> Result<Response, FinishError<E>> {
    let now = state.clock.now();
    let code = random_token("pcac_");
    let digest: [u8; 32] = Sha256::digest(code.as_bytes()).into();
    let (session, cookie_value) = match how {
        Finish::Existing(session) => (session, None),
        Finish::New(NewSession { record, cookie_value }) => (record, Some(cookie_value)),
    };
    let is_new = cookie_value.is_some();
    let record = CodeRecord {
        client: request.client,
        redirect_uri: request.redirect_uri.clone(),
        tenant: session.tenant,
        user: session.user,
        session: session.id,
        scopes: request.scopes.clone(),
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.clone(),
        auth_time: session.created_at,
        expires_at: now + CODE_LIFETIME,
        redeemed_at: None,
        family: None,
        access_token_jti: None,
        access_token_expires_at: None,
    };
    let (request_id, stored_session, refusal_trace) = (request.id, session.clone(), trace.clone());
    let committed = state
        .store
        .write(move |tx| {
            if let Some(prelude) = &prelude {
                prelude(tx)?;
            }
            let user_active =
                directory::user(tx, stored_session.tenant, stored_session.user)?.is_some_and(|u| u.active);
            let tenant_active =
                tenants::get(tx, stored_session.tenant)?.is_some_and(|t| t.status == TenantStatus::Active);
            if !user_active || !tenant_active {
                return Err(FinishError::AccessDenied);
            }
            // A stored request is answered once, even if the form is submitted twice at once.
            if stored && grants::take_authorization_request(tx, request_id)?.is_none() {
                return Err(FinishError::RequestGone);
            }
            if is_new {
                stored_sessions::put(tx, &stored_session)?;
            }
            if !sessions::touch(tx, stored_session.id, Some(record.client), now)? {
                return Err(FinishError::AccessDenied);
            }
            grants::put_code(tx, &digest, &record)?;
            let detail = json!({
                "client": record.client, "session": stored_session.id, "new_session": is_new,
                "idp": stored_session.idp, "amr": stored_session.amr, "ip": stored_session.ip,
            });
            audit::append(
                tx,
                AuditRecord::new(
                    Some(stored_session.tenant),
                    Actor { kind: "user".into(), id: stored_session.user.to_string(), label: None },
                    "signin.authorize",
                    Some(Subject { kind: "user".into(), id: stored_session.user.to_string(), label: None }),
                    detail,
                    now,
                    Some(trace.0.clone()),
                ),
            )?;
            Ok(())
        })
        .await;
    // A prelude's refusal is its caller's to record (`sso.saml.refused`, …); an expired request
    // went nowhere near the client.
    let refused = match &committed {
        Err(error @ (FinishError::AccessDenied | FinishError::Store(_))) => error.returned(),
        _ => None,
    };
    if let Some((code, description)) = refused {
        let (client, uri) = (request.client, &request.redirect_uri);
        record_refusal(state, client, uri, Some(&session), code, description, &refusal_trace).await;
    }
    committed?;
    let issuer = state.public_url.to_string();
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = request.state.as_deref() {
        params.push(("state", s));
    }
    params.push(("iss", issuer.as_str()));
    let mut response = redirect_with(&request.redirect_uri, &params);
    if let Some(value) = cookie_value {
        let secure = state.secure_cookies();
        let max_age = session.expires_at - now;
        if let Some(set) = cookie::set(cookie::session_name(secure), &value, Some(max_age), secure) {
            response.headers_mut().append(header::SET_COOKIE, set);
        }
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A bearer value: `prefix` + 256 random bits in base64url.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_the_rfc7636_example() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(is_s256_challenge(challenge));
        assert!(verifier_matches(verifier, challenge));
        assert!(!verifier_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK", challenge));
        assert!(!verifier_matches("short", challenge));
        // `plain` would send the verifier itself as the challenge: not a 43-char hash.
        assert!(!verifier_matches(challenge, challenge));
    }
}
