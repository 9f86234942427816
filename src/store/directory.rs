//! Users, groups and memberships of each tenant's directory (filled by SCIM and by sign-in).
//!
//! Tables, all keyed tenant first: `users` ((tenant, user) → record), `user_emails`
//! ((tenant, lower-case email) → user), `groups` ((tenant, group) → record), and memberships in
//! both directions, `group_members` ((tenant, group, user)) and `user_groups` ((tenant, user,
//! group)), so that adding one member writes two small keys, whatever the size of the group.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, WriteTx, codec};
use crate::ids::{GroupId, TenantId, UserId};

const USERS: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("users");
const USER_EMAILS: TableDefinition<(u128, &str), u128> = TableDefinition::new("user_emails");
const GROUPS: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("groups");
const GROUP_MEMBERS: TableDefinition<(u128, u128, u128), ()> = TableDefinition::new("group_members");
const USER_GROUPS: TableDefinition<(u128, u128, u128), ()> = TableDefinition::new("user_groups");

pub(super) fn create_tables(tx: &WriteTx<'_>) -> Result<(), StoreError> {
    tx.table_mut(USERS)?;
    tx.table_mut(USER_EMAILS)?;
    tx.table_mut(GROUPS)?;
    tx.table_mut(GROUP_MEMBERS)?;
    tx.table_mut(USER_GROUPS)?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: UserId,
    pub tenant: TenantId,
    pub user_name: String,
    /// The sign-in email, lower-cased; unique within the tenant.
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub external_id: Option<String>,
    pub active: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Record for UserRecord {
    const KIND: &'static str = "user";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub id: GroupId,
    pub tenant: TenantId,
    pub display_name: String,
    pub external_id: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Record for GroupRecord {
    const KIND: &'static str = "group";
}

pub fn user(src: &impl Source, tenant: TenantId, id: UserId) -> Result<Option<UserRecord>, StoreError> {
    codec::get(src, USERS, (tenant.key(), id.key()))
}

pub fn user_by_email(
    src: &impl Source,
    tenant: TenantId,
    email: &str,
) -> Result<Option<UserRecord>, StoreError> {
    let id = src.table(USER_EMAILS)?.get((tenant.key(), email))?.map(|v| v.value());
    match id {
        Some(id) => user(src, tenant, UserId::from_key(id)),
        None => Ok(None),
    }
}

/// Creates or replaces a user and keeps the email index. If the email belongs to another user of
/// the tenant, writes nothing and returns that user's id.
pub fn put_user(tx: &WriteTx<'_>, record: &UserRecord) -> Result<Option<UserId>, StoreError> {
    let tenant = record.tenant.key();
    let previous = user(tx, record.tenant, record.id)?;
    let mut emails = tx.table_mut(USER_EMAILS)?;
    if let Some(email) = &record.email {
        if let Some(holder) = emails.get((tenant, email.as_str()))?.map(|v| v.value()) {
            if holder != record.id.key() {
                return Ok(Some(UserId::from_key(holder)));
            }
        }
    }
    if let Some(old) = previous.as_ref().and_then(|p| p.email.as_deref()) {
        if record.email.as_deref() != Some(old) {
            emails.remove((tenant, old))?;
        }
    }
    if let Some(email) = &record.email {
        emails.insert((tenant, email.as_str()), record.id.key())?;
    }
    drop(emails);
    tx.table_mut(USERS)?.insert((tenant, record.id.key()), codec::encode(record)?.as_slice())?;
    Ok(None)
}

/// Deletes a user, its email index entry and its memberships. Sessions are the caller's to revoke.
pub fn delete_user(tx: &WriteTx<'_>, tenant: TenantId, id: UserId) -> Result<bool, StoreError> {
    let Some(record) = user(tx, tenant, id)? else {
        return Ok(false);
    };
    if let Some(email) = &record.email {
        tx.table_mut(USER_EMAILS)?.remove((tenant.key(), email.as_str()))?;
    }
    for group in groups_of(tx, tenant, id)? {
        remove_member(tx, tenant, group, id)?;
    }
    tx.table_mut(USERS)?.remove((tenant.key(), id.key()))?;
    Ok(true)
}

pub fn group(src: &impl Source, tenant: TenantId, id: GroupId) -> Result<Option<GroupRecord>, StoreError> {
    codec::get(src, GROUPS, (tenant.key(), id.key()))
}

pub fn put_group(tx: &WriteTx<'_>, record: &GroupRecord) -> Result<(), StoreError> {
    tx.table_mut(GROUPS)?
        .insert((record.tenant.key(), record.id.key()), codec::encode(record)?.as_slice())?;
    Ok(())
}

pub fn delete_group(tx: &WriteTx<'_>, tenant: TenantId, id: GroupId) -> Result<bool, StoreError> {
    for user in members_of(tx, tenant, id)? {
        remove_member(tx, tenant, id, user)?;
    }
    Ok(tx.table_mut(GROUPS)?.remove((tenant.key(), id.key()))?.is_some())
}

/// Adds a member; returns false if it already was one.
pub fn add_member(
    tx: &WriteTx<'_>,
    tenant: TenantId,
    group: GroupId,
    user: UserId,
) -> Result<bool, StoreError> {
    let (t, g, u) = (tenant.key(), group.key(), user.key());
    let added = tx.table_mut(GROUP_MEMBERS)?.insert((t, g, u), ())?.is_none();
    tx.table_mut(USER_GROUPS)?.insert((t, u, g), ())?;
    Ok(added)
}

/// Removes a member; returns false if it was not one.
pub fn remove_member(
    tx: &WriteTx<'_>,
    tenant: TenantId,
    group: GroupId,
    user: UserId,
) -> Result<bool, StoreError> {
    let (t, g, u) = (tenant.key(), group.key(), user.key());
    let removed = tx.table_mut(GROUP_MEMBERS)?.remove((t, g, u))?.is_some();
    tx.table_mut(USER_GROUPS)?.remove((t, u, g))?;
    Ok(removed)
}

pub fn members_of(src: &impl Source, tenant: TenantId, group: GroupId) -> Result<Vec<UserId>, StoreError> {
    let table = src.table(GROUP_MEMBERS)?;
    let (t, g) = (tenant.key(), group.key());
    let range = table.range((t, g, 0)..=(t, g, u128::MAX))?;
    range.map(|entry| Ok(UserId::from_key(entry?.0.value().2))).collect()
}

pub fn groups_of(src: &impl Source, tenant: TenantId, user: UserId) -> Result<Vec<GroupId>, StoreError> {
    let table = src.table(USER_GROUPS)?;
    let (t, u) = (tenant.key(), user.key());
    let range = table.range((t, u, 0)..=(t, u, u128::MAX))?;
    range.map(|entry| Ok(GroupId::from_key(entry?.0.value().2))).collect()
}

/// Removes every directory entry of a tenant.
pub(super) fn delete_tenant(tx: &WriteTx<'_>, tenant: TenantId) -> Result<(), StoreError> {
    let t = tenant.key();
    tx.table_mut(USERS)?.retain_in((t, 0)..=(t, u128::MAX), |_, _| false)?;
    tx.table_mut(GROUPS)?.retain_in((t, 0)..=(t, u128::MAX), |_, _| false)?;
    tx.table_mut(GROUP_MEMBERS)?.retain_in((t, 0, 0)..=(t, u128::MAX, u128::MAX), |_, _| false)?;
    tx.table_mut(USER_GROUPS)?.retain_in((t, 0, 0)..=(t, u128::MAX, u128::MAX), |_, _| false)?;
    let mut emails = tx.table_mut(USER_EMAILS)?;
    let keys: Vec<String> = emails
        .range((t, "")..)?
        .map_while(|entry| match entry {
            Ok((key, _)) if key.value().0 == t => Some(Ok(key.value().1.to_owned())),
            Ok(_) => None,
            Err(err) => Some(Err(err)),
        })
        .collect::<Result<_, _>>()?;
    for email in keys {
        emails.remove((t, email.as_str()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    fn user_record(tenant: TenantId, name: &str, email: &str) -> UserRecord {
        let now = OffsetDateTime::UNIX_EPOCH;
        UserRecord {
            id: UserId::generate(),
            tenant,
            user_name: name.into(),
            email: Some(email.into()),
            display_name: None,
            external_id: None,
            active: true,
            created_at: now,
            updated_at: now,
        }
    }

    #[tokio::test]
    async fn the_email_index_follows_the_record_and_is_unique_per_tenant() {
        let (_dir, store) = testing::store();
        let (a, b) = (TenantId::generate(), TenantId::generate());
        let ada = user_record(a, "ada", "ada@acme.test");
        let other_tenant = user_record(b, "ada", "ada@acme.test");
        let clash = user_record(a, "ada2", "ada@acme.test");
        let (ada2, clash2) = (ada.clone(), clash.clone());
        let outcome = store
            .write(move |tx| {
                assert_eq!(put_user(tx, &ada2)?, None);
                assert_eq!(put_user(tx, &other_tenant)?, None);
                put_user(tx, &clash2)
            })
            .await
            .unwrap();
        assert_eq!(outcome, Some(ada.id));

        let mut renamed = ada.clone();
        renamed.email = Some("ada@new.test".into());
        store.write(move |tx| put_user(tx, &renamed)).await.unwrap();
        let (old, new) = store
            .read(move |tx| {
                Ok::<_, StoreError>((
                    user_by_email(tx, a, "ada@acme.test")?,
                    user_by_email(tx, a, "ada@new.test")?,
                ))
            })
            .await
            .unwrap();
        assert!(old.is_none());
        assert_eq!(new.map(|u| u.id), Some(ada.id));
        // The address is free again for another user.
        assert_eq!(store.write(move |tx| put_user(tx, &clash)).await.unwrap(), None);
    }

    #[tokio::test]
    async fn memberships_are_kept_in_both_directions() {
        let (_dir, store) = testing::store();
        let t = TenantId::generate();
        let u = user_record(t, "ada", "ada@acme.test");
        let uid = u.id;
        let g = GroupRecord {
            id: GroupId::generate(),
            tenant: t,
            display_name: "Engineering".into(),
            external_id: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        };
        let gid = g.id;
        store
            .write(move |tx| {
                put_user(tx, &u)?;
                put_group(tx, &g)?;
                assert!(add_member(tx, t, gid, uid)?);
                assert!(!add_member(tx, t, gid, uid)?);
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        let (members, groups) = store
            .read(move |tx| Ok::<_, StoreError>((members_of(tx, t, gid)?, groups_of(tx, t, uid)?)))
            .await
            .unwrap();
        assert_eq!((members, groups), (vec![uid], vec![gid]));
        store.write(move |tx| delete_user(tx, t, uid)).await.unwrap();
        let members = store.read(move |tx| members_of(tx, t, gid)).await.unwrap();
        assert!(members.is_empty());
    }
}
