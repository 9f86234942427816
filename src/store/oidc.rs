//! Tenants' OpenID Connect connections and the one-time state of OIDC logins.
//!
//! Tables:
//! - `oidc_connections` (connection id → record) and `tenant_oidc_connections` ((tenant,
//!   connection) → ()), the per-tenant index; they change in the same transaction.
//! - `oidc_logins` (state → pending login): every authorization request Portcullis sent to an
//!   IdP, so that a callback is accepted only for a request we made, once, from the browser that
//!   started it, before it expires. Answered logins stay until they expire, so that a second
//!   callback is told apart from a forged one.
//! - `oidc_subjects` ((upstream, sub, tenant) → user): who an IdP's subject was found to be, so
//!   that later logins and back-channel logouts (which may name only `sub`) find the same user.
//! - `oidc_idp_sessions` ((upstream, sid, session) → expiry): the Portcullis sessions an IdP
//!   session (`sid`) started, for back-channel logout.
//! - `oidc_logout_tokens` ((upstream, jti) → expiry): logout tokens already honoured.
//! - `oidc_id_tokens` (session → the IdP's ID token): the `id_token_hint` of a logout at the IdP,
//!   kept only for connections that sign people out there, until the session expires.
//! - `oidc_logouts` (state → pending logout): where to send the browser when the IdP is done.
//! - `oidc_expiry` ((due, kind, key, key) → ()): what to purge when.
//!
//! An upstream is named `oidc:<connection>` or `google`, as sessions name their IdP.

use std::collections::BTreeMap;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, TableVisitor, WriteTx, codec};
use crate::ids::{AuthRequestId, ConnectionId, SessionId, TenantId, UserId};

const OIDC_CONNECTIONS: TableDefinition<u128, &[u8]> = TableDefinition::new("oidc_connections");
const TENANT_OIDC_CONNECTIONS: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("tenant_oidc_connections");
const OIDC_LOGINS: TableDefinition<&str, &[u8]> = TableDefinition::new("oidc_logins");
const OIDC_SUBJECTS: TableDefinition<(&str, &str, u128), u128> = TableDefinition::new("oidc_subjects");
const OIDC_IDP_SESSIONS: TableDefinition<(&str, &str, u128), i64> = TableDefinition::new("oidc_idp_sessions");
const OIDC_LOGOUT_TOKENS: TableDefinition<(&str, &str), i64> = TableDefinition::new("oidc_logout_tokens");
const OIDC_ID_TOKENS: TableDefinition<u128, &str> = TableDefinition::new("oidc_id_tokens");
const OIDC_LOGOUTS: TableDefinition<&str, &[u8]> = TableDefinition::new("oidc_logouts");
const OIDC_EXPIRY: TableDefinition<(i64, u8, &str, &str), ()> = TableDefinition::new("oidc_expiry");

/// Every table of this module: created at start, copied by a backup.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(OIDC_CONNECTIONS)?;
    tables.visit(TENANT_OIDC_CONNECTIONS)?;
    tables.visit(OIDC_LOGINS)?;
    tables.visit(OIDC_SUBJECTS)?;
    tables.visit(OIDC_IDP_SESSIONS)?;
    tables.visit(OIDC_LOGOUT_TOKENS)?;
    tables.visit(OIDC_ID_TOKENS)?;
    tables.visit(OIDC_LOGOUTS)?;
    tables.visit(OIDC_EXPIRY)?;
    Ok(())
}

/// How Portcullis authenticates at the IdP's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
}

/// Which claim fills which user field; None: the standard claim (and the names Okta and Entra ID
/// use where they differ).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ClaimMapping {
    /// Matched against the directory's userName (default `preferred_username`).
    pub user_name: Option<String>,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub groups: Option<String>,
    pub department: Option<String>,
    /// Further fields of the app's choosing: field name → claim.
    #[serde(default)]
    pub custom: BTreeMap<String, String>,
}

/// What discovery found at the issuer, as last fetched: shown to the admin, and the endpoints a
/// login uses when the in-memory cache is cold.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Discovered {
    pub authorization_endpoint: String,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: String,
    pub end_session_endpoint: Option<String>,
    pub id_token_signing_algs: Vec<String>,
    pub backchannel_logout_supported: bool,
    /// RFC 9207: the IdP names itself in every authorization response, and must.
    pub authorization_response_iss_parameter_supported: bool,
    pub fetched_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OidcConnectionRecord {
    pub id: ConnectionId,
    pub tenant: TenantId,
    pub name: String,
    pub enabled: bool,
    /// The issuer identifier, exactly as the IdP's discovery document and ID tokens state it.
    pub issuer: String,
    pub client_id: String,
    /// The client secret, sealed with the instance's secret key (`crate::secrets`); never shown.
    pub client_secret: Option<String>,
    pub token_auth_method: TokenAuthMethod,
    /// Asked for at every login; always starts with `openid`.
    pub scopes: Vec<String>,
    pub claim_mapping: ClaimMapping,
    /// People the directory does not know are created at their first login.
    pub jit_provisioning: bool,
    pub clock_skew_secs: u32,
    /// When the app signs a person out, the browser goes to the IdP's end-session endpoint too
    /// (OpenID Connect RP-Initiated Logout), and comes back to the app after.
    #[serde(default)]
    pub sign_out_at_idp: bool,
    pub discovered: Option<Discovered>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Record for OidcConnectionRecord {
    const KIND: &'static str = "OIDC connection";
}

impl OidcConnectionRecord {
    /// How sessions and the subject links name this connection.
    pub fn upstream(&self) -> String {
        format!("oidc:{}", self.id)
    }
}

/// An authorization request Portcullis sent to an IdP and is waiting for the callback of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingLogin {
    /// `oidc:<connection>` or `google`.
    pub upstream: String,
    /// The tenant of the connection; None for Google (found from the person's address).
    pub tenant: Option<TenantId>,
    /// The app's authorization waiting for this login; None for a connection test.
    pub authorization: Option<AuthRequestId>,
    /// A connection test: its ticket (made by the admin API, `test_of: None`) or a login started
    /// for a ticket (`test_of` names it). Nobody is signed in.
    pub test: bool,
    #[serde(default)]
    pub test_of: Option<String>,
    /// SHA-256 of the browser cookie of the browser that was sent to the IdP: the callback must
    /// come back in the same browser (login CSRF).
    pub browser: [u8; 32],
    pub nonce: String,
    pub pkce_verifier: String,
    /// The app asked for a fresh authentication: 0 for `prompt=login` (the person must have
    /// authenticated after this login started), else its `max_age` in seconds.
    #[serde(default)]
    pub max_age: Option<u64>,
    pub redirect_uri: String,
    #[serde(default)]
    pub answered_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub test_result: Option<serde_json::Value>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl Record for PendingLogin {
    const KIND: &'static str = "pending OIDC login";
}

/// What became of the login a callback says it answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Answering {
    /// Portcullis never sent it, or it expired and was purged.
    Unknown,
    AlreadyAnswered(PendingLogin),
    /// Now marked as answered.
    Answered(PendingLogin),
}

/// A logout Portcullis sent to an IdP's end-session endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingLogout {
    pub upstream: String,
    /// Where the browser goes when the IdP is done (the app's post-logout address).
    pub return_to: Option<String>,
    pub expires_at: OffsetDateTime,
}

impl Record for PendingLogout {
    const KIND: &'static str = "pending OIDC logout";
}

#[repr(u8)]
enum Expiring {
    Login = 1,
    IdpSession = 2,
    LogoutToken = 3,
    IdToken = 4,
    Logout = 5,
}

// ---- connections ----

pub fn connection(src: &impl Source, id: ConnectionId) -> Result<Option<OidcConnectionRecord>, StoreError> {
    codec::get(src, OIDC_CONNECTIONS, id.key())
}

/// The tenant's connections, oldest first.
pub fn tenant_connections(
    src: &impl Source,
    tenant: TenantId,
) -> Result<Vec<OidcConnectionRecord>, StoreError> {
    let ids: Vec<u128> = {
        let index = src.table(TENANT_OIDC_CONNECTIONS)?;
        let range = index.range((tenant.key(), 0)..=(tenant.key(), u128::MAX))?;
        range.map(|entry| Ok::<_, StoreError>(entry?.0.value().1)).collect::<Result<_, _>>()?
    };
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(record) = connection(src, ConnectionId::from_key(id))? {
            found.push(record);
        }
    }
    found.sort_by_key(|c| c.created_at);
    Ok(found)
}

/// Every connection (for the discovery refresh).
pub fn all_connections(src: &impl Source) -> Result<Vec<OidcConnectionRecord>, StoreError> {
    let table = src.table(OIDC_CONNECTIONS)?;
    table.range(0..)?.map(|entry| codec::decode(entry?.1.value())).collect()
}

pub fn put_connection(tx: &WriteTx<'_>, record: &OidcConnectionRecord) -> Result<(), StoreError> {
    tx.table_mut(OIDC_CONNECTIONS)?.insert(record.id.key(), codec::encode(record)?.as_slice())?;
    tx.table_mut(TENANT_OIDC_CONNECTIONS)?.insert((record.tenant.key(), record.id.key()), ())?;
    Ok(())
}

pub fn delete_connection(
    tx: &WriteTx<'_>,
    id: ConnectionId,
) -> Result<Option<OidcConnectionRecord>, StoreError> {
    let Some(record) = connection(tx, id)? else {
        return Ok(None);
    };
    tx.table_mut(OIDC_CONNECTIONS)?.remove(id.key())?;
    tx.table_mut(TENANT_OIDC_CONNECTIONS)?.remove((record.tenant.key(), id.key()))?;
    remove_subjects(tx, &record.upstream(), |_| true)?;
    Ok(Some(record))
}

/// Removes every connection of a deleted tenant, and what Google sign-in remembered of its
/// people. Its one-time state expires on its own.
pub(super) fn delete_tenant(tx: &WriteTx<'_>, tenant: TenantId) -> Result<(), StoreError> {
    for record in tenant_connections(tx, tenant)? {
        delete_connection(tx, record.id)?;
    }
    remove_subjects(tx, "google", |of| of == tenant.key())
}

/// Forgets the subject links of `upstream` whose tenant `matches`.
fn remove_subjects(
    tx: &WriteTx<'_>,
    upstream: &str,
    matches: impl Fn(u128) -> bool,
) -> Result<(), StoreError> {
    let mut table = tx.table_mut(OIDC_SUBJECTS)?;
    let keys: Vec<(String, u128)> = {
        let range = table.range((upstream, "", 0)..)?;
        let mut keys = Vec::new();
        for entry in range {
            let entry = entry?;
            let (of, sub, tenant) = entry.0.value();
            if of != upstream {
                break;
            }
            if matches(tenant) {
                keys.push((sub.to_owned(), tenant));
            }
        }
        keys
    };
    for (sub, tenant) in keys {
        table.remove((upstream, sub.as_str(), tenant))?;
    }
    Ok(())
}

// ---- logins ----

pub fn put_login(tx: &WriteTx<'_>, state: &str, login: &PendingLogin) -> Result<(), StoreError> {
    tx.table_mut(OIDC_LOGINS)?.insert(state, codec::encode(login)?.as_slice())?;
    let due = login.expires_at.unix_timestamp();
    tx.table_mut(OIDC_EXPIRY)?.insert((due, Expiring::Login as u8, state, ""), ())?;
    Ok(())
}

pub fn login(src: &impl Source, state: &str) -> Result<Option<PendingLogin>, StoreError> {
    codec::get(src, OIDC_LOGINS, state)
}

/// Marks a pending login as answered: a login is answered once.
pub fn answer_login(tx: &WriteTx<'_>, state: &str, now: OffsetDateTime) -> Result<Answering, StoreError> {
    let Some(mut pending) = login(tx, state)? else {
        return Ok(Answering::Unknown);
    };
    if pending.answered_at.is_some() {
        return Ok(Answering::AlreadyAnswered(pending));
    }
    pending.answered_at = Some(now);
    tx.table_mut(OIDC_LOGINS)?.insert(state, codec::encode(&pending)?.as_slice())?;
    Ok(Answering::Answered(pending))
}

/// Keeps a connection test's outcome with its login.
pub fn record_test_result(
    tx: &WriteTx<'_>,
    state: &str,
    result: serde_json::Value,
) -> Result<(), StoreError> {
    if let Some(mut pending) = login(tx, state)? {
        pending.test_result = Some(result);
        tx.table_mut(OIDC_LOGINS)?.insert(state, codec::encode(&pending)?.as_slice())?;
    }
    Ok(())
}

// ---- subjects and IdP sessions ----

/// The user an IdP subject was last found to be in `tenant`.
pub fn subject_user(
    src: &impl Source,
    upstream: &str,
    sub: &str,
    tenant: TenantId,
) -> Result<Option<UserId>, StoreError> {
    Ok(src.table(OIDC_SUBJECTS)?.get((upstream, sub, tenant.key()))?.map(|v| UserId::from_key(v.value())))
}

/// Every (tenant, user) an IdP subject was found to be.
pub fn subject_users(
    src: &impl Source,
    upstream: &str,
    sub: &str,
) -> Result<Vec<(TenantId, UserId)>, StoreError> {
    let table = src.table(OIDC_SUBJECTS)?;
    let range = table.range((upstream, sub, 0)..=(upstream, sub, u128::MAX))?;
    range
        .map(|entry| {
            let entry = entry?;
            Ok((TenantId::from_key(entry.0.value().2), UserId::from_key(entry.1.value())))
        })
        .collect()
}

pub fn link_subject(
    tx: &WriteTx<'_>,
    upstream: &str,
    sub: &str,
    tenant: TenantId,
    user: UserId,
) -> Result<(), StoreError> {
    tx.table_mut(OIDC_SUBJECTS)?.insert((upstream, sub, tenant.key()), user.key())?;
    Ok(())
}

/// Remembers that the IdP session `sid` started `session`, until the session expires.
pub fn record_idp_session(
    tx: &WriteTx<'_>,
    upstream: &str,
    sid: &str,
    session: SessionId,
    until: OffsetDateTime,
) -> Result<(), StoreError> {
    let due = until.unix_timestamp();
    tx.table_mut(OIDC_IDP_SESSIONS)?.insert((upstream, sid, session.key()), due)?;
    let key = format!("{upstream} {sid}");
    let session_key = session.to_string();
    tx.table_mut(OIDC_EXPIRY)?
        .insert((due, Expiring::IdpSession as u8, key.as_str(), session_key.as_str()), ())?;
    Ok(())
}

/// The sessions the IdP session `sid` started.
pub fn idp_session_sessions(
    src: &impl Source,
    upstream: &str,
    sid: &str,
) -> Result<Vec<SessionId>, StoreError> {
    let table = src.table(OIDC_IDP_SESSIONS)?;
    let range = table.range((upstream, sid, 0)..=(upstream, sid, u128::MAX))?;
    range.map(|entry| Ok(SessionId::from_key(entry?.0.value().2))).collect()
}

/// Records that the logout token `jti` of `upstream` was honoured; false if it already was.
pub fn mark_logout_token(
    tx: &WriteTx<'_>,
    upstream: &str,
    jti: &str,
    keep_until: OffsetDateTime,
) -> Result<bool, StoreError> {
    let due = keep_until.unix_timestamp();
    if tx.table_mut(OIDC_LOGOUT_TOKENS)?.insert((upstream, jti), due)?.is_some() {
        return Ok(false);
    }
    tx.table_mut(OIDC_EXPIRY)?.insert((due, Expiring::LogoutToken as u8, upstream, jti), ())?;
    Ok(true)
}

/// Keeps the IdP's ID token of `session` (for `id_token_hint`) until the session expires.
pub fn keep_id_token(
    tx: &WriteTx<'_>,
    session: SessionId,
    raw: &str,
    until: OffsetDateTime,
) -> Result<(), StoreError> {
    tx.table_mut(OIDC_ID_TOKENS)?.insert(session.key(), raw)?;
    let key = session.to_string();
    tx.table_mut(OIDC_EXPIRY)?
        .insert((until.unix_timestamp(), Expiring::IdToken as u8, key.as_str(), ""), ())?;
    Ok(())
}

pub fn id_token(src: &impl Source, session: SessionId) -> Result<Option<String>, StoreError> {
    Ok(src.table(OIDC_ID_TOKENS)?.get(session.key())?.map(|v| v.value().to_owned()))
}

pub fn put_logout(tx: &WriteTx<'_>, state: &str, logout: &PendingLogout) -> Result<(), StoreError> {
    tx.table_mut(OIDC_LOGOUTS)?.insert(state, codec::encode(logout)?.as_slice())?;
    let due = logout.expires_at.unix_timestamp();
    tx.table_mut(OIDC_EXPIRY)?.insert((due, Expiring::Logout as u8, state, ""), ())?;
    Ok(())
}

/// Removes and returns a pending logout: it is answered once.
pub fn take_logout(tx: &WriteTx<'_>, state: &str) -> Result<Option<PendingLogout>, StoreError> {
    let removed = tx.table_mut(OIDC_LOGOUTS)?.remove(state)?.map(|v| v.value().to_vec());
    removed.map(|bytes| codec::decode(&bytes)).transpose()
}

/// Deletes up to `limit` logins, IdP session links and logout tokens that expired before `now`.
pub fn purge_expired(tx: &WriteTx<'_>, now: OffsetDateTime, limit: usize) -> Result<usize, StoreError> {
    let due: Vec<(i64, u8, String, String)> = {
        let queue = tx.table_mut(OIDC_EXPIRY)?;
        let range = queue.range::<(i64, u8, &str, &str)>(..(now.unix_timestamp(), 0, "", ""))?;
        range
            .take(limit)
            .map(|entry| {
                let entry = entry?;
                let (at, kind, first, second) = entry.0.value();
                Ok::<_, StoreError>((at, kind, first.to_owned(), second.to_owned()))
            })
            .collect::<Result<_, _>>()?
    };
    for (at, kind, first, second) in &due {
        match *kind {
            k if k == Expiring::Login as u8 => {
                tx.table_mut(OIDC_LOGINS)?.remove(first.as_str())?;
            }
            k if k == Expiring::IdToken as u8 => {
                if let Ok(session) = first.parse::<SessionId>() {
                    tx.table_mut(OIDC_ID_TOKENS)?.remove(session.key())?;
                }
            }
            k if k == Expiring::Logout as u8 => {
                tx.table_mut(OIDC_LOGOUTS)?.remove(first.as_str())?;
            }
            k if k == Expiring::IdpSession as u8 => {
                let (upstream, sid) = first.split_once(' ').unwrap_or((first, ""));
                if let Ok(session) = second.parse::<SessionId>() {
                    tx.table_mut(OIDC_IDP_SESSIONS)?.remove((upstream, sid, session.key()))?;
                }
            }
            _ => {
                tx.table_mut(OIDC_LOGOUT_TOKENS)?.remove((first.as_str(), second.as_str()))?;
            }
        }
        tx.table_mut(OIDC_EXPIRY)?.remove((*at, *kind, first.as_str(), second.as_str()))?;
    }
    Ok(due.len())
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;
    use crate::store::testing;

    fn pending(expires_at: OffsetDateTime) -> PendingLogin {
        PendingLogin {
            upstream: "google".into(),
            tenant: None,
            authorization: None,
            test: false,
            test_of: None,
            browser: [7; 32],
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            max_age: None,
            redirect_uri: "https://portcullis.test/sso/google/callback".into(),
            answered_at: None,
            test_result: None,
            created_at: expires_at - Duration::minutes(10),
            expires_at,
        }
    }

    #[tokio::test]
    async fn a_login_is_answered_once_and_a_logout_token_honoured_once() {
        let (_dir, store) = testing::store();
        let now = OffsetDateTime::now_utc();
        let login = pending(now + Duration::minutes(5));
        let outcome = store
            .write(move |tx| {
                put_login(tx, "s1", &login)?;
                let first = matches!(answer_login(tx, "s1", now)?, Answering::Answered(_));
                let second = matches!(answer_login(tx, "s1", now)?, Answering::AlreadyAnswered(_));
                assert_eq!(answer_login(tx, "never", now)?, Answering::Unknown);
                let fresh = mark_logout_token(tx, "google", "j1", now + Duration::minutes(5))?;
                let replay = mark_logout_token(tx, "google", "j1", now + Duration::minutes(5))?;
                let elsewhere = mark_logout_token(tx, "oidc:x", "j1", now + Duration::minutes(5))?;
                Ok::<_, StoreError>((first, second, fresh, replay, elsewhere))
            })
            .await
            .unwrap();
        assert_eq!(outcome, (true, true, true, false, true));
    }

    #[tokio::test]
    async fn subjects_and_idp_sessions_are_found_and_expired_state_purged() {
        let (_dir, store) = testing::store();
        let now = OffsetDateTime::now_utc();
        let (tenant, other_tenant, user, other_user) =
            (TenantId::generate(), TenantId::generate(), UserId::generate(), UserId::generate());
        let (live, gone) = (SessionId::generate(), SessionId::generate());
        let (old_login, live_login) =
            (pending(now - Duration::seconds(1)), pending(now + Duration::minutes(5)));
        store
            .write(move |tx| {
                link_subject(tx, "google", "sub-1", tenant, user)?;
                link_subject(tx, "google", "sub-1", other_tenant, other_user)?;
                link_subject(tx, "google", "sub-10", tenant, other_user)?;
                record_idp_session(tx, "google", "sid-1", live, now + Duration::hours(1))?;
                record_idp_session(tx, "google", "sid-1", gone, now - Duration::seconds(1))?;
                put_login(tx, "old", &old_login)?;
                put_login(tx, "live", &live_login)?;
                mark_logout_token(tx, "google", "j-old", now - Duration::seconds(1))?;
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        let purged = store.write(move |tx| purge_expired(tx, now, 100)).await.unwrap();
        assert_eq!(purged, 3);
        let found = store
            .read(move |tx| {
                Ok::<_, StoreError>((
                    subject_user(tx, "google", "sub-1", tenant)?,
                    subject_users(tx, "google", "sub-1")?.len(),
                    idp_session_sessions(tx, "google", "sid-1")?,
                    login(tx, "old")?.is_none(),
                    login(tx, "live")?.is_some(),
                ))
            })
            .await
            .unwrap();
        assert_eq!(found, (Some(user), 2, vec![live], true, true));
        let replayable = store
            .write(move |tx| mark_logout_token(tx, "google", "j-old", now + Duration::minutes(1)))
            .await
            .unwrap();
        assert!(replayable, "a purged jti is forgotten (its token has expired anyway)");
        store.write(move |tx| delete_tenant(tx, other_tenant)).await.unwrap();
        let left = store.read(move |tx| subject_users(tx, "google", "sub-1")).await.unwrap();
        assert_eq!(left, vec![(tenant, user)], "a deleted tenant's Google links are forgotten");
    }
}
