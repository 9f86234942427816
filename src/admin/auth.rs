//! `AdminAuth`: who is calling the admin API, and whether they may make this request.
//!
//! Two kinds of credential reach it: an admin API key (`Authorization: Bearer`, for scripts and
//! the app) and the dashboard's session cookie (for people). A session is either an operator's,
//! signed in with an admin key, or a customer's IT admin's, opened from a setup link: the latter
//! may only reach the setup routes of its own tenant. A session's requests that change anything
//! must carry its CSRF token.

use axum::{
    extract::{FromRequestParts, OriginalUri},
    http::{Method, request::Parts},
};
use time::{Duration, OffsetDateTime};

use super::{AdminError, digest};
use crate::{
    app::AppState,
    http::{
        ApiError,
        auth::{BearerError, bearer_token},
    },
    ids::{AdminKeyId, SetupLinkId, TenantId},
    sessions::cookie,
    store::{
        Source, StoreError,
        admin_keys::{self, KeyScope},
        admin_sessions::{self, AdminSessionRecord, SessionHolder},
        audit::Actor,
        setup_links::{self, LinkStatus},
    },
};

/// The header in which the dashboard sends its session's CSRF token.
const CSRF_HEADER: &str = "x-csrf-token";
/// A session unused this long ends.
pub const IDLE_TIMEOUT: Duration = Duration::minutes(60);
/// How stale `last_seen_at` may get before a request refreshes it (one write a minute at most).
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// Proof that the request carries a valid credential that allows it.
#[derive(Debug, Clone, Copy)]
pub struct AdminAuth {
    pub caller: Caller,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// An operator: an admin API key, or a dashboard session signed in with one.
    Operator(AdminKeyId),
    /// A customer's IT admin, through a setup link of one tenant.
    SetupLink { link: SetupLinkId, tenant: TenantId },
}

impl AdminAuth {
    /// The audit trail's name for the caller.
    pub fn actor(&self) -> Actor {
        match self.caller {
            Caller::Operator(key) => Actor { kind: "admin_key".into(), id: key.to_string(), label: None },
            Caller::SetupLink { link, .. } => {
                Actor { kind: "setup_link".into(), id: link.to_string(), label: None }
            }
        }
    }

    pub fn is_operator(&self) -> bool {
        matches!(self.caller, Caller::Operator(_))
    }
}

impl From<SessionHolder> for Caller {
    fn from(holder: SessionHolder) -> Self {
        match holder {
            SessionHolder::Operator { key } => Caller::Operator(key),
            SessionHolder::Setup { link, tenant } => Caller::SetupLink { link, tenant },
        }
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    #[tracing::instrument(skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = match bearer_token(&parts.headers) {
            Ok(token) => key_caller(state, token, parts).await?,
            Err(BearerError::Malformed) => return Err(AdminError::InvalidCredentials.into()),
            Err(BearerError::Missing) => session_caller(state, parts).await?,
        };
        if let Caller::SetupLink { tenant, .. } = caller {
            if !setup_may(&parts.method, original_path(parts), tenant) {
                return Err(AdminError::OutsideSetup.into());
            }
        }
        Ok(AdminAuth { caller })
    }
}

async fn key_caller(state: &AppState, token: &str, parts: &Parts) -> Result<Caller, AdminError> {
    let digest = digest(token);
    let key = state.store.read(move |tx| admin_keys::by_digest(tx, &digest)).await?;
    match key {
        Some(key) if key.revoked_at.is_none() => {
            if !scope_allows(key.scope, parts) {
                return Err(AdminError::OutOfScope(key.scope));
            }
            Ok(Caller::Operator(key.id))
        }
        _ => Err(AdminError::InvalidCredentials),
    }
}

/// The caller of a dashboard session: the cookie names a live session whose credential (key or
/// link) still holds, and a request that changes something carries the session's CSRF token.
async fn session_caller(state: &AppState, parts: &Parts) -> Result<Caller, AdminError> {
    let secure = state.secure_cookies();
    let token =
        cookie::read(&parts.headers, cookie::admin_name(secure)).ok_or(AdminError::MissingCredentials)?;
    let digest = digest(token);
    let now = state.clock.now();
    let session = state.store.read(move |tx| live_session(tx, &digest, now)).await?;
    let session = session.ok_or(AdminError::SessionEnded)?;
    if !is_safe(&parts.method) && !csrf_matches(&parts.headers, &session.csrf_token) {
        return Err(AdminError::CsrfMismatch);
    }
    if now - session.last_seen_at >= TOUCH_EVERY {
        state
            .store
            .write(move |tx| {
                // Re-read: the session may have ended since (sign-out in another tab).
                if let Some(mut current) = admin_sessions::get(tx, &digest)? {
                    current.last_seen_at = now;
                    admin_sessions::put(tx, &digest, &current)?;
                }
                Ok::<_, StoreError>(())
            })
            .await?;
    }
    Ok(session.holder.into())
}

/// The session with this digest if it has not ended: not expired, not idle too long, and its
/// credential still valid (an admin key not revoked; a setup link neither revoked nor expired).
pub fn live_session(
    src: &impl Source,
    digest: &[u8; 32],
    now: OffsetDateTime,
) -> Result<Option<AdminSessionRecord>, StoreError> {
    let Some(session) = admin_sessions::get(src, digest)? else { return Ok(None) };
    if now >= session.expires_at || now - session.last_seen_at >= IDLE_TIMEOUT {
        return Ok(None);
    }
    let holds = match session.holder {
        SessionHolder::Operator { key } => admin_keys::get(src, key)?
            .is_some_and(|key| key.revoked_at.is_none() && key.scope == KeyScope::Admin),
        SessionHolder::Setup { link, tenant } => {
            setup_links::get(src, tenant, link)?.is_some_and(|link| link.status(now) == LinkStatus::Active)
        }
    };
    Ok(holds.then_some(session))
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the request carries the session's CSRF token (compared in constant time).
pub(super) fn csrf_matches(headers: &axum::http::HeaderMap, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    let presented = headers.get(CSRF_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    bool::from(presented.ct_eq(expected.as_bytes()))
}

fn original_path(parts: &Parts) -> &str {
    parts.extensions.get::<OriginalUri>().map_or(parts.uri.path(), |original| original.path())
}

/// Whether a key of `scope` may make this request. A narrow key reaches its one route, matched
/// here on the original path before any handler runs, so no route can forget the check.
fn scope_allows(scope: KeyScope, parts: &Parts) -> bool {
    match scope {
        KeyScope::Admin => true,
        KeyScope::EventsRead => reads_the_feed(parts),
        KeyScope::MetricsRead => parts.method == Method::GET && original_path(parts) == "/metrics",
    }
}

/// Whether the request reads the events feed: all an `events:read` key may do.
fn reads_the_feed(parts: &Parts) -> bool {
    let path = original_path(parts);
    parts.method == Method::GET && (path == "/api/v1/events" || path.starts_with("/api/v1/events/"))
}

/// The routes a setup link opens, below `/api/v1/tenants/{its tenant id}`: what the setup
/// wizard needs and nothing else (no users, sessions, audit, tenant settings or other tenants).
/// `*` is one path segment, `**` any number (none included).
const SETUP_ROUTES: &[(&str, &str)] = &[
    ("GET", ""),
    ("GET POST", "/domains"),
    ("DELETE", "/domains/*"),
    ("POST", "/domains/*/verify"),
    ("GET POST PATCH PUT DELETE", "/saml-connections/**"),
    ("GET POST PATCH PUT DELETE", "/oidc-connections/**"),
    ("GET POST", "/scim-tokens"),
    ("DELETE", "/scim-tokens/*"),
    ("GET PUT", "/access-policy"),
    ("POST", "/access-policy/dry-run"),
    ("GET", "/groups"),
];

fn setup_may(method: &Method, path: &str, tenant: TenantId) -> bool {
    let own = format!("/api/v1/tenants/{tenant}");
    let Some(rest) = path.strip_prefix(&own) else { return false };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return false;
    }
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return false;
    }
    SETUP_ROUTES.iter().any(|(methods, pattern)| {
        methods.split(' ').any(|m| m == method.as_str()) && {
            let wanted: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
            segments_match(&wanted, &segments)
        }
    })
}

fn segments_match(pattern: &[&str], path: &[&str]) -> bool {
    match (pattern.first(), path.first()) {
        (None, None) => true,
        (Some(&"**"), _) => true,
        (Some(&"*"), Some(_)) => segments_match(&pattern[1..], &path[1..]),
        (Some(wanted), Some(segment)) => wanted == segment && segments_match(&pattern[1..], &path[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        admin::issue_key,
        store::{setup_links::SetupLinkRecord, testing},
    };

    fn session(holder: SessionHolder, now: OffsetDateTime) -> AdminSessionRecord {
        AdminSessionRecord {
            holder,
            csrf_token: "t".into(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + Duration::hours(12),
        }
    }

    #[tokio::test]
    async fn a_session_ends_with_its_lifetime_its_idleness_or_its_credential() {
        let (_dir, store) = testing::store();
        let now = OffsetDateTime::now_utc();
        let key = issue_key("k".into(), KeyScope::Admin, now).record;
        let link = SetupLinkRecord { expires_at: now + Duration::hours(2), ..setup_links::tests::link(now) };
        let tenant = link.tenant;
        let operator = session(SessionHolder::Operator { key: key.id }, now);
        let setup = session(SessionHolder::Setup { link: link.id, tenant }, now);
        let (k, l, o, s) = (key.clone(), link.clone(), operator.clone(), setup.clone());
        store
            .write(move |tx| {
                admin_keys::insert(tx, &k)?;
                setup_links::put(tx, &l)?;
                admin_sessions::put(tx, &[10; 32], &o)?;
                admin_sessions::put(tx, &[20; 32], &s)
            })
            .await
            .unwrap();
        let live = |digest: [u8; 32], at: OffsetDateTime| {
            let store = store.clone();
            async move { store.read(move |tx| live_session(tx, &digest, at)).await.unwrap().is_some() }
        };
        assert!(live([10; 32], now + Duration::minutes(59)).await);
        assert!(!live([10; 32], now + IDLE_TIMEOUT).await, "an hour without use ends it");
        assert!(!live([99; 32], now).await, "an unknown cookie");
        assert!(live([20; 32], now + Duration::minutes(30)).await);
        assert!(!live([20; 32], now + Duration::hours(2)).await, "the link expired");

        let (key_id, link_id) = (key.id, link.id);
        store
            .write(move |tx| {
                admin_keys::revoke(tx, key_id, now)?;
                let mut revoked = setup_links::get(tx, tenant, link_id)?.unwrap();
                revoked.revoked_at = Some(now);
                setup_links::put(tx, &revoked)
            })
            .await
            .unwrap();
        assert!(!live([10; 32], now).await, "its key was revoked");
        assert!(!live([20; 32], now).await, "its link was revoked");
    }

    #[test]
    fn a_setup_link_reaches_only_its_own_tenants_setup_routes() {
        let tenant = TenantId::generate();
        let other = TenantId::generate();
        let may = |method: Method, path: &str| setup_may(&method, path, tenant);
        let own = |rest: &str| format!("/api/v1/tenants/{tenant}{rest}");
        assert!(may(Method::GET, &own("")));
        assert!(may(Method::POST, &own("/domains")));
        assert!(may(Method::POST, &own("/domains/example.com/verify")));
        assert!(may(Method::PUT, &own("/saml-connections/abc/idp-metadata")));
        assert!(may(Method::POST, &own("/saml-connections")));
        assert!(may(Method::GET, &own("/oidc-connections/abc/tests/x")));
        assert!(may(Method::POST, &own("/scim-tokens")));
        assert!(may(Method::PUT, &own("/access-policy")));
        assert!(may(Method::GET, &own("/groups")));

        assert!(!may(Method::PATCH, &own("")), "tenant settings are the operator's");
        assert!(!may(Method::DELETE, &own("")));
        assert!(!may(Method::GET, &own("/users")));
        assert!(!may(Method::GET, &own("/groups/abc")));
        assert!(!may(Method::DELETE, &own("/sessions")));
        assert!(!may(Method::GET, &own("/setup-links")));
        assert!(!may(Method::GET, &own("/audit-retention")));
        assert!(!may(Method::POST, &own("/domains/example.com/verify/extra")));
        assert!(!may(Method::GET, &format!("/api/v1/tenants/{other}")));
        assert!(!may(Method::GET, &format!("/api/v1/tenants/{other}/saml-connections")));
        assert!(!may(Method::GET, &format!("/api/v1/tenants/{tenant}x/domains")));
        assert!(!may(Method::GET, "/api/v1/tenants"));
        assert!(!may(Method::GET, "/api/v1/audit/search"));
        assert!(!may(Method::GET, "/api/v1/admin-keys"));
        assert!(!may(Method::GET, &own(&format!("/saml-connections/../../{other}/saml-connections"))));
    }
}
