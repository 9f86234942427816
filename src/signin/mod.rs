//! The login pages behind the authorization endpoint: ask for the email (or take `login_hint`),
//! route by the tenant's verified domain or the pinned tenant (`routing`), and sign in with a
//! password (`password`); SSO connections take over at their own start URLs.
//!
//! Every form carries a CSRF token: an HMAC, under the instance's link-signing key, of the
//! browser's random `portcullis_browser` cookie and the form's context, so a form only works in
//! the browser it was served to.

pub mod pages;
mod password;
pub mod routing;

use std::{net::IpAddr, sync::Arc, time::Instant};

use axum::{
    Form, Router,
    extract::{Path, Query, State, rejection::FormRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Deserialize;
use sha2::Sha256;

pub use password::admin_router;

use crate::{
    app::AppState,
    ids::{AuthRequestId, TenantId},
    passwords::{LockoutPolicy, LoginThrottle, Mailer, PasswordHasher, PasswordPolicy, ResetSigner},
    sessions::cookie,
    store::{
        Source, StoreError,
        grants::{self, AuthorizationRequestRecord},
        oauth_clients, oidc, saml,
        tenants::{self, DomainStatus, TenantRecord, TenantStatus},
    },
};
use pages::{alert, escape, hidden};
use routing::{Facts, Route, TenantFacts};

/// What the sign-in pages keep in memory.
pub struct SignInRuntime {
    csrf_key: [u8; 32],
    pub hasher: PasswordHasher,
    pub policy: PasswordPolicy,
    pub lockout: LockoutPolicy,
    /// Attempts per client address: generous, because a whole office may sign in from behind
    /// one NAT address at nine in the morning.
    pub address_throttle: LoginThrottle,
    /// Attempts per account (email address): tight; lockout adds to it for real accounts.
    pub account_throttle: LoginThrottle,
    pub resets: ResetSigner,
    /// None on an air-gapped site: reset links are then shown to the operator instead.
    pub mailer: Option<Mailer>,
}

impl SignInRuntime {
    pub fn new(link_key: [u8; 32], hasher: PasswordHasher, mailer: Option<Mailer>) -> Self {
        Self {
            csrf_key: derive_key(&link_key, b"csrf"),
            resets: ResetSigner::new(derive_key(&link_key, b"password-reset")),
            hasher,
            policy: PasswordPolicy::default(),
            lockout: LockoutPolicy::default(),
            address_throttle: LoginThrottle::new(600, 200),
            account_throttle: LoginThrottle::new(10, 10),
            mailer,
        }
    }

    /// The CSRF token of a form with `context`, for the browser `browser_id`.
    fn csrf_token(&self, browser_id: &str, context: &str) -> String {
        let mac = keyed(&self.csrf_key, &[browser_id.as_bytes(), b"\0", context.as_bytes()]);
        URL_SAFE_NO_PAD.encode(mac)
    }

    fn csrf_ok(&self, headers: &HeaderMap, secure: bool, context: &str, presented: &str) -> bool {
        let Some(browser) = cookie::read(headers, cookie::browser_name(secure)) else {
            return false;
        };
        let expected = self.csrf_token(browser, context);
        subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), presented.as_bytes()).into()
    }
}

fn keyed(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// A key for one purpose, derived from the instance's link-signing key.
fn derive_key(link_key: &[u8; 32], purpose: &[u8]) -> [u8; 32] {
    keyed(link_key, &[b"portcullis ", purpose])
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(show_login).post(submit_email))
        .route("/login/password", axum::routing::post(password::submit_password))
        .route("/password/forgot", get(password::show_forgot).post(password::submit_forgot))
        .route("/password/reset", get(password::show_reset).post(password::submit_reset))
        .route("/t/{slug}", get(vanity))
        .route("/assets/portcullis.css", get(stylesheet))
}

async fn stylesheet() -> Response {
    let mut response = pages::STYLESHEET.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}

/// The CSRF token of a form with `context`, for the browser `browser_id`.
pub(crate) fn csrf_token(state: &AppState, browser_id: &str, context: &str) -> String {
    state.signin.csrf_token(browser_id, context)
}

/// Whether `presented` is the CSRF token of a form with `context` served to this browser.
pub(crate) fn csrf_ok(state: &AppState, headers: &HeaderMap, context: &str, presented: &str) -> bool {
    state.signin.csrf_ok(headers, state.secure_cookies(), context, presented)
}

/// "Continue with Google", when Google sign-in is on (for `tenant`, if the page is for one).
pub(crate) fn google_button(
    state: &AppState,
    request: &AuthorizationRequestRecord,
    tenant: Option<TenantId>,
) -> String {
    if state.config.google_client().is_none() {
        return String::new();
    }
    let organization = tenant.map(|t| format!("&amp;organization={t}")).unwrap_or_default();
    format!(
        "<p class=\"alternative\"><a class=\"button secondary\" href=\"/sso/google/start?request={}{organization}\">Continue with Google</a></p>",
        request.id
    )
}

/// The browser's id for CSRF tokens, and the cookie to set if it had none.
pub(crate) fn browser_id(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    let secure = state.secure_cookies();
    if let Some(existing) = cookie::read(headers, cookie::browser_name(secure)).filter(|v| v.len() == 43) {
        return (existing.to_owned(), None);
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let id = URL_SAFE_NO_PAD.encode(bytes);
    let set = cookie::set(cookie::browser_name(secure), &id, None, secure);
    (id, set)
}

/// A page with the browser cookie set when the browser had none.
pub(crate) fn with_browser_cookie(mut response: Response, set: Option<HeaderValue>) -> Response {
    if let Some(value) = set {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    request: Option<String>,
    /// Chosen on the "several organisations" page, with the address given before.
    organization: Option<String>,
    email: Option<String>,
}

/// The pending authorization request, if it is still waiting.
pub(crate) async fn pending_request(
    state: &AppState,
    id: &str,
) -> Result<AuthorizationRequestRecord, Response> {
    let Ok(id) = id.parse::<AuthRequestId>() else {
        return Err(pages::expired_request());
    };
    let now = state.clock.now();
    match state.store.read(move |tx| grants::authorization_request(tx, id)).await {
        Ok(Some(request)) if request.expires_at > now => Ok(request),
        Ok(_) => Err(pages::expired_request()),
        Err(err) => {
            tracing::error!(%err, "cannot read an authorization request");
            Err(pages::unavailable())
        }
    }
}

/// The pending request a login form belongs to, if the form came from the page we served this
/// browser (its CSRF token) and the request is still waiting.
pub(crate) async fn accept_login_form(
    state: &AppState,
    headers: &HeaderMap,
    request_id: &str,
    csrf: &str,
) -> Result<AuthorizationRequestRecord, Response> {
    let request = pending_request(state, request_id).await?;
    if !state.signin.csrf_ok(headers, state.secure_cookies(), &request.id.to_string(), csrf) {
        return Err(pages::forged_form());
    }
    Ok(request)
}

async fn show_login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let request = match pending_request(&state, query.request.as_deref().unwrap_or_default()).await {
        Ok(request) => request,
        Err(page) => return page,
    };
    let chosen = query.organization.as_deref().and_then(|o| o.parse::<TenantId>().ok());
    let (browser, set) = browser_id(&state, &headers);
    let pinned = chosen.or(request.tenant);
    let email = query.email.as_deref().or(request.login_hint.as_deref());
    let response = match (pinned, email) {
        // A pinned tenant with a hint, or a tenant chosen after a password: straight on.
        (Some(_), Some(email)) => {
            route(&state, &browser, &request, &email.trim().to_lowercase(), chosen, None).await
        }
        _ => email_page(&state, &browser, &request, email.unwrap_or_default(), None),
    };
    with_browser_cookie(response, set)
}

fn email_page(
    state: &AppState,
    browser: &str,
    request: &AuthorizationRequestRecord,
    email: &str,
    error: Option<&str>,
) -> Response {
    let csrf = state.signin.csrf_token(browser, &request.id.to_string());
    let body = format!(
        "{alert}<form method=\"post\" action=\"/login\">{request}{csrf}\
         <label for=\"email\">Work email</label>\
         <input type=\"email\" id=\"email\" name=\"email\" value=\"{email}\" autocomplete=\"username\" \
         required autofocus{described}>\
         <button type=\"submit\">Continue</button></form>{google}",
        google = google_button(state, request, request.tenant),
        alert = alert(error),
        request = hidden("request", &request.id.to_string()),
        csrf = hidden("csrf", &csrf),
        email = escape(email),
        described =
            if error.is_some() { " aria-describedby=\"form-error\" aria-invalid=\"true\"" } else { "" },
    );
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    pages::page(status, "Sign in", &body)
}

#[derive(Debug, Deserialize)]
struct EmailForm {
    request: String,
    csrf: String,
    email: String,
    /// `password`: the person chose a password over their organisation's SSO (where allowed).
    #[serde(default)]
    method: Option<String>,
}

async fn submit_email(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<EmailForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return pages::unreadable_form();
    };
    let request = match accept_login_form(&state, &headers, &form.request, &form.csrf).await {
        Ok(request) => request,
        Err(page) => return page,
    };
    let (browser, set) = browser_id(&state, &headers);
    let email = form.email.trim().to_lowercase();
    if !plausible_email(&email) {
        return with_browser_cookie(
            email_page(
                &state,
                &browser,
                &request,
                &form.email,
                Some("Enter your email address, like name@example.com."),
            ),
            set,
        );
    }
    with_browser_cookie(route(&state, &browser, &request, &email, None, form.method.as_deref()).await, set)
}

/// A syntactic check only: the address is proven by signing in, not by its shape.
pub(crate) fn plausible_email(email: &str) -> bool {
    email.len() <= 320
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Sends the person the way `routing::decide` says.
async fn route(
    state: &AppState,
    browser: &str,
    request: &AuthorizationRequestRecord,
    email: &str,
    chosen: Option<TenantId>,
    method: Option<&str>,
) -> Response {
    let pinned = chosen.or(request.tenant);
    let domain = email.rsplit_once('@').map(|(_, d)| d.to_owned()).unwrap_or_default();
    let google = state.config.google_client().is_some();
    let facts = state.store.read(move |tx| routing_facts(tx, pinned, &domain, google)).await;
    let facts = match facts {
        Ok(facts) => facts,
        Err(err) => {
            tracing::error!(%err, "cannot read routing facts");
            return pages::unavailable();
        }
    };
    match routing::decide(&facts) {
        Route::Sso { connection, password_allowed: false, .. } => sso_redirect(request, &connection, email),
        Route::Sso { tenant, name, connection, password_allowed: true } => {
            if method == Some("password") {
                password::password_page(state, browser, request, email, Some(tenant), None)
            } else {
                sso_choice_page(state, browser, request, email, &name, &connection)
            }
        }
        Route::SsoNotConfigured { name, .. } => pages::error(
            StatusCode::FORBIDDEN,
            "Single sign-on is required",
            &format!(
                "{name} requires you to sign in through your organisation's identity provider, which is not set up yet. Contact your IT administrator."
            ),
        ),
        Route::Password { tenant, .. } => {
            password::password_page(state, browser, request, email, tenant.or(pinned), None)
        }
    }
}

/// The SAML and OIDC connections serve their own start URLs; the address typed is passed on as
/// a hint for the IdP's login page (OIDC `login_hint`).
fn sso_start(request: &AuthorizationRequestRecord, connection: &str, email: &str) -> String {
    let (protocol, id) = connection.split_once(':').unwrap_or(("saml", connection));
    let hint: String = url::form_urlencoded::byte_serialize(email.as_bytes()).collect();
    format!("/sso/{protocol}/{id}/start?request={}&login_hint={hint}", request.id)
}

fn sso_redirect(request: &AuthorizationRequestRecord, connection: &str, email: &str) -> Response {
    Redirect::to(&sso_start(request, connection, email)).into_response()
}

/// SSO first, and a password for the people who had one before their organisation added SSO.
fn sso_choice_page(
    state: &AppState,
    browser: &str,
    request: &AuthorizationRequestRecord,
    email: &str,
    tenant_name: &str,
    connection: &str,
) -> Response {
    let csrf = state.signin.csrf_token(browser, &request.id.to_string());
    let body = format!(
        "<p><a class=\"button\" href=\"{start}\">Continue with {name} single sign-on</a></p>\
         <form method=\"post\" action=\"/login\">{request}{csrf}{email}{method}\
         <button type=\"submit\" class=\"secondary\">Use my password instead</button></form>",
        start = escape(&sso_start(request, connection, email)),
        name = escape(tenant_name),
        request = hidden("request", &request.id.to_string()),
        csrf = hidden("csrf", &csrf),
        email = hidden("email", email),
        method = hidden("method", "password"),
    );
    pages::page(StatusCode::OK, &format!("Sign in to {tenant_name}"), &body)
}

/// A tenant's routing facts; its SSO connection is the oldest one, SAML or OIDC, that can sign
/// people in.
fn tenant_facts(src: &impl Source, tenant: &TenantRecord) -> Result<TenantFacts, StoreError> {
    let saml_connections = saml::tenant_connections(src, tenant.id)?
        .into_iter()
        .filter(|c| c.enabled && !c.idp.signing_certificates.is_empty())
        .map(|c| (c.created_at, format!("saml:{}", c.id)));
    let oidc_connections = oidc::tenant_connections(src, tenant.id)?
        .into_iter()
        .filter(|c| c.enabled && c.discovered.is_some() && c.client_secret.is_some())
        .map(|c| (c.created_at, c.upstream()));
    let sso_connection =
        saml_connections.chain(oidc_connections).min_by_key(|(created_at, _)| *created_at).map(|(_, c)| c);
    Ok(TenantFacts {
        id: tenant.id,
        name: tenant.display_name.clone(),
        sso_connection,
        require_sso: tenant.require_sso,
    })
}

fn routing_facts(
    src: &impl Source,
    pinned: Option<TenantId>,
    domain: &str,
    google_enabled: bool,
) -> Result<Facts, StoreError> {
    let active = |t: Option<TenantRecord>| t.filter(|t| t.status == TenantStatus::Active);
    let pinned = match pinned {
        Some(id) => active(tenants::get(src, id)?).map(|t| tenant_facts(src, &t)).transpose()?,
        None => None,
    };
    let owner = match tenants::domain_owner(src, domain)? {
        Some(owner)
            if tenants::domain(src, owner, domain)?.is_some_and(|d| d.status == DomainStatus::Verified) =>
        {
            active(tenants::get(src, owner)?).map(|t| tenant_facts(src, &t)).transpose()?
        }
        _ => None,
    };
    Ok(Facts { pinned, verified_domain_owner: owner, google_enabled })
}

/// A tenant's vanity address (`/t/{slug}`): OpenID Connect third-party initiated login (Core
/// §4), sending the browser to the app with the tenant named, so that the app starts an
/// authorization pinned to it.
async fn vanity(State(state): State<AppState>, Path(slug): Path<String>) -> Response {
    let found = state
        .store
        .read(move |tx| {
            let tenant =
                tenants::id_by_slug(tx, &slug)?.map(|id| tenants::get(tx, id)).transpose()?.flatten();
            let client = oauth_clients::all(tx)?.into_iter().find(|c| c.initiate_login_uri.is_some());
            Ok::<_, StoreError>((tenant, client))
        })
        .await;
    match found {
        Ok((Some(tenant), Some(client))) if tenant.status == TenantStatus::Active => {
            let issuer = state.public_url.to_string();
            let uri = client.initiate_login_uri.unwrap_or_default();
            crate::provider::redirect_with(
                &uri,
                &[("iss", issuer.as_str()), ("organization", tenant.slug.as_str())],
            )
        }
        Ok((Some(tenant), None)) if tenant.status == TenantStatus::Active => pages::error(
            StatusCode::OK,
            &format!("Sign in to {}", tenant.display_name),
            "Open the application and choose to sign in; it will bring you here.",
        ),
        Ok(_) => {
            pages::error(StatusCode::NOT_FOUND, "Unknown organisation", "Check the address you were given.")
        }
        Err(err) => {
            tracing::error!(%err, "cannot read a tenant for its vanity URL");
            pages::unavailable()
        }
    }
}

/// Refuses a burst of attempts from one client address or at one account (`account` names the
/// attempt and the address: `password:ada@acme.test`); returns the seconds to wait.
pub(crate) fn throttled(runtime: &Arc<SignInRuntime>, client: IpAddr, account: &str) -> Option<u64> {
    let now = Instant::now();
    let refused = runtime
        .address_throttle
        .check(&client.to_string(), now)
        .and_then(|()| runtime.account_throttle.check(account, now));
    refused.err().map(|retry| retry.whole_seconds().max(1))
}
