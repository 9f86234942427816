//! The start of an OIDC login: `/sso/oidc/{connection}/start?request=…` (a tenant's IdP) and
//! `/sso/google/start?request=…` send the browser to the IdP with an Authorization Code request
//! (PKCE S256, a fresh `state` and `nonce`). The login is stored under its `state` with the
//! digest of the browser's cookie, so that the callback is accepted only once, before it expires,
//! in the browser that started it (OAuth 2.0 Security BCP §4.7: login CSRF).
//!
//! `?test=…` starts an admin's connection test the same way, for a ticket made by the admin API.

use axum::{
    Extension,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use openidconnect::{
    ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, Nonce,
    PkceCodeChallenge, RedirectUrl, Scope,
    core::{CoreAuthPrompt, CoreAuthenticationFlow, CoreClient},
};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{
    Upstream,
    issuer::Published,
    refusal::{Refusal, unavailable},
};
use crate::{
    app::AppState,
    http::middleware::RequestId,
    ids::{AuthRequestId, ConnectionId, TenantId},
    signin::{self, pages},
    store::{
        oidc::{self, OidcConnectionRecord, PendingLogin, TokenAuthMethod},
        tenants::{self, TenantRecord},
    },
};

/// The openidconnect client for an upstream, as discovery configures it.
pub type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

pub fn client(upstream: &Upstream, published: &Published, redirect_uri: &str) -> Result<Client, Refusal> {
    let redirect =
        RedirectUrl::new(redirect_uri.to_owned()).map_err(|err| Refusal::NotConfigured(err.to_string()))?;
    let metadata = published.metadata.clone().set_jwks(published.keys.clone());
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(upstream.client_id.clone()),
        Some(ClientSecret::new(upstream.client_secret.clone())),
    )
    .set_redirect_uri(redirect)
    .set_auth_type(match upstream.auth_method {
        TokenAuthMethod::ClientSecretBasic => openidconnect::AuthType::BasicAuth,
        TokenAuthMethod::ClientSecretPost => openidconnect::AuthType::RequestBody,
    });
    Ok(client)
}

#[derive(Debug, Deserialize)]
pub struct StartParams {
    request: Option<String>,
    test: Option<String>,
    /// Google: the organisation chosen on the "several organisations" page.
    organization: Option<String>,
    /// The address the person typed at Portcullis, for the IdP's login page.
    login_hint: Option<String>,
}

/// What the login is for, and what to tell the IdP.
#[derive(Debug, Default)]
struct Begin {
    authorization: Option<AuthRequestId>,
    test_of: Option<String>,
    tenant: Option<TenantId>,
    login_hint: Option<String>,
    force_login: bool,
    max_age: Option<u64>,
    /// Google: the Workspace domain to offer (a hint; `hd` is checked at the callback).
    hosted_domain: Option<String>,
    expires_at: Option<OffsetDateTime>,
}

pub async fn start_connection(
    State(state): State<AppState>,
    Extension(trace): Extension<RequestId>,
    Path(connection): Path<String>,
    Query(params): Query<StartParams>,
    headers: HeaderMap,
) -> Response {
    let testing = params.test.is_some();
    let connection = match usable_connection(&state, &connection, testing, &trace.0).await {
        Ok(connection) => connection,
        Err(page) => return page,
    };
    let tenant = connection.tenant;
    let upstream = match Upstream::of_connection(&state, connection) {
        Ok(upstream) => upstream,
        Err(refusal) => return refusal.page(&trace.0),
    };
    let typed = params.login_hint.filter(|hint| hint.len() <= 320);
    let begin = match (params.request, params.test) {
        (Some(request), None) => match for_authorization(&state, &request, Some(tenant)).await {
            Ok(begin) => Begin { login_hint: begin.login_hint.or(typed), ..begin },
            Err(page) => return page,
        },
        (None, Some(test)) => match for_test(&state, &upstream, &test, &trace.0).await {
            Ok(begin) => begin,
            Err(page) => return page,
        },
        _ => return pages::expired_request(),
    };
    send(&state, &upstream, Begin { tenant: Some(tenant), ..begin }, &headers, &trace.0).await
}

pub async fn start_google(
    State(state): State<AppState>,
    Extension(trace): Extension<RequestId>,
    Query(params): Query<StartParams>,
    headers: HeaderMap,
) -> Response {
    let Some(upstream) = Upstream::google(&state) else {
        return pages::error(
            StatusCode::NOT_FOUND,
            "Google sign-in is off",
            "This server does not offer Google sign-in.",
        );
    };
    let Some(request) = params.request else { return pages::expired_request() };
    let chosen = params.organization.as_deref().and_then(|o| o.parse::<TenantId>().ok());
    let mut begin = match for_authorization(&state, &request, chosen).await {
        Ok(begin) => begin,
        Err(page) => return page,
    };
    if let Some(tenant) = begin.tenant {
        let found = state.store.read(move |tx| tenants::get(tx, tenant)).await;
        begin.hosted_domain = match found {
            Ok(Some(TenantRecord { google_hosted_domains, .. })) if google_hosted_domains.len() == 1 => {
                google_hosted_domains.into_iter().next()
            }
            _ => None,
        };
    }
    send(&state, &upstream, begin, &headers, &trace.0).await
}

/// The connection, if it can sign anybody in (or, `for_test`, be tested before it is enabled).
async fn usable_connection(
    state: &AppState,
    reference: &str,
    for_test: bool,
    trace: &str,
) -> Result<OidcConnectionRecord, Response> {
    let id: ConnectionId = reference.parse().map_err(|_| Refusal::UnknownConnection.page(trace))?;
    super::usable_connection(state, id, for_test).await.map_err(|refusal| refusal.page(trace))
}

/// A login for the app's waiting authorization (`pinned`: the tenant it must be for, if any).
async fn for_authorization(
    state: &AppState,
    request: &str,
    pinned: Option<TenantId>,
) -> Result<Begin, Response> {
    let waiting = signin::pending_request(state, request).await?;
    if let (Some(asked), Some(pinned)) = (waiting.tenant, pinned) {
        if asked != pinned {
            return Err(pages::error(
                StatusCode::FORBIDDEN,
                "Wrong organisation",
                "The application asked for a sign-in to another organisation. Go back to the application and sign in again.",
            ));
        }
    }
    Ok(Begin {
        authorization: Some(waiting.id),
        tenant: pinned.or(waiting.tenant),
        login_hint: waiting.login_hint.clone(),
        force_login: waiting.force_login || waiting.max_age == Some(0),
        max_age: waiting.max_age.filter(|age| *age > 0),
        expires_at: Some(waiting.expires_at),
        ..Begin::default()
    })
}

/// An admin's test, for a ticket the admin API made.
async fn for_test(
    state: &AppState,
    upstream: &Upstream,
    ticket: &str,
    trace: &str,
) -> Result<Begin, Response> {
    let now = state.clock.now();
    let key = ticket.to_owned();
    let found = state
        .store
        .read(move |tx| oidc::login(tx, &key))
        .await
        .map_err(|err| unavailable(err).page(trace))?;
    match found {
        Some(t) if t.test && t.upstream == upstream.key && t.answered_at.is_none() && t.expires_at > now => {
            Ok(Begin { test_of: Some(ticket.to_owned()), force_login: true, ..Begin::default() })
        }
        _ => Err(pages::expired_request()),
    }
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The digest of a browser's id, which the login keeps instead of the id itself.
pub fn browser_digest(browser: &str) -> [u8; 32] {
    Sha256::digest(browser.as_bytes()).into()
}

/// Stores the login and sends the browser to the IdP.
async fn send(
    state: &AppState,
    upstream: &Upstream,
    begin: Begin,
    headers: &HeaderMap,
    trace: &str,
) -> Response {
    match authorization_url(state, upstream, begin, headers).await {
        Ok(response) => response,
        Err(refusal) => {
            tracing::warn!(check = refusal.code(), upstream = %upstream.key, "cannot start an OIDC login");
            refusal.page(trace)
        }
    }
}

async fn authorization_url(
    state: &AppState,
    upstream: &Upstream,
    begin: Begin,
    headers: &HeaderMap,
) -> Result<Response, Refusal> {
    let now = state.clock.now();
    let published = state
        .oidc
        .issuers
        .get(&upstream.issuer, now)
        .await
        .map_err(|err| Refusal::IdpUnreachable(err.to_string()))?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (login_state, nonce) = (random_token(), random_token());
    let (sent_state, sent_nonce) = (login_state.clone(), nonce.clone());
    let client = client(upstream, &published, &upstream.callback_url)?;
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(sent_state),
            move || Nonce::new(sent_nonce),
        )
        .set_pkce_challenge(challenge);
    for scope in upstream.scopes.iter().filter(|s| s.as_str() != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    if let Some(hint) = &begin.login_hint {
        request = request.add_extra_param("login_hint", hint.clone());
    }
    if let Some(domain) = &begin.hosted_domain {
        request = request.add_extra_param("hd", domain.clone());
    }
    if begin.force_login {
        // Google takes no `prompt=login`; `max_age=0` asks the same of any OpenID Provider.
        request = if upstream.key == super::google::UPSTREAM {
            request.set_max_age(std::time::Duration::ZERO)
        } else {
            request.add_prompt(CoreAuthPrompt::Login)
        };
    }
    if let Some(age) = begin.max_age {
        request = request.set_max_age(std::time::Duration::from_secs(age));
    }
    let (url, _, _) = request.url();
    let (browser, set_cookie) = signin::browser_id(state, headers);
    let lifetime = state.config.sso_login_lifetime();
    let expires_at = begin.expires_at.map_or(now + lifetime, |waiting| waiting.min(now + lifetime));
    let login = PendingLogin {
        upstream: upstream.key.clone(),
        tenant: begin.tenant,
        authorization: begin.authorization,
        test: begin.test_of.is_some(),
        test_of: begin.test_of,
        browser: browser_digest(&browser),
        nonce,
        pkce_verifier: verifier.secret().clone(),
        max_age: if begin.force_login { Some(0) } else { begin.max_age },
        redirect_uri: upstream.callback_url.clone(),
        answered_at: None,
        test_result: None,
        created_at: now,
        expires_at,
    };
    state.store.write(move |tx| oidc::put_login(tx, &login_state, &login)).await.map_err(unavailable)?;
    let mut response = Redirect::to(url.as_str()).into_response();
    if let Some(cookie) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}
