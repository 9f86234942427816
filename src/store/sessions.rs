//! Sign-in sessions. `sessions` (id → record), `user_sessions` ((tenant, user, session)), so that
//! every session of a user (or a tenant) can be revoked in the transaction that deactivates the
//! user, and `session_expiry` so that ended sessions are purged.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, TableVisitor, WriteTx, codec};
use crate::ids::{ClientId, SessionId, TenantId, UserId};

const SESSIONS: TableDefinition<u128, &[u8]> = TableDefinition::new("sessions");
const USER_SESSIONS: TableDefinition<(u128, u128, u128), ()> = TableDefinition::new("user_sessions");
/// (purge time, session): sessions are deleted a while after they end.
const SESSION_EXPIRY: TableDefinition<(i64, u128), ()> = TableDefinition::new("session_expiry");
/// How long an ended session stays visible (to the admin API and the audit trail's readers).
const KEPT_AFTER_EXPIRY: time::Duration = time::Duration::days(7);

/// Every table of this module: created at start, copied by a backup.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(SESSIONS)?;
    tables.visit(USER_SESSIONS)?;
    tables.visit(SESSION_EXPIRY)?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: SessionId,
    pub tenant: TenantId,
    pub user: UserId,
    /// SHA-256 of the secret half of the browser cookie: the id alone (a UUIDv7, partly a
    /// timestamp) must never be enough to present a session.
    #[serde(default)]
    pub secret_digest: [u8; 32],
    /// When the person signed in (`auth_time`).
    pub created_at: OffsetDateTime,
    /// The absolute end: the tenant's limit, or earlier if the IdP said so.
    pub expires_at: OffsetDateTime,
    /// The session ends after this long without activity; 0: no idle limit.
    #[serde(default)]
    pub idle_timeout_secs: u32,
    /// Written at most every few minutes (see `sessions::touch_interval`), so checks stay reads.
    #[serde(default = "epoch")]
    pub last_active_at: OffsetDateTime,
    /// How the person authenticated (RFC 8176 values: `pwd`, `fed`, …).
    #[serde(default)]
    pub amr: Vec<String>,
    /// Who vouched for the person: `password`, `google`, `saml:<connection>`, `oidc:<connection>`.
    #[serde(default)]
    pub idp: String,
    /// The clients that received tokens of this session (told through back-channel logout).
    #[serde(default)]
    pub clients: Vec<ClientId>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
    pub revoked_at: Option<OffsetDateTime>,
    /// Why: `logout`, `admin`, `user_deactivated`, `user_deleted`, `tenant_revoked`, ….
    #[serde(default)]
    pub revoked_reason: Option<String>,
    /// The IdP's own handle on the sign-in, for Single Logout.
    #[serde(default)]
    pub idp_session: Option<IdpSession>,
}

/// How a SAML IdP names a sign-in: what a LogoutRequest carries, both ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpSession {
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub session_index: Option<String>,
}

fn epoch() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH
}

impl Record for SessionRecord {
    const KIND: &'static str = "session";
}

impl SessionRecord {
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at && !self.is_idle(now)
    }

    fn is_idle(&self, now: OffsetDateTime) -> bool {
        self.idle_timeout_secs > 0
            && now >= self.last_active_at + time::Duration::seconds(i64::from(self.idle_timeout_secs))
    }
}

pub fn get(src: &impl Source, id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
    codec::get(src, SESSIONS, id.key())
}

pub fn put(tx: &WriteTx<'_>, session: &SessionRecord) -> Result<(), StoreError> {
    let fresh =
        tx.table_mut(SESSIONS)?.insert(session.id.key(), codec::encode(session)?.as_slice())?.is_none();
    if fresh {
        tx.table_mut(USER_SESSIONS)?
            .insert((session.tenant.key(), session.user.key(), session.id.key()), ())?;
        let purge_at = session.expires_at + KEPT_AFTER_EXPIRY;
        tx.table_mut(SESSION_EXPIRY)?.insert((purge_at.unix_timestamp(), session.id.key()), ())?;
    }
    Ok(())
}

/// The user's sessions, live or not, oldest first.
pub fn of_user(src: &impl Source, tenant: TenantId, user: UserId) -> Result<Vec<SessionRecord>, StoreError> {
    let ids = session_ids(src, (tenant.key(), user.key(), 0)..=(tenant.key(), user.key(), u128::MAX))?;
    ids.into_iter().filter_map(|id| get(src, id).transpose()).collect()
}

fn session_ids(
    src: &impl Source,
    range: std::ops::RangeInclusive<(u128, u128, u128)>,
) -> Result<Vec<SessionId>, StoreError> {
    let index = src.table(USER_SESSIONS)?;
    let entries = index.range(range)?;
    entries.map(|entry| Ok(SessionId::from_key(entry?.0.value().2))).collect()
}

/// Marks the session revoked if it is live; returns it if this call revoked it.
pub fn revoke(
    tx: &WriteTx<'_>,
    id: SessionId,
    reason: &str,
    now: OffsetDateTime,
) -> Result<Option<SessionRecord>, StoreError> {
    let Some(mut session) = get(tx, id)? else {
        return Ok(None);
    };
    if !session.is_live(now) {
        return Ok(None);
    }
    session.revoked_at = Some(now);
    session.revoked_reason = Some(reason.to_owned());
    put(tx, &session)?;
    Ok(Some(session))
}

/// Revokes every live session of the user; returns those it revoked.
pub fn revoke_user(
    tx: &WriteTx<'_>,
    tenant: TenantId,
    user: UserId,
    reason: &str,
    now: OffsetDateTime,
) -> Result<Vec<SessionRecord>, StoreError> {
    let ids = session_ids(tx, (tenant.key(), user.key(), 0)..=(tenant.key(), user.key(), u128::MAX))?;
    revoke_all(tx, ids, reason, now)
}

/// Revokes every live session of the tenant; returns those it revoked.
pub fn revoke_tenant(
    tx: &WriteTx<'_>,
    tenant: TenantId,
    reason: &str,
    now: OffsetDateTime,
) -> Result<Vec<SessionRecord>, StoreError> {
    let ids = session_ids(tx, (tenant.key(), 0, 0)..=(tenant.key(), u128::MAX, u128::MAX))?;
    revoke_all(tx, ids, reason, now)
}

fn revoke_all(
    tx: &WriteTx<'_>,
    ids: Vec<SessionId>,
    reason: &str,
    now: OffsetDateTime,
) -> Result<Vec<SessionRecord>, StoreError> {
    let mut revoked = Vec::new();
    for id in ids {
        revoked.extend(revoke(tx, id, reason, now)?);
    }
    Ok(revoked)
}

/// Deletes up to `limit` sessions that ended more than a week ago; returns how many.
pub fn purge_ended(tx: &WriteTx<'_>, now: OffsetDateTime, limit: usize) -> Result<usize, StoreError> {
    let due: Vec<(i64, u128)> = {
        let queue = tx.table_mut(SESSION_EXPIRY)?;
        let range = queue.range(..(now.unix_timestamp(), 0))?;
        range.take(limit).map(|entry| Ok::<_, StoreError>(entry?.0.value())).collect::<Result<_, _>>()?
    };
    for (at, id) in &due {
        if let Some(session) = get(tx, SessionId::from_key(*id))? {
            tx.table_mut(USER_SESSIONS)?.remove((session.tenant.key(), session.user.key(), *id))?;
        }
        tx.table_mut(SESSIONS)?.remove(*id)?;
        tx.table_mut(SESSION_EXPIRY)?.remove((*at, *id))?;
    }
    Ok(due.len())
}

pub(super) fn delete_tenant(tx: &WriteTx<'_>, tenant: TenantId) -> Result<(), StoreError> {
    let t = tenant.key();
    let ids: Vec<u128> = {
        let index = tx.table_mut(USER_SESSIONS)?;
        index
            .range((t, 0, 0)..=(t, u128::MAX, u128::MAX))?
            .map(|entry| Ok::<_, StoreError>(entry?.0.value().2))
            .collect::<Result<_, _>>()?
    };
    let mut sessions = tx.table_mut(SESSIONS)?;
    for id in ids {
        sessions.remove(id)?;
    }
    drop(sessions);
    tx.table_mut(USER_SESSIONS)?.retain_in((t, 0, 0)..=(t, u128::MAX, u128::MAX), |_, _| false)?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use time::Duration;

    use super::*;
    use crate::store::testing;

    /// A live session of eight hours with no idle limit.
    pub(crate) fn session_record(tenant: TenantId, user: UserId, now: OffsetDateTime) -> SessionRecord {
        SessionRecord {
            id: SessionId::generate(),
            tenant,
            user,
            secret_digest: [0; 32],
            created_at: now,
            expires_at: now + Duration::hours(8),
            idle_timeout_secs: 0,
            last_active_at: now,
            amr: vec!["pwd".into()],
            idp: "password".into(),
            clients: Vec::new(),
            user_agent: None,
            ip: None,
            revoked_at: None,
            revoked_reason: None,
            idp_session: None,
        }
    }

    #[test]
    fn a_session_ends_at_its_absolute_limit_or_after_being_idle() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let mut session = session_record(TenantId::generate(), UserId::generate(), now);
        assert!(session.is_live(now + Duration::hours(7)));
        assert!(!session.is_live(now + Duration::hours(8)));
        session.idle_timeout_secs = 1800;
        assert!(session.is_live(now + Duration::minutes(29)));
        assert!(!session.is_live(now + Duration::minutes(30)));
        session.last_active_at = now + Duration::minutes(20);
        assert!(session.is_live(now + Duration::minutes(49)));
    }

    #[tokio::test]
    async fn revoking_a_user_revokes_all_of_their_sessions_and_no_one_elses() {
        let (_dir, store) = testing::store();
        let (t, ada, bob) = (TenantId::generate(), UserId::generate(), UserId::generate());
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let sessions =
            [session_record(t, ada, now), session_record(t, ada, now), session_record(t, bob, now)];
        let ids: Vec<SessionId> = sessions.iter().map(|s| s.id).collect();
        let revoked = store
            .write(move |tx| {
                for s in &sessions {
                    put(tx, s)?;
                }
                revoke_user(tx, t, ada, "admin", now)
            })
            .await
            .unwrap();
        assert_eq!(revoked.len(), 2);
        assert!(revoked.iter().all(|s| s.revoked_reason.as_deref() == Some("admin")));
        let live: Vec<bool> = store
            .read(move |tx| {
                ids.iter()
                    .map(|id| Ok(get(tx, *id)?.is_some_and(|s| s.is_live(now))))
                    .collect::<Result<_, StoreError>>()
            })
            .await
            .unwrap();
        assert_eq!(live, vec![false, false, true]);
    }

    #[tokio::test]
    async fn ended_sessions_are_purged_a_week_after_they_end() {
        let (_dir, store) = testing::store();
        let (t, ada) = (TenantId::generate(), UserId::generate());
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let (old, recent) = (session_record(t, ada, now), session_record(t, ada, now + Duration::days(2)));
        let (old_id, recent_id) = (old.id, recent.id);
        store
            .write(move |tx| {
                put(tx, &old)?;
                put(tx, &recent)
            })
            .await
            .unwrap();
        let later = now + Duration::days(8);
        assert_eq!(store.write(move |tx| purge_ended(tx, later, 100)).await.unwrap(), 1);
        let left = store
            .read(move |tx| {
                Ok::<_, StoreError>((
                    get(tx, old_id)?.is_none(),
                    of_user(tx, t, ada)?.len(),
                    get(tx, recent_id)?.is_some(),
                ))
            })
            .await
            .unwrap();
        assert_eq!(left, (true, 1, true));
    }
}
