//! The dashboard's sign-in: `/admin/api/session`. An operator trades an admin API key, a
//! customer's IT admin a setup link's token, for an HttpOnly `SameSite=Strict` session cookie
//! and a CSRF token that the page sends back with every change. Signing in, opening a link and
//! signing out are audited, and so are refused attempts.

use axum::{
    Extension, Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::{
    AdminChange, AdminError,
    auth::{AdminAuth, Caller, IDLE_TIMEOUT, csrf_matches, live_session},
    digest,
    setup_links::link_subject,
};
use crate::{
    app::AppState,
    audit::refusals,
    http::{ApiError, ApiJson, middleware::RequestId},
    ids::AdminKeyId,
    sessions::cookie,
    store::{
        Source, StoreError,
        admin_keys::{self, KeyScope},
        admin_sessions::{self, AdminSessionRecord, SessionHolder},
        audit::{Actor, AuditRecord, format_time},
        journal::Subject,
        setup_links::{self, LinkStatus},
        tenants,
    },
};

/// A dashboard session ends this long after sign-in, however active.
const SESSION_LIFETIME: Duration = Duration::hours(12);

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/api/session", get(current).post(sign_in).delete(sign_out))
}

/// What the page learns of its session.
#[derive(Debug, Serialize)]
struct SessionView {
    kind: &'static str,
    csrf_token: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    idle_timeout_secs: i64,
    public_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<serde_json::Value>,
}

/// The session's view, with the names of what it acts for (read in the caller's snapshot).
fn session_view(
    src: &impl Source,
    session: &AdminSessionRecord,
    public_url: &str,
) -> Result<SessionView, StoreError> {
    let mut view = SessionView {
        kind: "operator",
        csrf_token: session.csrf_token.clone(),
        expires_at: session.expires_at,
        idle_timeout_secs: IDLE_TIMEOUT.whole_seconds(),
        public_url: public_url.to_owned(),
        key: None,
        tenant: None,
        link: None,
    };
    match session.holder {
        SessionHolder::Operator { key } => {
            let name = admin_keys::get(src, key)?.map(|k| k.name);
            view.key = Some(json!({ "id": key, "name": name }));
        }
        SessionHolder::Setup { link, tenant } => {
            view.kind = "setup";
            view.tenant = tenants::get(src, tenant)?
                .map(|t| json!({ "id": t.id, "slug": t.slug, "display_name": t.display_name }));
            view.link = setup_links::get(src, tenant, link)?
                .map(|l| json!({ "id": l.id, "note": l.note, "expires_at": format_time(l.expires_at) }));
        }
    }
    Ok(view)
}

/// `GET /admin/api/session`: the session the cookie names, if it is live.
async fn current(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<ApiJson<SessionView>, ApiError> {
    let secure = state.secure_cookies();
    let token = cookie::read(&headers, cookie::admin_name(secure)).ok_or(AdminError::MissingCredentials)?;
    let (digest, now, public_url) = (digest(token), state.clock.now(), state.public_url.to_string());
    let view = state
        .store
        .read(move |tx| match live_session(tx, &digest, now)? {
            Some(session) => Ok(Some(session_view(tx, &session, &public_url)?)),
            None => Ok::<_, StoreError>(None),
        })
        .await?;
    Ok(ApiJson(view.ok_or(AdminError::SessionEnded)?))
}

/// Exactly one of the two credentials.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    key: Option<String>,
    setup_token: Option<String>,
}

/// What a presented credential turned out to be.
enum Credential {
    Key(AdminKeyId),
    Link { link: setup_links::SetupLinkRecord },
}

/// `POST /admin/api/session`: a new session for an admin key or a setup link's token.
async fn sign_in(
    State(state): State<AppState>,
    Extension(request): Extension<RequestId>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<SignIn>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let credential = match (input.key, input.setup_token) {
        (Some(key), None) => check_key(&state, &request, key, now).await?,
        (None, Some(token)) => check_link(&state, &request, token, now).await?,
        _ => return Err(ApiError::Malformed("send either `key` or `setup_token`".into())),
    };
    let (holder, expires_at) = match &credential {
        Credential::Key(key) => (SessionHolder::Operator { key: *key }, now + SESSION_LIFETIME),
        Credential::Link { link } => (
            SessionHolder::Setup { link: link.id, tenant: link.tenant },
            link.expires_at.min(now + SESSION_LIFETIME),
        ),
    };
    let token = random_token();
    let session = AdminSessionRecord {
        holder,
        csrf_token: random_token(),
        created_at: now,
        last_seen_at: now,
        expires_at,
    };
    let secure = state.secure_cookies();
    let replaced = cookie::read(&headers, cookie::admin_name(secure)).map(digest);
    let change = AdminChange::new(AdminAuth { caller: holder.into() }, &request, now);
    let (new_digest, public_url) = (digest(&token), state.public_url.to_string());
    let view = state
        .store
        .write(move |tx| {
            if let Some(old) = &replaced {
                admin_sessions::remove(tx, old)?;
            }
            admin_sessions::remove_where(tx, |s| {
                now >= s.expires_at || now - s.last_seen_at >= IDLE_TIMEOUT
            })?;
            admin_sessions::put(tx, &new_digest, &session)?;
            record_sign_in(tx, &change, &credential, now)?;
            Ok::<_, ApiError>(session_view(tx, &session, &public_url)?)
        })
        .await?;
    let max_age = expires_at - now;
    let set_cookie = cookie::set_strict(cookie::admin_name(secure), &token, Some(max_age), secure);
    Ok(with_cookie(ApiJson(view).into_response(), set_cookie))
}

/// Audits the sign-in; opening a setup link also counts on the link.
fn record_sign_in(
    tx: &crate::store::WriteTx<'_>,
    change: &AdminChange,
    credential: &Credential,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    match credential {
        Credential::Key(key) => {
            let subject = Subject { kind: "admin_key".into(), id: key.to_string(), label: None };
            Ok(change.audit(tx, None, "dashboard.sign_in", subject, json!({}))?)
        }
        Credential::Link { link } => {
            // Counted on the link as it is now: it may have been revoked since it was checked.
            let current = setup_links::get(tx, link.tenant, link.id)?;
            let Some(mut opened) = current.filter(|l| l.status(now) == LinkStatus::Active) else {
                return Err(ApiError::Unauthenticated {
                    code: "link_revoked",
                    message: "this setup link has been revoked: ask for a new one",
                });
            };
            opened.opened_count += 1;
            opened.last_opened_at = Some(now);
            setup_links::put(tx, &opened)?;
            let detail = json!({ "opened_count": opened.opened_count });
            Ok(change.audit(tx, Some(link.tenant), "setup_link.open", link_subject(link), detail)?)
        }
    }
}

async fn check_key(
    state: &AppState,
    request: &RequestId,
    key: String,
    now: OffsetDateTime,
) -> Result<Credential, ApiError> {
    let digest = digest(key.trim());
    let found = state.store.read(move |tx| admin_keys::by_digest(tx, &digest)).await?;
    match found {
        Some(key) if key.revoked_at.is_none() && key.scope == KeyScope::Admin => Ok(Credential::Key(key.id)),
        _ => {
            refuse(state, request, None, "dashboard.sign_in", None, "invalid_credentials", now).await;
            Err(ApiError::Unauthenticated {
                code: "invalid_credentials",
                message: "this is not an active admin API key (an events:read or metrics:read key cannot sign in)",
            })
        }
    }
}

async fn check_link(
    state: &AppState,
    request: &RequestId,
    token: String,
    now: OffsetDateTime,
) -> Result<Credential, ApiError> {
    let digest = digest(token.trim());
    let found = state.store.read(move |tx| setup_links::by_digest(tx, &digest)).await?;
    let Some(link) = found else {
        refuse(state, request, None, "setup_link.open", None, "invalid_credentials", now).await;
        return Err(ApiError::Unauthenticated {
            code: "invalid_credentials",
            message: "this setup link is not valid: check that it was copied whole",
        });
    };
    let (code, message) = match link.status(now) {
        LinkStatus::Active => return Ok(Credential::Link { link }),
        LinkStatus::Expired => ("link_expired", "this setup link has expired: ask for a new one"),
        LinkStatus::Revoked => ("link_revoked", "this setup link has been revoked: ask for a new one"),
    };
    let subject = link_subject(&link);
    refuse(state, request, Some(link.tenant), "setup_link.open", Some(subject), code, now).await;
    Err(ApiError::Unauthenticated { code, message })
}

/// Records a refused sign-in (anonymous: budgeted per source address).
async fn refuse(
    state: &AppState,
    request: &RequestId,
    tenant: Option<crate::ids::TenantId>,
    action: &str,
    subject: Option<Subject>,
    reason: &str,
    now: OffsetDateTime,
) {
    let action = format!("admin.{action}");
    let record = AuditRecord::new(
        tenant,
        Actor::anonymous(),
        action,
        subject,
        json!({}),
        now,
        Some(request.0.clone()),
    )
    .refused(reason);
    refusals::record(state, record).await;
}

/// `DELETE /admin/api/session`: signs out, with the CSRF token like every change. Not behind
/// `AdminAuth`: a setup link's session may sign out too, and an ended session still gets its
/// cookie cleared.
async fn sign_out(
    State(state): State<AppState>,
    Extension(request): Extension<RequestId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let secure = state.secure_cookies();
    let token = cookie::read(&headers, cookie::admin_name(secure)).ok_or(AdminError::MissingCredentials)?;
    let digest = digest(token);
    let session = state.store.read(move |tx| admin_sessions::get(tx, &digest)).await?;
    if let Some(session) = session {
        if !csrf_matches(&headers, &session.csrf_token) {
            return Err(AdminError::CsrfMismatch.into());
        }
        let caller: Caller = session.holder.into();
        let change = AdminChange::new(AdminAuth { caller }, &request, state.clock.now());
        state
            .store
            .write(move |tx| {
                if admin_sessions::remove(tx, &digest)? {
                    let actor = change.auth.actor();
                    let subject = Subject { kind: actor.kind, id: actor.id, label: None };
                    let tenant = match caller {
                        Caller::SetupLink { tenant, .. } => Some(tenant),
                        Caller::Operator(_) => None,
                    };
                    change.audit(tx, tenant, "dashboard.sign_out", subject, json!({}))?;
                }
                Ok::<_, StoreError>(())
            })
            .await?;
    }
    let response = StatusCode::NO_CONTENT.into_response();
    Ok(with_cookie(response, cookie::clear(cookie::admin_name(secure), secure)))
}

fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(value) = cookie {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// 256 random bits, base64url: a session cookie or a CSRF token.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}
