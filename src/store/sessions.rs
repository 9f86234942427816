//! Sign-in sessions. `sessions` (id → record) and `user_sessions` ((tenant, user, session)),
//! so that every session of a user can be revoked in the transaction that deactivates the user.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, WriteTx, codec};
use crate::ids::{SessionId, TenantId, UserId};

const SESSIONS: TableDefinition<u128, &[u8]> = TableDefinition::new("sessions");
const USER_SESSIONS: TableDefinition<(u128, u128, u128), ()> = TableDefinition::new("user_sessions");

pub(super) fn create_tables(tx: &WriteTx<'_>) -> Result<(), StoreError> {
    tx.table_mut(SESSIONS)?;
    tx.table_mut(USER_SESSIONS)?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: SessionId,
    pub tenant: TenantId,
    pub user: UserId,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

impl Record for SessionRecord {
    const KIND: &'static str = "session";
}

impl SessionRecord {
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

pub fn get(src: &impl Source, id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
    codec::get(src, SESSIONS, id.key())
}

pub fn put(tx: &WriteTx<'_>, session: &SessionRecord) -> Result<(), StoreError> {
    tx.table_mut(SESSIONS)?.insert(session.id.key(), codec::encode(session)?.as_slice())?;
    tx.table_mut(USER_SESSIONS)?.insert((session.tenant.key(), session.user.key(), session.id.key()), ())?;
    Ok(())
}

/// Marks every live session of the user revoked; returns how many were.
pub fn revoke_user(
    tx: &WriteTx<'_>,
    tenant: TenantId,
    user: UserId,
    now: OffsetDateTime,
) -> Result<usize, StoreError> {
    let ids: Vec<SessionId> = {
        let index = tx.table_mut(USER_SESSIONS)?;
        let (t, u) = (tenant.key(), user.key());
        index
            .range((t, u, 0)..=(t, u, u128::MAX))?
            .map(|entry| Ok::<_, StoreError>(SessionId::from_key(entry?.0.value().2)))
            .collect::<Result<_, _>>()?
    };
    let mut revoked = 0;
    for id in ids {
        if let Some(mut session) = get(tx, id)? {
            if session.is_live(now) {
                session.revoked_at = Some(now);
                put(tx, &session)?;
                revoked += 1;
            }
        }
    }
    Ok(revoked)
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
mod tests {
    use time::Duration;

    use super::*;
    use crate::store::testing;

    #[tokio::test]
    async fn revoking_a_user_revokes_all_of_their_sessions_and_no_one_elses() {
        let (_dir, store) = testing::store();
        let (t, ada, bob) = (TenantId::generate(), UserId::generate(), UserId::generate());
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let session = |user| SessionRecord {
            id: SessionId::generate(),
            tenant: t,
            user,
            created_at: now,
            expires_at: now + Duration::hours(8),
            revoked_at: None,
        };
        let sessions = [session(ada), session(ada), session(bob)];
        let ids: Vec<SessionId> = sessions.iter().map(|s| s.id).collect();
        let revoked = store
            .write(move |tx| {
                for s in &sessions {
                    put(tx, s)?;
                }
                revoke_user(tx, t, ada, now)
            })
            .await
            .unwrap();
        assert_eq!(revoked, 2);
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
}
