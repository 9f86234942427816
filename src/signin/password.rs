//! Email and password accounts, for tenants without SSO (and for their people who had a password
//! before SSO came): the password form, lockout, password links (reset and invitation), and the
//! operators' API for local users.
//!
//! A wrong password, an unknown address and an inactive account all get the same answer after the
//! same work (an argon2id verification against a dummy hash when there is nothing to verify).

use std::net::IpAddr;

use axum::{
    Extension, Form, Router,
    extract::{Path, Query, State, rejection::FormRejection},
    http::{HeaderMap, StatusCode},
    middleware::from_extractor_with_state,
    response::Response,
    routing::{delete, post},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::{accept_login_form, browser_id, pages, plausible_email, throttled, with_browser_cookie};
use crate::{
    admin::{AdminAuth, AdminChange},
    app::AppState,
    directory::{self, Change, DirectoryError},
    http::{ApiError, ApiJson, client_ip::ClientIp, middleware::RequestId},
    ids::{TenantId, UserId},
    metrics::SignInMethod,
    passwords::{FailureRecord, ResetClaims, ResetPurpose, context_words, credential_fingerprint, peek},
    provider::{Finish, finish_stored_after},
    sessions::{self, SignIn},
    store::{
        Source, StoreError,
        audit::{self, Actor, AuditRecord},
        credentials::{self, PasswordCredentialRecord},
        directory::{self as dir, UserRecord},
        grants::AuthorizationRequestRecord,
        journal::Subject,
        tenants::{self, TenantRecord, TenantStatus},
    },
};
use pages::{alert, escape, hidden};

/// How long a reset link works; an invitation (a first password) works longer.
const RESET_LINK_LIFETIME: Duration = Duration::hours(1);
const INVITE_LINK_LIFETIME: Duration = Duration::days(7);
/// An address with accounts in more tenants than this is checked in the first ones only.
const MAX_CANDIDATES: usize = 10;
const FAILED: &str = "The email or password is not correct.";

pub(super) fn password_page(
    state: &AppState,
    browser: &str,
    request: &AuthorizationRequestRecord,
    email: &str,
    tenant: Option<TenantId>,
    error: Option<&str>,
) -> Response {
    let csrf = state.signin.csrf_token(browser, &request.id.to_string());
    let tenant_field = tenant.map(|t| hidden("tenant", &t.to_string())).unwrap_or_default();
    let body = format!(
        "{alert}<form method=\"post\" action=\"/login/password\">{request}{csrf}{email_field}{tenant_field}\
         <p>Signing in as <strong>{shown}</strong></p>\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required autofocus>\
         <button type=\"submit\">Sign in</button></form>\
         <p class=\"links\"><a href=\"/password/forgot?request={id}\">Forgot your password?</a> · \
         <a href=\"/login?request={id}\">Use another email</a></p>{google}",
        google = super::google_button(state, request, tenant),
        alert = alert(error),
        request = hidden("request", &request.id.to_string()),
        csrf = hidden("csrf", &csrf),
        email_field = hidden("email", email),
        shown = escape(email),
        id = request.id,
    );
    let status = if error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    pages::page(status, "Enter your password", &body)
}

#[derive(Debug, Deserialize)]
pub(super) struct PasswordForm {
    request: String,
    csrf: String,
    email: String,
    password: String,
    tenant: Option<String>,
}

/// An account the address may be signing in to.
struct Candidate {
    tenant: TenantRecord,
    user: UserRecord,
    credential: PasswordCredentialRecord,
}

/// The accounts that may sign in with a password at `email`: in the pinned tenant only, else in
/// every tenant where the address has one. Tenants that require SSO are left out.
fn candidates(
    src: &impl Source,
    email: &str,
    pinned: Option<TenantId>,
) -> Result<Vec<Candidate>, StoreError> {
    let accounts = match pinned {
        Some(tenant) => {
            dir::user_by_email(src, tenant, email)?.map(|u| vec![(tenant, u.id)]).unwrap_or_default()
        }
        None => dir::accounts_by_email(src, email)?,
    };
    let mut found = Vec::new();
    for (tenant_id, user_id) in accounts.into_iter().take(MAX_CANDIDATES) {
        let Some(tenant) = tenants::get(src, tenant_id)? else { continue };
        if tenant.status != TenantStatus::Active || tenant.require_sso {
            continue;
        }
        let (Some(user), Some(credential)) =
            (dir::user(src, tenant_id, user_id)?, credentials::get(src, tenant_id, user_id)?)
        else {
            continue;
        };
        found.push(Candidate { tenant, user, credential });
    }
    Ok(found)
}

fn failures_of(credential: &PasswordCredentialRecord) -> FailureRecord {
    FailureRecord {
        failures: credential.failures,
        locked_until: credential.locked_until,
        last_failure_at: credential.last_failure_at,
    }
}

pub(super) async fn submit_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(client): ClientIp,
    Extension(trace): Extension<RequestId>,
    form: Result<Form<PasswordForm>, FormRejection>,
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
    let pinned = form.tenant.as_deref().and_then(|t| t.parse::<TenantId>().ok()).or(request.tenant);
    let retry = |message: &str| password_page(&state, &browser, &request, &email, pinned, Some(message));
    if let Some(seconds) = throttled(&state.signin, client, &format!("password:{email}")) {
        state.metrics.sign_in_refused(SignInMethod::Password, "throttled");
        return with_browser_cookie(
            retry(&format!("Too many attempts. Wait {seconds} seconds, then try again.")),
            set,
        );
    }
    if form.password.is_empty() || form.password.len() > 1024 || !plausible_email(&email) {
        state.metrics.sign_in_refused(SignInMethod::Password, "malformed");
        return with_browser_cookie(retry(FAILED), set);
    }
    let attempt = Attempt { email: &email, client, trace: &trace };
    let response = match check_password(&state, &attempt, pinned, form.password).await {
        Ok(Checked::Accepted(candidate)) => sign_in(&state, &headers, &attempt, &request, *candidate).await,
        Ok(Checked::Several(tenants)) => choose_tenant_page(&request, &email, &tenants),
        Ok(Checked::Locked(until)) => {
            state.metrics.sign_in_refused(SignInMethod::Password, "locked");
            let minutes = ((until - state.clock.now()).whole_seconds().max(60) + 59) / 60;
            retry(&format!(
                "Too many failed attempts. Try again in {minutes} minutes, or reset your password."
            ))
        }
        Ok(Checked::Refused) => {
            // A wrong password, an unknown address or an inactive account: the audit record
            // tells them apart, the answer (and this count) does not.
            state.metrics.sign_in_refused(SignInMethod::Password, "invalid_credentials");
            retry(FAILED)
        }
        Err(err) => {
            state.metrics.sign_in_failed(SignInMethod::Password);
            tracing::error!(%err, "password sign-in failed");
            pages::unavailable()
        }
    };
    with_browser_cookie(response, set)
}

/// Who is trying to sign in, from where, through which request: for the audit trail.
struct Attempt<'a> {
    email: &'a str,
    client: IpAddr,
    trace: &'a RequestId,
}

enum Checked {
    Accepted(Box<Candidate>),
    /// The password is right in several tenants: the person chooses.
    Several(Vec<TenantRecord>),
    Locked(OffsetDateTime),
    Refused,
}

async fn check_password(
    state: &AppState,
    attempt: &Attempt<'_>,
    pinned: Option<TenantId>,
    password: String,
) -> Result<Checked, StoreError> {
    let now = state.clock.now();
    let found = state.store.read(|tx| candidates(tx, attempt.email, pinned)).await?;
    let lockout = &state.signin.lockout;
    let (open, locked): (Vec<Candidate>, Vec<Candidate>) = found
        .into_iter()
        .filter(|c| c.credential.hash.is_some())
        .partition(|c| lockout.is_locked(&failures_of(&c.credential), now).is_none());
    let runtime = std::sync::Arc::clone(&state.signin);
    let hashes: Vec<String> = open.iter().filter_map(|c| c.credential.hash.clone()).collect();
    let matches: Vec<bool> = tokio::task::spawn_blocking(move || {
        if hashes.is_empty() {
            runtime.hasher.verify_dummy(&password);
        }
        hashes.iter().map(|hash| runtime.hasher.verify(&password, hash)).collect()
    })
    .await
    .map_err(|_| StoreError::Panicked)?;
    let (mut accepted, mut rejected) = (Vec::new(), Vec::new());
    for (candidate, matched) in open.into_iter().zip(matches) {
        if matched { accepted.push(candidate) } else { rejected.push(candidate) }
    }
    let mut failures: Vec<Failure> = rejected.iter().map(|c| Failure::of(c, "wrong_password")).collect();
    failures.extend(locked.iter().map(|c| Failure::of(c, "locked")));
    failures.extend(accepted.iter().filter(|c| !c.user.active).map(|c| Failure::of(c, "inactive_user")));
    if failures.is_empty() && accepted.is_empty() {
        failures.push(Failure { tenant: None, user: None, reason: "no_account" });
    }
    record_attempts(state, attempt, &accepted, &rejected, failures, now).await?;
    accepted.retain(|c| c.user.active);
    match accepted.len() {
        1 => Ok(Checked::Accepted(Box::new(accepted.remove(0)))),
        0 => match locked.iter().filter_map(|c| lockout.is_locked(&failures_of(&c.credential), now)).min() {
            Some(until) => Ok(Checked::Locked(until)),
            None => Ok(Checked::Refused),
        },
        _ => Ok(Checked::Several(accepted.into_iter().map(|c| c.tenant).collect())),
    }
}

/// A refused password attempt, as the audit trail records it.
struct Failure {
    tenant: Option<TenantId>,
    user: Option<UserId>,
    /// `wrong_password`, `locked`, `inactive_user`, `no_account`.
    reason: &'static str,
}

impl Failure {
    fn of(candidate: &Candidate, reason: &'static str) -> Self {
        Failure { tenant: Some(candidate.tenant.id), user: Some(candidate.user.id), reason }
    }
}

/// Counts failures toward lockout, clears them on success and audits every refusal, in one
/// write (none for a success that changes nothing: its audit record is written with the session).
async fn record_attempts(
    state: &AppState,
    attempt: &Attempt<'_>,
    accepted: &[Candidate],
    rejected: &[Candidate],
    failures: Vec<Failure>,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let lockout = state.signin.lockout.clone();
    let mut changes: Vec<(TenantId, UserId, FailureRecord)> = rejected
        .iter()
        .map(|c| (c.tenant.id, c.user.id, lockout.record_failure(&failures_of(&c.credential), now)))
        .collect();
    changes.extend(
        accepted
            .iter()
            .filter(|c| c.credential.failures > 0)
            .map(|c| (c.tenant.id, c.user.id, lockout.record_success())),
    );
    if changes.is_empty() && failures.is_empty() {
        return Ok(());
    }
    let audits: Vec<AuditRecord> = failures
        .into_iter()
        .map(|failure| {
            let id = failure.user.map_or_else(|| attempt.email.to_owned(), |u| u.to_string());
            AuditRecord::new(
                failure.tenant,
                Actor { kind: "anonymous".into(), id: attempt.client.to_string(), label: None },
                "signin.password.failed",
                Some(Subject { kind: "user".into(), id, label: Some(attempt.email.to_owned()) }),
                json!({ "reason": failure.reason, "ip": attempt.client.to_string() }),
                now,
                Some(attempt.trace.0.clone()),
            )
            .refused(failure.reason)
        })
        .collect();
    state
        .store
        .write(move |tx| {
            for (tenant, user, failures) in &changes {
                if let Some(mut credential) = credentials::get(tx, *tenant, *user)? {
                    credential.failures = failures.failures;
                    credential.locked_until = failures.locked_until;
                    credential.last_failure_at = failures.last_failure_at;
                    credentials::put(tx, *tenant, *user, &credential)?;
                }
            }
            for audit in &audits {
                audit::append(tx, audit.clone())?;
            }
            Ok(())
        })
        .await
}

async fn sign_in(
    state: &AppState,
    headers: &HeaderMap,
    attempt: &Attempt<'_>,
    request: &AuthorizationRequestRecord,
    candidate: Candidate,
) -> Response {
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(200).collect());
    let sign_in = SignIn {
        tenant: candidate.tenant.id,
        user: candidate.user.id,
        amr: vec!["pwd".into()],
        idp: "password".into(),
        idp_session_ends_at: None,
        idp_session: None,
        user_agent,
        ip: Some(attempt.client.to_string()),
    };
    let session = sessions::new_session(sign_in, &candidate.tenant, state.clock.now());
    let finished = finish_stored_after::<std::convert::Infallible>(
        state,
        request.id,
        Finish::New(session),
        None,
        attempt.trace.clone(),
    )
    .await;
    state.metrics.sign_in_finished(SignInMethod::Password, &finished);
    finished.unwrap_or_else(|failure| failure.response)
}

/// The password was right in several tenants: each link asks for it again, for that tenant only.
fn choose_tenant_page(
    request: &AuthorizationRequestRecord,
    email: &str,
    tenants: &[TenantRecord],
) -> Response {
    let email: String = url::form_urlencoded::byte_serialize(email.as_bytes()).collect();
    let items: String = tenants
        .iter()
        .map(|t| {
            format!(
                "<li><a href=\"/login?request={}&amp;organization={}&amp;email={}\">{}</a></li>",
                request.id,
                t.id,
                escape(&email),
                escape(&t.display_name)
            )
        })
        .collect();
    let body = format!(
        "<p>Your email address has accounts in several organisations. Which one do you want to use?</p><ul class=\"choices\">{items}</ul>"
    );
    pages::page(StatusCode::OK, "Choose your organisation", &body)
}

// --- Password links ---------------------------------------------------------------------------

/// What a password link is bound to: the credential as it is now.
fn fingerprint(credential: Option<&PasswordCredentialRecord>) -> [u8; 32] {
    credential_fingerprint(credential.and_then(|c| c.hash.as_deref()), credential.map_or(0, |c| c.version))
}

/// A link that lets the user choose a password, valid until the password next changes.
fn password_link(
    state: &AppState,
    tenant: TenantId,
    user: UserId,
    credential: Option<&PasswordCredentialRecord>,
    purpose: ResetPurpose,
    now: OffsetDateTime,
) -> (String, OffsetDateTime) {
    let lifetime = if purpose == ResetPurpose::Invite { INVITE_LINK_LIFETIME } else { RESET_LINK_LIFETIME };
    let claims = ResetClaims::new(tenant.key(), user.key(), purpose, now, lifetime);
    let token = state.signin.resets.issue(&claims, &fingerprint(credential));
    (format!("{}/password/reset?token={token}", state.public_url), now + lifetime)
}

#[derive(Debug, Deserialize)]
pub(super) struct ForgotQuery {
    request: Option<String>,
}

pub(super) async fn show_forgot(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ForgotQuery>,
) -> Response {
    let (browser, set) = browser_id(&state, &headers);
    let body = forgot_form(&state, &browser, query.request.as_deref().unwrap_or_default(), None);
    with_browser_cookie(pages::page(StatusCode::OK, "Reset your password", &body), set)
}

fn forgot_form(state: &AppState, browser: &str, request: &str, error: Option<&str>) -> String {
    if state.signin.mailer.is_none() {
        return "<p>Ask your organisation's administrator for a password link: this sign-in service does not send email.</p>".into();
    }
    let csrf = state.signin.csrf_token(browser, "forgot");
    format!(
        "{alert}<form method=\"post\" action=\"/password/forgot\">{csrf}{request}\
         <label for=\"email\">Work email</label>\
         <input type=\"email\" id=\"email\" name=\"email\" autocomplete=\"username\" required autofocus>\
         <button type=\"submit\">Email me a link</button></form>",
        alert = alert(error),
        csrf = hidden("csrf", &csrf),
        request = hidden("request", request),
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct ForgotForm {
    csrf: String,
    email: String,
}

/// Sends a link to every account of the address, in the background, and says the same thing
/// whether there was any: the page reveals nothing about which addresses have accounts.
pub(super) async fn submit_forgot(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(client): ClientIp,
    form: Result<Form<ForgotForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return pages::unreadable_form();
    };
    if !state.signin.csrf_ok(&headers, state.secure_cookies(), "forgot", &form.csrf) {
        return pages::forged_form();
    }
    let email = form.email.trim().to_lowercase();
    if throttled(&state.signin, client, &format!("reset:{email}")).is_none()
        && plausible_email(&email)
        && state.signin.mailer.is_some()
    {
        tokio::spawn(send_reset_links(state.clone(), email));
    }
    pages::page(
        StatusCode::OK,
        "Check your email",
        "<p>If an account uses that address, we have sent it a link to choose a new password. The link works for one hour, once.</p>",
    )
}

async fn send_reset_links(state: AppState, email: String) {
    let now = state.clock.now();
    let found = match state.store.read(|tx| candidates(tx, &email, None)).await {
        Ok(found) => found,
        Err(err) => return tracing::error!(%err, "cannot look up accounts for a password reset"),
    };
    let Some(mailer) = state.signin.mailer.as_ref() else { return };
    for candidate in found.iter().filter(|c| c.user.active) {
        let (link, _) = password_link(
            &state,
            candidate.tenant.id,
            candidate.user.id,
            Some(&candidate.credential),
            ResetPurpose::Reset,
            now,
        );
        let minutes = RESET_LINK_LIFETIME.whole_minutes() as u64;
        let sent = mailer
            .send_password_link(
                &email,
                candidate.user.display_name.as_deref(),
                &link,
                minutes,
                &candidate.tenant.display_name,
                ResetPurpose::Reset,
            )
            .await;
        if let Err(err) = sent {
            tracing::warn!(%err, tenant = %candidate.tenant.id, "cannot send a password reset email");
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ResetQuery {
    token: Option<String>,
}

/// The user a password link is for, if the link is still good.
async fn link_user(
    state: &AppState,
    token: &str,
) -> Result<(TenantRecord, UserRecord, Option<PasswordCredentialRecord>, ResetClaims), Response> {
    let invalid = || {
        pages::error(
            StatusCode::BAD_REQUEST,
            "This link does not work",
            "Password links work once, for a limited time. Ask for a new one.",
        )
    };
    let claims = peek(token).map_err(|_| invalid())?;
    let (tenant_id, user_id) = (TenantId::from_key(claims.tenant), UserId::from_key(claims.user));
    let found = state
        .store
        .read(move |tx| {
            Ok::<_, StoreError>((
                tenants::get(tx, tenant_id)?,
                dir::user(tx, tenant_id, user_id)?,
                credentials::get(tx, tenant_id, user_id)?,
            ))
        })
        .await;
    let (Some(tenant), Some(user), credential) = found.map_err(|_| pages::unavailable())? else {
        return Err(invalid());
    };
    if tenant.status != TenantStatus::Active || !user.active || tenant.require_sso {
        return Err(invalid());
    }
    let verified = state
        .signin
        .resets
        .verify(token, &fingerprint(credential.as_ref()), state.clock.now())
        .map_err(|_| invalid())?;
    Ok((tenant, user, credential, verified))
}

pub(super) async fn show_reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ResetQuery>,
) -> Response {
    let token = query.token.unwrap_or_default();
    let (tenant, user, _, _) = match link_user(&state, &token).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let (browser, set) = browser_id(&state, &headers);
    with_browser_cookie(reset_page(&state, &browser, &token, &tenant, &user, None), set)
}

fn reset_page(
    state: &AppState,
    browser: &str,
    token: &str,
    tenant: &TenantRecord,
    user: &UserRecord,
    error: Option<&str>,
) -> Response {
    let csrf = state.signin.csrf_token(browser, "reset");
    let body = format!(
        "{alert}<p>For <strong>{email}</strong> at {tenant}.</p>\
         <form method=\"post\" action=\"/password/reset\">{csrf}{token}\
         <label for=\"password\">New password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"new-password\" required autofocus aria-describedby=\"policy\">\
         <p class=\"hint\" id=\"policy\">{policy}</p>\
         <label for=\"confirm\">Repeat it</label>\
         <input type=\"password\" id=\"confirm\" name=\"confirm\" autocomplete=\"new-password\" required>\
         <button type=\"submit\">Set password</button></form>",
        alert = alert(error),
        email = escape(user.email.as_deref().unwrap_or(&user.user_name)),
        tenant = escape(&tenant.display_name),
        csrf = hidden("csrf", &csrf),
        token = hidden("token", token),
        policy = escape(&state.signin.policy.describe()),
    );
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    pages::page(status, "Choose a password", &body)
}

#[derive(Debug, Deserialize)]
pub(super) struct ResetForm {
    csrf: String,
    token: String,
    password: String,
    confirm: String,
}

pub(super) async fn submit_reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<ResetForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return pages::unreadable_form();
    };
    if !state.signin.csrf_ok(&headers, state.secure_cookies(), "reset", &form.csrf) {
        return pages::forged_form();
    }
    let (tenant, user, credential, _) = match link_user(&state, &form.token).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let (browser, _) = browser_id(&state, &headers);
    let again = |message: &str| reset_page(&state, &browser, &form.token, &tenant, &user, Some(message));
    if form.password != form.confirm {
        return again("The two passwords differ.");
    }
    let email = user.email.clone().unwrap_or_else(|| user.user_name.clone());
    if let Err(violation) =
        state.signin.policy.check(&form.password, &context_words(&email, user.display_name.as_deref()))
    {
        return again(&violation.to_string());
    }
    let runtime = std::sync::Arc::clone(&state.signin);
    let password = form.password.clone();
    let hashed = tokio::task::spawn_blocking(move || runtime.hasher.hash(&password)).await;
    let Ok(Ok(hash)) = hashed else {
        return pages::unavailable();
    };
    match store_password(&state, &tenant, &user, fingerprint(credential.as_ref()), hash).await {
        Ok(true) => pages::page(
            StatusCode::OK,
            "Your password is set",
            "<p>Return to the application and sign in with your new password. Other sessions of your account have been signed out.</p>",
        ),
        Ok(false) => pages::error(
            StatusCode::BAD_REQUEST,
            "This link does not work",
            "Password links work once. Ask for a new one.",
        ),
        Err(err) => {
            tracing::error!(%err, "cannot store a new password");
            pages::unavailable()
        }
    }
}

/// Sets the password if the credential is still the one the link was made for (so a link works
/// once even when used twice at the same moment), ends the user's other sessions, and audits it.
async fn store_password(
    state: &AppState,
    tenant: &TenantRecord,
    user: &UserRecord,
    expected: [u8; 32],
    hash: String,
) -> Result<bool, StoreError> {
    let now = state.clock.now();
    let (tenant_id, user_id, label) = (tenant.id, user.id, user.user_name.clone());
    state
        .store
        .write(move |tx| {
            let current = credentials::get(tx, tenant_id, user_id)?;
            if fingerprint(current.as_ref()) != expected {
                return Ok(false);
            }
            let version = current.as_ref().map_or(0, |c| c.version) + 1;
            let credential = PasswordCredentialRecord {
                hash: Some(hash.clone()),
                changed_at: Some(now),
                version,
                ..Default::default()
            };
            credentials::put(tx, tenant_id, user_id, &credential)?;
            let ended = sessions::end_user_sessions(tx, tenant_id, user_id, "password_changed", now)?;
            let change = Change {
                tenant: tenant_id,
                actor: Actor { kind: "user".into(), id: user_id.to_string(), label: Some(label.clone()) },
                channel: "signin",
                request_id: None,
                now,
            };
            change.audit(
                tx,
                "password.set",
                Subject { kind: "user".into(), id: user_id.to_string(), label: Some(label.clone()) },
                json!({ "sessions_ended": ended }),
            )?;
            Ok(true)
        })
        .await
}

// --- The operators' API ------------------------------------------------------------------------

pub fn admin_router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/tenants/{tenant}/users", post(create_local_user))
        .route("/tenants/{tenant}/users/{user}/password-link", post(issue_password_link))
        .route("/tenants/{tenant}/users/{user}/password", delete(remove_password))
        .route_layer(from_extractor_with_state::<AdminAuth, _>(state))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLocalUser {
    email: String,
    display_name: Option<String>,
}

#[derive(Debug, Serialize)]
struct LocalUserView {
    id: UserId,
    email: String,
    display_name: Option<String>,
    /// Where the person chooses their first password (absent when it was emailed to them).
    #[serde(skip_serializing_if = "Option::is_none")]
    password_link: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    password_link_expires_at: OffsetDateTime,
    emailed: bool,
}

/// Creates a user who signs in with a password (for tenants without SCIM), and invites them.
async fn create_local_user(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(reference): Path<String>,
    ApiJson(input): ApiJson<NewLocalUser>,
) -> Result<(StatusCode, ApiJson<LocalUserView>), ApiError> {
    let email = input.email.trim().to_lowercase();
    if !plausible_email(&email) {
        return Err(ApiError::invalid("email", "is not an email address"));
    }
    let display_name = input
        .display_name
        .map(|n| crate::text::label(&n, 200))
        .transpose()
        .map_err(|m| ApiError::invalid("display_name", m))?;
    let now = state.clock.now();
    let id = UserId::generate();
    let mut profile = json!({ "userName": email, "emails": [{ "value": email, "type": "work", "primary": true }], "active": true });
    if let Some(name) = &display_name {
        profile["displayName"] = json!(name);
    }
    let record = UserRecord {
        id,
        tenant: TenantId::from_key(0),
        user_name: email.clone(),
        external_id: None,
        active: true,
        email: Some(email.clone()),
        emails: vec![email.clone()],
        display_name: display_name.clone(),
        profile,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let admin = AdminChange::new(auth, &request, now);
    let tenant = state
        .store
        .write(move |tx| {
            let tenant = crate::tenants::resolve(tx, &reference).map_err(ApiError::from)?;
            let user = UserRecord { tenant: tenant.id, ..record.clone() };
            let change = admin.on_directory(tenant.id);
            directory::create_user(tx, &change, &user).map_err(directory_error)?;
            credentials::put(tx, tenant.id, user.id, &PasswordCredentialRecord::default())?;
            Ok::<_, ApiError>(tenant)
        })
        .await?;
    let (link, expires_at, emailed) =
        deliver_link(&state, &tenant, id, &email, display_name.as_deref(), None, ResetPurpose::Invite).await;
    Ok((
        StatusCode::CREATED,
        ApiJson(LocalUserView {
            id,
            email,
            display_name,
            password_link: link,
            password_link_expires_at: expires_at,
            emailed,
        }),
    ))
}

fn directory_error(err: DirectoryError) -> ApiError {
    match err {
        DirectoryError::Conflict(_) => ApiError::Conflict {
            code: "user_exists",
            field: Some("email"),
            message: "the tenant already has a user with this email".into(),
        },
        DirectoryError::SeatLimit { limit } => ApiError::Conflict {
            code: "seat_limit",
            field: None,
            message: format!("the tenant's seat limit of {limit} active users is reached"),
        },
        DirectoryError::TenantClosed => ApiError::Conflict {
            code: "tenant_suspended",
            field: None,
            message: "the tenant is suspended".into(),
        },
        DirectoryError::Store(err) => err.into(),
    }
}

/// Emails the link when a mail server is configured; otherwise returns it for the operator.
async fn deliver_link(
    state: &AppState,
    tenant: &TenantRecord,
    user: UserId,
    email: &str,
    display_name: Option<&str>,
    credential: Option<&PasswordCredentialRecord>,
    purpose: ResetPurpose,
) -> (Option<String>, OffsetDateTime, bool) {
    let now = state.clock.now();
    let fresh = PasswordCredentialRecord::default();
    let (link, expires_at) =
        password_link(state, tenant.id, user, Some(credential.unwrap_or(&fresh)), purpose, now);
    if let Some(mailer) = &state.signin.mailer {
        let minutes = (expires_at - now).whole_minutes() as u64;
        match mailer
            .send_password_link(email, display_name, &link, minutes, &tenant.display_name, purpose)
            .await
        {
            Ok(()) => return (None, expires_at, true),
            Err(err) => tracing::warn!(%err, "cannot email a password link; returning it to the operator"),
        }
    }
    (Some(link), expires_at, false)
}

#[derive(Debug, Serialize)]
struct PasswordLinkView {
    #[serde(skip_serializing_if = "Option::is_none")]
    password_link: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    emailed: bool,
}

/// A reset (or first-password) link for a user, emailed or shown to the operator; audited.
async fn issue_password_link(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((reference, user)): Path<(String, String)>,
) -> Result<ApiJson<PasswordLinkView>, ApiError> {
    let not_found = || ApiError::NotFound(format!("the tenant has no user `{user}`"));
    let user_id: UserId = user.parse().map_err(|_| not_found())?;
    let found = state
        .store
        .read(move |tx| {
            let tenant = crate::tenants::resolve(tx, &reference).map_err(ApiError::from)?;
            let user = dir::user(tx, tenant.id, user_id)?;
            let credential = credentials::get(tx, tenant.id, user_id)?;
            Ok::<_, ApiError>((tenant, user, credential))
        })
        .await?;
    let (tenant, Some(record), credential) = found else {
        return Err(not_found());
    };
    let Some(email) = record.email.clone().filter(|_| record.active) else {
        return Err(ApiError::invalid("user", "the user is inactive or has no email address"));
    };
    let purpose = if credential.as_ref().is_some_and(|c| c.hash.is_some()) {
        ResetPurpose::Reset
    } else {
        ResetPurpose::Invite
    };
    let admin = AdminChange::new(auth, &request, state.clock.now());
    let (tenant_id, label) = (tenant.id, record.user_name.clone());
    let (link, expires_at, emailed) = deliver_link(
        &state,
        &tenant,
        user_id,
        &email,
        record.display_name.as_deref(),
        credential.as_ref(),
        purpose,
    )
    .await;
    state
        .store
        .write(move |tx| {
            let subject =
                Subject { kind: "user".into(), id: user_id.to_string(), label: Some(label.clone()) };
            admin.audit(
                tx,
                Some(tenant_id),
                "user.password_link",
                subject,
                json!({ "emailed": emailed, "purpose": purpose.as_str() }),
            )
        })
        .await?;
    Ok(ApiJson(PasswordLinkView { password_link: link, expires_at, emailed }))
}

/// Removes a user's password (they can no longer sign in with one); ends their sessions.
async fn remove_password(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((reference, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::NotFound(format!("the user `{user}` has no password"));
    let user_id: UserId = user.parse().map_err(|_| not_found())?;
    let admin = AdminChange::new(auth, &request, state.clock.now());
    let removed = state
        .store
        .write(move |tx| {
            let tenant = crate::tenants::resolve(tx, &reference).map_err(ApiError::from)?;
            if credentials::get(tx, tenant.id, user_id)?.is_none() {
                return Ok(false);
            }
            credentials::delete(tx, tenant.id, user_id)?;
            let ended = sessions::end_user_sessions(tx, tenant.id, user_id, "password_removed", admin.now)?;
            let subject = Subject { kind: "user".into(), id: user_id.to_string(), label: None };
            admin.audit(
                tx,
                Some(tenant.id),
                "user.password_remove",
                subject,
                json!({ "sessions_ended": ended }),
            )?;
            Ok::<_, ApiError>(true)
        })
        .await?;
    if removed { Ok(StatusCode::NO_CONTENT) } else { Err(not_found()) }
}
