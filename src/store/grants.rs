//! What the OpenID Provider hands out between a person's sign-in and the app's tokens.
//!
//! Tables:
//! - `authorization_requests` (id → record): an `/authorize` request waiting for its sign-in;
//! - `authorization_codes` (SHA-256 of the code → record), single use;
//! - `refresh_tokens` (SHA-256 of the token → record) and `refresh_families` (family → record):
//!   each refresh replaces the token by a new one of the same family, and presenting a replaced
//!   token again revokes the family (RFC 9700 §4.14.2);
//! - `revoked_access_tokens` (jti → expiry): access tokens revoked before they expire (RFC 7009);
//! - `grant_expiry` ((expiry, kind, key)): every record above in the order it expires, so that the
//!   sweep reads only what is due.
//!
//! Codes and tokens are 256-bit random values, so they are looked up by a fast digest.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, TableVisitor, WriteTx, codec};
use crate::ids::{AuthRequestId, ClientId, RefreshFamilyId, SessionId, TenantId, UserId};

const AUTHORIZATION_REQUESTS: TableDefinition<u128, &[u8]> = TableDefinition::new("authorization_requests");
const AUTHORIZATION_CODES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("authorization_codes");
const REFRESH_TOKENS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("refresh_tokens");
const REFRESH_FAMILIES: TableDefinition<u128, &[u8]> = TableDefinition::new("refresh_families");
const REVOKED_ACCESS_TOKENS: TableDefinition<u128, i64> = TableDefinition::new("revoked_access_tokens");
const GRANT_EXPIRY: TableDefinition<(i64, u8, &[u8]), ()> = TableDefinition::new("grant_expiry");

/// Every table of this module: created at start, copied by a backup.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(AUTHORIZATION_REQUESTS)?;
    tables.visit(AUTHORIZATION_CODES)?;
    tables.visit(REFRESH_TOKENS)?;
    tables.visit(REFRESH_FAMILIES)?;
    tables.visit(REVOKED_ACCESS_TOKENS)?;
    tables.visit(GRANT_EXPIRY)?;
    Ok(())
}

/// Which table an expiry queue entry points into.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Kind {
    AuthorizationRequest = 1,
    Code = 2,
    RefreshToken = 3,
    RefreshFamily = 4,
    RevokedAccessToken = 5,
}

/// A validated `/authorize` request, kept while the person signs in. Its id travels through the
/// login pages and, later, through an IdP's RelayState (which is why it is short).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationRequestRecord {
    pub id: AuthRequestId,
    pub client: ClientId,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    /// `form_post` or `query` (the default).
    pub response_mode: String,
    pub login_hint: Option<String>,
    /// The tenant the app pinned with `organization` (a vanity login), if any.
    pub tenant: Option<TenantId>,
    /// `max_age` in seconds: an older sign-in must be repeated.
    pub max_age: Option<u64>,
    /// `prompt=login`: sign in again whatever the session.
    pub force_login: bool,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl Record for AuthorizationRequestRecord {
    const KIND: &'static str = "authorization request";
}

/// What an authorization code stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeRecord {
    pub client: ClientId,
    pub redirect_uri: String,
    pub tenant: TenantId,
    pub user: UserId,
    pub session: SessionId,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub auth_time: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// Set when the code is exchanged; a second exchange is refused and revokes what the first
    /// one issued (RFC 6749 §4.1.2).
    pub redeemed_at: Option<OffsetDateTime>,
    /// The refresh token family the exchange started, if any.
    pub family: Option<RefreshFamilyId>,
    /// The access token the exchange issued.
    pub access_token_jti: Option<u128>,
    pub access_token_expires_at: Option<OffsetDateTime>,
}

impl Record for CodeRecord {
    const KIND: &'static str = "authorization code";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshTokenRecord {
    pub family: RefreshFamilyId,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// Set when this token was exchanged for its successor.
    pub replaced_at: Option<OffsetDateTime>,
}

impl Record for RefreshTokenRecord {
    const KIND: &'static str = "refresh token";
}

/// What every token of a refresh family shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshFamilyRecord {
    pub id: RefreshFamilyId,
    pub client: ClientId,
    pub tenant: TenantId,
    pub user: UserId,
    pub session: SessionId,
    pub scopes: Vec<String>,
    pub auth_time: OffsetDateTime,
    pub created_at: OffsetDateTime,
    /// The family ends with its session at the latest; this is the session's absolute expiry.
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    /// Why: `reuse_detected`, `revoked_by_client`, `code_reused`.
    pub revoked_reason: Option<String>,
}

impl Record for RefreshFamilyRecord {
    const KIND: &'static str = "refresh token family";
}

fn queue(tx: &WriteTx<'_>, expires_at: OffsetDateTime, kind: Kind, key: &[u8]) -> Result<(), StoreError> {
    tx.table_mut(GRANT_EXPIRY)?.insert((expires_at.unix_timestamp(), kind as u8, key), ())?;
    Ok(())
}

pub fn authorization_request(
    src: &impl Source,
    id: AuthRequestId,
) -> Result<Option<AuthorizationRequestRecord>, StoreError> {
    codec::get(src, AUTHORIZATION_REQUESTS, id.key())
}

pub fn put_authorization_request(
    tx: &WriteTx<'_>,
    request: &AuthorizationRequestRecord,
) -> Result<(), StoreError> {
    let key = request.id.key();
    tx.table_mut(AUTHORIZATION_REQUESTS)?.insert(key, codec::encode(request)?.as_slice())?;
    queue(tx, request.expires_at, Kind::AuthorizationRequest, &key.to_be_bytes())
}

/// Removes a request that has been answered; returns it if it was still there.
pub fn take_authorization_request(
    tx: &WriteTx<'_>,
    id: AuthRequestId,
) -> Result<Option<AuthorizationRequestRecord>, StoreError> {
    let removed = tx.table_mut(AUTHORIZATION_REQUESTS)?.remove(id.key())?.map(|v| codec::decode(v.value()));
    removed.transpose()
}

pub fn code(src: &impl Source, digest: &[u8; 32]) -> Result<Option<CodeRecord>, StoreError> {
    codec::get(src, AUTHORIZATION_CODES, digest)
}

pub fn put_code(tx: &WriteTx<'_>, digest: &[u8; 32], code: &CodeRecord) -> Result<(), StoreError> {
    let fresh = tx.table_mut(AUTHORIZATION_CODES)?.insert(digest, codec::encode(code)?.as_slice())?.is_none();
    if fresh {
        queue(tx, code.expires_at, Kind::Code, digest)?;
    }
    Ok(())
}

pub fn refresh_token(src: &impl Source, digest: &[u8; 32]) -> Result<Option<RefreshTokenRecord>, StoreError> {
    codec::get(src, REFRESH_TOKENS, digest)
}

pub fn put_refresh_token(
    tx: &WriteTx<'_>,
    digest: &[u8; 32],
    token: &RefreshTokenRecord,
) -> Result<(), StoreError> {
    let fresh = tx.table_mut(REFRESH_TOKENS)?.insert(digest, codec::encode(token)?.as_slice())?.is_none();
    if fresh {
        queue(tx, token.expires_at, Kind::RefreshToken, digest)?;
    }
    Ok(())
}

pub fn refresh_family(
    src: &impl Source,
    id: RefreshFamilyId,
) -> Result<Option<RefreshFamilyRecord>, StoreError> {
    codec::get(src, REFRESH_FAMILIES, id.key())
}

pub fn put_refresh_family(tx: &WriteTx<'_>, family: &RefreshFamilyRecord) -> Result<(), StoreError> {
    let key = family.id.key();
    let fresh = tx.table_mut(REFRESH_FAMILIES)?.insert(key, codec::encode(family)?.as_slice())?.is_none();
    if fresh {
        queue(tx, family.expires_at, Kind::RefreshFamily, &key.to_be_bytes())?;
    }
    Ok(())
}

/// Marks the family revoked (a no-op if it is already, or gone).
pub fn revoke_refresh_family(
    tx: &WriteTx<'_>,
    id: RefreshFamilyId,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    if let Some(mut family) = refresh_family(tx, id)? {
        if family.revoked_at.is_none() {
            family.revoked_at = Some(now);
            family.revoked_reason = Some(reason.to_owned());
            put_refresh_family(tx, &family)?;
        }
    }
    Ok(())
}

pub fn is_access_token_revoked(src: &impl Source, jti: u128) -> Result<bool, StoreError> {
    Ok(src.table(REVOKED_ACCESS_TOKENS)?.get(jti)?.is_some())
}

pub fn revoke_access_token(
    tx: &WriteTx<'_>,
    jti: u128,
    expires_at: OffsetDateTime,
) -> Result<(), StoreError> {
    let fresh = tx.table_mut(REVOKED_ACCESS_TOKENS)?.insert(jti, expires_at.unix_timestamp())?.is_none();
    if fresh {
        queue(tx, expires_at, Kind::RevokedAccessToken, &jti.to_be_bytes())?;
    }
    Ok(())
}

/// Deletes up to `limit` records that expired before `now`; returns how many.
pub fn purge_expired(tx: &WriteTx<'_>, now: OffsetDateTime, limit: usize) -> Result<usize, StoreError> {
    let due: Vec<(i64, u8, Vec<u8>)> = {
        let queue = tx.table_mut(GRANT_EXPIRY)?;
        let range = queue.range::<(i64, u8, &[u8])>(..(now.unix_timestamp(), 0, &[][..]))?;
        range
            .take(limit)
            .map(|entry| {
                let key = entry?.0;
                let (at, kind, bytes) = key.value();
                Ok::<_, StoreError>((at, kind, bytes.to_vec()))
            })
            .collect::<Result<_, _>>()?
    };
    for (at, kind, key) in &due {
        remove_expired(tx, *kind, key)?;
        tx.table_mut(GRANT_EXPIRY)?.remove((*at, *kind, key.as_slice()))?;
    }
    Ok(due.len())
}

fn remove_expired(tx: &WriteTx<'_>, kind: u8, key: &[u8]) -> Result<(), StoreError> {
    let as_u128 = || <[u8; 16]>::try_from(key).ok().map(u128::from_be_bytes);
    let as_digest = || <&[u8; 32]>::try_from(key).ok();
    match kind {
        k if k == Kind::AuthorizationRequest as u8 => {
            if let Some(id) = as_u128() {
                tx.table_mut(AUTHORIZATION_REQUESTS)?.remove(id)?;
            }
        }
        k if k == Kind::Code as u8 => {
            if let Some(digest) = as_digest() {
                tx.table_mut(AUTHORIZATION_CODES)?.remove(digest)?;
            }
        }
        k if k == Kind::RefreshToken as u8 => {
            if let Some(digest) = as_digest() {
                tx.table_mut(REFRESH_TOKENS)?.remove(digest)?;
            }
        }
        k if k == Kind::RefreshFamily as u8 => {
            if let Some(id) = as_u128() {
                tx.table_mut(REFRESH_FAMILIES)?.remove(id)?;
            }
        }
        k if k == Kind::RevokedAccessToken as u8 => {
            if let Some(id) = as_u128() {
                tx.table_mut(REVOKED_ACCESS_TOKENS)?.remove(id)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;
    use crate::store::testing;

    #[tokio::test]
    async fn expired_grants_are_purged_and_live_ones_kept() {
        let (_dir, store) = testing::store();
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(10);
        let family = |expires_at| RefreshFamilyRecord {
            id: RefreshFamilyId::generate(),
            client: ClientId::generate(),
            tenant: TenantId::generate(),
            user: UserId::generate(),
            session: SessionId::generate(),
            scopes: vec!["openid".into()],
            auth_time: now,
            created_at: now,
            expires_at,
            revoked_at: None,
            revoked_reason: None,
        };
        let (old, live) = (family(now - Duration::hours(1)), family(now + Duration::hours(1)));
        let (old_id, live_id) = (old.id, live.id);
        let token = RefreshTokenRecord {
            family: old.id,
            issued_at: now - Duration::hours(2),
            expires_at: now - Duration::minutes(5),
            replaced_at: None,
        };
        store
            .write(move |tx| {
                put_refresh_family(tx, &old)?;
                put_refresh_family(tx, &live)?;
                put_refresh_token(tx, &[7; 32], &token)?;
                revoke_access_token(tx, 42, now - Duration::seconds(1))?;
                revoke_access_token(tx, 43, now + Duration::seconds(60))
            })
            .await
            .unwrap();
        let purged = store.write(move |tx| purge_expired(tx, now, 100)).await.unwrap();
        assert_eq!(purged, 3);
        let left = store
            .read(move |tx| {
                Ok::<_, StoreError>((
                    refresh_family(tx, old_id)?.is_none(),
                    refresh_family(tx, live_id)?.is_some(),
                    refresh_token(tx, &[7; 32])?.is_none(),
                    is_access_token_revoked(tx, 42)?,
                    is_access_token_revoked(tx, 43)?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(left, (true, true, true, false, true));
    }
}
